// Where a worker's time goes at d = 1e6: the gradient, against what each
// driver adds to it (compression, merge, the inner update) and the
// communication, measured in one run for every driver.
//
//   OPENBLAS_NUM_THREADS=1 step_overhead [--workers 2] [--steps 300] [--hidden 1270]
//
// The MLP 784-1270-10 on Fashion-MNIST (1,009,660 parameters), batch 32,
// threads on comm::in_process, the drivers with the demo's policies:
// mini-batch SGD (identity, H = 1), local SGD (H = 10), LOSCAR-SGD
// (random_k_unscaled 10%, delay-corrected merge, H = 10, 2 overlap steps;
// again with random_k's stratified support),
// DiLoCo (AdamW inside, Nesterov outside, H = 10) and CD-Adam (top_k 10%).
// Rank 0's seconds, from its ledger and from a clock around each gradient:
//   gradient     the objective's gradient calls
//   update+merge the ledger's compute phase less the gradients: the inner
//                optimizer's steps and the merge rule (the ledger counts
//                both as model updates)
//   compression  the ledger's compress phase: encode, decode, aggregation
//   comm+wait    starting and waiting for collectives
// Two baselines exchange nothing until one merge at the end: their
// update+merge is the inner optimizer's own cost (SGD or AdamW, with the
// gradient's finiteness check). "overhead" = (update+merge + compression) /
// gradient; a driver's compression and merge cost per step is its overhead
// less its baseline's. docs/local_sgd.md#step-overhead
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <loco/aliases.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/problems/mlp.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

// An objective whose gradient calls are timed into *seconds (the drivers
// may copy the objective).
template <class O>
class timed_objective {
 public:
  using value_type = typename O::value_type;
  timed_objective(O inner, double& seconds) : inner_(std::move(inner)), seconds_(&seconds) {}
  std::size_t dimension() const { return inner_.dimension(); }
  double loss(std::span<const value_type> x) const { return inner_.loss(x); }
  double gradient(std::span<const value_type> x, std::span<value_type> g,
                  loco::random::stream& rng) {
    const auto t0 = clock_type::now();
    const double l = inner_.gradient(x, g, rng);
    *seconds_ += std::chrono::duration<double>(clock_type::now() - t0).count();
    return l;
  }

 private:
  O inner_;
  double* seconds_;
};

struct settings {
  int workers = 2;
  std::size_t steps = 300;  // gradient steps per worker
  std::size_t hidden = 1270;
  std::size_t h = 10;
  double fraction = 0.1;
};

struct row {
  std::string name;
  std::size_t steps = 0;
  double gradient = 0, update_merge = 0, compression = 0, comm = 0;
};

// Per gradient step: local_sgd's overlap steps (LOSCAR's) are steps too.
template <class Result>
row make_row(const std::string& name, const Result& r, double gradient, std::size_t steps) {
  const auto& t = r.ledger.totals().seconds;  // this rank's own
  if constexpr (requires { r.stats.overlap_steps; }) {
    steps = r.stats.local_steps + r.stats.overlap_steps;
  }
  return {name, steps, gradient, t.compute - gradient, t.compress, t.communicate + t.wait};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loco;
  settings s;
  CLI::App app{"step_overhead: gradient against compression and merge per driver, d = 1e6"};
  app.add_option("--workers", s.workers, "threads on comm::in_process")->check(CLI::Range(1, 64));
  app.add_option("--steps", s.steps, "gradient steps per worker")->check(CLI::Range(20, 100000));
  app.add_option("--hidden", s.hidden, "the MLP's hidden width (d = 795 h + 10)")
      ->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    std::fprintf(stderr, "step_overhead: set OPENBLAS_NUM_THREADS=1 for one core per worker\n");
  }

  const auto fm = data::fashion_mnist<float>::load();
  const auto train = std::make_shared<const data::dataset<float>>(fm.train);
  const auto shards = data::partition_iid(train->rows(), static_cast<std::size_t>(s.workers), 1);
  const problems::mlp_options model{.hidden = {s.hidden}, .batch_size = 32, .l2 = 0.0};
  std::vector<row> rows;

  comm::run_in_process(s.workers, [&](comm::in_process& comm) {
    const auto me = static_cast<std::size_t>(comm.rank());
    const auto init = problems::mlp<float>(train, shards[me], model).initial_point(1);
    const std::vector<float> x0(init.begin(), init.end());
    // One driver's run on a fresh objective, its gradient time clocked.
    const auto measure = [&](const std::string& name, auto driver) {
      double gradient = 0.0;
      timed_objective f(problems::mlp<float>(train, shards[me], model), gradient);
      const auto result = driver.run(comm, f, std::span<const float>(x0));
      if (me == 0) rows.push_back(make_row(name, result, gradient, s.steps));
    };
    const auto sgd_rounds = [&](std::size_t rounds, std::size_t h) {
      return local_sgd_dense<comm::in_process, stepsize::constant>(
          {}, {}, stepsize::constant(0.1), {.schedule = algorithm::schedule::rounds(rounds, h)});
    };
    const auto diloco_rounds = [&](std::size_t rounds, std::size_t h) {
      return diloco<comm::in_process>({}, merge::outer_nesterov(0.7, 0.9), stepsize::constant(1e-3),
                                      {.schedule = algorithm::schedule::rounds(rounds, h)},
                                      update::adamw());
    };
    const std::size_t rounds = s.steps / s.h;
    // Baselines: every step local, one merge at the end (no compression,
    // nothing in flight): what the inner update costs by itself.
    measure("no exchange, SGD steps", sgd_rounds(1, s.steps));
    measure("no exchange, AdamW steps", diloco_rounds(1, s.steps));
    measure("minibatch_sgd", sgd_rounds(s.steps, 1));
    measure("local_sgd H=10", sgd_rounds(rounds, s.h));
    measure("loscar_sgd H=10 K=10%",
            loscar_sgd<comm::in_process>(
                compress::random_k_unscaled(s.fraction, 1), {}, stepsize::constant(0.1),
                {.schedule = algorithm::schedule::rounds(rounds, s.h), .overlap_steps = {2}}));
    measure("loscar_sgd H=10 K=10% stratified",
            loscar_sgd<comm::in_process>(
                compress::random_k_unscaled(s.fraction, 1, compress::sampling::stratified), {},
                stepsize::constant(0.1),
                {.schedule = algorithm::schedule::rounds(rounds, s.h), .overlap_steps = {2}}));
    measure("diloco H=10", diloco_rounds(rounds, s.h));
    measure("cd_adam k=10%",
            cd_adam<comm::in_process>(compress::top_k(s.fraction), stepsize::constant(0.002),
                                      {.iterations = s.steps}));
  });

  const std::size_t d = 795 * s.hidden + 10;
  std::printf(
      "MLP 784-%zu-10 (d = %zu), batch 32, %d workers on threads, %zu steps each; "
      "rank 0, ms per gradient step\n\n",
      s.hidden, d, s.workers, s.steps);
  std::printf("| driver | gradient | update+merge | compression | comm+wait | overhead |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows) {
    const double per = 1e3 / static_cast<double>(r.steps);
    std::printf("| %s | %.3f | %.3f | %.3f | %.3f | %.1f%% |\n", r.name.c_str(), r.gradient * per,
                r.update_merge * per, r.compression * per, r.comm * per,
                100.0 * (r.update_merge + r.compression) / r.gradient);
  }
  return 0;
}
