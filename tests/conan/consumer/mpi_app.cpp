// loco::mpi from the Conan package: mpi.h comes from Debian's Open MPI,
// which is not on the default include path, so this builds only if loco's
// config ran find_package(MPI). One rank averages with itself.
#include <cstdio>
#include <loco/comm/mpi.hpp>
#include <vector>

int main(int argc, char** argv) {
  loco::comm::mpi_environment env(&argc, &argv);
  loco::comm::mpi comm;
  std::vector<float> v(8, 2.5f);
  comm.allreduce(std::span<float>(v), loco::comm::reduce_op::average);
  std::printf("conan consumer, mpi: rank %d of %d, average %.2f\n", comm.rank(), comm.size(),
              static_cast<double>(v[0]));
  return v[0] == 2.5f ? 0 : 1;
}
