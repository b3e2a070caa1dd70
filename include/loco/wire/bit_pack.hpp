#pragma once
// Bit planes on the wire (docs/wire-format.md#bit-planes).
//
// A vector of d codes of B bits each (qsgd's level-and-sign codes; B = 1 for
// a sign plane) travels in blocks of 32 entries. A full block is B
// little-endian u32 words; word b holds bit b of the 32 codes (bit i of the
// word is bit b of the code of entry i of the block). A final block of
// r < 32 entries stores each of its B planes in ceil(r / 8) bytes, the
// unused high bits zero. For B = 1 this is the plain LSB-first bitmap.
//
// Planes make packing and unpacking a few SIMD operations per 32 entries
// (a movemask per plane to pack, a table lookup per byte to unpack) instead
// of shifting codes across byte boundaries one at a time.
#include <array>
#include <cstddef>
#include <cstdint>
#include <loco/wire/endian.hpp>

namespace loco::wire {

// Bytes of d codes of B bits.
constexpr std::size_t plane_bytes(std::size_t d, unsigned bits) noexcept {
  return bits * (4 * (d / 32) + (d % 32 + 7) / 8);
}

// Byte i of spread_byte[x] is bit i of x: expands 8 plane bits into 8 bytes.
inline constexpr std::array<std::uint64_t, 256> spread_byte = [] {
  std::array<std::uint64_t, 256> t{};
  for (std::uint64_t x = 0; x < 256; ++x) {
    std::uint64_t w = 0;
    for (unsigned i = 0; i < 8; ++i) w |= ((x >> i) & 1u) << (8 * i);
    t[x] = w;
  }
  return t;
}();

// The planes of the final partial block of r entries: reads B planes of
// ceil(r / 8) bytes into 32-bit words (high bits zero). Returns false if a
// padding bit is set.
inline bool read_tail_planes(const std::byte* in, std::size_t r, unsigned bits,
                             std::uint32_t* planes) noexcept {
  const std::size_t nb = (r + 7) / 8;
  bool ok = true;
  for (unsigned b = 0; b < bits; ++b) {
    std::uint32_t w = 0;
    for (std::size_t i = 0; i < nb; ++i) w |= static_cast<std::uint32_t>(in[b * nb + i]) << (8 * i);
    ok &= (w >> r) == 0;
    planes[b] = w;
  }
  return ok;
}

inline void write_tail_planes(std::byte* out, std::size_t r, unsigned bits,
                              const std::uint32_t* planes) noexcept {
  const std::size_t nb = (r + 7) / 8;
  const std::uint32_t mask = r == 32 ? ~0u : ((1u << r) - 1u);
  for (unsigned b = 0; b < bits; ++b) {
    const std::uint32_t w = planes[b] & mask;
    for (std::size_t i = 0; i < nb; ++i)
      out[b * nb + i] = static_cast<std::byte>((w >> (8 * i)) & 0xffu);
  }
}

// Calls f.template operator()<B>() with B = bits (1..16) as a constant, so a
// runtime width picks a kernel unrolled for it.
template <class F>
decltype(auto) with_bits(unsigned bits, F&& f) {
  switch (bits) {
    case 1:
      return f.template operator()<1>();
    case 2:
      return f.template operator()<2>();
    case 3:
      return f.template operator()<3>();
    case 4:
      return f.template operator()<4>();
    case 5:
      return f.template operator()<5>();
    case 6:
      return f.template operator()<6>();
    case 7:
      return f.template operator()<7>();
    case 8:
      return f.template operator()<8>();
    case 9:
      return f.template operator()<9>();
    case 10:
      return f.template operator()<10>();
    case 11:
      return f.template operator()<11>();
    case 12:
      return f.template operator()<12>();
    case 13:
      return f.template operator()<13>();
    case 14:
      return f.template operator()<14>();
    case 15:
      return f.template operator()<15>();
    default:
      return f.template operator()<16>();
  }
}

}  // namespace loco::wire
