#pragma once
// sim::compute_model: how much virtual time one compute step (a gradient, a
// local step) costs each rank of a simulated world, and when a rank drops
// out. See docs/simulation.md#compute-model.
//
//   fixed        every step of rank i takes tau_i (the "fixed computation model")
//   exponential  exponential with mean tau_i, drawn per step
//   log_normal   log-normal with mean tau_i and shape sigma, drawn per step
//
// Draws are a pure function of (seed, rank, step), so a rank's step costs do
// not depend on the order in which ranks run.
#include <cmath>
#include <cstdint>
#include <limits>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <string>
#include <utility>
#include <vector>

namespace loco::sim {

class compute_model {
 public:
  enum class distribution { fixed, exponential, log_normal };

  // Every step costs nothing: time passes only through explicit charges.
  compute_model() = default;
  // tau: one entry for every rank, or one per rank (checked against the world size).
  explicit compute_model(double tau) : compute_model(std::vector<double>{tau}) {}
  explicit compute_model(std::vector<double> tau, distribution kind = distribution::fixed,
                         double sigma = 0.0)
      : tau_(std::move(tau)), kind_(kind), sigma_(sigma) {
    if (tau_.empty()) throw config_error("sim::compute_model: tau is empty; give 1 or n entries");
    for (std::size_t i = 0; i < tau_.size(); ++i) {
      if (!(tau_[i] >= 0.0) || !std::isfinite(tau_[i])) {
        throw config_error("sim::compute_model: tau[" + std::to_string(i) +
                           "] = " + std::to_string(tau_[i]) + " must be finite and >= 0");
      }
    }
    if (kind_ == distribution::log_normal && (!(sigma_ > 0.0) || !std::isfinite(sigma_))) {
      throw config_error("sim::compute_model: log-normal sigma " + std::to_string(sigma_) +
                         " must be finite and > 0");
    }
  }

  static compute_model fixed(std::vector<double> tau) { return compute_model(std::move(tau)); }
  static compute_model exponential(std::vector<double> tau) {
    return compute_model(std::move(tau), distribution::exponential);
  }
  static compute_model log_normal(std::vector<double> tau, double sigma) {
    return compute_model(std::move(tau), distribution::log_normal, sigma);
  }

  // Rank `rank` stops (its thread ends, it is marked dead) when its virtual
  // time reaches `at` seconds.
  compute_model& drop_out(int rank, double at) {
    if (rank < 0) {
      throw config_error("sim::compute_model::drop_out: rank " + std::to_string(rank) +
                         " must be >= 0");
    }
    if (!(at >= 0.0)) {
      throw config_error("sim::compute_model::drop_out: time " + std::to_string(at) +
                         " must be >= 0");
    }
    set_time(drop_out_, rank, at);
    return *this;
  }

  // A replacement of `rank` starts at `at` seconds, or when the rank is lost
  // if that is later (a drop-out, or failure_detection): the rank's function
  // runs again with comm.rejoining() true, as a restarted process with
  // tcp_options::rejoin does (docs/fault_tolerance.md). Rank 0 admits the
  // replacements, so it has none.
  compute_model& restart(int rank, double at) {
    if (rank < 1) {
      throw config_error("sim::compute_model::restart: rank " + std::to_string(rank) +
                         " must be >= 1 (replacements join through rank 0)");
    }
    if (!(at >= 0.0) || !std::isfinite(at)) {
      throw config_error("sim::compute_model::restart: time " + std::to_string(at) +
                         " must be finite and >= 0");
    }
    set_time(restart_, rank, at);
    return *this;
  }

  distribution kind() const noexcept { return kind_; }
  double sigma() const noexcept { return sigma_; }
  // tau_i: the mean cost of one step of `rank`.
  double mean(int rank) const noexcept {
    return tau_.size() == 1 ? tau_[0] : tau_[static_cast<std::size_t>(rank)];
  }
  // When `rank` drops out; +inf if never.
  double drop_out_time(int rank) const noexcept { return time_of(drop_out_, rank); }

  // When a replacement of `rank` starts; +inf if never.
  double restart_time(int rank) const noexcept { return time_of(restart_, rank); }

  // The cost of step `step` (0, 1, ...) of `rank` in a run seeded with `seed`.
  double sample(int rank, std::uint64_t step, std::uint64_t seed) const {
    const double tau = mean(rank);
    if (kind_ == distribution::fixed || tau == 0.0) return tau;
    random::stream rng(random::hash(seed, static_cast<std::uint64_t>(rank), 0x636f6d70ULL), step);
    if (kind_ == distribution::exponential) return tau * rng.exponential();
    // Mean tau: mu = ln(tau) - sigma^2 / 2.
    return std::exp(std::log(tau) - 0.5 * sigma_ * sigma_ + sigma_ * rng.normal());
  }

  // Throws config_error unless the model fits a world of n ranks.
  void check(int n) const {
    if (tau_.size() != 1 && tau_.size() != static_cast<std::size_t>(n)) {
      throw config_error("sim::compute_model: tau has " + std::to_string(tau_.size()) +
                         " entries for " + std::to_string(n) + " ranks; give 1 or one per rank");
    }
    for (const auto* times : {&drop_out_, &restart_}) {
      for (std::size_t r = static_cast<std::size_t>(n); r < times->size(); ++r) {
        if (std::isfinite((*times)[r])) {
          throw config_error(
              "sim::compute_model: " + std::string(times == &drop_out_ ? "drop-out" : "restart") +
              " of rank " + std::to_string(r) + " outside a world of " + std::to_string(n) +
              " ranks");
        }
      }
    }
  }

 private:
  // A time per rank, +inf for the ranks not given one.
  static void set_time(std::vector<double>& times, int rank, double at) {
    const auto r = static_cast<std::size_t>(rank);
    if (times.size() <= r) times.resize(r + 1, std::numeric_limits<double>::infinity());
    times[r] = at;
  }
  static double time_of(const std::vector<double>& times, int rank) noexcept {
    const auto r = static_cast<std::size_t>(rank);
    return r < times.size() ? times[r] : std::numeric_limits<double>::infinity();
  }

  std::vector<double> tau_{0.0};
  distribution kind_ = distribution::fixed;
  double sigma_ = 0.0;
  std::vector<double> drop_out_;
  std::vector<double> restart_;
};

}  // namespace loco::sim
