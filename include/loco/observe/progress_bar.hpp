#pragma once
// observe::progress_bar: a callback showing round, loss, accuracy (when an
// evaluator recorded one), bytes and ETA. On a terminal it redraws one line
// in place ('\r'); otherwise (a log file, a pipe, CI) it prints a plain line
// every k rounds. Works with every driver's Info (algorithm::progress_info).
//
//   driver.run(comm, f, x0, observe::evaluate_every(10, eval), observe::progress_bar());
//
// Plain lines look like
//   round 40/200  loss 0.4312  accuracy 0.8123  bytes 1.23 MB  time 3.10 s  eta 12.4 s
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <loco/observe/ledger.hpp>
#include <ostream>
#include <string>

namespace loco::observe {

struct progress_bar_options {
  std::ostream* out = nullptr;  // where to write; nullptr: std::cout
  int rank = 0;                 // the rank that prints; -1: every rank ("[rank r]" prefix)
  // Plain mode: a line every `every` rounds and at the last; 0: about 20 lines per run.
  std::uint64_t every = 0;
  // -1: redraw in place when writing to std::cout and stdout is a terminal;
  // 0: plain lines; 1: redraw in place.
  int terminal = -1;
  std::size_t width = 20;       // characters of the bar (terminal mode)
  double redraw_seconds = 0.1;  // terminal mode: redraw at most this often (wall clock)
  std::string label{};          // printed before each status (e.g. the algorithm's name)
};

class progress_bar {
 public:
  explicit progress_bar(progress_bar_options opt = {}) : opt_(opt) {
    out_ = opt_.out ? opt_.out : &std::cout;
    terminal_ = opt_.terminal < 0 ? (out_ == &std::cout && ::isatty(STDOUT_FILENO) != 0)
                                  : opt_.terminal > 0;
  }

  bool terminal() const noexcept { return terminal_; }

  template <class Info>
  void on_round_end(const Info& info) {
    if (!mine(info.rank)) return;
    const auto now = clock::now();
    if (first_round_ == 0) {
      first_round_ = info.round;
      first_time_ = now;
    }
    if (terminal_) {
      const bool last = info.round == info.round_count;
      if (!last && drawn_ && seconds(now - last_draw_) < opt_.redraw_seconds) return;
      draw_in_place(info, now);
      return;
    }
    const std::uint64_t every =
        opt_.every ? opt_.every : std::max<std::uint64_t>(1, (info.round_count + 19) / 20);
    if (info.round % every == 0 || info.round == info.round_count) print_line(info, now);
  }

  template <class Info>
  void on_run_end(const Info& info) {
    if (!mine(info.rank)) return;
    if (terminal_) {
      if (drawn_) *out_ << '\n';
      out_->flush();
      return;
    }
    if (printed_round_ != info.round && info.round != 0) {
      // Stopped early (or never printed): the final state.
      print_line(info, clock::now());
    }
  }

  // The text of one status (without '\r' or '\n'); public for tests.
  template <class Info>
  std::string status(const Info& info, double eta_seconds) const {
    std::string s;
    if (opt_.rank < 0) s += "[rank " + std::to_string(info.rank) + "] ";
    if (!opt_.label.empty()) s += opt_.label + "  ";
    s += "round " + std::to_string(info.round) + "/" + std::to_string(info.round_count);
    char text[64];
    if (!std::isnan(info.loss)) {
      std::snprintf(text, sizeof text, "  loss %.4g", info.loss);
      s += text;
    }
    if (info.ledger) {
      const evaluation& e = info.ledger->last_evaluation();
      if (e.round != 0 && !std::isnan(e.accuracy)) {
        std::snprintf(text, sizeof text, "  accuracy %.4f", e.accuracy);
        s += text;
      }
      if (e.round != 0 && !std::isnan(e.test_loss)) {
        std::snprintf(text, sizeof text, "  test loss %.4g", e.test_loss);
        s += text;
      }
      if (const round_record* r = info.ledger->last_round()) {
        s += "  bytes " + format_bytes(static_cast<double>(r->bytes_cumulative));
      }
    }
    s += "  time " + format_seconds(info.time);
    if (!std::isnan(eta_seconds)) s += "  eta " + format_seconds(eta_seconds);
    return s;
  }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }

  bool mine(int rank) const noexcept { return opt_.rank < 0 || rank == opt_.rank; }

  // Wall-clock ETA from the rate since the first round this bar saw.
  template <class Info>
  double eta(const Info& info, clock::time_point now) const {
    if (info.round <= first_round_ || info.round_count <= info.round) {
      return info.round_count <= info.round ? 0.0 : std::nan("");
    }
    const double per_round =
        seconds(now - first_time_) / static_cast<double>(info.round - first_round_);
    return per_round * static_cast<double>(info.round_count - info.round);
  }

  template <class Info>
  void print_line(const Info& info, clock::time_point now) {
    *out_ << status(info, eta(info, now)) << '\n';
    out_->flush();
    printed_round_ = info.round;
  }

  template <class Info>
  void draw_in_place(const Info& info, clock::time_point now) {
    const double done =
        info.round_count ? static_cast<double>(info.round) / static_cast<double>(info.round_count)
                         : 0.0;
    const auto filled =
        static_cast<std::size_t>(std::floor(done * static_cast<double>(opt_.width)));
    std::string line = "\r[" + std::string(std::min(filled, opt_.width), '#') +
                       std::string(opt_.width - std::min(filled, opt_.width), '.') + "] " +
                       status(info, eta(info, now));
    const std::size_t length = line.size();
    if (length < last_length_) line += std::string(last_length_ - length, ' ');
    last_length_ = length;
    *out_ << line;
    out_->flush();
    drawn_ = true;
    last_draw_ = now;
  }

  progress_bar_options opt_;
  std::ostream* out_ = nullptr;
  bool terminal_ = false;
  bool drawn_ = false;
  std::uint64_t first_round_ = 0;
  std::uint64_t printed_round_ = 0;
  std::size_t last_length_ = 0;
  clock::time_point first_time_{};
  clock::time_point last_draw_{};
};

}  // namespace loco::observe
