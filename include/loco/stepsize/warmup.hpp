#pragma once
// Linear warm-up in front of any step size: eta_t = (t / t_w) * S(t) for
// t < t_w, then S(t).
#include <loco/concepts/stepsize.hpp>
#include <loco/error.hpp>
#include <string>

namespace loco::stepsize {

template <class S>
class warmup {
  static_assert(check_stepsize<S>());

 public:
  static constexpr const char* name = "warmup";
  warmup(S inner, std::uint64_t steps) : inner_(std::move(inner)), steps_(steps) {
    if (steps == 0) throw config_error("stepsize::warmup: steps 0 must be >= 1");
  }
  double eta(const context& ctx) const {
    const double base = inner_.eta(ctx);
    if (ctx.t >= steps_) return base;
    return base * static_cast<double>(ctx.t) / static_cast<double>(steps_);
  }
  const S& inner() const noexcept { return inner_; }

 private:
  S inner_;
  std::uint64_t steps_;
};

}  // namespace loco::stepsize
