// PowerSGD against error-feedback top-k at matching bytes and against dense
// averaging, in virtual time (docs/experiments/powersgd.md).
//
// n workers train the Fashion-MNIST MLP (784-128-10) on iid shards with
// plain SGD, for the same number of steps each, on comm::simulated with a
// fixed compute time per step and a link model (100 Mbit/s, 1 ms). Every H
// steps (H = 1: every step, as torch's DDP hook; H > 1: local SGD) the
// change since the last average travels as
//   dense      identity: the plain average
//   powersgd   rank r in --ranks (error feedback, warm start), averaged by
//              two allreduces
//   top_k      error_feedback<top_k> at the density that matches rank r's
//              bytes per round (8 bytes per kept entry against 4 per
//              PowerSGD value), allgathered
// The metric is the test accuracy of the workers' averaged model.
//
//   powersgd [--quick] [--out DIR] [--seed S] [--workers 8] [--steps 3000]
//            [--hs 1,10] [--ranks 1,2,4] [--lr 0.1] [--only dense,powersgd,top_k]
//
// Writes trace.csv (one row per evaluation) and summary.csv (one row per run).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <loco/aliases.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress/error_feedback.hpp>
#include <loco/compress/powersgd.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <loco/sim/timed.hpp>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "experiment.hpp"
#include "mlp_runs.hpp"

namespace {

namespace alg = loco::algorithm;
namespace lc = loco::compress;
using sim_comm = loco::comm::simulated;
using experiment::point;

struct settings {
  int workers = 8;
  std::size_t steps = 3000;  // SGD steps per worker, equal for every run
  std::vector<std::size_t> hs{1, 10};
  std::vector<std::size_t> ranks{1, 2, 4};
  std::vector<std::string> only{"dense", "powersgd", "top_k"};
  double lr = 0.1;
  double step_time = 0.01;    // virtual seconds per step
  double latency = 1e-3;      // link latency, seconds
  double bandwidth = 12.5e6;  // bytes per second (100 Mbit/s)
  std::size_t batch = 32;
  std::size_t evaluations = 10;
  experiment::mlp_world world() const {
    return {workers, steps, evaluations, batch, step_time, latency, bandwidth};
  }
};

struct config {
  std::string method;  // dense, powersgd, top_k
  std::size_t h = 1;
  std::size_t rank = 0;  // powersgd's, or the rank whose bytes top_k matches
  double density = 0;    // top_k's
  std::string name() const {
    std::ostringstream s;
    s << method << " H=" << h;
    if (method == "powersgd") s << " r=" << rank;
    if (method == "top_k") s << " " << density * 100 << "% (bytes of r=" << rank << ")";
    return s.str();
  }
};

lc::powersgd powersgd_of(const loco::tensor::layout& model, std::size_t rank) {
  return lc::powersgd(model, {.rank = rank});
}

experiment::mlp_run run_one(const settings& s, const experiment::mlp_data& d, const config& c,
                            std::uint64_t seed) {
  alg::local_sgd_options opt;
  opt.seed = seed;
  opt.schedule = alg::schedule::rounds(s.steps / c.h, c.h);
  const loco::stepsize::constant step(s.lr);
  using constant = loco::stepsize::constant;
  return experiment::run_mlp(
      s.world(), d, seed, c.h,
      [&](sim_comm& comm, auto& f, std::span<const float> from, auto& obs) {
        if (c.method == "dense") {
          loco::local_sgd<lc::identity, sim_comm, loco::merge::average, constant> driver({}, {},
                                                                                         step, opt);
          return driver.run(comm, f, from, obs).ledger;
        }
        if (c.method == "powersgd") {
          loco::local_sgd<lc::powersgd, sim_comm, loco::merge::average, constant> driver(
              powersgd_of(f.layout(), c.rank), {}, step, opt);
          return driver.run(comm, f, from, obs).ledger;
        }
        using ef_top_k = lc::error_feedback<lc::top_k>;
        loco::local_sgd<ef_top_k, sim_comm, loco::merge::average, constant> driver(
            ef_top_k(lc::top_k(c.density)), {}, step, opt);
        return driver.run(comm, f, from, obs).ledger;
      });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"PowerSGD, error-feedback top-k and dense averaging on the simulated communicator"};
  experiment::common_flags flags;
  flags.add_to(app);
  settings s;
  app.add_option("--workers", s.workers, "workers n")->capture_default_str();
  app.add_option("--steps", s.steps, "SGD steps per worker")->capture_default_str();
  app.add_option("--hs", s.hs, "steps between averages")->delimiter(',')->capture_default_str();
  app.add_option("--ranks", s.ranks, "PowerSGD ranks")->delimiter(',')->capture_default_str();
  app.add_option("--only", s.only, "dense, powersgd, top_k")->delimiter(',')->capture_default_str();
  app.add_option("--lr", s.lr, "SGD's step size")->capture_default_str();
  app.add_option("--step-time", s.step_time, "virtual seconds per step")->capture_default_str();
  app.add_option("--latency", s.latency, "link latency (s)")->capture_default_str();
  app.add_option("--bandwidth", s.bandwidth, "link bandwidth (bytes/s)")->capture_default_str();
  app.add_option("--batch", s.batch, "mini-batch per worker")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (flags.quick) {
    s.workers = 4;
    s.steps = 100;
    s.hs = {1};
    s.ranks = {1};
    s.evaluations = 2;
  }
  const auto wanted = [&](const std::string& m) {
    return std::find(s.only.begin(), s.only.end(), m) != s.only.end();
  };

  const auto start = std::chrono::steady_clock::now();
  const auto d = experiment::load_mlp_data(s.workers, flags.seed, flags.quick);
  const experiment::mlp_model shape(d.test, d.test_rows, {.hidden = {128}, .batch_size = s.batch});
  std::vector<config> configs;
  for (std::size_t h : s.hs) {
    if (wanted("dense")) configs.push_back({"dense", h});
    for (std::size_t r : s.ranks) {
      if (wanted("powersgd")) configs.push_back({"powersgd", h, r});
      if (wanted("top_k")) {
        // PowerSGD sends first + second payload values of 4 bytes; top_k
        // 8 bytes (index and value) per kept entry.
        const auto c = powersgd_of(shape.layout(), r);
        const double kept = static_cast<double>(c.first_payload() + c.second_payload()) / 2.0;
        configs.push_back({"top_k", h, r, kept / static_cast<double>(shape.dimension())});
      }
    }
  }

  auto columns = experiment::trace_columns();
  for (const char* c : {"method", "h", "rank", "density"}) columns.push_back(c);
  loco::observe::csv_writer trace(flags.file("trace.csv"), columns);
  loco::observe::csv_writer summary(
      flags.file("summary.csv"),
      {"run", "method", "h", "rank", "density", "final_accuracy", "best_accuracy", "end_time_s",
       "total_bytes", "peak_round_bytes"});
  struct row {
    config c;
    experiment::mlp_run r;
  };
  std::vector<row> rows;
  for (const auto& c : configs) {
    const auto wall = std::chrono::steady_clock::now();
    auto r = run_one(s, d, c, flags.seed);
    double best = 0;
    for (const auto& p : r.points) {
      best = std::max(best, p.accuracy);
      trace.row(c.name(), p.step, p.step, p.time, p.bytes, "", p.accuracy, c.method, c.h, c.rank,
                c.density);
    }
    trace.flush();
    const auto& last = r.points.back();
    summary.row(c.name(), c.method, c.h, c.rank, c.density, last.accuracy, best, r.end_time,
                last.bytes, r.peak_bytes);
    summary.flush();
    std::cerr << c.name() << ": acc " << last.accuracy << " (best " << best << ") time "
              << r.end_time << " s ("
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count()
              << " s wall)\n";
    rows.push_back({c, std::move(r)});
  }

  // Time to a target: one point below the best of dense averaging at H = 1.
  std::optional<double> target;
  for (const auto& r : rows) {
    if (r.c.method != "dense" || r.c.h != 1) continue;
    target = experiment::best_accuracy(r.r) - 0.01;
  }
  std::cout << "\n"
            << s.workers << " workers, " << s.steps << " SGD steps each (lr " << s.lr
            << "); virtual time at " << s.step_time << " s per step, " << s.bandwidth * 8 / 1e6
            << " Mbit/s, " << s.latency * 1e3 << " ms"
            << (target
                    ? "; target " + experiment::cell(*target * 100) + "% (dense H=1 best - 1 point)"
                    : "")
            << "\n";
  std::vector<std::pair<std::string, experiment::mlp_run>> named;
  for (const auto& r : rows) named.emplace_back(r.c.name(), r.r);
  experiment::print_runs(std::cout, named, target, 1e3, "peak KB/round");
  std::cout << "wall time "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << " s; CSV in " << flags.out << "/\n";
  return 0;
}
