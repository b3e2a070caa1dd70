#pragma once
// A counted run of values: [count u64][count values, little-endian]. Used by
// checkpoints for models, moments, residuals and estimates; reading checks
// the count against the destination before touching the bytes.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/wire/buffer.hpp>
#include <loco/wire/endian.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <string_view>

namespace loco::wire {

template <wire_scalar T>
void put_values(buffer& out, std::span<const T> v) {
  out.put<std::uint64_t>(v.size());
  if constexpr (std::endian::native == std::endian::little) {
    out.append(v.data(), v.size_bytes());
  } else {
    for (T x : v) out.put<T>(x);
  }
}

// Reads exactly out.size() values; a different count is a protocol_error.
template <wire_scalar T>
void get_values(view& in, std::span<T> out, std::string_view field) {
  const auto count = in.get<std::uint64_t>(field);
  if (count != out.size()) {
    in.fail(field,
            "holds " + std::to_string(count) + " values, expected " + std::to_string(out.size()));
  }
  const auto bytes = in.take(out.size_bytes(), field);
  if constexpr (std::endian::native == std::endian::little) {
    if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  } else {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = load_le<T>(bytes.data() + i * sizeof(T));
  }
}

}  // namespace loco::wire
