// How close does the MLP gradient get to the machine's GEMM rate?
//
// BM_gemm runs the product that dominates the MLP, (b x p) times (p x h), with
// p = 784 and b = h = 128, through the same xtensor-blas call; BM_mlp_gradient
// runs a full mini-batch gradient (gather, forward, softmax, backward) of the
// 784-h-10 MLP. Both report FLOP/s (2 per multiply-add of their matrix
// products), so FLOP/s(mlp) / FLOP/s(gemm) is the fraction of the GEMM rate
// the gradient reaches. Run with OPENBLAS_NUM_THREADS=1 for a per-core figure.
#include <benchmark/benchmark.h>

#include <loco/data/dataset.hpp>
#include <loco/problems/mlp.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/blas.hpp>
#include <memory>
#include <span>
#include <vector>

namespace {

constexpr std::size_t pixels = 784;
constexpr std::size_t classes = 10;

std::shared_ptr<const loco::data::dataset<float>> fake_images(std::size_t n) {
  loco::random::stream rng(1);
  auto d = std::make_shared<loco::data::dataset<float>>();
  d->features = loco::tensor::matrix<float>::from_shape({n, pixels});
  for (auto& v : d->features) v = rng.uniform_float();
  d->classes = classes;
  for (std::size_t i = 0; i < n; ++i)
    d->labels.push_back(static_cast<std::int32_t>(rng.below(classes)));
  return d;
}

void BM_gemm(benchmark::State& state) {
  const auto b = static_cast<std::size_t>(state.range(0));
  const auto h = static_cast<std::size_t>(state.range(1));
  loco::random::stream rng(2);
  std::vector<float> x(b * pixels), w(h * pixels), out(b * h);
  for (auto& v : x) v = rng.uniform_float();
  for (auto& v : w) v = rng.uniform_float() - 0.5f;
  for (auto _ : state) {
    loco::tensor::blas::gemm(false, true, b, h, pixels, x.data(), w.data(), 0.0f, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(b) * double(h) * double(pixels);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_mlp_gradient(benchmark::State& state) {
  const auto b = static_cast<std::size_t>(state.range(0));
  const auto h = static_cast<std::size_t>(state.range(1));
  loco::problems::mlp<float> f(fake_images(4096), {{h}, b, 1e-4});
  const auto init = f.initial_point(3);
  std::vector<float> x(init.begin(), init.end()), g(x.size());
  loco::random::stream rng(4);
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.gradient(std::span<const float>(x), std::span<float>(g), rng));
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(f.gradient_flops() * double(state.iterations()),
                                                benchmark::Counter::kIsRate);
  state.SetBytesProcessed(state.iterations() *
                          static_cast<std::int64_t>(b * pixels * sizeof(float)));
}

// Softmax regression uses plain loops, no BLAS: for scale.
void BM_softmax_gradient(benchmark::State& state) {
  const auto b = static_cast<std::size_t>(state.range(0));
  loco::problems::softmax_regression<float> f(fake_images(4096), {b, 1e-4});
  std::vector<float> x(f.dimension(), 0.01f), g(x.size());
  loco::random::stream rng(5);
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.gradient(std::span<const float>(x), std::span<float>(g), rng));
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * 2.0 * double(b) * double(pixels) * double(classes);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_gemm)->Args({128, 128})->Args({64, 128});
BENCHMARK(BM_mlp_gradient)->Args({128, 128})->Args({64, 128});
BENCHMARK(BM_softmax_gradient)->Arg(64)->Arg(128);
