// Proves an installed loco works end to end: two ranks of comm::tcp (threads
// of this process on 127.0.0.1, HMAC handshake) run local SGD with the top_k
// compressor on a quadratic and agree on the model; an in-process average
// checks the core alone.
#include <boost/asio/ip/tcp.hpp>
#include <cstdio>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/tcp.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/merge/average.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/version.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

unsigned short free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// Rank r minimises 0.5 ||x - b_r||^2 with b_r = (r + 1, ..., r + 1): the
// average of the two minimisers is 1.5 in every coordinate.
double train(int rank, unsigned short port, std::vector<float>& model) {
  loco::comm::tcp_options o;
  o.rank = rank;
  o.world_size = 2;
  o.coordinator = "127.0.0.1:" + std::to_string(port);
  o.token = "test-package";
  loco::comm::tcp comm(o);

  constexpr std::size_t d = 16;
  auto f = loco::problems::quadratic<float>::diagonal(
      loco::tensor::vector<float>(loco::tensor::vector<float>::shape_type{d}, 1.0f),
      loco::tensor::vector<float>(loco::tensor::vector<float>::shape_type{d},
                                  static_cast<float>(rank + 1)));
  using driver = loco::local_sgd<loco::compress::top_k, loco::comm::tcp, loco::merge::average,
                                 loco::stepsize::constant>;
  driver sgd(loco::compress::top_k(0.5), {}, loco::stepsize::constant(0.2f),
             {.schedule = loco::algorithm::schedule::rounds(60, 5)});
  const std::vector<float> x0(d, 0.0f);
  auto result = sgd.run(comm, f, std::span<const float>(x0));
  model = result.average;
  return static_cast<double>(result.ledger.totals().bytes_sent);
}

}  // namespace

int main() {
  float core = 0.0f;
  loco::comm::run_in_process(2, [&](loco::comm::in_process& comm) {
    float v[1] = {static_cast<float>(comm.rank() + 1)};
    comm.allreduce(std::span<float>(v), loco::comm::reduce_op::average);
    if (comm.rank() == 0) core = v[0];
  });

  const unsigned short port = free_port();
  std::vector<float> m0, m1;
  double bytes = 0;
  std::thread other([&] { train(1, port, m1); });
  bytes = train(0, port, m0);
  other.join();

  const bool same = m0 == m1;
  double mean = 0;
  for (float v : m0) mean += static_cast<double>(v) / static_cast<double>(m0.size());
  const bool moved = mean > 0.75 && mean < 1.6;  // from 0, at least halfway to 1.5
  std::printf(
      "loco %s: in-process average %.2f; tcp local SGD with top_k(50%%): mean x = %.4f "
      "(from 0; optimum 1.5), replicas %s, rank 0 sent %.0f bytes\n",
      loco::version_string, static_cast<double>(core), mean, same ? "identical" : "DIFFER", bytes);
  return core == 1.5f && same && moved && bytes > 0 ? 0 : 1;
}
