#pragma once
// The LIBSVM / SVMlight text format: one example per line,
//   <label> <index>:<value> <index>:<value> ...     (indices 1-based, increasing)
// with '#' starting a comment. data::libsvm<T> holds a parsed file as a sparse
// matrix plus the raw labels; to_dataset() makes the dense dataset the
// objectives use. Every malformed line throws protocol_error naming the file,
// the line and what was wrong.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <istream>
#include <limits>
#include <loco/data/csr_matrix.hpp>
#include <loco/data/dataset.hpp>
#include <loco/error.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace loco::data {

enum class libsvm_task {
  classification,  // labels must be integers; the sorted distinct values become 0 .. K-1
  regression       // labels are real targets
};

struct libsvm_options {
  std::size_t features = 0;  // p; 0 means the largest index in the file
  libsvm_task task = libsvm_task::classification;
};

template <class T = float>
class libsvm {
 public:
  csr_matrix<T> features;
  std::vector<double> labels;        // as written in the file
  std::vector<double> class_values;  // classification: the distinct labels, sorted

  static libsvm read(const std::string& path, libsvm_options options = {}) {
    std::ifstream in(path);
    if (!in) throw config_error("libsvm: cannot open data file " + path);
    return parse(in, path, options);
  }

  // `source` names the stream in error messages.
  static libsvm parse(std::istream& in, const std::string& source, libsvm_options options = {}) {
    libsvm f;
    std::string line;
    std::size_t line_no = 0;
    std::size_t max_index = 0;
    while (std::getline(in, line)) {
      ++line_no;
      std::string_view rest(line);
      if (const auto hash = rest.find('#'); hash != std::string_view::npos) {
        rest = rest.substr(0, hash);
      }
      std::string_view token = next_token(rest);
      if (token.empty()) continue;  // blank or comment-only line
      const std::string field = "line " + std::to_string(line_no);
      double label = 0.0;
      if (!parse_number(token, label)) {
        throw protocol_error(source, field, "label '" + std::string(token) + "' is not a number");
      }
      if (!std::isfinite(label)) {
        throw protocol_error(source, field, "label '" + std::string(token) + "' is not finite");
      }
      std::size_t previous = 0;
      for (token = next_token(rest); !token.empty(); token = next_token(rest)) {
        const auto colon = token.find(':');
        if (colon == std::string_view::npos) {
          throw protocol_error(source, field,
                               "'" + std::string(token) + "' is not <index>:<value>");
        }
        const std::string_view index_text = token.substr(0, colon);
        const std::string_view value_text = token.substr(colon + 1);
        if (index_text == "qid") {
          throw protocol_error(source, field, "qid (ranking data) is not supported");
        }
        std::uint64_t index = 0;
        const auto [end, ec] =
            std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
        if (ec != std::errc{} || end != index_text.data() + index_text.size()) {
          throw protocol_error(source, field,
                               "index '" + std::string(index_text) + "' is not an integer");
        }
        if (index < 1) throw protocol_error(source, field, "index 0 is not >= 1 (1-based)");
        if (index <= previous) {
          throw protocol_error(source, field,
                               "index " + std::to_string(index) + " does not increase (after " +
                                   std::to_string(previous) + ")");
        }
        if (options.features != 0 && index > options.features) {
          throw protocol_error(source, field,
                               "index " + std::to_string(index) +
                                   " exceeds features = " + std::to_string(options.features));
        }
        double value = 0.0;
        if (!parse_number(value_text, value) || !std::isfinite(value) ||
            std::abs(value) > static_cast<double>(std::numeric_limits<T>::max())) {
          throw protocol_error(source, field,
                               "value '" + std::string(value_text) + "' of index " +
                                   std::to_string(index) + " is not a finite number in range");
        }
        previous = static_cast<std::size_t>(index);
        f.features.col.push_back(previous - 1);
        f.features.value.push_back(static_cast<T>(value));
      }
      max_index = std::max(max_index, previous);
      f.features.row_start.push_back(f.features.col.size());
      f.labels.push_back(label);
    }
    if (in.bad()) throw protocol_error(source, "stream", "read error");
    if (f.labels.empty()) throw protocol_error(source, "line 1", "no examples in the file");
    f.features.cols = options.features != 0 ? options.features : max_index;
    if (options.task == libsvm_task::classification) {
      for (std::size_t i = 0; i < f.labels.size(); ++i) {
        if (f.labels[i] != std::round(f.labels[i])) {
          throw protocol_error(source, "example " + std::to_string(i + 1),
                               "label " + std::to_string(f.labels[i]) +
                                   " is not an integer (use libsvm_task::regression)");
        }
      }
      f.class_values = f.labels;
      std::sort(f.class_values.begin(), f.class_values.end());
      f.class_values.erase(std::unique(f.class_values.begin(), f.class_values.end()),
                           f.class_values.end());
    }
    return f;
  }

  // Dense features; labels mapped to 0 .. K-1 (classification) or kept as
  // targets (regression).
  dataset<T> to_dataset() const {
    dataset<T> d;
    d.features = features.to_dense();
    if (!class_values.empty()) {
      d.classes = class_values.size();
      d.labels.reserve(labels.size());
      for (double y : labels) {
        const auto at = std::lower_bound(class_values.begin(), class_values.end(), y);
        d.labels.push_back(static_cast<std::int32_t>(at - class_values.begin()));
      }
    } else {
      d.targets = tensor::vector<T>::from_shape({labels.size()});
      for (std::size_t i = 0; i < labels.size(); ++i) d.targets(i) = static_cast<T>(labels[i]);
    }
    return d;
  }

 private:
  static std::string_view next_token(std::string_view& rest) noexcept {
    std::size_t b = 0;
    while (b < rest.size() && is_space(rest[b])) ++b;
    std::size_t e = b;
    while (e < rest.size() && !is_space(rest[e])) ++e;
    const std::string_view token = rest.substr(b, e - b);
    rest.remove_prefix(e);
    return token;
  }
  static bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
  }
  static bool parse_number(std::string_view s, double& out) noexcept {
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);  // from_chars rejects a leading '+'
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc{} && end == s.data() + s.size();
  }
};

// Reads a LIBSVM file straight into a dense dataset.
template <class T = float>
dataset<T> load_libsvm(const std::string& path, libsvm_options options = {}) {
  return libsvm<T>::read(path, options).to_dataset();
}

}  // namespace loco::data
