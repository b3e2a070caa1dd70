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
// Survivors exit 3 on peer_lost naming the victim, 4 naming another rank,
// 1 on any other error, 0 if nothing went wrong.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <loco/algorithm/async_sgd.hpp>
#include <loco/comm/tcp.hpp>
#include <loco/compress/identity.hpp>
#include <loco/stepsize/constant.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../comm/conformance.hpp"

namespace {

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
  if (mode == "async") {
    // f_r(x) = 0.5 ||x - r||^2 on each worker rank r.
    struct pull {
      using value_type = float;
      int me, victim, at;
      int calls = 0;
      std::size_t dimension() const { return 8; }
      double loss(std::span<const float>) const { return 0.0; }
      double gradient(std::span<const float> x, std::span<float> g, loco::random::stream&) {
        if (me == victim && ++calls == at) ::raise(SIGKILL);
        for (std::size_t j = 0; j < x.size(); ++j) g[j] = x[j] - static_cast<float>(me);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        return 0.0;
      }
    };
    loco::async_sgd<loco::compress::identity, loco::comm::tcp, loco::stepsize::constant> algo(
        loco::compress::identity{}, loco::stepsize::constant(0.05),
        {.updates = 300, .on_worker_failure = loco::algorithm::worker_failure::tolerate});
    pull f{me, victim, at};
    const std::vector<float> x0(8, 0.0f);
    const auto r = algo.run(comm, f, std::span<const float>(x0));
    for (float v : r.model) {
      if (!std::isfinite(v)) return 5;
    }
    if (me == 0) {
      const auto& lost = r.stats.lost_workers;
      std::printf("rank 0: %llu updates, lost workers:",
                  static_cast<unsigned long long>(r.stats.updates));
      for (int q : lost) std::printf(" %d", q);
      std::printf("\n");
      if (lost != std::vector<int>{victim} || r.stats.updates != 300) return 6;
    }
    return 0;
  }
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
