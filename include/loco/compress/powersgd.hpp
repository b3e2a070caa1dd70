#pragma once
// powersgd: low-rank compression of a model's weight matrices (Vogels,
// Karimireddy and Jaggi, NeurIPS 2019), as PyTorch's DDP PowerSGD hook.
// For each matrix M of the layout (a conv kernel is out_channels x the
// rest), with Q (cols x r) shared by every worker:
//   P = M Q;  average P over workers;  orthogonalize P
//   Q = M^T P;  average Q over workers;  M ~ P Q^T
// Vectors, and matrices that would not shrink by min_compression_rate,
// travel dense in the first payload. The scheme is linear: payloads are
// averaged by the communicator's allreduce, never gathered, and the result
// is the same on every worker. With error feedback, M is v + e and
// e = M - P Q^T afterwards (dense values included, as the hook does); with
// warm start, the averaged Q of a round is the next round's starting Q.
//
// A linear compressor is used in phases (docs/concepts.md#linear-compressors):
//   auto payload = c.begin(s, v);      // average it across workers, in place
//   while (!(payload = c.next(s)).empty()) { average it in place }
//   c.end(s, out);                     // the averaged approximation
// The products and the orthogonalization come from a Linalg policy:
// powersgd's are loops with Gram-Schmidt; powersgd_blas
// (<loco/compress/powersgd_blas.hpp>, link loco::blas) adds LAPACK's QR.
// docs/compressors.md#powersgd
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/compress/detail/common.hpp>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/tensor/layout.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::compress {

enum class orthogonalization {
  gram_schmidt,  // column by column, as the hook does for rank <= 2
  qr,            // LAPACK's Householder QR (powersgd_blas), as the hook does for rank > 2
};

struct powersgd_options {
  std::size_t rank = 1;               // r >= 1
  bool warm_start = true;             // start from the last round's Q (else a fresh random Q)
  bool error_feedback = true;         // compress v + e, keep e = what was not sent
  std::uint64_t start_iteration = 0;  // rounds before it average everything dense
  double min_compression_rate = 2.0;  // compress M only if rows cols > rate (rows + cols) r
  std::uint64_t seed = 0;             // of the random Q: the same on every worker
  orthogonalization orthogonalize = orthogonalization::gram_schmidt;
};

// The products of basic_powersgd in plain loops, for builds without BLAS.
// Both are thin (r <= a few columns) and so bound by reading M once; the
// loops keep every access contiguous and the sums in 16 lanes so that the
// compiler vectorizes them. qt is scratch of r x cols values.
struct powersgd_loops {
  static constexpr const char* name = "loops";
  static constexpr bool has_qr = false;
  static constexpr std::size_t qr_work(std::size_t /*r*/) noexcept { return 0; }

  // P (rows x r) = M (rows x cols) Q (cols x r), all row-major.
  template <class T>
  static void times_q(const T* m, std::size_t rows, std::size_t cols, const T* q, std::size_t r,
                      T* p, T* qt) {
    transpose(q, cols, r, qt);
    constexpr std::size_t lanes = 16;
    const std::size_t body = cols - cols % lanes;
    for (std::size_t i = 0; i < rows; ++i) {
      const T* row = m + i * cols;
      for (std::size_t k = 0; k < r; ++k) {
        const T* col = qt + k * cols;
        T acc[lanes] = {};
        for (std::size_t j = 0; j < body; j += lanes) {
          for (std::size_t l = 0; l < lanes; ++l) acc[l] += row[j + l] * col[j + l];
        }
        T sum = 0;
        for (std::size_t l = 0; l < lanes; ++l) sum += acc[l];
        for (std::size_t j = body; j < cols; ++j) sum += row[j] * col[j];
        p[i * r + k] = sum;
      }
    }
  }

  // Q (cols x r) = M^T P, M rows x cols, P rows x r: one axpy per row of M.
  template <class T>
  static void transposed_times_p(const T* m, std::size_t rows, std::size_t cols, const T* p,
                                 std::size_t r, T* q, T* qt) {
    std::fill(qt, qt + r * cols, T(0));
    for (std::size_t i = 0; i < rows; ++i) {
      const T* row = m + i * cols;
      for (std::size_t k = 0; k < r; ++k) {
        const T pk = p[i * r + k];
        T* col = qt + k * cols;
        for (std::size_t j = 0; j < cols; ++j) col[j] += pk * row[j];
      }
    }
    transpose(qt, r, cols, q);
  }

  template <class T>
  static void qr(T*, std::size_t, std::size_t, T*) {}  // never called: has_qr is false

 private:
  // b (cols x rows) = a^T, a rows x cols.
  template <class T>
  static void transpose(const T* a, std::size_t rows, std::size_t cols, T* b) {
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t j = 0; j < cols; ++j) b[j * rows + i] = a[i * cols + j];
    }
  }
};

template <class Linalg>
class basic_powersgd {
 public:
  static constexpr bool unbiased = false;
  static constexpr bool contractive = false;
  static constexpr bool linear = true;
  static constexpr const char* name = "powersgd";

  explicit basic_powersgd(tensor::layout model, powersgd_options opt = {})
      : layout_(std::move(model)), opt_(opt) {
    if (opt_.rank == 0) throw config_error("compress::powersgd: rank 0 must be >= 1");
    if (opt_.orthogonalize == orthogonalization::qr && !Linalg::has_qr) {
      throw config_error(
          "compress::powersgd: orthogonalization::qr needs LAPACK: use compress::powersgd_blas "
          "(<loco/compress/powersgd_blas.hpp>, link loco::blas)");
    }
    if (!(opt_.min_compression_rate >= 0.0) || !std::isfinite(opt_.min_compression_rate)) {
      throw config_error("compress::powersgd: min_compression_rate " +
                         std::to_string(opt_.min_compression_rate) + " must be finite and >= 0");
    }
    if (layout_.empty()) throw config_error("compress::powersgd: the layout has no tensors");
    for (const auto& t : layout_) {
      const std::size_t rows = t.matrix_rows(), cols = t.matrix_cols();
      const bool worth = t.is_matrix() && static_cast<double>(rows) * static_cast<double>(cols) >
                                              opt_.min_compression_rate *
                                                  static_cast<double>(rows + cols) *
                                                  static_cast<double>(opt_.rank);
      if (worth) {
        matrices_.push_back({t.offset, rows, cols, p_values_, q_values_});
        widest_q_ = std::max(widest_q_, cols * opt_.rank);
        p_values_ += rows * opt_.rank;
        q_values_ += cols * opt_.rank;
      } else {
        dense_.push_back({t.offset, t.size});
        dense_values_ += t.size;
      }
    }
  }

  const tensor::layout& layout() const noexcept { return layout_; }
  const powersgd_options& options() const noexcept { return opt_; }
  std::size_t compressed_matrices() const noexcept { return matrices_.size(); }
  // Values in the two payloads of a compressed round (P and the dense
  // tensors, then Q); before start_iteration one payload of d values.
  std::size_t first_payload() const noexcept { return p_values_ + dense_values_; }
  std::size_t second_payload() const noexcept { return q_values_; }

  template <class T>
  class state {
   public:
    state(const basic_powersgd& c, std::size_t d, std::uint64_t /*stream*/)
        : m_(d),
          e_(c.opt_.error_feedback ? d : 0, T(0)),
          first_(c.first_payload()),
          q_(c.second_payload(), T(0)),
          work_(c.opt_.orthogonalize == orthogonalization::qr ? Linalg::qr_work(c.opt_.rank) : 0),
          qt_(c.widest_q_, T(0)) {
      c.layout_.require_dimension(d, "compress::powersgd");
    }
    std::size_t dimension() const noexcept { return m_.size(); }
    std::uint64_t iteration() const noexcept { return iteration_; }
    // The residual e (error feedback) and the Q of the last round.
    std::span<const T> residual() const noexcept { return e_; }
    std::span<const T> q() const noexcept { return q_; }

    void save(wire::buffer& out) const {
      out.put<std::uint64_t>(iteration_);
      out.put<std::uint8_t>(q_ready_ ? 1 : 0);
      wire::put_values(out, std::span<const T>(e_));
      wire::put_values(out, std::span<const T>(q_));
    }
    void restore(wire::view& in) {
      iteration_ = in.get<std::uint64_t>("powersgd iteration");
      const auto ready = in.get<std::uint8_t>("powersgd warm start");
      if (ready > 1) in.fail("powersgd warm start", "must be 0 or 1");
      q_ready_ = ready == 1;
      wire::get_values(in, std::span<T>(e_), "powersgd residual");
      wire::get_values(in, std::span<T>(q_), "powersgd Q");
      for (const auto v : {std::span<const T>(e_), std::span<const T>(q_)}) {
        if (const auto i = tensor::first_non_finite(v); i != tensor::npos) {
          in.fail("powersgd state", "non-finite value at index " + std::to_string(i));
        }
      }
      phase_ = 0;
    }

   private:
    friend class basic_powersgd;
    std::vector<T> m_;      // v + e: what this round approximates (or averages, when dense)
    std::vector<T> e_;      // the residual
    std::vector<T> first_;  // P of every matrix, then the dense tensors' values
    std::vector<T> q_;      // Q of every matrix
    std::vector<T> work_;   // LAPACK's workspace (QR only)
    std::vector<T> qt_;     // one matrix's Q^T, for the reconstruction
    std::uint64_t iteration_ = 0;
    bool q_ready_ = false;  // q_ holds the last round's averaged Q
    int phase_ = 0;         // 0 idle, 1 first payload out, 2 second payload out
    bool dense_round_ = false;
  };

  // Phase 1: the payload to average (P and the dense tensors' values, or
  // all of M before start_iteration). Throws non_finite_error for a NaN or
  // Inf in v before touching the state.
  template <class T>
  std::span<T> begin(state<T>& s, std::span<const T> v) const {
    detail::check_encode_size(name, s.dimension(), v.size());
    detail::check_finite(name, v);
    s.dense_round_ = s.iteration_ < opt_.start_iteration;
    s.phase_ = 1;
    if (s.dense_round_) {
      std::copy(v.begin(), v.end(), s.m_.begin());
      return s.m_;
    }
    for (std::size_t j = 0; j < v.size(); ++j) s.m_[j] = v[j] + (s.e_.empty() ? T(0) : s.e_[j]);
    if (!opt_.warm_start || !s.q_ready_) random_q(s);
    const std::size_t r = opt_.rank;
    for (const auto& mat : matrices_) {
      T* q = s.q_.data() + mat.q_at;
      orthogonalize(q, mat.cols, s);
      Linalg::times_q(s.m_.data() + mat.offset, mat.rows, mat.cols, q, r,
                      s.first_.data() + mat.p_at, s.qt_.data());
    }
    std::size_t at = p_values_;
    for (const auto& t : dense_) {
      std::copy_n(s.m_.begin() + static_cast<std::ptrdiff_t>(t.offset), t.size,
                  s.first_.begin() + static_cast<std::ptrdiff_t>(at));
      at += t.size;
    }
    return s.first_;
  }

  // After the last payload was averaged in place: the next one (Q, from the
  // orthogonalized average of P), or empty when the round needs no more.
  template <class T>
  std::span<T> next(state<T>& s) const {
    if (s.phase_ == 0) throw config_error("compress::powersgd: next() without begin()");
    if (s.dense_round_ || s.phase_ == 2 || matrices_.empty()) return {};
    s.phase_ = 2;
    const std::size_t r = opt_.rank;
    for (const auto& mat : matrices_) {
      T* p = s.first_.data() + mat.p_at;
      orthogonalize(p, mat.rows, s);
      Linalg::transposed_times_p(s.m_.data() + mat.offset, mat.rows, mat.cols, p, r,
                                 s.q_.data() + mat.q_at, s.qt_.data());
    }
    return s.q_;
  }

  // After every payload was averaged: writes the averaged approximation
  // into out (length d) and keeps the residual.
  template <class T>
  void end(state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.dimension(), out.size());
    if (s.phase_ == 0 || (!s.dense_round_ && !matrices_.empty() && s.phase_ != 2)) {
      throw config_error("compress::powersgd: end() before every payload was exchanged");
    }
    s.phase_ = 0;
    ++s.iteration_;
    if (s.dense_round_) {
      std::copy(s.m_.begin(), s.m_.end(), out.begin());
      return;
    }
    for (const auto& mat : matrices_) reconstruct(mat, s, out.data() + mat.offset);
    std::size_t at = p_values_;
    for (const auto& t : dense_) {
      std::copy_n(s.first_.begin() + static_cast<std::ptrdiff_t>(at), t.size,
                  out.begin() + static_cast<std::ptrdiff_t>(t.offset));
      if (!s.e_.empty()) {
        for (std::size_t j = t.offset; j < t.offset + t.size; ++j) s.e_[j] = s.m_[j] - out[j];
      }
      at += t.size;
    }
    s.q_ready_ = true;
  }

 private:
  struct matrix {
    std::size_t offset, rows, cols;
    std::size_t p_at, q_at;  // where its P and Q start in the payloads
  };
  struct dense_range {
    std::size_t offset, size;
  };

  // out = P Q^T (rows x r times r x cols) row by row, and the residual
  // e = M - out while the row is in cache: one pass over the matrix, where a
  // GEMM with inner dimension r and a separate residual loop took two (and
  // BLAS runs such thin products far below its rate).
  template <class T>
  void reconstruct(const matrix& mat, state<T>& s, T* out) const {
    const std::size_t r = opt_.rank, cols = mat.cols;
    const T* p = s.first_.data() + mat.p_at;
    const T* q = s.q_.data() + mat.q_at;
    T* qt = s.qt_.data();  // Q^T: r rows of cols, each contiguous
    for (std::size_t j = 0; j < cols; ++j) {
      for (std::size_t k = 0; k < r; ++k) qt[k * cols + j] = q[j * r + k];
    }
    for (std::size_t i = 0; i < mat.rows; ++i) {
      T* o = out + i * cols;
      const T p0 = p[i * r];
      for (std::size_t j = 0; j < cols; ++j) o[j] = p0 * qt[j];
      for (std::size_t k = 1; k < r; ++k) {
        const T pk = p[i * r + k];
        const T* row = qt + k * cols;
        for (std::size_t j = 0; j < cols; ++j) o[j] += pk * row[j];
      }
      if (!s.e_.empty()) {
        const T* m = s.m_.data() + mat.offset + i * cols;
        T* e = s.e_.data() + mat.offset + i * cols;
        for (std::size_t j = 0; j < cols; ++j) e[j] = m[j] - o[j];
      }
    }
  }

  // A fresh Q, N(0, 1) from (seed, iteration): equal on every worker.
  template <class T>
  void random_q(state<T>& s) const {
    random::stream rng(opt_.seed, s.iteration_);
    for (auto& v : s.q_) v = static_cast<T>(rng.normal());
  }

  // The r columns of a (rows x r, row-major) made orthonormal: by QR when
  // asked and the matrix is tall enough, else by Gram-Schmidt.
  template <class T>
  void orthogonalize(T* a, std::size_t rows, state<T>& s) const {
    const std::size_t r = opt_.rank;
    if (!s.work_.empty() && rows >= r) {
      Linalg::qr(a, rows, r, s.work_.data());
    } else {
      gram_schmidt(a, rows, r);
    }
  }

  // A column that vanishes stays zero.
  template <class T>
  static void gram_schmidt(T* a, std::size_t rows, std::size_t r) {
    for (std::size_t k = 0; k < r; ++k) {
      T norm = 0;
      for (std::size_t i = 0; i < rows; ++i) norm += a[i * r + k] * a[i * r + k];
      norm = std::sqrt(norm);
      if (norm > T(0)) {
        for (std::size_t i = 0; i < rows; ++i) a[i * r + k] /= norm;
      }
      for (std::size_t l = k + 1; l < r; ++l) {
        T dot = 0;
        for (std::size_t i = 0; i < rows; ++i) dot += a[i * r + k] * a[i * r + l];
        for (std::size_t i = 0; i < rows; ++i) a[i * r + l] -= dot * a[i * r + k];
      }
    }
  }

  tensor::layout layout_;
  powersgd_options opt_;
  std::vector<matrix> matrices_;
  std::vector<dense_range> dense_;
  std::size_t p_values_ = 0, q_values_ = 0, dense_values_ = 0;
  std::size_t widest_q_ = 0;  // the largest Q, in values
};

// PowerSGD in plain loops; powersgd_blas runs on BLAS.
using powersgd = basic_powersgd<powersgd_loops>;

}  // namespace loco::compress
