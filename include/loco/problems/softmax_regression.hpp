#pragma once
// problems::softmax_regression: multinomial logistic regression over K
// classes with an L2 penalty on the weights. Parameters x = (W, c): W is
// K x p row-major, then the K intercepts c (not penalised); d = K (p + 1).
// With z_j = W a_j + c and P_j = softmax(z_j),
//   f_i(x) = 1/m sum_j [ logsumexp(z_j) - z_j[y_j] ] + (l2/2) ||W||_F^2,
//   grad_W = 1/m sum_j (P_j - e_{y_j}) a_j^T + l2 W,  grad_c = 1/m sum_j (P_j - e_{y_j}).
// Plain loops (no BLAS): K p multiply-adds per example in each direction.
#include <algorithm>
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

struct softmax_regression_options {
  std::size_t batch_size = 64;  // b >= 1
  double l2 = 1e-4;             // >= 0
};

template <class T = float>
class softmax_regression {
 public:
  using value_type = T;
  using dataset_type = data::dataset<T>;

  softmax_regression(std::shared_ptr<const dataset_type> data, std::span<const std::size_t> rows,
                     softmax_regression_options options = {})
      : rows_(std::move(data), rows, options.batch_size, "softmax_regression"),
        options_(options),
        batch_(options.batch_size),
        z_(rows_.data().classes) {
    if (rows_.data().classes < 2 || rows_.data().labels.size() != rows_.data().rows()) {
      throw config_error("softmax_regression: the dataset has " +
                         std::to_string(rows_.data().classes) +
                         " classes; at least 2 with one label per row are needed");
    }
    if (!(options_.l2 >= 0.0)) {
      throw config_error("softmax_regression: l2 " + std::to_string(options_.l2) + " must be >= 0");
    }
  }
  explicit softmax_regression(std::shared_ptr<const dataset_type> data,
                              softmax_regression_options options = {})
      : softmax_regression(data, detail::rows<T>::all(data), options) {}

  std::size_t classes() const noexcept { return rows_.data().classes; }
  std::size_t features() const noexcept { return rows_.data().cols(); }
  std::size_t dimension() const noexcept { return classes() * (features() + 1); }
  std::size_t rows() const noexcept { return rows_.size(); }

  double loss(std::span<const T> x) const {
    detail::check_sizes("softmax_regression::loss", dimension(), x.size(), x.size());
    std::vector<double> z(classes());
    double f = 0.0;
    for (std::size_t j : rows_.indices()) f += forward(x, j, z);
    return f / static_cast<double>(rows_.size()) + penalty(x);
  }

  // Fraction of this worker's rows whose largest logit is the label's
  // (ties go to the lowest class).
  double accuracy(std::span<const T> x) const {
    detail::check_sizes("softmax_regression::accuracy", dimension(), x.size(), x.size());
    std::vector<double> z(classes());
    std::size_t right = 0;
    for (std::size_t j : rows_.indices()) {
      logits(x, j, z);
      const auto best = static_cast<std::size_t>(std::max_element(z.begin(), z.end()) - z.begin());
      if (best == static_cast<std::size_t>(rows_.data().labels[j])) ++right;
    }
    return static_cast<double>(right) / static_cast<double>(rows_.size());
  }

  void full_gradient(std::span<const T> x, std::span<T> g) const {
    std::vector<double> z(classes());
    accumulate(x, g, rows_.indices(), z);
  }

  double gradient(std::span<const T> x, std::span<T> g, random::stream& rng) {
    rows_.draw(rng, batch_);
    return accumulate(x, g, batch_, z_);
  }

  tensor::vector<T> initial_point(std::uint64_t = 0) const { return tensor::zeros<T>(dimension()); }

 private:
  void logits(std::span<const T> x, std::size_t j, std::span<double> z) const noexcept {
    const std::size_t p = features();
    const T* a = rows_.data().row(j).data();
    const T* c = x.data() + classes() * p;
    for (std::size_t k = 0; k < classes(); ++k) {
      z[k] = static_cast<double>(detail::dot(x.data() + k * p, a, p)) + static_cast<double>(c[k]);
    }
  }
  // Leaves the softmax probabilities in z; returns the example's loss.
  double forward(std::span<const T> x, std::size_t j, std::span<double> z) const noexcept {
    logits(x, j, z);
    const double top = *std::max_element(z.begin(), z.end());
    const double zy = z[static_cast<std::size_t>(rows_.data().labels[j])] - top;
    double sum = 0.0;
    for (double& v : z) sum += v = std::exp(v - top);
    for (double& v : z) v /= sum;
    return std::log(sum) - zy;
  }
  double penalty(std::span<const T> x) const noexcept {
    double s = 0.0;
    for (std::size_t k = 0; k < classes() * features(); ++k) {
      s += static_cast<double>(x[k]) * static_cast<double>(x[k]);
    }
    return 0.5 * options_.l2 * s;
  }
  double accumulate(std::span<const T> x, std::span<T> g, std::span<const std::size_t> which,
                    std::span<double> z) const {
    detail::check_sizes("softmax_regression::gradient", dimension(), x.size(), g.size());
    const std::size_t p = features();
    const std::size_t w = classes() * p;
    for (std::size_t k = 0; k < w; ++k) g[k] = static_cast<T>(options_.l2) * x[k];
    for (std::size_t k = w; k < dimension(); ++k) g[k] = T(0);
    const double scale = 1.0 / static_cast<double>(which.size());
    double f = 0.0;
    for (std::size_t j : which) {
      f += forward(x, j, z);
      z[static_cast<std::size_t>(rows_.data().labels[j])] -= 1.0;
      const T* a = rows_.data().row(j).data();
      for (std::size_t k = 0; k < classes(); ++k) {
        const T c = static_cast<T>(z[k] * scale);
        T* gk = g.data() + k * p;
        for (std::size_t i = 0; i < p; ++i) gk[i] += c * a[i];
        g[w + k] += c;
      }
    }
    return f * scale + penalty(x);
  }

  detail::rows<T> rows_;
  softmax_regression_options options_;
  std::vector<std::size_t> batch_;
  std::vector<double> z_;
};

}  // namespace loco::problems
