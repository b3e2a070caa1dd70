#pragma once
// The MergeRule concept (docs/concepts.md#merge-rule).
//
//   rule.apply(const merge::inputs<T>&, std::span<T> x) const
// x holds the worker's current model z on entry and the merged model on exit.
#include <concepts>
#include <loco/merge/inputs.hpp>
#include <span>

namespace loco::concepts::detail {

template <class M, class T>
concept merge_has_apply = requires(const M& m, const merge::inputs<T>& in, std::span<T> x) {
  m.apply(in, x);
};

}  // namespace loco::concepts::detail

namespace loco {

template <class M, class T = float>
concept MergeRule = std::copy_constructible<M> && concepts::detail::merge_has_apply<M, T>;

template <class M, class T = float>
constexpr bool check_merge_rule() {
  static_assert(std::copy_constructible<M>,
                "loco: a MergeRule must be copy-constructible; see docs/concepts.md#merge-rule");
  static_assert(concepts::detail::merge_has_apply<M, T>,
                "loco: a MergeRule needs apply(const merge::inputs<T>&, std::span<T> x) const; "
                "see docs/concepts.md#merge-rule");
  return true;
}

}  // namespace loco
