#pragma once
// Two ranks of one communicator in one process for the allreduce
// benchmarks: rank 0 is the caller's, rank 1 a helper thread that runs what
// rank 0 commands by a point-to-point message (a count of allreduces of a
// size), until a count of -1. The communicators' timeouts are long, so a
// helper idle during a long benchmark of another communicator is not
// reported as lost.
#include <chrono>
#include <cstdint>
#include <loco/comm/in_process.hpp>
#include <loco/comm/tcp.hpp>
#include <loco/wire/view.hpp>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../../tests/support/test_certificates.hpp"

namespace bench_pairs {

// An idle helper waits for its next command this long.
inline constexpr loco::comm::duration idle_timeout{std::chrono::hours(1)};

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
      std::make_shared<loco::comm::detail::in_process_world>(2, options());
  static loco::comm::in_process_options options() {
    loco::comm::in_process_options o;
    o.timeout = idle_timeout;
    return o;
  }
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

// Poll: busy-poll as tcp_options' default does (50 us); otherwise park at once (0).
template <bool Tls, bool Poll = true>
struct tcp_pair {
  std::unique_ptr<loco::comm::tcp> rank0;
  std::thread helper;
  static loco::comm::tcp_options options(int rank, unsigned short port) {
    loco::comm::tcp_options o;
    o.rank = rank;
    o.world_size = 2;
    o.coordinator = "127.0.0.1:" + std::to_string(port);
    o.token = "bench-token";
    o.timeout = idle_timeout;
    if (Tls) o.tls = tls_for(rank);
    if (!Poll) o.busy_poll = std::chrono::microseconds(0);
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

}  // namespace bench_pairs
