#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <loco/comm/in_process.hpp>
#include <loco/concepts/communicator.hpp>
#include <loco/wire/view.hpp>
#include <string>
#include <thread>

#include "conformance.hpp"

static_assert(loco::check_communicator<loco::comm::in_process>());

namespace {
struct in_process_world {
  template <class Fn>
  static void run(int n, Fn fn) {
    loco::comm::run_in_process(n, [&](loco::comm::in_process& c) { fn(c); });
  }
};
}  // namespace

TEST_CASE("in_process passes the communicator conformance suite", "[comm][in_process]") {
  for (int n : {1, 2, 3, 4}) {
    INFO("ranks " << n);
    REQUIRE_NOTHROW(conformance::run_all<in_process_world>(n));
  }
}

TEST_CASE("in_process passes the suite with every rank spinning, more ranks than cores",
          "[comm][in_process]") {
  loco::comm::in_process_options opt;
  opt.spin = std::chrono::microseconds(20);
  const int n = static_cast<int>(std::min(std::thread::hardware_concurrency() + 1, 9u));
  REQUIRE_NOTHROW(loco::comm::run_in_process(
      n, [](loco::comm::in_process& c) { conformance::check_allreduce_on<float>(c, false); }, opt));
}

// Small allreduces go through per-rank copies that alternate between two
// buffers and meet at one barrier: a rank that races ahead into its next
// allreduce must not overwrite a copy a slower rank is still reading. More
// ranks than cores, values that change every call, and ranks that pause at
// random points make such an overwrite show up as a wrong sum.
TEST_CASE("in_process: back-to-back small allreduces never read a copy being rewritten",
          "[comm][in_process]") {
  const int n = static_cast<int>(std::min(std::thread::hardware_concurrency() + 1, 5u));
  std::atomic<long> wrong{0};
  loco::comm::run_in_process(n, [&](loco::comm::in_process& c) {
    std::uint32_t noise = 12345u + static_cast<std::uint32_t>(c.rank());
    for (int i = 0; i < 3000; ++i) {
      const std::size_t d = 1 + static_cast<std::size_t>(i % 3) * 700;  // 1, 701, 1401 values
      std::vector<std::int64_t> v(d, static_cast<std::int64_t>(i) * 1000 + c.rank());
      noise = noise * 1664525u + 1013904223u;
      if (noise % 16 == 0) std::this_thread::yield();
      c.allreduce(std::span<std::int64_t>(v), loco::comm::reduce_op::sum);
      const std::int64_t expect = static_cast<std::int64_t>(i) * 1000 * n + n * (n - 1) / 2;
      if (std::any_of(v.begin(), v.end(), [&](std::int64_t x) { return x != expect; })) ++wrong;
      if (i % 500 == 0) c.barrier();  // another collective on the same barrier
    }
  });
  CHECK(wrong.load() == 0);
}

TEST_CASE("in_process reports a failed rank to the others instead of hanging",
          "[comm][in_process]") {
  const auto start = std::chrono::steady_clock::now();
  std::atomic<int> lost{0};
  try {
    loco::comm::run_in_process(3, [&](loco::comm::in_process& c) {
      if (c.rank() == 1) throw std::runtime_error("worker crashed");
      try {
        std::vector<float> v(10, 1.0f);
        c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
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
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("in_process times out a missing peer with peer_lost naming it", "[comm][in_process]") {
  loco::comm::in_process_options opt;
  opt.timeout = std::chrono::milliseconds(200);
  std::atomic<int> named{-2};
  CHECK_THROWS_AS(loco::comm::run_in_process(
                      2,
                      [&](loco::comm::in_process& c) {
                        if (c.rank() == 0) {
                          loco::wire::buffer b;
                          try {
                            (void)c.recv(1, 3, b);  // rank 1 never sends
                          } catch (const loco::peer_lost& e) {
                            named = e.rank();
                            throw;
                          }
                        }
                      },
                      opt),
                  loco::peer_lost);
  CHECK(named == 1);

  // An irecv that never matches gives up on wait() too.
  CHECK_THROWS_AS(loco::comm::run_in_process(
                      1,
                      [&](loco::comm::in_process& c) {
                        loco::wire::buffer b;
                        c.irecv(0, 8, b).wait();
                      },
                      opt),
                  loco::peer_lost);
}

// Tolerant mode: each rank records what it saw (Catch is not thread-safe);
// the main thread checks.
TEST_CASE("in_process tolerant: a rank that throws is lost alone, the others go on",
          "[comm][in_process][faults]") {
  loco::comm::in_process_options opt;
  opt.tolerant = true;
  opt.timeout = std::chrono::milliseconds(20000);  // no test below may wait for it
  struct seen {
    int recv_lost = -2, send_lost = -2, collective_lost = -2, irecv_lost = -2;
    std::int32_t from_2 = -1;
    std::string why;
  };
  std::vector<seen> out(3);
  const auto start = std::chrono::steady_clock::now();
  const auto failures = loco::comm::run_in_process(
      3,
      [&](loco::comm::in_process& c) {
        auto& s = out[static_cast<std::size_t>(c.rank())];
        loco::wire::buffer b;
        b.put<std::int32_t>(c.rank());
        if (c.rank() == 1) {
          loco::wire::buffer never;
          auto pending = c.irecv(0, 9, never);  // withdrawn when this rank ends
          c.send(2, 5, b.bytes());
          throw std::runtime_error("worker crashed");
        }
        if (c.rank() == 2) {
          loco::wire::buffer got;
          (void)c.recv(1, 5, got);  // sent before rank 1 crashed: still delivered
          c.send(0, 6, b.bytes());
          return;
        }
        // Rank 0: receives from the crashed rank fail at once, posted or not.
        loco::wire::buffer got;
        try {
          c.irecv(1, 7, got).wait();
        } catch (const loco::peer_lost& e) {
          s.irecv_lost = e.rank();
          s.why = e.what();
        }
        try {
          (void)c.recv(1, 7, got);
        } catch (const loco::peer_lost& e) {
          s.recv_lost = e.rank();
        }
        try {
          c.send(1, 7, b.bytes());
        } catch (const loco::peer_lost& e) {
          s.send_lost = e.rank();
        }
        (void)c.recv(2, 6, got);  // the survivors still talk
        s.from_2 = loco::wire::view(got).get<std::int32_t>("rank");
        std::vector<float> v(4, 1.0f);
        try {
          c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
        } catch (const loco::peer_lost& e) {
          s.collective_lost = e.rank();  // the world's own collectives need every rank
        }
      },
      opt);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].rank == 1);
  CHECK(failures[0].what == "worker crashed");
  CHECK_THROWS_AS(std::rethrow_exception(failures[0].error), std::runtime_error);
  CHECK(out[0].irecv_lost == 1);
  CHECK_THAT(out[0].why, Catch::Contains("rank 1 failed: worker crashed"));
  CHECK(out[0].recv_lost == 1);
  CHECK(out[0].send_lost == 1);
  CHECK(out[0].from_2 == 2);
  // Whichever left first: rank 1 (crashed) or rank 2 (returned).
  CHECK((out[0].collective_lost == 1 || out[0].collective_lost == 2));
}

TEST_CASE("in_process tolerant: a silent rank is declared lost and finds itself out",
          "[comm][in_process][faults]") {
  loco::comm::in_process_options opt;
  opt.tolerant = true;
  opt.timeout = std::chrono::milliseconds(200);
  int named = -2;
  std::string own;
  const auto failures = loco::comm::run_in_process(
      2,
      [&](loco::comm::in_process& c) {
        loco::wire::buffer b;
        if (c.rank() == 0) {
          try {
            (void)c.recv(1, 3, b);  // rank 1 is too slow: declared lost
          } catch (const loco::peer_lost& e) {
            named = e.rank();
          }
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(600));
        b.put<std::int32_t>(1);
        try {
          c.send(0, 3, b.bytes());
        } catch (const loco::peer_lost& e) {
          own = e.what();
          throw;
        }
      },
      opt);
  CHECK(named == 1);
  CHECK_THAT(own, Catch::Contains("rank 1") && Catch::Contains("within 200 ms"));
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].rank == 1);

  // Nobody finished: the first root cause is rethrown, as without tolerance.
  CHECK_THROWS_WITH(loco::comm::run_in_process(
                        2,
                        [](loco::comm::in_process& c) {
                          throw std::runtime_error("rank " + std::to_string(c.rank()));
                        },
                        opt),
                    Catch::StartsWith("rank "));
}

TEST_CASE("in_process rejects bad settings and mismatched vectors", "[comm][in_process]") {
  for (long spin : {-2L, 100001L}) {
    loco::comm::in_process_options opt;
    opt.spin = std::chrono::microseconds(spin);
    CHECK_THROWS_WITH(loco::comm::run_in_process(
                          1, [](loco::comm::in_process&) {}, opt),
                      Catch::Contains("spin " + std::to_string(spin)));
  }
  CHECK_THROWS_AS(loco::comm::run_in_process(0, [](loco::comm::in_process&) {}),
                  loco::config_error);
  CHECK_THROWS_WITH(
      loco::comm::run_in_process(2,
                                 [](loco::comm::in_process& c) {
                                   std::vector<float> v(static_cast<std::size_t>(3 + c.rank()));
                                   c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
                                 }),
      Catch::Contains("contributed"));
  CHECK_THROWS_AS(loco::comm::run_in_process(2,
                                             [](loco::comm::in_process& c) {
                                               std::byte x{};
                                               c.send(5, 0, std::span<const std::byte>(&x, 1));
                                             }),
                  loco::config_error);
}

TEST_CASE("in_process: a receive posted while the message is being sent never misses it",
          "[comm][in_process]") {
  // Regression: send() once matched posted receives and queued the message
  // in two critical sections; an irecv posted between them waited forever.
  loco::comm::in_process_options opt;
  opt.timeout = std::chrono::milliseconds(5000);
  REQUIRE_NOTHROW(loco::comm::run_in_process(
      2,
      [](loco::comm::in_process& c) {
        const int peer = 1 - c.rank();
        loco::wire::buffer in;
        std::byte payload[64] = {};
        for (int round = 0; round < 3000; ++round) {
          auto r = c.irecv(peer, round % 7, in);
          c.send(peer, round % 7, std::span<const std::byte>(payload));
          r.wait();
          if (in.size() != sizeof payload) throw std::runtime_error("wrong payload size");
        }
      },
      opt));
}
