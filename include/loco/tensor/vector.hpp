#pragma once
// The only header of loco that includes xtensor. Models, gradients and data
// are xtensor containers; kernels see them as contiguous std::spans.
#include <cstddef>
#include <span>
#include <type_traits>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xtensor.hpp>

namespace loco::tensor {

template <class T>
using vector = xt::xtensor<T, 1>;
template <class T>
using matrix = xt::xtensor<T, 2>;

// A vector of d zeros.
template <class T>
vector<T> zeros(std::size_t d) {
  vector<T> v = xt::zeros<T>({d});
  return v;
}

// Contiguous view of a 1-D or n-D row-major container.
template <class E>
auto as_span(E& e) noexcept {
  using value = std::remove_reference_t<decltype(*e.data())>;
  return std::span<value>(e.data(), e.size());
}

}  // namespace loco::tensor
