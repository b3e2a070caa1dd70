#pragma once
// Runs n ranks of comm::tcp as threads of this process on 127.0.0.1.
#include <loco/comm/tcp.hpp>  // brings Boost.Asio

#include <chrono>
#include <exception>
#include <functional>
#include <loco/comm/tcp.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tcp_test {

// A port that was free a moment ago (bind to 0, read it, release it).
inline unsigned short free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

inline loco::comm::tcp_options options(int rank, int n, unsigned short port) {
  loco::comm::tcp_options o;
  o.rank = rank;
  o.world_size = n;
  o.coordinator = "127.0.0.1:" + std::to_string(port);
  o.token = "conformance-token";
  o.timeout = std::chrono::milliseconds(10000);
  o.handshake_timeout = std::chrono::milliseconds(2000);
  return o;
}

// fn(comm) on n threads; the first rank's root-cause failure is rethrown
// (a rank's peer_lost counts only when nobody failed on its own).
template <class Fn, class Tweak>
void run_threads(int n, Fn fn, Tweak tweak) {
  const unsigned short port = free_port();
  std::mutex m;
  std::exception_ptr first, first_lost;
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto o = options(r, n, port);
        tweak(o);
        loco::comm::tcp comm(o);
        fn(comm);
      } catch (const loco::peer_lost&) {
        std::lock_guard lock(m);
        if (!first_lost) first_lost = std::current_exception();
      } catch (...) {
        std::lock_guard lock(m);
        if (!first) first = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
  if (first_lost) std::rethrow_exception(first_lost);
}

template <class Fn>
void run_threads(int n, Fn fn) {
  run_threads(n, fn, [](loco::comm::tcp_options&) {});
}

struct world {
  template <class Fn>
  static void run(int n, Fn fn) {
    run_threads(n, [&](loco::comm::tcp& c) { fn(c); });
  }
};

// Collects a communicator's log lines (tcp_options::log) from any thread.
struct log_capture {
  std::mutex m;
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& l) {
      std::lock_guard lock(m);
      lines.push_back(l);
    };
  }
  bool contains(const std::string& what) {
    std::lock_guard lock(m);
    for (const auto& l : lines) {
      if (l.find(what) != std::string::npos) return true;
    }
    return false;
  }
};

}  // namespace tcp_test
