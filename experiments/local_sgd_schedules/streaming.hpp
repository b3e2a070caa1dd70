#pragma once
// Streaming objectives for the local SGD schedule experiment: every
// gradient() draws one fresh sample from the population, so T steps on P
// workers see P T independent samples (the setting of ALGORITHMS.md
// section 2). Features a ~ N(0, diag(h)); the population minimizer is w*.
#include <cmath>
#include <cstddef>
#include <loco/random/stream.hpp>
#include <memory>
#include <span>
#include <vector>

namespace experiment {

struct population {
  std::vector<double> scale;  // sqrt(h_j): feature standard deviations
  std::vector<double> truth;  // w*
  double noise = 1.0;         // least squares: label noise standard deviation

  // h_j spread geometrically over [h_min, 1]; w* with entries of magnitude
  // `norm` / sqrt(d) and alternating signs.
  static population make(std::size_t d, double h_min, double norm, double noise) {
    population p;
    p.noise = noise;
    for (std::size_t j = 0; j < d; ++j) {
      const double frac = d > 1 ? static_cast<double>(j) / static_cast<double>(d - 1) : 0.0;
      p.scale.push_back(std::sqrt(std::pow(h_min, frac)));
      p.truth.push_back((j % 2 == 0 ? 1.0 : -1.0) * norm / std::sqrt(static_cast<double>(d)));
    }
    return p;
  }
  std::size_t dimension() const { return truth.size(); }
  // ||x - w*||^2: the error reported for both problems.
  double error(std::span<const double> x) const {
    double e = 0.0;
    for (std::size_t j = 0; j < truth.size(); ++j) e += (x[j] - truth[j]) * (x[j] - truth[j]);
    return e;
  }
};

// y = a . w* + noise N(0, sigma^2); f(x) = E 0.5 (a . x - y)^2.
class streaming_least_squares {
 public:
  using value_type = double;
  explicit streaming_least_squares(std::shared_ptr<const population> p)
      : p_(std::move(p)), a_(p_->dimension()) {}
  std::size_t dimension() const { return p_->dimension(); }
  // The population loss, exactly: 0.5 sum_j h_j (x_j - w*_j)^2 + sigma^2 / 2.
  double loss(std::span<const double> x) const {
    double s = 0.0;
    for (std::size_t j = 0; j < a_.size(); ++j) {
      const double v = p_->scale[j] * (x[j] - p_->truth[j]);
      s += v * v;
    }
    return 0.5 * (s + p_->noise * p_->noise);
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream& rng) {
    double residual = 0.0;
    for (std::size_t j = 0; j < a_.size(); ++j) {
      a_[j] = p_->scale[j] * rng.normal();
      residual += a_[j] * (x[j] - p_->truth[j]);
    }
    residual -= p_->noise * rng.normal();
    for (std::size_t j = 0; j < a_.size(); ++j) g[j] = residual * a_[j];
    return 0.5 * residual * residual;
  }

 private:
  std::shared_ptr<const population> p_;
  std::vector<double> a_;
};

// y in {-1, +1} with P(y = 1 | a) = sigmoid(a . w*) (well specified, so w*
// minimizes the population loss E log(1 + exp(-y a . x))).
class streaming_logistic {
 public:
  using value_type = double;
  explicit streaming_logistic(std::shared_ptr<const population> p)
      : p_(std::move(p)), a_(p_->dimension()) {}
  std::size_t dimension() const { return p_->dimension(); }
  // Not needed by the experiment (it reports ||x - w*||^2); a cheap stand-in.
  double loss(std::span<const double> x) const { return p_->error(x); }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream& rng) {
    double margin_true = 0.0, margin = 0.0;
    for (std::size_t j = 0; j < a_.size(); ++j) {
      a_[j] = p_->scale[j] * rng.normal();
      margin_true += a_[j] * p_->truth[j];
      margin += a_[j] * x[j];
    }
    const double y = rng.uniform() < 1.0 / (1.0 + std::exp(-margin_true)) ? 1.0 : -1.0;
    const double z = -y * margin;                      // loss log(1 + e^z)
    const double weight = 1.0 / (1.0 + std::exp(-z));  // d/dz log(1 + e^z)
    for (std::size_t j = 0; j < a_.size(); ++j) g[j] = -y * weight * a_[j];
    return z > 30.0 ? z : std::log1p(std::exp(z));
  }

 private:
  std::shared_ptr<const population> p_;
  std::vector<double> a_;
};

}  // namespace experiment
