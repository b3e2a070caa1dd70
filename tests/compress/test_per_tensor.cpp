// compress::per_tensor<C>: C on each tensor of a layout. Each tensor's part
// of the message is exactly C's message for that tensor; per-layer top-k
// keeps every layer's share; bad messages are refused naming the field and
// the tensor, and leave the output as it was; states checkpoint.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "common.hpp"

using namespace loco_test;
using loco::wire::buffer;
using loco::wire::view;

namespace {

// A weight of 60 x 5 and a bias of 20.
loco::tensor::layout two_tensors() {
  loco::tensor::layout l;
  l.add("w", {60, 5});
  l.add("b", {20});
  return l;
}

template <class T>
std::vector<T> weights_large_bias_small(std::size_t seed) {
  auto v = normal_vector<T>(320, seed);
  for (std::size_t j = 300; j < 320; ++j) v[j] *= T(1e-3);
  return v;
}

template <class C, class T>
std::string field_of(const C& c, const buffer& b, std::size_t d, std::string* source = nullptr) {
  lc::state_t<C, T> s(c, d, 1);
  std::vector<T> out(d, T(7));
  try {
    view in(b, "rank 7");
    c.decode(in, s, std::span<T>(out));
  } catch (const loco::protocol_error& e) {
    // A refused message leaves the output as it was.
    CHECK(std::all_of(out.begin(), out.end(), [](T x) { return x == T(7); }));
    if (source) *source = e.source();
    return e.field();
  }
  return "";
}

template <class U>
void poke(buffer& b, std::size_t at, U x) {
  b.put_at<U>(at, x);
}

}  // namespace

static_assert(loco::check_compressor<lc::per_tensor<lc::top_k>>() &&
              loco::check_compressor<lc::per_tensor<lc::error_feedback<lc::top_k>>, double>());
static_assert(!lc::traits<lc::per_tensor<lc::top_k>>::linear &&
              lc::traits<lc::per_tensor<lc::identity>>::lossless);

TEMPLATE_TEST_CASE("per_tensor's message is C's message for each tensor, back to back",
                   "[compress][per_tensor]", float, double) {
  using T = TestType;
  const lc::per_tensor<lc::top_k> c(two_tensors(), lc::top_k(0.1));
  const auto v = weights_large_bias_small<T>(3);
  lc::state_t<lc::per_tensor<lc::top_k>, T> s(c, 320, 0);
  buffer msg;
  c.encode(std::span<const T>(v), s, msg);
  REQUIRE(msg.size() == c.wire_bytes<T>(320));

  // The same bytes as the header, the count and top_k's own two messages.
  lc::top_k::state<T> sw(c.inner(), 300, 0), sb(c.inner(), 20, 0);
  buffer w, b;
  c.inner().encode(std::span<const T>(v).first(300), sw, w);
  c.inner().encode(std::span<const T>(v).subspan(300), sb, b);
  REQUIRE(msg.size() == 16 + 4 + w.size() + b.size());
  CHECK(std::memcmp(msg.data() + 20, w.data(), w.size()) == 0);
  CHECK(std::memcmp(msg.data() + 20 + w.size(), b.data(), b.size()) == 0);

  // Decoded: 30 of the weight's entries and 2 of the bias's, though every
  // bias value is smaller than the weight's largest 32 (a global top-k of
  // the same 32 entries would take none of the bias).
  std::vector<T> out(320);
  lc::state_t<lc::per_tensor<lc::top_k>, T> r(c, 320, 1);
  c.decode(view(msg), r, std::span<T>(out));
  const auto nonzero = [&](std::size_t from, std::size_t to) {
    return std::count_if(out.begin() + static_cast<std::ptrdiff_t>(from),
                         out.begin() + static_cast<std::ptrdiff_t>(to), [](T x) { return x != 0; });
  };
  CHECK(nonzero(0, 300) == 30);
  CHECK(nonzero(300, 320) == 2);
  for (std::size_t j = 0; j < 320; ++j) {
    if (out[j] != 0) CHECK(out[j] == v[j]);
  }
}

TEST_CASE("per_tensor refuses a malformed message, naming the field and the tensor",
          "[compress][per_tensor][wire]") {
  using C = lc::per_tensor<lc::top_k>;
  const C c(two_tensors(), lc::top_k(0.1));
  const auto v = weights_large_bias_small<float>(4);
  lc::state_t<C, float> s(c, 320, 0);
  buffer good;
  c.encode(std::span<const float>(v), s, good);
  CHECK(field_of<C, float>(c, good, 320).empty());

  auto bad = good;
  poke<std::uint8_t>(bad, 0, 4);  // top_k's kind
  CHECK(field_of<C, float>(c, bad, 320) == "kind");
  CHECK(field_of<C, double>(c, good, 320) == "value_type");
  bad = good;
  poke<std::uint64_t>(bad, 8, good.size() + 1);
  CHECK(field_of<C, float>(c, bad, 320) == "length");
  bad = good;
  poke<std::uint32_t>(bad, 16, 3);
  CHECK(field_of<C, float>(c, bad, 320) == "tensors");

  // Another layout of the same dimension and message size (28 + 4 entries
  // kept, as 30 + 2): the inner header's d differs.
  loco::tensor::layout other;
  other.add("w", {40, 7});
  other.add("b", {40});
  std::string source;
  CHECK(field_of<C, float>(C(other, lc::top_k(0.1)), good, 320, &source) == "d");
  CHECK(source == "rank 7, tensor 'w'");

  // The bias's first index out of range: top_k's field, the bias named.
  const std::size_t bias_at = 20 + c.inner().wire_bytes<float>(300);
  bad = good;
  poke<std::uint32_t>(bad, bias_at + 16 + 4, 20);
  CHECK(field_of<C, float>(c, bad, 320, &source) == "indices");
  CHECK(source == "rank 7, tensor 'b'");

  // Truncated anywhere: a protocol_error, never a crash.
  for (std::size_t cut = 0; cut < good.size(); cut += 7) {
    buffer shortened;
    shortened.assign(good.bytes().first(cut));
    CHECK_FALSE(field_of<C, float>(c, shortened, 320).empty());
  }
}

TEST_CASE("per_tensor: states checkpoint, bad settings and inputs are refused by name",
          "[compress][per_tensor]") {
  using C = lc::per_tensor<lc::error_feedback<lc::top_k>>;
  const C c(two_tensors(), lc::error_feedback<lc::top_k>(lc::top_k(0.1)));
  const auto v = weights_large_bias_small<float>(5);
  lc::state_t<C, float> a(c, 320, 0);
  buffer first, saved;
  c.encode(std::span<const float>(v), a, first);
  a.save(saved);
  lc::state_t<C, float> b(c, 320, 0);
  view in(saved);
  b.restore(in);
  CHECK(in.remaining() == 0);
  buffer from_a, from_b;  // the residuals carried over: the same next message
  c.encode(std::span<const float>(v), a, from_a);
  c.encode(std::span<const float>(v), b, from_b);
  CHECK(from_a.bytes().size() == from_b.bytes().size());
  CHECK(std::memcmp(from_a.data(), from_b.data(), from_a.size()) == 0);

  REQUIRE_THROWS_WITH(C(loco::tensor::layout{}, lc::error_feedback<lc::top_k>(lc::top_k(0.1))),
                      Catch::Contains("the layout has no tensors"));
  REQUIRE_THROWS_WITH((lc::state_t<C, float>(c, 300, 0)),
                      Catch::Contains("layout covers 320") && Catch::Contains("has 300"));
  auto bad = v;
  bad[310] = std::numeric_limits<float>::infinity();
  buffer out;
  REQUIRE_THROWS_AS(c.encode(std::span<const float>(bad), a, out), loco::non_finite_error);
  CHECK(out.size() == 0);
}
