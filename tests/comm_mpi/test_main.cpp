// Catch2 runner for the MPI tests: MPI is initialised before the session and
// finalised after it, and the exit code is the worst over all ranks, so
// mpirun reports a failure that happened on any rank.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <mpi.h>

#include <loco/comm/mpi.hpp>

int main(int argc, char** argv) {
  loco::comm::mpi_environment env(&argc, &argv);
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  const int failed = session.run();
  int worst = 0;
  MPI_Allreduce(&failed, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}
