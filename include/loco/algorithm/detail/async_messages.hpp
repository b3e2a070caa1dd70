#pragma once
// The messages of async_sgd, written and parsed in one place so the parsing
// of untrusted bytes can be fuzzed on its own (fuzz/fuzz_async_messages.cpp):
//   job       server -> worker  [kind u8 = 1][version u64][x: d raw T]
//   stop      server -> worker  [kind u8 = 2]
//   checkpoint server -> worker [kind u8 = 3][round u64][outstanding u64]
//                               [keep_last u64][dir: u32 n, n bytes][name: u32 n, n bytes]
//   gradient  worker -> server  [version u64][one compressor message]
//   final     server -> all     [x: d raw T][tail average: d raw T]
// Values are little-endian (async_sgd requires a little-endian host).
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string_view>
#include <string>
#include <vector>

namespace loco::algorithm::detail {

static_assert(std::endian::native == std::endian::little,
              "async_sgd sends models as raw little-endian values");

enum : std::uint8_t { async_kind_job = 1, async_kind_stop = 2, async_kind_checkpoint = 3 };

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
inline void write_async_stop(wire::buffer& msg) {
  msg.clear();
  msg.put<std::uint8_t>(async_kind_stop);
}

struct async_job {
  bool stop = false;
  std::uint64_t version = 0;
  std::span<const std::byte> model;  // d values of T, within the message
};

// A job or a stop; throws protocol_error for an unknown kind, a short model
// or trailing bytes.
template <class T>
async_job read_async_job(wire::view& in, std::size_t d) {
  async_job job;
  const auto kind = in.get<std::uint8_t>("kind");
  if (kind == async_kind_stop) {
    job.stop = true;
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
