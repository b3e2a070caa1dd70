// A communicator that reduces float only: drivers also reduce double.
#include <loco/concepts/communicator.hpp>

struct float_only {
  int rank() const { return 0; }
  int size() const { return 1; }
  void send(int, int, std::span<const std::byte>) {}
  int recv(int, int, loco::wire::buffer&) { return 0; }
  void barrier() {}
  void allreduce(std::span<float>, loco::comm::reduce_op) {}
};

static_assert(loco::check_communicator<float_only>());
int main() {}
