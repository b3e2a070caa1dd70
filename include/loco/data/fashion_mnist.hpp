#pragma once
// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 28x28 grey images of 10
// clothing classes, 60000 for training and 10000 for testing, read from the
// gzip-compressed IDX files that Debian's `dataset-fashion-mnist` package
// installs under /usr/share/datasets/fashion-mnist/. Link loco::zlib.
//
//   auto fm = loco::data::fashion_mnist<float>::load();   // train + test
//   fm.train.rows() == 60000, fm.train.cols() == 784, fm.train.classes == 10
//
// The directory is, in order: the argument, $LOCO_FASHION_MNIST_DIR, the
// Debian path. Pixels become x / 255 in [0, 1], or, with
// pixel_scaling::standardise, (x / 255 - mean) / std with the mean and
// standard deviation of all training pixels (applied to both splits).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <loco/data/dataset.hpp>
#include <loco/data/detail/idx.hpp>
#include <loco/error.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loco::data {

enum class pixel_scaling { unit_interval, standardise };

struct fashion_mnist_options {
  pixel_scaling scaling = pixel_scaling::unit_interval;
};

template <class T = float>
class fashion_mnist {
 public:
  static constexpr std::size_t side = 28;
  static constexpr std::size_t pixels = side * side;
  static constexpr std::size_t classes = 10;
  static constexpr std::string_view debian_dir = "/usr/share/datasets/fashion-mnist";

  dataset<T> train;
  dataset<T> test;

  // The argument if not empty, else $LOCO_FASHION_MNIST_DIR, else the Debian path.
  static std::string directory(std::string dir = {}) {
    if (!dir.empty()) return dir;
    if (const char* env = std::getenv("LOCO_FASHION_MNIST_DIR"); env != nullptr && *env != 0) {
      return env;
    }
    return std::string(debian_dir);
  }

  // One split: "train" or "t10k", scaled to [0, 1].
  static dataset<T> load_split(const std::string& dir, std::string_view split) {
    if (split != "train" && split != "t10k") {
      throw config_error("fashion_mnist: split '" + std::string(split) +
                         "' must be \"train\" or \"t10k\"");
    }
    const std::string base = directory(dir) + "/" + std::string(split);
    const std::string hint =
        " (install the Debian package dataset-fashion-mnist, or set LOCO_FASHION_MNIST_DIR to "
        "the folder holding the four *-ubyte.gz files)";
    const std::string image_path = base + "-images-idx3-ubyte.gz";
    const std::string label_path = base + "-labels-idx1-ubyte.gz";
    // Images first: a missing directory is reported for the images file.
    const detail::idx_file images = detail::read_idx(image_path, 3, hint);
    const detail::idx_file labels = detail::read_idx(label_path, 1, hint);
    return from_idx(images, labels, image_path, label_path);
  }

  // One split from the decompressed bytes of its two IDX files (images,
  // rank 3; labels, rank 1), scaled to [0, 1]. The names label errors.
  // Throws protocol_error for anything but a consistent pair of 28x28
  // images and labels in [0, 10).
  static dataset<T> from_memory(std::vector<std::uint8_t> image_bytes,
                                std::vector<std::uint8_t> label_bytes,
                                const std::string& image_name = "images",
                                const std::string& label_name = "labels") {
    const auto images = detail::parse_idx(std::move(image_bytes), image_name, 3);
    const auto labels = detail::parse_idx(std::move(label_bytes), label_name, 1);
    return from_idx(images, labels, image_name, label_name);
  }

  static fashion_mnist load(const std::string& dir = {}, fashion_mnist_options options = {}) {
    fashion_mnist fm;
    fm.train = load_split(dir, "train");
    fm.test = load_split(dir, "t10k");
    if (options.scaling == pixel_scaling::standardise) {
      double sum = 0.0;
      double sq = 0.0;
      for (T v : fm.train.features) {
        sum += static_cast<double>(v);
        sq += static_cast<double>(v) * static_cast<double>(v);
      }
      const double count = static_cast<double>(fm.train.features.size());
      const double mean = sum / count;
      const double sd = std::sqrt(std::max(sq / count - mean * mean, 1e-12));
      for (dataset<T>* d : {&fm.train, &fm.test}) {
        for (T& v : d->features) v = static_cast<T>((static_cast<double>(v) - mean) / sd);
      }
    }
    return fm;
  }

 private:
  static dataset<T> from_idx(const detail::idx_file& images, const detail::idx_file& labels,
                             const std::string& image_path, const std::string& label_path) {
    if (images.dims[1] != side || images.dims[2] != side) {
      throw protocol_error(image_path, "dimensions",
                           "images are " + std::to_string(images.dims[1]) + "x" +
                               std::to_string(images.dims[2]) + ", Fashion-MNIST's are 28x28");
    }
    const std::size_t n = images.dims[0];
    if (labels.dims[0] != n) {
      throw protocol_error(label_path, "dimensions",
                           std::to_string(labels.dims[0]) + " labels for the " + std::to_string(n) +
                               " images of " + image_path);
    }
    dataset<T> d;
    d.classes = classes;
    d.features = tensor::matrix<T>::from_shape({n, pixels});
    T* out = d.features.data();
    const std::uint8_t* in = images.data();
    for (std::size_t i = 0; i < n * pixels; ++i) out[i] = static_cast<T>(in[i]) / T(255);
    d.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t y = labels.data()[i];
      if (y >= classes) {
        throw protocol_error(label_path, "data",
                             "label " + std::to_string(y) + " of example " + std::to_string(i) +
                                 " is not in [0, 10)");
      }
      d.labels[i] = y;
    }
    return d;
  }
};

}  // namespace loco::data
