#pragma once
// Pieces every compressor shares: settings checks, the error for non-finite
// input, a vectorisable random generator, and the norm reductions.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace loco::compress::detail {

[[noreturn]] inline void throw_non_finite(std::string_view name, std::size_t index) {
  throw non_finite_error("compress::" + std::string(name) + " input", index);
}

// Throws when v holds a NaN or Inf; the slow path behind a fused check.
template <class T>
void check_finite(std::string_view name, std::span<const T> v) {
  const std::size_t i = tensor::first_non_finite(v);
  if (i != tensor::npos) throw_non_finite(name, i);
}

// The wire carries d as u32.
inline std::uint32_t checked_dimension(std::string_view name, std::size_t d) {
  if (d > std::numeric_limits<std::uint32_t>::max()) {
    throw config_error("compress::" + std::string(name) + ": d = " + std::to_string(d) +
                       " exceeds the wire limit 4294967295");
  }
  return static_cast<std::uint32_t>(d);
}

inline void check_encode_size(std::string_view name, std::size_t state_d, std::size_t got) {
  if (state_d != got) {
    throw config_error("compress::" + std::string(name) + ": encode got a vector of length " +
                       std::to_string(got) +
                       ", the state was built for d = " + std::to_string(state_d));
  }
}

inline void check_decode_size(std::string_view name, std::size_t state_d, std::size_t got) {
  if (state_d != got) {
    throw config_error("compress::" + std::string(name) + ": decode into a vector of length " +
                       std::to_string(got) +
                       ", the state was built for d = " + std::to_string(state_d));
  }
}

// The k of a sparse message must be the receiver's k for this d.
inline void check_message_k(wire::view& in, std::uint32_t k, std::size_t expected, std::size_t d) {
  if (k != expected) {
    in.fail("k", "message has k = " + std::to_string(k) + ", the receiver expects " +
                     std::to_string(expected) + " for d = " + std::to_string(d));
  }
}

// The i-th index j of a sparse message: below d and above the previous one
// (prev, -1 at the start), so none repeats.
inline void check_next_index(wire::view& in, std::uint32_t j, std::size_t i, std::size_t d,
                             std::int64_t& prev) {
  if (j >= d) {
    in.fail("indices", "index " + std::to_string(j) + " at position " + std::to_string(i) +
                           " is out of range for d = " + std::to_string(d));
  }
  if (static_cast<std::int64_t>(j) <= prev) {
    in.fail("indices",
            "index " + std::to_string(j) + " at position " + std::to_string(i) +
                (static_cast<std::int64_t>(j) == prev ? " is repeated" : " is out of order"));
  }
  prev = j;
}

// decode of a sparse compressor: zeros, then the entries decode_sparse sets.
template <class C, class S, class T>
void decode_through_sparse(const C& c, wire::view& in, S& s, std::span<T> out) {
  check_decode_size(C::name, s.dimension(), out.size());
  std::memset(out.data(), 0, out.size() * sizeof(T));
  c.decode_sparse(in, s, [out](std::size_t j, T x) { out[j] = x; });
}

// A saved state must belong to a vector of the same length.
inline void restore_dimension(wire::view& in, std::string_view name, std::size_t d) {
  const auto saved = in.get<std::uint64_t>("dimension");
  if (saved != d) {
    in.fail("dimension", "compress::" + std::string(name) + " state saved for d = " +
                             std::to_string(saved) + ", this one has d = " + std::to_string(d));
  }
}

// "k" given as a fraction of d or as a count (top_k and random_k).
class k_rule {
 public:
  static k_rule fraction(std::string_view name, double f) {
    if (!(f > 0.0 && f <= 1.0)) {
      throw config_error("compress::" + std::string(name) + ": fraction " + std::to_string(f) +
                         " is outside (0, 1]");
    }
    return k_rule(f, 0);
  }
  static k_rule count(std::string_view name, std::size_t k) {
    if (k == 0) throw config_error("compress::" + std::string(name) + ": k = 0 must be >= 1");
    return k_rule(0.0, k);
  }
  // k for a vector of length d: round(fraction * d), at least 1; or the
  // count, which must not exceed d.
  std::size_t k(std::string_view name, std::size_t d) const {
    std::size_t k = count_;
    if (k == 0) {
      k = static_cast<std::size_t>(std::llround(fraction_ * static_cast<double>(d)));
      k = std::max<std::size_t>(k, 1);
    }
    if (k > d) {
      throw config_error("compress::" + std::string(name) + ": k = " + std::to_string(k) +
                         " exceeds d = " + std::to_string(d));
    }
    return k;
  }
  double fraction() const noexcept { return fraction_; }
  std::size_t count() const noexcept { return count_; }

 private:
  k_rule(double f, std::size_t c) : fraction_(f), count_(c) {}
  double fraction_;
  std::size_t count_;
};

// Sixteen independent xoshiro128+ generators stepped together, so drawing
// one 32-bit number per entry costs a few SIMD instructions per 16 entries.
// Entry i of a block of 16 always takes lane i, so the numbers are the same
// whatever the SIMD width. Seeded from a loco::random::stream; reproducible
// on every platform. (GCC/Clang vector extensions: lowered to AVX-512,
// AVX2, SSE2 or scalar code as the target allows.)
class lane_rng {
 public:
  static constexpr std::size_t lanes = 16;

  lane_rng() = default;
  explicit lane_rng(random::stream& seeder) { seed(seeder); }
  void seed(random::stream& seeder) noexcept {
    for (std::size_t j = 0; j < lanes; ++j) {
      const std::uint64_t a = seeder();
      const std::uint64_t b = seeder();
      s0_[j] = static_cast<std::uint32_t>(a);
      s1_[j] = static_cast<std::uint32_t>(a >> 32);
      s2_[j] = static_cast<std::uint32_t>(b);
      s3_[j] = static_cast<std::uint32_t>(b >> 32) | 1u;  // never all zero
    }
  }
  // The generator's position, for checkpoints: 16 lanes of 4 words.
  void save(wire::buffer& out) const {
    for (std::size_t j = 0; j < lanes; ++j) {
      out.put<std::uint32_t>(s0_[j]);
      out.put<std::uint32_t>(s1_[j]);
      out.put<std::uint32_t>(s2_[j]);
      out.put<std::uint32_t>(s3_[j]);
    }
  }
  void restore(wire::view& in) {
    for (std::size_t j = 0; j < lanes; ++j) {
      const auto a = in.get<std::uint32_t>("rng lane"), b = in.get<std::uint32_t>("rng lane");
      const auto c = in.get<std::uint32_t>("rng lane"), d = in.get<std::uint32_t>("rng lane");
      if ((a | b | c | d) == 0) in.fail("rng lane", "lane " + std::to_string(j) + " is all zero");
      s0_[j] = a;
      s1_[j] = b;
      s2_[j] = c;
      s3_[j] = d;
    }
  }
  // Sixteen fresh 32-bit numbers; the high bits are the strong ones.
  void next(std::uint32_t* out) noexcept {
    u32x16 s0, s1, s2, s3;
    std::memcpy(&s0, s0_, sizeof(s0));
    std::memcpy(&s1, s1_, sizeof(s1));
    std::memcpy(&s2, s2_, sizeof(s2));
    std::memcpy(&s3, s3_, sizeof(s3));
    const u32x16 result = s0 + s3;
    std::memcpy(out, &result, sizeof(result));
    const u32x16 t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >> 21);
    std::memcpy(s0_, &s0, sizeof(s0));
    std::memcpy(s1_, &s1, sizeof(s1));
    std::memcpy(s2_, &s2, sizeof(s2));
    std::memcpy(s3_, &s3, sizeof(s3));
  }

 private:
  // The state is kept as plain arrays and moved through vector-typed locals:
  // a vector type's alignment depends on the target (64 bytes where AVX-512
  // is enabled, less in a baseline build), so a state allocated by baseline
  // code must not be read with the aligned loads of an AVX-512 kernel.
  using u32x16 = std::uint32_t __attribute__((vector_size(64)));
  std::uint32_t s0_[lanes] = {}, s1_[lanes] = {}, s2_[lanes] = {}, s3_[lanes] = {};
};

// Sum of f(x) over v in double, with 16 independent accumulators so the
// loop vectorises without -ffast-math (and gives the same result on every
// build of the same code).
template <class T, class F>
double sum_lanes(std::span<const T> v, F f) noexcept {
  constexpr std::size_t w = 16;
  double acc[w] = {};
  const std::size_t n = v.size();
  const std::size_t full = n - n % w;
  const T* p = v.data();
  for (std::size_t i = 0; i < full; i += w) {
    for (std::size_t j = 0; j < w; ++j) acc[j] += f(static_cast<double>(p[i + j]));
  }
  for (std::size_t i = full; i < n; ++i) acc[i - full] += f(static_cast<double>(p[i]));
  for (std::size_t h = w / 2; h > 0; h /= 2) {
    for (std::size_t j = 0; j < h; ++j) acc[j] += acc[j + h];
  }
  return acc[0];
}

// Non-zero in the top bit exactly when x is Inf or NaN: adding one unit of
// the exponent field carries out of it only when it is all ones. OR-ing
// these over a block is a branch-free check that vectorises.
template <class T>
inline auto non_finite_bit(T x) noexcept {
  if constexpr (sizeof(T) == 4) {
    return static_cast<std::uint32_t>((std::bit_cast<std::uint32_t>(x) & 0x7f800000u) +
                                      0x00800000u);
  } else {
    return static_cast<std::uint64_t>((std::bit_cast<std::uint64_t>(x) & 0x7ff0000000000000ull) +
                                      0x0010000000000000ull);
  }
}
template <class U>
inline bool has_non_finite(U flags) noexcept {
  return (flags >> (sizeof(U) * 8 - 1)) != 0;
}

// Sum of squares of floats: 16 float lanes within blocks of 1024 entries
// (64 terms per lane), blocks added in double. Twice the speed of double
// lanes with SSE2, and a relative error of a few float ulps.
inline double sum_squares(std::span<const float> v) noexcept {
  constexpr std::size_t w = 16, block = 1024;
  const std::size_t n = v.size();
  const float* p = v.data();
  double total = 0;
  std::size_t i = 0;
  for (; i + block <= n; i += block) {
    float acc[w] = {};
    for (std::size_t b = 0; b < block; b += w) {
      for (std::size_t j = 0; j < w; ++j) acc[j] += p[i + b + j] * p[i + b + j];
    }
    double part = 0;
    for (float a : acc) part += static_cast<double>(a);
    total += part;
  }
  for (; i < n; ++i) total += static_cast<double>(p[i]) * static_cast<double>(p[i]);
  // Squares of entries below 1e-19 underflow in float; they only matter when
  // the whole sum is that small, and then the sum is redone in double.
  if (total < 1e-20) return sum_lanes(v, [](double x) { return x * x; });
  return total;
}
inline double sum_squares(std::span<const double> v) noexcept {
  return sum_lanes(v, [](double x) { return x * x; });
}

// ||v||_2 computed without overflow: the plain sum of squares when it is
// finite, a rescaled one otherwise. Non-finite input gives a non-finite result.
template <class T>
double norm2(std::span<const T> v) noexcept {
  const double s = sum_squares(v);
  if (std::isfinite(s)) return std::sqrt(s);
  double m = 0;
  for (T x : v) m = std::max(m, std::abs(static_cast<double>(x)));
  if (!std::isfinite(m) || m == 0.0) return s;
  const double inv = 1.0 / m;
  const double r = sum_lanes(v, [inv](double x) { return (x * inv) * (x * inv); });
  return m * std::sqrt(r);
}

}  // namespace loco::compress::detail
