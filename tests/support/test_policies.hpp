#pragma once
// Test-only policies shared by the driver and simulator tests, written from
// scratch so references share no library code with what they check.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/random/stream.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <vector>

namespace testing_policies {

// Sends the vector as raw values: lossless, so drivers average in place.
struct raw {
  static constexpr bool unbiased = true, contractive = true, lossless = true;
  template <class T>
  struct state {
    state(const raw&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T> v, state<T>&, loco::wire::buffer& out) const {
    for (T x : v) out.put(x);
  }
  template <class T>
  void decode(loco::wire::view in, state<T>&, std::span<T> out) const {
    for (auto& x : out) x = in.get<T>("value");
  }
  std::size_t wire_bytes(std::size_t d) const { return 8 * d; }
};

// Rounds every entry to a multiple of 1/N: lossy and deterministic, so
// drivers take their general (allgather of bytes) path.
template <int N>
struct multiples_of {
  static constexpr bool unbiased = false, contractive = false;
  template <class T>
  struct state {
    state(const multiples_of&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T> v, state<T>&, loco::wire::buffer& out) const {
    for (T x : v) out.put(static_cast<std::int32_t>(std::lround(x * N)));
  }
  template <class T>
  void decode(loco::wire::view in, state<T>&, std::span<T> out) const {
    for (auto& x : out) x = static_cast<T>(in.get<std::int32_t>("value")) / N;
  }
  std::size_t wire_bytes(std::size_t d) const { return 4 * d; }
  static double round(double x) { return static_cast<double>(std::lround(x * N)) / N; }
};

// f(x) = 0.5 a ||x - b||^2 with deterministic gradients, so references are exact.
struct scaled_quadratic {
  using value_type = double;
  double a;
  std::vector<double> b;
  std::size_t dimension() const { return b.size(); }
  double loss(std::span<const double> x) const {
    double s = 0;
    for (std::size_t j = 0; j < b.size(); ++j) s += (x[j] - b[j]) * (x[j] - b[j]);
    return 0.5 * a * s;
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream&) {
    for (std::size_t j = 0; j < b.size(); ++j) g[j] = a * (x[j] - b[j]);
    return loss(x);
  }
};

}  // namespace testing_policies
