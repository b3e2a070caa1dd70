#pragma once
// size_threshold<C>: vectors shorter than min_size travel uncompressed (an
// identity message in T's own width), longer ones through C. Small tensors
// such as biases cost little dense and are where compression errs most; a
// top_k of 1% of a 10-entry vector is not even defined. C's state is only
// built for vectors it will compress.
// docs/compressors.md#size_threshold
#include <cstddef>
#include <cstdint>
#include <loco/compress/identity.hpp>
#include <loco/concepts/compressor.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <optional>
#include <span>

namespace loco::compress {

template <class C>
class size_threshold {
  static_assert(check_compressor<C>());
  static_assert(!traits<C>::linear,
                "loco: size_threshold wraps a compressor that encodes messages; "
                "powersgd keeps its own error feedback");

 public:
  static constexpr bool unbiased = C::unbiased;
  static constexpr bool contractive = C::contractive;
  static constexpr const char* name = "size_threshold";

  // Vectors with d < min_size are sent dense.
  size_threshold(C inner, std::size_t min_size) : inner_(std::move(inner)), min_size_(min_size) {}
  const C& inner() const noexcept { return inner_; }
  std::size_t min_size() const noexcept { return min_size_; }
  bool dense(std::size_t d) const noexcept { return d < min_size_; }

  template <class T>
  class state {
   public:
    state(const size_threshold& c, std::size_t d, std::uint64_t stream)
        : dense_(identity{}, d, stream) {
      if (!c.dense(d)) inner_.emplace(c.inner_, d, stream);
    }
    std::size_t dimension() const noexcept { return dense_.dimension(); }
    // C's state, or nullptr for a vector sent dense.
    state_t<C, T>* inner() noexcept { return inner_ ? &*inner_ : nullptr; }
    void save(wire::buffer& out) const {
      if (inner_) save_state(*inner_, out);
    }
    void restore(wire::view& in) {
      if (inner_) restore_state(*inner_, in);
    }

   private:
    friend class size_threshold;
    identity::state<T> dense_;
    std::optional<state_t<C, T>> inner_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    if (s.inner_) {
      inner_.encode(v, *s.inner_, out);
    } else {
      identity{}.encode(v, s.dense_, out);
    }
  }

  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    if (s.inner_) {
      inner_.decode(in, *s.inner_, out);
    } else {
      identity{}.decode(in, s.dense_, out);
    }
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    return dense(d) ? identity{}.wire_bytes<T>(d) : inner_.template wire_bytes<T>(d);
  }

 private:
  C inner_;
  std::size_t min_size_;
};

}  // namespace loco::compress
