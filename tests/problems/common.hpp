#pragma once
// Small datasets built from plain loops for the objective tests.
#include <cstddef>
#include <cstdint>
#include <loco/data/dataset.hpp>
#include <loco/random/stream.hpp>
#include <memory>

namespace test_problems {

// n rows of p N(0, 1) features and labels uniform in [0, k).
template <class T>
std::shared_ptr<const loco::data::dataset<T>> random_classes(std::size_t n, std::size_t p,
                                                             std::size_t k, std::uint64_t seed) {
  loco::random::stream rng(seed, 77);
  auto d = std::make_shared<loco::data::dataset<T>>();
  d->features = loco::tensor::matrix<T>::from_shape({n, p});
  for (auto& v : d->features) v = static_cast<T>(rng.normal());
  d->classes = k;
  for (std::size_t i = 0; i < n; ++i) d->labels.push_back(static_cast<std::int32_t>(rng.below(k)));
  return d;
}

}  // namespace test_problems
