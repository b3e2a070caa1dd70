#pragma once
// The simulator benchmarks' workload: asynchronous SGD on a diagonal
// quadratic (d = 100, float), rank 0 the server applying gradients as they
// arrive and sending the model back to their sender, every worker's gradient
// charged through sim::timed with exponential compute times (tau_i from 1 to
// 3 s) and every message through a 1 ms, 100 MB/s link. About 5 simulator
// events per applied gradient (2 sends, 2 receives, 1 compute charge).
#include <cstddef>
#include <cstring>
#include <functional>
#include <loco/comm/simulated.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/sim/timed.hpp>
#include <span>
#include <vector>

namespace loco_bench {

inline constexpr std::size_t dim = 100;
inline constexpr int model_tag = 1, gradient_tag = 2;

inline loco::problems::quadratic<float> make_problem(int rank) {
  loco::tensor::vector<float> a = xt::ones<float>({dim});
  loco::tensor::vector<float> b = xt::zeros<float>({dim});
  for (std::size_t j = 0; j < dim; ++j) {
    a(j) = 1.0f + static_cast<float>(j % 7) * 0.25f;
    b(j) = static_cast<float>((static_cast<std::size_t>(rank) * 13 + j) % 17) * 0.1f;
  }
  return loco::problems::quadratic<float>::diagonal(a, b);
}

inline std::span<const std::byte> as_bytes(const std::vector<float>& v) {
  return std::as_bytes(std::span<const float>(v));
}

// Exponential compute times with means from 1 to 3 s, 1 ms and 100 MB/s links.
inline loco::sim::options world_of(int workers) {
  std::vector<double> tau(static_cast<std::size_t>(workers) + 1, 0.0);
  for (int w = 1; w <= workers; ++w) {
    tau[static_cast<std::size_t>(w)] = 1.0 + 2.0 * static_cast<double>(w) / workers;
  }
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::exponential(tau);
  opt.link = loco::sim::link_model(1e-3, 1e8);
  opt.seed = 1;
  return opt;
}

// One run of `workers` workers and a server that applies `gradients`
// gradients; `at_peak` (if set) runs on the server when every rank is alive
// and has its model, before the server stops the workers.
inline loco::sim::report run_async(int workers, std::size_t gradients,
                                   const std::function<void()>& at_peak = {}) {
  return loco::comm::run_simulated(
      workers + 1,
      [&](loco::comm::simulated& c) {
        std::vector<float> x(dim, 0.0f), g(dim);
        loco::wire::buffer in;
        if (c.rank() == 0) {
          for (int w = 1; w <= workers; ++w) c.send(w, model_tag, as_bytes(x));
          for (std::size_t k = 0; k < gradients; ++k) {
            const int from = c.recv(loco::comm::any_source, gradient_tag, in);
            std::memcpy(g.data(), in.data(), dim * sizeof(float));
            for (std::size_t j = 0; j < dim; ++j) x[j] -= 0.01f * g[j];
            c.send(from, model_tag, as_bytes(x));
          }
          if (at_peak) at_peak();
          const std::byte stop[1] = {};
          for (int w = 1; w <= workers; ++w) c.send(w, model_tag, stop);
          return;
        }
        loco::sim::timed f(make_problem(c.rank()), c.clock());
        loco::random::stream rng(7, static_cast<std::uint64_t>(c.rank()));
        for (;;) {
          c.recv(0, model_tag, in);
          if (in.size() != dim * sizeof(float)) return;
          std::memcpy(x.data(), in.data(), dim * sizeof(float));
          f.gradient(std::span<const float>(x), std::span<float>(g), rng);
          c.send(0, gradient_tag, as_bytes(g));
        }
      },
      world_of(workers));
}

// The same exchange with nothing but the simulator: 8-byte messages, no
// problem, no model; what is left is the simulator's own cost per event.
inline loco::sim::report run_bare(int workers, std::size_t gradients,
                                  const std::function<void()>& at_peak = {}) {
  return loco::comm::run_simulated(
      workers + 1,
      [&](loco::comm::simulated& c) {
        const std::byte word[8] = {};
        loco::wire::buffer in;
        if (c.rank() == 0) {
          for (int w = 1; w <= workers; ++w) c.send(w, model_tag, word);
          for (std::size_t k = 0; k < gradients; ++k) {
            c.send(c.recv(loco::comm::any_source, gradient_tag, in), model_tag, word);
          }
          if (at_peak) at_peak();
          for (int w = 1; w <= workers; ++w) c.send(w, model_tag, std::span(word, 1));
          return;
        }
        for (;;) {
          c.recv(0, model_tag, in);
          if (in.size() != sizeof word) return;
          (void)c.compute();
          c.send(0, gradient_tag, word);
        }
      },
      world_of(workers));
}

}  // namespace loco_bench
