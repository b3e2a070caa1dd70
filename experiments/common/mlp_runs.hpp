#pragma once
// What the Fashion-MNIST MLP experiments on comm::simulated share: the data
// (iid shards, the test rows), the evaluated points of a run (test accuracy
// of the workers' averaged model, taken by an observer that costs no virtual
// time), and the largest bytes one worker sent in one round.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <loco/comm/simulated.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/observe/table.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/sim/timed.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "average_recorder.hpp"

namespace experiment {

using mlp_dataset = loco::data::dataset<float>;
using mlp_model = loco::problems::mlp<float>;

struct mlp_data {
  std::shared_ptr<const mlp_dataset> train, test;
  std::vector<std::size_t> test_rows;
  loco::data::partition shards;
};

// Fashion-MNIST in iid shards; --quick evaluates on the first 1000 test rows.
inline mlp_data load_mlp_data(int workers, std::uint64_t seed, bool quick) {
  auto fm = loco::data::fashion_mnist<float>::load();
  mlp_data d;
  d.train = std::make_shared<const mlp_dataset>(std::move(fm.train));
  d.test = std::make_shared<const mlp_dataset>(std::move(fm.test));
  const std::size_t test_rows = quick ? 1000 : d.test->rows();
  for (std::size_t r = 0; r < test_rows; ++r) d.test_rows.push_back(r);
  d.shards = loco::data::partition_iid(d.train->rows(), static_cast<std::size_t>(workers), seed);
  return d;
}

struct point {
  std::uint64_t step = 0;   // inner steps per worker
  double time = 0;          // virtual seconds
  std::uint64_t bytes = 0;  // all workers
  double accuracy = 0;
};

// The evaluated points of one run: test accuracy of the average of every
// rank's model at each evaluation step.
class accuracy_recorder {
 public:
  accuracy_recorder(int n, const mlp_model& tester)
      : rec_(n, [this, &tester](std::uint64_t step, std::span<const float> avg,
                                average_recorder::totals spent) {
          points_.push_back({step, spent.time, spent.bytes, tester.accuracy(avg)});
        }) {}

  void add(std::uint64_t step, std::span<const float> model, double now, std::uint64_t bytes) {
    rec_.add(step, model, now, bytes);
  }
  std::vector<point> points() const {
    auto v = points_;
    std::sort(v.begin(), v.end(), [](const point& a, const point& b) { return a.step < b.step; });
    return v;
  }

 private:
  std::vector<point> points_;
  average_recorder rec_;
};

// Reports the model when the step count crosses the next evaluation point
// (and at the end). Returns void: no stop agreement, no virtual time.
struct accuracy_observer {
  accuracy_recorder* rec;
  loco::comm::simulated* comm;
  std::uint64_t every;
  std::uint64_t next = 0;
  std::uint64_t steps_per_round = 1;
  template <class Info>
  void on_round_end(const Info& info) {
    const std::uint64_t step = info.round * steps_per_round;
    if (step < next && info.round != info.round_count) return;
    next = (step / every + 1) * every;
    rec->add(step, info.model, comm->now(), info.ledger->totals().bytes_sent);
  }
};

inline std::uint64_t peak_round_bytes(const loco::observe::ledger& ledger) {
  std::uint64_t peak = 0;
  for (const auto& r : ledger.rounds()) peak = std::max(peak, r.bytes_sent);
  return peak;
}

// One run's evaluated points and totals.
struct mlp_run {
  std::vector<point> points;
  double end_time = 0;
  std::uint64_t peak_bytes = 0;  // the most one worker sent in one round
};

inline double best_accuracy(const mlp_run& r) {
  double best = 0;
  for (const auto& p : r.points) best = std::max(best, p.accuracy);
  return best;
}

inline std::string cell(const std::optional<double>& v, int precision = 4) {
  if (!v) return "-";
  std::ostringstream s;
  s.precision(precision);
  s << *v;
  return s.str();
}

// The simulated world of a run: n workers on their shards, each step
// costing step_time virtual seconds, links of latency and bandwidth.
struct mlp_world {
  int workers = 8;
  std::size_t steps = 3000;      // per worker
  std::size_t evaluations = 10;  // per run, evenly spaced in steps
  std::size_t batch = 32;
  double step_time = 0.01;    // virtual seconds per step
  double latency = 1e-3;      // seconds
  double bandwidth = 12.5e6;  // bytes per second (100 Mbit/s)
};

// Runs train(comm, f, x0, observer) on every worker: f is the worker's
// timed MLP, x0 the common start, observer records the test accuracy of the
// averaged model every steps / evaluations steps (steps_per_round steps a
// round); train returns the worker's ledger.
template <class Train>
mlp_run run_mlp(const mlp_world& w, const mlp_data& d, std::uint64_t seed,
                std::uint64_t steps_per_round, Train train) {
  const mlp_model tester(d.test, d.test_rows, {.hidden = {128}, .batch_size = w.batch});
  accuracy_recorder rec(w.workers, tester);
  const auto x0v = tester.initial_point(seed);
  const std::vector<float> x0(x0v.begin(), x0v.end());
  for (int i = 0; i < w.workers; ++i) rec.add(0, x0, 0.0, 0);

  loco::sim::options sim;
  sim.compute = loco::sim::compute_model(w.step_time);
  sim.link = loco::sim::link_model(w.latency, w.bandwidth);
  const std::uint64_t every = std::max<std::size_t>(1, w.steps / w.evaluations);
  mlp_run out;
  std::mutex m;
  const auto report = loco::comm::run_simulated(
      w.workers,
      [&](loco::comm::simulated& comm) {
        const auto& rows = d.shards[static_cast<std::size_t>(comm.rank())];
        loco::sim::timed f(mlp_model(d.train, rows, {.hidden = {128}, .batch_size = w.batch}),
                           comm.clock());
        accuracy_observer obs{&rec, &comm, every};
        obs.steps_per_round = steps_per_round;
        const std::uint64_t peak =
            peak_round_bytes(train(comm, f, std::span<const float>(x0), obs));
        std::lock_guard lock(m);
        out.peak_bytes = std::max(out.peak_bytes, peak);
      },
      sim);
  out.points = rec.points();
  out.end_time = report.end_time();
  return out;
}

// The summary table: accuracy, virtual time to `target` (when given), end
// time, bytes, and the peak round in units of `peak_unit` bytes.
inline void print_runs(std::ostream& out, const std::vector<std::pair<std::string, mlp_run>>& runs,
                       std::optional<double> target, double peak_unit, const std::string& peak) {
  loco::observe::table t{"run",        "final acc %",      "best acc %", "time to target s",
                         "end time s", "MB (all workers)", peak};
  for (const auto& [name, r] : runs) {
    std::optional<double> at;
    for (const auto& p : r.points) {
      if (target && !at && p.accuracy >= *target) at = p.time;
    }
    const auto& last = r.points.back();
    t.add_row(name, cell(last.accuracy * 100), cell(best_accuracy(r) * 100), cell(at),
              cell(r.end_time), cell(static_cast<double>(last.bytes) / 1e6),
              cell(static_cast<double>(r.peak_bytes) / peak_unit, 3));
  }
  t.print(out);
}

}  // namespace experiment
