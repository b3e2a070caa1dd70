// MPI_Allreduce (MPI_FLOAT, MPI_SUM, in place) between 2 ranks, the baseline
// of compare_allreduce.py, measured as allreduce_latency measures loco: every
// call timed on its own, median and 99th percentile, and the CPU time per
// allreduce summed over both ranks. Rank 0 prints one line per size:
//   mpi <bytes> <median s> <p99 s> <cpu s per allreduce> <allreduces>
// Run: mpirun -np 2 [--mca btl self,vader | --mca btl self,tcp] mpi_allreduce_baseline
// [seconds per size (0.5)]
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace {
double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  for (long bytes : {4L, 8L, 64L, 512L, 4096L, 40960L, 409600L, 4096000L, 40960000L}) {
    std::vector<float> v(static_cast<std::size_t>(bytes) / sizeof(float), 1.0f);
    const int count = static_cast<int>(v.size());
    // Warm up and estimate; rank 0 decides the count for both.
    constexpr int warm = 5;
    MPI_Barrier(MPI_COMM_WORLD);
    const double w0 = MPI_Wtime();
    for (int i = 0; i < warm; ++i) {
      MPI_Allreduce(MPI_IN_PLACE, v.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    long n = static_cast<long>(
        std::clamp(seconds / std::max((MPI_Wtime() - w0) / warm, 1e-9), 100.0, 1000000.0));
    MPI_Bcast(&n, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    std::vector<double> times(static_cast<std::size_t>(n));
    const double cpu0 = process_cpu_seconds();
    for (auto& t : times) {
      const double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, v.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      t = MPI_Wtime() - t0;
    }
    double cpu = process_cpu_seconds() - cpu0, total_cpu = 0;
    MPI_Reduce(&cpu, &total_cpu, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    std::sort(times.begin(), times.end());
    if (rank == 0) {
      std::printf("mpi %ld %.9g %.9g %.9g %ld\n", bytes, times[times.size() / 2],
                  times[std::min(times.size() - 1, times.size() * 99 / 100)],
                  total_cpu / static_cast<double>(n), n);
      std::fflush(stdout);
    }
  }
  MPI_Finalize();
  return 0;
}
