// Partitions cover every example exactly once and replay from their seed;
// the label-skewed ones really are skewed. Synthetic generators keep their
// promises.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <loco/data/partition.hpp>
#include <loco/data/synthetic.hpp>
#include <map>
#include <set>
#include <vector>

namespace ld = loco::data;

namespace {

// Each index in [0, n) appears in exactly one part, and each part is sorted.
void require_exact_cover(const ld::partition& parts, std::size_t n) {
  std::vector<int> seen(n, 0);
  for (const auto& p : parts) {
    REQUIRE(std::is_sorted(p.begin(), p.end()));
    for (std::size_t i : p) {
      REQUIRE(i < n);
      ++seen[i];
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    INFO("example " << i);
    REQUIRE(seen[i] == 1);
  }
}

std::vector<std::int32_t> balanced_labels(std::size_t n, std::size_t k) {
  std::vector<std::int32_t> y(n);
  for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<std::int32_t>(i % k);
  return y;
}

// Mean over workers of the share of the worker's most common class.
double mean_top_share(const ld::partition& parts, const std::vector<std::int32_t>& y,
                      std::size_t k) {
  double s = 0.0;
  for (const auto& p : parts) {
    std::vector<std::size_t> count(k, 0);
    for (std::size_t i : p) ++count[static_cast<std::size_t>(y[i])];
    s += double(*std::max_element(count.begin(), count.end())) / double(p.size());
  }
  return s / double(parts.size());
}

}  // namespace

TEST_CASE("partition_iid covers every example once, near-equal sizes", "[data][partition]") {
  for (std::size_t n : {1u, 7u, 100u, 1001u}) {
    for (std::size_t w : {1u, 3u, 7u}) {
      if (w > n) continue;
      const auto parts = ld::partition_iid(n, w, 42);
      REQUIRE(parts.size() == w);
      require_exact_cover(parts, n);
      for (const auto& p : parts) {
        REQUIRE(p.size() >= n / w);
        REQUIRE(p.size() <= n / w + 1);
      }
    }
  }
  REQUIRE(ld::partition_iid(1000, 4, 1) == ld::partition_iid(1000, 4, 1));
  REQUIRE(ld::partition_iid(1000, 4, 1) != ld::partition_iid(1000, 4, 2));
  REQUIRE_THROWS_AS(ld::partition_iid(10, 0, 1), loco::config_error);
  REQUIRE_THROWS_AS(ld::partition_iid(3, 4, 1), loco::config_error);
}

TEST_CASE("partition_dirichlet: exact cover, reproducible, skew follows alpha",
          "[data][partition]") {
  const std::size_t n = 6000;
  const std::size_t k = 10;
  const auto y = balanced_labels(n, k);
  const std::uint64_t seed = 2024;
  std::printf("dirichlet partition test seed %llu\n", static_cast<unsigned long long>(seed));
  for (double alpha : {0.05, 0.5, 1000.0}) {
    const auto parts = ld::partition_dirichlet(y, k, 20, alpha, seed);
    require_exact_cover(parts, n);
    for (const auto& p : parts) REQUIRE(p.size() == n / 20);
    REQUIRE(parts == ld::partition_dirichlet(y, k, 20, alpha, seed));
    REQUIRE(parts != ld::partition_dirichlet(y, k, 20, alpha, seed + 1));
  }
  // alpha -> 0: a worker's data comes mostly from one class; alpha -> inf:
  // every worker looks like the whole set (top share near 1/k = 0.1).
  REQUIRE(mean_top_share(ld::partition_dirichlet(y, k, 20, 0.05, seed), y, k) > 0.6);
  REQUIRE(mean_top_share(ld::partition_dirichlet(y, k, 20, 1000.0, seed), y, k) < 0.2);
  REQUIRE_THROWS_AS(ld::partition_dirichlet(y, k, 20, 0.0, seed), loco::config_error);
  REQUIRE_THROWS_AS(ld::partition_dirichlet(y, 5, 20, 1.0, seed), loco::config_error);
  // Unbalanced worker count and a tiny set still cover exactly.
  require_exact_cover(ld::partition_dirichlet(y, k, 7, 0.3, seed), n);
  const std::vector<std::int32_t> few{0, 1, 1, 2, 2, 2};
  require_exact_cover(ld::partition_dirichlet(few, 3, 6, 0.1, seed), few.size());
}

TEST_CASE("partition_shards: exact cover and at most s classes per worker", "[data][partition]") {
  const std::size_t n = 1000;
  const auto y = balanced_labels(n, 10);  // 100 per class: shards of 10 hold one class
  const auto parts = ld::partition_shards(y, 10, 50, 2, 7);
  require_exact_cover(parts, n);
  for (const auto& p : parts) {
    REQUIRE(p.size() == 20);
    std::set<std::int32_t> classes;
    for (std::size_t i : p) classes.insert(y[i]);
    REQUIRE(classes.size() <= 2);
  }
  REQUIRE(parts == ld::partition_shards(y, 10, 50, 2, 7));
  REQUIRE(parts != ld::partition_shards(y, 10, 50, 2, 8));
  require_exact_cover(ld::partition_shards(y, 10, 3, 5, 7), n);
  REQUIRE_THROWS_AS(ld::partition_shards(y, 10, 600, 2, 7), loco::config_error);
  REQUIRE_THROWS_AS(ld::partition_shards(y, 10, 5, 0, 7), loco::config_error);
}

TEST_CASE("synthetic generators", "[data][synthetic]") {
  SECTION("least squares: y = A x_true when noise is 0") {
    const auto s = ld::make_least_squares<double>(50, 6, 0.0, 3);
    REQUIRE(s.data.rows() == 50);
    REQUIRE(s.data.cols() == 6);
    for (std::size_t i = 0; i < 50; ++i) {
      double y = 0.0;
      for (std::size_t j = 0; j < 6; ++j) y += s.data.features(i, j) * s.truth(j);
      REQUIRE(s.data.targets(i) == Approx(y).margin(1e-12));
    }
    s.data.validate("test");
  }
  SECTION("logistic: separable with flip 0, about `flip` wrong otherwise") {
    const std::size_t n = 20000;
    const double flip = 0.2;
    for (double q : {0.0, flip}) {
      const auto s = ld::make_logistic<double>(n, 4, q, 5);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < n; ++i) {
        double z = 0.0;
        for (std::size_t j = 0; j < 4; ++j) z += s.data.features(i, j) * s.truth(j);
        wrong += (z > 0) != (s.data.labels[i] == 1);
      }
      // Binomial(n, q): 5 standard deviations.
      const double sd = std::sqrt(double(n) * q * (1 - q));
      REQUIRE(std::abs(double(wrong) - double(n) * q) <= 5 * sd);
    }
  }
  SECTION("quadratics: curvature range and heterogeneity") {
    const auto q = ld::make_quadratics<double>(5, 40, {2.0, 3.0, 0.0, false}, 9);
    REQUIRE(q.diagonal.size() == 5);
    for (const auto& a : q.diagonal) {
      for (double v : a) REQUIRE((v >= 2.0 && v <= 3.0));
    }
    // heterogeneity 0: every centre is the same, so it is the minimizer
    for (const auto& b : q.centre) {
      for (std::size_t j = 0; j < 40; ++j) REQUIRE(b(j) == Approx(q.minimizer(j)));
    }
    REQUIRE_THROWS_AS(ld::make_quadratics<double>(2, 3, {0.0, 1.0, 1.0, false}, 1),
                      loco::config_error);
  }
}
