#pragma once
// A reusable barrier for n participants with a timeout and an abort switch:
// a participant that times out names the first rank that did not arrive, and
// an abort wakes every waiter with the reason, so nobody waits forever.
#include <condition_variable>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <mutex>
#include <string>
#include <vector>

namespace loco::comm::detail {

class world_barrier {
 public:
  world_barrier(int n, duration timeout)
      : n_(n), timeout_(timeout), arrived_(static_cast<std::size_t>(n), false) {}

  void arrive_and_wait(int rank) {
    std::unique_lock lock(mutex_);
    throw_if_aborted();
    const auto generation = generation_;
    arrived_[static_cast<std::size_t>(rank)] = true;
    if (++count_ == n_) {
      count_ = 0;
      arrived_.assign(arrived_.size(), false);
      ++generation_;
      cv_.notify_all();
      return;
    }
    const bool woke =
        cv_.wait_for(lock, timeout_, [&] { return generation_ != generation || aborted_; });
    if (!woke) {
      int missing = 0;
      while (missing < n_ && arrived_[static_cast<std::size_t>(missing)]) ++missing;
      abort_locked(missing, "did not reach the collective within " +
                                std::to_string(timeout_.count()) + " ms");
    }
    if (generation_ == generation) throw_if_aborted();
  }

  // Marks the world as failed because of `rank`; every waiter throws peer_lost.
  void abort(int rank, const std::string& why) {
    std::lock_guard lock(mutex_);
    if (!aborted_) {
      aborted_ = true;
      abort_rank_ = rank;
      abort_reason_ = why;
    }
    cv_.notify_all();
  }
  bool aborted() const {
    std::lock_guard lock(mutex_);
    return aborted_;
  }
  void throw_if_aborted_unlocked() const {
    std::lock_guard lock(mutex_);
    throw_if_aborted();
  }

 private:
  void throw_if_aborted() const {
    if (aborted_) throw peer_lost(abort_rank_, abort_reason_);
  }
  [[noreturn]] void abort_locked(int rank, const std::string& why) {
    if (!aborted_) {
      aborted_ = true;
      abort_rank_ = rank;
      abort_reason_ = why;
    }
    cv_.notify_all();
    throw peer_lost(abort_rank_, abort_reason_);
  }

  const int n_;
  const duration timeout_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<bool> arrived_;
  int count_ = 0;
  unsigned long generation_ = 0;
  bool aborted_ = false;
  int abort_rank_ = -1;
  std::string abort_reason_;
};

}  // namespace loco::comm::detail
