// bench_sim: how fast comm::simulated runs a driver-shaped workload.
//
// BM_async_quadratic/<workers>: the workload of async_workload.hpp until
// about 100k simulator events (sends, receives, compute charges). Counter
// events_per_second: events of the simulation per second of real time, fiber
// set-up included. sim_scale runs it from 10 to 100,000 workers.
// BM_handoff: two threads passing a token through binary semaphores, the
// mechanism the scheduler used per switch before ranks were fibers.
// BM_fiber_switch: two fibers passing control, the mechanism now.
#include <benchmark/benchmark.h>

#include "async_workload.hpp"

#include <loco/sim/detail/fiber.hpp>
#include <semaphore>
#include <thread>
#include <vector>

namespace {

using loco_bench::run_async;

void BM_async_quadratic(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  // Each applied gradient is about 5 events (2 sends, 2 receives, 1 compute).
  const std::size_t gradients = 20000;
  std::uint64_t events = 0;
  double virtual_seconds = 0;
  for (auto _ : state) {
    const auto rep = run_async(workers, gradients);
    events += rep.events;
    virtual_seconds = rep.end_time();
  }
  state.counters["events"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kAvgIterations);
  state.counters["events_per_second"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["virtual_seconds"] = virtual_seconds;
}
BENCHMARK(BM_async_quadratic)->Arg(10)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_handoff(benchmark::State& state) {
  const std::int64_t rounds = 50000;
  for (auto _ : state) {
    std::binary_semaphore a{0}, b{0};
    std::thread peer([&] {
      for (std::int64_t i = 0; i < rounds; ++i) {
        a.acquire();
        b.release();
      }
    });
    for (std::int64_t i = 0; i < rounds; ++i) {
      a.release();
      b.acquire();
    }
    peer.join();
  }
  state.counters["handoffs_per_second"] = benchmark::Counter(
      static_cast<double>(2 * rounds * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_handoff)->Unit(benchmark::kMillisecond)->UseRealTime();

// Two fibers switching back and forth `rounds` times, then back to the host.
struct ping_pong {
  std::int64_t rounds;
  loco::sim::detail::fibers* f = nullptr;
  static void body(void* user, int rank) {
    auto& p = *static_cast<ping_pong*>(user);
    for (std::int64_t i = 0; i < p.rounds; ++i) p.f->switch_to(rank, 1 - rank);
    p.f->finish(rank, rank == 0 ? 1 : -1);
  }
};

void BM_fiber_switch(benchmark::State& state) {
  const std::int64_t rounds = 500000;
  for (auto _ : state) {
    ping_pong p{rounds};
    loco::sim::detail::fibers f(2, 64 * 1024, &ping_pong::body, &p);
    p.f = &f;
    f.run(0);
  }
  state.counters["switches_per_second"] = benchmark::Counter(
      static_cast<double>(2 * rounds * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_fiber_switch)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
