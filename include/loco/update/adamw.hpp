#pragma once
// update::adamw: Adam with decoupled weight decay (Loshchilov and Hutter),
// as torch.optim.AdamW, the inner optimizer of DiLoCo:
//   x <- x (1 - eta wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   x <- x - (eta / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// with t this worker's own step count (kept across rounds and checkpointed).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/error.hpp>
#include <loco/tensor/dispatch.hpp>
#include <loco/tensor/sqrt.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::update {

struct adamw {
  static constexpr const char* name = "adamw";
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;

  explicit adamw(double beta1_ = 0.9, double beta2_ = 0.999, double eps_ = 1e-8,
                 double weight_decay_ = 0.01)
      : beta1(beta1_), beta2(beta2_), eps(eps_), weight_decay(weight_decay_) {
    const auto in_unit = [](const char* what, double v) {
      if (!(v >= 0.0 && v < 1.0)) {
        throw config_error(std::string("update::adamw: ") + what + " " + std::to_string(v) +
                           " is outside [0, 1)");
      }
    };
    in_unit("beta1", beta1);
    in_unit("beta2", beta2);
    if (!(eps > 0.0))
      throw config_error("update::adamw: eps " + std::to_string(eps) + " must be > 0");
    if (!(weight_decay >= 0.0)) {
      throw config_error("update::adamw: weight_decay " + std::to_string(weight_decay) +
                         " must be >= 0");
    }
  }

  template <class T>
  struct state {
    std::vector<T> m, v;
    std::uint64_t t = 0;
    state(const adamw&, std::size_t d) : m(d, T{0}), v(d, T{0}) {}
    void save(wire::buffer& out) const {
      out.put<std::uint64_t>(t);
      wire::put_values<T>(out, m);
      wire::put_values<T>(out, v);
    }
    void restore(wire::view& in) {
      t = in.get<std::uint64_t>("adamw step");
      wire::get_values<T>(in, m, "adamw m");
      wire::get_values<T>(in, v, "adamw v");
    }
  };

  template <class T>
  void step(state<T>& s, std::span<T> x, std::span<const T> g, double eta) const {
    ++s.t;
    const double c1 = 1.0 - std::pow(beta1, static_cast<double>(s.t));
    const double c2 = std::sqrt(1.0 - std::pow(beta2, static_cast<double>(s.t)));
    const auto decay = static_cast<T>(1.0 - eta * weight_decay);
    const auto b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
    const auto step_size = static_cast<T>(eta / c1), sqrt_c2 = static_cast<T>(c2);
    const auto epsilon = static_cast<T>(eps);
    // In blocks: the square roots run as vector instructions
    // (tensor/sqrt.hpp) between two loops the compiler vectorises. The
    // constants are captured by value: through a reference, a store to m or
    // v might change them, and the loops would stay scalar.
    tensor::vectorized([&s, x, g, b1, b2, decay, step_size, sqrt_c2, epsilon] {
      constexpr std::size_t block = 1024 / sizeof(T);  // 1 KiB: simulated ranks run on small stacks
      T root[block];
      for (std::size_t j0 = 0; j0 < x.size(); j0 += block) {
        const std::size_t n = std::min(block, x.size() - j0);
        T* const xb = x.data() + j0;
        T* const m = s.m.data() + j0;
        T* const v = s.v.data() + j0;
        const T* const gb = g.data() + j0;
        for (std::size_t i = 0; i < n; ++i) {
          m[i] = b1 * m[i] + (T{1} - b1) * gb[i];
          v[i] = b2 * v[i] + (T{1} - b2) * gb[i] * gb[i];
          root[i] = v[i];
        }
        tensor::sqrt_in_place(std::span<T>(root, n));
        for (std::size_t i = 0; i < n; ++i) {
          xb[i] = xb[i] * decay - step_size * m[i] / (root[i] / sqrt_c2 + epsilon);
        }
      }
    });
  }
};

}  // namespace loco::update
