#pragma once
// data::csr_matrix: a sparse matrix in compressed sparse row form, as LIBSVM
// files hold their data. Row i's entries are col[row_start[i] .. row_start[i+1])
// with strictly increasing columns.
#include <cstddef>
#include <limits>
#include <loco/error.hpp>
#include <loco/tensor/vector.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::data {

template <class T = float>
struct csr_matrix {
  std::size_t cols = 0;
  std::vector<std::size_t> row_start{0};  // rows() + 1 offsets
  std::vector<std::size_t> col;           // 0-based column of each stored entry
  std::vector<T> value;

  std::size_t rows() const noexcept { return row_start.size() - 1; }
  std::size_t nonzeros() const noexcept { return value.size(); }

  std::span<const std::size_t> row_cols(std::size_t i) const noexcept {
    return {col.data() + row_start[i], row_start[i + 1] - row_start[i]};
  }
  std::span<const T> row_values(std::size_t i) const noexcept {
    return {value.data() + row_start[i], row_start[i + 1] - row_start[i]};
  }

  // The dense n x cols matrix. Throws config_error when n * cols entries
  // cannot be indexed (a huge feature index in a data file), before any
  // allocation.
  tensor::matrix<T> to_dense() const {
    constexpr auto max_entries =
        static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(T);
    if (cols != 0 && rows() > max_entries / cols) {
      throw config_error("csr_matrix: a dense " + std::to_string(rows()) + " x " +
                         std::to_string(cols) + " matrix has more entries than memory can index");
    }
    tensor::matrix<T> m = xt::zeros<T>({rows(), cols});
    for (std::size_t i = 0; i < rows(); ++i) {
      for (std::size_t k = row_start[i]; k < row_start[i + 1]; ++k) m(i, col[k]) = value[k];
    }
    return m;
  }
};

}  // namespace loco::data
