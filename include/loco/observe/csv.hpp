#pragma once
// A small CSV writer (RFC 4180 quoting) for run logs and experiment results.
//
//   loco::observe::csv_writer out("runs.csv", {"run", "round", "loss"});
//   out.row("minibatch", 10, 0.25);
//
// The header is written on open; every row must have one cell per column.
// Errors opening or writing the file throw loco::error naming the path.
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <loco/error.hpp>

namespace loco::observe {

class csv_writer {
 public:
  csv_writer(const std::filesystem::path& path, std::vector<std::string> columns)
      : path_(path), columns_(std::move(columns)) {
    if (columns_.empty()) throw config_error("csv_writer: no columns for " + path_.string());
    if (path_.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path_.parent_path(), ec);
    }
    out_.open(path_, std::ios::out | std::ios::trunc);
    if (!out_) throw error("csv_writer: cannot open " + path_.string() + " for writing");
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      if (c != 0) out_ << ',';
      write_text(columns_[c]);
    }
    out_ << '\n';
  }
  csv_writer(const std::filesystem::path& path, std::initializer_list<std::string> columns)
      : csv_writer(path, std::vector<std::string>(columns)) {}

  template <class... Cells>
  csv_writer& row(const Cells&... cells) {
    if (sizeof...(Cells) != columns_.size()) {
      throw config_error("csv_writer: row has " + std::to_string(sizeof...(Cells)) + " cells for " +
                         std::to_string(columns_.size()) + " columns in " + path_.string());
    }
    std::size_t c = 0;
    ((out_ << (c++ == 0 ? "" : ","), write(cells)), ...);
    out_ << '\n';
    if (!out_) throw error("csv_writer: write failed on " + path_.string());
    return *this;
  }

  void flush() {
    out_.flush();
    if (!out_) throw error("csv_writer: flush failed on " + path_.string());
  }
  const std::filesystem::path& path() const noexcept { return path_; }
  std::size_t columns() const noexcept { return columns_.size(); }

 private:
  template <class V>
  void write(const V& value) {
    if constexpr (std::is_same_v<V, bool>) {
      out_ << (value ? 1 : 0);
    } else if constexpr (std::is_floating_point_v<V>) {
      if (std::isnan(value)) {
        out_ << "nan";
      } else {
        std::ostringstream s;
        s.precision(9);
        s << value;
        out_ << s.str();
      }
    } else if constexpr (std::is_arithmetic_v<V>) {
      out_ << value;
    } else {
      write_text(std::string_view(value));
    }
  }
  void write_text(std::string_view text) {
    if (text.find_first_of(",\"\n\r") == std::string_view::npos) {
      out_ << text;
      return;
    }
    out_ << '"';
    for (char ch : text) {
      if (ch == '"') out_ << '"';
      out_ << ch;
    }
    out_ << '"';
  }

  std::filesystem::path path_;
  std::vector<std::string> columns_;
  std::ofstream out_;
};

}  // namespace loco::observe
