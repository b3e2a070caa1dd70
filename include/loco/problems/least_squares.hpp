#pragma once
// problems::least_squares: f_i(x) = 0.5/m sum_{j in rows_i} (a_j . x - y_j)^2
// + (l2/2) ||x||^2 over worker i's m rows of a regression dataset (targets).
// The stochastic gradient averages b rows drawn with replacement.
#include <cstddef>
#include <cstdint>
#include <loco/data/dataset.hpp>
#include <loco/error.hpp>
#include <loco/problems/detail/rows.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/vector.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace loco::problems {

struct least_squares_options {
  std::size_t batch_size = 32;  // b >= 1
  double l2 = 0.0;              // ridge weight, >= 0
};

template <class T = float>
class least_squares {
 public:
  using value_type = T;
  using dataset_type = data::dataset<T>;

  least_squares(std::shared_ptr<const dataset_type> data, std::span<const std::size_t> rows,
                least_squares_options options = {})
      : rows_(std::move(data), rows, options.batch_size, "least_squares"),
        options_(options),
        batch_(options.batch_size) {
    if (rows_.data().is_classification() || rows_.data().targets.size() != rows_.data().rows()) {
      throw config_error("least_squares: the dataset needs one real target per row");
    }
    if (!(options_.l2 >= 0.0)) {
      throw config_error("least_squares: l2 " + std::to_string(options_.l2) + " must be >= 0");
    }
  }
  // All rows of the dataset.
  explicit least_squares(std::shared_ptr<const dataset_type> data,
                         least_squares_options options = {})
      : least_squares(data, detail::rows<T>::all(data), options) {}

  std::size_t dimension() const noexcept { return rows_.data().cols(); }
  std::size_t rows() const noexcept { return rows_.size(); }

  double loss(std::span<const T> x) const {
    detail::check_sizes("least_squares::loss", dimension(), x.size(), x.size());
    double f = 0.0;
    for (std::size_t j : rows_.indices()) {
      const double r = residual(x, j);
      f += r * r;
    }
    return 0.5 * f / static_cast<double>(rows_.size()) + penalty(x);
  }

  void full_gradient(std::span<const T> x, std::span<T> g) const {
    accumulate(x, g, rows_.indices());
  }

  double gradient(std::span<const T> x, std::span<T> g, random::stream& rng) {
    rows_.draw(rng, batch_);
    return accumulate(x, g, batch_);
  }

  tensor::vector<T> initial_point(std::uint64_t = 0) const { return tensor::zeros<T>(dimension()); }

 private:
  double residual(std::span<const T> x, std::size_t j) const noexcept {
    const auto& d = rows_.data();
    return static_cast<double>(detail::dot(d.row(j).data(), x.data(), dimension())) -
           static_cast<double>(d.targets(j));
  }
  double penalty(std::span<const T> x) const noexcept {
    if (options_.l2 == 0.0) return 0.0;
    double s = 0.0;
    for (T v : x) s += static_cast<double>(v) * static_cast<double>(v);
    return 0.5 * options_.l2 * s;
  }
  // g = mean over `which` of r_j a_j + l2 x; returns the mean loss.
  double accumulate(std::span<const T> x, std::span<T> g,
                    std::span<const std::size_t> which) const {
    detail::check_sizes("least_squares::gradient", dimension(), x.size(), g.size());
    const std::size_t p = dimension();
    for (std::size_t k = 0; k < p; ++k) g[k] = static_cast<T>(options_.l2) * x[k];
    const double scale = 1.0 / static_cast<double>(which.size());
    double f = 0.0;
    for (std::size_t j : which) {
      const double r = residual(x, j);
      f += r * r;
      const T c = static_cast<T>(r * scale);
      const T* a = rows_.data().row(j).data();
      for (std::size_t k = 0; k < p; ++k) g[k] += c * a[k];
    }
    return 0.5 * f * scale + penalty(x);
  }

  detail::rows<T> rows_;
  least_squares_options options_;
  std::vector<std::size_t> batch_;
};

}  // namespace loco::problems
