#pragma once
// The one place loco calls BLAS and LAPACK, through xtensor-blas (link
// loco::blas). Every matrix is row-major and addressed by raw pointers:
// nothing is allocated or copied.
#include <algorithm>
#include <array>
#include <cstddef>
#include <loco/error.hpp>
#include <string>
#include <type_traits>
#include <xtensor-blas/xblas.hpp>
#include <xtensor/xadapt.hpp>

// The four LAPACK routines orthonormalize() needs, declared here (Fortran
// ABI, 32-bit integers as xtensor-blas uses) rather than through
// xtensor-blas's xlapack.hpp: that header declares every LAPACK routine with
// a parameter named NCC, which <sys/ioctl.h> (Boost.Asio) defines as a macro.
extern "C" {
void sgelqf_(const int* m, const int* n, float* a, const int* lda, float* tau, float* work,
             const int* lwork, int* info);
void dgelqf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work,
             const int* lwork, int* info);
void sorglq_(const int* m, const int* n, const int* k, float* a, const int* lda, const float* tau,
             float* work, const int* lwork, int* info);
void dorglq_(const int* m, const int* n, const int* k, double* a, const int* lda, const double* tau,
             double* work, const int* lwork, int* info);
}

namespace loco::tensor::blas {

// C (m x n) = op(A) op(B) + beta C, with op(A) m x k and op(B) k x n.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const T* a,
          const T* b, T beta, T* c) {
  using shape = std::array<std::size_t, 2>;
  const shape sa = trans_a ? shape{k, m} : shape{m, k};
  const shape sb = trans_b ? shape{n, k} : shape{k, n};
  auto av = xt::adapt(a, m * k, xt::no_ownership(), sa);
  auto bv = xt::adapt(b, k * n, xt::no_ownership(), sb);
  auto cv = xt::adapt(c, m * n, xt::no_ownership(), shape{m, n});
  xt::blas::gemm(av, bv, cv, trans_a, trans_b, T(1), beta);
}

// Workspace (in values of T) that orthonormalize() needs for r columns.
constexpr std::size_t orthonormalize_work(std::size_t r) noexcept { return r + 64 * r; }

// Replaces the r columns of A (rows x r, row-major, rows >= r) by an
// orthonormal basis of their span: the Q of A = QR, by LAPACK. Row-major A
// is column-major A^T, so this is the LQ factorization of A^T (gelqf, then
// orglq) done in place. work holds orthonormalize_work(r) values.
template <class T>
void orthonormalize(T* a, std::size_t rows, std::size_t r, T* work) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  const int m = static_cast<int>(r), n = static_cast<int>(rows);
  T* tau = work;
  T* scratch = work + r;
  const int lwork = static_cast<int>(64 * r);
  int info = 0;
  if constexpr (std::is_same_v<T, float>) {
    sgelqf_(&m, &n, a, &m, tau, scratch, &lwork, &info);
    if (info == 0) sorglq_(&m, &n, &m, a, &m, tau, scratch, &lwork, &info);
  } else {
    dgelqf_(&m, &n, a, &m, tau, scratch, &lwork, &info);
    if (info == 0) dorglq_(&m, &n, &m, a, &m, tau, scratch, &lwork, &info);
  }
  if (info != 0) {
    throw error("tensor::blas::orthonormalize: LAPACK failed with info " + std::to_string(info) +
                " on a " + std::to_string(rows) + " x " + std::to_string(r) + " matrix");
  }
}

}  // namespace loco::tensor::blas
