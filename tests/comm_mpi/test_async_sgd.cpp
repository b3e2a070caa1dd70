// async_sgd and rescaled ASGD on MPI processes (run under mpirun -np 2 and
// -np 4): worker r is r times slower than worker 1 (it sleeps), jobs always
// in flight; the server checks the exact delay identity and convergence on a
// quadratic (tests/support/async_runs.hpp), the workers the final model.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <loco/aliases.hpp>
#include <loco/comm/mpi.hpp>
#include <string>
#include <vector>

#include "../support/async_runs.hpp"
#include "mpi_world.hpp"

namespace {

template <class Algo>
std::string run_on_mpi(Algo& algo, std::uint64_t updates) {
  return mpi_test::on_every_rank(
      [&](loco::comm::mpi& comm) {
        auto f = async_runs::objective_for(comm.rank(), std::chrono::microseconds(150));
        const std::vector<double> x0(f.dimension(), 0.0);
        const auto r = algo.run(comm, f, std::span<const double>(x0));
        for (double v : r.model) {
          if (!std::isfinite(v)) throw std::runtime_error("non-finite final model");
        }
        if (comm.rank() != 0) return;
        const auto k = static_cast<std::uint64_t>(comm.size() - 1);
        const auto why = async_runs::check_server(r, updates, k, 0.02);
        std::printf("mpi server, %d ranks: %s\n", comm.size(), async_runs::summary(r).c_str());
        if (!why.empty()) throw std::runtime_error(why);
      },
      mpi_test::quick());
}

}  // namespace

TEST_CASE("mpi: async_sgd and rescaled ASGD keep the delay identity and converge",
          "[comm][mpi][async_sgd]") {
  loco::algorithm::async_sgd_options opt;
  opt.updates = 2000;
  loco::asgd<loco::comm::mpi> constant({}, loco::stepsize::constant(0.05), opt);
  CHECK(run_on_mpi(constant, opt.updates) == "");
  loco::rescaled_asgd<loco::comm::mpi> rescaled({}, loco::stepsize::rescaled(0.05), opt);
  CHECK(run_on_mpi(rescaled, opt.updates) == "");
}
