// Allreduce of float vectors (reduce_op::sum) between 2 ranks: rank 0 is
// the benchmark thread, rank 1 a helper thread told by a point-to-point
// command how many allreduces of what size to run. Real time throughout;
// bytes_per_second counts the vector size once per allreduce, as MPI
// benchmarks do. allreduce/tls is allreduce/tcp with TLS on both links
// (certificates made at start-up), so their ratio is TLS's cost.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <span>
#include <vector>

#include "pairs.hpp"

namespace {

using bench_pairs::command;
using bench_pairs::in_process_pair;
using bench_pairs::pair;
using bench_pairs::tcp_pair;

template <class Pair>
void bm_allreduce(benchmark::State& state) {
  auto& p = pair<Pair>();
  const auto bytes = static_cast<std::size_t>(state.range(0));
  std::vector<float> v(bytes / sizeof(float), 1.0f);
  command(*p.rank0, static_cast<std::int64_t>(v.size()),
          static_cast<std::int64_t>(state.max_iterations));
  for (auto _ : state) {
    p.rank0->allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
  }
  benchmark::DoNotOptimize(v.data());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes));
}

void sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t s : {4, 8, 4096, 40960, 409600, 4096000, 40960000}) b->Arg(s);
}

BENCHMARK_TEMPLATE(bm_allreduce, in_process_pair)
    ->Name("allreduce/in_process")
    ->Apply(sizes)
    ->UseRealTime();
BENCHMARK_TEMPLATE(bm_allreduce, tcp_pair<false>)
    ->Name("allreduce/tcp")
    ->Apply(sizes)
    ->UseRealTime();
BENCHMARK_TEMPLATE(bm_allreduce, tcp_pair<true>)
    ->Name("allreduce/tls")
    ->Apply(sizes)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
