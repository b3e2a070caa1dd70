#pragma once
// comm::simulated: the Communicator that runs any driver in deterministic
// virtual time (docs/simulation.md).
//
// n ranks are fibers on the calling thread (100,000 fit on one core), and
// only the rank with the earliest virtual time runs (ties: lower rank), so a
// run is bit-identical for a given seed on any machine. Time passes only when charged: compute
// through the compute model (sim::timed, comm.compute(), sim::charge) and messages through the link
// model (latency + bytes / bandwidth of the real encoded bytes). Collectives
// complete at (latest arrival + a documented cost) and reduce in rank order,
// so results equal comm::in_process's bit for bit.
//
//   auto rep = loco::comm::run_simulated(4, [](loco::comm::simulated& comm) {
//     ...same driver code as on in_process...
//   }, loco::sim::options{loco::sim::compute_model::exponential({0.1}), {1e-4, 1e9}});
//   rep.end_time();   // virtual seconds
//
// Nothing blocks for real: a run where no rank can proceed reports each
// blocked rank as loco::peer_lost (a dropped-out rank is involved) or as a
// deadlock error, instead of hanging.
#include <cmath>
#include <cstddef>
#include <exception>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <loco/sim/clock.hpp>
#include <loco/sim/clock_state.hpp>
#include <loco/sim/detail/fiber.hpp>
#include <loco/sim/detail/world.hpp>
#include <loco/sim/options.hpp>
#include <loco/sim/report.hpp>
#include <loco/sim/request.hpp>
#include <loco/wire/buffer.hpp>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace loco::comm {

class simulated {
 public:
  simulated(std::shared_ptr<sim::detail::world> world, int rank)
      : world_(std::move(world)), rank_(rank) {
    if (!world_ || rank < 0 || rank >= world_->size) {
      throw config_error("comm::simulated: rank " + std::to_string(rank) + " outside [0, " +
                         std::to_string(world_ ? world_->size : 0) + ")");
    }
  }
  simulated(const simulated&) = delete;
  simulated& operator=(const simulated&) = delete;

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return world_->size; }

  // ------------------------------------------------------------ virtual time
  // This rank's virtual time in seconds.
  double now() const noexcept { return world_->at(rank_).now; }
  // Charges `seconds` of work (finite, >= 0).
  void advance(double seconds) { world_->advance(rank_, seconds); }
  // Charges one step of the compute model; returns its cost.
  double compute() { return world_->compute(rank_); }
  sim::clock clock() noexcept { return sim::clock(*world_, rank_); }
  // For checkpoints: the clock now, and resuming one (time moves forward only).
  sim::clock_state clock_state() const noexcept {
    return {world_->at(rank_).now, world_->at(rank_).steps};
  }
  void restore_clock(const sim::clock_state& s) {
    world_->restore_clock(rank_, s.time, s.compute_steps);
  }
  const sim::options& options() const noexcept { return world_->opt; }

  // ------------------------------------------------------------ replacements
  // True in a replacement of a lost rank (sim::compute_model::restart), as
  // comm::tcp's rejoining() in a restarted process; comm::elastic admits it.
  bool rejoining() const noexcept { return world_->at(rank_).rejoining; }
  // Rank 0: the ranks whose replacements started since the last call.
  std::vector<int> take_rejoined() { return world_->take_rejoined(rank_); }

  // ------------------------------------------------------------ point to point
  // Buffered: returns at once; the message arrives after the link's time.
  void send(int dst, int tag, std::span<const std::byte> bytes) {
    check_peer(dst, "send");
    world_->send(rank_, dst, tag, bytes);
  }
  // Takes the matching message with the earliest arrival (ties: lower sender);
  // the clock moves to its arrival if that is later. Returns the sender.
  int recv(int src, int tag, wire::buffer& out) {
    if (src != any_source) check_peer(src, "recv");
    return world_->recv(rank_, src, tag, out);
  }
  sim::request isend(int dst, int tag, std::span<const std::byte> bytes) {
    send(dst, tag, bytes);
    return {};
  }
  sim::request irecv(int src, int tag, wire::buffer& out) {
    if (src != any_source) check_peer(src, "irecv");
    return {world_, world_->irecv(rank_, src, tag, out)};
  }

  // ------------------------------------------------------------ collectives
  void barrier() { ibarrier().wait(); }
  sim::request ibarrier() {
    auto c = world_->arrive(rank_, sim::collective_kind::barrier, -1, nullptr, 0, 0);
    return start(std::move(c));
  }

  template <class T>
  void allreduce(std::span<T> data, reduce_op op) {
    iallreduce(data, op).wait();
  }
  // The span must stay untouched until the request completes.
  template <class T>
  sim::request iallreduce(std::span<T> data, reduce_op op) {
    static_assert(std::is_arithmetic_v<T>, "comm::simulated::allreduce needs arithmetic values");
    auto c = world_->arrive(rank_, sim::collective_kind::allreduce, -1, data.data(), data.size(),
                            data.size_bytes());
    if (c->arrived == 1) {
      c->op = op;
      c->element_size = sizeof(T);
      c->element_float = std::is_floating_point_v<T>;
      c->reduce = &sim::detail::reduce_in_rank_order<T>;
    } else if (c->op != op || c->element_size != sizeof(T) ||
               c->element_float != std::is_floating_point_v<T>) {
      throw error("comm::simulated::allreduce: rank " + std::to_string(rank_) +
                  " disagrees with an earlier rank on the operation or element type of "
                  "collective #" +
                  std::to_string(c->seq));
    }
    auto r = start(c, data.data(), data.size_bytes());
    return r;
  }

  void allgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    iallgather(mine, all).wait();
  }
  sim::request iallgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    auto c = world_->arrive(rank_, sim::collective_kind::allgather, -1, mine.data(), mine.size(),
                            mine.size());
    return start(std::move(c), nullptr, 0, &all);
  }

  void gather(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root) {
    igather(mine, all, root).wait();
  }
  sim::request igather(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root) {
    check_peer(root, "gather");
    auto c = world_->arrive(rank_, sim::collective_kind::gather, root, mine.data(), mine.size(),
                            mine.size());
    return start(std::move(c), nullptr, 0, &all);
  }

  void broadcast(wire::buffer& b, int root) { ibroadcast(b, root).wait(); }
  sim::request ibroadcast(wire::buffer& b, int root) {
    check_peer(root, "broadcast");
    const bool mine = rank_ == root;
    auto c = world_->arrive(rank_, sim::collective_kind::broadcast, root, mine ? b.data() : nullptr,
                            mine ? b.size() : 0, mine ? b.size() : 0);
    return start(std::move(c), nullptr, 0, nullptr, &b);
  }

 private:
  void check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= world_->size) {
      throw config_error(std::string("comm::simulated::") + what + ": rank " +
                         std::to_string(peer) + " outside [0, " + std::to_string(world_->size) +
                         ")");
    }
  }

  sim::request start(std::shared_ptr<sim::detail::collective> c, void* out = nullptr,
                     std::size_t out_bytes = 0, std::vector<wire::buffer>* all = nullptr,
                     wire::buffer* bytes = nullptr) {
    auto op = std::make_shared<sim::detail::operation>();
    op->t = sim::detail::operation::type::collective;
    op->rank = rank_;
    op->finished = false;
    op->out = out;
    op->out_bytes = out_bytes;
    op->all = all;
    op->bytes = bytes;
    op->coll = std::move(c);
    world_->settle(*op->coll);
    return {world_, std::move(op)};
  }

  std::shared_ptr<sim::detail::world> world_;
  int rank_;
};

// Runs fn(comm) on n ranks in virtual time, each on a fiber of its own on
// this thread, and returns the report. If a rank throws, the blocked ranks
// are woken with loco::peer_lost naming it and the first root-cause
// exception is rethrown here. A rank that drops out (compute model) is not
// an error: the report marks it.
template <class Fn>
sim::report run_simulated(int n, Fn&& fn, sim::options opt = {}) {
  if (n < 1) throw config_error("run_simulated: n " + std::to_string(n) + " must be >= 1");
  if (!(opt.poll_interval > 0.0) || !std::isfinite(opt.poll_interval)) {
    throw config_error("run_simulated: poll_interval " + std::to_string(opt.poll_interval) +
                       " s must be finite and > 0");
  }
  if (!(opt.failure_detection > 0.0)) {
    throw config_error("run_simulated: failure_detection " + std::to_string(opt.failure_detection) +
                       " s must be > 0 (or +inf: off)");
  }
  opt.compute.check(n);
  opt.link.check(n);
  opt.availability.check(n);
  auto world = std::make_shared<sim::detail::world>(n, std::move(opt));
  // A rank's fiber: its function, then leave(), which never returns.
  // A rank with a restart runs its function again as the replacement.
  const auto body = [&world, &fn](int r) {
    auto& w = *world;
    for (;;) {
      bool dead = false;
      try {
        simulated comm(world, r);
        fn(comm);
      } catch (const sim::detail::dropped_out&) {
        dead = true;
      } catch (const peer_lost& e) {
        w.fail(std::current_exception(), false, e.rank(), e.what());
      } catch (const std::exception& e) {
        w.fail(std::current_exception(), true, r,
               "rank " + std::to_string(r) + " failed: " + e.what());
      } catch (...) {
        w.fail(std::current_exception(), true, r,
               "rank " + std::to_string(r) + " failed with a non-standard exception");
      }
      if (!dead || !w.revive(r)) w.leave(r, dead);
    }
  };
  using body_type = decltype(body);
  sim::detail::fibers fibers(
      n, world->opt.stack_size, [](void* b, int r) { (*static_cast<const body_type*>(b))(r); },
      const_cast<void*>(static_cast<const void*>(&body)));
  world->run(fibers);
  if (auto e = world->first_error()) std::rethrow_exception(e);
  return world->take_report();
}

}  // namespace loco::comm
