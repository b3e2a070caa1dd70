// Training at internet scale, in virtual time on comm::simulated
// (docs/experiments/internet_scale.md). Two parts:
//
// --part async: ALGORITHMS.md section 4's 1000-client example scaled up.
// C clients (100,000 by default): 90% need 10 s per gradient, 10% need 60 s.
// A server minimises a noisy quadratic (d = 100, condition number 20) with
//   async  asynchronous SGD (the async_sgd driver), k jobs in flight, each
//          new job to a client drawn uniformly at random, delay-adaptive
//          steps at eta = 1 / (L k);
//   sync   synchronous mini-batch SGD: k distinct random clients per step,
//          the server waits for all k gradients, steps 1 / L on their mean;
// each once with every client always online and once with churn: each
// client alternates online and offline periods of exponential lengths
// (--online, --offline seconds; the server stays online). An offline client
// computes nothing and reads its job when it is back. Measured: the virtual
// time until f(x) - f* <= target * (f(x0) - f*), the updates, the mean delay,
// and the simulator's events and wall time.
//
// --part diloco: W workers (10,000 by default) each hold their own noisy
// quadratic (the shared curvature, the optimum b + h N(0, I) per worker) and
// minimise the average, synchronised by allreduce over 1 ms links (0.1 s per
// local step):
//   minibatch  one SGD step (lr 1 / L) per round on the averaged gradient
//   diloco     H AdamW steps per round, then Nesterov (lr 0.7, momentum 0.9)
//              on the averaged outer gradient (Douillard et al.)
// Measured: the virtual time until the average model is within the target of
// the average objective's optimum, and the bytes each worker sent.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <limits>
#include <loco/aliases.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/timed.hpp>
#include <loco/update/adamw.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "experiment.hpp"
#include "noisy_quadratic.hpp"

namespace {

using loco::comm::simulated;
using problem = loco::problems::quadratic<double>;

struct settings {
  int clients = 100000;
  std::size_t jobs = 1000;  // k: jobs in flight (async), batch size (sync)
  std::size_t dim = 100;
  double mu = 0.05, lipschitz = 1.0, noise = 1.0;
  double target = 0.01;    // relative to f(x0) - f*
  double budget = 1e6;     // virtual seconds
  double online = 1800.0;  // mean online period with churn
  double offline = 600.0;  // mean offline period with churn
  std::size_t seeds = 1;
  std::string part = "all";  // async, diloco or all
  // --part diloco
  int workers = 10000;
  std::size_t steps = 400;    // local steps per worker
  std::size_t h = 50;         // DiLoCo's inner steps per round
  double spread = 0.5;        // how far the workers' optima lie apart
  double inner_lr = 0.02;     // AdamW
  double step_time = 0.1;     // virtual s per local step
  double latency = 1e-3;      // s per link
  double bandwidth = 1.25e9;  // bytes/s
};

problem make_problem(const settings& s, std::uint64_t seed) {
  return experiment::noisy_quadratic(s.dim, s.mu, s.lipschitz, s.noise, seed);
}

loco::sim::options world_options(const settings& s, bool churn, std::uint64_t seed) {
  const int fast = s.clients - s.clients / 10;
  std::vector<double> tau{0.0};  // the server computes nothing
  for (int r = 1; r <= s.clients; ++r) tau.push_back(r <= fast ? 10.0 : 60.0);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed(tau);
  opt.seed = seed;
  if (churn) {
    opt.availability = loco::sim::availability::exponential(s.online, s.offline).keep_online(0);
  }
  return opt;
}

struct outcome {
  double time_to_target = std::numeric_limits<double>::quiet_NaN();
  double final_error = std::numeric_limits<double>::quiet_NaN();  // relative
  std::uint64_t updates = 0;
  double mean_delay = std::numeric_limits<double>::quiet_NaN();
  std::uint64_t events = 0;
  double wall = 0;
};

// Stops the asynchronous run at the target or the budget.
struct target_watch {
  const problem& f;
  double start_error, target, budget;
  outcome& out;
  bool on_round_end(const loco::algorithm::update_info<double>& u) {
    out.final_error = f.loss(u.model) / start_error;
    out.updates = u.update;
    if (out.final_error <= target) {
      out.time_to_target = u.time;
      return true;
    }
    return u.time > budget;
  }
};

outcome run_async(const settings& s, const problem& f, bool churn, std::uint64_t seed) {
  loco::algorithm::async_sgd_options o;
  o.updates = std::numeric_limits<std::uint64_t>::max() / 2;  // the watch stops the run
  o.concurrency = s.jobs;
  o.assignment = loco::algorithm::job_assignment::random_worker;
  o.seed = seed;
  o.tail_fraction = 1.0;
  const double eta = 1.0 / (s.lipschitz * static_cast<double>(s.jobs));
  loco::delay_adaptive_asgd<simulated> driver({}, loco::stepsize::delay_adaptive(eta), o);
  outcome out;
  const std::vector<double> x0(s.dim, 0.0);
  const auto t0 = std::chrono::steady_clock::now();
  const auto rep = loco::comm::run_simulated(
      s.clients + 1,
      [&](simulated& comm) {
        loco::sim::timed<const problem&> timed_f(f, comm.clock());
        if (comm.rank() == 0) {
          const auto r = driver.run(comm, timed_f, std::span<const double>(x0),
                                    target_watch{f, f.loss(x0), s.target, s.budget, out});
          out.mean_delay = r.stats.mean_delay;
        } else {
          (void)driver.run(comm, timed_f, std::span<const double>(x0));
        }
      },
      world_options(s, churn, seed));
  out.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.events = rep.events;
  return out;
}

outcome run_sync(const settings& s, const problem& f, bool churn, std::uint64_t seed) {
  constexpr int job_tag = 1, gradient_tag = 2;
  const double eta = 1.0 / s.lipschitz;
  const auto d = s.dim;
  outcome out;
  const auto t0 = std::chrono::steady_clock::now();
  const auto rep = loco::comm::run_simulated(
      s.clients + 1,
      [&](simulated& comm) {
        loco::wire::buffer msg;
        std::vector<double> x(d, 0.0), g(d, 0.0);
        if (comm.rank() != 0) {
          loco::sim::timed<const problem&> timed_f(f, comm.clock());
          loco::random::stream rng(seed, static_cast<std::uint64_t>(comm.rank()));
          for (;;) {
            comm.recv(0, job_tag, msg);
            if (msg.size() != d * sizeof(double)) return;  // stop
            std::memcpy(x.data(), msg.data(), msg.size());
            timed_f.gradient(x, g, rng);
            comm.send(0, gradient_tag, std::as_bytes(std::span<const double>(g)));
          }
        }
        const double start = f.loss(x);
        loco::random::stream draw(seed, 0x5);
        std::vector<char> picked(static_cast<std::size_t>(s.clients) + 1, 0);
        std::vector<int> batch;
        std::vector<double> sum(d);
        while (comm.now() <= s.budget) {
          batch.clear();
          while (batch.size() < s.jobs) {
            const int c = 1 + static_cast<int>(draw.below(static_cast<std::uint64_t>(s.clients)));
            if (!picked[static_cast<std::size_t>(c)]) {
              picked[static_cast<std::size_t>(c)] = 1;
              batch.push_back(c);
            }
          }
          for (int c : batch) {
            picked[static_cast<std::size_t>(c)] = 0;
            comm.send(c, job_tag, std::as_bytes(std::span<const double>(x)));
          }
          std::fill(sum.begin(), sum.end(), 0.0);
          for (std::size_t k = 0; k < s.jobs; ++k) {
            (void)comm.recv(loco::comm::any_source, gradient_tag, msg);
            const auto* v = reinterpret_cast<const double*>(msg.data());
            for (std::size_t j = 0; j < d; ++j) sum[j] += v[j];
          }
          for (std::size_t j = 0; j < d; ++j) {
            x[j] -= eta * sum[j] / static_cast<double>(s.jobs);
          }
          ++out.updates;
          out.final_error = f.loss(x) / start;
          if (out.final_error <= s.target) {
            out.time_to_target = comm.now();
            break;
          }
        }
        const std::byte stop[1] = {};
        for (int c = 1; c <= s.clients; ++c) comm.send(c, job_tag, stop);
      },
      world_options(s, churn, seed));
  out.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.events = rep.events;
  return out;
}

// ---------------------------------------------------------------- diloco
using fproblem = loco::problems::quadratic<float>;

struct fleet {
  std::vector<float> a, mean_b;  // the shared curvature, the mean optimum
  // Worker w's optimum: b + spread N(0, I), drawn from (seed, w).
  std::vector<float> optimum(const settings& s, std::uint64_t seed, int w) const {
    loco::random::stream base(seed, 0xb), rng(seed, 0x1000 + static_cast<std::uint64_t>(w));
    std::vector<float> b(s.dim);
    for (auto& v : b) v = static_cast<float>(base.normal() + s.spread * rng.normal());
    return b;
  }
  // The average objective's distance to its optimum: 0.5 (x - mean b)^T A (x - mean b).
  double error(std::span<const float> x) const {
    double e = 0;
    for (std::size_t j = 0; j < a.size(); ++j) {
      const double r = static_cast<double>(x[j]) - static_cast<double>(mean_b[j]);
      e += 0.5 * static_cast<double>(a[j]) * r * r;
    }
    return e;
  }
};

fleet make_fleet(const settings& s, std::uint64_t seed) {
  fleet f;
  f.a.resize(s.dim);
  f.mean_b.assign(s.dim, 0.0f);
  for (std::size_t j = 0; j < s.dim; ++j) {
    f.a[j] = static_cast<float>(s.mu + (s.lipschitz - s.mu) * static_cast<double>(j) /
                                           static_cast<double>(s.dim - 1));
  }
  std::vector<double> sum(s.dim, 0.0);
  for (int w = 0; w < s.workers; ++w) {
    const auto b = f.optimum(s, seed, w);
    for (std::size_t j = 0; j < s.dim; ++j) sum[j] += static_cast<double>(b[j]);
  }
  for (std::size_t j = 0; j < s.dim; ++j) {
    f.mean_b[j] = static_cast<float>(sum[j] / s.workers);
  }
  return f;
}

struct diloco_outcome {
  double time_to_target = std::numeric_limits<double>::quiet_NaN();
  double final_error = std::numeric_limits<double>::quiet_NaN();  // relative
  std::uint64_t rounds = 0, bytes_per_worker = 0, events = 0;
  double end_time = 0, wall = 0;
};

// Records, on rank 0, when the average model first met the target. (No
// early stop: agreeing on one is a collective per round, which would add its
// own cost to the virtual time.)
struct error_watch {
  const fleet& f;
  double start_error, target;
  diloco_outcome& out;
  void on_round_end(const loco::algorithm::round_info<float>& u) {
    if (u.rank != 0) return;
    out.final_error = f.error(u.model) / start_error;
    out.rounds = u.round;
    if (std::isnan(out.time_to_target) && out.final_error <= target) out.time_to_target = u.time;
  }
};

diloco_outcome run_fleet(const settings& s, const fleet& f, bool diloco, std::uint64_t seed) {
  namespace alg = loco::algorithm;
  using constant = loco::stepsize::constant;
  const std::size_t per_round = diloco ? s.h : 1;
  alg::local_sgd_options opt;
  opt.schedule = alg::schedule::rounds(s.steps / per_round, per_round);
  opt.seed = seed;
  opt.record_rounds = false;
  loco::sim::options world;
  world.compute = loco::sim::compute_model(s.step_time);
  world.link = loco::sim::link_model(s.latency, s.bandwidth);
  world.seed = seed;
  diloco_outcome out;
  const std::vector<float> x0(s.dim, 0.0f);
  const double start = f.error(x0);
  const auto t0 = std::chrono::steady_clock::now();
  const auto rep = loco::comm::run_simulated(
      s.workers,
      [&](simulated& comm) {
        auto a = loco::tensor::vector<float>::from_shape({s.dim});
        auto b = loco::tensor::vector<float>::from_shape({s.dim});
        const auto b_i = f.optimum(s, seed, comm.rank());
        for (std::size_t j = 0; j < s.dim; ++j) {
          a(j) = f.a[j];
          b(j) = b_i[j];
        }
        loco::sim::timed g(fproblem::diagonal(a, b, {.noise_variance = s.noise}), comm.clock());
        error_watch watch{f, start, s.target, out};
        loco::observe::ledger ledger;
        if (diloco) {
          loco::diloco<simulated> driver({}, loco::merge::outer_nesterov(0.7, 0.9),
                                         constant(s.inner_lr), opt,
                                         loco::update::adamw(0.9, 0.999, 1e-8, 0.0));
          ledger = driver.run(comm, g, std::span<const float>(x0), watch).ledger;
        } else {
          loco::local_sgd<loco::compress::identity, simulated, loco::merge::average, constant>
              driver({}, {}, constant(1.0 / s.lipschitz), opt);
          ledger = driver.run(comm, g, std::span<const float>(x0), watch).ledger;
        }
        if (comm.rank() == 0) {
          out.bytes_per_worker = ledger.totals().bytes_sent;
          out.end_time = comm.now();
        }
      },
      world);
  out.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.events = rep.events;
  return out;
}

using experiment::fmt;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Asynchronous SGD with 100,000 clients and DiLoCo with 10,000 workers"};
  experiment::common_flags flags;
  flags.add_to(app);
  settings s;
  app.add_option("--clients", s.clients, "clients C (90% at 10 s, 10% at 60 s per gradient)")
      ->capture_default_str();
  app.add_option("--jobs", s.jobs, "k: jobs in flight (async) and batch size (sync)")
      ->capture_default_str();
  app.add_option("--online", s.online, "churn: mean online period, virtual s")
      ->capture_default_str();
  app.add_option("--offline", s.offline, "churn: mean offline period, virtual s")
      ->capture_default_str();
  app.add_option("--target", s.target, "stop at f(x) - f* <= target (f(x0) - f*)")
      ->capture_default_str();
  app.add_option("--budget", s.budget, "virtual seconds per run at most")->capture_default_str();
  app.add_option("--seeds", s.seeds, "seeds")->capture_default_str();
  app.add_option("--part", s.part, "async, diloco or all")->capture_default_str();
  app.add_option("--workers", s.workers, "diloco part: workers W")->capture_default_str();
  app.add_option("--steps", s.steps, "diloco part: local steps per worker")->capture_default_str();
  app.add_option("--h", s.h, "diloco part: DiLoCo's inner steps per round")->capture_default_str();
  app.add_option("--inner-lr", s.inner_lr, "diloco part: AdamW's lr")->capture_default_str();
  app.add_option("--spread", s.spread, "diloco part: spread of the workers' optima")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (flags.quick) {
    s.clients = 2000;
    s.jobs = 20;
    s.workers = 100;
  }
  if (s.part != "async" && s.part != "diloco" && s.part != "all") {
    std::cerr << "internet_scale: --part " << s.part << ": give async, diloco or all\n";
    return 2;
  }
  if (s.workers < 1 || s.h < 1 || s.steps < s.h) {
    std::cerr << "internet_scale: need workers >= 1 and steps >= h >= 1\n";
    return 2;
  }
  const bool async_part = s.part != "diloco", diloco_part = s.part != "async";
  if (s.clients < 2 || s.jobs < 1 || s.jobs > static_cast<std::size_t>(s.clients)) {
    std::cerr << "internet_scale: need clients >= 2 and 1 <= jobs <= clients (got " << s.clients
              << ", " << s.jobs << ")\n";
    return 2;
  }
  loco::observe::table table{"method",  "churn",      "seed",        "time to target (s)",
                             "updates", "mean delay", "final error", "events",
                             "wall (s)"};
  loco::observe::csv_writer csv(flags.file("internet_scale_async.csv"),
                                {"method", "churn", "seed", "clients", "jobs", "time_to_target_s",
                                 "updates", "mean_delay", "final_error", "events", "wall_s"});
  for (std::size_t k = 0; k < s.seeds && async_part; ++k) {
    const std::uint64_t seed = flags.seed + k;
    const problem f = make_problem(s, seed);
    for (const bool churn : {false, true}) {
      for (const bool async : {true, false}) {
        const outcome o = async ? run_async(s, f, churn, seed) : run_sync(s, f, churn, seed);
        const std::string method = async ? "async (delay-adaptive)" : "sync mini-batch";
        const std::string churn_text =
            churn ? "on " + fmt(s.online) + " / off " + fmt(s.offline) + " s" : "none";
        table.add_row(method, churn_text, seed, fmt(o.time_to_target, 6), o.updates,
                      fmt(o.mean_delay), fmt(o.final_error), o.events, fmt(o.wall, 3));
        csv.row(method, churn ? "yes" : "no", seed, s.clients, s.jobs, o.time_to_target, o.updates,
                o.mean_delay, o.final_error, o.events, o.wall);
        std::cout << method << ", churn " << churn_text << ": " << fmt(o.time_to_target, 6)
                  << " s to target, " << o.events << " events in " << fmt(o.wall, 3)
                  << " s of wall time\n"
                  << std::flush;
      }
    }
  }
  if (async_part) {
    std::cout << "\n"
              << s.clients << " clients, k = " << s.jobs << ", target " << s.target
              << " of the initial error\n";
    table.print(std::cout);
  }
  if (!diloco_part) return 0;

  loco::observe::table fleet_table{"method",          "seed",        "time to target (s)",
                                   "rounds",          "final error", "bytes per worker",
                                   "virtual end (s)", "events",      "wall (s)"};
  loco::observe::csv_writer fleet_csv(
      flags.file("internet_scale_diloco.csv"),
      {"method", "seed", "workers", "steps", "h", "time_to_target_s", "rounds", "final_error",
       "bytes_per_worker", "end_s", "events", "wall_s"});
  for (std::size_t k = 0; k < s.seeds; ++k) {
    const std::uint64_t seed = flags.seed + k;
    const fleet f = make_fleet(s, seed);
    for (const bool diloco : {false, true}) {
      const auto o = run_fleet(s, f, diloco, seed);
      const std::string method =
          diloco ? "DiLoCo, H = " + std::to_string(s.h) : std::string("mini-batch SGD");
      fleet_table.add_row(method, seed, fmt(o.time_to_target, 6), o.rounds, fmt(o.final_error),
                          o.bytes_per_worker, fmt(o.end_time, 6), o.events, fmt(o.wall, 3));
      fleet_csv.row(method, seed, s.workers, s.steps, diloco ? s.h : 1, o.time_to_target, o.rounds,
                    o.final_error, o.bytes_per_worker, o.end_time, o.events, o.wall);
      std::cout << method << ": " << fmt(o.time_to_target, 6) << " s to target, " << o.events
                << " events in " << fmt(o.wall, 3) << " s of wall time\n"
                << std::flush;
    }
  }
  std::cout << "\n"
            << s.workers << " workers, " << s.steps << " local steps each, " << s.latency * 1e3
            << " ms links, target " << s.target << " of the initial error\n";
  fleet_table.print(std::cout);
  return 0;
}
