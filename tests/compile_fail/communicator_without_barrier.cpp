// A communicator without barrier().
#include <loco/concepts/communicator.hpp>

struct no_barrier {
  int rank() const { return 0; }
  int size() const { return 1; }
  void send(int, int, std::span<const std::byte>) {}
  int recv(int, int, loco::wire::buffer&) { return 0; }
};

static_assert(loco::check_communicator<no_barrier>());
int main() {}
