#pragma once
// Plain-loop references for local_sgd, written from ALGORITHMS.md sections 2
// and 3 and sharing no code with the library: 3 workers, each with a tiny
// deterministic quadratic f_i(x) = 0.5 a_i ||x - b_i||^2, so every iterate
// is exact. Used by the driver tests on every communicator (in_process,
// simulated, tcp, mpi).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "test_policies.hpp"

namespace local_sgd_reference {

using vec = std::vector<double>;
constexpr int workers = 3;
constexpr std::size_t dim = 5;
constexpr double start_value = 0.25;  // x0 = (0.25, ..., 0.25) on every worker

using testing_policies::scaled_quadratic;

inline scaled_quadratic make_worker(int i) {
  vec b(dim);
  for (std::size_t j = 0; j < dim; ++j)
    b[j] = std::sin(1.0 + static_cast<double>(i * 7 + static_cast<int>(j)));
  return {0.5 + 0.25 * i, b};
}

inline vec start() { return vec(dim, start_value); }

inline vec mean_of(const std::vector<vec>& xs) {
  vec m(xs[0].size(), 0.0);
  for (const auto& x : xs)
    for (std::size_t j = 0; j < m.size(); ++j) m[j] += x[j];
  for (auto& v : m) v /= static_cast<double>(xs.size());
  return m;
}

// The workers' state: models, step counters and running sums of iterates.
struct reference {
  std::vector<vec> x;
  std::vector<std::uint64_t> t;
  std::vector<vec> polyak_sum;
  reference() : x(workers, start()), t(workers, 0), polyak_sum(workers, vec(dim, 0.0)) {}

  // One SGD step of worker i with step eta(t), t counted from 1 per worker.
  template <class Eta>
  void step(int i, Eta eta) {
    const auto w = static_cast<std::size_t>(i);
    const auto f = make_worker(i);
    auto& xi = x[w];
    const double e = eta(++t[w]);
    for (std::size_t j = 0; j < dim; ++j) xi[j] -= e * f.a * (xi[j] - f.b[j]);
    for (std::size_t j = 0; j < dim; ++j) polyak_sum[w][j] += xi[j];
  }

  // Polyak-Ruppert: each worker's mean iterate, averaged over workers.
  vec polyak() const {
    std::vector<vec> per_worker;
    for (std::size_t w = 0; w < polyak_sum.size(); ++w) {
      vec p = polyak_sum[w];
      for (auto& v : p) v /= static_cast<double>(t[w]);
      per_worker.push_back(p);
    }
    return mean_of(per_worker);
  }
};

// What a run ends with: every worker's model, their average, and the
// averaged Polyak-Ruppert iterate.
struct outcome {
  std::vector<vec> local;
  vec average;
  vec polyak;
};

inline outcome finish(const reference& ref) { return {ref.x, mean_of(ref.x), ref.polyak()}; }

using eta_fn = std::function<double(std::uint64_t)>;

inline eta_fn constant_eta(double c) {
  return [c](std::uint64_t) { return c; };
}
inline eta_fn polynomial_eta(double c, double alpha) {
  return [c, alpha](std::uint64_t t) { return c * std::pow(static_cast<double>(t), -alpha); };
}

// Local SGD with decaying steps (section 2): every worker steps until the
// next boundary, then all replace their model by the average. Boundaries
// 1, 2, ..., T give mini-batch averaging; {T} gives one-shot averaging.
inline outcome averaged_at(const std::vector<std::size_t>& boundaries, const eta_fn& eta) {
  reference ref;
  std::size_t previous = 0;
  for (std::size_t boundary : boundaries) {
    for (int i = 0; i < workers; ++i)
      for (std::size_t s = previous; s < boundary; ++s) ref.step(i, eta);
    const vec m = mean_of(ref.x);
    for (auto& xi : ref.x) xi = m;
    previous = boundary;
  }
  return finish(ref);
}

// LOSCAR (section 3): per round, worker i takes N_i steps (snapshot y_i),
// then Q_i more (z_i); m is the mean of the y_i on the round's support, and
// x_i = m + (z_i - y_i) there (delay-corrected) or x_i = m (overwrite); z_i
// elsewhere.
inline outcome loscar(std::size_t rounds, const std::vector<std::size_t>& local_steps,
                      const std::vector<std::size_t>& overlap_steps,
                      const std::function<std::vector<std::uint32_t>(std::size_t)>& support_of,
                      bool delay_corrected, const eta_fn& eta) {
  reference ref;
  for (std::size_t r = 0; r < rounds; ++r) {
    std::vector<vec> y(workers);
    for (int i = 0; i < workers; ++i) {
      const auto w = static_cast<std::size_t>(i);
      for (std::size_t s = 0; s < local_steps[w]; ++s) ref.step(i, eta);
      y[w] = ref.x[w];
      for (std::size_t s = 0; s < overlap_steps[w]; ++s) ref.step(i, eta);
    }
    const vec m = mean_of(y);
    for (std::size_t w = 0; w < static_cast<std::size_t>(workers); ++w) {
      for (std::uint32_t j : support_of(r))
        ref.x[w][j] = delay_corrected ? m[j] + (ref.x[w][j] - y[w][j]) : m[j];
    }
  }
  return finish(ref);
}

// Streaming DiLoCo (DiLoCo with one part, tau = 0 and alpha = 0): per round
// r, worker i takes `local` AdamW steps (snapshot y_i), then `tau` more;
// part r mod P of the global model takes a Nesterov step on the outer
// gradient global - mean(y), and every worker keeps alpha of its own values
// there. AdamW as torch.optim.AdamW (betas 0.9, 0.999, eps 1e-8, decay 0.01).
inline outcome streaming_diloco(std::size_t rounds, std::size_t local, std::size_t tau,
                                const std::vector<std::vector<std::size_t>>& parts, double alpha,
                                double lr, double outer_lr, double mu) {
  reference ref;
  std::vector<vec> m(workers, vec(dim, 0.0)), v(workers, vec(dim, 0.0));
  vec global = start(), buffer(dim, 0.0);
  const auto adamw_step = [&](std::size_t w) {
    const auto f = make_worker(static_cast<int>(w));
    const double t = static_cast<double>(++ref.t[w]);
    const double c1 = 1.0 - std::pow(0.9, t), c2 = std::sqrt(1.0 - std::pow(0.999, t));
    auto& x = ref.x[w];
    for (std::size_t j = 0; j < dim; ++j) {
      const double g = f.a * (x[j] - f.b[j]);
      x[j] *= 1.0 - lr * 0.01;
      m[w][j] = 0.9 * m[w][j] + 0.1 * g;
      v[w][j] = 0.999 * v[w][j] + 0.001 * g * g;
      x[j] -= (lr / c1) * m[w][j] / (std::sqrt(v[w][j]) / c2 + 1e-8);
      ref.polyak_sum[w][j] += x[j];
    }
  };
  for (std::size_t r = 0; r < rounds; ++r) {
    std::vector<vec> y(workers);
    for (std::size_t w = 0; w < static_cast<std::size_t>(workers); ++w) {
      for (std::size_t s = 0; s < local; ++s) adamw_step(w);
      y[w] = ref.x[w];
      for (std::size_t s = 0; s < tau; ++s) adamw_step(w);
    }
    const vec mean = mean_of(y);
    for (const std::size_t j : parts[r % parts.size()]) {
      const double delta = global[j] - mean[j];
      buffer[j] = mu * buffer[j] + delta;
      global[j] -= outer_lr * (delta + mu * buffer[j]);
      for (auto& x : ref.x) x[j] = alpha * x[j] + (1.0 - alpha) * global[j];
    }
  }
  return finish(ref);
}

// "" when got equals want within tol, else a description of the first
// difference (usable where a Catch2 assertion is not: off the main thread,
// or on one MPI rank).
inline std::string mismatch(const std::string& what, const vec& got, const vec& want, double tol) {
  std::ostringstream out;
  out.precision(17);
  if (got.size() != want.size()) {
    out << what << ": size " << got.size() << ", expected " << want.size();
    return out.str();
  }
  for (std::size_t j = 0; j < got.size(); ++j) {
    if (!(std::abs(got[j] - want[j]) <= tol)) {
      out << what << "[" << j << "] = " << got[j] << ", expected " << want[j] << " (tolerance "
          << tol << ")";
      return out.str();
    }
  }
  return "";
}

}  // namespace local_sgd_reference
