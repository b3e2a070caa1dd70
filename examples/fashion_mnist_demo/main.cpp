// loco's flagship demo: data-parallel training on the real Fashion-MNIST
// with several workers, comparing mini-batch SGD, local SGD, LOSCAR-SGD and
// CD-Adam in one run. Every algorithm takes the same number of gradient steps
// per worker; what differs is how often and how much they communicate.
//
//   fashion_mnist_demo                         4 threads (comm::in_process)
//   fashion_mnist_demo --model mlp --steps 3000
//   loco-launch -n 4 -- fashion_mnist_demo --comm tcp
//   mpirun -np 4 fashion_mnist_demo --comm mpi
//
// Writes <out>/trace.csv (one row per evaluation: run, round, step, time_s,
// bytes, loss, accuracy) and <out>/summary.csv; tools/plot.py draws them.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <limits>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/random_k.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/progress_bar.hpp>
#include <loco/observe/table.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <loco/stepsize/constant.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#ifdef LOCO_DEMO_WITH_TCP
#include <loco/comm/tcp.hpp>
#endif
#ifdef LOCO_DEMO_WITH_MPI
#include <loco/comm/mpi.hpp>
#endif

namespace {

using clock_type = std::chrono::steady_clock;
using dataset = loco::data::dataset<float>;

struct settings {
  std::vector<std::string> algorithms{"minibatch", "local", "loscar", "cd_adam"};
  std::string model = "mlp";
  std::string comm = "in_process";
  int workers = 4;
  std::size_t steps = 2000;  // gradient steps per worker, every algorithm
  std::size_t local_steps = 10;
  double fraction = 0.1;  // K/d for LOSCAR, k/d for CD-Adam's top_k
  std::size_t overlap = 2;
  std::size_t batch = 32;
  double lr = 0.1;
  double adam_lr = 0.002;
  std::size_t evaluations = 12;  // per algorithm
  double dirichlet = 0.0;        // 0: iid shards; > 0: label-skewed shards
  std::string out = "results/demo";
  std::string data;
  std::uint64_t seed = 1;
};

struct shared_data {
  std::shared_ptr<const dataset> train, test;
  loco::data::partition shards;
  std::vector<std::size_t> probe_rows;  // a fixed subset for the training loss
};

struct outcome {
  std::string name;
  double accuracy = 0, loss = 0;
  double seconds = 0;  // training wall time, evaluations excluded
  std::size_t rounds = 0;
  std::uint64_t bytes = 0;              // all workers, both directions
  double compute = 0, communicate = 0;  // rank 0's seconds
};

// The objective a worker trains and the evaluators of the averaged model.
template <class Model>
struct model_kit {
  static Model make(const std::shared_ptr<const dataset>& data, std::span<const std::size_t> rows,
                    const settings& s) {
    if constexpr (std::is_same_v<Model, loco::problems::mlp<float>>) {
      return Model(data, rows, {.hidden = {128}, .batch_size = s.batch, .l2 = 0.0});
    } else {
      return Model(data, rows, {.batch_size = s.batch, .l2 = 1e-5});
    }
  }
  static Model make_all(const std::shared_ptr<const dataset>& data, const settings& s) {
    std::vector<std::size_t> rows(data->rows());
    for (std::size_t r = 0; r < rows.size(); ++r) rows[r] = r;
    return make(data, rows, s);
  }
};

// Everything one rank does: train each requested algorithm from the same x0.
template <class Model, class Comm>
std::vector<outcome> train_all(Comm& comm, const settings& s, const shared_data& d,
                               loco::observe::csv_writer* trace) {
  using namespace loco;
  const int me = comm.rank(), n = comm.size();
  const auto& mine = d.shards[static_cast<std::size_t>(me)];
  auto objective = model_kit<Model>::make(d.train, mine, s);
  const auto tester = model_kit<Model>::make_all(d.test, s);
  const auto prober = model_kit<Model>::make(d.train, d.probe_rows, s);
  const auto init = objective.initial_point(s.seed);
  const std::vector<float> x0(init.begin(), init.end());
  const std::size_t every = std::max<std::size_t>(1, s.steps / s.evaluations);

  // Sum of every worker's bytes (a small allreduce all ranks make together).
  const auto total_bytes = [&](std::uint64_t mine_bytes) {
    std::vector<double> v{static_cast<double>(mine_bytes)};
    comm.allreduce(std::span<double>(v), comm::reduce_op::sum);
    return static_cast<std::uint64_t>(v[0]);
  };
  const auto log = [&](const std::string& run, std::size_t round, std::size_t step, double t,
                       std::uint64_t bytes, double loss, double acc) {
    if (trace != nullptr) trace->row(run, round, step, t, bytes, loss, acc);
  };

  std::vector<outcome> outcomes;
  for (const auto& name : s.algorithms) {
    outcome o{.name = name};
    // Rank 0 shows progress: redrawn in place on a terminal, plain lines
    // otherwise; accuracy as the evaluation hook records it on the ledger.
    const std::size_t steps_per_round = name == "loscar" || name == "local" ? s.local_steps : 1;
    observe::progress_bar bar(
        {.every = std::max<std::size_t>(1, every / steps_per_round), .label = name});
    const auto start = clock_type::now();
    double evaluating = 0.0;  // seconds spent in the callbacks' evaluations
    const auto seconds = [&] {
      return std::chrono::duration<double>(clock_type::now() - start).count() - evaluating;
    };
    // Runs an evaluation and keeps its time out of the training time.
    const auto timed = [&](auto&& fn) {
      const auto t0 = clock_type::now();
      fn();
      evaluating += std::chrono::duration<double>(clock_type::now() - t0).count();
    };
    if (name == "cd_adam") {
      compressed_amsgrad<compress::top_k, Comm, stepsize::constant> driver(
          compress::top_k(s.fraction), stepsize::constant(s.adam_lr),
          {.iterations = s.steps, .seed = s.seed});
      // Every replica holds the same model, so rank 0 evaluates it alone.
      auto on_iteration = [&](const algorithm::iteration_info<float>& info) {
        if (info.iteration % every != 0 && info.iteration != info.iteration_count) return false;
        timed([&] {
          const auto bytes =
              total_bytes(info.ledger->totals().bytes_up() + info.ledger->totals().bytes_down());
          if (me != 0) return;
          const double loss = prober.loss(info.model), acc = tester.accuracy(info.model);
          info.ledger->record_evaluation(acc, std::numeric_limits<double>::quiet_NaN());
          log(name, info.iteration, info.iteration, seconds(), bytes, loss, acc);
        });
        return false;
      };
      struct hook {
        decltype(on_iteration)& fn;
        bool on_round_end(const algorithm::iteration_info<float>& info) { return fn(info); }
      } callback{on_iteration};
      auto result = driver.run(comm, objective, std::span<const float>(x0), callback, bar);
      o.rounds = result.stats.iterations;
      const auto& spent = result.ledger.totals();
      o.bytes = total_bytes(spent.bytes_up() + spent.bytes_down());
      o.compute = spent.seconds.compute;
      o.communicate = spent.seconds.communicate + spent.seconds.compress + spent.seconds.wait;
      if (me == 0) {
        o.accuracy = tester.accuracy(std::span<const float>(result.model));
        o.loss = prober.loss(std::span<const float>(result.model));
      }
    } else {
      const bool loscar = name == "loscar";
      const std::size_t h = name == "minibatch" ? 1 : s.local_steps;
      const std::size_t rounds = std::max<std::size_t>(1, s.steps / h);
      const std::size_t eval_rounds = std::max<std::size_t>(1, every / h);
      auto on_round = [&](const algorithm::round_info<float>& info) {
        if (info.round % eval_rounds != 0 && info.round != info.round_count) return false;
        timed([&] {
          const auto avg = info.average_model();  // collective: every rank calls it
          const auto bytes = total_bytes(info.ledger->totals().bytes_sent);
          if (me != 0) return;
          const double loss = prober.loss(avg), acc = tester.accuracy(avg);
          info.ledger->record_evaluation(acc, std::numeric_limits<double>::quiet_NaN());
          log(name, info.round, static_cast<std::size_t>(info.step), seconds(), bytes, loss, acc);
        });
        return false;
      };
      struct hook {
        decltype(on_round)& fn;
        bool on_round_end(const algorithm::round_info<float>& info) { return fn(info); }
      } callback{on_round};
      const auto finish = [&](auto result) {
        o.rounds = result.stats.rounds;
        const auto& spent = result.ledger.totals();
        o.bytes = total_bytes(spent.bytes_sent);
        o.compute = spent.seconds.compute;
        o.communicate = spent.seconds.communicate + spent.seconds.compress + spent.seconds.wait;
        if (me == 0) {
          o.accuracy = tester.accuracy(std::span<const float>(result.average));
          o.loss = prober.loss(std::span<const float>(result.average));
        }
      };
      const algorithm::local_sgd_options opt{.schedule = algorithm::schedule::rounds(rounds, h),
                                             .overlap_steps = {loscar ? s.overlap : 0},
                                             .seed = s.seed};
      if (loscar) {
        local_sgd<compress::random_k_unscaled, Comm, merge::delay_corrected, stepsize::constant>
            driver(compress::random_k_unscaled(s.fraction, s.seed), {}, stepsize::constant(s.lr),
                   opt);
        finish(driver.run(comm, objective, std::span<const float>(x0), callback, bar));
      } else {
        local_sgd<compress::identity, Comm, merge::average, stepsize::constant> driver(
            {}, {}, stepsize::constant(s.lr), opt);
        finish(driver.run(comm, objective, std::span<const float>(x0), callback, bar));
      }
    }
    o.seconds = seconds();
    outcomes.push_back(o);
    (void)n;
  }
  return outcomes;
}

void print_summary(const std::vector<outcome>& outcomes, const settings& s, int workers) {
  std::printf("\nFashion-MNIST %s, %d workers, %zu steps of batch %zu per worker (%s)\n",
              s.model.c_str(), workers, s.steps, s.batch, s.comm.c_str());
  const double dense = outcomes.empty() ? 0.0 : static_cast<double>(outcomes.front().bytes);
  loco::observe::table t{"algorithm", "test acc %", "train loss",
                         "rounds",    "MB sent",    "vs " + outcomes.front().name,
                         "train s",   "compute s",  "comm s"};
  for (const auto& o : outcomes) {
    const double ratio = o.bytes == 0 ? 0.0 : dense / static_cast<double>(o.bytes);
    t.add_row(o.name, 100.0 * o.accuracy, o.loss, o.rounds, static_cast<double>(o.bytes) / 1e6,
              ratio, o.seconds, o.compute, o.communicate);
  }
  t.print(std::cout);
  std::printf(
      "(MB sent: every worker's messages; cd_adam counts its uplink and each worker's\n"
      " copy of the downlink, the progress lines its uplink. \"vs %s\": how many times\n"
      " fewer bytes than the first algorithm; train s: wall time without evaluations;\n"
      " compute/comm s: rank 0's seconds in gradient steps and in compression,\n"
      " communication and waiting)\n",
      outcomes.front().name.c_str());
}

template <class Comm>
std::vector<outcome> train_on(Comm& comm, const settings& s, const shared_data& d,
                              loco::observe::csv_writer* trace) {
  if (s.model == "mlp") return train_all<loco::problems::mlp<float>>(comm, s, d, trace);
  return train_all<loco::problems::softmax_regression<float>>(comm, s, d, trace);
}

shared_data load(const settings& s, int workers) {
  auto fm = loco::data::fashion_mnist<float>::load(s.data);
  shared_data d;
  d.train = std::make_shared<const dataset>(std::move(fm.train));
  d.test = std::make_shared<const dataset>(std::move(fm.test));
  const auto w = static_cast<std::size_t>(workers);
  d.shards = s.dirichlet > 0.0 ? loco::data::partition_dirichlet(d.train->labels, d.train->classes,
                                                                 w, s.dirichlet, s.seed)
                               : loco::data::partition_iid(d.train->rows(), w, s.seed);
  for (std::size_t r = 0; r < d.train->rows(); r += 12) d.probe_rows.push_back(r);  // 5000 rows
  return d;
}

void validate(const settings& s) {
  for (const auto& a : s.algorithms) {
    if (a != "minibatch" && a != "local" && a != "loscar" && a != "cd_adam") {
      throw loco::config_error("--algorithms: unknown algorithm '" + a +
                               "' (minibatch, local, loscar, cd_adam)");
    }
  }
  if (s.algorithms.empty()) throw loco::config_error("--algorithms: give at least one");
  if (s.steps == 0 || s.local_steps == 0 || s.batch == 0 || s.evaluations == 0) {
    throw loco::config_error("--steps, --local-steps, --batch and --evaluations must be >= 1");
  }
  if (!(s.fraction > 0.0 && s.fraction <= 1.0)) {
    throw loco::config_error("--fraction " + std::to_string(s.fraction) + " must be in (0, 1]");
  }
}

int run(const settings& s) {
  validate(s);
  std::vector<outcome> outcomes;
  std::optional<loco::observe::csv_writer> trace;
  const auto open_trace = [&] {
    trace.emplace(
        std::filesystem::path(s.out) / "trace.csv",
        std::vector<std::string>{"run", "round", "step", "time_s", "bytes", "loss", "accuracy"});
  };
  int workers = s.workers;
  if (s.comm == "in_process") {
    if (workers < 1) throw loco::config_error("--workers " + std::to_string(workers));
    const auto d = load(s, workers);
    std::printf("loco demo: %d workers as threads, Fashion-MNIST %zu train / %zu test images\n",
                workers, d.train->rows(), d.test->rows());
    open_trace();
    loco::comm::run_in_process(workers, [&](loco::comm::in_process& comm) {
      auto mine = train_on(comm, s, d, comm.rank() == 0 ? &*trace : nullptr);
      if (comm.rank() == 0) outcomes = std::move(mine);
    });
  } else if (s.comm == "tcp") {
#ifdef LOCO_DEMO_WITH_TCP
    loco::comm::tcp comm(loco::comm::tcp_options::from_env());
    workers = comm.size();
    const auto d = load(s, workers);
    if (comm.rank() == 0) open_trace();
    outcomes = train_on(comm, s, d, trace ? &*trace : nullptr);
    if (comm.rank() != 0) return 0;
#else
    throw loco::config_error("--comm tcp: this build has no loco::tcp (Boost.Asio, OpenSSL)");
#endif
  } else if (s.comm == "mpi") {
#ifdef LOCO_DEMO_WITH_MPI
    loco::comm::mpi_environment env;
    loco::comm::mpi comm;
    workers = comm.size();
    const auto d = load(s, workers);
    if (comm.rank() == 0) open_trace();
    outcomes = train_on(comm, s, d, trace ? &*trace : nullptr);
    if (comm.rank() != 0) return 0;
#else
    throw loco::config_error("--comm mpi: this build has no loco::mpi");
#endif
  } else {
    throw loco::config_error("--comm: unknown communicator '" + s.comm +
                             "' (in_process, tcp, mpi)");
  }
  print_summary(outcomes, s, workers);
  loco::observe::csv_writer summary(std::filesystem::path(s.out) / "summary.csv",
                                    {"algorithm", "accuracy", "loss", "rounds", "bytes", "seconds",
                                     "compute_s", "communicate_s"});
  for (const auto& o : outcomes) {
    summary.row(o.name, o.accuracy, o.loss, o.rounds, o.bytes, o.seconds, o.compute, o.communicate);
  }
  trace->flush();
  std::printf("\nwrote %s and %s\nplots: tools/plot.py %s -o %s\n", trace->path().c_str(),
              summary.path().c_str(), trace->path().c_str(), s.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  CLI::App app{"loco demo: distributed training on Fashion-MNIST, several algorithms compared"};
  app.add_option("--algorithms", s.algorithms, "minibatch, local, loscar, cd_adam")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--model", s.model, "softmax or mlp")
      ->check(CLI::IsMember({"softmax", "mlp"}))
      ->capture_default_str();
  app.add_option("--comm", s.comm, "in_process, tcp (under loco-launch), mpi (under mpirun)")
      ->capture_default_str();
  app.add_option("--workers", s.workers, "threads with --comm in_process")->capture_default_str();
  app.add_option("--steps", s.steps, "gradient steps per worker")->capture_default_str();
  app.add_option("--local-steps", s.local_steps, "H: steps between rounds (local, loscar)")
      ->capture_default_str();
  app.add_option("--fraction", s.fraction, "K/d for loscar's random_k, k/d for cd_adam's top_k")
      ->capture_default_str();
  app.add_option("--overlap", s.overlap, "Q: loscar's steps while the average is in flight")
      ->capture_default_str();
  app.add_option("--batch", s.batch, "mini-batch size per worker")->capture_default_str();
  app.add_option("--lr", s.lr, "SGD step size")->capture_default_str();
  app.add_option("--adam-lr", s.adam_lr, "CD-Adam step size")->capture_default_str();
  app.add_option("--evaluations", s.evaluations, "test evaluations per algorithm")
      ->capture_default_str();
  app.add_option("--dirichlet", s.dirichlet, "label-skewed shards with this alpha (0: iid)")
      ->capture_default_str();
  app.add_option("--out", s.out, "folder for trace.csv and summary.csv")->capture_default_str();
  app.add_option("--data", s.data, "Fashion-MNIST folder (default: the Debian package's)");
  app.add_option("--seed", s.seed, "seed of shards, sampling and masks")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist_demo: %s\n", e.what());
    return 1;
  }
}
