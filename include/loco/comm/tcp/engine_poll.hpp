#pragma once
// comm::tcp's engine, reading plain (non-TLS) links. Whoever holds the read
// token reads them and owns their read state:
//
// * the reader thread, parked in epoll_wait until a link has bytes. Each
//   link's interest is one-shot: an event disarms it, and the token's
//   releaser re-arms every disarmed link (level-triggered, so bytes that
//   arrived meanwhile report at once). A link whose event comes while
//   someone else holds the token is left disarmed for that holder to re-arm.
// * a caller about to wait for a receive (engine::poll, the busy-poll of
//   tcp_options::busy_poll): it takes the token, withdraws the link's
//   interest so no thread is woken for it, and reads the socket itself
//   until its receive completes. On this machine waking a parked thread on
//   another core costs tens of microseconds, more than a small message.
// * a collective's writer whose socket is full (engine::write_draining): it
//   reads the link its next receives come from until there is room.
// * a ring allreduce's caller, for the whole collective (engine::kept_link):
//   the link its pieces come from is left disarmed by every releaser, so no
//   thread is woken for a piece; the caller reads it whenever it waits for
//   one or its write would block, sleeping in poll() on that socket.
//
// A polling or writing holder lets go at once when a thread waits for the
// token (take_reads_waiting: failing a link, aborting the world).
//
// The token is a seq_cst flag, so "mark disarmed, then try the token" (the
// reader) and "drop the token, then re-arm what is marked" (the holder)
// cannot both miss: a link is never left unwatched with bytes in it.
#include <loco/comm/tcp/engine.hpp>

namespace loco::comm::detail::tcp {

inline void engine::start_plain_reader() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    throw error(std::string("comm::tcp: cannot create the reader's epoll: ") +
                std::strerror(errno));
  }
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.ptr = nullptr;  // the stop signal
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake) != 0) {
    throw error(std::string("comm::tcp: epoll_ctl: ") + std::strerror(errno));
  }
  for (int q = 0; q < size_; ++q) {
    if (peer* p = slot(q)) watch(*p);
  }
  reader_thread_ = std::thread([this] {
    name_this_thread("loco-tcp-read");
    reader_loop();
  });
}

// Registers a link (at the start, or a replacement taking over a lost one).
inline void engine::watch(peer& p) {
  {
    std::lock_guard lock(watched_mutex_);
    watched_.push_back(&p);
  }
  if (interest(p, EPOLL_CTL_ADD, EPOLLIN) != 0) {
    throw error(std::string("comm::tcp: epoll_ctl: ") + std::strerror(errno));
  }
}

inline int engine::interest(peer& p, int op, std::uint32_t events) {
  epoll_event ev{};
  // One-shot even with no events asked for: epoll reports a hang-up regardless.
  ev.events = events | EPOLLONESHOT;
  ev.data.ptr = &p;
  return ::epoll_ctl(epoll_fd_, op, p.fd, &ev);
}

inline void engine::stop_plain_reader() {
  if (reader_thread_.joinable()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
    reader_thread_.join();
  }
}

inline void engine::close_plain_reader() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  wake_fd_ = epoll_fd_ = -1;
}

inline void engine::reader_loop() {
  std::array<epoll_event, 16> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log(std::string("the reader stopped: epoll_wait: ") + std::strerror(errno));
      return;
    }
    const auto ready = std::span(events).first(static_cast<std::size_t>(n));
    for (const auto& e : ready) {
      if (e.data.ptr == nullptr) return;  // stop_plain_reader
      static_cast<peer*>(e.data.ptr)->disarmed.store(true);
    }
    if (!take_reads()) {
      missed_.store(true);  // a busy-polling holder reads them too
      continue;             // and re-arms them when it lets go
    }
    const reads_held held{*this};
    for (const auto& e : ready) {
      peer& p = *static_cast<peer*>(e.data.ptr);
      try {
        pump(p);
      } catch (...) {  // the log callback threw, say: this link is not read any more
        end_watch(p);
      }
    }
  }
}

inline void engine::take_reads_waiting() {
  // Counted, so that a caller busy-polling or writing with the token lets
  // go at once (a heartbeat failing a link must not wait for its write).
  token_wanted_.fetch_add(1);
  while (!take_reads()) std::this_thread::yield();
  token_wanted_.fetch_sub(1);
}

inline void engine::release_reads() {
  reading_.store(false);
  std::lock_guard lock(watched_mutex_);
  for (peer* p : watched_) {
    if (p->kept.load()) continue;  // its collective reads it; ~kept_link re-arms it
    if (p->disarmed.load() && p->disarmed.exchange(false) && !p->ended.load()) arm(*p);
  }
}

inline void engine::arm(peer& p) {
  // Fails only for a link that ended meanwhile (removed from the set).
  (void)interest(p, EPOLL_CTL_MOD, EPOLLIN);
}

inline void engine::end_watch(peer& p) {
  if (p.ended.exchange(true)) return;
  (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, p.fd, nullptr);
}

inline bool engine::pump(peer& p) {
  // At most this much at a time, so one busy link cannot keep the others
  // (their heartbeats) unread: the link stays readable and is back at once.
  constexpr std::size_t most = std::size_t{4} << 20;
  std::size_t budget = most;
  while (!p.ended.load(std::memory_order_relaxed) && budget > 0) {
    std::byte* to = p.dst;
    std::size_t want = p.left;
    if (p.at == peer::stage::header) {
      to = p.header_in.data() + p.header_got;
      want = header_bytes - p.header_got;
    } else if (p.at == peer::stage::discard) {
      p.incoming.resize(std::min<std::size_t>(p.left, 1 << 16));
      to = p.incoming.data();
      want = p.incoming.size();
    }
    const auto n = ::recv(p.fd, to, want, MSG_DONTWAIT);
    if (n > 0) {
      p.heard();
      budget -= std::min(budget, static_cast<std::size_t>(n));
      try {
        consume(p, static_cast<std::size_t>(n));
      } catch (const std::exception&) {  // no memory for a frame: this link ends, not the process
        fail_link(p, std::current_exception());
        return true;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return budget < most;
    const bool mid_frame = p.at != peer::stage::header;  // a cut header reads as a lost link
    on_read_error(p,
                  n == 0 ? boost::system::error_code(asio::error::eof)
                         : boost::system::error_code(errno, boost::system::system_category()),
                  mid_frame);
    end_watch(p);  // also after a clean close: an ended stream stays readable
    return true;
  }
  return budget < most;
}

inline void engine::pump_disarmed(const peer& polled) {
  std::lock_guard lock(watched_mutex_);
  for (peer* q : watched_) {
    if (q == &polled || q->kept.load() || !q->disarmed.exchange(false)) continue;
    pump(*q);
    if (!q->ended.load()) arm(*q);  // its next frame wakes the reader, which tells us again
  }
}

inline void engine::consume(peer& p, std::size_t n) {
  switch (p.at) {
    case peer::stage::header:
      p.header_got += n;
      if (p.header_got < header_bytes) return;
      p.header_got = 0;
      switch (begin_frame(p)) {
        case after_header::header:
        case after_header::stop:
          return;
        case after_header::payload:
          p.at = peer::stage::payload;
          if (p.left > 0) return;
          break;  // an empty payload has arrived with its header
      }
      break;
    case peer::stage::payload:
      p.dst += n;
      p.left -= n;
      if (p.left > 0) return;
      break;
    case peer::stage::discard:
      p.left -= n;
      if (p.left == 0) p.at = peer::stage::header;
      return;
  }
  p.at = peer::stage::header;
  if (p.in_place) {
    end_in_place(p);
  } else {
    (void)end_payload(p);  // a failure has ended the link
  }
}

inline void engine::fail_link_from_outside(peer& p, std::exception_ptr failure) {
  if (p.tls) {
    asio::post(io_, [this, &p, failure] { fail_link(p, failure); });
    return;
  }
  take_reads_waiting();
  const reads_held held{*this};
  if (!p.ended.load()) fail_link(p, failure);
}

inline void engine::poll(completion& c, int src, std::chrono::microseconds spin,
                         clock::time_point deadline) {
  const auto spin_end = std::min(deadline, clock::now() + spin);
  peer* p = tls_ || src < 0 || src == rank_ ? nullptr : slot(src);
  if (p == nullptr) {  // TLS, or this rank: only watch c
    while (!finished(c) && clock::now() < spin_end) std::this_thread::yield();
    return;
  }
  // A kept link has no other reader: read it until c is done (asked each
  // turn: the collective keeping it may end meanwhile). An ended link's
  // receives fail, or time out, without us.
  const auto until = [&] { return p->kept.load() ? deadline : spin_end; };
  while (!finished(c) && !p->ended.load() && clock::now() < until()) {
    // Not while a thread waits for the token: it would never get it.
    if (token_wanted_.load() == 0 && take_reads()) {
      const reads_held held{*this};
      read_until(*p, c, spin, deadline);
      if (!p->kept.load()) return;
    }
    std::this_thread::yield();  // let whoever reads run if it shares this core
  }
}

inline void engine::read_here(peer& p) {
  (void)interest(p, EPOLL_CTL_MOD, 0);
  p.disarmed.store(true);
}

inline void engine::read_missed(const peer& polled) {
  if (missed_.load(std::memory_order_relaxed) && missed_.exchange(false)) pump_disarmed(polled);
}

inline void engine::read_until(peer& p, completion& c, std::chrono::microseconds spin,
                               clock::time_point deadline) {
  read_here(p);
  // While bytes keep coming (a large frame), keep reading: the spin counts
  // from the last byte, not from the start, or every frame longer than
  // the spin would be finished by the reader thread, woken for it. (Not
  // past the deadline, though a peer kept sending other frames.)
  auto until = std::min(clock::now() + spin, deadline);
  for (unsigned i = 1;; ++i) {
    if (pump(p)) until = std::min(clock::now() + spin, deadline);
    // Other links with bytes waiting (heartbeats, say) are read too, so a
    // caller polling one link after another does not starve the rest.
    read_missed(p);
    if (p.ended.load(std::memory_order_relaxed) || finished(c) ||
        token_wanted_.load(std::memory_order_relaxed) > 0) {
      return;
    }
    if (clock::now() >= until) {
      // A kept link has no thread to wake for it: sleep on its socket here,
      // 1 ms at a time so that links the reader thread was woken for are
      // read meanwhile.
      if (!p.kept.load(std::memory_order_relaxed) || clock::now() >= deadline) return;
      pollfd ready{p.fd, POLLIN, 0};
      (void)::poll(&ready, 1, 1);
      continue;
    }
    // Seldom: a yield switches to any thread runnable on this core, and
    // yielding on every turn tripled the small allreduce's time here. The
    // rank we wait for may share the core, though.
    if (i % 64 == 0) std::this_thread::yield();
  }
}

// Two ranks writing large frames to each other both find their sockets
// full; waiting for room then depends on the other side's reader thread,
// woken for every socket buffer's worth. So a collective's writer reads
// the link its next receives come from whenever its own write would block
// (if nobody else holds the read token).
inline io_result engine::write_draining(peer& to, iovec* iov, int count, clock::time_point deadline,
                                        peer& from) {
  std::optional<reads_held> held;
  auto last_read = clock::now();
  return write_all(to.fd, iov, count, deadline, [&](int fd, clock::time_point until) -> io_result {
    // A thread waiting for the token (failing a link, say) gets it first.
    if (held && token_wanted_.load() > 0) held.reset();
    if (!held && token_wanted_.load() == 0 && !from.ended.load() && take_reads()) {
      held.emplace(*this);
      read_here(from);
    }
    // Without the token, try again in 1 ms: a kept link has nobody else to
    // read it. A slice that ends with the socket still full is not the
    // deadline (a shaped link stays full for many of them).
    if (!held) {
      const auto slice = std::min(until, clock::now() + std::chrono::milliseconds(1));
      auto r = wait_ready(fd, POLLOUT, slice);
      if (r.status == io_status::timeout && slice < until) return {};
      return r;
    }
    const auto now = clock::now();
    if (pump(from)) last_read = now;
    read_missed(from);
    if (now >= until) return {io_status::timeout, 0};
    // Spin (try the write again at once) while bytes came in the last
    // busy_poll, as a busy-polling receive does; then sleep until there is
    // room or something to read, at most 1 ms at a time, so that links the
    // reader thread was woken for are read meanwhile.
    if (now - last_read < options_.busy_poll) return {};
    pollfd ready[2] = {{fd, POLLOUT, 0}, {from.ended.load() ? -1 : from.fd, POLLIN, 0}};
    if (::poll(ready, 2, 1) < 0 && errno != EINTR) return {io_status::failed, errno};
    return {};
  });
}

inline engine::kept_link::kept_link(engine& e, int src) : e_(e) {
  if (e.tls_ || src == e.rank_) return;
  p_ = e.slot(src);
  if (p_ != nullptr) p_->kept.store(true);
}

inline engine::kept_link::~kept_link() {
  if (p_ == nullptr) return;
  p_->kept.store(false);
  // Re-armed by whoever lets go of the token next: us if it is free, else
  // its holder, whose release then comes after these stores (seq_cst, as
  // in release_reads) and so sees them.
  p_->disarmed.store(true);
  if (e_.take_reads()) e_.release_reads();
}

inline bool engine::finished(completion& c) {
  std::lock_guard lock(c.mutex);
  return c.done;
}

}  // namespace loco::comm::detail::tcp
