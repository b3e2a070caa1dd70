#pragma once
// Runtime dispatch of the compute-bound kernels. A build without -march
// flags targets baseline x86-64 (SSE2), where the kernels' loops vectorise
// 4 floats wide; most x86-64 CPUs in service have AVX2, many AVX-512.
// vectorized(f) runs f compiled again for the widest of these the CPU has:
// f and all it calls are inlined into one function with that target
// (flatten), so the vectoriser sees the kernel with the wider ISA.
//
// No fused multiply-add on any path: contracting a * b + c rounds
// differently, and a message (or CD-Adam's replicated step) must not depend
// on the CPU. FMA is not among the targets; avx512f brings fused
// instructions of its own, so that path is compiled with fp-contract=off; a
// unit compiled with FMA (-march=haswell, x86-64-v3) does not dispatch.
// GCC only: Clang decides contraction in its front end, out of an
// attribute's reach. A unit compiled for AVX-512, another compiler or
// another architecture just calls f.
//
// LOCO_NO_RUNTIME_DISPATCH at compile time turns dispatch off;
// LOCO_KERNEL_ISA=baseline, avx2 or avx512 in the environment caps it at
// run time (docs/compressors.md#dispatch). Users: the compressors' kernels,
// update::adamw and CD-Adam's AMSGrad step, with tensor/sqrt.hpp for the
// square root the vectoriser will not derive in a default build (it
// follows the setting on every compiler: a square root is exact on every
// path).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <loco/error.hpp>
#include <string>

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
#define LOCO_COMPILED_AVX512 1
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__FMA__) && \
    !defined(LOCO_COMPILED_AVX512) && !defined(LOCO_NO_RUNTIME_DISPATCH)
#define LOCO_RUNTIME_DISPATCH 1
#endif

namespace loco::tensor {

// Ordered: each level includes the ones below.
enum class kernel_isa { baseline = 0, avx2 = 1, avx512 = 2 };

inline const char* to_string(kernel_isa isa) noexcept {
  switch (isa) {
    case kernel_isa::avx512:
      return "avx512";
    case kernel_isa::avx2:
      return "avx2";
    case kernel_isa::baseline:
      break;
  }
  return "baseline";
}

// What the translation unit itself was compiled for.
constexpr kernel_isa compiled_kernel_isa() noexcept {
#if defined(LOCO_COMPILED_AVX512)
  return kernel_isa::avx512;
#elif defined(__AVX2__)
  return kernel_isa::avx2;
#else
  return kernel_isa::baseline;
#endif
}

// The widest ISA this CPU offers the kernels, capped by LOCO_KERNEL_ISA.
// Found once, and the same in every translation unit whatever its -m
// flags (vectorized() never goes below what a unit was compiled for). An
// unknown LOCO_KERNEL_ISA throws config_error on every kernel call.
inline kernel_isa available_kernel_isa() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(LOCO_NO_RUNTIME_DISPATCH)
  static const kernel_isa found = [] {
    __builtin_cpu_init();  // needed if this runs before the CPU-model constructor
    kernel_isa cpu = kernel_isa::baseline;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
        __builtin_cpu_supports("bmi2")) {
      cpu = kernel_isa::avx2;
      if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
        cpu = kernel_isa::avx512;
      }
    }
    if (const char* env = std::getenv("LOCO_KERNEL_ISA"); env != nullptr && *env != '\0') {
      kernel_isa cap = kernel_isa::baseline;
      if (std::strcmp(env, "avx2") == 0) {
        cap = kernel_isa::avx2;
      } else if (std::strcmp(env, "avx512") == 0) {
        cap = kernel_isa::avx512;
      } else if (std::strcmp(env, "baseline") != 0) {
        throw config_error("LOCO_KERNEL_ISA = '" + std::string(env) +
                           "': expected baseline, avx2 or avx512");
      }
      cpu = cap < cpu ? cap : cpu;
    }
    return cpu;
  }();
  return found;
#else
  return kernel_isa::baseline;
#endif
}

// The ISA the dispatched kernels use now.
inline std::atomic<kernel_isa>& kernel_isa_setting() {
  static std::atomic<kernel_isa> isa{available_kernel_isa()};
  return isa;
}
inline kernel_isa active_kernel_isa() {
  return kernel_isa_setting().load(std::memory_order_relaxed);
}
// Tests and benchmarks lower it to compare the paths; a request above
// available_kernel_isa() gets what is available.
inline void set_kernel_isa(kernel_isa isa) {
  const kernel_isa hi = available_kernel_isa();
  kernel_isa_setting().store(isa > hi ? hi : isa, std::memory_order_relaxed);
}

#if defined(LOCO_RUNTIME_DISPATCH)
template <class F>
[[gnu::target("avx2,bmi,bmi2"), gnu::flatten]] inline decltype(auto) run_avx2(F& f) {
  return f();
}
template <class F>
[[gnu::target("avx512f,avx512vl,avx512bw,avx512dq,avx2,bmi,bmi2"), gnu::flatten,
  gnu::optimize("fp-contract=off")]] inline decltype(auto)
run_avx512(F& f) {
  return f();
}
#endif

// f() through the widest kernel ISA available; f's result is returned.
template <class F>
inline decltype(auto) vectorized(F&& f) {
#if defined(LOCO_RUNTIME_DISPATCH)
  // A unit compiled for AVX2 (not AVX-512) runs f itself for baseline and avx2.
  const kernel_isa isa = active_kernel_isa();
  if (isa == kernel_isa::avx512) return run_avx512(f);
  if (isa == kernel_isa::avx2 && compiled_kernel_isa() < kernel_isa::avx2) return run_avx2(f);
#endif
  return f();
}

}  // namespace loco::tensor
