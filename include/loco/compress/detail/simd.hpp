#pragma once
// The two bit-mask primitives the kernels need and compilers do not derive
// from plain loops: "sign bits of 32 entries" and "which of 32 entries have
// |x| >= t". On x86-64 they use SSE2 (always present) or AVX2 when the
// translation unit is compiled for it; elsewhere a plain loop.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#define LOCO_SIMD_AVX2 1
#elif defined(__SSE2__)
#include <emmintrin.h>
#define LOCO_SIMD_SSE2 1
#endif

namespace loco::compress::detail {

template <class T>
struct float_bits;
template <>
struct float_bits<float> {
  using type = std::uint32_t;
  static constexpr type abs_mask = 0x7fffffffu;
  static constexpr type exp_mask = 0x7f800000u;  // a key >= this is Inf or NaN
  static constexpr int mantissa = 23;
  static constexpr int exp_bits = 8;
};
template <>
struct float_bits<double> {
  using type = std::uint64_t;
  static constexpr type abs_mask = 0x7fffffffffffffffull;
  static constexpr type exp_mask = 0x7ff0000000000000ull;
  static constexpr int mantissa = 52;
  static constexpr int exp_bits = 11;
};
template <class T>
using bits_t = typename float_bits<T>::type;

// The magnitude key: |x| as an unsigned integer, ordered like |x| for every
// finite x and larger than every finite key for Inf and NaN.
template <class T>
inline bits_t<T> abs_key(T x) noexcept {
  return std::bit_cast<bits_t<T>>(x) & float_bits<T>::abs_mask;
}

// Bit j is the sign bit of p[j], j < 32.
inline std::uint32_t sign_mask32(const float* p) noexcept {
#if defined(LOCO_SIMD_AVX2)
  std::uint32_t m = 0;
  for (int j = 0; j < 4; ++j) {
    m |= static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_loadu_ps(p + 8 * j))) << (8 * j);
  }
  return m;
#elif defined(LOCO_SIMD_SSE2)
  std::uint32_t m = 0;
  for (int j = 0; j < 8; ++j) {
    m |= static_cast<std::uint32_t>(_mm_movemask_ps(_mm_loadu_ps(p + 4 * j))) << (4 * j);
  }
  return m;
#else
  std::uint32_t m = 0;
  for (unsigned j = 0; j < 32; ++j) m |= (std::bit_cast<std::uint32_t>(p[j]) >> 31) << j;
  return m;
#endif
}

inline std::uint32_t sign_mask32(const double* p) noexcept {
#if defined(LOCO_SIMD_AVX2)
  std::uint32_t m = 0;
  for (int j = 0; j < 8; ++j) {
    m |= static_cast<std::uint32_t>(_mm256_movemask_pd(_mm256_loadu_pd(p + 4 * j))) << (4 * j);
  }
  return m;
#elif defined(LOCO_SIMD_SSE2)
  std::uint32_t m = 0;
  for (int j = 0; j < 16; ++j) {
    m |= static_cast<std::uint32_t>(_mm_movemask_pd(_mm_loadu_pd(p + 2 * j))) << (2 * j);
  }
  return m;
#else
  std::uint32_t m = 0;
  for (unsigned j = 0; j < 32; ++j) {
    m |= static_cast<std::uint32_t>(std::bit_cast<std::uint64_t>(p[j]) >> 63) << j;
  }
  return m;
#endif
}

// Bit j is set when abs_key(p[j]) >= t, j < 32. t must be <= 2^31 - 1 for
// floats (every key is), so a signed compare is exact.
inline std::uint32_t key_ge_mask32(const float* p, std::uint32_t t) noexcept {
  const auto below = static_cast<std::int32_t>(t) - 1;  // key >= t  <=>  key > t - 1
#if defined(LOCO_SIMD_AVX2)
  const __m256i abs = _mm256_set1_epi32(0x7fffffff);
  const __m256i lim = _mm256_set1_epi32(below);
  std::uint32_t m = 0;
  for (int j = 0; j < 4; ++j) {
    const __m256i k =
        _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8 * j)), abs);
    m |= static_cast<std::uint32_t>(
             _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(k, lim))))
         << (8 * j);
  }
  return m;
#elif defined(LOCO_SIMD_SSE2)
  const __m128i abs = _mm_set1_epi32(0x7fffffff);
  const __m128i lim = _mm_set1_epi32(below);
  std::uint32_t m = 0;
  for (int j = 0; j < 8; ++j) {
    const __m128i k =
        _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4 * j)), abs);
    m |= static_cast<std::uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(k, lim))))
         << (4 * j);
  }
  return m;
#else
  std::uint32_t m = 0;
  for (unsigned j = 0; j < 32; ++j) {
    m |= static_cast<std::uint32_t>(static_cast<std::int32_t>(abs_key(p[j])) > below) << j;
  }
  return m;
#endif
}

inline std::uint32_t key_ge_mask32(const double* p, std::uint64_t t) noexcept {
  const auto below = static_cast<std::int64_t>(t) - 1;
#if defined(LOCO_SIMD_AVX2)
  const __m256i abs = _mm256_set1_epi64x(0x7fffffffffffffffll);
  const __m256i lim = _mm256_set1_epi64x(below);
  std::uint32_t m = 0;
  for (int j = 0; j < 8; ++j) {
    const __m256i k =
        _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4 * j)), abs);
    m |= static_cast<std::uint32_t>(
             _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(k, lim))))
         << (4 * j);
  }
  return m;
#else
  std::uint32_t m = 0;
  for (unsigned j = 0; j < 32; ++j) {
    m |= static_cast<std::uint32_t>(static_cast<std::int64_t>(abs_key(p[j])) > below) << j;
  }
  return m;
#endif
}

// Bit j is bit `bit` (0..7) of p[j], j < 32.
inline std::uint32_t byte_bit_mask32(const std::uint8_t* p, int bit) noexcept {
#if defined(LOCO_SIMD_AVX2)
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  // Moves bit `bit` of every byte to its bit 7 (16-bit shifts never carry a
  // lower byte's bit into the upper byte's bit 7).
  const __m256i s = _mm256_sll_epi16(v, _mm_cvtsi32_si128(7 - bit));
  return static_cast<std::uint32_t>(_mm256_movemask_epi8(s));
#elif defined(LOCO_SIMD_SSE2)
  const __m128i count = _mm_cvtsi32_si128(7 - bit);
  const __m128i a = _mm_sll_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), count);
  const __m128i b = _mm_sll_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)), count);
  return static_cast<std::uint32_t>(_mm_movemask_epi8(a)) |
         (static_cast<std::uint32_t>(_mm_movemask_epi8(b)) << 16);
#else
  std::uint32_t m = 0;
  for (unsigned j = 0; j < 32; ++j) m |= static_cast<std::uint32_t>((p[j] >> bit) & 1u) << j;
  return m;
#endif
}

}  // namespace loco::compress::detail
