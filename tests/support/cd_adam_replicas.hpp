#pragma once
// CD-Adam on any communicator, for the replica tests of tests/algorithm
// (in_process, simulated), tests/comm_tcp and tests/comm_mpi: a noisy,
// different quadratic per worker, the driver run with the library's real
// compressors, and a plain-loop AMSGrad on the mean gradient (written from
// the math, sharing no code with the driver) for the lossless case.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/random/stream.hpp>
#include <loco/stepsize/constant.hpp>
#include <span>
#include <string>
#include <vector>

namespace cd_adam_replicas {

constexpr std::size_t dim = 40;
constexpr std::uint64_t seed = 11;
constexpr double alpha = 0.02;
constexpr double noise = 0.3;
constexpr float start = 0.5f;

// f_r(x) = 0.5 a_r ||x - b_r||^2 with a_r = 1 + r/4 and b_r,j = sin(1 + 0.7 r + 0.3 j);
// each gradient adds N(0, noise^2) per entry from the driver's stream (seed, r),
// so workers see different, stochastic gradients.
template <class T>
struct noisy_quadratic {
  using value_type = T;
  int rank = 0;
  std::size_t dimension() const { return dim; }
  double curvature() const { return 1.0 + 0.25 * rank; }
  double center(std::size_t j) const {
    return std::sin(1.0 + 0.7 * rank + 0.3 * static_cast<double>(j));
  }
  double loss(std::span<const T> x) const {
    double s = 0;
    for (std::size_t j = 0; j < dim; ++j) {
      const double e = static_cast<double>(x[j]) - center(j);
      s += e * e;
    }
    return 0.5 * curvature() * s;
  }
  double gradient(std::span<const T> x, std::span<T> g, loco::random::stream& rng) {
    for (std::size_t j = 0; j < dim; ++j) {
      g[j] = static_cast<T>(curvature() * (static_cast<double>(x[j]) - center(j)) +
                            noise * rng.normal());
    }
    return loss(x);
  }
};

inline const char* name_of(loco::algorithm::compression_strategy s) {
  switch (s) {
    case loco::algorithm::compression_strategy::difference:
      return "difference";
    case loco::algorithm::compression_strategy::error_feedback:
      return "error_feedback";
    case loco::algorithm::compression_strategy::naive:
      return "naive";
  }
  return "?";
}

inline constexpr loco::algorithm::compression_strategy strategies[] = {
    loco::algorithm::compression_strategy::difference,
    loco::algorithm::compression_strategy::error_feedback,
    loco::algorithm::compression_strategy::naive};

// This rank's model after `iterations` steps of CD-Adam; `wrap` may dress the
// objective (sim::timed on the simulator).
struct unwrapped {
  template <class O>
  O operator()(O f) const {
    return f;
  }
};
template <class T, class Compressor, class Comm, class Wrap = unwrapped>
std::vector<T> run(Comm& comm, Compressor compressor,
                   loco::algorithm::compression_strategy strategy, std::size_t iterations,
                   Wrap wrap = {}) {
  loco::algorithm::compressed_amsgrad_options opt;
  opt.iterations = iterations;
  opt.strategy = strategy;
  opt.seed = seed;
  loco::compressed_amsgrad<Compressor, Comm, loco::stepsize::constant> algo(
      std::move(compressor), loco::stepsize::constant(alpha), opt);
  auto f = wrap(noisy_quadratic<T>{comm.rank()});
  const std::vector<T> x0(dim, static_cast<T>(start));
  return algo.run(comm, f, std::span<const T>(x0)).model;
}

// Plain AMSGrad (beta1 0.9, beta2 0.99, eps 1e-8, no bias correction) on the
// mean of the n workers' stochastic gradients, each drawn from stream (seed, r)
// as the driver draws them.
inline std::vector<double> plain_amsgrad(int n, std::size_t iterations) {
  std::vector<double> x(dim, static_cast<double>(start)), m(dim, 0), v(dim, 0), vhat(dim, 0);
  std::vector<loco::random::stream> rng;
  std::vector<noisy_quadratic<double>> f;
  for (int r = 0; r < n; ++r) {
    rng.emplace_back(seed, static_cast<std::uint64_t>(r));
    f.push_back({r});
  }
  std::vector<double> g(dim), mean(dim);
  for (std::size_t t = 0; t < iterations; ++t) {
    std::fill(mean.begin(), mean.end(), 0.0);
    for (int r = 0; r < n; ++r) {
      f[static_cast<std::size_t>(r)].gradient(x, g, rng[static_cast<std::size_t>(r)]);
      for (std::size_t j = 0; j < dim; ++j) mean[j] += g[j] / n;
    }
    for (std::size_t j = 0; j < dim; ++j) {
      m[j] = 0.9 * m[j] + 0.1 * mean[j];
      v[j] = 0.99 * v[j] + 0.01 * mean[j] * mean[j];
      vhat[j] = std::max(vhat[j], v[j]);
      x[j] -= alpha * m[j] / (std::sqrt(vhat[j]) + 1e-8);
    }
  }
  return x;
}

// Largest |a_j - b_j|.
inline double max_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0;
  for (std::size_t j = 0; j < a.size() && j < b.size(); ++j) {
    worst = std::max(worst, std::abs(a[j] - b[j]));
  }
  return a.size() == b.size() ? worst : std::numeric_limits<double>::infinity();
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace cd_adam_replicas
