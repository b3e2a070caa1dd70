#pragma once
// Checks every driver makes before its first step.
#include <cstddef>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loco::algorithm::detail {

// Every rank must train the same d: a mismatch is a configuration error
// reported on every rank before any step is taken.
template <class Comm>
void require_same_dimension(Comm& comm, std::size_t d, const char* driver) {
  double bounds[2] = {static_cast<double>(d), -static_cast<double>(d)};
  comm.allreduce(std::span<double>(bounds), comm::reduce_op::max);
  if (bounds[0] != -bounds[1]) {
    throw config_error(std::string(driver) + ": ranks disagree on the model size: largest " +
                       std::to_string(static_cast<std::size_t>(bounds[0])) + ", smallest " +
                       std::to_string(static_cast<std::size_t>(-bounds[1])) + ", this rank " +
                       std::to_string(d));
  }
}

// x0 must match the objective's dimension.
inline void require_start_size(std::size_t x0, std::size_t d, const char* driver) {
  if (x0 != d) {
    throw config_error(std::string(driver) + ": x0 has " + std::to_string(x0) +
                       " entries, the objective's dimension is " + std::to_string(d));
  }
}

// "<what> of rank q" for q in [0, n): the names a decoder's protocol_error
// gives for a peer's bytes, built once so decoding allocates nothing.
inline std::vector<std::string> rank_sources(std::string_view what, int n) {
  std::vector<std::string> names;
  names.reserve(static_cast<std::size_t>(n));
  for (int q = 0; q < n; ++q) names.push_back(std::string(what) + " of rank " + std::to_string(q));
  return names;
}

}  // namespace loco::algorithm::detail
