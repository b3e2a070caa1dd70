// The timing facts of ALGORITHMS.md section 4, reproduced in virtual time
// with a minimal server/worker loop written here (rank 0 applies gradients as
// they arrive and replies to the sender; workers receive a model, spend their
// compute time, send a gradient), checked against plain-loop references.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <loco/comm/simulated.hpp>
#include <map>
#include <set>
#include <vector>

using loco::comm::any_source;
using loco::comm::run_simulated;
using loco::comm::simulated;

namespace {

constexpr int job_tag = 1, gradient_tag = 2;
constexpr std::uint64_t stop = ~std::uint64_t{0};

void send_word(simulated& c, int dst, int tag, std::uint64_t w) {
  std::byte b[8];
  std::memcpy(b, &w, 8);
  c.send(dst, tag, std::span<const std::byte>(b, 8));
}
std::uint64_t word(const loco::wire::buffer& in) {
  std::uint64_t w = 0;
  std::memcpy(&w, in.data(), 8);
  return w;
}

// A worker: receive a job (the model version), compute, return it; until stop.
void worker(simulated& c) {
  loco::wire::buffer in;
  for (;;) {
    c.recv(0, job_tag, in);
    const auto v = word(in);
    if (v == stop) return;
    c.compute();
    send_word(c, 0, gradient_tag, v);
  }
}

struct delays {
  std::uint64_t updates = 0;
  std::uint64_t sum = 0;       // sum of the delays of applied gradients
  std::uint64_t residual = 0;  // sum over in-flight jobs of the updates they have seen
};

// n always-busy workers; the server applies each gradient as it arrives and
// sends the new model back to that worker.
delays run_delays(const loco::sim::compute_model& model, int n, std::uint64_t updates) {
  delays out;
  loco::sim::options opt;
  opt.compute = model;
  opt.seed = 5;
  run_simulated(
      n + 1,
      [&](simulated& c) {
        if (c.rank() != 0) return worker(c);
        std::vector<std::uint64_t> read(static_cast<std::size_t>(n + 1), 0);
        for (int w = 1; w <= n; ++w) send_word(c, w, job_tag, 0);
        loco::wire::buffer in;
        std::uint64_t version = 0;
        for (std::uint64_t u = 0; u < updates; ++u) {
          const int from = c.recv(any_source, gradient_tag, in);
          out.sum += version - word(in);
          ++version;
          read[static_cast<std::size_t>(from)] = version;
          send_word(c, from, job_tag, version);
        }
        for (int w = 1; w <= n; ++w) out.residual += version - read[static_cast<std::size_t>(w)];
        out.updates = version;
        for (int w = 1; w <= n; ++w) send_word(c, w, job_tag, stop);
      },
      opt);
  return out;
}

}  // namespace

TEST_CASE("n always-busy workers: the average delay tends to n - 1 whatever their speeds",
          "[sim][timing]") {
  const int n = 8;
  const std::uint64_t updates = 20000;
  const std::vector<double> server_and_workers[] = {
      {0, 1, 2, 3, 4, 5, 6, 7, 8}, {0, 1, 1, 1, 1, 1, 1, 1, 50}, {0, 0.3, 1, 1, 1, 2, 2, 9, 9}};
  for (const auto& tau : server_and_workers) {
    for (bool random : {false, true}) {
      const auto model = random ? loco::sim::compute_model::exponential(tau)
                                : loco::sim::compute_model::fixed(tau);
      const auto d = run_delays(model, n, updates);
      const double mean = static_cast<double>(d.sum) / static_cast<double>(d.updates);
      INFO("slowest tau " << tau.back() << ", exponential " << random << ": mean delay " << mean);
      // Every update happens while each of the other n - 1 workers has one
      // job in flight, so sum(delays) + (updates seen by jobs still in flight)
      // = (n - 1) * updates exactly, and the mean is n - 1 - residual / updates.
      CHECK(d.sum + d.residual == static_cast<std::uint64_t>(n - 1) * updates);
      CHECK(std::abs(mean - (n - 1)) < 0.02);
    }
  }
}

namespace {

// ALGORITHMS.md section 4: 1000 clients, 900 need 10 s and 100 need 60 s per gradient.
constexpr int clients = 1000;
double tau_of(int rank) { return rank == 0 ? 0.0 : (rank <= 900 ? 10.0 : 60.0); }
loco::sim::options paper_options() {
  std::vector<double> tau(clients + 1);
  for (int r = 0; r <= clients; ++r) tau[static_cast<std::size_t>(r)] = tau_of(r);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed(tau);
  return opt;
}
int draw(loco::random::stream& rng) { return 1 + static_cast<int>(rng.below(clients)); }

}  // namespace

TEST_CASE(
    "1000 clients, 10 jobs in flight: async applies 10 gradients per ~15 s, "
    "synchronous batches of 10 need ~42.6 s",
    "[sim][timing]") {
  const std::uint64_t seed = 424242;
  INFO("seed " << seed);
  const auto wall = std::chrono::steady_clock::now();

  // Asynchronous: keep 10 jobs in flight; each applied gradient's job goes
  // to a client drawn uniformly at random (a busy client queues it).
  const std::size_t gradients = 20000;
  std::vector<double> applied_at;
  std::vector<int> applied_from;
  const auto rep = run_simulated(
      clients + 1,
      [&](simulated& c) {
        if (c.rank() != 0) return worker(c);
        loco::random::stream rng(seed, 1);
        for (int k = 0; k < 10; ++k) send_word(c, draw(rng), job_tag, 0);
        loco::wire::buffer in;
        for (std::size_t g = 0; g < gradients; ++g) {
          applied_from.push_back(c.recv(any_source, gradient_tag, in));
          applied_at.push_back(c.now());
          send_word(c, draw(rng), job_tag, g + 1);
        }
        for (int w = 1; w <= clients; ++w) send_word(c, w, job_tag, stop);
      },
      paper_options());
  const double async_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();

  // Reference: the same draws; a job starts when its client is free and ends
  // tau later; gradients are applied in order of (end time, client).
  {
    loco::random::stream rng(seed, 1);
    std::vector<double> free_at(clients + 1, 0.0);
    std::set<std::pair<double, int>> in_flight;
    const auto assign = [&](double now) {
      const int c = draw(rng);
      const double end = std::max(now, free_at[static_cast<std::size_t>(c)]) + tau_of(c);
      free_at[static_cast<std::size_t>(c)] = end;
      in_flight.insert({end, c});
    };
    for (int k = 0; k < 10; ++k) assign(0.0);
    std::size_t mismatches = 0;
    for (std::size_t g = 0; g < gradients; ++g) {
      const auto [end, c] = *in_flight.begin();
      in_flight.erase(in_flight.begin());
      if (applied_at[g] != end || applied_from[g] != c) ++mismatches;
      assign(end);
    }
    CHECK(mismatches == 0);
  }
  const double per_ten_async = applied_at.back() / (static_cast<double>(gradients) / 10.0);

  // Synchronous mini-batch of 10: draw 10 distinct clients, wait for all.
  const std::size_t steps = 2000;
  std::vector<double> step_end;
  loco::random::stream batch_rng(seed, 2);
  std::vector<std::vector<int>> batches(steps);
  for (auto& b : batches) {
    while (b.size() < 10) {
      const int c = draw(batch_rng);
      if (std::find(b.begin(), b.end(), c) == b.end()) b.push_back(c);
    }
  }
  run_simulated(
      clients + 1,
      [&](simulated& c) {
        if (c.rank() != 0) return worker(c);
        loco::wire::buffer in;
        for (std::size_t s = 0; s < steps; ++s) {
          for (int client : batches[s]) send_word(c, client, job_tag, s);
          for (int k = 0; k < 10; ++k) c.recv(any_source, gradient_tag, in);
          step_end.push_back(c.now());
        }
        for (int w = 1; w <= clients; ++w) send_word(c, w, job_tag, stop);
      },
      paper_options());
  double ref_end = 0.0;
  std::size_t mismatches = 0;
  for (std::size_t s = 0; s < steps; ++s) {
    double slowest = 0.0;
    for (int client : batches[s]) slowest = std::max(slowest, tau_of(client));
    ref_end += slowest;
    if (step_end[s] != ref_end) ++mismatches;
  }
  CHECK(mismatches == 0);
  const double per_step_sync = step_end.back() / static_cast<double>(steps);

  // Expected values. Async: 10 jobs always in flight, a mean job time of
  // 0.9 * 10 + 0.1 * 60 = 15 s, so 10 gradients per 15 s; a job drawn for a
  // busy client also waits in its queue (about 1% of draws), which adds
  // ~0.15 s in the long run, inside the paper's rounding of "15 s" (+-0.5).
  // Time per 10 gradients ~ the mean of the 20000 job times: sampling error
  // 15 s (the job-time sd) / sqrt(20000) = 0.11 s, so |error| < 0.5 - 0.15
  // holds at over 3 standard errors for any seed; this seed gives 15.16.
  INFO("async: " << per_ten_async << " s per 10 gradients; sync: " << per_step_sync
                 << " s per step; async simulation took " << async_seconds << " s of wall time ("
                 << rep.events << " events)");
  CHECK(std::abs(per_ten_async - 15.0) < 0.5);
  // Sync: a step is 10 s if all 10 clients are fast, else 60 s. The paper
  // draws independently: 10 * 0.9^10 + 60 * (1 - 0.9^10) = 42.57 ~ 42.6 s.
  // A batch here has 10 distinct clients (one job each), so p(all fast) =
  // prod_{i<10} (900 - i) / (1000 - i) = 0.3469 and the mean is 42.65 s;
  // the 0.09 s between them is far below the sampling error of 2000 steps
  // (sd 50 sqrt(p (1 - p)) = 23.8 s, standard error 0.53 s).
  const double paper = 10 * std::pow(0.9, 10) + 60 * (1 - std::pow(0.9, 10));
  CHECK(std::abs(paper - 42.6) < 0.05);
  double p = 1.0;
  for (int i = 0; i < 10; ++i) p *= (900.0 - i) / (1000.0 - i);
  const double mean = 10 * p + 60 * (1 - p);
  const double se = 50 * std::sqrt(p * (1 - p)) / std::sqrt(static_cast<double>(steps));
  INFO("expected sync " << mean << " +- " << 4 * se << " (4 standard errors)");
  CHECK(std::abs(per_step_sync - mean) < 4 * se);
  CHECK(per_step_sync > 2.5 * per_ten_async);
  WARN("1000-client async: " << per_ten_async << " s per 10 gradients, sync " << per_step_sync
                             << " s per step; " << rep.events << " events in " << async_seconds
                             << " s of wall time");
}

#include <loco/algorithm/async_sgd.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>

namespace {

// f_i(x) = 0.5 ||x - c_i||^2 with noise from the driver's stream.
struct centred {
  using value_type = double;
  double c;
  std::size_t dimension() const { return 3; }
  double loss(std::span<const double> x) const {
    double s = 0;
    for (double v : x) s += (v - c) * (v - c);
    return 0.5 * s;
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream& rng) {
    for (std::size_t j = 0; j < 3; ++j) g[j] = x[j] - c + 0.05 * rng.normal();
    return loss(x);
  }
};

// Raw doubles: lossless.
struct raw {
  static constexpr bool unbiased = true, contractive = true, lossless = true;
  template <class T>
  struct state {
    state(const raw&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T> v, state<T>&, loco::wire::buffer& out) const {
    for (T x : v) out.put(x);
  }
  template <class T>
  void decode(loco::wire::view in, state<T>&, std::span<T> out) const {
    for (auto& x : out) x = in.get<T>("value");
  }
  std::size_t wire_bytes(std::size_t d) const { return 8 * d; }
};

struct async_outcome {
  std::vector<double> model;
  double mean_delay = 0;
  double elapsed = 0;
};

async_outcome run_async_driver(std::uint64_t seed) {
  using driver = loco::async_sgd<raw, simulated, loco::stepsize::constant>;
  loco::algorithm::async_sgd_options o;
  o.updates = 3000;
  driver algo(raw{}, loco::stepsize::constant(0.05), o);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::exponential({0.0, 1.0, 2.0, 4.0, 8.0});
  opt.link = loco::sim::link_model(1e-3, 1e6);
  opt.seed = seed;
  async_outcome out;
  run_simulated(
      5,
      [&](simulated& c) {
        loco::sim::timed f(centred{static_cast<double>(c.rank())}, c.clock());
        const std::vector<double> x0(3, 0.0);
        auto res = algo.run(c, f, std::span<const double>(x0));
        if (c.rank() == 0) {
          out.model = res.model;
          out.mean_delay = res.stats.mean_delay;
          out.elapsed = res.ledger.totals().elapsed;
        }
      },
      opt);
  return out;
}

}  // namespace

TEST_CASE("the async_sgd driver runs unchanged on simulated and replays exactly", "[sim][timing]") {
  const auto a = run_async_driver(3), b = run_async_driver(3);
  REQUIRE(a.model.size() == 3);
  CHECK(std::memcmp(a.model.data(), b.model.data(), 3 * sizeof(double)) == 0);
  CHECK(a.elapsed == b.elapsed);
  CHECK(a.elapsed > 0.0);
  // 4 always-busy workers: the mean delay tends to 3 (up to the jobs still
  // in flight at the end, a few updates each over 3000 updates).
  INFO("mean delay " << a.mean_delay << " over " << a.elapsed << " virtual s");
  CHECK(std::abs(a.mean_delay - 3.0) < 0.1);
}
