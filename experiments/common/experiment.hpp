#pragma once
// What every experiment program shares: the --quick/--out/--seed flags and
// the output folder. Curves go to a "trace" CSV whose first columns are
//   run,round,step,time_s,bytes,loss,accuracy
// (extra columns may follow; empty cells mean "not measured"), so that
// tools/plot.py can draw any of them against rounds, bytes or time.
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace experiment {

struct common_flags {
  bool quick = false;           // seconds-long smoke run (CI)
  std::string out = "results";  // folder for CSV files
  std::uint64_t seed = 1;

  void add_to(CLI::App& app) {
    app.add_flag("--quick", quick, "tiny smoke run (seconds), as CI runs it");
    app.add_option("--out", out, "folder for the CSV files")->capture_default_str();
    app.add_option("--seed", seed, "base random seed")->capture_default_str();
  }
  std::filesystem::path file(const std::string& name) const {
    std::filesystem::create_directories(out);
    return std::filesystem::path(out) / name;
  }
};

// The first columns of a trace CSV; append experiment-specific ones.
inline std::vector<std::string> trace_columns() {
  return {"run", "round", "step", "time_s", "bytes", "loss", "accuracy"};
}

// A number with `precision` significant digits, for tables.
inline std::string fmt(double v, int precision = 4) {
  std::ostringstream o;
  o.precision(precision);
  o << v;
  return o.str();
}

}  // namespace experiment
