// Every compressor's decode of untrusted bytes (fuzz/codecs.hpp picks the
// compressor, value type, d and k or s). Beyond "does not crash":
//  * a decoder throws nothing but loco::protocol_error;
//  * an accepted message is consumed exactly (its length field) and decodes
//    to finite values;
//  * codec-specific facts hold: qsgd entries are at most the norm, scaled_sign
//    entries are +-scale, top_k and top_k_2bit keep at most k non-zeros,
//    top_k_2bit's are its levels;
//  * encode(decoded) is accepted by decode again; for the deterministic
//    codecs (identity, fp16, bf16, natural, random_k_unscaled, scaled_sign on
//    float) it reproduces the message byte for byte, and top_k's decodes back
//    to the same vector.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <loco/compress.hpp>
#include <loco/error.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/endian.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <type_traits>
#include <vector>

#include "codecs.hpp"
#include "common.hpp"

namespace {

namespace lc = loco::compress;
namespace wire = loco::wire;
using loco_fuzz::codec;

template <class T>
bool all_finite(std::span<const T> v) {
  return loco::tensor::first_non_finite(v) == loco::tensor::npos;
}

template <class T, class C>
void fuzz_one(const loco_fuzz::codec_config& cfg, const C& c, std::span<const std::byte> msg) {
  const std::size_t d = cfg.d;
  lc::state_t<C, T> receiver(c, d, 1);
  std::vector<T> out(d);
  wire::view in(msg, "fuzz");
  try {
    c.decode(in, receiver, std::span<T>(out));
  } catch (const loco::protocol_error&) {
    return;
  }
  LOCO_FUZZ_CHECK(msg.size() >= wire::header_bytes);
  const auto length = wire::load_le<std::uint64_t>(msg.data() + 8);
  LOCO_FUZZ_CHECK(in.position() == length);
  const auto accepted = msg.first(static_cast<std::size_t>(length));
  LOCO_FUZZ_CHECK(all_finite<T>(out));
  LOCO_FUZZ_CHECK(static_cast<std::uint8_t>(accepted[0]) ==
                  static_cast<std::uint8_t>(wire::peek_kind(wire::view(accepted))));

  if (cfg.kind == codec::qsgd) {
    // level * (norm / s) with level <= s: the norm, up to rounding of the
    // scale (absolute when norm / s is subnormal).
    const auto s = wire::load_le<std::uint32_t>(accepted.data() + wire::header_bytes);
    const T norm = wire::load_le<T>(accepted.data() + wire::header_bytes + 4);
    const T bound = norm * (T(1) + 4 * std::numeric_limits<T>::epsilon()) +
                    static_cast<T>(s) * std::numeric_limits<T>::denorm_min();
    for (T x : out) LOCO_FUZZ_CHECK(std::abs(x) <= bound);
  }
  if (cfg.kind == codec::scaled_sign) {
    const T scale = wire::load_le<T>(accepted.data() + wire::header_bytes);
    for (T x : out) LOCO_FUZZ_CHECK(std::abs(x) == scale);
  }
  if (cfg.kind == codec::top_k || cfg.kind == codec::random_k ||
      cfg.kind == codec::random_k_unscaled || cfg.kind == codec::top_k_2bit) {
    const auto nonzero =
        static_cast<std::size_t>(std::count_if(out.begin(), out.end(), [](T x) { return x != 0; }));
    LOCO_FUZZ_CHECK(nonzero <= loco_fuzz::k_of(cfg));
  }

  if (cfg.kind == codec::top_k_2bit) {
    // Every sent entry is one of the four levels.
    const std::size_t at = wire::header_bytes + 4;
    for (T x : out) {
      bool level = x == 0;
      for (std::size_t l = 0; l < 4; ++l)
        level |= x == wire::load_le<T>(accepted.data() + at + l * sizeof(T));
      LOCO_FUZZ_CHECK(level);
    }
  }

  // Re-encode what was decoded.
  lc::state_t<C, T> sender(c, d, 2);
  if constexpr (requires { sender.set_round(std::uint64_t{}); }) {
    // random_k: the same round, so the same support.
    sender.set_round(wire::load_le<std::uint64_t>(accepted.data() + wire::header_bytes + 12));
  }
  wire::buffer again;
  try {
    c.encode(std::span<const T>(out), sender, again);
  } catch (const loco::non_finite_error&) {
    // Only random_k's d/k scaling can overflow a finite input.
    LOCO_FUZZ_CHECK(cfg.kind == codec::random_k);
    return;
  }
  const bool byte_exact = cfg.kind == codec::identity || cfg.kind == codec::fp16 ||
                          cfg.kind == codec::bf16 || cfg.kind == codec::natural ||
                          cfg.kind == codec::random_k_unscaled ||
                          (cfg.kind == codec::scaled_sign && std::is_same_v<T, float>);
  if (byte_exact) {
    LOCO_FUZZ_CHECK(again.size() == accepted.size());
    LOCO_FUZZ_CHECK(std::memcmp(again.data(), accepted.data(), accepted.size()) == 0);
  }
  lc::state_t<C, T> second(c, d, 3);
  std::vector<T> back(d);
  wire::view again_in(again);
  try {
    c.decode(again_in, second, std::span<T>(back));
  } catch (const loco::protocol_error& e) {
    std::fprintf(stderr, "a message encoded from decoded values was rejected: %s\n", e.what());
    LOCO_FUZZ_CHECK(false);
  }
  LOCO_FUZZ_CHECK(again_in.remaining() == 0);
  LOCO_FUZZ_CHECK(all_finite<T>(back));
  if (cfg.kind == codec::top_k) LOCO_FUZZ_CHECK(back == out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader in(loco_fuzz::as_bytes(data, size));
  const auto cfg = loco_fuzz::read_codec_config(in);
  const auto msg = in.rest();
  loco_fuzz::with_codec(cfg, [&]<class T>(const auto& c) { fuzz_one<T>(cfg, c, msg); });
  return 0;
}
