#pragma once
// fp16: sends every entry as an IEEE half (round to nearest even, saturating at +-65504).
// Neither unbiased nor contractive: values that underflow to zero are lost.
// docs/compressors.md#fp16
#include <loco/compress/detail/dense.hpp>
#include <loco/wire/payload.hpp>

namespace loco::compress {

namespace detail {
struct fp16_spec {
  template <class T>
  using format = fp16_format<T>;
  static constexpr wire::payload_kind kind = wire::payload_kind::fp16;
  static constexpr const char* name = "fp16";
  static constexpr bool unbiased = false, contractive = false, lossless = false;
};
}  // namespace detail

class fp16 : public detail::dense_cast<detail::fp16_spec> {};

}  // namespace loco::compress
