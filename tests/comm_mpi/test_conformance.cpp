// comm::mpi against the shared conformance suite, plus the semantics MPI
// makes easy to get wrong: bit-identical reductions of inexact sums, sends
// that must not deadlock, second phases issued in the same order on every
// rank, and MPI's non-overtaking order for receives.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <loco/comm/mpi.hpp>
#include <loco/concepts/communicator.hpp>
#include <loco/random/stream.hpp>

#include "../comm/conformance.hpp"
#include "mpi_world.hpp"

static_assert(loco::check_communicator<loco::comm::mpi>());

namespace {

struct mpi_world {
  template <class Fn>
  static void run(int n, Fn fn) {
    if (n != mpi_test::world_size()) throw conformance::failure("run(n) must use the MPI size");
    const std::string verdict =
        mpi_test::on_every_rank([&](loco::comm::mpi& c) { fn(c); }, mpi_test::quick());
    if (!verdict.empty()) throw conformance::failure(verdict);
  }
};

using mpi_test::on_every_rank;

void expect(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

// Every rank's bytes of v, compared with rank 0's.
template <class T>
bool same_on_every_rank(const std::vector<T>& v) {
  const int n = mpi_test::world_size();
  std::vector<T> all(v.size() * static_cast<std::size_t>(n));
  const int bytes = static_cast<int>(v.size() * sizeof(T));
  MPI_Allgather(v.data(), bytes, MPI_BYTE, all.data(), bytes, MPI_BYTE, MPI_COMM_WORLD);
  for (int r = 1; r < n; ++r) {
    if (std::memcmp(all.data(), all.data() + v.size() * static_cast<std::size_t>(r),
                    v.size() * sizeof(T)) != 0) {
      return false;
    }
  }
  return true;
}

template <class T>
std::vector<T> random_values(std::uint64_t seed, int rank, std::size_t d) {
  loco::random::stream rng(seed, static_cast<std::uint64_t>(rank));
  std::vector<T> v(d);
  for (auto& x : v) x = static_cast<T>(rng.normal() * 1000.0);
  return v;
}

}  // namespace

TEST_CASE("mpi passes the communicator conformance suite", "[comm][mpi]") {
  INFO("ranks " << mpi_test::world_size());
  REQUIRE_NOTHROW(conformance::run_all<mpi_world>(mpi_test::world_size()));
}

TEMPLATE_TEST_CASE(
    "mpi allreduce of inexact sums is bit-identical on every rank and within "
    "the rounding bound",
    "[comm][mpi]", float, double) {
  const std::uint64_t seed = 20260521;
  INFO("seed " << seed);
  const std::string verdict = on_every_rank(
      [&](loco::comm::mpi& c) {
        const int n = c.size();
        for (std::size_t d : {std::size_t{1}, std::size_t{1000}, std::size_t{100003}}) {
          for (bool nonblocking : {false, true}) {
            auto sum = random_values<TestType>(seed, c.rank(), d);
            auto avg = sum;
            if (nonblocking) {
              auto a = c.iallreduce(std::span<TestType>(sum), loco::comm::reduce_op::sum);
              auto b = c.iallreduce(std::span<TestType>(avg), loco::comm::reduce_op::average);
              b.wait();
              a.wait();
            } else {
              c.allreduce(std::span<TestType>(sum), loco::comm::reduce_op::sum);
              c.allreduce(std::span<TestType>(avg), loco::comm::reduce_op::average);
            }
            expect(same_on_every_rank(sum), "sum differs between ranks, d " + std::to_string(d));
            expect(same_on_every_rank(avg), "average differs between ranks");
            // Reference: a plain loop over every rank's values, in long double.
            // Any summation order of n terms is within (n-1) u sum|x| of it.
            std::vector<std::vector<TestType>> each;
            for (int r = 0; r < n; ++r) each.push_back(random_values<TestType>(seed, r, d));
            const long double u =
                static_cast<long double>(std::numeric_limits<TestType>::epsilon()) / 2;
            for (std::size_t i = 0; i < d; ++i) {
              long double exact = 0, magnitude = 0;
              for (int r = 0; r < n; ++r) {
                exact += static_cast<long double>(each[static_cast<std::size_t>(r)][i]);
                magnitude +=
                    std::fabs(static_cast<long double>(each[static_cast<std::size_t>(r)][i]));
              }
              const long double bound = (n - 1) * u * magnitude + u * std::fabs(exact);
              // (messages built only on failure: this loop runs under ASan too)
              if (!(std::fabs(static_cast<long double>(sum[i]) - exact) <= bound)) {
                expect(false, "sum index " + std::to_string(i) + " outside the rounding bound");
              }
              const long double mean = exact / n;
              if (!(std::fabs(static_cast<long double>(avg[i]) - mean) <=
                    2 * bound / n + 2 * u * std::fabs(mean))) {
                expect(false, "average index " + std::to_string(i) + " outside the rounding bound");
              }
            }
          }
        }
      },
      mpi_test::quick());
  REQUIRE(verdict == "");
}

TEST_CASE(
    "mpi send returns before the receiver posts, so exchanging large messages does not "
    "deadlock",
    "[comm][mpi]") {
  const std::string verdict = on_every_rank(
      [](loco::comm::mpi& c) {
        const int n = c.size(), me = c.rank();
        const int next = (me + 1) % n, prev = (me + n - 1) % n;
        for (int round = 0; round < 3; ++round) {
          // 4 MB is far above OpenMPI's eager limit: a rendezvous send would
          // block here until prev posts its receive, and every rank sends first.
          std::vector<std::byte> big(4u << 20);
          for (std::size_t i = 0; i < big.size(); i += 4096) {
            big[i] = static_cast<std::byte>((me * 7 + round + static_cast<int>(i >> 12)) & 0xff);
          }
          c.send(next, 11, std::span<const std::byte>(big));
          std::fill(big.begin(), big.end(), std::byte{0});  // the copy was taken at send time
          loco::wire::buffer got;
          expect(c.recv(prev, 11, got) == prev, "recv names the sender");
          expect(got.size() == big.size(), "whole message arrives");
          for (std::size_t i = 0; i < got.size(); i += 4096) {
            const auto want =
                static_cast<std::byte>((prev * 7 + round + static_cast<int>(i >> 12)) & 0xff);
            if (got.bytes()[i] != want) expect(false, "byte " + std::to_string(i) + " intact");
          }
        }
      },
      mpi_test::quick());
  REQUIRE(verdict == "");
}

TEST_CASE("mpi receives from one sender with one tag arrive in send order", "[comm][mpi]") {
  const std::string verdict = on_every_rank(
      [](loco::comm::mpi& c) {
        if (c.size() < 2) return;
        if (c.rank() == 1) {
          for (std::uint8_t k = 1; k <= 4; ++k) {
            const std::vector<std::byte> msg(k, static_cast<std::byte>(k));
            c.send(0, 4, std::span<const std::byte>(msg));
          }
        } else if (c.rank() == 0) {
          loco::wire::buffer a, b, d, e;
          auto ra = c.irecv(1, 4, a);
          auto rb = c.irecv(loco::comm::any_source, 4, b);
          expect(c.recv(1, 4, d) == 1, "blocking recv names the sender");
          rb.wait();
          ra.wait();
          auto re = c.irecv(1, 4, e);
          re.wait();
          expect(a.size() == 1 && b.size() == 2 && d.size() == 3 && e.size() == 4,
                 "receives match in posting order: got sizes " + std::to_string(a.size()) + " " +
                     std::to_string(b.size()) + " " + std::to_string(d.size()) + " " +
                     std::to_string(e.size()));
          expect(rb.source() == 1, "any_source request names the sender");
        }
        c.barrier();
      },
      mpi_test::quick());
  REQUIRE(verdict == "");
}

TEST_CASE("mpi non-blocking collectives issued back to back complete whatever the wait order",
          "[comm][mpi]") {
  const std::string verdict = on_every_rank(
      [](loco::comm::mpi& c) {
        const int n = c.size(), me = c.rank();
        for (int round = 0; round < 20; ++round) {
          const auto len = [&](int r) {
            return static_cast<std::size_t>((r * 37 + round * 101) % 5000);
          };
          const auto mine = conformance::pattern(me + round, len(me));
          std::vector<loco::wire::buffer> everyone, at_root;
          std::vector<double> v(257, static_cast<double>(me + round));
          loco::wire::buffer b;
          const int root = round % n;
          if (me == root) b.assign(conformance::pattern(round, len(round + 3)));
          const std::span<const std::byte> m(mine);
          // Three multi-phase collectives and single-phase ones interleaved:
          // the second phases must be issued in the same order on every rank.
          auto r1 = c.iallgather(m, everyone);
          auto r2 = c.iallreduce(std::span<double>(v), loco::comm::reduce_op::max);
          auto r3 = c.ibroadcast(b, root);
          auto r4 = c.igather(m, at_root, (root + 1) % n);
          auto r5 = c.ibarrier();
          r5.wait();
          r4.wait();
          r3.wait();
          r2.wait();
          r1.wait();
          expect(everyone.size() == static_cast<std::size_t>(n), "allgather size");
          for (int r = 0; r < n; ++r) {
            const auto want = conformance::pattern(r + round, len(r));
            const auto got = everyone[static_cast<std::size_t>(r)].bytes();
            expect(got.size() == want.size() && std::equal(got.begin(), got.end(), want.begin()),
                   "allgather bytes of rank " + std::to_string(r));
            if (me == (root + 1) % n) {
              const auto g = at_root[static_cast<std::size_t>(r)].bytes();
              expect(g.size() == want.size() && std::equal(g.begin(), g.end(), want.begin()),
                     "gather bytes of rank " + std::to_string(r));
            }
          }
          const auto want_b = conformance::pattern(round, len(round + 3));
          expect(b.size() == want_b.size() &&
                     std::equal(b.bytes().begin(), b.bytes().end(), want_b.begin()),
                 "broadcast bytes");
          expect(v[256] == static_cast<double>(n - 1 + round), "allreduce max");
        }
      },
      mpi_test::quick());
  REQUIRE(verdict == "");
}

TEST_CASE("mpi with native_blocking gives the same allreduce and barrier results", "[comm][mpi]") {
  loco::comm::mpi_options opt = mpi_test::quick();
  opt.native_blocking = true;
  const std::string verdict = on_every_rank(
      [](loco::comm::mpi& c) {
        conformance::check_allreduce_on<float>(c, false);
        conformance::check_allreduce_on<double>(c, false);
        c.barrier();
      },
      opt);
  REQUIRE(verdict == "");
}
