#include <catch2/catch.hpp>

#include <cstdint>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>

using loco::wire::buffer;
using loco::wire::view;

TEST_CASE("wire::buffer writes little-endian scalars a view reads back", "[wire]") {
  buffer b;
  b.put<std::uint8_t>(7);
  b.put<std::uint32_t>(0x01020304u);
  b.put<float>(1.5f);
  b.put<std::uint64_t>(0xdeadbeefcafef00dULL);
  REQUIRE(b.size() == 1 + 4 + 4 + 8);
  // Byte order on the wire is little-endian whatever the host.
  CHECK(b.data()[1] == std::byte{0x04});
  CHECK(b.data()[4] == std::byte{0x01});

  view v(b, "rank 3");
  CHECK(v.get<std::uint8_t>("kind") == 7);
  CHECK(v.get<std::uint32_t>("d") == 0x01020304u);
  CHECK(v.get<float>("scale") == 1.5f);
  CHECK(v.get<std::uint64_t>("seed") == 0xdeadbeefcafef00dULL);
  CHECK_NOTHROW(v.expect_end("end"));
}

TEST_CASE("wire::view names the source and field of a truncated message", "[wire]") {
  buffer b;
  b.put<std::uint16_t>(1);
  view v(b, "rank 2");
  try {
    (void)v.get<std::uint32_t>("length");
    FAIL("expected a protocol_error");
  } catch (const loco::protocol_error& e) {
    CHECK(e.source() == "rank 2");
    CHECK(e.field() == "length");
    CHECK_THAT(e.what(), Catch::Contains("truncated"));
  }
  // A failed read consumes nothing.
  CHECK(v.remaining() == 2);
  CHECK_THROWS_AS(v.take(3, "payload"), loco::protocol_error);
  CHECK(v.get<std::uint16_t>("x") == 1);
}

TEST_CASE("wire::view rejects trailing bytes", "[wire]") {
  buffer b;
  b.put<std::uint32_t>(1);
  b.put<std::uint8_t>(0);
  view v(b);
  (void)v.get<std::uint32_t>("d");
  CHECK_THROWS_AS(v.expect_end("payload"), loco::protocol_error);
}

TEST_CASE("wire::buffer reuse keeps capacity and allocates nothing", "[wire]") {
  buffer b;
  for (int i = 0; i < 1000; ++i) b.put<std::uint32_t>(static_cast<std::uint32_t>(i));
  const auto cap = b.capacity();
  const auto* ptr = b.data();
  b.clear();
  for (int i = 0; i < 1000; ++i) b.put<std::uint32_t>(static_cast<std::uint32_t>(i));
  CHECK(b.capacity() == cap);
  CHECK(b.data() == ptr);
  buffer copy = b;
  CHECK(copy == b);
  buffer moved = std::move(copy);
  CHECK(moved == b);
}
