// What the LibTorch adapter costs: one SGD step of the PyTorch MNIST CNN
// (conv 32, conv 64, max-pool, fc 128, fc 10; 1.2M parameters) on a batch of
// 1 x 28 x 28 images, as plain LibTorch (zero_grad, forward, backward,
// torch::optim::SGD::step) and through libtorch::module_objective (gradient
// into loco's buffer, then x -= eta g as local_sgd does). The two run
// interleaved, one thread, and the ratio of their median times is printed.
//   bench_torch_adapter [--batch 64] [--rounds 15] [--steps 10]
#include <torch/torch.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <loco/libtorch/objective.hpp>
#include <string>
#include <vector>

namespace {

struct netImpl : torch::nn::Module {
  netImpl()
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3)))),
        conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)))),
        fc1(register_module("fc1", torch::nn::Linear(9216, 128))),
        fc2(register_module("fc2", torch::nn::Linear(128, 10))) {}
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(conv1->forward(x));
    x = torch::max_pool2d(torch::relu(conv2->forward(x)), 2);
    return fc2->forward(torch::relu(fc1->forward(x.flatten(1))));
  }
  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(net);

using example = torch::data::Example<>;
using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t batch = 64, rounds = 15, steps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const auto value = static_cast<std::size_t>(std::strtoull(argv[i + 1], nullptr, 10));
    if (flag == "--batch")
      batch = value;
    else if (flag == "--rounds")
      rounds = value;
    else if (flag == "--steps")
      steps = value;
    else {
      std::fprintf(stderr, "bench_torch_adapter: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  torch::set_num_threads(1);
  torch::manual_seed(1);
  const auto images = torch::randn({512, 1, 28, 28});
  const auto labels = torch::randint(0, 10, {512}, torch::kLong);
  const auto draw = [&](loco::random::stream& rng) {
    std::vector<std::int64_t> rows(batch);
    for (auto& r : rows) r = static_cast<std::int64_t>(rng.below(512));
    const auto idx = torch::tensor(rows, torch::kLong);
    return example{images.index_select(0, idx), labels.index_select(0, idx)};
  };
  const auto loss = [](net& m, const example& b) {
    return torch::nn::functional::cross_entropy(m->forward(b.data), b.target);
  };
  constexpr float lr = 0.01f;

  net plain_net;
  torch::optim::SGD sgd(plain_net->parameters(), torch::optim::SGDOptions(lr));
  loco::random::stream plain_rng(3, 0);
  const auto plain_step = [&] {
    sgd.zero_grad();
    loss(plain_net, draw(plain_rng)).backward();
    sgd.step();
  };

  loco::libtorch::module_objective<net, example> f(net(), loss, draw, draw(plain_rng));
  std::vector<float> x = f.parameters(), g(f.dimension());
  loco::random::stream loco_rng(3, 0);
  const auto loco_step = [&] {
    (void)f.gradient(x, g, loco_rng);
    for (std::size_t j = 0; j < x.size(); ++j) x[j] -= lr * g[j];
  };

  const auto time_steps = [&](auto& step) {
    const auto t0 = clock_type::now();
    for (std::size_t s = 0; s < steps; ++s) step();
    return std::chrono::duration<double>(clock_type::now() - t0).count() /
           static_cast<double>(steps);
  };
  time_steps(plain_step);  // warm-up
  time_steps(loco_step);
  std::vector<double> plain, adapter, ratio;
  for (std::size_t r = 0; r < rounds; ++r) {
    const double a = time_steps(plain_step), b = time_steps(loco_step);
    plain.push_back(a);
    adapter.push_back(b);
    ratio.push_back(b / a);
  }
  std::printf("CNN with %zu parameters, batch %zu, 1 thread, %zu rounds of %zu steps each\n",
              f.dimension(), batch, rounds, steps);
  std::printf("plain LibTorch step:      median %.3f ms (min %.3f)\n", 1e3 * median(plain),
              1e3 * *std::min_element(plain.begin(), plain.end()));
  std::printf("through loco's adapter:   median %.3f ms (min %.3f)\n", 1e3 * median(adapter),
              1e3 * *std::min_element(adapter.begin(), adapter.end()));
  std::printf(
      "adapter / plain: median of per-round ratios %.4f (min %.4f, max %.4f); "
      "target <= 1.03\n",
      median(ratio), *std::min_element(ratio.begin(), ratio.end()),
      *std::max_element(ratio.begin(), ratio.end()));
  return 0;
}
