// LOSCAR-SGD in virtual time (ALGORITHMS.md sections 3 and 7).
//
// n workers with heterogeneous compute times tau_i (spread evenly over
// [1, tau_max] x tau_unit) each take N_i = floor(B / tau_i) local steps per
// round, so every worker's local work takes about B; then the K/d sampled
// coordinates of the snapshot are averaged (shared random mask) while
// Q_i = max(1, round(Q tau_1 / tau_i)) more steps run (Q is the fastest
// worker's count, so every worker overlaps for about Q tau_1 seconds), or
// steps until the average arrives; then merged (delay-corrected or overwrite). Everything runs on
// comm::simulated with a link model, so times are exact virtual seconds.
//
// Measured, per problem (synthetic logistic regression, Fashion-MNIST
// softmax regression, Fashion-MNIST MLP) and worker count:
//   (a) virtual time to a target training loss and test accuracy with and
//       without overlap (Q = 0, fixed Q, or steps until the average arrives);
//   (b) rounds to the target loss, delay-corrected vs overwrite, per Q;
//   (c) bytes sent until the target loss vs mini-batch SGD (a dense
//       allreduce after every step).
// The metric is that of the averaged model (1/n) sum_i x_i, taken by an
// observer that costs no virtual time.
//
//   loscar [--quick] [--out DIR] [--problems logistic,softmax,mlp] [--workers 4,8]
//          [--fractions 1,0.1,0.01,0.001] [--overlaps 0,2,4,8]
//
// Writes trace.csv (one row per evaluation) and summary.csv (one row per run).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <loco/aliases.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/data/synthetic.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <loco/problems/logistic_regression.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <loco/sim/timed.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "average_recorder.hpp"
#include "experiment.hpp"

namespace {

namespace alg = loco::algorithm;
using dataset = loco::data::dataset<float>;
using sim_comm = loco::comm::simulated;

struct problem_settings {
  std::size_t rounds;            // LOSCAR rounds per run
  std::size_t minibatch_rounds;  // mini-batch SGD steps per run
  std::size_t eval_every;        // evaluate the averaged model every this many rounds
  double lr;
  double target_loss;
  double target_accuracy;
};

struct settings {
  std::vector<std::string> problems{"logistic", "softmax", "mlp"};
  std::vector<int> workers{4, 8};
  std::vector<double> fractions{1.0, 0.1, 0.01, 0.001};
  std::vector<std::size_t> overlaps{0, 2, 4, 8};
  bool until_arrival = true;  // also run "steps until the average arrives"
  double tau_unit = 1e-3;     // seconds per step of the fastest worker
  double tau_max = 4.0;       // the slowest worker's step takes tau_max x tau_unit
  double budget = 12.0;       // B in tau_unit: N_i = floor(B / tau_i)
  double latency = 1e-3;      // link latency, seconds
  double bandwidth = 12.5e6;  // bytes per second (100 Mbit/s)
  std::size_t batch = 32;
  std::map<std::string, problem_settings> problem{
      {"logistic", {200, 1200, 4, 5.0, 0.5, 0.75}},
      {"softmax", {200, 1200, 4, 0.1, 0.52, 0.81}},
      {"mlp", {200, 1200, 5, 0.1, 0.5, 0.82}},
  };
};

// The data of one problem: training shards, a probe subset of the training
// rows for the loss, and the test rows for the accuracy.
struct problem_data {
  std::shared_ptr<const dataset> train, test;
  std::vector<std::size_t> test_rows, probe_rows;
  loco::data::partition shards;
};

problem_data load(const std::string& problem, int workers, std::uint64_t seed, bool quick) {
  problem_data d;
  if (problem == "logistic") {
    // d = 1000 (999 features and an intercept), features scaled by 1/sqrt(p)
    // so that margins are O(1); 10% of the labels flipped.
    const std::size_t p = 999, n_train = quick ? 2000 : 10000, n_test = quick ? 500 : 2000;
    auto s = loco::data::make_logistic<float>(n_train + n_test, p, 0.1, seed);
    const float scale = 1.0f / std::sqrt(static_cast<float>(p));
    for (auto& v : s.data.features) v *= scale;
    auto all = std::make_shared<const dataset>(std::move(s.data));
    d.train = all;
    d.test = all;
    for (std::size_t r = n_train; r < n_train + n_test; ++r) d.test_rows.push_back(r);
    d.shards = loco::data::partition_iid(n_train, static_cast<std::size_t>(workers), seed);
    for (std::size_t r = 0; r < n_train; r += 5) d.probe_rows.push_back(r);
  } else {
    auto fm = loco::data::fashion_mnist<float>::load();
    d.train = std::make_shared<const dataset>(std::move(fm.train));
    d.test = std::make_shared<const dataset>(std::move(fm.test));
    const std::size_t test_rows = quick ? 1000 : d.test->rows();
    for (std::size_t r = 0; r < test_rows; ++r) d.test_rows.push_back(r);
    d.shards = loco::data::partition_iid(d.train->rows(), static_cast<std::size_t>(workers), seed);
    const std::size_t stride = quick ? 60 : 12;  // 1000 or 5000 rows
    for (std::size_t r = 0; r < d.train->rows(); r += stride) d.probe_rows.push_back(r);
  }
  return d;
}

// One run's configuration.
struct config {
  std::string method;  // minibatch, delay_corrected, overwrite
  double fraction = 1.0;
  std::size_t overlap = 0;
  bool until_arrival = false;
  std::string name() const {
    if (method == "minibatch") return "minibatch";
    std::ostringstream s;
    s << (method == "delay_corrected" ? "loscar" : "overwrite") << " K/d=" << fraction
      << " Q=" << (until_arrival ? std::string("arrival") : std::to_string(overlap));
    return s.str();
  }
  std::string q_label() const { return until_arrival ? "arrival" : std::to_string(overlap); }
};

struct point {
  std::size_t round = 0;
  std::uint64_t steps = 0;  // all workers' gradient steps
  double time = 0;          // virtual seconds
  std::uint64_t bytes = 0;  // all workers
  double loss = 0, accuracy = 0;
};

// The evaluated points of one run, from every rank's models at the
// evaluation rounds (experiment::average_recorder).
class recorder {
 public:
  using evaluator = std::function<std::pair<double, double>(std::span<const float>)>;
  recorder(int n, evaluator eval)
      : eval_(std::move(eval)),
        rec_(n, [this](std::uint64_t round, std::span<const float> avg,
                       experiment::average_recorder::totals spent) {
          const auto [loss, acc] = eval_(avg);
          points_.push_back({round, spent.steps, spent.time, spent.bytes, loss, acc});
        }) {}

  void add(std::size_t round, std::span<const float> model, double now, std::uint64_t bytes,
           std::uint64_t steps) {
    rec_.add(round, model, now, bytes, steps);
  }
  std::vector<point> points() const {
    auto v = points_;
    std::sort(v.begin(), v.end(), [](const point& a, const point& b) { return a.round < b.round; });
    return v;
  }

 private:
  evaluator eval_;
  std::vector<point> points_;
  experiment::average_recorder rec_;
};

// A round-end observer (returns void: no stop agreement, no virtual time).
struct observer {
  recorder* rec;
  sim_comm* comm;
  std::size_t every;
  void on_round_end(const alg::round_info<float>& info) {
    if (info.round % every != 0 && info.round != info.round_count) return;
    rec->add(info.round, info.model, comm->now(), info.ledger->totals().bytes_sent, info.step);
  }
};

struct run_summary {
  std::vector<point> points;
  double end_time = 0;
  std::uint64_t overlap_steps = 0;  // all workers
};

template <class Model>
Model make_model(const std::shared_ptr<const dataset>& data, std::span<const std::size_t> rows,
                 std::size_t batch) {
  if constexpr (std::is_same_v<Model, loco::problems::mlp<float>>) {
    return Model(data, rows, {.hidden = {128}, .batch_size = batch, .l2 = 0.0});
  } else if constexpr (std::is_same_v<Model, loco::problems::softmax_regression<float>>) {
    return Model(data, rows, {.batch_size = batch, .l2 = 1e-5});
  } else {
    return Model(data, rows, {.batch_size = batch, .l2 = 1e-5});
  }
}

template <class Model>
run_summary run_one(const settings& s, const problem_settings& ps, const problem_data& d,
                    int workers, const config& c, std::uint64_t seed) {
  const auto prober = make_model<Model>(d.train, d.probe_rows, s.batch);
  const auto tester = make_model<Model>(d.test, d.test_rows, s.batch);
  recorder rec(workers, [&](std::span<const float> x) {
    return std::pair{prober.loss(x), tester.accuracy(x)};
  });
  const auto x0v = prober.initial_point(seed);
  const std::vector<float> x0(x0v.begin(), x0v.end());
  for (int i = 0; i < workers; ++i) rec.add(0, x0, 0.0, 0, 0);  // round 0: the start

  std::vector<double> tau(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) {
    const double frac = workers > 1 ? static_cast<double>(i) / (workers - 1) : 0.0;
    tau[static_cast<std::size_t>(i)] = s.tau_unit * (1.0 + (s.tau_max - 1.0) * frac);
  }
  loco::sim::options sim;
  sim.compute = loco::sim::compute_model::fixed(tau);
  sim.link = loco::sim::link_model(s.latency, s.bandwidth);

  alg::local_sgd_options opt;
  opt.seed = seed;
  if (c.method == "minibatch") {
    opt.schedule = alg::schedule::rounds(ps.minibatch_rounds, 1);
  } else {
    opt.schedule = alg::schedule::rounds(ps.rounds, 1);
    opt.compute_times = tau;
    opt.round_budget =
        s.budget * s.tau_unit * (1.0 + 1e-9);  // floor(B / tau_i) without rounding loss
    // Q is the fastest worker's overlap; worker i takes Q_i = max(1, round(Q tau_1 / tau_i))
    // so that every worker's overlap takes about the same time, as N_i does.
    opt.overlap_steps.clear();
    for (double t : tau) {
      const auto q =
          static_cast<std::size_t>(std::lround(static_cast<double>(c.overlap) * tau[0] / t));
      opt.overlap_steps.push_back(c.overlap == 0 ? 0 : std::max<std::size_t>(1, q));
    }
    opt.overlap_until_arrival = c.until_arrival;
    opt.max_overlap_steps = 64;
  }
  const std::size_t every = c.method == "minibatch"
                                ? ps.eval_every * static_cast<std::size_t>(s.budget / 2)
                                : ps.eval_every;

  run_summary out;
  std::mutex m;
  const auto report = loco::comm::run_simulated(
      workers,
      [&](sim_comm& comm) {
        const auto& rows = d.shards[static_cast<std::size_t>(comm.rank())];
        loco::sim::timed f(make_model<Model>(d.train, rows, s.batch), comm.clock());
        observer obs{&rec, &comm, every};
        alg::local_sgd_result<float> r;
        const std::span<const float> from(x0);
        if (c.method == "minibatch") {
          loco::minibatch_sgd<sim_comm, loco::stepsize::constant> driver(
              {}, {}, loco::stepsize::constant(ps.lr), opt);
          r = driver.run(comm, f, from, obs);
        } else if (c.method == "delay_corrected") {
          loco::loscar_sgd<sim_comm> driver(loco::compress::random_k_unscaled(c.fraction, seed), {},
                                            loco::stepsize::constant(ps.lr), opt);
          r = driver.run(comm, f, from, obs);
        } else {
          loco::loscar_overwrite<sim_comm> driver(
              loco::compress::random_k_unscaled(c.fraction, seed), {},
              loco::stepsize::constant(ps.lr), opt);
          r = driver.run(comm, f, from, obs);
        }
        std::lock_guard lock(m);
        out.overlap_steps += r.stats.overlap_steps;
      },
      sim);
  out.points = rec.points();
  out.end_time = report.end_time();
  return out;
}

// The first evaluation at which pred holds, if any.
template <class Pred>
std::optional<point> first(const std::vector<point>& pts, Pred pred) {
  for (const auto& p : pts)
    if (pred(p)) return p;
  return std::nullopt;
}

std::string cell(const std::optional<double>& v, int precision = 4) {
  if (!v) return "-";
  std::ostringstream s;
  s.precision(precision);
  s << *v;
  return s.str();
}

struct result_row {
  std::string problem;
  int workers;
  config c;
  run_summary r;
  std::optional<point> at_loss, at_acc;
};

result_row make_row(const problem_settings& ps, const std::string& problem, int workers,
                    const config& c, run_summary r) {
  const auto at_loss = first(r.points, [&](const point& p) { return p.loss <= ps.target_loss; });
  const auto at_acc =
      first(r.points, [&](const point& p) { return p.accuracy >= ps.target_accuracy; });
  return {problem, workers, c, std::move(r), at_loss, at_acc};
}

// Rebuilds the runs from trace.csv files this program wrote (no quoted cells;
// the overlap step counts are not in the trace and read as 0).
std::vector<result_row> read_trace(const std::vector<std::string>& paths, const settings& s) {
  std::vector<std::string> order;
  std::map<std::string, result_row> runs;
  for (const auto& path : paths) {
    std::ifstream in(path);
    if (!in) throw loco::config_error("--summarize: cannot open " + path);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      for (std::string cell_text; std::getline(ss, cell_text, ',');) f.push_back(cell_text);
      if (f.size() < 12) continue;  // a row cut short when a run was stopped
      if (!runs.count(f[0])) {
        config c;
        c.method = f[9];
        c.fraction = std::stod(f[10]);
        c.until_arrival = f[11] == "arrival";
        c.overlap = c.until_arrival ? 0 : std::stoul(f[11]);
        runs[f[0]] = {f[7], std::stoi(f[8]), c, {}, std::nullopt, std::nullopt};
        order.push_back(f[0]);
      }
      runs[f[0]].r.points.push_back({std::stoul(f[1]), std::stoull(f[2]), std::stod(f[3]),
                                     std::stoull(f[4]), std::stod(f[5]), std::stod(f[6])});
    }
  }
  std::vector<result_row> rows;
  for (const auto& name : order) {
    auto& row = runs[name];
    if (!s.problem.count(row.problem)) continue;
    row.r.end_time = row.r.points.back().time;
    rows.push_back(
        make_row(s.problem.at(row.problem), row.problem, row.workers, row.c, std::move(row.r)));
  }
  return rows;
}

template <class Model>
void run_problem(const settings& s, const std::string& problem, int workers,
                 const std::vector<config>& configs, std::uint64_t seed, bool quick,
                 loco::observe::csv_writer& trace, std::vector<result_row>& rows) {
  const auto& ps = s.problem.at(problem);
  const auto d = load(problem, workers, seed, quick);
  for (const auto& c : configs) {
    const auto wall = std::chrono::steady_clock::now();
    auto r = run_one<Model>(s, ps, d, workers, c, seed);
    const std::string run = problem + " n=" + std::to_string(workers) + " " + c.name();
    for (const auto& p : r.points) {
      trace.row(run, p.round, p.steps, p.time, p.bytes, p.loss, p.accuracy, problem, workers,
                c.method, c.fraction, c.q_label());
    }
    trace.flush();  // a run that is stopped keeps what it measured
    result_row row = make_row(ps, problem, workers, c, std::move(r));
    const auto& last = row.r.points.back();
    std::cerr << run << ": loss " << last.loss << " acc " << last.accuracy << " rounds->loss "
              << (row.at_loss ? std::to_string(row.at_loss->round) : "-") << " ("
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count()
              << " s)\n";
    rows.push_back(std::move(row));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"LOSCAR-SGD on the simulated communicator: overlap, merge rules, bytes"};
  experiment::common_flags flags;
  flags.add_to(app);
  settings s;
  app.add_option("--problems", s.problems, "logistic, softmax, mlp")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--workers", s.workers, "worker counts n")->delimiter(',')->capture_default_str();
  app.add_option("--fractions", s.fractions, "K/d values")->delimiter(',')->capture_default_str();
  app.add_option("--overlaps", s.overlaps, "fixed Q values")->delimiter(',')->capture_default_str();
  app.add_option("--until-arrival", s.until_arrival, "also run Q = steps until the average arrives")
      ->capture_default_str();
  app.add_option("--latency", s.latency, "link latency (s)")->capture_default_str();
  app.add_option("--bandwidth", s.bandwidth, "link bandwidth (bytes/s)")->capture_default_str();
  app.add_option("--budget", s.budget, "B in units of the fastest step")->capture_default_str();
  std::size_t rounds = 0;
  app.add_option("--rounds", rounds, "LOSCAR rounds (0: the problem's default)");
  std::vector<std::string> from;
  app.add_option("--summarize", from, "trace.csv files of earlier runs: print their tables")
      ->delimiter(',');
  double lr = 0, target_loss = 0, target_accuracy = 0;
  app.add_option("--lr", lr, "step size for every problem run (0: the problem's default)");
  app.add_option("--target-loss", target_loss, "target training loss (0: the problem's default)");
  app.add_option("--target-accuracy", target_accuracy, "target test accuracy (0: default)");
  CLI11_PARSE(app, argc, argv);
  for (auto& [name, p] : s.problem) {
    if (lr > 0) p.lr = lr;
    if (target_loss > 0) p.target_loss = target_loss;
    if (target_accuracy > 0) p.target_accuracy = target_accuracy;
  }
  if (flags.quick) {
    s.problems = {"logistic"};
    s.workers = {4};
    s.fractions = {1.0, 0.01};
    s.overlaps = {0, 4};
    for (auto& [name, p] : s.problem) {
      p.rounds = 30;
      p.minibatch_rounds = 120;
    }
  }
  if (rounds > 0) {
    for (auto& [name, p] : s.problem) {
      p.minibatch_rounds = p.minibatch_rounds * rounds / p.rounds;
      p.rounds = rounds;
    }
  }
  for (const auto& p : s.problems) {
    if (!s.problem.count(p)) {
      std::cerr << "loscar: unknown problem '" << p << "' (logistic, softmax, mlp)\n";
      return 2;
    }
  }

  std::vector<config> configs;
  configs.push_back({"minibatch", 1.0, 0, false});
  for (double f : s.fractions) {
    for (std::size_t q : s.overlaps) {
      configs.push_back({"delay_corrected", f, q, false});
      if (q > 0) configs.push_back({"overwrite", f, q, false});
    }
    if (s.until_arrival) {
      configs.push_back({"delay_corrected", f, 0, true});
      configs.push_back({"overwrite", f, 0, true});
    }
  }

  std::vector<result_row> rows;
  const auto start = std::chrono::steady_clock::now();
  if (!from.empty()) {
    rows = read_trace(from, s);
    // The tables cover what the traces hold.
    s.problems.clear();
    s.workers.clear();
    s.fractions.clear();
    s.overlaps.clear();
    s.until_arrival = false;
    const auto add = [](auto& v, const auto& x) {
      if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
    };
    for (const auto& r : rows) {
      add(s.problems, r.problem);
      add(s.workers, r.workers);
      if (r.c.method == "minibatch") continue;
      add(s.fractions, r.c.fraction);
      if (r.c.until_arrival)
        s.until_arrival = true;
      else
        add(s.overlaps, r.c.overlap);
    }
  } else {
    auto columns = experiment::trace_columns();
    for (const char* c : {"problem", "workers", "method", "fraction", "overlap"})
      columns.push_back(c);
    loco::observe::csv_writer trace(flags.file("trace.csv"), columns);
    for (const auto& problem : s.problems) {
      for (int n : s.workers) {
        if (problem == "logistic") {
          run_problem<loco::problems::logistic_regression<float>>(
              s, problem, n, configs, flags.seed, flags.quick, trace, rows);
        } else if (problem == "softmax") {
          run_problem<loco::problems::softmax_regression<float>>(s, problem, n, configs, flags.seed,
                                                                 flags.quick, trace, rows);
        } else {
          run_problem<loco::problems::mlp<float>>(s, problem, n, configs, flags.seed, flags.quick,
                                                  trace, rows);
        }
      }
    }
    trace.flush();
  }

  loco::observe::csv_writer summary(
      flags.file("summary.csv"),
      {"problem", "workers", "method", "fraction", "overlap", "rounds_run", "final_loss",
       "final_accuracy", "end_time_s", "total_bytes", "overlap_steps", "target_loss",
       "rounds_to_loss", "time_to_loss_s", "bytes_to_loss", "target_accuracy", "time_to_accuracy_s",
       "rounds_to_accuracy"});
  const auto opt_d = [](const std::optional<point>& p, auto field) -> std::optional<double> {
    if (!p) return std::nullopt;
    return static_cast<double>(field(*p));
  };
  const auto csv_cell = [](const std::optional<double>& v) {
    return v ? std::to_string(*v) : std::string();
  };
  for (const auto& row : rows) {
    const auto& ps = s.problem.at(row.problem);
    const auto& last = row.r.points.back();
    summary.row(
        row.problem, row.workers, row.c.method, row.c.fraction, row.c.q_label(), last.round,
        last.loss, last.accuracy, row.r.end_time, last.bytes, row.r.overlap_steps, ps.target_loss,
        csv_cell(opt_d(row.at_loss, [](const point& p) { return p.round; })),
        csv_cell(opt_d(row.at_loss, [](const point& p) { return p.time; })),
        csv_cell(opt_d(row.at_loss, [](const point& p) { return p.bytes; })), ps.target_accuracy,
        csv_cell(opt_d(row.at_acc, [](const point& p) { return p.time; })),
        csv_cell(opt_d(row.at_acc, [](const point& p) { return p.round; })));
  }

  // (a) and (c): every run, its time to the targets and bytes to the loss target.
  for (const auto& problem : s.problems) {
    const auto& ps = s.problem.at(problem);
    for (int n : s.workers) {
      std::cout << "\n"
                << problem << ", n = " << n << ": target loss " << ps.target_loss
                << ", target accuracy " << ps.target_accuracy
                << " (virtual time; '-': not reached)\n";
      const result_row* mb = nullptr;
      for (const auto& row : rows)
        if (row.problem == problem && row.workers == n && row.c.method == "minibatch") mb = &row;
      loco::observe::table t{"run",        "rounds to loss",     "time to loss s", "time to acc s",
                             "MB to loss", "bytes vs minibatch", "final loss",     "final acc"};
      for (const auto& row : rows) {
        if (row.problem != problem || row.workers != n) continue;
        std::optional<double> ratio;
        if (mb && mb->at_loss && row.at_loss && row.at_loss->bytes > 0)
          ratio = static_cast<double>(mb->at_loss->bytes) / static_cast<double>(row.at_loss->bytes);
        const auto& last = row.r.points.back();
        t.add_row(row.c.name(), cell(opt_d(row.at_loss, [](const point& p) { return p.round; })),
                  cell(opt_d(row.at_loss, [](const point& p) { return p.time; })),
                  cell(opt_d(row.at_acc, [](const point& p) { return p.time; })),
                  cell(opt_d(row.at_loss,
                             [](const point& p) { return static_cast<double>(p.bytes) / 1e6; })),
                  cell(ratio, 3), last.loss, last.accuracy);
      }
      t.print(std::cout);
    }
  }
  // (b): rounds to the loss target, delay-corrected vs overwrite, per Q.
  std::cout << "\nrounds to the target loss: delay-corrected vs overwrite ('-': not reached)\n";
  loco::observe::table merges{"problem",         "n",         "K/d",           "Q",
                              "delay-corrected", "overwrite", "overwrite / dc"};
  std::vector<config> q_rows;
  for (std::size_t q : s.overlaps)
    if (q > 0) q_rows.push_back({"", 0, q, false});
  if (s.until_arrival) q_rows.push_back({"", 0, 0, true});
  for (const auto& problem : s.problems) {
    for (int n : s.workers) {
      for (double f : s.fractions) {
        for (const auto& q : q_rows) {
          std::optional<double> dc, ow;
          for (const auto& row : rows) {
            if (row.problem != problem || row.workers != n || row.c.fraction != f ||
                row.c.method == "minibatch" || row.c.q_label() != q.q_label() || !row.at_loss)
              continue;
            (row.c.method == "delay_corrected" ? dc : ow) = static_cast<double>(row.at_loss->round);
          }
          std::optional<double> ratio;
          if (dc && ow) ratio = *ow / *dc;
          merges.add_row(problem, std::to_string(n), cell(f), q.q_label(), cell(dc), cell(ow),
                         cell(ratio, 3));
        }
      }
    }
  }
  merges.print(std::cout);
  std::cout << "\n(rounds to loss are multiples of the evaluation interval; 'bytes vs minibatch' = "
               "mini-batch SGD's bytes to the loss target / this run's)\n";
  std::cout << "wall time "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << " s; CSV in " << flags.out << "/\n";
  return 0;
}
