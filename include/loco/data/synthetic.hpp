#pragma once
// Synthetic data with a known answer, reproducible from a seed.
//
//   make_least_squares(n, p, noise, seed)     rows a_j ~ N(0, I_p), y = A x_true + noise N(0, 1)
//   make_logistic(n, p, flip, seed)           a_j ~ N(0, I_p), y = [w_true . a_j > 0], each
//                                             label flipped with probability `flip`
//                                             (flip = 0: linearly separable)
//   make_quadratics(workers, d, options, seed) heterogeneous f_i(x) = 0.5 (x-b_i)^T A_i (x-b_i)
//                                             with the minimizer of their average
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/data/dataset.hpp>
#include <loco/data/detail/cholesky.hpp>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/vector.hpp>
#include <string>
#include <vector>

namespace loco::data {

// A dataset and the parameter vector that generated it.
template <class T = float>
struct synthetic {
  dataset<T> data;
  tensor::vector<T> truth;
};

namespace detail {
inline void check_shape(const char* who, std::size_t n, std::size_t p) {
  if (n == 0 || p == 0) {
    throw config_error(std::string(who) + ": n " + std::to_string(n) + " and p " +
                       std::to_string(p) + " must both be >= 1");
  }
}
}  // namespace detail

// Gaussian least squares. With noise = 0 and n >= p, truth is the unique
// minimizer of 0.5/n ||A x - y||^2.
template <class T = float>
synthetic<T> make_least_squares(std::size_t n, std::size_t p, double noise, std::uint64_t seed) {
  detail::check_shape("make_least_squares", n, p);
  if (!(noise >= 0.0) || !std::isfinite(noise)) {
    throw config_error("make_least_squares: noise " + std::to_string(noise) + " must be >= 0");
  }
  random::stream rng(seed, 0x15);
  synthetic<T> s;
  s.truth = tensor::vector<T>::from_shape({p});
  for (auto& v : s.truth) v = static_cast<T>(rng.normal());
  s.data.features = tensor::matrix<T>::from_shape({n, p});
  s.data.targets = tensor::vector<T>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) {
    double y = 0.0;
    for (std::size_t j = 0; j < p; ++j) {
      const T a = static_cast<T>(rng.normal());
      s.data.features(i, j) = a;
      y += static_cast<double>(a) * static_cast<double>(s.truth(j));
    }
    s.data.targets(i) = static_cast<T>(y + noise * rng.normal());
  }
  return s;
}

// Binary classification data for logistic regression (classes = 2, labels 0/1).
template <class T = float>
synthetic<T> make_logistic(std::size_t n, std::size_t p, double flip, std::uint64_t seed) {
  detail::check_shape("make_logistic", n, p);
  if (!(flip >= 0.0 && flip <= 0.5)) {
    throw config_error("make_logistic: flip " + std::to_string(flip) + " must be in [0, 0.5]");
  }
  random::stream rng(seed, 0x10915);
  synthetic<T> s;
  s.truth = tensor::vector<T>::from_shape({p});
  for (auto& v : s.truth) v = static_cast<T>(rng.normal());
  s.data.classes = 2;
  s.data.features = tensor::matrix<T>::from_shape({n, p});
  s.data.labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    double z = 0.0;
    for (std::size_t j = 0; j < p; ++j) {
      const T a = static_cast<T>(rng.normal());
      s.data.features(i, j) = a;
      z += static_cast<double>(a) * static_cast<double>(s.truth(j));
    }
    bool y = z > 0.0;
    if (rng.uniform() < flip) y = !y;
    s.data.labels[i] = y ? 1 : 0;
  }
  return s;
}

struct quadratic_options {
  double mu = 1.0;             // smallest curvature, > 0
  double l = 10.0;             // largest curvature, >= mu
  double heterogeneity = 1.0;  // b_i = c + heterogeneity * N(0, I): 0 makes all minima equal
  bool dense = false;          // dense A_i (d <= 2000) instead of diagonal
};

// Per-worker curvatures and centres of f_i(x) = 0.5 (x - b_i)^T A_i (x - b_i).
// Diagonal A_i have entries uniform in [mu, l]; dense A_i are
// mu I + (l - mu) G G^T / (4 d) with G Gaussian, whose spectrum lies in
// [mu, about l] (Marchenko-Pastur). minimizer solves (sum A_i) x = sum A_i b_i.
template <class T = float>
struct quadratic_family {
  std::vector<tensor::vector<T>> diagonal;  // filled when !dense: d entries per worker
  std::vector<tensor::matrix<T>> dense;     // filled when dense: d x d per worker
  std::vector<tensor::vector<T>> centre;    // b_i
  tensor::vector<T> minimizer;
};

template <class T = float>
quadratic_family<T> make_quadratics(std::size_t workers, std::size_t d, quadratic_options o,
                                    std::uint64_t seed) {
  detail::check_shape("make_quadratics", workers, d);
  if (!(o.mu > 0.0) || !(o.l >= o.mu) || !std::isfinite(o.l)) {
    throw config_error("make_quadratics: need 0 < mu <= l < inf, got mu " + std::to_string(o.mu) +
                       ", l " + std::to_string(o.l));
  }
  if (!(o.heterogeneity >= 0.0) || !std::isfinite(o.heterogeneity)) {
    throw config_error("make_quadratics: heterogeneity " + std::to_string(o.heterogeneity) +
                       " must be finite and >= 0");
  }
  if (o.dense && d > 2000) {
    throw config_error("make_quadratics: dense with d " + std::to_string(d) + " > 2000");
  }
  random::stream rng(seed, 0x9ad);
  quadratic_family<T> q;
  std::vector<double> c(d);
  for (auto& v : c) v = rng.normal();
  std::vector<double> sum_a(o.dense ? d * d : d, 0.0);
  std::vector<double> sum_ab(d, 0.0);
  for (std::size_t w = 0; w < workers; ++w) {
    tensor::vector<T> b = tensor::vector<T>::from_shape({d});
    for (std::size_t j = 0; j < d; ++j)
      b(j) = static_cast<T>(c[j] + o.heterogeneity * rng.normal());
    if (!o.dense) {
      tensor::vector<T> a = tensor::vector<T>::from_shape({d});
      for (std::size_t j = 0; j < d; ++j) {
        a(j) = static_cast<T>(o.mu + (o.l - o.mu) * rng.uniform());
        sum_a[j] += static_cast<double>(a(j));
        sum_ab[j] += static_cast<double>(a(j)) * static_cast<double>(b(j));
      }
      q.diagonal.push_back(std::move(a));
    } else {
      std::vector<double> g(d * d);
      for (auto& v : g) v = rng.normal();
      tensor::matrix<T> a = tensor::matrix<T>::from_shape({d, d});
      const double scale = (o.l - o.mu) / (4.0 * static_cast<double>(d));
      for (std::size_t i = 0; i < d; ++i) {
        for (std::size_t j = 0; j <= i; ++j) {
          double s = 0.0;
          for (std::size_t k = 0; k < d; ++k) s += g[i * d + k] * g[j * d + k];
          const double v = scale * s + (i == j ? o.mu : 0.0);
          a(i, j) = a(j, i) = static_cast<T>(v);
        }
      }
      for (std::size_t i = 0; i < d; ++i) {
        for (std::size_t j = 0; j < d; ++j) {
          sum_a[i * d + j] += static_cast<double>(a(i, j));
          sum_ab[i] += static_cast<double>(a(i, j)) * static_cast<double>(b(j));
        }
      }
      q.dense.push_back(std::move(a));
    }
    q.centre.push_back(std::move(b));
  }
  q.minimizer = tensor::vector<T>::from_shape({d});
  if (!o.dense) {
    for (std::size_t j = 0; j < d; ++j) q.minimizer(j) = static_cast<T>(sum_ab[j] / sum_a[j]);
  } else {
    const auto x = detail::solve_spd(std::move(sum_a), std::move(sum_ab), d);
    for (std::size_t j = 0; j < d; ++j) q.minimizer(j) = static_cast<T>(x[j]);
  }
  return q;
}

}  // namespace loco::data
