// CD-Adam over comm::mpi (run under mpirun with 2 and 4 ranks): every
// replica holds the same bits after many steps, the bits in_process gives
// for the same world size; with the identity compressor it is plain AMSGrad.
#include <catch2/catch.hpp>

#include <mpi.h>

#include <cstring>
#include <loco/comm/in_process.hpp>
#include <loco/comm/mpi.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/scaled_sign.hpp>
#include <loco/compress/top_k.hpp>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../support/cd_adam_replicas.hpp"
#include "mpi_world.hpp"

namespace {

// Every rank's copy of v, gathered to every rank.
std::vector<std::vector<float>> all_copies(const std::vector<float>& v) {
  const int n = mpi_test::world_size();
  std::vector<float> all(v.size() * static_cast<std::size_t>(n));
  const int count = static_cast<int>(v.size());
  MPI_Allgather(v.data(), count, MPI_FLOAT, all.data(), count, MPI_FLOAT, MPI_COMM_WORLD);
  std::vector<std::vector<float>> out;
  for (int r = 0; r < n; ++r) {
    const auto at = all.begin() + static_cast<std::ptrdiff_t>(v.size()) * r;
    out.emplace_back(at, at + static_cast<std::ptrdiff_t>(v.size()));
  }
  return out;
}

template <class C>
std::vector<float> in_process_model(int n, int rank, C c, loco::algorithm::compression_strategy s,
                                    std::size_t iterations) {
  std::vector<float> mine;
  std::mutex m;
  loco::comm::run_in_process(n, [&](loco::comm::in_process& comm) {
    auto x = cd_adam_replicas::run<float>(comm, c, s, iterations);
    std::lock_guard lock(m);
    if (comm.rank() == rank) mine = std::move(x);
  });
  return mine;
}

void expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

}  // namespace

TEST_CASE("CD-Adam keeps replicas bitwise identical over mpi", "[cd_adam][mpi]") {
  constexpr std::size_t iterations = 500;
  const int n = mpi_test::world_size();
  const auto check = [&](auto compressor, const char* name) {
    for (auto strategy : cd_adam_replicas::strategies) {
      const std::string what = std::string(name) + ", " + cd_adam_replicas::name_of(strategy);
      std::vector<float> x;
      const std::string verdict = mpi_test::on_every_rank(
          [&](loco::comm::mpi& comm) {
            x = cd_adam_replicas::run<float>(comm, compressor, strategy, iterations);
          },
          mpi_test::quick());
      REQUIRE(verdict == "");
      const auto copies = all_copies(x);  // every rank takes part, whatever its verdict
      const auto threads =
          in_process_model(n, mpi_test::world_rank(), compressor, strategy, iterations);
      std::string failure;
      try {
        for (int r = 0; r < n; ++r) {
          expect(cd_adam_replicas::bitwise_equal(copies[0], copies[static_cast<std::size_t>(r)]),
                 what + ": rank " + std::to_string(r) + "'s model differs from rank 0's");
        }
        expect(cd_adam_replicas::bitwise_equal(x, threads),
               what + ": the model differs from in_process's");
        expect(x[0] != cd_adam_replicas::start, what + ": the model did not move");
      } catch (const std::exception& e) {
        failure = e.what();
      }
      CHECK(mpi_test::agree(failure) == "");
    }
  };
  check(loco::compress::top_k(0.1), "top_k 10%");
  check(loco::compress::scaled_sign{}, "scaled_sign");
}

TEST_CASE("CD-Adam with the identity compressor over mpi equals plain AMSGrad", "[cd_adam][mpi]") {
  constexpr std::size_t iterations = 300;
  const auto want = cd_adam_replicas::plain_amsgrad(mpi_test::world_size(), iterations);
  for (auto strategy : cd_adam_replicas::strategies) {
    const std::string verdict = mpi_test::on_every_rank(
        [&](loco::comm::mpi& comm) {
          const auto got =
              cd_adam_replicas::run<double>(comm, loco::compress::identity{}, strategy, iterations);
          const double gap = cd_adam_replicas::max_difference(got, want);
          expect(gap < 1e-12, std::string(cd_adam_replicas::name_of(strategy)) +
                                  ": largest difference from plain AMSGrad " + std::to_string(gap));
        },
        mpi_test::quick());
    CHECK(verdict == "");
  }
}
