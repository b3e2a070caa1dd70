#pragma once
// A reusable barrier for n participants with a timeout and an abort switch:
// a participant that times out names the first rank that did not arrive, and
// an abort wakes every waiter with the reason, so nobody waits forever.
//
// Waiters spin for up to `spin` before they park on a condition variable:
// waking a parked thread on another core costs tens of microseconds (futex),
// which would dominate every small collective. Spinning burns that core for
// at most `spin` per barrier; with more ranks than cores it only delays the
// ranks that would arrive, so in_process turns it off there.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace loco::comm::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

class world_barrier {
 public:
  world_barrier(int n, duration timeout, std::chrono::microseconds spin = {})
      : n_(n),
        timeout_(timeout),
        spin_(spin),
        arrived_(std::make_unique<own_line[]>(static_cast<std::size_t>(n))) {}

  void arrive_and_wait(int rank) {
    if (aborted_.load()) throw_aborted();
    const unsigned long generation = generation_.load();
    arrived_[static_cast<std::size_t>(rank)].value.store(generation + 1, std::memory_order_relaxed);
    if (count_.fetch_add(1) + 1 == n_) {
      count_.store(0);
      generation_.store(generation + 1);  // releases every waiter's spin
      if (sleepers_.load() != 0) {
        // A sleeper counted itself under the mutex before checking the
        // generation: taking it here means the notify cannot be lost.
        { std::lock_guard lock(mutex_); }
        cv_.notify_all();
      }
      return;
    }
    if (spin_.count() > 0) {
      const auto until = std::chrono::steady_clock::now() + spin_;
      for (unsigned i = 0;; ++i) {
        if (generation_.load() != generation) return;
        if (aborted_.load()) throw_aborted();
        if (i % 64 == 63 && std::chrono::steady_clock::now() >= until) break;
        cpu_relax();
      }
    }
    std::unique_lock lock(mutex_);
    sleepers_.fetch_add(1);
    const bool woke = cv_.wait_for(
        lock, timeout_, [&] { return generation_.load() != generation || aborted_.load(); });
    sleepers_.fetch_sub(1);
    if (generation_.load() != generation) return;
    if (!woke) {
      int missing = 0;
      while (missing < n_ && arrived_[static_cast<std::size_t>(missing)].value.load(
                                 std::memory_order_relaxed) == generation + 1) {
        ++missing;
      }
      abort_locked(missing, "did not reach the collective within " +
                                std::to_string(timeout_.count()) + " ms");
    }
    lock.unlock();
    throw_aborted();
  }

  // Marks the world as failed because of `rank`; every waiter throws peer_lost.
  void abort(int rank, const std::string& why) {
    {
      std::lock_guard lock(mutex_);
      if (!aborted_.load()) {
        abort_rank_ = rank;
        abort_reason_ = why;
        aborted_.store(true);
      }
    }
    cv_.notify_all();
  }
  bool aborted() const noexcept { return aborted_.load(); }
  // How many times the barrier has opened. A participant reads the number of
  // the barrier it is about to arrive at: every participant reads the same.
  unsigned long generation() const noexcept { return generation_.load(); }
  void throw_if_aborted_unlocked() const {
    if (aborted_.load()) throw_aborted();
  }

 private:
  [[noreturn]] void throw_aborted() const {
    std::lock_guard lock(mutex_);
    throw peer_lost(abort_rank_, abort_reason_);
  }
  [[noreturn]] void abort_locked(int rank, const std::string& why) {
    if (!aborted_.load()) {
      abort_rank_ = rank;
      abort_reason_ = why;
      aborted_.store(true);
    }
    cv_.notify_all();
    throw peer_lost(abort_rank_, abort_reason_);
  }

  const int n_;
  const duration timeout_;
  const std::chrono::microseconds spin_;
  // A cache line of its own: a rank's store to a line another core holds
  // would wait for it, and the fetch_add after it waits for that store.
  struct alignas(64) own_line {
    std::atomic<unsigned long> value{0};
  };
  // arrived_[r] = g + 1 once rank r reached the barrier of generation g.
  std::unique_ptr<own_line[]> arrived_;
  alignas(64) std::atomic<int> count_{0};
  // Waiters spin reading this line; arrivals write count_'s.
  alignas(64) std::atomic<unsigned long> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> aborted_{false};
  mutable std::mutex mutex_;  // guards the abort reason and parking
  std::condition_variable cv_;
  int abort_rank_ = -1;
  std::string abort_reason_;
};

}  // namespace loco::comm::detail
