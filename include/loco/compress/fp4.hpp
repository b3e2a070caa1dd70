#pragma once
// fp4: 4-bit floats (e2m1: sign, 2 exponent bits, 1 mantissa bit; the
// magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6) with one scale per block of
// `block` entries, scale = max |v| / 6 over the block, each entry rounded to
// the nearest grid value (ties to the smaller magnitude). Streaming DiLoCo
// sends its outer gradients this way; the receiver decodes into T and
// accumulates there. 4 bits per entry plus sizeof(T) per block: 5 bits per
// entry at the default block of 32 with float.
// Neither unbiased nor contractive in the strict sense: each entry's error is
// at most |v_j| (0 is on the grid), so ||C(v) - v|| <= ||v||.
// docs/compressors.md#fp4
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <loco/compress/detail/common.hpp>
#include <loco/error.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>

namespace loco::compress {

class fp4 {
 public:
  static constexpr bool unbiased = false;
  static constexpr bool contractive = false;
  static constexpr const char* name = "fp4";
  static constexpr std::size_t max_block = std::size_t{1} << 20;

  explicit fp4(std::size_t block = 32) : block_(block) {
    if (block == 0 || block > max_block) {
      throw config_error("compress::fp4: block " + std::to_string(block) + " is outside [1, " +
                         std::to_string(max_block) + "]");
    }
  }
  std::size_t block() const noexcept { return block_; }

  template <class T>
  class state {
   public:
    state(const fp4&, std::size_t d, std::uint64_t /*stream*/)
        : d_(detail::checked_dimension(name, d)) {}
    std::size_t dimension() const noexcept { return d_; }

   private:
    std::size_t d_;
  };

  // The largest scale whose grid stays finite: 6 * scale must not overflow.
  template <class T>
  static T max_scale() noexcept {
    return std::nextafter(std::numeric_limits<T>::max() / T(6), T(0));
  }

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.dimension(), v.size());
    const std::size_t d = v.size(), blocks = block_count(d);
    const std::size_t start = out.size();
    out.reserve(start + wire_bytes<T>(d));
    wire::write_header(out, {wire::payload_kind::fp4, wire::value_type_of<T>(), 0,
                             static_cast<std::uint32_t>(d), wire_bytes<T>(d)});
    out.put<std::uint32_t>(static_cast<std::uint32_t>(block_));
    std::byte* scales = out.grow(blocks * sizeof(T)).data();
    std::byte* codes = out.grow(code_bytes(d)).data();
    std::fill(codes, codes + code_bytes(d), std::byte{0});
    for (std::size_t b = 0; b < blocks; ++b) {
      const std::size_t begin = b * block_, end = std::min(d, begin + block_);
      T amax = 0;
      bool finite = true;
      for (std::size_t j = begin; j < end; ++j) {
        finite = finite && tensor::is_finite(v[j]);
        amax = std::max(amax, std::abs(v[j]));
      }
      if (!finite) {
        out.resize(start);
        detail::check_finite(name, v);
      }
      const T scale = std::min(amax / T(6), max_scale<T>());
      wire::store_le(scales + b * sizeof(T), scale);
      if (scale == T(0)) continue;
      // Thresholds in v's units: 1 / scale overflows for subnormal scales.
      T limit[7];
      for (std::size_t k = 0; k < 7; ++k) limit[k] = midpoints<T>[k] * scale;
      for (std::size_t j = begin; j < end; ++j) {
        const std::uint8_t code = quantize(std::abs(v[j]), limit);
        const std::uint8_t sign = (code != 0 && std::signbit(v[j])) ? 0x8u : 0u;
        codes[j / 2] |= std::byte(
            static_cast<std::uint8_t>(static_cast<unsigned>(code | sign) << (4u * (j % 2u))));
      }
    }
  }

  // Reads one message and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.dimension(), out.size());
    const std::size_t d = out.size(), blocks = block_count(d);
    const auto h = wire::read_header(in, {wire::payload_kind::fp4, wire::value_type_of<T>(), d});
    const auto block = in.get<std::uint32_t>("block");
    if (block != block_) {
      in.fail("block", "message has blocks of " + std::to_string(block) +
                           " entries, the receiver's fp4 uses " + std::to_string(block_));
    }
    wire::check_length(in, h, wire_bytes<T>(d));
    const std::byte* scales = in.take(blocks * sizeof(T), "scales").data();
    const std::byte* codes = in.take(code_bytes(d), "codes").data();
    if (d % 2 == 1 && (std::to_integer<std::uint8_t>(codes[d / 2]) >> 4) != 0) {
      in.fail("codes", "padding bits are not zero");
    }
    // Every scale is checked before out is written: a bad message leaves it as it was.
    for (std::size_t b = 0; b < blocks; ++b) {
      const T scale = wire::load_le<T>(scales + b * sizeof(T));
      if (!(scale >= T(0) && scale <= max_scale<T>()) || std::signbit(scale)) {
        in.fail("scales", "block " + std::to_string(b) + " has scale " + std::to_string(scale) +
                              ", outside [+0, max / 6]");
      }
    }
    for (std::size_t b = 0; b < blocks; ++b) {
      const T scale = wire::load_le<T>(scales + b * sizeof(T));
      const std::size_t begin = b * block_, end = std::min(d, begin + block_);
      for (std::size_t j = begin; j < end; ++j) {
        const unsigned byte = std::to_integer<unsigned>(codes[j / 2]);
        const auto c = static_cast<std::uint8_t>((byte >> (4u * (j % 2u))) & 0xfu);
        const T m = scale * static_cast<T>(magnitudes[c & 0x7u]);
        out[j] = (c & 0x8u) ? -m : m;
      }
    }
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  // Header, block (u32), one scale (T) per block, d 4-bit codes.
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const noexcept {
    return wire::header_bytes + 4 + block_count(d) * sizeof(T) + code_bytes(d);
  }

  static constexpr std::array<float, 8> magnitudes = {0.0f, 0.5f, 1.0f, 1.5f,
                                                      2.0f, 3.0f, 4.0f, 6.0f};

 private:
  std::size_t block_count(std::size_t d) const noexcept { return (d + block_ - 1) / block_; }
  static std::size_t code_bytes(std::size_t d) noexcept { return (d + 1) / 2; }

  // The midpoints between neighbouring grid magnitudes.
  template <class T>
  static constexpr T midpoints[7] = {T(0.25), T(0.75), T(1.25), T(1.75), T(2.5), T(3.5), T(5)};

  // The nearest grid magnitude's index for |v| = a: the number of midpoints
  // (times the scale) below a.
  template <class T>
  static std::uint8_t quantize(T a, const T (&limit)[7]) noexcept {
    std::uint8_t code = 0;
    for (const T m : limit) code = static_cast<std::uint8_t>(code + (a > m ? 1 : 0));
    return code;
  }

  std::size_t block_;
};

}  // namespace loco::compress
