#pragma once
// natural: rounds |v_j| to one of its two neighbouring powers of two, up with
// probability (|v_j| - 2^e) / 2^e, so E C(v) = v; U(1/8). An entry travels as
// its sign (a sign plane, 1 bit) and the exponent of the result (8 bits for
// float, 16 for double): 9 bits per entry for fp32.
// Subnormals round to 0 or to the smallest normal, |v| >= 2^127 (2^1023 for
// double) rounds down to keep the result finite: the only (tiny) bias.
// docs/compressors.md#natural
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/compress/detail/common.hpp>
#include <loco/compress/detail/simd.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/dispatch.hpp>
#include <loco/wire/bit_pack.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <type_traits>

namespace loco::compress {

class natural {
 public:
  static constexpr bool unbiased = true;
  static constexpr bool contractive = false;
  static constexpr const char* name = "natural";
  static constexpr double omega = 1.0 / 8.0;

  explicit natural(std::uint64_t seed = 0) : seed_(seed) {}

  template <class T>
  class state {
   public:
    state(const natural& c, std::size_t d, std::uint64_t stream)
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
    friend class natural;
    std::size_t d_;
    detail::lane_rng rng_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.d_, v.size());
    const std::size_t d = v.size();
    const std::size_t start = out.size();
    const std::size_t total = wire_bytes<T>(d);
    out.reserve(start + total);
    wire::write_header(out, {wire::payload_kind::natural, wire::value_type_of<T>(), 0,
                             static_cast<std::uint32_t>(d), total});
    std::byte* signs = out.grow(wire::plane_bytes(d, 1)).data();
    std::byte* exps = out.grow(d * exp_width<T>).data();
    if (!tensor::vectorized([&] { return round_all(v, s.rng_, signs, exps); })) {
      out.resize(start);
      detail::check_finite(name, v);
    }
  }

  // Reads one message and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.d_, out.size());
    const std::size_t d = out.size();
    const auto h =
        wire::read_header(in, {wire::payload_kind::natural, wire::value_type_of<T>(), d});
    wire::check_length(in, h, wire_bytes<T>(d));
    const std::byte* signs = in.take(wire::plane_bytes(d, 1), "signs").data();
    const std::byte* exps = in.take(d * exp_width<T>, "exponents").data();
    const std::size_t bad = tensor::vectorized([&] { return expand_all(signs, exps, out); });
    if (bad == d + 1) in.fail("signs", "padding bits are not zero");
    if (bad != d) in.fail("exponents", "exponent out of range at index " + std::to_string(bad));
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  // Header, d sign bits, d exponents (u8 for float, u16 for double).
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const noexcept {
    return wire::header_bytes + wire::plane_bytes(d, 1) + d * exp_width<T>;
  }

 private:
  template <class T>
  using exp_t = std::conditional_t<sizeof(T) == 4, std::uint8_t, std::uint16_t>;
  template <class T>
  static constexpr std::size_t exp_width = sizeof(exp_t<T>);

  // Signs and rounded exponents of p[0..32) into a sign word and e[0..32).
  // Returns the OR of the entries' non-finite bits.
  template <class T>
  static auto round32(const T* p, const std::uint32_t* r, std::uint32_t& sign_word,
                      exp_t<T>* e) noexcept {
    using U = detail::bits_t<T>;
    constexpr int m = detail::float_bits<T>::mantissa;
    constexpr U top = (U{1} << detail::float_bits<T>::exp_bits) - 1;
    constexpr U mant_mask = (U{1} << m) - 1;
    sign_word = detail::sign_mask32(p);
    U flags = 0;
    for (std::size_t j = 0; j < 32; ++j) {
      const U bits = std::bit_cast<U>(p[j]);
      const U ex = (bits >> m) & top;
      U u;  // m uniform bits
      if constexpr (sizeof(T) == 4) {
        u = r[j] >> 9;
      } else {
        u = (static_cast<U>(r[j]) << 20) | (r[32 + j] >> 12);
      }
      flags |= detail::non_finite_bit(p[j]);
      U rounded = ex + static_cast<U>(u < (bits & mant_mask));
      rounded = rounded < top - 1 ? rounded : top - 1;
      e[j] = static_cast<exp_t<T>>(rounded);
    }
    return flags;
  }

  // Rounds every entry; returns false if any is Inf or NaN.
  template <class T>
  static bool round_all(std::span<const T> v, detail::lane_rng& state_rng, std::byte* signs,
                        std::byte* exps) noexcept {
    using E = exp_t<T>;
    const std::size_t d = v.size();
    const std::size_t blocks = d / 32, rest = d % 32;
    detail::lane_rng rng = state_rng;  // a local copy: no aliasing with the output bytes
    alignas(64) std::uint32_t r[64];
    alignas(64) E e[32];
    std::uint32_t sign_word = 0;
    decltype(detail::non_finite_bit(T{})) flags = 0;
    auto draw = [&] {
      rng.next(r);
      rng.next(r + 16);
      if constexpr (sizeof(T) == 8) {
        rng.next(r + 32);
        rng.next(r + 48);
      }
    };
    for (std::size_t k = 0; k < blocks; ++k) {
      draw();
      flags |= round32(v.data() + 32 * k, r, sign_word, e);
      wire::store_le(signs + 4 * k, sign_word);
      store_exps(exps + 32 * sizeof(E) * k, e, 32);
    }
    if (rest != 0) {
      alignas(64) T tail[32] = {};
      for (std::size_t j = 0; j < rest; ++j) tail[j] = v[32 * blocks + j];
      draw();
      flags |= round32(tail, r, sign_word, e);
      wire::write_tail_planes(signs + 4 * blocks, rest, 1, &sign_word);
      store_exps(exps + 32 * sizeof(E) * blocks, e, rest);
    }
    state_rng = rng;
    return !detail::has_non_finite(flags);
  }

  template <class E>
  static void store_exps(std::byte* out, const E* e, std::size_t n) noexcept {
    if constexpr (sizeof(E) == 1 || std::endian::native == std::endian::little) {
      std::memcpy(out, e, n * sizeof(E));
    } else {
      for (std::size_t j = 0; j < n; ++j) wire::store_le(out + sizeof(E) * j, e[j]);
    }
  }

  // Returns d if all is well, the index of the first Inf/NaN exponent, or
  // d + 1 for non-zero padding bits in the sign plane.
  template <class T>
  static std::size_t expand_all(const std::byte* signs, const std::byte* exps, std::span<T> out) {
    using U = detail::bits_t<T>;
    using E = exp_t<T>;
    constexpr int m = detail::float_bits<T>::mantissa;
    constexpr U top = (U{1} << detail::float_bits<T>::exp_bits) - 1;
    constexpr int sign_shift = sizeof(T) * 8 - 1;
    const std::size_t d = out.size();
    const std::size_t blocks = d / 32, rest = d % 32;
    U worst = 0;
    auto expand = [&](std::size_t base, std::uint32_t sign_word, std::size_t n) {
      T vals[32];
      E e[32] = {};
      std::memcpy(e, exps + sizeof(E) * base, n * sizeof(E));
      if constexpr (sizeof(E) > 1 && std::endian::native == std::endian::big) {
        for (std::size_t j = 0; j < n; ++j) e[j] = wire::load_le<E>(exps + sizeof(E) * (base + j));
      }
      for (std::size_t j = 0; j < 32; ++j) {
        const U ex = e[j];
        worst = worst > ex ? worst : ex;
        const U sign = (sign_word >> j) & 1u;
        vals[j] = std::bit_cast<T>(static_cast<U>((sign << sign_shift) | (ex << m)));
      }
      std::memcpy(out.data() + base, vals, n * sizeof(T));
    };
    for (std::size_t k = 0; k < blocks; ++k) {
      expand(32 * k, wire::load_le<std::uint32_t>(signs + 4 * k), 32);
    }
    if (rest != 0) {
      std::uint32_t sign_word = 0;
      if (!wire::read_tail_planes(signs + 4 * blocks, rest, 1, &sign_word)) return d + 1;
      expand(32 * blocks, sign_word, rest);
    }
    if (worst >= top) {
      for (std::size_t i = 0; i < d; ++i) {
        if (wire::load_le<E>(exps + sizeof(E) * i) >= top) return i;
      }
    }
    return d;
  }

  std::uint64_t seed_;
};

}  // namespace loco::compress
