// Asynchronous SGD with one straggler (Koloskova, Stich and Jaggi 2022;
// ALGORITHMS.md sections 4 and 7), in virtual time on comm::simulated.
//
// n workers share one noisy quadratic f(x) = 0.5 (x - b)^T A (x - b),
// A = diag(mu .. L); n - 1 of them need 1 s per gradient on average, one
// straggler needs S s (S = 1, 10, 100, 1000; log-normal compute times). After
// a fixed virtual-time budget we measure f(x) - f* for
//   (a) a constant step at the theory's bound for the maximum delay,
//       eta = 1 / (L tau_max), tau_max measured on the same event order;
//   (b) the delay-adaptive step at its own bound, eta = 1 / (L tau_C),
//       tau_C = n (eta / tau for gradients older than tau_C);
//   (c) a constant step tuned on a grid eta = 2^-k / L (best mean error).
// The event order does not depend on the step size (compute costs are a
// function of seed, rank and step only), so every method of one (S, seed)
// sees exactly the same delays; the program checks that it does.
//
// Checks of the timing facts of section 4: the mean delay tends to n - 1
// (exactly: updates * mean + delays of discarded jobs = (n - 1) updates), and
// the paper's 1000-client example (10 gradients per 15 s asynchronously,
// 42.6 s per synchronous batch of 10).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <loco/aliases.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/timed.hpp>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "experiment.hpp"
#include "noisy_quadratic.hpp"

namespace {

using loco::comm::simulated;
using problem = loco::problems::quadratic<double>;

struct settings {
  std::size_t workers = 8;
  std::size_t dim = 100;
  double mu = 0.05, lipschitz = 1.0;
  double noise = 1.0;       // E||xi||^2 of a stochastic gradient
  double budget = 2500.0;   // virtual seconds (a fast gradient takes 1 s on average)
  double time_sigma = 0.2;  // log-normal shape of every compute time
  std::vector<double> slowdowns{1, 10, 100, 1000};
  std::size_t seeds = 5;
  std::vector<int> grid_exponents{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // eta = 2^-k / L
  std::size_t trace_points = 100;
  double target = 0.01;                         // time to reach f(x) - f* <= target (f(x0) - f*)
  std::size_t clients_async_gradients = 20000;  // 1000-client check
  std::size_t clients_sync_steps = 2000;
};

problem make_problem(const settings& s, std::uint64_t seed) {
  return experiment::noisy_quadratic(s.dim, s.mu, s.lipschitz, s.noise, seed);
}

struct trace_point {
  double time = 0;
  std::uint64_t update = 0;
  std::uint64_t bytes = 0;
  double error = 0;
};

struct outcome {
  double error = std::numeric_limits<double>::quiet_NaN();  // f(x) - f* at the budget
  bool diverged = false;
  // First virtual time with f(x) - f* <= the target (NaN: not within the budget).
  double time_to_target = std::numeric_limits<double>::quiet_NaN();
  std::uint64_t updates = 0;  // applied within the budget
  double delay_sum = 0;
  std::uint64_t max_delay = 0;
  std::uint64_t straggler_updates = 0;
  bool identity_holds = false;  // updates * mean + discarded delays == (n - 1) updates
  double driver_mean_delay = 0;
  std::vector<trace_point> trace;
};

// Stops the run at the budget, measures the error of the last model inside
// it, and records the delays of the updates inside it.
struct budget_watch {
  const problem& f;
  double budget;
  double trace_every;
  double target;
  int straggler;
  outcome& out;
  double next_sample = 0.0;

  bool on_round_end(const loco::algorithm::update_info<double>& u) {
    if (u.time > budget) return true;
    out.error = f.loss(u.model);  // f* = 0 at x = b
    if (std::isnan(out.time_to_target) && out.error <= target) out.time_to_target = u.time;
    ++out.updates;
    out.delay_sum += static_cast<double>(u.delay);
    out.max_delay = std::max(out.max_delay, u.delay);
    if (u.worker == straggler) ++out.straggler_updates;
    if (trace_every > 0 && u.time >= next_sample) {
      out.trace.push_back({u.time, u.update,
                           u.ledger->totals().bytes_sent + u.ledger->totals().bytes_received,
                           out.error});
      next_sample += trace_every;
    }
    if (!(out.error < 1e12)) {
      out.diverged = true;
      return true;
    }
    return false;
  }
};

template <class Driver>
outcome run_once(const settings& s, const problem& f, double slowdown, Driver& driver,
                 std::uint64_t seed, bool keep_trace) {
  std::vector<double> tau(s.workers + 1, 1.0);
  tau[0] = 0.0;  // the server computes nothing
  tau.back() = slowdown;
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::log_normal(tau, s.time_sigma);
  opt.seed = seed;
  outcome out;
  const int straggler = static_cast<int>(s.workers) - 1;  // worker index of the last rank
  loco::comm::run_simulated(
      static_cast<int>(s.workers + 1),
      [&](simulated& comm) {
        loco::sim::timed timed_f(f, comm.clock());
        const std::vector<double> x0(s.dim, 0.0);
        if (comm.rank() == 0) {
          budget_watch watch{f,
                             s.budget,
                             keep_trace ? s.budget / static_cast<double>(s.trace_points) : 0.0,
                             s.target * f.loss(x0),
                             straggler,
                             out};
          const auto r = driver.run(comm, timed_f, std::span<const double>(x0), watch);
          const auto& st = r.stats;
          out.driver_mean_delay = st.mean_delay;
          // Every update adds one to the delay of each of the other n - 1 jobs
          // in flight: the applied and the discarded delays sum to (n - 1) updates.
          const auto applied = static_cast<std::uint64_t>(
              std::llround(st.mean_delay * static_cast<double>(st.updates)));
          out.identity_holds = applied + st.discarded_delay_sum ==
                               static_cast<std::uint64_t>(s.workers - 1) * st.updates;
        } else {
          (void)driver.run(comm, timed_f, std::span<const double>(x0));
        }
      },
      opt);
  return out;
}

loco::algorithm::async_sgd_options driver_options(const settings& s, std::uint64_t seed) {
  loco::algorithm::async_sgd_options o;
  // The budget stops the run; the update cap is only a backstop.
  o.updates = static_cast<std::uint64_t>(s.budget * static_cast<double>(s.workers) * 3.0) + 100;
  o.seed = seed;
  o.tail_fraction = 1.0;
  return o;
}

outcome run_constant(const settings& s, const problem& f, double slowdown, double eta,
                     std::uint64_t seed, bool keep_trace) {
  loco::asgd<simulated> driver({}, loco::stepsize::constant(eta), driver_options(s, seed));
  return run_once(s, f, slowdown, driver, seed, keep_trace);
}

outcome run_adaptive(const settings& s, const problem& f, double slowdown, double eta,
                     std::uint64_t seed, bool keep_trace) {
  loco::delay_adaptive_asgd<simulated> driver({}, loco::stepsize::delay_adaptive(eta),
                                              driver_options(s, seed));
  return run_once(s, f, slowdown, driver, seed, keep_trace);
}

struct spread {
  double mean = 0, sd = 0, min = 0, max = 0;
};
spread summarise(const std::vector<double>& v) {
  spread r;
  if (v.empty()) return r;
  r.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - r.mean) * (x - r.mean);
  r.sd = v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0;
  r.min = *std::min_element(v.begin(), v.end());
  r.max = *std::max_element(v.begin(), v.end());
  return r;
}

using experiment::fmt;

// ---------------------------------------------------------------- 1000 clients
// ALGORITHMS.md section 4: 900 clients need 10 s, 100 need 60 s per gradient.
constexpr int clients = 1000;
double client_time(int rank) { return rank == 0 ? 0.0 : (rank <= 900 ? 10.0 : 60.0); }

loco::sim::options client_options() {
  std::vector<double> tau(clients + 1);
  for (int r = 0; r <= clients; ++r) tau[static_cast<std::size_t>(r)] = client_time(r);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed(tau);
  return opt;
}

// A one-dimensional objective: the timing does not depend on it.
struct flat {
  using value_type = double;
  std::size_t dimension() const { return 1; }
  double loss(std::span<const double> x) const { return 0.5 * x[0] * x[0]; }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream&) const {
    g[0] = x[0];
    return loss(x);
  }
};

// The async_sgd driver itself: 10 jobs in flight, each new job to a client
// drawn uniformly at random. Returns the virtual time of the last applied
// gradient per 10 gradients.
double clients_async(std::size_t gradients, std::uint64_t seed) {
  loco::algorithm::async_sgd_options o;
  o.updates = gradients;
  o.concurrency = 10;
  o.assignment = loco::algorithm::job_assignment::random_worker;
  o.seed = seed;
  loco::asgd<simulated> driver({}, loco::stepsize::constant(0.01), o);
  double last = 0.0;
  struct last_time {
    double& at;
    void on_round_end(const loco::algorithm::update_info<double>& u) { at = u.time; }
  };
  loco::comm::run_simulated(
      clients + 1,
      [&](simulated& comm) {
        loco::sim::timed f(flat{}, comm.clock());
        const std::vector<double> x0{1.0};
        if (comm.rank() == 0) {
          (void)driver.run(comm, f, std::span<const double>(x0), last_time{last});
        } else {
          (void)driver.run(comm, f, std::span<const double>(x0));
        }
      },
      client_options());
  return last / (static_cast<double>(gradients) / 10.0);
}

// Synchronous mini-batch of 10: the server draws 10 distinct clients, sends
// each a job and waits for all 10 gradients. Returns seconds per step.
double clients_sync(std::size_t steps, std::uint64_t seed) {
  constexpr int job_tag = 1, gradient_tag = 2;
  loco::random::stream rng(seed, 2);
  double end = 0.0;
  loco::comm::run_simulated(
      clients + 1,
      [&](simulated& comm) {
        loco::wire::buffer msg;
        const std::byte go[1] = {std::byte{1}}, stop[1] = {std::byte{0}};
        if (comm.rank() != 0) {
          for (;;) {
            comm.recv(0, job_tag, msg);
            if (msg.size() == 1 && msg.data()[0] == std::byte{0}) return;
            (void)comm.compute();
            comm.send(0, gradient_tag, std::span<const std::byte>(go, 1));
          }
        }
        std::vector<int> batch;
        for (std::size_t step = 0; step < steps; ++step) {
          batch.clear();
          while (batch.size() < 10) {
            const int c = 1 + static_cast<int>(rng.below(clients));
            if (std::find(batch.begin(), batch.end(), c) == batch.end()) batch.push_back(c);
          }
          for (int c : batch) comm.send(c, job_tag, std::span<const std::byte>(go, 1));
          for (int k = 0; k < 10; ++k) (void)comm.recv(loco::comm::any_source, gradient_tag, msg);
        }
        end = comm.now();
        for (int c = 1; c <= clients; ++c)
          comm.send(c, job_tag, std::span<const std::byte>(stop, 1));
      },
      client_options());
  return end / static_cast<double>(steps);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Asynchronous SGD with one straggler: constant vs delay-adaptive steps"};
  experiment::common_flags flags;
  flags.add_to(app);
  settings s;
  app.add_option("--workers", s.workers, "workers n (one of them the straggler)")
      ->capture_default_str();
  app.add_option("--budget", s.budget, "virtual seconds per run")->capture_default_str();
  app.add_option("--seeds", s.seeds, "seeds per configuration")->capture_default_str();
  app.add_option("--slowdowns", s.slowdowns, "straggler slowdowns S")->capture_default_str();
  app.add_option("--grid", s.grid_exponents, "grid for (c): eta = 2^-k / L")->capture_default_str();
  app.add_option("--clients-gradients", s.clients_async_gradients,
                 "1000-client check: asynchronous gradients (0 skips the check)")
      ->capture_default_str();
  app.add_option("--clients-steps", s.clients_sync_steps, "1000-client check: synchronous steps")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (flags.quick) {
    s.slowdowns = {1, 100};
    s.budget = 400;
    s.seeds = 1;
    s.grid_exponents = {1, 3, 5, 7};
    s.trace_points = 20;
    s.clients_async_gradients = 1000;
    s.clients_sync_steps = 100;
  }
  if (s.workers < 2)
    throw loco::config_error("--workers " + std::to_string(s.workers) + " must be >= 2");
  if (!(s.budget > 0)) throw loco::config_error("--budget must be > 0");
  if (s.seeds == 0) throw loco::config_error("--seeds 0 must be >= 1");

  const problem f = make_problem(s, flags.seed);
  const double L = s.lipschitz;
  const double eta_adaptive = 1.0 / (L * static_cast<double>(s.workers));
  std::cout << "n = " << s.workers << " workers (worker " << s.workers - 1
            << " is the straggler), d = " << s.dim << ", A = diag(" << s.mu << " .. " << L
            << "), noise E|xi|^2 = " << s.noise << ", budget " << s.budget
            << " virtual s, log-normal compute times (sigma " << s.time_sigma << "), " << s.seeds
            << " seeds; f(x0) - f* = " << f.loss(std::vector<double>(s.dim, 0.0)) << "\n\n";

  loco::observe::csv_writer summary(
      flags.file("async_stragglers_summary.csv"),
      {"slowdown", "method", "eta", "seeds", "error_mean", "error_sd", "error_min", "error_max",
       "diverged", "time_to_target_mean", "target_missed", "mean_delay", "max_delay", "updates",
       "straggler_updates"});
  loco::observe::csv_writer runs_csv(
      flags.file("async_stragglers_runs.csv"),
      {"slowdown", "method", "eta", "seed", "error", "diverged", "time_to_target", "updates",
       "mean_delay", "max_delay", "straggler_updates", "driver_mean_delay", "delay_identity"});
  auto columns = experiment::trace_columns();
  columns.push_back("slowdown");
  columns.push_back("eta");
  loco::observe::csv_writer trace(flags.file("async_stragglers_trace.csv"), columns);

  loco::observe::table results{"S",        "method",  "eta",           "error mean",
                               "sd",       "min",     "max",           "t to 1%",
                               "mean tau", "tau_max", "straggler upd."};
  loco::observe::table checks{"S", "seeds", "mean delay", "n - 1", "delay identity", "same events"};
  bool all_identities = true, all_same_events = true;

  for (double slowdown : s.slowdowns) {
    struct method_runs {
      std::string name;
      double eta = 0;  // for (a) at the bound: the mean over seeds of 1 / (L tau_max)
      std::vector<outcome> runs;
      std::vector<double> etas;  // per seed
    };
    method_runs theory{"(a) const = 1/(L tau_max)", 0, {}, {}};
    method_runs adaptive{"(b) adaptive = 1/(L tau_C)", eta_adaptive, {}, {}};
    std::vector<method_runs> constant_grid, adaptive_grid;
    for (int k : s.grid_exponents) {
      const double eta = std::ldexp(1.0, -k) / L;
      constant_grid.push_back({"constant 2^-" + std::to_string(k) + "/L", eta, {}, {}});
      // The delay-adaptive step only within its own bound.
      if (eta <= eta_adaptive) {
        adaptive_grid.push_back({"delay-adaptive 2^-" + std::to_string(k) + "/L", eta, {}, {}});
      }
    }
    for (std::size_t i = 0; i < s.seeds; ++i) {
      const std::uint64_t seed = flags.seed * 1000 + i;
      const bool keep = i == 0;
      adaptive.runs.push_back(run_adaptive(s, f, slowdown, eta_adaptive, seed, keep));
      adaptive.etas.push_back(eta_adaptive);
      const auto& pilot = adaptive.runs.back();
      // The theory's constant step for this event order's maximum delay.
      const double eta_a =
          1.0 / (L * static_cast<double>(std::max<std::uint64_t>(1, pilot.max_delay)));
      theory.etas.push_back(eta_a);
      theory.runs.push_back(run_constant(s, f, slowdown, eta_a, seed, keep));
      for (auto& g : constant_grid) {
        g.runs.push_back(run_constant(s, f, slowdown, g.eta, seed, keep));
        g.etas.push_back(g.eta);
      }
      for (auto& g : adaptive_grid) {
        g.runs.push_back(run_adaptive(s, f, slowdown, g.eta, seed, keep));
        g.etas.push_back(g.eta);
      }
    }
    theory.eta = std::accumulate(theory.etas.begin(), theory.etas.end(), 0.0) /
                 static_cast<double>(theory.etas.size());
    const double theory_bound = *std::min_element(theory.etas.begin(), theory.etas.end());

    const auto mean_error = [](const method_runs& m) {
      double sum = 0;
      for (const auto& r : m.runs) {
        if (r.diverged) return std::numeric_limits<double>::infinity();
        sum += r.error;
      }
      return sum / static_cast<double>(m.runs.size());
    };
    // The lowest mean error among the candidates (diverged runs lose).
    const auto best_of = [&](const std::vector<const method_runs*>& candidates) {
      return *std::min_element(candidates.begin(), candidates.end(),
                               [&](const method_runs* x, const method_runs* y) {
                                 return mean_error(*x) < mean_error(*y);
                               });
    };
    std::vector<const method_runs*> theory_candidates{&theory}, adaptive_candidates{&adaptive},
        constant_candidates;
    for (const auto& g : constant_grid) {
      constant_candidates.push_back(&g);
      if (g.eta <= theory_bound) theory_candidates.push_back(&g);
    }
    for (const auto& g : adaptive_grid) adaptive_candidates.push_back(&g);
    const method_runs* best_theory = best_of(theory_candidates);
    const method_runs* best_adaptive = best_of(adaptive_candidates);
    const method_runs* best_constant = best_of(constant_candidates);

    bool identities = true, same_events = true;
    double theory_mean_delay = 0;
    const auto report = [&](const method_runs& m, const std::string& label, bool in_table) {
      std::vector<double> errors, delays, reach;
      std::uint64_t max_delay = 0, straggler = 0, updates = 0;
      std::size_t diverged = 0, unreached = 0;
      for (std::size_t i = 0; i < m.runs.size(); ++i) {
        const auto& r = m.runs[i];
        const auto& pilot = adaptive.runs[i];
        errors.push_back(r.error);
        diverged += r.diverged ? 1 : 0;
        if (!r.diverged) {
          same_events = same_events && r.updates == pilot.updates &&
                        r.delay_sum == pilot.delay_sum && r.max_delay == pilot.max_delay;
          identities = identities && r.identity_holds;
        }
        if (std::isnan(r.time_to_target)) {
          ++unreached;
        } else {
          reach.push_back(r.time_to_target);
        }
        delays.push_back(r.updates ? r.delay_sum / static_cast<double>(r.updates) : 0.0);
        max_delay = std::max(max_delay, r.max_delay);
        straggler += r.straggler_updates;
        updates += r.updates;
        runs_csv.row(slowdown, label, m.etas[i], flags.seed * 1000 + i, r.error, r.diverged,
                     r.time_to_target, r.updates, delays.back(), r.max_delay, r.straggler_updates,
                     r.driver_mean_delay, r.identity_holds);
      }
      const auto e = summarise(errors);
      const double mean_delay = summarise(delays).mean;
      const double seeds = static_cast<double>(m.runs.size());
      // Time to the target: the mean over seeds that reached it.
      const double reach_mean =
          unreached ? std::numeric_limits<double>::quiet_NaN() : summarise(reach).mean;
      summary.row(slowdown, label, m.eta, m.runs.size(), e.mean, e.sd, e.min, e.max, diverged,
                  reach_mean, unreached, mean_delay, max_delay,
                  static_cast<double>(updates) / seeds, static_cast<double>(straggler) / seeds);
      if (in_table) {
        results.add_row(
            slowdown, label, m.eta, diverged ? std::string("diverged") : fmt(e.mean), fmt(e.sd),
            fmt(e.min), fmt(e.max),
            unreached ? std::to_string(unreached) + " of " + std::to_string(m.runs.size()) + " not"
                      : fmt(reach_mean),
            mean_delay, static_cast<double>(max_delay), static_cast<double>(straggler) / seeds);
      }
      return mean_delay;
    };
    theory_mean_delay = report(theory, theory.name, true);
    report(*best_theory, "(a') const <= 1/(L tau_max), tuned", true);
    report(adaptive, adaptive.name, true);
    report(*best_adaptive, "(b') adaptive <= 1/(L tau_C), tuned", true);
    report(*best_constant, "(c) const, tuned", true);
    for (const auto& g : constant_grid) report(g, "grid " + g.name, false);
    for (const auto& g : adaptive_grid) report(g, "grid " + g.name, false);

    // Traces of the first seed.
    const std::string tag = "S=" + fmt(slowdown) + " ";
    const auto write_trace = [&](const method_runs& m, const std::string& label) {
      for (const auto& p : m.runs.front().trace) {
        trace.row(tag + label, p.update, p.update, p.time, p.bytes, p.error, std::string(),
                  slowdown, m.etas.front());
      }
    };
    write_trace(theory, "(a) constant 1/(L tau_max)");
    write_trace(adaptive, "(b) delay-adaptive 1/(L tau_C)");
    write_trace(*best_adaptive, "(b') best delay-adaptive");
    write_trace(*best_constant, "(c) best constant");

    checks.add_row(slowdown, s.seeds, theory_mean_delay, static_cast<double>(s.workers - 1),
                   identities ? std::string("exact") : std::string("VIOLATED"),
                   same_events ? std::string("yes") : std::string("NO"));
    all_identities = all_identities && identities;
    all_same_events = all_same_events && same_events;
    std::cout << "S = " << slowdown << " done\n" << std::flush;
  }

  std::cout << "\nError f(x) - f* at " << s.budget
            << " virtual s (mean over seeds; tuned: the grid value 2^-k / L with the lowest mean\n"
               "error; t to 1%: first time f(x) - f* <= 0.01 (f(x0) - f*), mean over seeds)\n";
  results.print(std::cout);
  std::cout << "\nDelay checks (mean applied delay of (a); identity: updates * mean + "
               "discarded delays = (n - 1) updates)\n";
  checks.print(std::cout);

  int status = (all_identities && all_same_events) ? 0 : 1;
  if (s.clients_async_gradients > 0) {
    const double async10 = clients_async(s.clients_async_gradients, flags.seed);
    const double sync = clients_sync(s.clients_sync_steps, flags.seed);
    const double paper_sync = 10 * std::pow(0.9, 10) + 60 * (1 - std::pow(0.9, 10));
    double p = 1.0;  // 10 distinct clients all fast
    for (int i = 0; i < 10; ++i) p *= (900.0 - i) / (1000.0 - i);
    const double distinct_sync = 10 * p + 60 * (1 - p);
    const double sync_se =
        50 * std::sqrt(p * (1 - p)) / std::sqrt(static_cast<double>(s.clients_sync_steps));
    loco::observe::table clients_table{"1000 clients", "measured (s)", "expected (s)", "note"};
    clients_table.add_row(
        "async: per 10 gradients", async10, 15.0,
        std::to_string(s.clients_async_gradients) + " gradients, async_sgd driver, 10 in flight");
    clients_table.add_row("sync: per batch of 10", sync, paper_sync,
                          "paper (independent draws); distinct clients: " + fmt(distinct_sync) +
                              " +- " + fmt(sync_se, 2) + " (1 s.e.)");
    std::cout << "\n";
    clients_table.print(std::cout);
    loco::observe::csv_writer clients_csv(flags.file("async_stragglers_clients.csv"),
                                          {"quantity", "measured", "expected", "samples"});
    clients_csv.row("async_seconds_per_10_gradients", async10, 15.0, s.clients_async_gradients);
    clients_csv.row("sync_seconds_per_batch_of_10", sync, paper_sync, s.clients_sync_steps);
    clients_csv.row("sync_seconds_per_batch_distinct_clients", sync, distinct_sync,
                    s.clients_sync_steps);
  }
  if (status != 0) std::cout << "\nA delay check FAILED (see the table above)\n";
  std::cout << "\nCSV written to " << flags.out << "/async_stragglers_{summary,runs,trace"
            << (s.clients_async_gradients ? ",clients" : "") << "}.csv\n";
  return status;
}
