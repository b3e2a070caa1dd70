#pragma once
// warmup<C>: sends the vector uncompressed (an identity message, in T's own
// width) for the first t0 encodes of a state, then C's messages. The
// receiver tells the two apart by the message kind. C's state is untouched
// during the warm-up (a random_k round counter starts at 0 after it).
// Traits are C's: identity is in both U(0) and B(1).
// docs/compressors.md#warmup
#include <cstddef>
#include <cstdint>
#include <loco/compress/identity.hpp>
#include <loco/concepts/compressor.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>

namespace loco::compress {

template <class C>
class warmup {
  static_assert(check_compressor<C>());
  static_assert(!traits<C>::linear,
                "loco: warmup wraps a compressor that encodes messages; "
                "powersgd keeps its own error feedback");

 public:
  static constexpr bool unbiased = C::unbiased;
  static constexpr bool contractive = C::contractive;
  static constexpr const char* name = "warmup";

  // steps >= 1: encodes 0 .. steps-1 are dense.
  warmup(C inner, std::uint64_t steps) : inner_(std::move(inner)), steps_(steps) {
    if (steps == 0) throw config_error("compress::warmup: steps 0 must be >= 1");
  }
  const C& inner() const noexcept { return inner_; }
  std::uint64_t steps() const noexcept { return steps_; }

  template <class T>
  class state {
   public:
    state(const warmup& c, std::size_t d, std::uint64_t stream)
        : inner_(c.inner_, d, stream), dense_(identity{}, d, stream) {}
    std::size_t dimension() const noexcept { return dense_.dimension(); }
    // Encodes done so far (for checkpoints).
    std::uint64_t step() const noexcept { return step_; }
    void set_step(std::uint64_t t) noexcept { step_ = t; }
    void save(wire::buffer& out) const {
      out.put<std::uint64_t>(step_);
      save_state(inner_, out);
    }
    void restore(wire::view& in) {
      step_ = in.get<std::uint64_t>("warmup step");
      restore_state(inner_, in);
    }
    state_t<C, T>& inner() noexcept { return inner_; }

   private:
    friend class warmup;
    state_t<C, T> inner_;
    identity::state<T> dense_;
    std::uint64_t step_ = 0;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    if (s.step_ < steps_) {
      identity{}.encode(v, s.dense_, out);
    } else {
      inner_.encode(v, s.inner_, out);
    }
    ++s.step_;
  }

  // Reads one message (dense or C's) and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    if (wire::peek_kind(in) == wire::payload_kind::identity) {
      identity{}.decode(in, s.dense_, out);
    } else {
      inner_.decode(in, s.inner_, out);
    }
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  // C's size, which is what every message after the warm-up takes; a warm-up
  // message takes identity's wire_bytes.
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    return inner_.template wire_bytes<T>(d);
  }

 private:
  C inner_;
  std::uint64_t steps_;
};

}  // namespace loco::compress
