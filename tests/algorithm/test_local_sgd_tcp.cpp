// local_sgd over comm::tcp: 3 ranks as threads on 127.0.0.1 (the
// tests/comm_tcp harness). Every alias must equal its plain-loop reference,
// as on in_process; overlap "until the aggregate arrives" is timing-dependent
// here, so it is checked for agreement and convergence only.
#include <catch2/catch.hpp>

#include "../comm_tcp/tcp_world.hpp"
#include "../support/local_sgd_aliases.hpp"
#include "../support/local_sgd_reference.hpp"

#include <cmath>
#include <cstring>
#include <loco/aliases.hpp>
#include <vector>

using namespace local_sgd_reference;

TEST_CASE("every local_sgd alias equals its plain-loop reference over tcp", "[local_sgd][tcp]") {
  for (const alias a : all_aliases()) {
    INFO(name_of(a));
    std::vector<loco::algorithm::local_sgd_result<double>> got(workers);
    tcp_test::run_threads(workers, [&](loco::comm::tcp& comm) {
      got[static_cast<std::size_t>(comm.rank())] = run_alias(a, comm);
    });
    for (int i = 0; i < workers; ++i)
      CHECK(check_alias(a, i, got[static_cast<std::size_t>(i)]) == "");
  }
}

TEST_CASE("loscar_sgd with overlap until arrival over tcp: ranks agree and converge",
          "[local_sgd][tcp][loscar]") {
  constexpr std::size_t rounds = 300, max_overlap = 4;
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(rounds, 1);
  opt.local_steps = {1, 2, 3};
  opt.overlap_until_arrival = true;
  opt.max_overlap_steps = max_overlap;
  std::vector<loco::algorithm::local_sgd_result<double>> got(workers);
  tcp_test::run_threads(workers, [&](loco::comm::tcp& comm) {
    loco::loscar_sgd<loco::comm::tcp> driver(loco::compress::random_k_unscaled(0.4, 5), {},
                                             loco::stepsize::constant(0.05), opt);
    auto f = make_worker(comm.rank());
    const vec x0 = start();
    got[static_cast<std::size_t>(comm.rank())] = driver.run(comm, f, std::span<const double>(x0));
  });

  // The minimizer of the mean objective: sum a_i b_i / sum a_i.
  vec optimum(dim, 0.0);
  double total = 0.0;
  for (int i = 0; i < workers; ++i) {
    const auto f = make_worker(i);
    total += f.a;
    for (std::size_t j = 0; j < dim; ++j) optimum[j] += f.a * f.b[j];
  }
  for (auto& v : optimum) v /= total;
  const auto distance = [&](const vec& x) {
    double s = 0.0;
    for (std::size_t j = 0; j < dim; ++j) s += (x[j] - optimum[j]) * (x[j] - optimum[j]);
    return std::sqrt(s);
  };
  const double initial = distance(start());
  for (int i = 0; i < workers; ++i) {
    const auto& r = got[static_cast<std::size_t>(i)];
    INFO("worker " << i << ": overlap steps " << r.stats.overlap_steps << ", distance "
                   << distance(r.average) << " from " << initial);
    // Every rank reports the same average, bit for bit.
    REQUIRE(r.average.size() == dim);
    CHECK(std::memcmp(r.average.data(), got[0].average.data(), dim * sizeof(double)) == 0);
    CHECK(r.stats.rounds == rounds);
    CHECK(r.stats.overlap_steps <= rounds * max_overlap);
    // Heterogeneous local work leaves a small drift; far below the start.
    CHECK(distance(r.average) < 0.1 * initial);
  }
}
