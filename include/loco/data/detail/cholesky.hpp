#pragma once
// Solving M x = r for a small symmetric positive definite M (row-major,
// d x d, in double) by Cholesky. Used for the known minimizers of synthetic
// problems, where d is at most a few hundred.
#include <cmath>
#include <cstddef>
#include <loco/error.hpp>
#include <string>
#include <vector>

namespace loco::data::detail {

inline std::vector<double> solve_spd(std::vector<double> m, std::vector<double> r, std::size_t d) {
  for (std::size_t j = 0; j < d; ++j) {
    double s = m[j * d + j];
    for (std::size_t k = 0; k < j; ++k) s -= m[j * d + k] * m[j * d + k];
    if (!(s > 0.0)) {
      throw config_error("solve_spd: matrix is not positive definite (pivot " + std::to_string(j) +
                         " is " + std::to_string(s) + ")");
    }
    const double l = std::sqrt(s);
    m[j * d + j] = l;
    for (std::size_t i = j + 1; i < d; ++i) {
      double t = m[i * d + j];
      for (std::size_t k = 0; k < j; ++k) t -= m[i * d + k] * m[j * d + k];
      m[i * d + j] = t / l;
    }
  }
  for (std::size_t i = 0; i < d; ++i) {  // L y = r
    double t = r[i];
    for (std::size_t k = 0; k < i; ++k) t -= m[i * d + k] * r[k];
    r[i] = t / m[i * d + i];
  }
  for (std::size_t i = d; i-- > 0;) {  // L^T x = y
    double t = r[i];
    for (std::size_t k = i + 1; k < d; ++k) t -= m[k * d + i] * r[k];
    r[i] = t / m[i * d + i];
  }
  return r;
}

}  // namespace loco::data::detail
