// comm::elastic on the simulator: collectives that go on over the
// survivors when a rank drops out, and local_sgd through it (a lossless and
// a compressed exchange), bit-identical on every survivor and across runs.
#include <catch2/catch.hpp>

#include "../support/test_policies.hpp"

#include <cmath>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/elastic.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress/qsgd.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/merge/average.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using vec = std::vector<double>;
using elastic_sim = loco::comm::elastic<loco::comm::simulated>;
constexpr std::size_t dim = 6;

testing_policies::scaled_quadratic worker(int i) {
  vec b(dim);
  for (std::size_t j = 0; j < dim; ++j)
    b[j] = std::sin(1.0 + static_cast<double>(i * 7) + static_cast<double>(j));
  return {0.5 + 0.1 * i, b};
}

struct survivor {
  vec average, local;
  std::vector<loco::comm::membership_change> changes;
  std::vector<loco::observe::membership_record> recorded;
  std::size_t rounds = 0;
  bool finished = false;
};

enum class fault { kill, stop, restart };

// 4 workers through comm::elastic on the simulator, one step per second;
// rank `victim` drops out at `at` (never with -1); `stop`: it is stopped
// there for 3 s, past the failure detector's 1 s; `restart`: it drops out
// and a replacement starts 4 s later. run(world, objective,
// survivor&) runs the driver and keeps what it returned.
template <class Run>
std::vector<survivor> on_four(int victim, double at, Run run, fault how = fault::kill) {
  loco::sim::options so;
  so.compute = loco::sim::compute_model::fixed({1.0, 1.0, 1.0, 1.0});
  if (victim >= 0 && how != fault::stop) so.compute.drop_out(victim, at);
  if (victim >= 0 && how == fault::restart) so.compute.restart(victim, at + 4.0);
  if (victim >= 0 && how == fault::stop) {
    so.availability.offline(victim, at, at + 3.0);
    so.failure_detection = 1.0;
  }
  std::vector<survivor> out(4);
  loco::comm::run_simulated(
      4,
      [&](loco::comm::simulated& comm) {
        elastic_sim world(comm);
        loco::sim::timed f(worker(comm.rank()), comm.clock());
        auto& s = out[static_cast<std::size_t>(comm.rank())];
        run(world, f, s);
        s.changes = world.changes();
        s.finished = true;
      },
      so);
  return out;
}

// local_sgd, 10 rounds of 5 steps; the victim drops out at t = 23, inside
// round 5 (or is stopped there and declared lost at 24).
template <class Compressor>
std::vector<survivor> run(Compressor c, int victim, fault how = fault::kill, double at = 23.0) {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(10, 5);
  loco::local_sgd<Compressor, elastic_sim, loco::merge::average, loco::stepsize::constant> algo(
      c, {}, loco::stepsize::constant(0.1), opt);
  return on_four(
      victim, at,
      [&](elastic_sim& world, auto& f, survivor& s) {
        const vec x0(dim, 0.0);
        auto r = algo.run(world, f, std::span<const double>(x0));
        s.average = r.average;
        s.local = r.local;
        s.rounds = r.stats.rounds;
        s.recorded.assign(r.ledger.membership().begin(), r.ledger.membership().end());
      },
      how);
}

template <class Compressor>
void check_survivors(Compressor c) {
  const auto got = run(c, 2);
  CHECK_FALSE(got[2].finished);
  for (int r : {0, 1, 3}) {
    INFO("rank " << r);
    const auto& s = got[static_cast<std::size_t>(r)];
    REQUIRE(s.finished);
    CHECK(s.rounds == 10);
    REQUIRE(s.changes.size() == 1);
    CHECK(s.changes[0].rank == 2);
    CHECK_FALSE(s.changes[0].joined);
    CHECK(s.changes[0].epoch == 1);
    // The ledger has it at the end of round 5, the round rank 2 dropped out in.
    REQUIRE(s.recorded.size() == 1);
    CHECK(s.recorded[0].round == 5);
    CHECK(s.recorded[0].rank == 2);
    // Every survivor ends with the same bits.
    CHECK(s.average == got[0].average);
    for (double v : s.average) CHECK(std::isfinite(v));
  }
  // The survivors average their own three models: different from the
  // fault-free run's four.
  const auto all = run(c, -1);
  CHECK(all[0].changes.empty());
  CHECK(all[0].average != got[0].average);
  // Replayed deterministically: the same bits again.
  const auto again = run(c, 2);
  CHECK(again[0].average == got[0].average);
  CHECK(again[3].local == got[3].local);
}

}  // namespace

TEST_CASE("comm::elastic: local_sgd finishes over the survivors when a worker drops out",
          "[elastic][sim][faults]") {
  SECTION("lossless: averaged models") { check_survivors(testing_policies::raw{}); }
  SECTION("compressed: allgathered messages") { check_survivors(loco::compress::qsgd(16)); }
}

TEST_CASE("comm::elastic: local_sgd goes on when the leader, rank 0, drops out",
          "[elastic][sim][faults]") {
  const auto got = run(testing_policies::raw{}, 0);
  CHECK_FALSE(got[0].finished);
  for (int r : {1, 2, 3}) {
    INFO("rank " << r);
    const auto& s = got[static_cast<std::size_t>(r)];
    REQUIRE(s.finished);
    CHECK(s.rounds == 10);
    REQUIRE(s.changes.size() == 1);
    CHECK(s.changes[0].rank == 0);
    REQUIRE(s.recorded.size() == 1);
    CHECK(s.recorded[0].round == 5);
    CHECK(s.average == got[1].average);
  }
  CHECK(run(testing_policies::raw{}, 0)[3].average == got[3].average);
}

TEST_CASE("comm::elastic: local_sgd replays a SIGSTOP on the simulator: declared lost, bit for bit",
          "[elastic][sim][faults]") {
  // Stopped at 24.5 for 3 s: the detector declares it lost at 25.5, half a
  // second into round 5's collective (which begins at 25).
  const auto got = run(testing_policies::raw{}, 1, fault::stop, 24.5);
  CHECK_FALSE(got[1].finished);
  for (int r : {0, 2, 3}) {
    INFO("rank " << r);
    const auto& s = got[static_cast<std::size_t>(r)];
    REQUIRE(s.finished);
    CHECK(s.rounds == 10);
    REQUIRE(s.changes.size() == 1);
    CHECK(s.changes[0].rank == 1);
    CHECK_THAT(s.changes[0].why, Catch::Contains("declared lost at t=25.5 s"));
    CHECK(s.changes[0].waited == Approx(0.5).margin(1e-6));  // virtual seconds
    REQUIRE(s.recorded.size() == 1);
    CHECK(s.recorded[0].round == 5);
    CHECK(s.average == got[0].average);
  }
  const auto again = run(testing_policies::raw{}, 1, fault::stop, 24.5);
  CHECK(again[0].average == got[0].average);
  CHECK(again[2].changes[0].waited == got[2].changes[0].waited);
}

TEST_CASE("comm::elastic: local_sgd replays a restart on the simulator: the replacement rejoins",
          "[elastic][sim][faults]") {
  // Rank 2 dies at 23 (round 5), its replacement starts at 27 and is
  // admitted at the end of round 6; from its first sync on it is
  // bit-identical to the others.
  const auto got = run(testing_policies::raw{}, 2, fault::restart);
  for (int r = 0; r < 4; ++r) {
    INFO("rank " << r);
    const auto& s = got[static_cast<std::size_t>(r)];
    REQUIRE(s.finished);
    CHECK(s.average == got[0].average);
    for (double v : s.average) CHECK(std::isfinite(v));
  }
  CHECK(got[0].rounds == 10);
  CHECK(got[2].rounds == 10);  // the replacement's count continues the rounds
  const auto& c = got[0].changes;
  REQUIRE(c.size() == 2);
  CHECK((c[0].rank == 2 && !c[0].joined));
  CHECK((c[1].rank == 2 && c[1].joined));
  CHECK_THAT(c[1].why, Catch::Contains("rejoined at round 6"));
  CHECK(got[3].changes.size() == 2);
  // Not the run without the fault (rank 2's model was lost for a while), and
  // the same bits when replayed.
  CHECK(run(testing_policies::raw{}, -1)[0].average != got[0].average);
  const auto again = run(testing_policies::raw{}, 2, fault::restart);
  CHECK(again[2].average == got[2].average);
  CHECK(again[2].local == got[2].local);
}

TEST_CASE("comm::elastic: CD-Adam goes on over the survivors when a worker drops out",
          "[elastic][sim][faults][compressed_amsgrad]") {
  using strategy = loco::algorithm::compression_strategy;
  for (auto how : {strategy::difference, strategy::error_feedback, strategy::naive}) {
    INFO("strategy " << static_cast<int>(how));
    const auto run_once = [&](int victim) {
      loco::algorithm::compressed_amsgrad_options opt;
      opt.iterations = 40;
      opt.strategy = how;
      loco::compressed_amsgrad<loco::compress::top_k, elastic_sim, loco::stepsize::constant> algo(
          loco::compress::top_k(0.5), loco::stepsize::constant(0.05), opt);
      return on_four(victim, 17.5, [&](elastic_sim& world, auto& f, survivor& s) {
        const vec x0(dim, 0.0);
        auto r = algo.run(world, f, std::span<const double>(x0));
        s.local = r.model;
        s.rounds = r.stats.iterations;
        s.recorded.assign(r.ledger.membership().begin(), r.ledger.membership().end());
      });
    };
    const auto got = run_once(1);
    CHECK_FALSE(got[1].finished);
    for (int r : {0, 2, 3}) {
      INFO("rank " << r);
      const auto& s = got[static_cast<std::size_t>(r)];
      REQUIRE(s.finished);
      CHECK(s.rounds == 40);
      REQUIRE(s.changes.size() == 1);
      CHECK(s.changes[0].rank == 1);
      REQUIRE(s.recorded.size() == 1);
      CHECK(s.recorded[0].rank == 1);
      CHECK(s.local == got[0].local);  // every rank takes the same AMSGrad step
      for (double v : s.local) CHECK(std::isfinite(v));
    }
    CHECK(run_once(1)[3].local == got[3].local);  // replayed bit for bit
    CHECK(run_once(-1)[0].local != got[0].local);
  }
}

// A worker whose gradient throws after `left` calls (a crashing thread).
struct crashing : testing_policies::scaled_quadratic {
  int left;
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream& rng) {
    if (left-- == 0) throw std::runtime_error("worker thread crashed");
    return scaled_quadratic::gradient(x, g, rng);
  }
};

TEST_CASE("comm::elastic: local_sgd on tolerant in_process threads survives a crashing worker",
          "[elastic][in_process][faults]") {
  using elastic_threads = loco::comm::elastic<loco::comm::in_process>;
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(10, 5);
  loco::local_sgd<testing_policies::raw, elastic_threads, loco::merge::average,
                  loco::stepsize::constant>
      algo({}, {}, loco::stepsize::constant(0.1), opt);
  loco::comm::in_process_options tolerant;
  tolerant.tolerant = true;
  std::vector<survivor> out(4);
  const auto failures = loco::comm::run_in_process(
      4,
      [&](loco::comm::in_process& comm) {
        elastic_threads world(comm);
        // Rank 2 crashes in round 4 (its 18th gradient).
        crashing f{worker(comm.rank()), comm.rank() == 2 ? 17 : -1};
        const vec x0(dim, 0.0);
        auto r = algo.run(world, f, std::span<const double>(x0));
        auto& s = out[static_cast<std::size_t>(comm.rank())];
        s.average = r.average;
        s.rounds = r.stats.rounds;
        s.changes = world.changes();
        s.finished = true;
      },
      tolerant);
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].rank == 2);
  CHECK(failures[0].what == "worker thread crashed");
  CHECK_FALSE(out[2].finished);
  for (int r : {0, 1, 3}) {
    INFO("rank " << r);
    const auto& s = out[static_cast<std::size_t>(r)];
    REQUIRE(s.finished);
    CHECK(s.rounds == 10);
    REQUIRE(s.changes.size() == 1);
    CHECK(s.changes[0].rank == 2);
    CHECK_THAT(s.changes[0].why, Catch::Contains("worker thread crashed"));
    CHECK(s.average == out[0].average);
  }
}

// CD-Adam on the simulator, rank 1 killed at 17.5 and replaced at 21.5.
template <class Compressor>
std::vector<survivor> cd_adam_restart(Compressor c, loco::algorithm::compression_strategy how,
                                      bool keep_memories) {
  loco::algorithm::compressed_amsgrad_options opt;
  opt.iterations = 40;
  opt.strategy = how;
  opt.keep_worker_memories = keep_memories;
  loco::compressed_amsgrad<Compressor, elastic_sim, loco::stepsize::constant> algo(
      c, loco::stepsize::constant(0.05), opt);
  return on_four(
      1, 17.5,
      [&](elastic_sim& world, auto& f, survivor& s) {
        const vec x0(dim, 0.0);
        auto r = algo.run(world, f, std::span<const double>(x0));
        s.local = r.model;
        s.rounds = r.stats.iterations;
      },
      fault::restart);
}

TEST_CASE("comm::elastic: CD-Adam takes a replacement in, from rank 0's state",
          "[elastic][sim][faults][compressed_amsgrad]") {
  using strategy = loco::algorithm::compression_strategy;
  const auto check = [](const std::vector<survivor>& got) {
    for (int r = 0; r < 4; ++r) {
      INFO("rank " << r);
      const auto& s = got[static_cast<std::size_t>(r)];
      REQUIRE(s.finished);
      CHECK(s.rounds == 40);
      CHECK(s.local == got[0].local);  // the replacement steps with the others
      for (double v : s.local) CHECK(std::isfinite(v));
    }
    REQUIRE(got[0].changes.size() == 2);
    CHECK((got[0].changes[0].rank == 1 && !got[0].changes[0].joined));
    CHECK((got[0].changes[1].rank == 1 && got[0].changes[1].joined));
  };
  for (auto how : {strategy::difference, strategy::error_feedback, strategy::naive}) {
    INFO("strategy " << static_cast<int>(how));
    const auto got = cd_adam_restart(loco::compress::top_k(0.5), how, true);
    check(got);
    CHECK(cd_adam_restart(loco::compress::top_k(0.5), how, true)[1].local == got[1].local);
  }
  // A compressor with a random state: the replacement's encoder continues
  // the server's decoder of the lost worker.
  check(cd_adam_restart(loco::compress::qsgd(16), strategy::difference, true));
  // Under `difference` the lost memory is needed: refused without it.
  CHECK_THROWS_WITH(cd_adam_restart(loco::compress::top_k(0.5), strategy::difference, false),
                    Catch::Contains("keep_worker_memories"));
}

// in_process whose rank 0 throws at its `at`-th send of an elastic result
// (tag 32001): a leader killed while handing a result out, after some
// members got it and before the others did.
struct leader_dies_handing_out {
  loco::comm::in_process& c;
  int at;
  int rank() const { return c.rank(); }
  int size() const { return c.size(); }
  void send(int dst, int tag, std::span<const std::byte> b) {
    if (c.rank() == 0 && tag == 32001 && at-- == 0) throw std::runtime_error("leader killed");
    c.send(dst, tag, b);
  }
  int recv(int src, int tag, loco::wire::buffer& out) { return c.recv(src, tag, out); }
  auto isend(int dst, int tag, std::span<const std::byte> b) { return c.isend(dst, tag, b); }
  auto irecv(int src, int tag, loco::wire::buffer& out) { return c.irecv(src, tag, out); }
  void barrier() { c.barrier(); }
  template <class T>
  void allreduce(std::span<T> v, loco::comm::reduce_op op) {
    c.allreduce(v, op);
  }
  template <class T>
  auto iallreduce(std::span<T> v, loco::comm::reduce_op op) {
    return c.iallreduce(v, op);
  }
  void allgather(std::span<const std::byte> mine, std::vector<loco::wire::buffer>& all) {
    c.allgather(mine, all);
  }
  auto iallgather(std::span<const std::byte> mine, std::vector<loco::wire::buffer>& all) {
    return c.iallgather(mine, all);
  }
  void gather(std::span<const std::byte> mine, std::vector<loco::wire::buffer>& all, int root) {
    c.gather(mine, all, root);
  }
  void broadcast(loco::wire::buffer& b, int root) { c.broadcast(b, root); }
};

TEST_CASE("comm::elastic: the leader's successor takes over, even mid-hand-out",
          "[elastic][in_process][faults]") {
  // Rank 0 leads; in collective 5 it sends the result to rank 1 and dies
  // before ranks 2 and 3 get it. Rank 1 takes over: it forwards that
  // result to 2 and 3 and leads collective 6 on. Every collective's result
  // is the same on every survivor; 5's still counts rank 0.
  for (int at : {4 * 3 + 0, 4 * 3 + 1, 4 * 3 + 2, 4 * 3 + 3}) {
    INFO("rank 0 dies at its result send " << at);
    std::vector<std::vector<double>> sums(4);
    std::vector<std::vector<loco::comm::membership_change>> changes(4);
    loco::comm::in_process_options tolerant;
    tolerant.tolerant = true;
    const auto failures = loco::comm::run_in_process(
        4,
        [&](loco::comm::in_process& comm) {
          leader_dies_handing_out inner{comm, at};
          loco::comm::elastic<leader_dies_handing_out> e(inner);
          auto& mine = sums[static_cast<std::size_t>(comm.rank())];
          for (int k = 1; k <= 8; ++k) {
            double v[1] = {static_cast<double>(k * 10 + comm.rank())};
            e.allreduce(std::span<double>(v), loco::comm::reduce_op::sum);
            mine.push_back(v[0]);
          }
          changes[static_cast<std::size_t>(comm.rank())] = e.changes();
        },
        tolerant);
    REQUIRE(failures.size() == 1);
    CHECK(failures[0].rank == 0);
    for (int r = 1; r < 4; ++r) {
      INFO("rank " << r);
      CHECK(sums[static_cast<std::size_t>(r)] == sums[1]);
      REQUIRE(changes[static_cast<std::size_t>(r)].size() == 1);
      CHECK(changes[static_cast<std::size_t>(r)][0].rank == 0);
    }
    // Collective k sums k*10 + r over the ranks it ran over: 4 ranks up to
    // the one rank 0 handed out (at / 3 + 1, it had sent `at % 3` of it:
    // 0 sent means nobody got it and rank 1 leads it afresh over 3).
    const int handed = at / 3 + 1;
    REQUIRE(sums[1].size() == 8);
    for (int k = 1; k <= 8; ++k) {
      INFO("collective " << k);
      const bool with_zero = k < handed || (k == handed && at % 3 > 0);
      const double expect = with_zero ? 40.0 * k + 6 : 30.0 * k + 6;
      CHECK(sums[1][static_cast<std::size_t>(k - 1)] == expect);
    }
  }
}

TEST_CASE("comm::elastic: collectives over the members, and what is refused", "[elastic][faults]") {
  // Each rank records what it saw; checked here (Catch is not thread-safe).
  struct seen {
    int live = 0;
    std::vector<double> average;
    float max = 0;
    std::vector<std::int32_t> gathered;
    bool root_only = false;
    std::int32_t broadcast = 0;
    std::uint64_t epoch = 1;
    std::string refused;
  };
  std::vector<seen> out(3);
  loco::comm::run_in_process(3, [&](loco::comm::in_process& comm) {
    loco::comm::elastic<loco::comm::in_process> e(comm);
    auto& s = out[static_cast<std::size_t>(e.rank())];
    s.live = e.live_count();
    s.average = {static_cast<double>(e.rank() + 1), 1.0};
    e.allreduce(std::span<double>(s.average), loco::comm::reduce_op::average);
    std::vector<float> m{static_cast<float>(e.rank())};
    e.iallreduce(std::span<float>(m), loco::comm::reduce_op::max).wait();
    s.max = m[0];
    loco::wire::buffer mine;
    mine.put<std::int32_t>(e.rank() * 10);
    std::vector<loco::wire::buffer> all;
    e.allgather(mine.bytes(), all);
    for (const auto& b : all) s.gathered.push_back(loco::wire::view(b).get<std::int32_t>("x"));
    e.gather(mine.bytes(), all, 1);
    s.root_only = all[0].empty() == (e.rank() != 1);
    loco::wire::buffer b;
    if (e.rank() == 2) b.put<std::int32_t>(77);
    e.broadcast(b, 2);
    s.broadcast = loco::wire::view(b).get<std::int32_t>("b");
    e.barrier();
    s.epoch = e.epoch();
    try {
      e.send(0, 32000, mine.bytes());
    } catch (const loco::config_error& x) {
      s.refused = x.what();
    }
  });
  for (const auto& s : out) {
    CHECK(s.live == 3);
    CHECK(s.average == std::vector<double>{2.0, 1.0});
    CHECK(s.max == 2.0f);
    CHECK(s.gathered == std::vector<std::int32_t>{0, 10, 20});
    CHECK(s.root_only);
    CHECK(s.broadcast == 77);
    CHECK(s.epoch == 0);
    CHECK_THAT(s.refused, Catch::Contains("reserved"));
  }
  loco::comm::run_in_process(1, [](loco::comm::in_process& comm) {
    CHECK_THROWS_WITH(loco::comm::elastic<loco::comm::in_process>(comm, {.tag = -1}),
                      Catch::Contains("tag -1"));
  });
}
