#pragma once
// eta_t = C * t^(-alpha), the decaying step of local SGD analyses
// (ALGORITHMS.md section 2). alpha must lie in (1/2, 1) unless the caller
// opts out with allow_any_alpha, e.g. for alpha = 1 with a large C.
#include <cmath>
#include <loco/error.hpp>
#include <loco/stepsize/context.hpp>
#include <string>

namespace loco::stepsize {

class polynomial {
 public:
  static constexpr const char* name = "polynomial";
  struct options {
    bool allow_any_alpha = false;  // accept alpha in [0, 2] instead of (1/2, 1)
    double t0 = 0.0;               // shift: eta_t = C (t + t0)^(-alpha)
  };

  polynomial(double c, double alpha) : polynomial(c, alpha, options{}) {}
  polynomial(double c, double alpha, options opt) : c_(c), alpha_(alpha), opt_(opt) {
    if (!(c > 0.0) || !std::isfinite(c)) {
      throw config_error("stepsize::polynomial: C " + std::to_string(c) +
                         " must be finite and > 0");
    }
    const bool in_theory = alpha > 0.5 && alpha < 1.0;
    const bool in_range = alpha >= 0.0 && alpha <= 2.0;
    if (!(opt.allow_any_alpha ? in_range : in_theory)) {
      throw config_error("stepsize::polynomial: alpha " + std::to_string(alpha) +
                         (opt.allow_any_alpha ? " is outside [0, 2]"
                                              : " is outside (1/2, 1); set "
                                                "options::allow_any_alpha to override"));
    }
    if (!(opt.t0 >= 0.0)) {
      throw config_error("stepsize::polynomial: t0 " + std::to_string(opt.t0) + " must be >= 0");
    }
  }
  double eta(const context& ctx) const noexcept {
    const double t = static_cast<double>(ctx.t) + opt_.t0;
    return c_ * std::pow(t < 1.0 ? 1.0 : t, -alpha_);
  }

 private:
  double c_;
  double alpha_;
  options opt_;
};

}  // namespace loco::stepsize
