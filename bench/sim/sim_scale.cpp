// sim_scale: comm::simulated from 10 to 100,000 workers, once on an idle
// machine and once with another thread spinning on the other core, in one
// run (docs/simulation.md#speed).
//
// Each row runs async_workload.hpp's asynchronous SGD for about --events
// simulator events and prints the events per second, their ratio to the
// first row of the same pass, the ratio busy / idle, and the memory per
// rank: the growth of the resident set from before the run to the moment
// every rank is alive with its model, divided by the ranks. --bare runs the
// same exchange with 8-byte messages and no problem: the simulator alone.
//
//   sim_scale [--events 10000000] [--workers 10,1000,10000,100000] [--idle-only] [--bare]
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "async_workload.hpp"

namespace {

double resident_bytes() {
  std::ifstream in("/proc/self/statm");
  double size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

struct row {
  int workers;
  std::uint64_t events;
  double seconds, bytes_per_rank;
  double rate() const { return static_cast<double>(events) / seconds; }
};

row measure(int workers, std::uint64_t events, bool bare) {
  // About 5 events per applied gradient, and 3 per worker to start and stop.
  const std::uint64_t start_stop = 3 * static_cast<std::uint64_t>(workers);
  const std::size_t gradients = events > start_stop ? (events - start_stop) / 5 : 1;
  const double before = resident_bytes();
  double peak = before;
  const auto t0 = std::chrono::steady_clock::now();
  const auto at_peak = [&] { peak = resident_bytes(); };
  const auto rep = bare ? loco_bench::run_bare(workers, gradients, at_peak)
                        : loco_bench::run_async(workers, gradients, at_peak);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {workers, rep.events, s, (peak - before) / (workers + 1)};
}

std::vector<int> parse_list(const char* text) {
  std::vector<int> out;
  for (const char* p = text; *p;) {
    char* end = nullptr;
    const long v = std::strtol(p, &end, 10);
    if (end == p || v < 1 || v > 10'000'000) {
      std::fprintf(stderr, "sim_scale: bad --workers list '%s'\n", text);
      std::exit(2);
    }
    out.push_back(static_cast<int>(v));
    p = *end == ',' ? end + 1 : end;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t events = 10'000'000;
  std::vector<int> workers{10, 1000, 10000, 100000};
  bool busy_pass = true, bare = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--events" && i + 1 < argc) {
      events = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--workers" && i + 1 < argc) {
      workers = parse_list(argv[++i]);
    } else if (a == "--idle-only") {
      busy_pass = false;
    } else if (a == "--bare") {
      bare = true;
    } else {
      std::fprintf(
          stderr, "usage: sim_scale [--events N] [--workers 10,1000,...] [--idle-only] [--bare]\n");
      return 2;
    }
  }
  if (events < 1000) {
    std::fprintf(stderr, "sim_scale: --events %llu: at least 1000\n",
                 static_cast<unsigned long long>(events));
    return 2;
  }
  std::printf(
      "comm::simulated, %s, about %llu events per row\n",
      bare ? "the bare exchange (8-byte messages, no problem)" : "asynchronous SGD (d = 100)",
      static_cast<unsigned long long>(events));
  std::vector<row> idle;
  for (const bool busy : {false, true}) {
    if (busy && !busy_pass) break;
    std::atomic<bool> stop{false};
    std::thread spinner;
    if (busy) {
      spinner = std::thread([&] {
        volatile double x = 1.0;
        while (!stop.load(std::memory_order_relaxed)) x = x * 1.0000001 + 1e-9;
      });
    }
    std::printf("\n%s\n%9s %10s %8s %10s %9s %11s%s\n",
                busy ? "other core busy (a spinning thread)" : "idle", "workers", "events",
                "wall s", "events/s", "vs first", "KiB/rank", busy ? "  busy/idle" : "");
    std::vector<row> rows;
    for (const int w : workers) {
      const row r = measure(w, events, bare);
      rows.push_back(r);
      std::printf("%9d %10llu %8.2f %10.0f %8.2fx %11.1f", r.workers,
                  static_cast<unsigned long long>(r.events), r.seconds, r.rate(),
                  r.rate() / rows.front().rate(), r.bytes_per_rank / 1024.0);
      if (busy) std::printf("  %9.2fx", r.rate() / idle[rows.size() - 1].rate());
      std::printf("\n");
      std::fflush(stdout);
    }
    if (!busy) idle = rows;
    stop = true;
    if (spinner.joinable()) spinner.join();
  }
  return 0;
}
