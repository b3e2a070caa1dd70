// Training that survives faults, measured (docs/fault_tolerance.md): local
// SGD over comm::elastic<comm::tcp> on Fashion-MNIST softmax regression,
// one rank per process, with faults injected on a schedule. run.py starts
// the ranks, restarts the killed ones it is told to (LOCO_REJOIN=1), and
// compares each faulted run with a fault-free run of the same seed: test
// accuracy and throughput (rounds per second of wall time).
//
//   one rank, from LOCO_RANK / LOCO_WORLD_SIZE / LOCO_COORDINATOR / LOCO_TOKEN:
//     chaos --rounds 300 --faults kill:40:3,stop:80:5,restart:120:2
//   a fault "kind:R:q" hits rank q at the end of round R: kill (SIGKILL),
//   stop (SIGSTOP for --stop-seconds, then SIGCONT), restart (SIGKILL; the
//   launcher starts a replacement). Rank 0 prints one line
//     RESULT seconds=S rounds=R accuracy=A lost=L joined=J
//     (and contributions=C, the worker-rounds the leader combined)
//   --quick: 3 ranks as threads over 127.0.0.1, no faults (a smoke run).
#include <loco/comm/tcp.hpp>  // brings Boost.Asio

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/elastic.hpp>
#include <loco/compress/identity.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/merge/average.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <loco/stepsize/constant.hpp>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "experiment.hpp"

namespace {

using dataset = loco::data::dataset<float>;
using world = loco::comm::elastic<loco::comm::tcp>;
using clock_type = std::chrono::steady_clock;

struct fault {
  std::string kind;
  std::uint64_t round = 0;
  int rank = -1;
};

std::vector<fault> parse_faults(const std::string& spec, int world_size) {
  std::vector<fault> out;
  std::stringstream all(spec);
  std::string item;
  while (std::getline(all, item, ',')) {
    if (item.empty()) continue;
    std::stringstream parts(item);
    fault f;
    std::string round, rank;
    if (!std::getline(parts, f.kind, ':') || !std::getline(parts, round, ':') ||
        !std::getline(parts, rank)) {
      throw loco::config_error("chaos: fault '" + item + "' is not kind:round:rank");
    }
    if (f.kind != "kill" && f.kind != "stop" && f.kind != "restart") {
      throw loco::config_error("chaos: fault kind '" + f.kind + "' is not kill, stop or restart");
    }
    f.round = std::stoull(round);
    f.rank = std::stoi(rank);
    if (f.rank <= 0 || f.rank >= world_size) {
      throw loco::config_error("chaos: fault '" + item +
                               "' must hit a rank in [1, world size): rank 0 leads");
    }
    out.push_back(f);
  }
  return out;
}

// Stops this process for `seconds`: a child wakes it.
void stop_for(unsigned seconds) {
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child == 0) {
    ::sleep(seconds);
    ::kill(parent, SIGCONT);
    ::_exit(0);
  }
  ::raise(SIGSTOP);
  ::waitpid(child, nullptr, 0);
}

struct injector {
  const std::vector<fault>* faults;
  int me;
  unsigned stop_seconds;
  void on_round_end(const loco::algorithm::round_info<float>& info) const {
    for (const auto& f : *faults) {
      if (f.rank != me || f.round != info.round) continue;
      if (f.kind == "stop") {
        stop_for(stop_seconds);
      } else {
        std::cout << std::flush;
        ::raise(SIGKILL);
      }
    }
  }
};

// A local step that also waits step_ms, as an accelerator's step would:
// on this 2-core machine 8 CPU-bound ranks would otherwise share the CPU,
// and a lost rank would make the others faster.
template <class Objective>
struct paced {
  using value_type = typename Objective::value_type;
  Objective inner;
  std::chrono::microseconds pause;
  std::size_t dimension() const { return inner.dimension(); }
  double loss(std::span<const value_type> x) const { return inner.loss(x); }
  double gradient(std::span<const value_type> x, std::span<value_type> g,
                  loco::random::stream& rng) {
    std::this_thread::sleep_for(pause);
    return inner.gradient(x, g, rng);
  }
};

struct settings {
  std::size_t rounds = 300;
  std::size_t local_steps = 10;
  double step_ms = 5.0;
  std::size_t batch = 32;
  double lr = 0.05;
  std::string faults;
  unsigned stop_seconds = 3;
};

struct data {
  std::shared_ptr<const dataset> train, test;
};

// Loaded before connecting: a replacement is admitted once it asks, and it
// asks when it is ready to train.
data load() {
  auto fm = loco::data::fashion_mnist<float>::load();
  return {std::make_shared<const dataset>(std::move(fm.train)),
          std::make_shared<const dataset>(std::move(fm.test))};
}

int run_rank(loco::comm::tcp& comm, const data& d, const settings& s, std::uint64_t seed,
             bool quick) {
  const int me = comm.rank(), n = comm.size();
  const auto faults = parse_faults(s.faults, n);
  const auto shards = loco::data::partition_iid(d.train->rows(), static_cast<std::size_t>(n), seed);
  loco::problems::softmax_regression<float> objective(d.train, shards[static_cast<std::size_t>(me)],
                                                      {.batch_size = s.batch, .l2 = 1e-5});
  const auto init = objective.initial_point(seed);
  const std::vector<float> x0(init.begin(), init.end());
  paced<loco::problems::softmax_regression<float>> step{
      objective, std::chrono::microseconds(static_cast<long>(s.step_ms * 1000.0))};

  world elastic(comm);
  loco::algorithm::local_sgd_options opt;
  opt.seed = seed;
  opt.schedule = loco::algorithm::schedule::rounds(quick ? 20 : s.rounds, s.local_steps);
  opt.record_rounds = false;
  loco::local_sgd<loco::compress::identity, world, loco::merge::average, loco::stepsize::constant>
      driver({}, {}, loco::stepsize::constant(s.lr), opt);
  if (!elastic.joining()) elastic.barrier();  // a common start
  const auto start = clock_type::now();
  const injector inject{&faults, me, s.stop_seconds};
  const auto result = driver.run(elastic, step, std::span<const float>(x0), inject);
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  if (me != 0) return 0;
  int lost = 0, joined = 0;
  for (const auto& c : elastic.changes()) (c.joined ? joined : lost) += 1;
  const loco::problems::softmax_regression<float> tester(d.test, {.batch_size = s.batch});
  std::cout << "RESULT seconds=" << seconds << " rounds=" << result.stats.rounds
            << " accuracy=" << tester.accuracy(std::span<const float>(result.average))
            << " lost=" << lost << " joined=" << joined
            << " contributions=" << elastic.contributions() << std::endl;
  for (const auto& c : elastic.changes()) {
    std::cout << "CHANGE epoch=" << c.epoch << " collective=" << c.collective << " rank=" << c.rank
              << (c.joined ? " joined" : " lost") << " waited=" << c.waited << " why=" << c.why
              << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"local SGD over comm::elastic<tcp> on Fashion-MNIST, with injected faults"};
  experiment::common_flags common;
  common.add_to(app);
  settings s;
  app.add_option("--rounds", s.rounds, "rounds of local SGD")->capture_default_str();
  app.add_option("--local-steps", s.local_steps, "local steps per round")->capture_default_str();
  app.add_option("--batch", s.batch, "mini-batch size")->capture_default_str();
  app.add_option("--step-ms", s.step_ms, "milliseconds each local step also waits")
      ->capture_default_str();
  app.add_option("--lr", s.lr, "step size")->capture_default_str();
  app.add_option("--faults", s.faults, "kind:round:rank,... (kill, stop, restart)");
  app.add_option("--stop-seconds", s.stop_seconds, "how long a stopped rank stays stopped")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const auto d = load();
    if (std::getenv("LOCO_RANK") != nullptr) {
      loco::comm::tcp comm(loco::comm::tcp_options::from_env());
      return run_rank(comm, d, s, common.seed, common.quick);
    }
    // Without LOCO_RANK: ranks as threads over loopback, no faults (smoke run).
    const int n = 3;
    const unsigned short port = [] {
      boost::asio::io_context io;
      boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
      return a.local_endpoint().port();
    }();
    std::vector<std::thread> ranks;
    std::vector<int> codes(n, 1);
    for (int r = 0; r < n; ++r) {
      ranks.emplace_back([&, r] {
        try {
          loco::comm::tcp_options o;
          o.rank = r;
          o.world_size = n;
          o.coordinator = "127.0.0.1:" + std::to_string(port);
          o.token = "chaos-smoke";
          loco::comm::tcp comm(o);
          codes[static_cast<std::size_t>(r)] = run_rank(comm, d, s, common.seed, true);
        } catch (const std::exception& e) {
          std::cerr << "rank " << r << ": " << e.what() << "\n";
        }
      });
    }
    for (auto& t : ranks) t.join();
    for (int c : codes) {
      if (c != 0) return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
