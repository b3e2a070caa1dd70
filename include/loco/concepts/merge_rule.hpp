#pragma once
// The MergeRule concept (docs/concepts.md#merge-rule).
//
//   rule.apply(const merge::inputs<T>&, std::span<T> x) const
// x holds the worker's current model z on entry and the merged model on exit.
// Optional: static constexpr bool reads_model = false, for a rule whose
// result depends only on the average (merge/inputs.hpp says what it allows).
// A rule with state (an outer optimizer that keeps the last global model)
// instead has
//   typename M::template state<T>, built as state<T>(rule, x0), with
//   save(wire::buffer&) const and restore(wire::view&) for checkpoints
//   rule.apply(state<T>&, const merge::inputs<T>&, std::span<T> x) const
// Its state is identical on every worker (it sees only what all see).
#include <concepts>
#include <loco/merge/inputs.hpp>
#include <span>
#include <type_traits>

namespace loco::concepts::detail {

template <class M, class T>
concept merge_has_apply = requires(const M& m, const merge::inputs<T>& in, std::span<T> x) {
  m.apply(in, x);
};

template <class M, class T>
concept merge_has_stateful_apply = requires {
  typename M::template state<T>;
}
&&std::constructible_from<typename M::template state<T>, const M&, std::span<const T>>&& requires(
    const M& m, typename M::template state<T>& s, const merge::inputs<T>& in, std::span<T> x) {
  m.apply(s, in, x);
};

}  // namespace loco::concepts::detail

namespace loco::merge {

// The state a merge rule keeps (an empty one for stateless rules).
struct no_state {
  template <class M, class T>
  no_state(const M&, std::span<const T>) {}
};
namespace detail {
struct stateless_rule {
  template <class T>
  using state = no_state;
};
}  // namespace detail
template <class M, class T>
using state_t = typename std::conditional_t<concepts::detail::merge_has_stateful_apply<M, T>, M,
                                            detail::stateless_rule>::template state<T>;

// Applies rule to x, with its state if it has one.
template <class M, class S, class T>
void apply_rule(const M& rule, S& state, const inputs<T>& in, std::span<T> x) {
  if constexpr (concepts::detail::merge_has_stateful_apply<M, T>) {
    rule.apply(state, in, x);
  } else {
    (void)state;
    rule.apply(in, x);
  }
}

// The last global model, for rules whose state keeps one (the outer
// optimizers); empty for the others. Compressed exchanges take outer
// gradients against it.
template <class T, class S>
std::span<const T> global_model(const S& state) noexcept {
  if constexpr (requires { state.global; }) {
    return state.global;
  } else {
    (void)state;
    return {};
  }
}

}  // namespace loco::merge

namespace loco {

template <class M, class T = float>
concept MergeRule = std::copy_constructible<M> &&
    (concepts::detail::merge_has_apply<M, T> || concepts::detail::merge_has_stateful_apply<M, T>);

template <class M, class T = float>
constexpr bool check_merge_rule() {
  static_assert(std::copy_constructible<M>,
                "loco: a MergeRule must be copy-constructible; see docs/concepts.md#merge-rule");
  static_assert(
      concepts::detail::merge_has_apply<M, T> || concepts::detail::merge_has_stateful_apply<M, T>,
      "loco: a MergeRule needs apply(const merge::inputs<T>&, std::span<T> x) const, "
      "or a nested state<T> and apply(state<T>&, const merge::inputs<T>&, std::span<T>) "
      "const; see docs/concepts.md#merge-rule");
  return true;
}

}  // namespace loco
