#pragma once
// eta_t = eta for every step.
#include <cmath>
#include <loco/error.hpp>
#include <loco/stepsize/context.hpp>
#include <string>

namespace loco::stepsize {

class constant {
 public:
  static constexpr const char* name = "constant";
  explicit constant(double eta) : eta_(eta) {
    if (!(eta > 0.0) || !std::isfinite(eta)) {
      throw config_error("stepsize::constant: eta " + std::to_string(eta) +
                         " must be finite and > 0");
    }
  }
  double eta(const context&) const noexcept { return eta_; }
  double value() const noexcept { return eta_; }

 private:
  double eta_;
};

}  // namespace loco::stepsize
