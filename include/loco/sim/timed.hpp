#pragma once
// sim::timed<O>: an Objective that charges one step of the simulated world's
// compute model after every gradient, so a driver runs in virtual time
// without knowing it (docs/simulation.md#charging-compute-time).
//
//   loco::sim::timed f(problems::quadratic<float>(...), comm.clock());
//   driver.run(comm, f, x0);      // every gradient costs tau_i of virtual time
//
// O may be a reference type (timed<my_objective&>) to wrap without copying.
#include <cstddef>
#include <loco/random/stream.hpp>
#include <loco/sim/clock.hpp>
#include <span>
#include <type_traits>
#include <utility>

namespace loco::sim {

template <class O>
class timed {
 public:
  using objective_type = std::remove_reference_t<O>;
  using value_type = typename objective_type::value_type;

  template <class U>
  timed(U&& objective, sim::clock c) : inner_(std::forward<U>(objective)), clock_(c) {}

  std::size_t dimension() const { return inner_.dimension(); }
  // The wrapped objective's tensor layout, when it has one (fragments and
  // per-tensor compressors read it).
  auto layout() const requires requires(const objective_type& o) { o.layout(); }
  { return inner_.layout(); }
  double loss(std::span<const value_type> x) const { return inner_.loss(x); }
  // The gradient is computed, then its compute time charged: the result
  // exists at the end of the step.
  double gradient(std::span<const value_type> x, std::span<value_type> g, random::stream& rng) {
    const double l = inner_.gradient(x, g, rng);
    clock_.compute();
    return l;
  }

  objective_type& inner() noexcept { return inner_; }
  const objective_type& inner() const noexcept { return inner_; }
  sim::clock& clock() noexcept { return clock_; }

 private:
  O inner_;
  sim::clock clock_;
};

template <class U>
timed(U&&, sim::clock) -> timed<std::remove_cvref_t<U>>;

}  // namespace loco::sim
