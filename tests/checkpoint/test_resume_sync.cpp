// Resume is bit-exact for the synchronous drivers (local_sgd and
// compressed_amsgrad) on in_process and on the simulator: a run of 2T rounds
// equals a run of T rounds, saved, loaded and continued for T more, byte for
// byte in the models, the results and every section of the checkpoint
// files (wall-clock seconds aside), and on the simulator in virtual time.
#include <catch2/catch.hpp>

#include "common.hpp"

#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/checkpoint/every.hpp>
#include <loco/checkpoint/resume.hpp>
#include <loco/compress.hpp>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/merge/outer.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <loco/update/adamw.hpp>
#include <loco/update/momentum.hpp>
#include <optional>
#include <tuple>

namespace {

using namespace checkpoint_tests;
namespace ckpt = loco::checkpoint;
namespace compress = loco::compress;

constexpr int ranks = 3;
constexpr std::size_t dim = 13;  // odd: the random streams keep a Box-Muller spare

template <class T>
struct rank_outcome {
  std::vector<T> local, average, polyak;
  loco::algorithm::local_sgd_stats stats;
  loco::observe::rank_totals spent;  // the ledger's totals
  double clock = 0.0;                // virtual seconds at the end (simulator)
};

template <class Comm, class T, class Driver, class... Callbacks>
std::vector<rank_outcome<T>> run_local(const Driver& driver, Callbacks... callbacks) {
  std::vector<rank_outcome<T>> out(ranks);
  run_world<Comm, T>(ranks, dim, [&](Comm& comm, auto& f) {
    Driver algo = driver;
    std::vector<T> x0(dim, T(0.25));
    std::tuple<Callbacks...> own(callbacks...);  // each rank its own callbacks
    auto r = std::apply(
        [&](auto&... cb) { return algo.run(comm, f, std::span<const T>(x0), cb...); }, own);
    auto& o = out[static_cast<std::size_t>(comm.rank())];
    o.local = r.local;
    o.average = r.average;
    o.polyak = r.polyak;
    o.stats = r.stats;
    o.spent = r.ledger.totals();
    o.clock = loco::comm::now(comm);
  });
  return out;
}

template <class T>
void require_same_outcome(const std::vector<rank_outcome<T>>& a,
                          const std::vector<rank_outcome<T>>& b, bool same_clock) {
  for (std::size_t q = 0; q < a.size(); ++q) {
    INFO("rank " << q);
    REQUIRE(same_bytes(a[q].local, b[q].local));
    REQUIRE(same_bytes(a[q].average, b[q].average));
    REQUIRE(same_bytes(a[q].polyak, b[q].polyak));
    REQUIRE(a[q].stats.rounds == b[q].stats.rounds);
    REQUIRE(a[q].stats.local_steps == b[q].stats.local_steps);
    require_same_totals(a[q].spent, b[q].spent, same_clock);
    if (same_clock) REQUIRE(a[q].clock == b[q].clock);
  }
}

// A callback that could stop the run (it never does): the driver then agrees
// on a stop flag after every round, a collective a resume must replay.
struct never_stop {
  template <class Info>
  bool on_round_end(const Info&) {
    return false;
  }
};

// The 2T == T + save + load + T check for one local_sgd configuration.
template <class Comm, class T, class C, class M, class S, class U, class... Extra>
void check_local_sgd_with(C c, M m, S s, U u, loco::algorithm::local_sgd_options opt,
                          Extra... extra) {
  using driver = loco::local_sgd<C, Comm, M, S, U>;
  constexpr std::size_t half = 3, steps = 4;
  temp_dir dir;
  const auto with_rounds = [&](std::size_t rounds, ckpt::resume from = {}) {
    auto o = opt;
    o.schedule = loco::algorithm::schedule::rounds(rounds, steps);
    o.resume = std::move(from);
    return driver(c, m, s, o, u);
  };
  // A: 2T rounds in one go, saving every T.
  const auto a = run_local<Comm, T>(with_rounds(2 * half), ckpt::every(half, dir / "a"), extra...);
  // B: T rounds, then save.
  (void)run_local<Comm, T>(with_rounds(half), ckpt::every(half, dir / "b"), extra...);
  for (int q = 0; q < ranks; ++q) {
    require_same_state(ckpt::file_path(dir / "a", "loco", q, half),
                       ckpt::file_path(dir / "b", "loco", q, half));
  }
  // C: load B's checkpoint and run to 2T.
  const auto c_run =
      run_local<Comm, T>(with_rounds(2 * half, ckpt::resume::at(dir / "b", "loco", half)),
                         ckpt::every(half, dir / "c"), extra...);
  require_same_outcome(a, c_run, std::is_same_v<Comm, loco::comm::simulated>);
  for (int q = 0; q < ranks; ++q) {
    require_same_state(ckpt::file_path(dir / "a", "loco", q, 2 * half),
                       ckpt::file_path(dir / "c", "loco", q, 2 * half));
  }
  REQUIRE_FALSE(fs::exists(ckpt::file_path(dir / "c", "loco", 0, half)));  // it started after T
  // Saving does not perturb the run: the same models without the saver (and
  // on the simulator the same virtual times: saving is no collective).
  const auto plain = run_local<Comm, T>(with_rounds(2 * half), extra...);
  require_same_outcome(a, plain, std::is_same_v<Comm, loco::comm::simulated>);
}

template <class Comm, class T, class C, class M, class S, class... Extra>
void check_local_sgd(C c, M m, S s, loco::algorithm::local_sgd_options opt, Extra... extra) {
  check_local_sgd_with<Comm, T>(c, m, s, loco::update::sgd{}, opt, extra...);
}

template <class Comm>
void local_sgd_cases() {
  using namespace loco;
  SECTION("DiLoCo: AdamW inner steps, Nesterov outer steps (both stateful)") {
    check_local_sgd_with<Comm, float>(compress::identity{}, merge::outer_nesterov(0.7, 0.9),
                                      stepsize::constant(0.01), update::adamw(),
                                      algorithm::local_sgd_options{});
  }
  SECTION("Streaming DiLoCo: 2 fragments of fp4 outer gradients, overlap, mixing") {
    algorithm::local_sgd_options opt;
    opt.fragments = {.count = 2};
    opt.overlap_steps = {1};
    opt.mixing = 0.5;
    check_local_sgd_with<Comm, float>(compress::fp4(4), merge::outer_nesterov(0.7, 0.9),
                                      stepsize::constant(0.01), update::adamw(), opt);
  }
  SECTION("powersgd (warm Q and residual in the compressor state)") {
    tensor::layout l;  // the 13 values as a 3 x 4 matrix and one more
    l.add("w", {3, 4});
    l.add("b", {1});
    algorithm::local_sgd_options opt;
    opt.seed = 2;
    check_local_sgd<Comm, float>(compress::powersgd(l, {.rank = 1, .min_compression_rate = 0.0}),
                                 merge::average{}, stepsize::constant(0.05), opt);
  }
  SECTION("3 fragments with a random_k support drawn in each") {
    algorithm::local_sgd_options opt;
    opt.fragments = {.count = 3};
    check_local_sgd_with<Comm, double>(compress::random_k_unscaled(0.5, 3), merge::outer_sgd(0.8),
                                       stepsize::constant(0.05), update::sgd(), opt);
  }
  SECTION("momentum inner steps, outer SGD on a random_k support") {
    check_local_sgd_with<Comm, double>(compress::random_k_unscaled(0.5, 3), merge::outer_sgd(0.8),
                                       stepsize::constant(0.05), update::momentum(0.9, true),
                                       algorithm::local_sgd_options{});
  }
  SECTION("identity, average, Polyak average") {
    algorithm::local_sgd_options opt;
    opt.polyak_average = true;
    check_local_sgd<Comm, float>(compress::identity{}, merge::average{}, stepsize::constant(0.05),
                                 opt);
  }
  SECTION("with a callback that may stop the run (a stop agreement every round)") {
    algorithm::local_sgd_options opt;
    opt.overlap_steps = {1};
    check_local_sgd<Comm, float>(compress::identity{}, merge::delay_corrected{},
                                 stepsize::constant(0.05), opt, never_stop{});
  }
  SECTION("random_k (shared support), delay-corrected, overlap, polynomial steps") {
    algorithm::local_sgd_options opt;
    opt.overlap_steps = {2};
    opt.seed = 5;
    check_local_sgd<Comm, float>(compress::random_k(0.3, 9), merge::delay_corrected{},
                                 stepsize::polynomial(0.1, 0.75), opt);
  }
  SECTION("error_feedback<qsgd> (general path, RNG lanes and residuals)") {
    algorithm::local_sgd_options opt;
    opt.seed = 3;
    check_local_sgd<Comm, double>(compress::error_feedback(compress::qsgd(4, 21)), merge::average{},
                                  stepsize::constant(0.05), opt);
  }
  SECTION("ef21<top_k> and warmup<natural>") {
    check_local_sgd<Comm, float>(compress::ef21(compress::top_k(0.25)), merge::average{},
                                 stepsize::constant(0.05), {});
    check_local_sgd<Comm, float>(compress::warmup(compress::natural(4), 2), merge::average{},
                                 stepsize::constant(0.05), {});
  }
}

template <class T>
struct amsgrad_outcome {
  std::vector<T> model;
  loco::algorithm::compressed_amsgrad_stats stats;
  loco::observe::rank_totals spent;  // the ledger's totals
  double clock = 0.0;
};

template <class Comm, class T, class Driver, class... Callbacks>
std::vector<amsgrad_outcome<T>> run_amsgrad(const Driver& driver, Callbacks... callbacks) {
  std::vector<amsgrad_outcome<T>> out(ranks);
  run_world<Comm, T>(ranks, dim, [&](Comm& comm, auto& f) {
    Driver algo = driver;
    std::vector<T> x0(dim, T(0.25));
    std::tuple<Callbacks...> own(callbacks...);
    auto r = std::apply(
        [&](auto&... cb) { return algo.run(comm, f, std::span<const T>(x0), cb...); }, own);
    auto& o = out[static_cast<std::size_t>(comm.rank())];
    o.model = r.model;
    o.stats = r.stats;
    o.spent = r.ledger.totals();
    o.clock = loco::comm::now(comm);
  });
  return out;
}

template <class T>
void require_same_outcome(const std::vector<amsgrad_outcome<T>>& a,
                          const std::vector<amsgrad_outcome<T>>& b, bool same_clock) {
  for (std::size_t q = 0; q < a.size(); ++q) {
    INFO("rank " << q);
    REQUIRE(same_bytes(a[q].model, b[q].model));
    REQUIRE(a[q].stats.iterations == b[q].stats.iterations);
    require_same_totals(a[q].spent, b[q].spent, same_clock);
    REQUIRE(a[q].stats.last_batch_loss == b[q].stats.last_batch_loss);
    if (same_clock) REQUIRE(a[q].clock == b[q].clock);
  }
}

template <class Comm, class T, class C, class S>
void check_amsgrad(C c, S s, loco::algorithm::compressed_amsgrad_options opt) {
  using driver = loco::compressed_amsgrad<C, Comm, S>;
  constexpr std::size_t half = 5;
  temp_dir dir;
  const auto with_iterations = [&](std::size_t iterations, ckpt::resume from = {}) {
    auto o = opt;
    o.iterations = iterations;
    o.resume = std::move(from);
    return driver(c, s, o);
  };
  const auto a = run_amsgrad<Comm, T>(with_iterations(2 * half), ckpt::every(half, dir / "a"));
  (void)run_amsgrad<Comm, T>(with_iterations(half), ckpt::every(half, dir / "b"));
  for (int q = 0; q < ranks; ++q) {
    require_same_state(ckpt::file_path(dir / "a", "loco", q, half),
                       ckpt::file_path(dir / "b", "loco", q, half));
  }
  const auto c_run =
      run_amsgrad<Comm, T>(with_iterations(2 * half, ckpt::resume::latest(dir / "b", "loco")),
                           ckpt::every(half, dir / "c"));
  require_same_outcome(a, c_run, std::is_same_v<Comm, loco::comm::simulated>);
  for (int q = 0; q < ranks; ++q) {
    require_same_state(ckpt::file_path(dir / "a", "loco", q, 2 * half),
                       ckpt::file_path(dir / "c", "loco", q, 2 * half));
  }
  const auto plain = run_amsgrad<Comm, T>(with_iterations(2 * half));
  require_same_outcome(a, plain, std::is_same_v<Comm, loco::comm::simulated>);
}

template <class Comm>
void amsgrad_cases() {
  using namespace loco;
  using strategy = algorithm::compression_strategy;
  SECTION("difference (CD-Adam) with qsgd") {
    algorithm::compressed_amsgrad_options opt;
    opt.seed = 4;
    check_amsgrad<Comm, float>(compress::qsgd(4, 17), stepsize::constant(0.02), opt);
  }
  SECTION("error feedback on both sides with top_k, fp64") {
    algorithm::compressed_amsgrad_options opt;
    opt.strategy = strategy::error_feedback;
    opt.weight_decay = 0.01;
    check_amsgrad<Comm, double>(compress::top_k(0.3), stepsize::constant(0.02), opt);
  }
  SECTION("naive with natural compression and bias correction") {
    algorithm::compressed_amsgrad_options opt;
    opt.strategy = strategy::naive;
    opt.bias_correction = true;
    check_amsgrad<Comm, float>(compress::natural(8), stepsize::polynomial(0.05, 0.75), opt);
  }
}

}  // namespace

TEST_CASE("compressed_amsgrad resumes bit-exactly on in_process", "[checkpoint][amsgrad]") {
  amsgrad_cases<loco::comm::in_process>();
}

TEST_CASE("compressed_amsgrad resumes bit-exactly on the simulator, in virtual time too",
          "[checkpoint][amsgrad][sim]") {
  amsgrad_cases<loco::comm::simulated>();
}

TEST_CASE("local_sgd resumes bit-exactly on in_process", "[checkpoint][local_sgd]") {
  local_sgd_cases<loco::comm::in_process>();
}

TEST_CASE("local_sgd resumes bit-exactly on the simulator, in virtual time too",
          "[checkpoint][local_sgd][sim]") {
  local_sgd_cases<loco::comm::simulated>();
}
