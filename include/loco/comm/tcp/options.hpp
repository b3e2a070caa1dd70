#pragma once
// comm::tcp_options: how one process joins a TCP world. Included by
// <loco/comm/tcp.hpp>; see docs/communicators.md#tcp for the table.
#include <charconv>
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
  // Receives one line per rejected connection or lost peer; default: stderr.
  std::function<void(const std::string&)> log;

  // Reads LOCO_RANK, LOCO_WORLD_SIZE, LOCO_COORDINATOR and LOCO_TOKEN
  // (required), and LOCO_TIMEOUT_MS, LOCO_HANDSHAKE_TIMEOUT_MS,
  // LOCO_LISTEN_HOST (optional). Throws config_error naming the variable.
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
    if (std::getenv("LOCO_LISTEN_HOST") != nullptr) {
      o.listen_host = env_string("LOCO_LISTEN_HOST", true);
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
