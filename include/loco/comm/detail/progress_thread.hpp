#pragma once
// A thread that runs queued operations in order. Communicators hand their
// collectives to it so a non-blocking collective progresses while the caller
// computes; the blocking form is the same operation plus wait().
#include <condition_variable>
#include <deque>
#include <functional>
#include <loco/comm/request.hpp>
#include <memory>
#include <mutex>
#include <thread>

namespace loco::comm::detail {

class progress_thread {
 public:
  progress_thread() : thread_([this] { loop(); }) {}
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
    {
      std::lock_guard lock(mutex_);
      queue_.push_back({std::move(op), done});
    }
    cv_.notify_one();
    return request(done);
  }

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
      try {
        t.op();
        t.done->finish();
      } catch (...) {
        t.done->finish(-1, std::current_exception());
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<task> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace loco::comm::detail
