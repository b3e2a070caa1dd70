// The LIBSVM text parser (data::libsvm<float>::parse) and the dense
// conversion a loader does next. Input: u8 options (bit 0: regression;
// bits 1..7: features p, 0 for "the largest index"), then the text.
// Invariants: parse throws only protocol_error; an accepted file has one
// label per row, finite labels and values, strictly increasing 0-based
// columns below cols, integer labels and sorted distinct class values for
// classification; to_dataset() either throws a loco error (a matrix too
// large to index) or gives a dataset that validates and holds every entry.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <loco/data/libsvm.hpp>
#include <loco/error.hpp>
#include <sstream>
#include <string>

#include "common.hpp"

namespace {

// Dense conversion is tried only when it fits comfortably in memory; a
// matrix too large to index must be refused by the library (config_error).
constexpr std::size_t max_dense_entries = std::size_t{1} << 22;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader in(loco_fuzz::as_bytes(data, size));
  const std::uint8_t setting = in.u8();
  loco::data::libsvm_options opt;
  opt.task = (setting & 1u) != 0 ? loco::data::libsvm_task::regression
                                 : loco::data::libsvm_task::classification;
  opt.features = setting >> 1;
  const auto rest = in.rest();
  std::istringstream text(std::string(reinterpret_cast<const char*>(rest.data()), rest.size()));
  loco::data::libsvm<float> f;
  try {
    f = loco::data::libsvm<float>::parse(text, "fuzz", opt);
  } catch (const loco::protocol_error&) {
    return 0;
  }
  const auto& m = f.features;
  LOCO_FUZZ_CHECK(m.rows() == f.labels.size() && m.rows() > 0);
  LOCO_FUZZ_CHECK(m.row_start.front() == 0 && m.row_start.back() == m.nonzeros());
  LOCO_FUZZ_CHECK(m.col.size() == m.value.size());
  LOCO_FUZZ_CHECK(opt.features == 0 || m.cols == opt.features);
  for (std::size_t i = 0; i < m.rows(); ++i) {
    LOCO_FUZZ_CHECK(m.row_start[i] <= m.row_start[i + 1]);
    const auto cols = m.row_cols(i);
    for (std::size_t k = 0; k < cols.size(); ++k) {
      LOCO_FUZZ_CHECK(cols[k] < m.cols);
      LOCO_FUZZ_CHECK(k == 0 || cols[k - 1] < cols[k]);
    }
    for (float v : m.row_values(i)) LOCO_FUZZ_CHECK(std::isfinite(v));
    LOCO_FUZZ_CHECK(std::isfinite(f.labels[i]));
  }
  if (opt.task == loco::data::libsvm_task::classification) {
    LOCO_FUZZ_CHECK(!f.class_values.empty());
    for (std::size_t c = 1; c < f.class_values.size(); ++c) {
      LOCO_FUZZ_CHECK(f.class_values[c - 1] < f.class_values[c]);
    }
    for (double y : f.labels) LOCO_FUZZ_CHECK(y == std::round(y));
  } else {
    LOCO_FUZZ_CHECK(f.class_values.empty());
  }

  constexpr std::size_t max_entries =
      static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(float);
  const bool overflows = m.cols != 0 && m.rows() > max_entries / m.cols;
  if (!overflows && m.rows() * m.cols > max_dense_entries) return 0;
  loco::data::dataset<float> d;
  try {
    d = f.to_dataset();
  } catch (const loco::config_error&) {
    LOCO_FUZZ_CHECK(overflows);
    return 0;
  }
  LOCO_FUZZ_CHECK(!overflows);
  LOCO_FUZZ_CHECK(d.rows() == m.rows() && d.cols() == m.cols);
  d.validate("fuzz");
  for (std::size_t i = 0; i < m.rows(); ++i) {
    const auto cols = m.row_cols(i);
    const auto vals = m.row_values(i);
    for (std::size_t k = 0; k < cols.size(); ++k) LOCO_FUZZ_CHECK(d.row(i)[cols[k]] == vals[k]);
  }
  return 0;
}
