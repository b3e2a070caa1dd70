#include <catch2/catch.hpp>

#include <loco/comm/tcp.hpp>
#include <loco/concepts/communicator.hpp>

#include "../comm/conformance.hpp"
#include "tcp_world.hpp"

static_assert(loco::check_communicator<loco::comm::tcp>());

TEST_CASE("tcp passes the communicator conformance suite on loopback", "[comm][tcp]") {
  for (int n : {1, 2, 3, 4}) {
    INFO("ranks " << n);
    REQUIRE_NOTHROW(conformance::run_all<tcp_test::world>(n));
  }
}
