#pragma once
// The noisy quadratic of the asynchronous experiments (async_stragglers,
// internet_scale): f(x) = 0.5 (x - b)^T A (x - b), A = diag(mu .. L) evenly
// spaced, b ~ N(0, I) drawn from (seed, 0xb), stochastic gradients with
// noise of variance `noise` (E||xi||^2).
#include <cstddef>
#include <cstdint>
#include <loco/problems/quadratic.hpp>
#include <loco/random/stream.hpp>

namespace experiment {

inline loco::problems::quadratic<double> noisy_quadratic(std::size_t dim, double mu,
                                                         double lipschitz, double noise,
                                                         std::uint64_t seed) {
  auto a = loco::tensor::vector<double>::from_shape({dim});
  auto b = loco::tensor::vector<double>::from_shape({dim});
  loco::random::stream rng(seed, 0xb);
  for (std::size_t j = 0; j < dim; ++j) {
    a(j) = mu + (lipschitz - mu) * static_cast<double>(j) / static_cast<double>(dim - 1);
    b(j) = rng.normal();
  }
  return loco::problems::quadratic<double>::diagonal(a, b, {.noise_variance = noise});
}

}  // namespace experiment
