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
#include <loco/algorithm/callbacks.hpp>
#include <loco/algorithm/detail/checks.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/types.hpp>
#include <loco/concepts.hpp>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
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
  std::uint64_t bytes_up = 0;                     // gradient messages received by the server
  std::uint64_t bytes_down = 0;                   // model messages sent by the server
  double elapsed = 0.0;  // on the communicator's clock (virtual on the simulator)
};

template <class T>
struct async_sgd_result {
  std::vector<T> model;         // the server's final x, on every rank
  std::vector<T> tail_average;  // mean of x over the last tail_fraction of updates
  async_sgd_stats stats;        // complete on the server (rank 0)
};

template <class T>
struct update_info {
  std::uint64_t update = 0;
  std::uint64_t update_count = 0;
  int worker = 0;
  std::uint64_t delay = 0;
  double step = 0.0;
  double time = 0.0;
  std::span<const T> model;
  const async_sgd_stats* stats = nullptr;
};

}  // namespace algorithm

template <class Compressor, class Comm, class Stepsize>
class async_sgd {
 public:
  using options = algorithm::async_sgd_options;
  static constexpr int server = 0;
  // server -> worker: [kind u8] then, for a job, [version u64][x]; for the
  // stop, [x][tail average]; for an abort, [rank i32][reason].
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
    // Every rank ends with the server's model, which travels in the stop
    // message (point to point, so a world that lost a worker can finish).
    if (comm.rank() == server) return serve<T>(comm, x0, jobs, callbacks...);
    return work<T>(comm, objective, d);
  }

 private:
  enum : std::uint8_t { kind_job = 1, kind_stop = 2, kind_abort = 3 };

  // Models travel as raw little-endian values.
  static_assert(std::endian::native == std::endian::little,
                "async_sgd sends models as raw little-endian values");
  template <class T>
  static void put_vector(wire::buffer& b, std::span<const T> v) {
    b.append(v.data(), v.size() * sizeof(T));
  }
  template <class T>
  static std::vector<T> get_vector(wire::view& in, std::size_t d, const char* field) {
    const auto bytes = in.take(d * sizeof(T), field);
    std::vector<T> v(d);
    std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
  }

  template <class T>
  void send_job(Comm& comm, int rank, std::uint64_t version, std::span<const T> x,
                wire::buffer& msg, algorithm::async_sgd_stats& stats) {
    msg.clear();
    msg.put<std::uint8_t>(kind_job);
    msg.put<std::uint64_t>(version);
    put_vector<T>(msg, x);
    comm.send(rank, tag_job, msg.bytes());
    stats.bytes_down += msg.size();
  }

  template <class T, class... Callbacks>
  algorithm::async_sgd_result<T> serve(Comm& comm, std::span<const T> x0, std::size_t jobs,
                                       Callbacks&... callbacks) {
    const int n = comm.size();
    const std::size_t workers = static_cast<std::size_t>(n - 1), d = x0.size();
    algorithm::async_sgd_result<T> result;
    auto& stats = result.stats;
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
    std::vector<std::size_t> outstanding(workers, 0);  // jobs sent, not yet answered
    std::vector<bool> alive(workers, true);
    std::vector<double> last_report(workers, 0.0), time_estimate(workers, 0.0);
    random::stream assign_rng(opt_.seed, 0xa551ULL);
    wire::buffer msg, in_msg;
    const double start_time = comm::now(comm);
    std::fill(last_report.begin(), last_report.end(), start_time);
    const bool budgeted = opt_.time_budget > 0.0;
    const double tail_time = start_time + (1.0 - opt_.tail_fraction) * opt_.time_budget;

    std::uint64_t version = 0;
    std::size_t in_flight = 0;
    const auto any_alive = [&] {
      return std::any_of(alive.begin(), alive.end(), [](bool a) { return a; });
    };
    const bool to_reporter = opt_.assignment == algorithm::job_assignment::reporting_worker;
    std::size_t reissue = 0;  // jobs of lost workers to hand to others (random assignment)
    // A worker is gone: fatal mode tells the others who (best effort) and
    // throws; tolerate mode drops its jobs and goes on while any remain
    // (with random assignment the jobs go to other workers instead).
    const auto lose = [&](const peer_lost& lost) {
      const bool ours = lost.rank() > 0 && lost.rank() < n;
      if (opt_.on_worker_failure == algorithm::worker_failure::fatal || !ours) {
        if (ours) alive[static_cast<std::size_t>(lost.rank() - 1)] = false;
        abort_workers(comm, alive, lost);
        throw lost;
      }
      const auto w = static_cast<std::size_t>(lost.rank() - 1);
      if (alive[w]) {
        alive[w] = false;
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
          send_job<T>(comm, static_cast<int>(w + 1), version, x, msg, stats);
          ++outstanding[w];
          ++in_flight;
          return;
        } catch (const peer_lost& lost) {
          lose(lost);
        }
      }
    };
    // Initial jobs: one per worker up to the concurrency, or random clients.
    for (std::size_t k = 0; k < jobs; ++k) {
      dispatch(to_reporter ? k : static_cast<std::size_t>(assign_rng.below(workers)));
    }

    double delay_sum = 0.0;
    bool stopped_early = false;
    while (in_flight > 0) {
      int from = -1;
      try {
        from = comm.recv(comm::any_source, tag_gradient, in_msg);
      } catch (const peer_lost& lost) {
        lose(lost);
        if (version < opt_.updates && !stopped_early) {
          for (; reissue > 0; --reissue) dispatch(pick_worker(0));
        }
        continue;
      }
      const auto w = static_cast<std::size_t>(from - 1);
      // A gradient that arrived before its worker was found lost: its job
      // was already written off (and, with random assignment, handed on).
      if (!alive[w]) continue;
      --outstanding[w];
      --in_flight;
      wire::view in(in_msg, "async_sgd worker");
      const auto read_version = in.get<std::uint64_t>("version");
      if (read_version > version)
        in.fail("version", "from the future: " + std::to_string(read_version));
      stats.bytes_up += in_msg.size();

      if (stopped_early || version >= opt_.updates) {
        // Draining: the gradient arrived after the last update and is
        // discarded; the job is answered with a stop below.
        ++stats.discarded;
        stats.discarded_delay_sum += version - read_version;
        continue;
      }

      compressor_.decode(in, decoders[w], std::span<T>(g));
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
      ++stats.updates;
      ++stats.updates_per_worker[w];
      delay_sum += static_cast<double>(tau);
      stats.max_delay = std::max(stats.max_delay, tau);
      ++stats.delay_histogram[std::min<std::size_t>(tau, stats.delay_histogram.size() - 1)];
      if (version > tail_start || (budgeted && now >= tail_time)) {
        for (std::size_t j = 0; j < d; ++j) tail_sum[j] += static_cast<double>(x[j]);
        ++tail_count;
      }

      if constexpr (sizeof...(Callbacks) > 0) {
        algorithm::update_info<T> info;
        info.update = version;
        info.update_count = opt_.updates;
        info.worker = static_cast<int>(w);
        info.delay = tau;
        info.step = eta;
        info.time = now - start_time;
        info.model = x;
        info.stats = &stats;
        bool stop = false;
        ((stop = algorithm::detail::call_round_end(callbacks, info) || stop), ...);
        stopped_early = stop;
      }
      if (budgeted && now - start_time >= opt_.time_budget) stopped_early = true;
      if (version < opt_.updates && !stopped_early) {
        dispatch(pick_worker(w));
        for (; reissue > 0; --reissue) dispatch(pick_worker(w));
      }
    }
    stats.mean_delay = stats.updates ? delay_sum / static_cast<double>(stats.updates) : 0.0;
    stats.elapsed = comm::now(comm) - start_time;
    result.model = x;
    result.tail_average.resize(d);
    for (std::size_t j = 0; j < d; ++j) {
      result.tail_average[j] =
          tail_count ? static_cast<T>(tail_sum[j] / static_cast<double>(tail_count)) : x[j];
    }
    // Every job is answered; no model is queued anywhere: stop the workers,
    // handing each the final model.
    msg.clear();
    msg.put<std::uint8_t>(kind_stop);
    put_vector<T>(msg, std::span<const T>(result.model));
    put_vector<T>(msg, std::span<const T>(result.tail_average));
    for (std::size_t w = 0; w < workers; ++w) {
      if (!alive[w]) continue;
      try {
        comm.send(static_cast<int>(w + 1), tag_job, msg.bytes());
      } catch (const peer_lost& lost) {
        lose(lost);  // lost after its last report: tolerated, or fatal
      }
    }
    return result;
  }

  // Fatal mode: tell every live worker which rank ended the run, so each
  // throws peer_lost naming it rather than waiting for the server.
  static void abort_workers(Comm& comm, const std::vector<bool>& alive, const peer_lost& lost) {
    wire::buffer note;
    note.put<std::uint8_t>(kind_abort);
    note.put<std::int32_t>(lost.rank());
    std::string why = lost.what();
    const std::string prefix = "loco: lost peer rank " + std::to_string(lost.rank()) + ": ";
    if (why.rfind(prefix, 0) == 0) why.erase(0, prefix.size());
    note.append(why.data(), why.size());
    for (std::size_t w = 0; w < alive.size(); ++w) {
      if (!alive[w]) continue;
      try {
        comm.send(static_cast<int>(w + 1), tag_job, note.bytes());
      } catch (const std::exception&) {  // best effort: that one is gone too
      }
    }
  }

  template <class T, class Objective>
  algorithm::async_sgd_result<T> work(Comm& comm, Objective& objective, std::size_t d) {
    const int me = comm.rank();
    random::stream rng(opt_.seed, static_cast<std::uint64_t>(me));
    compress::state_t<Compressor, T> encoder(compressor_, d, static_cast<std::uint64_t>(me));
    std::vector<T> x(d), g(d);
    wire::buffer job, out;
    std::uint64_t steps = 0;
    for (;;) {
      (void)comm.recv(server, tag_job, job);
      wire::view in(job, "async_sgd server");
      const auto kind = in.get<std::uint8_t>("kind");
      if (kind == kind_stop) {
        algorithm::async_sgd_result<T> result;
        result.model = get_vector<T>(in, d, "final model");
        result.tail_average = get_vector<T>(in, d, "tail average");
        in.expect_end("stop");
        return result;
      }
      if (kind == kind_abort) throw_abort(in);
      if (kind != kind_job) in.fail("kind", "unknown message kind " + std::to_string(kind));
      const auto version = in.get<std::uint64_t>("version");
      const auto bytes = in.take(d * sizeof(T), "model");
      in.expect_end("model");
      std::memcpy(x.data(), bytes.data(), bytes.size());
      (void)objective.gradient(std::span<const T>(x), std::span<T>(g), rng);
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
      out.clear();
      out.put<std::uint64_t>(version);
      compressor_.encode(std::span<const T>(g), encoder, out);
      try {
        comm.send(server, tag_gradient, out.bytes());
      } catch (const peer_lost& gone) {
        // A server that ended the run said why before it left: name the
        // worker it lost, not the server.
        try {
          (void)comm.recv(server, tag_job, job);
        } catch (const std::exception&) {
          throw gone;
        }
        wire::view last(job, "async_sgd server");
        if (last.get<std::uint8_t>("kind") == kind_abort) throw_abort(last);
        throw gone;
      }
    }
  }

  [[noreturn]] static void throw_abort(wire::view& in) {
    const auto lost = in.get<std::int32_t>("abort.rank");
    const auto why = in.rest();
    throw peer_lost(lost, std::string(reinterpret_cast<const char*>(why.data()), why.size()) +
                              " (the server ended the run)");
  }

  Compressor compressor_;
  Stepsize step_;
  options opt_;
};

}  // namespace loco
