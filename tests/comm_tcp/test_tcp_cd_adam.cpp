// CD-Adam over comm::tcp on loopback (one thread per rank): the model never
// travels, so every replica must hold the same bits after many steps, and
// they must be the bits in_process gives (the run does not depend on the
// transport). With the identity compressor the driver is plain AMSGrad.
#include <catch2/catch.hpp>

#include <loco/comm/in_process.hpp>
#include <loco/comm/tcp.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/scaled_sign.hpp>
#include <loco/compress/top_k.hpp>
#include <mutex>
#include <vector>

#include "../support/cd_adam_replicas.hpp"
#include "tcp_world.hpp"

namespace {

template <class T, class Comm, class C>
void record(Comm& comm, std::vector<std::vector<T>>& models, std::mutex& m, C c,
            loco::algorithm::compression_strategy s, std::size_t iterations) {
  auto x = cd_adam_replicas::run<T>(comm, c, s, iterations);
  std::lock_guard lock(m);
  models[static_cast<std::size_t>(comm.rank())] = std::move(x);
}

template <class T, class C>
std::vector<std::vector<T>> tcp_models(int n, C c, loco::algorithm::compression_strategy s,
                                       std::size_t iterations) {
  std::vector<std::vector<T>> models(static_cast<std::size_t>(n));
  std::mutex m;
  tcp_test::run_threads(n,
                        [&](loco::comm::tcp& comm) { record(comm, models, m, c, s, iterations); });
  return models;
}

template <class T, class C>
std::vector<std::vector<T>> in_process_models(int n, C c, loco::algorithm::compression_strategy s,
                                              std::size_t iterations) {
  std::vector<std::vector<T>> models(static_cast<std::size_t>(n));
  std::mutex m;
  loco::comm::run_in_process(
      n, [&](loco::comm::in_process& comm) { record(comm, models, m, c, s, iterations); });
  return models;
}

}  // namespace

TEST_CASE("CD-Adam keeps replicas bitwise identical over tcp", "[cd_adam][tcp]") {
  constexpr int n = 4;
  constexpr std::size_t iterations = 500;
  const auto check = [&](auto compressor, const char* name) {
    for (auto strategy : cd_adam_replicas::strategies) {
      INFO(name << ", " << cd_adam_replicas::name_of(strategy));
      const auto got = tcp_models<float>(n, compressor, strategy, iterations);
      const auto threads = in_process_models<float>(n, compressor, strategy, iterations);
      for (int r = 0; r < n; ++r) {
        INFO("rank " << r);
        CHECK(cd_adam_replicas::bitwise_equal(got[0], got[static_cast<std::size_t>(r)]));
        CHECK(cd_adam_replicas::bitwise_equal(got[0], threads[static_cast<std::size_t>(r)]));
      }
      CHECK(got[0][0] != cd_adam_replicas::start);
    }
  };
  check(loco::compress::top_k(0.1), "top_k 10%");
  check(loco::compress::scaled_sign{}, "scaled_sign");
}

TEST_CASE("CD-Adam with the identity compressor over tcp equals plain AMSGrad", "[cd_adam][tcp]") {
  constexpr int n = 3;
  constexpr std::size_t iterations = 300;
  const auto want = cd_adam_replicas::plain_amsgrad(n, iterations);
  for (auto strategy : cd_adam_replicas::strategies) {
    INFO(cd_adam_replicas::name_of(strategy));
    const auto got = tcp_models<double>(n, loco::compress::identity{}, strategy, iterations);
    for (int r = 0; r < n; ++r) {
      CHECK(cd_adam_replicas::max_difference(got[static_cast<std::size_t>(r)], want) < 1e-12);
    }
  }
}
