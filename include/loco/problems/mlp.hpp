#pragma once
// problems::mlp: a multi-layer perceptron with one or two ReLU hidden layers
// and a softmax cross-entropy output, for K-class data. All parameters live
// in one flat vector, layer by layer: W_1 (h_1 x p, row-major), c_1 (h_1),
// ..., W_L (K x h_{L-1}), c_L (K); d = sum_l out_l (in_l + 1). So a compressor
// sees a single vector.
//
//   H_0 = X (b x p, the mini-batch),  H_l = relu(H_{l-1} W_l^T + c_l),
//   P = softmax(H_{L-1} W_L^T + c_L),  f = mean_j -log P[j, y_j] + (l2/2) sum_l ||W_l||^2
//
// Forward and backward are matrix products (GEMM through xtensor-blas), so
// this header needs the CMake target loco::blas. With OpenBLAS, set
// OPENBLAS_NUM_THREADS=1 when several workers share a machine: batch-sized
// products gain little from BLAS threads, and workers then do not compete.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/data/dataset.hpp>
#include <loco/error.hpp>
#include <loco/problems/detail/rows.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/blas.hpp>
#include <loco/tensor/layout.hpp>
#include <loco/tensor/vector.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace loco::problems {

struct mlp_options {
  std::vector<std::size_t> hidden{128};  // widths of the 1 or 2 hidden layers, each >= 1
  std::size_t batch_size = 64;           // b >= 1
  double l2 = 0.0;                       // weight decay on the W_l (not the c_l), >= 0
};

template <class T = float>
class mlp {
 public:
  using value_type = T;
  using dataset_type = data::dataset<T>;

  mlp(std::shared_ptr<const dataset_type> data, std::span<const std::size_t> rows,
      mlp_options options = {})
      : rows_(std::move(data), rows, options.batch_size, "mlp"), options_(std::move(options)) {
    const auto& d = rows_.data();
    if (d.classes < 2 || d.labels.size() != d.rows()) {
      throw config_error("mlp: the dataset has " + std::to_string(d.classes) +
                         " classes; at least 2 with one label per row are needed");
    }
    if (options_.hidden.empty() || options_.hidden.size() > 2) {
      throw config_error("mlp: " + std::to_string(options_.hidden.size()) +
                         " hidden layers; 1 or 2 are supported");
    }
    for (std::size_t h : options_.hidden) {
      if (h == 0) throw config_error("mlp: a hidden layer of width 0; widths must be >= 1");
    }
    if (!(options_.l2 >= 0.0)) {
      throw config_error("mlp: l2 " + std::to_string(options_.l2) + " must be >= 0");
    }
    sizes_.push_back(d.cols());
    for (std::size_t h : options_.hidden) sizes_.push_back(h);
    sizes_.push_back(d.classes);
    std::size_t at = 0;
    for (std::size_t l = 0; l + 1 < sizes_.size(); ++l) {
      weight_at_.push_back(at);
      at += sizes_[l + 1] * sizes_[l];
      bias_at_.push_back(at);
      at += sizes_[l + 1];
    }
    dimension_ = at;
    batch_.resize(options_.batch_size);
    work_.reserve(*this, options_.batch_size);
  }
  explicit mlp(std::shared_ptr<const dataset_type> data, mlp_options options = {})
      : mlp(data, detail::rows<T>::all(data), std::move(options)) {}

  std::size_t dimension() const noexcept { return dimension_; }
  std::size_t rows() const noexcept { return rows_.size(); }
  std::size_t layers() const noexcept { return sizes_.size() - 1; }
  // Widths p, h_1, [h_2,] K.
  std::span<const std::size_t> sizes() const noexcept { return sizes_; }
  // The named tensors of x: "layer1.weight" (h_1 x p), "layer1.bias" (h_1),
  // and so on up to the output layer, at weight_offset and bias_offset.
  tensor::layout layout() const {
    tensor::layout l;
    for (std::size_t i = 0; i < layers(); ++i) {
      const std::string name = "layer" + std::to_string(i + 1);
      l.add(name + ".weight", {sizes_[i + 1], sizes_[i]});
      l.add(name + ".bias", {sizes_[i + 1]});
    }
    return l;
  }

  // Offsets of W_l and c_l in the flat parameter vector (l = 0 .. layers()-1).
  std::size_t weight_offset(std::size_t l) const noexcept { return weight_at_[l]; }
  std::size_t bias_offset(std::size_t l) const noexcept { return bias_at_[l]; }

  // He initialisation: W_l ~ N(0, 2 / in_l) for hidden layers, N(0, 1 / in_L)
  // for the output layer; intercepts 0. Reproducible from the seed.
  tensor::vector<T> initial_point(std::uint64_t seed = 0) const {
    tensor::vector<T> x = tensor::zeros<T>(dimension_);
    random::stream rng(seed, 0x3117);
    for (std::size_t l = 0; l < layers(); ++l) {
      const double gain = l + 1 < layers() ? 2.0 : 1.0;
      const double sd = std::sqrt(gain / static_cast<double>(sizes_[l]));
      for (std::size_t k = 0; k < sizes_[l + 1] * sizes_[l]; ++k) {
        x(weight_at_[l] + k) = static_cast<T>(sd * rng.normal());
      }
    }
    return x;
  }

  double loss(std::span<const T> x) const {
    detail::check_sizes("mlp::loss", dimension_, x.size(), x.size());
    workspace ws;
    double f = 0.0;
    for_chunks(ws, [&](std::span<const std::size_t> ids) { f += forward(x, ids, ws, nullptr); });
    return f / static_cast<double>(rows_.size()) + penalty(x);
  }

  double accuracy(std::span<const T> x) const {
    detail::check_sizes("mlp::accuracy", dimension_, x.size(), x.size());
    workspace ws;
    std::size_t right = 0;
    for_chunks(ws, [&](std::span<const std::size_t> ids) { forward(x, ids, ws, &right); });
    return static_cast<double>(right) / static_cast<double>(rows_.size());
  }

  void full_gradient(std::span<const T> x, std::span<T> g) const {
    detail::check_sizes("mlp::full_gradient", dimension_, x.size(), g.size());
    workspace ws;
    bool first = true;
    const double scale = 1.0 / static_cast<double>(rows_.size());
    for_chunks(ws, [&](std::span<const std::size_t> ids) {
      forward(x, ids, ws, nullptr);
      backward(x, g, ids, ws, scale, first);
      first = false;
    });
    add_penalty_gradient(x, g);
  }

  // Gradient on b rows drawn with replacement; returns the mini-batch loss.
  // Allocates nothing: the batch buffers are members.
  double gradient(std::span<const T> x, std::span<T> g, random::stream& rng) {
    detail::check_sizes("mlp::gradient", dimension_, x.size(), g.size());
    rows_.draw(rng, batch_);
    const double f = forward(x, batch_, work_, nullptr);
    const double scale = 1.0 / static_cast<double>(batch_.size());
    backward(x, g, batch_, work_, scale, true);
    add_penalty_gradient(x, g);
    return f * scale + penalty(x);
  }

  // Multiply-adds times two of one gradient() call: forward and backward
  // matrix products (the benchmark's FLOP count).
  double gradient_flops() const noexcept {
    double f = 0.0;
    const auto b = static_cast<double>(options_.batch_size);
    for (std::size_t l = 0; l < layers(); ++l) {
      const double mn = static_cast<double>(sizes_[l]) * static_cast<double>(sizes_[l + 1]);
      f += 2.0 * b * mn * (l == 0 ? 2.0 : 3.0);  // forward, weight gradient, [input gradient]
    }
    return f;
  }

 private:
  // Buffers for up to `capacity` rows.
  struct workspace {
    std::size_t capacity = 0;
    std::vector<T> input;             // b x p
    std::vector<std::vector<T>> out;  // per layer: b x out_l (after ReLU; softmax at the top)
    std::vector<T> tmp;               // b x widest hidden layer
    void reserve(const mlp& m, std::size_t b) {
      capacity = b;
      input.resize(b * m.sizes_[0]);
      out.resize(m.layers());
      std::size_t widest = 0;
      for (std::size_t l = 0; l < m.layers(); ++l) {
        out[l].resize(b * m.sizes_[l + 1]);
        if (l + 1 < m.layers()) widest = std::max(widest, m.sizes_[l + 1]);
      }
      tmp.resize(b * widest);
    }
  };

  template <class F>
  void for_chunks(workspace& ws, F&& body) const {
    const std::size_t chunk = std::min<std::size_t>(256, rows_.size());
    ws.reserve(*this, chunk);
    const auto all = rows_.indices();
    for (std::size_t at = 0; at < all.size(); at += chunk) {
      body(all.subspan(at, std::min(chunk, all.size() - at)));
    }
  }

  // Runs rows `ids` forward; leaves each layer's output in ws.out (the top
  // one as probabilities). Returns the summed cross-entropy; counts correct
  // argmax predictions into *right when given.
  double forward(std::span<const T> x, std::span<const std::size_t> ids, workspace& ws,
                 std::size_t* right) const {
    const std::size_t b = ids.size();
    const std::size_t p = sizes_[0];
    for (std::size_t r = 0; r < b; ++r) {
      const T* src = rows_.data().row(ids[r]).data();
      std::copy(src, src + p, ws.input.data() + r * p);
    }
    const T* in = ws.input.data();
    for (std::size_t l = 0; l < layers(); ++l) {
      const std::size_t n_in = sizes_[l];
      const std::size_t n_out = sizes_[l + 1];
      T* out = ws.out[l].data();
      tensor::blas::gemm(false, true, b, n_out, n_in, in, x.data() + weight_at_[l], T(0), out);
      const T* c = x.data() + bias_at_[l];
      const bool hidden = l + 1 < layers();
      for (std::size_t r = 0; r < b; ++r) {
        T* row = out + r * n_out;
        for (std::size_t k = 0; k < n_out; ++k) {
          const T v = row[k] + c[k];
          row[k] = hidden && v < T(0) ? T(0) : v;
        }
      }
      in = out;
    }
    const std::size_t classes = sizes_.back();
    T* z = ws.out.back().data();
    double f = 0.0;
    for (std::size_t r = 0; r < b; ++r) {
      T* row = z + r * classes;
      const auto y = static_cast<std::size_t>(rows_.data().labels[ids[r]]);
      const std::size_t best = static_cast<std::size_t>(std::max_element(row, row + classes) - row);
      if (right != nullptr && best == y) ++*right;
      const double top = static_cast<double>(row[best]);
      double sum = 0.0;
      for (std::size_t k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(row[k]) - top);
      f += std::log(sum) - (static_cast<double>(row[y]) - top);
      for (std::size_t k = 0; k < classes; ++k) {
        row[k] = static_cast<T>(std::exp(static_cast<double>(row[k]) - top) / sum);
      }
    }
    return f;
  }

  // g (= or +=, by `overwrite`) scale * gradient of the summed cross-entropy
  // of rows `ids`, after forward() on the same rows.
  void backward(std::span<const T> x, std::span<T> g, std::span<const std::size_t> ids,
                workspace& ws, double scale, bool overwrite) const {
    const std::size_t b = ids.size();
    const std::size_t classes = sizes_.back();
    T* delta = ws.out.back().data();  // becomes (P - Y) * scale in place
    for (std::size_t r = 0; r < b; ++r) {
      delta[r * classes + static_cast<std::size_t>(rows_.data().labels[ids[r]])] -= T(1);
    }
    const T s = static_cast<T>(scale);
    for (std::size_t k = 0; k < b * classes; ++k) delta[k] *= s;
    const T beta = overwrite ? T(0) : T(1);
    for (std::size_t l = layers(); l-- > 0;) {
      const std::size_t n_in = sizes_[l];
      const std::size_t n_out = sizes_[l + 1];
      const T* in = l == 0 ? ws.input.data() : ws.out[l - 1].data();
      tensor::blas::gemm(true, false, n_out, n_in, b, delta, in, beta, g.data() + weight_at_[l]);
      T* gc = g.data() + bias_at_[l];
      if (overwrite) std::fill(gc, gc + n_out, T(0));
      for (std::size_t r = 0; r < b; ++r) {
        for (std::size_t k = 0; k < n_out; ++k) gc[k] += delta[r * n_out + k];
      }
      if (l == 0) break;
      // delta_{l-1} = (delta_l W_l) masked by relu'(H_{l-1}), written over H_{l-1}.
      tensor::blas::gemm(false, false, b, n_in, n_out, delta, x.data() + weight_at_[l], T(0),
                         ws.tmp.data());
      T* h = ws.out[l - 1].data();
      for (std::size_t k = 0; k < b * n_in; ++k) h[k] = h[k] > T(0) ? ws.tmp[k] : T(0);
      delta = h;
    }
  }

  double penalty(std::span<const T> x) const noexcept {
    if (options_.l2 == 0.0) return 0.0;
    double s = 0.0;
    for (std::size_t l = 0; l < layers(); ++l) {
      for (std::size_t k = weight_at_[l]; k < bias_at_[l]; ++k) {
        s += static_cast<double>(x[k]) * static_cast<double>(x[k]);
      }
    }
    return 0.5 * options_.l2 * s;
  }
  void add_penalty_gradient(std::span<const T> x, std::span<T> g) const noexcept {
    if (options_.l2 == 0.0) return;
    const T l2 = static_cast<T>(options_.l2);
    for (std::size_t l = 0; l < layers(); ++l) {
      for (std::size_t k = weight_at_[l]; k < bias_at_[l]; ++k) g[k] += l2 * x[k];
    }
  }

  detail::rows<T> rows_;
  mlp_options options_;
  std::vector<std::size_t> sizes_;
  std::vector<std::size_t> weight_at_;
  std::vector<std::size_t> bias_at_;
  std::size_t dimension_ = 0;
  std::vector<std::size_t> batch_;
  workspace work_;
};

}  // namespace loco::problems
