#pragma once
// Archives: one list of sections, read and written by the same code. A
// driver's state type lists its checkpoint sections once,
//
//   template <class Archive>
//   void sections(Archive& a) {
//     a.section(tags::counters, field(t, "step"), a.stop_agreement());
//     a.section(tags::model, field(x, "model"));
//   }
//
// and section_writer turns that into bytes, section_reader back into the
// fields, so adding a field and its checkpoint entry is one edit. The bytes
// are those of docs/checkpoint.md: each field in order, with the encodings
// of state.hpp (vectors as count + values, compressor states length-prefixed).
// A field's name is what a checkpoint_error names when it is malformed.
#include <cstddef>
#include <cstdint>
#include <loco/checkpoint/format.hpp>
#include <loco/checkpoint/state.hpp>
#include <loco/random/stream.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace loco::checkpoint {

// A scalar, vector of scalars or random stream, with its name.
template <class V>
struct named {
  V& value;
  std::string_view name;
};
template <class V>
named<V> field(V& value, std::string_view name) {
  return {value, name};
}

// A compressor state (length-prefixed bytes of its save()).
template <class S>
struct state_field {
  S& value;
  std::string_view name;
};
template <class S>
state_field<S> compressor_state(S& s, std::string_view name) {
  return {s, name};
}

// Several compressor states. With a count, the reader refuses a file whose
// count differs from this run's; without, the run's own count is assumed.
template <class S>
struct states_field {
  std::vector<S>& value;
  std::string_view name;
  std::string_view count_name;  // empty: no count is stored
};
template <class S>
states_field<S> compressor_states(std::vector<S>& s, std::string_view name) {
  return {s, name, {}};
}
template <class S>
states_field<S> counted_compressor_states(std::vector<S>& s, std::string_view count_name,
                                          std::string_view name) {
  return {s, name, count_name};
}

// A counter that must read back as the value the run already holds.
struct expected_field {
  std::uint64_t value;
  std::string_view name;
};
inline expected_field expect(std::uint64_t value, std::string_view name) { return {value, name}; }

class section_writer {
 public:
  // `stop_agreement`: whether this run agrees on a stop flag after a save.
  section_writer(writer& w, bool stop_agreement) : w_(w), stop_agreement_(stop_agreement) {}

  template <class... Fields>
  void section(tag t, const Fields&... fields) {
    w_.section(t, [&](wire::buffer& b) { (put(b, fields), ...); });
  }
  named<bool> stop_agreement() { return {stop_agreement_, "stop agreement"}; }

 private:
  template <class V>
  static void put(wire::buffer& b, const named<V>& f) {
    using U = std::remove_const_t<V>;
    if constexpr (std::is_same_v<U, bool>) {
      put_bool(b, f.value);
    } else if constexpr (std::is_same_v<U, random::stream>) {
      put_stream(b, f.value);
    } else if constexpr (std::is_arithmetic_v<U>) {
      b.put<wire_type<U>>(static_cast<wire_type<U>>(f.value));
    } else {
      wire::put_values<typename U::value_type>(b, f.value);
    }
  }
  template <class S>
  static void put(wire::buffer& b, const state_field<S>& f) {
    put_state(b, f.value);
  }
  template <class S>
  static void put(wire::buffer& b, const states_field<S>& f) {
    if (!f.count_name.empty()) b.put<std::uint32_t>(static_cast<std::uint32_t>(f.value.size()));
    for (const auto& s : f.value) put_state(b, s);
  }
  static void put(wire::buffer& b, const expected_field& f) { b.put<std::uint64_t>(f.value); }

  // Counts are stored as u64, whatever their C++ type.
  template <class U>
  using wire_type = std::conditional_t<std::is_integral_v<U>, std::uint64_t, U>;

  writer& w_;
  bool stop_agreement_;
};

class section_reader {
 public:
  explicit section_reader(const contents& c) : c_(c) {}

  template <class... Fields>
  void section(tag t, const Fields&... fields) {
    read_section(c_, t, [&](wire::view& in) { (get(in, fields), ...); });
  }
  // After reading: whether the saving run agreed on a stop flag after the save.
  named<bool> stop_agreement() { return {saver_agreed_, "stop agreement"}; }
  bool saver_agreed() const noexcept { return saver_agreed_; }

 private:
  template <class V>
  static void get(wire::view& in, const named<V>& f) {
    if constexpr (std::is_same_v<V, bool>) {
      f.value = get_bool(in, f.name);
    } else if constexpr (std::is_same_v<V, random::stream>) {
      get_stream(in, f.value, f.name);
    } else if constexpr (std::is_integral_v<V>) {
      f.value = static_cast<V>(in.get<std::uint64_t>(f.name));
    } else if constexpr (std::is_arithmetic_v<V>) {
      f.value = in.get<V>(f.name);
    } else {
      wire::get_values<typename V::value_type>(in, std::span(f.value), f.name);
    }
  }
  template <class S>
  static void get(wire::view& in, const state_field<S>& f) {
    get_state(in, f.value, f.name);
  }
  template <class S>
  static void get(wire::view& in, const states_field<S>& f) {
    if (!f.count_name.empty() && in.get<std::uint32_t>(f.count_name) != f.value.size()) {
      in.fail(f.count_name, "count differs from this run's");
    }
    for (auto& s : f.value) get_state(in, s, f.name);
  }
  static void get(wire::view& in, const expected_field& f) {
    if (in.get<std::uint64_t>(f.name) != f.value) in.fail(f.name, "differs");
  }

  const contents& c_;
  bool saver_agreed_ = false;
};

}  // namespace loco::checkpoint
