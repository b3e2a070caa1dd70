#pragma once
// What a merge rule sees at the end of a round (ALGORITHMS.md section 3).
#include <cstdint>
#include <span>

namespace loco::merge {

// x (the rule's output span) holds the worker's current model z on entry.
//   y        the snapshot this worker sent (length d)
//   average  the aggregate over the support (length K, or d when dense)
//   support  the synchronised coordinates, ascending; empty means all d
template <class T>
struct inputs {
  std::span<const T> y;
  std::span<const T> average;
  std::span<const std::uint32_t> support;
  bool dense() const noexcept { return support.empty(); }
};

}  // namespace loco::merge
