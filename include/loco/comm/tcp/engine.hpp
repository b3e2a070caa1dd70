#pragma once
// The transport under comm::tcp: one authenticated socket per peer (a full
// mesh), frames read from every peer all the time, and matching of arrived
// frames against posted receives. Writes happen on the caller's thread with
// sendmsg (header and payload gathered, no copy); reads of collective pieces
// go straight into their destination when the receive was posted first.
// An I/O thread runs an asio::io_context for accepting and handshakes.
//
// Plain links are read by whoever holds the read token (engine_poll.hpp): a
// reader thread woken by epoll, or a caller busy-polling the link it waits
// on (tcp_options::busy_poll), which then needs no thread woken at all.
//
// With TLS (options.tls) every link is an Asio OpenSSL stream owned by the
// I/O thread: the handshake, frame reads and frame writes all run there, and
// a caller's write waits for its completion (await_io) instead of calling
// sendmsg. The token handshake runs inside TLS, unchanged.
//
// Failure model: a peer whose connection drops, who sends a malformed frame,
// who reports an abort or from whom nothing arrived for heartbeat_misses
// heartbeat intervals fails every receive waiting on it, and the world
// (every collective) with it; point-to-point traffic with the others goes on. Sockets are shut
// down, never closed, while other threads may write to them, so a descriptor number is never reused
// under a writer; they are closed once the I/O thread has stopped.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <loco/comm/tcp/asio.hpp>
#include <loco/comm/tcp/endpoint.hpp>

#include <loco/comm/detail/thread_name.hpp>
#include <loco/comm/request.hpp>
#include <loco/comm/tcp/frame.hpp>
#include <loco/comm/tcp/handshake.hpp>
#include <loco/comm/tcp/options.hpp>
#include <loco/comm/tcp/socket_io.hpp>
#include <loco/comm/tcp/tls.hpp>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>

namespace loco::comm::detail::tcp {

using socket_t = asio::ip::tcp::socket;

// What a receive matches besides its source.
struct key {
  frame_type type = frame_type::data;
  std::int32_t tag = 0;
  std::uint32_t sub = 0;
  bool operator==(const key&) const = default;
};

class engine {
 public:
  engine(const tcp_options& o)
      : tls_(o.tls.enabled ? make_tls_context(o.tls) : nullptr),
        options_(o),
        size_(o.world_size),
        rank_(o.rank),
        peers_(static_cast<std::size_t>(o.world_size)),
        claimed_(static_cast<std::size_t>(o.world_size), false),
        replacing_(static_cast<std::size_t>(o.world_size), false) {
    // Sized once, so that steady state allocates nothing.
    spares_.reserve(max_spares);
    pending_.reserve(64);
    queue_.reserve(64);
  }
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;
  ~engine() { shutdown(); }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  const tcp_options& options() const noexcept { return options_; }
  // The port rank 0 accepts on (useful when the coordinator asked for port 0).
  unsigned short listen_port() const noexcept { return listen_port_; }

  // ------------------------------------------------------------ rendezvous
  // Binds the acceptor. A rank above 0 takes an ephemeral port, which the
  // kernel may hand out even when it is the coordinator's port and rank 0 has
  // not bound it yet: that rank would then register with itself. It binds
  // again until it holds another port.
  void open_listener(const endpoint_t& listen, unsigned short coordinator_port) {
    for (int attempt = 0;; ++attempt) {
      acceptor_.open(listen.protocol());
      acceptor_.set_option(asio::socket_base::reuse_address(true));
      boost::system::error_code ec;
      acceptor_.bind(listen, ec);
      if (ec) {
        throw config_error("comm::tcp: rank " + std::to_string(rank_) + " cannot listen on " +
                           describe(listen) + ": " + ec.message());
      }
      listen_port_ = acceptor_.local_endpoint().port();
      if (rank_ == 0 || listen_port_ != coordinator_port || attempt == 16) break;
      acceptor_.close(ec);
    }
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  void join() {
    if (size_ == 1) return;
    const auto deadline = clock::now() + options_.timeout;
    const endpoint_t coordinator = parse_endpoint(options_.coordinator, "coordinator");
    const endpoint_t listen =
        rank_ == 0
            ? coordinator
            : endpoint_t(parse_endpoint(options_.listen_host + ":0", "listen_host").address(), 0);
    open_listener(listen, coordinator.port());
    accept_next();
    io_thread_ = std::thread([this] {
      name_this_thread("loco-tcp-io");
      io_.run();
    });

    if (options_.rejoin) {
      // A replacement of a lost rank: the coordinator takes it in place of
      // the lost link; the other ranks stay unconnected (comm::elastic
      // routes everything through rank 0).
      adopt(connect(coordinator, 0, deadline));
      {
        std::lock_guard lock(mutex_);
        joined_ = true;
      }
      start_reading();
      start_heartbeats();
      return;
    }
    if (rank_ > 0) {
      // Register with the coordinator, learn where the others listen, and
      // connect to every lower rank; higher ranks connect to us.
      auto link = connect(coordinator, 0, deadline);
      const auto table = read_table(*link, deadline);
      adopt(std::move(link));
      for (int q = 1; q < rank_; ++q)
        adopt(connect(table[static_cast<std::size_t>(q)], q, deadline));
    }
    {
      std::unique_lock lock(mutex_);
      const auto all_joined = [&] {
        for (int q = rank_ + 1; q < size_; ++q) {
          if (!peers_[static_cast<std::size_t>(q)]) return false;
        }
        return true;
      };
      if (!cv_.wait_until(lock, deadline, all_joined)) {
        int missing = rank_ + 1;
        while (peers_[static_cast<std::size_t>(missing)]) ++missing;
        throw peer_lost(missing, "did not join the world within " +
                                     std::to_string(options_.timeout.count()) + " ms");
      }
      joined_ = true;  // from now on every inbound connection is refused
    }
    if (rank_ == 0) send_tables(deadline);
    start_reading();
    start_heartbeats();
  }

  // Ranks whose lost link a replacement process took over since the last
  // call (rank 0 only; tcp_options::rejoin).
  std::vector<int> take_rejoined() {
    std::lock_guard lock(mutex_);
    return std::exchange(rejoined_, {});
  }

  // ------------------------------------------------------------ writes
  // Sends a frame to dst. While dst's socket is full, a collective reads
  // `drain`'s link (where its next receives come from; plain links).
  void write(int dst, frame_header h, std::span<const std::byte> payload, int drain = -1) {
    peer* link = nullptr;
    peer* from = nullptr;
    {
      std::lock_guard lock(mutex_);
      // A slot changes only when a replacement takes over a lost link; the
      // old peer lives on (graveyard_), so the pointer stays valid.
      link = peers_[static_cast<std::size_t>(dst)].get();
      if (drain >= 0 && drain != rank_ && !tls_)
        from = peers_[static_cast<std::size_t>(drain)].get();
      if (link == nullptr) throw peer_lost(dst, "not connected to this rank (it rejoined)");
      // A collective reports the world's root cause, not a peer that left
      // because of it.
      if (h.type == frame_type::collective && world_failure_) {
        std::rethrow_exception(world_failure_);
      }
      if (link->failure) std::rethrow_exception(link->failure);
    }
    peer& p = *link;
    h.length = payload.size();
    auto head = encode_header(h);
    std::lock_guard guard(p.write_mutex);
    iovec iov[2] = {{head.data(), head.size()},
                    {const_cast<std::byte*>(payload.data()), payload.size()}};
    const int parts = payload.empty() ? 1 : 2;
    const auto deadline = clock::now() + options_.timeout;
    const auto r = from != nullptr ? write_draining(p, iov, parts, deadline, *from)
                                   : link_write(p, iov, parts, deadline);
    if (r.status != io_status::ok) {
      {
        // The link failed meanwhile (a bad frame from it, say): that is the cause.
        std::lock_guard lock(mutex_);
        if (h.type == frame_type::collective && world_failure_) {
          std::rethrow_exception(world_failure_);
        }
        if (link->failure) std::rethrow_exception(link->failure);
      }
      throw peer_lost(dst, "sending " + std::to_string(payload.size()) + " bytes to " + p.name +
                               " failed: " + r.describe());
    }
  }

  // ------------------------------------------------------------ receives
  // Posts a receive of the next frame from src (or any_source) matching k.
  // With `raw`, the payload must have exactly raw.size() bytes and lands
  // there; otherwise it replaces *out. `direct` lets the I/O thread read into
  // the destination itself (collectives, whose memory outlives the wait or
  // is protected by abort_world()). `done` is fresh, or a finished one
  // reused: once finished the engine no longer touches it.
  void post(int src, key k, wire::buffer* out, std::span<std::byte> raw, bool direct,
            const std::shared_ptr<completion>& done) {
    std::lock_guard lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->k == k && (src == any_source || it->source == src)) {
        deliver({src, k, out, raw, direct, done}, it->source, it->bytes);
        keep_spare_locked(std::move(it->bytes));
        queue_.erase(it);
        return;
      }
    }
    if (auto failure = failure_for(src, k); failure) return done->finish(-1, failure);
    pending_.push_back({src, k, out, raw, direct, done});
  }

  // A message to ourselves: matched like an arrived frame.
  void loopback(key k, std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    auto copy = take_spare_locked();
    copy.assign(bytes);
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->k == k && (it->source == any_source || it->source == rank_)) {
        deliver(*it, rank_, copy);
        pending_.erase(it);
        keep_spare_locked(std::move(copy));
        return;
      }
    }
    queue_.push_back({rank_, k, std::move(copy)});
  }

  // Withdraws a posted receive; false if it already completed or is being read.
  bool cancel(const std::shared_ptr<completion>& done) {
    std::lock_guard lock(mutex_);
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->done == done) {
        pending_.erase(it);
        return true;
      }
    }
    return false;
  }

  // A collective failed on this rank (timeout, bad data): fail the world,
  // tell the others, and make sure no read lands in the caller's memory
  // after this returns.
  void abort_world(int blamed, const std::string& why) {
    bool announce = false;
    std::string reason = why;
    {
      std::lock_guard lock(mutex_);
      if (!world_failure_) {
        world_failure_ = std::make_exception_ptr(peer_lost(blamed, bare_reason(why)));
      }
      world_aborted_ = true;
      fail_pending_locked(-2, world_failure_);
      announce = !announced_;
      announced_ = true;
      // Name the root cause the world failed with, not this rank's symptom.
      try {
        std::rethrow_exception(world_failure_);
      } catch (const peer_lost& e) {
        blamed = e.rank();
        reason = e.what();
      } catch (...) {
      }
    }
    if (announce) {
      reason = bare_reason(reason);  // the receiver wraps it in its own peer_lost
      const wire::buffer note = encode_abort({blamed, reason});
      for (int q = 0; q < size_; ++q) {
        if (q == rank_ || slot(q) == nullptr) continue;
        try {
          write(q, {frame_type::abort, 0, 0, 0}, note.bytes());
        } catch (const std::exception&) {  // best effort: that peer is gone too
        }
      }
    }
    stop_direct_reads();
  }

  // Throws the world's failure, if any (a collective must not start on a broken world).
  void throw_if_failed() {
    std::lock_guard lock(mutex_);
    if (world_failure_) std::rethrow_exception(world_failure_);
  }

  // ------------------------------------------------------------ shutdown
  void shutdown();

 private:
  struct pending {
    int source;
    key k;
    wire::buffer* out;
    std::span<std::byte> raw;
    bool direct;
    std::shared_ptr<completion> done;
  };
  struct message {
    int source;
    key k;
    wire::buffer bytes;
  };
  struct peer {
    // A plain link's descriptor leaves Asio (the peer closes it): Asio's
    // reactor watches every socket it owns, edge-triggered, and woke the
    // I/O thread as frames arrived, although engine_poll.hpp reads them.
    peer(int r, std::string n, socket_t s) : rank(r), name(std::move(n)), fd(s.release()) {}
    peer(int r, std::string n, std::unique_ptr<tls_stream> t)
        : rank(r), name(std::move(n)), tls(std::move(t)), fd(tls->next_layer().native_handle()) {}
    peer(const peer&) = delete;
    peer& operator=(const peer&) = delete;
    ~peer() {
      if (!tls) ::close(fd);
    }
    const int rank;
    const std::string name;
    std::unique_ptr<tls_stream> tls;  // set on TLS links (used by the I/O thread only)
    const int fd;
    socket_t& sock() noexcept { return tls->next_layer(); }  // TLS links only
    std::mutex write_mutex;
    // Whoever reads the link only: the I/O thread (TLS) or the read
    // token's holder (plain links).
    std::array<std::byte, header_bytes> header_in{};
    frame_header current;
    wire::buffer incoming;
    std::optional<pending> in_place;  // a direct receive being read into its destination
    // Where the payload's next bytes go (in_place's memory, or `incoming`), and how many are left.
    std::byte* dst = nullptr;
    std::size_t left = 0;
    // Plain links (engine_poll.hpp), the read token's holder only.
    enum class stage : std::uint8_t { header, payload, discard } at = stage::header;
    std::size_t header_got = 0;
    // Set once its reading ended (closed, failed); read by release_reads() after the token is gone.
    std::atomic<bool> ended{false};
    // Its one-shot epoll interest fired or was withdrawn: the token's releaser re-arms it.
    std::atomic<bool> disarmed{false};
    // A ring allreduce receives from it (engine::kept_link): whoever holds
    // the token leaves it disarmed, and the collective's caller reads it.
    std::atomic<bool> kept{false};
    // Guarded by the engine's mutex.
    std::exception_ptr failure;
    bool goodbye = false;
    bool read_closed = false;
    bool silent = false;  // the heartbeat check found it lost
    // When bytes last arrived from this peer (steady clock, ns): the I/O
    // thread stamps it, the heartbeat thread reads it.
    std::atomic<std::int64_t> last_heard{0};
    void heard() noexcept {
      last_heard.store(clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    }
  };

  // An inbound connection going through the server side of the handshake
  // (engine_join.hpp).
  class inbound;

  // The peer in slot q, read under the mutex (a rejoin may replace it).
  peer* slot(int q) {
    std::lock_guard lock(mutex_);
    return peers_[static_cast<std::size_t>(q)].get();
  }

  // Starts reading every link; frames that arrived meanwhile wait in the kernel.
  void start_reading() {
    {
      std::lock_guard lock(mutex_);
      while (spares_.size() < ready_buffers()) spares_.emplace_back(copy_below);
    }
    if (!tls_) return start_plain_reader();
    std::promise<void> started;
    asio::post(io_, [this, &started] {
      for (auto& p : peers_) {
        if (p) read_header(*p);
      }
      started.set_value();
    });
    started.get_future().wait();
  }

  // "loco: lost peer rank 2: why" -> "why", so a reason is not wrapped twice.
  static std::string bare_reason(std::string why) {
    static constexpr std::string_view prefix = "loco: lost peer rank ";
    while (why.rfind(prefix, 0) == 0) {
      const auto at = why.find(": ", prefix.size());
      if (at == std::string::npos) break;
      why = why.substr(at + 2);
    }
    return why;
  }

  void log(const std::string& line) {
    const std::string text = "loco comm::tcp rank " + std::to_string(rank_) + ": " + line;
    if (options_.log) {
      options_.log(text);
    } else {
      std::cerr << text + "\n" << std::flush;
    }
  }

  std::string peer_name(int q) const {
    const auto& p = peers_[static_cast<std::size_t>(q)];
    return p ? p->name : "rank " + std::to_string(q);
  }

  // ------------------------------------------------------------ joining (I/O thread)
  void accept_next();

  // Why a connection claiming `rank` cannot join here (empty when it may).
  std::string refuse_rank(int rank);
  bool claim(int rank);
  void unclaim(int rank);
  bool replaceable_locked(int rank) const;

  void adopt_inbound(int rank, socket_t s, std::unique_ptr<tls_stream> tls,
                     asio::ip::address address, unsigned short port, const std::string& name);

  static void configure(socket_t& s);

  // ------------------------------------------------------------ joining (caller thread)
  std::unique_ptr<peer> connect(const endpoint_t& to, int q, clock::time_point deadline);

  // An io_result with the error code behind it (TLS operations).
  struct io_outcome : io_result {
    boost::system::error_code code;
  };

  // TLS handshake (we are the client), then the token handshake inside it.
  std::unique_ptr<peer> connect_tls(socket_t s, int q, const std::string& name,
                                    clock::time_point deadline);

  // A TLS alert (the peer refused our certificate, say) is a protocol_error
  // naming the peer; timeouts and closed connections go on as io_results.
  static io_result checked(const std::string& name, const io_outcome& r);

  // Runs an asynchronous operation on the I/O thread and waits for it until
  // the deadline (TLS links: their stream belongs to the I/O thread). On
  // timeout the operation is cancelled and the call returns only after its
  // handler ran, so the buffers may go. start(done) initiates the operation.
  template <class Start>
  io_outcome await_io(socket_t& lowest, clock::time_point deadline, Start start);

  // Writes every byte of the iovecs before the deadline: sendmsg on the
  // caller's thread, or through the TLS stream on the I/O thread. A timed
  // out TLS write leaves a partial record behind, so the link fails.
  io_result link_write(peer& p, iovec* iov, int count, clock::time_point deadline);

  // Reads exactly n bytes before the deadline, before the I/O thread reads the link.
  io_result link_read(peer& p, void* data, std::size_t n, clock::time_point deadline);

  void adopt(std::unique_ptr<peer> p);

  // Table layout: see encode_table (frame.hpp).
  void send_tables(clock::time_point deadline);

  std::vector<endpoint_t> read_table(peer& coordinator, clock::time_point deadline);

  // ------------------------------------------------------------ heartbeats (engine_heartbeat.hpp)
  void start_heartbeats();
  void stop_heartbeats();
  void heartbeat_loop();

  // ------------------------------------------------------------ reading (I/O thread)
  // Reads on the link's stream: the socket, or TLS over it.
  template <class Buffer, class Handler>
  static void read_exactly(peer& p, const Buffer& b, Handler&& h);
  template <class Buffer, class Handler>
  static void read_some(peer& p, const Buffer& b, Handler&& h);

  void read_header(peer& p);

  void on_header(peer& p, const boost::system::error_code& ec);

  // What follows a frame's header (both kinds of link): the next header
  // (heartbeat, goodbye), `p.left` payload bytes into `p.dst` (in place
  // when p.in_place is set), or nothing (the link failed).
  enum class after_header { header, payload, stop };
  after_header begin_frame(peer& p);
  // A frame's payload has arrived; false if the link failed on it.
  bool end_payload(peer& p);
  void end_in_place(peer& p);

  // Reads into a collective's destination one read_some at a time. When
  // stop_direct_reads_here() withdraws the destination (its owner may free
  // it) the pending read is cancelled and the rest of the frame is read into
  // a sink, so the link stays usable. Every recv runs on this thread, so
  // none can be in flight into the destination after the withdrawal.
  void read_in_place(peer& p, std::byte* dst, std::size_t left);
  void discard(peer& p, std::size_t left);

  void on_payload(peer& p, const boost::system::error_code& ec);

  // Completes a receive with a message's bytes (under the mutex). A buffer
  // target gets a copy up to copy_below bytes, above that the bytes by swap
  // (then `bytes` holds the target's old storage).
  void deliver(const pending& r, int from, wire::buffer& bytes);

  void on_read_error(peer& p, const boost::system::error_code& ec, bool mid_frame);

  // A broken link: fail everything waiting on that peer and the world's
  // collectives, and stop reading from it (I/O thread).
  void fail_link(peer& p, std::exception_ptr failure);

  void fail_peer_locked(peer& p, std::exception_ptr failure, bool world);

  // Fails posted receives: from `rank` (and any_source) when rank >= 0;
  // every collective and any_source receive when rank == -2; every
  // collective when rank == -3. Returns whether an any_source one failed.
  bool fail_pending_locked(int rank, std::exception_ptr failure);

  std::exception_ptr failure_for(int src, key k);

  // Cancels every read going straight into a collective's destination, so
  // the caller may free that memory (I/O thread).
  void stop_direct_reads_here();
  void stop_direct_reads();

  void fail_all(std::exception_ptr e);

  // ------------------------------------------------------------ plain links (engine_poll.hpp)
  void start_plain_reader();
  void watch(peer& p);
  void stop_plain_reader();
  void close_plain_reader();
  // Holds the read token for a scope (taken already), so an exception
  // cannot leave it held.
  struct reads_held {
    engine& e;
    ~reads_held() { e.release_reads(); }
  };
  void reader_loop();
  // The read token: whoever holds it reads plain links, and owns their read state.
  bool take_reads() noexcept { return !reading_.exchange(true); }
  void take_reads_waiting();
  void release_reads();
  // epoll_ctl(op) for p with `events`, one-shot.
  int interest(peer& p, int op, std::uint32_t events);
  void arm(peer& p);
  void end_watch(peer& p);
  // Reads what p's socket holds now, frames and all (token held); true if
  // it read anything.
  bool pump(peer& p);
  void consume(peer& p, std::size_t n);
  // Reads (and re-arms) the links whose events the reader thread left to a
  // caller busy-polling `polled`.
  void pump_disarmed(const peer& polled);
  // fail_link on whatever reads p: the I/O thread (TLS) or the token's holder.
  void fail_link_from_outside(peer& p, std::exception_ptr failure);
  // poll() with the token: reads p until c is finished, or for `spin`
  // after the last byte arrived (a kept link: until `deadline`).
  void read_until(peer& p, completion& c, std::chrono::microseconds spin,
                  clock::time_point deadline);
  // write() for a collective (plain links): while `to` is full, reads `from`.
  io_result write_draining(peer& to, iovec* iov, int count, clock::time_point deadline, peer& from);
  // The token's holder reads p itself: no thread is woken for it until the
  // token's release re-arms it.
  void read_here(peer& p);
  // Reads the links the reader thread was woken for while we held the token.
  void read_missed(const peer& polled);
  static bool finished(completion& c);

 public:
  // A caller about to wait for c, a receive from src: reads src's link on
  // this thread for up to `spin` (plain links; it saves a thread wake-up),
  // or only watches c (TLS, or while another thread reads). A kept link is
  // read until c is finished or `deadline`: no other thread would read it.
  void poll(completion& c, int src, std::chrono::microseconds spin, clock::time_point deadline);

  // For a ring allreduce's duration, src's frames wake no thread: its
  // caller reads them whenever it waits for one (poll) or its own write
  // would block (write_draining). Between ring pieces the reader thread
  // would otherwise be woken for each piece and hand it over. A no-op for
  // TLS and for src == rank.
  class kept_link {
   public:
    kept_link(engine& e, int src);
    ~kept_link();
    kept_link(const kept_link&) = delete;
    kept_link& operator=(const kept_link&) = delete;

   private:
    engine& e_;
    peer* p_ = nullptr;
  };

 private:
  // Payload storage circulates: frames read ahead of their receive take
  // it, receives swap it with the caller's buffer, spares_ keeps the rest.
  static constexpr std::size_t max_spares = 64;
  // deliver() copies payloads up to this size into the receiver's buffer
  // rather than swapping buffers, and read buffers are never smaller.
  static constexpr std::size_t copy_below = 64 * 1024;
  wire::buffer take_spare_locked();
  // Read buffers made at the start: two small frames per peer arriving
  // ahead of their receives and a third being read, so that the backlog
  // collectives make allocates nothing.
  std::size_t ready_buffers() const noexcept {
    return std::min<std::size_t>(3 * static_cast<std::size_t>(size_ - 1), 24);
  }
  void keep_spare_locked(wire::buffer&& b) {
    if (b.capacity() != 0 && spares_.size() < max_spares) spares_.push_back(std::move(b));
  }
  // Gives p.incoming room for `bytes`: the smallest spare that fits takes
  // its place, so a large frame does not grow a small buffer while a large
  // one sits unused (each growth is an allocation).
  void fit_incoming(peer& p, std::size_t bytes);

 public:
  // Returns a delivered message's storage to the pool (no allocation in steady state).
  void give_spare(wire::buffer&& b) {
    std::lock_guard lock(mutex_);
    keep_spare_locked(std::move(b));
  }

 private:
  std::unique_ptr<asio::ssl::context> tls_;  // null without TLS; outlives every stream
  const tcp_options options_;
  const int size_;
  const int rank_;
  asio::io_context io_;  // first: outlives the sockets and timers below
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  asio::ip::tcp::acceptor acceptor_{io_};
  unsigned short listen_port_ = 0;
  std::vector<std::unique_ptr<peer>> peers_;
  std::vector<std::unique_ptr<peer>> graveyard_;  // links replaced by a rejoin (kept: see write)
  std::vector<int> rejoined_;                     // ranks rejoined since take_rejoined()
  std::vector<std::weak_ptr<inbound>> inbound_;   // I/O thread only
  bool stopping_ = false;                         // I/O thread only

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<bool> claimed_;
  std::vector<bool> replacing_;  // a replacement's handshake is under way
  std::map<int, endpoint_t> table_;
  bool joined_ = false;
  // Vectors, not deques: their memory stays between collectives.
  std::vector<message> queue_;
  std::vector<pending> pending_;
  std::vector<wire::buffer> spares_;
  std::exception_ptr world_failure_;
  bool world_aborted_ = false;                        // a collective failed (any rank's abort)
  std::deque<std::exception_ptr> unreported_losses_;  // lost peers no any_source receive saw
  bool announced_ = false;                            // abort frames sent

  std::thread io_thread_;

  // Plain links' reader (engine_poll.hpp).
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd that stops the reader thread
  std::thread reader_thread_;
  std::atomic<bool> reading_{false};  // the read token
  std::atomic<int> token_wanted_{0};  // threads in take_reads_waiting()
  std::atomic<bool> missed_{false};   // the reader found the token taken
  std::mutex watched_mutex_;
  std::vector<peer*> watched_;  // every plain link ever read (replaced ones stay, ended)

  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_cv_;
  bool heartbeat_stop_ = false;
  std::thread heartbeat_thread_;
};

}  // namespace loco::comm::detail::tcp

// The engine's members by concern.
#include <loco/comm/tcp/engine_heartbeat.hpp>
#include <loco/comm/tcp/engine_join.hpp>
#include <loco/comm/tcp/engine_poll.hpp>
#include <loco/comm/tcp/engine_read.hpp>
