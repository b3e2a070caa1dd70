// comm::simulated: the conformance suite, the link and collective cost
// formulas, and bit-identical replays of a driver.
#include <catch2/catch.hpp>

#include "../support/test_policies.hpp"

#include <cmath>
#include <loco/comm/simulated.hpp>
#include <loco/concepts/communicator.hpp>

#include "../comm/conformance.hpp"

static_assert(loco::check_communicator<loco::comm::simulated>());

namespace {
struct simulated_world {
  template <class Fn>
  static void run(int n, Fn fn) {
    loco::comm::run_simulated(n, [&](loco::comm::simulated& c) { fn(c); });
  }
};
}  // namespace

TEST_CASE("simulated passes the communicator conformance suite", "[sim]") {
  for (int n : {1, 2, 3, 4}) {
    INFO("ranks " << n);
    REQUIRE_NOTHROW(conformance::run_all<simulated_world>(n));
  }
}

#include <cstring>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/sim/hooks.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>
#include <vector>

using loco::comm::run_simulated;
using loco::comm::simulated;

namespace {
std::vector<std::byte> bytes_of(std::size_t n, int fill) {
  return std::vector<std::byte>(n, static_cast<std::byte>(fill));
}
}  // namespace

TEST_CASE("a message of B bytes over a link of bandwidth W arrives after latency + B/W", "[sim]") {
  loco::sim::options opt;
  opt.link = loco::sim::link_model(0.25, 1024.0);  // 0.25 s, 1 KiB/s
  opt.link.set(1, 0, 2.0, std::numeric_limits<double>::infinity());
  std::vector<double> seen(4, -1.0);
  const auto rep = run_simulated(
      2,
      [&](simulated& c) {
        loco::wire::buffer in;
        if (c.rank() == 0) {
          c.advance(1.5);
          const auto big = bytes_of(4096, 1);
          c.send(1, 1, big);      // on the wire [1.5, 5.5), arrives 5.75
          c.send(1, 2, big);      // waits for the link: [5.5, 9.5), arrives 9.75
          CHECK(c.now() == 1.5);  // sending is buffered
          c.recv(1, 3, in);
          seen[2] = c.now();
        } else {
          c.recv(0, 1, in);
          seen[0] = c.now();
          CHECK(in.size() == 4096);
          c.recv(0, 2, in);
          seen[1] = c.now();
          const auto small = bytes_of(100, 2);
          c.send(0, 3, small);  // the overridden link 1 -> 0: latency 2, no bandwidth limit
          c.advance(100.0);
          c.recv(0, 4, in);  // arrived long ago: the clock does not move back
          seen[3] = c.now();
        }
        if (c.rank() == 0) c.send(1, 4, std::span<const std::byte>());
      },
      opt);
  CHECK(seen[0] == 1.5 + 0.25 + 4096.0 / 1024.0);
  CHECK(seen[1] == 1.5 + 0.25 + 2 * 4096.0 / 1024.0);
  CHECK(seen[2] == seen[1] + 2.0);
  CHECK(seen[3] == seen[1] + 100.0);
  CHECK(rep.finish_time[1] == seen[3]);
  CHECK(rep.bytes_sent == 2 * 4096 + 100);
}

TEST_CASE("recv from any source takes the earliest arrival, not the earliest send", "[sim]") {
  loco::sim::options opt;
  opt.link.set(2, 0, 10.0, std::numeric_limits<double>::infinity());  // a slow link 2 -> 0
  std::vector<int> order;
  run_simulated(
      3,
      [&](simulated& c) {
        const auto p = bytes_of(8, c.rank());
        if (c.rank() == 2) {
          c.advance(1.0);  // sends first, arrives at 11
          c.send(0, 7, p);
        } else if (c.rank() == 1) {
          c.advance(3.0);  // sends later, arrives at 3
          c.send(0, 7, p);
        } else {
          loco::wire::buffer in;
          order.push_back(c.recv(loco::comm::any_source, 7, in));
          CHECK(c.now() == 3.0);
          order.push_back(c.recv(loco::comm::any_source, 7, in));
          CHECK(c.now() == 11.0);
        }
      },
      opt);
  CHECK(order == std::vector<int>{1, 2});
}

TEST_CASE("collectives complete at the latest arrival plus their documented cost", "[sim]") {
  const double L = 0.5, W = 100.0;  // seconds, bytes per second
  const int n = 4;
  loco::sim::options opt;
  opt.link = loco::sim::link_model(L, W);
  std::vector<std::vector<double>> t(static_cast<std::size_t>(n));
  run_simulated(
      n,
      [&](simulated& c) {
        const int r = c.rank();
        auto& mine = t[static_cast<std::size_t>(r)];
        c.advance(r);  // arrivals at 0, 1, 2, 3: the latest is 3
        c.barrier();
        mine.push_back(c.now());
        c.advance(r);
        std::vector<float> v(25, 1.0f);  // 100 bytes
        c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
        mine.push_back(c.now());
        CHECK(v[24] == 4.0f);
        c.advance(r);
        const auto p = bytes_of(100 * static_cast<std::size_t>(r + 1), r);  // 1000 bytes in all
        std::vector<loco::wire::buffer> all;
        c.allgather(p, all);
        mine.push_back(c.now());
        c.advance(r);
        loco::wire::buffer b;
        if (r == 2) b.assign(bytes_of(200, 9));
        c.broadcast(b, 2);
        mine.push_back(c.now());
        CHECK(b.size() == 200);
        c.advance(r);
        c.gather(p, all, 1);
        mine.push_back(c.now());
      },
      opt);
  // Written from the formulas in docs/simulation.md, start by start.
  const double lg = 2.0;  // ceil(log2 4)
  double start = 3.0;
  double barrier_done = start + 2 * lg * L;
  for (int r = 0; r < n; ++r) CHECK(t[static_cast<std::size_t>(r)][0] == Approx(barrier_done));
  start = barrier_done + 3;
  const double allreduce_done = start + 2 * (n - 1) * L + 2.0 * (n - 1) / n * 100 / W;
  for (int r = 0; r < n; ++r) CHECK(t[static_cast<std::size_t>(r)][1] == Approx(allreduce_done));
  start = allreduce_done + 3;
  double latest_gather = 0;
  for (int r = 0; r < n; ++r) {
    const double others = 1000.0 - 100.0 * (r + 1);
    CHECK(t[static_cast<std::size_t>(r)][2] == Approx(start + (n - 1) * L + others / W));
    latest_gather = std::max(latest_gather, t[static_cast<std::size_t>(r)][2]);
  }
  // Ranks leave an allgather at different times; the broadcast starts at the latest + 3.
  double latest = 0;
  for (int r = 0; r < n; ++r) latest = std::max(latest, t[static_cast<std::size_t>(r)][2] + r);
  const double broadcast_done = latest + lg * L + 200 / W;
  for (int r = 0; r < n; ++r) CHECK(t[static_cast<std::size_t>(r)][3] == Approx(broadcast_done));
  start = broadcast_done + 3;
  CHECK(t[1][4] == Approx(start + L + (1000.0 - 200.0) / W));  // the root receives the others
  CHECK(t[0][4] == Approx(start + L + 100.0 / W));
  CHECK(t[3][4] == Approx(start + L + 400.0 / W));
}

TEST_CASE("non-blocking operations complete in virtual time", "[sim]") {
  loco::sim::options opt;
  opt.link = loco::sim::link_model(1.0, 1000.0);
  run_simulated(
      2,
      [&](simulated& c) {
        if (c.rank() == 1) {
          c.advance(4.0);
          c.send(0, 1, bytes_of(1000, 3));  // arrives at 4 + 1 + 1 = 6
        } else {
          loco::wire::buffer in;
          auto r = c.irecv(1, 1, in);
          CHECK_FALSE(r.wait_for(std::chrono::milliseconds(2500)));  // virtual: 2.5 s
          CHECK(c.now() == 2.5);
          c.advance(1.0);
          CHECK_FALSE(r.test());  // 3.5 plus a poll < 6
          c.advance(10.0);
          CHECK(r.test());
          CHECK(r.source() == 1);
          CHECK(in.size() == 1000);
        }
        // iallreduce: 2 ranks, 8 bytes: 2 * 1 * 1 + 8 / 1000 after the later arrival.
        std::vector<double> v{1.0};
        const double before = c.now();
        auto req = c.iallreduce(std::span<double>(v), loco::comm::reduce_op::sum);
        req.wait();
        CHECK(c.now() >= before + 2.0);  // 2 (n - 1) latency: the ring's 2 steps
        CHECK(v[0] == 2.0);
        CHECK(req.test());
      },
      opt);
}

namespace {

using vec = std::vector<double>;
constexpr std::size_t dim = 6;

// f_i(x) = 0.5 a_i ||x - b_i||^2 plus Gaussian gradient noise from the driver's stream.
struct noisy_quadratic {
  using value_type = double;
  double a;
  vec b;
  std::size_t dimension() const { return b.size(); }
  double loss(std::span<const double> x) const {
    double s = 0;
    for (std::size_t j = 0; j < b.size(); ++j) s += (x[j] - b[j]) * (x[j] - b[j]);
    return 0.5 * a * s;
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream& rng) {
    for (std::size_t j = 0; j < b.size(); ++j) g[j] = a * (x[j] - b[j]) + 0.1 * rng.normal();
    return loss(x);
  }
};

noisy_quadratic make_worker(int i) {
  vec b(dim);
  for (std::size_t j = 0; j < dim; ++j)
    b[j] = std::cos(0.5 + static_cast<double>(i * 5) + static_cast<double>(j));
  return {0.5 + 0.2 * i, b};
}

// Lossy, so local_sgd allgathers bytes.
using sixteenths = testing_policies::multiples_of<16>;

struct replay {
  std::vector<vec> models;
  loco::sim::report report;
};

template <class Comm>
using driver =
    loco::local_sgd<sixteenths, Comm, loco::merge::delay_corrected, loco::stepsize::constant>;

replay run_local_sgd(std::uint64_t seed, bool until_arrival) {
  loco::algorithm::local_sgd_options o;
  o.schedule = loco::algorithm::schedule::rounds(12, 5);
  o.local_steps = {3, 5, 4, 6};
  o.overlap_until_arrival = until_arrival;
  o.overlap_steps = {2};
  o.max_overlap_steps = 8;
  o.seed = 11;
  driver<simulated> algo(sixteenths{}, loco::merge::delay_corrected{},
                         loco::stepsize::constant(0.2), o);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::exponential({0.01, 0.02, 0.015, 0.05});
  opt.link = loco::sim::link_model(2e-3, 1e4);
  opt.seed = seed;
  opt.log_events = true;
  replay out;
  out.models.resize(4);
  out.report = run_simulated(
      4,
      [&](simulated& c) {
        loco::sim::timed f(make_worker(c.rank()), c.clock());
        const vec x0(dim, 0.5);
        auto res = algo.run(c, f, std::span<const double>(x0));
        res.local.insert(res.local.end(), res.average.begin(), res.average.end());
        out.models[static_cast<std::size_t>(c.rank())] = res.local;
      },
      opt);
  return out;
}

bool same_bytes(const vec& a, const vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

}  // namespace

TEST_CASE("two simulated runs with one seed give identical models and event logs", "[sim]") {
  const std::uint64_t seed = 20260501;
  INFO("seed " << seed);
  // Overlap "until the aggregate arrives" is timing-dependent on a real
  // transport; in virtual time it replays exactly.
  const auto a = run_local_sgd(seed, true);
  const auto b = run_local_sgd(seed, true);
  for (std::size_t r = 0; r < 4; ++r) CHECK(same_bytes(a.models[r], b.models[r]));
  REQUIRE(a.report.log.size() == b.report.log.size());
  CHECK(a.report.log == b.report.log);
  CHECK(a.report.finish_time == b.report.finish_time);
  CHECK(a.report.count(loco::sim::event_kind::compute) > 4 * 12 * 3);
  CHECK(a.report.count(loco::sim::event_kind::collective) >= 4 * 12);
  CHECK(a.report.end_time() > 0.0);

  // A different seed draws different compute times: the log must change.
  const auto c = run_local_sgd(seed + 1, true);
  CHECK(c.report.log != a.report.log);
}

TEST_CASE("the same driver gives in_process's result bit for bit on simulated", "[sim]") {
  const auto sim = run_local_sgd(7, false);
  loco::algorithm::local_sgd_options o;
  o.schedule = loco::algorithm::schedule::rounds(12, 5);
  o.local_steps = {3, 5, 4, 6};
  o.overlap_steps = {2};
  o.seed = 11;
  driver<loco::comm::in_process> algo(sixteenths{}, loco::merge::delay_corrected{},
                                      loco::stepsize::constant(0.2), o);
  std::vector<vec> models(4);
  loco::comm::run_in_process(4, [&](loco::comm::in_process& c) {
    auto f = make_worker(c.rank());
    const vec x0(dim, 0.5);
    auto res = algo.run(c, f, std::span<const double>(x0));
    res.local.insert(res.local.end(), res.average.begin(), res.average.end());
    models[static_cast<std::size_t>(c.rank())] = res.local;
  });
  for (std::size_t r = 0; r < 4; ++r) CHECK(same_bytes(models[r], sim.models[r]));
}

TEST_CASE("the free hooks charge virtual time and do nothing on a real communicator", "[sim]") {
  run_simulated(1,
                [](simulated& c) {
                  loco::sim::charge(c, 0.75);
                  loco::sim::charge_compute(c);  // the default compute model costs nothing
                  CHECK(loco::sim::virtual_time(c) == 0.75);
                },
                {});
  loco::comm::run_in_process(1, [](loco::comm::in_process& c) {
    loco::sim::charge(c, 0.75);
    CHECK_FALSE(loco::sim::virtual_time(c).has_value());
  });
}

// ---------------------------------------------------------------- fibers

TEST_CASE("ranks are fibers: 20,000 ranks allreduce and exchange messages on one thread",
          "[sim][fiber]") {
#if defined(__SANITIZE_THREAD__)
  const int n = 4000;  // ThreadSanitizer allows about 8000 fibers
#else
  const int n = 20000;
#endif
  std::vector<double> sums(static_cast<std::size_t>(n), 0.0);
  std::vector<int> heard(static_cast<std::size_t>(n), -1);
  const auto rep = run_simulated(n, [&](simulated& c) {
    double v = c.rank() + 1.0;
    c.allreduce(std::span<double>(&v, 1), loco::comm::reduce_op::sum);
    sums[static_cast<std::size_t>(c.rank())] = v;
    // A ring: each rank tells its successor its rank.
    const int r = c.rank();
    const std::byte me[1] = {static_cast<std::byte>(r % 251)};
    c.send((r + 1) % n, 3, me);
    loco::wire::buffer in;
    const int from = c.recv((r + n - 1) % n, 3, in);
    heard[static_cast<std::size_t>(r)] = from;
  });
  const double expect = static_cast<double>(n) * (n + 1) / 2.0;
  for (int r = 0; r < n; ++r) {
    REQUIRE(sums[static_cast<std::size_t>(r)] == expect);
    REQUIRE(heard[static_cast<std::size_t>(r)] == (r + n - 1) % n);
  }
  CHECK(rep.count(loco::sim::event_kind::send) == static_cast<std::uint64_t>(n));
}

TEST_CASE("a rank may block inside a catch block while other ranks throw and catch",
          "[sim][fiber]") {
  // Rank 0 catches, then waits inside its handler while rank 1 throws and
  // catches twice; each handler must still see its own exception.
  std::vector<std::string> seen(2);
  run_simulated(2, [&](simulated& c) {
    loco::wire::buffer in;
    const auto r = static_cast<std::size_t>(c.rank());
    if (c.rank() == 0) {
      try {
        throw std::runtime_error("zero");
      } catch (const std::exception&) {
        c.recv(1, 1, in);  // rank 1 runs its handlers meanwhile
        try {
          throw;  // the exception being handled is still rank 0's
        } catch (const std::runtime_error& again) {
          seen[r] = again.what();
        }
      }
      return;
    }
    for (int k = 0; k < 2; ++k) {
      try {
        throw std::logic_error("one");
      } catch (const std::logic_error& e) {
        c.advance(1.0);
        seen[r] += e.what();
        CHECK(std::uncaught_exceptions() == 0);
      }
    }
    const std::byte b[1] = {};
    c.send(0, 1, b);
  });
  CHECK(seen[0] == "zero");
  CHECK(seen[1] == "oneone");
}

TEST_CASE("stack_size below 16 KiB is refused before any rank runs", "[sim][fiber]") {
  loco::sim::options opt;
  opt.stack_size = 8 * 1024;
  bool ran = false;
  REQUIRE_THROWS_WITH(run_simulated(
                          2, [&](simulated&) { ran = true; }, opt),
                      Catch::Contains("stack_size 8192"));
  CHECK_FALSE(ran);
}
