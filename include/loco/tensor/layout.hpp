#pragma once
// tensor::layout: the named tensors of a model inside its flat parameter
// vector (name, shape, offset), in order and without gaps. Objectives that
// know their structure expose one (`layout()`: problems::mlp, the LibTorch
// adapter); tensor::layout_of gives every other objective one flat tensor.
// Per-tensor compressors, low-rank compressors and fragment schedules read it.
//
//   loco::tensor::layout l;
//   l.add("fc1.weight", {128, 784});
//   l.add("fc1.bias", {128});
//   l.dimension();          // 100480
//   l[0].matrix_rows();     // 128, matrix_cols() 784 (conv kernels: out x rest)
#include <algorithm>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <loco/error.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loco::tensor {

struct named_tensor {
  std::string name;
  std::vector<std::size_t> shape;  // empty: a scalar
  std::size_t offset = 0;          // of its first value in the flat vector
  std::size_t size = 0;            // product of shape

  // As a matrix, the way low-rank compressors see it: the first dimension
  // by the product of the rest (a conv kernel is out_channels x the rest);
  // a vector or scalar is one row.
  std::size_t matrix_rows() const noexcept { return shape.size() < 2 ? 1 : shape[0]; }
  std::size_t matrix_cols() const noexcept { return shape.size() < 2 ? size : size / shape[0]; }
  bool is_matrix() const noexcept { return shape.size() >= 2; }
};

class layout {
 public:
  layout() = default;

  // One tensor "x" of d values: what an objective without a layout has.
  static layout flat(std::size_t d) {
    layout l;
    l.add("x", {d});
    return l;
  }

  // d values in chunks of `size` ("chunk0", "chunk1", ...; the last one may
  // be shorter): per_tensor<top_k> over it is a chunked top-k.
  static layout chunks(std::size_t d, std::size_t size) {
    if (d == 0 || size == 0) {
      throw config_error("tensor::layout::chunks: d " + std::to_string(d) + " and chunk size " +
                         std::to_string(size) + " must be >= 1");
    }
    layout l;  // built directly: add() checks names pairwise
    for (std::size_t at = 0, i = 0; at < d; at += size, ++i) {
      const std::size_t n = std::min(size, d - at);
      l.tensors_.push_back({"chunk" + std::to_string(i), {n}, at, n});
    }
    l.dimension_ = d;
    return l;
  }

  // Appends a tensor after the last one. Throws config_error for an empty
  // name, a repeated name or a zero extent.
  void add(std::string name, std::vector<std::size_t> shape) {
    if (name.empty()) throw config_error("tensor::layout: a tensor without a name");
    for (const auto& t : tensors_) {
      if (t.name == name) throw config_error("tensor::layout: tensor '" + name + "' added twice");
    }
    std::size_t size = 1;
    for (std::size_t extent : shape) {
      if (extent == 0) {
        throw config_error("tensor::layout: tensor '" + name + "' has an extent 0 in its shape");
      }
      size *= extent;
    }
    tensors_.push_back({std::move(name), std::move(shape), dimension_, size});
    dimension_ += size;
  }
  void add(std::string name, std::initializer_list<std::size_t> shape) {
    add(std::move(name), std::vector<std::size_t>(shape));
  }

  std::size_t dimension() const noexcept { return dimension_; }
  std::size_t size() const noexcept { return tensors_.size(); }
  bool empty() const noexcept { return tensors_.empty(); }
  const named_tensor& operator[](std::size_t i) const { return tensors_.at(i); }
  std::span<const named_tensor> tensors() const noexcept { return tensors_; }
  auto begin() const noexcept { return tensors_.begin(); }
  auto end() const noexcept { return tensors_.end(); }

  // The tensor named `name`; config_error naming it when there is none.
  const named_tensor& find(std::string_view name) const {
    for (const auto& t : tensors_) {
      if (t.name == name) return t;
    }
    throw config_error("tensor::layout: no tensor named '" + std::string(name) + "'");
  }

  // Throws config_error unless the tensors cover exactly d values.
  void require_dimension(std::size_t d, std::string_view who) const {
    if (d != dimension_) {
      throw config_error(std::string(who) + ": the layout covers " + std::to_string(dimension_) +
                         " values, the model has " + std::to_string(d));
    }
  }

  friend bool operator==(const layout& a, const layout& b) {
    if (a.tensors_.size() != b.tensors_.size()) return false;
    for (std::size_t i = 0; i < a.tensors_.size(); ++i) {
      const auto &x = a.tensors_[i], &y = b.tensors_[i];
      if (x.name != y.name || x.shape != y.shape) return false;
    }
    return true;
  }

 private:
  std::vector<named_tensor> tensors_;
  std::size_t dimension_ = 0;
};

// The objective's layout if it has one (a member layout()), else one flat
// tensor of its dimension.
template <class Objective>
layout layout_of(const Objective& objective) {
  if constexpr (requires { objective.layout(); }) {
    layout l = objective.layout();
    l.require_dimension(objective.dimension(), "tensor::layout_of");
    return l;
  } else {
    return layout::flat(objective.dimension());
  }
}

}  // namespace loco::tensor
