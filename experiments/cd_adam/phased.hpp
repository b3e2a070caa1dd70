#pragma once
// phased<Early, Late>: Early's messages for the first `steps` encodes of a
// state, Late's after (for example top_k at 10% first, then top_k at 1%).
// Both compressors may write the same payload kind, so every message starts
// with one tag byte naming its phase and the receiver needs no step count of
// its own. A compressor of the experiment, not of the library: it exists to
// measure whether a larger k early closes top_k 1%'s gap in CD-Adam.
#include <cstddef>
#include <cstdint>
#include <loco/concepts/compressor.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>

namespace cd_adam_experiment {

template <class Early, class Late>
class phased {
 public:
  static constexpr bool unbiased = Early::unbiased && Late::unbiased;
  static constexpr bool contractive = Early::contractive && Late::contractive;
  static constexpr const char* name = "phased";

  phased(Early early, Late late, std::uint64_t steps)
      : early_(std::move(early)), late_(std::move(late)), steps_(steps) {
    if (steps == 0) throw loco::config_error("phased: steps 0 must be >= 1");
  }

  template <class T>
  class state {
   public:
    state(const phased& c, std::size_t d, std::uint64_t stream)
        : early_(c.early_, d, stream), late_(c.late_, d, stream) {}

   private:
    friend class phased;
    loco::compress::state_t<Early, T> early_;
    loco::compress::state_t<Late, T> late_;
    std::uint64_t step_ = 0;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, loco::wire::buffer& out) const {
    const bool early = s.step_ < steps_;
    out.put<std::uint8_t>(early ? 0 : 1);
    if (early) {
      early_.encode(v, s.early_, out);
    } else {
      late_.encode(v, s.late_, out);
    }
    ++s.step_;
  }

  template <class T>
  void decode(loco::wire::view& in, state<T>& s, std::span<T> out) const {
    const auto tag = in.get<std::uint8_t>("phase");
    if (tag == 0) {
      early_.decode(in, s.early_, out);
    } else if (tag == 1) {
      late_.decode(in, s.late_, out);
    } else {
      in.fail("phase", "tag " + std::to_string(tag) + " is neither 0 (early) nor 1 (late)");
    }
  }
  template <class T>
  void decode(loco::wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  // The late phase's size (what every message after the first `steps` takes).
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    return 1 + late_.template wire_bytes<T>(d);
  }

 private:
  Early early_;
  Late late_;
  std::uint64_t steps_;
};

}  // namespace cd_adam_experiment
