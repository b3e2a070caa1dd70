#pragma once
// The Communicator concept (docs/concepts.md#communicator).
//
// Transports move bytes between ranks; collectives are built on them. A
// driver sees only this interface, so the same algorithm runs on threads,
// TCP, MPI or the virtual-time simulator.
//
//   c.rank(), c.size()                                   -> int
//   c.send(int dst, int tag, std::span<const std::byte>)
//   c.recv(int src, int tag, wire::buffer& out) -> int   src may be comm::any_source;
//                                                        returns the sender's rank
//   c.barrier()
//   c.allreduce(std::span<float or double>, comm::reduce_op)  in place, on every rank
//   c.allgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all)
//   c.broadcast(wire::buffer&, int root)
//   c.gather(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root)
//                                                        all is filled on root only
// Non-blocking forms return a Request; the operation progresses while the
// caller computes (a progress thread or the transport's own machinery):
//   c.isend(int dst, int tag, std::span<const std::byte>) -> Request   bytes must outlive it
//   c.irecv(int src, int tag, wire::buffer& out) -> Request            src may be any_source
//   c.iallreduce(std::span<float or double>, comm::reduce_op) -> Request  span must outlive it
//   c.iallgather(std::span<const std::byte>, std::vector<wire::buffer>&) -> Request
// A Request has wait(), test() -> bool, wait_for(comm::duration) -> bool and
// source() -> int (the sender, for irecv). Both value types are required:
// drivers reduce models of either type and check the model size across ranks
// with a double allreduce. Every blocking call honours the communicator's
// timeout and throws loco::peer_lost rather than hang.
#include <concepts>
#include <cstddef>
#include <loco/comm/types.hpp>
#include <loco/wire/buffer.hpp>
#include <span>
#include <vector>

namespace loco::concepts::detail {

template <class R>
concept request_like = requires(R& r, comm::duration timeout) {
  r.wait();
  { r.test() } -> std::convertible_to<bool>;
  { r.wait_for(timeout) } -> std::convertible_to<bool>;
  { r.source() } -> std::convertible_to<int>;
};

template <class C>
concept comm_has_rank_size = requires(const C& c) {
  { c.rank() } -> std::convertible_to<int>;
  { c.size() } -> std::convertible_to<int>;
};

template <class C>
concept comm_has_point_to_point = requires(C& c, int peer, int tag,
                                           std::span<const std::byte> bytes, wire::buffer& out) {
  c.send(peer, tag, bytes);
  { c.recv(peer, tag, out) } -> std::convertible_to<int>;
};

template <class C>
concept comm_has_barrier = requires(C& c) {
  c.barrier();
};

template <class C>
concept comm_has_allreduce = requires(C& c, std::span<float> f, std::span<double> d,
                                      comm::reduce_op op) {
  c.allreduce(f, op);
  c.allreduce(d, op);
};

template <class C>
concept comm_has_allgather = requires(C& c, std::span<const std::byte> mine,
                                      std::vector<wire::buffer>& all) {
  c.allgather(mine, all);
};

template <class C>
concept comm_has_broadcast = requires(C& c, wire::buffer& b, int root) {
  c.broadcast(b, root);
};

template <class C>
concept comm_has_gather = requires(C& c, std::span<const std::byte> mine,
                                   std::vector<wire::buffer>& all, int root) {
  c.gather(mine, all, root);
};

template <class C>
concept comm_has_nonblocking_p2p = requires(C& c, int peer, int tag,
                                            std::span<const std::byte> bytes, wire::buffer& out) {
  { c.isend(peer, tag, bytes) } -> request_like;
  { c.irecv(peer, tag, out) } -> request_like;
};

template <class C>
concept comm_has_iallreduce = requires(C& c, std::span<float> f, std::span<double> d,
                                       comm::reduce_op op) {
  { c.iallreduce(f, op) } -> request_like;
  { c.iallreduce(d, op) } -> request_like;
};

template <class C>
concept comm_has_iallgather = requires(C& c, std::span<const std::byte> mine,
                                       std::vector<wire::buffer>& all) {
  { c.iallgather(mine, all) } -> request_like;
};

}  // namespace loco::concepts::detail

namespace loco {

template <class C>
concept Communicator =
    concepts::detail::comm_has_rank_size<C> && concepts::detail::comm_has_point_to_point<C> &&
    concepts::detail::comm_has_barrier<C> && concepts::detail::comm_has_allreduce<C> &&
    concepts::detail::comm_has_allgather<C> && concepts::detail::comm_has_broadcast<C> &&
    concepts::detail::comm_has_gather<C> && concepts::detail::comm_has_nonblocking_p2p<C> &&
    concepts::detail::comm_has_iallreduce<C> && concepts::detail::comm_has_iallgather<C>;

template <class C>
constexpr bool check_communicator() {
  using namespace concepts::detail;
  static_assert(comm_has_rank_size<C>,
                "loco: a Communicator needs rank() const and size() const returning int; "
                "see docs/concepts.md#communicator");
  static_assert(comm_has_point_to_point<C>,
                "loco: a Communicator needs send(int dst, int tag, std::span<const std::byte>) and "
                "recv(int src, int tag, wire::buffer&) returning the sender; "
                "see docs/concepts.md#communicator");
  static_assert(comm_has_barrier<C>,
                "loco: a Communicator needs barrier(); see docs/concepts.md#communicator");
  static_assert(comm_has_allreduce<C>,
                "loco: a Communicator needs allreduce(std::span<float>, comm::reduce_op) and "
                "the same for std::span<double>; see docs/concepts.md#communicator");
  static_assert(comm_has_allgather<C>,
                "loco: a Communicator needs allgather(std::span<const std::byte>, "
                "std::vector<wire::buffer>&); see docs/concepts.md#communicator");
  static_assert(comm_has_broadcast<C>,
                "loco: a Communicator needs broadcast(wire::buffer&, int root); "
                "see docs/concepts.md#communicator");
  static_assert(comm_has_gather<C>,
                "loco: a Communicator needs gather(std::span<const std::byte>, "
                "std::vector<wire::buffer>&, int root); see docs/concepts.md#communicator");
  static_assert(comm_has_nonblocking_p2p<C>,
                "loco: a Communicator needs isend(int, int, std::span<const std::byte>) and "
                "irecv(int, int, wire::buffer&) returning requests with wait(), test(), "
                "wait_for(timeout) and source(); see docs/concepts.md#communicator");
  static_assert(
      comm_has_iallreduce<C>,
      "loco: a Communicator needs iallreduce(std::span<float>, comm::reduce_op) and the same "
      "for std::span<double>, returning a request with wait(), test(), wait_for(timeout) and "
      "source(); see docs/concepts.md#communicator");
  static_assert(comm_has_iallgather<C>,
                "loco: a Communicator needs iallgather(std::span<const std::byte>, "
                "std::vector<wire::buffer>&) returning a request; "
                "see docs/concepts.md#communicator");
  return true;
}

}  // namespace loco
