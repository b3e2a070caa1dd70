// top_k against a sort, and random_k's shared support, uniform and stratified.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>
#include <vector>
#include "common.hpp"

using namespace loco_test;
using loco::wire::buffer;
using loco::wire::view;

namespace {

// The reference, written from the definition: order entries by decreasing
// |x|, ties by increasing index, keep the first k, report ascending.
template <class T>
std::vector<std::uint32_t> reference_top_k(const std::vector<T>& v, std::size_t k) {
  std::vector<std::uint32_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0u);
  std::stable_sort(idx.begin(), idx.end(), [&](std::uint32_t a, std::uint32_t b) {
    return std::abs(v[a]) > std::abs(v[b]);
  });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

template <class T>
void check_against_reference(const std::vector<T>& v, std::size_t k) {
  const auto c = lc::top_k::with_count(k);
  lc::top_k::state<T> s(c, v.size(), 0);
  buffer b;
  c.encode(std::span<const T>(v), s, b);
  view in(b);
  (void)in.take(16, "header");
  REQUIRE(in.get<std::uint32_t>("k") == k);
  const auto ref = reference_top_k(v, k);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < k; ++i) {
    const auto j = in.get<std::uint32_t>("index");
    mismatches += j != ref[i];
  }
  CHECK(mismatches == 0);
  for (std::size_t i = 0; i < k; ++i) {
    const T x = in.get<T>("value");
    mismatches += std::memcmp(&x, &v[ref[i]], sizeof(T)) != 0;  // values keep their bits
  }
  CHECK(mismatches == 0);
  // And decode puts them in place.
  std::vector<T> out(v.size());
  c.decode(view(b), s, std::span<T>(out));
  for (std::size_t i = 0, r = 0; i < v.size(); ++i) {
    if (r < k && ref[r] == i) {
      mismatches += out[i] != v[i];
      ++r;
    } else {
      mismatches += out[i] != 0;
    }
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("top_k equals a sort on random, tied and adversarial inputs",
                   "[compress][top_k]", float, double) {
  using T = TestType;
  for (std::size_t d : {1u, 2u, 31u, 32u, 33u, 1000u, 70000u, 300000u, 1000003u}) {
    CAPTURE(d);
    std::vector<std::size_t> ks = {1, d / 100 + 1, d / 10 + 1, d};
    for (std::size_t k : ks) {
      if (k > d || k == 0) continue;
      CAPTURE(k);
      SECTION("normal " + std::to_string(d) + " " + std::to_string(k)) {
        check_against_reference(normal_vector<T>(d, d + k), k);
      }
      SECTION("few distinct values (ties) " + std::to_string(d) + " " + std::to_string(k)) {
        loco::random::stream rng(d * 7 + k);
        std::vector<T> v(d);
        for (auto& x : v) x = static_cast<T>(static_cast<int>(rng.below(5)) - 2);
        check_against_reference(v, k);
      }
      SECTION("all equal, signed zeros " + std::to_string(d) + " " + std::to_string(k)) {
        std::vector<T> v(d, T(1));
        for (std::size_t i = 0; i < d; i += 3) v[i] = T(-1);
        check_against_reference(v, k);
        std::vector<T> z(d, T(0));
        for (std::size_t i = 0; i < d; i += 2) z[i] = T(-0.0);
        check_against_reference(z, k);
      }
      SECTION("sorted and adversarial to sampling " + std::to_string(d) + " " + std::to_string(k)) {
        std::vector<T> v(d);
        for (std::size_t i = 0; i < d; ++i) v[i] = static_cast<T>(i);  // largest at the end
        check_against_reference(v, k);
        // A constant background and a few huge entries: the sample sees only the background.
        std::vector<T> w(d, T(1));
        for (std::size_t i = 0; i < d; i += 997) w[i] = T(1e6);
        check_against_reference(w, k);
        // Subnormals and huge values mixed.
        std::vector<T> m(d);
        for (std::size_t i = 0; i < d; ++i) {
          m[i] = (i % 3 == 0) ? std::numeric_limits<T>::denorm_min() * static_cast<T>(i % 7)
                              : static_cast<T>(std::ldexp(1.0, static_cast<int>(i % 61) - 30));
        }
        check_against_reference(m, k);
      }
    }
  }
}

TEST_CASE("top_k keeps the output buffers of its state (no allocation after the first call)",
          "[compress][top_k]") {
  const auto c = lc::top_k(0.01);
  const std::size_t d = 500000;
  lc::top_k::state<float> s(c, d, 0);
  buffer b;
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    const auto v = normal_vector<float>(d, seed);
    b.clear();
    c.encode(std::span<const float>(v), s, b);
    CHECK(b.size() == c.wire_bytes(d));
  }
}

TEST_CASE("random_k: every worker derives the same ascending support from (seed, round)",
          "[compress][random_k]") {
  const auto how = GENERATE(lc::sampling::uniform, lc::sampling::stratified);
  for (std::size_t d : {1u, 10u, 1000u, 100000u}) {
    for (double f : {0.001, 0.1, 0.5, 0.7, 1.0}) {
      const auto c = lc::random_k(f, 1234, how);
      const std::size_t k = c.k(d);
      CAPTURE(lc::name_of(how), d, k);
      lc::random_k::state<float> w0(c, d, 0), w1(c, d, 1);
      lc::random_k::state<double> w2(c, d, 2);
      for (std::uint64_t round : {0u, 1u, 7u, 1000000u}) {
        const auto a = c.support(w0, round);
        const std::vector<std::uint32_t> sa(a.begin(), a.end());
        REQUIRE(sa.size() == k);
        CHECK(std::adjacent_find(sa.begin(), sa.end(), std::greater_equal<>()) == sa.end());
        CHECK(sa.back() < d);
        const auto b = c.support(w1, round);
        const auto e = c.support(w2, round);
        CHECK(std::equal(sa.begin(), sa.end(), b.begin(), b.end()));
        CHECK(std::equal(sa.begin(), sa.end(), e.begin(), e.end()));
      }
      if (k < d) {
        const auto r0 = c.support(w0, 0);
        const std::vector<std::uint32_t> s0(r0.begin(), r0.end());
        const auto r1 = c.support(w0, 1);
        CHECK_FALSE(std::equal(s0.begin(), s0.end(), r1.begin(), r1.end()));
        // Another seed, another support.
        const auto other = lc::random_k(f, 99, how);
        lc::random_k::state<float> w3(other, d, 0);
        const auto r2 = other.support(w3, 0);
        CHECK_FALSE(std::equal(s0.begin(), s0.end(), r2.begin(), r2.end()));
      }
    }
  }
}

TEST_CASE(
    "random_k: each round encodes the state's round, then advances it; simulated workers agree",
    "[compress][random_k]") {
  const auto c = lc::random_k(0.05, 8);
  const std::size_t d = 2000, workers = 4;
  std::vector<lc::random_k::state<float>> tx;
  for (std::size_t w = 0; w < workers; ++w) tx.emplace_back(c, d, w);
  lc::random_k::state<float> server(c, d, 100);
  for (std::uint64_t round = 0; round < 3; ++round) {
    const auto support = c.support(server, round);
    const std::vector<std::uint32_t> sup(support.begin(), support.end());
    for (std::size_t w = 0; w < workers; ++w) {
      CHECK(tx[w].round() == round);
      const auto v = normal_vector<float>(d, 10 * round + w);
      buffer b;
      c.encode(std::span<const float>(v), tx[w], b);
      std::vector<float> out(d);
      c.decode(view(b), server, std::span<float>(out));
      // Only the shared support is non-zero, and it carries v * d / k.
      std::size_t r = 0, wrong = 0;
      for (std::size_t j = 0; j < d; ++j) {
        if (r < sup.size() && sup[r] == j) {
          wrong += std::abs(out[j] - v[j] * 20.0f) > 1e-5f * std::abs(v[j] * 20.0f);
          ++r;
        } else {
          wrong += out[j] != 0.0f;
        }
      }
      CHECK(wrong == 0);
    }
  }
  CHECK(tx[0].round() == 3);
}

TEST_CASE("random_k's support is uniform: every index is chosen k/d of the time",
          "[compress][random_k][stats]") {
  const std::uint64_t seed = 555;
  INFO("seed " << seed);
  for (double f : {0.1, 0.8}) {
    const auto c = lc::random_k(f, seed);
    const std::size_t d = 50, rounds = 20000;
    const std::size_t k = c.k(d);
    lc::random_k::state<float> s(c, d, 0);
    std::vector<double> count(d, 0.0);
    std::vector<double> pair(d, 0.0);  // index 0 chosen together with j
    for (std::uint64_t r = 0; r < rounds; ++r) {
      const auto sup = c.support(s, r);
      const bool has0 = sup[0] == 0;
      for (auto j : sup) {
        count[j] += 1;
        if (has0) pair[j] += 1;
      }
    }
    const double p = static_cast<double>(k) / d;
    const double sd = std::sqrt(rounds * p * (1 - p));
    for (std::size_t j = 0; j < d; ++j) {
      CAPTURE(f, j, count[j]);
      CHECK(std::abs(count[j] - rounds * p) <= 5 * sd);
    }
    // Pairs: P(0 and j) = k (k - 1) / (d (d - 1)) for a uniform k-subset.
    const double q = p * (static_cast<double>(k) - 1) / (d - 1.0);
    const double sq = std::sqrt(rounds * q * (1 - q));
    for (std::size_t j = 1; j < d; ++j) {
      CAPTURE(f, j, pair[j]);
      CHECK(std::abs(pair[j] - rounds * q) <= 5 * sq);
    }
  }
}

TEST_CASE("random_k's stratified support: one index in each stratum, each kept 1/(its size)",
          "[compress][random_k][stats]") {
  const std::uint64_t seed = 556;
  INFO("seed " << seed);
  // d = 53, k = 10: three strata of 6 entries, then seven of 5.
  const std::size_t d = 53, rounds = 20000;
  const auto c = lc::random_k::with_count(10, seed, lc::sampling::stratified);
  CHECK(c.how() == lc::sampling::stratified);
  lc::random_k::state<float> s(c, d, 0);
  std::vector<std::size_t> first(11, 0);  // where each stratum starts
  for (std::size_t j = 0; j < 10; ++j) first[j + 1] = first[j] + (j < 3 ? 6 : 5);
  REQUIRE(first[10] == d);
  std::vector<double> count(d, 0.0);
  std::size_t outside = 0;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    const auto sup = c.support(s, r);
    REQUIRE(sup.size() == 10);
    for (std::size_t j = 0; j < 10; ++j) {
      outside += sup[j] < first[j] || sup[j] >= first[j + 1];
      count[sup[j]] += 1;
    }
  }
  CHECK(outside == 0);
  for (std::size_t j = 0; j < 10; ++j) {
    const double p = 1.0 / static_cast<double>(first[j + 1] - first[j]);
    const double sd = std::sqrt(rounds * p * (1 - p));
    for (std::size_t i = first[j]; i < first[j + 1]; ++i) {
      CAPTURE(j, i, count[i]);
      CHECK(std::abs(count[i] - rounds * p) <= 5 * sd);
    }
  }

  // Scaled by its stratum's size, 1/P(kept): the decoded entry's mean is v.
  const auto v = normal_vector<float>(d, 3);
  lc::random_k::state<float> tx(c, d, 1), rx(c, d, 2);
  std::vector<float> out(d);
  std::size_t wrong = 0;
  for (std::uint64_t r = 0; r < 50; ++r) {
    buffer b;
    c.encode(std::span<const float>(v), tx, b);
    c.decode(view(b), rx, std::span<float>(out));
    const auto sup = c.support(rx, r);
    for (std::size_t j = 0; j < 10; ++j) {
      const auto size = static_cast<float>(first[j + 1] - first[j]);
      wrong += out[sup[j]] != v[sup[j]] * size;
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("random_k's stratified support is uniform within one large stratum",
          "[compress][random_k][stats]") {
  // k = 1 of d = 3 * 2^30: one stratum where a quarter of the 32-bit draws
  // fall in the multiply-shift's biased range (2^32 mod d) and are drawn
  // again, so the redraw path runs in about a quarter of the rounds.
  // Counted in ten bins of d / 10.
  const std::size_t d = std::size_t{3} << 30, rounds = 20000;
  const auto c = lc::random_k_unscaled::with_count(1, 77, lc::sampling::stratified);
  lc::random_k_unscaled::state<double> s(c, d, 0);
  std::vector<double> bins(10, 0.0);
  std::size_t outside = 0;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    const std::size_t j = c.support(s, r)[0];
    if (j >= d) {
      ++outside;
      continue;
    }
    bins[j / (d / 10)] += 1;
  }
  CHECK(outside == 0);
  const double p = 0.1, sd = std::sqrt(rounds * p * (1 - p));
  for (std::size_t b = 0; b < 10; ++b) {
    CAPTURE(b, bins[b]);
    CHECK(std::abs(bins[b] - rounds * p) <= 5 * sd);
  }
}
