#pragma once
// What a merge rule sees at the end of a round (ALGORITHMS.md section 3).
#include <cstdint>
#include <span>

namespace loco::merge {

// x (the rule's output span) holds the worker's current model z on entry.
//   y        the snapshot this worker sent (length d). When no step was taken
//            while the aggregate was in flight, z = y and y may be x's own
//            memory (local_sgd passes it without a copy): read y[j] before
//            writing x[j].
//   average  the aggregate over the support (length K, or d when dense)
//   support  the synchronised coordinates, ascending; empty means all d
template <class T>
struct inputs {
  std::span<const T> y;
  std::span<const T> average;
  std::span<const std::uint32_t> support;
  bool dense() const noexcept { return support.empty(); }
};

// A rule whose result depends on neither z nor y (only on the average and
// its own state) says so with `static constexpr bool reads_model = false;`.
// Then, when no step is taken while the aggregate is in flight, local_sgd
// may average the model in place: `average` is x's own memory on entry
// (read average[j] before writing x[j]), and no copy of the model is made.
template <class M>
constexpr bool reads_model() noexcept {
  if constexpr (requires { M::reads_model; }) {
    return M::reads_model;
  } else {
    return true;
  }
}

}  // namespace loco::merge
