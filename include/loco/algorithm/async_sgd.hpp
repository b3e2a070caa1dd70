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
#include <loco/algorithm/detail/frame.hpp>
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
    static_assert(!compress::traits<Compressor>::linear,
                  "loco: async_sgd sends messages; a linear compressor (powersgd) runs in "
                  "local_sgd (docs/compressors.md#powersgd)");
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
    const bool gather =
        comm.rank() == server
            ? serving<T, std::remove_reference_t<Callbacks>...>(*this, comm, x0, jobs, identity,
                                                                result, callbacks...)
                  .run(resume_at)
            : working<T, Objective>(*this, comm, objective, d, jobs, identity, result)
                  .run(resume_at);
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

  // The server of one run: receive a gradient, apply it, reply with a job
  // (ALGORITHMS.md section 4). Members are what the run carries; the
  // checkpoint sections are written and read next to them.
  template <class T, class... Callbacks>
  class serving {
   public:
    serving(async_sgd& driver, Comm& comm, std::span<const T> x0, std::size_t jobs,
            const algorithm::detail::checkpoint_identity& identity,
            algorithm::async_sgd_result<T>& result, Callbacks&... callbacks)
        : opt_(driver.opt_),
          driver_(driver),
          comm_(comm),
          identity_(identity),
          n_(comm.size()),
          workers_(static_cast<std::size_t>(n_ - 1)),
          d_(x0.size()),
          jobs_(jobs),
          to_reporter_(opt_.assignment == algorithm::job_assignment::reporting_worker),
          stats_(result.stats),
          ledger_(result.ledger),
          result_(result),
          callbacks_(callbacks...),
          sources_(algorithm::detail::rank_sources("async_sgd gradient", n_)),
          x_(x0.begin(), x0.end()),
          g_(d_),
          tail_sum_(d_, 0.0),
          tail_start_(opt_.updates - static_cast<std::uint64_t>(std::ceil(
                                         opt_.tail_fraction * static_cast<double>(opt_.updates)))),
          outstanding_(workers_, 0),
          alive_(workers_, 1),
          last_report_(workers_, 0.0),
          time_estimate_(workers_, 0.0),
          assign_rng_(opt_.seed, 0xa551ULL) {
      stats_.updates_per_worker.assign(workers_, 0);
      stats_.delay_histogram.assign(4 * workers_ + 2, 0);
      decoders_.reserve(workers_);
      for (std::size_t w = 0; w < workers_; ++w) {
        decoders_.emplace_back(driver_.compressor_, d_, w + 1);
      }
      start_time_ = now();
      std::fill(last_report_.begin(), last_report_.end(), start_time_);
      tail_time_ = start_time_ + (1.0 - opt_.tail_fraction) * opt_.time_budget;
      // The server sees every worker's gradient message.
      ledger_.start(server, n_, observe::role::server, start_time_, opt_.record_rounds, true);
      ledger_.reserve_rounds(static_cast<std::size_t>(opt_.updates));
    }

    // Returns whether the ranks gather their ledgers (no worker was lost).
    bool run(std::optional<std::uint64_t> resume_at) {
      if (resume_at) {
        resume(*resume_at);
        // The job the saving run sent right after the save.
        if (version_ < opt_.updates) dispatch(pick_worker(last_reporter_));
      } else {
        // Initial jobs: one per worker up to the concurrency, or random clients.
        for (std::size_t k = 0; k < jobs_; ++k) {
          dispatch(to_reporter_ ? k : static_cast<std::size_t>(assign_rng_.below(workers_)));
        }
      }
      while (in_flight_ > 0) {
        const int from = receive();
        if (from < 0) continue;  // a worker was lost, or its late gradient dropped
        const auto w = static_cast<std::size_t>(from - 1);
        wire::view in(in_msg_, sources_[static_cast<std::size_t>(from)]);
        const auto read_version = algorithm::detail::read_gradient_version(in, version_);
        ledger_.add_received(in_msg_.size(), d_);
        ledger_.add_all_workers_sent(in_msg_.size());
        if (stopped_early_ || version_ >= opt_.updates) {
          // Draining: the gradient arrived after the last update and is
          // discarded; the job is answered with a stop below.
          ++stats_.discarded;
          stats_.discarded_delay_sum += version_ - read_version;
          continue;
        }
        driver_.compressor_.decode(in, decoders_[w], std::span<T>(g_));
        lap(observe::phase::compress);
        const double t = now();
        const auto [tau, eta] = apply(w, read_version, t);
        const auto& record =
            ledger_.end_round(version_, version_, now(), std::numeric_limits<double>::quiet_NaN());
        if constexpr (sizeof...(Callbacks) > 0) {
          stopped_early_ = call_hooks(w, tau, eta, record.time);
          lap(observe::phase::other);
        }
        if (opt_.time_budget > 0.0 && t - start_time_ >= opt_.time_budget) stopped_early_ = true;
        if (version_ < opt_.updates && !stopped_early_) {
          dispatch(pick_worker(w));
          for (; reissue_ > 0; --reissue_) dispatch(pick_worker(w));
        }
      }
      return stop_workers();
    }

   private:
    double now() { return comm::now(comm_); }
    void lap(observe::phase p) { ledger_.lap(p, now()); }

    // The next gradient's sender, or -1 when there is none to apply: a lost
    // worker (handled here) or a gradient of a worker already written off.
    int receive() {
      int from = -1;
      try {
        from = comm_.recv(comm::any_source, tag_gradient, in_msg_);
        lap(observe::phase::wait);
      } catch (const peer_lost& lost) {
        lose(lost);
        if (version_ < opt_.updates && !stopped_early_) {
          for (; reissue_ > 0; --reissue_) dispatch(pick_worker(0));
        }
        return -1;
      }
      // A gradient that arrived before its worker was found lost: its job
      // was already written off (and, with random assignment, handed on).
      if (from > server && from < n_ && !alive_[static_cast<std::size_t>(from - 1)]) return -1;
      // A gradient answers a job this server sent; anything else (a faulty
      // or hostile worker) would corrupt the count of jobs in flight.
      if (from <= server || from >= n_ || outstanding_[static_cast<std::size_t>(from - 1)] == 0) {
        throw protocol_error("async_sgd worker rank " + std::to_string(from), "gradient",
                             "a gradient without an outstanding job");
      }
      --outstanding_[static_cast<std::size_t>(from - 1)];
      --in_flight_;
      return from;
    }

    // x -= eta g for worker w's gradient computed at read_version; returns
    // its delay and the step size.
    std::pair<std::uint64_t, double> apply(std::size_t w, std::uint64_t read_version, double t) {
      const double observed = t - last_report_[w];
      last_report_[w] = t;
      time_estimate_[w] =
          time_estimate_[w] == 0.0
              ? observed
              : (1.0 - opt_.time_smoothing) * time_estimate_[w] + opt_.time_smoothing * observed;
      const std::uint64_t tau = version_ - read_version;
      stepsize::context ctx;
      ctx.t = version_ + 1;
      ctx.worker = static_cast<int>(w);
      ctx.delay = tau;
      ctx.concurrency = jobs_;
      ctx.worker_time = time_estimate_[w];
      ctx.reference_time = *std::max_element(time_estimate_.begin(), time_estimate_.end());
      double eta = driver_.step_.eta(ctx);
      std::uint64_t screened = 0;
      if (!algorithm::detail::screen_gradient(std::span<T>(g_), opt_.on_non_finite, screened,
                                              "async_sgd", static_cast<int>(w), version_ + 1,
                                              "update")) {
        eta = 0.0;
      }
      if (eta == 0.0) ++stats_.dropped;
      const auto step = static_cast<T>(eta);
      for (std::size_t j = 0; j < d_; ++j) x_[j] -= step * g_[j];
      ++version_;
      last_reporter_ = w;
      ++stats_.updates;
      ++stats_.updates_per_worker[w];
      delay_sum_ += static_cast<double>(tau);
      stats_.max_delay = std::max(stats_.max_delay, tau);
      ++stats_.delay_histogram[std::min<std::size_t>(tau, stats_.delay_histogram.size() - 1)];
      if (version_ > tail_start_ || (opt_.time_budget > 0.0 && t >= tail_time_)) {
        for (std::size_t j = 0; j < d_; ++j) tail_sum_[j] += static_cast<double>(x_[j]);
        ++tail_count_;
      }
      ledger_.set_delay(tau);
      return {tau, eta};
    }

    // The server's hooks decide alone: it is the only rank that runs them.
    bool call_hooks(std::size_t w, std::uint64_t tau, double eta, double time) {
      algorithm::update_info<T> info;
      info.round = version_;
      info.round_count = opt_.updates;
      info.rank = server;
      info.size = n_;
      info.model = x_;
      info.time = time;
      info.ledger = &ledger_;
      info.average_model = [this]() -> std::span<const T> { return x_; };
      info.update = version_;
      info.update_count = opt_.updates;
      info.worker = static_cast<int>(w);
      info.delay = tau;
      info.step = eta;
      info.stats = &stats_;
      info.save = [this](const checkpoint::location& l) { return save(l); };  // no allocation
      bool stop = false;
      std::apply(
          [&](auto&... cb) { ((stop = algorithm::detail::call_round_end(cb, info) || stop), ...); },
          callbacks_);
      return stop;
    }

    // A worker is gone: fatal mode tells the others who (best effort) and
    // throws; tolerate mode drops its jobs and goes on while any remain
    // (with random assignment the jobs go to other workers instead).
    void lose(const peer_lost& lost) {
      const bool ours = lost.rank() > 0 && lost.rank() < n_;
      if (opt_.on_worker_failure == algorithm::worker_failure::fatal || !ours) {
        if (ours) alive_[static_cast<std::size_t>(lost.rank() - 1)] = 0;
        abort_workers(comm_, alive_, lost);
        throw lost;
      }
      const auto w = static_cast<std::size_t>(lost.rank() - 1);
      if (alive_[w]) {
        alive_[w] = 0;
        stats_.lost_workers.push_back(lost.rank());
        stats_.lost_at_update.push_back(version_);
        in_flight_ -= outstanding_[w];
        if (!to_reporter_) reissue_ += outstanding_[w];
        outstanding_[w] = 0;
      }
      if (std::none_of(alive_.begin(), alive_.end(), [](std::uint8_t a) { return a != 0; })) {
        throw lost;
      }
    }

    std::size_t pick_worker(std::size_t reporter) {
      if (to_reporter_) return reporter;
      for (int attempt = 0; attempt < 1000; ++attempt) {
        const auto w = static_cast<std::size_t>(assign_rng_.below(workers_));
        if (alive_[w]) return w;
      }
      for (std::size_t w = 0; w < workers_; ++w) {
        if (alive_[w]) return w;
      }
      return reporter;
    }

    // Sends the current x to worker w (or, with random assignment, to another
    // live worker if w turns out to be gone).
    void dispatch(std::size_t w) {
      for (;;) {
        if (!alive_[w]) {
          if (to_reporter_) return;  // that job ends with its worker
          w = pick_worker(w);
          continue;
        }
        try {
          driver_.template send_job<T>(comm_, static_cast<int>(w + 1), version_, x_, msg_, ledger_);
          ++outstanding_[w];
          ++in_flight_;
          return;
        } catch (const peer_lost& lost) {
          lose(lost);
        }
      }
    }

    // Every job is answered; no model is queued anywhere: stop the workers,
    // handing each the final model. Returns whether the ranks gather ledgers.
    bool stop_workers() {
      stats_.mean_delay = stats_.updates ? delay_sum_ / static_cast<double>(stats_.updates) : 0.0;
      result_.model = x_;
      result_.tail_average.resize(d_);
      for (std::size_t j = 0; j < d_; ++j) {
        result_.tail_average[j] =
            tail_count_ ? static_cast<T>(tail_sum_[j] / static_cast<double>(tail_count_)) : x_[j];
      }
      const bool gather = stats_.lost_workers.empty();
      algorithm::detail::write_async_stop<T>(msg_, gather, result_.model, result_.tail_average);
      for (std::size_t w = 0; w < workers_; ++w) {
        if (!alive_[w]) continue;
        try {
          comm_.send(static_cast<int>(w + 1), tag_job, msg_.bytes());
          ledger_.add_sent(msg_.size(), 2 * d_);
        } catch (const peer_lost& lost) {
          // Lost after its last report: tolerated, or fatal. A worker already
          // told to gather then fails in the gather with peer_lost.
          lose(lost);
        }
      }
      lap(observe::phase::communicate);
      return gather;
    }

    // A checkpoint of the whole run after this update: the server saves its
    // state and asks every worker to save its own as of the jobs still
    // outstanding. Returns the server's file.
    std::filesystem::path save(const checkpoint::location& where) {
      for (std::size_t w = 0; w < workers_; ++w) {
        if (!alive_[w]) continue;
        algorithm::detail::write_async_checkpoint(
            msg_, {version_, outstanding_[w], where.keep_last, where.dir.string(), where.name});
        comm_.send(static_cast<int>(w + 1), tag_job, msg_.bytes());
      }
      namespace tags = checkpoint::tags;
      return algorithm::detail::save_checkpoint(identity_, version_, where, [&](auto& wr) {
        wr.section(tags::server, [&](wire::buffer& b) {
          b.put<std::uint64_t>(version_);
          b.put<std::uint64_t>(in_flight_);
          b.put<std::uint64_t>(last_reporter_);
          b.put<double>(delay_sum_);
          b.put<std::uint64_t>(tail_start_);
          b.put<std::uint64_t>(tail_count_);
          b.put<double>(start_time_);
          b.put<double>(now());
        });
        wr.section(tags::model, [&](wire::buffer& b) { wire::put_values<T>(b, x_); });
        wr.section(tags::tail, [&](wire::buffer& b) { wire::put_values<double>(b, tail_sum_); });
        wr.section(tags::workers, [&](wire::buffer& b) {
          wire::put_values<std::uint64_t>(b, outstanding_);
          wire::put_values<std::uint8_t>(b, alive_);
          wire::put_values<double>(b, last_report_);
          wire::put_values<double>(b, time_estimate_);
        });
        wr.section(tags::rng, [&](wire::buffer& b) { checkpoint::put_stream(b, assign_rng_); });
        wr.section(tags::compressors, [&](wire::buffer& b) {
          for (const auto& st : decoders_) checkpoint::put_state(b, st);
        });
        wr.section(tags::stats, [&](wire::buffer& b) { put_stats(b); });
        wr.section(tags::ledger, [&](wire::buffer& b) { ledger_.save(b, now()); });
        wr.section(tags::clock,
                   [&](wire::buffer& b) { checkpoint::put_clock(b, sim::saved_clock(comm_)); });
      });
    }

    // Collective: the server's side of resuming at update `at`.
    void resume(std::uint64_t at) {
      namespace tags = checkpoint::tags;
      std::optional<sim::clock_state> clock;
      std::uint64_t saved_tail_start = 0;
      double saved_now = 0.0;
      observe::rank_totals totals;
      algorithm::detail::load_checkpoint(comm_, identity_, opt_.resume, at, [&](auto& c) {
        checkpoint::read_section(c, tags::server, [&](wire::view& in) {
          version_ = in.get<std::uint64_t>("version");
          if (version_ != at) in.fail("version", "differs from the file's round");
          in_flight_ = in.get<std::uint64_t>("in flight");
          last_reporter_ = static_cast<std::size_t>(in.get<std::uint64_t>("last reporter"));
          if (last_reporter_ >= workers_) in.fail("last reporter", "no such worker");
          delay_sum_ = in.get<double>("delay sum");
          saved_tail_start = in.get<std::uint64_t>("tail start");
          tail_count_ = in.get<std::uint64_t>("tail count");
          start_time_ = in.get<double>("start time");
          saved_now = in.get<double>("saved at");
        });
        checkpoint::read_section(c, tags::model,
                                 [&](wire::view& in) { wire::get_values<T>(in, x_, "model"); });
        checkpoint::read_section(c, tags::tail, [&](wire::view& in) {
          wire::get_values<double>(in, tail_sum_, "tail sum");
        });
        checkpoint::read_section(c, tags::workers, [&](wire::view& in) { get_workers(in); });
        checkpoint::read_section(c, tags::rng, [&](wire::view& in) {
          checkpoint::get_stream(in, assign_rng_, "assignment rng");
        });
        checkpoint::read_section(c, tags::compressors, [&](wire::view& in) {
          for (auto& st : decoders_) checkpoint::get_state(in, st, "decoder state");
        });
        checkpoint::read_section(c, tags::stats, [&](wire::view& in) { get_stats(in); });
        checkpoint::read_section(c, tags::ledger,
                                 [&](wire::view& in) { totals = ledger_.read_saved(in); });
        checkpoint::read_section(c, tags::clock,
                                 [&](wire::view& in) { clock = checkpoint::get_clock(in); });
      });
      if (clock) {
        sim::restore_clock(comm_, *clock);
      } else {
        // A real clock restarted: shift the saved times to keep their intervals.
        const double shift = now() - saved_now;
        start_time_ += shift;
        for (auto& t : last_report_) t += shift;
      }
      ledger_.restore(totals, now());
      tail_time_ = start_time_ + (1.0 - opt_.tail_fraction) * opt_.time_budget;
      if (saved_tail_start != tail_start_) {
        // The tail window moved with `updates`: it starts again here.
        std::fill(tail_sum_.begin(), tail_sum_.end(), 0.0);
        tail_count_ = 0;
      }
    }

    void get_workers(wire::view& in) {
      wire::get_values<std::uint64_t>(in, outstanding_, "outstanding jobs");
      wire::get_values<std::uint8_t>(in, alive_, "alive");
      wire::get_values<double>(in, last_report_, "last report");
      wire::get_values<double>(in, time_estimate_, "time estimate");
      std::uint64_t total = 0;
      for (auto o : outstanding_) total += o;
      if (total != in_flight_ || in_flight_ > jobs_) {
        in.fail("outstanding jobs", "do not add up to the jobs in flight");
      }
    }

    void put_stats(wire::buffer& b) const {
      b.put<std::uint64_t>(stats_.updates);
      b.put<std::uint64_t>(stats_.dropped);
      b.put<std::uint64_t>(stats_.discarded);
      b.put<std::uint64_t>(stats_.discarded_delay_sum);
      b.put<std::uint64_t>(stats_.max_delay);
      wire::put_values<std::uint64_t>(b, stats_.delay_histogram);
      wire::put_values<std::uint64_t>(b, stats_.updates_per_worker);
      b.put<std::uint32_t>(static_cast<std::uint32_t>(stats_.lost_workers.size()));
      for (int r : stats_.lost_workers) b.put<std::int32_t>(r);
      for (auto u : stats_.lost_at_update) b.put<std::uint64_t>(u);
    }
    void get_stats(wire::view& in) {
      stats_.updates = in.get<std::uint64_t>("updates");
      stats_.dropped = in.get<std::uint64_t>("dropped");
      stats_.discarded = in.get<std::uint64_t>("discarded");
      stats_.discarded_delay_sum = in.get<std::uint64_t>("discarded delay sum");
      stats_.max_delay = in.get<std::uint64_t>("max delay");
      wire::get_values<std::uint64_t>(in, stats_.delay_histogram, "delay histogram");
      wire::get_values<std::uint64_t>(in, stats_.updates_per_worker, "updates per worker");
      const auto lost = in.get<std::uint32_t>("lost workers");
      if (lost > workers_) in.fail("lost workers", "more than there are workers");
      stats_.lost_workers.clear();
      stats_.lost_at_update.clear();
      for (std::uint32_t k = 0; k < lost; ++k) {
        stats_.lost_workers.push_back(in.get<std::int32_t>("lost worker"));
      }
      for (std::uint32_t k = 0; k < lost; ++k) {
        stats_.lost_at_update.push_back(in.get<std::uint64_t>("lost at update"));
      }
    }

    const options& opt_;
    async_sgd& driver_;
    Comm& comm_;
    const algorithm::detail::checkpoint_identity& identity_;
    const int n_;
    const std::size_t workers_, d_, jobs_;
    const bool to_reporter_;
    algorithm::async_sgd_stats& stats_;
    observe::ledger& ledger_;
    algorithm::async_sgd_result<T>& result_;
    std::tuple<Callbacks&...> callbacks_;
    std::vector<std::string> sources_;
    wire::buffer msg_, in_msg_;
    // What the run carries from update to update (its checkpoint: save, resume).
    std::vector<T> x_, g_;
    std::vector<double> tail_sum_;
    std::uint64_t tail_start_;  // the update after which x enters the tail average
    std::uint64_t tail_count_ = 0;
    std::vector<compress::state_t<Compressor, T>> decoders_;
    std::vector<std::uint64_t> outstanding_;  // jobs sent, not yet answered, per worker
    std::vector<std::uint8_t> alive_;         // a byte each: checkpoints save it
    std::vector<double> last_report_, time_estimate_;
    random::stream assign_rng_;
    double start_time_ = 0.0, tail_time_ = 0.0;
    std::uint64_t version_ = 0;
    std::uint64_t in_flight_ = 0;
    std::size_t last_reporter_ = 0;  // the worker whose gradient made the latest update
    double delay_sum_ = 0.0;
    std::size_t reissue_ = 0;  // jobs of lost workers to hand to others (random assignment)
    bool stopped_early_ = false;
  };

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

  // A worker of one run: read the model of a job, compute the gradient,
  // compress, send (ALGORITHMS.md section 4). Its ledger has one record per
  // job. The jobs it holds are kept with its state before each, so that a
  // checkpoint records it as before every job the server has not applied.
  template <class T, class Objective>
  class working {
   public:
    working(async_sgd& driver, Comm& comm, Objective& objective, std::size_t d, std::size_t jobs,
            const algorithm::detail::checkpoint_identity& identity,
            algorithm::async_sgd_result<T>& result)
        : opt_(driver.opt_),
          driver_(driver),
          comm_(comm),
          objective_(objective),
          identity_(identity),
          result_(result),
          ledger_(result.ledger),
          me_(comm.rank()),
          d_(d),
          // With reporting_worker a worker holds at most one outstanding job;
          // with random_worker up to every job in flight.
          held_(opt_.assignment == algorithm::job_assignment::reporting_worker ? 1 : jobs),
          rng_(opt_.seed, static_cast<std::uint64_t>(me_)),
          encoder_(driver.compressor_, d, static_cast<std::uint64_t>(me_)),
          x_(d),
          g_(d) {
      ledger_.start(me_, comm.size(), observe::role::worker, now(), opt_.record_rounds, false);
    }

    // Returns the stop message's word on gathering the ledgers.
    bool run(std::optional<std::uint64_t> resume_at) {
      if (resume_at) resume(*resume_at);
      for (;;) {
        (void)comm_.recv(server, tag_job, incoming_);
        lap(observe::phase::wait);
        wire::view in(incoming_, "async_sgd server");
        if (algorithm::detail::is_async_checkpoint(in)) {
          save(in);
          lap(observe::phase::other);
          continue;
        }
        const auto said = algorithm::detail::read_async_job<T>(in, d_);
        if (said.abort) throw_abort(said);
        if (said.stop) return stop(said);
        process(take(incoming_).job);
      }
    }

   private:
    double now() { return comm::now(comm_); }
    void lap(observe::phase p) { ledger_.lap(p, now()); }

    job_slot& take(wire::buffer& job) {
      // The ring grows to held_ slots as jobs come: a worker of a world with
      // many jobs in flight but few jobs each holds only what it took.
      const auto i = static_cast<std::size_t>(taken_ % held_);
      if (i == ring_.size()) ring_.emplace_back();
      auto& slot = ring_[i];
      std::swap(slot.job, job);
      slot.rng = rng_.save();
      slot.steps = steps_;
      slot.encoder.clear();
      checkpoint::put_state(slot.encoder, encoder_);
      slot.clock = sim::saved_clock(comm_);
      slot.ledger = ledger_.totals();
      slot.elapsed = ledger_.elapsed_at(now());
      ++taken_;
      return slot;
    }

    void process(const wire::buffer& job) {
      wire::view in(job, "async_sgd server");
      const auto next = algorithm::detail::read_async_job<T>(in, d_);
      std::memcpy(x_.data(), next.model.data(), next.model.size());
      ledger_.add_received(job.size(), d_);
      lap(observe::phase::compress);
      const double loss = objective_.gradient(std::span<const T>(x_), std::span<T>(g_), rng_);
      ++steps_;
      std::uint64_t screened = 0;
      // The server sees zeros for the bad entries (or, skip_update, for all).
      if (!algorithm::detail::screen_gradient(std::span<T>(g_), opt_.on_non_finite, screened,
                                              "async_sgd", me_ - 1, steps_, "its step")) {
        std::fill(g_.begin(), g_.end(), T{0});
      }
      lap(observe::phase::compute);
      out_.clear();
      out_.put<std::uint64_t>(next.version);
      driver_.compressor_.encode(std::span<const T>(g_), encoder_, out_);
      ledger_.add_sent(out_.size(), d_);
      lap(observe::phase::compress);
      try {
        comm_.send(server, tag_gradient, out_.bytes());
      } catch (const peer_lost& gone) {
        explain_lost_server(gone);
      }
      ledger_.end_round(steps_, steps_, now(), loss, observe::phase::communicate);
    }

    // A server that ended the run said why before it left: name the worker
    // it lost, not the server.
    [[noreturn]] void explain_lost_server(const peer_lost& gone) {
      try {
        (void)comm_.recv(server, tag_job, last_word_);
      } catch (const std::exception&) {
        throw gone;
      }
      wire::view last(last_word_, "async_sgd server");
      algorithm::detail::async_job said;
      try {
        said = algorithm::detail::read_async_job<T>(last, d_);
      } catch (const protocol_error&) {
        throw gone;
      }
      if (said.abort) throw_abort(said);
      throw gone;
    }

    bool stop(const algorithm::detail::async_job& said) {
      result_.model.resize(d_);
      result_.tail_average.resize(d_);
      if (d_ != 0) {
        std::memcpy(result_.model.data(), said.model.data(), said.model.size());
        std::memcpy(result_.tail_average.data(), said.tail.data(), said.tail.size());
      }
      ledger_.add_received(incoming_.size(), 2 * d_);
      return said.gather;
    }

    // Saves this worker as it was before its `pending` newest jobs (the
    // ones the server has not applied), with those jobs.
    void save(wire::view& in) {
      const auto request = algorithm::detail::read_async_checkpoint(in);
      const auto pending = request.outstanding;
      checkpoint::location where;
      where.keep_last = static_cast<std::size_t>(request.keep_last);
      where.dir = request.dir;
      where.name = request.name;
      const auto holding = std::min<std::uint64_t>(taken_, held_);
      if (pending > holding) {
        in.fail("outstanding", "the server counts " + std::to_string(pending) +
                                   " jobs outstanding, this worker holds " +
                                   std::to_string(holding));
      }
      const job_slot* first =
          pending ? &ring_[static_cast<std::size_t>((taken_ - pending) % held_)] : nullptr;
      wire::buffer now_encoder;
      if (!first) checkpoint::put_state(now_encoder, encoder_);
      namespace tags = checkpoint::tags;
      algorithm::detail::save_checkpoint(identity_, request.round, where, [&](auto& wr) {
        wr.section(tags::counters,
                   [&](wire::buffer& b) { b.put<std::uint64_t>(first ? first->steps : steps_); });
        wr.section(tags::rng, [&](wire::buffer& b) {
          random::stream s;
          if (first) {
            s.restore(first->rng);
          } else {
            s = rng_;
          }
          checkpoint::put_stream(b, s);
        });
        wr.section(tags::compressors, [&](wire::buffer& b) {
          const auto& e = first ? first->encoder : now_encoder;
          b.append(e.data(), e.size());
        });
        wr.section(tags::jobs, [&](wire::buffer& b) {
          b.put<std::uint32_t>(static_cast<std::uint32_t>(pending));
          for (std::uint64_t k = taken_ - pending; k < taken_; ++k) {
            const auto& slot = ring_[static_cast<std::size_t>(k % held_)];
            checkpoint::put_clock(b, slot.clock);
            b.put<std::uint64_t>(slot.job.size());
            b.append(slot.job.data(), slot.job.size());
          }
        });
        wr.section(tags::ledger, [&](wire::buffer& b) {
          if (first) {
            observe::ledger::save_totals(b, first->ledger, first->elapsed);
          } else {
            ledger_.save(b, now());
          }
        });
        wr.section(tags::clock, [&](wire::buffer& b) {
          checkpoint::put_clock(b, first ? first->clock : sim::saved_clock(comm_));
        });
      });
    }

    // Collective: loads this worker's state and redoes the jobs the server
    // had not applied, at the times they started.
    void resume(std::uint64_t at) {
      namespace tags = checkpoint::tags;
      std::optional<sim::clock_state> clock;
      std::vector<std::pair<std::optional<sim::clock_state>, wire::buffer>> held_jobs;
      observe::rank_totals totals;
      algorithm::detail::load_checkpoint(comm_, identity_, opt_.resume, at, [&](auto& c) {
        checkpoint::read_section(c, tags::counters,
                                 [&](wire::view& in) { steps_ = in.get<std::uint64_t>("steps"); });
        checkpoint::read_section(c, tags::rng,
                                 [&](wire::view& in) { checkpoint::get_stream(in, rng_, "rng"); });
        checkpoint::read_section(c, tags::compressors, [&](wire::view& in) {
          checkpoint::get_state(in, encoder_, "encoder state");
        });
        checkpoint::read_section(c, tags::jobs, [&](wire::view& in) { held_jobs = get_jobs(in); });
        checkpoint::read_section(c, tags::ledger,
                                 [&](wire::view& in) { totals = ledger_.read_saved(in); });
        checkpoint::read_section(c, tags::clock,
                                 [&](wire::view& in) { clock = checkpoint::get_clock(in); });
      });
      if (clock) sim::restore_clock(comm_, *clock);
      ledger_.restore(totals, now());
      for (auto& [job_clock, job] : held_jobs) {
        if (job_clock) sim::restore_clock(comm_, *job_clock);
        process(take(job).job);
      }
    }

    std::vector<std::pair<std::optional<sim::clock_state>, wire::buffer>> get_jobs(wire::view& in) {
      std::vector<std::pair<std::optional<sim::clock_state>, wire::buffer>> jobs;
      const auto count = in.get<std::uint32_t>("jobs");
      if (count > held_) {
        in.fail("jobs", std::to_string(count) + " held jobs; this run holds at most " +
                            std::to_string(held_));
      }
      for (std::uint32_t k = 0; k < count; ++k) {
        auto clock = checkpoint::get_clock(in);
        const auto size = in.get<std::uint64_t>("job size");
        if (size != 1 + 8 + d_ * sizeof(T)) in.fail("job size", "not a job for this d");
        const auto bytes = in.take(static_cast<std::size_t>(size), "job");
        wire::view message(bytes, in.source());
        if (!algorithm::detail::read_async_job<T>(message, d_).is_job()) {
          in.fail("job", "not a job message");
        }
        wire::buffer job;
        job.assign(bytes);
        jobs.emplace_back(clock, std::move(job));
      }
      return jobs;
    }

    const options& opt_;
    async_sgd& driver_;
    Comm& comm_;
    Objective& objective_;
    const algorithm::detail::checkpoint_identity& identity_;
    algorithm::async_sgd_result<T>& result_;
    observe::ledger& ledger_;
    const int me_;
    const std::size_t d_, held_;
    // What the run carries from job to job (its checkpoint: save, resume).
    random::stream rng_;
    compress::state_t<Compressor, T> encoder_;
    std::uint64_t steps_ = 0;
    std::vector<T> x_, g_;
    std::vector<job_slot> ring_;  // the jobs held, with the state before each (<= held_)
    std::uint64_t taken_ = 0;     // jobs taken so far
    wire::buffer incoming_, out_, last_word_;
  };

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
