// Plain single-process SGD on the real Fashion-MNIST data: softmax
// regression, then an MLP with one hidden layer of 128 ReLU units. Prints the
// test accuracy and wall time of each.
//
//   fashion_mnist_single [data dir]     (default: $LOCO_FASHION_MNIST_DIR or
//                                        /usr/share/datasets/fashion-mnist)
// With OpenBLAS, OPENBLAS_NUM_THREADS=1 is usually as fast at this size.
#include <chrono>
#include <cstdio>
#include <exception>
#include <loco/data/fashion_mnist.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// `epochs` passes of SGD (batches drawn with replacement, so an "epoch" is
// rows / batch steps); the step size is divided by 10 for the last quarter.
template <class Objective>
void sgd(Objective& f, std::vector<float>& x, double eta, std::size_t epochs, std::size_t batch,
         std::uint64_t seed) {
  std::vector<float> g(x.size());
  loco::random::stream rng(seed);
  const std::size_t steps = epochs * f.rows() / batch;
  for (std::size_t t = 0; t < steps; ++t) {
    const float lr = static_cast<float>(t < steps * 3 / 4 ? eta : eta / 10);
    f.gradient(std::span<const float>(x), std::span<float>(g), rng);
    for (std::size_t k = 0; k < x.size(); ++k) x[k] -= lr * g[k];
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string dir = argc > 1 ? argv[1] : "";
    auto t0 = clock_type::now();
    auto fm = loco::data::fashion_mnist<float>::load(dir);
    std::printf("loaded Fashion-MNIST from %s: %zu train, %zu test images in %.2f s\n",
                loco::data::fashion_mnist<float>::directory(dir).c_str(), fm.train.rows(),
                fm.test.rows(), seconds_since(t0));
    auto train = std::make_shared<const loco::data::dataset<float>>(std::move(fm.train));
    auto test = std::make_shared<const loco::data::dataset<float>>(std::move(fm.test));

    {
      const std::size_t batch = 64;
      loco::problems::softmax_regression<float> f(train, {batch, 1e-5});
      loco::problems::softmax_regression<float> eval(test, {batch, 1e-5});
      std::vector<float> x(f.dimension(), 0.0f);
      t0 = clock_type::now();
      sgd(f, x, 0.1, 8, batch, 1);
      const double train_time = seconds_since(t0);
      std::printf(
          "softmax regression: test accuracy %.2f%%, train loss %.4f, %.1f s (%zu params)\n",
          100.0 * eval.accuracy(std::span<const float>(x)), f.loss(std::span<const float>(x)),
          train_time, x.size());
    }
    {
      const std::size_t batch = 64;
      loco::problems::mlp_options o{{128}, batch, 0.0};
      loco::problems::mlp<float> f(train, o);
      loco::problems::mlp<float> eval(test, o);
      const auto init = f.initial_point(2);
      std::vector<float> x(init.begin(), init.end());
      t0 = clock_type::now();
      sgd(f, x, 0.1, 12, batch, 2);
      const double train_time = seconds_since(t0);
      std::printf("mlp 784-128-10: test accuracy %.2f%%, train loss %.4f, %.1f s (%zu params)\n",
                  100.0 * eval.accuracy(std::span<const float>(x)),
                  f.loss(std::span<const float>(x)), train_time, x.size());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist_single: %s\n", e.what());
    return 1;
  }
}
