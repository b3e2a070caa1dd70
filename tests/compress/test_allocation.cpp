// Steady state allocates nothing: after the first round, encode into a
// cleared buffer and decode into the same vector make no heap allocation.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include "common.hpp"

namespace {
std::atomic<long> allocations{0};
}

// Counts every allocation of this test program.
void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

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
    const long before = allocations.load();
    for (const auto& v : inputs) round(v);
    const long after = allocations.load();
    CHECK(after - before == 0);
  }
}
