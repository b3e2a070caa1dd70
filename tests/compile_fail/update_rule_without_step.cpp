// An inner update rule with state but without step().
#include <cstddef>
#include <loco/concepts/update_rule.hpp>

struct no_step {
  template <class T>
  struct state {
    state(const no_step&, std::size_t) {}
  };
};

static_assert(loco::check_update_rule<no_step>());
int main() {}
