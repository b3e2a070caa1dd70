#pragma once
// comm::tcp's engine, reading: frame headers and payloads from every peer,
// direct reads into a collective's destination, delivery to posted receives,
// and what a broken link fails; TLS links' asynchronous reads (I/O thread).
// Plain links run the same frame logic from engine_poll.hpp. The class is in
// engine.hpp.
#include <loco/comm/tcp/engine.hpp>

namespace loco::comm::detail::tcp {

// TLS links only (plain ones: engine_poll.hpp). Reads stamp the peer as
// heard after every piece, so a long frame on a slow link keeps its sender
// alive for the heartbeat check.
template <class Buffer, class Handler>
void engine::read_exactly(peer& p, const Buffer& b, Handler&& h) {
  const auto stamp = [&p](const boost::system::error_code& ec, std::size_t) -> std::size_t {
    if (ec) return 0;
    p.heard();
    return 64 * 1024;
  };
  asio::async_read(*p.tls, b, stamp, std::forward<Handler>(h));
}

template <class Buffer, class Handler>
void engine::read_some(peer& p, const Buffer& b, Handler&& h) {
  auto stamped = [&p, h = std::forward<Handler>(h)](const boost::system::error_code& ec,
                                                    std::size_t n) mutable {
    if (!ec) p.heard();
    h(ec, n);
  };
  p.tls->async_read_some(b, std::move(stamped));
}

inline void engine::read_header(peer& p) {
  read_exactly(p, asio::buffer(p.header_in),
               [this, &p](const boost::system::error_code& ec, std::size_t) { on_header(p, ec); });
}

inline void engine::on_header(peer& p, const boost::system::error_code& ec) {
  if (ec) return on_read_error(p, ec, false);
  switch (begin_frame(p)) {
    case after_header::stop:
      return;
    case after_header::header:
      return read_header(p);
    case after_header::payload:
      break;
  }
  if (p.in_place) return read_in_place(p, p.dst, p.left);
  read_exactly(p, asio::buffer(p.dst, p.left),
               [this, &p](const boost::system::error_code& e, std::size_t) { on_payload(p, e); });
}

inline engine::after_header engine::begin_frame(peer& p) {
  try {
    p.current = decode_header(p.header_in, p.name, options_.max_message_bytes);
    if (p.current.type == frame_type::table) {
      throw protocol_error(p.name, "frame.type", "address table after the rendezvous");
    }
  } catch (const protocol_error&) {
    fail_link(p, std::current_exception());
    return after_header::stop;
  }
  const auto& h = p.current;
  if (h.type == frame_type::heartbeat) return after_header::header;  // stamped by the read
  if (h.type == frame_type::goodbye) {
    std::lock_guard lock(mutex_);
    p.goodbye = true;
    fail_peer_locked(
        p, std::make_exception_ptr(peer_lost(p.rank, p.name + " closed its communicator")), false);
    cv_.notify_all();
    return after_header::header;
  }
  p.left = static_cast<std::size_t>(h.length);
  if (h.type == frame_type::collective) {
    // A posted collective receive gets the bytes read straight into place.
    std::lock_guard lock(mutex_);
    const key k{h.type, h.tag, h.sub};
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (!(it->k == k && it->source == p.rank)) continue;
      if (!it->direct || (it->out == nullptr && it->raw.size() != p.left)) break;
      p.in_place.emplace(std::move(*it));
      pending_.erase(it);
      if (p.in_place->out != nullptr) {
        p.in_place->out->resize(p.left);
        p.dst = p.in_place->out->data();
      } else {
        p.dst = p.in_place->raw.data();
      }
      return after_header::payload;
    }
  }
  if (p.left > 0) {
    // At least copy_below: any buffer then fits any small frame (they come in many sizes).
    const std::size_t room = std::max(p.left, copy_below);
    if (p.incoming.capacity() < room) fit_incoming(p, room);
    p.incoming.reserve(room);
  }
  p.incoming.resize(p.left);
  p.dst = p.incoming.data();
  return after_header::payload;
}

inline void engine::read_in_place(peer& p, std::byte* dst, std::size_t left) {
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
              end_in_place(p);
              read_header(p);
            });
}

inline void engine::discard(peer& p, std::size_t left) {
  if (left == 0) return read_header(p);
  p.incoming.resize(std::min<std::size_t>(left, 1 << 16));
  read_some(p, asio::buffer(p.incoming.data(), p.incoming.size()),
            [this, &p, left](const boost::system::error_code& ec, std::size_t n) {
              if (ec) return on_read_error(p, ec, true);
              discard(p, left - n);
            });
}

inline void engine::end_in_place(peer& p) {
  const auto done = std::move(p.in_place->done);
  p.in_place.reset();
  done->finish(p.rank);
}

inline void engine::on_payload(peer& p, const boost::system::error_code& ec) {
  if (ec) return on_read_error(p, ec, true);
  if (end_payload(p)) read_header(p);
}

inline bool engine::end_payload(peer& p) {
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
      fail_link(p, std::current_exception());
      return false;
    }
    stop_direct_reads_here();
    return true;
  }
  std::lock_guard lock(mutex_);
  const key k{h.type, h.tag, h.sub};
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->k == k && (it->source == any_source || it->source == p.rank)) {
      deliver(*it, p.rank, p.incoming);
      pending_.erase(it);
      return true;
    }
  }
  // An empty message, or a small one beyond the backlog collectives make
  // (point-to-point messages nobody receives yet), is queued as a copy of
  // its own size (none for an empty one); the read buffer stays.
  if (p.incoming.empty() || (queue_.size() >= ready_buffers() && p.incoming.size() < copy_below)) {
    queue_.push_back({p.rank, k, p.incoming});
    p.incoming.clear();
  } else {
    queue_.push_back({p.rank, k, std::move(p.incoming)});
    p.incoming = take_spare_locked();
  }
  return true;
}

inline void engine::deliver(const pending& r, int from, wire::buffer& bytes) {
  if (r.out != nullptr) {
    // Small payloads are copied and large ones swapped: a swap would hand
    // the large storage a small frame was read into to a receiver of small
    // messages, and the next large frame would allocate again.
    if (bytes.size() <= copy_below) {
      r.out->assign(bytes.bytes());
    } else {
      std::swap(*r.out, bytes);
    }
    r.done->finish(from);
  } else if (bytes.size() != r.raw.size()) {
    r.done->finish(-1, std::make_exception_ptr(
                           protocol_error(peer_name(from), "frame.length",
                                          "collective piece of " + std::to_string(bytes.size()) +
                                              " bytes, expected " + std::to_string(r.raw.size()) +
                                              " (do the ranks disagree on the vector size?)")));
  } else {
    if (!bytes.empty()) std::memcpy(r.raw.data(), bytes.data(), bytes.size());
    r.done->finish(from);
  }
  bytes.clear();
}

inline void engine::on_read_error(peer& p, const boost::system::error_code& ec, bool mid_frame) {
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

inline void engine::fail_link(peer& p, std::exception_ptr failure) {
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
  if (p.tls) {
    boost::system::error_code ignored;
    p.sock().cancel(ignored);
  } else {
    end_watch(p);
  }
  ::shutdown(p.fd, SHUT_RDWR);
  stop_direct_reads_here();
}

inline void engine::fail_peer_locked(peer& p, std::exception_ptr failure, bool world) {
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

inline bool engine::fail_pending_locked(int rank, std::exception_ptr failure) {
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

inline std::exception_ptr engine::failure_for(int src, key k) {
  // A collective names the world's root cause: a peer that left after it
  // (its goodbye follows its abort note) is a symptom, not the cause.
  if (k.type == frame_type::collective && world_failure_) return world_failure_;
  if (src >= 0 && peers_[static_cast<std::size_t>(src)] &&
      peers_[static_cast<std::size_t>(src)]->failure) {
    return peers_[static_cast<std::size_t>(src)]->failure;
  }
  if (src >= 0 && src != rank_ && joined_ && !peers_[static_cast<std::size_t>(src)]) {
    return std::make_exception_ptr(
        peer_lost(src, "not connected to this rank (this process rejoined through rank 0)"));
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

// On the I/O thread (TLS) or with the read token (plain links).
inline void engine::stop_direct_reads_here() {
  for (int q = 0; q < size_; ++q) {
    peer* p = slot(q);
    if (p == nullptr || !p->in_place) continue;
    {
      std::lock_guard lock(mutex_);
      p->in_place->done->finish(-1, world_failure_ ? world_failure_ : p->failure);
      p->in_place.reset();
    }
    if (p->tls) {
      boost::system::error_code ignored;
      p->sock().cancel(ignored);  // its handler goes on with discard()
    } else {
      p->at = peer::stage::discard;  // the frame's rest goes nowhere
    }
  }
}

inline void engine::stop_direct_reads() {
  if (!tls_) {
    if (!reader_thread_.joinable()) return;
    take_reads_waiting();
    const reads_held held{*this};
    stop_direct_reads_here();
    return;
  }
  if (!io_thread_.joinable()) return;
  auto done = std::make_shared<std::promise<void>>();
  auto ready = done->get_future();
  asio::post(io_, [this, done] {
    stop_direct_reads_here();
    done->set_value();
  });
  ready.wait_for(std::chrono::seconds(10));
}

inline void engine::fail_all(std::exception_ptr e) {
  std::lock_guard lock(mutex_);
  for (auto& r : pending_) r.done->finish(-1, e);
  pending_.clear();
}

inline void engine::fit_incoming(peer& p, std::size_t bytes) {
  std::lock_guard lock(mutex_);
  auto best = spares_.end();
  for (auto it = spares_.begin(); it != spares_.end(); ++it) {
    if (it->capacity() >= bytes && (best == spares_.end() || it->capacity() < best->capacity()))
      best = it;
  }
  if (best == spares_.end()) return;  // none fits: p.incoming grows
  std::swap(*best, p.incoming);
  if (best->capacity() == 0) spares_.erase(best);
}

inline wire::buffer engine::take_spare_locked() {
  if (spares_.empty()) return {};
  auto b = std::move(spares_.back());
  spares_.pop_back();
  return b;
}

}  // namespace loco::comm::detail::tcp
