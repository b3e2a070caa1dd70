#pragma once
// Free hooks that charge or read virtual time on any communicator: on one
// with a virtual clock (comm::simulated) they act, on a real one they do
// nothing, so a driver calls them unconditionally and never needs
// `if constexpr` on its communicator.
//
//   loco::sim::charge(comm, 0.002);      // 2 ms of modelled work
//   loco::sim::charge_compute(comm);     // one step of the compute model
//   if (auto t = loco::sim::virtual_time(comm)) log(*t);
//   auto c = loco::sim::saved_clock(comm);  // for checkpoints; restore_clock(comm, *c)
//
// Use charge_compute() or sim::timed, not both, or each step is charged twice.
#include <concepts>
#include <loco/sim/clock_state.hpp>
#include <optional>

namespace loco::sim {

template <class Comm>
concept has_virtual_time = requires(Comm& c, double dt) {
  { c.now() } -> std::convertible_to<double>;
  c.advance(dt);
  c.compute();
};

template <class Comm>
void charge(Comm& comm, double seconds) {
  if constexpr (has_virtual_time<Comm>) comm.advance(seconds);
}

template <class Comm>
void charge_compute(Comm& comm) {
  if constexpr (has_virtual_time<Comm>) comm.compute();
}

// A rank's clock for a checkpoint; nullopt on a real communicator.
template <class Comm>
std::optional<clock_state> saved_clock(const Comm& comm) {
  if constexpr (requires(const Comm& c) {
                  { c.clock_state() } -> std::convertible_to<clock_state>;
                }) {
    return comm.clock_state();
  } else {
    return std::nullopt;
  }
}

// Resumes a clock saved by saved_clock(); nothing on a real communicator.
template <class Comm>
void restore_clock(Comm& comm, const clock_state& s) {
  if constexpr (requires(Comm & c) { c.restore_clock(s); }) comm.restore_clock(s);
}

// The rank's virtual time in seconds; nullopt on a real communicator.
template <class Comm>
std::optional<double> virtual_time(const Comm& comm) {
  if constexpr (requires {
                  { comm.now() } -> std::convertible_to<double>;
                }) {
    return comm.now();
  } else {
    return std::nullopt;
  }
}

}  // namespace loco::sim
