#pragma once
// error_feedback<C>: classic error feedback around any compressor. The worker
// keeps a residual e (zero at the start):
//     p = v + beta e;   m = C(p);   e = p - decode(m);   send m
// with decay beta = 1 by default; SparseLoCo (arXiv 2508.15706) decays the
// residual (beta < 1), which then plays the part of outer momentum.
// A message is C's own, so the receiver decodes it as C would. A non-finite
// v is reported before e is touched, and a p that overflows is reported
// before e is updated, so the residual never holds a NaN or Inf.
// docs/compressors.md#error_feedback
#include <cstddef>
#include <cstdint>
#include <loco/compress/detail/common.hpp>
#include <loco/concepts/compressor.hpp>
#include <loco/error.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace loco::compress {

template <class C>
class error_feedback {
  static_assert(check_compressor<C>());
  static_assert(!traits<C>::linear,
                "loco: error_feedback wraps a compressor that encodes messages; "
                "powersgd keeps its own error feedback");

 public:
  static constexpr bool unbiased = false;
  static constexpr bool contractive = false;
  // Never: with a shared support a driver would send only C's values at the
  // common coordinates and bypass this decorator's memory.
  static constexpr bool shared_support = false;
  static constexpr const char* name = "error_feedback";

  // decay in (0, 1]: the share of the residual carried into the next round.
  explicit error_feedback(C inner, double decay = 1.0) : inner_(std::move(inner)), decay_(decay) {
    if (!(decay > 0.0 && decay <= 1.0)) {
      throw config_error("compress::error_feedback: decay " + std::to_string(decay) +
                         " is outside (0, 1]");
    }
  }
  const C& inner() const noexcept { return inner_; }
  double decay() const noexcept { return decay_; }

  template <class T>
  class state {
   public:
    state(const error_feedback& c, std::size_t d, std::uint64_t stream)
        : inner_(c.inner_, d, stream), e_(d, T(0)), p_(d), decoded_(traits<C>::sparse ? 0 : d) {}
    std::size_t dimension() const noexcept { return e_.size(); }
    // The residual e, for checkpoints (save it, or write a saved one back).
    std::span<T> residual() noexcept { return e_; }
    std::span<const T> residual() const noexcept { return e_; }
    state_t<C, T>& inner() noexcept { return inner_; }
    void save(wire::buffer& out) const {
      wire::put_values(out, std::span<const T>(e_));
      save_state(inner_, out);
    }
    void restore(wire::view& in) {
      wire::get_values(in, std::span<T>(e_), "residual");
      if (const auto i = tensor::first_non_finite(std::span<const T>(e_)); i != tensor::npos) {
        in.fail("residual", "non-finite value at index " + std::to_string(i));
      }
      restore_state(inner_, in);
    }

   private:
    friend class error_feedback;
    state_t<C, T> inner_;
    std::vector<T> e_, p_, decoded_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.e_.size(), v.size());
    const std::size_t d = v.size();
    std::uint32_t bad = 0;
    const T beta = static_cast<T>(decay_);  // 1 * e is e exactly: no cost to the default
    for (std::size_t i = 0; i < d; ++i) {
      const T p = v[i] + beta * s.e_[i];
      bad |= tensor::non_finite_flag(p);
      s.p_[i] = p;
    }
    if (bad) {
      const std::size_t i = tensor::first_non_finite(v);
      if (i != tensor::npos) detail::throw_non_finite(name, i);
      throw non_finite_error("compress::error_feedback input + residual (overflow)",
                             tensor::first_non_finite(std::span<const T>(s.p_)));
    }
    const std::size_t start = out.size();
    inner_.encode(std::span<const T>(s.p_), s.inner_, out);
    wire::view mine(out.bytes().subspan(start));
    if constexpr (traits<C>::sparse) {
      // e = p off the sent entries (p - 0 is p, bit for bit): take p's
      // buffer, then subtract only what was sent.
      std::swap(s.e_, s.p_);
      inner_.decode_sparse(mine, s.inner_, [&e = s.e_](std::size_t j, T x) { e[j] -= x; });
    } else {
      inner_.decode(mine, s.inner_, std::span<T>(s.decoded_));
      for (std::size_t i = 0; i < d; ++i) s.e_[i] = s.p_[i] - s.decoded_[i];
    }
  }

  // Reads one message of C and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    inner_.decode(in, s.inner_, out);
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    return inner_.template wire_bytes<T>(d);
  }

 private:
  C inner_;
  double decay_;
};

}  // namespace loco::compress
