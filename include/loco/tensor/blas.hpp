#pragma once
// The one place loco calls BLAS and LAPACK, through xtensor-blas (link
// loco::blas). Every matrix is row-major and addressed by raw pointers:
// nothing is allocated or copied.
#include <algorithm>
#include <array>
#include <cstddef>
#include <loco/error.hpp>
#include <string>
#include <xtensor-blas/xblas.hpp>
#include <xtensor-blas/xlapack.hpp>
#include <xtensor/xadapt.hpp>

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
  using index = xt::blas_index_t;
  const auto m = static_cast<index>(r), n = static_cast<index>(rows);
  T* tau = work;
  T* scratch = work + r;
  const auto lwork = static_cast<index>(64 * r);
  index info = cxxlapack::gelqf<index>(m, n, a, m, tau, scratch, lwork);
  if (info == 0) info = cxxlapack::orglq<index>(m, n, m, a, m, tau, scratch, lwork);
  if (info != 0) {
    throw error("tensor::blas::orthonormalize: LAPACK failed with info " + std::to_string(info) +
                " on a " + std::to_string(rows) + " x " + std::to_string(r) + " matrix");
  }
}

}  // namespace loco::tensor::blas
