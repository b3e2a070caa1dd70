// loco in one screen: four workers as threads train one least-squares model
// with mini-batch SGD, one-shot averaging, local SGD with growing gaps, and
// LOSCAR-SGD (10% of coordinates averaged per round, with overlap), then
// print the distance each reached (last and Polyak-Ruppert averaged
// iterate) and the bytes each worker sent, then LOSCAR-SGD's ledger: bytes
// and time per worker.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/random_k.hpp>
#include <loco/data/partition.hpp>
#include <loco/data/synthetic.hpp>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/problems/least_squares.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <memory>

namespace {

constexpr int workers = 4;
constexpr std::size_t rows = 8000, features = 50, steps = 4000;

struct outcome {
  double error;         // ||x - x*|| of the averaged last iterate
  double polyak_error;  // ||x - x*|| of the averaged Polyak-Ruppert iterate
  std::uint64_t bytes;
  std::size_t rounds;
  loco::observe::ledger ledger;  // rank 0's, with every rank's totals
};

double distance(const std::vector<double>& x, const loco::data::synthetic<double>& problem) {
  if (x.empty()) return std::nan("");
  double e = 0;
  for (std::size_t j = 0; j < features; ++j) e += std::pow(x[j] - problem.truth[j], 2);
  return std::sqrt(e);
}

template <class Driver>
outcome train(Driver& driver, const loco::data::synthetic<double>& problem) {
  auto data = std::make_shared<const loco::data::dataset<double>>(problem.data);
  const auto parts = loco::data::partition_iid(rows, workers, 7);
  outcome out{};
  loco::comm::run_in_process(workers, [&](loco::comm::in_process& comm) {
    const auto& mine = parts[static_cast<std::size_t>(comm.rank())];
    loco::problems::least_squares<double> f(data, mine, {.batch_size = 1});
    const std::vector<double> x0(features, 0.0);
    auto result = driver.run(comm, f, std::span<const double>(x0));
    if (comm.rank() != 0) return;
    out = {distance(result.average, problem), distance(result.polyak, problem),
           result.ledger.totals().bytes_sent, result.stats.rounds, std::move(result.ledger)};
  });
  return out;
}

}  // namespace

int main() {
  using namespace loco;
  const auto problem = data::make_least_squares<double>(rows, features, 0.1, 42);
  const stepsize::polynomial decay(0.1, 0.6);
  using dense_sgd =
      local_sgd<compress::identity, comm::in_process, merge::average, stepsize::polynomial>;

  std::printf("distance to the true parameters, least squares n = %zu, d = %zu\n", rows, features);
  std::printf("%-34s %8s %8s %8s %12s\n", "method (4 workers, T = 4000)", "last", "polyak",
              "rounds", "bytes sent");
  const auto report = [](const char* name, const outcome& o) {
    char polyak[16] = "       -";  // not requested
    if (!std::isnan(o.polyak_error)) std::snprintf(polyak, sizeof polyak, "%8.4f", o.polyak_error);
    std::printf("%-34s %8.4f %s %8zu %12llu\n", name, o.error, polyak, o.rounds,
                static_cast<unsigned long long>(o.bytes));
  };
  for (auto [name, sched] :
       {std::pair{"mini-batch SGD (every step)", algorithm::schedule::every_step(steps)},
        std::pair{"one-shot averaging", algorithm::schedule::once(steps)},
        std::pair{"local SGD, 40 evenly spaced", algorithm::schedule::evenly(steps, 40)},
        std::pair{"local SGD, 40 with growing gaps", algorithm::schedule::growing(steps, 40)}}) {
    dense_sgd driver({}, {}, decay, {.schedule = sched, .polyak_average = true});
    report(name, train(driver, problem));
  }

  // LOSCAR-SGD: 10% of coordinates per round, 2 overlap steps, delay-corrected.
  local_sgd<compress::random_k_unscaled, comm::in_process, merge::delay_corrected,
            stepsize::constant>
      loscar(compress::random_k_unscaled(0.1, 1), {}, stepsize::constant(0.01),
             {.schedule = algorithm::schedule::rounds(400, 8), .overlap_steps = {2}});
  const outcome loscar_run = train(loscar, problem);
  report("LOSCAR-SGD (K/d = 0.1, Q = 2)", loscar_run);
  std::printf("\nLOSCAR-SGD, ");
  std::fflush(stdout);
  loscar_run.ledger.print_summary(std::cout);
  return 0;
}
