#pragma once
// Pieces drivers write into and read out of checkpoint sections: RNG
// streams, compressor states, virtual clocks, strings, and the policy
// description whose fingerprint is in the header. Readers go through
// wire::view, so every length is checked before use; a malformed section
// raises checkpoint_error(format) naming the file and the field.
#include <cstddef>
#include <cstdint>
#include <loco/checkpoint/format.hpp>
#include <loco/concepts/compressor.hpp>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/clock_state.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace loco::checkpoint {

// ---------------------------------------------------------------- policies

// A policy's name (its `name` member, "unnamed" without one), followed by
// its inner policy's in parentheses for decorators: "ef21(top_k)".
template <class P>
std::string policy_name() {
  std::string s;
  if constexpr (requires {
                  { P::name } -> std::convertible_to<std::string_view>;
                }) {
    s = std::string(std::string_view(P::name));
  } else {
    s = "unnamed";
  }
  if constexpr (requires(const P& p) { p.inner(); }) {
    using inner = std::remove_cvref_t<decltype(std::declval<const P&>().inner())>;
    s += "(" + policy_name<inner>() + ")";
  }
  return s;
}

// A compressor's name and traits: "random_k[unbiased,shared]".
template <class C>
std::string compressor_description() {
  using tr = compress::traits<C>;
  std::string flags;
  const auto add = [&](bool on, const char* f) {
    if (!on) return;
    if (!flags.empty()) flags += ",";
    flags += f;
  };
  add(C::unbiased, "unbiased");
  add(C::contractive, "contractive");
  add(tr::shared_support, "shared");
  add(tr::lossless, "lossless");
  add(tr::linear, "linear");
  return policy_name<C>() + "[" + flags + "]";
}

template <class T>
constexpr std::uint8_t value_type_code() noexcept {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "loco: checkpoints hold fp32 or fp64 models");
  return std::is_same_v<T, float> ? 1 : 2;
}

// ---------------------------------------------------------------- scalars and strings

inline void put_string(wire::buffer& out, std::string_view s) {
  out.put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
  out.append(s.data(), s.size());
}
inline std::string get_string(wire::view& in, std::string_view field, std::size_t max_bytes) {
  const auto n = in.get<std::uint32_t>(field);
  if (n > max_bytes) {
    in.fail(field, std::to_string(n) + " bytes exceed the limit " + std::to_string(max_bytes));
  }
  const auto b = in.take(n, field);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

inline void put_bool(wire::buffer& out, bool b) { out.put<std::uint8_t>(b ? 1 : 0); }
inline bool get_bool(wire::view& in, std::string_view field) {
  const auto v = in.get<std::uint8_t>(field);
  if (v > 1) in.fail(field, "flag " + std::to_string(v) + " is neither 0 nor 1");
  return v == 1;
}

// ---------------------------------------------------------------- RNG streams

inline void put_stream(wire::buffer& out, const random::stream& s) {
  const auto snap = s.save();
  for (auto w : snap.words) out.put<std::uint64_t>(w);
  out.put<double>(snap.spare);
  put_bool(out, snap.has_spare);
}
inline void get_stream(wire::view& in, random::stream& s, std::string_view field) {
  random::stream::snapshot snap{};
  for (auto& w : snap.words) w = in.get<std::uint64_t>(field);
  if ((snap.words[0] | snap.words[1] | snap.words[2] | snap.words[3]) == 0) {
    in.fail(field, "the all-zero xoshiro state is invalid");
  }
  snap.spare = in.get<double>(field);
  snap.has_spare = get_bool(in, field);
  s.restore(snap);
}

// ---------------------------------------------------------------- compressor states

// One state as [length u64][its save() bytes], so each restore must consume
// exactly its own bytes.
template <class S>
void put_state(wire::buffer& out, const S& s) {
  const std::size_t at = out.size();
  out.put<std::uint64_t>(0);
  compress::save_state(s, out);
  out.put_at<std::uint64_t>(at, out.size() - at - 8);
}
template <class S>
void get_state(wire::view& in, S& s, std::string_view field) {
  const auto n = in.get<std::uint64_t>(field);
  if (n > in.remaining()) {
    in.fail(field, "length " + std::to_string(n) + " exceeds the " +
                       std::to_string(in.remaining()) + " bytes left");
  }
  wire::view own(in.take(static_cast<std::size_t>(n), field), in.source());
  compress::restore_state(s, own);
  own.expect_end(field);
}

// ---------------------------------------------------------------- virtual clocks

inline void put_clock(wire::buffer& out, const std::optional<sim::clock_state>& c) {
  put_bool(out, c.has_value());
  out.put<double>(c ? c->time : 0.0);
  out.put<std::uint64_t>(c ? c->compute_steps : 0);
}
inline std::optional<sim::clock_state> get_clock(wire::view& in) {
  const bool has = get_bool(in, "clock");
  sim::clock_state c;
  c.time = in.get<double>("clock time");
  c.compute_steps = in.get<std::uint64_t>("clock steps");
  if (!has) return std::nullopt;
  if (!(c.time >= 0.0) || c.time > 1e300) in.fail("clock time", "not a finite time >= 0");
  return c;
}

// ---------------------------------------------------------------- reading sections

// Runs read(contents) and turns a malformed section (a protocol_error from
// wire::view) into checkpoint_error(format) naming the file and field.
template <class Read>
void read_sections(const contents& c, Read&& read) {
  try {
    read(c);
  } catch (const checkpoint_error&) {
    throw;
  } catch (const protocol_error& e) {
    throw checkpoint_error(checkpoint_error::reason::format, c.source(), e.field(), e.what());
  }
}

// Reads a whole section with f(view&) and checks it was consumed exactly.
template <class F>
void read_section(const contents& c, tag t, F&& f) {
  auto in = c.open(t);
  f(in);
  in.expect_end(tag_name(t));
}

}  // namespace loco::checkpoint
