#pragma once
// The header every compressed payload starts with (docs/wire-format.md).
//
//   offset  size  field
//   0       1     kind        payload_kind: which compressor wrote the message
//   1       1     version     payload_version (1)
//   2       1     value_type  how values travel: fp32, fp64, fp16 or bf16
//   3       1     flags       kind-specific bits; unknown bits must be zero
//   4       4     d           length of the vector (u32)
//   8       8     length      total bytes of this message, header included (u64)
//   16      ...   kind-specific parameters, then the body
//
// All fields are little-endian. A message carries its own length, so messages
// can be concatenated in one buffer; a decoder reads exactly one and leaves
// the view positioned after it.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <string>
#include <string_view>

namespace loco::wire {

enum class payload_kind : std::uint8_t {
  identity = 1,
  fp16 = 2,
  bf16 = 3,
  top_k = 4,
  random_k = 5,
  qsgd = 6,
  scaled_sign = 7,
  natural = 8,
  fp4 = 9,
  per_tensor = 10,  // one inner message per tensor of a layout
  top_k_2bit = 11,
};

inline constexpr std::uint8_t payload_version = 1;
inline constexpr std::size_t header_bytes = 16;

enum class value_type : std::uint8_t { fp32 = 1, fp64 = 2, fp16 = 3, bf16 = 4 };

template <class T>
constexpr value_type value_type_of() noexcept {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "loco: values are float or double");
  return sizeof(T) == 4 ? value_type::fp32 : value_type::fp64;
}

constexpr std::string_view to_string(payload_kind k) noexcept {
  switch (k) {
    case payload_kind::identity:
      return "identity";
    case payload_kind::fp16:
      return "fp16";
    case payload_kind::bf16:
      return "bf16";
    case payload_kind::top_k:
      return "top_k";
    case payload_kind::random_k:
      return "random_k";
    case payload_kind::qsgd:
      return "qsgd";
    case payload_kind::scaled_sign:
      return "scaled_sign";
    case payload_kind::natural:
      return "natural";
    case payload_kind::fp4:
      return "fp4";
    case payload_kind::per_tensor:
      return "per_tensor";
    case payload_kind::top_k_2bit:
      return "top_k_2bit";
  }
  return "unknown";
}

constexpr std::string_view to_string(value_type v) noexcept {
  switch (v) {
    case value_type::fp32:
      return "fp32";
    case value_type::fp64:
      return "fp64";
    case value_type::fp16:
      return "fp16";
    case value_type::bf16:
      return "bf16";
  }
  return "unknown";
}

struct payload_header {
  payload_kind kind{};
  value_type values{};
  std::uint8_t flags = 0;
  std::uint32_t d = 0;
  std::uint64_t length = 0;  // whole message, header included
};

// Appends the 16 header bytes.
inline void write_header(buffer& out, const payload_header& h) {
  out.put<std::uint8_t>(static_cast<std::uint8_t>(h.kind));
  out.put<std::uint8_t>(payload_version);
  out.put<std::uint8_t>(static_cast<std::uint8_t>(h.values));
  out.put<std::uint8_t>(h.flags);
  out.put<std::uint32_t>(h.d);
  out.put<std::uint64_t>(h.length);
}

// The kind of the next message in `in`, without consuming it (decorators use
// it to tell a dense message from their inner compressor's).
inline payload_kind peek_kind(const view& in) {
  view probe = in;
  return static_cast<payload_kind>(probe.get<std::uint8_t>("kind"));
}

// What a receiver expects of a header.
struct header_expectation {
  payload_kind kind;
  value_type values;
  std::size_t d;               // the receiver's vector length
  std::uint8_t flag_mask = 0;  // flag bits the kind defines
};

// Reads and validates a header. Each failure is a protocol_error naming the
// field: kind, version, value_type, flags, d or length (length is checked
// against the bytes left here; against d, k, s by check_length below).
inline payload_header read_header(view& in, const header_expectation& e) {
  payload_header h;
  const auto kind = in.get<std::uint8_t>("kind");
  if (kind != static_cast<std::uint8_t>(e.kind)) {
    in.fail("kind", "expected " + std::string(to_string(e.kind)) + " (" +
                        std::to_string(static_cast<int>(e.kind)) + "), got " +
                        std::string(to_string(static_cast<payload_kind>(kind))) + " (" +
                        std::to_string(kind) + ")");
  }
  h.kind = e.kind;
  const auto version = in.get<std::uint8_t>("version");
  if (version != payload_version) {
    in.fail("version", "format version " + std::to_string(version) + " is not supported (this is " +
                           std::to_string(payload_version) + ")");
  }
  const auto values = in.get<std::uint8_t>("value_type");
  if (values != static_cast<std::uint8_t>(e.values)) {
    in.fail("value_type", "values are " + std::string(to_string(static_cast<value_type>(values))) +
                              " (" + std::to_string(values) + "), the receiver decodes " +
                              std::string(to_string(e.values)));
  }
  h.values = e.values;
  h.flags = in.get<std::uint8_t>("flags");
  if ((h.flags & ~e.flag_mask) != 0) {
    in.fail("flags", "unknown flag bits " + std::to_string(h.flags & ~e.flag_mask));
  }
  h.d = in.get<std::uint32_t>("d");
  if (h.d != e.d) {
    in.fail("d", "message has d = " + std::to_string(h.d) + ", the receiver's vector has " +
                     std::to_string(e.d));
  }
  h.length = in.get<std::uint64_t>("length");
  if (h.length < header_bytes || h.length - header_bytes > in.remaining()) {
    in.fail("length", "message length " + std::to_string(h.length) + " does not fit: " +
                          std::to_string(in.remaining()) + " bytes follow the header");
  }
  return h;
}

// The length field must equal what d, k or s imply.
inline void check_length(const view& in, const payload_header& h, std::size_t expected) {
  if (h.length != expected) {
    in.fail("length", "header says " + std::to_string(h.length) +
                          " bytes, d = " + std::to_string(h.d) + " and the parameters imply " +
                          std::to_string(expected));
  }
}

}  // namespace loco::wire
