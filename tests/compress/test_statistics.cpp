// The classes of ALGORITHMS.md section 1, checked by sampling. Every
// tolerance is a number of standard errors of the quantity estimated.
#include <catch2/catch.hpp>

#include <algorithm>

#include <cmath>
#include <limits>
#include <vector>
#include "common.hpp"

using namespace loco_test;
using loco::wire::buffer;
using loco::wire::view;

namespace {

// A vector with spread magnitudes, exact zeros and a tiny entry.
template <class T>
std::vector<T> test_vector(std::size_t d, std::uint64_t seed) {
  auto v = normal_vector<T>(d, seed);
  for (std::size_t i = 0; i < d; ++i) v[i] *= static_cast<T>(1 + i % 5);
  v[1] = T(0);
  v[2] = T(-0.0);
  v[3] = static_cast<T>(1e-6);
  return v;
}

// Draws C(v) n times through one sender state (fresh randomness each time).
template <class C, class T, class F>
void draw(const C& c, const std::vector<T>& v, std::size_t n, std::uint64_t seed, F&& f) {
  const std::size_t d = v.size();
  lc::state_t<C, T> tx(c, d, seed), rx(c, d, seed + 1);
  buffer b;
  std::vector<T> out(d);
  for (std::size_t t = 0; t < n; ++t) {
    b.clear();
    c.encode(std::span<const T>(v), tx, b);
    view in(b);
    c.decode(in, rx, std::span<T>(out));
    f(std::as_const(out));
  }
}

struct running {
  double n = 0, mean = 0, m2 = 0;
  void add(double x) {
    n += 1;
    const double dx = x - mean;
    mean += dx / n;
    m2 += dx * (x - mean);
  }
  double var() const { return n > 1 ? m2 / (n - 1) : 0; }
  double se() const { return std::sqrt(var() / n); }
};

// delta of B(delta) for the contractive compressors.
double delta(const lc::identity&, std::size_t) { return 1.0; }
double delta(const lc::top_k& c, std::size_t d) {
  return static_cast<double>(c.k(d)) / static_cast<double>(d);
}
double delta(const lc::random_k_unscaled& c, std::size_t d) {
  return static_cast<double>(c.k(d)) / static_cast<double>(d);
}
double delta(const lc::scaled_sign&, std::size_t d) { return 1.0 / static_cast<double>(d); }

// omega of U(omega) for the unbiased compressors.
double omega(const lc::identity&, std::size_t) { return 0.0; }
double omega(const lc::random_k& c, std::size_t d) {
  return static_cast<double>(d) / static_cast<double>(c.k(d)) - 1.0;
}
double omega(const lc::qsgd& c, std::size_t d) { return c.omega(d); }
double omega(const lc::natural&, std::size_t) { return lc::natural::omega; }

// Var C(v)_j, from the definition of each unbiased compressor: the
// tolerance of the mean test.
template <class T>
double coord_variance(const lc::identity&, const std::vector<T>&, std::size_t) {
  return 0.0;
}
template <class T>
double coord_variance(const lc::random_k& c, const std::vector<T>& v, std::size_t j) {
  const double x = static_cast<double>(v[j]);
  return x * x * omega(c, v.size());
}
template <class T>
double coord_variance(const lc::qsgd& c, const std::vector<T>& v, std::size_t j) {
  const double norm = std::sqrt(sq_norm(std::span<const T>(v)));
  const double s = c.levels();
  const double y = s * std::abs(static_cast<double>(v[j])) / norm;
  const double f = y - std::floor(y);
  return (norm / s) * (norm / s) * f * (1 - f);
}
template <class T>
double coord_variance(const lc::natural&, const std::vector<T>& v, std::size_t j) {
  const double a = std::abs(static_cast<double>(v[j]));
  if (a == 0) return 0;
  const double low = std::exp2(std::floor(std::log2(a)));
  const double p = a / low - 1;
  return low * low * p * (1 - p);
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("unbiased compressors: the mean of many draws is v", "[compress][stats]",
                        unbiased_list) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  const std::size_t d = 24, n = 20000;
  const std::uint64_t seed = 2024;
  INFO("seed " << seed << ", " << n << " draws");
  const auto v = test_vector<T>(d, seed);
  std::vector<running> coord(d);
  draw(c, v, n, seed, [&](const std::vector<T>& out) {
    for (std::size_t j = 0; j < d; ++j) coord[j].add(static_cast<double>(out[j]));
  });
  for (std::size_t j = 0; j < d; ++j) {
    const double se = std::sqrt(coord_variance(c, v, j) / static_cast<double>(n));
    CAPTURE(j, v[j], coord[j].mean, se, coord[j].se());
    // Within 5 standard errors, plus the rounding of T.
    const double tol = 5 * se + 1e-5 * std::abs(static_cast<double>(v[j]));
    CHECK(std::abs(coord[j].mean - static_cast<double>(v[j])) <= tol);
  }
}

TEMPLATE_LIST_TEST_CASE("unbiased compressors: E||C(v) - v||^2 <= omega ||v||^2",
                        "[compress][stats]", unbiased_list) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  const std::size_t d = 24, n = 20000;
  const std::uint64_t seed = 77;
  INFO("seed " << seed << ", " << n << " draws");
  auto v = test_vector<T>(d, seed);
  if constexpr (std::is_same_v<C, lc::natural>) {
    // |v| = (4/3) 2^e is where natural compression's variance reaches 1/8.
    for (std::size_t j = 0; j < d; ++j)
      v[j] = static_cast<T>((j % 2 ? -1 : 1) * std::ldexp(4.0 / 3, int(j % 7) - 3));
  }
  const double norm2 = sq_norm(std::span<const T>(v));
  running err;
  draw(c, v, n, seed, [&](const std::vector<T>& out) {
    err.add(sq_dist(std::span<const T>(out), std::span<const T>(v)));
  });
  const double bound = omega(c, d) * norm2;
  CAPTURE(err.mean, err.se(), bound);
  CHECK(err.mean <= bound + 5 * err.se() + 1e-9 * norm2);
  if constexpr (std::is_same_v<C, lc::random_k> || std::is_same_v<C, lc::natural>) {
    // These reach their bound on the vectors above: the bound is tight.
    CHECK(err.mean >=
          bound - 5 * err.se() - (std::is_same_v<C, lc::random_k> ? 0.0 : 0.02 * bound));
  }
}

TEMPLATE_LIST_TEST_CASE("contractive compressors: E||C(v) - v||^2 <= (1 - delta) ||v||^2",
                        "[compress][stats]", contractive_list) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  const std::size_t d = 40, n = 5000;
  const std::uint64_t seed = 31;
  INFO("seed " << seed << ", " << n << " draws");
  const auto v = test_vector<T>(d, seed);
  const double norm2 = sq_norm(std::span<const T>(v));
  running err;
  draw(c, v, n, seed, [&](const std::vector<T>& out) {
    const double e = sq_dist(std::span<const T>(out), std::span<const T>(v));
    if constexpr (!lc::traits<C>::shared_support) {
      // Deterministic compressors meet the bound on every draw.
      CHECK(e <= (1 - delta(c, d)) * norm2 * (1 + 1e-6));
    }
    err.add(e);
  });
  CAPTURE(err.mean, err.se(), norm2);
  CHECK(err.mean <= (1 - delta(c, d)) * norm2 + 5 * err.se() + 1e-9 * norm2);
}

TEST_CASE("scaled_sign's error is exactly ||v||^2 - ||v||_1^2 / d", "[compress][stats]") {
  const auto v = test_vector<double>(101, 5);
  const auto out = round_trip(lc::scaled_sign{}, std::span<const double>(v));
  double l1 = 0;
  for (double x : v) l1 += std::abs(x);
  const double norm2 = sq_norm(std::span<const double>(v));
  CHECK(sq_dist(std::span<const double>(out), std::span<const double>(v)) ==
        Approx(norm2 - l1 * l1 / 101).epsilon(1e-12));
  for (std::size_t j = 0; j < v.size(); ++j) CHECK(std::abs(out[j]) == Approx(l1 / 101));
}

TEST_CASE("qsgd and natural produce values on their grids", "[compress][stats]") {
  const auto v = test_vector<double>(64, 9);
  const auto q = lc::qsgd(4, 1);
  const auto out = round_trip(q, std::span<const double>(v));
  const double norm = std::sqrt(sq_norm(std::span<const double>(v)));
  for (std::size_t j = 0; j < v.size(); ++j) {
    const double level = std::abs(out[j]) * 4 / norm;
    CHECK(level == Approx(std::round(level)).margin(1e-9));
    CHECK(std::abs(level - 4 * std::abs(v[j]) / norm) < 1.0 + 1e-9);  // a neighbouring level
    if (out[j] != 0) CHECK(std::signbit(out[j]) == std::signbit(v[j]));
  }
  const auto n = round_trip(lc::natural(3), std::span<const double>(v));
  for (std::size_t j = 0; j < v.size(); ++j) {
    if (v[j] == 0 || std::abs(v[j]) < 1e-300) {
      CHECK(n[j] == 0);
      continue;
    }
    int e;
    const double m = std::frexp(std::abs(n[j]), &e);
    CHECK(m == 0.5);  // a power of two
    CHECK(std::abs(n[j]) >= std::abs(v[j]) / 2);
    CHECK(std::abs(n[j]) <= std::abs(v[j]) * 2);
    CHECK(std::signbit(n[j]) == std::signbit(v[j]));
  }
  // Subnormals round to 0 or the smallest normal, unbiased.
  std::vector<float> tiny(32, std::numeric_limits<float>::min() / 4);
  running mean;
  draw(lc::natural(4), tiny, 4000, 4, [&](const std::vector<float>& o) {
    for (float x : o) {
      CHECK((x == 0 || x == std::numeric_limits<float>::min()));
      mean.add(static_cast<double>(x));
    }
  });
  CHECK(std::abs(mean.mean - static_cast<double>(tiny[0])) <= 5 * mean.se());
}

TEST_CASE("fp4 rounds each entry to the nearest point of its block's e2m1 grid",
          "[compress][stats]") {
  const std::size_t block = 16;
  const auto v = test_vector<float>(100, 3);  // 7 blocks, the last of 4 entries
  const auto out = round_trip(lc::fp4(block), std::span<const float>(v));
  for (std::size_t b = 0; b * block < v.size(); ++b) {
    const std::size_t end = std::min(v.size(), (b + 1) * block);
    float amax = 0;
    for (std::size_t j = b * block; j < end; ++j) amax = std::max(amax, std::abs(v[j]));
    const float scale = amax / 6;
    for (std::size_t j = b * block; j < end; ++j) {
      INFO("entry " << j << ": " << v[j] << " -> " << out[j] << ", scale " << scale);
      // The nearest of the 8 magnitudes (ties to the smaller), with v's sign.
      float best = 0;
      for (const float m : lc::fp4::magnitudes) {
        if (std::abs(std::abs(v[j]) - m * scale) < std::abs(std::abs(v[j]) - best * scale))
          best = m;
      }
      CHECK(std::abs(out[j]) == Approx(best * scale).epsilon(1e-6));
      if (out[j] != 0) CHECK(std::signbit(out[j]) == std::signbit(v[j]));
      CHECK(std::abs(out[j] - v[j]) <= std::abs(v[j]) * (1 + 1e-6f));
    }
    // The block's largest entry is sent exactly (up to the scale's rounding).
    const auto peak = std::max_element(v.begin() + static_cast<std::ptrdiff_t>(b * block),
                                       v.begin() + static_cast<std::ptrdiff_t>(end),
                                       [](float a, float c) { return std::abs(a) < std::abs(c); });
    const auto at = static_cast<std::size_t>(peak - v.begin());
    CHECK(out[at] == Approx(v[at]).epsilon(1e-6));
  }
  // A zero block has scale 0 and decodes to zeros; an entry at FLT_MAX stays finite.
  std::vector<float> edge(block, 0.0f);
  edge.push_back(std::numeric_limits<float>::max());
  edge.push_back(-1.0f);
  const auto e = round_trip(lc::fp4(block), std::span<const float>(edge));
  for (std::size_t j = 0; j < block; ++j) CHECK(e[j] == 0.0f);
  CHECK(std::isfinite(e[block]));
  CHECK(e[block] > 0.99f * std::numeric_limits<float>::max());
  CHECK(e[block + 1] == 0.0f);                                 // far below the block's scale
  CHECK(lc::fp4().wire_bytes(1000) == 16 + 4 + 32 * 4 + 500);  // 5.2 bits per entry
  // A block whose largest entry is tiny (its scale is subnormal): every
  // entry still goes to a grid point no farther than |v| (1 / scale would
  // overflow).
  std::vector<float> tiny{1e-39f, -3e-40f, 2e-41f, 0.0f};
  const auto t = round_trip(lc::fp4(4), std::span<const float>(tiny));
  for (std::size_t j = 0; j < tiny.size(); ++j) {
    INFO("tiny entry " << j << ": " << tiny[j] << " -> " << t[j]);
    CHECK(std::abs(t[j] - tiny[j]) <= std::abs(tiny[j]));
  }
  CHECK(t[0] == Approx(1e-39f).epsilon(1e-3));
}

TEST_CASE("fp4 on double: the grid and the error bound hold", "[compress][stats]") {
  const auto v = test_vector<double>(77, 4);
  const auto out = round_trip(lc::fp4(8), std::span<const double>(v));
  for (std::size_t j = 0; j < v.size(); ++j) {
    CHECK(std::abs(out[j] - v[j]) <= std::abs(v[j]) * (1 + 1e-12));
    if (out[j] != 0) CHECK(std::signbit(out[j]) == std::signbit(v[j]));
  }
  std::vector<double> tiny{1e-310, -2e-311, 0.0};
  const auto t = round_trip(lc::fp4(3), std::span<const double>(tiny));
  for (std::size_t j = 0; j < tiny.size(); ++j)
    CHECK(std::abs(t[j] - tiny[j]) <= std::abs(tiny[j]));
}

TEST_CASE("qsgd handles vectors whose norm is subnormal or beyond T's range", "[compress][stats]") {
  // Norm about 1e-39: s / norm overflows a float unless the entries are rescaled.
  std::vector<float> tiny(16);
  for (std::size_t j = 0; j < tiny.size(); ++j)
    tiny[j] = static_cast<float>((j % 2 ? -1.0 : 1.0) * 1e-40 * static_cast<double>(1 + j % 3));
  const double norm = std::sqrt(sq_norm(std::span<const float>(tiny)));
  running mean0;
  draw(lc::qsgd(3, 2), tiny, 4000, 8, [&](const std::vector<float>& o) {
    for (float x : o) CHECK(std::isfinite(x));
    mean0.add(static_cast<double>(o[0]) * 1e40);  // in units of 1e-40
  });
  CAPTURE(mean0.mean, mean0.se(), norm * 1e40);
  CHECK(std::abs(mean0.mean - static_cast<double>(tiny[0]) * 1e40) <=
        5 * mean0.se() + 1e-3 * norm * 1e40);
  // Entries near FLT_MAX: the norm saturates at FLT_MAX and stays finite.
  std::vector<float> huge(4, std::numeric_limits<float>::max() / 2);
  const auto out = round_trip(lc::qsgd(1), std::span<const float>(huge));
  for (float x : out) CHECK(std::isfinite(x));
}
