// Step sizes, merge rules and update rules against their formulas on
// hand-made values.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/merge/outer.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <loco/stepsize/warmup.hpp>
#include <loco/tensor/dispatch.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/tensor/sqrt.hpp>
#include <loco/update/adamw.hpp>
#include <vector>

using loco::stepsize::context;

TEST_CASE("stepsize::constant and polynomial follow their formulas", "[stepsize]") {
  CHECK(loco::stepsize::constant(0.1).eta(context{}) == 0.1);
  loco::stepsize::polynomial p(2.0, 0.75);
  context ctx;
  ctx.t = 16;
  CHECK(p.eta(ctx) == Approx(2.0 * std::pow(16.0, -0.75)));
  ctx.t = 1;
  CHECK(p.eta(ctx) == Approx(2.0));
}

TEST_CASE("step sizes reject bad settings naming the value", "[stepsize]") {
  CHECK_THROWS_WITH(loco::stepsize::constant(-1.0), Catch::Contains("-1.0"));
  CHECK_THROWS_AS(loco::stepsize::constant(std::nan("")), loco::config_error);
  CHECK_THROWS_WITH(loco::stepsize::polynomial(1.0, 0.3),
                    Catch::Contains("0.3") && Catch::Contains("(1/2, 1)"));
  CHECK_NOTHROW(loco::stepsize::polynomial(1.0, 1.0, {.allow_any_alpha = true}));
  CHECK_THROWS_AS(loco::stepsize::polynomial(0.0, 0.75), std::invalid_argument);
}

TEST_CASE("stepsize::warmup ramps linearly then hands over", "[stepsize]") {
  loco::stepsize::warmup<loco::stepsize::constant> w(loco::stepsize::constant(1.0), 4);
  context ctx;
  ctx.t = 1;
  CHECK(w.eta(ctx) == Approx(0.25));
  ctx.t = 3;
  CHECK(w.eta(ctx) == Approx(0.75));
  ctx.t = 10;
  CHECK(w.eta(ctx) == 1.0);
}

TEST_CASE("merge rules follow LOSCAR's formulas on a sparse support", "[merge]") {
  // z is the current model, y the snapshot sent, m the average on {1, 3}.
  const std::vector<double> y = {1, 2, 3, 4};
  const std::vector<double> z = {1.5, 2.5, 3.5, 4.5};
  const std::vector<double> m = {10, 20};
  const std::vector<std::uint32_t> support = {1, 3};
  loco::merge::inputs<double> in{y, m, support};

  auto x = z;
  loco::merge::delay_corrected{}.apply(in, std::span<double>(x));
  CHECK(x == std::vector<double>{1.5, 10.5, 3.5, 20.5});

  x = z;
  loco::merge::overwrite{}.apply(in, std::span<double>(x));
  CHECK(x == std::vector<double>{1.5, 10, 3.5, 20});
}

TEST_CASE("with no overlap (z == y) delay_corrected equals overwrite", "[merge]") {
  const std::vector<float> y = {1, 2, 3};
  const std::vector<float> m = {7, 8, 9};
  loco::merge::inputs<float> in{y, m, {}};
  auto a = y, b = y;
  loco::merge::delay_corrected{}.apply(in, std::span<float>(a));
  loco::merge::average{}.apply(in, std::span<float>(b));
  CHECK(a == b);
  CHECK(a == m);
}

TEST_CASE("rules that read only the average take it in x's own memory", "[merge]") {
  STATIC_REQUIRE_FALSE(loco::merge::reads_model<loco::merge::average>());
  STATIC_REQUIRE_FALSE(loco::merge::reads_model<loco::merge::overwrite>());
  STATIC_REQUIRE_FALSE(loco::merge::reads_model<loco::merge::outer_nesterov>());
  STATIC_REQUIRE_FALSE(loco::merge::reads_model<loco::merge::outer_sgd>());
  STATIC_REQUIRE(loco::merge::reads_model<loco::merge::delay_corrected>());
  // Averaged in place: x holds m, y is x too (no step in flight).
  const std::vector<float> x0 = {1, 2, 3, 4}, m = {3, -1, 0.5f, 8};
  auto x = m;
  loco::merge::average{}.apply(loco::merge::inputs<float>{x, x, {}}, std::span<float>(x));
  CHECK(x == m);
  const loco::merge::outer_nesterov rule(0.7, 0.9);
  loco::merge::outer_nesterov::state<float> apart(rule, std::span<const float>(x0)),
      aliased(rule, std::span<const float>(x0));
  auto y = x0;
  for (int round = 0; round < 3; ++round) {
    auto separate = x0;
    rule.apply(apart, loco::merge::inputs<float>{y, m, {}}, std::span<float>(separate));
    x = m;
    rule.apply(aliased, loco::merge::inputs<float>{x, x, {}}, std::span<float>(x));
    CHECK(x == separate);
  }
}

TEST_CASE("merge rules reject mismatched sizes", "[merge]") {
  const std::vector<float> y = {1, 2, 3};
  const std::vector<float> m = {7, 8};
  loco::merge::inputs<float> in{y, m, {}};
  auto x = y;
  CHECK_THROWS_AS(loco::merge::average{}.apply(in, std::span<float>(x)), loco::config_error);
}

namespace {

// Runs body once per kernel ISA this CPU has (tensor/dispatch.hpp), then
// restores the widest.
template <class F>
void on_every_isa(F body) {
  using loco::tensor::kernel_isa;
  for (const auto isa : {kernel_isa::baseline, kernel_isa::avx2, kernel_isa::avx512}) {
    if (isa > loco::tensor::available_kernel_isa()) break;
    loco::tensor::set_kernel_isa(isa);
    body(isa);
  }
  loco::tensor::set_kernel_isa(kernel_isa::avx512);
}

template <class T>
bool same_bits(T a, T b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  if constexpr (sizeof(T) == 4) {
    return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
  } else {
    return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("tensor::sqrt_in_place gives std::sqrt's bits on every ISA",
                   "[update][dispatch]", float, double) {
  using T = TestType;
  using lim = std::numeric_limits<T>;
  std::vector<T> in = {T{0},
                       -T{0},
                       T{1},
                       T{2},
                       lim::min(),
                       lim::denorm_min(),
                       lim::max(),
                       lim::infinity(),
                       T{-1},
                       -lim::infinity(),
                       lim::quiet_NaN(),
                       static_cast<T>(1e-30),
                       T{3}};
  for (int i = 0; in.size() < 1100; ++i) in.push_back(std::ldexp(T(1 + i % 97), i % 60 - 30));
  on_every_isa([&](loco::tensor::kernel_isa isa) {
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{13},
                                std::size_t{17}, std::size_t{1100}}) {
      std::vector<T> x(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
      loco::tensor::sqrt_in_place(std::span<T>(x));
      std::size_t wrong = 0;
      for (std::size_t j = 0; j < n; ++j) wrong += same_bits(x[j], std::sqrt(in[j])) ? 0u : 1u;
      INFO(loco::tensor::to_string(isa) << ", n = " << n);
      CHECK(wrong == 0);
    }
  });
}

TEST_CASE("update::adamw steps as its formula, to the bit, on every ISA", "[update][dispatch]") {
  // d crosses the kernel's blocks (256 floats) and every vector width's tail.
  const std::size_t d = 1100;
  std::vector<float> x0(d), g(d);
  for (std::size_t j = 0; j < d; ++j) {
    x0[j] = std::sin(static_cast<float>(j));
    g[j] = std::cos(static_cast<float>(3 * j)) * (j % 5 == 0 ? 1e-4f : 1.0f);
  }
  const loco::update::adamw rule(0.9, 0.99, 1e-6, 0.1);
  const double eta = 0.01;
  // The formula (update/adamw.hpp's header), entry by entry.
  std::vector<float> want = x0, m(d), v(d);
  for (int t = 1; t <= 3; ++t) {
    const double c1 = 1.0 - std::pow(0.9, t), c2 = std::sqrt(1.0 - std::pow(0.99, t));
    for (std::size_t j = 0; j < d; ++j) {
      want[j] *= static_cast<float>(1.0 - eta * 0.1);
      m[j] = 0.9f * m[j] + (1.0f - 0.9f) * g[j];
      v[j] = 0.99f * v[j] + (1.0f - 0.99f) * g[j] * g[j];
      want[j] -=
          static_cast<float>(eta / c1) * m[j] / (std::sqrt(v[j]) / static_cast<float>(c2) + 1e-6f);
    }
  }
  on_every_isa([&](loco::tensor::kernel_isa isa) {
    std::vector<float> x = x0;
    loco::update::adamw::state<float> s(rule, d);
    for (int t = 1; t <= 3; ++t) rule.step<float>(s, x, g, eta);
    std::size_t wrong = 0;
    for (std::size_t j = 0; j < d; ++j) wrong += same_bits(x[j], want[j]) ? 0u : 1u;
    INFO(loco::tensor::to_string(isa));
    CHECK(wrong == 0);
    CHECK(s.t == 3);
  });
}

TEMPLATE_TEST_CASE("tensor::first_non_finite finds the first NaN or Inf anywhere", "[tensor]",
                   float, double) {
  using T = TestType;
  using lim = std::numeric_limits<T>;
  // Large finite values, subnormals and -0 are finite; NaN and Inf of either sign are not.
  std::vector<T> v(700);
  for (std::size_t j = 0; j < v.size(); ++j) {
    const T finite[] = {lim::max(), -lim::max(), lim::denorm_min(), -T{0}, T{1}};
    v[j] = finite[j % 5];
  }
  CHECK(loco::tensor::first_non_finite(std::span<const T>(v)) == loco::tensor::npos);
  std::size_t misses = 0;
  for (const T bad : {lim::quiet_NaN(), -lim::quiet_NaN(), lim::infinity(), -lim::infinity()}) {
    for (const std::size_t at :
         {std::size_t{0}, std::size_t{255}, std::size_t{256}, std::size_t{600}, std::size_t{699}}) {
      std::vector<T> w = v;
      w[at] = bad;
      if (at + 1 < w.size()) w.back() = bad;  // a later one does not hide the first
      misses += loco::tensor::first_non_finite(std::span<const T>(w)) == at ? 0u : 1u;
    }
  }
  CHECK(misses == 0);
  CHECK(loco::tensor::first_non_finite(std::span<const T>()) == loco::tensor::npos);
}
