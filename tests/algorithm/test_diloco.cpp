// Inner update rules and outer optimizers in local_sgd (DiLoCo), against
// plain loops written here: 3 workers on noisy quadratics, AdamW or Nesterov
// momentum inside, Nesterov or SGD outside, on in_process and the simulator;
// and the special cases that reduce to local and mini-batch SGD.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/aliases.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress/powersgd.hpp>
#include <loco/merge/outer.hpp>
#include <loco/update/adamw.hpp>
#include <loco/update/momentum.hpp>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr int workers = 3;
constexpr std::size_t dim = 5;

// f_i(x) = 0.5 sum_j a_ij (x_j - b_ij)^2, gradient with N(0, 0.1^2) noise.
struct noisy_quadratic {
  using value_type = float;
  std::vector<float> a, b;
  explicit noisy_quadratic(int i) {
    for (std::size_t j = 0; j < dim; ++j) {
      a.push_back(0.5f + 0.25f * static_cast<float>((j + static_cast<std::size_t>(i)) % 3));
      b.push_back(static_cast<float>(i) - 1.0f + 0.3f * static_cast<float>(j));
    }
  }
  std::size_t dimension() const { return dim; }
  double loss(std::span<const float> x) const {
    double s = 0;
    for (std::size_t j = 0; j < dim; ++j)
      s += 0.5 * static_cast<double>(a[j]) * std::pow(static_cast<double>(x[j] - b[j]), 2);
    return s;
  }
  double gradient(std::span<const float> x, std::span<float> g, loco::random::stream& rng) const {
    for (std::size_t j = 0; j < dim; ++j) {
      g[j] = a[j] * (x[j] - b[j]) + static_cast<float>(0.1 * rng.normal());
    }
    return loss(x);
  }
};

struct inner_adamw {
  float lr, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
  std::vector<float> m = std::vector<float>(dim), v = std::vector<float>(dim);
  int t = 0;
  void step(std::vector<float>& x, const std::vector<float>& g) {
    ++t;
    const float c1 = static_cast<float>(1.0 - std::pow(0.9, t));
    const float c2 = static_cast<float>(std::sqrt(1.0 - std::pow(0.999, t)));
    for (std::size_t j = 0; j < dim; ++j) {
      x[j] *= 1.0f - lr * wd;
      m[j] = b1 * m[j] + (1.0f - b1) * g[j];
      v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
      x[j] -= (lr / c1) * m[j] / (std::sqrt(v[j]) / c2 + eps);
    }
  }
};
struct inner_nesterov {
  float lr, mu = 0.9f;
  std::vector<float> buf = std::vector<float>(dim);
  void step(std::vector<float>& x, const std::vector<float>& g) {
    for (std::size_t j = 0; j < dim; ++j) {
      buf[j] = mu * buf[j] + g[j];
      x[j] -= lr * (g[j] + mu * buf[j]);
    }
  }
};

// Every worker's objective and random stream, as the drivers build them.
std::pair<std::vector<noisy_quadratic>, std::vector<loco::random::stream>> workers_of(
    std::uint64_t seed) {
  std::pair<std::vector<noisy_quadratic>, std::vector<loco::random::stream>> w;
  for (int i = 0; i < workers; ++i) {
    w.first.emplace_back(i);
    w.second.emplace_back(seed, static_cast<std::uint64_t>(i));
  }
  return w;
}

// R rounds of H inner steps; the outer rule sees the mean of the workers'
// models: x_global <- outer(x_global, x_global - mean).
template <class Inner, class Outer>
std::vector<float> reference(Inner inner, Outer outer, std::size_t rounds, std::size_t h,
                             std::uint64_t seed) {
  std::vector<float> global(dim, 0.0f);
  std::vector<std::vector<float>> x(workers, global);
  std::vector<Inner> inners(workers, inner);
  auto [f, rng] = workers_of(seed);
  std::vector<float> g(dim);
  for (std::size_t r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < workers; ++i) {
      for (std::size_t s = 0; s < h; ++s) {
        (void)f[i].gradient(x[i], g, rng[i]);
        inners[i].step(x[i], g);
      }
    }
    std::vector<float> mean(dim, 0.0f);
    for (std::size_t j = 0; j < dim; ++j) {
      for (std::size_t i = 0; i < workers; ++i) mean[j] += x[i][j];
      mean[j] /= static_cast<float>(workers);
    }
    outer(global, mean);
    for (auto& xi : x) xi = global;
  }
  return global;
}

struct outer_nesterov_loop {
  float lr = 0.7f, mu = 0.9f;
  std::vector<float> buf = std::vector<float>(dim);
  void operator()(std::vector<float>& global, const std::vector<float>& mean) {
    for (std::size_t j = 0; j < dim; ++j) {
      const float delta = global[j] - mean[j];
      buf[j] = mu * buf[j] + delta;
      global[j] -= lr * (delta + mu * buf[j]);
    }
  }
};
struct outer_sgd_loop {
  float lr;
  void operator()(std::vector<float>& global, const std::vector<float>& mean) {
    for (std::size_t j = 0; j < dim; ++j) global[j] -= lr * (global[j] - mean[j]);
  }
};

// The same objective with three named tensors: strided fragments of whole
// tensors are then not contiguous ({a, c} and {b}).
struct layered_quadratic : noisy_quadratic {
  using noisy_quadratic::noisy_quadratic;
  loco::tensor::layout layout() const {
    loco::tensor::layout l;
    l.add("a", {2});
    l.add("b", {1});
    l.add("c", {2});
    return l;
  }
};

template <class Comm, class Driver, class Objective = noisy_quadratic>
std::vector<std::vector<float>> run(const Driver& driver) {
  std::vector<std::vector<float>> out(workers);
  const auto body = [&](Comm& comm) {
    Objective f(comm.rank());
    const std::vector<float> x0(dim, 0.0f);
    out[static_cast<std::size_t>(comm.rank())] =
        Driver(driver).run(comm, f, std::span<const float>(x0)).local;
  };
  if constexpr (std::is_same_v<Comm, loco::comm::simulated>) {
    loco::comm::run_simulated(workers, body);
  } else {
    loco::comm::run_in_process(workers, body);
  }
  return out;
}

void require_close(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t j = 0; j < got.size(); ++j) {
    INFO("coordinate " << j);
    REQUIRE(got[j] == Approx(want[j]).margin(1e-6));
  }
}

}  // namespace

TEMPLATE_TEST_CASE("diloco: AdamW inside, Nesterov outside, equals the plain loop", "[diloco]",
                   loco::comm::in_process, loco::comm::simulated) {
  using namespace loco;
  diloco<TestType> d({}, merge::outer_nesterov(0.7, 0.9), stepsize::constant(0.02),
                     {.schedule = algorithm::schedule::rounds(6, 10), .seed = 4}, update::adamw());
  const auto got = run<TestType>(d);
  const auto want = reference(inner_adamw{0.02f}, outer_nesterov_loop{}, 6, 10, 4);
  for (const auto& x : got) require_close(x, want);
  REQUIRE(got[0] == got[1]);  // replicas are identical
}

TEMPLATE_TEST_CASE("local_sgd: Nesterov momentum inside, outer SGD, equals the plain loop",
                   "[diloco]", loco::comm::in_process, loco::comm::simulated) {
  using namespace loco;
  local_sgd<compress::identity, TestType, merge::outer_sgd, stepsize::constant, update::momentum> d(
      {}, merge::outer_sgd(0.8), stepsize::constant(0.05),
      {.schedule = algorithm::schedule::rounds(5, 4), .seed = 8}, update::momentum(0.9, true));
  const auto got = run<TestType>(d);
  const auto want = reference(inner_nesterov{0.05f}, outer_sgd_loop{0.8f}, 5, 4, 8);
  for (const auto& x : got) require_close(x, want);
}

TEST_CASE("outer_sgd with lr 1 is plain averaging: local and mini-batch SGD", "[diloco]") {
  using namespace loco;
  for (const auto& sched :
       {algorithm::schedule::rounds(6, 5), algorithm::schedule::every_step(8)}) {
    local_sgd<compress::identity, comm::in_process, merge::outer_sgd, stepsize::constant> outer(
        {}, merge::outer_sgd(1.0), stepsize::constant(0.1), {.schedule = sched, .seed = 2});
    local_sgd<compress::identity, comm::in_process, merge::average, stepsize::constant> plain(
        {}, {}, stepsize::constant(0.1), {.schedule = sched, .seed = 2});
    const auto a = run<comm::in_process>(outer);
    const auto b = run<comm::in_process>(plain);
    for (std::size_t i = 0; i < workers; ++i) require_close(a[i], b[i]);
  }
}

TEST_CASE("update rules and outer optimizers refuse bad hyperparameters by name", "[diloco]") {
  using namespace loco;
  REQUIRE_THROWS_WITH(update::adamw(1.0), Catch::Contains("beta1 1.0"));
  REQUIRE_THROWS_WITH(update::momentum(-0.1), Catch::Contains("mu -0.1"));
  REQUIRE_THROWS_WITH(merge::outer_nesterov(0.7, 1.0), Catch::Contains("momentum 1.0"));
  REQUIRE_THROWS_WITH(merge::outer_sgd(0.0), Catch::Contains("lr 0.0"));
}

namespace {

// Streaming DiLoCo as a plain loop: round r, every worker takes `local`
// AdamW steps, snapshots y, takes `tau` more; then fragment p = r mod P of
// the global model takes a Nesterov step on the mean outer gradient
// global - mean(y), and each worker keeps alpha of its own values there.
// With a quantizer q, each worker sends q(y_i - global) over the fragment
// and the mean of what arrives moves the global model's copy.
using quantizer = std::function<std::vector<float>(std::vector<float>)>;
std::vector<std::vector<float>> streaming_reference(
    const std::vector<std::vector<std::size_t>>& parts, std::size_t rounds, std::size_t local,
    std::size_t tau, float alpha, float lr, std::uint64_t seed, const quantizer& q = {}) {
  std::vector<float> global(dim, 0.0f), momentum(dim, 0.0f);
  std::vector<std::vector<float>> x(workers, global), y(workers);
  std::vector<inner_adamw> inners(workers, inner_adamw{lr});
  auto [f, rng] = workers_of(seed);
  std::vector<float> g(dim);
  const auto steps = [&](std::size_t i, std::size_t count) {
    for (std::size_t s = 0; s < count; ++s) {
      (void)f[i].gradient(x[i], g, rng[i]);
      inners[i].step(x[i], g);
    }
  };
  for (std::size_t r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < workers; ++i) {
      steps(i, local);
      y[i] = x[i];
      steps(i, tau);
    }
    const auto& part = parts[r % parts.size()];
    std::vector<float> sent_sum(part.size(), 0.0f);
    if (q) {
      for (std::size_t i = 0; i < workers; ++i) {
        std::vector<float> diff;
        for (const std::size_t j : part) diff.push_back(y[i][j] - global[j]);
        const auto sent = q(diff);
        for (std::size_t k = 0; k < part.size(); ++k) sent_sum[k] += sent[k];
      }
    }
    for (std::size_t k = 0; k < part.size(); ++k) {
      const std::size_t j = part[k];
      float mean = 0.0f;
      if (q) {
        mean = global[j] + sent_sum[k] * (1.0f / static_cast<float>(workers));
      } else {
        for (std::size_t i = 0; i < workers; ++i) mean += y[i][j];
        mean /= static_cast<float>(workers);
      }
      const float delta = global[j] - mean;
      momentum[j] = 0.9f * momentum[j] + delta;
      global[j] -= 0.7f * (delta + 0.9f * momentum[j]);
      for (auto& xi : x) xi[j] = alpha * xi[j] + (1.0f - alpha) * global[j];
    }
  }
  return x;
}

// e2m1 written out: per block of `block` values, scale = max |v| / 6 and
// each value goes to the nearest of +-{0, 0.5, 1, 1.5, 2, 3, 4, 6} scale.
std::vector<float> e2m1(std::vector<float> v, std::size_t block) {
  const float grid[] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  for (std::size_t b = 0; b < v.size(); b += block) {
    const std::size_t end = std::min(v.size(), b + block);
    float amax = 0.0f;
    for (std::size_t j = b; j < end; ++j) amax = std::max(amax, std::abs(v[j]));
    const float scale = amax / 6.0f;
    for (std::size_t j = b; j < end; ++j) {
      float best = 0.0f;
      for (const float m : grid) {
        if (std::abs(std::abs(v[j]) - m * scale) < std::abs(std::abs(v[j]) - best * scale))
          best = m;
      }
      v[j] = std::copysign(best * scale, v[j]);
    }
  }
  return v;
}

template <class Comm>
loco::streaming_diloco<Comm> streaming(std::size_t rounds, std::size_t local, std::size_t tau,
                                       std::size_t p, double alpha) {
  using namespace loco;
  return {{},
          merge::outer_nesterov(0.7, 0.9),
          stepsize::constant(0.02),
          {.schedule = algorithm::schedule::rounds(rounds, local),
           .overlap_steps = {tau},
           .fragments = {.count = p},
           .mixing = alpha,
           .seed = 6},
          update::adamw()};
}

}  // namespace

TEMPLATE_TEST_CASE("streaming_diloco: 2 fragments, overlap 1, mixing 0.5, equals the plain loop",
                   "[diloco][streaming]", loco::comm::in_process, loco::comm::simulated) {
  // Without a layout the 5 values are cut into shards {0, 1} and {2, 3, 4}.
  const auto got = run<TestType>(streaming<TestType>(8, 4, 1, 2, 0.5));
  const auto want = streaming_reference({{0, 1}, {2, 3, 4}}, 8, 4, 1, 0.5f, 0.02f, 6);
  for (std::size_t i = 0; i < workers; ++i) require_close(got[i], want[i]);
}

TEMPLATE_TEST_CASE("streaming_diloco with 4-bit outer gradients equals the plain loop",
                   "[diloco][streaming]", loco::comm::in_process, loco::comm::simulated) {
  using namespace loco;
  streaming_diloco<TestType, compress::fp4> d(compress::fp4(2), merge::outer_nesterov(0.7, 0.9),
                                              stepsize::constant(0.02),
                                              {.schedule = algorithm::schedule::rounds(8, 4),
                                               .overlap_steps = {1},
                                               .fragments = {.count = 2},
                                               .seed = 6},
                                              update::adamw());
  const auto got = run<TestType>(d);
  const auto want = streaming_reference({{0, 1}, {2, 3, 4}}, 8, 4, 1, 0.0f, 0.02f, 6,
                                        [](std::vector<float> v) { return e2m1(std::move(v), 2); });
  const auto exact = streaming_reference({{0, 1}, {2, 3, 4}}, 8, 4, 1, 0.0f, 0.02f, 6);
  for (std::size_t i = 0; i < workers; ++i) require_close(got[i], want[i]);
  REQUIRE(want[0] != exact[0]);  // the quantization is visible
}

TEMPLATE_TEST_CASE("streaming_diloco with strided fragments of a layout equals the plain loop",
                   "[diloco][streaming]", loco::comm::in_process, loco::comm::simulated) {
  // Tensors a = {0, 1}, b = {2}, c = {3, 4}: fragment 0 is {a, c}, 1 is {b}.
  const auto got = run<TestType, loco::streaming_diloco<TestType>, layered_quadratic>(
      streaming<TestType>(8, 3, 2, 2, 0.25));
  const auto want = streaming_reference({{0, 1, 3, 4}, {2}}, 8, 3, 2, 0.25f, 0.02f, 6);
  for (std::size_t i = 0; i < workers; ++i) require_close(got[i], want[i]);
}

TEST_CASE("streaming_diloco with one fragment, no overlap and no mixing is DiLoCo", "[diloco]") {
  // One type by construction (the alias differs only in its defaults); the
  // loops agree too: one part, tau = 0, alpha = 0 is the DiLoCo loop.
  static_assert(std::is_same_v<loco::streaming_diloco<loco::comm::in_process>,
                               loco::diloco<loco::comm::in_process>>);
  const auto streamed = streaming_reference({{0, 1, 2, 3, 4}}, 6, 10, 0, 0.0f, 0.02f, 6);
  const auto want = reference(inner_adamw{0.02f}, outer_nesterov_loop{}, 6, 10, 6);
  for (std::size_t i = 0; i < workers; ++i) require_close(streamed[i], want);
}

TEST_CASE("local_sgd refuses fragments it cannot build, naming why", "[diloco][streaming]") {
  using namespace loco;
  // random_k's count applies to each fragment: 3 of a 2-value fragment.
  local_sgd<compress::random_k_unscaled, comm::in_process, merge::average, stepsize::constant> d(
      compress::random_k_unscaled::with_count(3, 1), {}, stepsize::constant(0.1),
      {.fragments = {.count = 2}});
  // Catch's assertions are not thread-safe: each rank keeps its message.
  std::vector<std::string> said(workers), refused(workers);
  comm::run_in_process(workers, [&](comm::in_process& comm) {
    noisy_quadratic f(comm.rank());
    const std::vector<float> x0(dim, 0.0f);
    try {
      (void)d.run(comm, f, std::span<const float>(x0));
    } catch (const config_error& error) {
      said[static_cast<std::size_t>(comm.rank())] = error.what();
    }
  });
  for (const auto& m : said) {
    CHECK_THAT(
        m, Catch::Contains("one compressor state per fragment") && Catch::Contains("has 2 values"));
  }
  // Ranks whose layouts cut different fragments.
  local_sgd<compress::identity, comm::in_process, merge::average, stepsize::constant> e(
      {}, {}, stepsize::constant(0.1), {.fragments = {.count = 2}});
  comm::run_in_process(workers, [&](comm::in_process& comm) {
    const std::vector<float> x0(dim, 0.0f);
    const auto attempt = [&](auto&& f) {
      try {
        (void)e.run(comm, f, std::span<const float>(x0));
      } catch (const config_error& error) {
        refused[static_cast<std::size_t>(comm.rank())] = error.what();
      }
    };
    if (comm.rank() == 0) {
      attempt(layered_quadratic(0));
    } else {
      attempt(noisy_quadratic(comm.rank()));
    }
  });
  for (const auto& m : refused) CHECK_THAT(m, Catch::Contains("different fragments"));
}

TEST_CASE("fragments: strided, balanced and shards cover the model once", "[diloco][streaming]") {
  using loco::algorithm::fragments;
  loco::tensor::layout l;
  l.add("fc1.weight", {6, 4});  // 24 values at 0
  l.add("fc1.bias", {6});       // 6 at 24
  l.add("fc2.weight", {2, 6});  // 12 at 30
  l.add("fc2.bias", {2});       // 2 at 42
  const auto range = [](std::uint32_t begin, std::uint32_t end) {
    std::vector<std::uint32_t> r;
    for (auto j = begin; j < end; ++j) r.push_back(j);
    return r;
  };
  const auto join = [](std::vector<std::uint32_t> a, const std::vector<std::uint32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const auto strided = fragments{.count = 2, .by = fragments::split::strided}.of(l);
  REQUIRE(strided.size() == 2);
  CHECK(strided[0] == join(range(0, 24), range(30, 42)));
  CHECK(strided[1] == join(range(24, 30), range(42, 44)));
  const auto balanced = fragments{.count = 2, .by = fragments::split::balanced}.of(l);
  CHECK(balanced[0] == range(0, 24));  // the largest alone; 12 + 6 + 2 in the other
  CHECK(balanced[1] == range(24, 44));
  const auto shards = fragments{.count = 3, .by = fragments::split::shards}.of(l);
  CHECK(shards[0] == range(0, 14));
  CHECK(shards[1] == range(14, 29));
  CHECK(shards[2] == range(29, 44));
  CHECK(fragments{}.of(l).empty());  // one fragment: the whole model
  // A flat model is always cut into shards.
  CHECK(fragments{.count = 2}.of(loco::tensor::layout::flat(5)) ==
        std::vector<std::vector<std::uint32_t>>{{0, 1}, {2, 3, 4}});
  REQUIRE_THROWS_WITH(fragments{.count = 5}.of(l),
                      Catch::Contains("count (5)") && Catch::Contains("has 4"));
  REQUIRE_THROWS_WITH(fragments{.count = 45}.of(l), Catch::Contains("count 45"));
  REQUIRE_THROWS_WITH(loco::streaming_diloco<loco::comm::in_process>(
                          {}, loco::merge::outer_nesterov(), loco::stepsize::constant(0.1),
                          {.fragments = {.count = 0}}),
                      Catch::Contains("fragments.count 0"));
  REQUIRE_THROWS_WITH(
      loco::streaming_diloco<loco::comm::in_process>(
          {}, loco::merge::outer_nesterov(), loco::stepsize::constant(0.1), {.mixing = 1.0}),
      Catch::Contains("mixing 1.0"));
}

TEMPLATE_TEST_CASE("local_sgd with powersgd at full rank equals plain averaging; replicas agree",
                   "[powersgd]", loco::comm::in_process, loco::comm::simulated) {
  using namespace loco;
  tensor::layout as_matrix;
  as_matrix.add("w", {dim, 1});  // rank 1 is full rank: the approximation is exact
  const compress::powersgd c(as_matrix, {.rank = 1, .min_compression_rate = 0.0});
  const algorithm::local_sgd_options opt{.schedule = algorithm::schedule::rounds(6, 4), .seed = 3};
  local_sgd<compress::powersgd, TestType, merge::average, stepsize::constant> low(
      c, {}, stepsize::constant(0.05), opt);
  local_sgd<compress::identity, TestType, merge::average, stepsize::constant> dense(
      {}, {}, stepsize::constant(0.05), opt);
  const auto got = run<TestType>(low);
  const auto want = run<TestType>(dense);
  for (std::size_t i = 0; i < workers; ++i) {
    REQUIRE(got[i] == got[0]);  // bit-identical replicas
    require_close(got[i], want[i]);
  }
}
