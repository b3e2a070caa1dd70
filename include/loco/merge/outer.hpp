#pragma once
// Outer optimizers (DiLoCo, Douillard et al. 2023): the workers' average is
// not the new model; the change it implies, the outer gradient
//   delta = x_global - average,
// is a step of an optimizer run on x_global, the last global model, which the
// rule keeps as state (identical on every worker). x becomes x_global.
//   outer_sgd{lr}                 x_global -= lr delta   (lr = 1: merge::average)
//   outer_nesterov{lr, momentum}  b = mu b + delta; x_global -= lr (delta + mu b)
//                                 (torch.optim.SGD with nesterov=True; DiLoCo:
//                                 lr 0.7, momentum 0.9)
// With a shared-support compressor only the support's coordinates move.
#include <cstddef>
#include <loco/error.hpp>
#include <loco/merge/detail/check.hpp>
#include <loco/merge/inputs.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::merge {

namespace detail {

// For every synchronised coordinate j with aggregate a: step(j, delta_j).
template <class T, class Step>
void outer_step(const char* rule, std::vector<T>& global, const inputs<T>& in, std::span<T> x,
                Step&& step) {
  check_shapes(rule, in, x.size());
  if (global.size() != x.size()) {
    throw config_error(std::string(rule) + ": state for " + std::to_string(global.size()) +
                       " values, model has " + std::to_string(x.size()));
  }
  const auto one = [&](std::size_t j, T average) {  // average may be x[j] itself
    step(j, global[j] - average);
    x[j] = global[j];
  };
  if (in.dense()) {
    for (std::size_t j = 0; j < x.size(); ++j) one(j, in.average[j]);
  } else {
    for (std::size_t k = 0; k < in.support.size(); ++k) one(in.support[k], in.average[k]);
  }
}

inline void check_lr(const char* rule, double lr) {
  if (!(lr > 0.0))
    throw config_error(std::string(rule) + ": lr " + std::to_string(lr) + " must be > 0");
}

}  // namespace detail

class outer_sgd {
 public:
  static constexpr const char* name = "outer_sgd";
  static constexpr bool reads_model = false;  // x becomes the global model
  explicit outer_sgd(double lr = 1.0) : lr_(lr) { detail::check_lr("merge::outer_sgd", lr); }
  double lr() const noexcept { return lr_; }

  template <class T>
  struct state {
    std::vector<T> global;  // the last global model
    state(const outer_sgd&, std::span<const T> x0) : global(x0.begin(), x0.end()) {}
    void save(wire::buffer& out) const { wire::put_values<T>(out, global); }
    void restore(wire::view& in) { wire::get_values<T>(in, global, "global model"); }
  };

  template <class T>
  void apply(state<T>& s, const inputs<T>& in, std::span<T> x) const {
    const auto lr = static_cast<T>(lr_);
    detail::outer_step("merge::outer_sgd", s.global, in, x,
                       [&](std::size_t j, T delta) { s.global[j] -= lr * delta; });
  }

 private:
  double lr_;
};

class outer_nesterov {
 public:
  static constexpr const char* name = "outer_nesterov";
  static constexpr bool reads_model = false;
  explicit outer_nesterov(double lr = 0.7, double momentum = 0.9) : lr_(lr), mu_(momentum) {
    detail::check_lr("merge::outer_nesterov", lr);
    if (!(momentum >= 0.0 && momentum < 1.0)) {
      throw config_error("merge::outer_nesterov: momentum " + std::to_string(momentum) +
                         " is outside [0, 1)");
    }
  }
  double lr() const noexcept { return lr_; }
  double momentum() const noexcept { return mu_; }

  template <class T>
  struct state {
    std::vector<T> global;  // the last global model
    std::vector<T> buffer;  // the outer momentum
    state(const outer_nesterov&, std::span<const T> x0)
        : global(x0.begin(), x0.end()), buffer(x0.size(), T{0}) {}
    void save(wire::buffer& out) const {
      wire::put_values<T>(out, global);
      wire::put_values<T>(out, buffer);
    }
    void restore(wire::view& in) {
      wire::get_values<T>(in, global, "global model");
      wire::get_values<T>(in, buffer, "outer momentum");
    }
  };

  template <class T>
  void apply(state<T>& s, const inputs<T>& in, std::span<T> x) const {
    const auto lr = static_cast<T>(lr_), mu = static_cast<T>(mu_);
    detail::outer_step("merge::outer_nesterov", s.global, in, x, [&](std::size_t j, T delta) {
      s.buffer[j] = mu * s.buffer[j] + delta;
      s.global[j] -= lr * (delta + mu * s.buffer[j]);
    });
  }

 private:
  double lr_, mu_;
};

}  // namespace loco::merge
