// comm::tcp's handshake parsing (include/loco/comm/tcp/handshake.hpp), as
// each side meets the other's bytes: the server parses a hello and a proof,
// the client a challenge (hello + MAC) and a verdict. Input: u8 role (even:
// server, odd: client), then the peer's bytes.
// Invariants: decode_hello throws only protocol_error and accepts exactly
// the inputs with the right magic and 52 bytes; what it accepts re-encodes
// to the same bytes apart from the two ignored fields (flags, reserved); a
// proof or challenge MAC made without the token never verifies.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/comm/tcp/handshake.hpp>
#include <loco/error.hpp>
#include <loco/wire/endian.hpp>
#include <span>

#include "common.hpp"

namespace {

namespace tcp = loco::comm::detail::tcp;

constexpr std::string_view token = "fuzz-token";
constexpr std::uint32_t world = 4;

// Returns whether the hello parsed.
bool parse_hello(std::span<const std::byte> bytes, tcp::hello& h) {
  try {
    h = tcp::decode_hello(bytes, "fuzz");
  } catch (const loco::protocol_error& e) {
    LOCO_FUZZ_CHECK(bytes.size() < tcp::hello_bytes ||
                    loco::wire::load_le<std::uint32_t>(bytes.data()) != tcp::hello_magic);
    LOCO_FUZZ_CHECK(e.field().rfind("handshake.", 0) == 0);
    return false;
  }
  LOCO_FUZZ_CHECK(bytes.size() >= tcp::hello_bytes);
  std::byte again[tcp::hello_bytes];
  tcp::encode_hello(h, again);
  // Bytes 6-7 (flags) and 18-19 (reserved) are read and ignored.
  LOCO_FUZZ_CHECK(std::memcmp(again, bytes.data(), 6) == 0);
  LOCO_FUZZ_CHECK(std::memcmp(again + 8, bytes.data() + 8, 10) == 0);
  LOCO_FUZZ_CHECK(std::memcmp(again + 20, bytes.data() + 20, tcp::nonce_bytes) == 0);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader in(loco_fuzz::as_bytes(data, size));
  const bool server = in.u8() % 2 == 0;
  const auto bytes = in.rest();
  tcp::hello theirs;
  if (!parse_hello(bytes, theirs)) return 0;
  // A fixed nonce for this side: the fuzzer controls the peer's bytes only.
  tcp::nonce mine{};
  for (std::size_t i = 0; i < mine.size(); ++i) mine[i] = std::byte{static_cast<unsigned char>(i)};
  if (server) {
    // After the hello, the client's proof: 32 bytes that must be
    // HMAC(token, "client" | nonce_c | nonce_s | world | ranks).
    if (bytes.size() < tcp::hello_bytes + tcp::mac_bytes) return 0;
    const auto want =
        tcp::compute_mac(token, tcp::client_label, theirs.random, mine, world, theirs.rank, 0);
    LOCO_FUZZ_CHECK(!tcp::same_mac(bytes.data() + tcp::hello_bytes, want));
  } else {
    // The challenge carries the server's MAC after its hello.
    if (bytes.size() < tcp::challenge_bytes) return 0;
    const auto want =
        tcp::compute_mac(token, tcp::server_label, mine, theirs.random, world, 1, theirs.rank);
    LOCO_FUZZ_CHECK(!tcp::same_mac(bytes.data() + tcp::hello_bytes, want));
  }
  return 0;
}
