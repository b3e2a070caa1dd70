#pragma once
// checkpoint::resume: where a driver starts from. Set it in the driver's
// options; run() then agrees with every rank on a round, loads this rank's
// file, checks it belongs to this run, and continues from it.
//
//   opt.resume = loco::checkpoint::resume::latest("ckpt", "run");   // newest round on every rank
//   opt.resume = loco::checkpoint::resume::at("ckpt", "run", 40);   // exactly round 40
//
// latest() starts from x0 when no round was saved by every rank, so the same
// command line starts a job and restarts it after a crash.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <loco/checkpoint/file.hpp>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace loco::checkpoint {

class resume {
 public:
  resume() = default;  // no resume: start from x0

  static resume latest(std::filesystem::path dir, std::string name = "loco") {
    check_name(name);
    resume r;
    r.dir_ = std::move(dir);
    r.name_ = std::move(name);
    r.enabled_ = true;
    return r;
  }
  static resume at(std::filesystem::path dir, std::string name, std::uint64_t round) {
    resume r = latest(std::move(dir), std::move(name));
    r.round_ = round;
    return r;
  }

  explicit operator bool() const noexcept { return enabled_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  const std::string& name() const noexcept { return name_; }
  std::optional<std::uint64_t> round() const noexcept { return round_; }

  // Collective: the round every rank resumes from, the same on all ranks;
  // nullopt when there is nothing to resume (latest() with no common round).
  // A missing file for at() throws checkpoint_error(io) on every rank.
  template <class Comm>
  std::optional<std::uint64_t> agree(Comm& comm) const {
    if (!enabled_) return std::nullopt;
    const int me = comm.rank();
    if (round_) {
      const auto path = file_path(dir_, name_, me, *round_);
      std::error_code ec;
      const bool have = std::filesystem::is_regular_file(path, ec);
      double missing[1] = {have ? -1.0 : static_cast<double>(me)};
      comm.allreduce(std::span<double>(missing), comm::reduce_op::max);
      if (missing[0] >= 0.0) {
        throw checkpoint_error(checkpoint_error::reason::io, path.string(), "file",
                               "rank " + std::to_string(static_cast<int>(missing[0])) +
                                   " has no checkpoint '" + name_ + "' of round " +
                                   std::to_string(*round_) + " in " + dir_.string());
      }
      return round_;
    }
    // Newest round present on every rank: lower the candidate until all have it.
    const auto rounds = rounds_on_disk(dir_, name_, me);
    double candidate = rounds.empty() ? -1.0 : static_cast<double>(rounds.back());
    for (;;) {
      double c[1] = {candidate};
      comm.allreduce(std::span<double>(c), comm::reduce_op::min);
      if (c[0] < 0.0) return std::nullopt;
      const auto r = static_cast<std::uint64_t>(c[0]);
      double have[1] = {std::binary_search(rounds.begin(), rounds.end(), r) ? 1.0 : 0.0};
      comm.allreduce(std::span<double>(have), comm::reduce_op::min);
      if (have[0] > 0.0) return r;
      const auto below = std::lower_bound(rounds.begin(), rounds.end(), r);
      candidate = below == rounds.begin() ? -1.0 : static_cast<double>(*std::prev(below));
    }
  }

 private:
  std::filesystem::path dir_;
  std::string name_ = "loco";
  std::optional<std::uint64_t> round_;
  bool enabled_ = false;
};

// Collective: runs load() on every rank; if it throws on any rank, every
// rank throws (the failing ones their own error), so no rank starts a run
// its peers have abandoned.
template <class Comm, class Load>
void load_on_every_rank(Comm& comm, const std::filesystem::path& path, Load&& load) {
  std::exception_ptr failure;
  try {
    load();
  } catch (...) {
    failure = std::current_exception();
  }
  double failed[1] = {failure ? static_cast<double>(comm.rank()) : -1.0};
  comm.allreduce(std::span<double>(failed), comm::reduce_op::max);
  if (failure) std::rethrow_exception(failure);
  if (failed[0] >= 0.0) {
    throw checkpoint_error(checkpoint_error::reason::io, path.string(), "peer",
                           "rank " + std::to_string(static_cast<int>(failed[0])) +
                               " could not load its checkpoint (its error says why)");
  }
}

}  // namespace loco::checkpoint
