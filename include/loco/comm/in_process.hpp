#pragma once
// comm::in_process: n workers as threads of one process, the embedded
// default. Collectives work on the callers' memory directly (no dense
// vector is serialised): in an allreduce each rank reduces its 1/n slice of
// every rank's vector, then copies the other slices, so the work is spread
// over the ranks and every rank gets bit-identical results.
//
// Non-blocking collectives run on a per-rank progress thread in the order
// they were issued, so iallreduce() really proceeds while the caller computes;
// a blocking one runs on the caller's thread when nothing is queued before
// it. Ranks meet at barriers that spin briefly before they sleep, and a
// vector of at most 512 values is reduced whole by every rank (two barriers
// instead of three). Point-to-point messages are copied into the receiver's
// mailbox at send time.
//
// Tolerant mode (in_process_options::tolerant): a rank whose function
// throws, returns, or is declared lost (another rank waited for its message
// past the timeout) is lost to the others alone: receives from it and sends
// to it throw loco::peer_lost naming it, while the survivors keep talking.
// The world's own collectives need every rank, so they end at the first
// loss; comm::elastic<in_process> runs collectives over the survivors.
//
//   loco::comm::run_in_process(4, [](loco::comm::in_process& comm) { ... });
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <deque>
#include <exception>
#include <loco/comm/detail/progress_thread.hpp>
#include <loco/comm/detail/world_barrier.hpp>
#include <loco/comm/request.hpp>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace loco::comm {

struct in_process_options {
  // How long any wait (a collective, a recv) may take before the missing
  // peer is reported as loco::peer_lost.
  duration timeout{30000};
  // How long a rank waiting for the others in a collective spins before it
  // sleeps, in [0, max_spin]; -1 (the default): 50 us when the world has no
  // more ranks than the machine has hardware threads, else 0 (a spinning
  // rank would take the core from one that has not arrived yet).
  std::chrono::microseconds spin{-1};
  static constexpr std::chrono::microseconds max_spin{100000};
  // false: a rank that throws ends the world (every rank is woken with
  // peer_lost, run_in_process rethrows). true: it is lost alone (above), and
  // run_in_process returns the failures when any rank finished.
  bool tolerant = false;
};

// A rank whose function threw, as tolerant run_in_process reports it.
struct rank_failure {
  int rank = -1;
  std::string what;
  std::exception_ptr error;
};

namespace detail {

// State shared by the ranks of one in-process world.
class in_process_world {
 public:
  in_process_world(int n, in_process_options opt)
      : size(n),
        options(opt),
        barrier(n, opt.timeout, spin_of(n, opt.spin)),
        slots(static_cast<std::size_t>(n)),
        staging(static_cast<std::size_t>(n)),
        mailboxes(static_cast<std::size_t>(n)),
        lost_(std::make_unique<std::atomic<bool>[]>(static_cast<std::size_t>(n))),
        lost_why_(static_cast<std::size_t>(n)) {}

  struct slot {
    const void* data = nullptr;
    std::size_t count = 0;  // elements (reductions) or bytes (byte collectives)
  };
  // A small allreduce's copy of one rank's vector (in_process::reduce_staged).
  static constexpr std::size_t staged_bytes = 16 * 1024;
  struct alignas(64) staged {
    std::size_t count = 0;
    alignas(64) std::byte bytes[staged_bytes];
  };
  struct message {
    int source;
    int tag;
    wire::buffer bytes;
  };
  // A receive posted by irecv() before its message arrived.
  struct pending_receive {
    int source;
    int tag;
    wire::buffer* out;
    std::shared_ptr<completion> done;
  };
  struct mailbox {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<message> queue;
    std::deque<pending_receive> pending;
  };

  static std::chrono::microseconds spin_of(int n, std::chrono::microseconds spin) {
    if (spin.count() >= 0) return spin;
    const unsigned cores = std::thread::hardware_concurrency();
    return static_cast<unsigned>(n) <= cores ? std::chrono::microseconds(50)
                                             : std::chrono::microseconds(0);
  }

  wire::buffer take_spare() {
    std::lock_guard lock(spare_mutex);
    if (spares.empty()) return {};
    auto b = std::move(spares.back());
    spares.pop_back();
    return b;
  }
  void give_spare(wire::buffer&& b) {
    std::lock_guard lock(spare_mutex);
    spares.push_back(std::move(b));
  }
  void abort(int rank, const std::string& why) {
    barrier.abort(rank, why);
    for (auto& box : mailboxes) {
      std::lock_guard lock(box.mutex);
      for (auto& p : box.pending) p.done->finish(-1, std::make_exception_ptr(peer_lost(rank, why)));
      box.pending.clear();
      box.cv.notify_all();
    }
  }

  // Tolerant mode: `rank` is out (failed, finished or declared lost). The
  // world's collectives end; receives waiting for it and later messages to
  // or from it throw peer_lost; messages it sent before stay receivable.
  void lose(int rank, const std::string& why) {
    {
      std::lock_guard lock(lost_mutex_);
      if (lost_[static_cast<std::size_t>(rank)].load()) return;
      lost_why_[static_cast<std::size_t>(rank)] = why;
      lost_[static_cast<std::size_t>(rank)].store(true);
    }
    barrier.abort(rank, why);
    for (auto& box : mailboxes) {
      std::lock_guard lock(box.mutex);
      std::erase_if(box.pending, [&](pending_receive& p) {
        if (p.source != rank) return false;
        p.done->finish(-1, std::make_exception_ptr(peer_lost(rank, why)));
        return true;
      });
      box.cv.notify_all();
    }
  }
  bool lost(int rank) const noexcept { return lost_[static_cast<std::size_t>(rank)].load(); }
  [[noreturn]] void throw_lost(int rank) const {
    std::lock_guard lock(lost_mutex_);
    throw peer_lost(rank, lost_why_[static_cast<std::size_t>(rank)]);
  }

  const int size;
  const in_process_options options;
  world_barrier barrier;
  std::vector<slot> slots;
  // Per rank, two copies (by the barrier's generation, odd or even), made by
  // that rank at its first small allreduce.
  std::vector<std::unique_ptr<staged[]>> staging;
  std::vector<mailbox> mailboxes;
  std::mutex spare_mutex;
  std::vector<wire::buffer> spares;  // recycled message buffers: no allocation in steady state

 private:
  std::unique_ptr<std::atomic<bool>[]> lost_;
  mutable std::mutex lost_mutex_;  // guards lost_why_
  std::vector<std::string> lost_why_;
};

}  // namespace detail

class in_process {
 public:
  in_process(std::shared_ptr<detail::in_process_world> world, int rank)
      : world_(std::move(world)), rank_(rank) {
    if (!world_ || rank < 0 || rank >= world_->size) {
      throw config_error("comm::in_process: rank " + std::to_string(rank) + " outside [0, " +
                         std::to_string(world_ ? world_->size : 0) + ")");
    }
  }
  in_process(const in_process&) = delete;
  in_process& operator=(const in_process&) = delete;
  ~in_process() {
    // Pending receives point into the caller's buffers: withdraw them.
    auto& box = world_->mailboxes[static_cast<std::size_t>(rank_)];
    std::lock_guard lock(box.mutex);
    for (auto& p : box.pending) {
      p.done->finish(-1,
                     std::make_exception_ptr(error("comm::in_process: communicator destroyed")));
    }
    box.pending.clear();
  }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return world_->size; }
  duration timeout() const noexcept { return world_->options.timeout; }

  // ------------------------------------------------------------ point to point
  void send(int dst, int tag, std::span<const std::byte> bytes) {
    check_peer(dst, "send");
    throw_if_unreachable(dst);
    auto& box = world_->mailboxes[static_cast<std::size_t>(dst)];
    // Copy outside the lock; then match a posted receive or queue the
    // message in ONE critical section, so an irecv posted meanwhile can
    // never miss it.
    auto msg = detail::in_process_world::message{rank_, tag, world_->take_spare()};
    msg.bytes.assign(bytes);
    {
      std::lock_guard lock(box.mutex);
      for (auto it = box.pending.begin(); it != box.pending.end(); ++it) {
        if (it->tag == tag && (it->source == any_source || it->source == rank_)) {
          std::swap(*it->out, msg.bytes);
          it->done->finish(rank_);
          box.pending.erase(it);
          world_->give_spare(std::move(msg.bytes));
          return;
        }
      }
      box.queue.push_back(std::move(msg));
    }
    box.cv.notify_all();
  }

  // Receives the oldest message from src (or any rank) with this tag; returns the sender.
  int recv(int src, int tag, wire::buffer& out) {
    if (src != any_source) check_peer(src, "recv");
    auto& box = world_->mailboxes[static_cast<std::size_t>(rank_)];
    std::unique_lock lock(box.mutex);
    int from = -1;
    box.cv.wait_for(lock, world_->options.timeout, [&] {
      from = try_take(box, src, tag, out);
      return from >= 0 || unreachable(src);
    });
    if (from >= 0) return from;
    lock.unlock();
    throw_if_unreachable(src);
    const std::string why = silence(tag);
    if (world_->options.tolerant && src != any_source) world_->lose(src, why);
    throw peer_lost(src, why);
  }

  // The message is copied at once, so the request is already complete.
  request isend(int dst, int tag, std::span<const std::byte> bytes) {
    send(dst, tag, bytes);
    return request{};
  }

  // Completes when a matching message arrives; wait() gives up after the
  // communicator's timeout with loco::peer_lost.
  request irecv(int src, int tag, wire::buffer& out) {
    if (src != any_source) check_peer(src, "irecv");
    auto done = std::make_shared<detail::completion>();
    auto& box = world_->mailboxes[static_cast<std::size_t>(rank_)];
    std::lock_guard lock(box.mutex);
    const int from = try_take(box, src, tag, out);
    if (from >= 0) {
      done->finish(from);
      return request(done);
    }
    // Checked under the mailbox lock: lose() finishes the pending receives
    // from the lost rank under it, so none posted meanwhile is missed.
    throw_if_unreachable(src);
    done->timeout = world_->options.timeout;
    done->peer = src;
    done->timeout_message = silence(tag);
    std::weak_ptr<detail::completion> weak = done;
    // Holds the world, so a request that outlives its communicator is safe;
    // the cycle through `pending` ends when the entry is removed.
    done->cancel = [world = world_, me = rank_, src, weak] {
      auto self = weak.lock();
      {
        auto& b = world->mailboxes[static_cast<std::size_t>(me)];
        std::lock_guard guard(b.mutex);
        const auto it = std::find_if(b.pending.begin(), b.pending.end(),
                                     [&](const auto& p) { return p.done == self; });
        if (it == b.pending.end()) return false;
        b.pending.erase(it);
      }
      if (world->options.tolerant && src != any_source) world->lose(src, self->timeout_message);
      return true;
    };
    box.pending.push_back({src, tag, &out, done});
    return request(done);
  }

  // ------------------------------------------------------------ collectives
  void barrier() {
    blocking([this] { world_->barrier.arrive_and_wait(rank_); });
  }
  request ibarrier() {
    return progress_.submit([this] { world_->barrier.arrive_and_wait(rank_); });
  }

  template <class T>
  void allreduce(std::span<T> data, reduce_op op) {
    static_assert(std::is_arithmetic_v<T>, "comm::in_process::allreduce needs arithmetic values");
    blocking([this, data, op] { reduce_now(data, op); });
  }
  template <class T>
  request iallreduce(std::span<T> data, reduce_op op) {
    static_assert(std::is_arithmetic_v<T>, "comm::in_process::allreduce needs arithmetic values");
    return progress_.submit([this, data, op] { reduce_now(data, op); });
  }

  void allgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    blocking([this, mine, &all] { gather_now(mine, &all, -1); });
  }
  request iallgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    return progress_.submit([this, mine, &all] { gather_now(mine, &all, -1); });
  }

  void gather(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root) {
    check_peer(root, "gather");
    blocking([this, mine, &all, root] { gather_now(mine, &all, root); });
  }

  void broadcast(wire::buffer& b, int root) {
    check_peer(root, "broadcast");
    blocking([this, &b, root] { broadcast_now(b, root); });
  }
  request ibroadcast(wire::buffer& b, int root) {
    check_peer(root, "broadcast");
    return progress_.submit([this, &b, root] { broadcast_now(b, root); });
  }

 private:
  // Runs a blocking collective: on this thread when no non-blocking one is
  // still queued (so the issue order holds), else after them.
  template <class Op>
  void blocking(Op op) {
    if (progress_.idle()) {
      op();
    } else {
      progress_.submit(std::move(op)).wait();
    }
  }

  void broadcast_now(wire::buffer& b, int root) {
    auto& w = *world_;
    if (rank_ == root) w.slots[static_cast<std::size_t>(rank_)] = {b.data(), b.size()};
    w.barrier.arrive_and_wait(rank_);
    if (rank_ != root) {
      const auto& s = w.slots[static_cast<std::size_t>(root)];
      b.assign({static_cast<const std::byte*>(s.data), s.count});
    }
    w.barrier.arrive_and_wait(rank_);
  }

  // Whether a message from `peer` (any_source: from anyone) can no longer
  // come: the world was aborted, or, tolerant, this rank or the peer is lost.
  bool unreachable(int peer) const noexcept {
    if (!world_->options.tolerant) return world_->barrier.aborted();
    return world_->lost(rank_) || (peer != any_source && world_->lost(peer));
  }
  void throw_if_unreachable(int peer) const {
    if (!world_->options.tolerant) {
      world_->barrier.throw_if_aborted_unlocked();
    } else if (world_->lost(rank_)) {
      world_->throw_lost(rank_);  // declared lost by another rank: it is out
    } else if (peer != any_source && world_->lost(peer)) {
      world_->throw_lost(peer);
    }
  }
  std::string silence(int tag) const {
    return "no message with tag " + std::to_string(tag) + " arrived at rank " +
           std::to_string(rank_) + " within " + std::to_string(world_->options.timeout.count()) +
           " ms";
  }

  void check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= world_->size) {
      throw config_error(std::string("comm::in_process::") + what + ": rank " +
                         std::to_string(peer) + " outside [0, " + std::to_string(world_->size) +
                         ")");
    }
  }

  int try_take(detail::in_process_world::mailbox& box, int src, int tag, wire::buffer& out) {
    for (auto it = box.queue.begin(); it != box.queue.end(); ++it) {
      if (it->tag == tag && (src == any_source || it->source == src)) {
        const int from = it->source;
        std::swap(out, it->bytes);
        world_->give_spare(std::move(it->bytes));
        box.queue.erase(it);
        return from;
      }
    }
    return -1;
  }

  template <class T>
  void reduce_now(std::span<T> data, reduce_op op) {
    if (data.size_bytes() <= detail::in_process_world::staged_bytes) {
      return reduce_staged(data, op);
    }
    auto& w = *world_;
    const auto n = static_cast<std::size_t>(w.size);
    const auto me = static_cast<std::size_t>(rank_);
    w.slots[me] = {data.data(), data.size()};
    w.barrier.arrive_and_wait(rank_);
    for (std::size_t q = 0; q < n; ++q) {
      if (w.slots[q].count != data.size()) {
        auto mismatch = size_mismatch(q, w.slots[q].count, data.size());
        w.barrier.arrive_and_wait(rank_);  // nobody reads my vector after I leave
        throw mismatch;
      }
    }
    const std::size_t d = data.size();
    constexpr std::size_t block = 512;
    T acc[block];
    // Reduce my slice [lo, hi) of everyone's vector in rank order, so every
    // element is computed once and the result is the same on every rank.
    const std::size_t lo = d * me / n, hi = d * (me + 1) / n;
    for (std::size_t start = lo; start < hi; start += block) {
      const std::size_t len = std::min(block, hi - start);
      reduce_block(acc, start, len, op);
      std::copy(acc, acc + len, data.data() + start);
    }
    w.barrier.arrive_and_wait(rank_);
    for (std::size_t q = 0; q < n; ++q) {
      if (q == me) continue;
      const std::size_t qlo = d * q / n, qhi = d * (q + 1) / n;
      const T* src = static_cast<const T*>(w.slots[q].data);
      std::copy(src + qlo, src + qhi, data.data() + qlo);
    }
    w.barrier.arrive_and_wait(rank_);  // nobody reads my vector after this
  }

  // Small vectors: each rank copies its vector into its staging buffer,
  // meets the others at one barrier, and reduces every rank's copy in rank
  // order 0..n-1 (the same bits everywhere, and as the slices). No second
  // barrier: a rank writes the same buffer again only two barriers later,
  // which every rank reaches after it has finished reading this one.
  template <class T>
  void reduce_staged(std::span<T> data, reduce_op op) {
    auto& w = *world_;
    const auto n = static_cast<std::size_t>(w.size);
    auto& own = w.staging[static_cast<std::size_t>(rank_)];
    if (!own) own = std::make_unique<detail::in_process_world::staged[]>(2);
    const auto parity = w.barrier.generation() % 2;
    own[parity].count = data.size();
    if (!data.empty()) std::memcpy(own[parity].bytes, data.data(), data.size_bytes());
    w.barrier.arrive_and_wait(rank_);
    for (std::size_t q = 0; q < n; ++q) {
      const auto theirs = w.staging[q][parity].count;
      if (theirs != data.size()) throw size_mismatch(q, theirs, data.size());
    }
    reduce_in_rank_order(data.data(), data.size(), op, [&](std::size_t q) {
      return reinterpret_cast<const T*>(w.staging[q][parity].bytes);
    });
  }

  // acc = op over the ranks' entries [start, start + len), in rank order.
  template <class T>
  void reduce_block(T* acc, std::size_t start, std::size_t len, reduce_op op) const {
    const auto& w = *world_;
    reduce_in_rank_order(acc, len, op, [&](std::size_t q) {
      return static_cast<const T*>(w.slots[q].data) + start;
    });
  }

  // out = op over from(0..n-1)[0, len), in rank order, so every rank that
  // reduces an entry gets the same bits.
  template <class T, class From>
  void reduce_in_rank_order(T* out, std::size_t len, reduce_op op, From from) const {
    const auto n = static_cast<std::size_t>(world_->size);
    if (len == 0) return;
    std::copy(from(0), from(0) + len, out);
    for (std::size_t q = 1; q < n; ++q) combine(out, from(q), len, op);
    if (op == reduce_op::average) {
      const T count = static_cast<T>(n);
      for (std::size_t i = 0; i < len; ++i) out[i] = static_cast<T>(out[i] / count);
    }
  }

  error size_mismatch(std::size_t q, std::size_t theirs, std::size_t mine) const {
    return error("comm::in_process::allreduce: rank " + std::to_string(q) + " contributed " +
                 std::to_string(theirs) + " values, rank " + std::to_string(rank_) + " " +
                 std::to_string(mine));
  }

  template <class T>
  static void combine(T* acc, const T* src, std::size_t len, reduce_op op) {
    switch (op) {
      case reduce_op::sum:
      case reduce_op::average:
        for (std::size_t i = 0; i < len; ++i) acc[i] = static_cast<T>(acc[i] + src[i]);
        break;
      case reduce_op::max:
        for (std::size_t i = 0; i < len; ++i) acc[i] = std::max(acc[i], src[i]);
        break;
      case reduce_op::min:
        for (std::size_t i = 0; i < len; ++i) acc[i] = std::min(acc[i], src[i]);
        break;
    }
  }

  // root < 0: everyone receives (allgather); otherwise only root does.
  void gather_now(std::span<const std::byte> mine, std::vector<wire::buffer>* all, int root) {
    auto& w = *world_;
    w.slots[static_cast<std::size_t>(rank_)] = {mine.data(), mine.size()};
    w.barrier.arrive_and_wait(rank_);
    if (root < 0 || root == rank_) {
      all->resize(static_cast<std::size_t>(w.size));
      for (std::size_t q = 0; q < static_cast<std::size_t>(w.size); ++q) {
        (*all)[q].assign({static_cast<const std::byte*>(w.slots[q].data), w.slots[q].count});
      }
    }
    w.barrier.arrive_and_wait(rank_);
  }

  std::shared_ptr<detail::in_process_world> world_;
  int rank_;
  detail::progress_thread progress_;  // last: joined before the members it uses die
};

// Runs fn(comm) on n threads, one rank each, and returns when all are done.
// If a rank throws, the others are woken with loco::peer_lost naming it, and
// the first rank's original exception is rethrown here. Tolerant
// (in_process_options::tolerant): a rank that throws or returns is lost
// alone; the failures are returned when at least one rank returned, else
// the first root cause is rethrown.
template <class Fn>
std::vector<rank_failure> run_in_process(int n, Fn&& fn, in_process_options opt = {}) {
  if (n < 1) throw config_error("run_in_process: n " + std::to_string(n) + " must be >= 1");
  if (opt.timeout.count() <= 0) {
    throw config_error("run_in_process: timeout " + std::to_string(opt.timeout.count()) +
                       " ms must be > 0");
  }
  if (opt.spin.count() < -1 || opt.spin > in_process_options::max_spin) {
    throw config_error(
        "run_in_process: spin " + std::to_string(opt.spin.count()) + " us is outside [0, " +
        std::to_string(in_process_options::max_spin.count()) + "] (or -1: automatic)");
  }
  auto world = std::make_shared<detail::in_process_world>(n, opt);
  std::mutex error_mutex;
  std::exception_ptr first_error;
  bool first_is_root_cause = false;
  std::vector<rank_failure> failures;
  // A rank failed with `what`; its own peer_lost is not a root cause.
  const auto failed = [&](int r, const std::string& what, bool root_cause, int lost, auto&& why) {
    {
      std::lock_guard lock(error_mutex);
      if (!first_error || (root_cause && !first_is_root_cause)) {
        first_error = std::current_exception();
        first_is_root_cause = root_cause;
      }
      if (opt.tolerant) failures.push_back({r, what, std::current_exception()});
    }
    if (opt.tolerant) {
      world->lose(r, "rank " + std::to_string(r) + " failed: " + what);
    } else {
      world->abort(lost, why);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        {
          in_process comm(world, r);
          fn(comm);
        }
        if (opt.tolerant) world->lose(r, "rank " + std::to_string(r) + " returned");
      } catch (const peer_lost& e) {
        failed(r, e.what(), false, e.rank(), e.what());
      } catch (const std::exception& e) {
        failed(r, e.what(), true, r,
               std::string("rank ") + std::to_string(r) + " failed: " + e.what());
      } catch (...) {
        const std::string what = "a non-standard exception";
        failed(r, what, true, r, "rank " + std::to_string(r) + " failed with " + what);
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first_error && (!opt.tolerant || failures.size() == static_cast<std::size_t>(n))) {
    std::rethrow_exception(first_error);
  }
  std::sort(failures.begin(), failures.end(),
            [](const rank_failure& a, const rank_failure& b) { return a.rank < b.rank; });
  return failures;
}

}  // namespace loco::comm
