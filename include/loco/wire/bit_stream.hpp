#pragma once
// Fields of w bits (1..32) packed back to back, least significant bit first,
// the last byte's unused high bits zero (docs/wire-format.md#bit-streams).
// For short runs of fixed-width fields (top_k_2bit's indices and codes);
// long vectors of codes use the bit planes of bit_pack.hpp.
#include <cstddef>
#include <cstdint>

namespace loco::wire {

// Bytes of n fields of w bits.
constexpr std::size_t bit_stream_bytes(std::size_t n, unsigned w) noexcept {
  return (n * w + 7) / 8;
}

class bit_writer {
 public:
  explicit bit_writer(std::byte* out) noexcept : out_(out) {}
  // x < 2^w.
  void put(std::uint32_t x, unsigned w) noexcept {
    acc_ |= std::uint64_t{x} << fill_;
    fill_ += w;
    while (fill_ >= 8) {
      *out_++ = static_cast<std::byte>(acc_ & 0xffu);
      acc_ >>= 8;
      fill_ -= 8;
    }
  }
  // Writes the last partial byte, if any.
  void finish() noexcept {
    if (fill_ != 0) *out_++ = static_cast<std::byte>(acc_ & 0xffu);
    acc_ = 0;
    fill_ = 0;
  }

 private:
  std::byte* out_;
  std::uint64_t acc_ = 0;
  unsigned fill_ = 0;  // < 8 between calls
};

// Reads only bytes that hold a requested bit: n fields of w bits read from
// a span of bit_stream_bytes(n, w) bytes never leave it.
class bit_reader {
 public:
  explicit bit_reader(const std::byte* in) noexcept : in_(in) {}
  std::uint32_t get(unsigned w) noexcept {
    while (fill_ < w) {
      acc_ |= std::uint64_t{static_cast<std::uint8_t>(*in_++)} << fill_;
      fill_ += 8;
    }
    const auto x = static_cast<std::uint32_t>(acc_ & ((std::uint64_t{1} << w) - 1u));
    acc_ >>= w;
    fill_ -= w;
    return x;
  }
  // True if the bits read but not returned (the last byte's padding) are zero.
  bool padding_is_zero() const noexcept { return acc_ == 0; }

 private:
  const std::byte* in_;
  std::uint64_t acc_ = 0;
  unsigned fill_ = 0;
};

}  // namespace loco::wire
