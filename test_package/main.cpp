// Proves an installed loco works: the headers are found, the policies
// compose, and a two-rank in-process average gives the right answer.
#include <cstdio>
#include <loco/loco.hpp>

int main() {
  static_assert(loco::check_stepsize<loco::stepsize::polynomial>());
  static_assert(loco::check_communicator<loco::comm::in_process>());
  float result = 0.0f;
  loco::comm::run_in_process(2, [&](loco::comm::in_process& comm) {
    float v[1] = {static_cast<float>(comm.rank() + 1)};  // 1 and 2
    comm.allreduce(std::span<float>(v), loco::comm::reduce_op::average);
    if (comm.rank() == 0) result = v[0];
  });
  std::printf("loco %s: in-process average of 1 and 2 = %.2f\n", loco::version_string,
              static_cast<double>(result));
  return result == 1.5f ? 0 : 1;
}
