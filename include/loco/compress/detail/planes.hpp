#pragma once
// Packing 32 codes into B bit planes and back (layout: wire/bit_pack.hpp).
// Codes are given as their low bytes `lo` and, for B > 8, high bytes `hi`.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/compress/detail/simd.hpp>
#include <loco/wire/bit_pack.hpp>
#include <loco/wire/endian.hpp>

namespace loco::compress::detail {

// planes[b] = bit b of the 32 codes.
template <unsigned B>
inline void to_planes(const std::uint8_t* lo, const std::uint8_t* hi,
                      std::uint32_t* planes) noexcept {
  for (unsigned b = 0; b < B && b < 8; ++b) planes[b] = byte_bit_mask32(lo, static_cast<int>(b));
  for (unsigned b = 8; b < B; ++b) planes[b] = byte_bit_mask32(hi, static_cast<int>(b - 8));
}

// The inverse: lo[i] (and hi[i]) from the B planes of 32 codes.
template <unsigned B>
inline void from_planes(const std::uint32_t* planes, std::uint8_t* lo, std::uint8_t* hi) noexcept {
  for (unsigned g = 0; g < 4; ++g) {
    std::uint64_t l = 0, h = 0;
    for (unsigned b = 0; b < B && b < 8; ++b)
      l |= wire::spread_byte[(planes[b] >> (8 * g)) & 0xffu] << b;
    for (unsigned b = 8; b < B; ++b)
      h |= wire::spread_byte[(planes[b] >> (8 * g)) & 0xffu] << (b - 8);
    wire::store_le(reinterpret_cast<std::byte*>(lo + 8 * g), l);
    if constexpr (B > 8) wire::store_le(reinterpret_cast<std::byte*>(hi + 8 * g), h);
  }
}

template <unsigned B>
inline void store_planes(std::byte* out, const std::uint32_t* planes) noexcept {
  for (unsigned b = 0; b < B; ++b) wire::store_le(out + 4 * b, planes[b]);
}

template <unsigned B>
inline void load_planes(const std::byte* in, std::uint32_t* planes) noexcept {
  for (unsigned b = 0; b < B; ++b) planes[b] = wire::load_le<std::uint32_t>(in + 4 * b);
}

}  // namespace loco::compress::detail
