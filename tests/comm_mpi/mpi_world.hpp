#pragma once
// Helpers for running Catch2 under mpirun. Catch2 runs the same test cases
// on every rank; a check that fails on one rank only would send the ranks
// down different paths and the next collective would hang. So a rank's body
// runs inside on_every_rank(), which catches its failure, agrees on the
// outcome over MPI_COMM_WORLD and hands every rank the same verdict: the
// message of the lowest failing rank, or "" when all passed.
#include <mpi.h>

#include <chrono>
#include <exception>
#include <loco/comm/mpi.hpp>
#include <string>
#include <vector>

namespace mpi_test {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// The message of the lowest rank whose `mine` is non-empty, on every rank.
inline std::string agree(const std::string& mine) {
  const int n = world_size();
  const int candidate = mine.empty() ? n : world_rank();
  int first = n;
  MPI_Allreduce(&candidate, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (first == n) return "";
  int len = world_rank() == first ? static_cast<int>(mine.size()) : 0;
  MPI_Bcast(&len, 1, MPI_INT, first, MPI_COMM_WORLD);
  std::string text = world_rank() == first ? mine : std::string(static_cast<std::size_t>(len), ' ');
  MPI_Bcast(text.data(), len, MPI_CHAR, first, MPI_COMM_WORLD);
  return "rank " + std::to_string(first) + ": " + text;
}

// Runs fn(comm) on a fresh communicator on every rank; returns the agreed verdict.
template <class Fn>
std::string on_every_rank(Fn&& fn, loco::comm::mpi_options opt = {}) {
  std::string failure;
  try {
    loco::comm::mpi comm(MPI_COMM_WORLD, opt);
    try {
      fn(comm);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  } catch (const std::exception& e) {
    failure = std::string("setup or teardown: ") + e.what();
  }
  return agree(failure);
}

// Test options: failures surface in seconds rather than the default 30 s.
inline loco::comm::mpi_options quick() {
  loco::comm::mpi_options o;
  o.timeout = std::chrono::milliseconds(10000);
  return o;
}

}  // namespace mpi_test
