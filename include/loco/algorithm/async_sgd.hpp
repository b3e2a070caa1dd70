#pragma once
// async_sgd: asynchronous SGD with a server (ALGORITHMS.md sections 4, 5).
//
// Rank 0 is the server and holds x; ranks 1..n-1 are workers (worker index
// = rank - 1). A job is (x, version): the worker computes a stochastic
// gradient at that x and returns it with the version it read. The server
// applies every gradient as it arrives:
//   tau = version_now - version_read
//   x  <- x - eta(t, worker, tau, tau_C, tau_i, tau_ref) * g
// then sends the new x as the next job: to the worker that reported
// (default), or to a worker drawn uniformly at random (the federated
// variant with a fixed number of jobs in flight). The uplink goes through the
// Compressor policy; the model travels dense.
//
// Worker compute times tau_i for rescaled steps are estimated online from the
// time between a worker's reports on the communicator's clock (virtual time
// on the simulator), with an exponential moving average.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <loco/algorithm/callbacks.hpp>
#include <loco/algorithm/detail/async_messages.hpp>
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

enum class job_assignment {
  reporting_worker,  // the new model goes back to the worker that reported
  random_worker,     // to a worker drawn uniformly at random (jobs may queue)
};

enum class worker_failure {
  fatal,     // a lost worker ends the run with loco::peer_lost (naming it) on every rank
  tolerate,  // the server records it and continues with the others
};

struct async_sgd_options {
  std::uint64_t updates = 1000;  // gradients applied by the server (at most)
  // Also stop once this many seconds have passed on the communicator's clock
  // (virtual on the simulator); 0: no time budget, `updates` alone ends the run.
  double time_budget = 0.0;
  // Jobs in flight; 0 means one per worker. Also the default tau_C.
  std::size_t concurrency = 0;
  job_assignment assignment = job_assignment::reporting_worker;
  worker_failure on_worker_failure = worker_failure::fatal;
  // Smoothing of the online estimate of tau_i: est <- (1-a) est + a observed.
  double time_smoothing = 0.2;
  // Also return the average of x over the last fraction of updates, or of
  // the time budget when that ends the run first (the last iterate cycles
  // with the workers' period; compare averaged ones).
  double tail_fraction = 0.5;
  std::uint64_t seed = 0;
  non_finite_policy on_non_finite = non_finite_policy::throw_error;
  // Start from a checkpoint instead of x0 (docs/checkpoint.md): the server
  // continues at the saved update, each worker with the jobs it held.
  checkpoint::resume resume{};
  // Keep one ledger record per applied update (server) and per job (worker).
  bool record_rounds = true;
};

struct async_sgd_stats {
  std::uint64_t updates = 0;
  std::uint64_t dropped = 0;  // gradients applied with step 0 or skipped as non-finite
  // Gradients still in flight at the end, discarded, and the server updates
  // each had missed: with k jobs in flight, updates * mean_delay +
  // discarded_delay_sum == (k - 1) * updates exactly.
  std::uint64_t discarded = 0;
  std::uint64_t discarded_delay_sum = 0;
  double mean_delay = 0.0;
  std::uint64_t max_delay = 0;
  std::vector<std::uint64_t> delay_histogram;     // [tau] -> count (tau capped at 4n)
  std::vector<std::uint64_t> updates_per_worker;  // by worker index
  std::vector<int> lost_workers;                  // ranks lost in tolerate mode
  std::vector<std::uint64_t> lost_at_update;      // the server's update count when each was lost
};

template <class T>
struct async_sgd_result {
  std::vector<T> model;         // the server's final x, on every rank
  std::vector<T> tail_average;  // mean of x over the last tail_fraction of updates
  async_sgd_stats stats;        // complete on the server (rank 0)
  // This rank's bytes and time (the server's: gradients up, models down; a
  // worker's: one record per job); all ranks' totals in all_ranks().
  observe::ledger ledger;
};

// Callbacks run on the server only, once per applied update. progress_info:
// round (= update), round_count, rank (0), size, model (the server's x),
// loss (NaN: the server computes no gradient), time, ledger, average_model
// (the server's x).
template <class T>
struct update_info : progress_info<T> {
  std::uint64_t update = 0;  // (= round)
  std::uint64_t update_count = 0;
  int worker = 0;  // worker index (rank - 1) whose gradient was applied
  std::uint64_t delay = 0;
  double step = 0.0;  // the step size eta applied
  const async_sgd_stats* stats = nullptr;
  // Writes a checkpoint of the whole run after this update and returns the
  // server's file: the server saves its own state and asks every worker to
  // save its state as of the jobs still outstanding (docs/checkpoint.md).
  std::function<std::filesystem::path(const checkpoint::location& where)> save;
};

}  // namespace algorithm

template <class Compressor, class Comm, class Stepsize>
class async_sgd {
 public:
  using options = algorithm::async_sgd_options;
  static constexpr int server = 0;
  // server -> worker: [kind u8][version u64][x], or a stop, or a checkpoint request
  static constexpr int tag_job = 101;
  static constexpr int tag_gradient = 102;  // worker -> server: [version u64][payload]

  async_sgd(Compressor compressor, Stepsize step, options opt = {})
      : compressor_(std::move(compressor)), step_(std::move(step)), opt_(opt) {
    if (opt_.updates == 0) throw config_error("async_sgd: updates 0 must be >= 1");
    if (!(opt_.time_budget >= 0.0) || !std::isfinite(opt_.time_budget)) {
      throw config_error("async_sgd: time_budget " + std::to_string(opt_.time_budget) +
                         " must be finite and >= 0");
    }
    if (!(opt_.time_smoothing > 0.0 && opt_.time_smoothing <= 1.0)) {
      throw config_error("async_sgd: time_smoothing " + std::to_string(opt_.time_smoothing) +
                         " is outside (0, 1]");
    }
    if (!(opt_.tail_fraction > 0.0 && opt_.tail_fraction <= 1.0)) {
      throw config_error("async_sgd: tail_fraction " + std::to_string(opt_.tail_fraction) +
                         " is outside (0, 1]");
    }
  }

  // Every rank calls run(); the server's objective is used only for its
  // dimension (it computes no gradients).
  template <class Objective, class... Callbacks>
  algorithm::async_sgd_result<typename Objective::value_type> run(
      Comm& comm, Objective& objective, std::span<const typename Objective::value_type> x0,
      Callbacks&&... callbacks) {
    using T = typename Objective::value_type;
    static_assert(check_objective<Objective>());
    static_assert(check_compressor<Compressor, T>());
    static_assert(check_communicator<Comm>());
    static_assert(check_stepsize<Stepsize>());
    if (comm.size() < 2) {
      throw config_error("async_sgd: needs a server and at least one worker; world size " +
                         std::to_string(comm.size()));
    }
    const std::size_t d = objective.dimension();
    algorithm::detail::require_start_size(x0.size(), d, "async_sgd");
    const std::size_t workers = static_cast<std::size_t>(comm.size() - 1);
    const std::size_t jobs = opt_.concurrency ? opt_.concurrency : workers;
    if (opt_.assignment == algorithm::job_assignment::reporting_worker && jobs > workers) {
      throw config_error("async_sgd: concurrency " + std::to_string(jobs) +
                         " exceeds the number of workers " + std::to_string(workers) +
                         " (reporting_worker assignment runs one job per worker)");
    }
    const algorithm::detail::checkpoint_identity identity{checkpoint::driver_kind::async_sgd,
                                                          checkpoint::value_type_code<T>(),
                                                          d,
                                                          comm.size(),
                                                          comm.rank(),
                                                          description<T>(jobs)};
    const std::optional<std::uint64_t> resume_at = opt_.resume.agree(comm);
    if (resume_at && *resume_at > opt_.updates) {
      throw config_error("async_sgd: the checkpoint of update " + std::to_string(*resume_at) +
                         " lies past updates = " + std::to_string(opt_.updates));
    }
    // Every rank ends with the server's model, which travels in the stop
    // message (point to point, so a world that lost a worker can finish).
    algorithm::async_sgd_result<T> result;
    const bool gather = comm.rank() == server
                            ? serve<T>(comm, x0, jobs, identity, resume_at, result, callbacks...)
                            : work<T>(comm, objective, d, jobs, identity, resume_at, result);
    result.ledger.finish(comm::now(comm));
    // A collective: only when no worker was lost (the server decides).
    if (gather) result.ledger.gather(comm);
    if constexpr (sizeof...(Callbacks) > 0) {
      if (comm.rank() == server) {
        algorithm::update_info<T> info;
        info.round = result.stats.updates;
        info.round_count = opt_.updates;
        info.rank = server;
        info.size = comm.size();
        info.model = result.model;
        info.time = result.ledger.totals().elapsed;
        info.ledger = &result.ledger;
        info.average_model = [&]() -> std::span<const T> { return result.model; };
        info.update = result.stats.updates;
        info.update_count = opt_.updates;
        info.stats = &result.stats;
        (algorithm::detail::call_run_end(callbacks, info), ...);
      }
    }
    return result;
  }

 private:
  template <class T>
  void send_job(Comm& comm, int rank, std::uint64_t version, std::span<const T> x,
                wire::buffer& msg, observe::ledger& ledger) {
    algorithm::detail::write_async_job<T>(msg, version, x);
    ledger.lap(observe::phase::compress, comm::now(comm));
    comm.send(rank, tag_job, msg.bytes());
    ledger.add_sent(msg.size(), x.size());
    ledger.lap(observe::phase::communicate, comm::now(comm));
  }

  // Returns whether the ranks gather their ledgers (no worker was lost).
  template <class T, class... Callbacks>
  bool serve(Comm& comm, std::span<const T> x0, std::size_t jobs,
             const algorithm::detail::checkpoint_identity& identity,
             std::optional<std::uint64_t> resume_at, algorithm::async_sgd_result<T>& result,
             Callbacks&... callbacks) {
    const int n = comm.size();
    const std::size_t workers = static_cast<std::size_t>(n - 1), d = x0.size();
    auto& stats = result.stats;
    auto& ledger = result.ledger;
    const auto gradient_sources = algorithm::detail::rank_sources("async_sgd gradient", n);
    stats.updates_per_worker.assign(workers, 0);
    stats.delay_histogram.assign(4 * workers + 2, 0);
    std::vector<T> x(x0.begin(), x0.end()), g(d);
    std::vector<double> tail_sum(d, 0.0);
    const std::uint64_t tail_start =
        opt_.updates - static_cast<std::uint64_t>(
                           std::ceil(opt_.tail_fraction * static_cast<double>(opt_.updates)));
    std::uint64_t tail_count = 0;
    std::vector<compress::state_t<Compressor, T>> decoders;
    decoders.reserve(workers);
    for (std::size_t w = 0; w < workers; ++w) decoders.emplace_back(compressor_, d, w + 1);
    std::vector<std::uint64_t> outstanding(workers, 0);  // jobs sent, not yet answered
    std::vector<std::uint8_t> alive(workers, 1);         // a byte each: checkpoints save it
    std::vector<double> last_report(workers, 0.0), time_estimate(workers, 0.0);
    random::stream assign_rng(opt_.seed, 0xa551ULL);
    wire::buffer msg, in_msg;
    double start_time = comm::now(comm);
    std::fill(last_report.begin(), last_report.end(), start_time);
    const bool budgeted = opt_.time_budget > 0.0;
    double tail_time = start_time + (1.0 - opt_.tail_fraction) * opt_.time_budget;
    // The server sees every worker's gradient message.
    ledger.start(server, n, observe::role::server, start_time, opt_.record_rounds, true);
    ledger.reserve_rounds(static_cast<std::size_t>(opt_.updates));

    std::uint64_t version = 0;
    std::uint64_t in_flight = 0;
    std::size_t last_reporter = 0;  // the worker whose gradient made the latest update
    double delay_sum = 0.0;
    const auto any_alive = [&] {
      return std::any_of(alive.begin(), alive.end(), [](std::uint8_t a) { return a != 0; });
    };
    const bool to_reporter = opt_.assignment == algorithm::job_assignment::reporting_worker;
    std::size_t reissue = 0;  // jobs of lost workers to hand to others (random assignment)
    // A worker is gone: fatal mode tells the others who (best effort) and
    // throws; tolerate mode drops its jobs and goes on while any remain
    // (with random assignment the jobs go to other workers instead).
    const auto lose = [&](const peer_lost& lost) {
      const bool ours = lost.rank() > 0 && lost.rank() < n;
      if (opt_.on_worker_failure == algorithm::worker_failure::fatal || !ours) {
        if (ours) alive[static_cast<std::size_t>(lost.rank() - 1)] = 0;
        abort_workers(comm, alive, lost);
        throw lost;
      }
      const auto w = static_cast<std::size_t>(lost.rank() - 1);
      if (alive[w]) {
        alive[w] = 0;
        stats.lost_workers.push_back(lost.rank());
        stats.lost_at_update.push_back(version);
        in_flight -= outstanding[w];
        if (!to_reporter) reissue += outstanding[w];
        outstanding[w] = 0;
      }
      if (!any_alive()) throw lost;
    };
    const auto pick_worker = [&](std::size_t reporter) -> std::size_t {
      if (to_reporter) return reporter;
      for (int attempt = 0; attempt < 1000; ++attempt) {
        const auto w = static_cast<std::size_t>(assign_rng.below(workers));
        if (alive[w]) return w;
      }
      for (std::size_t w = 0; w < workers; ++w) {
        if (alive[w]) return w;
      }
      return reporter;
    };
    // Sends the current x to worker w (or, with random assignment, to another
    // live worker if w turns out to be gone).
    const auto dispatch = [&](std::size_t w) {
      for (;;) {
        if (!alive[w]) {
          if (to_reporter) return;  // that job ends with its worker
          w = pick_worker(w);
          continue;
        }
        try {
          send_job<T>(comm, static_cast<int>(w + 1), version, x, msg, ledger);
          ++outstanding[w];
          ++in_flight;
          return;
        } catch (const peer_lost& lost) {
          lose(lost);
        }
      }
    };

    // Checkpoints: the server's state after an update, plus a request to
    // every worker to save its own as of the jobs still outstanding.
    namespace tags = checkpoint::tags;
    const auto save = [&](const checkpoint::location& where) {
      for (std::size_t w = 0; w < workers; ++w) {
        if (!alive[w]) continue;
        algorithm::detail::write_async_checkpoint(
            msg, {version, outstanding[w], where.keep_last, where.dir.string(), where.name});
        comm.send(static_cast<int>(w + 1), tag_job, msg.bytes());
      }
      return algorithm::detail::save_checkpoint(identity, version, where, [&](auto& wr) {
        wr.section(tags::server, [&](wire::buffer& b) {
          b.put<std::uint64_t>(version);
          b.put<std::uint64_t>(in_flight);
          b.put<std::uint64_t>(last_reporter);
          b.put<double>(delay_sum);
          b.put<std::uint64_t>(tail_start);
          b.put<std::uint64_t>(tail_count);
          b.put<double>(start_time);
          b.put<double>(comm::now(comm));
        });
        wr.section(tags::model, [&](wire::buffer& b) { wire::put_values<T>(b, x); });
        wr.section(tags::tail, [&](wire::buffer& b) { wire::put_values<double>(b, tail_sum); });
        wr.section(tags::workers, [&](wire::buffer& b) {
          wire::put_values<std::uint64_t>(b, outstanding);
          wire::put_values<std::uint8_t>(b, alive);
          wire::put_values<double>(b, last_report);
          wire::put_values<double>(b, time_estimate);
        });
        wr.section(tags::rng, [&](wire::buffer& b) { checkpoint::put_stream(b, assign_rng); });
        wr.section(tags::compressors, [&](wire::buffer& b) {
          for (const auto& st : decoders) checkpoint::put_state(b, st);
        });
        wr.section(tags::stats, [&](wire::buffer& b) {
          b.put<std::uint64_t>(stats.updates);
          b.put<std::uint64_t>(stats.dropped);
          b.put<std::uint64_t>(stats.discarded);
          b.put<std::uint64_t>(stats.discarded_delay_sum);
          b.put<std::uint64_t>(stats.max_delay);
          wire::put_values<std::uint64_t>(b, stats.delay_histogram);
          wire::put_values<std::uint64_t>(b, stats.updates_per_worker);
          b.put<std::uint32_t>(static_cast<std::uint32_t>(stats.lost_workers.size()));
          for (int r : stats.lost_workers) b.put<std::int32_t>(r);
          for (auto u : stats.lost_at_update) b.put<std::uint64_t>(u);
        });
        wr.section(tags::ledger, [&](wire::buffer& b) { ledger.save(b, comm::now(comm)); });
        wr.section(tags::clock,
                   [&](wire::buffer& b) { checkpoint::put_clock(b, sim::saved_clock(comm)); });
      });
    };

    if (resume_at) {
      std::optional<sim::clock_state> resumed_clock;
      std::uint64_t saved_tail_start = 0;
      double saved_now = 0.0;
      observe::rank_totals saved_ledger;
      algorithm::detail::load_checkpoint(comm, identity, opt_.resume, *resume_at, [&](auto& c) {
        checkpoint::read_section(c, tags::server, [&](wire::view& in) {
          version = in.get<std::uint64_t>("version");
          if (version != *resume_at) in.fail("version", "differs from the file's round");
          in_flight = in.get<std::uint64_t>("in flight");
          last_reporter = static_cast<std::size_t>(in.get<std::uint64_t>("last reporter"));
          if (last_reporter >= workers) in.fail("last reporter", "no such worker");
          delay_sum = in.get<double>("delay sum");
          saved_tail_start = in.get<std::uint64_t>("tail start");
          tail_count = in.get<std::uint64_t>("tail count");
          start_time = in.get<double>("start time");
          saved_now = in.get<double>("saved at");
        });
        checkpoint::read_section(c, tags::model,
                                 [&](wire::view& in) { wire::get_values<T>(in, x, "model"); });
        checkpoint::read_section(c, tags::tail, [&](wire::view& in) {
          wire::get_values<double>(in, tail_sum, "tail sum");
        });
        checkpoint::read_section(c, tags::workers, [&](wire::view& in) {
          wire::get_values<std::uint64_t>(in, outstanding, "outstanding jobs");
          wire::get_values<std::uint8_t>(in, alive, "alive");
          wire::get_values<double>(in, last_report, "last report");
          wire::get_values<double>(in, time_estimate, "time estimate");
          std::uint64_t total = 0;
          for (auto o : outstanding) total += o;
          if (total != in_flight || in_flight > jobs) {
            in.fail("outstanding jobs", "do not add up to the jobs in flight");
          }
        });
        checkpoint::read_section(c, tags::rng, [&](wire::view& in) {
          checkpoint::get_stream(in, assign_rng, "assignment rng");
        });
        checkpoint::read_section(c, tags::compressors, [&](wire::view& in) {
          for (auto& st : decoders) checkpoint::get_state(in, st, "decoder state");
        });
        checkpoint::read_section(c, tags::stats, [&](wire::view& in) {
          stats.updates = in.get<std::uint64_t>("updates");
          stats.dropped = in.get<std::uint64_t>("dropped");
          stats.discarded = in.get<std::uint64_t>("discarded");
          stats.discarded_delay_sum = in.get<std::uint64_t>("discarded delay sum");
          stats.max_delay = in.get<std::uint64_t>("max delay");
          wire::get_values<std::uint64_t>(in, stats.delay_histogram, "delay histogram");
          wire::get_values<std::uint64_t>(in, stats.updates_per_worker, "updates per worker");
          const auto lost = in.get<std::uint32_t>("lost workers");
          if (lost > workers) in.fail("lost workers", "more than there are workers");
          stats.lost_workers.clear();
          stats.lost_at_update.clear();
          for (std::uint32_t k = 0; k < lost; ++k) {
            stats.lost_workers.push_back(in.get<std::int32_t>("lost worker"));
          }
          for (std::uint32_t k = 0; k < lost; ++k) {
            stats.lost_at_update.push_back(in.get<std::uint64_t>("lost at update"));
          }
        });
        checkpoint::read_section(c, tags::ledger,
                                 [&](wire::view& in) { saved_ledger = ledger.read_saved(in); });
        checkpoint::read_section(
            c, tags::clock, [&](wire::view& in) { resumed_clock = checkpoint::get_clock(in); });
      });
      if (resumed_clock) {
        sim::restore_clock(comm, *resumed_clock);
      } else {
        // A real clock restarted: shift the saved times to keep their intervals.
        const double shift = comm::now(comm) - saved_now;
        start_time += shift;
        for (auto& t : last_report) t += shift;
      }
      ledger.restore(saved_ledger, comm::now(comm));
      tail_time = start_time + (1.0 - opt_.tail_fraction) * opt_.time_budget;
      if (saved_tail_start != tail_start) {
        // The tail window moved with `updates`: it starts again here.
        std::fill(tail_sum.begin(), tail_sum.end(), 0.0);
        tail_count = 0;
      }
      // The job the saving run sent right after the save.
      if (version < opt_.updates) dispatch(pick_worker(last_reporter));
    } else {
      // Initial jobs: one per worker up to the concurrency, or random clients.
      for (std::size_t k = 0; k < jobs; ++k) {
        dispatch(to_reporter ? k : static_cast<std::size_t>(assign_rng.below(workers)));
      }
    }

    bool stopped_early = false;
    while (in_flight > 0) {
      int from = -1;
      try {
        from = comm.recv(comm::any_source, tag_gradient, in_msg);
        ledger.lap(observe::phase::wait, comm::now(comm));
      } catch (const peer_lost& lost) {
        lose(lost);
        if (version < opt_.updates && !stopped_early) {
          for (; reissue > 0; --reissue) dispatch(pick_worker(0));
        }
        continue;
      }
      // A gradient that arrived before its worker was found lost: its job
      // was already written off (and, with random assignment, handed on).
      if (from > server && from < n && !alive[static_cast<std::size_t>(from - 1)]) continue;
      // A gradient answers a job this server sent; anything else (a faulty
      // or hostile worker) would corrupt the count of jobs in flight.
      if (from <= server || from >= n || outstanding[static_cast<std::size_t>(from - 1)] == 0) {
        throw protocol_error("async_sgd worker rank " + std::to_string(from), "gradient",
                             "a gradient without an outstanding job");
      }
      const auto w = static_cast<std::size_t>(from - 1);
      --outstanding[w];
      --in_flight;
      wire::view in(in_msg, gradient_sources[static_cast<std::size_t>(from)]);
      const auto read_version = algorithm::detail::read_gradient_version(in, version);
      ledger.add_received(in_msg.size(), d);
      ledger.add_all_workers_sent(in_msg.size());

      if (stopped_early || version >= opt_.updates) {
        // Draining: the gradient arrived after the last update and is
        // discarded; the job is answered with a stop below.
        ++stats.discarded;
        stats.discarded_delay_sum += version - read_version;
        continue;
      }

      compressor_.decode(in, decoders[w], std::span<T>(g));
      ledger.lap(observe::phase::compress, comm::now(comm));
      const double now = comm::now(comm);
      const double observed = now - last_report[w];
      last_report[w] = now;
      time_estimate[w] = time_estimate[w] == 0.0 ? observed
                                                 : (1.0 - opt_.time_smoothing) * time_estimate[w] +
                                                       opt_.time_smoothing * observed;
      const std::uint64_t tau = version - read_version;
      stepsize::context ctx;
      ctx.t = version + 1;
      ctx.worker = static_cast<int>(w);
      ctx.delay = tau;
      ctx.concurrency = jobs;
      ctx.worker_time = time_estimate[w];
      ctx.reference_time = *std::max_element(time_estimate.begin(), time_estimate.end());
      double eta = step_.eta(ctx);
      if (const auto bad = tensor::first_non_finite(std::span<const T>(g)); bad != tensor::npos) {
        if (opt_.on_non_finite == non_finite_policy::throw_error) {
          throw non_finite_error("async_sgd: gradient of worker " + std::to_string(w) +
                                     " at update " + std::to_string(version + 1),
                                 bad);
        }
        if (opt_.on_non_finite == non_finite_policy::skip_update) {
          eta = 0.0;
        } else {
          for (auto& v : g)
            if (!tensor::is_finite(v)) v = T{0};
        }
      }
      if (eta == 0.0) ++stats.dropped;
      const auto step = static_cast<T>(eta);
      for (std::size_t j = 0; j < d; ++j) x[j] -= step * g[j];
      ++version;
      last_reporter = w;
      ++stats.updates;
      ++stats.updates_per_worker[w];
      delay_sum += static_cast<double>(tau);
      stats.max_delay = std::max(stats.max_delay, tau);
      ++stats.delay_histogram[std::min<std::size_t>(tau, stats.delay_histogram.size() - 1)];
      if (version > tail_start || (budgeted && now >= tail_time)) {
        for (std::size_t j = 0; j < d; ++j) tail_sum[j] += static_cast<double>(x[j]);
        ++tail_count;
      }
      ledger.set_delay(tau);
      const auto& record = ledger.end_round(version, version, comm::now(comm),
                                            std::numeric_limits<double>::quiet_NaN());

      if constexpr (sizeof...(Callbacks) > 0) {
        algorithm::update_info<T> info;
        info.round = version;
        info.round_count = opt_.updates;
        info.rank = server;
        info.size = n;
        info.model = x;
        info.time = record.time;
        info.ledger = &ledger;
        info.average_model = [&]() -> std::span<const T> { return x; };
        info.update = version;
        info.update_count = opt_.updates;
        info.worker = static_cast<int>(w);
        info.delay = tau;
        info.step = eta;
        info.stats = &stats;
        info.save = [&save](const checkpoint::location& l) { return save(l); };  // no allocation
        bool stop = false;
        ((stop = algorithm::detail::call_round_end(callbacks, info) || stop), ...);
        stopped_early = stop;
        ledger.lap(observe::phase::other, comm::now(comm));
      }
      if (budgeted && now - start_time >= opt_.time_budget) stopped_early = true;
      if (version < opt_.updates && !stopped_early) {
        dispatch(pick_worker(w));
        for (; reissue > 0; --reissue) dispatch(pick_worker(w));
      }
    }
    stats.mean_delay = stats.updates ? delay_sum / static_cast<double>(stats.updates) : 0.0;
    result.model = x;
    result.tail_average.resize(d);
    for (std::size_t j = 0; j < d; ++j) {
      result.tail_average[j] =
          tail_count ? static_cast<T>(tail_sum[j] / static_cast<double>(tail_count)) : x[j];
    }
    // Every job is answered; no model is queued anywhere: stop the workers,
    // handing each the final model.
    const bool gather = stats.lost_workers.empty();
    algorithm::detail::write_async_stop<T>(msg, gather, result.model, result.tail_average);
    for (std::size_t w = 0; w < workers; ++w) {
      if (!alive[w]) continue;
      try {
        comm.send(static_cast<int>(w + 1), tag_job, msg.bytes());
        ledger.add_sent(msg.size(), 2 * d);
      } catch (const peer_lost& lost) {
        // Lost after its last report: tolerated, or fatal. A worker already
        // told to gather then fails in the gather with peer_lost.
        lose(lost);
      }
    }
    ledger.lap(observe::phase::communicate, comm::now(comm));
    return gather;
  }

  // Fatal mode: tell every live worker which rank ended the run, so each
  // throws peer_lost naming it rather than waiting for the server.
  static void abort_workers(Comm& comm, const std::vector<std::uint8_t>& alive,
                            const peer_lost& lost) {
    std::string why = lost.what();
    const std::string prefix = "loco: lost peer rank " + std::to_string(lost.rank()) + ": ";
    if (why.rfind(prefix, 0) == 0) why.erase(0, prefix.size());
    wire::buffer note;
    algorithm::detail::write_async_abort(note, lost.rank(), why);
    for (std::size_t w = 0; w < alive.size(); ++w) {
      if (!alive[w]) continue;
      try {
        comm.send(static_cast<int>(w + 1), tag_job, note.bytes());
      } catch (const std::exception&) {  // best effort: that one is gone too
      }
    }
  }

  [[noreturn]] static void throw_abort(const algorithm::detail::async_job& abort) {
    throw peer_lost(abort.lost_rank, std::string(abort.reason) + " (the server ended the run)");
  }

  // A job a worker has taken, kept with the worker's state before it until
  // the server has surely applied its gradient, so a checkpoint can record
  // the worker as it was before every job still outstanding at the server.
  struct job_slot {
    wire::buffer job;                // the server's message
    random::stream::snapshot rng{};  // the worker's state before the job
    std::uint64_t steps = 0;
    wire::buffer encoder;                   // checkpoint::put_state of the encoder
    std::optional<sim::clock_state> clock;  // its clock when it took the job
    observe::rank_totals ledger;            // its ledger totals before the job
    double elapsed = 0.0;                   // and its ledger's elapsed time
  };

  // A worker's ledger has one record per job: wait for it, read the model,
  // compute the gradient, compress, send.
  // Returns the stop message's word on gathering the ledgers.
  template <class T, class Objective>
  bool work(Comm& comm, Objective& objective, std::size_t d, std::size_t jobs,
            const algorithm::detail::checkpoint_identity& identity,
            std::optional<std::uint64_t> resume_at, algorithm::async_sgd_result<T>& result) {
    auto& ledger = result.ledger;
    const int me = comm.rank();
    random::stream rng(opt_.seed, static_cast<std::uint64_t>(me));
    compress::state_t<Compressor, T> encoder(compressor_, d, static_cast<std::uint64_t>(me));
    std::vector<T> x(d), g(d);
    wire::buffer incoming, out, last_word;
    std::uint64_t steps = 0;
    // With reporting_worker a worker holds at most one outstanding job; with
    // random_worker up to every job in flight.
    const std::size_t held =
        opt_.assignment == algorithm::job_assignment::reporting_worker ? 1 : jobs;
    std::vector<job_slot> ring(held);
    std::uint64_t taken = 0;  // jobs taken so far
    ledger.start(me, comm.size(), observe::role::worker, comm::now(comm), opt_.record_rounds,
                 false);
    const auto lap = [&](observe::phase p) { ledger.lap(p, comm::now(comm)); };

    const auto take = [&](wire::buffer& job) -> job_slot& {
      auto& slot = ring[static_cast<std::size_t>(taken % held)];
      std::swap(slot.job, job);
      slot.rng = rng.save();
      slot.steps = steps;
      slot.encoder.clear();
      checkpoint::put_state(slot.encoder, encoder);
      slot.clock = sim::saved_clock(comm);
      slot.ledger = ledger.totals();
      slot.elapsed = ledger.elapsed_at(comm::now(comm));
      ++taken;
      return slot;
    };
    const auto process = [&](const wire::buffer& job) {
      wire::view in(job, "async_sgd server");
      const auto next = algorithm::detail::read_async_job<T>(in, d);
      const auto version = next.version;
      std::memcpy(x.data(), next.model.data(), next.model.size());
      ledger.add_received(job.size(), d);
      lap(observe::phase::compress);
      const double loss = objective.gradient(std::span<const T>(x), std::span<T>(g), rng);
      ++steps;
      if (const auto bad = tensor::first_non_finite(std::span<const T>(g)); bad != tensor::npos) {
        if (opt_.on_non_finite == non_finite_policy::throw_error) {
          throw non_finite_error("async_sgd: gradient of worker " + std::to_string(me - 1) +
                                     " at its step " + std::to_string(steps),
                                 bad);
        }
        // The server sees zeros for the bad entries (or, skip_update, for all).
        for (auto& v : g) {
          if (opt_.on_non_finite == non_finite_policy::skip_update || !tensor::is_finite(v)) {
            v = T{0};
          }
        }
      }
      lap(observe::phase::compute);
      out.clear();
      out.put<std::uint64_t>(version);
      compressor_.encode(std::span<const T>(g), encoder, out);
      ledger.add_sent(out.size(), d);
      lap(observe::phase::compress);
      try {
        comm.send(server, tag_gradient, out.bytes());
      } catch (const peer_lost& gone) {
        // A server that ended the run said why before it left: name the
        // worker it lost, not the server.
        try {
          (void)comm.recv(server, tag_job, last_word);
        } catch (const std::exception&) {
          throw gone;
        }
        wire::view last(last_word, "async_sgd server");
        algorithm::detail::async_job said;
        try {
          said = algorithm::detail::read_async_job<T>(last, d);
        } catch (const protocol_error&) {
          throw gone;
        }
        if (said.abort) throw_abort(said);
        throw gone;
      }
      ledger.end_round(steps, steps, comm::now(comm), loss, observe::phase::communicate);
    };

    // Saves this worker as it was before its `pending` newest jobs (the
    // ones the server has not applied), with those jobs.
    namespace tags = checkpoint::tags;
    const auto save = [&](wire::view& in) {
      const auto request = algorithm::detail::read_async_checkpoint(in);
      const auto round = request.round, pending = request.outstanding;
      checkpoint::location where;
      where.keep_last = static_cast<std::size_t>(request.keep_last);
      where.dir = request.dir;
      where.name = request.name;
      if (pending > std::min<std::uint64_t>(taken, held)) {
        in.fail("outstanding", "the server counts " + std::to_string(pending) +
                                   " jobs outstanding, this worker holds " +
                                   std::to_string(std::min<std::uint64_t>(taken, held)));
      }
      const job_slot* first =
          pending ? &ring[static_cast<std::size_t>((taken - pending) % held)] : nullptr;
      wire::buffer now_encoder;
      if (!first) checkpoint::put_state(now_encoder, encoder);
      algorithm::detail::save_checkpoint(identity, round, where, [&](auto& wr) {
        wr.section(tags::counters,
                   [&](wire::buffer& b) { b.put<std::uint64_t>(first ? first->steps : steps); });
        wr.section(tags::rng, [&](wire::buffer& b) {
          random::stream s;
          if (first) {
            s.restore(first->rng);
          } else {
            s = rng;
          }
          checkpoint::put_stream(b, s);
        });
        wr.section(tags::compressors, [&](wire::buffer& b) {
          const auto& e = first ? first->encoder : now_encoder;
          b.append(e.data(), e.size());
        });
        wr.section(tags::jobs, [&](wire::buffer& b) {
          b.put<std::uint32_t>(static_cast<std::uint32_t>(pending));
          for (std::uint64_t k = taken - pending; k < taken; ++k) {
            const auto& slot = ring[static_cast<std::size_t>(k % held)];
            checkpoint::put_clock(b, slot.clock);
            b.put<std::uint64_t>(slot.job.size());
            b.append(slot.job.data(), slot.job.size());
          }
        });
        wr.section(tags::ledger, [&](wire::buffer& b) {
          if (first) {
            observe::ledger::save_totals(b, first->ledger, first->elapsed);
          } else {
            ledger.save(b, comm::now(comm));
          }
        });
        wr.section(tags::clock, [&](wire::buffer& b) {
          checkpoint::put_clock(b, first ? first->clock : sim::saved_clock(comm));
        });
      });
    };

    if (resume_at) {
      std::optional<sim::clock_state> resumed_clock;
      std::vector<std::pair<std::optional<sim::clock_state>, wire::buffer>> held_jobs;
      observe::rank_totals saved_ledger;
      algorithm::detail::load_checkpoint(comm, identity, opt_.resume, *resume_at, [&](auto& c) {
        checkpoint::read_section(c, tags::counters,
                                 [&](wire::view& in) { steps = in.get<std::uint64_t>("steps"); });
        checkpoint::read_section(c, tags::rng,
                                 [&](wire::view& in) { checkpoint::get_stream(in, rng, "rng"); });
        checkpoint::read_section(c, tags::compressors, [&](wire::view& in) {
          checkpoint::get_state(in, encoder, "encoder state");
        });
        checkpoint::read_section(c, tags::jobs, [&](wire::view& in) {
          const auto count = in.get<std::uint32_t>("jobs");
          if (count > held) {
            in.fail("jobs", std::to_string(count) + " held jobs; this run holds at most " +
                                std::to_string(held));
          }
          for (std::uint32_t k = 0; k < count; ++k) {
            auto clock = checkpoint::get_clock(in);
            const auto size = in.get<std::uint64_t>("job size");
            if (size != 1 + 8 + d * sizeof(T)) in.fail("job size", "not a job for this d");
            const auto bytes = in.take(static_cast<std::size_t>(size), "job");
            wire::view message(bytes, in.source());
            if (!algorithm::detail::read_async_job<T>(message, d).is_job()) {
              in.fail("job", "not a job message");
            }
            wire::buffer job;
            job.assign(bytes);
            held_jobs.emplace_back(clock, std::move(job));
          }
        });
        checkpoint::read_section(c, tags::ledger,
                                 [&](wire::view& in) { saved_ledger = ledger.read_saved(in); });
        checkpoint::read_section(
            c, tags::clock, [&](wire::view& in) { resumed_clock = checkpoint::get_clock(in); });
      });
      if (resumed_clock) sim::restore_clock(comm, *resumed_clock);
      ledger.restore(saved_ledger, comm::now(comm));
      // Redo the jobs the server had not applied, at the times they started.
      for (auto& [clock, job] : held_jobs) {
        if (clock) sim::restore_clock(comm, *clock);
        process(take(job).job);
      }
    }

    for (;;) {
      (void)comm.recv(server, tag_job, incoming);
      lap(observe::phase::wait);
      wire::view in(incoming, "async_sgd server");
      if (algorithm::detail::is_async_checkpoint(in)) {
        save(in);
        lap(observe::phase::other);
        continue;
      }
      const auto said = algorithm::detail::read_async_job<T>(in, d);
      if (said.abort) throw_abort(said);
      if (said.stop) {
        result.model.resize(d);
        result.tail_average.resize(d);
        if (d != 0) {
          std::memcpy(result.model.data(), said.model.data(), said.model.size());
          std::memcpy(result.tail_average.data(), said.tail.data(), said.tail.size());
        }
        ledger.add_received(incoming.size(), 2 * d);
        return said.gather;
      }
      process(take(incoming).job);
    }
  }

  // What a checkpoint must have been written by: the policies and the
  // options that shape the saved state.
  template <class T>
  std::string description(std::size_t jobs) const {
    return "async_sgd<" + std::string(sizeof(T) == 4 ? "fp32" : "fp64") +
           "; compressor=" + checkpoint::compressor_description<Compressor>() +
           "; stepsize=" + checkpoint::policy_name<Stepsize>() + "; jobs=" + std::to_string(jobs) +
           "; assignment=" +
           (opt_.assignment == algorithm::job_assignment::reporting_worker ? "reporting"
                                                                           : "random") +
           ">";
  }

  Compressor compressor_;
  Stepsize step_;
  options opt_;
};

}  // namespace loco
