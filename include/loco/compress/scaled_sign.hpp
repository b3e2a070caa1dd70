#pragma once
// scaled_sign: C(v) = (||v||_1 / d) sign(v), one bit per entry plus a scale.
// Biased and contractive: ||C(v) - v||^2 = ||v||^2 - ||v||_1^2 / d
// <= (1 - 1/d) ||v||^2. The sign of an entry is its sign bit, so +0 maps to
// +scale and -0 to -scale (the bound holds either way).
// docs/compressors.md#scaled_sign
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/compress/detail/common.hpp>
#include <loco/compress/detail/simd.hpp>
#include <loco/tensor/dispatch.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/bit_pack.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>

namespace loco::compress {

class scaled_sign {
 public:
  static constexpr bool unbiased = false;
  static constexpr bool contractive = true;
  static constexpr const char* name = "scaled_sign";

  template <class T>
  class state {
   public:
    state(const scaled_sign&, std::size_t d, std::uint64_t /*stream*/)
        : d_(detail::checked_dimension(name, d)) {}
    std::size_t dimension() const noexcept { return d_; }

   private:
    std::size_t d_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.dimension(), v.size());
    const std::size_t d = v.size();
    const std::size_t start = out.size();
    const std::size_t total = wire_bytes<T>(d);
    out.reserve(start + total);
    wire::write_header(out, {wire::payload_kind::scaled_sign, wire::value_type_of<T>(), 0,
                             static_cast<std::uint32_t>(d), total});
    const std::size_t scale_at = out.size();
    out.put<T>(T(0));
    std::byte* signs = out.grow(wire::plane_bytes(d, 1)).data();
    // One pass: sign bits 32 at a time, and ||v||_1 in 16 double lanes.
    const std::size_t blocks = d / 32, rest = d % 32;
    double acc[16] = {};
    auto block = [&acc](const T* p) {
      for (std::size_t j = 0; j < 16; ++j) acc[j] += std::abs(static_cast<double>(p[j]));
      for (std::size_t j = 0; j < 16; ++j) acc[j] += std::abs(static_cast<double>(p[16 + j]));
      return detail::sign_mask32(p);
    };
    tensor::vectorized([&] {
      for (std::size_t k = 0; k < blocks; ++k) {
        wire::store_le(signs + 4 * k, block(v.data() + 32 * k));
      }
      if (rest != 0) {
        alignas(64) T tail[32] = {};
        for (std::size_t j = 0; j < rest; ++j) tail[j] = v[32 * blocks + j];
        const std::uint32_t w = block(tail);
        wire::write_tail_planes(signs + 4 * blocks, rest, 1, &w);
      }
    });
    for (std::size_t h = 8; h > 0; h /= 2) {
      for (std::size_t j = 0; j < h; ++j) acc[j] += acc[j + h];
    }
    const double l1 = acc[0];
    double mean = d == 0 ? 0.0 : l1 / static_cast<double>(d);
    if (!std::isfinite(l1)) {
      const std::size_t bad = tensor::first_non_finite(v);
      if (bad != tensor::npos) {
        out.resize(start);
        detail::throw_non_finite(name, bad);
      }
      // Finite entries whose sum overflows a double: average without overflow.
      mean = 0;
      for (const T x : v) mean += std::abs(static_cast<double>(x)) / static_cast<double>(d);
    }
    const T scale = static_cast<T>(mean);
    out.put_at<T>(scale_at, scale);
  }

  // Reads one message and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.dimension(), out.size());
    const std::size_t d = out.size();
    const auto h =
        wire::read_header(in, {wire::payload_kind::scaled_sign, wire::value_type_of<T>(), d});
    const T scale = in.get<T>("scale");
    // The encoder writes +0 for a zero vector; -0 would decode to values it
    // never sends (and re-encode differently), so it is refused like any negative.
    if (!tensor::is_finite(scale) || std::signbit(scale))
      in.fail("scale", "scale must be finite and >= +0");
    wire::check_length(in, h, wire_bytes<T>(d));
    const std::byte* signs = in.take(wire::plane_bytes(d, 1), "signs").data();
    using U = detail::bits_t<T>;
    const U mag = std::bit_cast<U>(scale);
    constexpr int sign_shift = sizeof(T) * 8 - 1;
    auto expand = [&](std::size_t base, std::uint32_t w, std::size_t n) {
      T vals[32];
      for (std::size_t j = 0; j < 32; ++j) {
        vals[j] =
            std::bit_cast<T>(static_cast<U>(mag | (static_cast<U>((w >> j) & 1u) << sign_shift)));
      }
      std::memcpy(out.data() + base, vals, n * sizeof(T));
    };
    const std::size_t blocks = d / 32, rest = d % 32;
    tensor::vectorized([&] {
      for (std::size_t k = 0; k < blocks; ++k)
        expand(32 * k, wire::load_le<std::uint32_t>(signs + 4 * k), 32);
    });
    if (rest != 0) {
      std::uint32_t w = 0;
      if (!wire::read_tail_planes(signs + 4 * blocks, rest, 1, &w)) {
        in.fail("signs", "padding bits are not zero");
      }
      expand(32 * blocks, w, rest);
    }
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  // Header, scale (T), d sign bits.
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const noexcept {
    return wire::header_bytes + sizeof(T) + wire::plane_bytes(d, 1);
  }
};

}  // namespace loco::compress
