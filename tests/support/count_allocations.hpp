#pragma once
// Replaces the global allocation functions of a test program with ones that
// count every allocation. Include it in exactly ONE translation unit of an
// executable. Every non-aligned form is replaced, so each new pairs with the
// free() below (ASan checks the pairing); GCC cannot see that pairing, hence
// the pragma.
#include <atomic>
#include <cstdlib>
#include <new>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace loco_test {
inline std::atomic<long> allocations{0};
inline void* counted_malloc(std::size_t n) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
// Allocations made so far by this program.
inline long allocation_count() noexcept { return allocations.load(std::memory_order_relaxed); }
}  // namespace loco_test

void* operator new(std::size_t n) {
  if (void* p = loco_test::counted_malloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = loco_test::counted_malloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return loco_test::counted_malloc(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return loco_test::counted_malloc(n);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
