#pragma once
// The fixed frame header of comm::tcp (docs/communicators.md#tcp-framing-and-handshake).
// Every message on an established link is one header followed by `length`
// payload bytes. The header is parsed with a bounds-checked wire::view, so a
// bad field becomes a loco::protocol_error naming the peer and the field
// before any payload is read.
#include <array>
#include <cstddef>
#include <cstdint>
#include <loco/error.hpp>
#include <loco/wire/endian.hpp>
#include <loco/wire/view.hpp>
#include <string>
#include <string_view>

namespace loco::comm::detail::tcp {

inline constexpr std::uint32_t frame_magic = 0x4f434f4cu;  // "LOCO" on the wire
inline constexpr std::size_t header_bytes = 24;

enum class frame_type : std::uint8_t {
  data = 1,        // a user point-to-point message; tag = user tag, sub = 0
  collective = 2,  // a piece of a collective; tag = collective sequence, sub = step
  goodbye = 3,     // the sender closes its communicator; length 0
  abort = 4,       // the sender's world failed: i32 rank + reason text
  table = 5,       // the coordinator's address table (rendezvous only)
};
inline constexpr std::size_t max_abort_bytes = 4096;

struct frame_header {
  frame_type type = frame_type::data;
  std::int32_t tag = 0;
  std::uint32_t sub = 0;
  std::uint64_t length = 0;
};

// Layout: u32 magic, u8 type, u8 flags (0), u16 reserved (0), i32 tag,
// u32 sub, u64 length; little-endian.
inline std::array<std::byte, header_bytes> encode_header(const frame_header& h) noexcept {
  std::array<std::byte, header_bytes> out{};
  wire::store_le(out.data(), frame_magic);
  wire::store_le(out.data() + 4, static_cast<std::uint8_t>(h.type));
  wire::store_le(out.data() + 5, std::uint8_t{0});
  wire::store_le(out.data() + 6, std::uint16_t{0});
  wire::store_le(out.data() + 8, h.tag);
  wire::store_le(out.data() + 12, h.sub);
  wire::store_le(out.data() + 16, h.length);
  return out;
}

// Throws protocol_error(peer, field, ...) for a wrong magic, an unknown type,
// non-zero reserved bits or a length above max_length.
inline frame_header decode_header(std::span<const std::byte, header_bytes> bytes,
                                  std::string_view peer, std::uint64_t max_length) {
  wire::view v(bytes, peer);
  const auto magic = v.get<std::uint32_t>("frame.magic");
  if (magic != frame_magic)
    v.fail("frame.magic", "expected 0x4f434f4c, got " + std::to_string(magic));
  const auto type = v.get<std::uint8_t>("frame.type");
  if (type < 1 || type > 5) v.fail("frame.type", "unknown frame type " + std::to_string(type));
  const auto flags = v.get<std::uint8_t>("frame.flags");
  const auto reserved = v.get<std::uint16_t>("frame.reserved");
  if (flags != 0 || reserved != 0) v.fail("frame.flags", "reserved bits must be zero");
  frame_header h;
  h.type = static_cast<frame_type>(type);
  h.tag = v.get<std::int32_t>("frame.tag");
  h.sub = v.get<std::uint32_t>("frame.sub");
  h.length = v.get<std::uint64_t>("frame.length");
  const std::uint64_t limit = h.type == frame_type::goodbye ? 0
                              : h.type == frame_type::abort ? max_abort_bytes
                                                            : max_length;
  if (h.length > limit) {
    v.fail("frame.length", "length " + std::to_string(h.length) + " exceeds the maximum " +
                               std::to_string(limit) + " for this frame type");
  }
  if (h.type == frame_type::data && h.sub != 0) v.fail("frame.sub", "must be 0 in a data frame");
  return h;
}

}  // namespace loco::comm::detail::tcp
