#pragma once
// The transport under comm::tcp: one authenticated socket per peer (a full
// mesh), one I/O thread running an asio::io_context that reads frames from
// every peer all the time, and matching of arrived frames against posted
// receives. Writes happen on the caller's thread with sendmsg (header and
// payload gathered, no copy); reads of collective pieces go straight into
// their destination when the receive was posted first.
//
// With TLS (options.tls) every link is an Asio OpenSSL stream owned by the
// I/O thread: the handshake, frame reads and frame writes all run there, and
// a caller's write waits for its completion (await_io) instead of calling
// sendmsg. The token handshake runs inside TLS, unchanged.
//
// Failure model: a peer whose connection drops, who sends a malformed frame
// or who reports an abort fails every receive waiting on it, and the world
// (every collective) with it. Sockets are shut down, never closed, while
// other threads may write to them, so a descriptor number is never reused
// under a writer; they are closed once the I/O thread has stopped.
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

// GCC's late -Wnull-dereference fires inside Asio's scheduler after inlining,
// and GCC 12's -Wtsan on Asio's fences under -fsanitize=thread.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#pragma GCC diagnostic ignored "-Wtsan"
#endif
#include <boost/asio.hpp>
#pragma GCC diagnostic pop

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

namespace asio = boost::asio;
using socket_t = asio::ip::tcp::socket;
using endpoint_t = asio::ip::tcp::endpoint;

// What a receive matches besides its source.
struct key {
  frame_type type = frame_type::data;
  std::int32_t tag = 0;
  std::uint32_t sub = 0;
  bool operator==(const key&) const = default;
};

inline std::string describe(const endpoint_t& ep) {
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// "host:port" -> endpoint; the host may be a name.
inline endpoint_t parse_endpoint(const std::string& text, const char* what) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    throw config_error(std::string("comm::tcp: ") + what + " '" + text + "' is not host:port");
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) {
    throw config_error(std::string("comm::tcp: ") + what + " port '" + port_text +
                       "' is not in [0, 65535]");
  }
  boost::system::error_code error;
  auto address = asio::ip::make_address(host, error);
  if (error) {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    auto results = resolver.resolve(host, port_text, error);
    if (error || results.empty()) {
      throw config_error(std::string("comm::tcp: cannot resolve ") + what + " host '" + host +
                         "': " + error.message());
    }
    return results.begin()->endpoint();
  }
  return {address, static_cast<unsigned short>(port)};
}

class engine {
 public:
  engine(const tcp_options& o)
      : tls_(o.tls.enabled ? make_tls_context(o.tls) : nullptr),
        options_(o),
        size_(o.world_size),
        rank_(o.rank),
        peers_(static_cast<std::size_t>(o.world_size)),
        claimed_(static_cast<std::size_t>(o.world_size), false) {}
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;
  ~engine() { shutdown(); }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  const tcp_options& options() const noexcept { return options_; }
  // The port rank 0 accepts on (useful when the coordinator asked for port 0).
  unsigned short listen_port() const noexcept { return listen_port_; }

  // ------------------------------------------------------------ rendezvous
  void join() {
    if (size_ == 1) return;
    const auto deadline = clock::now() + options_.timeout;
    const endpoint_t coordinator = parse_endpoint(options_.coordinator, "coordinator");
    const endpoint_t listen =
        rank_ == 0
            ? coordinator
            : endpoint_t(parse_endpoint(options_.listen_host + ":0", "listen_host").address(), 0);
    acceptor_.open(listen.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    boost::system::error_code ec;
    acceptor_.bind(listen, ec);
    if (ec) {
      throw config_error("comm::tcp: rank " + std::to_string(rank_) + " cannot listen on " +
                         describe(listen) + ": " + ec.message());
    }
    acceptor_.listen(asio::socket_base::max_listen_connections);
    listen_port_ = acceptor_.local_endpoint().port();
    accept_next();
    io_thread_ = std::thread([this] { io_.run(); });

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
    // Start reading; frames that arrived meanwhile wait in the kernel.
    std::promise<void> started;
    asio::post(io_, [this, &started] {
      for (auto& p : peers_) {
        if (p) read_header(*p);
      }
      started.set_value();
    });
    started.get_future().wait();
  }

  // ------------------------------------------------------------ writes
  void write(int dst, frame_header h, std::span<const std::byte> payload) {
    peer& p = *peers_[static_cast<std::size_t>(dst)];
    {
      std::lock_guard lock(mutex_);
      // A collective reports the world's root cause, not a peer that left
      // because of it.
      if (h.type == frame_type::collective && world_failure_) {
        std::rethrow_exception(world_failure_);
      }
      if (p.failure) std::rethrow_exception(p.failure);
    }
    h.length = payload.size();
    auto head = encode_header(h);
    std::lock_guard guard(p.write_mutex);
    iovec iov[2] = {{head.data(), head.size()},
                    {const_cast<std::byte*>(payload.data()), payload.size()}};
    const auto r = link_write(p, iov, payload.empty() ? 1 : 2, clock::now() + options_.timeout);
    if (r.status != io_status::ok) {
      throw peer_lost(dst, "sending " + std::to_string(payload.size()) + " bytes to " + p.name +
                               " failed: " + r.describe());
    }
  }

  // ------------------------------------------------------------ receives
  // Posts a receive of the next frame from src (or any_source) matching k.
  // With `raw`, the payload must have exactly raw.size() bytes and lands
  // there; otherwise it replaces *out. `direct` lets the I/O thread read into
  // the destination itself (collectives, whose memory outlives the wait or
  // is protected by abort_world()).
  std::shared_ptr<completion> post(int src, key k, wire::buffer* out, std::span<std::byte> raw,
                                   bool direct) {
    auto done = std::make_shared<completion>();
    std::lock_guard lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->k == k && (src == any_source || it->source == src)) {
        deliver({src, k, out, raw, direct, done}, it->source, it->bytes, peer_name(it->source));
        if (it->bytes.capacity() != 0 && spares_.size() < 64)
          spares_.push_back(std::move(it->bytes));
        queue_.erase(it);
        return done;
      }
    }
    if (auto failure = failure_for(src, k); failure) {
      done->finish(-1, failure);
      return done;
    }
    pending_.push_back({src, k, out, raw, direct, done});
    return done;
  }

  // A message to ourselves: matched like an arrived frame.
  void loopback(key k, std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    auto copy = take_spare_locked();
    copy.assign(bytes);
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->k == k && (it->source == any_source || it->source == rank_)) {
        deliver(*it, rank_, copy, "rank " + std::to_string(rank_));
        pending_.erase(it);
        if (copy.capacity() != 0 && spares_.size() < 64) spares_.push_back(std::move(copy));
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
        if (q == rank_ || !peers_[static_cast<std::size_t>(q)]) continue;
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
  void shutdown() {
    if (!io_thread_.joinable()) {
      fail_all(std::make_exception_ptr(error("comm::tcp: communicator destroyed")));
      return;
    }
    // Say goodbye, then wait (bounded) for every peer's goodbye and EOF, so
    // no connection is reset while the peer still reads our last frames.
    const auto linger = std::min<duration>(options_.timeout, duration(2000));
    for (int q = 0; q < size_; ++q) {
      auto& p = peers_[static_cast<std::size_t>(q)];
      if (!p) continue;
      bool failed;
      {
        std::lock_guard lock(mutex_);
        failed = static_cast<bool>(p->failure) && !p->goodbye;
      }
      if (failed) continue;
      auto head = encode_header({frame_type::goodbye, 0, 0, 0});
      std::lock_guard guard(p->write_mutex);
      iovec iov{head.data(), head.size()};
      (void)link_write(*p, &iov, 1, clock::now() + linger);
      ::shutdown(p->fd, SHUT_WR);
    }
    {
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, linger, [&] {
        if (world_aborted_) return true;  // an aborted world does not linger
        for (auto& p : peers_) {
          if (p && !p->read_closed && !(p->failure && !p->goodbye)) return false;
        }
        return true;
      });
    }
    asio::post(io_, [this] {
      stopping_ = true;
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      for (auto& p : peers_) {
        if (!p) continue;
        p->sock().cancel(ignored);
        ::shutdown(p->fd, SHUT_RDWR);
      }
      for (auto& in : inbound_) {
        if (auto s = in.lock()) s->close();
      }
      io_.stop();
    });
    io_thread_.join();
    fail_all(std::make_exception_ptr(error("comm::tcp: communicator destroyed")));
  }

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
    peer(int r, std::string n, socket_t s)
        : rank(r), name(std::move(n)), socket(std::move(s)), fd(socket.native_handle()) {}
    peer(int r, std::string n, std::unique_ptr<tls_stream> t)
        : rank(r),
          name(std::move(n)),
          socket(t->get_executor()),  // unused: the stream owns the connection
          tls(std::move(t)),
          fd(tls->next_layer().native_handle()) {}
    const int rank;
    const std::string name;
    socket_t socket;
    std::unique_ptr<tls_stream> tls;  // set on TLS links (used by the I/O thread only)
    const int fd;
    socket_t& sock() noexcept { return tls ? tls->next_layer() : socket; }
    std::mutex write_mutex;
    // I/O thread only.
    std::array<std::byte, header_bytes> header_in{};
    frame_header current;
    wire::buffer incoming;
    std::unique_ptr<pending> in_place;  // a direct receive being read into its destination
    // Guarded by the engine's mutex.
    std::exception_ptr failure;
    bool goodbye = false;
    bool read_closed = false;
  };

  // An inbound connection going through the server side of the handshake.
  class inbound : public std::enable_shared_from_this<inbound> {
   public:
    inbound(engine& e, socket_t s) : e_(e), socket_(std::move(s)), timer_(e.io_) {
      boost::system::error_code ec;
      const auto remote = socket_.remote_endpoint(ec);
      name_ = ec ? std::string("an unknown address") : describe(remote);
      if (!ec) address_ = remote.address();
    }
    void start() {
      auto self = shared_from_this();
      timer_.expires_after(e_.options_.handshake_timeout);
      timer_.async_wait([self](const boost::system::error_code& ec) {
        if (!ec) {
          self->reject("no complete handshake within " +
                       std::to_string(self->e_.options_.handshake_timeout.count()) + " ms");
        }
      });
      if (e_.tls_) {  // TLS first; the token handshake then runs inside it
        tls_ = std::make_unique<tls_stream>(std::move(socket_), *e_.tls_);
        tls_->async_handshake(
            asio::ssl::stream_base::server, [self](const boost::system::error_code& ec) {
              if (self->finished_) return;
              if (ec) {
                return self->reject("TLS handshake failed: " +
                                    describe_tls_failure(ec, self->tls_->native_handle()));
              }
              self->read_hello();
            });
        return;
      }
      read_hello();
    }
    void close() {
      finished_ = true;
      boost::system::error_code ignored;
      timer_.cancel(ignored);
      lowest().close(ignored);
    }

   private:
    socket_t& lowest() { return tls_ ? tls_->next_layer() : socket_; }
    template <class Buffer, class Handler>
    void read(const Buffer& b, Handler&& h) {
      if (tls_) {
        asio::async_read(*tls_, b, std::forward<Handler>(h));
      } else {
        asio::async_read(socket_, b, std::forward<Handler>(h));
      }
    }
    template <class Buffer, class Handler>
    void write(const Buffer& b, Handler&& h) {
      if (tls_) {
        asio::async_write(*tls_, b, std::forward<Handler>(h));
      } else {
        asio::async_write(socket_, b, std::forward<Handler>(h));
      }
    }
    void read_hello() {
      auto self = shared_from_this();
      read(asio::buffer(buf_.data(), hello_bytes),
           [self](const boost::system::error_code& ec, std::size_t) { self->on_hello(ec); });
    }
    void reject(const std::string& why) {
      if (finished_) return;
      e_.log("rejected connection from " + name_ + ": " + why);
      close();
    }
    void on_hello(const boost::system::error_code& ec) {
      if (finished_) return;
      if (ec) return reject("closed during the handshake (" + ec.message() + ")");
      try {
        theirs_ = decode_hello(std::span<const std::byte>(buf_.data(), hello_bytes), name_);
      } catch (const protocol_error& x) {
        return reject(x.what());
      }
      if (theirs_.version != protocol_version) {
        return reject("protocol version " + std::to_string(theirs_.version) + ", expected " +
                      std::to_string(protocol_version));
      }
      if (theirs_.world_size != static_cast<std::uint32_t>(e_.size_)) {
        return reject("world size " + std::to_string(theirs_.world_size) + ", expected " +
                      std::to_string(e_.size_));
      }
      if (const auto why = e_.refuse_rank(theirs_.rank); !why.empty()) return reject(why);
      if (tls_) {
        try {
          check_peer_name(tls_->native_handle(), e_.options_.tls.peer_name, theirs_.rank, name_);
        } catch (const protocol_error& x) {
          return reject(x.what());
        }
      }
      hello mine;
      mine.world_size = static_cast<std::uint32_t>(e_.size_);
      mine.rank = e_.rank_;
      mine.random = make_nonce();
      nonce_ = mine.random;
      encode_hello(mine, buf_.data());
      const auto proof = compute_mac(e_.options_.token, server_label, theirs_.random, nonce_,
                                     mine.world_size, theirs_.rank, e_.rank_);
      std::memcpy(buf_.data() + hello_bytes, proof.data(), mac_bytes);
      auto self = shared_from_this();
      write(asio::buffer(buf_.data(), challenge_bytes),
            [self](const boost::system::error_code& e, std::size_t) {
              if (self->finished_) return;
              if (e) return self->reject("closed during the handshake");
              self->read(
                  asio::buffer(self->buf_.data(), mac_bytes),
                  [self](const boost::system::error_code& e2, std::size_t) { self->on_proof(e2); });
            });
    }
    void on_proof(const boost::system::error_code& ec) {
      if (finished_) return;
      if (ec) {
        return reject("closed before proving it holds the token (claimed rank " +
                      std::to_string(theirs_.rank) + ")");
      }
      const auto want = compute_mac(e_.options_.token, client_label, theirs_.random, nonce_,
                                    static_cast<std::uint32_t>(e_.size_), theirs_.rank, e_.rank_);
      if (!same_mac(buf_.data(), want)) {
        return reject("authentication failed: wrong token (claimed rank " +
                      std::to_string(theirs_.rank) + ")");
      }
      if (!e_.claim(theirs_.rank)) {
        return reject("rank " + std::to_string(theirs_.rank) + " is already connected");
      }
      wire::store_le(buf_.data(), verdict_magic);
      auto self = shared_from_this();
      write(asio::buffer(buf_.data(), 4), [self](const boost::system::error_code& e, std::size_t) {
        if (self->finished_) return;
        if (e) {
          self->e_.unclaim(self->theirs_.rank);
          return self->reject("closed before the verdict");
        }
        self->finished_ = true;
        boost::system::error_code ignored;
        self->timer_.cancel(ignored);
        self->e_.adopt_inbound(self->theirs_.rank, std::move(self->socket_), std::move(self->tls_),
                               self->address_, self->theirs_.listen_port, self->name_);
      });
    }

    engine& e_;
    socket_t socket_;
    std::unique_ptr<tls_stream> tls_;  // TLS: owns the connection (socket_ is then empty)
    asio::steady_timer timer_;
    std::string name_;
    asio::ip::address address_;
    std::array<std::byte, challenge_bytes> buf_{};
    hello theirs_;
    nonce nonce_{};
    bool finished_ = false;
  };

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
  void accept_next() {
    auto s = std::make_shared<socket_t>(io_);
    acceptor_.async_accept(*s, [this, s](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) {
        auto in = std::make_shared<inbound>(*this, std::move(*s));
        inbound_.erase(std::remove_if(inbound_.begin(), inbound_.end(),
                                      [](const auto& w) { return w.expired(); }),
                       inbound_.end());
        inbound_.push_back(in);
        in->start();
      } else {
        log("accept failed: " + ec.message());
      }
      accept_next();
    });
  }

  // Why a connection claiming `rank` cannot join here (empty when it may).
  std::string refuse_rank(int rank) {
    std::lock_guard lock(mutex_);
    if (joined_) return "the world is complete (claimed rank " + std::to_string(rank) + ")";
    if (rank <= rank_ || rank >= size_) {
      return "rank " + std::to_string(rank) + " does not connect to rank " + std::to_string(rank_) +
             " in a world of " + std::to_string(size_);
    }
    if (claimed_[static_cast<std::size_t>(rank)]) {
      return "rank " + std::to_string(rank) + " is already connected";
    }
    return {};
  }
  bool claim(int rank) {
    std::lock_guard lock(mutex_);
    if (joined_ || claimed_[static_cast<std::size_t>(rank)]) return false;
    claimed_[static_cast<std::size_t>(rank)] = true;
    return true;
  }
  void unclaim(int rank) {
    std::lock_guard lock(mutex_);
    claimed_[static_cast<std::size_t>(rank)] = false;
  }

  void adopt_inbound(int rank, socket_t s, std::unique_ptr<tls_stream> tls,
                     asio::ip::address address, unsigned short port, const std::string& name) {
    auto label = "rank " + std::to_string(rank) + " (" + name + ")";
    std::unique_ptr<peer> p;
    if (tls) {
      configure(tls->next_layer());
      p = std::make_unique<peer>(rank, std::move(label), std::move(tls));
    } else {
      configure(s);
      p = std::make_unique<peer>(rank, std::move(label), std::move(s));
    }
    std::lock_guard lock(mutex_);
    if (rank_ == 0) table_[rank] = endpoint_t(address, port);
    peers_[static_cast<std::size_t>(rank)] = std::move(p);
    cv_.notify_all();
  }

  static void configure(socket_t& s) {
    s.set_option(asio::ip::tcp::no_delay(true));
    s.non_blocking(true);
  }

  // ------------------------------------------------------------ joining (caller thread)
  std::unique_ptr<peer> connect(const endpoint_t& to, int q, clock::time_point deadline) {
    const std::string name = "rank " + std::to_string(q) + " (" + describe(to) + ")";
    std::string last = "no attempt";
    while (clock::now() < deadline) {
      socket_t s(io_);
      boost::system::error_code ec;
      s.open(to.protocol(), ec);
      if (ec) throw peer_lost(q, "cannot open a socket: " + ec.message());
      s.non_blocking(true);
      int rc = ::connect(s.native_handle(), to.data(), static_cast<socklen_t>(to.size()));
      int err = rc == 0 ? 0 : errno;
      if (err == EINPROGRESS) {
        const auto r = wait_ready(s.native_handle(), POLLOUT, deadline);
        if (r.status == io_status::timeout) break;
        socklen_t len = sizeof(err);
        ::getsockopt(s.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len);
      }
      if (err == 0) {
        configure(s);
        const auto hs_deadline = std::min(deadline, clock::now() + options_.handshake_timeout);
        if (tls_) return connect_tls(std::move(s), q, name, hs_deadline);
        (void)client_handshake(s.native_handle(), name, q, options_.token,
                               static_cast<std::uint32_t>(size_), rank_, listen_port_, hs_deadline);
        return std::make_unique<peer>(q, name, std::move(s));
      }
      last = std::strerror(err);
      // The peer may not be listening yet: retry until the deadline.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw peer_lost(q, "could not connect to " + name + " within " +
                           std::to_string(options_.timeout.count()) + " ms (" + last + ")");
  }

  // An io_result with the error code behind it (TLS operations).
  struct io_outcome : io_result {
    boost::system::error_code code;
  };

  // TLS handshake (we are the client), then the token handshake inside it.
  std::unique_ptr<peer> connect_tls(socket_t s, int q, const std::string& name,
                                    clock::time_point deadline) {
    auto stream = std::make_unique<tls_stream>(std::move(s), *tls_);
    const auto r = await_io(stream->next_layer(), deadline, [&stream](auto done) {
      stream->async_handshake(asio::ssl::stream_base::client, std::move(done));
    });
    if (r.status == io_status::timeout) {
      throw peer_lost(q, "TLS handshake with " + name + " timed out");
    }
    if (r.status != io_status::ok) {
      throw protocol_error(name, "tls.handshake",
                           describe_tls_failure(r.code, stream->native_handle()));
    }
    check_peer_name(stream->native_handle(), options_.tls.peer_name, q, name);
    struct tls_channel {
      engine& e;
      tls_stream& stream;
      const std::string& name;
      io_result write(const void* data, std::size_t n, clock::time_point until) {
        return e.checked(name, e.await_io(stream.next_layer(), until, [&](auto done) {
          asio::async_write(stream, asio::buffer(data, n), std::move(done));
        }));
      }
      io_result read(void* data, std::size_t n, clock::time_point until) {
        return e.checked(name, e.await_io(stream.next_layer(), until, [&](auto done) {
          asio::async_read(stream, asio::buffer(data, n), std::move(done));
        }));
      }
    } channel{*this, *stream, name};
    (void)client_handshake(channel, name, q, options_.token, static_cast<std::uint32_t>(size_),
                           rank_, listen_port_, deadline);
    return std::make_unique<peer>(q, name, std::move(stream));
  }

  // A TLS alert (the peer refused our certificate, say) is a protocol_error
  // naming the peer; timeouts and closed connections go on as io_results.
  static io_result checked(const std::string& name, const io_outcome& r) {
    if (r.status == io_status::failed && r.code.category() == asio::error::get_ssl_category()) {
      throw protocol_error(name, "tls", r.code.message());
    }
    return r;
  }

  // Runs an asynchronous operation on the I/O thread and waits for it until
  // the deadline (TLS links: their stream belongs to the I/O thread). On
  // timeout the operation is cancelled and the call returns only after its
  // handler ran, so the buffers may go. start(done) initiates the operation.
  template <class Start>
  io_outcome await_io(socket_t& lowest, clock::time_point deadline, Start start) {
    io_outcome r;
    if (!io_thread_.joinable()) {
      r.status = io_status::closed;
      r.detail = "the I/O thread is not running";
      return r;
    }
    auto result = std::make_shared<std::promise<boost::system::error_code>>();
    auto finished = result->get_future();
    asio::post(io_, [&start, result] {
      start([result](const boost::system::error_code& ec, auto&&...) { result->set_value(ec); });
    });
    bool timed_out = false;
    if (finished.wait_until(deadline) != std::future_status::ready) {
      timed_out = true;
      std::promise<void> cancelled;
      asio::post(io_, [&lowest, &cancelled] {
        boost::system::error_code ignored;
        lowest.cancel(ignored);
        cancelled.set_value();
      });
      cancelled.get_future().wait();
    }
    const auto ec = finished.get();  // the handler has run
    if (!ec && !timed_out) return r;
    if (!ec || ec == asio::error::operation_aborted) {
      r.status = io_status::timeout;
      return r;
    }
    const bool closed = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
    r.status = closed ? io_status::closed : io_status::failed;
    r.error = ec.value();
    r.detail = ec.message();
    r.code = ec;
    return r;
  }

  // Writes every byte of the iovecs before the deadline: sendmsg on the
  // caller's thread, or through the TLS stream on the I/O thread. A timed
  // out TLS write leaves a partial record behind, so the link fails.
  io_result link_write(peer& p, iovec* iov, int count, clock::time_point deadline) {
    if (!p.tls) return write_all(p.fd, iov, count, deadline);
    std::array<asio::const_buffer, 2> buffers{};
    for (int i = 0; i < count && i < 2; ++i) {
      buffers[static_cast<std::size_t>(i)] =
          asio::const_buffer(iov[i].iov_base, static_cast<std::size_t>(iov[i].iov_len));
    }
    auto r = await_io(p.sock(), deadline, [&p, &buffers](auto done) {
      asio::async_write(*p.tls, buffers, std::move(done));
    });
    if (r.status != io_status::ok) {
      auto failure = std::make_exception_ptr(
          peer_lost(p.rank, "sending to " + p.name + " failed: " + r.describe()));
      std::promise<void> failed;
      asio::post(io_, [this, &p, failure, &failed] {
        fail_link(p, failure);
        failed.set_value();
      });
      failed.get_future().wait();
    }
    return r;
  }

  // Reads exactly n bytes before the deadline, before the I/O thread reads the link.
  io_result link_read(peer& p, void* data, std::size_t n, clock::time_point deadline) {
    if (!p.tls) return read_all(p.fd, data, n, deadline);
    return checked(p.name, await_io(p.sock(), deadline, [&p, data, n](auto done) {
                     asio::async_read(*p.tls, asio::buffer(data, n), std::move(done));
                   }));
  }

  void adopt(std::unique_ptr<peer> p) {
    std::lock_guard lock(mutex_);
    const auto q = static_cast<std::size_t>(p->rank);
    claimed_[q] = true;
    peers_[q] = std::move(p);
  }

  // Table layout: see encode_table (frame.hpp).
  void send_tables(clock::time_point deadline) {
    std::vector<table_entry> entries(static_cast<std::size_t>(size_));
    for (int q = 0; q < size_; ++q) {
      const auto ep = q == 0 ? endpoint_t() : table_[q];
      auto& e = entries[static_cast<std::size_t>(q)];
      if (ep.address().is_v6()) {
        e.family = 6;
        e.address = ep.address().to_v6().to_bytes();
      } else {
        const auto v4 = ep.address().to_v4().to_bytes();
        std::copy(v4.begin(), v4.end(), e.address.begin());
      }
      e.port = static_cast<std::uint16_t>(ep.port());
    }
    wire::buffer t = encode_table(entries);
    for (int q = 1; q < size_; ++q) {
      auto& p = *peers_[static_cast<std::size_t>(q)];
      auto head = encode_header({frame_type::table, 0, 0, t.size()});
      iovec iov[2] = {{head.data(), head.size()}, {t.data(), t.size()}};
      const auto r = link_write(p, iov, 2, deadline);
      if (r.status != io_status::ok) {
        throw peer_lost(q, "sending the address table to " + p.name + " failed: " + r.describe());
      }
    }
  }

  std::vector<endpoint_t> read_table(peer& coordinator, clock::time_point deadline) {
    std::array<std::byte, header_bytes> head{};
    check_io(link_read(coordinator, head.data(), head.size(), deadline), coordinator.name, 0,
             "address table");
    const auto h =
        decode_header(head, coordinator.name, 4 + 19 * static_cast<std::uint64_t>(size_));
    if (h.type != frame_type::table) {
      throw protocol_error(coordinator.name, "frame.type", "expected the address table");
    }
    wire::buffer body;
    body.resize(static_cast<std::size_t>(h.length));
    check_io(link_read(coordinator, body.data(), body.size(), deadline), coordinator.name, 0,
             "address table");
    std::vector<endpoint_t> table;
    for (const auto& e : decode_table(body.bytes(), coordinator.name, size_)) {
      const auto& b = e.address;
      if (e.family == 6) {
        table.emplace_back(asio::ip::address_v6(b), e.port);
      } else {
        table.emplace_back(asio::ip::address_v4({b[0], b[1], b[2], b[3]}), e.port);
      }
    }
    return table;
  }

  // ------------------------------------------------------------ reading (I/O thread)
  // Reads on the link's stream: the socket, or TLS over it.
  template <class Buffer, class Handler>
  static void read_exactly(peer& p, const Buffer& b, Handler&& h) {
    if (p.tls) {
      asio::async_read(*p.tls, b, std::forward<Handler>(h));
    } else {
      asio::async_read(p.socket, b, std::forward<Handler>(h));
    }
  }
  template <class Buffer, class Handler>
  static void read_some(peer& p, const Buffer& b, Handler&& h) {
    if (p.tls) {
      p.tls->async_read_some(b, std::forward<Handler>(h));
    } else {
      p.socket.async_read_some(b, std::forward<Handler>(h));
    }
  }

  void read_header(peer& p) {
    read_exactly(
        p, asio::buffer(p.header_in),
        [this, &p](const boost::system::error_code& ec, std::size_t) { on_header(p, ec); });
  }

  void on_header(peer& p, const boost::system::error_code& ec) {
    if (ec) return on_read_error(p, ec, false);
    try {
      p.current = decode_header(p.header_in, p.name, options_.max_message_bytes);
      if (p.current.type == frame_type::table) {
        throw protocol_error(p.name, "frame.type", "address table after the rendezvous");
      }
    } catch (const protocol_error&) {
      return fail_link(p, std::current_exception());
    }
    const auto& h = p.current;
    if (h.type == frame_type::goodbye) {
      std::lock_guard lock(mutex_);
      p.goodbye = true;
      fail_peer_locked(
          p, std::make_exception_ptr(peer_lost(p.rank, p.name + " closed its communicator")),
          false);
      cv_.notify_all();
      return read_header(p);
    }
    const auto length = static_cast<std::size_t>(h.length);
    if (h.type == frame_type::collective) {
      // A posted collective receive gets the bytes read straight into place.
      std::lock_guard lock(mutex_);
      const key k{h.type, h.tag, h.sub};
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (!(it->k == k && it->source == p.rank)) continue;
        if (!it->direct || (it->out == nullptr && it->raw.size() != length)) break;
        p.in_place = std::make_unique<pending>(std::move(*it));
        pending_.erase(it);
        std::byte* dst;
        if (p.in_place->out != nullptr) {
          p.in_place->out->resize(length);
          dst = p.in_place->out->data();
        } else {
          dst = p.in_place->raw.data();
        }
        read_in_place(p, dst, length);
        return;
      }
    }
    if (p.incoming.capacity() == 0) p.incoming = take_spare();
    p.incoming.resize(length);
    read_exactly(p, asio::buffer(p.incoming.data(), length),
                 [this, &p](const boost::system::error_code& e, std::size_t) { on_payload(p, e); });
  }

  // Reads into a collective's destination one read_some at a time. When
  // stop_direct_reads_here() withdraws the destination (its owner may free
  // it) the pending read is cancelled and the rest of the frame is read into
  // a sink, so the link stays usable. Every recv runs on this thread, so
  // none can be in flight into the destination after the withdrawal.
  void read_in_place(peer& p, std::byte* dst, std::size_t left) {
    read_some(p, asio::buffer(dst, left),
              [this, &p, dst, left](const boost::system::error_code& ec, std::size_t n) {
                if (!p.in_place) {  // withdrawn
                  if (ec == asio::error::operation_aborted && stopping_) return;
                  if (ec && ec != asio::error::operation_aborted) {
                    return on_read_error(p, ec, true);
                  }
                  return discard(p, left - n);
                }
                if (ec) return on_read_error(p, ec, true);
                if (n < left) return read_in_place(p, dst + n, left - n);
                on_in_place(p);
              });
  }
  void discard(peer& p, std::size_t left) {
    if (left == 0) return read_header(p);
    p.incoming.resize(std::min<std::size_t>(left, 1 << 16));
    read_some(p, asio::buffer(p.incoming.data(), p.incoming.size()),
              [this, &p, left](const boost::system::error_code& ec, std::size_t n) {
                if (ec) return on_read_error(p, ec, true);
                discard(p, left - n);
              });
  }

  void on_in_place(peer& p) {
    auto done = std::move(p.in_place);
    done->done->finish(p.rank);
    read_header(p);
  }

  void on_payload(peer& p, const boost::system::error_code& ec) {
    if (ec) return on_read_error(p, ec, true);
    const auto& h = p.current;
    if (h.type == frame_type::abort) {
      try {
        const auto note = decode_abort(p.incoming.bytes(), p.name);
        std::lock_guard lock(mutex_);
        if (!world_failure_) {
          world_failure_ = std::make_exception_ptr(
              peer_lost(note.rank, note.reason + " (reported by " + p.name + ")"));
        }
        world_aborted_ = true;
        fail_pending_locked(-2, world_failure_);
      } catch (const protocol_error&) {
        return fail_link(p, std::current_exception());
      }
      stop_direct_reads_here();
      return read_header(p);
    }
    {
      std::lock_guard lock(mutex_);
      const key k{h.type, h.tag, h.sub};
      bool matched = false;
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->k == k && (it->source == any_source || it->source == p.rank)) {
          deliver(*it, p.rank, p.incoming, p.name);
          pending_.erase(it);
          matched = true;
          break;
        }
      }
      if (!matched) {
        queue_.push_back({p.rank, k, std::move(p.incoming)});
        p.incoming = take_spare_locked();
      }
    }
    read_header(p);
  }

  // Completes a receive with a message's bytes (under the mutex). A buffer
  // target takes the bytes by swap; `bytes` gets the target's old storage.
  void deliver(const pending& r, int from, wire::buffer& bytes, const std::string& name) {
    if (r.out != nullptr) {
      std::swap(*r.out, bytes);
      r.done->finish(from);
    } else if (bytes.size() != r.raw.size()) {
      r.done->finish(-1, std::make_exception_ptr(
                             protocol_error(name, "frame.length",
                                            "collective piece of " + std::to_string(bytes.size()) +
                                                " bytes, expected " + std::to_string(r.raw.size()) +
                                                " (do the ranks disagree on the vector size?)")));
    } else {
      if (!bytes.empty()) std::memcpy(r.raw.data(), bytes.data(), bytes.size());
      r.done->finish(from);
    }
    bytes.clear();
  }

  void on_read_error(peer& p, const boost::system::error_code& ec, bool mid_frame) {
    if (ec == asio::error::operation_aborted) {
      if (p.in_place) {
        std::lock_guard lock(mutex_);
        p.in_place->done->finish(-1, world_failure_ ? world_failure_ : p.failure);
        p.in_place.reset();
      }
      return;
    }
    std::exception_ptr failure;
    // Without TLS's close_notify an ended connection reads as a truncated stream.
    const bool eof = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
    if (p.tls && ec.category() == asio::error::get_ssl_category()) {
      // A record that fails to decrypt or authenticate: bad bytes, not a death.
      failure = std::make_exception_ptr(protocol_error(p.name, "tls", ec.message()));
    } else if (mid_frame && eof) {
      failure = std::make_exception_ptr(
          protocol_error(p.name, "payload",
                         "truncated: the connection closed inside a frame of " +
                             std::to_string(p.current.length) + " bytes"));
    } else {
      bool clean;
      {
        std::lock_guard lock(mutex_);
        clean = p.goodbye;
      }
      if (clean) {
        std::lock_guard lock(mutex_);
        p.read_closed = true;
        cv_.notify_all();
        return;
      }
      failure = std::make_exception_ptr(
          peer_lost(p.rank, "connection to " + p.name + " lost: " + ec.message()));
    }
    fail_link(p, failure);
  }

  // A broken link: fail everything waiting on that peer and the world's
  // collectives, and stop reading from it (I/O thread).
  void fail_link(peer& p, std::exception_ptr failure) {
    {
      std::lock_guard lock(mutex_);
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        log(std::string("dropping link: ") + e.what());
      }
      fail_peer_locked(p, failure, true);
      if (p.in_place) {
        p.in_place->done->finish(-1, failure);
        p.in_place.reset();
      }
      p.read_closed = true;
      cv_.notify_all();
    }
    boost::system::error_code ignored;
    p.sock().cancel(ignored);
    ::shutdown(p.fd, SHUT_RDWR);
    stop_direct_reads_here();
  }

  void fail_peer_locked(peer& p, std::exception_ptr failure, bool world) {
    const bool first = !p.failure;
    if (first) p.failure = failure;
    if (world && !world_failure_) world_failure_ = failure;
    const bool told = fail_pending_locked(p.rank, failure);
    if (world) {
      // A lost peer is reported once to an any_source receive: the one
      // waiting now, or else the next one posted. Later ones go on with the
      // peers that remain (an asynchronous server tolerating a lost worker).
      if (!told && first) unreported_losses_.push_back(failure);
      fail_pending_locked(-3, world_failure_);
    }
  }

  // Fails posted receives: from `rank` (and any_source) when rank >= 0;
  // every collective and any_source receive when rank == -2; every
  // collective when rank == -3. Returns whether an any_source one failed.
  bool fail_pending_locked(int rank, std::exception_ptr failure) {
    bool any = false;
    for (auto it = pending_.begin(); it != pending_.end();) {
      const bool collective = it->k.type == frame_type::collective;
      const bool hit = rank >= 0    ? (it->source == rank || it->source == any_source)
                       : rank == -2 ? (collective || it->source == any_source)
                                    : collective;
      if (hit) {
        any = any || it->source == any_source;
        // A collective fails with the world's root cause when there is one.
        it->done->finish(-1, collective && world_failure_ ? world_failure_ : failure);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    return any;
  }

  std::exception_ptr failure_for(int src, key k) {
    // A collective names the world's root cause: a peer that left after it
    // (its goodbye follows its abort note) is a symptom, not the cause.
    if (k.type == frame_type::collective && world_failure_) return world_failure_;
    if (src >= 0 && peers_[static_cast<std::size_t>(src)] &&
        peers_[static_cast<std::size_t>(src)]->failure) {
      return peers_[static_cast<std::size_t>(src)]->failure;
    }
    if (src == any_source) {
      if (!unreported_losses_.empty()) {
        auto failure = unreported_losses_.front();
        unreported_losses_.pop_front();
        return failure;
      }
      if (world_aborted_) return world_failure_;
      // Nobody is left who could send one.
      std::exception_ptr last;
      for (int q = 0; q < size_; ++q) {
        const auto& p = peers_[static_cast<std::size_t>(q)];
        if (q == rank_) continue;
        if (!p || !p->failure) return nullptr;
        last = p->failure;
      }
      return last;
    }
    return nullptr;
  }

  // Cancels every read going straight into a collective's destination, so
  // the caller may free that memory (I/O thread).
  void stop_direct_reads_here() {
    for (auto& p : peers_) {
      if (!p || !p->in_place) continue;
      {
        std::lock_guard lock(mutex_);
        p->in_place->done->finish(-1, world_failure_ ? world_failure_ : p->failure);
        p->in_place.reset();
      }
      boost::system::error_code ignored;
      p->sock().cancel(ignored);  // its handler goes on with discard()
    }
  }
  void stop_direct_reads() {
    if (!io_thread_.joinable()) return;
    auto done = std::make_shared<std::promise<void>>();
    auto ready = done->get_future();
    asio::post(io_, [this, done] {
      stop_direct_reads_here();
      done->set_value();
    });
    ready.wait_for(std::chrono::seconds(10));
  }

  void fail_all(std::exception_ptr e) {
    std::lock_guard lock(mutex_);
    for (auto& r : pending_) r.done->finish(-1, e);
    pending_.clear();
  }

  wire::buffer take_spare() {
    std::lock_guard lock(mutex_);
    return take_spare_locked();
  }
  wire::buffer take_spare_locked() {
    if (spares_.empty()) return {};
    auto b = std::move(spares_.back());
    spares_.pop_back();
    return b;
  }

 public:
  // Returns a delivered message's storage to the pool (no allocation in steady state).
  void give_spare(wire::buffer&& b) {
    std::lock_guard lock(mutex_);
    if (b.capacity() != 0 && spares_.size() < 64) spares_.push_back(std::move(b));
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
  std::vector<std::weak_ptr<inbound>> inbound_;  // I/O thread only
  bool stopping_ = false;                        // I/O thread only

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<bool> claimed_;
  std::map<int, endpoint_t> table_;
  bool joined_ = false;
  std::deque<message> queue_;
  std::deque<pending> pending_;
  std::vector<wire::buffer> spares_;
  std::exception_ptr world_failure_;
  bool world_aborted_ = false;                        // a collective failed (any rank's abort)
  std::deque<std::exception_ptr> unreported_losses_;  // lost peers no any_source receive saw
  bool announced_ = false;                            // abort frames sent

  std::thread io_thread_;
};

}  // namespace loco::comm::detail::tcp
