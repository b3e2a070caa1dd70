#pragma once
// The dense codecs behind identity, fp16 and bf16: one value per entry, in
// T's own width or cast to 16 bits. Encode checks finiteness block by block
// while converting, so the input is read once.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/compress/detail/common.hpp>
#include <loco/tensor/dispatch.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string_view>

namespace loco::compress::detail {

// fp32 -> fp16 bits, round to nearest even, saturating at +-65504 (finite
// input). Branch-free so the loop vectorises (after F. Giesen's
// float_to_half_fast3_rtne).
inline std::uint16_t to_fp16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t a = x & 0x7fffffffu;
  constexpr std::uint32_t denorm_magic = 126u << 23;  // 0.5f: ulp 2^-24 = half's subnormal step
  const float sub = std::bit_cast<float>(a) + std::bit_cast<float>(denorm_magic);
  const std::uint32_t hs = std::bit_cast<std::uint32_t>(sub) - denorm_magic;
  const std::uint32_t hn = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  // Selects written as masks (a < 2^31 and h < 2^31: signed compares are
  // exact), so the loop vectorises even with SSE2.
  const std::uint32_t small =
      0u - static_cast<std::uint32_t>(static_cast<std::int32_t>(a) <
                                      static_cast<std::int32_t>(113u << 23));
  std::uint32_t h = (hs & small) | (hn & ~small);
  const std::uint32_t big = 0u - static_cast<std::uint32_t>(static_cast<std::int32_t>(h) >
                                                            static_cast<std::int32_t>(0x7bffu));
  h = (0x7bffu & big) | (h & ~big);
  return static_cast<std::uint16_t>(h | sign);
}

inline float from_fp16(std::uint16_t h) noexcept {
  const std::uint32_t hv = h;
  const std::uint32_t o = ((hv & 0x7fffu) << 13) + (112u << 23);
  const float sub = std::bit_cast<float>(o + (1u << 23)) - std::bit_cast<float>(113u << 23);
  const std::uint32_t zero_exp = 0u - static_cast<std::uint32_t>((hv & 0x7c00u) == 0);
  const std::uint32_t r = (std::bit_cast<std::uint32_t>(sub) & zero_exp) | (o & ~zero_exp);
  return std::bit_cast<float>(r | ((hv & 0x8000u) << 16));
}

inline bool fp16_is_finite(std::uint16_t h) noexcept { return (h & 0x7c00u) != 0x7c00u; }

// fp32 -> bf16 bits, round to nearest even, saturating at the largest finite
// bf16 (finite input).
inline std::uint16_t to_bf16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t a = x & 0x7fffffffu;
  std::uint32_t h = (a + 0x7fffu + ((a >> 16) & 1u)) >> 16;
  const std::uint32_t big = 0u - static_cast<std::uint32_t>(static_cast<std::int32_t>(h) >
                                                            static_cast<std::int32_t>(0x7f7fu));
  h = (0x7f7fu & big) | (h & ~big);
  return static_cast<std::uint16_t>(h | ((x >> 16) & 0x8000u));
}

inline float from_bf16(std::uint16_t h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

inline bool bf16_is_finite(std::uint16_t h) noexcept { return (h & 0x7f80u) != 0x7f80u; }

// The value formats: how one entry of type T is written and read.
template <class T>
struct native_format {
  static constexpr std::size_t width = sizeof(T);
  static constexpr wire::value_type code = wire::value_type_of<T>();
  static void encode(const T* in, std::size_t n, std::byte* out) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(out, in, n * sizeof(T));
    } else {
      for (std::size_t i = 0; i < n; ++i) wire::store_le(out + i * sizeof(T), in[i]);
    }
  }
  // Returns the index of the first non-finite value, or n.
  static std::size_t decode(const std::byte* in, std::size_t n, T* out) noexcept {
    decltype(non_finite_bit(T{})) flags = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const T x = wire::load_le<T>(in + i * sizeof(T));
      flags |= non_finite_bit(x);
      out[i] = x;
    }
    if (!has_non_finite(flags)) return n;
    return tensor::first_non_finite(std::span<const T>(out, n));
  }
};

template <class T, std::uint16_t (*To)(float), float (*From)(std::uint16_t),
          bool (*Finite)(std::uint16_t), wire::value_type Code>
struct half_format {
  static constexpr std::size_t width = 2;
  static constexpr wire::value_type code = Code;
  // Through a local array: the conversion loop then stores to memory no
  // other pointer can alias, and vectorises.
  static void encode(const T* in, std::size_t n, std::byte* out) noexcept {
    constexpr std::size_t chunk = 256;
    alignas(64) std::uint16_t tmp[chunk];
    for (std::size_t c = 0; c < n; c += chunk) {
      const std::size_t m = n - c < chunk ? n - c : chunk;
      for (std::size_t i = 0; i < m; ++i) tmp[i] = To(static_cast<float>(in[c + i]));
      if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(out + 2 * c, tmp, 2 * m);
      } else {
        for (std::size_t i = 0; i < m; ++i) wire::store_le(out + 2 * (c + i), tmp[i]);
      }
    }
  }
  static std::size_t decode(const std::byte* in, std::size_t n, T* out) noexcept {
    constexpr std::size_t chunk = 256;
    alignas(64) std::uint16_t tmp[chunk];
    std::uint32_t bad = 0;
    for (std::size_t c = 0; c < n; c += chunk) {
      const std::size_t m = n - c < chunk ? n - c : chunk;
      if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(tmp, in + 2 * c, 2 * m);
      } else {
        for (std::size_t i = 0; i < m; ++i) tmp[i] = wire::load_le<std::uint16_t>(in + 2 * (c + i));
      }
      for (std::size_t i = 0; i < m; ++i) {
        bad |= static_cast<std::uint32_t>(!Finite(tmp[i]));
        out[c + i] = static_cast<T>(From(tmp[i]));
      }
    }
    if (bad == 0) return n;
    for (std::size_t i = 0; i < n; ++i) {
      if (!Finite(wire::load_le<std::uint16_t>(in + 2 * i))) return i;
    }
    return n;
  }
};

template <class T>
using fp16_format = half_format<T, to_fp16, from_fp16, fp16_is_finite, wire::value_type::fp16>;
template <class T>
using bf16_format = half_format<T, to_bf16, from_bf16, bf16_is_finite, wire::value_type::bf16>;

inline constexpr std::size_t dense_block = 2048;

// Header, then d values in Format. Throws non_finite_error, with out back
// at its size before the call, on the first block holding Inf or NaN.
template <class Format, class T>
void dense_encode(std::string_view name, wire::payload_kind kind, std::span<const T> v,
                  wire::buffer& out) {
  const std::size_t d = v.size();
  const std::size_t start = out.size();
  const std::size_t total = wire::header_bytes + d * Format::width;
  out.reserve(start + total);
  wire::write_header(out, {kind, Format::code, 0, static_cast<std::uint32_t>(d), total});
  std::byte* body = out.grow(d * Format::width).data();
  // Block by block: a non-finite entry stops the encode before its block.
  const bool finite = tensor::vectorized([&] {
    for (std::size_t b = 0; b < d; b += dense_block) {
      const std::size_t n = b + dense_block < d ? dense_block : d - b;
      const T* p = v.data() + b;
      decltype(non_finite_bit(T{})) flags = 0;
      for (std::size_t i = 0; i < n; ++i) flags |= non_finite_bit(p[i]);
      if (has_non_finite(flags)) return false;
      Format::encode(p, n, body + b * Format::width);
    }
    return true;
  });
  if (!finite) {
    out.resize(start);
    check_finite(name, v);
  }
}

template <class Format, class T>
void dense_decode(wire::payload_kind kind, wire::view& in, std::span<T> out) {
  const std::size_t d = out.size();
  const auto h = wire::read_header(in, {kind, Format::code, d});
  wire::check_length(in, h, wire::header_bytes + d * Format::width);
  const auto body = in.take(d * Format::width, "values");
  const std::size_t bad =
      tensor::vectorized([&] { return Format::decode(body.data(), d, out.data()); });
  if (bad != d) in.fail("values", "non-finite value at index " + std::to_string(bad));
}

}  // namespace loco::compress::detail

namespace loco::compress::detail {

// The compressors that send every entry, differing only in the value format
// (identity, fp16, bf16). Spec gives the format, payload kind, name and
// traits; the public classes derive from this and add nothing.
template <class Spec>
class dense_cast {
 public:
  static constexpr bool unbiased = Spec::unbiased;
  static constexpr bool contractive = Spec::contractive;
  static constexpr bool lossless = Spec::lossless;
  static constexpr const char* name = Spec::name;

  // Nothing depends on the vector but its length.
  template <class T>
  class state {
   public:
    state(const dense_cast&, std::size_t d, std::uint64_t /*stream*/)
        : d_(checked_dimension(name, d)) {}
    std::size_t dimension() const noexcept { return d_; }

   private:
    std::size_t d_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    check_encode_size(name, s.dimension(), v.size());
    dense_encode<typename Spec::template format<T>>(name, Spec::kind, v, out);
  }

  // Reads one message and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    check_decode_size(name, s.dimension(), out.size());
    dense_decode<typename Spec::template format<T>>(Spec::kind, in, out);
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const noexcept {
    return wire::header_bytes + d * Spec::template format<T>::width;
  }
};

}  // namespace loco::compress::detail
