#pragma once
// identity: sends every entry in T's own width (fp32 or fp64). Lossless; U(0).
// docs/compressors.md#identity
#include <cstddef>
#include <cstdint>
#include <loco/compress/detail/common.hpp>
#include <loco/compress/detail/dense.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>

namespace loco::compress {

class identity {
 public:
  static constexpr bool unbiased = true;
  static constexpr bool contractive = true;
  // decode(encode(v)) == v bit for bit, so drivers average the dense vector
  // in place without serialising it (compress::traits<C>::lossless).
  static constexpr bool lossless = true;
  static constexpr const char* name = "identity";

  // Nothing depends on the vector but its length.
  template <class T>
  class state {
   public:
    state(const identity&, std::size_t d, std::uint64_t /*stream*/)
        : d_(detail::checked_dimension(name, d)) {}
    std::size_t dimension() const noexcept { return d_; }

   private:
    std::size_t d_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.dimension(), v.size());
    detail::dense_encode<detail::native_format<T>>(name, wire::payload_kind::identity, v, out);
  }

  // Reads one message and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.dimension(), out.size());
    detail::dense_decode<detail::native_format<T>>(wire::payload_kind::identity, in, out);
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const noexcept {
    return wire::header_bytes + d * detail::native_format<T>::width;
  }
};

}  // namespace loco::compress
