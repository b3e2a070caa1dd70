// compressed_amsgrad (CD-Adam) against plain-loop AMSGrad references.
#include <catch2/catch.hpp>

#include "../support/cd_adam_replicas.hpp"
#include "../support/test_policies.hpp"

#include <cmath>
#include <cstring>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/scaled_sign.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/tensor/dispatch.hpp>
#include <vector>

namespace {

using vec = std::vector<double>;
constexpr int workers = 3;
constexpr std::size_t dim = 6;

using testing_policies::scaled_quadratic;
scaled_quadratic make_worker(int i, std::size_t d = dim) {
  vec b(d);
  for (std::size_t j = 0; j < d; ++j)
    b[j] = std::cos(0.5 + static_cast<double>(i * 5 + static_cast<int>(j)));
  return {1.0 + 0.5 * i, b};
}

using raw = testing_policies::raw;

// Keeps the single largest-magnitude entry (index + value): lossy, deterministic.
struct top_1 {
  static constexpr bool unbiased = false, contractive = true;
  template <class T>
  struct state {
    state(const top_1&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T> v, state<T>&, loco::wire::buffer& out) const {
    std::size_t best = 0;
    for (std::size_t j = 1; j < v.size(); ++j)
      if (std::abs(v[j]) > std::abs(v[best])) best = j;
    out.put(static_cast<std::uint32_t>(best));
    out.put(v[best]);
  }
  template <class T>
  void decode(loco::wire::view in, state<T>&, std::span<T> out) const {
    const auto j = in.get<std::uint32_t>("index");
    for (auto& x : out) x = 0;
    out[j] = in.get<T>("value");
  }
  std::size_t wire_bytes(std::size_t) const { return 12; }
};
vec top_1_of(const vec& v) {
  std::size_t best = 0;
  for (std::size_t j = 1; j < v.size(); ++j)
    if (std::abs(v[j]) > std::abs(v[best])) best = j;
  vec out(v.size(), 0.0);
  out[best] = v[best];
  return out;
}

template <class C>
std::vector<loco::algorithm::compressed_amsgrad_result<double>> run(
    C c, loco::algorithm::compressed_amsgrad_options opt, double alpha = 0.05,
    std::size_t d = dim) {
  loco::compressed_amsgrad<C, loco::comm::in_process, loco::stepsize::constant> algo(
      c, loco::stepsize::constant(alpha), opt);
  std::vector<loco::algorithm::compressed_amsgrad_result<double>> out(workers);
  loco::comm::run_in_process(workers, [&](loco::comm::in_process& comm) {
    auto f = make_worker(comm.rank(), d);
    const vec x0(d, 0.1);
    out[static_cast<std::size_t>(comm.rank())] = algo.run(comm, f, std::span<const double>(x0));
  });
  return out;
}

// Plain AMSGrad on a given sequence of update directions h_tilde(x).
template <class Direction>
vec amsgrad(std::size_t steps, double alpha, Direction direction) {
  vec x(dim, 0.1), m(dim, 0), v(dim, 0), vhat(dim, 0);
  for (std::size_t t = 0; t < steps; ++t) {
    const vec h = direction(x);
    for (std::size_t j = 0; j < dim; ++j) {
      m[j] = 0.9 * m[j] + 0.1 * h[j];
      v[j] = 0.99 * v[j] + 0.01 * h[j] * h[j];
      vhat[j] = std::max(vhat[j], v[j]);
      x[j] -= alpha * m[j] / (std::sqrt(vhat[j]) + 1e-8);
    }
  }
  return x;
}

vec mean_gradient(const vec& x) {
  vec g(dim, 0.0);
  for (int i = 0; i < workers; ++i) {
    auto f = make_worker(i);
    for (std::size_t j = 0; j < dim; ++j) g[j] += f.a * (x[j] - f.b[j]) / workers;
  }
  return g;
}

}  // namespace

TEST_CASE("CD-Adam with a lossless compressor equals plain AMSGrad", "[cd_adam]") {
  for (auto strategy : {loco::algorithm::compression_strategy::difference,
                        loco::algorithm::compression_strategy::error_feedback,
                        loco::algorithm::compression_strategy::naive}) {
    loco::algorithm::compressed_amsgrad_options opt;
    opt.iterations = 40;
    opt.strategy = strategy;
    auto got = run(raw{}, opt);
    const vec want = amsgrad(40, 0.05, mean_gradient);
    for (std::size_t j = 0; j < dim; ++j) CHECK(got[0].model[j] == Approx(want[j]).margin(1e-12));
    CHECK(got[0].ledger.totals().bytes_up() == 40 * 8 * dim);
    CHECK(got[1].ledger.totals().bytes_down() == 40 * 8 * dim);
  }
}

TEST_CASE("CD-Adam's difference strategy follows its update rule with a lossy compressor",
          "[cd_adam]") {
  loco::algorithm::compressed_amsgrad_options opt;
  opt.iterations = 25;
  auto got = run(top_1{}, opt);

  std::vector<vec> h_i(workers, vec(dim, 0.0));
  vec h(dim, 0.0), h_tilde(dim, 0.0);
  const vec want = amsgrad(25, 0.05, [&](const vec& x) {
    vec sum(dim, 0.0);
    for (int i = 0; i < workers; ++i) {
      auto f = make_worker(i);
      vec diff(dim);
      for (std::size_t j = 0; j < dim; ++j)
        diff[j] = f.a * (x[j] - f.b[j]) - h_i[static_cast<std::size_t>(i)][j];
      const vec c = top_1_of(diff);
      for (std::size_t j = 0; j < dim; ++j) {
        h_i[static_cast<std::size_t>(i)][j] += c[j];
        sum[j] += c[j];
      }
    }
    vec diff(dim);
    for (std::size_t j = 0; j < dim; ++j) {
      h[j] += sum[j] / workers;
      diff[j] = h[j] - h_tilde[j];
    }
    const vec c = top_1_of(diff);
    for (std::size_t j = 0; j < dim; ++j) h_tilde[j] += c[j];
    return h_tilde;
  });
  for (std::size_t j = 0; j < dim; ++j) CHECK(got[2].model[j] == Approx(want[j]).margin(1e-12));
  CHECK(got[0].ledger.totals().bytes_up() == 25 * 12);
}

TEST_CASE("CD-Adam keeps every replica bitwise identical", "[cd_adam]") {
  for (auto strategy : {loco::algorithm::compression_strategy::difference,
                        loco::algorithm::compression_strategy::error_feedback}) {
    loco::algorithm::compressed_amsgrad_options opt;
    opt.iterations = 300;
    opt.strategy = strategy;
    auto got = run(top_1{}, opt);
    for (int i = 1; i < workers; ++i) {
      CHECK(std::memcmp(got[0].model.data(), got[static_cast<std::size_t>(i)].model.data(),
                        dim * sizeof(double)) == 0);
    }
  }
}

TEST_CASE("CD-Adam converges near the optimum of the average objective", "[cd_adam]") {
  loco::algorithm::compressed_amsgrad_options opt;
  opt.iterations = 3000;
  auto got = run(top_1{}, opt, 0.01);
  const vec grad = mean_gradient(got[0].model);
  double norm = 0;
  for (double gj : grad) norm += gj * gj;
  CHECK(std::sqrt(norm) < 0.05);
}

TEST_CASE("CD-Adam rejects bad settings by name", "[cd_adam]") {
  using algo = loco::compressed_amsgrad<raw, loco::comm::in_process, loco::stepsize::constant>;
  CHECK_THROWS_WITH(algo(raw{}, loco::stepsize::constant(0.1), {.beta1 = 1.0}),
                    Catch::Contains("beta1 1.0"));
  CHECK_THROWS_WITH(algo(raw{}, loco::stepsize::constant(0.1), {.iterations = 0}),
                    Catch::Contains("iterations 0"));
}

namespace {

// Every rank's model after a run of CD-Adam on n ranks of in_process.
template <class T, class C>
std::vector<std::vector<T>> in_process_models(int n, C c, loco::algorithm::compression_strategy s,
                                              std::size_t iterations) {
  std::vector<std::vector<T>> models(static_cast<std::size_t>(n));
  loco::comm::run_in_process(n, [&](loco::comm::in_process& comm) {
    models[static_cast<std::size_t>(comm.rank())] =
        cd_adam_replicas::run<T>(comm, c, s, iterations);
  });
  return models;
}

}  // namespace

TEST_CASE("CD-Adam keeps replicas bitwise identical on the simulator with random compute times",
          "[cd_adam][sim]") {
  constexpr int n = 4;
  constexpr std::size_t iterations = 400;
  const auto check = [&](auto compressor, const char* name) {
    for (auto strategy : cd_adam_replicas::strategies) {
      INFO(name << ", " << cd_adam_replicas::name_of(strategy));
      loco::sim::options opt;
      opt.compute = loco::sim::compute_model::exponential({1.0, 0.5, 2.0, 1.5});
      opt.link = loco::sim::link_model(1e-3, 1e6);
      opt.seed = 3;
      std::vector<std::vector<float>> sim(n);
      loco::comm::run_simulated(
          n,
          [&](loco::comm::simulated& comm) {
            sim[static_cast<std::size_t>(comm.rank())] = cd_adam_replicas::run<float>(
                comm, compressor, strategy, iterations,
                [&](auto f) { return loco::sim::timed(std::move(f), comm.clock()); });
          },
          opt);
      const auto threads = in_process_models<float>(n, compressor, strategy, iterations);
      for (int r = 0; r < n; ++r) {
        INFO("rank " << r);
        CHECK(cd_adam_replicas::bitwise_equal(sim[0], sim[static_cast<std::size_t>(r)]));
        // The run does not depend on the transport or on timing.
        CHECK(cd_adam_replicas::bitwise_equal(sim[0], threads[static_cast<std::size_t>(r)]));
      }
      // A lossy run that left the start point, not a trivially equal one.
      CHECK(sim[0][0] != cd_adam_replicas::start);
    }
  };
  check(loco::compress::top_k(0.1), "top_k 10%");
  check(loco::compress::scaled_sign{}, "scaled_sign");
}

TEST_CASE("CD-Adam with the identity compressor equals plain AMSGrad on noisy gradients",
          "[cd_adam]") {
  constexpr int n = 3;
  constexpr std::size_t iterations = 300;
  const auto want = cd_adam_replicas::plain_amsgrad(n, iterations);
  for (auto strategy : cd_adam_replicas::strategies) {
    INFO(cd_adam_replicas::name_of(strategy));
    const auto got = in_process_models<double>(n, loco::compress::identity{}, strategy, iterations);
    CHECK(cd_adam_replicas::max_difference(got[1], want) < 1e-12);
  }
}

namespace {

// C without decode_sparse: CD-Adam then decodes its messages densely.
template <class C>
struct dense_only {
  C inner;
  static constexpr bool unbiased = C::unbiased, contractive = C::contractive;
  template <class T>
  struct state : C::template state<T> {
    state(const dense_only& c, std::size_t d, std::uint64_t id)
        : C::template state<T>(c.inner, d, id) {}
  };
  template <class T>
  void encode(std::span<const T> v, state<T>& s, loco::wire::buffer& out) const {
    inner.encode(v, s, out);
  }
  template <class T>
  void decode(loco::wire::view in, state<T>& s, std::span<T> out) const {
    inner.decode(in, s, out);
  }
  std::size_t wire_bytes(std::size_t d) const { return inner.template wire_bytes<double>(d); }
};
static_assert(loco::compress::traits<loco::compress::top_k>::sparse);
static_assert(!loco::compress::traits<dense_only<loco::compress::top_k>>::sparse);

bool same_models(const std::vector<loco::algorithm::compressed_amsgrad_result<double>>& a,
                 const std::vector<loco::algorithm::compressed_amsgrad_result<double>>& b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].model.size() != b[i].model.size() ||
        std::memcmp(a[i].model.data(), b[i].model.data(), a[i].model.size() * sizeof(double)) != 0)
      return false;
  }
  return true;
}

}  // namespace

TEST_CASE(
    "CD-Adam adds sparse messages entry by entry to the same bits as dense decoding, on "
    "every kernel ISA",
    "[cd_adam][dispatch]") {
  using loco::algorithm::compression_strategy;
  using loco::tensor::kernel_isa;
  // d crosses the AMSGrad step's blocks (128 doubles) and every vector tail.
  constexpr std::size_t d = 301;
  const auto sparse = loco::compress::top_k(0.1);
  const dense_only<loco::compress::top_k> dense{sparse};
  for (const auto how : {compression_strategy::difference, compression_strategy::error_feedback,
                         compression_strategy::naive}) {
    for (const bool memories : {false, true}) {
      if (memories && how != compression_strategy::difference) continue;
      loco::algorithm::compressed_amsgrad_options opt;
      opt.iterations = 200;
      opt.strategy = how;
      opt.keep_worker_memories = memories;
      loco::tensor::set_kernel_isa(kernel_isa::baseline);
      const auto want = run(dense, opt, 0.05, d);
      for (const auto isa : {kernel_isa::baseline, kernel_isa::avx2, kernel_isa::avx512}) {
        loco::tensor::set_kernel_isa(isa);
        INFO("strategy " << static_cast<int>(how) << ", memories " << memories << ", "
                         << loco::tensor::to_string(loco::tensor::active_kernel_isa()));
        CHECK(same_models(run(sparse, opt, 0.05, d), want));
        CHECK(same_models(run(dense, opt, 0.05, d), want));
      }
      loco::tensor::set_kernel_isa(kernel_isa::avx512);
    }
  }
}
