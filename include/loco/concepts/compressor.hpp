#pragma once
// The Compressor concept (docs/concepts.md#compressor).
//
// A compressor is a settings object, cheap to copy. Everything that depends
// on the vector (RNG stream, residuals, scratch) lives in its nested
// `state<T>`, built once per worker and reused every round:
//
//   typename C::template state<T>   constructible from (const C&, d, stream id)
//   c.encode(std::span<const T> v, state<T>&, wire::buffer& out)    appends one message
//   c.decode(wire::view in, state<T>&, std::span<T> out)            overwrites all of out
//   c.wire_bytes(d) -> std::size_t    exact size of one message for a length-d vector
//   C::unbiased, C::contractive       compile-time bools (ALGORITHMS.md section 1)
// Optional, with defaults from compress::traits<C>:
//   C::shared_support   true when every worker derives the same support
//                       without sending indices (default false)
//   C::name             a short name for messages (default "compressor")
//   C::lossless         decode(encode(v)) == v exactly (default false); drivers
//                       then average the dense vector in place, unserialised
//   c.decode_sparse(wire::view& in, state<T>&, put)   calls put(j, x) for the
//                       entries a message sets instead of writing all d
//                       (top_k, top_k_2bit, random_k); traits<C>::sparse
// Or, instead of encode/decode/wire_bytes, a linear compressor (powersgd),
// whose payloads are T values that the driver averages across workers in
// place (an allreduce), in phases:
//   std::span<T> c.begin(state<T>&, std::span<const T> v)   the first payload
//   std::span<T> c.next(state<T>&)     the next payload, after the last was
//                                      averaged; empty when the round is done
//   c.end(state<T>&, std::span<T> out) the averaged approximation of v
// A state that carries history from one call to the next (an RNG position,
// a residual, an estimate, a round counter) saves it for checkpoints:
//   void save(wire::buffer& out) const     appends the history
//   void restore(wire::view& in)           reads exactly what save wrote
// A state without them is taken to hold only scratch (nothing is saved).
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string_view>
#include <type_traits>

namespace loco::compress {

template <class C, class T>
using state_t = typename C::template state<T>;

}  // namespace loco::compress

namespace loco::concepts::detail {

template <class C, class T>
concept compressor_has_state = requires {
  typename C::template state<T>;
};

template <class C, class T>
concept compressor_state_constructible =
    compressor_has_state<C, T> && std::constructible_from < compress::state_t<C, T>,
const C&, std::size_t, std::uint64_t > ;

template <class C, class T>
concept compressor_has_encode = requires(const C& c, std::span<const T> v,
                                         compress::state_t<C, T>& s, wire::buffer& out) {
  c.encode(v, s, out);
};

template <class C, class T>
concept compressor_has_decode = requires(const C& c, wire::view in, compress::state_t<C, T>& s,
                                         std::span<T> out) {
  c.decode(in, s, out);
};

template <class C>
concept compressor_has_wire_bytes = requires(const C& c, std::size_t d) {
  { c.wire_bytes(d) } -> std::convertible_to<std::size_t>;
};

template <class C, class T>
concept compressor_is_linear = requires(const C& c, std::span<const T> v,
                                        compress::state_t<C, T>& s, std::span<T> out) {
  { c.begin(s, v) } -> std::same_as<std::span<T>>;
  { c.next(s) } -> std::same_as<std::span<T>>;
  c.end(s, out);
};

template <bool>
struct constant_bool {};

// A decode_sparse callback that ignores what it is given.
struct ignore_entry {
  template <class T>
  void operator()(std::size_t, T) const noexcept {}
};
template <class C, class T>
concept compressor_decodes_sparse = requires(const C& c, wire::view& in,
                                             compress::state_t<C, T>& s) {
  c.decode_sparse(in, s, ignore_entry{});
};

template <class C>
concept compressor_has_unbiased = requires {
  { C::unbiased } -> std::convertible_to<bool>;
  typename constant_bool<C::unbiased>;  // a compile-time constant
};

template <class C>
concept compressor_has_contractive = requires {
  { C::contractive } -> std::convertible_to<bool>;
  typename constant_bool<C::contractive>;
};

}  // namespace loco::concepts::detail

namespace loco {

template <class C, class T = float>
concept Compressor = std::copy_constructible<C> && std::floating_point<T> &&
    concepts::detail::compressor_state_constructible<C, T> &&
    ((concepts::detail::compressor_has_encode<C, T> &&
      concepts::detail::compressor_has_decode<C, T> &&
      concepts::detail::compressor_has_wire_bytes<C>) ||
     concepts::detail::compressor_is_linear<C, T>)&&concepts::detail::
        compressor_has_unbiased<C>&& concepts::detail::compressor_has_contractive<C>;

// Checks C requirement by requirement so a user sees which one is missing.
// Drivers call this first; it returns true so it can sit in a static_assert.
template <class C, class T = float>
constexpr bool check_compressor() {
  using namespace concepts::detail;
  static_assert(std::copy_constructible<C>,
                "loco: a Compressor must be copy-constructible (a small settings object); "
                "see docs/concepts.md#compressor");
  static_assert(compressor_has_state<C, T>,
                "loco: a Compressor needs a nested `template <class T> class state` holding "
                "per-vector data; see docs/concepts.md#compressor");
  constexpr bool linear = [] {
    if constexpr (compressor_has_state<C, T>) {
      return compressor_is_linear<C, T>;
    } else {
      return false;
    }
  }();
  if constexpr (compressor_has_state<C, T>) {
    static_assert(
        compressor_state_constructible<C, T>,
        "loco: a Compressor's state<T> must be constructible from "
        "(const C&, std::size_t d, std::uint64_t stream); see docs/concepts.md#compressor");
  }
  if constexpr (compressor_has_state<C, T> && !linear) {
    static_assert(compressor_has_encode<C, T>,
                  "loco: a Compressor needs encode(std::span<const T>, state<T>&, wire::buffer&) "
                  "const; see docs/concepts.md#compressor");
    static_assert(compressor_has_decode<C, T>,
                  "loco: a Compressor needs decode(wire::view, state<T>&, std::span<T>) const; "
                  "see docs/concepts.md#compressor");
  }
  static_assert(linear || compressor_has_wire_bytes<C>,
                "loco: a Compressor needs wire_bytes(std::size_t d) const returning the message "
                "size; see docs/concepts.md#compressor");
  static_assert(compressor_has_unbiased<C>,
                "loco: a Compressor needs `static constexpr bool unbiased`; "
                "see docs/concepts.md#compressor");
  static_assert(compressor_has_contractive<C>,
                "loco: a Compressor needs `static constexpr bool contractive`; "
                "see docs/concepts.md#compressor");
  return true;
}

namespace compress {

// Optional members of a compressor, with their defaults.
template <class C>
struct traits {
  static constexpr bool shared_support = [] {
    if constexpr (requires {
                    { C::shared_support } -> std::convertible_to<bool>;
                  }) {
      return static_cast<bool>(C::shared_support);
    } else {
      return false;
    }
  }();
  static constexpr bool lossless = [] {
    if constexpr (requires {
                    { C::lossless } -> std::convertible_to<bool>;
                  }) {
      return static_cast<bool>(C::lossless);
    } else {
      return false;
    }
  }();
  // Averaged by allreduce in phases (begin/next/end) instead of messages.
  static constexpr bool linear = [] {
    if constexpr (concepts::detail::compressor_has_state<C, float>) {
      return concepts::detail::compressor_is_linear<C, float> ||
             concepts::detail::compressor_is_linear<C, double>;
    } else {
      return false;
    }
  }();
  // Has decode_sparse(in, state, put): calls put(j, x) for the entries a
  // message sets (ascending j) instead of writing d values, so decorators
  // with memory (error_feedback, ef21) touch only those.
  static constexpr bool sparse = [] {
    if constexpr (concepts::detail::compressor_has_state<C, float>) {
      return concepts::detail::compressor_decodes_sparse<C, float>;
    } else {
      return false;
    }
  }();
  static constexpr std::string_view name = [] {
    if constexpr (requires {
                    { C::name } -> std::convertible_to<std::string_view>;
                  }) {
      return std::string_view(C::name);
    } else {
      return std::string_view("compressor");
    }
  }();
};

// A compressor state's history, for checkpoints (see the top of this file).
template <class S>
concept saves_state = requires(const S& s, S& m, wire::buffer& out, wire::view& in) {
  s.save(out);
  m.restore(in);
};

template <class S>
void save_state(const S& s, wire::buffer& out) {
  if constexpr (saves_state<S>) s.save(out);
}

template <class S>
void restore_state(S& s, wire::view& in) {
  if constexpr (saves_state<S>) s.restore(in);
}

}  // namespace compress
}  // namespace loco
