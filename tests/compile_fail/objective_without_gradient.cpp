// An objective that can evaluate its loss but not its gradient.
#include <loco/concepts/objective.hpp>

struct loss_only {
  using value_type = float;
  std::size_t dimension() const { return 1; }
  double loss(std::span<const float>) const { return 0.0; }
};

static_assert(loco::check_objective<loss_only>());
int main() {}
