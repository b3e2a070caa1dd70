#pragma once
// problems::logistic_regression: binary classification (labels 0/1, classes
// = 2) with an L2 penalty on the weights. Parameters x = (w, c), d = p + 1,
// the intercept c last and not penalised. With z_j = w . a_j + c,
//   f_i(x) = 1/m sum_j [ log(1 + exp(z_j)) - y_j z_j ] + (l2/2) ||w||^2,
//   grad   = 1/m sum_j (sigmoid(z_j) - y_j) (a_j, 1) + l2 (w, 0).
#include <cmath>
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

struct logistic_regression_options {
  std::size_t batch_size = 32;  // b >= 1
  double l2 = 1e-4;             // >= 0
};

template <class T = float>
class logistic_regression {
 public:
  using value_type = T;
  using dataset_type = data::dataset<T>;

  logistic_regression(std::shared_ptr<const dataset_type> data, std::span<const std::size_t> rows,
                      logistic_regression_options options = {})
      : rows_(std::move(data), rows, options.batch_size, "logistic_regression"),
        options_(options),
        batch_(options.batch_size) {
    if (rows_.data().classes != 2 || rows_.data().labels.size() != rows_.data().rows()) {
      throw config_error("logistic_regression: the dataset has " +
                         std::to_string(rows_.data().classes) +
                         " classes; binary labels 0/1 (classes = 2) are needed");
    }
    if (!(options_.l2 >= 0.0)) {
      throw config_error("logistic_regression: l2 " + std::to_string(options_.l2) +
                         " must be >= 0");
    }
  }
  explicit logistic_regression(std::shared_ptr<const dataset_type> data,
                               logistic_regression_options options = {})
      : logistic_regression(data, detail::rows<T>::all(data), options) {}

  std::size_t dimension() const noexcept { return rows_.data().cols() + 1; }
  std::size_t rows() const noexcept { return rows_.size(); }

  double loss(std::span<const T> x) const {
    detail::check_sizes("logistic_regression::loss", dimension(), x.size(), x.size());
    double f = 0.0;
    for (std::size_t j : rows_.indices()) f += example_loss(x, j, margin(x, j));
    return f / static_cast<double>(rows_.size()) + penalty(x);
  }

  // Fraction of this worker's rows with sign(z_j) matching the label.
  double accuracy(std::span<const T> x) const {
    detail::check_sizes("logistic_regression::accuracy", dimension(), x.size(), x.size());
    std::size_t right = 0;
    for (std::size_t j : rows_.indices()) {
      if ((margin(x, j) > 0.0) == (rows_.data().labels[j] == 1)) ++right;
    }
    return static_cast<double>(right) / static_cast<double>(rows_.size());
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
  double margin(std::span<const T> x, std::size_t j) const noexcept {
    const std::size_t p = dimension() - 1;
    return static_cast<double>(detail::dot(rows_.data().row(j).data(), x.data(), p)) +
           static_cast<double>(x[p]);
  }
  double example_loss(std::span<const T>, std::size_t j, double z) const noexcept {
    return detail::softplus(z) - (rows_.data().labels[j] == 1 ? z : 0.0);
  }
  double penalty(std::span<const T> x) const noexcept {
    double s = 0.0;
    for (std::size_t k = 0; k + 1 < x.size(); ++k) {
      s += static_cast<double>(x[k]) * static_cast<double>(x[k]);
    }
    return 0.5 * options_.l2 * s;
  }
  double accumulate(std::span<const T> x, std::span<T> g,
                    std::span<const std::size_t> which) const {
    detail::check_sizes("logistic_regression::gradient", dimension(), x.size(), g.size());
    const std::size_t p = dimension() - 1;
    for (std::size_t k = 0; k < p; ++k) g[k] = static_cast<T>(options_.l2) * x[k];
    g[p] = T(0);
    const double scale = 1.0 / static_cast<double>(which.size());
    double f = 0.0;
    for (std::size_t j : which) {
      const double z = margin(x, j);
      f += example_loss(x, j, z);
      const double sigmoid =
          z >= 0.0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
      const double r = sigmoid - (rows_.data().labels[j] == 1 ? 1.0 : 0.0);
      const T c = static_cast<T>(r * scale);
      const T* a = rows_.data().row(j).data();
      for (std::size_t k = 0; k < p; ++k) g[k] += c * a[k];
      g[p] += c;
    }
    return f * scale + penalty(x);
  }

  detail::rows<T> rows_;
  logistic_regression_options options_;
  std::vector<std::size_t> batch_;
};

}  // namespace loco::problems
