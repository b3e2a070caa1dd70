#pragma once
// The fixed frame header of comm::tcp (docs/communicators.md#tcp-framing-and-handshake).
// Every message on an established link is one header followed by `length`
// payload bytes. The header is parsed with a bounds-checked wire::view, so a
// bad field becomes a loco::protocol_error naming the peer and the field
// before any payload is read.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/endian.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loco::comm::detail::tcp {

inline constexpr std::uint32_t frame_magic = 0x4f434f4cu;  // "LOCO" on the wire
inline constexpr std::size_t header_bytes = 24;

enum class frame_type : std::uint8_t {
  data = 1,        // a user point-to-point message; tag = user tag, sub = 0
  collective = 2,  // a piece of a collective; tag = collective sequence, sub = step
  goodbye = 3,     // the sender closes its communicator; length 0
  abort = 4,       // the sender's world failed: i32 rank + reason text
  table = 5,       // the coordinator's address table (rendezvous only)
  heartbeat = 6,   // the sender is alive (engine_heartbeat.hpp); length 0
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
  if (type < 1 || type > 6) v.fail("frame.type", "unknown frame type " + std::to_string(type));
  const auto flags = v.get<std::uint8_t>("frame.flags");
  const auto reserved = v.get<std::uint16_t>("frame.reserved");
  if (flags != 0 || reserved != 0) v.fail("frame.flags", "reserved bits must be zero");
  frame_header h;
  h.type = static_cast<frame_type>(type);
  h.tag = v.get<std::int32_t>("frame.tag");
  h.sub = v.get<std::uint32_t>("frame.sub");
  h.length = v.get<std::uint64_t>("frame.length");
  const std::uint64_t limit = h.type == frame_type::goodbye || h.type == frame_type::heartbeat ? 0
                              : h.type == frame_type::abort ? max_abort_bytes
                                                            : max_length;
  if (h.length > limit) {
    v.fail("frame.length", "length " + std::to_string(h.length) + " exceeds the maximum " +
                               std::to_string(limit) + " for this frame type");
  }
  if (h.type == frame_type::data && h.sub != 0) v.fail("frame.sub", "must be 0 in a data frame");
  return h;
}

// The payload of an abort frame: i32 rank the sender blames, then the
// reason as text (cut to fit max_abort_bytes).
struct abort_note {
  std::int32_t rank = -1;
  std::string reason;
};

inline wire::buffer encode_abort(const abort_note& n) {
  wire::buffer note;
  note.put<std::int32_t>(n.rank);
  note.append(n.reason.data(), std::min(n.reason.size(), max_abort_bytes - 4));
  return note;
}

inline abort_note decode_abort(std::span<const std::byte> payload, std::string_view peer) {
  wire::view v(payload, peer);
  abort_note n;
  n.rank = v.get<std::int32_t>("abort.rank");
  const auto reason = v.rest();
  n.reason.assign(reinterpret_cast<const char*>(reason.data()), reason.size());
  return n;
}

// The coordinator's address table: u32 count, then per rank u8 family
// (4 or 6), 16 address bytes (an IPv4 address in the first 4), u16 port.
struct table_entry {
  std::uint8_t family = 4;
  std::array<unsigned char, 16> address{};
  std::uint16_t port = 0;
};
inline constexpr std::size_t table_entry_bytes = 1 + 16 + 2;

inline wire::buffer encode_table(std::span<const table_entry> entries) {
  wire::buffer t;
  t.put(static_cast<std::uint32_t>(entries.size()));
  for (const auto& e : entries) {
    t.put(e.family);
    t.append(e.address.data(), e.address.size());
    t.put(e.port);
  }
  return t;
}

// Throws protocol_error(peer, field, ...) unless the table has exactly
// world_size entries of a known family and nothing after them.
inline std::vector<table_entry> decode_table(std::span<const std::byte> body, std::string_view peer,
                                             int world_size) {
  wire::view v(body, peer);
  if (v.get<std::uint32_t>("table.count") != static_cast<std::uint32_t>(world_size)) {
    v.fail("table.count", "does not match the world size " + std::to_string(world_size));
  }
  std::vector<table_entry> table;
  for (int q = 0; q < world_size; ++q) {
    table_entry e;
    e.family = v.get<std::uint8_t>("table.family");
    const auto raw = v.take(16, "table.address");
    e.port = v.get<std::uint16_t>("table.port");
    std::copy(raw.begin(), raw.end(), reinterpret_cast<std::byte*>(e.address.data()));
    if (e.family != 4 && e.family != 6) {
      v.fail("table.family", "must be 4 or 6, got " + std::to_string(e.family));
    }
    table.push_back(e);
  }
  v.expect_end("table");
  return table;
}

}  // namespace loco::comm::detail::tcp
