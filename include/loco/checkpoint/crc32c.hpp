#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum of
// checkpoint files, as in iSCSI, ext4 and RocksDB. It detects every error
// burst of up to 32 bits, so every flipped byte. Slicing-by-8 tables
// (about 1 to 2 GB/s without special instructions); crc32c("123456789") is
// 0xE3069283.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace loco::checkpoint {

namespace detail {

inline constexpr std::uint32_t crc32c_polynomial = 0x82F63B78u;

constexpr std::array<std::array<std::uint32_t, 256>, 8> make_crc32c_tables() noexcept {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1u) ? crc32c_polynomial : 0u);
    t[0][i] = c;
  }
  for (std::size_t s = 1; s < 8; ++s) {
    for (std::size_t i = 0; i < 256; ++i) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xffu];
  }
  return t;
}

inline constexpr auto crc32c_tables = make_crc32c_tables();

}  // namespace detail

// Continues a running CRC-32C: crc32c(b, crc32c(a)) == crc32c(a followed by b).
inline std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept {
  const auto& t = detail::crc32c_tables;
  std::uint32_t c = ~crc;
  const std::byte* p = bytes.data();
  std::size_t n = bytes.size();
  const auto at = [&p](std::size_t i) { return static_cast<std::uint32_t>(p[i]); };
  while (n >= 8) {
    const std::uint32_t lo = c ^ (at(0) | at(1) << 8 | at(2) << 16 | at(3) << 24);
    c = t[7][lo & 0xffu] ^ t[6][(lo >> 8) & 0xffu] ^ t[5][(lo >> 16) & 0xffu] ^ t[4][lo >> 24] ^
        t[3][at(4)] ^ t[2][at(5)] ^ t[1][at(6)] ^ t[0][at(7)];
    p += 8;
    n -= 8;
  }
  for (std::size_t i = 0; i < n; ++i) c = (c >> 8) ^ t[0][(c ^ at(i)) & 0xffu];
  return ~c;
}

}  // namespace loco::checkpoint
