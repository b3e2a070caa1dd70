// Decoders validate every field of a message from a peer and name the one
// that is wrong.
#include <catch2/catch.hpp>

#include <cstring>
#include <limits>
#include <string>
#include "common.hpp"

using namespace loco_test;
using loco::wire::buffer;
using loco::wire::view;

namespace {

template <class C, class T>
buffer encode_one(const C& c, std::size_t d, std::uint64_t seed = 5) {
  const auto v = normal_vector<T>(d, seed);
  lc::state_t<C, T> s(c, d, 0);
  buffer b;
  c.encode(std::span<const T>(v), s, b);
  return b;
}

// Decodes b with a fresh receiver of length d; returns the field named by the
// protocol_error, or "" when decoding succeeded.
template <class C, class T>
std::string field_of(const C& c, const buffer& b, std::size_t d) {
  lc::state_t<C, T> s(c, d, 1);
  std::vector<T> out(d);
  try {
    view in(b, "rank 7");
    c.decode(in, s, std::span<T>(out));
  } catch (const loco::protocol_error& e) {
    CHECK(e.source() == "rank 7");
    return e.field();
  }
  return "";
}

void poke8(buffer& b, std::size_t at, std::uint8_t x) { b.data()[at] = static_cast<std::byte>(x); }
template <class U>
void poke(buffer& b, std::size_t at, U x) {
  b.put_at<U>(at, x);
}
template <class U>
U peek(const buffer& b, std::size_t at) {
  return loco::wire::load_le<U>(b.data() + at);
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("decoders reject a malformed header, naming the field", "[compress][wire]",
                        all_plain) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  const std::size_t d = 200;
  const buffer good = encode_one<C, T>(c, d);
  CHECK(field_of<C, T>(c, good, d).empty());

  auto bad = good;
  poke8(bad, 0, static_cast<std::uint8_t>(bad.data()[0]) == 1 ? 2 : 1);
  CHECK(field_of<C, T>(c, bad, d) == "kind");

  bad = good;
  poke8(bad, 1, 2);
  CHECK(field_of<C, T>(c, bad, d) == "version");

  bad = good;  // values of the other width
  poke8(bad, 2, sizeof(T) == 4 ? 2 : 1);
  CHECK(field_of<C, T>(c, bad, d) == "value_type");

  bad = good;
  poke8(bad, 3, 0x80);
  CHECK(field_of<C, T>(c, bad, d) == "flags");

  // The receiver's vector has another length.
  CHECK(field_of<C, T>(c, good, d + 8) == "d");

  bad = good;
  poke<std::uint64_t>(bad, 8, peek<std::uint64_t>(good, 8) - 1);
  CHECK(field_of<C, T>(c, bad, d) == "length");
  bad = good;
  poke<std::uint64_t>(bad, 8, std::numeric_limits<std::uint64_t>::max());
  CHECK(field_of<C, T>(c, bad, d) == "length");

  // Truncated anywhere: never a crash, always a protocol_error.
  for (std::size_t cut = 0; cut < good.size(); cut += 1 + good.size() / 50) {
    buffer shortened;
    shortened.assign(good.bytes().first(cut));
    CHECK_FALSE(field_of<C, T>(c, shortened, d).empty());
  }
  // The wrong value type on the receiving side.
  using Other = std::conditional_t<sizeof(T) == 4, double, float>;
  if constexpr (std::is_same_v<C, lc::fp16> || std::is_same_v<C, lc::bf16>) {
    CHECK(field_of<C, Other>(c, good, d).empty());  // 16-bit values decode into either
  } else {
    CHECK(field_of<C, Other>(c, good, d) == "value_type");
  }
}

TEST_CASE("top_k rejects indices out of range, repeated or unordered, and a wrong k",
          "[compress][wire]") {
  const auto c = lc::top_k::with_count(5);
  const std::size_t d = 50;
  const buffer good = encode_one<lc::top_k, float>(c, d);
  const std::size_t k_at = 16, idx_at = 20;
  auto bad = good;
  poke<std::uint32_t>(bad, idx_at + 4 * 4, 50);
  CHECK(field_of<lc::top_k, float>(c, bad, d) == "indices");
  bad = good;
  poke<std::uint32_t>(bad, idx_at + 4, peek<std::uint32_t>(good, idx_at));
  CHECK(field_of<lc::top_k, float>(c, bad, d) == "indices");
  bad = good;  // swap two indices
  poke<std::uint32_t>(bad, idx_at, peek<std::uint32_t>(good, idx_at + 4));
  poke<std::uint32_t>(bad, idx_at + 4, peek<std::uint32_t>(good, idx_at));
  CHECK(field_of<lc::top_k, float>(c, bad, d) == "indices");
  bad = good;
  poke<std::uint32_t>(bad, k_at, 4);
  CHECK(field_of<lc::top_k, float>(c, bad, d) == "k");
  bad = good;
  poke<float>(bad, idx_at + 20 + 8, std::numeric_limits<float>::infinity());
  CHECK(field_of<lc::top_k, float>(c, bad, d) == "values");
}

TEST_CASE("top_k_2bit rejects bad indices, a wrong k, non-finite levels and stray padding bits",
          "[compress][wire]") {
  using C = lc::top_k_2bit;
  const auto c = C::with_count(5);
  const std::size_t d = 50;  // 6-bit indices: 50..63 fit the field but are out of range
  const buffer good = encode_one<C, float>(c, d);
  const std::size_t k_at = 16, levels_at = 20, idx_at = 36, codes_at = 36 + 4;
  REQUIRE(good.size() == codes_at + 2);
  CHECK(field_of<C, float>(c, good, d).empty());
  // The stream's first field is the low 6 bits of its first byte.
  const auto first = static_cast<std::uint8_t>(good.data()[idx_at]);
  auto bad = good;
  poke8(bad, idx_at, static_cast<std::uint8_t>((first & 0xc0u) | 55u));
  CHECK(field_of<C, float>(c, bad, d) == "indices");
  // Indices 0, 0 (repeated) and 1, 0 (out of order): the first two fields span bits 0..11.
  for (std::uint16_t pair : {std::uint16_t{0}, std::uint16_t{1}}) {
    bad = good;
    const std::uint16_t low = peek<std::uint16_t>(good, idx_at);
    poke<std::uint16_t>(bad, idx_at, static_cast<std::uint16_t>((low & 0xf000u) | pair));
    CHECK(field_of<C, float>(c, bad, d) == "indices");
  }
  bad = good;  // 5 indices of 6 bits end at bit 30 of 32: bit 31 is padding
  poke8(bad, idx_at + 3, static_cast<std::uint8_t>(good.data()[idx_at + 3]) | 0x80u);
  CHECK(field_of<C, float>(c, bad, d) == "indices");
  bad = good;  // 5 codes of 2 bits end at bit 10 of 16
  poke8(bad, codes_at + 1, static_cast<std::uint8_t>(good.data()[codes_at + 1]) | 0x80u);
  CHECK(field_of<C, float>(c, bad, d) == "codes");
  bad = good;
  poke<std::uint32_t>(bad, k_at, 4);
  CHECK(field_of<C, float>(c, bad, d) == "k");
  bad = good;
  poke<float>(bad, levels_at + 8, std::numeric_limits<float>::quiet_NaN());
  CHECK(field_of<C, float>(c, bad, d) == "levels");
}

TEST_CASE("random_k rejects another seed, a wrong k, scaling or sampling", "[compress][wire]") {
  const auto c = lc::random_k(0.1, 9);
  const std::size_t d = 100;
  const buffer good = encode_one<lc::random_k, float>(c, d);
  CHECK(field_of<lc::random_k, float>(lc::random_k(0.1, 10), good, d) == "seed");
  CHECK(field_of<lc::random_k, float>(lc::random_k(0.2, 9), good, d) == "k");
  CHECK(field_of<lc::random_k_unscaled, float>(lc::random_k_unscaled(0.1, 9), good, d) == "flags");
  // A stratified support is another support: each side refuses the other's.
  const auto stratified = lc::random_k(0.1, 9, lc::sampling::stratified);
  CHECK(field_of<lc::random_k, float>(stratified, good, d) == "flags");
  CHECK(field_of<lc::random_k, float>(c, encode_one<lc::random_k, float>(stratified, d), d) ==
        "flags");
  auto bad = good;
  poke<float>(bad, 36, std::numeric_limits<float>::quiet_NaN());
  CHECK(field_of<lc::random_k, float>(c, bad, d) == "values");
}

TEST_CASE("qsgd rejects a level above s, another s and a bad norm", "[compress][wire]") {
  const auto c = lc::qsgd(2, 3);  // levels 0..2 in 2 bits, sign in the third
  const std::size_t d = 64;
  const buffer good = encode_one<lc::qsgd, float>(c, d);
  const std::size_t codes_at = 16 + 4 + 4;
  auto bad = good;
  // Codes travel as bit planes: level 3 for entry 1 sets bit 1 of planes 0 and 1.
  poke8(bad, codes_at,
        static_cast<std::uint8_t>(static_cast<unsigned>(good.data()[codes_at]) | 2u));
  poke8(bad, codes_at + 4,
        static_cast<std::uint8_t>(static_cast<unsigned>(good.data()[codes_at + 4]) | 2u));
  CHECK(field_of<lc::qsgd, float>(c, bad, d) == "codes");
  CHECK(field_of<lc::qsgd, float>(lc::qsgd(3, 3), good, d) == "s");
  bad = good;
  poke<float>(bad, 20, -1.0f);
  CHECK(field_of<lc::qsgd, float>(c, bad, d) == "norm");
  bad = good;
  poke<float>(bad, 20, std::numeric_limits<float>::infinity());
  CHECK(field_of<lc::qsgd, float>(c, bad, d) == "norm");
  bad = good;
  poke<float>(bad, 20, -0.0f);  // the encoder writes +0 only
  CHECK(field_of<lc::qsgd, float>(c, bad, d) == "norm");
  // Padding bits after the last code must be zero.
  const std::size_t d2 = 5;  // three planes of one byte, three padding bits each
  const buffer g2 = encode_one<lc::qsgd, float>(c, d2);
  bad = g2;
  poke8(bad, bad.size() - 1,
        static_cast<std::uint8_t>(static_cast<unsigned>(g2.data()[g2.size() - 1]) | 0x80u));
  CHECK(field_of<lc::qsgd, float>(c, bad, d2) == "codes");
}

TEST_CASE("scaled_sign and natural reject bad scales, exponents and padding", "[compress][wire]") {
  const std::size_t d = 13;
  const buffer s = encode_one<lc::scaled_sign, float>(lc::scaled_sign{}, d);
  auto bad = s;
  poke<float>(bad, 16, std::numeric_limits<float>::quiet_NaN());
  CHECK(field_of<lc::scaled_sign, float>(lc::scaled_sign{}, bad, d) == "scale");
  bad = s;
  poke<float>(bad, 16, -2.0f);
  CHECK(field_of<lc::scaled_sign, float>(lc::scaled_sign{}, bad, d) == "scale");
  bad = s;
  poke<float>(bad, 16, -0.0f);  // would decode to -0 everywhere, which no encoder sends
  CHECK(field_of<lc::scaled_sign, float>(lc::scaled_sign{}, bad, d) == "scale");
  bad = s;
  poke8(bad, bad.size() - 1, 0xff);
  CHECK(field_of<lc::scaled_sign, float>(lc::scaled_sign{}, bad, d) == "signs");

  const buffer n = encode_one<lc::natural, float>(lc::natural{}, d);
  bad = n;
  poke8(bad, 16 + 2 + 4, 0xff);  // entry 4's exponent: the Inf/NaN exponent
  CHECK(field_of<lc::natural, float>(lc::natural{}, bad, d) == "exponents");
  const buffer nd = encode_one<lc::natural, double>(lc::natural{}, d);
  bad = nd;
  poke<std::uint16_t>(bad, 16 + 2 + 2 * 4, 0x7ff);
  CHECK(field_of<lc::natural, double>(lc::natural{}, bad, d) == "exponents");
}

TEST_CASE("fp4 rejects bad blocks, scales and padding", "[compress][wire]") {
  const std::size_t d = 13;  // blocks of 8: two scales, 7 code bytes with 4 padding bits
  const lc::fp4 c(8);
  const buffer good = encode_one<lc::fp4, float>(c, d);
  REQUIRE(good.size() == c.wire_bytes<float>(d));
  CHECK(field_of<lc::fp4, float>(lc::fp4(16), good, d) == "block");
  auto bad = good;
  poke<std::uint32_t>(bad, 16, 0);
  CHECK(field_of<lc::fp4, float>(c, bad, d) == "block");
  for (const float scale :
       {-1.0f, -0.0f, std::numeric_limits<float>::quiet_NaN(),
        std::numeric_limits<float>::infinity(), std::numeric_limits<float>::max() / 5.0f}) {
    INFO("scale " << scale);
    bad = good;
    poke<float>(bad, 16 + 4 + 4, scale);  // the second block's
    CHECK(field_of<lc::fp4, float>(c, bad, d) == "scales");
  }
  bad = good;
  poke8(bad, bad.size() - 1,
        static_cast<std::uint8_t>(static_cast<unsigned>(good.data()[good.size() - 1]) | 0x10u));
  CHECK(field_of<lc::fp4, float>(c, bad, d) == "codes");
  // The largest valid scale decodes to finite values.
  bad = good;
  poke<float>(bad, 16 + 4, lc::fp4::max_scale<float>());
  CHECK(field_of<lc::fp4, float>(c, bad, d).empty());
}

TEST_CASE("dense messages reject non-finite values", "[compress][wire]") {
  const std::size_t d = 9;
  auto b = encode_one<lc::identity, double>(lc::identity{}, d);
  poke<double>(b, 16 + 8 * 3, std::numeric_limits<double>::infinity());
  CHECK(field_of<lc::identity, double>(lc::identity{}, b, d) == "values");
  auto h = encode_one<lc::fp16, float>(lc::fp16{}, d);
  poke<std::uint16_t>(h, 16 + 2 * 8, 0x7c00);
  CHECK(field_of<lc::fp16, float>(lc::fp16{}, h, d) == "values");
  auto bf = encode_one<lc::bf16, float>(lc::bf16{}, d);
  poke<std::uint16_t>(bf, 16, 0xff81);
  CHECK(field_of<lc::bf16, float>(lc::bf16{}, bf, d) == "values");
}
