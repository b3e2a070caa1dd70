#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <loco/comm/in_process.hpp>
#include <loco/concepts/communicator.hpp>
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
