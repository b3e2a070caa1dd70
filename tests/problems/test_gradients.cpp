// Finite-difference gradient checks for every objective, in double:
//  * full_gradient(x) against central differences of loss(x);
//  * gradient(x, g, rng) against central differences of the mini-batch loss
//    it returns, with the rng copied so every evaluation draws the same batch.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <loco/concepts/objective.hpp>
#include <loco/data/synthetic.hpp>
#include <loco/problems/least_squares.hpp>
#include <loco/problems/logistic_regression.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <vector>

#include "common.hpp"

namespace lp = loco::problems;
namespace ld = loco::data;

static_assert(loco::check_objective<lp::quadratic<float>>());
static_assert(loco::check_objective<lp::least_squares<float>>());
static_assert(loco::check_objective<lp::logistic_regression<float>>());
static_assert(loco::check_objective<lp::softmax_regression<float>>());
static_assert(loco::check_objective<lp::mlp<float>>());
static_assert(loco::check_objective<lp::mlp<double>>());

namespace {

constexpr double step = 1e-5;

double tolerance(double g) { return 1e-6 * std::max(1.0, std::abs(g)); }

std::vector<double> random_point(std::size_t d, double scale, std::uint64_t seed) {
  loco::random::stream rng(seed, 5);
  std::vector<double> x(d);
  for (auto& v : x) v = scale * rng.normal();
  return x;
}

// Checks up to `max_coords` coordinates spread over the vector.
template <class O>
void check_gradients(O& o, const std::vector<double>& x0, std::size_t max_coords = 200) {
  const std::size_t d = o.dimension();
  REQUIRE(x0.size() == d);
  std::vector<double> x = x0;
  std::vector<double> g(d);
  std::vector<double> scratch(d);
  const std::size_t stride = std::max<std::size_t>(1, d / max_coords);

  o.full_gradient(std::span<const double>(x), std::span<double>(g));
  for (std::size_t j = 0; j < d; j += stride) {
    const double keep = x[j];
    x[j] = keep + step;
    const double fp = o.loss(std::span<const double>(x));
    x[j] = keep - step;
    const double fm = o.loss(std::span<const double>(x));
    x[j] = keep;
    const double fd = (fp - fm) / (2 * step);
    INFO("full gradient, coordinate " << j << " of " << d);
    REQUIRE(std::abs(fd - g[j]) <= tolerance(g[j]));
  }

  const loco::random::stream rng0(2024, 3);
  auto rng = rng0;
  const double batch_loss = o.gradient(std::span<const double>(x), std::span<double>(g), rng);
  REQUIRE(std::isfinite(batch_loss));
  for (std::size_t j = 0; j < d; j += stride) {
    const double keep = x[j];
    x[j] = keep + step;
    auto r1 = rng0;
    const double fp = o.gradient(std::span<const double>(x), std::span<double>(scratch), r1);
    x[j] = keep - step;
    auto r2 = rng0;
    const double fm = o.gradient(std::span<const double>(x), std::span<double>(scratch), r2);
    x[j] = keep;
    const double fd = (fp - fm) / (2 * step);
    INFO("stochastic gradient, coordinate " << j << " of " << d);
    REQUIRE(std::abs(fd - g[j]) <= tolerance(g[j]));
  }
  // The same rng state gives the same gradient, bit for bit.
  auto r3 = rng0;
  o.gradient(std::span<const double>(x), std::span<double>(scratch), r3);
  REQUIRE(scratch == g);
  REQUIRE(r3 == rng);
}

}  // namespace

TEST_CASE("quadratic: gradients match finite differences", "[problems][gradient]") {
  SECTION("dense") {
    auto fam = ld::make_quadratics<double>(3, 12, {0.5, 4.0, 1.0, true}, 11);
    auto fs = lp::quadratic<double>::from_family(fam);
    for (auto& f : fs) check_gradients(f, random_point(12, 1.0, 1));
  }
  SECTION("diagonal") {
    auto fam = ld::make_quadratics<double>(2, 30, {0.5, 4.0, 1.0, false}, 12);
    auto fs = lp::quadratic<double>::from_family(fam);
    for (auto& f : fs) check_gradients(f, random_point(30, 1.0, 2));
  }
}

TEST_CASE("least_squares: gradients match finite differences", "[problems][gradient]") {
  auto s = ld::make_least_squares<double>(50, 7, 0.3, 21);
  auto data = std::make_shared<const ld::dataset<double>>(std::move(s.data));
  lp::least_squares<double> plain(data, {8, 0.0});
  check_gradients(plain, random_point(7, 1.0, 3));
  lp::least_squares<double> ridge(data, std::vector<std::size_t>{1, 4, 9, 16, 25, 36}, {4, 0.3});
  check_gradients(ridge, random_point(7, 1.0, 4));
}

TEST_CASE("logistic_regression: gradients match finite differences", "[problems][gradient]") {
  auto s = ld::make_logistic<double>(60, 6, 0.1, 31);
  auto data = std::make_shared<const ld::dataset<double>>(std::move(s.data));
  lp::logistic_regression<double> o(data, {10, 0.05});
  check_gradients(o, random_point(7, 0.5, 5));
}

TEST_CASE("softmax_regression: gradients match finite differences", "[problems][gradient]") {
  auto data = test_problems::random_classes<double>(40, 5, 4, 41);
  lp::softmax_regression<double> o(data, {6, 0.02});
  check_gradients(o, random_point(o.dimension(), 0.5, 6));
}

TEST_CASE("mlp: its layout names each layer's weight and bias at their offsets",
          "[problems][layout]") {
  auto data = test_problems::random_classes<double>(30, 6, 3, 51);
  lp::mlp<double> o(data, {{5, 4}, 9, 0.01});
  const auto l = o.layout();
  REQUIRE(l.size() == 6);
  REQUIRE(l.dimension() == o.dimension());
  REQUIRE(l[0].name == "layer1.weight");
  REQUIRE(l[0].shape == std::vector<std::size_t>{5, 6});
  REQUIRE(l.find("layer3.bias").shape == std::vector<std::size_t>{3});
  for (std::size_t i = 0; i < o.layers(); ++i) {
    REQUIRE(l[2 * i].offset == o.weight_offset(i));
    REQUIRE(l[2 * i + 1].offset == o.bias_offset(i));
  }
  REQUIRE(loco::tensor::layout_of(o) == l);
}

TEST_CASE("mlp: gradients match finite differences", "[problems][gradient]") {
  auto data = test_problems::random_classes<double>(30, 6, 3, 51);
  SECTION("one hidden layer") {
    lp::mlp<double> o(data, {{5}, 7, 0.01});
    REQUIRE(o.dimension() == 5 * 6 + 5 + 3 * 5 + 3);
    std::vector<double> x(o.dimension());
    const auto init = o.initial_point(9);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = init(i) + 0.1 * std::sin(double(i));
    check_gradients(o, x);
  }
  SECTION("two hidden layers") {
    lp::mlp<double> o(data, {{5, 4}, 9, 0.01});
    REQUIRE(o.dimension() == 5 * 7 + 4 * 6 + 3 * 5);
    std::vector<double> x(o.dimension());
    const auto init = o.initial_point(10);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = init(i) + 0.1 * std::cos(double(i));
    check_gradients(o, x);
  }
  SECTION("full gradient over more rows than one chunk") {
    auto big = test_problems::random_classes<double>(600, 4, 3, 52);
    lp::mlp<double> o(big, {{6}, 5, 0.0});
    const auto init = o.initial_point(11);
    check_gradients(o, std::vector<double>(init.begin(), init.end()));
  }
}
