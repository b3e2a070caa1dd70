#pragma once
// compressed_amsgrad: communication-compressed AMSGrad, CD-Adam
// (ALGORITHMS.md section 6). Both directions are compressed and every worker
// runs the adaptive update itself, so the model never travels.
//
// Rank 0 is also the server (co-located, as a parameter server usually is).
// One iteration, difference strategy (the default):
//   worker i:  g_i = stochastic gradient at x
//              c_i = C(g_i - h_i);  h_i += c_i;  gather c_i to rank 0
//   server:    h += (1/n) sum_i c_i
//              c = C(h - h_tilde);  broadcast c
//   worker i:  h_tilde += c   (identical bytes on every rank: identical h_tilde)
//              m = b1 m + (1 - b1) h_tilde;  v = b2 v + (1 - b2) h_tilde^2
//              v_hat = max(v_hat, v);  x -= alpha_t m / (sqrt(v_hat) + eps)
// Other strategies: error_feedback (each side sends C(value + residual) and
// keeps the residual; h_tilde is the decoded downlink), naive (C(g_i) up,
// C(mean) down, no memory).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <loco/algorithm/callbacks.hpp>
#include <loco/algorithm/detail/checks.hpp>
#include <loco/algorithm/detail/frame.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/checkpoint/archive.hpp>
#include <loco/comm/types.hpp>
#include <loco/concepts.hpp>
#include <loco/error.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/hooks.hpp>
#include <loco/tensor/dispatch.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/tensor/sqrt.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace loco {

namespace algorithm {

enum class compression_strategy {
  difference,      // EF21-style estimates h_i, h, h_tilde (default; the paper's method)
  error_feedback,  // classic residuals on both sides
  naive,           // compress gradients and their mean, no memory
};

struct compressed_amsgrad_options {
  std::size_t iterations = 1000;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double eps = 1e-8;
  bool bias_correction = false;  // divide m and v by (1 - beta^t) as Adam does
  double weight_decay = 0.0;     // L2: h_tilde + weight_decay * x enters the moments
  compression_strategy strategy = compression_strategy::difference;
  std::uint64_t seed = 0;
  non_finite_policy on_non_finite = non_finite_policy::throw_error;
  // Start from a checkpoint instead of x0 (docs/checkpoint.md); iterations
  // continue from the saved one up to `iterations`.
  checkpoint::resume resume{};
  // Keep one ledger record per iteration (result.ledger.rounds()).
  bool record_rounds = true;
  // `difference` only: rank 0 keeps a copy of every worker's memory h_i
  // (n x d more values there), so that a replacement of a lost worker
  // (comm::elastic) takes its place exactly. Without it a replacement is
  // refused under `difference`; the other strategies take one in always.
  bool keep_worker_memories = false;
};

// What one worker counted. Bytes (uplink = sent, downlink = received) and
// time are in the ledger.
struct compressed_amsgrad_stats {
  std::size_t iterations = 0;
  std::uint64_t skipped_steps = 0;
  double last_batch_loss = 0.0;
};

template <class T>
struct compressed_amsgrad_result {
  std::vector<T> model;  // identical on every rank
  compressed_amsgrad_stats stats;
  observe::ledger ledger;  // per iteration and in total; all ranks' totals in all_ranks()
};

// progress_info: round (= iteration), round_count, rank, size, model
// (identical on every rank), loss, time, ledger, average_model (the model).
template <class T>
struct iteration_info : progress_info<T> {
  std::size_t iteration = 0;        // from 1 (= round)
  std::size_t iteration_count = 0;  // (= round_count)
  double batch_loss = 0.0;          // (= loss)
  const compressed_amsgrad_stats* stats = nullptr;
  // Writes this rank's complete state after this iteration to a checkpoint
  // at `where`; returns its path. Call it on every rank in the same iteration.
  std::function<std::filesystem::path(const checkpoint::location& where)> save;
};

}  // namespace algorithm

namespace algorithm::detail {

// Everything one rank's compressed_amsgrad run carries from iteration to
// iteration, with its checkpoint sections listed next to the fields. Stream
// ids: workers' compressors use their rank; the server's downlink uses n, so
// its randomness differs from every worker's.
template <class T, class Compressor>
struct compressed_amsgrad_state {
  using compressor_state = compress::state_t<Compressor, T>;

  std::vector<T> x;                 // the model, identical on every rank
  std::vector<double> m, v, v_hat;  // AMSGrad moments
  std::vector<T> h_i, h_tilde;      // worker memory (difference strategy)
  std::vector<T> h;                 // server memory (rank 0)
  std::vector<T> memories;          // server, keep_worker_memories: each worker's h_i, n x d
  std::vector<T> worker_residual, server_residual;  // error_feedback strategy
  random::stream rng;
  compressor_state up, self_decoder, down_decoder, down;
  std::vector<compressor_state> from_worker;  // server: a decoder per worker
  std::vector<compressor_state> server_self;  // server, error_feedback: decodes its downlink
  compressed_amsgrad_stats stats;
  std::size_t done = 0;  // iterations completed

  compressed_amsgrad_state(const Compressor& c, std::span<const T> x0, int n, int me,
                           bool is_server, compression_strategy strategy, std::uint64_t seed,
                           bool keep_memories)
      : x(x0.begin(), x0.end()),
        m(x0.size(), 0.0),
        v(x0.size(), 0.0),
        v_hat(x0.size(), 0.0),
        h_i(x0.size(), T{0}),
        h_tilde(x0.size(), T{0}),
        h(is_server ? x0.size() : 0, T{0}),
        memories(is_server && keep_memories && strategy == compression_strategy::difference
                     ? static_cast<std::size_t>(n) * x0.size()
                     : 0,
                 T{0}),
        worker_residual(strategy == compression_strategy::error_feedback ? x0.size() : 0, T{0}),
        rng(seed, static_cast<std::uint64_t>(me)),
        up(c, x0.size(), static_cast<std::uint64_t>(me)),
        self_decoder(c, x0.size(), static_cast<std::uint64_t>(me)),
        down_decoder(c, x0.size(), static_cast<std::uint64_t>(n)),
        down(c, x0.size(), static_cast<std::uint64_t>(n)) {
    if (!is_server) return;
    from_worker.reserve(static_cast<std::size_t>(n));
    for (int q = 0; q < n; ++q)
      from_worker.emplace_back(c, x0.size(), static_cast<std::uint64_t>(q));
    if (strategy == compression_strategy::error_feedback) {
      server_residual.assign(x0.size(), T{0});
      server_self.emplace_back(c, x0.size(), static_cast<std::uint64_t>(n));
    }
  }

  template <class Archive>
  void sections(Archive& a) {
    using checkpoint::compressor_state, checkpoint::compressor_states, checkpoint::field;
    namespace tags = checkpoint::tags;
    a.section(tags::counters, checkpoint::expect(done, "iteration"), a.stop_agreement());
    a.section(tags::model, field(x, "model"));
    a.section(tags::moments, field(m, "m"), field(v, "v"), field(v_hat, "v_hat"));
    a.section(tags::estimates, field(h_i, "h_i"), field(h_tilde, "h_tilde"), field(h, "h"));
    a.section(tags::residuals, field(worker_residual, "worker residual"),
              field(server_residual, "server residual"));
    a.section(tags::rng, field(rng, "rng"));
    a.section(tags::compressors, compressor_state(up, "compressor state"),
              compressor_state(self_decoder, "compressor state"),
              compressor_state(down_decoder, "compressor state"),
              compressor_state(down, "compressor state"),
              compressor_states(from_worker, "compressor state"),
              compressor_states(server_self, "compressor state"));
    a.section(tags::stats, field(stats.iterations, "iterations"),
              field(stats.skipped_steps, "skipped steps"),
              field(stats.last_batch_loss, "last batch loss"));
    if (!memories.empty()) a.section(tags::memories, field(memories, "worker memories"));
  }
};

}  // namespace algorithm::detail

template <class Compressor, class Comm, class Stepsize>
class compressed_amsgrad {
 public:
  using options = algorithm::compressed_amsgrad_options;

  compressed_amsgrad(Compressor compressor, Stepsize step, options opt = {})
      : compressor_(std::move(compressor)), step_(std::move(step)), opt_(opt) {
    const auto in_unit = [](const char* name, double v) {
      if (!(v >= 0.0 && v < 1.0)) {
        throw config_error(std::string("compressed_amsgrad: ") + name + " " + std::to_string(v) +
                           " is outside [0, 1)");
      }
    };
    in_unit("beta1", opt_.beta1);
    in_unit("beta2", opt_.beta2);
    if (!(opt_.eps > 0.0)) {
      throw config_error("compressed_amsgrad: eps " + std::to_string(opt_.eps) + " must be > 0");
    }
    if (!(opt_.weight_decay >= 0.0)) {
      throw config_error("compressed_amsgrad: weight_decay " + std::to_string(opt_.weight_decay) +
                         " must be >= 0");
    }
    if (opt_.iterations == 0) throw config_error("compressed_amsgrad: iterations 0 must be >= 1");
  }

  const options& settings() const noexcept { return opt_; }

  template <class Objective, class... Callbacks>
  algorithm::compressed_amsgrad_result<typename Objective::value_type> run(
      Comm& comm, Objective& objective, std::span<const typename Objective::value_type> x0,
      Callbacks&&... callbacks) {
    using T = typename Objective::value_type;
    static_assert(check_objective<Objective>());
    static_assert(check_compressor<Compressor, T>());
    static_assert(!compress::traits<Compressor>::linear,
                  "loco: compressed_amsgrad sends messages; a linear compressor (powersgd) runs in "
                  "local_sgd (docs/compressors.md#powersgd)");
    static_assert(check_communicator<Comm>());
    static_assert(check_stepsize<Stepsize>());
    return run_impl<T>(comm, objective, x0, callbacks...);
  }

 private:
  static constexpr int server = 0;

  template <class T>
  using state = algorithm::detail::compressed_amsgrad_state<T, Compressor>;
  using strategy = algorithm::compression_strategy;

  // The messages and scratch vectors of one iteration.
  template <class T>
  struct buffers {
    std::vector<T> g, scratch, decoded;
    wire::buffer up, down;
    std::vector<wire::buffer> gathered;
    std::vector<std::string> uplink_sources;
  };

  // One iteration as in the header comment: gradient, uplink compression,
  // gather; the server aggregates and compresses the downlink; broadcast;
  // every rank decodes it and takes the same AMSGrad step.
  template <class T, class Objective, class... Callbacks>
  algorithm::compressed_amsgrad_result<T> run_impl(Comm& comm, Objective& objective,
                                                   std::span<const T> x0, Callbacks&... callbacks) {
    const int n = comm.size(), me = comm.rank();
    const std::size_t d = objective.dimension();
    algorithm::detail::require_start_size(x0.size(), d, "compressed_amsgrad");
    // A replacement joining a running world (comm::elastic) skips the
    // start's collectives and takes rank 0's state over (take_over).
    const bool joining = comm::joining(comm);
    if (joining && opt_.strategy == strategy::difference && !opt_.keep_worker_memories) {
      throw config_error(
          "compressed_amsgrad: rank " + std::to_string(me) +
          " is a replacement joining a running world, and under the difference strategy only "
          "compressed_amsgrad_options::keep_worker_memories (false here, on every rank) lets "
          "rank 0 hand it the lost worker's memory (docs/fault_tolerance.md)");
    }
    if (!joining) algorithm::detail::require_same_dimension(comm, d, "compressed_amsgrad");

    algorithm::compressed_amsgrad_result<T> result;
    auto& ledger = result.ledger;
    state<T> s(compressor_, x0, n, me, me == server, opt_.strategy, opt_.seed,
               opt_.keep_worker_memories);
    buffers<T> b{std::vector<T>(d),
                 std::vector<T>(d),
                 std::vector<T>(d),
                 {},
                 {},
                 {},
                 algorithm::detail::rank_sources("compressed_amsgrad uplink", n)};
    algorithm::detail::frame<Comm, algorithm::iteration_info<T>, Callbacks...> f(
        comm, ledger, identity<T>(d, n, me), callbacks...);
    // Rank 0 is also the server: it sees every uplink message.
    ledger.start(me, n, observe::role::worker, f.now(), opt_.record_rounds, me == server);
    ledger.reserve_rounds(opt_.iterations);
    if (joining) {
      take_over(f, s, x0, n, me);
    } else {
      f.resume(opt_.resume, s, [&](std::uint64_t saved) {
        if (saved > opt_.iterations) {
          throw config_error("compressed_amsgrad: the checkpoint of iteration " +
                             std::to_string(saved) +
                             " lies past iterations = " + std::to_string(opt_.iterations));
        }
        s.done = static_cast<std::size_t>(saved);
      });
    }
    const std::span<const T> model(s.x);
    const std::function<std::span<const T>()> average_model = [model] { return model; };

    for (std::size_t it = s.done + 1; it <= opt_.iterations; ++it) {
      const double loss = objective.gradient(std::span<const T>(s.x), std::span<T>(b.g), s.rng);
      s.stats.last_batch_loss = loss;
      // Every rank still takes part in the collectives of a step it skips.
      const bool skip =
          !algorithm::detail::screen_gradient(std::span<T>(b.g), opt_.on_non_finite,
                                              s.stats.skipped_steps, "compressed_amsgrad", me, it);
      f.lap(observe::phase::compute);

      compress_uplink(s, b, skip);
      ledger.add_sent(b.up.size(), d);
      f.lap(observe::phase::compress);
      comm.gather(b.up.bytes(), b.gathered, server);
      f.lap(observe::phase::communicate);

      if (me == server) {
        aggregate_and_compress_downlink(s, b, n, ledger);
        f.lap(observe::phase::compress);
      }
      comm.broadcast(b.down, server);
      f.lap(observe::phase::communicate);
      ledger.add_received(b.down.size(), d);
      decode_downlink(s, b);
      f.lap(observe::phase::compress);

      amsgrad_step(s, it, me);
      s.stats.iterations = it;
      s.done = it;
      f.note_membership(it);
      const auto& record = ledger.end_round(it, it, f.now(), loss);
      const auto save = [&](const checkpoint::location& l) { return f.save(s, it, l); };
      auto info = info_at(s, it, n, me, record.time, ledger);
      info.average_model = std::ref(average_model);  // no copy, no allocation
      info.save = std::ref(save);
      if (f.round_end(info)) break;
      f.admit(s, it);
    }
    ledger.finish(f.now());
    ledger.gather(comm);
    auto info = info_at(s, s.stats.iterations, n, me, ledger.totals().elapsed, ledger);
    info.average_model = average_model;
    f.run_end(info);
    result.stats = s.stats;
    result.model = std::move(s.x);
    return result;
  }

  // A replacement of worker `me`: rank 0's state (it is the server, so it
  // is read into a server-shaped state) gives the model, the moments, the
  // downlink's estimate and decoder, and the server's decoder of this
  // worker, which was in step with the lost worker's encoder and its own
  // decoder; its memory h_i is the server's copy of it (difference); its
  // residual starts at zero (error_feedback: what the lost worker had not
  // sent yet is lost with it); its random stream is its own.
  template <class T, class Frame>
  void take_over(Frame& f, state<T>& s, std::span<const T> x0, int n, int me) const {
    state<T> server_state(compressor_, x0, n, server, true, opt_.strategy, opt_.seed,
                          opt_.keep_worker_memories);
    const auto round = f.join(server_state, [&](std::uint64_t saved) {
      if (saved > opt_.iterations) {
        throw protocol_error("comm::elastic admission", "iteration",
                             "iteration " + std::to_string(saved) +
                                 " lies past iterations = " + std::to_string(opt_.iterations));
      }
      server_state.done = static_cast<std::size_t>(saved);
    });
    const auto q = static_cast<std::size_t>(me);
    s.x = std::move(server_state.x);
    s.m = std::move(server_state.m);
    s.v = std::move(server_state.v);
    s.v_hat = std::move(server_state.v_hat);
    s.h_tilde = std::move(server_state.h_tilde);
    s.down_decoder = server_state.down_decoder;
    s.up = server_state.from_worker[q];
    s.self_decoder = server_state.from_worker[q];
    if (!server_state.memories.empty()) {
      const auto d = s.x.size();
      const auto mine = server_state.memories.begin() + static_cast<std::ptrdiff_t>(q * d);
      std::copy(mine, mine + static_cast<std::ptrdiff_t>(d), s.h_i.begin());
    }
    s.stats = server_state.stats;
    s.done = static_cast<std::size_t>(round);
  }

  // Worker: up = C(g - h_i), C(g + residual) or C(g) by strategy, and the
  // worker's memory moves as the server's copy of it will. A skipped step
  // sends C(0), a zero contribution, and keeps the memory as it was.
  template <class T>
  void compress_uplink(state<T>& s, buffers<T>& b, bool skip) {
    const std::size_t d = s.x.size();
    if (skip) {
      std::fill(b.scratch.begin(), b.scratch.end(), T{0});
    } else if (opt_.strategy == strategy::difference) {
      for (std::size_t j = 0; j < d; ++j) b.scratch[j] = b.g[j] - s.h_i[j];
    } else if (opt_.strategy == strategy::error_feedback) {
      for (std::size_t j = 0; j < d; ++j) b.scratch[j] = b.g[j] + s.worker_residual[j];
    } else {
      std::copy(b.g.begin(), b.g.end(), b.scratch.begin());
    }
    b.up.clear();
    compressor_.encode(std::span<const T>(b.scratch), s.up, b.up);
    if (opt_.strategy == strategy::naive) return;
    // Decoded even when skipping, so this decoder's state stays in step with
    // the server's decoder of this worker.
    wire::view own(b.up, "compressed_amsgrad own message");
    if (skip) {
      for_each_decoded(own, s.self_decoder, b, [](std::size_t, T) {});
    } else if (opt_.strategy == strategy::difference) {
      for_each_decoded(own, s.self_decoder, b,
                       [h = s.h_i.data()](std::size_t j, T x) { h[j] += x; });
    } else {
      residual_of(own, s.self_decoder, b, s.worker_residual);
    }
  }

  // e = b.scratch (what was sent) - its decoded message: for a sparse
  // compressor a copy with the sent entries subtracted, else one fused pass.
  template <class T>
  void residual_of(wire::view& in, compress::state_t<Compressor, T>& st, buffers<T>& b,
                   std::vector<T>& e) {
    if constexpr (compress::traits<Compressor>::sparse) {
      std::copy(b.scratch.begin(), b.scratch.end(), e.begin());
      compressor_.decode_sparse(in, st, [r = e.data()](std::size_t j, T x) { r[j] -= x; });
    } else {
      compressor_.decode(in, st, std::span<T>(b.decoded));
      for (std::size_t j = 0; j < e.size(); ++j) e[j] = b.scratch[j] - b.decoded[j];
    }
  }

  // Calls f(j, x) for the entries of one message that may be non-zero: the
  // ones a sparse compressor sent (traits<C>::sparse: top_k, random_k), so
  // that adding a message to a d-vector touches k entries instead of
  // zero-filling, decoding and adding d; otherwise every entry of the dense
  // decode in b.decoded.
  template <class T, class F>
  void for_each_decoded(wire::view& in, compress::state_t<Compressor, T>& st, buffers<T>& b,
                        F&& f) {
    if constexpr (compress::traits<Compressor>::sparse) {
      compressor_.decode_sparse(in, st, f);
    } else {
      compressor_.decode(in, st, std::span<T>(b.decoded));
      for (std::size_t j = 0; j < b.decoded.size(); ++j) f(j, b.decoded[j]);
    }
  }

  // Server: decode and average the uplinks, then down = C(h - h_tilde),
  // C(mean + residual) or C(mean) by strategy.
  template <class T>
  void aggregate_and_compress_downlink(state<T>& s, buffers<T>& b, int n, observe::ledger& ledger) {
    const std::size_t d = s.x.size();
    std::fill(b.scratch.begin(), b.scratch.end(), T{0});
    std::size_t heard = 0;
    for (std::size_t q = 0; q < static_cast<std::size_t>(n); ++q) {
      // No message: a worker an elastic communicator lost.
      if (b.gathered[q].empty()) continue;
      ++heard;
      ledger.add_all_workers_sent(b.gathered[q].size());
      wire::view in(b.gathered[q], b.uplink_sources[q]);
      T* const sum = b.scratch.data();
      if (s.memories.empty()) {
        for_each_decoded(in, s.from_worker[q], b, [sum](std::size_t j, T x) { sum[j] += x; });
      } else {
        T* const memory = s.memories.data() + q * d;  // as worker q's own h_i moves
        for_each_decoded(in, s.from_worker[q], b, [sum, memory](std::size_t j, T x) {
          sum[j] += x;
          memory[j] += x;
        });
      }
    }
    // The mean over the workers heard from. Under `difference`, h is the
    // mean of all n memories h_i and moves by their changes / n: a lost
    // worker's memory stays in it as it last was.
    const T inv_n =
        T{1} /
        static_cast<T>(opt_.strategy == strategy::difference ? static_cast<std::size_t>(n) : heard);
    switch (opt_.strategy) {
      case strategy::difference:
        for (std::size_t j = 0; j < d; ++j) {
          s.h[j] += b.scratch[j] * inv_n;
          b.scratch[j] = s.h[j] - s.h_tilde[j];
        }
        break;
      case strategy::error_feedback:
        for (std::size_t j = 0; j < d; ++j)
          b.scratch[j] = b.scratch[j] * inv_n + s.server_residual[j];
        break;
      case strategy::naive:
        for (std::size_t j = 0; j < d; ++j) b.scratch[j] *= inv_n;
        break;
    }
    b.down.clear();
    compressor_.encode(std::span<const T>(b.scratch), s.down, b.down);
    if (opt_.strategy == strategy::error_feedback) {
      wire::view own(b.down, "compressed_amsgrad downlink");
      residual_of(own, s.server_self.front(), b, s.server_residual);
    }
  }

  // Every rank: h_tilde += decoded downlink (difference), or = it.
  template <class T>
  void decode_downlink(state<T>& s, buffers<T>& b) {
    wire::view in(b.down, "compressed_amsgrad server message");
    if (opt_.strategy == strategy::difference) {
      for_each_decoded(in, s.down_decoder, b,
                       [h = s.h_tilde.data()](std::size_t j, T x) { h[j] += x; });
    } else {
      compressor_.decode(in, s.down_decoder, std::span<T>(b.decoded));
      std::copy(b.decoded.begin(), b.decoded.end(), s.h_tilde.begin());
    }
  }

  // AMSGrad on h_tilde, identical on every rank.
  template <class T>
  void amsgrad_step(state<T>& s, std::size_t it, int me) {
    stepsize::context ctx;
    ctx.t = it;
    ctx.worker = me;
    const double alpha = step_.eta(ctx);
    const double b1 = opt_.beta1, b2 = opt_.beta2;
    const double c1 = opt_.bias_correction ? 1.0 - std::pow(b1, static_cast<double>(it)) : 1.0;
    const double c2 = opt_.bias_correction ? 1.0 - std::pow(b2, static_cast<double>(it)) : 1.0;
    const double wd = opt_.weight_decay, eps = opt_.eps;
    // In blocks, the square roots between two vectorised loops, constants
    // by value: as update::adamw (tensor/sqrt.hpp).
    tensor::vectorized([&s, alpha, b1, b2, c1, c2, wd, eps] {
      constexpr std::size_t block =
          1024 / sizeof(double);  // 1 KiB: simulated ranks run on small stacks
      double root[block];
      for (std::size_t j0 = 0; j0 < s.x.size(); j0 += block) {
        const std::size_t n = std::min(block, s.x.size() - j0);
        T* const x = s.x.data() + j0;
        const T* const h = s.h_tilde.data() + j0;
        double* const m = s.m.data() + j0;
        double* const v = s.v.data() + j0;
        double* const v_hat = s.v_hat.data() + j0;
        for (std::size_t i = 0; i < n; ++i) {
          const double grad = static_cast<double>(h[i]) + wd * static_cast<double>(x[i]);
          m[i] = b1 * m[i] + (1.0 - b1) * grad;
          v[i] = b2 * v[i] + (1.0 - b2) * grad * grad;
          v_hat[i] = std::max(v_hat[i], v[i]);
          root[i] = v_hat[i] / c2;
        }
        tensor::sqrt_in_place(std::span<double>(root, n));
        for (std::size_t i = 0; i < n; ++i) {
          x[i] = static_cast<T>(static_cast<double>(x[i]) - alpha * (m[i] / c1) / (root[i] + eps));
        }
      }
    });
  }

  template <class T>
  algorithm::iteration_info<T> info_at(const state<T>& s, std::size_t it, int n, int me,
                                       double time, observe::ledger& ledger) const {
    algorithm::iteration_info<T> info;
    info.round = it;
    info.round_count = opt_.iterations;
    info.rank = me;
    info.size = n;
    info.model = s.x;
    info.loss = s.stats.last_batch_loss;
    info.time = time;
    info.ledger = &ledger;
    info.iteration = it;
    info.iteration_count = opt_.iterations;
    info.batch_loss = s.stats.last_batch_loss;
    info.stats = &s.stats;
    return info;
  }

  template <class T>
  algorithm::detail::checkpoint_identity identity(std::size_t d, int n, int me) const {
    return {checkpoint::driver_kind::compressed_amsgrad,
            checkpoint::value_type_code<T>(),
            d,
            n,
            me,
            description<T>()};
  }

  // What a checkpoint must have been written by: the policies and the
  // options that shape the saved state.
  template <class T>
  std::string description() const {
    static constexpr const char* strategies[] = {"difference", "error_feedback", "naive"};
    return "compressed_amsgrad<" + std::string(sizeof(T) == 4 ? "fp32" : "fp64") +
           "; compressor=" + checkpoint::compressor_description<Compressor>() +
           "; stepsize=" + checkpoint::policy_name<Stepsize>() +
           "; strategy=" + strategies[static_cast<std::size_t>(opt_.strategy)] +
           (opt_.keep_worker_memories && opt_.strategy == strategy::difference
                ? "; keep_worker_memories"
                : "") +
           ">";
  }

  Compressor compressor_;
  Stepsize step_;
  options opt_;
};

}  // namespace loco
