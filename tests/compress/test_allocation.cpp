// Steady state allocates nothing: after the first round, encode into a
// cleared buffer and decode into the same vector make no heap allocation.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include "../support/count_allocations.hpp"
#include "common.hpp"

using loco_test::allocation_count;

using namespace loco_test;

TEMPLATE_LIST_TEST_CASE("encode and decode allocate nothing after the first round",
                        "[compress][alloc]", all_compressors) {
  using C = typename TestType::compressor;
  using T = typename TestType::value;
  const C c = make<C>();
  for (std::size_t d : {100u, 400000u}) {
    CAPTURE(d);
    std::vector<std::vector<T>> inputs;
    for (std::uint64_t seed = 0; seed < 4; ++seed) inputs.push_back(normal_vector<T>(d, seed));
    lc::state_t<C, T> tx(c, d, 0), rx(c, d, 1);
    loco::wire::buffer b;
    std::vector<T> out(d);
    auto round = [&](const std::vector<T>& v) {
      b.clear();
      c.encode(std::span<const T>(v), tx, b);
      loco::wire::view in(b);
      c.decode(in, rx, std::span<T>(out));
    };
    for (int warm = 0; warm < 3; ++warm) round(inputs[0]);  // warmup<C> passes its dense steps
    const long before = allocation_count();
    for (const auto& v : inputs) round(v);
    const long after = allocation_count();
    CHECK(after - before == 0);
  }
}
