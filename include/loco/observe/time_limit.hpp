#pragma once
// observe::time_limit: a callback stopping the run once a time budget is
// spent: on the communicator's clock (default: seconds since the run started,
// virtual on the simulator) or on the wall clock (since the callback was
// constructed). The driver agrees on the stop across ranks.
//
//   driver.run(comm, f, x0, observe::time_limit(60.0));
#include <chrono>
#include <cmath>
#include <cstdint>
#include <loco/error.hpp>
#include <string>

namespace loco::observe {

enum class time_clock { communicator, wall };

class time_limit {
 public:
  explicit time_limit(double seconds, time_clock clock = time_clock::communicator, int rank = -1)
      : seconds_(seconds), clock_(clock), rank_(rank), start_(std::chrono::steady_clock::now()) {
    if (!(seconds > 0.0) || !std::isfinite(seconds)) {
      throw config_error("time_limit: seconds " + std::to_string(seconds) +
                         " must be finite and > 0");
    }
  }

  // rank: the rank that decides; -1 (default): every rank, any one stops all.
  template <class Info>
  bool on_round_end(const Info& info) {
    if (rank_ >= 0 && info.rank != rank_) return false;
    const double spent =
        clock_ == time_clock::communicator
            ? info.time
            : std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (spent < seconds_) return false;
    if (stop_round_ == 0) stop_round_ = info.round;
    return true;
  }

  bool stopped() const noexcept { return stop_round_ != 0; }
  std::uint64_t stop_round() const noexcept { return stop_round_; }

 private:
  double seconds_;
  time_clock clock_;
  int rank_;
  std::chrono::steady_clock::time_point start_;
  std::uint64_t stop_round_ = 0;
};

}  // namespace loco::observe
