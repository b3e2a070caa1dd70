#pragma once
// libtorch::module_objective: any LibTorch module as a loco Objective, so
// every driver trains it (link loco::torch; docs/torch.md). The namespace is
// loco::libtorch, not loco::torch, so that `using namespace loco;` leaves
// LibTorch's own `torch::` unambiguous.
//
//   auto net = torch::nn::Sequential(torch::nn::Linear(784, 128), torch::nn::ReLU(),
//                                    torch::nn::Linear(128, 10));
//   loco::libtorch::module_objective f(
//       net,
//       [](auto& m, const torch::data::Example<>& b) {
//         return torch::nn::functional::cross_entropy(m->forward(b.data), b.target);
//       },
//       loco::libtorch::sample_batches(train, 64),  // draws from loco's random stream
//       evaluation_batch);
//   auto x0 = f.parameters();                       // the module's initial values
//   driver.run(comm, f, std::span<const float>(x0));
//
// The parameters, in the order of named_parameters() (f.layout() names
// them), are laid out as one flat float vector. A gradient call copies no
// model-sized buffer: it points every parameter at its slice of x and its
// .grad at its slice of g, so forward() reads the driver's model and
// backward() accumulates straight into the driver's gradient; afterwards the
// parameters point back at the adapter's own buffer (set_parameters() fills
// it, e.g. with a trained model) and no view of x or g outlives the call.
#include <torch/torch.h>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/layout.hpp>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace loco::libtorch {

// Module: a LibTorch module handle (torch::nn::ModuleHolder such as
// torch::nn::Sequential or a TORCH_MODULE, or a std::shared_ptr to a module).
// Batch: whatever the batch source draws and the loss reads.
template <class Module, class Batch>
class module_objective {
 public:
  using value_type = float;
  // (module, batch) -> a scalar loss tensor that autograd can differentiate.
  using loss_function = std::function<::torch::Tensor(Module&, const Batch&)>;
  // Draws this worker's next training batch from loco's random stream.
  using batch_source = std::function<Batch(random::stream&)>;

  module_objective(Module module, loss_function loss, batch_source draw, Batch evaluation)
      : module_(std::move(module)),
        loss_(std::move(loss)),
        draw_(std::move(draw)),
        evaluation_(std::move(evaluation)) {
    if (!loss_) throw config_error("libtorch::module_objective: no loss function");
    if (!draw_) throw config_error("libtorch::module_objective: no batch source");
    bind_parameters();
  }
  // The parameters are views into this object's buffer: not copyable.
  module_objective(const module_objective&) = delete;
  module_objective& operator=(const module_objective&) = delete;

  std::size_t dimension() const noexcept { return layout_.dimension(); }
  const tensor::layout& layout() const noexcept { return layout_; }
  Module& module() noexcept { return module_; }

  // The module's parameters now, flat: the initial point of a run.
  std::vector<float> parameters() const {
    const float* p = flat_.template data_ptr<float>();
    return std::vector<float>(p, p + dimension());
  }

  // Copies x into the module's own parameters (to use or save the module
  // after training: set_parameters(result.average)).
  void set_parameters(std::span<const float> x) {
    check(x, "x");
    std::memcpy(flat_.template data_ptr<float>(), x.data(), x.size() * sizeof(float));
  }

  // The loss at x on the evaluation batch (no gradient is recorded).
  double loss(std::span<const float> x) const {
    check(x, "x");
    const bound on_x(*this, x.data());
    ::torch::NoGradGuard no_grad;
    return scalar(loss_(module_, evaluation_)).template item<double>();
  }

  // A stochastic gradient at x into g from a batch drawn from rng; returns
  // that batch's loss. A non-finite loss makes g[0] NaN, so the driver's
  // non-finite policy decides what happens to the step.
  double gradient(std::span<const float> x, std::span<float> g, random::stream& rng) {
    check(x, "x");
    if (g.size() != dimension()) size_error("g", g.size());
    const bound on_x(*this, x.data());
    std::fill(g.begin(), g.end(), 0.0f);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& t = layout_[i];
      params_[i].mutable_grad() =
          ::torch::from_blob(g.data() + t.offset, shape_[i], ::torch::kFloat);
    }
    const Batch batch = draw_(rng);
    const auto value = scalar(loss_(module_, batch));
    value.backward();
    const double loss = value.template item<double>();
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& t = layout_[i];
      auto& grad = params_[i].mutable_grad();
      // Autograd accumulates in place into a defined .grad; should it have
      // replaced one (a loss that reset it), copy its values instead.
      if (grad.defined() && grad.data_ptr() != static_cast<void*>(g.data() + t.offset)) {
        auto src = grad.contiguous();
        std::memcpy(g.data() + t.offset, src.template data_ptr<float>(), t.size * sizeof(float));
      }
      grad.reset();  // no views of g outlive this call
    }
    if (!std::isfinite(loss) && !g.empty()) g[0] = std::numeric_limits<float>::quiet_NaN();
    return loss;
  }

 private:
  void bind_parameters() {
    const auto named = module_->named_parameters(/*recurse=*/true);
    if (named.is_empty()) {
      throw config_error("libtorch::module_objective: the module has no parameters");
    }
    for (const auto& item : named) {
      const auto& p = item.value();
      if (p.scalar_type() != ::torch::kFloat) {
        throw config_error("libtorch::module_objective: parameter '" + item.key() + "' is " +
                           std::string(c10::toString(p.scalar_type())) +
                           "; loco trains float (fp32) parameters");
      }
      if (!p.device().is_cpu()) {
        throw config_error("libtorch::module_objective: parameter '" + item.key() + "' is on " +
                           p.device().str() + "; loco runs on the CPU");
      }
      std::vector<std::size_t> shape(p.sizes().begin(), p.sizes().end());
      layout_.add(item.key(), std::move(shape));
    }
    flat_ = ::torch::empty({static_cast<std::int64_t>(layout_.dimension())}, ::torch::kFloat);
    std::size_t i = 0;
    for (const auto& item : named) {
      auto p = item.value();
      const auto& t = layout_[i++];
      auto view =
          flat_.narrow(0, static_cast<std::int64_t>(t.offset), static_cast<std::int64_t>(t.size))
              .view(p.sizes());
      view.copy_(p.detach());
      p.set_data(view);
      params_.push_back(p);
      shape_.push_back(p.sizes().vec());
    }
  }

  // Checks x's size and that the module still has the parameters it had
  // when wrapped.
  void check(std::span<const float> x, const char* what) const {
    if (x.size() != dimension()) size_error(what, x.size());
    const auto now = module_->parameters(/*recurse=*/true).size();
    if (now != params_.size()) {
      throw config_error("libtorch::module_objective: the module has " + std::to_string(now) +
                         " parameters, it had " + std::to_string(params_.size()) +
                         " when wrapped; parameters added or replaced later are not trained");
    }
  }

  // Points every parameter at its slice of `data`, for one call.
  void point_at(const float* data) const {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      // forward() only reads the parameters, so x's memory stays unchanged.
      auto* values = const_cast<float*>(data + layout_[i].offset);
      params_[i].set_data(::torch::from_blob(values, shape_[i], ::torch::kFloat));
    }
  }
  // While alive, the parameters are the caller's x; then the adapter's own.
  struct bound {
    bound(const module_objective& o, const float* x) : self(o) { self.point_at(x); }
    ~bound() { self.point_at(self.flat_.template data_ptr<float>()); }
    bound(const bound&) = delete;
    bound& operator=(const bound&) = delete;
    const module_objective& self;
  };

  static const ::torch::Tensor& scalar(const ::torch::Tensor& t) {
    if (!t.defined() || t.numel() != 1) {
      throw config_error("libtorch::module_objective: the loss must be a scalar tensor; it has " +
                         std::to_string(t.defined() ? t.numel() : 0) + " elements");
    }
    return t;
  }

  [[noreturn]] void size_error(const char* what, std::size_t size) const {
    throw config_error(std::string("libtorch::module_objective: ") + what + " has " +
                       std::to_string(size) + " values; the module has " +
                       std::to_string(dimension()) + " parameters");
  }

  mutable Module module_;
  loss_function loss_;
  batch_source draw_;
  Batch evaluation_;
  tensor::layout layout_;
  ::torch::Tensor flat_;                         // every parameter's values, in layout order
  mutable std::vector<::torch::Tensor> params_;  // the module's parameters
  std::vector<std::vector<std::int64_t>> shape_;
};

// A batch source over a LibTorch dataset (anything with size() and
// get(index) -> torch::data::Example<>): batch_size examples drawn uniformly
// with replacement from loco's random stream, stacked.
template <class Dataset>
std::function<::torch::data::Example<>(random::stream&)> sample_batches(Dataset dataset,
                                                                        std::size_t batch_size) {
  const auto n = dataset.size();
  if (!n || *n == 0) throw config_error("libtorch::sample_batches: the dataset is empty");
  if (batch_size == 0) throw config_error("libtorch::sample_batches: batch_size 0 must be >= 1");
  return [dataset = std::move(dataset), batch_size,
          rows = *n](random::stream& rng) mutable -> ::torch::data::Example<> {
    std::vector<::torch::Tensor> data, target;
    data.reserve(batch_size);
    target.reserve(batch_size);
    for (std::size_t k = 0; k < batch_size; ++k) {
      auto e = dataset.get(static_cast<std::size_t>(rng.below(rows)));
      data.push_back(std::move(e.data));
      target.push_back(std::move(e.target));
    }
    return {::torch::stack(data), ::torch::stack(target)};
  };
}

}  // namespace loco::libtorch
