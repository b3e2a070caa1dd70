#pragma once
// ef21<C>: EF21 (Richtarik, Sokolov, Fatkhullin 2021). Each worker keeps an
// estimate h_i of its vector (zero at the start) and sends the compressed
// difference:
//     c_i = C(v_i - h_i);   h_i += decode(c_i);   send c_i
// A receiver keeps ONE state per sender: decoding a message adds c_i to that
// state's copy of h_i and writes h_i to out, so the mean of the outputs over
// senders is the server's h = mean h_i. A non-finite v, or a message that
// would make h_i overflow, is reported before h_i is touched (on both sides).
// docs/compressors.md#ef21
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <loco/compress/detail/common.hpp>
#include <loco/concepts/compressor.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::compress {

template <class C>
class ef21 {
  static_assert(check_compressor<C>());
  static_assert(!traits<C>::linear,
                "loco: ef21 wraps a compressor that encodes messages; "
                "powersgd keeps its own error feedback");

 public:
  static constexpr bool unbiased = false;
  static constexpr bool contractive = false;
  // Never: with a shared support a driver would send only C's values at the
  // common coordinates and bypass this decorator's memory.
  static constexpr bool shared_support = false;
  static constexpr const char* name = "ef21";

  explicit ef21(C inner) : inner_(std::move(inner)) {}
  const C& inner() const noexcept { return inner_; }

  template <class T>
  class state {
   public:
    state(const ef21& c, std::size_t d, std::uint64_t stream)
        : inner_(c.inner_, d, stream), h_(d, T(0)), diff_(d), decoded_(traits<C>::sparse ? 0 : d) {}
    std::size_t dimension() const noexcept { return h_.size(); }
    // The estimate h_i (a sender's own, or a receiver's copy of a sender's),
    // for checkpoints.
    std::span<T> estimate() noexcept { return h_; }
    std::span<const T> estimate() const noexcept { return h_; }
    state_t<C, T>& inner() noexcept { return inner_; }
    void save(wire::buffer& out) const {
      wire::put_values(out, std::span<const T>(h_));
      save_state(inner_, out);
    }
    void restore(wire::view& in) {
      wire::get_values(in, std::span<T>(h_), "estimate");
      if (const auto i = tensor::first_non_finite(std::span<const T>(h_)); i != tensor::npos) {
        in.fail("estimate", "non-finite value at index " + std::to_string(i));
      }
      restore_state(inner_, in);
    }

   private:
    friend class ef21;
    state_t<C, T> inner_;
    std::vector<T> h_, diff_, decoded_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.h_.size(), v.size());
    const std::size_t d = v.size();
    std::uint32_t bad = 0;
    for (std::size_t i = 0; i < d; ++i) {
      const T x = v[i] - s.h_[i];
      bad |= tensor::non_finite_flag(x);
      s.diff_[i] = x;
    }
    if (bad) {
      const std::size_t i = tensor::first_non_finite(v);
      if (i != tensor::npos) detail::throw_non_finite(name, i);
      throw non_finite_error("compress::ef21 input - estimate (overflow)",
                             tensor::first_non_finite(std::span<const T>(s.diff_)));
    }
    const std::size_t start = out.size();
    inner_.encode(std::span<const T>(s.diff_), s.inner_, out);
    // The receiver would reject a message that overflows its copy of h_i
    // (decode below): report it here, before anything is sent or updated.
    const auto overflow = [&](std::size_t i) {
      out.resize(start);
      throw non_finite_error("compress::ef21 estimate + message (overflow)", i);
    };
    if constexpr (traits<C>::sparse) {
      const auto mine = out.bytes().subspan(start);
      if (const std::size_t i = first_overflow(wire::view(mine), s); i != tensor::npos) {
        overflow(i);
      }
      add_sparse(wire::view(mine), s);
    } else {
      wire::view mine(out.bytes().subspan(start));
      inner_.decode(mine, s.inner_, std::span<T>(s.decoded_));
      if (const std::size_t i = add_estimate(s, d); i != tensor::npos) overflow(i);
      std::copy(s.decoded_.begin(), s.decoded_.end(), s.h_.begin());
    }
  }

  // Reads one message of C from the sender this state tracks, adds it to
  // that sender's estimate and writes the estimate to out. A message that
  // would make the estimate overflow is a protocol_error, and the estimate
  // is left as it was (as for any rejected message).
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.h_.size(), out.size());
    const auto reject = [&in](std::size_t i) {
      in.fail("values",
              "the message makes the sender's estimate overflow at index " + std::to_string(i));
    };
    if constexpr (traits<C>::sparse) {
      // Validate the whole message first (a copy of the view), then add.
      if (const std::size_t i = first_overflow(wire::view(in), s); i != tensor::npos) reject(i);
      add_sparse(in, s);
      std::copy(s.h_.begin(), s.h_.end(), out.begin());
    } else {
      inner_.decode(in, s.inner_, std::span<T>(s.decoded_));
      if (const std::size_t i = add_estimate(s, out.size()); i != tensor::npos) reject(i);
      std::copy(s.decoded_.begin(), s.decoded_.end(), s.h_.begin());
      std::copy(s.decoded_.begin(), s.decoded_.end(), out.begin());
    }
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
  // Sparse inner compressors: h_ changes only where the message sets an
  // entry (h + 0 is h), so only those entries are read and written.
  // The first index where h_ + message would not be finite, or npos.
  template <class T>
  std::size_t first_overflow(wire::view&& in, state<T>& s) const {
    std::size_t bad = tensor::npos;
    inner_.decode_sparse(in, s.inner_, [&](std::size_t j, T x) {
      if (bad == tensor::npos && !tensor::is_finite(static_cast<T>(s.h_[j] + x))) bad = j;
    });
    return bad;
  }
  template <class T>
  void add_sparse(wire::view& in, state<T>& s) const {
    inner_.decode_sparse(in, s.inner_, [&h = s.h_](std::size_t j, T x) { h[j] += x; });
  }
  template <class T>
  void add_sparse(wire::view&& in, state<T>& s) const {
    add_sparse(in, s);
  }

  // decoded_ = h_ + decoded_; returns the first index where the sum is not
  // finite, or npos. h_ itself is untouched.
  template <class T>
  static std::size_t add_estimate(state<T>& s, std::size_t d) noexcept {
    std::uint32_t bad = 0;
    for (std::size_t i = 0; i < d; ++i) {
      const T h = s.h_[i] + s.decoded_[i];
      bad |= tensor::non_finite_flag(h);
      s.decoded_[i] = h;
    }
    return bad ? tensor::first_non_finite(std::span<const T>(s.decoded_)) : tensor::npos;
  }

  C inner_;
};

}  // namespace loco::compress
