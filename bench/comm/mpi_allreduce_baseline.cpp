// MPI_Allreduce (MPI_FLOAT, MPI_SUM, in place) at the sizes bench_comm uses,
// the baseline of compare_allreduce.py. Rank 0 prints one line per size:
//   <bytes> <seconds per allreduce> <iterations>
// Run: mpirun -np 2 [--mca btl self,vader | --mca btl self,tcp] mpi_allreduce_baseline
// [min_seconds]
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const double min_seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  for (long bytes : {4L, 8L, 4096L, 40960L, 409600L, 4096000L, 40960000L}) {
    std::vector<float> v(static_cast<std::size_t>(bytes) / sizeof(float), 1.0f);
    const int count = static_cast<int>(v.size());
    for (int i = 0; i < 3; ++i) {
      MPI_Allreduce(MPI_IN_PLACE, v.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    // Double the batch until it lasts min_seconds (rank 0 decides for both).
    long iterations = 1;
    double per_op = 0;
    for (;;) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double start = MPI_Wtime();
      for (long i = 0; i < iterations; ++i) {
        MPI_Allreduce(MPI_IN_PLACE, v.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      }
      double took = MPI_Wtime() - start;
      MPI_Bcast(&took, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
      if (took >= min_seconds || iterations >= (1L << 24)) {
        per_op = took / static_cast<double>(iterations);
        break;
      }
      iterations *= 2;
    }
    if (rank == 0) std::printf("%ld %.9g %ld\n", bytes, per_op, iterations);
  }
  MPI_Finalize();
  return 0;
}
