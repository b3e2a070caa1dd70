#pragma once
// identity: sends every entry in T's own width (fp32 or fp64). Lossless; U(0).
// decode(encode(v)) == v bit for bit, so drivers average the dense vector in
// place without serialising it (compress::traits<C>::lossless).
// docs/compressors.md#identity
#include <loco/compress/detail/dense.hpp>
#include <loco/wire/payload.hpp>

namespace loco::compress {

namespace detail {
struct identity_spec {
  template <class T>
  using format = native_format<T>;
  static constexpr wire::payload_kind kind = wire::payload_kind::identity;
  static constexpr const char* name = "identity";
  static constexpr bool unbiased = true, contractive = true, lossless = true;
};
}  // namespace detail

class identity : public detail::dense_cast<detail::identity_spec> {};

}  // namespace loco::compress
