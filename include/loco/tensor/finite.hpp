#pragma once
// Finding NaN and Inf fast: a value is non-finite exactly when its exponent
// bits are all ones, which an integer compare tests without FP exceptions.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>

namespace loco::tensor {

inline constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

namespace detail {
// The 32 bits holding T's exponent (a double's high word), and the exponent
// bits in them: all ones exactly for NaN and Inf.
template <class T>
constexpr std::uint32_t exponent_word(T x) noexcept {
  static_assert(std::is_floating_point_v<T> && (sizeof(T) == 4 || sizeof(T) == 8));
  if constexpr (sizeof(T) == 4) {
    return std::bit_cast<std::uint32_t>(x);
  } else {
    return static_cast<std::uint32_t>(std::bit_cast<std::uint64_t>(x) >> 32);
  }
}
template <class T>
inline constexpr std::uint32_t exponent_bits = sizeof(T) == 4 ? 0x7f800000u : 0x7ff00000u;
}  // namespace detail

template <class T>
constexpr bool is_finite(T x) noexcept {
  return (detail::exponent_word(x) & detail::exponent_bits<T>) != detail::exponent_bits<T>;
}

// 1 for NaN or Inf, else 0, for loops that accumulate "any non-finite" in
// an integer: GCC leaves a `bool |=` reduction scalar, and the whole loop
// with it.
template <class T>
constexpr std::uint32_t non_finite_flag(T x) noexcept {
  return static_cast<std::uint32_t>((detail::exponent_word(x) & detail::exponent_bits<T>) ==
                                    detail::exponent_bits<T>);
}

// Index of the first NaN or Inf in v, or npos. Scans in blocks so the common
// all-finite case is a branch-free loop the compiler vectorises (in 32-bit
// integers: a bool reduction made this check cost as much as an SGD step).
template <class T>
std::size_t first_non_finite(std::span<const T> v) noexcept {
  constexpr std::size_t block = 256;
  const std::size_t d = v.size();
  for (std::size_t start = 0; start < d; start += block) {
    const std::size_t end = start + block < d ? start + block : d;
    std::uint32_t bad = 0;
    for (std::size_t i = start; i < end; ++i) bad |= non_finite_flag(v[i]);
    if (bad != 0) {
      for (std::size_t i = start; i < end; ++i) {
        if (!is_finite(v[i])) return i;
      }
    }
  }
  return npos;
}

}  // namespace loco::tensor
