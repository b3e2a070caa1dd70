#pragma once
// data::dataset: n examples of p features in one row-major matrix, plus either
// class labels (classification) or real targets (regression). Objectives hold
// a std::shared_ptr<const dataset> and a worker's index list, so n workers
// share one copy of the data.
#include <cstddef>
#include <cstdint>
#include <loco/error.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/tensor/vector.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loco::data {

template <class T = float>
struct dataset {
  using value_type = T;

  tensor::matrix<T> features = tensor::matrix<T>::from_shape({0, 0});  // n x p, row-major
  std::vector<std::int32_t> labels;  // n class indices in [0, classes); empty for regression
  tensor::vector<T> targets = tensor::vector<T>::from_shape({0});  // n reals; empty for classes
  std::size_t classes = 0;  // number of classes; 0 for regression

  std::size_t rows() const noexcept { return features.shape()[0]; }
  std::size_t cols() const noexcept { return features.shape()[1]; }
  bool is_classification() const noexcept { return classes > 0; }

  std::span<const T> row(std::size_t i) const noexcept {
    return {features.data() + i * cols(), cols()};
  }

  // Throws config_error naming `who` when the parts disagree: label count,
  // label range, target count, non-finite features.
  void validate(std::string_view who) const {
    const std::string w(who);
    if (classes > 0) {
      if (labels.size() != rows()) {
        throw config_error(w + ": " + std::to_string(labels.size()) + " labels for " +
                           std::to_string(rows()) + " rows");
      }
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] < 0 || static_cast<std::size_t>(labels[i]) >= classes) {
          throw config_error(w + ": label " + std::to_string(labels[i]) + " of row " +
                             std::to_string(i) + " is outside [0, " + std::to_string(classes) +
                             ")");
        }
      }
    } else if (targets.size() != rows()) {
      throw config_error(w + ": " + std::to_string(targets.size()) + " targets for " +
                         std::to_string(rows()) + " rows (a regression dataset needs one each)");
    }
    const auto bad = tensor::first_non_finite(std::span<const T>(features.data(), features.size()));
    if (bad != tensor::npos) {
      throw config_error(w + ": non-finite feature at row " + std::to_string(bad / cols()) +
                         ", column " + std::to_string(bad % cols()));
    }
  }
};

}  // namespace loco::data
