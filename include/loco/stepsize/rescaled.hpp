#pragma once
// Rescaled asynchronous step of Mahran, Maranjyan and Richtarik
// (ALGORITHMS.md section 5): worker i's gradients are applied with
//   gamma_i = gamma * tau_i / tau_ref,   tau_ref = max_j tau_j by default,
// so every worker's aggregate step per unit time is equal and the method
// targets the true average objective instead of the frequency-weighted one.
// tau_i comes from the given per-worker times, or else from the driver's
// online estimate (ctx.worker_time, ctx.reference_time).
#include <algorithm>
#include <cmath>
#include <loco/error.hpp>
#include <loco/stepsize/context.hpp>
#include <string>
#include <vector>

namespace loco::stepsize {

class rescaled {
 public:
  static constexpr const char* name = "rescaled";
  // tau_i estimated online by the driver.
  explicit rescaled(double gamma) : rescaled(gamma, {}) {}
  // tau_i given per worker (index = ctx.worker); reference = max unless given.
  rescaled(double gamma, std::vector<double> worker_times, double reference_time = 0.0)
      : gamma_(gamma), times_(std::move(worker_times)), reference_(reference_time) {
    if (!(gamma > 0.0) || !std::isfinite(gamma)) {
      throw config_error("stepsize::rescaled: gamma " + std::to_string(gamma) +
                         " must be finite and > 0");
    }
    for (double t : times_) {
      if (!(t > 0.0) || !std::isfinite(t)) {
        throw config_error("stepsize::rescaled: worker time " + std::to_string(t) +
                           " must be finite and > 0");
      }
    }
    if (!times_.empty() && reference_ == 0.0) {
      reference_ = *std::max_element(times_.begin(), times_.end());
    }
    if (reference_ < 0.0 || !std::isfinite(reference_)) {
      throw config_error("stepsize::rescaled: reference time " + std::to_string(reference_) +
                         " must be finite and >= 0");
    }
  }

  double eta(const context& ctx) const {
    double tau = ctx.worker_time, ref = ctx.reference_time;
    if (!times_.empty()) {
      if (ctx.worker < 0 || static_cast<std::size_t>(ctx.worker) >= times_.size()) {
        throw config_error("stepsize::rescaled: worker " + std::to_string(ctx.worker) +
                           " has no time (given " + std::to_string(times_.size()) + ")");
      }
      tau = times_[static_cast<std::size_t>(ctx.worker)];
      ref = reference_;
    }
    if (!(tau > 0.0) || !(ref > 0.0)) return gamma_;  // no estimate yet: the plain step
    return gamma_ * tau / ref;
  }

 private:
  double gamma_;
  std::vector<double> times_;
  double reference_;
};

}  // namespace loco::stepsize
