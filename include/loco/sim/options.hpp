#pragma once
// sim::options: the settings of one simulated run (docs/simulation.md#options).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <loco/sim/availability.hpp>
#include <loco/sim/compute_model.hpp>
#include <loco/sim/link_model.hpp>

namespace loco::sim {

struct options {
  compute_model compute{};           // cost of each compute step per rank, drop-outs
  link_model link{};                 // latency and bandwidth of messages and collectives
  sim::availability availability{};  // when each rank is online (default: always)
  // The failure detector: a rank offline for longer than this many seconds
  // is declared lost at that moment and drops out there, as comm::tcp's
  // heartbeats declare a stopped process lost (a SIGSTOP that outlasts
  // them). +inf (the default): an offline rank is waited for however long.
  double failure_detection = std::numeric_limits<double>::infinity();
  std::uint64_t seed = 0;   // for random compute models
  bool log_events = false;  // keep the full event log in the report (off: counts only)
  // A test() that finds its operation unfinished charges this much virtual
  // time, doubling on each further unfinished test() with no other charge in
  // between, so a loop that only polls reaches the completion in a few dozen
  // steps. Never charged past a completion time already known, nor past the
  // next time another rank acts (a completion that rank causes is then seen
  // on time).
  double poll_interval = 1e-6;
  // Bytes of stack per rank (each rank is a fiber). Reserved, not committed:
  // a rank costs the pages it touches. At least 16 KiB; an overflow stops
  // the process with a message naming the rank (docs/simulation.md).
  std::size_t stack_size = 256 * 1024;
};

}  // namespace loco::sim
