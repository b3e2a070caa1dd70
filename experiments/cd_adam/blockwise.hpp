#pragma once
// blockwise<C>: C applied to consecutive blocks of the vector separately (for
// a model, one block per layer's weights and one per its intercepts), as deep
// learning code compresses each parameter tensor on its own. A message is the
// blocks' messages one after another. scaled_sign then has one scale per
// block, and top_k keeps its fraction of every block, so a layer with small
// gradients is neither drowned by one scale nor starved of refreshes.
// A compressor of the experiment, not of the library.
#include <cstddef>
#include <cstdint>
#include <loco/concepts/compressor.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace cd_adam_experiment {

template <class C>
class blockwise {
 public:
  static constexpr bool unbiased = C::unbiased;
  static constexpr bool contractive = C::contractive;
  static constexpr const char* name = "blockwise";

  // sizes: the block lengths, each >= 1, summing to the vector's length.
  blockwise(C inner, std::vector<std::size_t> sizes)
      : inner_(std::move(inner)), sizes_(std::move(sizes)) {
    if (sizes_.empty()) throw loco::config_error("blockwise: no blocks");
    for (std::size_t b : sizes_) {
      if (b == 0) throw loco::config_error("blockwise: a block of length 0");
    }
  }

  std::size_t dimension() const noexcept {
    return std::accumulate(sizes_.begin(), sizes_.end(), std::size_t{0});
  }

  template <class T>
  class state {
   public:
    state(const blockwise& c, std::size_t d, std::uint64_t stream) {
      if (d != c.dimension()) {
        throw loco::config_error("blockwise: blocks sum to " + std::to_string(c.dimension()) +
                                 ", the vector has d = " + std::to_string(d));
      }
      inner_.reserve(c.sizes_.size());
      for (std::size_t b : c.sizes_) inner_.emplace_back(c.inner_, b, stream);
    }

   private:
    friend class blockwise;
    std::vector<loco::compress::state_t<C, T>> inner_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, loco::wire::buffer& out) const {
    std::size_t at = 0;
    for (std::size_t b = 0; b < sizes_.size(); ++b) {
      inner_.encode(v.subspan(at, sizes_[b]), s.inner_[b], out);
      at += sizes_[b];
    }
  }

  template <class T>
  void decode(loco::wire::view& in, state<T>& s, std::span<T> out) const {
    if (out.size() != dimension()) {
      in.fail("blocks", "output has " + std::to_string(out.size()) + " entries, the blocks " +
                            std::to_string(dimension()));
    }
    std::size_t at = 0;
    for (std::size_t b = 0; b < sizes_.size(); ++b) {
      inner_.decode(in, s.inner_[b], out.subspan(at, sizes_[b]));
      at += sizes_[b];
    }
  }
  template <class T>
  void decode(loco::wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    (void)d;
    std::size_t total = 0;
    for (std::size_t b : sizes_) total += inner_.template wire_bytes<T>(b);
    return total;
  }

 private:
  C inner_;
  std::vector<std::size_t> sizes_;
};

}  // namespace cd_adam_experiment
