#pragma once
// Little-endian load/store of fixed-width values. The wire is little-endian;
// on a big-endian host the bytes are swapped here and nowhere else.
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace loco::wire {

template <class T>
concept wire_scalar = std::is_arithmetic_v<T> && !std::same_as<T, bool> &&
                      (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);

namespace detail {
template <class U>
constexpr U byteswap(U v) noexcept {
  U r = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) {
    r = static_cast<U>((r << 8) | ((v >> (8 * i)) & 0xff));
  }
  return r;
}
template <std::size_t N>
struct uint_of_size;
template <>
struct uint_of_size<1> {
  using type = std::uint8_t;
};
template <>
struct uint_of_size<2> {
  using type = std::uint16_t;
};
template <>
struct uint_of_size<4> {
  using type = std::uint32_t;
};
template <>
struct uint_of_size<8> {
  using type = std::uint64_t;
};
}  // namespace detail

template <wire_scalar T>
inline void store_le(std::byte* dst, T value) noexcept {
  using U = typename detail::uint_of_size<sizeof(T)>::type;
  U bits = std::bit_cast<U>(value);
  if constexpr (std::endian::native == std::endian::big) bits = detail::byteswap(bits);
  std::memcpy(dst, &bits, sizeof(U));
}

template <wire_scalar T>
inline T load_le(const std::byte* src) noexcept {
  using U = typename detail::uint_of_size<sizeof(T)>::type;
  U bits;
  std::memcpy(&bits, src, sizeof(U));
  if constexpr (std::endian::native == std::endian::big) bits = detail::byteswap(bits);
  return std::bit_cast<T>(bits);
}

}  // namespace loco::wire
