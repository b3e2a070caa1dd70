#pragma once
// A plain-text table with aligned columns, for end-of-run summaries.
//
//   loco::observe::table t{"run", "accuracy", "bytes"};
//   t.add_row("minibatch", 0.841, std::uint64_t{1'234'567});
//   t.print(std::cout);
//
// Numbers (and aligned_right text) are right-aligned, text left-aligned; floating-point cells use
// the table's precision (4 significant digits by default).
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <loco/error.hpp>

namespace loco::observe {

// A text cell aligned like a number ("1.23 MB" in a column of sizes).
struct aligned_right {
  std::string text;
};

class table {
 public:
  table(std::initializer_list<std::string> header) : header_(header) {
    if (header_.empty()) throw config_error("observe::table: a table needs at least one column");
  }
  explicit table(std::vector<std::string> header) : header_(std::move(header)) {
    if (header_.empty()) throw config_error("observe::table: a table needs at least one column");
  }

  // Significant digits of floating-point cells.
  table& precision(int digits) {
    precision_ = digits;
    return *this;
  }

  template <class... Cells>
  table& add_row(const Cells&... cells) {
    if (sizeof...(Cells) != header_.size()) {
      throw config_error("observe::table: row has " + std::to_string(sizeof...(Cells)) +
                         " cells for " + std::to_string(header_.size()) + " columns");
    }
    std::vector<cell> row;
    row.reserve(sizeof...(Cells));
    (row.push_back(format(cells)), ...);
    rows_.push_back(std::move(row));
    return *this;
  }

  std::size_t rows() const noexcept { return rows_.size(); }
  std::size_t columns() const noexcept { return header_.size(); }

  void print(std::ostream& out) const {
    std::vector<std::size_t> width(header_.size());
    for (std::size_t c = 0; c < header_.size(); ++c) width[c] = header_[c].size();
    for (const auto& row : rows_) {
      for (std::size_t c = 0; c < row.size(); ++c)
        width[c] = std::max(width[c], row[c].text.size());
    }
    const auto line = [&](auto&& text_of, auto&& numeric_of) {
      for (std::size_t c = 0; c < width.size(); ++c) {
        const std::string& text = text_of(c);
        const std::string pad(width[c] - text.size(), ' ');
        if (c != 0) out << "  ";
        if (numeric_of(c)) {
          out << pad << text;
        } else {
          out << text;
          if (c + 1 != width.size()) out << pad;
        }
      }
      out << '\n';
    };
    line([&](std::size_t c) -> const std::string& { return header_[c]; },
         [&](std::size_t c) { return !rows_.empty() && rows_.front()[c].numeric; });
    std::size_t total = 0;
    for (auto w : width) total += w;
    out << std::string(total + 2 * (width.size() - 1), '-') << '\n';
    for (const auto& row : rows_) {
      line([&](std::size_t c) -> const std::string& { return row[c].text; },
           [&](std::size_t c) { return row[c].numeric; });
    }
  }

  std::string str() const {
    std::ostringstream out;
    print(out);
    return out.str();
  }

 private:
  struct cell {
    std::string text;
    bool numeric = false;
  };

  template <class V>
  cell format(const V& value) const {
    if constexpr (std::is_same_v<V, aligned_right>) {
      return {value.text, true};
    } else if constexpr (std::is_same_v<V, bool>) {
      return {value ? "yes" : "no", false};
    } else if constexpr (std::is_floating_point_v<V>) {
      std::ostringstream s;
      s.precision(precision_);
      s << value;
      return {s.str(), true};
    } else if constexpr (std::is_arithmetic_v<V>) {
      return {std::to_string(value), true};
    } else {
      return {std::string(value), false};
    }
  }

  std::vector<std::string> header_;
  std::vector<std::vector<cell>> rows_;
  int precision_ = 4;
};

}  // namespace loco::observe
