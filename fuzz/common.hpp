#pragma once
// Shared by the fuzz targets and the seed-corpus generator: the layout of
// each target's input (a few bytes choosing the configuration, then the
// untrusted bytes) and an invariant check that libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <loco/wire/buffer.hpp>
#include <span>
#include <vector>

// Unlike assert(), active in every build type.
#define LOCO_FUZZ_CHECK(cond)                                                           \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace loco_fuzz {

inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) noexcept {
  return {reinterpret_cast<const std::byte*>(data), size};
}

// Reads the configuration prefix of an input; missing bytes read as zero,
// so every input, even an empty one, selects some configuration.
class prefix_reader {
 public:
  explicit prefix_reader(std::span<const std::byte> in) noexcept : in_(in) {}
  std::uint8_t u8() noexcept {
    if (pos_ >= in_.size()) {
      ++pos_;
      return 0;
    }
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  std::uint16_t u16() noexcept {
    const std::uint16_t lo = u8();
    return static_cast<std::uint16_t>(lo | (u8() << 8));
  }
  std::uint32_t u32() noexcept {
    const std::uint32_t lo = u16();
    return lo | (static_cast<std::uint32_t>(u16()) << 16);
  }
  // Everything after the prefix.
  std::span<const std::byte> rest() const noexcept {
    return pos_ >= in_.size() ? std::span<const std::byte>() : in_.subspan(pos_);
  }

 private:
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
};

// Writes a prefix for the corpus generator, mirroring prefix_reader.
inline void put_u8(std::vector<std::byte>& out, std::uint8_t v) { out.push_back(std::byte{v}); }
inline void put_u16(std::vector<std::byte>& out, std::uint16_t v) {
  put_u8(out, static_cast<std::uint8_t>(v & 0xffu));
  put_u8(out, static_cast<std::uint8_t>(v >> 8));
}
inline void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  put_u16(out, static_cast<std::uint16_t>(v & 0xffffu));
  put_u16(out, static_cast<std::uint16_t>(v >> 16));
}
inline void put_bytes(std::vector<std::byte>& out, std::span<const std::byte> b) {
  out.insert(out.end(), b.begin(), b.end());
}

}  // namespace loco_fuzz
