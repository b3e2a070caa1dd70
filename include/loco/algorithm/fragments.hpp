#pragma once
// algorithm::fragments: how Streaming DiLoCo (Douillard et al. 2025) cuts
// the model into P parts that are synchronised in turn. local_sgd's round r
// then exchanges and merges fragment r mod P only, so each fragment syncs
// every P rounds and the largest message is about d/P values.
//
//   strided   whole tensors of the objective's layout, tensor i in fragment
//             i mod P (the paper's strided layer groups)
//   balanced  whole tensors, each in the fragment with the fewest values so
//             far, largest first (even sizes when the tensors allow it)
//   shards    P contiguous ranges of equal size (+-1), ignoring tensors
//
// A model of a single tensor (objectives without a layout) is always cut
// into shards. Whole-tensor splits need at least P tensors.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <loco/error.hpp>
#include <loco/tensor/layout.hpp>
#include <numeric>
#include <string>
#include <vector>

namespace loco::algorithm {

struct fragments {
  enum class split { strided, balanced, shards };

  std::size_t count = 1;  // P; 1 synchronises the whole model every round
  split by = split::strided;

  static const char* name_of(split s) noexcept {
    switch (s) {
      case split::strided:
        return "strided";
      case split::balanced:
        return "balanced";
      case split::shards:
        return "shards";
    }
    return "?";
  }

  // The coordinates of each fragment, ascending; P lists that together hold
  // every coordinate of the model once. Empty when count is 1 (the whole
  // model, which the driver handles without index lists).
  std::vector<std::vector<std::uint32_t>> of(const tensor::layout& model) const {
    const std::size_t d = model.dimension();
    if (count == 0) throw config_error("fragments: count 0 must be >= 1");
    if (count == 1) return {};
    if (count > d) {
      throw config_error("fragments: count " + std::to_string(count) + " exceeds the model's " +
                         std::to_string(d) + " values");
    }
    if (d > std::numeric_limits<std::uint32_t>::max()) {
      throw config_error("fragments: a model of " + std::to_string(d) +
                         " values is too large for fragment index lists (at most 2^32 - 1)");
    }
    std::vector<std::vector<std::uint32_t>> parts(count);
    const auto take = [&](std::size_t p, std::size_t begin, std::size_t size) {
      for (std::size_t j = begin; j < begin + size; ++j)
        parts[p].push_back(static_cast<std::uint32_t>(j));
    };
    if (by == split::shards || model.size() == 1) {
      for (std::size_t p = 0; p < count; ++p) {
        const std::size_t begin = d * p / count, end = d * (p + 1) / count;
        take(p, begin, end - begin);
      }
      return parts;
    }
    if (model.size() < count) {
      throw config_error("fragments: " + std::string(name_of(by)) +
                         " fragments of whole tensors need at least count (" +
                         std::to_string(count) + ") tensors; the layout has " +
                         std::to_string(model.size()) + " (use split::shards)");
    }
    std::vector<std::size_t> owner(model.size());
    if (by == split::strided) {
      for (std::size_t i = 0; i < model.size(); ++i) owner[i] = i % count;
    } else {
      std::vector<std::size_t> order(model.size()), load(count, 0);
      std::iota(order.begin(), order.end(), std::size_t{0});
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return model[a].size > model[b].size; });
      for (std::size_t i : order) {
        const auto lightest =
            static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
        owner[i] = lightest;
        load[lightest] += model[i].size;
      }
    }
    for (std::size_t i = 0; i < model.size(); ++i) take(owner[i], model[i].offset, model[i].size);
    return parts;
  }
};

}  // namespace loco::algorithm
