// A step size that is a bare number.
#include <loco/concepts/stepsize.hpp>

struct bare {
  double value = 0.1;
};

static_assert(loco::check_stepsize<bare>());
int main() {}
