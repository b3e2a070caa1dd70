// LOSCAR-SGD vs mini-batch SGD for real over comm::tcp: wall time to the
// same test accuracy on Fashion-MNIST (ALGORITHMS.md sections 3 and 7).
//
// Mini-batch SGD averages the dense model after every step; LOSCAR-SGD takes
// H local steps, averages K of d coordinates (shared random mask), and keeps
// stepping until that average arrives (overlap), then merges with the
// delay correction. Both start from the same point with the same data
// shards, step size and batch.
//
// Each rank keeps a copy of its model every few rounds, with its wall time
// since a common start (a barrier), and nothing else: no evaluation traffic
// while training. After each run, the copies are averaged over the ranks
// (allreduce, untimed) and rank 0 evaluates them; the time of a copy is the
// latest rank's.
//
//   one rank per process, from LOCO_RANK / LOCO_WORLD_SIZE / LOCO_COORDINATOR /
//   LOCO_TOKEN (experiments/loscar_tcp/run_netns.sh starts 4 in network
//   namespaces joined by 100 Mbit/s links):
//     loscar_tcp --model softmax --out DIR
//   without LOCO_RANK: --workers ranks as threads over 127.0.0.1 (a smoke run).
#include <loco/comm/tcp.hpp>  // brings Boost.Asio

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <loco/aliases.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "experiment.hpp"

namespace {

namespace alg = loco::algorithm;
using dataset = loco::data::dataset<float>;
using clock_type = std::chrono::steady_clock;

struct settings {
  std::string model = "softmax";
  std::vector<std::string> methods{"minibatch", "loscar"};
  int workers = 4;  // threads, when not started with LOCO_RANK
  std::size_t minibatch_steps = 1500;
  std::size_t loscar_rounds = 400;
  std::size_t local_steps = 6;  // H
  double fraction = 0.01;       // K/d
  std::size_t max_overlap = 6;  // cap on the steps taken while the average travels
  std::size_t batch = 32;
  double lr = 0.1;
  std::size_t evaluations = 40;  // copies kept per run
  double target_accuracy = 0.80;
};

struct shared_data {
  std::shared_ptr<const dataset> train, test;
  loco::data::partition shards;
  std::vector<std::size_t> probe_rows, test_rows;
};

shared_data load(int workers, std::uint64_t seed, bool quick) {
  auto fm = loco::data::fashion_mnist<float>::load();
  shared_data d;
  d.train = std::make_shared<const dataset>(std::move(fm.train));
  d.test = std::make_shared<const dataset>(std::move(fm.test));
  d.shards = loco::data::partition_iid(d.train->rows(), static_cast<std::size_t>(workers), seed);
  for (std::size_t r = 0; r < d.train->rows(); r += quick ? 60 : 12) d.probe_rows.push_back(r);
  const std::size_t test_rows = quick ? 1000 : d.test->rows();
  for (std::size_t r = 0; r < test_rows; ++r) d.test_rows.push_back(r);
  return d;
}

struct snapshot {
  std::size_t round = 0;
  std::uint64_t step = 0;
  double seconds = 0;
  std::uint64_t bytes = 0;  // this rank's payload so far
  std::vector<float> model;
};

// Keeps a copy of the model every `every` rounds (void hook: no messages).
struct keeper {
  std::vector<snapshot>* out;
  clock_type::time_point start;
  std::size_t every;
  void on_round_end(const alg::round_info<float>& info) {
    if (info.round % every != 0 && info.round != info.round_count) return;
    out->push_back({info.round, info.step,
                    std::chrono::duration<double>(clock_type::now() - start).count(),
                    info.ledger->totals().bytes_sent,
                    std::vector<float>(info.model.begin(), info.model.end())});
  }
};

struct point {
  std::size_t round;
  std::uint64_t step;
  double seconds, loss, accuracy;
  std::uint64_t bytes;  // all ranks
};

struct outcome {
  std::string method;
  std::vector<point> points;
  double train_seconds = 0;
  std::optional<point> reached;
};

template <class Model>
Model make_model(const std::shared_ptr<const dataset>& data, std::span<const std::size_t> rows,
                 std::size_t batch) {
  if constexpr (std::is_same_v<Model, loco::problems::mlp<float>>) {
    return Model(data, rows, {.hidden = {128}, .batch_size = batch, .l2 = 0.0});
  } else {
    return Model(data, rows, {.batch_size = batch, .l2 = 1e-5});
  }
}

// Everything one rank does; rank 0 returns the outcomes.
template <class Model>
std::vector<outcome> train(loco::comm::tcp& comm, const settings& s, const shared_data& d,
                           std::uint64_t seed) {
  const int me = comm.rank();
  auto objective = make_model<Model>(d.train, d.shards[static_cast<std::size_t>(me)], s.batch);
  const auto prober = make_model<Model>(d.train, d.probe_rows, s.batch);
  const auto tester = make_model<Model>(d.test, d.test_rows, s.batch);
  const auto init = objective.initial_point(seed);
  const std::vector<float> x0(init.begin(), init.end());
  std::vector<outcome> outcomes;

  for (const auto& method : s.methods) {
    const bool loscar = method == "loscar";
    const std::size_t rounds = loscar ? s.loscar_rounds : s.minibatch_steps;
    alg::local_sgd_options opt;
    opt.seed = seed;
    if (loscar) {
      opt.schedule = alg::schedule::rounds(rounds, s.local_steps);
      opt.overlap_until_arrival = true;
      opt.max_overlap_steps = s.max_overlap;
    } else {
      opt.schedule = alg::schedule::every_step(rounds);
    }
    std::vector<snapshot> kept;
    kept.reserve(s.evaluations + 2);
    kept.push_back({0, 0, 0.0, 0, x0});
    comm.barrier();  // a common start
    const auto start = clock_type::now();
    keeper hook{&kept, start, std::max<std::size_t>(1, rounds / s.evaluations)};
    if (loscar) {
      loco::loscar_sgd<loco::comm::tcp> driver(loco::compress::random_k_unscaled(s.fraction, seed),
                                               {}, loco::stepsize::constant(s.lr), opt);
      driver.run(comm, objective, std::span<const float>(x0), hook);
    } else {
      loco::minibatch_sgd<loco::comm::tcp, loco::stepsize::constant> driver(
          {}, {}, loco::stepsize::constant(s.lr), opt);
      driver.run(comm, objective, std::span<const float>(x0), hook);
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();

    // Untimed: average each copy over the ranks, the latest rank's times, total bytes.
    std::vector<double> times, bytes;
    for (const auto& k : kept) {
      times.push_back(k.seconds);
      bytes.push_back(static_cast<double>(k.bytes));
    }
    times.push_back(seconds);
    comm.allreduce(std::span<double>(times), loco::comm::reduce_op::max);
    comm.allreduce(std::span<double>(bytes), loco::comm::reduce_op::sum);
    outcome o{method, {}, times.back(), std::nullopt};
    for (std::size_t i = 0; i < kept.size(); ++i) {
      auto& k = kept[i];
      comm.allreduce(std::span<float>(k.model), loco::comm::reduce_op::average);
      if (me != 0) continue;
      const std::span<const float> avg(k.model);
      o.points.push_back({k.round, k.step, times[i], prober.loss(avg), tester.accuracy(avg),
                          static_cast<std::uint64_t>(bytes[i])});
    }
    for (const auto& p : o.points) {
      if (p.accuracy >= s.target_accuracy) {
        o.reached = p;
        break;
      }
    }
    if (me == 0) {
      const auto& last = o.points.back();
      std::cerr << method << ": " << o.train_seconds << " s, final accuracy " << last.accuracy
                << ", target "
                << (o.reached ? "reached at " + std::to_string(o.reached->seconds) + " s"
                              : std::string("not reached"))
                << "\n";
    }
    outcomes.push_back(std::move(o));
  }
  return outcomes;
}

int report(const std::vector<outcome>& outcomes, const settings& s,
           const experiment::common_flags& flags, int workers) {
  auto columns = experiment::trace_columns();
  loco::observe::csv_writer trace(flags.file("trace.csv"), columns);
  loco::observe::csv_writer summary(
      flags.file("summary.csv"),
      {"method", "model", "workers", "target_accuracy", "seconds_to_target", "rounds_to_target",
       "bytes_to_target", "final_accuracy", "final_loss", "train_seconds", "total_bytes"});
  loco::observe::table t{"method",    "s to target", "rounds", "MB to target",
                         "final acc", "final loss",  "train s"};
  for (const auto& o : outcomes) {
    for (const auto& p : o.points)
      trace.row(o.method, p.round, p.step, p.seconds, p.bytes, p.loss, p.accuracy);
    const auto& last = o.points.back();
    const auto r = o.reached;
    summary.row(o.method, s.model, workers, s.target_accuracy,
                r ? std::to_string(r->seconds) : std::string(),
                r ? std::to_string(r->round) : std::string(),
                r ? std::to_string(r->bytes) : std::string(), last.accuracy, last.loss,
                o.train_seconds, last.bytes);
    std::ostringstream mb;
    mb.precision(4);
    if (r) mb << static_cast<double>(r->bytes) / 1e6;
    t.add_row(o.method, r ? std::to_string(r->seconds) : std::string("-"),
              r ? std::to_string(r->round) : std::string("-"), r ? mb.str() : std::string("-"),
              last.accuracy, last.loss, o.train_seconds);
  }
  std::cout << "Fashion-MNIST " << s.model << ", " << workers << " ranks over comm::tcp, target "
            << "test accuracy " << s.target_accuracy << " (wall seconds since a common start)\n";
  t.print(std::cout);
  const outcome *mb = nullptr, *lo = nullptr;
  for (const auto& o : outcomes) (o.method == "minibatch" ? mb : lo) = &o;
  if (mb && lo && mb->reached && lo->reached && lo->reached->seconds > 0) {
    std::cout << "mini-batch time / LOSCAR time to the target: "
              << mb->reached->seconds / lo->reached->seconds << "\n";
  }
  return 0;
}

unsigned short free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

template <class Model>
int run(const settings& s, const experiment::common_flags& flags) {
  if (std::getenv("LOCO_RANK") != nullptr) {
    loco::comm::tcp comm(loco::comm::tcp_options::from_env());
    const auto d = load(comm.size(), flags.seed, flags.quick);
    const auto outcomes = train<Model>(comm, s, d, flags.seed);
    if (comm.rank() == 0) return report(outcomes, s, flags, comm.size());
    return 0;
  }
  // A smoke run: the ranks as threads over loopback.
  const auto d = load(s.workers, flags.seed, flags.quick);
  const unsigned short port = free_port();
  std::vector<outcome> outcomes;
  std::exception_ptr failure;
  std::mutex m;
  std::vector<std::thread> threads;
  for (int r = 0; r < s.workers; ++r) {
    threads.emplace_back([&, r] {
      try {
        loco::comm::tcp_options o;
        o.rank = r;
        o.world_size = s.workers;
        o.coordinator = "127.0.0.1:" + std::to_string(port);
        o.token = "loscar-tcp-smoke";
        loco::comm::tcp comm(o);
        auto mine = train<Model>(comm, s, d, flags.seed);
        if (r == 0) outcomes = std::move(mine);
      } catch (...) {
        std::lock_guard lock(m);
        if (!failure) failure = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  return report(outcomes, s, flags, s.workers);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"LOSCAR-SGD vs mini-batch SGD over comm::tcp: wall time to a test accuracy"};
  experiment::common_flags flags;
  flags.add_to(app);
  settings s;
  app.add_option("--model", s.model, "softmax or mlp")
      ->check(CLI::IsMember({"softmax", "mlp"}))
      ->capture_default_str();
  app.add_option("--methods", s.methods, "minibatch, loscar")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--workers", s.workers, "ranks as threads when LOCO_RANK is not set")
      ->capture_default_str();
  app.add_option("--minibatch-steps", s.minibatch_steps, "mini-batch SGD steps")
      ->capture_default_str();
  app.add_option("--loscar-rounds", s.loscar_rounds, "LOSCAR rounds")->capture_default_str();
  app.add_option("--local-steps", s.local_steps, "H: LOSCAR's local steps per round")
      ->capture_default_str();
  app.add_option("--fraction", s.fraction, "K/d")->capture_default_str();
  app.add_option("--max-overlap", s.max_overlap, "cap on overlap steps per round")
      ->capture_default_str();
  app.add_option("--batch", s.batch, "mini-batch size per worker")->capture_default_str();
  app.add_option("--lr", s.lr, "step size (both methods)")->capture_default_str();
  app.add_option("--evaluations", s.evaluations, "model copies kept per run")
      ->capture_default_str();
  app.add_option("--target-accuracy", s.target_accuracy, "test accuracy to reach")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (flags.quick) {
    s.minibatch_steps = 60;
    s.loscar_rounds = 10;
    s.evaluations = 5;
    s.target_accuracy = 0.5;
  }
  for (const auto& m : s.methods) {
    if (m != "minibatch" && m != "loscar") {
      std::cerr << "loscar_tcp: unknown method '" << m << "' (minibatch, loscar)\n";
      return 2;
    }
  }
  try {
    if (s.model == "mlp") return run<loco::problems::mlp<float>>(s, flags);
    return run<loco::problems::softmax_regression<float>>(s, flags);
  } catch (const std::exception& e) {
    std::cerr << "loscar_tcp: " << e.what() << "\n";
    return 1;
  }
}
