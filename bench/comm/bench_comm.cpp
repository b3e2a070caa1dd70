// Allreduce of float vectors (reduce_op::sum) between 2 ranks: rank 0 is
// the benchmark thread, rank 1 a helper thread told by a point-to-point
// command how many allreduces of what size to run. Real time throughout;
// bytes_per_second counts the vector size once per allreduce, as MPI
// benchmarks do. allreduce/tls is allreduce/tcp with TLS on both links
// (certificates made at start-up), so their ratio is TLS's cost.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <loco/comm/in_process.hpp>
#include <loco/comm/tcp.hpp>
#include <loco/wire/view.hpp>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "../../tests/support/test_certificates.hpp"

namespace {

constexpr int command_tag = 999;

// Rank 1: run what rank 0 asks for until it sends a count of -1.
template <class Comm>
void follow(Comm& comm) {
  std::vector<float> v;
  loco::wire::buffer cmd;
  for (;;) {
    comm.recv(0, command_tag, cmd);
    loco::wire::view in(cmd, "command");
    const auto floats = in.get<std::int64_t>("floats");
    const auto iterations = in.get<std::int64_t>("iterations");
    if (floats < 0) return;
    v.assign(static_cast<std::size_t>(floats), 1.0f);
    for (std::int64_t i = 0; i < iterations; ++i) {
      comm.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
    }
  }
}

template <class Comm>
void command(Comm& comm, std::int64_t floats, std::int64_t iterations) {
  loco::wire::buffer cmd;
  cmd.put(floats);
  cmd.put(iterations);
  comm.send(1, command_tag, cmd.bytes());
}

struct in_process_pair {
  std::shared_ptr<loco::comm::detail::in_process_world> world =
      std::make_shared<loco::comm::detail::in_process_world>(2, loco::comm::in_process_options{});
  std::unique_ptr<loco::comm::in_process> rank0;
  std::thread helper;
  in_process_pair() {
    rank0 = std::make_unique<loco::comm::in_process>(world, 0);
    helper = std::thread([w = world] {
      loco::comm::in_process rank1(w, 1);
      follow(rank1);
    });
  }
  ~in_process_pair() {
    command(*rank0, -1, 0);
    helper.join();
  }
};

// A CA and a certificate per rank, in memory.
loco::comm::tcp_tls_options tls_for(int rank) {
  static test_certificates::authority ca("bench CA");
  static const test_certificates::pem_pair certs[2] = {ca.issue("rank0"), ca.issue("rank1")};
  loco::comm::tcp_tls_options t;
  t.enabled = true;
  t.ca_pem = ca.cert_pem();
  t.cert_pem = certs[rank].cert;
  t.key_pem = certs[rank].key;
  return t;
}

template <bool Tls>
struct tcp_pair {
  std::unique_ptr<loco::comm::tcp> rank0;
  std::thread helper;
  static loco::comm::tcp_options options(int rank, unsigned short port) {
    loco::comm::tcp_options o;
    o.rank = rank;
    o.world_size = 2;
    o.coordinator = "127.0.0.1:" + std::to_string(port);
    o.token = "bench-token";
    if (Tls) o.tls = tls_for(rank);
    return o;
  }
  tcp_pair() {
    unsigned short port;
    {
      boost::asio::io_context io;
      boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
      port = a.local_endpoint().port();
    }
    helper = std::thread([port] {
      loco::comm::tcp rank1(options(1, port));
      follow(rank1);
    });
    rank0 = std::make_unique<loco::comm::tcp>(options(0, port));
  }
  ~tcp_pair() {
    command(*rank0, -1, 0);
    helper.join();
  }
};

template <class Pair>
Pair& pair() {
  static Pair p;  // one world per process and communicator, reused by every size
  return p;
}

template <class Pair>
void bm_allreduce(benchmark::State& state) {
  auto& p = pair<Pair>();
  const auto bytes = static_cast<std::size_t>(state.range(0));
  std::vector<float> v(bytes / sizeof(float), 1.0f);
  command(*p.rank0, static_cast<std::int64_t>(v.size()),
          static_cast<std::int64_t>(state.max_iterations));
  for (auto _ : state) {
    p.rank0->allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
  }
  benchmark::DoNotOptimize(v.data());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes));
}

void sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t s : {4, 8, 4096, 40960, 409600, 4096000, 40960000}) b->Arg(s);
}

BENCHMARK_TEMPLATE(bm_allreduce, in_process_pair)
    ->Name("allreduce/in_process")
    ->Apply(sizes)
    ->UseRealTime();
BENCHMARK_TEMPLATE(bm_allreduce, tcp_pair<false>)
    ->Name("allreduce/tcp")
    ->Apply(sizes)
    ->UseRealTime();
BENCHMARK_TEMPLATE(bm_allreduce, tcp_pair<true>)
    ->Name("allreduce/tls")
    ->Apply(sizes)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
