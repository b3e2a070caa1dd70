#pragma once
// What a step size may depend on. Synchronous drivers fill t and worker;
// asynchronous drivers also fill the delay and timing estimates.
#include <cstddef>
#include <cstdint>

namespace loco::stepsize {

struct context {
  std::uint64_t t = 1;            // step index, starting at 1
  int worker = 0;                 // the worker whose step this is
  std::uint64_t delay = 0;        // tau: server updates since this gradient's model was read
  std::uint64_t concurrency = 1;  // tau_C: workers busy at once
  double worker_time = 0.0;       // tau_i: this worker's (estimated) time per gradient
  double reference_time = 0.0;    // tau_ref: e.g. the slowest worker's time
};

}  // namespace loco::stepsize
