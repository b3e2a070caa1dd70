#pragma once
// Helpers shared by the observe tests: a float objective (so dense payloads
// are exactly 4 bytes per value) and a CSV reader written from RFC 4180,
// sharing no code with observe::csv_writer.
#include <cmath>
#include <cstddef>
#include <fstream>
#include <loco/random/stream.hpp>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace observe_support {

// f(x) = 0.5 ||x - b||^2 with b depending on the rank; deterministic gradients.
struct float_quadratic {
  using value_type = float;
  std::vector<float> b;

  static float_quadratic for_rank(int rank, std::size_t d) {
    float_quadratic f;
    f.b.resize(d);
    for (std::size_t j = 0; j < d; ++j)
      f.b[j] = std::sin(static_cast<float>(rank * 13 + static_cast<int>(j)));
    return f;
  }
  std::size_t dimension() const { return b.size(); }
  double loss(std::span<const float> x) const {
    double s = 0;
    for (std::size_t j = 0; j < b.size(); ++j) {
      const double e = static_cast<double>(x[j]) - static_cast<double>(b[j]);
      s += 0.5 * e * e;
    }
    return s;
  }
  double gradient(std::span<const float> x, std::span<float> g, loco::random::stream&) {
    for (std::size_t j = 0; j < b.size(); ++j) g[j] = x[j] - b[j];
    return loss(x);
  }
};

// Every record of a CSV file, quoted cells unquoted.
inline std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string cell;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(cell);
      cell.clear();
    } else if (c == '\n') {
      row.push_back(cell);
      cell.clear();
      rows.push_back(row);
      row.clear();
    } else {
      cell += c;
    }
  }
  return rows;
}

}  // namespace observe_support
