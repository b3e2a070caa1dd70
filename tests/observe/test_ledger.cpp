// observe::ledger: unit behaviour (laps, totals, CSV, table) and the byte
// counts every driver records, checked against counts derived by hand from
// the message formats.
#include <catch2/catch.hpp>

#include "observe_support.hpp"

#include <cmath>
#include <fstream>
#include <loco/algorithm/async_sgd.hpp>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/random_k.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/merge/average.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>
#include <mutex>
#include <sstream>
#include <vector>

namespace {

using loco::observe::ledger;
using loco::observe::phase;
using loco::observe::role;
using observe_support::float_quadratic;
using observe_support::read_csv;

constexpr int workers = 3;
constexpr std::size_t dim = 40;

// Runs `driver` on `n` in_process ranks and returns every rank's ledger.
template <class Driver>
std::vector<ledger> ledgers_of(Driver& driver, int n = workers) {
  std::vector<ledger> out(static_cast<std::size_t>(n));
  loco::comm::run_in_process(n, [&](loco::comm::in_process& comm) {
    auto f = float_quadratic::for_rank(comm.rank(), dim);
    const std::vector<float> x0(dim, 0.5f);
    auto result = driver.run(comm, f, std::span<const float>(x0));
    out[static_cast<std::size_t>(comm.rank())] = std::move(result.ledger);
  });
  return out;
}

// What every ledger must satisfy after any run.
void check_consistent(const std::vector<ledger>& all) {
  for (const auto& l : all) {
    const auto& t = l.totals();
    INFO("rank " << l.rank());
    // The phases are laps of one clock: they add up to the elapsed time.
    CHECK(t.seconds.sum() == Approx(t.elapsed).margin(1e-9));
    CHECK(t.seconds.compute >= 0.0);
    CHECK(t.seconds.wait >= 0.0);
    // Every rank holds every rank's totals, equal to that rank's own.
    REQUIRE(l.all_ranks().size() == all.size());
    for (std::size_t q = 0; q < all.size(); ++q) {
      const auto& theirs = l.all_ranks()[q];
      const auto& own = all[q].totals();
      CHECK(theirs.rank == static_cast<int>(q));
      CHECK(theirs.role == own.role);
      CHECK(theirs.bytes_sent == own.bytes_sent);
      CHECK(theirs.bytes_received == own.bytes_received);
      CHECK(theirs.seconds.compute == own.seconds.compute);
    }
    // Records add up to the totals (what follows the last round is only time).
    std::uint64_t sent = 0, received = 0;
    double previous = 0.0;
    for (const auto& r : l.rounds()) {
      sent += r.bytes_sent;
      received += r.bytes_received;
      CHECK(r.time >= previous);
      CHECK(r.seconds.sum() == Approx(r.time - previous).margin(1e-9));
      previous = r.time;
    }
    CHECK(l.rounds().size() == t.rounds);
    CHECK(sent <= t.bytes_sent);
    CHECK(received <= t.bytes_received);
  }
}

}  // namespace

TEST_CASE("ledger: laps split the time, rounds fold into the totals", "[observe][ledger]") {
  ledger l;
  l.start(2, 4, role::peer, 10.0, true, false);
  l.lap(phase::compute, 10.5);
  l.add_sent(100, 50);
  l.lap(phase::compress, 10.75);
  l.add_received(300, 50);
  l.lap(phase::wait, 11.0);
  const auto& first = l.end_round(1, 8, 11.25, 0.5);
  CHECK(first.round == 1);
  CHECK(first.step == 8);
  CHECK(first.time == 1.25);
  CHECK(first.seconds.compute == 0.75);  // 0.5 before and 0.25 closing the round
  CHECK(first.seconds.compress == 0.25);
  CHECK(first.seconds.wait == 0.25);
  CHECK(first.bytes_cumulative == 100);  // sees only itself: its own bytes
  CHECK(first.ratio_fp32() == Approx(400.0 / 400.0));
  CHECK(first.ratio_fp16() == Approx(400.0 / 200.0));
  l.add_sent(20, 50);
  l.end_round(2, 16, 12.0, 0.25);
  l.lap(phase::other, 12.5);  // after the last round: folded by finish
  l.add_sent(1, 0);
  l.finish(13.0);

  const auto& t = l.totals();
  CHECK(t.rank == 2);
  CHECK(t.rounds == 2);
  CHECK(t.bytes_sent == 121);
  CHECK(t.bytes_received == 300);
  CHECK(t.values_sent == 100);
  CHECK(t.elapsed == 3.0);
  CHECK(t.seconds.sum() == Approx(3.0));
  CHECK(t.seconds.other == 1.0);
  CHECK(t.ratio_up_fp32() == Approx(121.0 / 400.0));
  CHECK(t.ratio_down_fp32() == Approx(300.0 / 200.0));
  REQUIRE(l.rounds().size() == 2);
  CHECK(l.rounds()[1].bytes_cumulative == 120);
  CHECK(l.last_round()->round == 2);

  // Evaluations land on the round that just ended.
  l.record_evaluation(0.75, 0.4);
  CHECK(l.last_evaluation().round == 2);
  CHECK(l.rounds()[1].accuracy == 0.75);
  CHECK(std::isnan(l.rounds()[0].accuracy));
}

TEST_CASE("ledger: a server's directions are the reverse of its sends", "[observe][ledger]") {
  loco::observe::rank_totals server;
  server.role = role::server;
  server.bytes_sent = 10;
  server.bytes_received = 3;
  CHECK(server.bytes_up() == 3);
  CHECK(server.bytes_down() == 10);
  loco::observe::rank_totals worker;
  worker.role = role::worker;
  worker.bytes_sent = 3;
  worker.bytes_received = 10;
  CHECK(worker.bytes_up() == 3);
  CHECK(worker.bytes_down() == 10);
  CHECK(std::isnan(worker.ratio_fp32()));  // no vectors: no ratio
}

TEST_CASE("ledger: record_rounds = false keeps totals and the last round only",
          "[observe][ledger]") {
  ledger l;
  l.start(0, 1, role::peer, 0.0, false, true);
  for (std::uint64_t r = 1; r <= 100; ++r) {
    l.add_sent(10, 10);
    l.add_all_workers_sent(30);
    l.end_round(r, r, static_cast<double>(r), 1.0);
  }
  l.finish(100.0);
  CHECK(l.rounds().empty());
  CHECK(l.totals().rounds == 100);
  CHECK(l.totals().bytes_sent == 1000);
  CHECK(l.last_round()->round == 100);
  CHECK(l.last_round()->bytes_cumulative == 3000);  // sees all workers
  CHECK_THROWS_AS(l.to_csv("unused.csv"), loco::config_error);
}

TEST_CASE("ledger: recording allocates only amortized (reserved rounds: never)",
          "[observe][ledger]") {
  ledger l;
  l.start(0, 1, role::peer, 0.0, true, false);
  l.reserve_rounds(1000);
  const auto* before = l.rounds().data();
  l.end_round(1, 1, 1.0, 0.0);
  const auto* first = l.rounds().data();
  for (std::uint64_t r = 2; r <= 1000; ++r) l.end_round(r, r, static_cast<double>(r), 0.0);
  CHECK(l.rounds().data() == first);  // no reallocation within the reservation
  (void)before;
}

TEST_CASE("ledger: CSV round-trips with the trace columns first", "[observe][ledger]") {
  ledger l;
  l.start(1, 2, role::worker, 0.0, true, false);
  l.add_sent(1234, 1000);
  l.add_received(56, 1000);
  l.lap(phase::compute, 0.5);
  l.end_round(1, 3, 1.0, 0.125);
  l.record_evaluation(0.5, 0.75);
  l.add_sent(1000, 1000);
  l.end_round(2, 6, 2.0, 0.0625);
  l.finish(2.0);
  const std::string path = "test_observe_ledger.csv";
  l.to_csv(path, "my, run");

  const auto rows = read_csv(path);
  REQUIRE(rows.size() == 3);
  const auto& head = rows[0];
  const std::vector<std::string> trace = {"run",   "round", "step",    "time_s",
                                          "bytes", "loss",  "accuracy"};
  REQUIRE(head.size() == ledger::csv_columns().size());
  for (std::size_t c = 0; c < trace.size(); ++c) CHECK(head[c] == trace[c]);
  const auto col = [&](const std::string& name) {
    for (std::size_t c = 0; c < head.size(); ++c)
      if (head[c] == name) return c;
    FAIL("no column " << name);
    return std::size_t{0};
  };
  CHECK(rows[1][col("run")] == "my, run");  // quoted on write, unquoted on read
  CHECK(rows[1][col("round")] == "1");
  CHECK(rows[1][col("step")] == "3");
  CHECK(std::stod(rows[1][col("time_s")]) == 1.0);
  CHECK(rows[1][col("bytes")] == "1234");
  CHECK(rows[2][col("bytes")] == "2234");  // cumulative
  CHECK(std::stod(rows[1][col("loss")]) == 0.125);
  CHECK(std::stod(rows[1][col("accuracy")]) == 0.5);
  CHECK(rows[2][col("accuracy")] == "nan");  // not evaluated: skipped by tools/plot.py
  CHECK(std::stod(rows[1][col("test_loss")]) == 0.75);
  CHECK(rows[1][col("rank")] == "1");
  CHECK(rows[1][col("role")] == "worker");
  CHECK(rows[1][col("bytes_sent")] == "1234");
  CHECK(rows[1][col("bytes_received")] == "56");
  CHECK(std::stod(rows[1][col("ratio_fp32")]) == Approx(1290.0 / 8000.0));
  CHECK(std::stod(rows[1][col("ratio_fp16")]) == Approx(1290.0 / 4000.0));
  CHECK(std::stod(rows[1][col("compute_s")]) == 1.0);
  CHECK(rows[1][col("delay")] == "nan");
  std::remove(path.c_str());
}

TEST_CASE("ledger: the summary table has a row per rank and an aligned sum row",
          "[observe][ledger]") {
  std::vector<ledger> all(2);
  // Build two ranks by hand and let them exchange totals on in_process.
  loco::comm::run_in_process(2, [&](loco::comm::in_process& comm) {
    ledger& l = all[static_cast<std::size_t>(comm.rank())];
    l.start(comm.rank(), 2, role::peer, 0.0, true, true);
    l.add_sent(comm.rank() == 0 ? 1'500'000 : 500, 1000);
    l.lap(phase::compute, 2.0);
    l.end_round(1, 1, 3.0, 0.0);
    l.finish(3.0);
    l.gather(comm);
  });
  const std::string text = all[1].summary_table().str();
  INFO(text);
  std::istringstream lines(text);
  std::vector<std::string> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(line);
  REQUIRE(rows.size() == 5);                                     // header, rule, two ranks, sum
  for (const auto& r : rows) CHECK(r.size() == rows[0].size());  // aligned: equal widths
  CHECK(rows[0].rfind("rank", 0) == 0);
  CHECK(rows[1].find_first_not_of('-') == std::string::npos);
  CHECK(rows[2].rfind("0 ", 0) == 0);
  CHECK(rows[2].find("1.50 MB") != std::string::npos);
  CHECK(rows[3].find("500 B") != std::string::npos);
  CHECK(rows[4].rfind("sum", 0) == 0);
  CHECK(rows[4].find("1.50 MB") != std::string::npos);  // 1'500'500 bytes
  // Right-aligned sizes end in the same column.
  CHECK(rows[2].find("MB") + 2 == rows[3].find(" B") + 2);
  std::ostringstream out;
  all[0].print_summary(out);
  CHECK(out.str().find("ledger: 2 ranks") == 0);
  CHECK(out.str().find(text) != std::string::npos);
}

TEST_CASE("format_bytes and format_seconds use three digits and a unit", "[observe][ledger]") {
  CHECK(loco::observe::format_bytes(0) == "0 B");
  CHECK(loco::observe::format_bytes(999) == "999 B");
  CHECK(loco::observe::format_bytes(1000) == "1.00 kB");
  CHECK(loco::observe::format_bytes(12'345) == "12.3 kB");
  CHECK(loco::observe::format_bytes(123'456'789) == "123 MB");
  CHECK(loco::observe::format_bytes(2.5e9) == "2.50 GB");
  CHECK(loco::observe::format_seconds(0.0) == "0");
  CHECK(loco::observe::format_seconds(2.5) == "2.50 s");
  CHECK(loco::observe::format_seconds(0.0376) == "37.6 ms");
  CHECK(loco::observe::format_seconds(5.69e-5) == "56.9 us");
  CHECK(loco::observe::format_seconds(1234.0) == "1234 s");
}

TEST_CASE("local_sgd ledger: a dense fp32 run sends d * 4 bytes per round per worker",
          "[observe][ledger][local_sgd]") {
  using driver_t = loco::local_sgd<loco::compress::identity, loco::comm::in_process,
                                   loco::merge::average, loco::stepsize::constant>;
  const std::size_t rounds = 6;
  driver_t driver({}, {}, loco::stepsize::constant(0.05),
                  {.schedule = loco::algorithm::schedule::rounds(rounds, 3)});
  const auto all = ledgers_of(driver);
  check_consistent(all);
  for (const auto& l : all) {
    const auto& t = l.totals();
    CHECK(t.role == role::peer);
    CHECK(t.rounds == rounds);
    CHECK(t.bytes_sent == rounds * dim * 4);
    CHECK(t.bytes_received == rounds * dim * 4);
    CHECK(t.values_sent == rounds * dim);
    CHECK(t.ratio_fp32() == Approx(1.0));
    CHECK(t.ratio_fp16() == Approx(2.0));
    REQUIRE(l.rounds().size() == rounds);
    CHECK(l.rounds()[2].bytes_sent == dim * 4);
    // bytes: every worker's payload so far.
    CHECK(l.rounds()[2].bytes_cumulative == 3 * workers * dim * 4);
    CHECK(l.workers_total().bytes_sent == workers * rounds * dim * 4);
  }
}

TEST_CASE("local_sgd ledger: top_k messages are counted at their wire size",
          "[observe][ledger][local_sgd]") {
  using driver_t = loco::local_sgd<loco::compress::top_k, loco::comm::in_process,
                                   loco::merge::average, loco::stepsize::constant>;
  const loco::compress::top_k topk(0.1);
  const std::size_t rounds = 5, message = topk.wire_bytes<float>(dim);
  REQUIRE(message == 16 + 4 + 4 * (4 + 4));  // header, k, 4 indices and 4 values
  driver_t driver(topk, {}, loco::stepsize::constant(0.05),
                  {.schedule = loco::algorithm::schedule::rounds(rounds, 2)});
  const auto all = ledgers_of(driver);
  check_consistent(all);
  for (const auto& l : all) {
    const auto& t = l.totals();
    CHECK(t.bytes_sent == rounds * message);
    // Each worker reads the other workers' messages, each standing for d values.
    CHECK(t.bytes_received == rounds * (workers - 1) * message);
    CHECK(t.values_received == rounds * (workers - 1) * dim);
    CHECK(t.ratio_up_fp32() == Approx(static_cast<double>(message) / (4.0 * dim)));
    CHECK(t.ratio_fp32() == Approx(static_cast<double>(message) / (4.0 * dim)));
    CHECK(l.last_round()->bytes_cumulative == rounds * workers * message);
  }
}

TEST_CASE("local_sgd ledger: random_k sends only the K shared-support values",
          "[observe][ledger][local_sgd]") {
  using driver_t = loco::local_sgd<loco::compress::random_k_unscaled, loco::comm::in_process,
                                   loco::merge::average, loco::stepsize::constant>;
  const std::size_t rounds = 4, k = 10;
  driver_t driver(loco::compress::random_k_unscaled(0.25, 3), {}, loco::stepsize::constant(0.05),
                  {.schedule = loco::algorithm::schedule::rounds(rounds, 2)});
  const auto all = ledgers_of(driver);
  check_consistent(all);
  for (const auto& l : all) {
    CHECK(l.totals().bytes_sent == rounds * k * 4);
    CHECK(l.totals().ratio_fp32() == Approx(0.25));  // K / d
  }
}

TEST_CASE("compressed_amsgrad ledger: top_k up and down, every iteration",
          "[observe][ledger][cd_adam]") {
  using driver_t = loco::compressed_amsgrad<loco::compress::top_k, loco::comm::in_process,
                                            loco::stepsize::constant>;
  const loco::compress::top_k topk(0.1);
  const std::size_t iterations = 7, message = topk.wire_bytes<float>(dim);
  driver_t driver(topk, loco::stepsize::constant(0.01), {.iterations = iterations});
  const auto all = ledgers_of(driver);
  check_consistent(all);
  for (const auto& l : all) {
    const auto& t = l.totals();
    CHECK(t.role == role::worker);
    CHECK(t.bytes_up() == iterations * message);
    CHECK(t.bytes_down() == iterations * message);
    CHECK(t.ratio_up_fp32() == Approx(static_cast<double>(message) / (4.0 * dim)));
  }
  // Rank 0 is the server: it sees every uplink message.
  CHECK(all[0].sees_all_workers());
  CHECK_FALSE(all[1].sees_all_workers());
  CHECK(all[0].last_round()->bytes_cumulative == iterations * workers * message);
  CHECK(all[1].last_round()->bytes_cumulative == iterations * message);
}

TEST_CASE("async_sgd ledger: jobs down, gradients up, mirrored on the server",
          "[observe][ledger][async_sgd]") {
  using driver_t =
      loco::async_sgd<loco::compress::identity, loco::comm::in_process, loco::stepsize::constant>;
  const std::uint64_t updates = 60;
  const int n = 4;  // a server and 3 workers: 3 jobs in flight
  driver_t driver({}, loco::stepsize::constant(0.01), {.updates = updates});
  const auto all = ledgers_of(driver, n);
  check_consistent(all);
  const std::uint64_t jobs =
      3 + updates - 1;  // initial jobs and one after each update but the last
  const std::uint64_t job_bytes = 1 + 8 + 4 * dim;
  const std::uint64_t gradient_bytes = 8 + loco::compress::identity{}.wire_bytes<float>(dim);
  const auto& server = all[0].totals();
  CHECK(server.role == role::server);
  CHECK(server.rounds == updates);
  // and a stop per worker, carrying the final model and the tail average
  const std::uint64_t stop_bytes = 1 + 1 + 2 * 4 * dim;
  CHECK(server.bytes_sent == jobs * job_bytes + 3 * stop_bytes);
  CHECK(server.bytes_received == jobs * gradient_bytes);  // applied or discarded at the end
  CHECK(server.bytes_down() == server.bytes_sent);
  // The workers' sums mirror the server.
  const auto sum = all[2].workers_total();
  CHECK(sum.bytes_sent == server.bytes_received);
  CHECK(sum.bytes_received == server.bytes_sent);
  CHECK(sum.rounds == jobs);
  // Per-update records on the server carry the delay.
  REQUIRE(all[0].rounds().size() == updates);
  for (const auto& r : all[0].rounds()) CHECK(r.delay >= 0);
  for (int w = 1; w < n; ++w) {
    CHECK(all[static_cast<std::size_t>(w)].totals().role == role::worker);
    for (const auto& r : all[static_cast<std::size_t>(w)].rounds()) CHECK(r.delay == -1);
  }
}

TEST_CASE("ledger on the simulator: compute and round times are virtual and exact",
          "[observe][ledger][sim]") {
  using driver_t = loco::local_sgd<loco::compress::identity, loco::comm::simulated,
                                   loco::merge::average, loco::stepsize::constant>;
  const std::size_t rounds = 5, steps = 4;
  const double tau = 0.25;
  driver_t driver({}, {}, loco::stepsize::constant(0.05),
                  {.schedule = loco::algorithm::schedule::rounds(rounds, steps)});
  std::vector<ledger> all(workers);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model(tau);
  loco::comm::run_simulated(
      workers,
      [&](loco::comm::simulated& comm) {
        loco::sim::timed f(float_quadratic::for_rank(comm.rank(), dim), comm.clock());
        const std::vector<float> x0(dim, 0.5f);
        auto result = driver.run(comm, f, std::span<const float>(x0));
        all[static_cast<std::size_t>(comm.rank())] = std::move(result.ledger);
      },
      opt);
  check_consistent(all);
  for (const auto& l : all) {
    CHECK(l.totals().seconds.compute == Approx(rounds * steps * tau));
    CHECK(l.totals().seconds.compress == 0.0);  // the simulator charges no time for it
    CHECK(l.totals().elapsed == Approx(rounds * steps * tau));
    for (const auto& r : l.rounds())
      CHECK(r.time == Approx(static_cast<double>(r.round * steps) * tau));
  }
}
