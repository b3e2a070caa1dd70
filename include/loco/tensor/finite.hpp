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

template <class T>
constexpr bool is_finite(T x) noexcept {
  static_assert(std::is_floating_point_v<T>);
  if constexpr (sizeof(T) == 4) {
    return (std::bit_cast<std::uint32_t>(x) & 0x7f800000u) != 0x7f800000u;
  } else {
    return (std::bit_cast<std::uint64_t>(x) & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
  }
}

// Index of the first NaN or Inf in v, or npos. Scans in blocks so the common
// all-finite case is a branch-free loop the compiler vectorises.
template <class T>
std::size_t first_non_finite(std::span<const T> v) noexcept {
  constexpr std::size_t block = 256;
  const std::size_t d = v.size();
  for (std::size_t start = 0; start < d; start += block) {
    const std::size_t end = start + block < d ? start + block : d;
    bool bad = false;
    for (std::size_t i = start; i < end; ++i) bad |= !is_finite(v[i]);
    if (bad) {
      for (std::size_t i = start; i < end; ++i) {
        if (!is_finite(v[i])) return i;
      }
    }
  }
  return npos;
}

}  // namespace loco::tensor
