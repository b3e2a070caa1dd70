// Finite inputs and well-formed messages whose arithmetic overflows: the
// sender reports non_finite_error before sending, the receiver rejects the
// message with protocol_error and keeps its state. (Both cases were found by
// the invariants of fuzz/fuzz_compress.cpp and fuzz_compress_decorators.cpp.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "common.hpp"

using namespace loco_test;
using loco::wire::buffer;
using loco::wire::view;

TEST_CASE("random_k: a finite entry that d/k scales past the range is reported, not sent as Inf",
          "[compress][random_k][finite]") {
  // d = 4, k = 1: entries are scaled by 4; 1e38 * 4 overflows float.
  const auto c = lc::random_k::with_count(1, 42);
  lc::random_k::state<float> s(c, 4, 0);
  const std::vector<float> v(4, 1e38f);
  buffer b;
  b.put<std::uint8_t>(7);  // bytes already in the buffer stay as they were
  try {
    c.encode(std::span<const float>(v), s, b);
    FAIL("no non_finite_error");
  } catch (const loco::non_finite_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("random_k input * d/k (overflow)"));
    CHECK(e.index() < 4);
  }
  CHECK(b.size() == 1);
  CHECK(s.round() == 0);  // the failed encode used no round
  // A value that scales to within range still goes through.
  const std::vector<float> ok(4, 8e37f);
  b.clear();
  c.encode(std::span<const float>(ok), s, b);
  std::vector<float> out(4);
  lc::random_k::state<float> r(c, 4, 1);
  c.decode(view(b), r, std::span<float>(out));
  CHECK(std::count(out.begin(), out.end(), 3.2e38f) == 1);
  // The unscaled variant never scales, so never overflows.
  const auto u = lc::random_k_unscaled::with_count(1, 42);
  lc::random_k_unscaled::state<float> us(u, 4, 0);
  b.clear();
  CHECK_NOTHROW(u.encode(std::span<const float>(v), us, b));
}

TEST_CASE("ef21: a message that would overflow the receiver's estimate is rejected, h kept",
          "[compress][ef21][finite]") {
  using E = lc::ef21<lc::identity>;
  const E c(lc::identity{});
  E::state<float> receiver(c, 2, 1);
  // Two well-formed identity messages of 3e38: their sum is Inf in float.
  buffer m;
  lc::identity::state<float> plain(lc::identity{}, 2, 0);
  const std::vector<float> big = {3e38f, 1.0f};
  lc::identity{}.encode(std::span<const float>(big), plain, m);
  std::vector<float> out(2);
  c.decode(view(m, "rank 3"), receiver, std::span<float>(out));
  CHECK(out == big);
  try {
    c.decode(view(m, "rank 3"), receiver, std::span<float>(out));
    FAIL("no protocol_error");
  } catch (const loco::protocol_error& e) {
    CHECK(e.source() == "rank 3");
    CHECK(e.field() == "values");
    CHECK_THAT(e.what(), Catch::Contains("estimate overflow at index 0"));
  }
  CHECK(std::equal(big.begin(), big.end(), receiver.estimate().begin()));
  CHECK(out == big);  // the output is not touched either
}

TEST_CASE("ef21: a sender whose estimate would overflow reports it before sending",
          "[compress][ef21][finite]") {
  // Inner random_k with d = 2, k = 1 scales by 2. Pick a seed whose first two
  // rounds choose the same index j: h_j = 2 * 1.6e38 after round 0; in round
  // 1, v_j = 3.4e38 makes c_j = 2 * (3.4e38 - 3.2e38) and h_j + c_j > FLT_MAX.
  std::uint64_t seed = 0;
  std::uint32_t j = 0;
  for (;; ++seed) {
    const auto rk = lc::random_k::with_count(1, seed);
    lc::random_k::state<float> probe(rk, 2, 0);
    const auto first = rk.support(probe, 0)[0];
    if (rk.support(probe, 1)[0] == first) {
      j = first;
      break;
    }
  }
  INFO("seed " << seed << ", index " << j);
  using E = lc::ef21<lc::random_k>;
  const E c(lc::random_k::with_count(1, seed));
  E::state<float> s(c, 2, 0);
  buffer b;
  std::vector<float> v(2, 1.6e38f);
  c.encode(std::span<const float>(v), s, b);
  CHECK(s.estimate()[j] == 3.2e38f);
  const std::vector<float> before(s.estimate().begin(), s.estimate().end());
  v[j] = 3.4e38f;
  b.clear();
  try {
    c.encode(std::span<const float>(v), s, b);
    FAIL("no non_finite_error");
  } catch (const loco::non_finite_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("ef21 estimate + message (overflow)"));
    CHECK(e.index() == j);
  }
  CHECK(b.empty());
  CHECK(std::equal(before.begin(), before.end(), s.estimate().begin()));
}
