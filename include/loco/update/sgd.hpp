#pragma once
// update::sgd: x <- x - eta g, the plain step every local_sgd alias takes
// unless told otherwise. No state.
#include <cstddef>
#include <span>

namespace loco::update {

struct sgd {
  static constexpr const char* name = "sgd";
  template <class T>
  struct state {
    state(const sgd&, std::size_t) {}
  };
  template <class T>
  void step(state<T>&, std::span<T> x, std::span<const T> g, double eta) const {
    const auto e = static_cast<T>(eta);
    for (std::size_t j = 0; j < x.size(); ++j) x[j] -= e * g[j];
  }
};

}  // namespace loco::update
