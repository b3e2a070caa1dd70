#pragma once
// qsgd(s): stochastic rounding of s|v_j|/||v||_2 to the levels 0..s, with the
// sign and the norm: C(v)_j = ||v||_2 sign(v_j) xi_j / s. Unbiased,
// U(min(d/s^2, sqrt(d)/s)). Each entry travels as a (bit_width(s) + 1)-bit
// code: level in the low bits, sign in the top bit.
// docs/compressors.md#qsgd
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <loco/compress/detail/common.hpp>
#include <loco/compress/detail/planes.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/dispatch.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/bit_pack.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <type_traits>

namespace loco::compress {

class qsgd {
 public:
  static constexpr bool unbiased = true;
  static constexpr bool contractive = false;
  static constexpr const char* name = "qsgd";
  static constexpr std::uint32_t max_levels = 32767;

  // s levels above zero, 1 <= s <= 32767; seed for the rounding.
  explicit qsgd(std::uint32_t s, std::uint64_t seed = 0) : s_(s), seed_(seed) {
    if (s < 1 || s > max_levels) {
      throw config_error("compress::qsgd: s = " + std::to_string(s) + " is outside [1, 32767]");
    }
  }
  std::uint32_t levels() const noexcept { return s_; }
  // Bits per entry: the level, plus one for the sign.
  unsigned code_bits() const noexcept { return static_cast<unsigned>(std::bit_width(s_)) + 1; }
  // The variance bound omega of U(omega) for length d.
  double omega(std::size_t d) const noexcept {
    const double dd = static_cast<double>(d), ss = static_cast<double>(s_);
    return std::min(dd / (ss * ss), std::sqrt(dd) / ss);
  }

  template <class T>
  class state {
   public:
    state(const qsgd& c, std::size_t d, std::uint64_t stream)
        : d_(detail::checked_dimension(name, d)) {
      random::stream seeder(c.seed_, stream);
      rng_.seed(seeder);
    }
    std::size_t dimension() const noexcept { return d_; }
    // The RNG position, for checkpoints.
    void save(wire::buffer& out) const {
      out.put<std::uint64_t>(d_);
      rng_.save(out);
    }
    void restore(wire::view& in) {
      detail::restore_dimension(in, name, d_);
      rng_.restore(in);
    }

   private:
    friend class qsgd;
    std::size_t d_;
    detail::lane_rng rng_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.d_, v.size());
    const double norm = tensor::vectorized([v] { return detail::norm2(v); });
    if (!std::isfinite(norm)) detail::check_finite(name, v);
    // A norm beyond T's range (float entries near FLT_MAX) saturates.
    const T norm_t =
        static_cast<T>(std::min(norm, static_cast<double>(std::numeric_limits<T>::max())));
    const std::size_t d = s.d_;
    const std::size_t total = wire_bytes<T>(d);
    out.reserve(out.size() + total);
    wire::write_header(out, {wire::payload_kind::qsgd, wire::value_type_of<T>(), 0,
                             static_cast<std::uint32_t>(d), total});
    out.put<std::uint32_t>(s_);
    out.put<T>(norm_t);
    std::byte* body = out.grow(wire::plane_bytes(d, code_bits())).data();
    // Quantise against the norm the receiver will see, so E C(v) = v holds for it.
    // For a norm below T's smallest normal, s / norm overflows: scale the
    // entries up by a power of two first (exact), and the norm with them.
    const bool tiny = norm_t > T(0) && norm_t < std::numeric_limits<T>::min();
    const T pre = tiny ? T(0x1.0p64) : T(1);
    const T inv = norm_t > T(0) ? static_cast<T>(s_) / (norm_t * pre) : T(0);
    wire::with_bits(code_bits(), [&]<unsigned B>() {
      tensor::vectorized([&] { quantize<B>(v, s.rng_, pre, inv, body); });
    });
  }

  // Reads one message and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.d_, out.size());
    const std::size_t d = out.size();
    const auto h = wire::read_header(in, {wire::payload_kind::qsgd, wire::value_type_of<T>(), d});
    const std::uint32_t levels = in.get<std::uint32_t>("s");
    if (levels != s_) {
      in.fail("s", "message has s = " + std::to_string(levels) + ", the receiver expects " +
                       std::to_string(s_));
    }
    const T norm = in.get<T>("norm");
    if (!tensor::is_finite(norm) || std::signbit(norm)) {
      in.fail("norm", "norm must be finite and >= +0");
    }
    wire::check_length(in, h, wire_bytes<T>(d));
    const std::byte* body = in.take(wire::plane_bytes(d, code_bits()), "codes").data();
    const T scale = norm / static_cast<T>(s_);
    const std::size_t bad = wire::with_bits(code_bits(), [&]<unsigned B>() {
      return tensor::vectorized([&] { return dequantize<B>(body, scale, out); });
    });
    if (bad == d + 1) in.fail("codes", "padding bits are not zero");
    if (bad != d) {
      in.fail("codes", "level out of range at index " + std::to_string(bad) +
                           " (s = " + std::to_string(s_) + ")");
    }
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  // Header, s (u32), norm (T), d codes of bit_width(s) + 1 bits in bit planes.
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const noexcept {
    return wire::header_bytes + 4 + sizeof(T) + wire::plane_bytes(d, code_bits());
  }

 private:
  // The codes of entries p[0..32): level in the low bits, the entry's sign
  // bit on top. Stochastic rounding as floor(a + u), u uniform in [0, 1)
  // with 24 random bits: P(level = floor(a) + 1) = frac(a). The sum is
  // clamped at s, which only ever catches rounding (a <= s).
  template <unsigned B, class T>
  void codes32(const T* p, const std::uint32_t* r, T pre, T inv, std::uint8_t* lo,
               std::uint8_t* hi) const noexcept {
    using U = detail::bits_t<T>;
    using I = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
    constexpr int sign_shift = sizeof(T) * 8 - 1;
    const T top = static_cast<T>(s_);
    for (std::size_t j = 0; j < 32; ++j) {
      const U bits = std::bit_cast<U>(p[j]);
      const T a =
          std::bit_cast<T>(static_cast<U>(bits & detail::float_bits<T>::abs_mask)) * pre * inv;
      const T u = static_cast<T>(static_cast<std::int32_t>(r[j] >> 8)) * T(0x1.0p-24);
      const T y = a + u;
      const auto level = static_cast<I>(y < top ? y : top);
      const I code = level | static_cast<I>((bits >> (sign_shift - static_cast<int>(B - 1))) &
                                            (U{1} << (B - 1)));
      lo[j] = static_cast<std::uint8_t>(code & 0xff);
      if constexpr (B > 8) hi[j] = static_cast<std::uint8_t>((code >> 8) & 0xff);
    }
  }

  template <unsigned B, class T>
  void quantize(std::span<const T> v, detail::lane_rng& state_rng, T pre, T inv,
                std::byte* out) const {
    const std::size_t d = v.size();
    const std::size_t blocks = d / 32, rest = d % 32;
    detail::lane_rng rng = state_rng;  // a local copy: no aliasing with the output bytes
    alignas(64) std::uint32_t r[32];
    alignas(64) std::uint8_t lo[32] = {}, hi[32] = {};
    std::uint32_t planes[B];
    for (std::size_t k = 0; k < blocks; ++k) {
      rng.next(r);
      rng.next(r + 16);
      codes32<B>(v.data() + 32 * k, r, pre, inv, lo, hi);
      detail::to_planes<B>(lo, hi, planes);
      detail::store_planes<B>(out + 4 * B * k, planes);
    }
    if (rest != 0) {
      alignas(64) T tail[32] = {};
      for (std::size_t j = 0; j < rest; ++j) tail[j] = v[32 * blocks + j];
      rng.next(r);
      rng.next(r + 16);
      codes32<B>(tail, r, pre, inv, lo, hi);
      detail::to_planes<B>(lo, hi, planes);
      wire::write_tail_planes(out + 4 * B * blocks, rest, B, planes);
    }
    state_rng = rng;
  }

  // Returns d if all is well, the index of the first level above s, or d + 1
  // for non-zero padding bits.
  template <unsigned B, class T>
  std::size_t dequantize(const std::byte* in, T scale, std::span<T> out) const {
    using U = detail::bits_t<T>;
    constexpr std::uint32_t level_mask = (1u << (B - 1)) - 1u;
    constexpr int sign_shift = sizeof(T) * 8 - 1;
    const std::size_t d = out.size();
    const std::size_t blocks = d / 32, rest = d % 32;
    alignas(64) std::uint8_t lo[32] = {}, hi[32] = {};
    std::uint32_t planes[B];
    std::size_t bad = d;
    auto expand = [&](std::size_t base, std::size_t n) {
      T vals[32];
      std::uint32_t worst = 0;
      for (std::size_t j = 0; j < 32; ++j) {
        const std::uint32_t code =
            B > 8 ? (lo[j] | (static_cast<std::uint32_t>(hi[j]) << 8)) : lo[j];
        const std::uint32_t level = code & level_mask;
        worst = worst > level ? worst : level;
        const T mag = static_cast<T>(static_cast<std::int32_t>(level)) * scale;
        vals[j] = std::bit_cast<T>(static_cast<U>(std::bit_cast<U>(mag) |
                                                  (static_cast<U>(code >> (B - 1)) << sign_shift)));
      }
      std::memcpy(out.data() + base, vals, n * sizeof(T));
      if (worst > s_ && bad == d) {
        for (std::size_t j = 0; j < n; ++j) {
          if ((lo[j] & level_mask) > s_ ||
              (B > 8 && ((lo[j] | (static_cast<std::uint32_t>(hi[j]) << 8)) & level_mask) > s_)) {
            bad = base + j;
            break;
          }
        }
      }
    };
    for (std::size_t k = 0; k < blocks; ++k) {
      detail::load_planes<B>(in + 4 * B * k, planes);
      detail::from_planes<B>(planes, lo, hi);
      expand(32 * k, 32);
    }
    if (rest != 0) {
      if (!wire::read_tail_planes(in + 4 * B * blocks, rest, B, planes)) return d + 1;
      detail::from_planes<B>(planes, lo, hi);
      expand(32 * blocks, rest);
    }
    return bad;
  }

  std::uint32_t s_;
  std::uint64_t seed_;
};

}  // namespace loco::compress
