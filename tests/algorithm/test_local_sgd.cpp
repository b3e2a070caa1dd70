// local_sgd against plain-loop references written from ALGORITHMS.md
// sections 2 and 3, on tiny deterministic quadratics with 3 workers.
#include <catch2/catch.hpp>

#include "../support/local_sgd_aliases.hpp"
#include "../support/local_sgd_reference.hpp"
#include "../support/test_policies.hpp"

#include <cmath>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress/ef21.hpp>
#include <loco/compress/error_feedback.hpp>
#include <loco/compress/random_k.hpp>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <vector>

namespace {

using namespace local_sgd_reference;

// Sends the vector as raw doubles: lossless, so the driver averages in place.
using exact = testing_policies::raw;

using eighths = testing_policies::multiples_of<8>;
double round8(double x) { return eighths::round(x); }

// Shared support without sending indices: round r synchronises the
// coordinates j with j % 2 == r % 2.
struct alternate {
  static constexpr bool unbiased = false, contractive = true, shared_support = true;
  template <class T>
  struct state {
    state(const alternate&, std::size_t d, std::uint64_t) : dim(d) {}
    std::size_t dim;
    std::vector<std::uint32_t> idx;
  };
  template <class T>
  std::span<const std::uint32_t> support(state<T>& s, std::uint64_t round) const {
    s.idx.clear();
    for (std::size_t j = round % 2; j < s.dim; j += 2)
      s.idx.push_back(static_cast<std::uint32_t>(j));
    return s.idx;
  }
  template <class T>
  void encode(std::span<const T>, state<T>&, loco::wire::buffer&) const {}
  template <class T>
  void decode(loco::wire::view, state<T>&, std::span<T>) const {}
  std::size_t wire_bytes(std::size_t d) const { return 4 * (d / 2); }
};
// Lossy: a message is its sender's stream id (its rank); the message of
// rank 2 is refused on decode, as a malformed payload would be.
struct refuses_rank_two {
  static constexpr bool unbiased = false, contractive = false;
  template <class T>
  struct state {
    state(const refuses_rank_two&, std::size_t, std::uint64_t s) : stream(s) {}
    std::uint64_t stream;
  };
  template <class T>
  void encode(std::span<const T>, state<T>& s, loco::wire::buffer& out) const {
    out.put<std::uint8_t>(static_cast<std::uint8_t>(s.stream));
  }
  template <class T>
  void decode(loco::wire::view in, state<T>&, std::span<T> out) const {
    if (in.get<std::uint8_t>("sender") == 2) in.fail("sender", "refused by the test");
    for (auto& x : out) x = T{0};
  }
  std::size_t wire_bytes(std::size_t) const { return 1; }
};

std::vector<std::uint32_t> alternate_support(std::size_t r) {
  std::vector<std::uint32_t> idx;
  for (std::size_t j = r % 2; j < dim; j += 2) idx.push_back(static_cast<std::uint32_t>(j));
  return idx;
}

template <class C, class M, class S>
std::vector<loco::algorithm::local_sgd_result<double>> run(C c, M m, S s,
                                                           loco::algorithm::local_sgd_options opt) {
  using driver = loco::local_sgd<C, loco::comm::in_process, M, S>;
  driver algo(c, m, s, opt);
  std::vector<loco::algorithm::local_sgd_result<double>> out(workers);
  loco::comm::run_in_process(workers, [&](loco::comm::in_process& comm) {
    auto f = make_worker(comm.rank());
    const vec x0 = start();
    out[static_cast<std::size_t>(comm.rank())] = algo.run(comm, f, std::span<const double>(x0));
  });
  return out;
}

void require_close(const vec& a, const vec& b, double tol = 1e-9) {
  REQUIRE(a.size() == b.size());
  for (std::size_t j = 0; j < a.size(); ++j) REQUIRE(a[j] == Approx(b[j]).margin(tol));
}

}  // namespace

TEST_CASE("local_sgd equals the plain-loop local SGD with decaying steps", "[local_sgd]") {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::at({2, 5, 9, 14});
  opt.polyak_average = true;
  auto got = run(exact{}, loco::merge::average{}, loco::stepsize::polynomial(0.8, 0.75), opt);

  const outcome want = averaged_at({2, 5, 9, 14}, polynomial_eta(0.8, 0.75));
  for (int i = 0; i < workers; ++i)
    require_close(got[static_cast<std::size_t>(i)].average, want.average);
  // Polyak-Ruppert: each worker's mean iterate, averaged over workers.
  require_close(got[0].polyak, want.polyak);
  CHECK(got[0].stats.rounds == 4);
  CHECK(got[0].stats.local_steps == 14);
  CHECK(got[0].ledger.totals().bytes_sent == 4 * dim * sizeof(double));
}

// Every alias of loco/aliases.hpp against its plain-loop reference; the same
// suite runs over tcp (test_local_sgd_tcp.cpp) and mpi (test_local_sgd_mpi.cpp).
TEST_CASE("every local_sgd alias equals its plain-loop reference on in_process", "[local_sgd]") {
  for (const alias a : all_aliases()) {
    INFO(name_of(a));
    std::vector<loco::algorithm::local_sgd_result<double>> got(workers);
    loco::comm::run_in_process(workers, [&](loco::comm::in_process& comm) {
      got[static_cast<std::size_t>(comm.rank())] = run_alias(a, comm);
    });
    for (int i = 0; i < workers; ++i)
      CHECK(check_alias(a, i, got[static_cast<std::size_t>(i)]) == "");
  }
}

TEST_CASE("every local_sgd alias equals its plain-loop reference on simulated",
          "[local_sgd][sim]") {
  loco::sim::options sim;
  sim.link = loco::sim::link_model(1e-3, 1e6);
  for (const alias a : all_aliases()) {
    INFO(name_of(a));
    std::vector<loco::algorithm::local_sgd_result<double>> got(workers);
    std::vector<double> finish(workers);
    loco::comm::run_simulated(
        workers,
        [&](loco::comm::simulated& comm) {
          got[static_cast<std::size_t>(comm.rank())] = run_alias(a, comm);
          finish[static_cast<std::size_t>(comm.rank())] = comm.now();
        },
        sim);
    for (int i = 0; i < workers; ++i)
      CHECK(check_alias(a, i, got[static_cast<std::size_t>(i)]) == "");
    CHECK(finish[0] > 0.0);  // the links cost virtual time
  }
}

TEST_CASE("mini-batch averaging (one step per round) is synchronous gradient averaging",
          "[local_sgd]") {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::every_step(6);
  auto got = run(exact{}, loco::merge::average{}, loco::stepsize::constant(0.3), opt);
  vec x(dim, 0.25);
  for (int t = 0; t < 6; ++t) {
    vec mean_g(dim, 0.0);
    for (int i = 0; i < workers; ++i) {
      auto f = make_worker(i);
      for (std::size_t j = 0; j < dim; ++j) mean_g[j] += f.a * (x[j] - f.b[j]) / workers;
    }
    for (std::size_t j = 0; j < dim; ++j) x[j] -= 0.3 * mean_g[j];
  }
  require_close(got[1].average, x);
}

TEST_CASE("LOSCAR: sparse delay-corrected averaging with heterogeneous N_i and overlap Q_i",
          "[local_sgd][loscar]") {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(5, 1);
  opt.local_steps = {1, 2, 3};
  opt.overlap_steps = {2, 1, 0};
  for (bool corrected : {true, false}) {
    DYNAMIC_SECTION((corrected ? "delay_corrected" : "overwrite")) {
      std::vector<loco::algorithm::local_sgd_result<double>> got;
      if (corrected) {
        got = run(alternate{}, loco::merge::delay_corrected{}, loco::stepsize::constant(0.2), opt);
      } else {
        got = run(alternate{}, loco::merge::overwrite{}, loco::stepsize::constant(0.2), opt);
      }
      const outcome want = loscar(5, opt.local_steps, opt.overlap_steps, alternate_support,
                                  corrected, constant_eta(0.2));
      for (int i = 0; i < workers; ++i) {
        const auto w = static_cast<std::size_t>(i);
        require_close(got[w].local, want.local[w]);
      }
      require_close(got[0].average, want.average);
      CHECK(got[2].stats.overlap_steps == 0);
      CHECK(got[0].stats.overlap_steps == 10);
      // Only the K values on the support travel: 3 or 2 of 5 per round.
      CHECK(got[0].ledger.totals().bytes_sent == (3 + 2 + 3 + 2 + 3) * sizeof(double));
    }
  }
}

// Merge rules that read the model: one keeps it, one moves half way to the
// average (x = (z + m) / 2).
struct keep_own {
  template <class T>
  void apply(const loco::merge::inputs<T>&, std::span<T>) const {}
};
struct half_way {
  template <class T>
  void apply(const loco::merge::inputs<T>& in, std::span<T> x) const {
    for (std::size_t j = 0; j < x.size(); ++j) x[j] = (x[j] + in.average[j]) / 2;
  }
};

TEST_CASE("a rule that reads the model sees it, not the average, when the driver averages in place",
          "[local_sgd]") {
  // Lossless, no step in flight: merge::average is averaged in the model
  // itself; half_way (reads_model by default) must still get z in x.
  STATIC_REQUIRE_FALSE(loco::merge::reads_model<loco::merge::average>());
  STATIC_REQUIRE(loco::merge::reads_model<half_way>());
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(1, 3);
  opt.local_steps = {1, 2, 3};  // different models before the merge
  const auto z = run(exact{}, keep_own{}, loco::stepsize::constant(0.1), opt);
  const auto averaged = run(exact{}, loco::merge::average{}, loco::stepsize::constant(0.1), opt);
  const auto half = run(exact{}, half_way{}, loco::stepsize::constant(0.1), opt);
  vec m(dim, 0.0);
  for (const auto& r : z) {
    for (std::size_t j = 0; j < dim; ++j) m[j] += r.local[j] / workers;
  }
  REQUIRE(z[0].local != z[2].local);
  for (std::size_t i = 0; i < static_cast<std::size_t>(workers); ++i) {
    vec want(dim);
    for (std::size_t j = 0; j < dim; ++j) want[j] = (z[i].local[j] + m[j]) / 2;
    require_close(half[i].local, want);
    require_close(averaged[i].local, m);
  }
}

TEST_CASE("with Q = 0 delay_corrected equals overwrite", "[local_sgd][loscar]") {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(4, 2);
  opt.local_steps = {1, 2, 4};
  auto a = run(alternate{}, loco::merge::delay_corrected{}, loco::stepsize::constant(0.1), opt);
  auto b = run(alternate{}, loco::merge::overwrite{}, loco::stepsize::constant(0.1), opt);
  for (int i = 0; i < workers; ++i)
    require_close(a[static_cast<std::size_t>(i)].local, b[static_cast<std::size_t>(i)].local, 0.0);
}

TEST_CASE("a lossy compressor sends C(y - ref) and every worker tracks the same reference",
          "[local_sgd]") {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(3, 2);
  auto got = run(eighths{}, loco::merge::average{}, loco::stepsize::constant(0.25), opt);
  reference ref;
  vec refpoint(dim, 0.25);
  for (int r = 0; r < 3; ++r) {
    vec mean_delta(dim, 0.0);
    for (int i = 0; i < workers; ++i) {
      ref.step(i, [](std::uint64_t) { return 0.25; });
      ref.step(i, [](std::uint64_t) { return 0.25; });
      for (std::size_t j = 0; j < dim; ++j)
        mean_delta[j] += round8(ref.x[static_cast<std::size_t>(i)][j] - refpoint[j]);
    }
    for (std::size_t j = 0; j < dim; ++j) refpoint[j] += mean_delta[j] / workers;
    for (auto& xi : ref.x) xi = refpoint;
  }
  for (int i = 0; i < workers; ++i)
    require_close(got[static_cast<std::size_t>(i)].local, refpoint, 1e-12);
  CHECK(got[0].ledger.totals().bytes_sent == 3 * 4 * dim);
  CHECK(got[0].ledger.totals().bytes_received == 3 * 2 * 4 * dim);
}

TEST_CASE("a feedback decorator around a shared-support compressor takes the message path",
          "[local_sgd]") {
  // The shared-support path sends only C's values at the common support and
  // would bypass the decorator's residual or estimate; the decorators say so.
  namespace lc = loco::compress;
  STATIC_REQUIRE(lc::traits<lc::random_k_unscaled>::shared_support);
  STATIC_REQUIRE_FALSE(lc::traits<lc::error_feedback<lc::random_k_unscaled>>::shared_support);
  STATIC_REQUIRE_FALSE(lc::traits<lc::ef21<lc::random_k_unscaled>>::shared_support);
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(6, 2);
  const auto plain = run(lc::random_k_unscaled(0.5, 7), loco::merge::average{},
                         loco::stepsize::constant(0.25), opt);
  const auto fed = run(lc::error_feedback(lc::random_k_unscaled(0.5, 7)), loco::merge::average{},
                       loco::stepsize::constant(0.25), opt);
  // Every worker applies the same aggregate, so all models agree, and the
  // residual changes what is sent after the first round.
  for (int i = 1; i < workers; ++i)
    require_close(fed[static_cast<std::size_t>(i)].local, fed[0].local, 0.0);
  double diff = 0.0;
  for (std::size_t j = 0; j < dim; ++j) diff += std::abs(fed[0].local[j] - plain[0].local[j]);
  CHECK(diff > 1e-6);
  // Whole messages travel (header and values): more than the k values alone.
  CHECK(fed[0].ledger.totals().bytes_sent > plain[0].ledger.totals().bytes_sent);
}

TEST_CASE("a peer's malformed message is reported naming its rank", "[local_sgd]") {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(2, 1);
  std::string source, field;
  try {
    (void)run(refuses_rank_two{}, loco::merge::average{}, loco::stepsize::constant(0.25), opt);
  } catch (const loco::protocol_error& e) {
    source = e.source();
    field = e.field();
  }
  CHECK(source == "local_sgd message of rank 2");
  CHECK(field == "sender");
}

TEST_CASE("local steps derived from compute times: N_i = max(1, floor(B / tau_i))", "[local_sgd]") {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(2, 1);
  opt.compute_times = {1.0, 2.0, 4.5};
  opt.round_budget = 4.0;
  auto got = run(exact{}, loco::merge::average{}, loco::stepsize::constant(0.1), opt);
  CHECK(got[0].stats.local_steps == 8);
  CHECK(got[1].stats.local_steps == 4);
  CHECK(got[2].stats.local_steps == 2);
}

TEST_CASE("local_sgd rejects bad configuration before any step", "[local_sgd]") {
  using driver = loco::local_sgd<exact, loco::comm::in_process, loco::merge::average,
                                 loco::stepsize::constant>;
  loco::algorithm::local_sgd_options opt;
  opt.local_steps = {1, 2};  // 2 entries for 3 workers
  driver bad(exact{}, loco::merge::average{}, loco::stepsize::constant(0.1), opt);
  CHECK_THROWS_WITH(loco::comm::run_in_process(workers,
                                               [&](loco::comm::in_process& comm) {
                                                 auto f = make_worker(comm.rank());
                                                 const vec x0(dim, 0.0);
                                                 bad.run(comm, f, std::span<const double>(x0));
                                               }),
                    Catch::Contains("local_steps has 2 entries"));

  // Ranks that disagree on d are told so on every rank.
  driver ok(exact{}, loco::merge::average{}, loco::stepsize::constant(0.1), {});
  CHECK_THROWS_WITH(
      loco::comm::run_in_process(2,
                                 [&](loco::comm::in_process& comm) {
                                   scaled_quadratic f{1.0, vec(comm.rank() == 0 ? 3 : 4, 0.0)};
                                   const vec x0(f.dimension(), 0.0);
                                   ok.run(comm, f, std::span<const double>(x0));
                                 }),
      Catch::Contains("disagree on the model size"));
}

TEST_CASE("a callback returning true stops every rank after the same round", "[local_sgd]") {
  struct stop_at {
    std::size_t round;
    bool on_round_end(const loco::algorithm::round_info<double>& info) {
      // The averaged model is available inside callbacks (a collective).
      const auto avg = info.average_model();
      return avg.size() == dim && info.round == round && info.rank == 0;
    }
  };
  using driver = loco::local_sgd<exact, loco::comm::in_process, loco::merge::average,
                                 loco::stepsize::constant>;
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(50, 1);
  driver algo(exact{}, loco::merge::average{}, loco::stepsize::constant(0.1), opt);
  std::vector<std::size_t> rounds(workers);
  loco::comm::run_in_process(workers, [&](loco::comm::in_process& comm) {
    auto f = make_worker(comm.rank());
    const vec x0(dim, 0.0);
    auto r = algo.run(comm, f, std::span<const double>(x0), stop_at{7});
    rounds[static_cast<std::size_t>(comm.rank())] = r.stats.rounds;
  });
  CHECK(rounds == std::vector<std::size_t>(workers, 7));
}

TEST_CASE("a NaN gradient throws naming the worker and step, or is skipped by option",
          "[local_sgd]") {
  struct nan_at_step_3 {
    using value_type = double;
    int calls = 0;
    std::size_t dimension() const { return 2; }
    double loss(std::span<const double>) const { return 0; }
    double gradient(std::span<const double> x, std::span<double> g, loco::random::stream&) {
      g[0] = x[0];
      g[1] = ++calls == 3 ? std::nan("") : x[1];
      return 0;
    }
  };
  using driver = loco::local_sgd<exact, loco::comm::in_process, loco::merge::average,
                                 loco::stepsize::constant>;
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(3, 2);
  driver strict(exact{}, loco::merge::average{}, loco::stepsize::constant(0.1), opt);
  CHECK_THROWS_WITH(loco::comm::run_in_process(1,
                                               [&](loco::comm::in_process& comm) {
                                                 nan_at_step_3 f;
                                                 const vec x0{1.0, 1.0};
                                                 strict.run(comm, f, std::span<const double>(x0));
                                               }),
                    Catch::Contains("worker 0 at step 3") && Catch::Contains("index 1"));
  opt.on_non_finite = loco::non_finite_policy::skip_update;
  driver lenient(exact{}, loco::merge::average{}, loco::stepsize::constant(0.1), opt);
  loco::comm::run_in_process(1, [&](loco::comm::in_process& comm) {
    nan_at_step_3 f;
    const vec x0{1.0, 1.0};
    auto r = lenient.run(comm, f, std::span<const double>(x0));
    CHECK(r.stats.skipped_steps == 1);
    CHECK(std::isfinite(r.average[1]));
    CHECK(r.average[1] == Approx(std::pow(0.9, 5)));
  });
}

TEST_CASE("a void on_round_end observes without the stop agreement (no extra collective)",
          "[local_sgd][sim]") {
  struct observer {
    std::size_t* seen;
    void on_round_end(const loco::algorithm::round_info<double>&) { ++*seen; }
  };
  struct stopper {
    bool on_round_end(const loco::algorithm::round_info<double>&) { return false; }
  };
  using driver =
      loco::local_sgd<exact, loco::comm::simulated, loco::merge::average, loco::stepsize::constant>;
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(5, 2);
  driver algo(exact{}, loco::merge::average{}, loco::stepsize::constant(0.1), opt);
  loco::sim::options sim;
  sim.link = loco::sim::link_model(1e-3, 1e6);
  // Virtual end time and collective count of a run with the given callbacks.
  const auto run_with = [&](auto... callbacks) {
    return loco::comm::run_simulated(
        workers,
        [&](loco::comm::simulated& comm) {
          auto f = make_worker(comm.rank());
          const vec x0 = start();
          algo.run(comm, f, std::span<const double>(x0), callbacks...);
        },
        sim);
  };
  std::size_t seen = 0;
  const auto plain = run_with();
  const auto observed = run_with(observer{&seen});
  const auto stoppable = run_with(stopper{});
  CHECK(seen == workers * 5);
  CHECK(observed.end_time() == plain.end_time());
  CHECK(observed.count(loco::sim::event_kind::collective) ==
        plain.count(loco::sim::event_kind::collective));
  // A hook that may stop adds one small allreduce per round, and its latency.
  CHECK(stoppable.count(loco::sim::event_kind::collective) >
        plain.count(loco::sim::event_kind::collective));
  CHECK(stoppable.end_time() > plain.end_time());
}
