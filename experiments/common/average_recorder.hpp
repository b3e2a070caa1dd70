#pragma once
// Collects every rank's model at an evaluation point (a round or a step) of
// a run on threads (comm::in_process, comm::simulated); the last rank to
// report hands the average (1/n) sum_i x_i to `evaluate`, with the latest
// clock, the summed bytes and the summed steps. No messages: the ranks
// share memory, so the evaluation costs no virtual time.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

namespace experiment {

class average_recorder {
 public:
  struct totals {
    double time = 0;                     // the latest rank's clock
    std::uint64_t bytes = 0, steps = 0;  // summed over ranks
  };
  using evaluate = std::function<void(std::uint64_t at, std::span<const float> average, totals)>;
  average_recorder(int n, evaluate e) : n_(n), evaluate_(std::move(e)) {}

  void add(std::uint64_t at, std::span<const float> model, double now, std::uint64_t bytes,
           std::uint64_t steps = 0) {
    std::lock_guard lock(m_);
    auto& p = open_[at];
    if (p.sum.empty()) p.sum.assign(model.size(), 0.0);
    for (std::size_t j = 0; j < model.size(); ++j) p.sum[j] += static_cast<double>(model[j]);
    p.spent.time = std::max(p.spent.time, now);
    p.spent.bytes += bytes;
    p.spent.steps += steps;
    if (++p.count < n_) return;
    std::vector<float> avg(model.size());
    for (std::size_t j = 0; j < avg.size(); ++j)
      avg[j] = static_cast<float>(p.sum[j] / static_cast<double>(n_));
    evaluate_(at, avg, p.spent);
    open_.erase(at);
  }

 private:
  struct pending {
    std::vector<double> sum;
    int count = 0;
    totals spent;
  };
  int n_;
  evaluate evaluate_;
  std::mutex m_;
  std::map<std::uint64_t, pending> open_;
};

}  // namespace experiment
