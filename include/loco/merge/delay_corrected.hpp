#pragma once
// LOSCAR's delay-corrected merge (ALGORITHMS.md section 3):
//   x[j] = m[j] + (z[j] - y[j])  on the support,  x[j] = z[j]  elsewhere,
// so the Q local steps taken while the average was in flight are kept.
#include <cstddef>
#include <loco/merge/detail/check.hpp>
#include <loco/merge/inputs.hpp>
#include <span>

namespace loco::merge {

class delay_corrected {
 public:
  static constexpr const char* name = "delay_corrected";
  template <class T>
  void apply(const inputs<T>& in, std::span<T> x) const {
    detail::check_shapes("merge::delay_corrected", in, x.size());
    if (in.dense()) {
      for (std::size_t j = 0; j < in.average.size(); ++j) x[j] = in.average[j] + (x[j] - in.y[j]);
    } else {
      for (std::size_t k = 0; k < in.support.size(); ++k) {
        const auto j = in.support[k];
        x[j] = in.average[k] + (x[j] - in.y[j]);
      }
    }
  }
};

}  // namespace loco::merge
