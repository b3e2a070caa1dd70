// libtorch::module_objective against LibTorch itself: the adapter's gradient
// is autograd's, one loco SGD step is torch::optim::SGD's, the layout covers
// the parameters exactly, 4 workers of mini-batch SGD (on in_process and on
// tcp) agree and equal one LibTorch process with a 4x batch, and misuse is
// refused by name.
#include <catch2/catch.hpp>

#include "../comm_tcp/tcp_world.hpp"  // brings Boost.Asio

#include <torch/torch.h>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/aliases.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/libtorch/objective.hpp>
#include <loco/stepsize/constant.hpp>
#include <mutex>
#include <type_traits>
#include <vector>

namespace {

using example = torch::data::Example<>;

// A small CNN as in PyTorch's MNIST example, on 1 x 8 x 8 inputs.
struct cnnImpl : torch::nn::Module {
  cnnImpl()
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3)))),
        conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 8, 3)))),
        fc(register_module("fc", torch::nn::Linear(8 * 2 * 2, 3))) {}
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(conv1->forward(x));
    x = torch::max_pool2d(torch::relu(conv2->forward(x)), 2);
    return fc->forward(x.flatten(1));
  }
  torch::nn::Conv2d conv1;
  torch::nn::Conv2d conv2;
  torch::nn::Linear fc;
};
TORCH_MODULE(cnn);

cnn make_cnn() {
  torch::manual_seed(7);
  return cnn();
}

// A fixed pool of 64 examples; batches draw rows from loco's random stream.
struct pool {
  torch::Tensor data = torch::randn({64, 1, 8, 8}, torch::TensorOptions().dtype(torch::kFloat));
  torch::Tensor target = torch::randint(0, 3, {64}, torch::kLong);
};
const pool& examples() {
  static const pool p = [] {
    torch::manual_seed(11);
    return pool{};
  }();
  return p;
}

std::vector<std::int64_t> draw_rows(loco::random::stream& rng, std::size_t batch) {
  std::vector<std::int64_t> rows(batch);
  for (auto& r : rows) r = static_cast<std::int64_t>(rng.below(64));
  return rows;
}
example rows_of(const std::vector<std::int64_t>& rows) {
  const auto idx = torch::tensor(rows, torch::kLong);
  return {examples().data.index_select(0, idx), examples().target.index_select(0, idx)};
}

auto cross_entropy = [](cnn& m, const example& b) {
  return torch::nn::functional::cross_entropy(m->forward(b.data), b.target);
};

using objective = loco::libtorch::module_objective<cnn, example>;

objective make_objective(cnn net, std::size_t batch) {
  return objective(
      std::move(net), cross_entropy,
      [batch](loco::random::stream& rng) { return rows_of(draw_rows(rng, batch)); },
      rows_of({0, 1, 2, 3, 4, 5, 6, 7}));
}

std::vector<float> flat_grads(cnn& net) {
  std::vector<float> g;
  for (const auto& p : net->parameters()) {
    auto c = p.grad().contiguous();
    g.insert(g.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  return g;
}

}  // namespace

TEST_CASE("libtorch adapter: layout names every parameter and covers d", "[torch]") {
  auto f = make_objective(make_cnn(), 4);
  const auto& l = f.layout();
  REQUIRE(l.size() == 6);
  REQUIRE(l[0].name == "conv1.weight");
  REQUIRE(l[0].shape == std::vector<std::size_t>{4, 1, 3, 3});
  REQUIRE(l[5].name == "fc.bias");
  std::size_t next = 0;
  for (const auto& t : l) {
    REQUIRE(t.offset == next);
    next += t.size;
  }
  REQUIRE(next == f.dimension());
  REQUIRE(f.dimension() == 4 * 9 + 4 + 8 * 4 * 9 + 8 + 3 * 32 + 3);
  REQUIRE(loco::tensor::layout_of(f) == l);
}

TEST_CASE("libtorch adapter: the gradient is autograd's on the same batch", "[torch]") {
  auto reference = make_cnn();
  auto f = make_objective(make_cnn(), 16);
  const auto x = f.parameters();
  std::vector<float> g(f.dimension());
  loco::random::stream rng(3, 0), same(3, 0);
  const double loss = f.gradient(x, g, rng);

  const auto batch = rows_of(draw_rows(same, 16));
  reference->zero_grad();
  auto ref_loss = cross_entropy(reference, batch);
  ref_loss.backward();
  const auto expected = flat_grads(reference);
  REQUIRE(loss == Approx(ref_loss.item<double>()).epsilon(1e-6));
  REQUIRE(expected.size() == g.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    INFO("entry " << i);
    REQUIRE(g[i] == Approx(expected[i]).margin(1e-6).epsilon(1e-5));
  }
  // No view of x or g survives the call.
  for (const auto& p : f.module()->parameters()) {
    REQUIRE_FALSE(p.grad().defined());
    REQUIRE(p.data_ptr() != static_cast<const void*>(x.data()));
  }
  REQUIRE(f.loss(x) ==
          Approx(cross_entropy(reference, rows_of({0, 1, 2, 3, 4, 5, 6, 7})).item<double>())
              .epsilon(1e-6));
}

TEST_CASE("libtorch adapter: one loco SGD step equals torch::optim::SGD's", "[torch]") {
  constexpr double lr = 0.1;
  auto reference = make_cnn();
  torch::optim::SGD sgd(reference->parameters(), torch::optim::SGDOptions(lr));
  auto f = make_objective(make_cnn(), 8);
  using driver = loco::local_sgd<loco::compress::identity, loco::comm::in_process,
                                 loco::merge::average, loco::stepsize::constant>;
  driver one(loco::compress::identity{}, {}, loco::stepsize::constant(lr),
             {.schedule = loco::algorithm::schedule::rounds(1, 1), .seed = 5});
  std::vector<float> model;
  loco::comm::run_in_process(1, [&](loco::comm::in_process& comm) {
    const auto x0 = f.parameters();
    model = one.run(comm, f, std::span<const float>(x0)).average;
  });
  loco::random::stream same(5, 0);
  sgd.zero_grad();
  cross_entropy(reference, rows_of(draw_rows(same, 8))).backward();
  sgd.step();
  std::vector<float> expected;
  for (const auto& p : reference->parameters()) {
    auto c = p.detach().contiguous();
    expected.insert(expected.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  REQUIRE(model.size() == expected.size());
  for (std::size_t i = 0; i < model.size(); ++i) {
    INFO("entry " << i);
    REQUIRE(model[i] == Approx(expected[i]).margin(1e-6));
  }
  // The trained model goes back into the module.
  f.set_parameters(model);
  REQUIRE(f.parameters() == model);
  REQUIRE(f.module()->fc->bias.data_ptr<float>()[0] == model[model.size() - 3]);
}

// Runs fn(comm) on n ranks: threads of comm::in_process, or of comm::tcp
// over loopback.
template <class Comm, class Fn>
void run_world(int n, Fn fn) {
  if constexpr (std::is_same_v<Comm, loco::comm::in_process>) {
    loco::comm::run_in_process(n, fn);
  } else {
    tcp_test::run_threads(n, fn, [](loco::comm::tcp_options&) {});
  }
}

TEMPLATE_TEST_CASE(
    "libtorch adapter: 4 workers of mini-batch SGD equal one process with a 4x batch", "[torch]",
    loco::comm::in_process, loco::comm::tcp) {
  constexpr double lr = 0.05;
  constexpr std::size_t steps = 20, batch = 4;
  // loco: worker i draws its batch from stream (seed, i).
  std::vector<std::vector<float>> replicas(4);
  loco::minibatch_sgd<TestType, loco::stepsize::constant> sync(
      loco::compress::identity{}, {}, loco::stepsize::constant(lr),
      {.schedule = loco::algorithm::schedule::every_step(steps), .seed = 9});
  // One starting point for all: torch::manual_seed is global, so modules
  // built on the workers' threads at once would not start alike.
  const auto x0 = make_objective(make_cnn(), batch).parameters();
  std::mutex building;
  run_world<TestType>(4, [&](TestType& comm) {
    auto f = [&] {
      std::lock_guard lock(building);
      return make_objective(make_cnn(), batch);
    }();
    replicas[static_cast<std::size_t>(comm.rank())] =
        sync.run(comm, f, std::span<const float>(x0)).local;
  });
  for (const auto& r : replicas) REQUIRE(r == replicas[0]);

  // LibTorch alone: the union of the four workers' batches, mean loss.
  auto reference = make_cnn();
  torch::optim::SGD sgd(reference->parameters(), torch::optim::SGDOptions(lr));
  std::vector<loco::random::stream> streams;
  for (std::uint64_t w = 0; w < 4; ++w) streams.emplace_back(9, w);
  for (std::size_t t = 0; t < steps; ++t) {
    std::vector<std::int64_t> rows;
    for (auto& s : streams) {
      const auto mine = draw_rows(s, batch);
      rows.insert(rows.end(), mine.begin(), mine.end());
    }
    sgd.zero_grad();
    cross_entropy(reference, rows_of(rows)).backward();
    sgd.step();
  }
  std::size_t i = 0;
  for (const auto& p : reference->parameters()) {
    auto c = p.detach().contiguous();
    for (std::int64_t k = 0; k < c.numel(); ++k, ++i) {
      INFO("entry " << i);
      REQUIRE(replicas[0][i] == Approx(c.data_ptr<float>()[k]).margin(1e-5));
    }
  }
}

TEST_CASE("libtorch adapter: misuse is refused, naming what is wrong", "[torch]") {
  auto none = [](loco::random::stream&) { return rows_of({0}); };
  SECTION("a module without parameters") {
    auto relu = torch::nn::ReLU();
    auto loss = [](torch::nn::ReLU&, const example& b) { return b.data.sum(); };
    REQUIRE_THROWS_WITH((loco::libtorch::module_objective<torch::nn::ReLU, example>(
                            relu, loss, none, rows_of({0}))),
                        Catch::Contains("has no parameters"));
  }
  SECTION("a double parameter") {
    auto lin = torch::nn::Linear(3, 2);
    lin->to(torch::kDouble);
    auto loss = [](torch::nn::Linear&, const example& b) { return b.data.sum(); };
    REQUIRE_THROWS_WITH((loco::libtorch::module_objective<torch::nn::Linear, example>(
                            lin, loss, none, rows_of({0}))),
                        Catch::Contains("parameter 'weight' is Double"));
  }
  SECTION("an x of the wrong size, a loss that is not a scalar, a parameter added later") {
    auto f = make_objective(make_cnn(), 2);
    std::vector<float> x(f.dimension() + 1), g(f.dimension());
    loco::random::stream rng(1, 0);
    REQUIRE_THROWS_WITH(f.gradient(std::span<const float>(x).first(3), g, rng),
                        Catch::Contains("x has 3 values"));
    auto vector_loss = objective(
        make_cnn(), [](cnn& m, const example& b) { return m->forward(b.data).sum(1); },
        [](loco::random::stream& r) { return rows_of(draw_rows(r, 2)); }, rows_of({0, 1}));
    const auto x0 = vector_loss.parameters();
    REQUIRE_THROWS_WITH(vector_loss.gradient(x0, g, rng), Catch::Contains("must be a scalar"));
    f.module()->register_parameter("late", torch::zeros({2}));
    const auto x1 = f.parameters();
    REQUIRE_THROWS_WITH(f.gradient(x1, g, rng), Catch::Contains("added or replaced later"));
  }
  SECTION("a non-finite loss marks the gradient for the driver's policy") {
    auto f = objective(
        make_cnn(),
        [](cnn& m, const example& b) {
          return m->forward(b.data).sum() * std::numeric_limits<float>::infinity();
        },
        [](loco::random::stream& r) { return rows_of(draw_rows(r, 2)); }, rows_of({0, 1}));
    std::vector<float> g(f.dimension());
    loco::random::stream rng(1, 0);
    const auto x0 = f.parameters();
    (void)f.gradient(x0, g, rng);
    REQUIRE(std::isnan(g[0]));
  }
}
