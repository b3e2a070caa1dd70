#pragma once
// async_sgd on real processes (comm::tcp, comm::mpi): a quadratic whose
// gradients take a per-worker time (heterogeneous speed emulated by
// sleeping), and the checks every run must pass whatever the event order.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <loco/algorithm/async_sgd.hpp>
#include <loco/random/stream.hpp>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace async_runs {

// f(x) = 0.5 sum_j c_j (x_j - t_j)^2 with c_j in [0.5, 1.5] and t_j in
// {-2, ..., 2}; each gradient first sleeps `slowdown`.
struct slow_quadratic {
  using value_type = double;
  std::size_t d = 16;
  std::chrono::microseconds slowdown{0};
  static double curvature(std::size_t j) { return 0.5 + static_cast<double>(j % 3) * 0.5; }
  static double target(std::size_t j) { return static_cast<double>(j % 5) - 2.0; }
  std::size_t dimension() const { return d; }
  double loss(std::span<const double> x) const {
    double s = 0;
    for (std::size_t j = 0; j < d; ++j) s += curvature(j) * (x[j] - target(j)) * (x[j] - target(j));
    return 0.5 * s;
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream&) {
    if (slowdown.count() > 0) std::this_thread::sleep_for(slowdown);
    for (std::size_t j = 0; j < d; ++j) g[j] = curvature(j) * (x[j] - target(j));
    return loss(x);
  }
};

// Worker rank r (1..n-1) is r times slower than rank 1.
inline slow_quadratic objective_for(int rank, std::chrono::microseconds base) {
  slow_quadratic f;
  f.slowdown = rank > 0 ? base * rank : std::chrono::microseconds(0);
  return f;
}

inline double distance_to_target(const std::vector<double>& x) {
  double worst = 0;
  for (std::size_t j = 0; j < x.size(); ++j) {
    worst = std::max(worst, std::abs(x[j] - slow_quadratic::target(j)));
  }
  return worst;
}

// "" when the server's result is right, else what is wrong: every update
// applied, the delay identity exact for k jobs always in flight
// (updates * mean_delay + discarded_delay_sum == (k - 1) * updates), and
// x within `tolerance` of the minimiser (the tail average; the last iterate
// within 5x that, as a late stale gradient may still move it).
inline std::string check_server(const loco::algorithm::async_sgd_result<double>& r,
                                std::uint64_t updates, std::uint64_t k, double tolerance) {
  const auto& s = r.stats;
  const auto applied =
      static_cast<std::uint64_t>(std::llround(s.mean_delay * static_cast<double>(s.updates)));
  std::string why;
  if (s.updates != updates) {
    why += "updates " + std::to_string(s.updates) + " != " + std::to_string(updates) + "; ";
  }
  if (s.discarded != k - 1) {
    why += "discarded " + std::to_string(s.discarded) + " != " + std::to_string(k - 1) + "; ";
  }
  if (applied + s.discarded_delay_sum != (k - 1) * updates) {
    why += "delay identity: " + std::to_string(applied) + " + " +
           std::to_string(s.discarded_delay_sum) + " != " + std::to_string((k - 1) * updates) +
           "; ";
  }
  const double tail = distance_to_target(r.tail_average), last = distance_to_target(r.model);
  if (!(tail < tolerance)) why += "tail average " + std::to_string(tail) + " from the minimiser; ";
  if (!(last < 5 * tolerance)) why += "last iterate " + std::to_string(last) + " from it; ";
  return why;
}

// A one-line summary of a run (printed by the process tests).
inline std::string summary(const loco::algorithm::async_sgd_result<double>& r) {
  const auto& s = r.stats;
  std::string text = "updates " + std::to_string(s.updates) + " (per worker";
  for (auto u : s.updates_per_worker) {
    text += ' ';
    text += std::to_string(u);
  }
  text += "), mean delay " + std::to_string(s.mean_delay);
  text += ", max delay " + std::to_string(s.max_delay);
  text += ", discarded " + std::to_string(s.discarded);
  text += " (delay sum " + std::to_string(s.discarded_delay_sum) + ")";
  text += ", tail distance " + std::to_string(distance_to_target(r.tail_average));
  text += ", elapsed " + std::to_string(r.ledger.totals().elapsed) + " s";
  return text;
}

}  // namespace async_runs
