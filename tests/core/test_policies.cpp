// Step sizes and merge rules against their formulas on hand-made values.
#include <catch2/catch.hpp>

#include <cmath>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <loco/stepsize/warmup.hpp>
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

TEST_CASE("merge rules reject mismatched sizes", "[merge]") {
  const std::vector<float> y = {1, 2, 3};
  const std::vector<float> m = {7, 8};
  loco::merge::inputs<float> in{y, m, {}};
  auto x = y;
  CHECK_THROWS_AS(loco::merge::average{}.apply(in, std::span<float>(x)), loco::config_error);
}
