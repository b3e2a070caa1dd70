// A rank of a multi-process comm::tcp test, configured from the environment
// (LOCO_RANK, LOCO_WORLD_SIZE, LOCO_COORDINATOR, LOCO_TOKEN) as
// tools/loco-launch sets it.
//
//   tcp_worker conformance            the conformance suite; exit 0
//   tcp_worker kill <victim> <iter>   victim SIGKILLs itself inside an allreduce
//   tcp_worker stop <victim> <iter>   victim SIGSTOPs itself inside an allreduce
//   tcp_worker fail <victim>          victim throws after a barrier
//   tcp_worker async <victim> <step>  async_sgd (rank 0 the server) tolerating lost
//                                     workers; victim SIGKILLs itself at its <step>-th
//                                     gradient. Exit 0 when the run finishes with a
//                                     finite model (the server: with the victim lost)
//   tcp_worker shaped <floats> <secs> allreduce of <floats> values (checked); fails if
//                                     faster than <secs> (proves the links are shaped)
//   tcp_worker async <constant|rescaled> <updates> <base_us>
//                                     async_sgd on a quadratic, worker r r-times slower;
//                                     the server exits 5 unless the delay identity holds
//                                     and x converged (tests/support/async_runs.hpp)
//   tcp_worker async-kill <fatal|tolerate> <victim> <step> <updates>
//                                     async_sgd; the victim SIGKILLs itself at its
//                                     step-th gradient. Tolerate: the server exits 0
//                                     if it finished with the others, recorded the
//                                     victim and x is finite (5 otherwise); workers 0
//                                     with a finite final model.
//   tcp_worker elastic <kill|stop|restart|none> <victim> <round> <rounds> [cd_adam]
//                                     local_sgd (or CD-Adam) over comm::elastic<tcp>
//                                     on quadratics
//                                     (10 ms per step, 5 steps a round); the victim
//                                     SIGKILLs itself at the end of <round>, or stops
//                                     itself for 3 s (a child sends SIGCONT); restart:
//                                     killed, the test starts a replacement with
//                                     LOCO_REJOIN=1 that must finish too. Survivors
//                                     exit 0 when they finished every round, lost just
//                                     the victim and hold bit-identical models; 5 if
//                                     not. The stopped victim, resumed, finds itself
//                                     left out and exits 6.
// Survivors exit 3 on peer_lost naming the victim, 4 naming another rank,
// 1 on any other error, 0 if nothing went wrong.
#include <signal.h>
#include <unistd.h>

#include <sys/wait.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include <loco/algorithm/async_sgd.hpp>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/aliases.hpp>
#include <loco/comm/elastic.hpp>
#include <loco/comm/tcp.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/merge/average.hpp>
#include <loco/stepsize/constant.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../comm/conformance.hpp"
#include "../support/async_runs.hpp"
#include "../support/test_policies.hpp"

namespace {

// The model stays finite (tolerate mode must not let a lost worker corrupt it).
bool finite(const std::vector<double>& x) {
  for (double v : x) {
    if (!std::isfinite(v)) return false;
  }
  return !x.empty();
}

int run_async(loco::comm::tcp& comm, const std::string& mode, int argc, char** argv) {
  if (argc < (mode == "async" ? 5 : 6))
    throw std::runtime_error("tcp_worker " + mode + ": too few arguments");
  const int me = comm.rank();
  const std::vector<double> x0(16, 0.0);
  if (mode == "async") {
    const std::string step = argv[2];
    const auto updates = static_cast<std::uint64_t>(std::atol(argv[3]));
    const auto base = std::chrono::microseconds(std::atol(argv[4]));
    auto f = async_runs::objective_for(me, base);
    loco::algorithm::async_sgd_options opt;
    opt.updates = updates;
    loco::algorithm::async_sgd_result<double> r;
    if (step == "rescaled") {
      loco::rescaled_asgd<loco::comm::tcp> algo({}, loco::stepsize::rescaled(0.05), opt);
      r = algo.run(comm, f, std::span<const double>(x0));
    } else {
      loco::asgd<loco::comm::tcp> algo({}, loco::stepsize::constant(0.05), opt);
      r = algo.run(comm, f, std::span<const double>(x0));
    }
    if (me != 0) return finite(r.model) ? 0 : 5;
    const auto k = static_cast<std::uint64_t>(comm.size() - 1);
    const auto why = async_runs::check_server(r, updates, k, 0.02);
    std::printf("server (%s): %s%s%s\n", step.c_str(), async_runs::summary(r).c_str(),
                why.empty() ? "" : "; FAILED: ", why.c_str());
    return why.empty() ? 0 : 5;
  }
  // async-kill
  const bool tolerate = std::string(argv[2]) == "tolerate";
  const int victim = std::atoi(argv[3]);
  const int at = std::atoi(argv[4]);
  const auto updates = static_cast<std::uint64_t>(std::atol(argv[5]));
  struct dying {
    using value_type = double;
    async_runs::slow_quadratic f;
    int countdown;  // gradients until SIGKILL; < 0: never
    std::size_t dimension() const { return f.dimension(); }
    double loss(std::span<const double> x) const { return f.loss(x); }
    double gradient(std::span<const double> x, std::span<double> g, loco::random::stream& s) {
      if (countdown >= 0 && countdown-- == 0) ::raise(SIGKILL);
      return f.gradient(x, g, s);
    }
  } f{async_runs::objective_for(me, std::chrono::microseconds(100)), me == victim ? at : -1};
  loco::algorithm::async_sgd_options opt;
  opt.updates = updates;
  opt.on_worker_failure =
      tolerate ? loco::algorithm::worker_failure::tolerate : loco::algorithm::worker_failure::fatal;
  loco::asgd<loco::comm::tcp> algo({}, loco::stepsize::constant(0.05), opt);
  try {
    const auto r = algo.run(comm, f, std::span<const double>(x0));
    if (me != 0) return finite(r.model) ? 0 : 5;
    const auto& s = r.stats;
    const bool ok = s.updates == updates && s.lost_workers == std::vector<int>{victim} &&
                    s.lost_at_update.size() == 1 && finite(r.model) && finite(r.tail_average);
    std::printf(
        "server (%s, victim %d lost at update %llu): %s\n", argv[2], victim,
        s.lost_at_update.empty() ? 0ULL : static_cast<unsigned long long>(s.lost_at_update[0]),
        async_runs::summary(r).c_str());
    return ok ? 0 : 5;
  } catch (const loco::peer_lost& e) {
    std::printf("rank %d (async %s, victim %d): %s\n", me, argv[2], victim, e.what());
    return e.rank() == victim ? 3 : 4;
  }
}

// Stops this process for `seconds`: a child wakes it (fork then only
// async-signal-safe calls in the child).
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

// A round-end hook of any driver: the victim kills or stops itself after
// round `at`.
struct fault_injector {
  const std::string& fault;
  bool victim;
  std::uint64_t at;
  template <class Info>
  void on_round_end(const Info& info) const {
    if (!victim || info.round != at) return;
    if (fault == "kill" || fault == "restart") ::raise(SIGKILL);
    if (fault == "stop") stop_for(3);
  }
};

int run_elastic(loco::comm::tcp& comm, int argc, char** argv) {
  if (argc < 6) throw std::runtime_error("tcp_worker elastic: too few arguments");
  const std::string fault = argv[2];
  const int victim = std::atoi(argv[3]);
  const auto at = static_cast<std::uint64_t>(std::atol(argv[4]));
  const auto rounds = static_cast<std::size_t>(std::atol(argv[5]));
  const int me = comm.rank();
  struct slow_quadratic : testing_policies::scaled_quadratic {
    double gradient(std::span<const double> x, std::span<double> g, loco::random::stream& s) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return scaled_quadratic::gradient(x, g, s);
    }
  } f{{0.5 + 0.1 * me, std::vector<double>(64, static_cast<double>(me))}};
  using world = loco::comm::elastic<loco::comm::tcp>;
  world elastic(comm);
  const fault_injector fault_at{fault, me == victim, at};
  const std::vector<double> x0(64, 0.0);
  // The driver (argument 6): local_sgd (the default) or cd_adam.
  const bool cd_adam = argc > 6 && std::string(argv[6]) == "cd_adam";
  struct {
    std::vector<double> model;
    std::size_t rounds = 0;
  } r;
  try {
    if (cd_adam) {
      loco::algorithm::compressed_amsgrad_options opt;
      opt.iterations = rounds;
      opt.keep_worker_memories = true;
      loco::compressed_amsgrad<loco::compress::top_k, world, loco::stepsize::constant> algo(
          loco::compress::top_k(0.25), loco::stepsize::constant(0.05), opt);
      auto out = algo.run(elastic, f, std::span<const double>(x0), fault_at);
      r = {std::move(out.model), out.stats.iterations};
    } else {
      loco::algorithm::local_sgd_options opt;
      opt.schedule = loco::algorithm::schedule::rounds(rounds, 5);
      loco::local_sgd<loco::compress::identity, world, loco::merge::average,
                      loco::stepsize::constant>
          algo({}, {}, loco::stepsize::constant(0.1), opt);
      auto out = algo.run(elastic, f, std::span<const double>(x0), fault_at);
      r = {std::move(out.average), out.stats.rounds};
    }
  } catch (const loco::peer_lost& e) {
    std::printf("rank %d (elastic %s, victim %d): %s\n", me, fault.c_str(), victim, e.what());
    return e.rank() == victim ? 3 : 4;
  } catch (const loco::error& e) {
    std::printf("rank %d (elastic %s, victim %d): %s\n", me, fault.c_str(), victim, e.what());
    return me == victim ? 6 : 1;
  }
  const auto& changes = elastic.changes();
  const auto change_is = [&](std::size_t k, bool joined) {
    return changes[k].rank == victim && changes[k].joined == joined;
  };
  // restart: the others lost the victim, then took its replacement in; the
  // replacement itself saw its own admission.
  const bool lost_right = fault == "none"    ? changes.empty()
                          : comm.rejoining() ? changes.size() == 1 && change_is(0, true)
                          : fault == "restart"
                              ? changes.size() == 2 && change_is(0, false) && change_is(1, true)
                              : changes.size() == 1 && change_is(0, false);
  // Bit-identical across the survivors: the spread of a hash of the bits.
  std::uint64_t h = 1469598103934665603ull;
  for (double v : r.model) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    h = (h ^ bits) * 1099511628211ull;
  }
  double spread[2] = {static_cast<double>(h >> 12), -static_cast<double>(h >> 12)};
  elastic.allreduce(std::span<double>(spread), loco::comm::reduce_op::max);
  const bool identical = spread[0] == -spread[1];
  std::string seen;
  for (const auto& c : changes) {
    seen += (c.joined ? " joined " : " lost ") + std::to_string(c.rank);
  }
  std::printf("rank %d%s (elastic %s %s, victim %d): %zu rounds, changes:%s; %s\n", me,
              comm.rejoining() ? " (replacement)" : "", cd_adam ? "cd_adam" : "local_sgd",
              fault.c_str(), victim, r.rounds, seen.c_str(),
              identical ? "models identical" : "MODELS DIFFER");
  return lost_right && identical && finite(r.model) && r.rounds == rounds ? 0 : 5;
}

int run(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "conformance";
  const int victim = argc > 2 ? std::atoi(argv[2]) : -1;
  const int at = argc > 3 ? std::atoi(argv[3]) : 0;
  loco::comm::tcp comm(loco::comm::tcp_options::from_env());
  const int me = comm.rank();
  if (mode == "conformance") {
    conformance::check_allreduce_on<float>(comm, false);
    conformance::check_allreduce_on<double>(comm, true);
    conformance::check_allgather(comm);
    conformance::check_broadcast_and_gather(comm);
    conformance::check_point_to_point(comm);
    conformance::check_overlap(comm);
    comm.barrier();
    std::printf("rank %d of %d: conformance ok\n", me, comm.size());
    return 0;
  }
  if (mode == "shaped") {
    const auto d = static_cast<std::size_t>(std::atol(argv[2]));
    const double min_seconds = std::atof(argv[3]);
    std::vector<float> v(d);
    for (std::size_t i = 0; i < d; ++i)
      v[i] = static_cast<float>((i + static_cast<std::size_t>(me)) % 5);
    comm.barrier();
    const auto start = std::chrono::steady_clock::now();
    comm.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (std::size_t i = 0; i < d; ++i) {
      float want = 0;
      for (int r = 0; r < comm.size(); ++r)
        want += static_cast<float>((i + static_cast<std::size_t>(r)) % 5);
      if (v[i] != want) throw std::runtime_error("wrong sum at " + std::to_string(i));
    }
    const double sent =
        2.0 * (comm.size() - 1) / comm.size() * static_cast<double>(d * sizeof(float));
    std::printf("rank %d: allreduce of %zu floats in %.3f s (%.1f MB/s sent per rank)\n", me, d,
                secs, sent / secs / 1e6);
    comm.barrier();
    return secs >= min_seconds ? 0 : 2;
  }
  if (mode == "async" || mode == "async-kill") return run_async(comm, mode, argc, argv);
  if (mode == "elastic") return run_elastic(comm, argc, argv);
  if (mode == "fail") {
    comm.barrier();
    if (me == victim) throw std::runtime_error("rank " + std::to_string(me) + " fails on purpose");
    comm.barrier();
    return 0;
  }
  try {
    std::vector<float> v(100000);
    for (int it = 0; it < 200; ++it) {
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 7);
      auto req = comm.iallreduce(std::span<float>(v), loco::comm::reduce_op::sum);
      if (me == victim && it == at) {
        std::this_thread::sleep_for(std::chrono::microseconds(300));  // mid-collective
        ::raise(mode == "kill" ? SIGKILL : SIGSTOP);
      }
      req.wait();
    }
  } catch (const loco::peer_lost& e) {
    std::printf("rank %d (%s victim %d): %s\n", me, mode.c_str(), victim, e.what());
    return e.rank() == victim ? 3 : 4;
  }
  std::printf("rank %d: no failure observed\n", me);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
