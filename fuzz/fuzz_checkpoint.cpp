// Checkpoint files (include/loco/checkpoint/format.hpp and state.hpp): the
// parser a resume runs on a file from disk, and the section readers every
// driver uses on what it finds inside. Input:
//   u8 mode (bit 0: verify the CRC; without it the structure behind the CRC
//   is reached), u8 d for the compressor-state readers (1 + d % 64), then
//   the file's bytes.
// Invariants: only protocol_error (checkpoint_error is one) is thrown; every
// section lies inside the input; a parsed file written again from its header
// and sections gives the same bytes (the CRC too when it was verified).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/algorithm/detail/async_messages.hpp>
#include <loco/checkpoint/format.hpp>
#include <loco/checkpoint/state.hpp>
#include <loco/compress.hpp>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <optional>
#include <span>
#include <vector>

#include "common.hpp"

namespace {

namespace ckpt = loco::checkpoint;
namespace lc = loco::compress;
namespace wire = loco::wire;

// Runs one reader on a fresh view of the section; a protocol_error is a
// refusal, anything else escapes and is reported by libFuzzer.
template <class F>
void attempt(const ckpt::contents& c, ckpt::tag t, F&& read) {
  try {
    auto in = c.open(t);
    read(in);
  } catch (const loco::protocol_error&) {
  }
}

template <class S>
void read_state(const ckpt::contents& c, ckpt::tag t, S&& state) {
  attempt(c, t, [&](wire::view& in) { ckpt::get_state(in, state, "state"); });
}

void readers(const ckpt::contents& c, std::size_t d) {
  const std::size_t model =
      static_cast<std::size_t>(std::min<std::uint64_t>(c.head().dimension, 4096));
  for (const auto& s : c.sections()) {
    const auto t = s.id;
    attempt(c, t, [&](wire::view& in) {
      std::vector<float> x(model);
      wire::get_values<float>(in, x, "model");
      in.expect_end("model");
    });
    attempt(c, t, [&](wire::view& in) {
      std::vector<double> x(model);
      wire::get_values<double>(in, x, "moments");
      wire::get_values<double>(in, x, "moments");
    });
    attempt(c, t, [&](wire::view& in) {
      loco::random::stream rng;
      ckpt::get_stream(in, rng, "rng");
      (void)rng();
    });
    attempt(c, t, [&](wire::view& in) {
      const auto clock = ckpt::get_clock(in);
      if (clock) LOCO_FUZZ_CHECK(clock->time >= 0.0);
    });
    attempt(c, t, [&](wire::view& in) {
      const auto r = loco::algorithm::detail::read_async_checkpoint(in);
      LOCO_FUZZ_CHECK(r.dir.size() <= 4096 && r.name.size() <= 255);
    });
    attempt(c, t, [&](wire::view& in) {
      const auto job = loco::algorithm::detail::read_async_job<float>(in, model);
      if (job.abort) {
        LOCO_FUZZ_CHECK(job.model.empty() &&
                        job.reason.size() <= loco::algorithm::detail::async_abort_reason_limit);
      } else {  // a job, or a stop with the final model and the tail average
        LOCO_FUZZ_CHECK(job.model.size() == model * sizeof(float));
        if (job.stop) LOCO_FUZZ_CHECK(job.tail.size() == model * sizeof(float));
      }
    });
    read_state(c, t, lc::state_t<lc::qsgd, float>(lc::qsgd(4), d, 1));
    read_state(c, t, lc::state_t<lc::random_k, float>(lc::random_k(0.5), d, 1));
    read_state(c, t, lc::state_t<lc::ef21<lc::natural>, float>(lc::ef21(lc::natural()), d, 1));
    read_state(c, t,
               lc::state_t<lc::warmup<lc::error_feedback<lc::qsgd>>, double>(
                   lc::warmup(lc::error_feedback(lc::qsgd(2)), 3), d, 1));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader in(loco_fuzz::as_bytes(data, size));
  const bool verify = (in.u8() & 1u) != 0;
  const std::size_t d = 1 + in.u8() % 64;
  const auto file = in.rest();
  std::optional<ckpt::contents> c;
  try {
    c.emplace(ckpt::parse(file, "fuzz", verify));
  } catch (const loco::checkpoint_error&) {
    return 0;
  }
  const auto* lo = file.data();
  const auto* hi = file.data() + file.size();
  for (const auto& s : c->sections()) {
    LOCO_FUZZ_CHECK(s.bytes.data() >= lo && s.bytes.data() + s.bytes.size() <= hi);
  }
  // Written again, the file is the same bytes.
  ckpt::writer w(c->head());
  for (const auto& s : c->sections()) w.section(s.id, s.bytes);
  const auto again = w.finish();
  LOCO_FUZZ_CHECK(again.size() == file.size());
  const std::size_t compared = verify ? file.size() : file.size() - ckpt::trailer_bytes;
  LOCO_FUZZ_CHECK(std::memcmp(again.data(), file.data(), compared) == 0);
  readers(*c, d);
  return 0;
}
