#pragma once
// observe::evaluate_every: a callback calling fn(average model) every k rounds
// and recording the result on the ledger (accuracy, test loss), where the
// progress bar, csv_log, early_stop and ledger.to_csv find it.
//
//   auto eval = [&](std::span<const float> x) {
//     return observe::metrics{.accuracy = test.accuracy(x), .test_loss = test.loss(x)};
//   };
//   driver.run(comm, f, x0, observe::evaluate_every(10, eval), observe::progress_bar());
//
// fn takes std::span<const T> and returns observe::metrics or a double (the
// accuracy). In local_sgd the average model is a collective: every rank must
// pass an evaluate_every with the same k, and every rank takes part in the
// average on those rounds; fn itself runs only on `rank` (default 0). Other
// drivers hand over a model every rank already holds (async_sgd runs
// callbacks on the server only). List it before the callbacks that show its
// results: callbacks run in the order given.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <loco/error.hpp>
#include <loco/observe/ledger.hpp>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace loco::observe {

struct metrics {
  double accuracy = std::numeric_limits<double>::quiet_NaN();
  double test_loss = std::numeric_limits<double>::quiet_NaN();
};

struct evaluate_every_options {
  int rank = 0;  // the rank that runs fn; -1: every rank
  // Also evaluate at the last planned round when it is not a multiple of k.
  bool at_last_round = true;
};

template <class Fn>
class evaluate_every {
 public:
  evaluate_every(std::uint64_t k, Fn fn, evaluate_every_options opt = {})
      : k_(k), fn_(std::move(fn)), opt_(opt) {
    if (k_ == 0) throw config_error("evaluate_every: k 0 must be >= 1");
  }

  template <class Info>
  void on_round_end(const Info& info) {
    const bool due = info.round % k_ == 0 || (opt_.at_last_round && info.round == info.round_count);
    if (!due) return;
    const auto model = info.average_model();  // every rank: a collective in local_sgd
    if (opt_.rank >= 0 && info.rank != opt_.rank) return;
    const metrics m = to_metrics(fn_(model));
    if (info.ledger) info.ledger->record_evaluation(m.accuracy, m.test_loss);
    last_ = m;
    last_round_ = info.round;
    ++count_;
  }

  std::uint64_t evaluations() const noexcept { return count_; }  // on this rank
  std::uint64_t last_round() const noexcept { return last_round_; }
  const metrics& last() const noexcept { return last_; }

 private:
  template <class R>
  static metrics to_metrics(R&& r) {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, metrics>) {
      return r;
    } else {
      static_assert(std::is_convertible_v<R, double>,
                    "loco: evaluate_every's function must return observe::metrics or a double "
                    "(the accuracy); see docs/observe.md#evaluate_every");
      metrics m;
      m.accuracy = static_cast<double>(r);
      return m;
    }
  }

  std::uint64_t k_;
  Fn fn_;
  evaluate_every_options opt_;
  metrics last_;
  std::uint64_t last_round_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace loco::observe
