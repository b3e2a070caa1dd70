#pragma once
// sim::availability: when each rank of a simulated world is online
// (docs/simulation.md#availability). An offline rank does nothing: compute
// charged to it pauses until it is back, and messages that reach it
// meanwhile wait for its return. Every other rank goes on, so the drivers
// see churn as workers that come back late. (A rank that leaves for good is
// a drop-out: compute_model::drop_out.)
//
//   always       the default: every rank online throughout
//   exponential  each rank alternates online and offline periods of
//                exponential lengths (means given), a pure function of
//                (seed, rank), starting online
//   trace        offline intervals read from a file, one per line:
//                "rank from until" (virtual seconds), '#' starts a comment
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <istream>
#include <limits>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace loco::sim {

class availability {
 public:
  // An offline interval [from, until) in virtual seconds.
  struct interval {
    double from;
    double until;
  };

  availability() = default;

  static availability exponential(double mean_online, double mean_offline) {
    for (const auto& [name, v] :
         {std::pair{"mean_online", mean_online}, std::pair{"mean_offline", mean_offline}}) {
      if (!(v > 0.0) || !std::isfinite(v)) {
        throw config_error(std::string("sim::availability::exponential: ") + name + " " +
                           std::to_string(v) + " s must be finite and > 0");
      }
    }
    availability a;
    a.kind_ = kind::exponential;
    a.mean_online_ = mean_online;
    a.mean_offline_ = mean_offline;
    return a;
  }

  // Reads offline intervals from a file (see above); throws config_error
  // naming the file, the line and what is wrong with it.
  static availability trace(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw config_error("sim::availability::trace: cannot open '" + path + "'");
    return parse(in, path);
  }
  static availability parse(std::istream& in, const std::string& name) {
    availability a;
    a.kind_ = kind::trace;
    std::string text;
    for (int line = 1; std::getline(in, text); ++line) {
      const auto where = [&](const std::string& what) {
        return config_error("sim::availability::trace: " + name + ":" + std::to_string(line) +
                            ": " + what);
      };
      if (const auto hash = text.find('#'); hash != std::string::npos) text.resize(hash);
      std::istringstream fields(text);
      std::string rank_text, from_text, until_text, extra;
      if (!(fields >> rank_text)) continue;  // blank or comment
      if (!(fields >> from_text >> until_text) || (fields >> extra)) {
        throw where("expected 'rank from until', got '" + text + "'");
      }
      const long long rank =
          whole(rank_text, [&] { return where("rank '" + rank_text + "' is not a whole number"); });
      if (rank < 0 || rank > std::numeric_limits<int>::max()) {
        throw where("rank " + rank_text + " must be in [0, 2^31)");
      }
      const double from = seconds(
          from_text, [&] { return where("from '" + from_text + "' is not a finite number"); });
      const double until = seconds(
          until_text, [&] { return where("until '" + until_text + "' is not a finite number"); });
      if (!(from >= 0.0)) throw where("from " + from_text + " must be >= 0");
      if (!(until > from)) throw where("until " + until_text + " must be > from " + from_text);
      auto& list = a.of(static_cast<int>(rank));
      if (!list.empty() && from < list.back().until) {
        throw where("rank " + rank_text + "'s interval starts at " + from_text +
                    ", before its previous one ends: give each rank's intervals in order, "
                    "without overlap");
      }
      list.push_back({from, until});
      if (a.line_of_.size() <= static_cast<std::size_t>(rank)) {
        a.line_of_.resize(static_cast<std::size_t>(rank) + 1, 0);
      }
      if (!a.line_of_[static_cast<std::size_t>(rank)]) {
        a.line_of_[static_cast<std::size_t>(rank)] = line;
      }
    }
    return a;
  }

  // Adds an offline interval of `rank` (after its earlier ones).
  availability& offline(int rank, double from, double until) {
    if (kind_ == kind::exponential) {
      throw config_error("sim::availability::offline: not with exponential availability");
    }
    if (rank < 0) {
      throw config_error("sim::availability::offline: rank " + std::to_string(rank) +
                         " must be >= 0");
    }
    if (!(from >= 0.0) || !std::isfinite(from) || !(until > from) || !std::isfinite(until)) {
      throw config_error("sim::availability::offline: [" + std::to_string(from) + ", " +
                         std::to_string(until) + ") must be finite with 0 <= from < until");
    }
    auto& list = of(rank);
    if (!list.empty() && from < list.back().until) {
      throw config_error("sim::availability::offline: rank " + std::to_string(rank) +
                         "'s interval from " + std::to_string(from) +
                         " starts before its previous one ends");
    }
    kind_ = kind::trace;
    list.push_back({from, until});
    return *this;
  }

  // Keeps `rank` online throughout (a server, say).
  availability& keep_online(int rank) {
    if (rank < 0) {
      throw config_error("sim::availability::keep_online: rank " + std::to_string(rank) +
                         " must be >= 0");
    }
    kept_.push_back(rank);
    return *this;
  }

  bool always_online() const noexcept { return kind_ == kind::always; }

  // Throws config_error unless every rank named exists in a world of n ranks.
  void check(int n) const {
    for (std::size_t r = static_cast<std::size_t>(n); r < intervals_.size(); ++r) {
      if (intervals_[r].empty()) continue;
      const int line = r < line_of_.size() ? line_of_[r] : 0;
      throw config_error("sim::availability: rank " + std::to_string(r) +
                         (line ? " (trace line " + std::to_string(line) + ")" : std::string()) +
                         " outside a world of " + std::to_string(n) + " ranks");
    }
  }

  // The k-th offline interval (k = 0, 1, ...) of `rank` in a run seeded with
  // `seed`, given that the one before ended at `previous_until` (0 for the
  // first); false if there is none.
  bool next(int rank, std::uint64_t k, double previous_until, std::uint64_t seed,
            interval& out) const {
    if (kind_ == kind::always || std::find(kept_.begin(), kept_.end(), rank) != kept_.end()) {
      return false;
    }
    if (kind_ == kind::trace) {
      const auto r = static_cast<std::size_t>(rank);
      if (r >= intervals_.size() || k >= intervals_[r].size()) return false;
      out = intervals_[r][k];
      return true;
    }
    random::stream rng(random::hash(seed, static_cast<std::uint64_t>(rank), 0x6f6e6f6666ULL), k);
    const double online = mean_online_ * rng.exponential();
    const double offline = mean_offline_ * rng.exponential();
    out.from = previous_until + online;
    out.until = out.from + offline;
    return true;
  }

 private:
  enum class kind { always, exponential, trace };

  std::vector<interval>& of(int rank) {
    const auto r = static_cast<std::size_t>(rank);
    if (intervals_.size() <= r) intervals_.resize(r + 1);
    return intervals_[r];
  }
  template <class Error>
  static long long whole(const std::string& s, Error&& error) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      throw error();
    }
    if (used != s.size()) throw error();
    return v;
  }
  template <class Error>
  static double seconds(const std::string& s, Error&& error) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      throw error();
    }
    if (used != s.size() || !std::isfinite(v)) throw error();
    return v;
  }

  kind kind_ = kind::always;
  double mean_online_ = 0.0, mean_offline_ = 0.0;
  std::vector<std::vector<interval>> intervals_;
  std::vector<int> line_of_;
  std::vector<int> kept_;
};

}  // namespace loco::sim
