#pragma once
// sim::event: one record of a simulated run's event log. Two runs with the
// same seed produce equal logs, which is how determinism is tested.
#include <cstdint>

namespace loco::sim {

enum class event_kind : std::uint8_t {
  send,        // peer = destination, bytes = payload, duration = arrival - time
  recv,        // peer = sender, time = when it was taken (>= arrival)
  compute,     // time = start, duration = the charge
  poll,        // a test() that found the operation unfinished; duration = the charge
  collective,  // arrival at a collective; tag = collective_kind, peer = root or -1
  complete,    // a collective observed complete by this rank at `time`
  drop_out,    // the rank dropped out (compute model)
  finish,      // the rank's function returned
  rejoin,      // a replacement of a lost rank started (compute_model::restart)
};

enum class collective_kind : std::uint8_t { barrier, allreduce, allgather, broadcast, gather };

struct event {
  double time = 0.0;
  int rank = 0;
  event_kind kind = event_kind::send;
  int peer = -1;
  int tag = 0;
  std::uint64_t bytes = 0;
  double duration = 0.0;

  friend bool operator==(const event&, const event&) = default;
};

}  // namespace loco::sim
