#pragma once
// update::momentum: heavy-ball or Nesterov momentum, as torch.optim.SGD with
// dampening 0:  b <- mu b + g;  x <- x - eta b  (Nesterov: x <- x - eta (g + mu b)).
#include <cstddef>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::update {

struct momentum {
  static constexpr const char* name = "momentum";
  double mu = 0.9;
  bool nesterov = false;

  explicit momentum(double mu_ = 0.9, bool nesterov_ = false) : mu(mu_), nesterov(nesterov_) {
    if (!(mu >= 0.0 && mu < 1.0)) {
      throw config_error("update::momentum: mu " + std::to_string(mu) + " is outside [0, 1)");
    }
  }

  template <class T>
  struct state {
    std::vector<T> buffer;
    state(const momentum&, std::size_t d) : buffer(d, T{0}) {}
    void save(wire::buffer& out) const { wire::put_values<T>(out, buffer); }
    void restore(wire::view& in) { wire::get_values<T>(in, buffer, "momentum buffer"); }
  };

  template <class T>
  void step(state<T>& s, std::span<T> x, std::span<const T> g, double eta) const {
    const auto e = static_cast<T>(eta), m = static_cast<T>(mu);
    for (std::size_t j = 0; j < x.size(); ++j) {
      s.buffer[j] = m * s.buffer[j] + g[j];
      x[j] -= e * (nesterov ? g[j] + m * s.buffer[j] : s.buffer[j]);
    }
  }
};

}  // namespace loco::update
