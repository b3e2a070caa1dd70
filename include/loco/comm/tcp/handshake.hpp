#pragma once
// The comm::tcp handshake: mutual challenge-response with HMAC-SHA256 over
// both sides' random nonces, ranks and world size, keyed by the shared token
// (OpenSSL's HMAC, RAND_bytes and CRYPTO_memcmp; no hand-written crypto).
//
//   client -> server  hello      magic "LOCH", version, world size, rank, listen port, nonce_c
//   server -> client  challenge  hello fields of the server (nonce_s) + mac("server", ...)
//   client -> server  proof      mac("client", ...)
//   server -> client  verdict    magic "LOCA"
//
// The server proves first, so a client never sends its proof to an impostor;
// the labels differ, so neither side's MAC can be replayed as the other's.
// No frame is exchanged before the verdict.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/comm/tcp/socket_io.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <string_view>

namespace loco::comm::detail::tcp {

inline constexpr std::uint32_t hello_magic = 0x48434f4cu;    // "LOCH"
inline constexpr std::uint32_t verdict_magic = 0x41434f4cu;  // "LOCA"
inline constexpr std::uint16_t protocol_version = 1;
inline constexpr std::size_t nonce_bytes = 32;
inline constexpr std::size_t mac_bytes = 32;
inline constexpr std::size_t hello_bytes = 4 + 2 + 2 + 4 + 4 + 2 + 2 + nonce_bytes;  // 52
inline constexpr std::size_t challenge_bytes = hello_bytes + mac_bytes;              // 84

using nonce = std::array<std::byte, nonce_bytes>;
using mac = std::array<std::byte, mac_bytes>;

struct hello {
  std::uint16_t version = protocol_version;
  std::uint32_t world_size = 0;
  std::int32_t rank = -1;
  std::uint16_t listen_port = 0;
  nonce random{};
};

inline nonce make_nonce() {
  nonce n;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size())) != 1) {
    throw error("comm::tcp: RAND_bytes failed to produce a handshake nonce");
  }
  return n;
}

inline void encode_hello(const hello& h, std::byte* out) noexcept {
  wire::store_le(out, hello_magic);
  wire::store_le(out + 4, h.version);
  wire::store_le(out + 6, std::uint16_t{0});
  wire::store_le(out + 8, h.world_size);
  wire::store_le(out + 12, h.rank);
  wire::store_le(out + 16, h.listen_port);
  wire::store_le(out + 18, std::uint16_t{0});
  std::memcpy(out + 20, h.random.data(), nonce_bytes);
}

// Parses the fields; the caller checks version, world size and rank so its
// message can say what it expected.
inline hello decode_hello(std::span<const std::byte> bytes, std::string_view peer) {
  wire::view v(bytes, peer);
  if (v.get<std::uint32_t>("handshake.magic") != hello_magic) {
    v.fail("handshake.magic", "not a loco tcp handshake");
  }
  hello h;
  h.version = v.get<std::uint16_t>("handshake.version");
  (void)v.get<std::uint16_t>("handshake.flags");
  h.world_size = v.get<std::uint32_t>("handshake.world_size");
  h.rank = v.get<std::int32_t>("handshake.rank");
  h.listen_port = v.get<std::uint16_t>("handshake.listen_port");
  (void)v.get<std::uint16_t>("handshake.reserved");
  const auto r = v.take(nonce_bytes, "handshake.nonce");
  std::memcpy(h.random.data(), r.data(), nonce_bytes);
  return h;
}

// HMAC-SHA256(token, label | nonce_c | nonce_s | world | rank_c | rank_s).
inline mac compute_mac(std::string_view token, std::string_view label, const nonce& client,
                       const nonce& server, std::uint32_t world, std::int32_t client_rank,
                       std::int32_t server_rank) {
  wire::buffer msg;
  msg.append(label.data(), label.size());
  msg.append(client.data(), client.size());
  msg.append(server.data(), server.size());
  msg.put(world);
  msg.put(client_rank);
  msg.put(server_rank);
  mac out{};
  unsigned int len = 0;
  static const unsigned char empty_key = 0;
  const void* key = token.empty() ? static_cast<const void*>(&empty_key) : token.data();
  if (HMAC(EVP_sha256(), key, static_cast<int>(token.size()),
           reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
           reinterpret_cast<unsigned char*>(out.data()), &len) == nullptr ||
      len != mac_bytes) {
    throw error("comm::tcp: HMAC-SHA256 failed");
  }
  return out;
}

inline bool same_mac(const std::byte* a, const mac& b) noexcept {
  return CRYPTO_memcmp(a, b.data(), mac_bytes) == 0;
}

inline constexpr std::string_view server_label = "loco-tcp-v1 server";
inline constexpr std::string_view client_label = "loco-tcp-v1 client";

inline void check_io(const io_result& r, const std::string& peer, int peer_rank, const char* step) {
  if (r.status == io_status::ok) return;
  if (r.status == io_status::timeout) {
    throw peer_lost(peer_rank, "handshake with " + peer + " timed out during " + step);
  }
  if (r.status == io_status::closed) {
    throw protocol_error(peer, std::string("handshake.") + step,
                         "the peer closed the connection (it rejected our token, protocol "
                         "version, world size or rank, or it expects TLS; see its log)");
  }
  throw peer_lost(peer_rank,
                  "handshake with " + peer + " failed during " + step + ": " + r.describe());
}

// Blocking reads and writes with a deadline on a plain socket.
struct fd_channel {
  int fd;
  io_result write(const void* data, std::size_t n, clock::time_point deadline) {
    return write_all(fd, data, n, deadline);
  }
  io_result read(void* data, std::size_t n, clock::time_point deadline) {
    return read_all(fd, data, n, deadline);
  }
};

// The connecting side, over any channel with blocking read(p, n, deadline)
// and write(p, n, deadline) (a plain socket, or a TLS stream). Returns the
// server's hello once both sides proved they hold the token; throws
// protocol_error (named peer and field) or peer_lost (timeout) otherwise.
template <class Channel>
hello client_handshake(Channel& channel, const std::string& peer, int expected_rank,
                       std::string_view token, std::uint32_t world, std::int32_t my_rank,
                       std::uint16_t listen_port, clock::time_point deadline) {
  hello mine;
  mine.world_size = world;
  mine.rank = my_rank;
  mine.listen_port = listen_port;
  mine.random = make_nonce();
  std::array<std::byte, challenge_bytes> buf{};
  encode_hello(mine, buf.data());
  check_io(channel.write(buf.data(), hello_bytes, deadline), peer, expected_rank, "hello");
  check_io(channel.read(buf.data(), challenge_bytes, deadline), peer, expected_rank, "challenge");
  const hello theirs = decode_hello(std::span<const std::byte>(buf.data(), hello_bytes), peer);
  if (theirs.version != protocol_version) {
    throw protocol_error(peer, "handshake.version",
                         "protocol version " + std::to_string(theirs.version) + ", expected " +
                             std::to_string(protocol_version));
  }
  if (theirs.world_size != world) {
    throw protocol_error(
        peer, "handshake.world_size",
        "world size " + std::to_string(theirs.world_size) + ", expected " + std::to_string(world));
  }
  if (expected_rank >= 0 && theirs.rank != expected_rank) {
    throw protocol_error(
        peer, "handshake.rank",
        "rank " + std::to_string(theirs.rank) + ", expected " + std::to_string(expected_rank));
  }
  const auto want =
      compute_mac(token, server_label, mine.random, theirs.random, world, my_rank, theirs.rank);
  if (!same_mac(buf.data() + hello_bytes, want)) {
    throw protocol_error(peer, "handshake.mac",
                         "authentication failed: the peer does not hold our token");
  }
  const auto proof =
      compute_mac(token, client_label, mine.random, theirs.random, world, my_rank, theirs.rank);
  check_io(channel.write(proof.data(), mac_bytes, deadline), peer, expected_rank, "proof");
  std::array<std::byte, 4> verdict{};
  check_io(channel.read(verdict.data(), verdict.size(), deadline), peer, expected_rank, "verdict");
  if (wire::load_le<std::uint32_t>(verdict.data()) != verdict_magic) {
    throw protocol_error(peer, "handshake.verdict", "the peer did not accept us");
  }
  return theirs;
}

inline hello client_handshake(int fd, const std::string& peer, int expected_rank,
                              std::string_view token, std::uint32_t world, std::int32_t my_rank,
                              std::uint16_t listen_port, clock::time_point deadline) {
  fd_channel channel{fd};
  return client_handshake(channel, peer, expected_rank, token, world, my_rank, listen_port,
                          deadline);
}

}  // namespace loco::comm::detail::tcp
