#pragma once
// sim::link_model: the time a message spends on the wire in a simulated
// world. A message of B bytes sent at time t over the directed link s -> d
// arrives at
//     start + B / bandwidth + latency,   start = max(t, when the link s -> d is free)
// so messages on one link serialise. One latency and bandwidth serve every
// link unless a directed link is overridden; collectives use the global pair
// (their costs are in docs/simulation.md#collectives).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <loco/error.hpp>
#include <map>
#include <string>
#include <utility>

namespace loco::sim {

class link_model {
 public:
  struct link {
    double latency = 0.0;                                        // seconds
    double bandwidth = std::numeric_limits<double>::infinity();  // bytes per second
  };

  // No latency, infinite bandwidth: messages arrive when they are sent.
  link_model() = default;
  link_model(double latency, double bandwidth) : global_(checked({latency, bandwidth}, "")) {}

  // Overrides the directed link src -> dst.
  link_model& set(int src, int dst, double latency, double bandwidth) {
    if (src < 0 || dst < 0) {
      throw config_error("sim::link_model::set: link " + std::to_string(src) + " -> " +
                         std::to_string(dst) + " names a negative rank");
    }
    overrides_[{src, dst}] =
        checked({latency, bandwidth}, std::to_string(src) + " -> " + std::to_string(dst) + ": ");
    return *this;
  }

  double latency() const noexcept { return global_.latency; }
  double bandwidth() const noexcept { return global_.bandwidth; }
  link between(int src, int dst) const {
    if (overrides_.empty()) return global_;
    const auto it = overrides_.find({src, dst});
    return it == overrides_.end() ? global_ : it->second;
  }
  // B / bandwidth for the global link (0 for infinite bandwidth).
  double transfer_time(double bytes) const noexcept { return transfer_time(bytes, global_); }
  static double transfer_time(double bytes, const link& l) noexcept {
    return std::isinf(l.bandwidth) ? 0.0 : bytes / l.bandwidth;
  }

  void check(int n) const {
    for (const auto& [key, l] : overrides_) {
      if (key.first >= n || key.second >= n) {
        throw config_error("sim::link_model: link " + std::to_string(key.first) + " -> " +
                           std::to_string(key.second) + " outside a world of " + std::to_string(n) +
                           " ranks");
      }
    }
  }

 private:
  static link checked(link l, const std::string& which) {
    if (!(l.latency >= 0.0) || !std::isfinite(l.latency)) {
      throw config_error("sim::link_model: " + which + "latency " + std::to_string(l.latency) +
                         " must be finite and >= 0");
    }
    if (!(l.bandwidth > 0.0)) {
      throw config_error("sim::link_model: " + which + "bandwidth " + std::to_string(l.bandwidth) +
                         " must be > 0 (bytes per second; infinity for none)");
    }
    return l;
  }

  link global_{};
  std::map<std::pair<int, int>, link> overrides_;
};

}  // namespace loco::sim
