// async_sgd on the simulated communicator: event order is fixed by the
// compute model, so iterates can be checked exactly against a plain-loop
// event simulation, and the asynchronous bias of ALGORITHMS.md section 5
// shows up in numbers.
#include <catch2/catch.hpp>

#include "../support/test_policies.hpp"

#include <cmath>
#include <loco/algorithm/async_sgd.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/delay_adaptive.hpp>
#include <loco/stepsize/rescaled.hpp>
#include <map>
#include <vector>

namespace {

using vec = std::vector<double>;
constexpr std::size_t dim = 2;

// f_w(x) = 0.5 ||x - b_w||^2, b_w = (w + 1, -(w + 1)) for worker index w.
struct pull {
  using value_type = double;
  double center;
  std::size_t dimension() const { return dim; }
  double loss(std::span<const double> x) const {
    return 0.5 * ((x[0] - center) * (x[0] - center) + (x[1] + center) * (x[1] + center));
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream&) {
    g[0] = x[0] - center;
    g[1] = x[1] + center;
    return loss(x);
  }
};

using raw = testing_policies::raw;

template <class S>
loco::algorithm::async_sgd_result<double> run(const std::vector<double>& tau, S step,
                                              std::uint64_t updates) {
  loco::async_sgd<raw, loco::comm::simulated, S> algo(raw{}, step,
                                                      {.updates = updates, .tail_fraction = 0.5});
  std::vector<double> per_rank = {0.0};  // the server computes nothing
  per_rank.insert(per_rank.end(), tau.begin(), tau.end());
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed(per_rank);
  loco::algorithm::async_sgd_result<double> out;
  loco::comm::run_simulated(
      static_cast<int>(per_rank.size()),
      [&](loco::comm::simulated& comm) {
        loco::sim::timed f(pull{static_cast<double>(comm.rank())}, comm.clock());
        const vec x0(dim, 0.0);
        auto r = algo.run(comm, f, std::span<const double>(x0));
        if (comm.rank() == 0) out = r;
      },
      opt);
  return out;
}

}  // namespace

TEST_CASE("async_sgd on the simulator equals a plain-loop event simulation", "[async_sgd][sim]") {
  const std::vector<double> tau = {1.0, 1.3, 1.7, 2.9};
  const double gamma = 0.05;
  const std::uint64_t updates = 200;
  auto got = run(tau, loco::stepsize::constant(gamma), updates);

  // Reference: worker w finishes its k-th job at the k-th multiple of tau_w
  // (accumulated as the simulator does); the server applies in time order.
  vec x(dim, 0.0);
  std::vector<vec> read(tau.size(), x);
  std::vector<double> finish(tau.size());
  std::vector<std::uint64_t> version_read(tau.size(), 0);
  for (std::size_t w = 0; w < tau.size(); ++w) finish[w] = 0.0 + tau[w];
  std::uint64_t version = 0;
  double delay_sum = 0;
  while (version < updates) {
    std::size_t w = 0;
    for (std::size_t q = 1; q < tau.size(); ++q)
      if (finish[q] < finish[w]) w = q;
    const double c = static_cast<double>(w + 1);
    x[0] -= gamma * (read[w][0] - c);
    x[1] -= gamma * (read[w][1] + c);
    delay_sum += static_cast<double>(version - version_read[w]);
    ++version;
    read[w] = x;
    version_read[w] = version;
    finish[w] += tau[w];
  }
  CHECK(got.model[0] == Approx(x[0]).margin(1e-9));
  CHECK(got.model[1] == Approx(x[1]).margin(1e-9));
  CHECK(got.stats.mean_delay == Approx(delay_sum / updates).margin(1e-12));
}

TEST_CASE("vanilla ASGD is biased toward fast workers; rescaled ASGD is not",
          "[async_sgd][sim][rescaled]") {
  // Worker w pulls toward w + 1 and needs tau_w per gradient. Vanilla ASGD
  // settles near sum_w p_w (w + 1) with p_w proportional to 1 / tau_w;
  // rescaled steps (gamma tau_w / tau_max) weight every worker equally.
  const std::vector<double> tau = {1.0, 2.0, 4.0, 8.0};
  double weighted = 0, total = 0;
  for (std::size_t w = 0; w < tau.size(); ++w) {
    weighted += static_cast<double>(w + 1) / tau[w];
    total += 1.0 / tau[w];
  }
  const double vanilla_target = weighted / total;  // 1.7333
  const double true_target = 2.5;
  const double gamma = 0.01;
  // The tail average's residual is of order gamma times the spread of the
  // b_w (here at most 3): 0.05 leaves room for that and no more.
  const double tol = 0.05;

  auto vanilla = run(tau, loco::stepsize::constant(gamma), 20000);
  auto given = run(tau, loco::stepsize::rescaled(gamma, tau), 20000);
  auto online = run(tau, loco::stepsize::rescaled(gamma), 20000);
  INFO("vanilla " << vanilla.tail_average[0] << ", rescaled (given tau) " << given.tail_average[0]
                  << ", rescaled (online tau) " << online.tail_average[0]);
  CHECK(vanilla.tail_average[0] == Approx(vanilla_target).margin(tol));
  CHECK(vanilla.tail_average[1] == Approx(-vanilla_target).margin(tol));
  CHECK(given.tail_average[0] == Approx(true_target).margin(tol));
  CHECK(online.tail_average[0] == Approx(true_target).margin(tol));
  // Update counts follow 1 / tau_w.
  CHECK(vanilla.stats.updates_per_worker[0] > 7 * vanilla.stats.updates_per_worker[3]);
  // Virtual time: 20000 updates at a total rate of 1.875 per second.
  CHECK(vanilla.ledger.totals().elapsed == Approx(20000 / 1.875).epsilon(0.01));
}

TEST_CASE("async_sgd stops at its time budget on the communicator's clock", "[async_sgd][sim]") {
  // Workers report every 1 s and every 2 s. Updates applied at t = 1..10 by
  // the first and t = 2, 4, 6, 8 by the second; the update at t = 10 spends
  // the budget, so the second worker's report at t = 10 is discarded.
  loco::async_sgd<raw, loco::comm::simulated, loco::stepsize::constant> algo(
      raw{}, loco::stepsize::constant(0.1),
      {.updates = 1'000'000, .time_budget = 10.0, .tail_fraction = 0.5});
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed({0.0, 1.0, 2.0});
  loco::algorithm::async_sgd_result<double> out;
  loco::comm::run_simulated(
      3,
      [&](loco::comm::simulated& comm) {
        loco::sim::timed f(pull{static_cast<double>(comm.rank())}, comm.clock());
        const vec x0(dim, 0.0);
        auto r = algo.run(comm, f, std::span<const double>(x0));
        if (comm.rank() == 0) out = r;
      },
      opt);
  CHECK(out.stats.updates == 14);
  CHECK(out.stats.updates_per_worker == std::vector<std::uint64_t>{10, 4});
  CHECK(out.stats.discarded == 1);
  CHECK(out.ledger.totals().elapsed == Approx(10.0));
  // The tail is the second half of the budget, not of the (unreached) updates.
  REQUIRE(out.tail_average.size() == dim);
  CHECK(out.tail_average[0] != out.model[0]);
  CHECK(out.tail_average[0] == Approx(out.model[0]).margin(0.3));

  CHECK_THROWS_AS((loco::async_sgd<raw, loco::comm::simulated, loco::stepsize::constant>(
                      raw{}, loco::stepsize::constant(0.1), {.time_budget = -1.0})),
                  loco::config_error);
}

namespace {

// Workers 1..3 need 1, 1.5 and 2 s per gradient; worker 3 drops out at t = 20
// (its compute ending at 20 never finishes: it reported at 2, 4, ..., 18).
template <class S>
loco::algorithm::async_sgd_result<double> run_with_drop_out(
    S step, loco::algorithm::async_sgd_options opt, loco::sim::report* report = nullptr,
    std::vector<std::vector<double>>* models = nullptr) {
  loco::async_sgd<raw, loco::comm::simulated, S> algo(raw{}, step, opt);
  loco::sim::options so;
  so.compute = loco::sim::compute_model::fixed({0.0, 1.0, 1.5, 2.0}).drop_out(3, 20.0);
  loco::algorithm::async_sgd_result<double> out;
  if (models) models->assign(4, {});
  auto rep = loco::comm::run_simulated(
      4,
      [&](loco::comm::simulated& comm) {
        loco::sim::timed f(pull{static_cast<double>(comm.rank())}, comm.clock());
        const vec x0(dim, 0.0);
        auto r = algo.run(comm, f, std::span<const double>(x0));
        if (comm.rank() == 0) out = r;
        if (models) (*models)[static_cast<std::size_t>(comm.rank())] = r.model;
      },
      so);
  if (report) *report = rep;
  return out;
}

}  // namespace

TEST_CASE("async_sgd in tolerate mode goes on without a worker that drops out, deterministically",
          "[async_sgd][sim][faults]") {
  loco::algorithm::async_sgd_options opt;
  opt.updates = 200;
  opt.on_worker_failure = loco::algorithm::worker_failure::tolerate;
  loco::sim::report rep;
  std::vector<std::vector<double>> models;
  const auto got = run_with_drop_out(loco::stepsize::constant(0.05), opt, &rep, &models);
  const auto& s = got.stats;
  CHECK(s.updates == 200);
  CHECK(s.updates_per_worker[2] == 9);  // reports at t = 2, 4, ..., 18
  CHECK(s.updates_per_worker[0] + s.updates_per_worker[1] == 191);
  REQUIRE(s.lost_workers == std::vector<int>{3});
  // The simulator reports the loss when nothing else can happen: after the
  // last update, when the server waits for the dropped worker's job.
  REQUIRE(s.lost_at_update.size() == 1);
  CHECK(s.lost_at_update[0] == 200);
  CHECK(rep.dropped[3]);
  CHECK_FALSE(rep.dropped[1]);
  for (double v : got.model) CHECK(std::isfinite(v));
  // The two remaining workers pull toward 1 and 2 (weighted by their speed).
  CHECK(got.tail_average[0] > 1.0);
  CHECK(got.tail_average[0] < 2.0);
  // Every live rank ends with the server's model.
  CHECK(models[1] == got.model);
  CHECK(models[2] == got.model);
  // Deterministic: a second run gives the same bits.
  const auto again = run_with_drop_out(loco::stepsize::constant(0.05), opt);
  CHECK(again.model == got.model);
  CHECK(again.stats.updates_per_worker == s.updates_per_worker);

  // Random assignment: jobs sent to the dropped worker are handed to others
  // once the loss is known, so the run still applies every update.
  opt.assignment = loco::algorithm::job_assignment::random_worker;
  opt.concurrency = 3;
  const auto random = run_with_drop_out(loco::stepsize::constant(0.05), opt);
  CHECK(random.stats.updates == 200);
  CHECK(random.stats.lost_workers == std::vector<int>{3});
  for (double v : random.model) CHECK(std::isfinite(v));
}

TEST_CASE("async_sgd in fatal mode ends with peer_lost naming a worker that drops out",
          "[async_sgd][sim][faults]") {
  loco::algorithm::async_sgd_options opt;
  opt.updates = 200;
  try {
    (void)run_with_drop_out(loco::stepsize::constant(0.05), opt);
    FAIL("a lost worker is fatal by default");
  } catch (const loco::peer_lost& e) {
    CHECK(e.rank() == 3);
  }
}
