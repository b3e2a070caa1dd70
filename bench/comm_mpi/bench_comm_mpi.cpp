// loco::comm::mpi allreduce against the raw MPI calls it wraps, and the
// overlap its progress thread buys. A plain timer loop rather than Google
// Benchmark: every rank must run the same number of collectives, so rank 0
// picks the iteration count and broadcasts it.
//
//   mpirun -np 2 ./bench_comm_mpi                       (shared memory)
//   mpirun -np 2 --mca btl tcp,self ./bench_comm_mpi    (TCP on loopback)
//
// Times are per operation, the median of 5 runs of k iterations each, on rank 0.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <loco/comm/mpi.hpp>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Median over 5 runs of the mean time of one op (seconds).
double time_op(MPI_Comm comm, const std::function<void()>& op) {
  op();
  op();
  MPI_Barrier(comm);
  auto t = clock_type::now();
  op();
  double one = seconds_since(t);
  MPI_Bcast(&one, 1, MPI_DOUBLE, 0, comm);
  const int k = static_cast<int>(std::clamp(0.2 / std::max(one, 1e-9), 3.0, 20000.0));
  std::vector<double> runs;
  for (int run = 0; run < 5; ++run) {
    MPI_Barrier(comm);
    t = clock_type::now();
    for (int i = 0; i < k; ++i) op();
    runs.push_back(seconds_since(t) / k);
  }
  std::sort(runs.begin(), runs.end());
  double median = runs[2];
  MPI_Bcast(&median, 1, MPI_DOUBLE, 0, comm);
  return median;
}

// Busy work for `seconds` with no MPI call (what a caller computing gradients does).
void compute_for(double seconds) {
  const auto end = clock_type::now() + std::chrono::duration<double>(seconds);
  volatile double x = 1.0;
  while (clock_type::now() < end) {
    for (int i = 0; i < 1000; ++i) x = x * 1.0000001 + 1e-9;
  }
}

}  // namespace

int main(int argc, char** argv) {
  loco::comm::mpi_environment env(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm raw;
  MPI_Comm_dup(MPI_COMM_WORLD, &raw);
  loco::comm::mpi comm;
  loco::comm::mpi_options native_opt;
  native_opt.native_blocking = true;
  loco::comm::mpi native(MPI_COMM_WORLD, native_opt);

  if (rank == 0) {
    std::printf("ranks %d; times per allreduce (sum, float), median of 5 runs\n", size);
    std::printf("%10s %14s %14s %14s %14s %14s %9s %9s %9s\n", "bytes", "MPI_Allreduce",
                "MPI_Iallred+W", "loco allred", "loco iallr+W", "loco native", "loco/raw",
                "loco/Iraw", "native/raw");
  }
  for (std::size_t bytes : {std::size_t{8}, std::size_t{4} << 10, std::size_t{64} << 10,
                            std::size_t{1} << 20, std::size_t{4} << 20, std::size_t{40} << 20}) {
    std::vector<float> v(bytes / sizeof(float), 1.0f);
    const int n = static_cast<int>(v.size());
    const double t_raw =
        time_op(raw, [&] { MPI_Allreduce(MPI_IN_PLACE, v.data(), n, MPI_FLOAT, MPI_SUM, raw); });
    const double t_iraw = time_op(raw, [&] {
      MPI_Request r;
      MPI_Iallreduce(MPI_IN_PLACE, v.data(), n, MPI_FLOAT, MPI_SUM, raw, &r);
      MPI_Wait(&r, MPI_STATUS_IGNORE);
    });
    const double t_loco =
        time_op(raw, [&] { comm.allreduce(std::span<float>(v), loco::comm::reduce_op::sum); });
    const double t_iloco = time_op(
        raw, [&] { comm.iallreduce(std::span<float>(v), loco::comm::reduce_op::sum).wait(); });
    const double t_native =
        time_op(raw, [&] { native.allreduce(std::span<float>(v), loco::comm::reduce_op::sum); });
    if (rank == 0) {
      std::printf("%10zu %12.1fus %12.1fus %12.1fus %12.1fus %12.1fus %9.2f %9.2f %9.2f\n", bytes,
                  t_raw * 1e6, t_iraw * 1e6, t_loco * 1e6, t_iloco * 1e6, t_native * 1e6,
                  t_loco / t_raw, t_loco / t_iraw, t_native / t_raw);
    }
  }

  // Overlap: start an allreduce, compute for as long as the blocking
  // allreduce takes, then wait. With perfect overlap the total equals the
  // compute time; with none, compute + allreduce.
  if (rank == 0) {
    std::printf("\noverlap: iallreduce, busy compute for T = blocking time, then wait()\n");
    std::printf("%10s %14s %12s %14s %14s\n", "bytes", "progress", "T", "compute+wait", "hidden");
  }
  for (std::size_t bytes : {std::size_t{4} << 20, std::size_t{40} << 20}) {
    for (int interval_us : {50, 0}) {
      loco::comm::mpi_options opt;
      opt.progress_interval = std::chrono::microseconds(interval_us);
      loco::comm::mpi c(MPI_COMM_WORLD, opt);
      std::vector<float> v(bytes / sizeof(float), 1.0f);
      double blocking =
          time_op(raw, [&] { c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum); });
      std::vector<double> totals;
      for (int run = 0; run < 5; ++run) {
        MPI_Barrier(raw);
        const auto t = clock_type::now();
        auto r = c.iallreduce(std::span<float>(v), loco::comm::reduce_op::sum);
        compute_for(blocking);
        r.wait();
        totals.push_back(seconds_since(t));
      }
      std::sort(totals.begin(), totals.end());
      double total = totals[2];
      MPI_Bcast(&total, 1, MPI_DOUBLE, 0, raw);
      if (rank == 0) {
        // hidden: the share of the allreduce that ran during the compute.
        const double hidden = std::clamp((2 * blocking - total) / blocking, 0.0, 1.0);
        std::printf("%10zu %14s %10.2fms %12.2fms %13.0f%%\n", bytes,
                    interval_us > 0 ? "thread 50us" : "none", blocking * 1e3, total * 1e3,
                    hidden * 100);
      }
    }
  }
  MPI_Comm_free(&raw);
  return 0;
}
