#pragma once
// Test-only policies shared by the driver tests: a lossless compressor that
// sends raw values, written from scratch so references share no library code.
#include <cstddef>
#include <cstdint>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <span>

namespace testing_policies {

// Sends the vector as raw values: lossless, so drivers average in place.
struct raw {
  static constexpr bool unbiased = true, contractive = true, lossless = true;
  template <class T>
  struct state {
    state(const raw&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T> v, state<T>&, loco::wire::buffer& out) const {
    for (T x : v) out.put(x);
  }
  template <class T>
  void decode(loco::wire::view in, state<T>&, std::span<T> out) const {
    for (auto& x : out) x = in.get<T>("value");
  }
  std::size_t wire_bytes(std::size_t d) const { return 8 * d; }
};

}  // namespace testing_policies
