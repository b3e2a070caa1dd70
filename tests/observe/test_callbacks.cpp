// The observe callbacks on the three drivers: one set of callbacks works on
// all of them, stops are agreed across ranks, evaluations happen exactly on
// the rounds they should, and the progress bar's plain output is stable.
// Ranks are threads: they record what they saw, and the test thread checks
// it afterwards (Catch2's assertions are not thread-safe).
#include <catch2/catch.hpp>

#include "observe_support.hpp"

#include <algorithm>
#include <loco/algorithm/async_sgd.hpp>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/merge/average.hpp>
#include <loco/observe/callbacks.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>
#include <regex>
#include <sstream>
#include <tuple>
#include <vector>

namespace {

using observe_support::float_quadratic;
using observe_support::read_csv;
namespace observe = loco::observe;
using loco::comm::in_process;

constexpr int workers = 3;
constexpr std::size_t dim = 12;

using dense_sgd = loco::local_sgd<loco::compress::identity, in_process, loco::merge::average,
                                  loco::stepsize::constant>;
using cd_adam =
    loco::compressed_amsgrad<loco::compress::top_k, in_process, loco::stepsize::constant>;
using async = loco::async_sgd<loco::compress::identity, in_process, loco::stepsize::constant>;

dense_sgd make_local(std::size_t rounds, std::size_t steps = 2) {
  return dense_sgd({}, {}, loco::stepsize::constant(0.05),
                   {.schedule = loco::algorithm::schedule::rounds(rounds, steps)});
}

// An accuracy script: the i-th evaluation returns values[i].
struct scripted {
  std::vector<double> values;
  std::size_t next = 0;
  double operator()(std::span<const float>) {
    return next < values.size() ? values[next++] : values.back();
  }
};

// Runs driver with per-rank callbacks built by make(rank); returns the
// rounds each rank completed (driver stats) via the ledger.
template <class Driver, class Make>
std::vector<std::uint64_t> rounds_run(Driver& driver, int n, Make make) {
  std::vector<std::uint64_t> rounds(static_cast<std::size_t>(n));
  loco::comm::run_in_process(n, [&](in_process& comm) {
    auto f = float_quadratic::for_rank(comm.rank(), dim);
    const std::vector<float> x0(dim, 0.5f);
    auto callbacks = make(comm.rank());
    auto result = std::apply(
        [&](auto&... cb) { return driver.run(comm, f, std::span<const float>(x0), cb...); },
        callbacks);
    rounds[static_cast<std::size_t>(comm.rank())] = result.ledger.totals().rounds;
  });
  return rounds;
}

}  // namespace

TEST_CASE("early_stop stops every rank after the round its target is reached",
          "[observe][callbacks]") {
  auto driver = make_local(30);
  const auto rounds = rounds_run(driver, workers, [](int) {
    return std::tuple(observe::evaluate_every(1, scripted{{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}}),
                      observe::early_stop({.target_accuracy = 0.45}));
  });
  for (auto r : rounds) CHECK(r == 5);
}

TEST_CASE("early_stop's patience counts evaluations without improvement", "[observe][callbacks]") {
  auto driver = make_local(30);
  const auto rounds = rounds_run(driver, workers, [&](int) {
    // Evaluations at rounds 2, 4, 6, 8, 10: best 0.3 at round 4, then three
    // checks that do not beat it by more than min_delta.
    return std::tuple(observe::evaluate_every(2, scripted{{0.1, 0.3, 0.3, 0.2, 0.305, 0.9}}),
                      observe::early_stop({.patience = 3, .min_delta = 0.01}));
  });
  for (auto r : rounds) CHECK(r == 10);
}

TEST_CASE("early_stop on the training loss, decided on rank 0", "[observe][callbacks]") {
  auto driver = make_local(40, 1);
  // A first run gives rank 0's loss per round; the target is the 7th.
  std::vector<double> losses;
  loco::comm::run_in_process(workers, [&](in_process& comm) {
    auto f = float_quadratic::for_rank(comm.rank(), dim);
    const std::vector<float> x0(dim, 0.5f);
    auto result = driver.run(comm, f, std::span<const float>(x0));
    if (comm.rank() != 0) return;
    for (const auto& r : result.ledger.rounds()) losses.push_back(r.loss);
  });
  REQUIRE(losses.size() == 40);
  const double target = losses[6];
  std::uint64_t first = 0;
  while (losses[first] > target) ++first;
  INFO("target " << target << " first reached at round " << first + 1);

  std::vector<std::uint64_t> stop_round(workers, 99), decided(workers, 99);
  std::string reason;
  double reached = 0;
  loco::comm::run_in_process(workers, [&](in_process& comm) {
    const auto me = static_cast<std::size_t>(comm.rank());
    auto f = float_quadratic::for_rank(comm.rank(), dim);
    const std::vector<float> x0(dim, 0.5f);
    observe::early_stop stop({.target_train_loss = target});
    auto result = driver.run(comm, f, std::span<const float>(x0), stop);
    stop_round[me] = result.stats.rounds;
    decided[me] = stop.stop_round();
    if (me == 0) {
      reason = stop.reason();
      reached = result.stats.last_round_loss;
    }
  });
  CHECK(decided[0] == stop_round[0]);
  CHECK(decided[1] == 0);  // ranks 1 and 2 do not decide
  CHECK(decided[2] == 0);
  CHECK(reason.find("training loss") != std::string::npos);
  CHECK(reached <= target);
  CHECK(stop_round[0] == first + 1);
  CHECK(stop_round[1] == stop_round[0]);
  CHECK(stop_round[2] == stop_round[0]);
}

TEST_CASE("evaluate_every calls fn exactly on multiples of k, on the average model",
          "[observe][callbacks]") {
  auto driver = make_local(10);
  std::vector<std::vector<std::uint64_t>> evaluated(workers);
  std::vector<std::vector<float>> seen(workers), average(workers);
  std::vector<std::uint64_t> counted(workers);
  std::vector<loco::observe::round_record> third(workers), fourth(workers);
  for (bool last : {false, true}) {
    for (auto& e : evaluated) e.clear();
    loco::comm::run_in_process(workers, [&](in_process& comm) {
      const auto me = static_cast<std::size_t>(comm.rank());
      auto f = float_quadratic::for_rank(comm.rank(), dim);
      const std::vector<float> x0(dim, 0.5f);
      auto fn = [&](std::span<const float> x) {
        seen[me].assign(x.begin(), x.end());
        return observe::metrics{.accuracy = 0.5, .test_loss = 2.0};
      };
      observe::evaluate_every eval(3, fn, {.rank = -1, .at_last_round = last});
      struct recorder {
        std::vector<std::uint64_t>* out;
        void on_round_end(const loco::algorithm::progress_info<float>& info) {
          if (info.ledger->last_evaluation().round == info.round) out->push_back(info.round);
        }
      } record{&evaluated[me]};
      auto result = driver.run(comm, f, std::span<const float>(x0), eval, record);
      average[me] = result.average;
      counted[me] = eval.evaluations();
      third[me] = result.ledger.rounds()[2];
      fourth[me] = result.ledger.rounds()[3];
    });
    for (std::size_t r = 0; r < workers; ++r) {
      CHECK(counted[r] == evaluated[r].size());
      CHECK(third[r].accuracy == 0.5);
      CHECK(third[r].test_loss == 2.0);
      CHECK(std::isnan(fourth[r].accuracy));
    }
    const std::vector<std::uint64_t> want =
        last ? std::vector<std::uint64_t>{3, 6, 9, 10} : std::vector<std::uint64_t>{3, 6, 9};
    for (const auto& e : evaluated) CHECK(e == want);
    if (last) {
      // Round 10 is the last: the model evaluated is the final average.
      for (int r = 0; r < workers; ++r) {
        const auto i = static_cast<std::size_t>(r);
        for (std::size_t j = 0; j < dim; ++j) CHECK(seen[i][j] == Approx(average[i][j]));
      }
    }
  }
}

TEST_CASE("evaluate_every runs fn on rank 0 only by default", "[observe][callbacks]") {
  auto driver = make_local(6);
  std::vector<std::uint64_t> calls(workers);
  loco::comm::run_in_process(workers, [&](in_process& comm) {
    auto f = float_quadratic::for_rank(comm.rank(), dim);
    const std::vector<float> x0(dim, 0.5f);
    observe::evaluate_every eval(2, [](std::span<const float>) { return 0.25; });
    driver.run(comm, f, std::span<const float>(x0), eval);
    calls[static_cast<std::size_t>(comm.rank())] = eval.evaluations();
  });
  CHECK(calls == std::vector<std::uint64_t>{3, 0, 0});
  CHECK_THROWS_AS(observe::evaluate_every(0, [](std::span<const float>) { return 0.0; }),
                  loco::config_error);
}

TEST_CASE("time_limit on the communicator's clock stops at the first round past it",
          "[observe][callbacks][sim]") {
  using sim_sgd = loco::local_sgd<loco::compress::identity, loco::comm::simulated,
                                  loco::merge::average, loco::stepsize::constant>;
  const std::size_t steps = 4;
  const double tau = 0.5;  // a round takes 2 virtual seconds
  sim_sgd driver({}, {}, loco::stepsize::constant(0.05),
                 {.schedule = loco::algorithm::schedule::rounds(50, steps)});
  std::vector<std::size_t> rounds(workers);
  std::vector<std::uint64_t> decided(workers);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model(tau);
  loco::comm::run_simulated(
      workers,
      [&](loco::comm::simulated& comm) {
        loco::sim::timed f(float_quadratic::for_rank(comm.rank(), dim), comm.clock());
        const std::vector<float> x0(dim, 0.5f);
        observe::time_limit limit(5.0);  // rounds end at 2, 4, 6: stop after round 3
        auto result = driver.run(comm, f, std::span<const float>(x0), limit);
        rounds[static_cast<std::size_t>(comm.rank())] = result.stats.rounds;
        decided[static_cast<std::size_t>(comm.rank())] = limit.stop_round();
      },
      opt);
  for (auto r : rounds) CHECK(r == 3);
  for (auto r : decided) CHECK(r == 3);
}

TEST_CASE("time_limit on the wall clock stops", "[observe][callbacks]") {
  auto driver = make_local(1000);
  const auto rounds = rounds_run(driver, workers, [](int) {
    return std::tuple(observe::time_limit(1e-9, observe::time_clock::wall));
  });
  for (auto r : rounds) CHECK(r == 1);
  CHECK_THROWS_AS(observe::time_limit(0.0), loco::config_error);
}

TEST_CASE("progress_bar prints plain lines every k rounds when not on a terminal",
          "[observe][callbacks]") {
  auto driver = make_local(7);
  std::vector<std::string> text(workers);
  loco::comm::run_in_process(workers, [&](in_process& comm) {
    auto f = float_quadratic::for_rank(comm.rank(), dim);
    const std::vector<float> x0(dim, 0.5f);
    std::ostringstream out;
    observe::progress_bar bar({.out = &out, .every = 3, .terminal = 0, .label = "loscar"});
    driver.run(comm, f, std::span<const float>(x0),
               observe::evaluate_every(2, [](std::span<const float>) { return 0.875; }), bar);
    text[static_cast<std::size_t>(comm.rank())] = out.str();
  });
  INFO(text[0]);
  std::ostringstream elsewhere;
  CHECK_FALSE(observe::progress_bar({.out = &elsewhere}).terminal());  // not std::cout
  CHECK(text[1].empty());                                              // rank 0 only
  CHECK(text[2].empty());
  std::istringstream lines(text[0]);
  std::vector<std::string> got;
  for (std::string line; std::getline(lines, line);) got.push_back(line);
  REQUIRE(got.size() == 3);  // rounds 3, 6 and the last, 7
  const std::regex format(
      R"(loscar  round (\d+)/7  loss [0-9.e+-]+  accuracy 0\.8750  bytes [0-9.]+ (B|kB)  time [0-9.]+ (s|ms|us|ns)(  eta ([0-9.]+ (s|ms|us|ns)|0))?)");
  const char* rounds[] = {"3", "6", "7"};
  for (std::size_t i = 0; i < got.size(); ++i) {
    std::smatch m;
    INFO(got[i]);
    REQUIRE(std::regex_match(got[i], m, format));
    CHECK(m[1] == rounds[i]);
    CHECK(got[i].find('\r') == std::string::npos);
  }
  CHECK(got[2].find("eta 0") != std::string::npos);  // the last round: nothing left
}

TEST_CASE("progress_bar redraws one line in place on a terminal", "[observe][callbacks]") {
  auto driver = make_local(5);
  std::string text;
  loco::comm::run_in_process(workers, [&](in_process& comm) {
    auto f = float_quadratic::for_rank(comm.rank(), dim);
    const std::vector<float> x0(dim, 0.5f);
    std::ostringstream out;
    observe::progress_bar bar({.out = &out, .terminal = 1, .width = 10, .redraw_seconds = 0.0});
    driver.run(comm, f, std::span<const float>(x0), bar);
    if (comm.rank() == 0) text = out.str();
  });
  INFO(text);
  CHECK(std::count(text.begin(), text.end(), '\r') == 5);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);  // only at the end
  CHECK(text.back() == '\n');
  CHECK(text.find("\r[##########] round 5/5") != std::string::npos);
  CHECK(text.find("\r[##........] round 1/5") != std::string::npos);
}

TEST_CASE("csv_log writes the ledger's rows as the run goes", "[observe][callbacks]") {
  auto driver = make_local(8);
  const std::string path = "test_observe_csv_log.csv", reference = "test_observe_reference.csv";
  std::vector<std::size_t> written(workers);
  loco::comm::run_in_process(workers, [&](in_process& comm) {
    auto f = float_quadratic::for_rank(comm.rank(), dim);
    const std::vector<float> x0(dim, 0.5f);
    observe::csv_log log(path, {.run = "dense"});
    auto result =
        driver.run(comm, f, std::span<const float>(x0),
                   observe::evaluate_every(4, [](std::span<const float>) { return 0.5; }), log);
    written[static_cast<std::size_t>(comm.rank())] = log.rows();
    if (comm.rank() == 0) result.ledger.to_csv(reference, "dense");
  });
  CHECK(written == std::vector<std::size_t>{8, 0, 0});
  const auto rows = read_csv(path), want = read_csv(reference);
  REQUIRE(rows.size() == 9);
  CHECK(rows == want);
  CHECK(rows[4][6] == "0.5");  // accuracy of round 4
  std::remove(path.c_str());
  std::remove(reference.c_str());
}

TEST_CASE("one set of callbacks works on all three drivers", "[observe][callbacks]") {
  const auto make = [](int) {
    return std::tuple(observe::evaluate_every(2, scripted{{0.1, 0.2, 0.9}}),
                      observe::early_stop({.target_accuracy = 0.8}),
                      observe::progress_bar({.rank = 99, .terminal = 0}), observe::time_limit(1e6));
  };
  SECTION("local_sgd") {
    auto driver = make_local(20);
    for (auto r : rounds_run(driver, workers, make)) CHECK(r == 6);
  }
  SECTION("compressed_amsgrad") {
    cd_adam driver(loco::compress::top_k(0.25), loco::stepsize::constant(0.01), {.iterations = 20});
    for (auto r : rounds_run(driver, workers, make)) CHECK(r == 6);
  }
  SECTION("async_sgd: callbacks run on the server, which stops the workers") {
    async driver({}, loco::stepsize::constant(0.01), {.updates = 20});
    std::vector<std::uint64_t> updates(4);
    std::vector<std::vector<float>> models(4);
    loco::comm::run_in_process(4, [&](in_process& comm) {
      auto f = float_quadratic::for_rank(comm.rank(), dim);
      const std::vector<float> x0(dim, 0.5f);
      auto cb = make(comm.rank());
      auto result = std::apply(
          [&](auto&... c) { return driver.run(comm, f, std::span<const float>(x0), c...); }, cb);
      updates[static_cast<std::size_t>(comm.rank())] = result.stats.updates;
      models[static_cast<std::size_t>(comm.rank())] = result.model;
    });
    CHECK(updates[0] == 6);
    for (int r = 1; r < 4; ++r) CHECK(models[static_cast<std::size_t>(r)] == models[0]);
  }
}
