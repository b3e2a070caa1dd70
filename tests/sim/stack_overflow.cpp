// A rank that needs more stack than sim::options::stack_size: the process
// must stop with a message naming the rank (tests/sim/stack_overflow.cmake).
// Usage: sim_stack_overflow RANKS. Rank 5 recurses through about 512 KiB of
// frames (the stack is 256 KiB), then charges time, which switches ranks.
#include <cstdio>
#include <cstdlib>
#include <loco/comm/simulated.hpp>

namespace {

[[gnu::noinline]] int deep(int k) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(k);
  if (k == 0) return frame[0];
  return deep(k - 1) + frame[0];
}

}  // namespace

int main(int argc, char** argv) {
  const int ranks = argc > 1 ? std::atoi(argv[1]) : 8;
  loco::sim::options opt;
  opt.stack_size = 256 * 1024;
  loco::comm::run_simulated(
      ranks,
      [](loco::comm::simulated& comm) {
        if (comm.rank() != 5) return;
        const int v = deep(512);
        comm.advance(1.0);
        std::printf("rank 5 came back with %d: no overflow was detected\n", v);
      },
      opt);
  return 0;
}
