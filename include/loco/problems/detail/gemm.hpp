#pragma once
// The one place problems/ calls BLAS, through xtensor-blas (link loco::blas).
// Row-major C (m x n) = op(A) op(B) + beta C with op(A) m x k, op(B) k x n,
// over raw pointers wrapped in non-owning xtensor adaptors: nothing is
// allocated or copied.
#include <array>
#include <cstddef>
#include <xtensor-blas/xblas.hpp>
#include <xtensor/xadapt.hpp>

namespace loco::problems::detail {

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

}  // namespace loco::problems::detail
