// Per-call allreduce latency between 2 ranks of one process (bench/comm/
// pairs.hpp): every allreduce is timed on its own, so the median and the
// 99th percentile come from the same run, and the process's CPU time per
// allreduce (both ranks and every helper thread) is reported beside them.
// compare_allreduce.py runs it with MPI's baseline and prints the ratios.
//
//   allreduce_latency [seconds per size (0.5)] [in_process|tcp|tcp-nopoll ...]
//
// tcp busy-polls as its options' default does; tcp-nopoll (busy_poll = 0)
// parks every waiting caller at once, so each message wakes a thread.
//
// Prints one line per communicator and size:
//   <comm> <bytes> <median s> <p99 s> <cpu s per allreduce> <allreduces>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <span>
#include <string>
#include <vector>

#include "pairs.hpp"

namespace {

// The sizes of compare_allreduce.py and mpi_allreduce_baseline: 4 B to 40 MB.
constexpr long sizes[] = {4, 8, 64, 512, 4096, 40960, 409600, 4096000, 40960000};

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

template <class Pair>
void measure(const char* name, double seconds) {
  Pair p;
  using clock = std::chrono::steady_clock;
  for (long bytes : sizes) {
    std::vector<float> v(static_cast<std::size_t>(bytes) / sizeof(float), 1.0f);
    const auto floats = static_cast<std::int64_t>(v.size());
    // Warm up (first touch, connections), and estimate the time per call.
    constexpr std::int64_t warm = 5;
    bench_pairs::command(*p.rank0, floats, warm);
    const auto w0 = clock::now();
    for (std::int64_t i = 0; i < warm; ++i) {
      p.rank0->allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
    }
    const double estimate = std::chrono::duration<double>(clock::now() - w0).count() / warm;
    const auto n =
        static_cast<std::int64_t>(std::clamp(seconds / std::max(estimate, 1e-9), 100.0, 1000000.0));
    std::vector<double> times(static_cast<std::size_t>(n));
    bench_pairs::command(*p.rank0, floats, n);
    const double cpu0 = process_cpu_seconds();
    for (auto& t : times) {
      const auto t0 = clock::now();
      p.rank0->allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
      t = std::chrono::duration<double>(clock::now() - t0).count();
    }
    const double cpu = (process_cpu_seconds() - cpu0) / static_cast<double>(n);
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    const double p99 = times[std::min(times.size() - 1, times.size() * 99 / 100)];
    std::printf("%s %ld %.9g %.9g %.9g %lld\n", name, bytes, median, p99, cpu,
                static_cast<long long>(n));
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  std::vector<std::string> comms;
  for (int i = 2; i < argc; ++i) comms.emplace_back(argv[i]);
  if (comms.empty()) comms = {"in_process", "tcp", "tcp-nopoll"};
  for (const auto& c : comms) {
    if (c == "in_process") {
      measure<bench_pairs::in_process_pair>("in_process", seconds);
    } else if (c == "tcp") {
      measure<bench_pairs::tcp_pair<false>>("tcp", seconds);
    } else if (c == "tcp-nopoll") {
      measure<bench_pairs::tcp_pair<false, false>>("tcp-nopoll", seconds);
    } else {
      std::fprintf(stderr,
                   "allreduce_latency: unknown communicator '%s' (in_process, tcp, tcp-nopoll)\n",
                   c.c_str());
      return 2;
    }
  }
  return 0;
}
