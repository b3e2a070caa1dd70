#pragma once
// comm::tcp: one process per rank over TCP (Boost.Asio, OpenSSL), linked
// with loco::tcp. Ranks meet at a coordinator address (rank 0 listens
// there), prove they share the token (HMAC-SHA256 challenge-response), and
// form a full mesh of TCP_NODELAY connections, optionally inside TLS with
// mutual certificates (options.tls).
//
// Every peer's frames are read all the time (by a reader thread, or by a
// caller busy-polling the link it waits on: options.busy_poll), so
// isend/irecv and the non-blocking collectives progress while the caller
// computes. The collectives run in issue order, on the caller's thread or a
// progress thread, built on the same point-to-point frames. allreduce sends
// small vectors to every rank and reduces them in rank order (one round
// trip, bit-identical to in_process); large vectors use a pipelined ring
// (reduce-scatter + allgather, 2(n-1)/n of the vector sent per rank),
// bit-identical on every rank.
//
//   auto comm = loco::comm::tcp(loco::comm::tcp_options::from_env());
//   comm.allreduce(std::span<float>(grad), loco::comm::reduce_op::average);
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/comm/detail/progress_thread.hpp>
#include <loco/comm/request.hpp>
#include <loco/comm/tcp/engine.hpp>
#include <loco/comm/tcp/options.hpp>
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

class tcp {
 public:
  // Joins the world: returns once connected to every rank, or throws
  // loco::peer_lost naming a rank that did not join within options.timeout,
  // loco::protocol_error when a peer fails the handshake, config_error for
  // bad options.
  explicit tcp(const tcp_options& options) {
    validate(options);
    engine_ = std::make_shared<detail::tcp::engine>(options);
    engine_->join();
    scratch_.resize(static_cast<std::size_t>(options.world_size));
    progress_ = std::make_unique<detail::progress_thread>("loco-tcp-coll");
    sender_ = std::make_unique<detail::progress_thread>("loco-tcp-send");
  }
  tcp(const tcp&) = delete;
  tcp& operator=(const tcp&) = delete;
  // Finishes queued operations, says goodbye to every peer and waits (at
  // most 2 s) for theirs, so the last messages are never lost to a reset.
  ~tcp() {
    sender_.reset();
    progress_.reset();
    engine_->shutdown();
  }

  int rank() const noexcept { return engine_->rank(); }
  int size() const noexcept { return engine_->size(); }
  duration timeout() const noexcept { return engine_->options().timeout; }
  // Rejoining (tcp_options::rejoin, docs/fault_tolerance.md): whether this
  // process replaces a lost rank, and on rank 0 the ranks whose replacement
  // connected since the last call. comm::elastic uses both.
  bool rejoining() const noexcept { return engine_->options().rejoin; }
  std::vector<int> take_rejoined() { return engine_->take_rejoined(); }
  // The port this rank accepts connections on (rank 0: the coordinator's).
  unsigned short listen_port() const noexcept { return engine_->listen_port(); }

  // ------------------------------------------------------------ point to point
  // Writes on the calling thread (after any isend still queued, keeping order).
  void send(int dst, int tag, std::span<const std::byte> bytes) {
    check_send(dst, bytes);
    if (sender_->idle()) return write_data(engine_.get(), dst, tag, bytes);
    isend(dst, tag, bytes).wait();
  }

  // Sends in order on a sender thread; `bytes` must outlive the request.
  request isend(int dst, int tag, std::span<const std::byte> bytes) {
    check_send(dst, bytes);
    return sender_->submit([this, dst, tag, bytes] { write_data(engine_.get(), dst, tag, bytes); });
  }

  // Receives the oldest message from src (or any rank) with this tag; returns the sender.
  int recv(int src, int tag, wire::buffer& out) {
    auto r = irecv(src, tag, out);
    r.wait();
    return r.source();
  }

  // Completes when a matching message has arrived (the I/O thread fills it);
  // wait() gives up after the communicator's timeout with loco::peer_lost.
  request irecv(int src, int tag, wire::buffer& out) {
    if (src != any_source) check_peer(src, "irecv");
    auto done = std::make_shared<detail::completion>();
    engine_->post(src, {detail::tcp::frame_type::data, tag, 0}, &out, {}, false, done);
    done->timeout = timeout();
    done->peer = src;
    done->timeout_message = "no message with tag " + std::to_string(tag) + " arrived within " +
                            std::to_string(timeout().count()) + " ms";
    std::weak_ptr<detail::tcp::engine> weak = engine_;
    std::weak_ptr<detail::completion> self = done;
    done->cancel = [weak, self] {
      auto e = weak.lock();
      auto c = self.lock();
      return e && c && e->cancel(c);
    };
    return request(done);
  }

 private:
  // The collectives' bodies, run by blocking() or collective() below.
  auto barrier_op() {
    return [this](std::int32_t seq) {
      const int n = size(), me = rank();
      auto& got = receives(idx(n));
      for (int q = 0; q < n; ++q) {
        if (q != me) got[idx(q)] = post(q, seq, 0, &scratch_[idx(q)]);
      }
      for (int q = 0; q < n; ++q) {
        if (q != me) put(q, seq, 0, {});
      }
      for (int q = 0; q < n; ++q) {
        if (q != me) await(got[idx(q)], q, "barrier");
      }
    };
  }

  template <class T>
  auto allreduce_op(std::span<T> data, reduce_op op) {
    static_assert(std::is_arithmetic_v<T>, "comm::tcp::allreduce needs arithmetic values");
    return [this, data, op](std::int32_t seq) {
      if (size() == 1) return;
      if (data.size_bytes() <= engine_->options().small_allreduce_bytes ||
          data.size() < static_cast<std::size_t>(size())) {
        reduce_small(data, op, seq);
      } else {
        reduce_ring(data, op, seq);
      }
    };
  }

  auto allgather_op(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    return [this, mine, &all](std::int32_t seq) {
      const int n = size(), me = rank();
      all.resize(static_cast<std::size_t>(n));
      auto& got = receives(idx(n));
      for (int q = 0; q < n; ++q) {
        if (q != me) got[idx(q)] = post(q, seq, 0, &all[idx(q)]);
      }
      for (int q = 0; q < n; ++q) {
        if (q != me) put(q, seq, 0, mine, q);
      }
      all[idx(me)].assign(mine);
      for (int q = 0; q < n; ++q) {
        if (q != me) await(got[idx(q)], q, "allgather");
      }
    };
  }

  auto broadcast_op(wire::buffer& b, int root) {
    return [this, &b, root](std::int32_t seq) {
      const int n = size(), me = rank();
      if (me == root) {
        for (int q = 0; q < n; ++q) {
          if (q != me) put(q, seq, 0, b.bytes());
        }
      } else {
        await(post(root, seq, 0, &b), root, "broadcast");
      }
    };
  }

 public:
  // ------------------------------------------------------------ collectives
  void barrier() { blocking(barrier_op()); }
  request ibarrier() { return collective(barrier_op()); }

  template <class T>
  void allreduce(std::span<T> data, reduce_op op) {
    blocking(allreduce_op(data, op));
  }
  // `data` must outlive the request and stay untouched until it completes.
  template <class T>
  request iallreduce(std::span<T> data, reduce_op op) {
    return collective(allreduce_op(data, op));
  }

  void allgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    blocking(allgather_op(mine, all));
  }
  request iallgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    return collective(allgather_op(mine, all));
  }

  // Every rank sends to root (n-1 messages into root).
  void gather(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root) {
    check_peer(root, "gather");
    blocking([this, mine, &all, root](std::int32_t seq) {
      const int n = size(), me = rank();
      if (me != root) return put(root, seq, 0, mine);
      all.resize(static_cast<std::size_t>(n));
      auto& got = receives(idx(n));
      for (int q = 0; q < n; ++q) {
        if (q != me) got[idx(q)] = post(q, seq, 0, &all[idx(q)]);
      }
      all[idx(me)].assign(mine);
      for (int q = 0; q < n; ++q) {
        if (q != me) await(got[idx(q)], q, "gather");
      }
    });
  }

  // Root sends to every rank (n-1 messages out of root).
  void broadcast(wire::buffer& b, int root) {
    check_peer(root, "broadcast");
    blocking(broadcast_op(b, root));
  }
  request ibroadcast(wire::buffer& b, int root) {
    check_peer(root, "broadcast");
    return collective(broadcast_op(b, root));
  }

 private:
  using completion_ptr = std::shared_ptr<detail::completion>;
  static std::size_t idx(int q) { return static_cast<std::size_t>(q); }

  static void validate(const tcp_options& o) {
    if (o.world_size < 1) {
      throw config_error("comm::tcp: world_size " + std::to_string(o.world_size) + " must be >= 1");
    }
    if (o.rank < 0 || o.rank >= o.world_size) {
      throw config_error("comm::tcp: rank " + std::to_string(o.rank) + " outside [0, " +
                         std::to_string(o.world_size) + ")");
    }
    if (o.timeout.count() <= 0 || o.handshake_timeout.count() <= 0) {
      throw config_error("comm::tcp: timeout and handshake_timeout must be > 0 ms");
    }
    if (o.heartbeat_interval.count() < 0 || o.heartbeat_interval.count() > 60000) {
      throw config_error("comm::tcp: heartbeat_interval " +
                         std::to_string(o.heartbeat_interval.count()) +
                         " ms must be in [0, 60000] (0: off)");
    }
    if (o.heartbeat_misses < 2 || o.heartbeat_misses > 10000) {
      throw config_error("comm::tcp: heartbeat_misses " + std::to_string(o.heartbeat_misses) +
                         " must be in [2, 10000]");
    }
    if (o.max_message_bytes < 4096) {
      throw config_error("comm::tcp: max_message_bytes " + std::to_string(o.max_message_bytes) +
                         " must be >= 4096");
    }
    if (o.ring_piece_bytes < 64 || o.ring_piece_bytes > o.max_message_bytes) {
      throw config_error("comm::tcp: ring_piece_bytes " + std::to_string(o.ring_piece_bytes) +
                         " must be in [64, max_message_bytes]");
    }
    if (o.small_allreduce_bytes > o.max_message_bytes) {
      throw config_error("comm::tcp: small_allreduce_bytes " +
                         std::to_string(o.small_allreduce_bytes) + " exceeds max_message_bytes " +
                         std::to_string(o.max_message_bytes));
    }
    if (o.busy_poll.count() < 0 || o.busy_poll > tcp_options::max_busy_poll) {
      throw config_error("comm::tcp: busy_poll " + std::to_string(o.busy_poll.count()) +
                         " us must be in [0, " +
                         std::to_string(tcp_options::max_busy_poll.count()) + "]");
    }
    if (o.rejoin && o.rank == 0) {
      throw config_error("comm::tcp: rank 0 cannot rejoin: it is the coordinator the others join");
    }
    detail::tcp::validate_tls(o.tls);
    if (o.world_size == 1) return;
    const auto coordinator = detail::tcp::parse_endpoint(o.coordinator, "coordinator");
    if (o.rank > 0 && coordinator.port() == 0) {
      throw config_error("comm::tcp: coordinator '" + o.coordinator + "' needs a port");
    }
    const auto listen =
        o.rank == 0 ? coordinator.address()
                    : detail::tcp::parse_endpoint(o.listen_host + ":0", "listen_host").address();
    if (o.token.empty() && !listen.is_loopback()) {
      throw config_error("comm::tcp: an empty token is refused when listening on " +
                         listen.to_string() + ", beyond loopback");
    }
  }

  void check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= size()) {
      throw config_error(std::string("comm::tcp::") + what + ": rank " + std::to_string(peer) +
                         " outside [0, " + std::to_string(size()) + ")");
    }
  }

  void check_send(int dst, std::span<const std::byte> bytes) const {
    check_peer(dst, "send");
    if (bytes.size() > engine_->options().max_message_bytes) {
      throw config_error("comm::tcp::send: message of " + std::to_string(bytes.size()) +
                         " bytes exceeds max_message_bytes " +
                         std::to_string(engine_->options().max_message_bytes));
    }
  }
  static void write_data(detail::tcp::engine* e, int dst, int tag,
                         std::span<const std::byte> bytes) {
    const detail::tcp::key k{detail::tcp::frame_type::data, tag, 0};
    if (dst == e->rank()) {
      e->loopback(k, bytes);
    } else {
      e->write(dst, {k.type, k.tag, 0, 0}, bytes);
    }
  }

  // Runs op(sequence number), one collective at a time in issue order. A
  // failure of any kind fails the world on this rank and tells the others,
  // so nobody waits for a collective this rank abandoned.
  template <class Op>
  void run_collective(Op& op) {
    std::lock_guard lock(collective_mutex_);
    const auto seq = static_cast<std::int32_t>(seq_++);
    completions_.reclaim();  // the last collective's are all awaited or abandoned
    try {
      engine_->throw_if_failed();
      op(seq);
    } catch (const peer_lost& e) {
      engine_->abort_world(e.rank(), e.what());
      throw;
    } catch (const std::exception& e) {
      engine_->abort_world(rank(), e.what());
      throw;
    }
  }
  // Non-blocking: on the progress thread.
  template <class Op>
  request collective(Op op) {
    return progress_->submit([this, op = std::move(op)]() mutable { run_collective(op); });
  }
  // Blocking: on the calling thread unless non-blocking ones are still
  // queued (then after them), saving two thread hand-offs per call.
  template <class Op>
  void blocking(Op op) {
    if (progress_->idle()) return run_collective(op);
    collective(std::move(op)).wait();
  }

  completion_ptr post(int src, std::int32_t seq, std::uint32_t sub, wire::buffer* out) {
    auto done = completions_.take();
    engine_->post(src, {detail::tcp::frame_type::collective, seq, sub}, out, {}, true, done);
    return done;
  }
  completion_ptr post_raw(int src, std::int32_t seq, std::uint32_t sub, std::span<std::byte> to) {
    auto done = completions_.take();
    engine_->post(src, {detail::tcp::frame_type::collective, seq, sub}, nullptr, to, true, done);
    return done;
  }
  // While dst's socket is full, the write reads `drain`'s link (the
  // collective's next receives), so two ranks writing to each other keep
  // making room for each other.
  void put(int dst, std::int32_t seq, std::uint32_t sub, std::span<const std::byte> bytes,
           int drain = -1) {
    if (bytes.size() > engine_->options().max_message_bytes) {
      throw config_error("comm::tcp: a collective message of " + std::to_string(bytes.size()) +
                         " bytes exceeds max_message_bytes " +
                         std::to_string(engine_->options().max_message_bytes));
    }
    engine_->write(dst, {detail::tcp::frame_type::collective, seq, sub, 0}, bytes, drain);
  }
  void await(const completion_ptr& c, int src, const char* what) {
    // A reply often comes within microseconds: read for it on this thread
    // a while before sleeping on the condition variable (a wake-up costs more).
    const auto deadline = std::chrono::steady_clock::now() + timeout();
    engine_->poll(*c, src, engine_->options().busy_poll, deadline);
    std::unique_lock lock(c->mutex);
    if (!c->cv.wait_until(lock, deadline, [&] { return c->done; })) {
      lock.unlock();
      throw peer_lost(src, std::string("no data from rank ") + std::to_string(src) + " within " +
                               std::to_string(timeout().count()) + " ms during " + what);
    }
    if (c->error) {
      auto e = c->error;
      lock.unlock();
      std::rethrow_exception(e);
    }
  }

  // own[i] = in[i] op own[i] (in_first) or own[i] op in[i]; `in` is raw bytes.
  template <class T>
  static void combine(T* own, const std::byte* in, std::size_t len, reduce_op op, bool in_first) {
    // `in` may be unaligned for T: each entry is loaded through memcpy,
    // which compiles to plain (vector) loads, not a copy of the whole piece.
    const auto at = [in](std::size_t i) {
      T x;
      std::memcpy(&x, in + i * sizeof(T), sizeof(T));
      return x;
    };
    switch (op) {
      case reduce_op::sum:
      case reduce_op::average:
        if (in_first) {
          for (std::size_t i = 0; i < len; ++i) own[i] = static_cast<T>(at(i) + own[i]);
        } else {
          for (std::size_t i = 0; i < len; ++i) own[i] = static_cast<T>(own[i] + at(i));
        }
        break;
      case reduce_op::max:
        for (std::size_t i = 0; i < len; ++i)
          own[i] = in_first ? std::max(at(i), own[i]) : std::max(own[i], at(i));
        break;
      case reduce_op::min:
        for (std::size_t i = 0; i < len; ++i)
          own[i] = in_first ? std::min(at(i), own[i]) : std::min(own[i], at(i));
        break;
    }
  }

  template <class T>
  static void divide(T* v, std::size_t len, int n) {
    const T count = static_cast<T>(n);
    for (std::size_t i = 0; i < len; ++i) v[i] = static_cast<T>(v[i] / count);
  }

  // Everyone sends its vector to everyone and reduces in rank order 0..n-1:
  // one round trip, the same arithmetic as in_process.
  template <class T>
  void reduce_small(std::span<T> data, reduce_op op, std::int32_t seq) {
    const int n = size(), me = rank();
    const auto mine = std::as_bytes(data);
    auto& got = receives(idx(n));
    for (int q = 0; q < n; ++q) {
      if (q != me) got[idx(q)] = post(q, seq, 0, &scratch_[idx(q)]);
    }
    for (int q = 0; q < n; ++q) {
      if (q != me) put(q, seq, 0, mine, q);
    }
    for (int q = 0; q < n; ++q) {
      if (q == me) continue;
      await(got[idx(q)], q, "allreduce");
      if (scratch_[idx(q)].size() != mine.size()) {
        throw error("comm::tcp::allreduce: rank " + std::to_string(q) + " contributed " +
                    std::to_string(scratch_[idx(q)].size() / sizeof(T)) + " values, rank " +
                    std::to_string(me) + " " + std::to_string(data.size()));
      }
    }
    if (data.empty()) return;
    // In rank order, x0 op x1 op ...: rank 0 and rank 1 (x0 op data) fold
    // into data at once; the others first move their own values aside.
    int q = 1;
    if (me == 1) {
      combine(data.data(), scratch_[0].data(), data.size(), op, true);
      q = 2;
    } else if (me != 0) {
      scratch_[idx(me)].assign(mine);
      std::memcpy(data.data(), scratch_[0].data(), mine.size());
    }
    for (; q < n; ++q) combine(data.data(), scratch_[idx(q)].data(), data.size(), op, false);
    if (op == reduce_op::average) divide(data.data(), data.size(), n);
  }

  // Pipelined ring. Reduce-scatter step s: send chunk (me - s), receive chunk
  // (me - s - 1) from prev and fold it into ours, piece by piece, forwarding
  // each reduced piece at once; after n-1 steps chunk me+1 is final here.
  // Allgather: pass final chunks around the ring, read straight into `data`.
  template <class T>
  void reduce_ring(std::span<T> data, reduce_op op, std::int32_t seq) {
    const int n = size(), me = rank();
    const std::size_t d = data.size();
    const auto nn = static_cast<std::size_t>(n);
    const std::size_t piece =
        std::max<std::size_t>(1, engine_->options().ring_piece_bytes / sizeof(T));
    const int next = (me + 1) % n, prev = (me + n - 1) % n;
    const auto chunk = [&](int c) {
      const auto cc = static_cast<std::size_t>(((c % n) + n) % n);
      return std::pair<std::size_t, std::size_t>{d * cc / nn, d * (cc + 1) / nn};
    };
    const auto pieces = [&](std::pair<std::size_t, std::size_t> c) {
      return (c.second - c.first + piece - 1) / piece;
    };
    const auto piece_span = [&](std::pair<std::size_t, std::size_t> c, std::size_t j) {
      const std::size_t lo = c.first + j * piece, hi = std::min(c.second, lo + piece);
      return data.subspan(lo, hi - lo);
    };
    const auto rs_sub = [](int s) { return static_cast<std::uint32_t>(1 + s); };
    const auto ag_sub = [n](int s) { return static_cast<std::uint32_t>(n + s); };

    // Every piece comes from prev: this thread reads them, no other is woken.
    const detail::tcp::engine::kept_link from_prev(*engine_, prev);
    // The allgather's receive of a piece is posted as soon as this rank is
    // done with that piece of `data` (sent it, or reduced and forwarded it),
    // long before its final value can arrive: the frame is then read in
    // place, where one that arrived first would be copied.
    if (finals_.size() < nn - 1) finals_.resize(nn - 1);
    for (auto& f : finals_) f.clear();
    const auto expect_final = [&](int s, std::pair<std::size_t, std::size_t> c, std::size_t j) {
      finals_[static_cast<std::size_t>(s)].push_back(
          post_raw(prev, seq, ag_sub(s), std::as_writable_bytes(piece_span(c, j))));
    };

    // Reduce-scatter.
    const auto first_send = chunk(me);
    std::size_t sent = 0;
    for (int s = 0; s + 1 < n; ++s) {
      const auto rc = chunk(me - s - 1);
      const std::size_t np = pieces(rc);
      if (pieces_.size() < np) pieces_.resize(np);
      auto& got = receives(np);
      for (std::size_t j = 0; j < np; ++j) got[j] = post(prev, seq, rs_sub(s), &pieces_[j]);
      for (std::size_t j = 0; j < np; ++j) {
        if (s == 0) {  // keep our own chunk flowing ahead of the reduction
          for (; sent < pieces(first_send) && sent <= j + 1; ++sent) {
            put(next, seq, rs_sub(0), std::as_bytes(piece_span(first_send, sent)), prev);
            expect_final(0, first_send, sent);
          }
        }
        const auto target = piece_span(rc, j);
        await(got[j], prev, "allreduce");
        if (pieces_[j].size() != target.size_bytes()) {
          throw error("comm::tcp::allreduce: rank " + std::to_string(prev) + " sent a piece of " +
                      std::to_string(pieces_[j].size()) + " bytes, expected " +
                      std::to_string(target.size_bytes()) +
                      " (do the ranks disagree on the vector size?)");
        }
        combine(target.data(), pieces_[j].data(), target.size(), op, true);
        if (s + 2 == n) {
          if (op == reduce_op::average) divide(target.data(), target.size(), n);
          put(next, seq, ag_sub(0), std::as_bytes(target), prev);
        } else {
          put(next, seq, rs_sub(s + 1), std::as_bytes(target), prev);
          expect_final(s + 1, rc, j);
        }
      }
      if (s == 0) {
        for (; sent < pieces(first_send); ++sent) {
          put(next, seq, rs_sub(0), std::as_bytes(piece_span(first_send, sent)), prev);
          expect_final(0, first_send, sent);
        }
      }
    }
    // Allgather.
    for (int s = 0; s + 1 < n; ++s) {
      const auto rc = chunk(me - s);
      const auto& got = finals_[static_cast<std::size_t>(s)];
      for (std::size_t j = 0; j < got.size(); ++j) {
        await(got[j], prev, "allreduce");
        if (s + 2 < n) put(next, seq, ag_sub(s + 1), std::as_bytes(piece_span(rc, j)), prev);
      }
    }
  }

  std::shared_ptr<detail::tcp::engine> engine_;
  std::mutex collective_mutex_;        // one collective at a time
  std::uint32_t seq_ = 0;              // under collective_mutex_
  std::vector<wire::buffer> scratch_;  // one per rank, reused
  std::vector<wire::buffer> pieces_;   // ring pieces, reused
  // Room for the receives of a collective's next round. Completions are
  // reclaimed only between collectives (run_collective): a ring's
  // allgather receives stay posted through its reduce-scatter's rounds.
  // Under collective_mutex_, as the three below.
  std::vector<completion_ptr>& receives(std::size_t count) {
    got_.clear();
    got_.resize(count);
    return got_;
  }
  std::vector<completion_ptr> got_;
  std::vector<std::vector<completion_ptr>> finals_;  // a ring's allgather receives, by step
  detail::completion_pool completions_;
  std::unique_ptr<detail::progress_thread> progress_;
  std::unique_ptr<detail::progress_thread> sender_;
};

}  // namespace loco::comm
