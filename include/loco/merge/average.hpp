#pragma once
// x <- the average, on the synchronised coordinates (all of them when
// dense): plain model averaging of local and mini-batch SGD.
#include <cstddef>
#include <loco/merge/detail/check.hpp>
#include <loco/merge/inputs.hpp>
#include <span>

namespace loco::merge {

class average {
 public:
  static constexpr const char* name = "average";
  static constexpr bool reads_model = false;
  template <class T>
  void apply(const inputs<T>& in, std::span<T> x) const {
    detail::check_shapes("merge::average", in, x.size());
    if (in.average.data() == x.data()) return;  // averaged in place: x is the average
    if (in.dense()) {
      for (std::size_t j = 0; j < in.average.size(); ++j) x[j] = in.average[j];
    } else {
      for (std::size_t k = 0; k < in.support.size(); ++k) x[in.support[k]] = in.average[k];
    }
  }
};

// LOSCAR's naive baseline: the same formula under the name the paper uses.
// It discards the progress made while the average was in flight.
class overwrite : public average {
 public:
  static constexpr const char* name = "overwrite";
};

}  // namespace loco::merge
