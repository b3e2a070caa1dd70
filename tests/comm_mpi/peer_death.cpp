// A rank dies in the middle of a job (run by peer_death.cmake under mpirun
// -np 3). Rank 1 exits without MPI_Finalize; the others keep calling
// allreduce. Either mpirun kills the job (OpenMPI's default), or, when
// mpirun lets the survivors run, each survivor gets loco::peer_lost within
// the timeout and ends the job with abort(). Nobody hangs.
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <loco/comm/mpi.hpp>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  loco::comm::mpi_environment env(&argc, &argv);
  loco::comm::mpi_options opt;
  opt.timeout = std::chrono::milliseconds(2000);
  loco::comm::mpi comm(MPI_COMM_WORLD, opt);
  comm.barrier();
  if (comm.rank() == 1) {
    std::fprintf(stderr, "rank 1 exits now\n");
    _exit(3);
  }
  std::vector<float> v(1000, 1.0f);
  const auto start = std::chrono::steady_clock::now();
  try {
    for (int i = 0; i < 100; ++i) {
      comm.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::fprintf(stderr, "rank %d: allreduce succeeded without rank 1\n", comm.rank());
    return 0;
  } catch (const loco::peer_lost& e) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    std::fprintf(stderr, "rank %d after %lld ms: %s\n", comm.rank(),
                 static_cast<long long>(ms.count()), e.what());
    comm.abort(2);
  }
}
