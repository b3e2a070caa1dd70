// async_sgd's messages (include/loco/algorithm/detail/async_messages.hpp):
// what a worker parses (a job, the stop with the final model, an abort) and
// the version prefix of a gradient the server
// parses (the compressor message after it is fuzz_compress's). Input:
//   u8 which (even: job, odd: gradient), u8 float/double, u16 d (1 + d % 256),
//   u64 the server's current version (gradient only), then the message.
// Invariants: only protocol_error is thrown; an accepted message is
// rewritten byte for byte from what was parsed; an accepted version is <= current and
// leaves the view 8 bytes in.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/algorithm/detail/async_messages.hpp>
#include <loco/error.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <vector>

#include "common.hpp"

namespace {

namespace wire = loco::wire;
namespace ad = loco::algorithm::detail;

template <class T>
void fuzz_job(std::size_t d, std::span<const std::byte> msg) {
  wire::view in(msg, "fuzz");
  ad::async_job job;
  try {
    job = ad::read_async_job<T>(in, d);
  } catch (const loco::protocol_error&) {
    return;
  }
  wire::buffer again;
  LOCO_FUZZ_CHECK(in.remaining() == 0);
  if (job.abort) {
    LOCO_FUZZ_CHECK(job.reason.size() <= ad::async_abort_reason_limit);
    ad::write_async_abort(again, job.lost_rank, job.reason);
  } else {
    LOCO_FUZZ_CHECK(job.model.size() == d * sizeof(T));
    std::vector<T> x(d), tail(d);
    std::memcpy(x.data(), job.model.data(), job.model.size());
    if (job.stop) {
      LOCO_FUZZ_CHECK(job.tail.size() == d * sizeof(T));
      std::memcpy(tail.data(), job.tail.data(), job.tail.size());
      ad::write_async_stop<T>(again, job.gather, std::span<const T>(x), std::span<const T>(tail));
    } else {
      ad::write_async_job<T>(again, job.version, std::span<const T>(x));
    }
  }
  LOCO_FUZZ_CHECK(again.size() == msg.size());
  LOCO_FUZZ_CHECK(std::memcmp(again.data(), msg.data(), msg.size()) == 0);
}

void fuzz_gradient(std::uint64_t current, std::span<const std::byte> msg) {
  wire::view in(msg, "fuzz");
  std::uint64_t version = 0;
  try {
    version = ad::read_gradient_version(in, current);
  } catch (const loco::protocol_error&) {
    return;
  }
  LOCO_FUZZ_CHECK(version <= current);
  LOCO_FUZZ_CHECK(in.position() == 8);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader in(loco_fuzz::as_bytes(data, size));
  const bool job = in.u8() % 2 == 0;
  const bool use_double = in.u8() % 2 == 1;
  const std::size_t d = 1 + in.u16() % 256;
  if (job) {
    if (use_double) {
      fuzz_job<double>(d, in.rest());
    } else {
      fuzz_job<float>(d, in.rest());
    }
  } else {
    const std::uint64_t current = in.u32() | (std::uint64_t{in.u32()} << 32);
    fuzz_gradient(current, in.rest());
  }
  return 0;
}
