// comm::mpi when things go wrong: bad settings, a peer that never sends, a
// collective some rank never joins, requests that outlive their communicator;
// and the background progress that makes overlap real.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <loco/comm/mpi.hpp>
#include <thread>

#include "mpi_world.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using mpi_test::on_every_rank;

void expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

}  // namespace

TEST_CASE("mpi rejects bad settings, ranks and tags before communicating", "[comm][mpi]") {
  loco::comm::mpi_options zero;
  zero.timeout = std::chrono::milliseconds(0);
  CHECK_THROWS_AS(loco::comm::mpi(MPI_COMM_WORLD, zero), loco::config_error);
  loco::comm::mpi_options negative;
  negative.progress_interval = std::chrono::microseconds(-1);
  CHECK_THROWS_AS(loco::comm::mpi(MPI_COMM_WORLD, negative), loco::config_error);

  // A second environment finds MPI initialised and leaves it alone.
  loco::comm::mpi_environment again;
  CHECK_FALSE(again.owner());

  loco::comm::mpi c(MPI_COMM_WORLD, mpi_test::quick());
  const std::byte x{};
  const std::span<const std::byte> one(&x, 1);
  loco::wire::buffer b;
  std::vector<loco::wire::buffer> all;
  CHECK_THROWS_AS(c.send(c.size(), 0, one), loco::config_error);
  CHECK_THROWS_AS(c.send(-1, 0, one), loco::config_error);
  CHECK_THROWS_AS(c.isend(0, -1, one), loco::config_error);
  CHECK_THROWS_WITH(c.send(0, INT_MIN, one),
                    Catch::Contains("tag") && Catch::Contains("MPI_TAG_UB"));
  CHECK_THROWS_AS(c.irecv(c.size(), 0, b), loco::config_error);
  CHECK_THROWS_AS(c.recv(0, -5, b), loco::config_error);
  CHECK_THROWS_AS(c.broadcast(b, c.size()), loco::config_error);
  CHECK_THROWS_AS(c.gather(one, all, -1), loco::config_error);
  c.barrier();  // nothing above reached MPI: the communicator still works
}

TEST_CASE(
    "mpi recv from a silent peer times out with peer_lost naming it, and the "
    "communicator stays usable",
    "[comm][mpi]") {
  loco::comm::mpi_options opt;
  opt.timeout = std::chrono::milliseconds(300);
  const std::string verdict = on_every_rank(
      [](loco::comm::mpi& c) {
        if (c.size() < 2) return;
        if (c.rank() == 0) {
          loco::wire::buffer b;
          const auto start = clock_type::now();
          try {
            (void)c.recv(1, 77, b);  // rank 1 never sends tag 77
            expect(false, "recv must time out");
          } catch (const loco::peer_lost& e) {
            expect(e.rank() == 1, std::string("peer_lost names rank 1: ") + e.what());
          }
          const double waited = ms_since(start);
          expect(waited >= 290 && waited < 5000,
                 "gave up after " + std::to_string(waited) + " ms for a 300 ms timeout");
          // irecv: wait_for says "not yet" without failing, then the message comes.
          auto r = c.irecv(1, 78, b);
          expect(!r.wait_for(std::chrono::milliseconds(50)), "nothing sent yet");
          expect(!r.test(), "test() agrees");
          // Plain MPI barriers: a barrier on c would time out on the ranks
          // waiting while rank 0 sits in its 300 ms timeouts.
          MPI_Barrier(MPI_COMM_WORLD);  // rank 1 sends after this
          expect(r.wait_for(std::chrono::milliseconds(5000)), "message arrives");
          expect(r.source() == 1 && b.size() == 3, "irecv result");
          // An irecv that never matches: wait() gives up, naming the peer.
          auto never = c.irecv(1, 79, b);
          try {
            never.wait();
            expect(false, "wait must time out");
          } catch (const loco::peer_lost& e) {
            expect(e.rank() == 1, "irecv's peer_lost names rank 1");
          }
        } else {
          MPI_Barrier(MPI_COMM_WORLD);
          if (c.rank() == 1) {
            const std::byte three[3] = {};
            c.send(0, 78, std::span<const std::byte>(three));
          }
        }
        MPI_Barrier(MPI_COMM_WORLD);
        c.barrier();  // a timed-out receive leaves the communicator usable
      },
      opt);
  REQUIRE(verdict == "");
}

TEST_CASE(
    "mpi collective that a rank does not join times out; the communicator is then "
    "failed for every later call",
    "[comm][mpi]") {
  loco::comm::mpi_options opt;
  opt.timeout = std::chrono::milliseconds(300);
  // Outlives the communicator: MPI may still write the abandoned allreduce's result into it.
  std::vector<float> v(1000, 1.0f);
  const std::string verdict = on_every_rank(
      [&](loco::comm::mpi& c) {
        if (c.size() < 2) return;
        if (c.rank() == 0) {
          const auto start = clock_type::now();
          try {
            c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
            expect(false, "allreduce must time out");
          } catch (const loco::peer_lost& e) {
            expect(std::string(e.what()).find("allreduce") != std::string::npos,
                   std::string("message names the collective: ") + e.what());
          }
          const double waited = ms_since(start);
          expect(waited >= 290 && waited < 5000, "gave up after " + std::to_string(waited) + " ms");
          try {
            c.barrier();
            expect(false, "a failed communicator refuses new work");
          } catch (const loco::peer_lost& e) {
            expect(std::string(e.what()).find("failed earlier") != std::string::npos, e.what());
          }
          loco::wire::buffer b;
          bool refused = false;
          try {
            (void)c.irecv(1, 0, b);
          } catch (const loco::peer_lost&) {
            refused = true;
          }
          expect(refused, "irecv on a failed communicator throws");
          MPI_Barrier(MPI_COMM_WORLD);  // now the others join the abandoned allreduce
        } else {
          MPI_Barrier(MPI_COMM_WORLD);
          c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
          expect(v[0] == static_cast<float>(c.size()), "late joiners get the full sum");
        }
      },
      opt);
  REQUIRE(verdict == "");
}

TEST_CASE("mpi request outliving its communicator fails instead of hanging", "[comm][mpi]") {
  loco::comm::mpi::request r;
  loco::wire::buffer b;
  {
    loco::comm::mpi c(MPI_COMM_WORLD, mpi_test::quick());
    r = c.irecv(0, 99, b);  // nobody sends tag 99
  }
  const auto start = clock_type::now();
  CHECK_THROWS_WITH(r.wait(), Catch::Contains("destroyed"));
  CHECK(r.test());
  CHECK(ms_since(start) < 1000);
  loco::comm::mpi::request empty;
  CHECK(empty.test());
  CHECK(empty.wait_for(std::chrono::milliseconds(0)));
  CHECK(empty.source() == -1);
}

TEST_CASE("mpi iallreduce progresses in the background while the caller makes no MPI calls",
          "[comm][mpi]") {
  // 16 MB: many rounds of the non-blocking algorithm, each needing an MPI
  // call to advance. Without the progress thread, wait() after the compute
  // phase would still pay the whole allreduce.
  const std::size_t d = 4u << 20;
  std::vector<float> v(d, 1.0f);
  double blocking_ms = 0, wait_ms = 0, compute_ms = 0;
  const std::string verdict = on_every_rank(
      [&](loco::comm::mpi& c) {
        double best = 1e300;
        for (int k = 0; k < 3; ++k) {
          c.barrier();
          const auto t = clock_type::now();
          c.allreduce(std::span<float>(v), loco::comm::reduce_op::average);
          best = std::min(best, ms_since(t));
        }
        // Every rank computes for the same time: rank 0's choice.
        compute_ms = std::max(4 * best, 100.0);
        MPI_Bcast(&compute_ms, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        blocking_ms = best;
        c.barrier();
        auto r = c.iallreduce(std::span<float>(v), loco::comm::reduce_op::sum);
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(compute_ms));
        const auto t = clock_type::now();
        r.wait();
        wait_ms = ms_since(t);
        expect(v[d - 1] == static_cast<float>(c.size()), "result");
        expect(wait_ms < 0.25 * blocking_ms + 1.0,
               "wait() after computing took " + std::to_string(wait_ms) + " ms; the blocking " +
                   "allreduce takes " + std::to_string(blocking_ms) + " ms");
      },
      mpi_test::quick());
  UNSCOPED_INFO("blocking allreduce " << blocking_ms << " ms, compute " << compute_ms
                                      << " ms, wait after compute " << wait_ms << " ms");
  REQUIRE(verdict == "");
}
