#pragma once
// The compressor configurations the compressor fuzz targets decode with.
// An input starts with
//   u8  codec        which compressor (modulo codec::count)
//   u8  setting      bit 0: double values (else float); bits 1..7: p
//   u16 d            vector length is 1 + d % max_d
// and p picks k (top_k, top_k_2bit, random_k: 1 + p % d, or d when p = 127), the
// levels s of qsgd (one of qsgd_levels), fp4's block (1 + p) or, for the
// per_tensor codecs, where the layout splits d (layout_of).
#include <array>
#include <cstddef>
#include <cstdint>
#include <loco/compress.hpp>
#include <utility>

#include "common.hpp"

namespace loco_fuzz {

enum class codec : std::uint8_t {
  identity,
  fp16,
  bf16,
  top_k,
  random_k,
  random_k_unscaled,
  qsgd,
  scaled_sign,
  natural,
  fp4,
  per_tensor_top_k,
  per_tensor_qsgd,
  top_k_2bit,
  count
};
inline constexpr const char* codec_names[] = {
    "identity",  "fp16",        "bf16",    "top_k", "random_k",         "random_k_unscaled",
    "qsgd",      "scaled_sign", "natural", "fp4",   "per_tensor_top_k", "per_tensor_qsgd",
    "top_k_2bit"};

// Longer than a dense block (2048 entries), so the block loop is covered.
inline constexpr std::size_t max_d = 2560;
inline constexpr std::uint64_t random_k_seed = 42;
inline constexpr std::array<std::uint32_t, 13> qsgd_levels = {1,  2,   3,   4,   7,    8,    15,
                                                              16, 127, 255, 256, 1023, 32767};

struct codec_config {
  codec kind = codec::identity;
  bool use_double = false;
  std::uint8_t p = 0;  // 0..127
  std::size_t d = 1;
};

inline codec_config read_codec_config(prefix_reader& in) {
  codec_config c;
  c.kind = static_cast<codec>(in.u8() % static_cast<std::uint8_t>(codec::count));
  const std::uint8_t setting = in.u8();
  c.use_double = (setting & 1u) != 0;
  c.p = static_cast<std::uint8_t>(setting >> 1);
  c.d = 1 + in.u16() % max_d;
  return c;
}

inline void put_codec_config(std::vector<std::byte>& out, const codec_config& c) {
  put_u8(out, static_cast<std::uint8_t>(c.kind));
  put_u8(out, static_cast<std::uint8_t>((unsigned{c.p} << 1) | (c.use_double ? 1u : 0u)));
  put_u16(out, static_cast<std::uint16_t>(c.d - 1));
}

inline std::size_t k_of(const codec_config& c) { return c.p == 127 ? c.d : 1 + c.p % c.d; }

// The per_tensor codecs' layout: d split in two tensors at 1 + p % (d - 1)
// (one tensor when d = 1), the first a matrix when it has an even size.
inline loco::tensor::layout layout_of(const codec_config& c) {
  loco::tensor::layout l;
  if (c.d == 1) {
    l.add("t0", {1});
    return l;
  }
  const std::size_t first = 1 + c.p % (c.d - 1);
  if (first % 2 == 0) {
    l.add("t0", {2, first / 2});
  } else {
    l.add("t0", {first});
  }
  l.add("t1", {c.d - first});
  return l;
}

// Calls f.template operator()<T>(compressor) with the configured compressor
// and value type.
template <class F>
void with_codec(const codec_config& c, F&& f) {
  namespace lc = loco::compress;
  auto typed = [&](auto&& compressor) {
    if (c.use_double) {
      f.template operator()<double>(compressor);
    } else {
      f.template operator()<float>(compressor);
    }
  };
  switch (c.kind) {
    case codec::identity:
      return typed(lc::identity{});
    case codec::fp16:
      return typed(lc::fp16{});
    case codec::bf16:
      return typed(lc::bf16{});
    case codec::top_k:
      return typed(lc::top_k::with_count(k_of(c)));
    case codec::random_k:
      return typed(lc::random_k::with_count(k_of(c), random_k_seed));
    case codec::random_k_unscaled:
      return typed(lc::random_k_unscaled::with_count(k_of(c), random_k_seed));
    case codec::qsgd:
      return typed(lc::qsgd(qsgd_levels[c.p % qsgd_levels.size()], 3));
    case codec::scaled_sign:
      return typed(lc::scaled_sign{});
    case codec::natural:
      return typed(lc::natural(5));
    case codec::fp4:
      return typed(lc::fp4(1u + c.p));
    case codec::per_tensor_top_k:
      return typed(lc::per_tensor<lc::top_k>(layout_of(c), lc::top_k(0.25)));
    case codec::per_tensor_qsgd:
      return typed(lc::per_tensor<lc::qsgd>(layout_of(c), lc::qsgd(3, 3)));
    case codec::top_k_2bit:
      return typed(lc::top_k_2bit::with_count(k_of(c)));
    case codec::count:
      break;
  }
}

}  // namespace loco_fuzz
