// Messages: exact sizes, round trips, concatenation, determinism, and the
// non-finite check of every compressor.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <utility>
#include "common.hpp"

using namespace loco_test;
using loco::wire::buffer;
using loco::wire::view;

static_assert(loco::check_compressor<lc::identity>() &&
              loco::check_compressor<lc::identity, double>());
static_assert(loco::check_compressor<lc::fp16>() && loco::check_compressor<lc::fp16, double>());
static_assert(loco::check_compressor<lc::bf16>() && loco::check_compressor<lc::bf16, double>());
static_assert(loco::check_compressor<lc::top_k>() && loco::check_compressor<lc::top_k, double>());
static_assert(loco::check_compressor<lc::top_k_2bit>() &&
              loco::check_compressor<lc::top_k_2bit, double>());
static_assert(loco::check_compressor<lc::random_k>() &&
              loco::check_compressor<lc::random_k, double>());
static_assert(loco::check_compressor<lc::random_k_unscaled>() &&
              loco::check_compressor<lc::random_k_unscaled, double>());
static_assert(loco::check_compressor<lc::qsgd>() && loco::check_compressor<lc::qsgd, double>());
static_assert(loco::check_compressor<lc::scaled_sign>() &&
              loco::check_compressor<lc::scaled_sign, double>());
static_assert(loco::check_compressor<lc::natural>() &&
              loco::check_compressor<lc::natural, double>());
static_assert(loco::check_compressor<lc::error_feedback<lc::qsgd>>() &&
              loco::check_compressor<lc::error_feedback<lc::qsgd>, double>());
static_assert(loco::check_compressor<lc::ef21<lc::top_k>>() &&
              loco::check_compressor<lc::ef21<lc::top_k>, double>());
static_assert(loco::check_compressor<lc::warmup<lc::top_k>>() &&
              loco::check_compressor<lc::warmup<lc::top_k>, double>());
static_assert(loco::check_compressor<lc::size_threshold<lc::natural>>() &&
              loco::check_compressor<lc::size_threshold<lc::natural>, double>());

// Traits as ALGORITHMS.md section 1 gives them.
static_assert(lc::identity::unbiased && lc::identity::contractive);
static_assert(!lc::top_k::unbiased && lc::top_k::contractive);
static_assert(lc::random_k::unbiased && !lc::random_k::contractive);
static_assert(!lc::random_k_unscaled::unbiased && lc::random_k_unscaled::contractive);
static_assert(lc::traits<lc::random_k>::shared_support && !lc::traits<lc::top_k>::shared_support);
// Decorators with memory never take the shared-support path (it would bypass it).
static_assert(!lc::traits<lc::error_feedback<lc::random_k>>::shared_support &&
              !lc::traits<lc::ef21<lc::random_k>>::shared_support);
static_assert(lc::qsgd::unbiased && !lc::qsgd::contractive);
static_assert(!lc::scaled_sign::unbiased && lc::scaled_sign::contractive);
static_assert(lc::natural::unbiased && !lc::natural::contractive);
static_assert(lc::traits<lc::qsgd>::name == "qsgd");
// Sparse decoders, so error_feedback and ef21 touch only the sent entries.
static_assert(lc::traits<lc::top_k>::sparse && lc::traits<lc::top_k_2bit>::sparse &&
              lc::traits<lc::random_k>::sparse && lc::traits<lc::random_k_unscaled>::sparse);
static_assert(!lc::traits<lc::qsgd>::sparse && !lc::traits<lc::identity>::sparse &&
              !lc::traits<lc::error_feedback<lc::top_k>>::sparse);

TEMPLATE_LIST_TEST_CASE("a message takes exactly wire_bytes(d) bytes", "[compress][wire]",
                        all_compressors) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  for (std::size_t d : {10u, 16u, 17u, 33u, 64u, 1000u, 4099u}) {
    CAPTURE(d);
    const auto v = normal_vector<T>(d, d);
    lc::state_t<C, T> s(c, d, 0);
    buffer b;
    for (int round = 0; round < 3; ++round) {
      b.clear();
      c.encode(std::span<const T>(v), s, b);
      if constexpr (requires { c.steps(); }) {
        if (round < 2) {
          CHECK(b.size() == lc::identity{}.wire_bytes<T>(d));
          continue;
        }
      }
      CHECK(b.size() == c.template wire_bytes<T>(d));
    }
  }
}

TEST_CASE("wire sizes follow the formulas of docs/wire-format.md", "[compress][wire]") {
  const std::size_t d = 1000;
  CHECK(lc::identity{}.wire_bytes(d) == 16 + 4 * d);
  CHECK(lc::identity{}.wire_bytes<double>(d) == 16 + 8 * d);
  CHECK(lc::fp16{}.wire_bytes(d) == 16 + 2 * d);
  CHECK(lc::bf16{}.wire_bytes<double>(d) == 16 + 2 * d);
  CHECK(lc::top_k(0.01).wire_bytes(d) == 16 + 4 + 10 * 8);
  CHECK(lc::top_k::with_count(7).wire_bytes<double>(d) == 16 + 4 + 7 * 12);
  CHECK(lc::random_k(0.01).wire_bytes(d) == 16 + 20 + 10 * 4);
  // 10 indices of 10 bits, 10 codes of 2 bits, four levels.
  CHECK(lc::top_k_2bit(0.01).wire_bytes(d) == 16 + 4 + 16 + 13 + 3);
  CHECK(lc::top_k_2bit(0.02).wire_bytes<double>(4096) == 16 + 4 + 32 + 123 + 21);
  CHECK(lc::top_k_2bit::index_bits(1) == 1);
  CHECK(lc::top_k_2bit::index_bits(4096) == 12);
  CHECK(lc::top_k_2bit::index_bits(4097) == 13);
  CHECK(lc::qsgd(1).wire_bytes(d) == 16 + 4 + 4 + 250);             // 2 bits per entry
  CHECK(lc::qsgd(7).wire_bytes(d) == 16 + 4 + 4 + 500);             // 4 bits
  CHECK(lc::qsgd(255).wire_bytes<double>(d) == 16 + 4 + 8 + 1125);  // 9 bits
  CHECK(lc::scaled_sign{}.wire_bytes(d) == 16 + 4 + 125);
  CHECK(lc::natural{}.wire_bytes(d) == 16 + 125 + 1000);  // 9 bits per entry
  CHECK(lc::natural{}.wire_bytes<double>(d) == 16 + 125 + 2000);
}

TEST_CASE("identity round-trips exactly; fp16 and bf16 round to nearest", "[compress]") {
  auto v = normal_vector<float>(1001, 3, 100.0);
  v[0] = 0.0f;
  v[1] = -0.0f;
  v[2] = std::numeric_limits<float>::denorm_min();
  v[3] = 1e30f;  // saturates in fp16
  v[4] = -1e30f;
  v[5] = 6e-8f;  // an fp16 subnormal
  v[6] = 65519.0f;
  const auto id = round_trip(lc::identity{}, std::span<const float>(v));
  CHECK(std::memcmp(id.data(), v.data(), v.size() * sizeof(float)) == 0);
  const auto vd = normal_vector<double>(77, 4);
  const auto idd = round_trip(lc::identity{}, std::span<const double>(vd));
  CHECK(idd == vd);

  const auto h = round_trip(lc::fp16{}, std::span<const float>(v));
  CHECK(h[3] == 65504.0f);
  CHECK(h[4] == -65504.0f);
  CHECK(h[6] == 65504.0f);
  CHECK(std::signbit(h[1]));
  CHECK(h[5] == std::ldexp(1.0f, -24));  // nearest subnormal step
  for (std::size_t i = 7; i < v.size(); ++i) {
    // Reference: round to 11 significant bits, nearest even.
    int e;
    std::frexp(v[i], &e);
    const double ulp = std::ldexp(1.0, std::max(e, -13) - 11);
    const double ref = std::nearbyint(static_cast<double>(v[i]) / ulp) * ulp;
    CHECK(static_cast<double>(h[i]) == ref);
  }
  const auto bh = round_trip(lc::bf16{}, std::span<const float>(v));
  CHECK(bh[3] == 1e30f * 0 + bh[3]);  // finite
  CHECK(std::isfinite(bh[3]));
  for (std::size_t i = 7; i < v.size(); ++i) {
    int e;
    std::frexp(v[i], &e);
    const double ulp = std::ldexp(1.0, e - 8);
    const double ref = std::nearbyint(static_cast<double>(v[i]) / ulp) * ulp;
    CHECK(static_cast<double>(bh[i]) == ref);
  }
}

TEST_CASE("top_k_2bit sends each selected entry as the mean of its sign-and-size group",
          "[compress]") {
  // Top 6 by magnitude: 5, -4, 3, 2, -1, 0.5; their mean magnitude 2.58
  // splits each sign into large and small.
  const std::vector<float> v = {5, -1, 0.5f, -4, 3, 0.1f, -0.2f, 2};
  const auto c = lc::top_k_2bit::with_count(6);
  lc::top_k_2bit::state<float> s(c, v.size(), 0);
  buffer b;
  c.encode(std::span<const float>(v), s, b);
  CHECK(b.size() == c.wire_bytes(v.size()));
  CHECK(b.size() == 16 + 4 + 16 + 3 + 2);  // 3-bit indices, 2-bit codes
  std::vector<float> out(v.size());
  c.decode(view(b), s, std::span<float>(out));
  CHECK(out == std::vector<float>{4, -1, 1.25f, -4, 4, 0, 0, 1.25f});
}

TEST_CASE(
    "top_k_2bit's error is at most the input's norm; under error feedback the messages "
    "add up to the inputs",
    "[compress]") {
  const std::size_t d = 1000;
  const auto c = lc::top_k_2bit(0.02);
  lc::top_k_2bit::state<double> s(c, d, 0);
  std::vector<double> sum_in(d, 0.0), sum_out(d, 0.0), out(d);
  const lc::error_feedback<lc::top_k_2bit> ef(c);
  lc::state_t<lc::error_feedback<lc::top_k_2bit>, double> es(ef, d, 0);
  for (std::uint64_t round = 0; round < 200; ++round) {
    const auto v = normal_vector<double>(d, 100 + round);
    buffer b;
    c.encode(std::span<const double>(v), s, b);
    c.decode(view(b), s, std::span<double>(out));
    double err = 0, norm = 0;
    for (std::size_t i = 0; i < d; ++i) {
      err += (out[i] - v[i]) * (out[i] - v[i]);
      norm += v[i] * v[i];
    }
    CHECK(err < norm);
    buffer e;
    ef.encode(std::span<const double>(v), es, e);
    ef.decode(view(e), es, std::span<double>(out));
    for (std::size_t i = 0; i < d; ++i) {
      sum_in[i] += v[i];
      sum_out[i] += out[i];
    }
  }
  // What was not sent yet is the residual: sum_in - sum_out = e, and e stays
  // bounded while the sums grow.
  double gap = 0, total = 0;
  for (std::size_t i = 0; i < d; ++i) {
    gap = std::max(gap, std::abs(sum_in[i] - sum_out[i] - es.residual()[i]));
    total += sum_in[i] * sum_in[i];
  }
  CHECK(gap < 1e-9);
  CHECK(loco::compress::detail::norm2(std::span<const double>(es.residual())) <
        0.5 * std::sqrt(total));
}

TEMPLATE_LIST_TEST_CASE("messages concatenate: decode reads one and stops after it",
                        "[compress][wire]", all_compressors) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  const std::size_t d = 301;
  const auto v1 = normal_vector<T>(d, 1), v2 = normal_vector<T>(d, 2);
  // The reference: each message encoded and decoded on its own.
  lc::state_t<C, T> tx_a(c, d, 5), rx_a(c, d, 9);
  buffer one, two;
  c.encode(std::span<const T>(v1), tx_a, one);
  c.encode(std::span<const T>(v2), tx_a, two);
  std::vector<T> ref1(d), ref2(d);
  c.decode(view(one), rx_a, std::span<T>(ref1));
  c.decode(view(two), rx_a, std::span<T>(ref2));

  lc::state_t<C, T> tx_b(c, d, 5), rx_b(c, d, 9);
  buffer both;
  c.encode(std::span<const T>(v1), tx_b, both);
  CHECK(both.size() == one.size());
  c.encode(std::span<const T>(v2), tx_b, both);
  CHECK(both.size() == one.size() + two.size());
  view in(both);
  std::vector<T> out1(d), out2(d);
  c.decode(in, rx_b, std::span<T>(out1));
  CHECK(in.position() == one.size());
  c.decode(in, rx_b, std::span<T>(out2));
  CHECK(in.remaining() == 0);
  CHECK(out1 == ref1);
  CHECK(out2 == ref2);
}

TEMPLATE_LIST_TEST_CASE("a run replays bit-identically from its seed; streams differ",
                        "[compress][random]", randomised) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  const std::size_t d = 999;
  const auto v = normal_vector<T>(d, 8);
  auto run = [&](std::uint64_t stream) {
    lc::state_t<C, T> s(c, d, stream);
    std::vector<buffer> msgs(4);
    for (auto& m : msgs) c.encode(std::span<const T>(v), s, m);
    return msgs;
  };
  const auto a = run(3), b = run(3), other = run(4);
  CHECK(a == b);
  CHECK(a[0] != a[1]);  // fresh randomness every round
  if constexpr (lc::traits<C>::shared_support) {
    CHECK(a == other);  // the support depends on (seed, round) only
  } else {
    CHECK(a != other);
  }
}

// The kernels' builds for each ISA (tensor/dispatch.hpp) must
// write the same bytes and decode them to the same values: a message may not
// depend on the CPU that encoded it.
TEMPLATE_LIST_TEST_CASE("the AVX-512, AVX2 and baseline kernels write and read the same bytes",
                        "[compress][dispatch]", all_plain) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  namespace dt = loco::tensor;
  struct restore {
    ~restore() { dt::set_kernel_isa(dt::kernel_isa::avx512); }
  } at_exit;
  const C c = make<C>();
  for (std::size_t d : {1u, 31u, 32u, 33u, 1000u, 4099u}) {
    auto v = normal_vector<T>(d, 21);
    // Zeros, subnormals, values beyond fp16's and bf16's range.
    for (std::size_t i = 0; i < d; i += 7) v[i] = T(0);
    for (std::size_t i = 3; i < d; i += 11) v[i] *= std::numeric_limits<T>::denorm_min() * T(5);
    for (std::size_t i = 5; i < d; i += 13) v[i] *= T(1e5);
    // The sender's state sits 16 bytes past a 64-byte boundary, as a
    // baseline build's heap may place it: a wide kernel must not assume more
    // alignment than the state's type has in every build.
    using S = lc::state_t<C, T>;
    static_assert(alignof(S) <= 16, "compressor states are not over-aligned");
    alignas(64) unsigned char storage[sizeof(S) + 16];
    auto run = [&](dt::kernel_isa isa) {
      dt::set_kernel_isa(isa);
      S* tx = ::new (storage + 16) S(c, d, 3);
      S rx(c, d, 4);
      buffer b;
      c.encode(std::span<const T>(v), *tx, b);
      tx->~S();
      std::vector<T> out(d);
      view in(b);
      c.decode(in, rx, std::span<T>(out));
      return std::pair{b, out};
    };
    const auto [bytes_base, out_base] = run(dt::kernel_isa::baseline);
    for (const auto isa : {dt::kernel_isa::avx2, dt::kernel_isa::avx512}) {
      INFO("d = " << d << ", " << dt::to_string(isa) << " against baseline");
      const auto [bytes, out] = run(isa);
      CHECK(bytes == bytes_base);
      CHECK(std::memcmp(out.data(), out_base.data(), d * sizeof(T)) == 0);
    }
  }
}

TEST_CASE("a default x86-64 build dispatches its kernels to the widest ISA the CPU has",
          "[compress][dispatch]") {
  namespace dt = loco::tensor;
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LOCO_NO_RUNTIME_DISPATCH)
  const char* env = std::getenv("LOCO_KERNEL_ISA");
  if (env == nullptr || *env == '\0') {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
                      __builtin_cpu_supports("bmi2");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512dq");
    CHECK(dt::available_kernel_isa() == (avx512 ? dt::kernel_isa::avx512
                                         : avx2 ? dt::kernel_isa::avx2
                                                : dt::kernel_isa::baseline));
  }
#else
  CHECK(dt::available_kernel_isa() == dt::kernel_isa::baseline);
#endif
  // The setting never goes above what is available.
  dt::set_kernel_isa(dt::kernel_isa::baseline);
  CHECK(dt::active_kernel_isa() == dt::kernel_isa::baseline);
  dt::set_kernel_isa(dt::kernel_isa::avx512);
  CHECK(dt::active_kernel_isa() == dt::available_kernel_isa());
  CHECK(std::string(dt::to_string(dt::kernel_isa::avx512)) == "avx512");
}

TEMPLATE_LIST_TEST_CASE("non-finite input is reported with the compressor and the first bad index",
                        "[compress][finite]", checks_every_entry) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  for (std::size_t d : {100u, 5000u, 300000u}) {
    for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                        -std::numeric_limits<T>::infinity()}) {
      auto v = normal_vector<T>(d, 17);
      const std::size_t at = d / 3 + 1;
      v[at] = bad;
      v[d - 1] = bad;
      lc::state_t<C, T> s(c, d, 0);
      buffer b;
      b.put<std::uint32_t>(0xabcdu);  // messages append: earlier bytes stay
      try {
        c.encode(std::span<const T>(v), s, b);
        FAIL("no non_finite_error");
      } catch (const loco::non_finite_error& e) {
        CHECK(e.index() == at);
        CHECK_THAT(e.what(), Catch::Contains(std::string("compress::") + C::name));
      }
      CHECK(b.size() == 4);
    }
  }
}

TEST_CASE("random_k checks the entries it sends", "[compress][finite]") {
  const auto c = lc::random_k::with_count(10, 1);
  const std::size_t d = 50;
  lc::random_k::state<float> s(c, d, 0);
  const auto support = c.support(s, 0);
  std::vector<float> v(d, 1.0f);
  v[support[3]] = std::numeric_limits<float>::quiet_NaN();
  buffer b;
  try {
    c.encode(std::span<const float>(v), s, b);
    FAIL("no non_finite_error");
  } catch (const loco::non_finite_error& e) {
    CHECK(e.index() == support[3]);
    CHECK_THAT(e.what(), Catch::Contains("compress::random_k input"));
  }
  CHECK(b.empty());
}

TEST_CASE("settings are validated when built", "[compress][config]") {
  CHECK_THROWS_AS(lc::top_k(0.0), loco::config_error);
  CHECK_THROWS_AS(lc::top_k(1.5), loco::config_error);
  CHECK_THROWS_AS(lc::top_k::with_count(0), loco::config_error);
  CHECK_THROWS_AS(lc::random_k(-0.1), loco::config_error);
  CHECK_THROWS_WITH(lc::random_k(0.1, 1, static_cast<lc::sampling>(7)),
                    Catch::Contains("sampling 7 is neither uniform nor stratified"));
  CHECK_THROWS_AS(lc::qsgd(0), loco::config_error);
  CHECK_THROWS_AS(lc::qsgd(40000), loco::config_error);
  CHECK_THROWS_AS((lc::warmup<lc::top_k>(lc::top_k(0.1), 0)), loco::config_error);
  const auto c = lc::top_k::with_count(20);
  try {
    lc::top_k::state<float> s(c, 10, 0);
    FAIL("k > d accepted");
  } catch (const loco::config_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("k = 20") && Catch::Contains("d = 10"));
  }
  CHECK_THROWS_AS((lc::random_k::state<float>(lc::random_k::with_count(11), 10, 0)),
                  loco::config_error);
  CHECK(lc::top_k(0.01).k(1000) == 10);
  CHECK(lc::top_k(0.001).k(10) == 1);  // at least one
  CHECK(lc::random_k(1.0).k(10) == 10);
  // A vector of the wrong length is a caller's error.
  lc::identity::state<float> s(lc::identity{}, 10, 0);
  std::vector<float> v(11);
  buffer b;
  CHECK_THROWS_AS(lc::identity{}.encode(std::span<const float>(v), s, b), loco::config_error);
}
