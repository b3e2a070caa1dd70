#pragma once
// comm::tcp's engine, heartbeats: a thread of their own sends an empty frame
// to every peer each heartbeat_interval and declares lost a peer from whom
// nothing arrived for heartbeat_misses intervals. The check is independent
// of any collective's timeout, so a stopped (SIGSTOP) or partitioned peer
// is named by every survivor in about interval * misses. The thread never
// waits behind a caller's write (a frame in progress proves the link works)
// and never writes from the I/O thread, which must keep reading. The class
// is in engine.hpp.
#include <loco/comm/tcp/engine.hpp>

namespace loco::comm::detail::tcp {

inline void engine::start_heartbeats() {
  if (options_.heartbeat_interval.count() == 0 || size_ == 1) return;
  for (int q = 0; q < size_; ++q) {
    if (peer* p = slot(q)) p->heard();
  }
  heartbeat_thread_ = std::thread([this] {
    name_this_thread("loco-tcp-beat");
    heartbeat_loop();
  });
}

inline void engine::stop_heartbeats() {
  if (!heartbeat_thread_.joinable()) return;
  {
    std::lock_guard lock(heartbeat_mutex_);
    heartbeat_stop_ = true;
  }
  heartbeat_cv_.notify_all();
  heartbeat_thread_.join();
}

inline void engine::heartbeat_loop() {
  const auto interval = options_.heartbeat_interval;
  const auto limit = interval * options_.heartbeat_misses;
  const auto head = encode_header({frame_type::heartbeat, 0, 0, 0});
  auto last_tick = clock::now();
  std::unique_lock wait(heartbeat_mutex_);
  while (!heartbeat_cv_.wait_for(wait, interval, [this] { return heartbeat_stop_; })) {
    wait.unlock();
    const auto now = clock::now();
    // This process itself did not run for a while (stopped, or starved of
    // CPU): the silence is ours, not the peers', so each gets a fresh period.
    const bool we_stalled = now - last_tick > limit / 2;
    last_tick = now;
    for (int q = 0; q < size_; ++q) {
      peer* link = q == rank_ ? nullptr : slot(q);
      if (link == nullptr) continue;
      peer& p = *link;
      {
        std::lock_guard lock(mutex_);
        if (p.failure || p.goodbye || p.silent) continue;
      }
      if (we_stalled) p.heard();
      const auto silent = now - clock::time_point(clock::duration(p.last_heard.load()));
      if (silent > limit) {
        {
          std::lock_guard lock(mutex_);
          p.silent = true;  // reported once
        }
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(silent).count();
        auto failure = std::make_exception_ptr(
            peer_lost(p.rank, p.name + " sent nothing for " + std::to_string(ms) + " ms (" +
                                  std::to_string(options_.heartbeat_misses) + " heartbeats of " +
                                  std::to_string(interval.count()) + " ms missed)"));
        fail_link_from_outside(p, failure);
        continue;
      }
      std::unique_lock writing(p.write_mutex, std::try_to_lock);
      if (!writing) continue;  // a frame is on its way: that is a heartbeat too
      iovec iov{const_cast<std::byte*>(head.data()), head.size()};
      const auto r = link_write(p, &iov, 1, now + limit);
      writing.unlock();                           // failing the link may wait for the read token
      if (r.status != io_status::ok && !p.tls) {  // TLS links fail themselves in link_write
        auto failure = std::make_exception_ptr(peer_lost(
            p.rank, p.name + " stopped reading: a heartbeat could not be sent: " + r.describe()));
        {
          std::lock_guard lock(mutex_);
          p.silent = true;
        }
        fail_link_from_outside(p, failure);
      }
    }
    wait.lock();
  }
}

}  // namespace loco::comm::detail::tcp
