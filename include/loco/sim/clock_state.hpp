#pragma once
// sim::clock_state: what a checkpoint keeps of one rank's virtual clock, so a
// resumed simulated run continues at the same virtual time and draws the
// same compute costs (they are a function of the rank's step count).
#include <cstdint>

namespace loco::sim {

struct clock_state {
  double time = 0.0;                // the rank's virtual time, seconds
  std::uint64_t compute_steps = 0;  // compute-model steps charged so far
};

}  // namespace loco::sim
