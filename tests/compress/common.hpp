#pragma once
// Shared by the compressor tests: one configured instance of each
// compressor, type lists by property, and random vectors.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/compress.hpp>
#include <loco/random/stream.hpp>
#include <span>
#include <tuple>
#include <vector>

namespace loco_test {

namespace lc = loco::compress;

// A compressor and the value type it runs on.
template <class C, class T>
struct with {
  using compressor = C;
  using value = T;
};

// random_k drawing stratified supports: a type of its own here, so that the
// type lists below run it.
struct random_k_stratified : lc::random_k {
  random_k_stratified() : lc::random_k(0.25, 42, lc::sampling::stratified) {}
};

// One configured instance of each compressor the tests use.
template <class C>
C make();
template <>
inline random_k_stratified make<random_k_stratified>() {
  return {};
}
template <>
inline lc::identity make<lc::identity>() {
  return {};
}
template <>
inline lc::fp16 make<lc::fp16>() {
  return {};
}
template <>
inline lc::bf16 make<lc::bf16>() {
  return {};
}
template <>
inline lc::top_k make<lc::top_k>() {
  return lc::top_k(0.1);
}
template <>
inline lc::top_k_2bit make<lc::top_k_2bit>() {
  return lc::top_k_2bit(0.1);
}
template <>
inline lc::random_k make<lc::random_k>() {
  return lc::random_k(0.25, 42);
}
template <>
inline lc::random_k_unscaled make<lc::random_k_unscaled>() {
  return lc::random_k_unscaled(0.25, 42);
}
template <>
inline lc::qsgd make<lc::qsgd>() {
  return lc::qsgd(3, 7);
}
template <>
inline lc::scaled_sign make<lc::scaled_sign>() {
  return {};
}
template <>
inline lc::natural make<lc::natural>() {
  return lc::natural(11);
}
template <>
inline lc::fp4 make<lc::fp4>() {
  return lc::fp4(8);  // several blocks, the last one short, in small test vectors
}
template <>
inline lc::error_feedback<lc::top_k> make<lc::error_feedback<lc::top_k>>() {
  return lc::error_feedback<lc::top_k>(lc::top_k(0.1));
}
template <>
inline lc::error_feedback<lc::random_k_unscaled> make<lc::error_feedback<lc::random_k_unscaled>>() {
  return lc::error_feedback<lc::random_k_unscaled>(lc::random_k_unscaled(0.25, 42));
}
template <>
inline lc::ef21<lc::top_k> make<lc::ef21<lc::top_k>>() {
  return lc::ef21<lc::top_k>(lc::top_k(0.1));
}
template <>
inline lc::ef21<lc::scaled_sign> make<lc::ef21<lc::scaled_sign>>() {
  return lc::ef21<lc::scaled_sign>(lc::scaled_sign{});
}
template <>
inline lc::warmup<lc::qsgd> make<lc::warmup<lc::qsgd>>() {
  return lc::warmup<lc::qsgd>(lc::qsgd(3, 7), 2);
}
template <>
inline lc::size_threshold<lc::top_k> make<lc::size_threshold<lc::top_k>>() {
  return lc::size_threshold<lc::top_k>(lc::top_k(0.1), 16);
}

// Every plain compressor, on float and double.
using all_plain =
    std::tuple<with<lc::identity, float>, with<lc::identity, double>, with<lc::fp16, float>,
               with<lc::fp16, double>, with<lc::bf16, float>, with<lc::bf16, double>,
               with<lc::top_k, float>, with<lc::top_k, double>, with<lc::random_k, float>,
               with<lc::random_k, double>, with<lc::random_k_unscaled, float>,
               with<lc::random_k_unscaled, double>, with<lc::qsgd, float>, with<lc::qsgd, double>,
               with<lc::scaled_sign, float>, with<lc::scaled_sign, double>,
               with<lc::natural, float>, with<lc::natural, double>, with<lc::fp4, float>,
               with<lc::fp4, double>, with<lc::top_k_2bit, float>, with<lc::top_k_2bit, double>,
               with<random_k_stratified, float>, with<random_k_stratified, double>>;

// Plain compressors and decorators: everything that encodes a message.
using all_compressors = decltype(std::tuple_cat(
    all_plain{},
    std::tuple<with<lc::error_feedback<lc::top_k>, float>,
               with<lc::error_feedback<lc::random_k_unscaled>, double>,
               with<lc::ef21<lc::top_k>, float>, with<lc::ef21<lc::scaled_sign>, double>,
               with<lc::warmup<lc::qsgd>, float>, with<lc::size_threshold<lc::top_k>, float>>{}));

// Compressors that check every entry for NaN and Inf (random_k reads, and
// so checks, only the k entries it sends).
using checks_every_entry = std::tuple<
    with<lc::identity, float>, with<lc::identity, double>, with<lc::fp16, float>,
    with<lc::bf16, double>, with<lc::top_k, float>, with<lc::top_k, double>, with<lc::qsgd, float>,
    with<lc::qsgd, double>, with<lc::scaled_sign, float>, with<lc::scaled_sign, double>,
    with<lc::natural, float>, with<lc::natural, double>, with<lc::fp4, float>,
    with<lc::fp4, double>, with<lc::error_feedback<lc::top_k>, float>,
    with<lc::error_feedback<lc::random_k_unscaled>, double>, with<lc::ef21<lc::top_k>, float>,
    with<lc::top_k_2bit, float>, with<lc::top_k_2bit, double>>;

// Randomised compressors: the same seed and stream replay the same bytes.
using randomised =
    std::tuple<with<lc::random_k, float>, with<lc::random_k, double>, with<lc::qsgd, float>,
               with<lc::qsgd, double>, with<lc::natural, float>, with<lc::natural, double>,
               with<random_k_stratified, float>>;

// Unbiased: E C(v) = v.
using unbiased_list =
    std::tuple<with<lc::identity, float>, with<lc::random_k, double>, with<lc::random_k, float>,
               with<lc::qsgd, double>, with<lc::qsgd, float>, with<lc::natural, double>,
               with<lc::natural, float>>;

// Contractive: E||C(v) - v||^2 <= (1 - delta) ||v||^2.
using contractive_list = std::tuple<with<lc::identity, float>, with<lc::top_k, double>,
                                    with<lc::top_k, float>, with<lc::random_k_unscaled, double>,
                                    with<lc::scaled_sign, double>, with<lc::scaled_sign, float>>;

template <class T>
std::vector<T> normal_vector(std::size_t d, std::uint64_t seed, double scale = 1.0) {
  loco::random::stream rng(seed);
  std::vector<T> v(d);
  for (auto& x : v) x = static_cast<T>(scale * rng.normal());
  return v;
}

template <class T>
double sq_dist(std::span<const T> a, std::span<const T> b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double e = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += e * e;
  }
  return s;
}

template <class T>
double sq_norm(std::span<const T> a) {
  double s = 0;
  for (const T x : a) s += static_cast<double>(x) * static_cast<double>(x);
  return s;
}

// Encode then decode one vector through fresh sender and receiver states.
template <class C, class T>
std::vector<T> round_trip(const C& c, std::span<const T> v, std::uint64_t stream = 0) {
  lc::state_t<C, T> tx(c, v.size(), stream), rx(c, v.size(), stream + 1000);
  loco::wire::buffer b;
  c.encode(v, tx, b);
  std::vector<T> out(v.size());
  loco::wire::view in(b);
  c.decode(in, rx, std::span<T>(out));
  return out;
}

}  // namespace loco_test
