#pragma once
// A thread that runs queued operations in order. Communicators hand their
// collectives to it so a non-blocking collective progresses while the caller
// computes. A blocking collective issued while nothing is queued runs on the
// caller's thread instead (idle()), which saves two thread wake-ups.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <loco/comm/detail/thread_name.hpp>
#include <loco/comm/request.hpp>
#include <memory>
#include <mutex>
#include <thread>

namespace loco::comm::detail {

class progress_thread {
 public:
  explicit progress_thread(const char* name = "loco-progress")
      : thread_([this, name] {
          name_this_thread(name);
          loop();
        }) {}
  progress_thread(const progress_thread&) = delete;
  progress_thread& operator=(const progress_thread&) = delete;
  ~progress_thread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  // Queues op; its exception (if any) is delivered through the request.
  request submit(std::function<void()> op) {
    auto done = std::make_shared<completion>();
    outstanding_.fetch_add(1);
    {
      std::lock_guard lock(mutex_);
      queue_.push_back({std::move(op), done});
    }
    cv_.notify_one();
    return request(done);
  }

  // True when every submitted operation has finished. Only the submitting
  // thread may act on it: nothing else can make it false again.
  bool idle() const noexcept { return outstanding_.load() == 0; }

 private:
  struct task {
    std::function<void()> op;
    std::shared_ptr<completion> done;
  };
  void loop() {
    for (;;) {
      task t;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        t = std::move(queue_.front());
        queue_.pop_front();
      }
      // Idle again before the request completes: a caller that waited on it
      // may run its next blocking collective inline.
      std::exception_ptr failure;
      try {
        t.op();
      } catch (...) {
        failure = std::current_exception();
      }
      outstanding_.fetch_sub(1);
      t.done->finish(-1, failure);
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<task> queue_;
  bool stopping_ = false;
  std::atomic<std::size_t> outstanding_{0};
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace loco::comm::detail
