// Two comm::tcp ranks (threads, 127.0.0.1, HMAC handshake) average a vector:
// the Conan package's headers with loco::tcp's Boost.Asio and OpenSSL.
#include <boost/asio/ip/tcp.hpp>
#include <cstdio>
#include <loco/comm/tcp.hpp>
#include <string>
#include <thread>
#include <vector>

int main() {
  unsigned short port = 0;
  {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  float result[2] = {0, 0};
  auto rank = [&](int r) {
    loco::comm::tcp_options o;
    o.rank = r;
    o.world_size = 2;
    o.coordinator = "127.0.0.1:" + std::to_string(port);
    o.token = "conan-consumer";
    loco::comm::tcp comm(o);
    std::vector<float> v(1000, static_cast<float>(r + 1));  // 1 and 2
    comm.allreduce(std::span<float>(v), loco::comm::reduce_op::average);
    result[r] = v[999];
  };
  std::thread one(rank, 1);
  rank(0);
  one.join();
  std::printf("conan consumer: tcp average of 1 and 2 on both ranks: %.2f %.2f\n",
              static_cast<double>(result[0]), static_cast<double>(result[1]));
  return result[0] == 1.5f && result[1] == 1.5f ? 0 : 1;
}
