// compress::powersgd: a rank-r matrix comes back exactly, the residual is
// what was not sent, warm start reuses Q, and three workers whose payloads
// are averaged here match a plain loop of the PowerSGD round (no loco code).
#include <catch2/catch.hpp>

#include <cmath>
#include <loco/compress.hpp>
#ifdef LOCO_TEST_WITH_BLAS
#include <loco/compress/powersgd_blas.hpp>
#endif
#include <loco/random/stream.hpp>
#include <vector>

namespace lc = loco::compress;

namespace {

using vec = std::vector<float>;

loco::tensor::layout weight_and_bias(std::size_t rows, std::size_t cols) {
  loco::tensor::layout l;
  l.add("w", {rows, cols});
  l.add("b", {rows});
  return l;
}

vec smooth(std::size_t n, double phase) {
  vec v(n);
  for (std::size_t j = 0; j < n; ++j)
    v[j] = static_cast<float>(std::sin(phase + 0.37 * static_cast<double>(j)));
  return v;
}

// Full rank, unlike smooth(): N(0, 1) values from (seed, 0).
vec noise(std::size_t n, std::uint64_t seed) {
  loco::random::stream rng(seed, 0);
  vec v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// One round over workers whose payloads are averaged here, as allreduce does.
template <class C>
using state_of = typename C::template state<float>;

template <class C>
std::vector<vec> round_trip(const C& c, std::vector<state_of<C>>& s,
                            const std::vector<vec>& inputs) {
  const std::size_t n = s.size();
  std::vector<std::span<float>> payload(n);
  for (std::size_t i = 0; i < n; ++i) payload[i] = c.begin(s[i], std::span<const float>(inputs[i]));
  while (!payload[0].empty()) {
    for (std::size_t k = 0; k < payload[0].size(); ++k) {
      float sum = 0;
      for (std::size_t i = 0; i < n; ++i) sum += payload[i][k];
      for (std::size_t i = 0; i < n; ++i) payload[i][k] = sum / static_cast<float>(n);
    }
    for (std::size_t i = 0; i < n; ++i) payload[i] = c.next(s[i]);
  }
  std::vector<vec> out(n, vec(inputs[0].size()));
  for (std::size_t i = 0; i < n; ++i) c.end(s[i], std::span<float>(out[i]));
  return out;
}

// --- the plain loop: row-major matrices, Gram-Schmidt on columns.
void gram_schmidt(vec& a, std::size_t rows, std::size_t r) {
  for (std::size_t k = 0; k < r; ++k) {
    float norm = 0;
    for (std::size_t i = 0; i < rows; ++i) norm += a[i * r + k] * a[i * r + k];
    norm = std::sqrt(norm);
    if (norm > 0)
      for (std::size_t i = 0; i < rows; ++i) a[i * r + k] /= norm;
    for (std::size_t l = k + 1; l < r; ++l) {
      float dot = 0;
      for (std::size_t i = 0; i < rows; ++i) dot += a[i * r + k] * a[i * r + l];
      for (std::size_t i = 0; i < rows; ++i) a[i * r + l] -= dot * a[i * r + k];
    }
  }
}

}  // namespace

// Every test runs with plain loops and, when loco::blas is built, on BLAS.
#ifdef LOCO_TEST_WITH_BLAS
#define POWERSGD_KINDS lc::powersgd, lc::powersgd_blas
#else
#define POWERSGD_KINDS lc::powersgd
#endif

static_assert(loco::check_compressor<lc::powersgd>() &&
              loco::check_compressor<lc::powersgd, double>());
static_assert(lc::traits<lc::powersgd>::linear && !lc::traits<lc::top_k>::linear);

TEMPLATE_TEST_CASE("powersgd reproduces a rank-r matrix exactly at rank r", "[compress][powersgd]",
                   POWERSGD_KINDS) {
  const std::size_t rows = 20, cols = 16, r = 2;
  const TestType c(weight_and_bias(rows, cols), {.rank = r});
  REQUIRE(c.compressed_matrices() == 1);
  const vec a = smooth(rows * r, 0.3), b = smooth(cols * r, 1.1);
  vec m(rows * cols + rows);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j)
      for (std::size_t k = 0; k < r; ++k) m[i * cols + j] += a[i * r + k] * b[j * r + k];
  for (std::size_t i = 0; i < rows; ++i) m[rows * cols + i] = static_cast<float>(i);  // the bias
  std::vector<state_of<TestType>> s;
  s.emplace_back(c, m.size(), 0);
  const auto out = round_trip(c, s, {m});
  for (std::size_t j = 0; j < m.size(); ++j) CHECK(out[0][j] == Approx(m[j]).margin(1e-5));
  // The payloads: P (rows x r) and the bias, then Q (cols x r).
  CHECK(c.first_payload() == rows * r + rows);
  CHECK(c.second_payload() == cols * r);
}

TEMPLATE_TEST_CASE("powersgd's residual is what was not sent", "[compress][powersgd]",
                   POWERSGD_KINDS) {
  const TestType c(weight_and_bias(12, 10), {.rank = 1});
  std::vector<state_of<TestType>> s;
  std::vector<vec> in;
  for (int i = 0; i < 3; ++i) {
    s.emplace_back(c, 132, static_cast<std::uint64_t>(i));
    in.push_back(smooth(132, 0.5 * i));
  }
  const auto out = round_trip(c, s, in);
  for (std::size_t i = 0; i < 3; ++i) {
    REQUIRE(out[i] == out[0]);  // the same approximation on every worker
    for (std::size_t j = 0; j < 132; ++j) CHECK(s[i].residual()[j] == in[i][j] - out[i][j]);
  }
  // The second round compresses v + e.
  const auto again = round_trip(c, s, in);
  double moved = 0;
  for (std::size_t j = 0; j < 132; ++j)
    moved += static_cast<double>(std::abs(again[0][j] - out[0][j]));
  CHECK(moved > 0.1);
}

TEMPLATE_TEST_CASE("powersgd's warm start reuses the averaged Q; without it Q is drawn afresh",
                   "[compress][powersgd]", POWERSGD_KINDS) {
  const std::size_t rows = 12, cols = 10, r = 2;
  const auto m = smooth(rows * cols + rows, 0.2);
  for (const bool warm : {true, false}) {
    INFO("warm start " << warm);
    const TestType c(weight_and_bias(rows, cols),
                     {.rank = r, .warm_start = warm, .error_feedback = false, .seed = 5});
    std::vector<state_of<TestType>> s;
    s.emplace_back(c, m.size(), 0);
    (void)round_trip(c, s, {m});
    vec q(s[0].q().begin(), s[0].q().end());  // round 1's (averaged) Q
    // Round 2's P is M times the orthogonalized Q it starts from.
    const auto p = c.begin(s[0], std::span<const float>(m));
    gram_schmidt(q, cols, r);
    vec want(rows * r, 0.0f);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j)
        for (std::size_t k = 0; k < r; ++k) want[i * r + k] += m[i * cols + j] * q[j * r + k];
    bool same = true;
    for (std::size_t k = 0; k < want.size(); ++k) same = same && std::abs(p[k] - want[k]) < 1e-5f;
    CHECK(same == warm);
  }
}

TEMPLATE_TEST_CASE("powersgd with 3 workers equals a plain loop of the PowerSGD round",
                   "[compress][powersgd]", POWERSGD_KINDS) {
  const std::size_t rows = 12, cols = 10, r = 2, d = rows * cols + rows, n = 3;
  const std::uint64_t seed = 9;
  const TestType c(weight_and_bias(rows, cols), {.rank = r, .seed = seed});
  std::vector<state_of<TestType>> s;
  for (std::size_t i = 0; i < n; ++i) s.emplace_back(c, d, i);

  // The reference's state: residuals and Q; the first Q is N(0, 1) from
  // (seed, 0), an input of the reference like any shared random draw.
  std::vector<vec> e(n, vec(d, 0.0f));
  vec q(cols * r);
  loco::random::stream rng(seed, 0);
  for (auto& v : q) v = static_cast<float>(rng.normal());

  for (std::size_t round = 0; round < 3; ++round) {
    std::vector<vec> in;
    for (std::size_t i = 0; i < n; ++i)
      in.push_back(smooth(d, 0.7 * static_cast<double>(i + 3 * round)));
    const auto got = round_trip(c, s, in);

    std::vector<vec> m(n);
    for (std::size_t i = 0; i < n; ++i) {
      m[i] = in[i];
      for (std::size_t j = 0; j < d; ++j) m[i][j] += e[i][j];
    }
    gram_schmidt(q, cols, r);
    vec p(rows * r, 0.0f);  // the mean of M_i Q
    for (std::size_t i = 0; i < n; ++i) {
      vec pi(rows * r, 0.0f);
      for (std::size_t a = 0; a < rows; ++a)
        for (std::size_t b = 0; b < cols; ++b)
          for (std::size_t k = 0; k < r; ++k) pi[a * r + k] += m[i][a * cols + b] * q[b * r + k];
      for (std::size_t k = 0; k < p.size(); ++k) p[k] += pi[k] / static_cast<float>(n);
    }
    gram_schmidt(p, rows, r);
    vec qn(cols * r, 0.0f);  // the mean of M_i^T P
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t a = 0; a < rows; ++a)
        for (std::size_t b = 0; b < cols; ++b)
          for (std::size_t k = 0; k < r; ++k)
            qn[b * r + k] += m[i][a * cols + b] * p[a * r + k] / static_cast<float>(n);
    q.swap(qn);
    vec want(d, 0.0f);
    for (std::size_t a = 0; a < rows; ++a)
      for (std::size_t b = 0; b < cols; ++b)
        for (std::size_t k = 0; k < r; ++k) want[a * cols + b] += p[a * r + k] * q[b * r + k];
    for (std::size_t a = 0; a < rows; ++a) {  // the bias travels dense: its mean
      for (std::size_t i = 0; i < n; ++i)
        want[rows * cols + a] += m[i][rows * cols + a] / static_cast<float>(n);
    }
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j) e[i][j] = m[i][j] - want[j];

    INFO("round " << round);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < d; ++j) REQUIRE(got[i][j] == Approx(want[j]).margin(1e-5));
  }
}

TEMPLATE_TEST_CASE(
    "powersgd: dense rounds before start_iteration, small matrices dense, state round trip",
    "[compress][powersgd]", POWERSGD_KINDS) {
  const std::size_t d = 12 * 10 + 12;
  const TestType c(weight_and_bias(12, 10), {.rank = 1, .start_iteration = 1});
  std::vector<state_of<TestType>> s;
  s.emplace_back(c, d, 0);
  s.emplace_back(c, d, 1);
  const std::vector<vec> in{smooth(d, 0.1), smooth(d, 2.0)};
  const auto first = round_trip(c, s, in);  // dense: the exact mean
  for (std::size_t j = 0; j < d; ++j) CHECK(first[0][j] == (in[0][j] + in[1][j]) / 2);
  // A checkpoint after round 1 restores the same rounds after it.
  loco::wire::buffer saved;
  s[0].save(saved);
  const auto second = round_trip(c, s, in);
  std::vector<state_of<TestType>> restored;
  restored.emplace_back(c, d, 0);
  restored.emplace_back(c, d, 1);
  loco::wire::view view(saved, "checkpoint");
  restored[0].restore(view);
  loco::wire::buffer saved1;
  // Worker 1's state before round 2 is not kept above: rebuild it.
  std::vector<state_of<TestType>> fresh;
  fresh.emplace_back(c, d, 0);
  fresh.emplace_back(c, d, 1);
  (void)round_trip(c, fresh, in);
  fresh[1].save(saved1);
  loco::wire::view view1(saved1, "checkpoint");
  restored[1].restore(view1);
  CHECK(round_trip(c, restored, in) == second);

  // A matrix that would not shrink by min_compression_rate travels dense.
  const TestType small(weight_and_bias(3, 2), {.rank = 1});
  CHECK(small.compressed_matrices() == 0);
  CHECK(small.second_payload() == 0);
}

TEST_CASE("powersgd refuses bad settings and calls out of order by name", "[compress][powersgd]") {
  REQUIRE_THROWS_WITH(lc::powersgd(weight_and_bias(4, 4), {.rank = 0}), Catch::Contains("rank 0"));
  REQUIRE_THROWS_WITH(lc::powersgd(weight_and_bias(4, 4), {.min_compression_rate = -1}),
                      Catch::Contains("min_compression_rate -1"));
  const lc::powersgd c(weight_and_bias(8, 8), {.rank = 1});
  REQUIRE_THROWS_WITH(lc::powersgd::state<float>(c, 10, 0),
                      Catch::Contains("layout covers 72") && Catch::Contains("has 10"));
  lc::powersgd::state<float> s(c, 72, 0);
  vec out(72);
  REQUIRE_THROWS_WITH(c.next(s), Catch::Contains("without begin"));
  const vec v = smooth(72, 0.0);
  (void)c.begin(s, std::span<const float>(v));
  REQUIRE_THROWS_WITH(c.end(s, std::span<float>(out)), Catch::Contains("before every payload"));
  vec bad = v;
  bad[3] = std::nanf("");
  REQUIRE_THROWS_AS(c.begin(s, std::span<const float>(bad)), loco::non_finite_error);
  REQUIRE_THROWS_WITH(
      lc::powersgd(weight_and_bias(8, 8), {.orthogonalize = lc::orthogonalization::qr}),
      Catch::Contains("orthogonalization::qr needs LAPACK") && Catch::Contains("powersgd_blas"));
}

#ifdef LOCO_TEST_WITH_BLAS
// P Q^T = P P^T M projects M on the span of P, whatever basis of it the
// orthogonalization picks: QR and Gram-Schmidt give the same rounds.
TEST_CASE("powersgd_blas with LAPACK's QR gives Gram-Schmidt's rounds", "[compress][powersgd]") {
  const std::size_t rows = 30, cols = 24, r = 4, d = rows * cols + rows, n = 2;
  const lc::powersgd gs(weight_and_bias(rows, cols), {.rank = r, .seed = 3});
  const lc::powersgd_blas qr(weight_and_bias(rows, cols),
                             {.rank = r, .seed = 3, .orthogonalize = lc::orthogonalization::qr});
  std::vector<state_of<lc::powersgd>> sg;
  std::vector<state_of<lc::powersgd_blas>> sq;
  for (std::size_t i = 0; i < n; ++i) {
    sg.emplace_back(gs, d, i);
    sq.emplace_back(qr, d, i);
  }
  for (std::size_t round = 0; round < 4; ++round) {
    std::vector<vec> in;
    for (std::size_t i = 0; i < n; ++i) in.push_back(noise(d, 100 * round + i));
    const auto a = round_trip(gs, sg, in);
    const auto b = round_trip(qr, sq, in);
    INFO("round " << round);
    for (std::size_t j = 0; j < d; ++j) REQUIRE(b[0][j] == Approx(a[0][j]).margin(1e-4));
  }
}

TEST_CASE("tensor::blas::orthonormalize returns an orthonormal basis of the same span",
          "[compress][powersgd]") {
  const std::size_t rows = 50, r = 3;
  const vec a = noise(rows * r, 7);
  vec q = a;
  vec work(loco::tensor::blas::orthonormalize_work(r));
  loco::tensor::blas::orthonormalize(q.data(), rows, r, work.data());
  for (std::size_t k = 0; k < r; ++k) {
    for (std::size_t l = 0; l < r; ++l) {
      float dot = 0;
      for (std::size_t i = 0; i < rows; ++i) dot += q[i * r + k] * q[i * r + l];
      CHECK(dot == Approx(k == l ? 1.0f : 0.0f).margin(1e-5));
    }
  }
  // Each column of a is its projection on the new basis: Q Q^T a = a.
  for (std::size_t k = 0; k < r; ++k) {
    for (std::size_t i = 0; i < rows; ++i) {
      float back = 0;
      for (std::size_t l = 0; l < r; ++l) {
        float dot = 0;
        for (std::size_t t = 0; t < rows; ++t) dot += q[t * r + l] * a[t * r + k];
        back += q[i * r + l] * dot;
      }
      CHECK(back == Approx(a[i * r + k]).margin(1e-4));
    }
  }
}
#endif
