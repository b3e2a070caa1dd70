// DiLoCo and Streaming DiLoCo in virtual time (docs/experiments/diloco.md).
//
// n workers train the Fashion-MNIST MLP (784-128-10) on iid shards for the
// same number of inner steps each, on comm::simulated with a fixed compute
// time per step and a link model (100 Mbit/s, 1 ms by default):
//   sync        data-parallel AMSGrad: the gradients are averaged every step
//               (compressed_amsgrad with identity compression)
//   diloco      H AdamW steps, then Nesterov (lr 0.7, momentum 0.9) on the
//               averaged outer gradient, for every H in --hs
//   average     the same inner steps, the models plainly averaged (local SGD
//               with AdamW inside), for every H in --hs
//   streaming   Streaming DiLoCo at H = --stream-h: every P in --fragments,
//               tau in --taus, alpha in --alphas, fp32 or 4-bit (fp4) outer
//               gradients, fragments from --split
//   sparseloco  SparseLoCo as loco policies at H = --stream-h: outer
//               gradients through error_feedback<top_k> at --density (or,
//               with --chunk C, per_tensor<top_k> over chunks of C values: a
//               chunked top-k), outer SGD (lr 1), the residual in place of
//               outer momentum; --values 2bit sends the values in 2 bits
//               (top_k_2bit), --decay beta decays the residual
// The metric is the test accuracy of the workers' averaged model, taken by
// an observer that costs no virtual time.
//
//   diloco [--quick] [--out DIR] [--seed S] [--workers 8] [--steps 3000]
//          [--hs 10,50,200,500] [--stream-h 100] [--fragments 1,2,4] [--taus 0,5]
//          [--alphas 0,0.5] [--split shards|strided|balanced] [--only sync,diloco,...]
//          [--density 0.02] [--chunk 0] [--values fp32|2bit] [--decay 1]
//
// Writes trace.csv (one row per evaluation) and summary.csv (one row per run).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <loco/aliases.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress/error_feedback.hpp>
#include <loco/compress/per_tensor.hpp>
#include <loco/compress/top_k_2bit.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/sim/timed.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "experiment.hpp"
#include "mlp_runs.hpp"

namespace {

namespace alg = loco::algorithm;
using sim_comm = loco::comm::simulated;
using model_type = experiment::mlp_model;
using experiment::peak_round_bytes;
using experiment::point;

struct settings {
  int workers = 8;
  std::size_t steps = 3000;  // inner steps per worker, equal for every run
  std::vector<std::size_t> hs{10, 50, 200, 500};
  std::size_t stream_h = 100;
  std::vector<std::size_t> fragments{1, 2, 4};
  std::vector<std::size_t> taus{0, 5};
  std::vector<double> alphas{0.0, 0.5};
  std::string split = "shards";
  std::vector<std::string> only{"sync", "diloco", "average", "streaming", "sparseloco"};
  double density = 0.02;
  std::size_t chunk = 0;        // SparseLoCo's top-k per chunk of this many values (0: global)
  std::string values = "fp32";  // SparseLoCo's values: fp32 (top_k) or 2bit (top_k_2bit)
  double decay = 1.0;           // SparseLoCo's residual decay
  double inner_lr = 1e-3, sync_lr = 1e-3, outer_lr = 0.7, outer_momentum = 0.9;
  double step_time = 0.01;    // virtual seconds per inner step
  double latency = 1e-3;      // link latency, seconds
  double bandwidth = 12.5e6;  // bytes per second (100 Mbit/s)
  std::size_t batch = 32;
  std::size_t evaluations = 10;  // per run, evenly spaced in steps
  experiment::mlp_world world() const {
    return {workers, steps, evaluations, batch, step_time, latency, bandwidth};
  }
};

struct config {
  std::string method;  // sync, diloco, average, streaming, sparseloco
  std::size_t h = 1, fragments = 1, tau = 0;
  double alpha = 0.0;
  bool fp4 = false;
  double density = 1.0;
  std::size_t chunk = 0;
  bool two_bit = false;
  double decay = 1.0;
  std::string name() const {
    std::ostringstream s;
    s << method;
    if (method == "sync") return s.str();
    s << " H=" << h;
    if (method == "streaming") {
      s << " P=" << fragments << " tau=" << tau << " alpha=" << alpha << (fp4 ? " fp4" : " fp32");
    }
    if (method == "sparseloco") s << " top " << density * 100 << "%";
    if (chunk != 0) s << " per " << chunk;
    if (two_bit) s << " 2-bit";
    if (decay != 1.0) s << " decay " << decay;
    return s.str();
  }
};

alg::fragments::split split_of(const std::string& s) {
  if (s == "shards") return alg::fragments::split::shards;
  if (s == "strided") return alg::fragments::split::strided;
  if (s == "balanced") return alg::fragments::split::balanced;
  throw loco::config_error("diloco: --split '" + s + "' is not shards, strided or balanced");
}

// SparseLoCo: outer gradients through error feedback over a (chunked) top-k
// with fp32 or 2-bit values, applied by outer SGD with lr 1.
template <class F, class Obs>
loco::observe::ledger sparseloco(const config& c, sim_comm& comm, F& f, std::span<const float> from,
                                 Obs& obs, const alg::local_sgd_options& opt,
                                 const loco::stepsize::constant& inner) {
  namespace lc = loco::compress;
  const auto with = [&]<class Sparse>(const Sparse& sparse) {
    const auto run = [&]<class C>(const C& compressor) {
      using ef = lc::error_feedback<C>;
      loco::local_sgd<ef, sim_comm, loco::merge::outer_sgd, loco::stepsize::constant,
                      loco::update::adamw>
          driver(ef(compressor, c.decay), loco::merge::outer_sgd(1.0), inner, opt,
                 loco::update::adamw());
      return driver.run(comm, f, from, obs).ledger;
    };
    if (c.chunk == 0) return run(sparse);
    return run(
        lc::per_tensor<Sparse>(loco::tensor::layout::chunks(f.dimension(), c.chunk), sparse));
  };
  if (c.two_bit) return with(lc::top_k_2bit(c.density));
  return with(lc::top_k(c.density));
}

experiment::mlp_run run_one(const settings& s, const experiment::mlp_data& d, const config& c,
                            std::uint64_t seed) {
  // A round of local_sgd is `local` steps plus `tau` in flight; with P
  // fragments each fragment syncs every H = P (local + tau) steps.
  alg::local_sgd_options opt;
  opt.seed = seed;
  std::size_t per_round = c.h;
  if (c.method == "streaming") {
    per_round = c.h / c.fragments;
    if (per_round * c.fragments != c.h || per_round <= c.tau) {
      throw loco::config_error("diloco: H " + std::to_string(c.h) + " must split into " +
                               std::to_string(c.fragments) + " rounds longer than tau " +
                               std::to_string(c.tau));
    }
    opt.overlap_steps = {c.tau};
    opt.fragments = {.count = c.fragments, .by = split_of(s.split)};
    opt.mixing = c.alpha;
  }
  opt.schedule = alg::schedule::rounds(s.steps / per_round, per_round - c.tau);

  namespace lc = loco::compress;
  using constant = loco::stepsize::constant;
  using adamw = loco::update::adamw;
  const constant inner(s.inner_lr);
  const loco::merge::outer_nesterov outer(s.outer_lr, s.outer_momentum);
  return experiment::run_mlp(
      s.world(), d, seed, per_round,
      [&](sim_comm& comm, auto& f, std::span<const float> from, auto& obs) {
        if (c.method == "sync") {
          alg::compressed_amsgrad_options o;
          o.iterations = s.steps;
          o.bias_correction = true;
          o.beta2 = 0.999;
          o.seed = seed;
          loco::cd_adam<sim_comm, lc::identity> driver({}, constant(s.sync_lr), o);
          return driver.run(comm, f, from, obs).ledger;
        }
        if (c.method == "average") {
          loco::local_sgd<lc::identity, sim_comm, loco::merge::average, constant, adamw> driver(
              {}, {}, inner, opt, adamw());
          return driver.run(comm, f, from, obs).ledger;
        }
        if (c.method == "sparseloco") return sparseloco(c, comm, f, from, obs, opt, inner);
        if (c.fp4) {
          loco::streaming_diloco<sim_comm, lc::fp4> driver(lc::fp4(), outer, inner, opt, adamw());
          return driver.run(comm, f, from, obs).ledger;
        }
        loco::diloco<sim_comm> driver({}, outer, inner, opt, adamw());
        return driver.run(comm, f, from, obs).ledger;
      });
}

// How outer gradients travel: bits per value, or "top" for top-k.
std::string bits(const config& c) {
  if (c.method == "sparseloco") return c.two_bit ? "top 2" : "top";
  return c.fp4 ? "4" : "32";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DiLoCo and Streaming DiLoCo on the simulated communicator"};
  experiment::common_flags flags;
  flags.add_to(app);
  settings s;
  app.add_option("--workers", s.workers, "workers n")->capture_default_str();
  app.add_option("--steps", s.steps, "inner steps per worker")->capture_default_str();
  app.add_option("--hs", s.hs, "DiLoCo's H values")->delimiter(',')->capture_default_str();
  app.add_option("--stream-h", s.stream_h, "H of the streaming runs")->capture_default_str();
  app.add_option("--fragments", s.fragments, "P values")->delimiter(',')->capture_default_str();
  app.add_option("--taus", s.taus, "overlap steps tau")->delimiter(',')->capture_default_str();
  app.add_option("--alphas", s.alphas, "mixing alpha")->delimiter(',')->capture_default_str();
  app.add_option("--density", s.density, "SparseLoCo's top-k fraction")->capture_default_str();
  app.add_option("--chunk", s.chunk, "SparseLoCo's top-k per chunk of this many values (0: global)")
      ->capture_default_str();
  app.add_option("--values", s.values, "SparseLoCo's values: fp32 or 2bit")
      ->check(CLI::IsMember({"fp32", "2bit"}))
      ->capture_default_str();
  app.add_option("--decay", s.decay, "SparseLoCo's residual decay in (0, 1]")
      ->capture_default_str();
  app.add_option("--split", s.split, "fragments: shards, strided or balanced")
      ->capture_default_str();
  app.add_option("--only", s.only, "sync, diloco, average, streaming, sparseloco")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--inner-lr", s.inner_lr, "AdamW's lr")->capture_default_str();
  app.add_option("--sync-lr", s.sync_lr, "the synchronous baseline's lr")->capture_default_str();
  app.add_option("--outer-lr", s.outer_lr, "Nesterov's lr")->capture_default_str();
  app.add_option("--outer-momentum", s.outer_momentum, "Nesterov's momentum")
      ->capture_default_str();
  app.add_option("--step-time", s.step_time, "virtual seconds per inner step")
      ->capture_default_str();
  app.add_option("--latency", s.latency, "link latency (s)")->capture_default_str();
  app.add_option("--bandwidth", s.bandwidth, "link bandwidth (bytes/s)")->capture_default_str();
  app.add_option("--batch", s.batch, "mini-batch per worker")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (flags.quick) {
    s.workers = 4;
    s.steps = 200;
    s.hs = {20};
    s.stream_h = 20;
    s.fragments = {2};
    s.taus = {0, 5};
    s.alphas = {0.5};
    s.evaluations = 2;
  }
  const auto wanted = [&](const std::string& m) {
    return std::find(s.only.begin(), s.only.end(), m) != s.only.end();
  };

  std::vector<config> configs;
  if (wanted("sync")) configs.push_back({"sync"});
  for (std::size_t h : s.hs) {
    if (wanted("diloco")) configs.push_back({"diloco", h});
    if (wanted("average")) configs.push_back({"average", h});
  }
  if (wanted("streaming")) {
    // The baseline of the streaming runs: DiLoCo at the same H.
    if (std::find(s.hs.begin(), s.hs.end(), s.stream_h) == s.hs.end() || !wanted("diloco"))
      configs.push_back({"diloco", s.stream_h});
    for (std::size_t p : s.fragments)
      for (std::size_t tau : s.taus)
        for (double alpha : s.alphas)
          for (bool fp4 : {false, true}) {
            if (p == 1 && tau == 0 && alpha == 0.0 && !fp4) continue;  // = diloco at stream_h
            configs.push_back({"streaming", s.stream_h, p, tau, alpha, fp4});
          }
  }

  if (wanted("sparseloco")) {
    config c{"sparseloco", s.stream_h};
    c.density = s.density;
    c.chunk = s.chunk;
    c.two_bit = s.values == "2bit";
    c.decay = s.decay;
    configs.push_back(c);
  }

  const auto start = std::chrono::steady_clock::now();
  const auto d = experiment::load_mlp_data(s.workers, flags.seed, flags.quick);
  auto columns = experiment::trace_columns();
  for (const char* c : {"method", "h", "fragments", "tau", "alpha", "bits"}) columns.push_back(c);
  loco::observe::csv_writer trace(flags.file("trace.csv"), columns);
  loco::observe::csv_writer summary(
      flags.file("summary.csv"),
      {"run", "method", "h", "fragments", "tau", "alpha", "bits", "final_accuracy", "best_accuracy",
       "end_time_s", "total_bytes", "peak_round_bytes"});
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
      trace.row(c.name(), p.step, p.step, p.time, p.bytes, "", p.accuracy, c.method, c.h,
                c.fragments, c.tau, c.alpha, bits(c));
    }
    trace.flush();
    const auto& last = r.points.back();
    summary.row(c.name(), c.method, c.h, c.fragments, c.tau, c.alpha, bits(c), last.accuracy, best,
                r.end_time, last.bytes, r.peak_bytes);
    summary.flush();
    std::cerr << c.name() << ": acc " << last.accuracy << " (best " << best << ") time "
              << r.end_time << " s ("
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count()
              << " s wall)\n";
    rows.push_back({c, std::move(r)});
  }

  // Time to a target: one point below the synchronous baseline's best.
  std::optional<double> target;
  for (const auto& r : rows) {
    if (r.c.method != "sync") continue;
    target = experiment::best_accuracy(r.r) - 0.01;
  }
  std::cout << "\n"
            << s.workers << " workers, " << s.steps << " inner steps each; virtual time at "
            << s.step_time << " s per step, " << s.bandwidth * 8 / 1e6 << " Mbit/s, "
            << s.latency * 1e3 << " ms"
            << (target ? "; target " + experiment::cell(*target * 100) + "% (sync's best - 1 point)"
                       : "")
            << "\n";
  std::vector<std::pair<std::string, experiment::mlp_run>> named;
  for (const auto& r : rows) named.emplace_back(r.c.name(), r.r);
  experiment::print_runs(std::cout, named, target, 1e6, "peak MB/round");
  std::cout << "wall time "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << " s; CSV in " << flags.out << "/\n";
  return 0;
}
