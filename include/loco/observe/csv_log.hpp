#pragma once
// observe::csv_log: a callback writing one CSV row per round, with the trace
// columns first (run,round,step,time_s,bytes,loss,accuracy) and then the
// ledger's (ledger::csv_columns()), so tools/plot.py draws it directly.
// Rows come from the ledger's last round, so they equal ledger.to_csv's.
//
//   driver.run(comm, f, x0, observe::evaluate_every(10, eval),
//              observe::csv_log("results/trace.csv", {.run = "loscar"}));
//
// Put evaluate_every before csv_log: callbacks run in the order given, and a
// row shows the accuracy recorded by the time it is written.
#include <filesystem>
#include <loco/observe/csv.hpp>
#include <loco/observe/ledger.hpp>
#include <memory>
#include <string>

namespace loco::observe {

struct csv_log_options {
  std::string run = "run";  // the run column: one name per curve in a plot
  int rank = 0;             // the rank that writes (others do nothing)
};

class csv_log {
 public:
  explicit csv_log(std::filesystem::path path, csv_log_options opt = {})
      : path_(std::move(path)), opt_(std::move(opt)) {}

  template <class Info>
  void on_round_end(const Info& info) {
    if (info.rank != opt_.rank || !info.ledger) return;
    const round_record* r = info.ledger->last_round();
    if (!r) return;
    // Opened at the first row, so ranks that never write create no file.
    if (!out_) out_ = std::make_unique<csv_writer>(path_, ledger::csv_columns());
    info.ledger->write_csv_row(*out_, opt_.run, *r);
    ++rows_;
  }

  template <class Info>
  void on_run_end(const Info& info) {
    if (info.rank == opt_.rank && out_) out_->flush();
  }

  std::size_t rows() const noexcept { return rows_; }
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  csv_log_options opt_;
  std::unique_ptr<csv_writer> out_;
  std::size_t rows_ = 0;
};

}  // namespace loco::observe
