#pragma once
// powersgd_blas: PowerSGD whose orthogonalization can be LAPACK's QR
// (powersgd_options::orthogonalize), as torch's hook does above rank 2.
// Link loco::blas. docs/compressors.md#powersgd
#include <cstddef>
#include <loco/compress/powersgd.hpp>
#include <loco/tensor/blas.hpp>

namespace loco::compress {

// The thin products stay powersgd_loops': at r <= 4 they beat OpenBLAS's
// GEMM (bench_compress, powersgd vs powersgd_gemm); LAPACK brings the QR.
struct powersgd_blas_linalg : powersgd_loops {
  static constexpr const char* name = "blas";
  static constexpr bool has_qr = true;
  static constexpr std::size_t qr_work(std::size_t r) noexcept {
    return tensor::blas::orthonormalize_work(r);
  }
  template <class T>
  static void qr(T* a, std::size_t rows, std::size_t r, T* work) {
    tensor::blas::orthonormalize(a, rows, r, work);
  }
};

using powersgd_blas = basic_powersgd<powersgd_blas_linalg>;

}  // namespace loco::compress
