#pragma once
// The Objective concept (docs/concepts.md#objective).
//
// An objective is one worker's local function f_i over its own data:
//   typename O::value_type                      float or double
//   o.dimension() -> std::size_t                 d, the number of parameters
//   o.loss(std::span<const value_type> x) -> double                  f_i(x) on all its data
//   o.gradient(std::span<const value_type> x, std::span<value_type> g,
//              random::stream& rng) -> double                          a stochastic gradient
//                  into g (a mini-batch drawn from rng); returns that mini-batch's loss
// Drivers take one objective per worker, so heterogeneous data is the default.
#include <concepts>
#include <cstddef>
#include <loco/random/stream.hpp>
#include <span>

namespace loco::concepts::detail {

template <class O>
concept objective_has_value_type = requires {
  typename O::value_type;
}
&&std::floating_point<typename O::value_type>;

template <class O>
concept objective_has_dimension = requires(const O& o) {
  { o.dimension() } -> std::convertible_to<std::size_t>;
};

template <class O>
concept objective_has_loss = objective_has_value_type<O> &&
    requires(const O& o, std::span<const typename O::value_type> x) {
  { o.loss(x) } -> std::convertible_to<double>;
};

template <class O>
concept objective_has_gradient = objective_has_value_type<O> &&
    requires(O& o, std::span<const typename O::value_type> x, std::span<typename O::value_type> g,
             random::stream& rng) {
  { o.gradient(x, g, rng) } -> std::convertible_to<double>;
};

}  // namespace loco::concepts::detail

namespace loco {

template <class O>
concept Objective =
    concepts::detail::objective_has_value_type<O> && concepts::detail::objective_has_dimension<O> &&
    concepts::detail::objective_has_loss<O> && concepts::detail::objective_has_gradient<O>;

template <class O>
constexpr bool check_objective() {
  using namespace concepts::detail;
  static_assert(objective_has_value_type<O>,
                "loco: an Objective needs `using value_type = float` (or double); "
                "see docs/concepts.md#objective");
  static_assert(objective_has_dimension<O>,
                "loco: an Objective needs dimension() const returning the number of parameters; "
                "see docs/concepts.md#objective");
  if constexpr (objective_has_value_type<O>) {
    static_assert(objective_has_loss<O>,
                  "loco: an Objective needs loss(std::span<const value_type>) const returning a "
                  "double; see docs/concepts.md#objective");
    static_assert(objective_has_gradient<O>,
                  "loco: an Objective needs gradient(std::span<const value_type> x, "
                  "std::span<value_type> g, random::stream&) returning the mini-batch loss; "
                  "see docs/concepts.md#objective");
  }
  return true;
}

}  // namespace loco
