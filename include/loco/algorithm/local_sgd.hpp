#pragma once
// local_sgd: local SGD with periodic averaging, the one driver behind
// mini-batch SGD, one-shot averaging, local SGD with decaying steps
// (ALGORITHMS.md section 2) and LOSCAR-SGD (section 3).
//
// Every rank calls run() with its own communicator and objective (SPMD).
// Round r on worker i:
//   N_i local SGD steps                                   -> snapshot y
//   start aggregating y (non-blocking)
//   Q_i more local steps while it is in flight            -> z (x holds it)
//   wait; merge rule combines z, y and the aggregate      -> x
// What travels depends on the compressor:
//   lossless (identity fp32)  the dense snapshot, averaged by iallreduce
//   shared support (random_k) the K snapshot values on the round's support,
//                             averaged by iallreduce; indices are never sent
//   any other compressor      C(y - ref), where ref is the last aggregate
//                             (equal on all workers); messages are
//                             allgathered, decoded and averaged: ref += mean
// The driver never asks which communicator it runs on.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <loco/algorithm/callbacks.hpp>
#include <loco/algorithm/detail/checkpoints.hpp>
#include <loco/algorithm/detail/checks.hpp>
#include <loco/algorithm/schedule.hpp>
#include <loco/comm/types.hpp>
#include <loco/concepts.hpp>
#include <loco/error.hpp>
#include <loco/merge/inputs.hpp>
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

// What to do with a NaN or Inf in a gradient.
enum class non_finite_policy {
  throw_error,  // throw loco::non_finite_error naming the worker and step (default)
  skip_update,  // drop this step's update
  zero,         // zero the non-finite entries, apply the rest
};

namespace algorithm {

struct local_sgd_options {
  algorithm::schedule schedule = algorithm::schedule::rounds(100, 10);
  // N_i per worker (one entry: all workers). Replaces the schedule's round
  // lengths; the schedule then only gives the number of rounds.
  std::vector<std::size_t> local_steps{};
  // Or derive N_i = max(1, floor(round_budget / compute_times[i])).
  std::vector<double> compute_times{};
  double round_budget = 0.0;
  // Q_i: steps taken while the aggregate is in flight (one entry: all workers).
  std::vector<std::size_t> overlap_steps{};
  // Instead of a fixed Q_i, keep stepping until the aggregate has arrived
  // (at most max_overlap_steps). Real transports only: not reproducible.
  bool overlap_until_arrival = false;
  std::size_t max_overlap_steps = 64;
  // Also return the Polyak-Ruppert average of the iterates.
  bool polyak_average = false;
  std::uint64_t seed = 0;
  non_finite_policy on_non_finite = non_finite_policy::throw_error;
  // Start from a checkpoint instead of x0 (docs/checkpoint.md); the schedule
  // continues at the saved round.
  checkpoint::resume resume{};
  // Keep one ledger record per round (result.ledger.rounds()); the totals
  // are kept either way.
  bool record_rounds = true;
};

// What one worker counted during a run. Bytes and time are in the ledger.
struct local_sgd_stats {
  std::size_t rounds = 0;
  std::uint64_t local_steps = 0;
  std::uint64_t overlap_steps = 0;
  std::uint64_t skipped_steps = 0;  // non-finite gradients dropped or zeroed
  double last_round_loss = 0.0;     // mean mini-batch loss of the last round
};

// progress_info: round, round_count, rank, size, model (this worker's, after
// the merge), loss, time, ledger, average_model (a collective).
template <class T>
struct round_info : progress_info<T> {
  std::uint64_t step = 0;      // this worker's local steps so far
  double mean_batch_loss = 0;  // this worker's mean mini-batch loss this round (= loss)
  const local_sgd_stats* stats = nullptr;
  // Writes this rank's complete state after this round to a checkpoint file
  // at `where` and returns its path (checkpoint::every calls it). Each rank
  // saves its own; call it on every rank in the same round.
  std::function<std::filesystem::path(const checkpoint::location& where)> save;
};

template <class T>
struct local_sgd_result {
  std::vector<T> average;  // (1/n) sum_i x_i at the end, the reported model
  std::vector<T> polyak;   // the averaged Polyak-Ruppert iterate, if requested
  std::vector<T> local;    // this worker's own final model
  local_sgd_stats stats;
  // Bytes and time per round and in total; all ranks' totals in all_ranks().
  observe::ledger ledger;
};

}  // namespace algorithm

template <class Compressor, class Comm, class MergeRule, class Stepsize>
class local_sgd {
 public:
  using options = algorithm::local_sgd_options;

  local_sgd(Compressor compressor, MergeRule merge, Stepsize step, options opt = {})
      : compressor_(std::move(compressor)),
        merge_(std::move(merge)),
        step_(std::move(step)),
        opt_(std::move(opt)) {
    if (opt_.round_budget < 0.0 || !std::isfinite(opt_.round_budget)) {
      throw config_error("local_sgd: round_budget " + std::to_string(opt_.round_budget) +
                         " must be finite and >= 0");
    }
    if (opt_.overlap_until_arrival && opt_.max_overlap_steps == 0) {
      throw config_error("local_sgd: max_overlap_steps 0 must be >= 1 with overlap_until_arrival");
    }
  }

  const options& settings() const noexcept { return opt_; }

  // Runs on this rank from x0 (the same x0 on every rank).
  template <class Objective, class... Callbacks>
  algorithm::local_sgd_result<typename Objective::value_type> run(
      Comm& comm, Objective& objective, std::span<const typename Objective::value_type> x0,
      Callbacks&&... callbacks) {
    using T = typename Objective::value_type;
    static_assert(check_objective<Objective>());
    static_assert(check_compressor<Compressor, T>());
    static_assert(check_communicator<Comm>());
    static_assert(check_merge_rule<MergeRule, T>());
    static_assert(check_stepsize<Stepsize>());
    return run_impl<T>(comm, objective, x0, callbacks...);
  }

  // N_i and Q_i for worker `rank` of `n`, after validation.
  std::size_t local_steps_of(int rank, int n, std::size_t round_length) const {
    if (!opt_.compute_times.empty()) {
      const double tau = opt_.compute_times[static_cast<std::size_t>(rank)];
      return std::max<std::size_t>(1,
                                   static_cast<std::size_t>(std::floor(opt_.round_budget / tau)));
    }
    if (opt_.local_steps.size() == 1) return opt_.local_steps[0];
    if (!opt_.local_steps.empty()) return opt_.local_steps[static_cast<std::size_t>(rank)];
    (void)n;  // kept in the signature: per-worker vectors are validated against it
    return round_length;
  }
  std::size_t overlap_steps_of(int rank) const {
    if (opt_.overlap_steps.empty()) return 0;
    if (opt_.overlap_steps.size() == 1) return opt_.overlap_steps[0];
    return opt_.overlap_steps[static_cast<std::size_t>(rank)];
  }

 private:
  void validate(int n, std::size_t d, std::size_t x0_size) const {
    const auto per_worker = [&](const char* name, std::size_t size) {
      if (size != 0 && size != 1 && size != static_cast<std::size_t>(n)) {
        throw config_error(std::string("local_sgd: ") + name + " has " + std::to_string(size) +
                           " entries; give 1 or one per worker (" + std::to_string(n) + ")");
      }
    };
    per_worker("local_steps", opt_.local_steps.size());
    per_worker("overlap_steps", opt_.overlap_steps.size());
    for (auto s : opt_.local_steps) {
      if (s == 0) throw config_error("local_sgd: local_steps entry 0 must be >= 1");
    }
    if (!opt_.compute_times.empty()) {
      if (opt_.compute_times.size() != static_cast<std::size_t>(n)) {
        throw config_error("local_sgd: compute_times has " +
                           std::to_string(opt_.compute_times.size()) + " entries for " +
                           std::to_string(n) + " workers");
      }
      if (!(opt_.round_budget > 0.0)) {
        throw config_error("local_sgd: compute_times need round_budget > 0, got " +
                           std::to_string(opt_.round_budget));
      }
      for (double tau : opt_.compute_times) {
        if (!(tau > 0.0) || !std::isfinite(tau)) {
          throw config_error("local_sgd: compute time " + std::to_string(tau) + " must be > 0");
        }
      }
    }
    algorithm::detail::require_start_size(x0_size, d, "local_sgd");
    if (d == 0) throw config_error("local_sgd: dimension 0");
  }

  template <class T, class Objective, class... Callbacks>
  algorithm::local_sgd_result<T> run_impl(Comm& comm, Objective& objective, std::span<const T> x0,
                                          Callbacks&... callbacks) {
    const int n = comm.size(), me = comm.rank();
    const std::size_t d = objective.dimension();
    validate(n, d, x0.size());
    algorithm::detail::require_same_dimension(comm, d, "local_sgd");

    algorithm::local_sgd_result<T> result;
    auto& stats = result.stats;
    auto& ledger = result.ledger;
    std::vector<T> x(x0.begin(), x0.end()), y(d), g(d), aggregate(d);
    std::vector<T> reference;  // general-compressor path: the last aggregate
    std::vector<double> polyak_sum(opt_.polyak_average ? d : 0, 0.0);
    std::uint64_t polyak_count = 0;
    random::stream rng(opt_.seed, static_cast<std::uint64_t>(me));
    compress::state_t<Compressor, T> own_state(compressor_, d, static_cast<std::uint64_t>(me));

    // Only the general path encodes into bytes; it needs per-sender decoders.
    constexpr bool lossless = compress::traits<Compressor>::lossless;
    constexpr bool shared = compress::traits<Compressor>::shared_support;
    constexpr bool general = !lossless && !shared;
    std::vector<compress::state_t<Compressor, T>> sender_states;
    wire::buffer message;
    std::vector<wire::buffer> gathered;
    std::vector<T> delta, decoded;
    std::vector<T> support_values;
    std::span<const std::uint32_t> support;
    std::vector<std::string> peer_sources;
    if constexpr (general) {
      peer_sources = algorithm::detail::rank_sources("local_sgd message", n);
      reference = x;
      delta.resize(d);
      decoded.resize(d);
      sender_states.reserve(static_cast<std::size_t>(n));
      for (int q = 0; q < n; ++q) {
        sender_states.emplace_back(compressor_, d, static_cast<std::uint64_t>(q));
      }
    }

    std::vector<T> average_buffer;
    std::size_t average_round = 0;
    std::size_t round_number = 0;
    std::function<std::span<const T>()> average_model = [&]() -> std::span<const T> {
      if (average_round != round_number || average_buffer.empty()) {
        average_buffer = x;
        comm.allreduce(std::span<T>(average_buffer), comm::reduce_op::average);
        average_round = round_number;
      }
      return average_buffer;
    };

    const auto& lengths = opt_.schedule.round_lengths();
    // Every rank sees every worker's payload (equal sizes, or all gathered).
    ledger.start(me, n, observe::role::peer, comm::now(comm), opt_.record_rounds, true);
    ledger.reserve_rounds(lengths.size());
    const auto lap = [&](observe::phase p) { ledger.lap(p, comm::now(comm)); };
    const std::uint64_t dense = d;
    std::uint64_t t = 0;
    double round_loss = 0.0;
    std::size_t round_loss_count = 0;

    // Checkpoints: this rank's complete state after a round (docs/checkpoint.md).
    namespace tags = checkpoint::tags;
    constexpr bool agrees_on_stop =
        algorithm::detail::any_stopping_round_end_hook<algorithm::round_info<T>, Callbacks...>();
    const algorithm::detail::checkpoint_identity identity{checkpoint::driver_kind::local_sgd,
                                                          checkpoint::value_type_code<T>(),
                                                          d,
                                                          n,
                                                          me,
                                                          description<T>()};
    const auto save = [&](const checkpoint::location& where) {
      return algorithm::detail::save_checkpoint(identity, round_number, where, [&](auto& w) {
        w.section(tags::counters, [&](wire::buffer& b) {
          b.put<std::uint64_t>(t);
          b.put<std::uint64_t>(polyak_count);
          checkpoint::put_bool(b, agrees_on_stop);
        });
        w.section(tags::model, [&](wire::buffer& b) { wire::put_values<T>(b, x); });
        w.section(tags::rng, [&](wire::buffer& b) { checkpoint::put_stream(b, rng); });
        if constexpr (general) {
          w.section(tags::reference, [&](wire::buffer& b) { wire::put_values<T>(b, reference); });
        }
        if (opt_.polyak_average) {
          w.section(tags::polyak,
                    [&](wire::buffer& b) { wire::put_values<double>(b, polyak_sum); });
        }
        w.section(tags::compressors, [&](wire::buffer& b) {
          checkpoint::put_state(b, own_state);
          b.put<std::uint32_t>(static_cast<std::uint32_t>(sender_states.size()));
          for (const auto& s : sender_states) checkpoint::put_state(b, s);
        });
        w.section(tags::stats, [&](wire::buffer& b) {
          b.put<std::uint64_t>(stats.rounds);
          b.put<std::uint64_t>(stats.local_steps);
          b.put<std::uint64_t>(stats.overlap_steps);
          b.put<std::uint64_t>(stats.skipped_steps);
          b.put<double>(stats.last_round_loss);
        });
        w.section(tags::ledger, [&](wire::buffer& b) { ledger.save(b, comm::now(comm)); });
        w.section(tags::clock,
                  [&](wire::buffer& b) { checkpoint::put_clock(b, sim::saved_clock(comm)); });
      });
    };
    std::size_t first_round = 0;
    if (const auto saved = opt_.resume.agree(comm)) {
      if (*saved > lengths.size()) {
        throw config_error("local_sgd: the checkpoint of round " + std::to_string(*saved) +
                           " lies past the schedule's " + std::to_string(lengths.size()) +
                           " rounds");
      }
      std::optional<sim::clock_state> resumed_clock;
      bool saver_agreed = false;
      observe::rank_totals saved_ledger;
      algorithm::detail::load_checkpoint(comm, identity, opt_.resume, *saved, [&](const auto& c) {
        checkpoint::read_section(c, tags::counters, [&](wire::view& in) {
          t = in.get<std::uint64_t>("step");
          polyak_count = in.get<std::uint64_t>("polyak count");
          saver_agreed = checkpoint::get_bool(in, "stop agreement");
        });
        checkpoint::read_section(c, tags::model,
                                 [&](wire::view& in) { wire::get_values<T>(in, x, "model"); });
        checkpoint::read_section(c, tags::rng,
                                 [&](wire::view& in) { checkpoint::get_stream(in, rng, "rng"); });
        if constexpr (general) {
          checkpoint::read_section(c, tags::reference, [&](wire::view& in) {
            wire::get_values<T>(in, reference, "reference");
          });
        }
        if (opt_.polyak_average) {
          checkpoint::read_section(c, tags::polyak, [&](wire::view& in) {
            wire::get_values<double>(in, polyak_sum, "polyak sum");
          });
        }
        checkpoint::read_section(c, tags::compressors, [&](wire::view& in) {
          checkpoint::get_state(in, own_state, "compressor state");
          if (in.get<std::uint32_t>("sender states") != sender_states.size()) {
            in.fail("sender states", "count differs from this run's");
          }
          for (auto& st : sender_states) checkpoint::get_state(in, st, "sender state");
        });
        checkpoint::read_section(c, tags::stats, [&](wire::view& in) {
          stats.rounds = static_cast<std::size_t>(in.get<std::uint64_t>("rounds"));
          stats.local_steps = in.get<std::uint64_t>("local steps");
          stats.overlap_steps = in.get<std::uint64_t>("overlap steps");
          stats.skipped_steps = in.get<std::uint64_t>("skipped steps");
          stats.last_round_loss = in.get<double>("last round loss");
        });
        checkpoint::read_section(c, tags::ledger,
                                 [&](wire::view& in) { saved_ledger = ledger.read_saved(in); });
        checkpoint::read_section(
            c, tags::clock, [&](wire::view& in) { resumed_clock = checkpoint::get_clock(in); });
      });
      first_round = static_cast<std::size_t>(*saved);
      round_number = first_round;
      if (resumed_clock) sim::restore_clock(comm, *resumed_clock);
      ledger.restore(saved_ledger, comm::now(comm));
      // If the saving run agreed on its stop flag after the save, so does this
      // one (the collective costs virtual time on the simulator).
      if (saver_agreed) {
        float flag[1] = {0.0f};
        comm.allreduce(std::span<float>(flag), comm::reduce_op::max);
      }
    }

    const auto step = [&] {
      ++t;
      const double loss = objective.gradient(std::span<const T>(x), std::span<T>(g), rng);
      round_loss += loss;
      ++round_loss_count;
      const std::size_t bad = tensor::first_non_finite(std::span<const T>(g));
      bool apply = true;
      if (bad != tensor::npos) {
        switch (opt_.on_non_finite) {
          case non_finite_policy::throw_error:
            throw non_finite_error("local_sgd: gradient of worker " + std::to_string(me) +
                                       " at step " + std::to_string(t),
                                   bad);
          case non_finite_policy::skip_update:
            apply = false;
            ++stats.skipped_steps;
            break;
          case non_finite_policy::zero:
            for (auto& v : g) {
              if (!tensor::is_finite(v)) v = T{0};
            }
            ++stats.skipped_steps;
            break;
        }
      }
      if (apply) {
        stepsize::context ctx;
        ctx.t = t;
        ctx.worker = me;
        const auto eta = static_cast<T>(step_.eta(ctx));
        for (std::size_t j = 0; j < d; ++j) x[j] -= eta * g[j];
      }
      if (opt_.polyak_average) {
        for (std::size_t j = 0; j < d; ++j) polyak_sum[j] += static_cast<double>(x[j]);
        ++polyak_count;
      }
    };

    for (std::size_t r = first_round; r < lengths.size(); ++r) {
      round_loss = 0.0;
      round_loss_count = 0;
      const std::size_t local = local_steps_of(me, n, lengths[r]);
      for (std::size_t s = 0; s < local; ++s) step();
      stats.local_steps += local;
      y = x;
      lap(observe::phase::compute);

      // Start aggregating the snapshot. Allreduced payloads count d (or K)
      // values sent and the same read back; gathered messages count their
      // bytes, each standing for a d-vector.
      auto request = [&] {
        if constexpr (lossless) {
          aggregate = y;
          ledger.add_sent(d * sizeof(T), dense);
          ledger.add_received(d * sizeof(T), dense);
          ledger.add_all_workers_sent(static_cast<std::uint64_t>(n) * d * sizeof(T));
          return comm.iallreduce(std::span<T>(aggregate), comm::reduce_op::average);
        } else if constexpr (shared) {
          support = compressor_.support(own_state, r);
          support_values.resize(support.size());
          for (std::size_t k = 0; k < support.size(); ++k) support_values[k] = y[support[k]];
          ledger.add_sent(support.size() * sizeof(T), dense);
          ledger.add_received(support.size() * sizeof(T), dense);
          ledger.add_all_workers_sent(static_cast<std::uint64_t>(n) * support.size() * sizeof(T));
          lap(observe::phase::compress);
          return comm.iallreduce(std::span<T>(support_values), comm::reduce_op::average);
        } else {
          for (std::size_t j = 0; j < d; ++j) delta[j] = y[j] - reference[j];
          message.clear();
          compressor_.encode(std::span<const T>(delta), own_state, message);
          ledger.add_sent(message.size(), dense);
          lap(observe::phase::compress);
          return comm.iallgather(message.bytes(), gathered);
        }
      }();
      lap(observe::phase::communicate);

      // Overlap: keep stepping while the aggregate is in flight.
      std::size_t overlap = 0;
      if (opt_.overlap_until_arrival) {
        while (overlap < opt_.max_overlap_steps && !request.test()) {
          step();
          ++overlap;
        }
      } else {
        overlap = overlap_steps_of(me);
        for (std::size_t s = 0; s < overlap; ++s) step();
      }
      stats.overlap_steps += overlap;
      lap(observe::phase::compute);

      request.wait();
      lap(observe::phase::wait);

      if constexpr (general) {
        std::fill(aggregate.begin(), aggregate.end(), T{0});
        for (int q = 0; q < n; ++q) {
          const auto& bytes = gathered[static_cast<std::size_t>(q)];
          ledger.add_all_workers_sent(bytes.size());
          if (q != me) ledger.add_received(bytes.size(), dense);
          wire::view in(bytes, peer_sources[static_cast<std::size_t>(q)]);
          compressor_.decode(in, sender_states[static_cast<std::size_t>(q)], std::span<T>(decoded));
          for (std::size_t j = 0; j < d; ++j) aggregate[j] += decoded[j];
        }
        const T inv = T{1} / static_cast<T>(n);
        for (std::size_t j = 0; j < d; ++j) {
          reference[j] += aggregate[j] * inv;
          aggregate[j] = reference[j];
        }
        lap(observe::phase::compress);
      }

      if constexpr (shared) {
        merge_.apply(merge::inputs<T>{y, support_values, support}, std::span<T>(x));
      } else {
        merge_.apply(merge::inputs<T>{y, aggregate, {}}, std::span<T>(x));
      }
      ++stats.rounds;
      round_number = r + 1;
      stats.last_round_loss =
          round_loss_count ? round_loss / static_cast<double>(round_loss_count) : 0.0;
      const auto& record = ledger.end_round(r + 1, t, comm::now(comm), stats.last_round_loss);

      if constexpr (sizeof...(Callbacks) > 0) {
        algorithm::round_info<T> info;
        info.round = r + 1;
        info.round_count = lengths.size();
        info.rank = me;
        info.size = n;
        info.model = x;
        info.loss = stats.last_round_loss;
        info.time = record.time;
        info.ledger = &ledger;
        info.average_model = std::ref(average_model);  // no copy, no allocation
        info.step = t;
        info.mean_batch_loss = stats.last_round_loss;
        info.stats = &stats;
        info.save = [&save](const checkpoint::location& l) { return save(l); };  // no allocation
        bool stop = false;
        ((stop = algorithm::detail::call_round_end(callbacks, info) || stop), ...);
        if constexpr (algorithm::detail::any_stopping_round_end_hook<algorithm::round_info<T>,
                                                                     Callbacks...>()) {
          float flag[1] = {stop ? 1.0f : 0.0f};
          comm.allreduce(std::span<float>(flag), comm::reduce_op::max);  // stop together
          if (flag[0] > 0.0f) break;
        }
        lap(observe::phase::other);
      }
    }
    ledger.finish(comm::now(comm));

    result.local = x;
    result.average = x;
    comm.allreduce(std::span<T>(result.average), comm::reduce_op::average);
    if (opt_.polyak_average) {
      result.polyak.resize(d);
      const double inv = polyak_count ? 1.0 / static_cast<double>(polyak_count) : 0.0;
      for (std::size_t j = 0; j < d; ++j) result.polyak[j] = static_cast<T>(polyak_sum[j] * inv);
      comm.allreduce(std::span<T>(result.polyak), comm::reduce_op::average);
    }
    ledger.gather(comm);
    if constexpr (sizeof...(Callbacks) > 0) {
      algorithm::round_info<T> info;
      info.round = stats.rounds;
      info.round_count = lengths.size();
      info.rank = me;
      info.size = n;
      info.model = x;
      info.loss = stats.last_round_loss;
      info.time = ledger.totals().elapsed;
      info.ledger = &ledger;
      info.average_model = [&]() -> std::span<const T> { return result.average; };
      info.step = t;
      info.mean_batch_loss = stats.last_round_loss;
      info.stats = &stats;
      (algorithm::detail::call_run_end(callbacks, info), ...);
    }
    return result;
  }

  // What a checkpoint must have been written by: the policies and the
  // options that shape the saved state.
  template <class T>
  std::string description() const {
    return "local_sgd<" + std::string(sizeof(T) == 4 ? "fp32" : "fp64") +
           "; compressor=" + checkpoint::compressor_description<Compressor>() +
           "; merge=" + checkpoint::policy_name<MergeRule>() +
           "; stepsize=" + checkpoint::policy_name<Stepsize>() +
           "; polyak=" + (opt_.polyak_average ? "1" : "0") + ">";
  }

  Compressor compressor_;
  MergeRule merge_;
  Stepsize step_;
  options opt_;
};

}  // namespace loco
