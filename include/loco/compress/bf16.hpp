#pragma once
// bf16: sends every entry as a bfloat16 (round to nearest even, saturating at the largest
// finite bf16).
// Neither unbiased nor contractive: values that underflow to zero are lost.
// docs/compressors.md#bf16
#include <loco/compress/detail/dense.hpp>
#include <loco/wire/payload.hpp>

namespace loco::compress {

namespace detail {
struct bf16_spec {
  template <class T>
  using format = bf16_format<T>;
  static constexpr wire::payload_kind kind = wire::payload_kind::bf16;
  static constexpr const char* name = "bf16";
  static constexpr bool unbiased = false, contractive = false, lossless = false;
};
}  // namespace detail

class bf16 : public detail::dense_cast<detail::bf16_spec> {};

}  // namespace loco::compress
