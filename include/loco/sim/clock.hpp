#pragma once
// sim::clock: one rank's virtual clock in a simulated world, the handle an
// objective wrapper (sim::timed) or a driver hook charges compute time to.
// Obtained from comm::simulated::clock(); valid on that rank's thread while
// the run lasts.
#include <loco/sim/detail/world.hpp>

namespace loco::sim {

class clock {
 public:
  clock(detail::world& w, int rank) noexcept : world_(&w), rank_(rank) {}

  int rank() const noexcept { return rank_; }
  // This rank's virtual time in seconds.
  double now() const noexcept { return world_->at(rank_).now; }
  // Charges dt seconds of computation; ranks earlier in virtual time run first.
  void advance(double dt) { world_->advance(rank_, dt); }
  // Charges one step of the run's compute model; returns its cost.
  double compute() { return world_->compute(rank_); }

 private:
  detail::world* world_;
  int rank_;
};

}  // namespace loco::sim
