#pragma once
// comm::tcp's engine, joining the world: the server side of the handshake
// for each inbound connection (engine::inbound, on the I/O thread), the
// claims on ranks, and the caller's side (connecting to lower ranks, the
// coordinator's table, TLS links). The class is in engine.hpp.
#include <loco/comm/tcp/engine.hpp>

namespace loco::comm::detail::tcp {

class engine::inbound : public std::enable_shared_from_this<engine::inbound> {
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
    write(asio::buffer(buf_.data(), challenge_bytes), [self](const boost::system::error_code& e,
                                                             std::size_t) {
      if (self->finished_) return;
      if (e) return self->reject("closed during the handshake");
      self->read(asio::buffer(self->buf_.data(), mac_bytes),
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

// ------------------------------------------------------------ joining (I/O thread)

inline void engine::accept_next() {
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

inline std::string engine::refuse_rank(int rank) {
  std::lock_guard lock(mutex_);
  if (joined_ && rank_ == 0 && replaceable_locked(rank)) return {};
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

// After the world is complete, the coordinator takes a replacement for a
// rank whose link it lost (and that is not being replaced already).
inline bool engine::replaceable_locked(int rank) const {
  if (rank <= 0 || rank >= size_) return false;
  const auto& p = peers_[static_cast<std::size_t>(rank)];
  return p && p->failure && !p->goodbye && !replacing_[static_cast<std::size_t>(rank)];
}

inline bool engine::claim(int rank) {
  std::lock_guard lock(mutex_);
  if (joined_ && rank_ == 0 && replaceable_locked(rank)) {
    replacing_[static_cast<std::size_t>(rank)] = true;
    return true;
  }
  if (joined_ || claimed_[static_cast<std::size_t>(rank)]) return false;
  claimed_[static_cast<std::size_t>(rank)] = true;
  return true;
}

inline void engine::unclaim(int rank) {
  std::lock_guard lock(mutex_);
  if (joined_) {
    replacing_[static_cast<std::size_t>(rank)] = false;
  } else {
    claimed_[static_cast<std::size_t>(rank)] = false;
  }
}

inline void engine::adopt_inbound(int rank, socket_t s, std::unique_ptr<tls_stream> tls,
                                  asio::ip::address address, unsigned short port,
                                  const std::string& name) {
  auto label = "rank " + std::to_string(rank) + " (" + name + ")";
  std::unique_ptr<peer> p;
  if (tls) {
    configure(tls->next_layer());
    p = std::make_unique<peer>(rank, std::move(label), std::move(tls));
  } else {
    configure(s);
    p = std::make_unique<peer>(rank, std::move(label), std::move(s));
  }
  peer* replacement = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (rank_ == 0) table_[rank] = endpoint_t(address, port);
    auto& slot = peers_[static_cast<std::size_t>(rank)];
    if (joined_) {
      // A replacement for a lost link (we run on the I/O thread): the old
      // peer stays alive for writers that still hold it; read the new one now.
      graveyard_.push_back(std::move(slot));
      slot = std::move(p);
      slot->heard();
      replacing_[static_cast<std::size_t>(rank)] = false;
      rejoined_.push_back(rank);
      log("rank " + std::to_string(rank) + " rejoined from " + name);
      replacement = slot.get();
    } else {
      slot = std::move(p);
    }
    cv_.notify_all();
  }
  if (replacement == nullptr) return;
  if (replacement->tls) return read_header(*replacement);
  try {
    watch(*replacement);  // outside the mutex: a reader holding the watch list takes it
  } catch (const std::exception& e) {  // unread, it goes silent: the heartbeat check ends it
    log(e.what());
  }
}

inline void engine::configure(socket_t& s) {
  s.set_option(asio::ip::tcp::no_delay(true));
  s.non_blocking(true);
}

inline std::unique_ptr<engine::peer> engine::connect(const endpoint_t& to, int q,
                                                     clock::time_point deadline) {
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
    if (err == 0 && s.local_endpoint(ec) == to) {
      // Nobody listened yet and the kernel picked the target's own port as
      // our source: on loopback that connects the socket to itself (TCP
      // simultaneous open), and would keep the port from its owner.
      s.close(ec);
      last = "connected to itself (no listener yet)";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
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

inline std::unique_ptr<engine::peer> engine::connect_tls(socket_t s, int q, const std::string& name,
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
  (void)client_handshake(channel, name, q, options_.token, static_cast<std::uint32_t>(size_), rank_,
                         listen_port_, deadline);
  return std::make_unique<peer>(q, name, std::move(stream));
}

inline io_result engine::checked(const std::string& name, const io_outcome& r) {
  if (r.status == io_status::failed && r.code.category() == asio::error::get_ssl_category()) {
    throw protocol_error(name, "tls", r.code.message());
  }
  return r;
}

template <class Start>
engine::io_outcome engine::await_io(socket_t& lowest, clock::time_point deadline, Start start) {
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

inline io_result engine::link_write(peer& p, iovec* iov, int count, clock::time_point deadline) {
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

inline io_result engine::link_read(peer& p, void* data, std::size_t n, clock::time_point deadline) {
  if (!p.tls) return read_all(p.fd, data, n, deadline);
  return checked(p.name, await_io(p.sock(), deadline, [&p, data, n](auto done) {
                   asio::async_read(*p.tls, asio::buffer(data, n), std::move(done));
                 }));
}

inline void engine::adopt(std::unique_ptr<peer> p) {
  std::lock_guard lock(mutex_);
  const auto q = static_cast<std::size_t>(p->rank);
  claimed_[q] = true;
  peers_[q] = std::move(p);
}

inline void engine::send_tables(clock::time_point deadline) {
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

inline std::vector<endpoint_t> engine::read_table(peer& coordinator, clock::time_point deadline) {
  std::array<std::byte, header_bytes> head{};
  check_io(link_read(coordinator, head.data(), head.size(), deadline), coordinator.name, 0,
           "address table");
  const auto h = decode_header(head, coordinator.name, 4 + 19 * static_cast<std::uint64_t>(size_));
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

// ------------------------------------------------------------ leaving

inline void engine::shutdown() {
  stop_heartbeats();
  if (!io_thread_.joinable()) {
    fail_all(std::make_exception_ptr(error("comm::tcp: communicator destroyed")));
    return;
  }
  // Say goodbye, then wait (bounded) for every peer's goodbye and EOF, so
  // no connection is reset while the peer still reads our last frames.
  const auto linger = std::min<duration>(options_.timeout, duration(2000));
  for (int q = 0; q < size_; ++q) {
    peer* p = slot(q);
    if (p == nullptr) continue;
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
  stop_plain_reader();  // before the sockets close under it
  asio::post(io_, [this] {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& p : peers_) {
      if (!p) continue;
      if (p->tls) p->sock().cancel(ignored);
      ::shutdown(p->fd, SHUT_RDWR);
    }
    for (auto& in : inbound_) {
      if (auto s = in.lock()) s->close();
    }
    io_.stop();
  });
  io_thread_.join();
  close_plain_reader();  // now that no rejoining link can be watched any more
  fail_all(std::make_exception_ptr(error("comm::tcp: communicator destroyed")));
}

}  // namespace loco::comm::detail::tcp
