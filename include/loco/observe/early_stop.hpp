#pragma once
// observe::early_stop: a callback stopping the run when a target is reached or
// a metric stops improving. Accuracy and test loss come from evaluations
// (evaluate_every, listed before it); the training loss is the rank's mean
// mini-batch loss of the round. The driver agrees on the stop across ranks, so
// every rank ends after the same round.
//
//   observe::early_stop stop({.target_accuracy = 0.85, .patience = 5});
//   driver.run(comm, f, x0, observe::evaluate_every(10, eval), stop);
//   if (stop.stopped()) std::cout << stop.reason() << '\n';
#include <cmath>
#include <cstdint>
#include <limits>
#include <loco/error.hpp>
#include <loco/observe/ledger.hpp>
#include <string>

namespace loco::observe {

enum class metric { accuracy, test_loss, train_loss };

struct early_stop_options {
  double target_accuracy = std::numeric_limits<double>::quiet_NaN();    // stop at >= this
  double target_test_loss = std::numeric_limits<double>::quiet_NaN();   // stop at <= this
  double target_train_loss = std::numeric_limits<double>::quiet_NaN();  // stop at <= this
  // Stop after `patience` checks of `monitor` in a row that do not beat the
  // best by more than min_delta; 0 turns this off. A check is an evaluation
  // (accuracy, test_loss) or a round (train_loss).
  std::uint64_t patience = 0;
  double min_delta = 0.0;
  metric monitor = metric::accuracy;
  int rank = 0;  // the rank that decides; -1: every rank (any one stops all)
};

class early_stop {
 public:
  explicit early_stop(early_stop_options opt = {}) : opt_(opt) {
    if (!(opt_.min_delta >= 0.0)) {
      throw config_error("early_stop: min_delta " + std::to_string(opt_.min_delta) +
                         " must be >= 0");
    }
  }

  template <class Info>
  bool on_round_end(const Info& info) {
    if (opt_.rank >= 0 && info.rank != opt_.rank) return false;
    if (stopped_) return true;
    double accuracy = std::numeric_limits<double>::quiet_NaN(), test_loss = accuracy;
    if (info.ledger) {
      const evaluation& e = info.ledger->last_evaluation();
      if (e.round == info.round) {  // evaluated this round
        accuracy = e.accuracy;
        test_loss = e.test_loss;
      }
    }
    if (accuracy >= opt_.target_accuracy) return stop(info.round, "accuracy reached the target");
    if (test_loss <= opt_.target_test_loss) return stop(info.round, "test loss reached the target");
    if (info.loss <= opt_.target_train_loss) {
      return stop(info.round, "training loss reached the target");
    }
    if (opt_.patience == 0) return false;
    double value = opt_.monitor == metric::accuracy    ? accuracy
                   : opt_.monitor == metric::test_loss ? test_loss
                                                       : info.loss;
    if (std::isnan(value)) return false;                   // nothing new to judge this round
    if (opt_.monitor == metric::accuracy) value = -value;  // lower is better from here on
    if (checks_ == 0 || value < best_ - opt_.min_delta) {
      best_ = value;
      stale_ = 0;
    } else if (++stale_ >= opt_.patience) {
      ++checks_;
      return stop(info.round, "no improvement in " + std::to_string(opt_.patience) + " checks");
    }
    ++checks_;
    return false;
  }

  bool stopped() const noexcept { return stopped_; }
  std::uint64_t stop_round() const noexcept { return stop_round_; }  // 0: did not stop
  const std::string& reason() const noexcept { return reason_; }

 private:
  bool stop(std::uint64_t round, std::string why) {
    stopped_ = true;
    stop_round_ = round;
    reason_ = "early_stop at round " + std::to_string(round) + ": " + why;
    return true;
  }

  early_stop_options opt_;
  bool stopped_ = false;
  std::uint64_t stop_round_ = 0;
  std::string reason_;
  std::uint64_t checks_ = 0;
  std::uint64_t stale_ = 0;
  double best_ = 0.0;
};

}  // namespace loco::observe
