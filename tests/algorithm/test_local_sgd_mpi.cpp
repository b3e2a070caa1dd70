// local_sgd over comm::mpi under `mpirun -np 3` (the tests/comm_mpi
// harness): every alias must equal its plain-loop reference, as on
// in_process. Each rank checks its own result; the ranks agree on the verdict.
#include <catch2/catch.hpp>

#include "../comm_mpi/mpi_world.hpp"
#include "../support/local_sgd_aliases.hpp"
#include "../support/local_sgd_reference.hpp"

#include <loco/aliases.hpp>
#include <stdexcept>

using namespace local_sgd_reference;

TEST_CASE("every local_sgd alias equals its plain-loop reference over mpi", "[local_sgd][mpi]") {
  REQUIRE(mpi_test::world_size() == workers);
  for (const alias a : all_aliases()) {
    INFO(name_of(a));
    const std::string verdict = mpi_test::on_every_rank(
        [&](loco::comm::mpi& comm) {
          const auto got = run_alias(a, comm);
          const std::string mine = check_alias(a, comm.rank(), got);
          if (!mine.empty()) throw std::runtime_error(mine);
        },
        mpi_test::quick());
    CHECK(verdict == "");
  }
}
