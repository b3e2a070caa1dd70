#pragma once
// problems::quadratic: f_i(x) = 0.5 (x - b_i)^T A_i (x - b_i), with A_i
// symmetric positive semi-definite (dense, or diagonal for large d), and an
// optional additive gradient noise xi ~ N(0, (sigma^2 / d) I), so that
// E||g - grad f_i||^2 = sigma^2 exactly. The minimizer of the average of n
// such functions is known in closed form (average_minimizer), which makes this
// the workhorse for exact checks of bias and delay effects.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/data/detail/cholesky.hpp>
#include <loco/data/synthetic.hpp>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/vector.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::problems {

struct quadratic_options {
  double noise_variance = 0.0;  // sigma^2 = E||xi||^2 over all d coordinates, >= 0
};

template <class T = float>
class quadratic {
 public:
  using value_type = T;

  // Dense A (d x d, symmetric) and centre b (d).
  quadratic(const tensor::matrix<T>& a, tensor::vector<T> b, quadratic_options options = {})
      : a_(a.begin(), a.end()), b_(std::move(b)), options_(options), dense_(true) {
    const std::size_t d = b_.size();
    if (a.shape()[0] != d || a.shape()[1] != d) {
      throw config_error("quadratic: A is " + std::to_string(a.shape()[0]) + "x" +
                         std::to_string(a.shape()[1]) + ", b has " + std::to_string(d) +
                         " entries; A must be d x d");
    }
    for (std::size_t i = 0; i < d; ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if (a(i, j) != a(j, i)) {
          throw config_error("quadratic: A is not symmetric at (" + std::to_string(i) + ", " +
                             std::to_string(j) + ")");
        }
      }
    }
    check();
  }

  // Diagonal A = diag(a).
  static quadratic diagonal(const tensor::vector<T>& a, tensor::vector<T> b,
                            quadratic_options options = {}) {
    if (a.size() != b.size()) {
      throw config_error("quadratic::diagonal: a has " + std::to_string(a.size()) + " and b " +
                         std::to_string(b.size()) + " entries; they must match");
    }
    for (std::size_t j = 0; j < a.size(); ++j) {
      if (!(a(j) >= T(0))) {
        throw config_error("quadratic::diagonal: a[" + std::to_string(j) +
                           "] = " + std::to_string(a(j)) + " must be >= 0");
      }
    }
    return quadratic(a, std::move(b), options, 0);
  }

  // One objective per worker of a synthetic family (data::make_quadratics).
  static std::vector<quadratic> from_family(const data::quadratic_family<T>& family,
                                            quadratic_options options = {}) {
    std::vector<quadratic> out;
    for (std::size_t w = 0; w < family.centre.size(); ++w) {
      if (family.dense.empty()) {
        out.push_back(diagonal(family.diagonal[w], family.centre[w], options));
      } else {
        out.emplace_back(family.dense[w], family.centre[w], options);
      }
    }
    return out;
  }

  std::size_t dimension() const noexcept { return b_.size(); }
  bool is_diagonal() const noexcept { return !dense_; }
  const tensor::vector<T>& centre() const noexcept { return b_; }
  double noise_variance() const noexcept { return options_.noise_variance; }

  double loss(std::span<const T> x) const {
    check_x(x.size());
    double f = 0.0;
    for (std::size_t i = 0; i < dimension(); ++i) f += residual(x, i) * grad_entry(x, i);
    return 0.5 * f;
  }

  // The exact gradient A (x - b).
  void full_gradient(std::span<const T> x, std::span<T> g) const {
    check_x(x.size());
    check_x(g.size());
    for (std::size_t i = 0; i < dimension(); ++i) g[i] = static_cast<T>(grad_entry(x, i));
  }

  // A (x - b) + xi; returns f_i(x) (there is no mini-batch).
  double gradient(std::span<const T> x, std::span<T> g, random::stream& rng) const {
    check_x(x.size());
    check_x(g.size());
    const double sd = std::sqrt(options_.noise_variance / static_cast<double>(dimension()));
    double f = 0.0;
    for (std::size_t i = 0; i < dimension(); ++i) {
      const double gi = grad_entry(x, i);
      f += residual(x, i) * gi;
      g[i] = static_cast<T>(options_.noise_variance > 0.0 ? gi + sd * rng.normal() : gi);
    }
    return 0.5 * f;
  }

  tensor::vector<T> initial_point(std::uint64_t = 0) const { return tensor::zeros<T>(dimension()); }

  // argmin of (1/n) sum_i f_i: solves (sum A_i) x = sum A_i b_i in double.
  static tensor::vector<T> average_minimizer(std::span<const quadratic> fs) {
    if (fs.empty()) throw config_error("quadratic::average_minimizer: no functions");
    const std::size_t d = fs[0].dimension();
    bool all_diagonal = true;
    for (const auto& f : fs) {
      if (f.dimension() != d) {
        throw config_error("quadratic::average_minimizer: dimensions " + std::to_string(d) +
                           " and " + std::to_string(f.dimension()) + " differ");
      }
      all_diagonal = all_diagonal && f.is_diagonal();
    }
    tensor::vector<T> out = tensor::vector<T>::from_shape({d});
    std::vector<double> rhs(d, 0.0);
    if (all_diagonal) {
      std::vector<double> diag(d, 0.0);
      for (const auto& f : fs) {
        for (std::size_t j = 0; j < d; ++j) {
          diag[j] += static_cast<double>(f.a_[j]);
          rhs[j] += static_cast<double>(f.a_[j]) * static_cast<double>(f.b_(j));
        }
      }
      for (std::size_t j = 0; j < d; ++j) {
        if (!(diag[j] > 0.0)) {
          throw config_error("quadratic::average_minimizer: sum of A_i is singular at " +
                             std::to_string(j));
        }
        out(j) = static_cast<T>(rhs[j] / diag[j]);
      }
      return out;
    }
    std::vector<double> m(d * d, 0.0);
    for (const auto& f : fs) {
      for (std::size_t i = 0; i < d; ++i) {
        for (std::size_t j = 0; j < d; ++j) {
          const double aij = f.entry(i, j);
          m[i * d + j] += aij;
          rhs[i] += aij * static_cast<double>(f.b_(j));
        }
      }
    }
    const auto x = data::detail::solve_spd(std::move(m), std::move(rhs), d);
    for (std::size_t j = 0; j < d; ++j) out(j) = static_cast<T>(x[j]);
    return out;
  }

 private:
  quadratic(const tensor::vector<T>& a, tensor::vector<T> b, quadratic_options options, int)
      : a_(a.begin(), a.end()), b_(std::move(b)), options_(options), dense_(false) {
    check();
  }

  void check() const {
    if (b_.size() == 0) throw config_error("quadratic: dimension 0 must be >= 1");
    if (!(options_.noise_variance >= 0.0) || !std::isfinite(options_.noise_variance)) {
      throw config_error("quadratic: noise_variance " + std::to_string(options_.noise_variance) +
                         " must be finite and >= 0");
    }
  }
  void check_x(std::size_t n) const {
    if (n != dimension()) {
      throw config_error("quadratic: a vector of " + std::to_string(n) + " entries for dimension " +
                         std::to_string(dimension()));
    }
  }
  double entry(std::size_t i, std::size_t j) const noexcept {
    if (dense_) return static_cast<double>(a_.data()[i * dimension() + j]);
    return i == j ? static_cast<double>(a_.data()[i]) : 0.0;
  }
  double residual(std::span<const T> x, std::size_t i) const noexcept {
    return static_cast<double>(x[i]) - static_cast<double>(b_(i));
  }
  // (A (x - b))_i
  double grad_entry(std::span<const T> x, std::size_t i) const noexcept {
    if (!dense_) return static_cast<double>(a_.data()[i]) * residual(x, i);
    const T* row = a_.data() + i * dimension();
    double s = 0.0;
    for (std::size_t j = 0; j < dimension(); ++j) s += static_cast<double>(row[j]) * residual(x, j);
    return s;
  }

  std::vector<T> a_;  // row-major d x d when dense, the d diagonal entries otherwise
  tensor::vector<T> b_;
  quadratic_options options_;
  bool dense_;
};

}  // namespace loco::problems
