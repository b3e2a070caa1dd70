// Steady state allocates nothing: after the first calls, in_process's
// blocking collectives make no heap allocation on any rank.
#include <catch2/catch.hpp>

#include <loco/comm/in_process.hpp>
#include <vector>

#include "../support/count_allocations.hpp"

TEST_CASE("in_process's blocking allreduce and barrier allocate nothing after the first call",
          "[comm][in_process][alloc]") {
  for (std::size_t d : {7u, 100000u}) {
    CAPTURE(d);
    long before = 0, after = 0;
    loco::comm::run_in_process(2, [&](loco::comm::in_process& c) {
      std::vector<float> v(d, 1.0f);
      for (int warm = 0; warm < 3; ++warm)
        c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
      c.barrier();
      if (c.rank() == 0) before = loco_test::allocation_count();
      c.barrier();
      for (int i = 0; i < 50; ++i) c.allreduce(std::span<float>(v), loco::comm::reduce_op::average);
      c.barrier();
      if (c.rank() == 0) after = loco_test::allocation_count();
      c.barrier();
    });
    CHECK(after - before == 0);
  }
}
