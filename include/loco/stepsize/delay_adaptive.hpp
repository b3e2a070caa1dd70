#pragma once
// Delay-adaptive step of Koloskova, Stich and Jaggi (ALGORITHMS.md section 4):
//   eta_t = eta          if tau_t <= tau_C
//         = eta / tau_t  otherwise (or 0, dropping the gradient, by option)
// tau_C is ctx.concurrency (the number of busy workers) unless fixed here.
#include <cmath>
#include <cstdint>
#include <loco/error.hpp>
#include <loco/stepsize/context.hpp>
#include <string>

namespace loco::stepsize {

class delay_adaptive {
 public:
  static constexpr const char* name = "delay_adaptive";
  struct options {
    bool drop_stale = false;      // eta = 0 instead of eta / tau above the threshold
    std::uint64_t threshold = 0;  // tau_C; 0: use ctx.concurrency
  };
  explicit delay_adaptive(double eta) : delay_adaptive(eta, options{}) {}
  delay_adaptive(double eta, options opt) : eta_(eta), opt_(opt) {
    if (!(eta > 0.0) || !std::isfinite(eta)) {
      throw config_error("stepsize::delay_adaptive: eta " + std::to_string(eta) +
                         " must be finite and > 0");
    }
  }
  double eta(const context& ctx) const noexcept {
    const std::uint64_t tau_c = opt_.threshold ? opt_.threshold : ctx.concurrency;
    if (ctx.delay <= tau_c) return eta_;
    return opt_.drop_stale ? 0.0 : eta_ / static_cast<double>(ctx.delay);
  }

 private:
  double eta_;
  options opt_;
};

}  // namespace loco::stepsize
