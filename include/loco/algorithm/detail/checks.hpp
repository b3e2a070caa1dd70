#pragma once
// Checks every driver makes before its first step.
#include <cstddef>
#include <cstdint>
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

// Every rank must cut the model into the same fragments: layouts may differ
// where d agrees. One 52-bit hash of the index lists, compared like d.
template <class Comm>
void require_same_fragments(Comm& comm, const std::vector<std::vector<std::uint32_t>>& parts,
                            const char* driver) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  const auto mix = [&h](std::uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  mix(parts.size());
  for (const auto& p : parts) {
    mix(p.size());
    for (const auto j : p) mix(j);
  }
  const double signature = static_cast<double>(h >> 12);  // exact in a double
  double bounds[2] = {signature, -signature};
  comm.allreduce(std::span<double>(bounds), comm::reduce_op::max);
  if (bounds[0] != -bounds[1]) {
    throw config_error(std::string(driver) +
                       ": ranks cut the model into different fragments (their objectives' "
                       "layouts differ); give every rank the same layout, or split::shards");
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
