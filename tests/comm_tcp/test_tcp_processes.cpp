// Real processes on 127.0.0.1: a rank killed with SIGKILL inside an
// allreduce (20 of 20 repetitions), and a rank that stops answering
// (SIGSTOP). Every survivor must exit with peer_lost within the timeout.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tcp_world.hpp"

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;

struct outcome {
  std::vector<int> status;  // exit code, or 128 + signal
  long long ms = 0;         // until the last survivor exited
};

// Starts n tcp_worker processes with the loco environment and waits (bounded)
// for every rank except `victim`; the victim is killed afterwards.
outcome run_world(int n, const std::vector<std::string>& args, int victim, int timeout_ms) {
  const auto port = tcp_test::free_port();
  std::vector<pid_t> pids(static_cast<std::size_t>(n), -1);
  const auto start = clock_type::now();
  for (int r = 0; r < n; ++r) {
    std::vector<std::string> env_strings = {
        "LOCO_RANK=" + std::to_string(r), "LOCO_WORLD_SIZE=" + std::to_string(n),
        "LOCO_COORDINATOR=127.0.0.1:" + std::to_string(port), "LOCO_TOKEN=process-test",
        "LOCO_TIMEOUT_MS=" + std::to_string(timeout_ms)};
    std::vector<char*> env;
    for (auto& s : env_strings) env.push_back(s.data());
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string(*e).rfind("LOCO_", 0) != 0) env.push_back(*e);
    }
    env.push_back(nullptr);
    std::vector<std::string> argv_strings = {TCP_WORKER_PATH};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pids[static_cast<std::size_t>(r)], TCP_WORKER_PATH, nullptr, nullptr,
                        argv.data(), env.data()) == 0);
  }
  outcome out;
  out.status.assign(static_cast<std::size_t>(n), -1);
  const auto deadline = start + std::chrono::milliseconds(timeout_ms + 10000);
  int left = victim >= 0 ? n - 1 : n;
  while (left > 0 && clock_type::now() < deadline) {
    for (int r = 0; r < n; ++r) {
      auto& st = out.status[static_cast<std::size_t>(r)];
      if (r == victim || st != -1) continue;
      int raw = 0;
      if (waitpid(pids[static_cast<std::size_t>(r)], &raw, WNOHANG) > 0) {
        st = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
        --left;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  out.ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start).count();
  for (int r = 0; r < n; ++r) {  // the victim, and anything that hung
    auto& st = out.status[static_cast<std::size_t>(r)];
    if (st != -1) continue;
    ::kill(pids[static_cast<std::size_t>(r)], SIGKILL);
    int raw = 0;
    waitpid(pids[static_cast<std::size_t>(r)], &raw, 0);
    if (r != victim) st = 999;  // hung: killed by the test
  }
  return out;
}

}  // namespace

TEST_CASE("tcp processes: a rank killed with SIGKILL mid-allreduce is named on every survivor",
          "[comm][tcp][process]") {
  const int timeout_ms = 5000;
  for (int rep = 0; rep < 20; ++rep) {
    const int n = rep % 2 == 0 ? 4 : 2;
    const int victim = rep % n;
    INFO("repetition " << rep << ", " << n << " ranks, victim " << victim);
    const auto out =
        run_world(n, {"kill", std::to_string(victim), std::to_string(rep % 3)}, victim, timeout_ms);
    for (int r = 0; r < n; ++r) {
      if (r == victim) continue;
      INFO("rank " << r);
      CHECK(out.status[static_cast<std::size_t>(r)] == 3);  // peer_lost naming the victim
    }
    CHECK(out.ms < timeout_ms);  // a death is seen at once, not by the timeout
  }
}

TEST_CASE("tcp processes: a rank that stops answering is reported within the timeout",
          "[comm][tcp][process]") {
  const int timeout_ms = 1500;
  for (int rep = 0; rep < 2; ++rep) {
    const int n = 3, victim = 1 + rep;
    INFO("repetition " << rep << ", victim " << victim);
    const auto out = run_world(n, {"stop", std::to_string(victim), "2"}, victim, timeout_ms);
    int named = 0;
    for (int r = 0; r < n; ++r) {
      if (r == victim) continue;
      INFO("rank " << r << " exit " << out.status[static_cast<std::size_t>(r)]);
      const int st = out.status[static_cast<std::size_t>(r)];
      CHECK((st == 3 || st == 4));  // peer_lost, not a hang or a crash
      named += st == 3;
    }
    // Usually the victim's ring successor names it, but a survivor waiting on
    // a live (blocked) peer can time out first and blame that peer instead
    // (docs/communicators.md#failures), so this is reported, not required.
    if (named == 0) WARN("no survivor named the stopped rank " << victim);
    CHECK(out.ms < timeout_ms + 3000);
  }
}

// Hidden ([.]): this is the behaviour issue #11 asks for, and it does not hold
// yet. Observed (docs/security.md): every survivor exits with peer_lost naming
// the killed worker, within 5 s, in 20 of 20 repetitions; the run does not
// finish with the remaining workers, because a dead peer fails the tcp
// world's collectives and any-source receives for good, and async_sgd ends
// with a broadcast. Run it with: test_comm_tcp_processes "[async_sgd]"
TEST_CASE("tcp processes: async_sgd tolerating lost workers finishes when one is killed",
          "[.][comm][tcp][process][async_sgd]") {
  const int timeout_ms = 5000;
  for (int rep = 0; rep < 20; ++rep) {
    const int n = 4, victim = 1 + rep % 3;  // a worker; rank 0 is the server
    INFO("repetition " << rep << ", victim " << victim);
    const auto out = run_world(n, {"async", std::to_string(victim), std::to_string(3 + rep % 5)},
                               victim, timeout_ms);
    for (int r = 0; r < n; ++r) {
      if (r == victim) continue;
      INFO("rank " << r);
      CHECK(out.status[static_cast<std::size_t>(r)] == 0);  // finished, finite model
    }
    CHECK(out.ms < timeout_ms);
  }
}
