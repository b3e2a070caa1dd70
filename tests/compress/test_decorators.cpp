// error_feedback, ef21, warmup and size_threshold.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>
#include "common.hpp"

using namespace loco_test;
using loco::wire::buffer;
using loco::wire::view;

TEST_CASE("error_feedback: e = p - decode(C(p)), so sent + residual = sum of inputs",
          "[compress][ef]") {
  using EF = lc::error_feedback<lc::top_k>;
  const EF c(lc::top_k(0.05));
  const std::size_t d = 400;
  EF::state<double> tx(c, d, 0), rx(c, d, 1);
  std::vector<double> sum_in(d, 0.0), sum_out(d, 0.0), out(d);
  for (std::uint64_t t = 0; t < 20; ++t) {
    const auto v = normal_vector<double>(d, 100 + t);
    // The plain-loop reference of one step.
    std::vector<double> p(d);
    for (std::size_t i = 0; i < d; ++i) p[i] = v[i] + tx.residual()[i];
    const auto expected_msg = round_trip(c.inner(), std::span<const double>(p));
    buffer b;
    c.encode(std::span<const double>(v), tx, b);
    c.decode(view(b), rx, std::span<double>(out));
    CHECK(out == expected_msg);
    for (std::size_t i = 0; i < d; ++i) {
      CHECK(tx.residual()[i] == p[i] - out[i]);
      sum_in[i] += v[i];
      sum_out[i] += out[i];
    }
  }
  for (std::size_t i = 0; i < d; ++i) {
    CHECK(sum_out[i] + tx.residual()[i] == Approx(sum_in[i]).margin(1e-9));
  }
}

TEST_CASE("error_feedback with decay beta sends C(v + beta e) (SparseLoCo's residual)",
          "[compress][ef]") {
  using EF = lc::error_feedback<lc::top_k_2bit>;
  const EF c(lc::top_k_2bit(0.05), 0.9);
  CHECK(c.decay() == 0.9);
  const std::size_t d = 300;
  EF::state<float> tx(c, d, 0), rx(c, d, 1);
  std::vector<float> out(d);
  for (std::uint64_t t = 0; t < 5; ++t) {
    const auto v = normal_vector<float>(d, 7 + t);
    std::vector<float> p(d);
    for (std::size_t i = 0; i < d; ++i) p[i] = v[i] + 0.9f * tx.residual()[i];
    const auto expected_msg = round_trip(c.inner(), std::span<const float>(p));
    buffer b;
    c.encode(std::span<const float>(v), tx, b);
    c.decode(view(b), rx, std::span<float>(out));
    CHECK(out == expected_msg);
    for (std::size_t i = 0; i < d; ++i) CHECK(tx.residual()[i] == p[i] - out[i]);
  }
  for (double bad : {0.0, -0.5, 1.5, std::nan("")}) {
    CHECK_THROWS_WITH(EF(lc::top_k_2bit(0.05), bad), Catch::Contains("decay"));
  }
}

TEST_CASE("error_feedback never folds a NaN or Inf into its residual", "[compress][ef][finite]") {
  using EF = lc::error_feedback<lc::random_k_unscaled>;
  const EF c(lc::random_k_unscaled(0.1, 3));
  const std::size_t d = 100;
  EF::state<float> s(c, d, 0);
  buffer b;
  const auto v = normal_vector<float>(d, 1);
  c.encode(std::span<const float>(v), s, b);
  const std::vector<float> before(s.residual().begin(), s.residual().end());
  // The NaN sits outside the next support: random_k alone would not see it.
  const auto next = c.inner().support(s.inner(), s.inner().round());
  std::size_t outside = 0;
  while (std::find(next.begin(), next.end(), outside) != next.end()) ++outside;
  auto bad = v;
  bad[outside] = std::numeric_limits<float>::quiet_NaN();
  b.clear();
  try {
    c.encode(std::span<const float>(bad), s, b);
    FAIL("no non_finite_error");
  } catch (const loco::non_finite_error& e) {
    CHECK(e.index() == outside);
    CHECK_THAT(e.what(), Catch::Contains("compress::error_feedback input"));
  }
  CHECK(b.empty());
  CHECK(std::equal(before.begin(), before.end(), s.residual().begin()));
  // Overflow of v + e is reported too, and e still untouched.
  auto huge = v;
  s.residual()[5] = std::numeric_limits<float>::max();
  huge[5] = std::numeric_limits<float>::max();
  CHECK_THROWS_AS(c.encode(std::span<const float>(huge), s, b), loco::non_finite_error);
  CHECK(s.residual()[5] == std::numeric_limits<float>::max());
}

TEST_CASE("ef21: the receiver's copy of h_i follows the sender's; the mean is h",
          "[compress][ef21]") {
  using E = lc::ef21<lc::top_k>;
  const E c(lc::top_k(0.1));
  const std::size_t d = 300, n = 3;
  std::vector<E::state<double>> workers, server_copies;
  for (std::size_t i = 0; i < n; ++i) {
    workers.emplace_back(c, d, i);
    server_copies.emplace_back(c, d, 100 + i);
  }
  std::vector<double> h_ref(d * n, 0.0);
  for (std::size_t t = 0; t < 15; ++t) {
    for (std::size_t i = 0; i < n; ++i) {
      const auto v = normal_vector<double>(d, 1000 * i + t);
      // Reference from the definition: c_i = C(v - h_i); h_i += c_i.
      std::vector<double> diff(d);
      for (std::size_t j = 0; j < d; ++j) diff[j] = v[j] - h_ref[i * d + j];
      const auto ci = round_trip(c.inner(), std::span<const double>(diff));
      for (std::size_t j = 0; j < d; ++j) h_ref[i * d + j] += ci[j];

      buffer b;
      c.encode(std::span<const double>(v), workers[i], b);
      std::vector<double> out(d);
      c.decode(view(b), server_copies[i], std::span<double>(out));
      for (std::size_t j = 0; j < d; ++j) {
        CHECK(workers[i].estimate()[j] == h_ref[i * d + j]);
        CHECK(out[j] == h_ref[i * d + j]);
      }
    }
  }
  // A constant input: h_i converges to it (top-k of the difference shrinks it).
  E::state<double> w(c, d, 0), r(c, d, 1);
  const auto v = normal_vector<double>(d, 42);
  std::vector<double> out(d);
  for (int t = 0; t < 12; ++t) {
    buffer b;
    c.encode(std::span<const double>(v), w, b);
    c.decode(view(b), r, std::span<double>(out));
  }
  CHECK(sq_dist(std::span<const double>(out), std::span<const double>(v)) < 1e-20);
}

TEST_CASE("ef21 reports non-finite input before touching its estimate",
          "[compress][ef21][finite]") {
  using E = lc::ef21<lc::scaled_sign>;
  const E c(lc::scaled_sign{});
  E::state<float> s(c, 10, 0);
  buffer b;
  auto v = normal_vector<float>(10, 1);
  c.encode(std::span<const float>(v), s, b);
  const std::vector<float> before(s.estimate().begin(), s.estimate().end());
  v[4] = std::numeric_limits<float>::infinity();
  b.clear();
  try {
    c.encode(std::span<const float>(v), s, b);
    FAIL("no non_finite_error");
  } catch (const loco::non_finite_error& e) {
    CHECK(e.index() == 4);
    CHECK_THAT(e.what(), Catch::Contains("compress::ef21 input"));
  }
  CHECK(std::equal(before.begin(), before.end(), s.estimate().begin()));
}

TEST_CASE("warmup sends dense messages for its first steps, then C's", "[compress][warmup]") {
  using W = lc::warmup<lc::top_k>;
  const W c(lc::top_k(0.1), 3);
  const std::size_t d = 100;
  W::state<float> tx(c, d, 0), rx(c, d, 1);
  const auto v = normal_vector<float>(d, 2);
  for (int t = 0; t < 5; ++t) {
    buffer b;
    c.encode(std::span<const float>(v), tx, b);
    std::vector<float> out(d);
    c.decode(view(b), rx, std::span<float>(out));
    if (t < 3) {
      CHECK(loco::wire::peek_kind(view(b)) == loco::wire::payload_kind::identity);
      CHECK(out == v);
    } else {
      CHECK(loco::wire::peek_kind(view(b)) == loco::wire::payload_kind::top_k);
      CHECK(b.size() == c.wire_bytes(d));
      CHECK(out == round_trip(lc::top_k(0.1), std::span<const float>(v)));
    }
  }
  CHECK(tx.step() == 5);
}

TEST_CASE("size_threshold sends small vectors dense", "[compress][size_threshold]") {
  using S = lc::size_threshold<lc::top_k>;
  const S c(lc::top_k::with_count(8), 64);
  // k = 8 > d = 5 would be an error for top_k itself; here the vector goes dense.
  const auto small = normal_vector<float>(5, 1);
  CHECK(round_trip(c, std::span<const float>(small)) == small);
  CHECK(c.wire_bytes(5) == lc::identity{}.wire_bytes(5));
  S::state<float> s(c, 5, 0);
  CHECK(s.inner() == nullptr);
  const auto big = normal_vector<float>(64, 1);
  CHECK(round_trip(c, std::span<const float>(big)) ==
        round_trip(lc::top_k::with_count(8), std::span<const float>(big)));
  CHECK(c.wire_bytes(64) == lc::top_k::with_count(8).wire_bytes(64));
}
