// comm::simulated under faults: drop-outs, deadlocks and failing ranks end
// with loco::peer_lost or a deadlock error, never a hang; plus the compute
// model's distributions and settings.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <loco/comm/simulated.hpp>
#include <sstream>
#include <string>
#include <vector>

using loco::comm::any_source;
using loco::comm::run_simulated;
using loco::comm::simulated;

namespace {
std::span<const std::byte> four_bytes() {
  static const std::byte b[4] = {};
  return b;
}
}  // namespace

TEST_CASE("a worker that drops out is reported as peer_lost to a rank waiting for it",
          "[sim][faults]") {
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model(1.0).drop_out(2, 5.5);
  opt.log_events = true;
  int received = 0;
  std::string why;
  const auto rep = run_simulated(
      3,
      [&](simulated& c) {
        if (c.rank() == 0) {
          loco::wire::buffer in;
          try {
            for (;;) {
              c.recv(2, 1, in);
              ++received;
            }
          } catch (const loco::peer_lost& e) {
            CHECK(e.rank() == 2);
            why = e.what();
            CHECK(c.now() == 5.5);
          }
        } else if (c.rank() == 2) {
          for (;;) {
            c.compute();  // one second each: steps end at 1, 2, ..., 5; then 5.5
            c.send(0, 1, four_bytes());
          }
        }
      },
      opt);
  CHECK(received == 5);
  CHECK(why.find("dropped out at t=5.5") != std::string::npos);
  CHECK(rep.dropped[2]);
  CHECK_FALSE(rep.dropped[0]);
  CHECK(rep.finish_time[2] == 5.5);
  CHECK(rep.count(loco::sim::event_kind::drop_out) == 1);
  CHECK(rep.log.back().kind == loco::sim::event_kind::finish);
}

TEST_CASE("an asynchronous server keeps going with the workers that remain", "[sim][faults]") {
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed({0.0, 1.0, 1.5, 2.0}).drop_out(3, 20.0);
  std::vector<int> from_count(4, 0);
  double last = 0;
  run_simulated(
      4,
      [&](simulated& c) {
        loco::wire::buffer in;
        if (c.rank() == 0) {
          for (int g = 0; g < 100; ++g) {
            const int from = c.recv(any_source, 1, in);
            ++from_count[static_cast<std::size_t>(from)];
            c.send(from, 2, four_bytes());
          }
          last = c.now();
          const std::byte stop[1] = {};
          for (int w = 1; w < 4; ++w) c.send(w, 2, stop);  // rank 3 is gone: dropped
          return;
        }
        for (;;) {
          c.send(0, 1, four_bytes());
          c.recv(0, 2, in);
          if (in.size() == 1) return;  // stop
          c.compute();
        }
      },
      opt);
  CHECK(from_count[3] == 10);  // sends at 0, 2, ..., 18; at 20 it is gone
  CHECK(from_count[1] + from_count[2] == 90);
  CHECK(last > 20.0);
}

TEST_CASE("a collective missing a dropped-out rank fails with peer_lost naming it",
          "[sim][faults]") {
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model(1.0).drop_out(1, 3.0);
  try {
    run_simulated(
        3,
        [](simulated& c) {
          for (int k = 0; k < 10; ++k) c.compute();
          std::vector<float> v(4, 1.0f);
          c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
        },
        opt);
    FAIL("the allreduce cannot complete");
  } catch (const loco::peer_lost& e) {
    CHECK(e.rank() == 1);
    CHECK(std::string(e.what()).find("dropped out at t=3") != std::string::npos);
  }
}

TEST_CASE("a deadlock is reported on every blocked rank instead of hanging", "[sim][faults]") {
  const auto start = std::chrono::steady_clock::now();
  int reported = 0;
  CHECK_THROWS_WITH(
      run_simulated(2,
                    [&](simulated& c) {
                      loco::wire::buffer in;
                      try {
                        c.recv(1 - c.rank(), 1, in);
                      } catch (const loco::error& e) {
                        if (std::string(e.what()).find("deadlock") != std::string::npos) ++reported;
                        throw;
                      }
                    }),
      Catch::Contains("deadlock") && Catch::Contains("waits for a message"));
  CHECK(reported >= 1);
  // Waiting for a rank that has returned is a deadlock too, named at once.
  CHECK_THROWS_WITH(run_simulated(2,
                                  [](simulated& c) {
                                    if (c.rank() == 1) return;
                                    loco::wire::buffer in;
                                    c.recv(1, 1, in);
                                  }),
                    Catch::Contains("from rank 1; rank 1 has finished"));
  CHECK_THROWS_WITH(run_simulated(3,
                                  [](simulated& c) {
                                    if (c.rank() == 2) return;
                                    c.barrier();
                                  }),
                    Catch::Contains("barrier #0") && Catch::Contains("missing rank 2"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("a failing rank wakes the blocked ones with peer_lost and its error is rethrown",
          "[sim][faults]") {
  int lost = 0;
  try {
    run_simulated(3, [&](simulated& c) {
      if (c.rank() == 1) {
        c.advance(2.0);
        throw std::runtime_error("worker crashed");
      }
      try {
        std::vector<double> v(3, 1.0);
        c.allreduce(std::span<double>(v), loco::comm::reduce_op::sum);
      } catch (const loco::peer_lost& e) {
        if (e.rank() == 1) ++lost;
        throw;
      }
    });
    FAIL("the crash must propagate");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "worker crashed");
  }
  CHECK(lost == 2);
}

TEST_CASE("a loop that only polls sees a completion when it happens", "[sim]") {
  const auto rep = run_simulated(2, [](simulated& c) {
    loco::wire::buffer in;
    if (c.rank() == 1) {
      c.advance(1000.0);
      c.send(0, 1, four_bytes());
      return;
    }
    auto r = c.irecv(1, 1, in);
    int polls = 0;
    while (!r.test()) ++polls;
    CHECK(polls < 80);
    CHECK(c.now() >= 1000.0);
    CHECK(c.now() <= std::nextafter(1000.0, 2000.0));
  });
  CHECK(rep.count(loco::sim::event_kind::poll) < 80);
}

TEST_CASE("random compute models have mean tau and replay from the seed", "[sim]") {
  const std::uint64_t seed = 99;
  INFO("seed " << seed);
  const double tau = 2.0, sigma = 0.5;
  const int steps = 20000;
  for (auto model : {loco::sim::compute_model::exponential({tau}),
                     loco::sim::compute_model::log_normal({tau}, sigma)}) {
    double sum = 0, sum_sq = 0;
    for (int s = 0; s < steps; ++s) {
      const double x = model.sample(0, static_cast<std::uint64_t>(s), seed);
      CHECK(x == model.sample(0, static_cast<std::uint64_t>(s), seed));
      sum += x;
      sum_sq += x * x;
    }
    const double mean = sum / steps, var = sum_sq / steps - mean * mean;
    // Exponential: variance tau^2; log-normal with mean tau: (e^{sigma^2} - 1) tau^2.
    const bool expo = model.kind() == loco::sim::compute_model::distribution::exponential;
    const double want_var = expo ? tau * tau : (std::exp(sigma * sigma) - 1) * tau * tau;
    INFO("mean " << mean << ", variance " << var);
    CHECK(std::abs(mean - tau) < 4 * std::sqrt(want_var / steps));
    CHECK(std::abs(var - want_var) < 0.1 * want_var);
    CHECK(model.sample(1, 0, seed) != model.sample(0, 0, seed));  // ranks draw apart
  }
  // The clock advances by exactly the drawn costs.
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::exponential({tau});
  opt.seed = seed;
  double expected = 0;
  for (std::uint64_t s = 0; s < 50; ++s) expected += opt.compute.sample(0, s, seed);
  const auto rep = run_simulated(
      1,
      [](simulated& c) {
        for (int s = 0; s < 50; ++s) c.compute();
      },
      opt);
  CHECK(rep.finish_time[0] == expected);
}

TEST_CASE("simulated settings are checked before any work starts", "[sim]") {
  const auto noop = [](simulated&) {};
  CHECK_THROWS_AS(run_simulated(0, noop), loco::config_error);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed({1.0, 2.0});
  CHECK_THROWS_WITH(run_simulated(3, noop, opt), Catch::Contains("tau has 2 entries for 3 ranks"));
  CHECK_THROWS_AS(loco::sim::compute_model(-1.0), loco::config_error);
  CHECK_THROWS_AS(loco::sim::compute_model::log_normal({1.0}, 0.0), loco::config_error);
  CHECK_THROWS_AS(loco::sim::link_model(-0.1, 1.0), loco::config_error);
  CHECK_THROWS_AS(loco::sim::link_model(0.1, 0.0), loco::config_error);
  opt = {};
  opt.link.set(0, 5, 0.1, 1.0);
  CHECK_THROWS_AS(run_simulated(3, noop, opt), loco::config_error);
  CHECK_THROWS_AS(run_simulated(2,
                                [](simulated& c) {
                                  if (c.rank() == 0) c.send(2, 0, four_bytes());
                                }),
                  loco::config_error);
  CHECK_THROWS_AS(run_simulated(1, [](simulated& c) { c.advance(-1.0); }), loco::config_error);
}

// ---------------------------------------------------------------- availability

TEST_CASE("an offline rank's compute pauses and its messages wait for its return",
          "[sim][availability]") {
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model(1.0);
  opt.availability.offline(1, 2.5, 4.0).offline(2, 0.5, 2.0).offline(3, 0.0, 7.0);
  std::vector<double> end(4, -1.0), got_at(4, -1.0);
  run_simulated(
      4,
      [&](simulated& c) {
        const auto r = static_cast<std::size_t>(c.rank());
        loco::wire::buffer in;
        if (c.rank() == 0) {
          c.advance(1.0);
          c.send(2, 1, four_bytes());  // arrives at 1.0; rank 2 is offline until 2.0
        } else if (c.rank() == 1) {
          for (int k = 0; k < 5; ++k) c.compute();  // 5 s of work with 1.5 s offline
        } else if (c.rank() == 2) {
          c.recv(0, 1, in);
          got_at[r] = c.now();
        }
        end[r] = c.now();  // rank 3 is offline from the start: its clock starts at 7.0
      },
      opt);
  CHECK(end[1] == 6.5);
  CHECK(got_at[2] == 2.0);
  CHECK(end[3] == 7.0);
}

TEST_CASE("failure_detection: a rank offline longer than it is declared lost, as heartbeats would",
          "[sim][availability][faults]") {
  // Rank 1 sends every second, stops at 2.5 for 3 s (a SIGSTOP); rank 2
  // pauses 0.5 s (shorter than the detector: waited for); rank 0 waits on
  // rank 1 and is told at 3.5 that it was declared lost.
  const auto once = [](double detect) {
    loco::sim::options opt;
    opt.compute = loco::sim::compute_model(1.0);
    opt.availability.offline(1, 2.5, 5.5).offline(2, 1.2, 1.7);
    opt.failure_detection = detect;
    struct out {
      int received = 0;
      double lost_at = -1.0, end_2 = -1.0;
      std::string why;
      loco::sim::report rep;
    } o;
    o.rep = run_simulated(
        3,
        [&](simulated& c) {
          loco::wire::buffer in;
          if (c.rank() == 0) {
            try {
              for (int k = 0; k < 8; ++k) {
                c.recv(1, 1, in);
                ++o.received;
              }
            } catch (const loco::peer_lost& e) {
              o.lost_at = c.now();
              o.why = e.what();
              if (e.rank() != 1) throw;
            }
          } else if (c.rank() == 1) {
            for (int k = 0; k < 8; ++k) {
              c.compute();
              c.send(0, 1, four_bytes());
            }
          } else {
            for (int k = 0; k < 3; ++k) c.compute();
            o.end_2 = c.now();
          }
        },
        opt);
    return o;
  };
  const auto o = once(1.0);
  CHECK(o.received == 2);  // sent at 1 and 2; the third step would end at 3.5 + 0.5 = 6
  CHECK(o.lost_at == 3.5);
  CHECK_THAT(o.why, Catch::Contains("lost peer rank 1") &&
                        Catch::Contains("offline since t=2.5 s, declared lost at t=3.5 s"));
  CHECK(o.rep.dropped[1]);
  CHECK(o.rep.finish_time[1] == 3.5);
  CHECK_FALSE(o.rep.dropped[2]);
  CHECK(o.end_2 == 3.5);  // its 0.5 s pause is waited for
  // The detector off: rank 1 is waited for and every message arrives.
  const auto patient = once(std::numeric_limits<double>::infinity());
  CHECK(patient.received == 8);
  CHECK(patient.lost_at == -1.0);
  CHECK_FALSE(patient.rep.dropped[1]);
  // Replayed: the same.
  CHECK(once(1.0).lost_at == 3.5);

  for (double bad : {0.0, -1.0, std::nan("")}) {
    loco::sim::options opt;
    opt.failure_detection = bad;
    CHECK_THROWS_WITH(run_simulated(
                          1, [](simulated&) {}, opt),
                      Catch::Contains("failure_detection"));
  }
}

TEST_CASE("compute_model::restart refuses rank 0, bad times and ranks outside the world",
          "[sim][faults]") {
  CHECK_THROWS_WITH(loco::sim::compute_model(1.0).restart(0, 1.0), Catch::Contains("rank 0"));
  CHECK_THROWS_WITH(loco::sim::compute_model(1.0).restart(1, -1.0), Catch::Contains("time -1"));
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model(1.0).restart(5, 1.0);
  CHECK_THROWS_WITH(run_simulated(
                        3, [](simulated&) {}, opt),
                    Catch::Contains("restart of rank 5 outside a world of 3"));
  // A replacement runs the function again, rejoining; rank 0 hears of it.
  opt.compute = loco::sim::compute_model(1.0).drop_out(1, 2.5).restart(1, 4.0);
  opt.log_events = true;
  std::vector<int> rejoined;
  std::vector<double> starts;
  const auto rep = run_simulated(
      2,
      [&](simulated& c) {
        if (c.rank() == 1) {
          starts.push_back(c.now());
          CHECK(c.rejoining() == (starts.size() == 2));
          for (int k = 0; k < 3; ++k) c.compute();
          return;
        }
        c.advance(5.0);
        rejoined = c.take_rejoined();
      },
      opt);
  CHECK(starts == std::vector<double>{0.0, 4.0});
  CHECK(rejoined == std::vector<int>{1});
  CHECK(rep.count(loco::sim::event_kind::rejoin) == 1);
  CHECK_FALSE(rep.dropped[1]);
  CHECK(rep.finish_time[1] == 7.0);
}

TEST_CASE(
    "exponential availability: online a fraction mean_on / (mean_on + mean_off), "
    "the same for the same seed",
    "[sim][availability]") {
  const auto once = [](std::uint64_t seed) {
    loco::sim::options opt;
    opt.compute = loco::sim::compute_model(1.0);
    opt.availability = loco::sim::availability::exponential(9.0, 1.0).keep_online(0);
    opt.seed = seed;
    std::vector<double> end(9);
    run_simulated(
        9,
        [&](simulated& c) {
          for (int k = 0; k < 2000; ++k) c.compute();
          end[static_cast<std::size_t>(c.rank())] = c.now();
        },
        opt);
    return end;
  };
  const auto a = once(5), b = once(5), other = once(6);
  CHECK(a == b);
  CHECK(a != other);
  CHECK(a[0] == 2000.0);  // kept online
  double mean = 0;
  for (std::size_t r = 1; r < a.size(); ++r) mean += a[r] / 8.0;
  // 2000 s of work at 90% availability: about 2222 s (8 ranks, ~200 periods each).
  CHECK(std::abs(mean - 2000.0 * 10.0 / 9.0) < 40.0);
}

TEST_CASE("an availability trace with a bad line is refused naming the line",
          "[sim][availability]") {
  const auto parse = [](const std::string& text) {
    std::istringstream in(text);
    return loco::sim::availability::parse(in, "t.txt");
  };
  CHECK_NOTHROW(parse("# rank from until\n1 2.5 4\n\n1 4 5   # adjacent is fine\n2 0 1\n"));
  CHECK_THROWS_WITH(parse("1 2.5\n"), Catch::Contains("t.txt:1: expected 'rank from until'"));
  CHECK_THROWS_WITH(parse("1 2 3 4\n"), Catch::Contains("t.txt:1: expected"));
  CHECK_THROWS_WITH(parse("\nx 1 2\n"), Catch::Contains("t.txt:2: rank 'x' is not a whole"));
  CHECK_THROWS_WITH(parse("-1 1 2\n"), Catch::Contains("t.txt:1: rank -1 must be"));
  CHECK_THROWS_WITH(parse("1 a 2\n"), Catch::Contains("t.txt:1: from 'a' is not a finite"));
  CHECK_THROWS_WITH(parse("1 1 inf\n"), Catch::Contains("t.txt:1: until 'inf' is not a finite"));
  CHECK_THROWS_WITH(parse("1 -1 2\n"), Catch::Contains("t.txt:1: from -1 must be >= 0"));
  CHECK_THROWS_WITH(parse("1 3 2\n"), Catch::Contains("t.txt:1: until 2 must be > from 3"));
  CHECK_THROWS_WITH(parse("1 1 3\n1 2 4\n"), Catch::Contains("t.txt:2: rank 1's interval starts"));
  CHECK_THROWS_WITH(loco::sim::availability::trace("/nonexistent/trace.txt"),
                    Catch::Contains("cannot open '/nonexistent/trace.txt'"));
  loco::sim::options opt;
  opt.availability = parse("1 0 1\n7 0 1\n");
  bool ran = false;
  CHECK_THROWS_WITH(run_simulated(
                        4, [&](simulated&) { ran = true; }, opt),
                    Catch::Contains("rank 7 (trace line 2) outside a world of 4 ranks"));
  CHECK_FALSE(ran);
  CHECK_THROWS_WITH(loco::sim::availability::exponential(0.0, 1.0),
                    Catch::Contains("mean_online 0"));
}
