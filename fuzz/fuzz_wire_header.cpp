// The payload header every compressed message starts with
// (wire::read_header, check_length, peek_kind) and the bit-plane tails that
// qsgd, scaled_sign and natural unpack (wire::read_tail_planes). Input:
//   u8 mode (even: header, odd: tail planes)
//   header:  u8 kind, u8 value_type, u8 flag_mask, u32 d, then the message
//   planes:  u8 r (1 + r % 31 entries: a tail is shorter than a block), u8 bits (1 + bits % 16),
//   then planes
// Invariants: only protocol_error is thrown; an accepted header has exactly
// the expected fields and a length that fits, and leaves the view at byte
// 16; accepted planes written back reproduce the input bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/error.hpp>
#include <loco/wire/bit_pack.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>

#include "common.hpp"

namespace {

namespace wire = loco::wire;

void fuzz_header(loco_fuzz::prefix_reader& prefix) {
  wire::header_expectation e{};
  e.kind = static_cast<wire::payload_kind>(prefix.u8());
  e.values = static_cast<wire::value_type>(prefix.u8());
  e.flag_mask = prefix.u8();
  e.d = prefix.u32();
  const auto msg = prefix.rest();
  wire::view in(msg, "fuzz");
  wire::payload_header h;
  try {
    h = wire::read_header(in, e);
  } catch (const loco::protocol_error& x) {
    LOCO_FUZZ_CHECK(!x.field().empty());
    return;
  }
  LOCO_FUZZ_CHECK(in.position() == wire::header_bytes);
  LOCO_FUZZ_CHECK(h.kind == e.kind && h.values == e.values && h.d == e.d);
  LOCO_FUZZ_CHECK((h.flags & ~e.flag_mask) == 0);
  LOCO_FUZZ_CHECK(h.length >= wire::header_bytes && h.length <= msg.size());
  LOCO_FUZZ_CHECK(wire::peek_kind(wire::view(msg)) == e.kind);
  // What the reader accepted, written again, is the same 16 bytes.
  wire::buffer again;
  wire::write_header(again, h);
  LOCO_FUZZ_CHECK(again.size() == wire::header_bytes);
  LOCO_FUZZ_CHECK(std::memcmp(again.data(), msg.data(), wire::header_bytes) == 0);
  // check_length accepts exactly the header's own length.
  wire::check_length(in, h, static_cast<std::size_t>(h.length));
  try {
    wire::check_length(in, h, static_cast<std::size_t>(h.length) + 1);
    LOCO_FUZZ_CHECK(false);
  } catch (const loco::protocol_error& x) {
    LOCO_FUZZ_CHECK(x.field() == "length");
  }
}

void fuzz_planes(loco_fuzz::prefix_reader& prefix) {
  const std::size_t r = 1 + prefix.u8() % 31;
  const unsigned bits = 1 + prefix.u8() % 16u;
  const auto body = prefix.rest();
  const std::size_t need = wire::plane_bytes(r, bits);
  LOCO_FUZZ_CHECK(need == bits * ((r + 7) / 8));
  if (body.size() < need) return;
  std::uint32_t planes[16] = {};
  const bool ok = wire::read_tail_planes(body.data(), r, bits, planes);
  std::byte out[64] = {};
  wire::write_tail_planes(out, r, bits, planes);
  // Written back, the planes equal the input exactly when no padding bit was set.
  LOCO_FUZZ_CHECK(ok == (std::memcmp(out, body.data(), need) == 0));
  for (unsigned b = 0; b < bits; ++b) {
    if (ok) LOCO_FUZZ_CHECK((planes[b] >> r) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader prefix(loco_fuzz::as_bytes(data, size));
  if (prefix.u8() % 2 == 0) {
    fuzz_header(prefix);
  } else {
    fuzz_planes(prefix);
  }
  return 0;
}
