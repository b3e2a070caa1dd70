// Objectives against plain-loop references of their losses, the statistics
// of their stochastic gradients, worker row lists, and the rule that
// gradient() allocates nothing after its first call.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <loco/data/synthetic.hpp>
#include <loco/problems/least_squares.hpp>
#include <loco/problems/logistic_regression.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <new>
#include <vector>

#include "common.hpp"

// Counts every allocation of this executable (one TU only).
#include "../support/count_allocations.hpp"
using loco_test::allocation_count;

namespace lp = loco::problems;
namespace ld = loco::data;

namespace {

template <class T>
std::span<const T> cs(const std::vector<T>& v) {
  return {v.data(), v.size()};
}
template <class T>
std::span<T> ms(std::vector<T>& v) {
  return {v.data(), v.size()};
}

// Plain-loop references, written from the formulas in the headers' comments.
double ref_logistic(const ld::dataset<double>& d, const std::vector<double>& x, double l2) {
  const std::size_t p = d.cols();
  double f = 0.0;
  for (std::size_t j = 0; j < d.rows(); ++j) {
    double z = x[p];
    for (std::size_t k = 0; k < p; ++k) z += d.features(j, k) * x[k];
    const double prob1 = 1.0 / (1.0 + std::exp(-z));
    f -= d.labels[j] == 1 ? std::log(prob1) : std::log(1.0 - prob1);
  }
  double w2 = 0.0;
  for (std::size_t k = 0; k < p; ++k) w2 += x[k] * x[k];
  return f / double(d.rows()) + 0.5 * l2 * w2;
}

double ref_softmax(const ld::dataset<double>& d, const std::vector<double>& x, double l2,
                   double* accuracy) {
  const std::size_t p = d.cols();
  const std::size_t k = d.classes;
  double f = 0.0;
  std::size_t right = 0;
  for (std::size_t j = 0; j < d.rows(); ++j) {
    std::vector<double> z(k);
    for (std::size_t c = 0; c < k; ++c) {
      z[c] = x[k * p + c];
      for (std::size_t i = 0; i < p; ++i) z[c] += x[c * p + i] * d.features(j, i);
    }
    double sum = 0.0;
    std::size_t best = 0;
    for (std::size_t c = 0; c < k; ++c) {
      sum += std::exp(z[c]);
      if (z[c] > z[best]) best = c;
    }
    const auto y = static_cast<std::size_t>(d.labels[j]);
    f -= std::log(std::exp(z[y]) / sum);
    right += best == y;
  }
  double w2 = 0.0;
  for (std::size_t i = 0; i < k * p; ++i) w2 += x[i] * x[i];
  *accuracy = double(right) / double(d.rows());
  return f / double(d.rows()) + 0.5 * l2 * w2;
}

// One hidden layer of width h: x = W1 (h x p), c1, W2 (k x h), c2.
double ref_mlp(const ld::dataset<double>& d, const std::vector<double>& x, std::size_t h,
               double l2) {
  const std::size_t p = d.cols();
  const std::size_t k = d.classes;
  const double* w1 = x.data();
  const double* c1 = w1 + h * p;
  const double* w2 = c1 + h;
  const double* c2 = w2 + k * h;
  double f = 0.0;
  for (std::size_t j = 0; j < d.rows(); ++j) {
    std::vector<double> a(h);
    for (std::size_t u = 0; u < h; ++u) {
      double s = c1[u];
      for (std::size_t i = 0; i < p; ++i) s += w1[u * p + i] * d.features(j, i);
      a[u] = s > 0 ? s : 0;
    }
    std::vector<double> z(k);
    double sum = 0.0;
    for (std::size_t c = 0; c < k; ++c) {
      z[c] = c2[c];
      for (std::size_t u = 0; u < h; ++u) z[c] += w2[c * h + u] * a[u];
      sum += std::exp(z[c]);
    }
    f -= z[static_cast<std::size_t>(d.labels[j])] - std::log(sum);
  }
  double w = 0.0;
  for (std::size_t i = 0; i < h * p; ++i) w += w1[i] * w1[i];
  for (std::size_t i = 0; i < k * h; ++i) w += w2[i] * w2[i];
  return f / double(d.rows()) + 0.5 * l2 * w;
}

}  // namespace

TEST_CASE("losses match plain-loop references", "[problems]") {
  SECTION("least_squares") {
    auto s = ld::make_least_squares<double>(30, 4, 0.5, 1);
    auto data = std::make_shared<const ld::dataset<double>>(s.data);
    lp::least_squares<double> o(data, {5, 0.2});
    std::vector<double> x{0.3, -1.0, 2.0, 0.1};
    double f = 0.0;
    for (std::size_t j = 0; j < 30; ++j) {
      double r = -s.data.targets(j);
      for (std::size_t k = 0; k < 4; ++k) r += s.data.features(j, k) * x[k];
      f += r * r;
    }
    f = 0.5 * f / 30 + 0.1 * (0.09 + 1.0 + 4.0 + 0.01);
    REQUIRE(o.loss(cs(x)) == Approx(f).epsilon(1e-12));
    // At the generating vector with no noise the loss is zero.
    auto exact = ld::make_least_squares<double>(30, 4, 0.0, 2);
    lp::least_squares<double> o2(std::make_shared<const ld::dataset<double>>(exact.data));
    std::vector<double> truth(exact.truth.begin(), exact.truth.end());
    REQUIRE(o2.loss(cs(truth)) < 1e-20);
  }
  SECTION("logistic_regression") {
    auto s = ld::make_logistic<double>(40, 3, 0.2, 3);
    auto data = std::make_shared<const ld::dataset<double>>(s.data);
    lp::logistic_regression<double> o(data, {4, 0.3});
    std::vector<double> x{0.5, -0.25, 1.5, 0.2};
    REQUIRE(o.loss(cs(x)) == Approx(ref_logistic(s.data, x, 0.3)).epsilon(1e-12));
  }
  SECTION("softmax_regression") {
    auto data = test_problems::random_classes<double>(35, 4, 3, 4);
    lp::softmax_regression<double> o(data, {4, 0.1});
    loco::random::stream rng(4);
    std::vector<double> x(o.dimension());
    for (auto& v : x) v = rng.normal();
    double acc = 0.0;
    const double f = ref_softmax(*data, x, 0.1, &acc);
    REQUIRE(o.loss(cs(x)) == Approx(f).epsilon(1e-12));
    REQUIRE(o.accuracy(cs(x)) == acc);
  }
  SECTION("mlp, one hidden layer") {
    auto data = test_problems::random_classes<double>(300, 5, 4, 5);  // > one 256-row chunk
    lp::mlp<double> o(data, {{6}, 8, 0.05});
    const auto init = o.initial_point(5);
    std::vector<double> x(init.begin(), init.end());
    REQUIRE(o.loss(cs(x)) == Approx(ref_mlp(*data, x, 6, 0.05)).epsilon(1e-12));
    // The layout is documented, so check the offsets too.
    REQUIRE(o.weight_offset(1) == 6 * 5 + 6);
    REQUIRE(o.bias_offset(1) == 6 * 5 + 6 + 4 * 6);
  }
}

TEST_CASE("quadratic: minimizer of the average and gradient noise", "[problems][statistics]") {
  SECTION("the average gradient vanishes at average_minimizer") {
    for (bool dense : {true, false}) {
      auto fam = ld::make_quadratics<double>(4, 10, {0.1, 5.0, 2.0, dense}, 7);
      auto fs = lp::quadratic<double>::from_family(fam);
      const auto xs = lp::quadratic<double>::average_minimizer(fs);
      std::vector<double> x(xs.begin(), xs.end());
      std::vector<double> sum(10, 0.0), g(10);
      for (auto& f : fs) {
        f.full_gradient(cs(x), ms(g));
        for (std::size_t j = 0; j < 10; ++j) sum[j] += g[j];
      }
      for (std::size_t j = 0; j < 10; ++j) {
        REQUIRE(std::abs(sum[j]) < 1e-10);
        REQUIRE(x[j] == Approx(fam.minimizer(j)).epsilon(1e-12));
      }
      // and each f_i is minimized at its own centre
      std::vector<double> b(fs[0].centre().begin(), fs[0].centre().end());
      REQUIRE(fs[0].loss(cs(b)) == 0.0);
    }
  }
  SECTION("noise has mean zero and total variance sigma^2") {
    const std::uint64_t seed = 99;
    std::printf("quadratic noise test seed %llu\n", static_cast<unsigned long long>(seed));
    const std::size_t d = 50;
    const std::size_t draws = 4000;
    const double sigma2 = 4.0;
    auto fam = ld::make_quadratics<double>(1, d, {}, seed);
    lp::quadratic<double> f =
        lp::quadratic<double>::diagonal(fam.diagonal[0], fam.centre[0], {sigma2});
    std::vector<double> x(d, 0.3), exact(d), g(d), mean(d, 0.0);
    f.full_gradient(cs(x), ms(exact));
    loco::random::stream rng(seed, 1);
    double sq = 0.0;
    for (std::size_t t = 0; t < draws; ++t) {
      f.gradient(cs(x), ms(g), rng);
      for (std::size_t j = 0; j < d; ++j) {
        const double e = g[j] - exact[j];
        sq += e * e;
        mean[j] += e / double(draws);
      }
    }
    // ||xi||^2 = (sigma^2/d) chi^2_d: variance 2 sigma^4 / d per draw.
    const double sd_sq = std::sqrt(2 * sigma2 * sigma2 / double(d) / double(draws));
    REQUIRE(std::abs(sq / double(draws) - sigma2) < 5 * sd_sq);
    const double sd_mean = std::sqrt(sigma2 / double(d) / double(draws));
    for (double m : mean) REQUIRE(std::abs(m) < 5 * sd_mean);
  }
  SECTION("bad settings are refused") {
    loco::tensor::vector<float> a = {1.0f, -1.0f};
    loco::tensor::vector<float> b = {0.0f, 0.0f};
    REQUIRE_THROWS_AS(lp::quadratic<float>::diagonal(a, b), loco::config_error);
    loco::tensor::matrix<float> m = {{1.0f, 2.0f}, {0.0f, 1.0f}};
    REQUIRE_THROWS_AS(lp::quadratic<float>(m, b), loco::config_error);
    a(1) = 1.0f;
    REQUIRE_THROWS_AS(lp::quadratic<float>::diagonal(a, b, {-1.0}), loco::config_error);
  }
}

TEST_CASE("mini-batch gradients are unbiased", "[problems][statistics]") {
  // E over batches of the mini-batch gradient is the full gradient. The
  // tolerance is 5 standard deviations of the mean of `draws` batches, from
  // the exact per-example variance of each coordinate.
  const std::uint64_t seed = 123;
  std::printf("unbiasedness test seed %llu\n", static_cast<unsigned long long>(seed));
  auto s = ld::make_least_squares<double>(40, 5, 1.0, seed);
  auto data = std::make_shared<const ld::dataset<double>>(s.data);
  const std::size_t batch = 4;
  const std::size_t draws = 20000;
  lp::least_squares<double> o(data, {batch, 0.0});
  std::vector<double> x{0.1, 0.2, -0.3, 0.4, 0.0};
  std::vector<double> full(5), g(5), mean(5, 0.0), var(5, 0.0);
  o.full_gradient(cs(x), ms(full));
  for (std::size_t j = 0; j < 40; ++j) {  // per-example gradient r_j a_j
    double r = -s.data.targets(j);
    for (std::size_t k = 0; k < 5; ++k) r += s.data.features(j, k) * x[k];
    for (std::size_t k = 0; k < 5; ++k) {
      const double e = r * s.data.features(j, k) - full[k];
      var[k] += e * e / 40.0;
    }
  }
  loco::random::stream rng(seed, 2);
  for (std::size_t t = 0; t < draws; ++t) {
    o.gradient(cs(x), ms(g), rng);
    for (std::size_t k = 0; k < 5; ++k) mean[k] += g[k] / double(draws);
  }
  for (std::size_t k = 0; k < 5; ++k) {
    const double sd = std::sqrt(var[k] / double(batch) / double(draws));
    INFO("coordinate " << k << ": mean " << mean[k] << ", full " << full[k] << ", sd " << sd);
    REQUIRE(std::abs(mean[k] - full[k]) < 5 * sd);
  }
}

TEST_CASE("an objective sees only its worker's rows", "[problems]") {
  auto s = ld::make_least_squares<double>(20, 3, 0.0, 8);
  ld::dataset<double> poisoned = s.data;
  std::vector<std::size_t> mine;
  for (std::size_t j = 0; j < 20; ++j) {
    if (j % 3 == 0) {
      mine.push_back(j);
    } else {
      poisoned.targets(j) = 1e9;  // any use of these rows would show
    }
  }
  lp::least_squares<double> o(std::make_shared<const ld::dataset<double>>(poisoned), mine,
                              {7, 0.0});
  std::vector<double> x(s.truth.begin(), s.truth.end()), g(3);
  REQUIRE(o.loss(cs(x)) < 1e-20);
  loco::random::stream rng(8);
  for (int t = 0; t < 50; ++t) REQUIRE(o.gradient(cs(x), ms(g), rng) < 1e-20);
  REQUIRE_THROWS_AS(lp::least_squares<double>(std::make_shared<const ld::dataset<double>>(poisoned),
                                              std::vector<std::size_t>{3, 20}),
                    loco::config_error);
  REQUIRE_THROWS_AS(lp::least_squares<double>(std::make_shared<const ld::dataset<double>>(poisoned),
                                              std::vector<std::size_t>{}),
                    loco::config_error);
}

TEST_CASE("gradient() allocates nothing after its first call", "[problems][allocation]") {
  auto cls = test_problems::random_classes<float>(200, 20, 5, 9);
  auto bin = ld::make_logistic<float>(200, 20, 0.1, 9);
  auto reg = ld::make_least_squares<float>(200, 20, 0.1, 9);
  auto fam = ld::make_quadratics<float>(1, 20, {1.0, 2.0, 1.0, true}, 9);
  auto check = [](auto& o, const char* name) {
    std::vector<float> x(o.dimension(), 0.01f), g(o.dimension());
    loco::random::stream rng(1);
    o.gradient(cs(x), ms(g), rng);
    const long before = allocation_count();
    for (int t = 0; t < 20; ++t) o.gradient(cs(x), ms(g), rng);
    const long after = allocation_count();
    INFO(name);
    REQUIRE(after == before);
  };
  lp::quadratic<float> q(fam.dense[0], fam.centre[0], {1.0});
  check(q, "quadratic");
  lp::least_squares<float> ls(std::make_shared<const ld::dataset<float>>(reg.data));
  check(ls, "least_squares");
  lp::logistic_regression<float> lr(std::make_shared<const ld::dataset<float>>(bin.data));
  check(lr, "logistic_regression");
  lp::softmax_regression<float> sm(cls);
  check(sm, "softmax_regression");
  lp::mlp<float> m1(cls, {{16}, 32, 1e-4});
  check(m1, "mlp 1 hidden");
  lp::mlp<float> m2(cls, {{16, 8}, 32, 1e-4});
  check(m2, "mlp 2 hidden");
}

TEST_CASE("plain SGD solves the synthetic problems", "[problems][sgd]") {
  SECTION("least squares without noise reaches the generating vector") {
    auto s = ld::make_least_squares<float>(500, 10, 0.0, 10);
    lp::least_squares<float> o(std::make_shared<const ld::dataset<float>>(s.data), {16, 0.0});
    std::vector<float> x(10, 0.0f), g(10);
    loco::random::stream rng(10);
    for (int t = 0; t < 3000; ++t) {
      o.gradient(cs(x), ms(g), rng);
      for (std::size_t k = 0; k < 10; ++k) x[k] -= 0.05f * g[k];
    }
    double err = 0.0;
    for (std::size_t k = 0; k < 10; ++k) err += std::pow(double(x[k] - s.truth(k)), 2);
    REQUIRE(std::sqrt(err) < 1e-3);
  }
  SECTION("mlp separates a linearly separable problem") {
    auto s = ld::make_logistic<float>(400, 5, 0.0, 11);
    auto data = std::make_shared<const ld::dataset<float>>(s.data);
    lp::mlp<float> o(data, {{16}, 32, 0.0});
    const auto init = o.initial_point(11);
    std::vector<float> x(init.begin(), init.end()), g(x.size());
    const double before = o.loss(cs(x));
    loco::random::stream rng(11);
    for (int t = 0; t < 1500; ++t) {
      o.gradient(cs(x), ms(g), rng);
      for (std::size_t k = 0; k < x.size(); ++k) x[k] -= 0.2f * g[k];
    }
    REQUIRE(o.loss(cs(x)) < 0.25 * before);
    REQUIRE(o.accuracy(cs(x)) > 0.95);
  }
}
