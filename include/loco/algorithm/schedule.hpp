#pragma once
// When local SGD communicates (ALGORITHMS.md section 2). A schedule is the
// list of round lengths in local steps; the special cases of one driver:
//   every_step(T)          T rounds of 1 step: mini-batch averaging
//   once(T)                1 round of T steps: one-shot averaging
//   evenly(T, N)           N rounds, boundaries at ceil(k T / N)
//   growing(T, N, p)       N rounds, boundaries at ceil(T (k / N)^p): dense
//                          early, sparse late (p = 2 by default)
//   at({s_1, ..., s_N})    communicate after the listed steps (s_N = T)
//   rounds(R, H)           R rounds of H local steps (LOSCAR's rounds)
#include <cmath>
#include <cstddef>
#include <loco/error.hpp>
#include <string>
#include <vector>

namespace loco::algorithm {

class schedule {
 public:
  static schedule every_step(std::size_t total_steps) {
    check_total("every_step", total_steps);
    return schedule(std::vector<std::size_t>(total_steps, 1));
  }
  static schedule once(std::size_t total_steps) {
    check_total("once", total_steps);
    return schedule({total_steps});
  }
  static schedule rounds(std::size_t count, std::size_t steps_per_round) {
    if (count == 0 || steps_per_round == 0) {
      throw config_error("schedule::rounds: count " + std::to_string(count) +
                         " and steps_per_round " + std::to_string(steps_per_round) +
                         " must both be >= 1");
    }
    return schedule(std::vector<std::size_t>(count, steps_per_round));
  }
  static schedule evenly(std::size_t total_steps, std::size_t count) {
    return growing_impl("evenly", total_steps, count, 1.0);
  }
  static schedule growing(std::size_t total_steps, std::size_t count, double power = 2.0) {
    if (!(power >= 1.0) || !std::isfinite(power)) {
      throw config_error("schedule::growing: power " + std::to_string(power) + " must be >= 1");
    }
    return growing_impl("growing", total_steps, count, power);
  }
  static schedule at(const std::vector<std::size_t>& steps) {
    if (steps.empty()) throw config_error("schedule::at: the list of steps is empty");
    std::vector<std::size_t> lengths;
    std::size_t previous = 0;
    for (std::size_t s : steps) {
      if (s <= previous) {
        throw config_error("schedule::at: step " + std::to_string(s) +
                           " must be greater than the previous step " + std::to_string(previous));
      }
      lengths.push_back(s - previous);
      previous = s;
    }
    return schedule(std::move(lengths));
  }

  // Local steps in each round.
  const std::vector<std::size_t>& round_lengths() const noexcept { return lengths_; }
  std::size_t round_count() const noexcept { return lengths_.size(); }
  std::size_t total_steps() const noexcept {
    std::size_t t = 0;
    for (auto l : lengths_) t += l;
    return t;
  }

 private:
  explicit schedule(std::vector<std::size_t> lengths) : lengths_(std::move(lengths)) {}

  static void check_total(const char* who, std::size_t total) {
    if (total == 0) {
      throw config_error(std::string("schedule::") + who + ": total_steps 0 must be >= 1");
    }
  }
  static schedule growing_impl(const char* who, std::size_t total, std::size_t count,
                               double power) {
    check_total(who, total);
    if (count == 0 || count > total) {
      throw config_error(std::string("schedule::") + who + ": count " + std::to_string(count) +
                         " must lie in [1, total_steps " + std::to_string(total) + "]");
    }
    std::vector<std::size_t> lengths;
    std::size_t previous = 0;
    for (std::size_t k = 1; k <= count; ++k) {
      const double frac = std::pow(static_cast<double>(k) / static_cast<double>(count), power);
      auto boundary = static_cast<std::size_t>(std::ceil(frac * static_cast<double>(total) - 1e-9));
      // Keep boundaries strictly increasing and leave room for the rounds still to come.
      const std::size_t lowest = previous + 1, highest = total - (count - k);
      if (boundary < lowest) boundary = lowest;
      if (boundary > highest) boundary = highest;
      lengths.push_back(boundary - previous);
      previous = boundary;
    }
    return schedule(std::move(lengths));
  }

  std::vector<std::size_t> lengths_;
};

}  // namespace loco::algorithm
