// A worker whose gradient turns NaN at one step, on each driver. By default
// the driver throws non_finite_error naming the worker and the step before
// anything is sent; with skip_update or zero every rank finishes with a
// finite model that equals, bit for bit, a clean run in which that worker
// produced the finite gradient the policy stands for: so no NaN reached the
// other workers' state.
#include <catch2/catch.hpp>

#include "../support/test_policies.hpp"

#include <cmath>
#include <limits>
#include <loco/algorithm/async_sgd.hpp>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/error.hpp>
#include <loco/merge/average.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>
#include <string>
#include <vector>

namespace {

using vec = std::vector<double>;
using raw = testing_policies::raw;
constexpr std::size_t dim = 4;
constexpr std::size_t bad_entry = 2;

// What the faulty worker's gradient is at its bad call.
enum class fault {
  none,         // a clean run
  nan,          // entry bad_entry is NaN
  zero_entry,   // entry bad_entry is 0 (what the zero policy makes of the NaN)
  zero_all,     // all zeros (what skip_update means for local_sgd and async_sgd)
  repeat_last,  // the previous gradient (compressed_amsgrad's skip with a lossless compressor)
};

// f_r(x) = 0.5 a_r ||x - b_r||^2; rank `faulty` misbehaves on call `bad_call`.
struct faulty_quadratic {
  using value_type = double;
  int rank = 0;
  int faulty = 1;
  int bad_call = 4;
  fault mode = fault::none;
  int calls = 0;
  vec last = vec(dim, 0.0);
  std::size_t dimension() const { return dim; }
  double loss(std::span<const double> x) const {
    double s = 0;
    for (std::size_t j = 0; j < dim; ++j) s += (x[j] - b(j)) * (x[j] - b(j));
    return 0.5 * a() * s;
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream&) {
    for (std::size_t j = 0; j < dim; ++j) g[j] = a() * (x[j] - b(j));
    if (rank == faulty && ++calls == bad_call) {
      switch (mode) {
        case fault::none:
          break;
        case fault::nan:
          g[bad_entry] = std::numeric_limits<double>::quiet_NaN();
          break;
        case fault::zero_entry:
          g[bad_entry] = 0.0;
          break;
        case fault::zero_all:
          for (auto& v : g) v = 0.0;
          break;
        case fault::repeat_last:
          for (std::size_t j = 0; j < dim; ++j) g[j] = last[j];
          break;
      }
    }
    for (std::size_t j = 0; j < dim; ++j) last[j] = g[j];
    return loss(x);
  }
  double a() const { return 1.0 + 0.25 * rank; }
  double b(std::size_t j) const { return std::cos(1.0 + rank + static_cast<double>(j)); }
};

bool all_finite(const vec& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const loco::non_finite_error& e) {
    return e.what();
  }
  return "no non_finite_error";
}

// ---------------------------------------------------------------- local_sgd
constexpr int local_ranks = 3;

std::vector<loco::algorithm::local_sgd_result<double>> run_local(fault mode,
                                                                 loco::non_finite_policy policy) {
  using driver =
      loco::local_sgd<raw, loco::comm::in_process, loco::merge::average, loco::stepsize::constant>;
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(4, 3);
  opt.on_non_finite = policy;
  driver algo(raw{}, loco::merge::average{}, loco::stepsize::constant(0.1), opt);
  std::vector<loco::algorithm::local_sgd_result<double>> out(local_ranks);
  loco::comm::run_in_process(local_ranks, [&](loco::comm::in_process& comm) {
    faulty_quadratic f{.rank = comm.rank(), .mode = mode};
    const vec x0(dim, 0.5);
    out[static_cast<std::size_t>(comm.rank())] = algo.run(comm, f, std::span<const double>(x0));
  });
  return out;
}

// ---------------------------------------------------------------- async_sgd
// On the simulator, so the order of events (and the result) is exact.
loco::algorithm::async_sgd_result<double> run_async(fault mode, loco::non_finite_policy policy,
                                                    std::vector<vec>* models = nullptr) {
  using driver = loco::async_sgd<raw, loco::comm::simulated, loco::stepsize::constant>;
  driver algo(raw{}, loco::stepsize::constant(0.2),
              {.updates = 30, .tail_fraction = 0.5, .on_non_finite = policy});
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed({0.0, 1.0, 1.5, 2.5});
  loco::algorithm::async_sgd_result<double> out;
  if (models != nullptr) models->assign(4, vec());
  loco::comm::run_simulated(
      4,
      [&](loco::comm::simulated& comm) {
        // Worker index = rank - 1: the faulty worker is rank 2, worker 1.
        loco::sim::timed f(
            faulty_quadratic{.rank = comm.rank(), .faulty = 2, .bad_call = 3, .mode = mode},
            comm.clock());
        const vec x0(dim, 0.5);
        auto r = algo.run(comm, f, std::span<const double>(x0));
        if (models != nullptr) (*models)[static_cast<std::size_t>(comm.rank())] = r.model;
        if (comm.rank() == 0) out = r;
      },
      opt);
  return out;
}

// ---------------------------------------------------------------- compressed_amsgrad
template <class C = raw>
std::vector<loco::algorithm::compressed_amsgrad_result<double>> run_cd_adam(
    fault mode, loco::non_finite_policy policy,
    loco::algorithm::compression_strategy strategy =
        loco::algorithm::compression_strategy::difference) {
  using driver = loco::compressed_amsgrad<C, loco::comm::in_process, loco::stepsize::constant>;
  loco::algorithm::compressed_amsgrad_options opt;
  opt.iterations = 12;
  opt.on_non_finite = policy;
  opt.strategy = strategy;
  driver algo(C{}, loco::stepsize::constant(0.05), opt);
  std::vector<loco::algorithm::compressed_amsgrad_result<double>> out(local_ranks);
  loco::comm::run_in_process(local_ranks, [&](loco::comm::in_process& comm) {
    faulty_quadratic f{.rank = comm.rank(), .mode = mode};
    const vec x0(dim, 0.5);
    out[static_cast<std::size_t>(comm.rank())] = algo.run(comm, f, std::span<const double>(x0));
  });
  return out;
}

}  // namespace

TEST_CASE("local_sgd: a NaN gradient throws by default, naming worker and step",
          "[local_sgd][finite]") {
  const auto msg = error_of([] { run_local(fault::nan, loco::non_finite_policy::throw_error); });
  CHECK_THAT(msg, Catch::Contains("local_sgd: gradient of worker 1 at step 4") &&
                      Catch::Contains("at index 2"));
}

TEST_CASE("local_sgd: skip_update and zero keep every worker finite and equal to a clean run",
          "[local_sgd][finite]") {
  const auto skip = run_local(fault::nan, loco::non_finite_policy::skip_update);
  const auto skip_ref = run_local(fault::zero_all, loco::non_finite_policy::throw_error);
  const auto zero = run_local(fault::nan, loco::non_finite_policy::zero);
  const auto zero_ref = run_local(fault::zero_entry, loco::non_finite_policy::throw_error);
  const auto clean = run_local(fault::none, loco::non_finite_policy::throw_error);
  for (std::size_t r = 0; r < local_ranks; ++r) {
    INFO("rank " << r);
    CHECK(all_finite(skip[r].local));
    CHECK(all_finite(zero[r].local));
    CHECK(skip[r].local == skip_ref[r].local);
    CHECK(skip[r].average == skip_ref[r].average);
    CHECK(zero[r].local == zero_ref[r].local);
    CHECK(zero[r].average == zero_ref[r].average);
    CHECK(skip[r].stats.skipped_steps == (r == 1 ? 1u : 0u));
    CHECK(zero[r].stats.skipped_steps == (r == 1 ? 1u : 0u));
  }
  // The fault changed something (the references are not the clean run).
  CHECK(skip[0].average != clean[0].average);
  CHECK(zero[0].average != clean[0].average);
}

TEST_CASE("async_sgd: a NaN gradient throws by default on the worker, before it is sent",
          "[async_sgd][finite]") {
  const auto msg = error_of([] { run_async(fault::nan, loco::non_finite_policy::throw_error); });
  CHECK_THAT(msg, Catch::Contains("async_sgd: gradient of worker 1 at its step 3") &&
                      Catch::Contains("at index 2"));
}

TEST_CASE("async_sgd: skip_update and zero keep the server's model finite and equal to a clean run",
          "[async_sgd][finite]") {
  std::vector<vec> skip_models, zero_models;
  const auto skip = run_async(fault::nan, loco::non_finite_policy::skip_update, &skip_models);
  const auto skip_ref = run_async(fault::zero_all, loco::non_finite_policy::throw_error);
  const auto zero = run_async(fault::nan, loco::non_finite_policy::zero, &zero_models);
  const auto zero_ref = run_async(fault::zero_entry, loco::non_finite_policy::throw_error);
  const auto clean = run_async(fault::none, loco::non_finite_policy::throw_error);
  CHECK(all_finite(skip.model));
  CHECK(all_finite(zero.model));
  CHECK(skip.model == skip_ref.model);
  CHECK(skip.tail_average == skip_ref.tail_average);
  CHECK(zero.model == zero_ref.model);
  CHECK(zero.tail_average == zero_ref.tail_average);
  CHECK(skip.model != clean.model);
  CHECK(skip.stats.updates == 30);
  for (std::size_t r = 0; r < 4; ++r) {
    CHECK(skip_models[r] == skip.model);  // every rank ends with the server's model
    CHECK(zero_models[r] == zero.model);
  }
}

TEST_CASE("compressed_amsgrad: a NaN gradient throws by default, naming worker and step",
          "[cd_adam][finite]") {
  const auto msg = error_of([] { run_cd_adam(fault::nan, loco::non_finite_policy::throw_error); });
  CHECK_THAT(msg, Catch::Contains("compressed_amsgrad: gradient of worker 1 at step 4") &&
                      Catch::Contains("at index 2"));
}

TEST_CASE("compressed_amsgrad: skip_update sends a zero contribution, zero drops the bad entries",
          "[cd_adam][finite]") {
  // With a lossless compressor h_i equals the last gradient (up to
  // rounding), so a skipped step (zero difference, h_i kept) is the clean
  // run in which the worker repeats its previous gradient.
  const auto skip = run_cd_adam(fault::nan, loco::non_finite_policy::skip_update);
  const auto skip_ref = run_cd_adam(fault::repeat_last, loco::non_finite_policy::throw_error);
  const auto zero = run_cd_adam(fault::nan, loco::non_finite_policy::zero);
  const auto zero_ref = run_cd_adam(fault::zero_entry, loco::non_finite_policy::throw_error);
  const auto clean = run_cd_adam(fault::none, loco::non_finite_policy::throw_error);
  for (std::size_t r = 0; r < local_ranks; ++r) {
    INFO("rank " << r);
    CHECK(all_finite(skip[r].model));
    CHECK(all_finite(zero[r].model));
    // h_i + (g - h_i) may differ from g in the last bit, so the repeated
    // gradient leaves a rounding-sized difference the skip does not send.
    for (std::size_t j = 0; j < dim; ++j) {
      CHECK(skip[r].model[j] == Approx(skip_ref[r].model[j]).epsilon(1e-12).margin(1e-14));
    }
    CHECK(zero[r].model == zero_ref[r].model);
    CHECK(skip[r].model == skip[0].model);  // replicas stay identical
    CHECK(skip[r].stats.skipped_steps == (r == 1 ? 1u : 0u));
  }
  CHECK(skip[0].model != clean[0].model);
  CHECK(zero[0].model != clean[0].model);
  // The naive strategy (no memory): a skipped step contributes exactly 0.
  using strategy = loco::algorithm::compression_strategy;
  const auto naive = run_cd_adam(fault::nan, loco::non_finite_policy::skip_update, strategy::naive);
  const auto naive_ref =
      run_cd_adam(fault::zero_all, loco::non_finite_policy::throw_error, strategy::naive);
  for (std::size_t r = 0; r < local_ranks; ++r) CHECK(naive[r].model == naive_ref[r].model);
  CHECK(all_finite(naive[2].model));
}

TEST_CASE("async_sgd: a gradient without an outstanding job is a protocol error", "[async_sgd]") {
  // Ranks 1 and 2 speak the protocol by hand; rank 1 answers its one job twice.
  using driver = loco::async_sgd<raw, loco::comm::in_process, loco::stepsize::constant>;
  driver algo(raw{}, loco::stepsize::constant(0.1), {.updates = 1});
  try {
    loco::comm::run_in_process(3, [&](loco::comm::in_process& comm) {
      if (comm.rank() == 0) {
        faulty_quadratic f;
        const vec x0(dim, 0.5);
        algo.run(comm, f, std::span<const double>(x0));
        return;
      }
      loco::wire::buffer job;
      comm.recv(0, driver::tag_job, job);
      if (comm.rank() == 1) {
        loco::wire::buffer g;
        g.put<std::uint64_t>(0);
        for (std::size_t j = 0; j < dim; ++j) g.put<double>(1.0);
        comm.send(0, driver::tag_gradient, g.bytes());
        comm.send(0, driver::tag_gradient, g.bytes());
      }
      comm.recv(0, driver::tag_job, job);  // the stop, or peer_lost when the server fails
    });
    FAIL("no protocol_error");
  } catch (const loco::protocol_error& e) {
    CHECK(e.source() == "async_sgd worker rank 1");
    CHECK(e.field() == "gradient");
    CHECK_THAT(e.what(), Catch::Contains("without an outstanding job"));
  }
}
