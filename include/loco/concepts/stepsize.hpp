#pragma once
// The Stepsize concept (docs/concepts.md#stepsize).
//
//   s.eta(const stepsize::context&) const -> double
// One concept serves decay schedules (use ctx.t), delay-adaptive steps
// (ctx.delay, ctx.concurrency) and rescaled steps (ctx.worker_time).
#include <concepts>
#include <loco/stepsize/context.hpp>

namespace loco::concepts::detail {

template <class S>
concept stepsize_has_eta = requires(const S& s, const stepsize::context& ctx) {
  { s.eta(ctx) } -> std::convertible_to<double>;
};

}  // namespace loco::concepts::detail

namespace loco {

template <class S>
concept Stepsize = std::copy_constructible<S> && concepts::detail::stepsize_has_eta<S>;

template <class S>
constexpr bool check_stepsize() {
  static_assert(std::copy_constructible<S>,
                "loco: a Stepsize must be copy-constructible; see docs/concepts.md#stepsize");
  static_assert(concepts::detail::stepsize_has_eta<S>,
                "loco: a Stepsize needs eta(const stepsize::context&) const returning a double; "
                "see docs/concepts.md#stepsize");
  return true;
}

}  // namespace loco
