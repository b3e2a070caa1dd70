#pragma once
// The part every data-backed objective shares: a dataset shared by all
// workers, this worker's rows of it, and mini-batch sampling.
//
// Mini-batches are drawn WITH replacement: each of the b examples is
// rows[rng.below(m)]. This keeps a worker's whole sampling state in the
// rng it is handed (no epoch cursor to checkpoint), so a run replays exactly
// from the rng's state.
#include <cmath>
#include <cstddef>
#include <loco/data/dataset.hpp>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace loco::problems::detail {

template <class T>
class rows {
 public:
  rows() = default;
  rows(std::shared_ptr<const data::dataset<T>> data, std::span<const std::size_t> indices,
       std::size_t batch_size, const std::string& who)
      : data_(std::move(data)), indices_(indices.begin(), indices.end()), batch_size_(batch_size) {
    if (!data_) throw config_error(who + ": dataset is null");
    if (indices_.empty()) throw config_error(who + ": the worker's row list is empty");
    for (std::size_t i : indices_) {
      if (i >= data_->rows()) {
        throw config_error(who + ": row " + std::to_string(i) + " is outside the dataset's " +
                           std::to_string(data_->rows()) + " rows");
      }
    }
    if (batch_size_ == 0) throw config_error(who + ": batch_size 0 must be >= 1");
  }

  // Every row of the dataset.
  static std::vector<std::size_t> all(const std::shared_ptr<const data::dataset<T>>& data) {
    std::vector<std::size_t> v(data ? data->rows() : 0);
    std::iota(v.begin(), v.end(), std::size_t{0});
    return v;
  }

  const data::dataset<T>& data() const noexcept { return *data_; }
  const std::shared_ptr<const data::dataset<T>>& shared_data() const noexcept { return data_; }
  std::span<const std::size_t> indices() const noexcept { return indices_; }
  std::size_t size() const noexcept { return indices_.size(); }
  std::size_t batch_size() const noexcept { return batch_size_; }

  // b dataset row numbers drawn uniformly with replacement from this worker's rows.
  void draw(random::stream& rng, std::span<std::size_t> out) const noexcept {
    for (auto& o : out) o = indices_[static_cast<std::size_t>(rng.below(indices_.size()))];
  }

 private:
  std::shared_ptr<const data::dataset<T>> data_;
  std::vector<std::size_t> indices_;
  std::size_t batch_size_ = 1;
};

// Dot product with independent partial sums, so the compiler can keep
// several lanes busy without -ffast-math.
template <class T>
inline T dot(const T* a, const T* b, std::size_t n) noexcept {
  T s[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (std::size_t k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  }
  T tail = 0;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + tail;
}

// log(1 + exp(z)) without overflow.
inline double softplus(double z) noexcept {
  return z > 0.0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
}

inline void check_sizes(const char* who, std::size_t d, std::size_t x, std::size_t g) {
  if (x != d || g != d) {
    throw config_error(std::string(who) + ": x has " + std::to_string(x) + " and g " +
                       std::to_string(g) + " entries, the objective has dimension " +
                       std::to_string(d));
  }
}

}  // namespace loco::problems::detail
