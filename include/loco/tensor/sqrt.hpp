#pragma once
// tensor::sqrt_in_place: x[i] <- sqrt(x[i]) with vector instructions.
// Without -fno-math-errno (a user's choice, not a header's) GCC keeps every
// std::sqrt scalar, because it may set errno, and a loop containing one is
// not vectorised at all: the AdamW step cost twice a gradient that way.
// Kernels with a square root compute it here, a block at a time, between
// loops the compiler does vectorise. IEEE square root is correctly rounded,
// so every path (SSE2, AVX2, AVX-512, the plain loop) gives the bits
// std::sqrt gives; a negative entry becomes NaN.
// The width follows tensor/dispatch.hpp (LOCO_KERNEL_ISA caps it).
#include <cmath>
#include <cstddef>
#include <loco/tensor/dispatch.hpp>
#include <span>
#include <type_traits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOCO_SQRT_X86 1
#endif

namespace loco::tensor {
namespace detail {

template <class T>
inline void sqrt_tail(T* x, std::size_t i, std::size_t n) {
  for (; i < n; ++i) x[i] = std::sqrt(x[i]);
}

#if defined(LOCO_SQRT_X86)
inline void sqrt_sse2(float* x, std::size_t n) {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
  sqrt_tail(x, i, n);
}
inline void sqrt_sse2(double* x, std::size_t n) {
  std::size_t i = 0;
  for (; i + 2 <= n; i += 2) _mm_storeu_pd(x + i, _mm_sqrt_pd(_mm_loadu_pd(x + i)));
  sqrt_tail(x, i, n);
}
[[gnu::target("avx2")]] inline void sqrt_avx2(float* x, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
  sqrt_tail(x, i, n);
}
[[gnu::target("avx2")]] inline void sqrt_avx2(double* x, std::size_t n) {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _mm256_sqrt_pd(_mm256_loadu_pd(x + i)));
  sqrt_tail(x, i, n);
}
// maskz with a full mask: GCC 12's _mm512_sqrt_ps trips -Wmaybe-uninitialized.
[[gnu::target("avx512f")]] inline void sqrt_avx512(float* x, std::size_t n) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(x + i, _mm512_maskz_sqrt_ps(0xffff, _mm512_loadu_ps(x + i)));
  sqrt_tail(x, i, n);
}
[[gnu::target("avx512f")]] inline void sqrt_avx512(double* x, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm512_storeu_pd(x + i, _mm512_maskz_sqrt_pd(0xff, _mm512_loadu_pd(x + i)));
  sqrt_tail(x, i, n);
}
#endif

}  // namespace detail

template <class T>
inline void sqrt_in_place(std::span<T> x) {
  static_assert(std::is_floating_point_v<T>, "tensor::sqrt_in_place: T must be a floating type");
#if defined(LOCO_SQRT_X86)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    // Every width gives the same bits, so the setting alone decides.
    const kernel_isa isa = active_kernel_isa();
    if (isa == kernel_isa::avx512) {
      detail::sqrt_avx512(x.data(), x.size());
    } else if (isa == kernel_isa::avx2) {
      detail::sqrt_avx2(x.data(), x.size());
    } else {
      detail::sqrt_sse2(x.data(), x.size());
    }
    return;
  }
#endif
  detail::sqrt_tail(x.data(), 0, x.size());
}

}  // namespace loco::tensor
