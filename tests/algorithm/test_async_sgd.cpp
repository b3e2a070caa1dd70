// async_sgd on real threads (in_process). Event order is not reproducible
// here, so these tests check identities that hold for every order; exact
// references run on the simulated communicator.
#include <catch2/catch.hpp>

#include "../support/test_policies.hpp"

#include <cmath>
#include <loco/algorithm/async_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/delay_adaptive.hpp>
#include <loco/stepsize/rescaled.hpp>
#include <vector>

namespace {

using vec = std::vector<double>;

// f_i(x) = 0.5 ||x - b_i||^2 with b_i = (i, -i, ...).
struct shifted {
  using value_type = double;
  double center;
  std::size_t d = 4;
  std::size_t dimension() const { return d; }
  double loss(std::span<const double> x) const {
    double s = 0;
    for (double v : x) s += (v - center) * (v - center);
    return 0.5 * s;
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream&) {
    for (std::size_t j = 0; j < d; ++j) g[j] = x[j] - center;
    return loss(x);
  }
};

using raw = testing_policies::raw;

template <class S>
std::vector<loco::algorithm::async_sgd_result<double>> run(int ranks, S step,
                                                           loco::algorithm::async_sgd_options opt) {
  loco::async_sgd<raw, loco::comm::in_process, S> algo(raw{}, step, opt);
  std::vector<loco::algorithm::async_sgd_result<double>> out(static_cast<std::size_t>(ranks));
  loco::comm::run_in_process(ranks, [&](loco::comm::in_process& comm) {
    shifted f{static_cast<double>(comm.rank())};
    const vec x0(4, 0.0);
    out[static_cast<std::size_t>(comm.rank())] = algo.run(comm, f, std::span<const double>(x0));
  });
  return out;
}

}  // namespace

TEST_CASE("async_sgd applies every gradient and every rank gets the model", "[async_sgd]") {
  loco::algorithm::async_sgd_options opt;
  opt.updates = 600;
  auto got = run(4, loco::stepsize::constant(0.05), opt);
  const auto& s = got[0].stats;
  CHECK(s.updates == 600);
  std::uint64_t per_worker = 0;
  for (auto u : s.updates_per_worker) per_worker += u;
  CHECK(per_worker == 600);
  // Workers 1..3 have centres 1, 2, 3: the fixed point lies between them.
  for (double v : got[0].tail_average) {
    CHECK(v > 0.9);
    CHECK(v < 3.1);
  }
  for (int r = 1; r < 4; ++r) CHECK(got[static_cast<std::size_t>(r)].model == got[0].model);
  CHECK(got[0].ledger.totals().bytes_up() > 600 * 4 * sizeof(double));
}

TEST_CASE("with k jobs always in flight the delays sum to (k - 1) per update, in any event order",
          "[async_sgd]") {
  // Each update adds 1 to the delay of every other job in flight. Counting
  // the delays of the jobs discarded at shutdown, the identity is exact for
  // every thread schedule (the mean of the applied delays alone is not: a
  // starved thread's last job can miss many updates and never be applied).
  const auto check = [](const loco::algorithm::async_sgd_stats& s, std::uint64_t k) {
    const auto applied = static_cast<std::uint64_t>(std::llround(s.mean_delay * 2000.0));
    CHECK(s.updates == 2000);
    CHECK(s.discarded == k - 1);
    CHECK(applied + s.discarded_delay_sum == (k - 1) * 2000);
  };
  loco::algorithm::async_sgd_options opt;
  opt.updates = 2000;
  check(run(5, loco::stepsize::constant(0.01), opt)[0].stats, 4);

  opt.assignment = loco::algorithm::job_assignment::random_worker;
  opt.concurrency = 6;  // more jobs than workers: jobs queue at busy workers
  check(run(3, loco::stepsize::constant(0.01), opt)[0].stats, 6);
}

TEST_CASE("delay-adaptive and rescaled steps follow their formulas", "[stepsize][async_sgd]") {
  loco::stepsize::delay_adaptive da(0.1);
  loco::stepsize::context ctx;
  ctx.concurrency = 4;
  ctx.delay = 4;
  CHECK(da.eta(ctx) == 0.1);
  ctx.delay = 10;
  CHECK(da.eta(ctx) == Approx(0.01));
  loco::stepsize::delay_adaptive dropping(0.1, {.drop_stale = true});
  CHECK(dropping.eta(ctx) == 0.0);

  loco::stepsize::rescaled given(0.2, {1.0, 4.0});
  ctx.worker = 0;
  CHECK(given.eta(ctx) == Approx(0.05));
  ctx.worker = 1;
  CHECK(given.eta(ctx) == Approx(0.2));
  loco::stepsize::rescaled online(0.2);
  ctx.worker_time = 2.0;
  ctx.reference_time = 8.0;
  CHECK(online.eta(ctx) == Approx(0.05));
  CHECK_THROWS_AS(loco::stepsize::rescaled(0.2, {1.0, -1.0}), loco::config_error);
  CHECK_THROWS_WITH(loco::stepsize::delay_adaptive(0.0), Catch::Contains("eta 0.0"));
}

TEST_CASE("async_sgd rejects bad configuration", "[async_sgd]") {
  using algo = loco::async_sgd<raw, loco::comm::in_process, loco::stepsize::constant>;
  CHECK_THROWS_WITH(algo(raw{}, loco::stepsize::constant(0.1), {.updates = 0}),
                    Catch::Contains("updates 0"));
  algo one(raw{}, loco::stepsize::constant(0.1), {});
  CHECK_THROWS_WITH(loco::comm::run_in_process(1,
                                               [&](loco::comm::in_process& comm) {
                                                 shifted f{0.0};
                                                 const vec x0(4, 0.0);
                                                 one.run(comm, f, std::span<const double>(x0));
                                               }),
                    Catch::Contains("world size 1"));
  algo crowded(raw{}, loco::stepsize::constant(0.1), {.concurrency = 5});
  CHECK_THROWS_WITH(loco::comm::run_in_process(3,
                                               [&](loco::comm::in_process& comm) {
                                                 shifted f{0.0};
                                                 const vec x0(4, 0.0);
                                                 crowded.run(comm, f, std::span<const double>(x0));
                                               }),
                    Catch::Contains("concurrency 5"));
}
