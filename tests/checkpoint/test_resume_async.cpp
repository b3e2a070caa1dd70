// Checkpoints of async_sgd. The server saves after an update and asks every
// worker to save itself as it was before the jobs the server has not yet
// applied, with those jobs; a resumed worker redoes them. On the simulator
// the run is deterministic, so resume is checked bit for bit (models,
// statistics, checkpoint files, virtual time). On in_process real threads
// race, so the run after a resume differs from an uninterrupted one; there
// the saved state is checked against what the server held, and the resumed
// run against the invariants every run satisfies.
#include <catch2/catch.hpp>

#include "common.hpp"

#include <loco/algorithm/async_sgd.hpp>
#include <loco/checkpoint/every.hpp>
#include <loco/checkpoint/resume.hpp>
#include <loco/checkpoint/state.hpp>
#include <loco/compress.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/delay_adaptive.hpp>
#include <loco/stepsize/rescaled.hpp>
#include <set>
#include <tuple>

namespace {

using namespace checkpoint_tests;
namespace ckpt = loco::checkpoint;
namespace compress = loco::compress;

constexpr int ranks = 4;  // a server and three workers
constexpr std::size_t dim = 13;

template <class T>
struct async_outcome {
  std::vector<T> model, tail;
  loco::algorithm::async_sgd_stats stats;  // the server's
  loco::observe::rank_totals spent;        // the server's ledger totals
  std::vector<double> clocks;
};

template <class Comm, class T, class Driver, class... Callbacks>
async_outcome<T> run_async(const Driver& driver, Callbacks... callbacks) {
  async_outcome<T> out;
  out.clocks.resize(ranks);
  run_world<Comm, T>(ranks, dim, [&](Comm& comm, auto& f) {
    Driver algo = driver;
    std::vector<T> x0(dim, T(0.25));
    std::tuple<Callbacks...> own(callbacks...);
    auto r = std::apply(
        [&](auto&... cb) { return algo.run(comm, f, std::span<const T>(x0), cb...); }, own);
    out.clocks[static_cast<std::size_t>(comm.rank())] = loco::comm::now(comm);
    if (comm.rank() == 0) {
      out.model = r.model;
      out.tail = r.tail_average;
      out.stats = r.stats;
      out.spent = r.ledger.totals();
    }
  });
  return out;
}

template <class T>
void require_same_outcome(const async_outcome<T>& a, const async_outcome<T>& b, bool clocks) {
  REQUIRE(same_bytes(a.model, b.model));
  REQUIRE(same_bytes(a.tail, b.tail));
  REQUIRE(a.stats.updates == b.stats.updates);
  REQUIRE(a.stats.dropped == b.stats.dropped);
  REQUIRE(a.stats.discarded == b.stats.discarded);
  REQUIRE(a.stats.discarded_delay_sum == b.stats.discarded_delay_sum);
  REQUIRE(a.stats.mean_delay == b.stats.mean_delay);
  REQUIRE(a.stats.max_delay == b.stats.max_delay);
  REQUIRE(a.stats.delay_histogram == b.stats.delay_histogram);
  REQUIRE(a.stats.updates_per_worker == b.stats.updates_per_worker);
  require_same_totals(a.spent, b.spent, clocks);
  if (clocks) {
    REQUIRE(a.clocks == b.clocks);
  }
}

// Sections compared when two runs differ only in `updates`: the tail
// average's window depends on it, so the server's tail sums are skipped.
void require_same_state_but_tail(const fs::path& a, const fs::path& b, int rank) {
  if (rank != 0) return require_same_state(a, b);
  loco::checkpoint::file fa(a), fb(b);
  for (const auto& s : fa.get().sections()) {
    if (s.id == ckpt::tags::tail || s.id == ckpt::tags::server || s.id == ckpt::tags::ledger) {
      continue;
    }
    INFO("section " << ckpt::tag_name(s.id));
    const auto in = fb.get().open(s.id).rest();
    REQUIRE(in.size() == s.bytes.size());
    REQUIRE(std::memcmp(in.data(), s.bytes.data(), in.size()) == 0);
  }
}

template <class T, class C, class S>
void check_async_on_simulator(C c, S s, loco::algorithm::async_sgd_options opt) {
  using Comm = loco::comm::simulated;
  using driver = loco::async_sgd<C, Comm, S>;
  constexpr std::uint64_t half = 20;
  temp_dir dir;
  const auto with_updates = [&](std::uint64_t updates, ckpt::resume from = {}) {
    auto o = opt;
    o.updates = updates;
    o.resume = std::move(from);
    return driver(c, s, o);
  };
  const auto a = run_async<Comm, T>(with_updates(2 * half), ckpt::every(half, dir / "a"));
  (void)run_async<Comm, T>(with_updates(half), ckpt::every(half, dir / "b"));
  for (int q = 0; q < ranks; ++q) {
    INFO("rank " << q);
    require_same_state_but_tail(ckpt::file_path(dir / "a", "loco", q, half),
                                ckpt::file_path(dir / "b", "loco", q, half), q);
  }
  const auto resumed =
      run_async<Comm, T>(with_updates(2 * half, ckpt::resume::at(dir / "b", "loco", half)),
                         ckpt::every(half, dir / "c"));
  require_same_outcome(a, resumed, true);
  for (int q = 0; q < ranks; ++q) {
    INFO("rank " << q);
    require_same_state(ckpt::file_path(dir / "a", "loco", q, 2 * half),
                       ckpt::file_path(dir / "c", "loco", q, 2 * half));
  }
  // Saving does not perturb the run (latency-only links: a checkpoint
  // request never delays a job).
  const auto plain = run_async<Comm, T>(with_updates(2 * half));
  require_same_outcome(a, plain, true);
}

}  // namespace

TEST_CASE("async_sgd resumes bit-exactly on the simulator", "[checkpoint][async_sgd][sim]") {
  using namespace loco;
  SECTION("one job per worker, constant steps") {
    check_async_on_simulator<float>(compress::identity{}, stepsize::constant(0.05), {});
  }
  SECTION("random workers with queued jobs, ef21<qsgd>, rescaled steps from time estimates") {
    algorithm::async_sgd_options opt;
    opt.assignment = algorithm::job_assignment::random_worker;
    opt.concurrency = 5;
    opt.seed = 8;
    check_async_on_simulator<double>(compress::ef21(compress::qsgd(8, 3)), stepsize::rescaled(0.05),
                                     opt);
  }
  SECTION("error_feedback<random_k>, delay-adaptive steps") {
    check_async_on_simulator<float>(compress::error_feedback(compress::random_k(0.5, 2)),
                                    stepsize::delay_adaptive(0.05), {});
  }
}

TEST_CASE("async_sgd on in_process: the saved state is the server's, and a resumed run completes",
          "[checkpoint][async_sgd]") {
  using namespace loco;
  using Comm = comm::in_process;
  using C = compress::ef21<compress::top_k>;
  using driver = async_sgd<C, Comm, stepsize::constant>;
  constexpr std::uint64_t half = 30;
  temp_dir dir;
  algorithm::async_sgd_options opt;
  opt.updates = 2 * half;
  const C compressor(compress::top_k(0.4));

  // Record what the server holds at the update it saves.
  struct recorder {
    std::vector<float> model;
    algorithm::async_sgd_stats stats;
    bool on_round_end(const algorithm::update_info<float>& info) {
      if (info.update == half) {
        model.assign(info.model.begin(), info.model.end());
        stats = *info.stats;
      }
      return false;
    }
  };
  recorder seen;
  run_world<Comm, float>(ranks, dim, [&](Comm& comm, auto& f) {
    driver algo(compressor, stepsize::constant(0.05), opt);
    std::vector<float> x0(dim, 0.25f);
    ckpt::every saver(half, dir / "a");
    if (comm.rank() == 0) {
      (void)algo.run(comm, f, std::span<const float>(x0), saver, seen);
    } else {
      (void)algo.run(comm, f, std::span<const float>(x0), saver);
    }
  });

  // What the server's file holds is what it had.
  {
    ckpt::file server(ckpt::file_path(dir / "a", "loco", 0, half));
    REQUIRE(server.head().round == half);
    REQUIRE(server.head().world_size == static_cast<std::uint32_t>(ranks));
    auto in = server.get().open(ckpt::tags::model);
    std::vector<float> model(dim);
    loco::wire::get_values<float>(in, model, "model");
    REQUIRE(same_bytes(model, seen.model));
    auto st = server.get().open(ckpt::tags::stats);
    REQUIRE(st.get<std::uint64_t>("updates") == seen.stats.updates);
    REQUIRE(st.get<std::uint64_t>("dropped") == seen.stats.dropped);
    // Every worker saved the jobs the server still counted as outstanding.
    auto w = server.get().open(ckpt::tags::workers);
    std::vector<std::uint64_t> outstanding(ranks - 1);
    loco::wire::get_values<std::uint64_t>(w, outstanding, "outstanding");
    for (int q = 1; q < ranks; ++q) {
      ckpt::file worker(ckpt::file_path(dir / "a", "loco", q, half));
      auto jobs = worker.get().open(ckpt::tags::jobs);
      REQUIRE(jobs.get<std::uint32_t>("jobs") == outstanding[static_cast<std::size_t>(q - 1)]);
    }
  }

  // Resume from it: the run completes with the invariants of any run.
  auto o = opt;
  o.resume = ckpt::resume::at(dir / "a", "loco", half);
  const driver resumed_driver(compressor, stepsize::constant(0.05), o);
  const auto r = run_async<Comm, float>(resumed_driver, ckpt::every(half, dir / "b"));
  REQUIRE(r.stats.updates == 2 * half);
  std::uint64_t per_worker = 0;
  for (auto u : r.stats.updates_per_worker) per_worker += u;
  REQUIRE(per_worker == 2 * half);
  for (float v : r.model) REQUIRE(std::isfinite(v));
  // Each update is seen by the other jobs in flight: sum of delays of the
  // applied and the discarded gradients is (jobs - 1) * updates exactly.
  const auto delay_total = static_cast<std::uint64_t>(
      std::llround(r.stats.mean_delay * static_cast<double>(r.stats.updates)));
  REQUIRE(delay_total + r.stats.discarded_delay_sum ==
          static_cast<std::uint64_t>(ranks - 2) * r.stats.updates);
  for (int q = 0; q < ranks; ++q) {
    INFO("rank " << q);
    REQUIRE(fs::exists(ckpt::file_path(dir / "b", "loco", q, 2 * half)));
  }
}
