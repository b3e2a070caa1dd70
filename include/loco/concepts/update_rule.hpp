#pragma once
// The UpdateRule concept (docs/concepts.md#update-rule): how a worker turns
// a gradient into a local step (local_sgd's inner optimizer).
//
//   typename U::template state<T>          per-run state, built as state<T>(rule, d);
//                                          save(wire::buffer&) const and
//                                          restore(wire::view&) when it has any
//   rule.step(state<T>&, std::span<T> x, std::span<const T> g, double eta) const
//                                          x <- one step from g with step size eta
#include <concepts>
#include <cstddef>
#include <span>

namespace loco::concepts::detail {

template <class U, class T>
concept update_has_state = requires {
  typename U::template state<T>;
}
&&std::constructible_from<typename U::template state<T>, const U&, std::size_t>;

template <class U, class T>
concept update_has_step = update_has_state<U, T> &&
    requires(const U& u, typename U::template state<T>& s, std::span<T> x, std::span<const T> g,
             double eta) {
  u.step(s, x, g, eta);
};

}  // namespace loco::concepts::detail

namespace loco {

template <class U, class T = float>
concept UpdateRule = std::copy_constructible<U> && concepts::detail::update_has_state<U, T> &&
    concepts::detail::update_has_step<U, T>;

template <class U, class T = float>
constexpr bool check_update_rule() {
  static_assert(std::copy_constructible<U>,
                "loco: an UpdateRule must be copy-constructible; see docs/concepts.md#update-rule");
  static_assert(concepts::detail::update_has_state<U, T>,
                "loco: an UpdateRule needs a nested template state<T> constructible from "
                "(const rule&, std::size_t d); see docs/concepts.md#update-rule");
  static_assert(concepts::detail::update_has_step<U, T>,
                "loco: an UpdateRule needs step(state<T>&, std::span<T> x, std::span<const T> g, "
                "double eta) const; see docs/concepts.md#update-rule");
  return true;
}

}  // namespace loco
