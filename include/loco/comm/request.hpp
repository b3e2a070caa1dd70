#pragma once
// comm::request: the handle of a non-blocking operation. The operation runs
// elsewhere (a progress thread, an I/O thread); the handle observes its
// completion, and rethrows its error from wait().
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace loco::comm {

namespace detail {
struct completion {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  int source = -1;
  std::exception_ptr error;
  // Optional deadline for wait(): when it passes, cancel() withdraws the
  // operation (false if it completed meanwhile) and wait() throws
  // peer_lost(peer, timeout_message).
  duration timeout{0};
  std::function<bool()> cancel;
  int peer = -1;
  std::string timeout_message;

  void finish(int src = -1, std::exception_ptr e = nullptr) {
    {
      std::lock_guard lock(mutex);
      done = true;
      source = src;
      error = std::move(e);
    }
    cv.notify_all();
  }
};

// Completions handed out again, so that operations posted over and over
// (a communicator's collectives) allocate none in steady state. One is
// lent until reclaim(), called when its owner is done with every
// completion it took; it is reused only if it also finished (whoever
// finishes one never touches it again), so an abandoned operation's stays
// out.
class completion_pool {
 public:
  std::shared_ptr<completion> take() {
    for (std::size_t tried = 0; tried < pool_.size(); ++tried) {
      next_ = next_ + 1 < pool_.size() ? next_ + 1 : 0;
      auto& e = pool_[next_];
      if (e.lent) continue;
      std::lock_guard lock(e.c->mutex);
      if (!e.c->done) continue;
      e.c->done = false;
      e.c->source = -1;
      e.c->error = nullptr;
      e.lent = true;
      return e.c;
    }
    next_ = pool_.size();
    return pool_.emplace_back(entry{std::make_shared<completion>(), true}).c;
  }
  void reclaim() noexcept {
    for (auto& e : pool_) e.lent = false;
  }

 private:
  struct entry {
    std::shared_ptr<completion> c;
    bool lent;
  };
  std::vector<entry> pool_;
  std::size_t next_ = 0;
};
}  // namespace detail

class request {
 public:
  request() = default;  // an empty request is complete
  explicit request(std::shared_ptr<detail::completion> c) : c_(std::move(c)) {}

  // True once the operation finished (successfully or not); never blocks.
  bool test() {
    if (!c_) return true;
    std::lock_guard lock(c_->mutex);
    return c_->done;
  }
  // Blocks until done, or until the operation's own deadline (then
  // loco::peer_lost); rethrows the operation's error.
  void wait() {
    if (!c_) return;
    std::unique_lock lock(c_->mutex);
    const auto done = [&] { return c_->done; };
    if (c_->timeout.count() > 0 && !c_->cv.wait_for(lock, c_->timeout, done)) {
      lock.unlock();
      if (c_->cancel && c_->cancel()) throw peer_lost(c_->peer, c_->timeout_message);
      lock.lock();
    }
    c_->cv.wait(lock, done);
    rethrow(lock);
  }
  // Waits at most `timeout`; true when done (rethrowing its error), false otherwise.
  bool wait_for(duration timeout) {
    if (!c_) return true;
    std::unique_lock lock(c_->mutex);
    if (!c_->cv.wait_for(lock, timeout, [&] { return c_->done; })) return false;
    rethrow(lock);
    return true;
  }
  // The sender of a completed receive; -1 otherwise.
  int source() const {
    if (!c_) return -1;
    std::lock_guard lock(c_->mutex);
    return c_->source;
  }

 private:
  void rethrow(std::unique_lock<std::mutex>& lock) {
    if (c_->error) {
      auto e = c_->error;
      lock.unlock();
      std::rethrow_exception(e);
    }
  }
  std::shared_ptr<detail::completion> c_;
};

}  // namespace loco::comm
