#pragma once
// The messages of async_sgd, written and parsed in one place so the parsing
// of untrusted bytes can be fuzzed on its own (fuzz/fuzz_async_messages.cpp):
//   job       server -> worker  [kind u8 = 1][version u64][x: d raw T]
//   stop      server -> worker  [kind u8 = 2][gather u8][x: d raw T][tail average: d raw T]
//   checkpoint server -> worker [kind u8 = 3][round u64][outstanding u64]
//                               [keep_last u64][dir: u32 n, n bytes][name: u32 n, n bytes]
//   abort     server -> worker  [kind u8 = 4][lost rank i32][reason: the rest, <= 4096 bytes]
//   gradient  worker -> server  [version u64][one compressor message]
// The final model travels in the stop message, point to point, so a world
// that lost a worker can still finish; `gather` (0 or 1) says whether every
// rank then takes part in the ledger's collective gather (only when none
// was lost).
// Values are little-endian (async_sgd requires a little-endian host).
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loco::algorithm::detail {

static_assert(std::endian::native == std::endian::little,
              "async_sgd sends models as raw little-endian values");

enum : std::uint8_t {
  async_kind_job = 1,
  async_kind_stop = 2,
  async_kind_checkpoint = 3,
  async_kind_abort = 4,
};
inline constexpr std::size_t async_abort_reason_limit = 4096;

template <class T>
void put_raw_vector(wire::buffer& b, std::span<const T> v) {
  b.append(v.data(), v.size() * sizeof(T));
}
template <class T>
std::vector<T> get_raw_vector(wire::view& in, std::size_t d, const char* field) {
  const auto bytes = in.take(d * sizeof(T), field);
  std::vector<T> v(d);
  if (d != 0) std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

template <class T>
void write_async_job(wire::buffer& msg, std::uint64_t version, std::span<const T> x) {
  msg.clear();
  msg.put<std::uint8_t>(async_kind_job);
  msg.put<std::uint64_t>(version);
  put_raw_vector<T>(msg, x);
}
template <class T>
void write_async_stop(wire::buffer& msg, bool gather, std::span<const T> x,
                      std::span<const T> tail) {
  msg.clear();
  msg.put<std::uint8_t>(async_kind_stop);
  msg.put<std::uint8_t>(gather ? 1 : 0);
  put_raw_vector<T>(msg, x);
  put_raw_vector<T>(msg, tail);
}
// The reason is cut to async_abort_reason_limit bytes.
inline void write_async_abort(wire::buffer& msg, std::int32_t lost_rank, std::string_view reason) {
  msg.clear();
  msg.put<std::uint8_t>(async_kind_abort);
  msg.put<std::int32_t>(lost_rank);
  const auto n = std::min(reason.size(), async_abort_reason_limit);
  msg.append(reason.data(), n);
}

// What the server sent a worker: a job, the stop with the final model, or
// an abort naming the worker whose loss ended the run.
struct async_job {
  bool stop = false;
  bool abort = false;
  std::uint64_t version = 0;         // job
  std::span<const std::byte> model;  // job: x; stop: the final x (d values of T)
  std::span<const std::byte> tail;   // stop: the tail average (d values of T)
  bool gather = false;               // stop: the ledgers are gathered next
  std::int32_t lost_rank = -1;       // abort
  std::string_view reason;           // abort
  bool is_job() const noexcept { return !stop && !abort; }
};

// Throws protocol_error for an unknown kind, a short model, a bad flag, an
// overlong reason or trailing bytes.
template <class T>
async_job read_async_job(wire::view& in, std::size_t d) {
  async_job job;
  const auto kind = in.get<std::uint8_t>("kind");
  if (kind == async_kind_stop) {
    job.stop = true;
    const auto gather = in.get<std::uint8_t>("gather");
    if (gather > 1) in.fail("gather", "not 0 or 1: " + std::to_string(gather));
    job.gather = gather == 1;
    job.model = in.take(d * sizeof(T), "final model");
    job.tail = in.take(d * sizeof(T), "tail average");
    in.expect_end("stop");
    return job;
  }
  if (kind == async_kind_abort) {
    job.abort = true;
    job.lost_rank = in.get<std::int32_t>("lost rank");
    const auto rest = in.rest();
    if (rest.size() > async_abort_reason_limit) {
      in.fail("reason", std::to_string(rest.size()) + " bytes exceed " +
                            std::to_string(async_abort_reason_limit));
    }
    job.reason = std::string_view(reinterpret_cast<const char*>(rest.data()), rest.size());
    (void)in.take(rest.size(), "reason");
    return job;
  }
  if (kind != async_kind_job) in.fail("kind", "unknown message kind " + std::to_string(kind));
  job.version = in.get<std::uint64_t>("version");
  job.model = in.take(d * sizeof(T), "model");
  in.expect_end("model");
  return job;
}

// A request to save a checkpoint after update `round`: the worker saves its
// state as it was before its `outstanding` newest jobs, at dir/name.
struct async_checkpoint_request {
  std::uint64_t round = 0;
  std::uint64_t outstanding = 0;
  std::uint64_t keep_last = 0;
  std::string dir;
  std::string name;
};

inline void write_async_checkpoint(wire::buffer& msg, const async_checkpoint_request& r) {
  msg.clear();
  msg.put<std::uint8_t>(async_kind_checkpoint);
  msg.put<std::uint64_t>(r.round);
  msg.put<std::uint64_t>(r.outstanding);
  msg.put<std::uint64_t>(r.keep_last);
  for (const std::string* s : {&r.dir, &r.name}) {
    msg.put<std::uint32_t>(static_cast<std::uint32_t>(s->size()));
    msg.append(s->data(), s->size());
  }
}

// Whether the message in `in` is a checkpoint request (it is not consumed).
inline bool is_async_checkpoint(const wire::view& in) noexcept {
  const auto rest = in.rest();
  return !rest.empty() && static_cast<std::uint8_t>(rest[0]) == async_kind_checkpoint;
}

// Parses a checkpoint request; throws protocol_error for a malformed one.
inline async_checkpoint_request read_async_checkpoint(wire::view& in) {
  async_checkpoint_request r;
  if (in.get<std::uint8_t>("kind") != async_kind_checkpoint) in.fail("kind", "not a checkpoint");
  r.round = in.get<std::uint64_t>("round");
  r.outstanding = in.get<std::uint64_t>("outstanding");
  r.keep_last = in.get<std::uint64_t>("keep last");
  const auto text = [&](std::string_view field, std::uint32_t limit) {
    const auto n = in.get<std::uint32_t>(field);
    if (n > limit) in.fail(field, std::to_string(n) + " bytes exceed " + std::to_string(limit));
    const auto b = in.take(n, field);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  };
  r.dir = text("dir", 4096);
  r.name = text("name", 255);
  in.expect_end("checkpoint request");
  return r;
}

// The version a gradient was computed at; a version after the server's
// current one is a protocol error. Leaves `in` at the compressor message.
inline std::uint64_t read_gradient_version(wire::view& in, std::uint64_t current) {
  const auto version = in.get<std::uint64_t>("version");
  if (version > current) in.fail("version", "from the future: " + std::to_string(version));
  return version;
}

}  // namespace loco::algorithm::detail
