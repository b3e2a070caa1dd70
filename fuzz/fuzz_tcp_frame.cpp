// comm::tcp's frame parsing (include/loco/comm/tcp/frame.hpp): the 24-byte
// frame header every message on a link starts with, and the payloads the
// engine itself parses: an abort note and the coordinator's address table.
// Input: u8 world size (1 + w % 64), u32 max_message_bytes, then a frame
// header and its payload.
// Invariants: only protocol_error is thrown, naming the field; an accepted
// header is re-encoded byte for byte and respects the length limit of its
// type; an accepted abort note or table is re-encoded byte for byte (a
// table has exactly world-size entries).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/comm/tcp/frame.hpp>
#include <loco/error.hpp>
#include <span>

#include "common.hpp"

namespace {

namespace tcp = loco::comm::detail::tcp;

bool same(const loco::wire::buffer& b, std::span<const std::byte> s) {
  return b.size() == s.size() && (s.empty() || std::memcmp(b.data(), s.data(), s.size()) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader in(loco_fuzz::as_bytes(data, size));
  const int world = 1 + in.u8() % 64;
  const std::uint64_t max_length = in.u32();
  const auto rest = in.rest();
  if (rest.size() < tcp::header_bytes) return 0;
  const std::span<const std::byte, tcp::header_bytes> head(rest.data(), tcp::header_bytes);
  const auto payload = rest.subspan(tcp::header_bytes);

  tcp::frame_header h;
  try {
    h = tcp::decode_header(head, "fuzz", max_length);
  } catch (const loco::protocol_error& e) {
    LOCO_FUZZ_CHECK(e.field().rfind("frame.", 0) == 0);
    return 0;
  }
  const auto again = tcp::encode_header(h);
  LOCO_FUZZ_CHECK(std::memcmp(again.data(), head.data(), tcp::header_bytes) == 0);
  LOCO_FUZZ_CHECK(h.type != tcp::frame_type::goodbye || h.length == 0);
  LOCO_FUZZ_CHECK(h.type != tcp::frame_type::abort || h.length <= tcp::max_abort_bytes);
  LOCO_FUZZ_CHECK(h.type == tcp::frame_type::goodbye || h.type == tcp::frame_type::abort ||
                  h.length <= max_length);
  LOCO_FUZZ_CHECK(h.type != tcp::frame_type::data || h.sub == 0);

  // The engine reads exactly `length` payload bytes.
  if (payload.size() < h.length) return 0;
  const auto body = payload.first(static_cast<std::size_t>(h.length));
  if (h.type == tcp::frame_type::abort) {
    tcp::abort_note note;
    try {
      note = tcp::decode_abort(body, "fuzz");
    } catch (const loco::protocol_error& e) {
      LOCO_FUZZ_CHECK(body.size() < 4 && e.field() == "abort.rank");
      return 0;
    }
    LOCO_FUZZ_CHECK(note.reason.size() + 4 == body.size());
    LOCO_FUZZ_CHECK(same(tcp::encode_abort(note), body));
  } else if (h.type == tcp::frame_type::table) {
    std::vector<tcp::table_entry> table;
    try {
      table = tcp::decode_table(body, "fuzz", world);
    } catch (const loco::protocol_error& e) {
      LOCO_FUZZ_CHECK(e.field().rfind("table", 0) == 0);
      return 0;
    }
    LOCO_FUZZ_CHECK(table.size() == static_cast<std::size_t>(world));
    LOCO_FUZZ_CHECK(body.size() == 4 + tcp::table_entry_bytes * table.size());
    LOCO_FUZZ_CHECK(same(tcp::encode_table(table), body));
  }
  return 0;
}
