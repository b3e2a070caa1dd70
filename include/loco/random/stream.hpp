#pragma once
// Reproducible random numbers. A `stream` is xoshiro256** seeded from a
// (seed, stream id) pair through splitmix64, so every worker, compressor and
// data partition draws from its own independent sequence and a run replays
// bit-identically from its seed on any platform (no std:: distributions,
// whose output is implementation-defined).
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>

namespace loco::random {

namespace detail {
__extension__ using uint128 =
    unsigned __int128;  // GCC and Clang; __extension__ keeps -Wpedantic quiet
}

// One step of splitmix64: a bijective mixer of 64-bit words.
constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A stateless hash of (seed, a, b): the counter-based generator used where
// every worker must derive the same value from the same counters (the shared
// random_k support of round r, for example).
constexpr std::uint64_t hash(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0) noexcept {
  return splitmix64(splitmix64(splitmix64(seed) ^ a) ^ (b * 0xd1342543de82ef95ULL + 1));
}

class stream {
 public:
  using result_type = std::uint64_t;
  using state_type = std::array<std::uint64_t, 4>;

  constexpr explicit stream(std::uint64_t seed = 0, std::uint64_t id = 0) noexcept {
    reseed(seed, id);
  }

  constexpr void reseed(std::uint64_t seed, std::uint64_t id = 0) noexcept {
    std::uint64_t x = hash(seed, id, 0x6c6f636fULL);
    for (auto& w : s_) {
      x = splitmix64(x);
      w = x;
    }
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;  // the all-zero state is a fixed point
  }

  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

  constexpr result_type operator()() noexcept {
    const std::uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = std::rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }
  // Uniform in [0, 1) with 24 random bits; the cheap draw for float kernels.
  float uniform_float() noexcept { return static_cast<float>((*this)() >> 40) * 0x1.0p-24f; }

  // Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject).
  std::uint64_t below(std::uint64_t n) noexcept {
    if (n == 0) return 0;
    detail::uint128 m = static_cast<detail::uint128>((*this)()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<detail::uint128>((*this)()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  // Standard normal (Box-Muller; the spare value is kept for the next call).
  double normal() noexcept {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

  // Exponential with mean 1.
  double exponential() noexcept {
    double u = uniform();
    while (u <= 0.0) u = uniform();
    return -std::log(u);
  }

  // Gamma(shape, 1) (Marsaglia and Tsang), for Dirichlet partitions.
  double gamma(double shape) noexcept {
    if (shape < 1.0) {
      double u = uniform();
      while (u <= 0.0) u = uniform();
      return gamma(shape + 1.0) * std::pow(u, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x = normal();
      double v = 1.0 + c * x;
      if (v <= 0.0) continue;
      v = v * v * v;
      const double u = uniform();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (u > 0.0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }

  // The full state, for checkpoints. The Box-Muller spare is part of it.
  struct snapshot {
    state_type words;
    double spare;
    bool has_spare;
  };
  snapshot save() const noexcept { return {s_, spare_, has_spare_}; }
  void restore(const snapshot& s) noexcept {
    s_ = s.words;
    spare_ = s.spare;
    has_spare_ = s.has_spare;
  }

  friend bool operator==(const stream& a, const stream& b) noexcept {
    return a.s_ == b.s_ && a.has_spare_ == b.has_spare_ && (!a.has_spare_ || a.spare_ == b.spare_);
  }

 private:
  state_type s_{};
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace loco::random
