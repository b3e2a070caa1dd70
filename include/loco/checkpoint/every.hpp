#pragma once
// checkpoint::every: a callback that saves a checkpoint every k rounds
// (local_sgd), updates (async_sgd) or iterations (compressed_amsgrad), on
// every rank, and keeps the newest m per rank.
//
//   driver.run(comm, f, x0, loco::checkpoint::every(10, "ckpt", loco::checkpoint::keep_last(3)));
//
// Files are <dir>/<name>-r<rank>-<round>.loco (docs/checkpoint.md). The
// driver hands the callback a save function in its round information; any
// callback may call info.save(location) itself.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <loco/checkpoint/file.hpp>
#include <loco/error.hpp>
#include <string>
#include <utility>

namespace loco::checkpoint {

struct keep_last {
  constexpr explicit keep_last(std::size_t n) noexcept : count(n) {}
  std::size_t count;  // 0 keeps every checkpoint
};

namespace detail {
// Rounds, updates or iterations completed, whichever the driver reports.
template <class Info>
std::uint64_t progress(const Info& info) {
  if constexpr (requires { info.round; }) {
    return info.round;
  } else if constexpr (requires { info.update; }) {
    return info.update;
  } else {
    return info.iteration;
  }
}
}  // namespace detail

class every {
 public:
  every(std::uint64_t k, std::filesystem::path dir, keep_last keep = keep_last(0),
        std::string name = "loco")
      : k_(k), where_{std::move(dir), std::move(name), keep.count} {
    if (k_ == 0) throw config_error("checkpoint::every: k = 0 must be >= 1");
    check_name(where_.name);
  }

  // Observes only (returns nothing), so it adds no stop agreement per round.
  template <class Info>
  void on_round_end(const Info& info) {
    const std::uint64_t done = detail::progress(info);
    if (done != 0 && done % k_ == 0 && info.save) last_ = info.save(where_);
  }

  const location& where() const noexcept { return where_; }
  // This rank's most recent file (empty before the first save).
  const std::filesystem::path& last_path() const noexcept { return last_; }

 private:
  std::uint64_t k_;
  location where_;
  std::filesystem::path last_;
};

}  // namespace loco::checkpoint
