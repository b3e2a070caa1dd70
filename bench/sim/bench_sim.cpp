// bench_sim: how fast comm::simulated runs a driver-shaped workload.
//
// BM_async_quadratic/<workers>: asynchronous SGD on a diagonal quadratic
// (d = 100, float), rank 0 the server applying gradients as they arrive,
// every worker's gradient charged through sim::timed with exponential compute
// times (tau_i from 1 to 3 s); runs until about 100k simulator events
// (sends, receives, compute charges). Counter events_per_second: events of the
// simulation per second of real time, thread start-up included.
// BM_handoff: two threads passing a token through binary semaphores, the
// mechanism the scheduler uses per switch: the ceiling for a simulator whose
// every event switches threads.
#include <benchmark/benchmark.h>

#include <cstring>
#include <loco/comm/simulated.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/sim/timed.hpp>
#include <semaphore>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t dim = 100;
constexpr int model_tag = 1, gradient_tag = 2;

loco::problems::quadratic<float> make_problem(int rank) {
  loco::tensor::vector<float> a = xt::ones<float>({dim});
  loco::tensor::vector<float> b = xt::zeros<float>({dim});
  for (std::size_t j = 0; j < dim; ++j) {
    a(j) = 1.0f + static_cast<float>(j % 7) * 0.25f;
    b(j) = static_cast<float>((static_cast<std::size_t>(rank) * 13 + j) % 17) * 0.1f;
  }
  return loco::problems::quadratic<float>::diagonal(a, b);
}

std::span<const std::byte> as_bytes(const std::vector<float>& v) {
  return std::as_bytes(std::span<const float>(v));
}

// One asynchronous run; returns the number of simulator events.
loco::sim::report run_async(int workers, std::size_t gradients) {
  std::vector<double> tau(static_cast<std::size_t>(workers) + 1, 0.0);
  for (int w = 1; w <= workers; ++w) {
    tau[static_cast<std::size_t>(w)] = 1.0 + 2.0 * static_cast<double>(w) / workers;
  }
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::exponential(tau);
  opt.link = loco::sim::link_model(1e-3, 1e8);
  opt.seed = 1;
  return loco::comm::run_simulated(
      workers + 1,
      [&](loco::comm::simulated& c) {
        std::vector<float> x(dim, 0.0f), g(dim);
        loco::wire::buffer in;
        if (c.rank() == 0) {
          for (int w = 1; w <= workers; ++w) c.send(w, model_tag, as_bytes(x));
          for (std::size_t k = 0; k < gradients; ++k) {
            const int from = c.recv(loco::comm::any_source, gradient_tag, in);
            std::memcpy(g.data(), in.data(), dim * sizeof(float));
            for (std::size_t j = 0; j < dim; ++j) x[j] -= 0.01f * g[j];
            c.send(from, model_tag, as_bytes(x));
          }
          const std::byte stop[1] = {};
          for (int w = 1; w <= workers; ++w) c.send(w, model_tag, stop);
          return;
        }
        loco::sim::timed f(make_problem(c.rank()), c.clock());
        loco::random::stream rng(7, static_cast<std::uint64_t>(c.rank()));
        for (;;) {
          c.recv(0, model_tag, in);
          if (in.size() != dim * sizeof(float)) return;
          std::memcpy(x.data(), in.data(), dim * sizeof(float));
          f.gradient(std::span<const float>(x), std::span<float>(g), rng);
          c.send(0, gradient_tag, as_bytes(g));
        }
      },
      opt);
}

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

}  // namespace
