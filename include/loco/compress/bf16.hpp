#pragma once
// bf16: sends every entry as a bfloat16 (round to nearest even, saturating at the largest finite bf16).
// docs/compressors.md#bf16
#include <cstddef>
#include <cstdint>
#include <span>
#include <loco/compress/detail/common.hpp>
#include <loco/compress/detail/dense.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>

namespace loco::compress {

class bf16 {
 public:
  static constexpr bool unbiased = false;
  static constexpr bool contractive = false;
  static constexpr const char* name = "bf16";

  // Nothing depends on the vector but its length.
  template <class T>
  class state {
   public:
    state(const bf16&, std::size_t d, std::uint64_t /*stream*/)
        : d_(detail::checked_dimension(name, d)) {}
    std::size_t dimension() const noexcept { return d_; }

   private:
    std::size_t d_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.dimension(), v.size());
    detail::dense_encode<detail::bf16_format<T>>(name, wire::payload_kind::bf16, v, out);
  }

  // Reads one message and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.dimension(), out.size());
    detail::dense_decode<detail::bf16_format<T>>(wire::payload_kind::bf16, in, out);
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const noexcept {
    return wire::header_bytes + d * detail::bf16_format<T>::width;
  }
};

}  // namespace loco::compress
