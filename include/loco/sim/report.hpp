#pragma once
// sim::report: what run_simulated returns: virtual times, counts, the log.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <loco/sim/event.hpp>
#include <vector>

namespace loco::sim {

struct report {
  std::vector<double> finish_time;  // per rank: virtual time when it finished or dropped out
  std::vector<bool> dropped;        // per rank: dropped out (compute model)
  // Events of each kind (index: event_kind), counted even when not logged.
  std::array<std::uint64_t, 9> counts{};
  std::uint64_t events = 0;      // the sum of counts
  std::uint64_t bytes_sent = 0;  // point-to-point payload bytes
  std::vector<event> log;        // filled when options::log_events

  std::uint64_t count(event_kind k) const noexcept { return counts[static_cast<std::size_t>(k)]; }
  // The virtual time of the whole run: the latest finish.
  double end_time() const noexcept {
    return finish_time.empty() ? 0.0 : *std::max_element(finish_time.begin(), finish_time.end());
  }
};

}  // namespace loco::sim
