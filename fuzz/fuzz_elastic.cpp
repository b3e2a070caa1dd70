// comm::elastic's messages (include/loco/comm/elastic.hpp): what a member
// parses from the leader (a collective's result: membership, changes, then
// values or bodies), what the leader parses from a member (a contribution),
// what a joining replacement parses (its admission with the state), and
// what a new leader parses after the old one was lost (recovery messages).
// Input: u8 which (0 allreduce result, 1 allgather result, 2 contribution
// to an allreduce on the leader, 3 admission, 4 recovery: rank 0 is lost
// and rank 1 takes over), u8 n (world size 2 + n % 7),
// u8 d (values 1 + d % 16), then the message, which a scripted inner
// communicator hands to every receive (its sends go nowhere).
// Invariants: only loco::error is thrown; after an accepted message the
// membership is ascending, inside the world and holds this rank, and
// live_count() matches it; an accepted allreduce yields d finite-or-not
// values without touching other memory (ASan); an admission's state is
// within the message.
#include <cstddef>
#include <cstdint>
#include <loco/comm/elastic.hpp>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <span>
#include <vector>

#include "common.hpp"

namespace {

// The inner communicator: every receive gets the fuzz bytes.
struct scripted {
  std::span<const std::byte> message;
  int me = 1, n = 2;
  bool replacement = false;
  int dead = -1;  // receives from it throw peer_lost

  struct request {
    void wait() {}
    bool test() { return true; }
    bool wait_for(loco::comm::duration) { return true; }
    int source() const { return 0; }
  };
  int rank() const { return me; }
  int size() const { return n; }
  bool rejoining() const { return replacement; }
  void send(int, int, std::span<const std::byte>) {}
  int recv(int src, int, loco::wire::buffer& out) {
    if (src == dead) throw loco::peer_lost(src, "scripted loss");
    out.assign(message);
    return src;
  }
  void barrier() {}
  template <class T>
  void allreduce(std::span<T>, loco::comm::reduce_op) {}
  void allgather(std::span<const std::byte>, std::vector<loco::wire::buffer>&) {}
  void broadcast(loco::wire::buffer&, int) {}
  void gather(std::span<const std::byte>, std::vector<loco::wire::buffer>&, int) {}
  request isend(int, int, std::span<const std::byte>) { return {}; }
  request irecv(int, int, loco::wire::buffer& out) {
    out.assign(message);
    return {};
  }
  template <class T>
  request iallreduce(std::span<T>, loco::comm::reduce_op) {
    return {};
  }
  request iallgather(std::span<const std::byte>, std::vector<loco::wire::buffer>&) { return {}; }
};

void check_membership(const loco::comm::elastic<scripted>& e) {
  const auto m = e.members();
  LOCO_FUZZ_CHECK(!m.empty());
  LOCO_FUZZ_CHECK(static_cast<int>(m.size()) == e.live_count());
  bool mine = false;
  for (std::size_t k = 0; k < m.size(); ++k) {
    LOCO_FUZZ_CHECK(m[k] >= 0 && m[k] < e.size());
    if (k > 0) LOCO_FUZZ_CHECK(m[k] > m[k - 1]);
    LOCO_FUZZ_CHECK(e.is_live(m[k]));
    mine = mine || m[k] == e.rank();
  }
  LOCO_FUZZ_CHECK(mine);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader prefix(loco_fuzz::as_bytes(data, size));
  const int which = prefix.u8() % 5;
  const int n = 2 + prefix.u8() % 7;
  const std::size_t d = 1 + prefix.u8() % 16;
  scripted inner{prefix.rest(), which == 2 ? 0 : 1, n, which == 3, which == 4 ? 0 : -1};
  try {
    loco::comm::elastic<scripted> e(inner);
    if (which == 0 || which == 2 || which == 4) {
      std::vector<double> v(d, 1.0);
      e.allreduce(std::span<double>(v), loco::comm::reduce_op::average);
      LOCO_FUZZ_CHECK(v.size() == d);
    } else if (which == 1) {
      loco::wire::buffer mine;
      mine.put<std::uint32_t>(7);
      std::vector<loco::wire::buffer> all;
      e.allgather(mine.bytes(), all);
      LOCO_FUZZ_CHECK(static_cast<int>(all.size()) == n);
      for (const auto& b : all) LOCO_FUZZ_CHECK(b.size() <= inner.message.size());
    } else {
      std::size_t got = 0;
      (void)e.join([&](std::span<const std::byte> state) { got = state.size(); });
      LOCO_FUZZ_CHECK(got <= inner.message.size());
      LOCO_FUZZ_CHECK(!e.joining());
    }
    check_membership(e);
  } catch (const loco::error&) {
  }
  return 0;
}
