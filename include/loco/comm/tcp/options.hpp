#pragma once
// comm::tcp_options: how one process joins a TCP world. Included by
// <loco/comm/tcp.hpp>; see docs/communicators.md#tcp for the table.
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <string>
#include <string_view>
#include <system_error>

namespace loco::comm {

// TLS on every link of a TCP world (docs/communicators.md#tls): mutual
// certificates signed by one CA, TLS 1.2 or newer. Each of the CA, the
// certificate and the key is given as a file or as PEM text (one of the two).
struct tcp_tls_options {
  bool enabled = false;
  // The CA every rank's certificate must chain to.
  std::string ca_file, ca_pem;
  // This rank's certificate (PEM; may carry intermediate certificates after it).
  std::string cert_file, cert_pem;
  // Its private key (PEM, unencrypted).
  std::string key_file, key_pem;
  // When not empty, a peer's certificate must also be valid for this DNS name
  // (subjectAltName, or the CN when there is no DNS subjectAltName); "{rank}"
  // stands for the rank the peer claims, binding each certificate to a rank.
  std::string peer_name;
};

struct tcp_options {
  int rank = -1;
  int world_size = 0;
  // host:port where rank 0 listens for the others (the rendezvous point).
  std::string coordinator;
  // The shared secret every rank proves it holds (HMAC-SHA256 challenge-response).
  std::string token;
  // Any wait (a collective, a recv, a send into a full socket, joining the
  // world) longer than this reports the awaited rank as loco::peer_lost.
  duration timeout{30000};
  // Heartbeats (docs/communicators.md#failures): every rank sends a frame
  // to every peer at this interval, and a peer from whom nothing arrived for
  // heartbeat_misses intervals is lost (peer_lost naming it), so a stopped
  // or partitioned peer is found in about interval * misses, independently
  // of `timeout`. 0 turns heartbeats off.
  duration heartbeat_interval{100};
  int heartbeat_misses{10};
  // This process replaces a rank the running world lost (a restarted
  // worker): it connects to the coordinator (rank 0) only, which accepts it
  // in place of the lost link; comm::elastic then admits it at a round
  // boundary, routing everything through rank 0 (docs/fault_tolerance.md).
  bool rejoin = false;
  // An inbound connection must complete the handshake within this or is closed.
  duration handshake_timeout{5000};
  // Frames announcing more payload than this are a protocol_error.
  std::size_t max_message_bytes{std::size_t{1} << 30};
  // Where ranks other than 0 accept their peers (an ephemeral port).
  std::string listen_host{"127.0.0.1"};
  // allreduce of at most this many bytes sends every vector to every rank
  // (one round trip); larger ones use the pipelined ring.
  std::size_t small_allreduce_bytes{64 * 1024};
  // Ring allreduce moves vectors in frames of this many bytes, so reducing
  // one piece overlaps receiving the next.
  std::size_t ring_piece_bytes{256 * 1024};
  // A caller waiting for a collective's message reads the socket itself for
  // up to this long before it sleeps (busy-poll): no thread is woken for a
  // message that comes within it, at the price of a core spinning meanwhile.
  // In [0, max_busy_poll]; 0 sleeps at once. With TLS only the wait spins
  // (the I/O thread reads every TLS link).
  std::chrono::microseconds busy_poll{50};
  static constexpr std::chrono::microseconds max_busy_poll{100000};
  // Receives one line per rejected connection or lost peer; default: stderr.
  std::function<void(const std::string&)> log;
  // Off by default: plain TCP (the token still authenticates every link).
  tcp_tls_options tls;

  // Reads LOCO_RANK, LOCO_WORLD_SIZE, LOCO_COORDINATOR and LOCO_TOKEN
  // (required), and LOCO_TIMEOUT_MS, LOCO_HANDSHAKE_TIMEOUT_MS,
  // LOCO_HEARTBEAT_MS, LOCO_HEARTBEAT_MISSES, LOCO_REJOIN (1: rejoin), LOCO_BUSY_POLL_US,
  // LOCO_LISTEN_HOST, LOCO_TLS_CA, LOCO_TLS_CERT, LOCO_TLS_KEY, LOCO_TLS_PEER_NAME (optional; any
  // of the first three turns TLS on, and then all three are needed). Throws config_error naming the
  // variable.
  static tcp_options from_env() {
    tcp_options o;
    o.rank = env_int("LOCO_RANK", true, 0, 1 << 20);
    o.world_size = env_int("LOCO_WORLD_SIZE", true, 1, 1 << 20);
    o.coordinator = env_string("LOCO_COORDINATOR", true);
    o.token = env_string("LOCO_TOKEN", true);
    if (std::getenv("LOCO_TIMEOUT_MS") != nullptr) {
      o.timeout = duration(env_int("LOCO_TIMEOUT_MS", true, 1, 1 << 30));
    }
    if (std::getenv("LOCO_HANDSHAKE_TIMEOUT_MS") != nullptr) {
      o.handshake_timeout = duration(env_int("LOCO_HANDSHAKE_TIMEOUT_MS", true, 1, 1 << 30));
    }
    if (std::getenv("LOCO_HEARTBEAT_MS") != nullptr) {
      o.heartbeat_interval = duration(env_int("LOCO_HEARTBEAT_MS", true, 0, 60000));
    }
    if (std::getenv("LOCO_HEARTBEAT_MISSES") != nullptr) {
      o.heartbeat_misses = env_int("LOCO_HEARTBEAT_MISSES", true, 2, 10000);
    }
    if (std::getenv("LOCO_REJOIN") != nullptr) o.rejoin = env_int("LOCO_REJOIN", true, 0, 1) == 1;
    if (std::getenv("LOCO_BUSY_POLL_US") != nullptr) {
      o.busy_poll = std::chrono::microseconds(
          env_int("LOCO_BUSY_POLL_US", true, 0, static_cast<int>(max_busy_poll.count())));
    }
    if (std::getenv("LOCO_LISTEN_HOST") != nullptr) {
      o.listen_host = env_string("LOCO_LISTEN_HOST", true);
    }
    o.tls.ca_file = env_string("LOCO_TLS_CA", false);
    o.tls.cert_file = env_string("LOCO_TLS_CERT", false);
    o.tls.key_file = env_string("LOCO_TLS_KEY", false);
    o.tls.peer_name = env_string("LOCO_TLS_PEER_NAME", false);
    o.tls.enabled = !o.tls.ca_file.empty() || !o.tls.cert_file.empty() || !o.tls.key_file.empty();
    if (o.tls.enabled) {
      for (const char* name : {"LOCO_TLS_CA", "LOCO_TLS_CERT", "LOCO_TLS_KEY"}) {
        if (env_string(name, false).empty()) {
          throw config_error(std::string("comm::tcp: ") + name +
                             " is not set, but other LOCO_TLS_ variables turn TLS on");
        }
      }
    }
    return o;
  }

 private:
  static std::string env_string(const char* name, bool required) {
    const char* v = std::getenv(name);
    if (v == nullptr) {
      if (required)
        throw config_error(std::string("comm::tcp: environment variable ") + name + " is not set");
      return {};
    }
    return v;
  }
  static int env_int(const char* name, bool required, int lo, int hi) {
    const std::string s = env_string(name, required);
    int v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || v < lo || v > hi) {
      throw config_error(std::string("comm::tcp: ") + name + "='" + s + "' is not an integer in [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return v;
  }
};

}  // namespace loco::comm
