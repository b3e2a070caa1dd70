// Steady state allocates nothing: after the first calls, the blocking
// collectives of in_process and tcp make no heap allocation on any rank.
#include <catch2/catch.hpp>

#include <loco/comm/in_process.hpp>
#include <utility>
#include <vector>

#include "../support/count_allocations.hpp"
#ifdef LOCO_TEST_TCP
#include "../comm_tcp/tcp_world.hpp"
#endif

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

#ifdef LOCO_TEST_TCP
// The ranks are threads of this program, so the count covers all of them,
// and the engines' reader and heartbeat threads too. Sizes: the
// one-round-trip path, one ring piece, a ring of many pieces; and a ring of
// four ranks. A frame that arrives before its receive is posted is read
// into pooled storage, as many buffers as the deepest such backlog so far
// (three small frames per peer are ready from the start). Ring pieces are
// larger than those, and a new deepest backlog of them still turns up now
// and then (6 runs: 0-2 allocations in 90 collectives for 2 ranks, 1-3 for
// 4), where allocating per collective would be 90 or more: the rings get a
// bound, the small path none.
TEST_CASE("tcp's blocking collectives allocate nothing after the first calls",
          "[comm][tcp][alloc]") {
  const std::pair<int, std::size_t> worlds[] = {{2, 7}, {2, 100000}, {2, 3000000}, {4, 100000}};
  constexpr int rounds = 30;  // of 3 collectives
  for (const auto& [n, d] : worlds) {
    CAPTURE(n, d);
    long before = 0, after = 0;
    tcp_test::run_threads(n, [&](loco::comm::tcp& c) {
      std::vector<float> v(d, 1.0f);
      const std::vector<std::byte> mine(16, std::byte{1});
      std::vector<loco::wire::buffer> all;
      const auto round = [&] {
        c.allreduce(std::span<float>(v), loco::comm::reduce_op::average);
        c.barrier();
        c.allgather(mine, all);
      };
      for (int warm = 0; warm < 20; ++warm) round();
      c.barrier();
      if (c.rank() == 0) before = loco_test::allocation_count();
      c.barrier();
      for (int i = 0; i < rounds; ++i) round();
      c.barrier();
      if (c.rank() == 0) after = loco_test::allocation_count();
      c.barrier();
    });
    if (d * sizeof(float) <= loco::comm::tcp_options{}.small_allreduce_bytes) {  // one round trip
      CHECK(after - before == 0);
    } else {
      CHECK(after - before < rounds);
    }
  }
}
#endif
