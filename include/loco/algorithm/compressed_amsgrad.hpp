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
#include <loco/algorithm/detail/checkpoints.hpp>
#include <loco/algorithm/detail/checks.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/types.hpp>
#include <loco/concepts.hpp>
#include <loco/error.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/hooks.hpp>
#include <loco/tensor/finite.hpp>
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
    static_assert(check_communicator<Comm>());
    static_assert(check_stepsize<Stepsize>());
    return run_impl<T>(comm, objective, x0, callbacks...);
  }

 private:
  static constexpr int server = 0;

  template <class T, class Objective, class... Callbacks>
  algorithm::compressed_amsgrad_result<T> run_impl(Comm& comm, Objective& objective,
                                                   std::span<const T> x0, Callbacks&... callbacks) {
    const int n = comm.size(), me = comm.rank();
    const std::size_t d = objective.dimension();
    algorithm::detail::require_start_size(x0.size(), d, "compressed_amsgrad");
    algorithm::detail::require_same_dimension(comm, d, "compressed_amsgrad");
    using strategy = algorithm::compression_strategy;

    algorithm::compressed_amsgrad_result<T> result;
    auto& stats = result.stats;
    std::vector<T> x(x0.begin(), x0.end()), g(d), scratch(d), decoded(d);
    std::vector<T> h_i(d, T{0}), h_tilde(d, T{0});  // worker memory
    std::vector<T> h(me == server ? d : 0, T{0});   // server memory
    std::vector<double> m(d, 0.0), v(d, 0.0), v_hat(d, 0.0);
    random::stream rng(opt_.seed, static_cast<std::uint64_t>(me));
    // Stream ids: workers use their rank; the server's downlink compressor
    // uses n, so its randomness differs from every worker's.
    compress::state_t<Compressor, T> up_state(compressor_, d, static_cast<std::uint64_t>(me));
    compress::state_t<Compressor, T> self_decoder(compressor_, d, static_cast<std::uint64_t>(me));
    compress::state_t<Compressor, T> down_decoder(compressor_, d, static_cast<std::uint64_t>(n));
    std::vector<compress::state_t<Compressor, T>> from_worker;
    std::vector<T> server_residual;
    std::vector<compress::state_t<Compressor, T>> server_self;  // decodes its own downlink
    if (me == server) {
      from_worker.reserve(static_cast<std::size_t>(n));
      for (int q = 0; q < n; ++q) {
        from_worker.emplace_back(compressor_, d, static_cast<std::uint64_t>(q));
      }
      if (opt_.strategy == strategy::error_feedback) {
        server_residual.assign(d, T{0});
        server_self.emplace_back(compressor_, d, static_cast<std::uint64_t>(n));
      }
    }
    compress::state_t<Compressor, T> down_state(compressor_, d, static_cast<std::uint64_t>(n));
    std::vector<T> worker_residual(opt_.strategy == strategy::error_feedback ? d : 0, T{0});
    wire::buffer up, down;
    std::vector<wire::buffer> gathered;
    const auto uplink_sources = algorithm::detail::rank_sources("compressed_amsgrad uplink", n);
    const T inv_n = T{1} / static_cast<T>(n);
    // Rank 0 is also the server: it sees every uplink message.
    auto& ledger = result.ledger;
    ledger.start(me, n, observe::role::worker, comm::now(comm), opt_.record_rounds, me == server);
    ledger.reserve_rounds(opt_.iterations);
    const auto lap = [&](observe::phase p) { ledger.lap(p, comm::now(comm)); };
    const std::span<const T> model(x);
    const std::function<std::span<const T>()> average_model = [model] { return model; };

    // Checkpoints: this rank's complete state after an iteration (docs/checkpoint.md).
    namespace tags = checkpoint::tags;
    constexpr bool agrees_on_stop =
        algorithm::detail::any_stopping_round_end_hook<algorithm::iteration_info<T>,
                                                       Callbacks...>();
    const algorithm::detail::checkpoint_identity identity{
        checkpoint::driver_kind::compressed_amsgrad,
        checkpoint::value_type_code<T>(),
        d,
        n,
        me,
        description<T>()};
    // Every compressor state this rank holds, in a fixed order.
    const auto for_each_state = [&](auto&& f) {
      f(up_state);
      f(self_decoder);
      f(down_decoder);
      f(down_state);
      for (auto& st : from_worker) f(st);
      for (auto& st : server_self) f(st);
    };
    std::size_t done = 0;  // iterations completed
    const auto save = [&](const checkpoint::location& where) {
      return algorithm::detail::save_checkpoint(identity, done, where, [&](auto& w) {
        w.section(tags::counters, [&](wire::buffer& b) {
          b.put<std::uint64_t>(done);
          checkpoint::put_bool(b, agrees_on_stop);
        });
        w.section(tags::model, [&](wire::buffer& b) { wire::put_values<T>(b, x); });
        w.section(tags::moments, [&](wire::buffer& b) {
          wire::put_values<double>(b, m);
          wire::put_values<double>(b, v);
          wire::put_values<double>(b, v_hat);
        });
        w.section(tags::estimates, [&](wire::buffer& b) {
          wire::put_values<T>(b, h_i);
          wire::put_values<T>(b, h_tilde);
          wire::put_values<T>(b, h);
        });
        w.section(tags::residuals, [&](wire::buffer& b) {
          wire::put_values<T>(b, worker_residual);
          wire::put_values<T>(b, server_residual);
        });
        w.section(tags::rng, [&](wire::buffer& b) { checkpoint::put_stream(b, rng); });
        w.section(tags::compressors, [&](wire::buffer& b) {
          for_each_state([&](const auto& st) { checkpoint::put_state(b, st); });
        });
        w.section(tags::stats, [&](wire::buffer& b) {
          b.put<std::uint64_t>(stats.iterations);
          b.put<std::uint64_t>(stats.skipped_steps);
          b.put<double>(stats.last_batch_loss);
        });
        w.section(tags::ledger, [&](wire::buffer& b) { ledger.save(b, comm::now(comm)); });
        w.section(tags::clock,
                  [&](wire::buffer& b) { checkpoint::put_clock(b, sim::saved_clock(comm)); });
      });
    };
    if (const auto saved = opt_.resume.agree(comm)) {
      if (*saved > opt_.iterations) {
        throw config_error("compressed_amsgrad: the checkpoint of iteration " +
                           std::to_string(*saved) +
                           " lies past iterations = " + std::to_string(opt_.iterations));
      }
      std::optional<sim::clock_state> resumed_clock;
      bool saver_agreed = false;
      observe::rank_totals saved_ledger;
      algorithm::detail::load_checkpoint(comm, identity, opt_.resume, *saved, [&](const auto& c) {
        checkpoint::read_section(c, tags::counters, [&](wire::view& in) {
          if (in.get<std::uint64_t>("iteration") != *saved) in.fail("iteration", "differs");
          saver_agreed = checkpoint::get_bool(in, "stop agreement");
        });
        checkpoint::read_section(c, tags::model,
                                 [&](wire::view& in) { wire::get_values<T>(in, x, "model"); });
        checkpoint::read_section(c, tags::moments, [&](wire::view& in) {
          wire::get_values<double>(in, m, "m");
          wire::get_values<double>(in, v, "v");
          wire::get_values<double>(in, v_hat, "v_hat");
        });
        checkpoint::read_section(c, tags::estimates, [&](wire::view& in) {
          wire::get_values<T>(in, h_i, "h_i");
          wire::get_values<T>(in, h_tilde, "h_tilde");
          wire::get_values<T>(in, h, "h");
        });
        checkpoint::read_section(c, tags::residuals, [&](wire::view& in) {
          wire::get_values<T>(in, worker_residual, "worker residual");
          wire::get_values<T>(in, server_residual, "server residual");
        });
        checkpoint::read_section(c, tags::rng,
                                 [&](wire::view& in) { checkpoint::get_stream(in, rng, "rng"); });
        checkpoint::read_section(c, tags::compressors, [&](wire::view& in) {
          for_each_state([&](auto& st) { checkpoint::get_state(in, st, "compressor state"); });
        });
        checkpoint::read_section(c, tags::stats, [&](wire::view& in) {
          stats.iterations = static_cast<std::size_t>(in.get<std::uint64_t>("iterations"));
          stats.skipped_steps = in.get<std::uint64_t>("skipped steps");
          stats.last_batch_loss = in.get<double>("last batch loss");
        });
        checkpoint::read_section(c, tags::ledger,
                                 [&](wire::view& in) { saved_ledger = ledger.read_saved(in); });
        checkpoint::read_section(
            c, tags::clock, [&](wire::view& in) { resumed_clock = checkpoint::get_clock(in); });
      });
      done = static_cast<std::size_t>(*saved);
      if (resumed_clock) sim::restore_clock(comm, *resumed_clock);
      ledger.restore(saved_ledger, comm::now(comm));
      // If the saving run agreed on its stop flag after the save, so does this
      // one (the collective costs virtual time on the simulator).
      if (saver_agreed) {
        float flag[1] = {0.0f};
        comm.allreduce(std::span<float>(flag), comm::reduce_op::max);
      }
    }

    for (std::size_t it = done + 1; it <= opt_.iterations; ++it) {
      // 1. Gradient.
      const double loss = objective.gradient(std::span<const T>(x), std::span<T>(g), rng);
      stats.last_batch_loss = loss;
      // Every rank still takes part in the collectives of a step it skips.
      bool skip = false;
      if (const auto bad = tensor::first_non_finite(std::span<const T>(g)); bad != tensor::npos) {
        if (opt_.on_non_finite == non_finite_policy::throw_error) {
          throw non_finite_error("compressed_amsgrad: gradient of worker " + std::to_string(me) +
                                     " at step " + std::to_string(it),
                                 bad);
        }
        ++stats.skipped_steps;
        if (opt_.on_non_finite == non_finite_policy::zero) {
          for (auto& e : g) {
            if (!tensor::is_finite(e)) e = T{0};
          }
        } else {
          skip = true;
        }
      }
      lap(observe::phase::compute);

      // 2. Uplink. A skipped step sends C(0), a zero contribution, and keeps
      // the worker's estimate h_i or residual as they were.
      if (skip) {
        std::fill(scratch.begin(), scratch.end(), T{0});
      } else {
        switch (opt_.strategy) {
          case strategy::difference:
            for (std::size_t j = 0; j < d; ++j) scratch[j] = g[j] - h_i[j];
            break;
          case strategy::error_feedback:
            for (std::size_t j = 0; j < d; ++j) scratch[j] = g[j] + worker_residual[j];
            break;
          case strategy::naive:
            std::copy(g.begin(), g.end(), scratch.begin());
            break;
        }
      }
      up.clear();
      compressor_.encode(std::span<const T>(scratch), up_state, up);
      if (opt_.strategy != strategy::naive) {
        // Decoded even when skipping, so this decoder's state stays in step
        // with the server's decoder of this worker.
        wire::view own(up, "compressed_amsgrad own message");
        compressor_.decode(own, self_decoder, std::span<T>(decoded));
        if (!skip && opt_.strategy == strategy::difference) {
          for (std::size_t j = 0; j < d; ++j) h_i[j] += decoded[j];
        } else if (!skip) {
          for (std::size_t j = 0; j < d; ++j) worker_residual[j] = scratch[j] - decoded[j];
        }
      }
      ledger.add_sent(up.size(), d);
      lap(observe::phase::compress);

      comm.gather(up.bytes(), gathered, server);
      lap(observe::phase::communicate);

      // 3. Server: aggregate and compress the downlink.
      if (me == server) {
        std::fill(scratch.begin(), scratch.end(), T{0});
        for (int q = 0; q < n; ++q) {
          ledger.add_all_workers_sent(gathered[static_cast<std::size_t>(q)].size());
          wire::view in(gathered[static_cast<std::size_t>(q)],
                        uplink_sources[static_cast<std::size_t>(q)]);
          compressor_.decode(in, from_worker[static_cast<std::size_t>(q)], std::span<T>(decoded));
          for (std::size_t j = 0; j < d; ++j) scratch[j] += decoded[j];
        }
        switch (opt_.strategy) {
          case strategy::difference:
            for (std::size_t j = 0; j < d; ++j) {
              h[j] += scratch[j] * inv_n;
              scratch[j] = h[j] - h_tilde[j];
            }
            break;
          case strategy::error_feedback:
            for (std::size_t j = 0; j < d; ++j)
              scratch[j] = scratch[j] * inv_n + server_residual[j];
            break;
          case strategy::naive:
            for (std::size_t j = 0; j < d; ++j) scratch[j] *= inv_n;
            break;
        }
        down.clear();
        compressor_.encode(std::span<const T>(scratch), down_state, down);
        if (opt_.strategy == strategy::error_feedback) {
          wire::view own(down, "compressed_amsgrad downlink");
          compressor_.decode(own, server_self.front(), std::span<T>(decoded));
          for (std::size_t j = 0; j < d; ++j) server_residual[j] = scratch[j] - decoded[j];
        }
        lap(observe::phase::compress);
      }

      // 4. Downlink to every worker (the server included).
      comm.broadcast(down, server);
      lap(observe::phase::communicate);
      ledger.add_received(down.size(), d);

      {
        wire::view in(down, "compressed_amsgrad server message");
        compressor_.decode(in, down_decoder, std::span<T>(decoded));
      }
      if (opt_.strategy == strategy::difference) {
        for (std::size_t j = 0; j < d; ++j) h_tilde[j] += decoded[j];
      } else {
        std::copy(decoded.begin(), decoded.end(), h_tilde.begin());
      }
      lap(observe::phase::compress);

      // 5. AMSGrad on h_tilde, identical on every rank.
      stepsize::context ctx;
      ctx.t = it;
      ctx.worker = me;
      const double alpha = step_.eta(ctx);
      const double b1 = opt_.beta1, b2 = opt_.beta2;
      const double c1 = opt_.bias_correction ? 1.0 - std::pow(b1, static_cast<double>(it)) : 1.0;
      const double c2 = opt_.bias_correction ? 1.0 - std::pow(b2, static_cast<double>(it)) : 1.0;
      for (std::size_t j = 0; j < d; ++j) {
        const double grad =
            static_cast<double>(h_tilde[j]) + opt_.weight_decay * static_cast<double>(x[j]);
        m[j] = b1 * m[j] + (1.0 - b1) * grad;
        v[j] = b2 * v[j] + (1.0 - b2) * grad * grad;
        v_hat[j] = std::max(v_hat[j], v[j]);
        x[j] = static_cast<T>(static_cast<double>(x[j]) -
                              alpha * (m[j] / c1) / (std::sqrt(v_hat[j] / c2) + opt_.eps));
      }
      stats.iterations = it;
      done = it;
      const auto& record = ledger.end_round(it, it, comm::now(comm), loss);

      if constexpr (sizeof...(Callbacks) > 0) {
        algorithm::iteration_info<T> info;
        info.round = it;
        info.round_count = opt_.iterations;
        info.rank = me;
        info.size = n;
        info.model = x;
        info.loss = loss;
        info.time = record.time;
        info.ledger = &ledger;
        info.average_model = std::ref(average_model);  // no copy, no allocation
        info.iteration = it;
        info.iteration_count = opt_.iterations;
        info.batch_loss = loss;
        info.stats = &stats;
        info.save = [&save](const checkpoint::location& l) { return save(l); };  // no allocation
        bool stop = false;
        ((stop = algorithm::detail::call_round_end(callbacks, info) || stop), ...);
        if constexpr (algorithm::detail::any_stopping_round_end_hook<algorithm::iteration_info<T>,
                                                                     Callbacks...>()) {
          float flag[1] = {stop ? 1.0f : 0.0f};
          comm.allreduce(std::span<float>(flag), comm::reduce_op::max);
          if (flag[0] > 0.0f) break;
        }
        lap(observe::phase::other);
      }
    }
    ledger.finish(comm::now(comm));
    ledger.gather(comm);
    if constexpr (sizeof...(Callbacks) > 0) {
      algorithm::iteration_info<T> info;
      info.round = stats.iterations;
      info.round_count = opt_.iterations;
      info.rank = me;
      info.size = n;
      info.model = x;
      info.loss = stats.last_batch_loss;
      info.time = ledger.totals().elapsed;
      info.ledger = &ledger;
      info.average_model = average_model;
      info.iteration = stats.iterations;
      info.iteration_count = opt_.iterations;
      info.batch_loss = stats.last_batch_loss;
      info.stats = &stats;
      (algorithm::detail::call_run_end(callbacks, info), ...);
    }
    result.model = std::move(x);
    return result;
  }

  // What a checkpoint must have been written by: the policies and the
  // options that shape the saved state.
  template <class T>
  std::string description() const {
    static constexpr const char* strategies[] = {"difference", "error_feedback", "naive"};
    return "compressed_amsgrad<" + std::string(sizeof(T) == 4 ? "fp32" : "fp64") +
           "; compressor=" + checkpoint::compressor_description<Compressor>() +
           "; stepsize=" + checkpoint::policy_name<Stepsize>() +
           "; strategy=" + strategies[static_cast<std::size_t>(opt_.strategy)] + ">";
  }

  Compressor compressor_;
  Stepsize step_;
  options opt_;
};

}  // namespace loco
