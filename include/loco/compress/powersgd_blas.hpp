#pragma once
// powersgd_blas: PowerSGD whose products run on BLAS GEMM and whose
// orthogonalization can be LAPACK's QR (powersgd_options::orthogonalize).
// Link loco::blas. docs/compressors.md#powersgd
#include <cstddef>
#include <loco/compress/powersgd.hpp>
#include <loco/tensor/blas.hpp>

namespace loco::compress {

struct powersgd_blas_linalg {
  static constexpr const char* name = "blas";
  static constexpr bool has_qr = true;
  static constexpr std::size_t qr_work(std::size_t r) noexcept {
    return tensor::blas::orthonormalize_work(r);
  }

  template <class T>
  static void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                   const T* a, const T* b, T* c) {
    tensor::blas::gemm(trans_a, trans_b, m, n, k, a, b, T(0), c);
  }
  template <class T>
  static void qr(T* a, std::size_t rows, std::size_t r, T* work) {
    tensor::blas::orthonormalize(a, rows, r, work);
  }
};

using powersgd_blas = basic_powersgd<powersgd_blas_linalg>;

}  // namespace loco::compress
