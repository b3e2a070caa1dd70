// A merge rule whose apply() takes the wrong arguments.
#include <loco/concepts/merge_rule.hpp>

struct wrong_apply {
  void apply(std::span<float>) const {}
};

static_assert(loco::check_merge_rule<wrong_apply>());
int main() {}
