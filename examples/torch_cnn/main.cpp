// A LibTorch CNN trained on the real Fashion-MNIST by every loco driver:
// the model is an ordinary torch::nn::Module and loco sees it through
// libtorch::module_objective (docs/torch.md). Every method takes the same
// number of gradient steps per worker; what differs is how often and how
// much the workers communicate.
//
//   torch_cnn                                   4 threads (comm::in_process)
//   torch_cnn --methods minibatch,diloco --steps 1000
//   torch_cnn --methods diloco,streaming --local-steps 64 --fragments 4 --overlap 4 --fp4
//   torch_cnn --methods minibatch,powersgd,top_k --rank 2 --fraction 0.017
//   loco-launch -n 4 -- torch_cnn --comm tcp
//   mpirun -np 4 torch_cnn --comm mpi
//
// The network is the PyTorch MNIST example's shape (conv 3x3, conv 3x3,
// max-pool 2, fc, fc; no dropout) with widths set by --channels and
// --hidden; the defaults (8, 16, 64: 150k parameters) keep a step near 10 ms
// on one core, --channels 32,64 --hidden 128 is the example's 1.2M.
//
// Writes <out>/trace.csv (run, round, step, time_s, bytes, loss, accuracy:
// one row per evaluation; time_s is training wall time without the
// evaluations, bytes rank 0's sent and received) and <out>/summary.csv;
// tools/plot.py draws them.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <loco/aliases.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/compress/error_feedback.hpp>
#include <loco/compress/fp4.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/powersgd.hpp>
#include <loco/compress/random_k.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/libtorch/objective.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/progress_bar.hpp>
#include <loco/observe/table.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#ifdef LOCO_EXAMPLE_WITH_TCP
#include <loco/comm/tcp.hpp>
#endif
#ifdef LOCO_EXAMPLE_WITH_MPI
#include <loco/comm/mpi.hpp>
#endif

namespace {

using clock_type = std::chrono::steady_clock;
using example = torch::data::Example<>;
const std::vector<std::string> all_methods{"minibatch", "local",     "loscar",   "cd_adam", "async",
                                           "diloco",    "streaming", "powersgd", "top_k"};

struct settings {
  std::vector<std::string> methods{"minibatch", "local", "loscar", "diloco"};
  std::string comm = "in_process";
  int workers = 4;
  std::size_t steps = 600;  // gradient steps per worker, every method
  std::size_t local_steps = 8;
  double fraction = 0.1;  // K/d for LOSCAR, k/d for CD-Adam's top_k
  std::size_t overlap = 2;
  std::size_t batch = 32;
  double lr = 0.05;
  double adam_lr = 0.001;  // CD-Adam, and DiLoCo's inner AdamW
  double outer_lr = 0.7;   // DiLoCo's outer Nesterov
  double outer_momentum = 0.9;
  // Streaming DiLoCo: P fragments (every fragment syncs every local_steps
  // steps; `overlap` steps in flight), mixing alpha, 4-bit outer gradients.
  std::size_t fragments = 2;
  std::string split = "shards";
  double mixing = 0.0;
  bool fp4 = false;
  std::size_t rank = 1;          // PowerSGD's, every step as torch's DDP hook
  std::uint64_t start_iter = 0;  // PowerSGD's dense rounds first (the hook's start_powerSGD_iter)
  std::vector<std::int64_t> channels{8, 16};
  std::int64_t hidden = 64;
  std::size_t evaluations = 10;  // per method
  std::size_t test_rows = 10000;
  // A slow worker: this rank (-1: the last) sleeps this long in every step.
  int straggler_rank = -1;
  double straggler_ms = 0.0;
  std::string out = "results/torch_cnn";
  std::string data;
  std::uint64_t seed = 1;
};

// conv(1, c1, 3) - relu - conv(c1, c2, 3) - relu - max-pool 2 - fc(c2 * 144,
// hidden) - relu - fc(hidden, 10): 28x28 -> 26x26 -> 24x24 -> 12x12.
struct cnnImpl : torch::nn::Module {
  cnnImpl(std::int64_t c1, std::int64_t c2, std::int64_t hidden)
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, c1, 3)))),
        conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(c1, c2, 3)))),
        fc1(register_module("fc1", torch::nn::Linear(c2 * 12 * 12, hidden))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, 10))) {}
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(conv1->forward(x));
    x = torch::max_pool2d(torch::relu(conv2->forward(x)), 2);
    return fc2->forward(torch::relu(fc1->forward(x.flatten(1))));
  }
  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(cnn);

using objective = loco::libtorch::module_objective<cnn, example>;

cnn make_net(const settings& s) {
  // Every rank starts from the same weights; LibTorch's generator is global,
  // so threads (comm::in_process) take turns.
  static std::mutex seeding;
  const std::lock_guard lock(seeding);
  torch::manual_seed(s.seed);
  return cnn(s.channels[0], s.channels[1], s.hidden);
}

torch::Tensor cross_entropy(cnn& net, const example& b) {
  return torch::nn::functional::cross_entropy(net->forward(b.data), b.target);
}

// Fashion-MNIST as tensors: images N x 1 x 28 x 28 in [0, 1], labels int64.
struct images {
  torch::Tensor x, y;
  static images from(const loco::data::dataset<float>& d) {
    const auto n = static_cast<std::int64_t>(d.rows());
    images out{torch::empty({n, 1, 28, 28}), torch::empty({n}, torch::kLong)};
    std::copy_n(d.features.data(), d.features.size(), out.x.data_ptr<float>());
    std::copy(d.labels.begin(), d.labels.end(), out.y.data_ptr<std::int64_t>());
    return out;
  }
  images rows(std::span<const std::size_t> r) const {
    std::vector<std::int64_t> idx(r.begin(), r.end());
    const auto at = torch::tensor(idx, torch::kLong);
    return {x.index_select(0, at), y.index_select(0, at)};
  }
};

// Draws `batch` of this worker's images uniformly with replacement, after
// `delay` (a slow worker's extra time per step).
objective::batch_source sampler(images shard, std::size_t batch,
                                std::chrono::microseconds delay = {}) {
  return [shard = std::move(shard), batch, delay](loco::random::stream& rng) {
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    const auto n = static_cast<std::uint64_t>(shard.x.size(0));
    auto idx = torch::empty({static_cast<std::int64_t>(batch)}, torch::kLong);
    auto* p = idx.data_ptr<std::int64_t>();
    for (std::size_t k = 0; k < batch; ++k) p[k] = static_cast<std::int64_t>(rng.below(n));
    return example{shard.x.index_select(0, idx), shard.y.index_select(0, idx)};
  };
}

struct shared_data {
  images train, test;
  loco::data::partition shards;
};

// Test accuracy and loss of a flat model, in chunks, without autograd.
struct tester {
  tester(const settings& s, const images& test)
      : net(make_net(s)),
        f(net, cross_entropy, sampler(test, 1), example{test.x, test.y}),
        data(test) {}
  std::pair<double, double> operator()(std::span<const float> x) {
    f.set_parameters(x);
    torch::NoGradGuard no_grad;
    double correct = 0.0, loss = 0.0;
    const auto n = data.x.size(0);
    for (std::int64_t i = 0; i < n; i += 1000) {
      const auto len = std::min<std::int64_t>(1000, n - i);
      const auto out = f.module()->forward(data.x.narrow(0, i, len));
      const auto y = data.y.narrow(0, i, len);
      correct += out.argmax(1).eq(y).sum().item<double>();
      loss += torch::nn::functional::cross_entropy(
                  out, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                  .item<double>();
    }
    return {correct / static_cast<double>(n), loss / static_cast<double>(n)};
  }
  cnn net;
  objective f;
  images data;
};

struct outcome {
  std::string name;
  double accuracy = 0, loss = 0;
  double seconds = 0;  // training wall time, evaluations excluded
  std::uint64_t rounds = 0;
  std::uint64_t bytes = 0;  // every rank's bytes sent
};

// Evaluates the model every `every` rounds on rank 0, keeping the
// evaluation time out of the training clock. Where a round leaves every
// replica equal (full averaging, CD-Adam, the async server) that is rank 0's
// model; otherwise (LOSCAR) the average, which in local_sgd every rank
// computes together and which costs an allreduce of the model.
struct evaluator {
  std::string name;
  std::uint64_t every, steps_per_round;
  bool replicas_agree;
  tester* test;  // rank 0's; null elsewhere
  loco::observe::csv_writer* trace;
  clock_type::time_point start = clock_type::now();
  double evaluating = 0.0;
  std::pair<double, double> last{0.0, 0.0};

  double seconds() const {
    return std::chrono::duration<double>(clock_type::now() - start).count() - evaluating;
  }
  template <class Info>
  void on_round_end(const Info& info) {
    if (info.round % every != 0 && info.round != info.round_count) return;
    const auto t0 = clock_type::now();
    const double t = seconds();
    const auto model = replicas_agree ? info.model : info.average_model();
    if (test != nullptr) {
      last = (*test)(model);
      info.ledger->record_evaluation(last.first, last.second);
      const auto& spent = info.ledger->totals();
      if (trace != nullptr) {
        trace->row(name, info.round, info.round * steps_per_round, t,
                   spent.bytes_sent + spent.bytes_received, last.second, last.first);
      }
    }
    evaluating += std::chrono::duration<double>(clock_type::now() - t0).count();
  }
};

loco::algorithm::fragments::split split_of(const std::string& s) {
  using split = loco::algorithm::fragments::split;
  if (s == "shards") return split::shards;
  if (s == "strided") return split::strided;
  if (s == "balanced") return split::balanced;
  throw loco::config_error("--split '" + s + "' is not shards, strided or balanced");
}

template <class Comm>
outcome train_one(Comm& comm, const std::string& name, const settings& s, const shared_data& d,
                  const std::vector<float>& x0, tester* test, loco::observe::csv_writer* trace) {
  using namespace loco;
  const int me = comm.rank(), n = comm.size();
  auto net = make_net(s);
  const bool slow = me == (s.straggler_rank < 0 ? n + s.straggler_rank : s.straggler_rank);
  const std::chrono::microseconds delay(slow ? static_cast<long>(s.straggler_ms * 1000.0) : 0);
  objective f(net, cross_entropy,
              sampler(d.train.rows(d.shards[static_cast<std::size_t>(me)]), s.batch, delay),
              example{d.test.x.narrow(0, 0, std::min<std::int64_t>(1000, d.test.x.size(0))),
                      d.test.y.narrow(0, 0, std::min<std::int64_t>(1000, d.test.y.size(0)))});
  const std::span<const float> start(x0);
  const bool local = name != "minibatch" && name != "cd_adam" && name != "async" &&
                     name != "powersgd" && name != "top_k";
  // A streaming round syncs one of P fragments: H/P steps, tau of them in flight.
  const std::size_t h =
      !local ? 1 : (name == "streaming" ? s.local_steps / s.fragments : s.local_steps);
  // async_sgd: rank 0 serves, the others compute `steps` gradients each.
  const std::uint64_t rounds = name == "async" ? s.steps * static_cast<std::size_t>(n - 1)
                                               : std::max<std::size_t>(1, s.steps / h);
  const bool replicas_agree = name != "loscar" && name != "streaming";
  // PowerSGD's runs are named by rank, so that several ranks can share a trace.
  const std::string run = name == "powersgd" ? "powersgd_r" + std::to_string(s.rank) : name;
  evaluator eval{run,  std::max<std::uint64_t>(1, rounds / s.evaluations), h, replicas_agree, test,
                 trace};
  observe::progress_bar bar({.every = eval.every, .label = name});
  outcome o{.name = run};
  const auto finish = [&](auto&& result, std::uint64_t done) {
    o.rounds = done;
    o.seconds = eval.seconds();
    for (const auto& r : result.ledger.all_ranks()) o.bytes += r.bytes_sent;
    std::tie(o.accuracy, o.loss) = eval.last;
  };
  const bool overlaps = name == "loscar" || name == "streaming";
  algorithm::local_sgd_options opt{
      .schedule = algorithm::schedule::rounds(rounds, h - (name == "streaming" ? s.overlap : 0)),
      .overlap_steps = {overlaps ? s.overlap : 0},
      .seed = s.seed};
  const stepsize::constant sgd_lr(s.lr);
  if (name == "minibatch" || name == "local") {
    minibatch_sgd<Comm, stepsize::constant> driver({}, {}, sgd_lr, opt);
    const auto r = driver.run(comm, f, start, eval, bar);
    finish(r, r.stats.rounds);
  } else if (name == "loscar") {
    loscar_sgd<Comm> driver(compress::random_k_unscaled(s.fraction, s.seed), {}, sgd_lr, opt);
    const auto r = driver.run(comm, f, start, eval, bar);
    finish(r, r.stats.rounds);
  } else if (name == "diloco") {
    diloco<Comm> driver({}, merge::outer_nesterov(s.outer_lr, s.outer_momentum),
                        stepsize::constant(s.adam_lr), opt, update::adamw());
    const auto r = driver.run(comm, f, start, eval, bar);
    finish(r, r.stats.rounds);
  } else if (name == "streaming") {
    opt.fragments = {.count = s.fragments, .by = split_of(s.split)};
    opt.mixing = s.mixing;
    const merge::outer_nesterov outer(s.outer_lr, s.outer_momentum);
    if (s.fp4) {
      streaming_diloco<Comm, compress::fp4> driver(
          compress::fp4(), outer, stepsize::constant(s.adam_lr), opt, update::adamw());
      const auto r = driver.run(comm, f, start, eval, bar);
      finish(r, r.stats.rounds);
    } else {
      streaming_diloco<Comm> driver({}, outer, stepsize::constant(s.adam_lr), opt, update::adamw());
      const auto r = driver.run(comm, f, start, eval, bar);
      finish(r, r.stats.rounds);
    }
  } else if (name == "powersgd") {
    local_sgd<compress::powersgd, Comm, merge::average, stepsize::constant> driver(
        compress::powersgd(f.layout(),
                           {.rank = s.rank, .start_iteration = s.start_iter, .seed = s.seed}),
        {}, sgd_lr, opt);
    const auto r = driver.run(comm, f, start, eval, bar);
    finish(r, r.stats.rounds);
  } else if (name == "top_k") {
    using ef_top_k = compress::error_feedback<compress::top_k>;
    local_sgd<ef_top_k, Comm, merge::average, stepsize::constant> driver(
        ef_top_k(compress::top_k(s.fraction)), {}, sgd_lr, opt);
    const auto r = driver.run(comm, f, start, eval, bar);
    finish(r, r.stats.rounds);
  } else if (name == "cd_adam") {
    cd_adam<Comm> driver(compress::top_k(s.fraction), stepsize::constant(s.adam_lr),
                         {.iterations = rounds, .seed = s.seed});
    const auto r = driver.run(comm, f, start, eval, bar);
    finish(r, r.stats.iterations);
  } else {
    asgd<Comm> driver({}, sgd_lr, {.updates = rounds, .seed = s.seed});
    const auto r = driver.run(comm, f, start, eval, bar);
    finish(r, r.stats.updates);
  }
  return o;
}

template <class Comm>
std::vector<outcome> train_all(Comm& comm, const settings& s, const shared_data& d,
                               loco::observe::csv_writer* trace) {
  std::optional<tester> test;
  if (comm.rank() == 0) test.emplace(s, d.test);
  const auto x0 =
      objective(make_net(s), cross_entropy, sampler(d.test, 1), example{d.test.x, d.test.y})
          .parameters();
  std::vector<outcome> outcomes;
  for (const auto& name : s.methods) {
    outcomes.push_back(train_one(comm, name, s, d, x0, test ? &*test : nullptr, trace));
  }
  return outcomes;
}

shared_data load(const settings& s, int workers) {
  const auto fm = loco::data::fashion_mnist<float>::load(s.data);
  shared_data d{images::from(fm.train), images::from(fm.test), {}};
  if (s.test_rows < static_cast<std::size_t>(d.test.x.size(0))) {
    const auto n = static_cast<std::int64_t>(s.test_rows);
    d.test = {d.test.x.narrow(0, 0, n), d.test.y.narrow(0, 0, n)};
  }
  d.shards = loco::data::partition_iid(fm.train.rows(), static_cast<std::size_t>(workers), s.seed);
  return d;
}

void print_summary(const std::vector<outcome>& outcomes, const settings& s, int workers,
                   std::size_t parameters) {
  std::printf(
      "\nFashion-MNIST CNN (%zu parameters), %d workers, %zu steps of batch %zu per "
      "worker (%s)\n",
      parameters, workers, s.steps, s.batch, s.comm.c_str());
  loco::observe::table t{"method", "test acc %", "test loss", "rounds", "MB sent", "train s"};
  for (const auto& o : outcomes) {
    t.add_row(o.name, 100.0 * o.accuracy, o.loss, o.rounds, static_cast<double>(o.bytes) / 1e6,
              o.seconds);
  }
  t.print(std::cout);
}

void validate(const settings& s) {
  if (s.methods.empty()) throw loco::config_error("--methods: give at least one");
  for (const auto& m : s.methods) {
    if (std::find(all_methods.begin(), all_methods.end(), m) == all_methods.end()) {
      throw loco::config_error("--methods: unknown method '" + m +
                               "' (minibatch, local, loscar, cd_adam, async, diloco, streaming, "
                               "powersgd, top_k)");
    }
  }
  if (std::find(s.methods.begin(), s.methods.end(), "streaming") != s.methods.end()) {
    if (s.fragments == 0 || s.local_steps % s.fragments != 0 ||
        s.local_steps / s.fragments <= s.overlap) {
      throw loco::config_error("streaming: --local-steps " + std::to_string(s.local_steps) +
                               " must split into --fragments " + std::to_string(s.fragments) +
                               " rounds longer than --overlap " + std::to_string(s.overlap));
    }
    (void)split_of(s.split);
  }
  if (s.rank == 0) throw loco::config_error("--rank 0 must be >= 1");
  if (s.steps == 0 || s.local_steps == 0 || s.batch == 0 || s.evaluations == 0 ||
      s.test_rows == 0) {
    throw loco::config_error(
        "--steps, --local-steps, --batch, --evaluations and --test-rows must be >= 1");
  }
  if (s.channels.size() != 2 || s.channels[0] < 1 || s.channels[1] < 1 || s.hidden < 1) {
    throw loco::config_error("--channels takes two widths >= 1 and --hidden one >= 1");
  }
  if (!(s.straggler_ms >= 0.0 && s.straggler_ms <= 60000.0)) {
    throw loco::config_error("--straggler-ms " + std::to_string(s.straggler_ms) +
                             " must be in [0, 60000]");
  }
  if (!(s.fraction > 0.0 && s.fraction <= 1.0)) {
    throw loco::config_error("--fraction " + std::to_string(s.fraction) + " must be in (0, 1]");
  }
}

template <class Comm>
int run_rank(Comm& comm, const settings& s) {
  const auto d = load(s, comm.size());
  std::optional<loco::observe::csv_writer> trace;
  if (comm.rank() == 0) {
    trace.emplace(
        std::filesystem::path(s.out) / "trace.csv",
        std::vector<std::string>{"run", "round", "step", "time_s", "bytes", "loss", "accuracy"});
  }
  const auto outcomes = train_all(comm, s, d, trace ? &*trace : nullptr);
  if (comm.rank() != 0) return 0;
  const auto parameters =
      objective(make_net(s), cross_entropy, sampler(d.test, 1), example{d.test.x, d.test.y})
          .dimension();
  print_summary(outcomes, s, comm.size(), parameters);
  loco::observe::csv_writer summary(std::filesystem::path(s.out) / "summary.csv",
                                    {"method", "accuracy", "loss", "rounds", "bytes", "seconds"});
  for (const auto& o : outcomes)
    summary.row(o.name, o.accuracy, o.loss, o.rounds, o.bytes, o.seconds);
  trace->flush();
  std::printf("\nwrote %s and %s\nplots: tools/plot.py %s -o %s\n", trace->path().c_str(),
              summary.path().c_str(), trace->path().c_str(), s.out.c_str());
  return 0;
}

int run(const settings& s) {
  validate(s);
  // One thread per worker: the workers are the parallelism.
  torch::set_num_threads(1);
  if (s.comm == "in_process") {
    if (s.workers < 1) throw loco::config_error("--workers " + std::to_string(s.workers));
    int status = 0;
    loco::comm::run_in_process(s.workers, [&](loco::comm::in_process& comm) {
      const int rc = run_rank(comm, s);
      if (comm.rank() == 0) status = rc;
    });
    return status;
  }
  if (s.comm == "tcp") {
#ifdef LOCO_EXAMPLE_WITH_TCP
    loco::comm::tcp comm(loco::comm::tcp_options::from_env());
    return run_rank(comm, s);
#else
    throw loco::config_error("--comm tcp: this build has no loco::tcp (Boost.Asio, OpenSSL)");
#endif
  }
  if (s.comm == "mpi") {
#ifdef LOCO_EXAMPLE_WITH_MPI
    loco::comm::mpi_environment env;
    loco::comm::mpi comm;
    return run_rank(comm, s);
#else
    throw loco::config_error("--comm mpi: this build has no loco::mpi");
#endif
  }
  throw loco::config_error("--comm: unknown communicator '" + s.comm + "' (in_process, tcp, mpi)");
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  CLI::App app{"A LibTorch CNN on Fashion-MNIST, trained by loco's drivers"};
  app.add_option("--methods", s.methods,
                 "minibatch, local, loscar, cd_adam, async, diloco, streaming, powersgd, top_k")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--comm", s.comm, "in_process, tcp (under loco-launch), mpi (under mpirun)")
      ->capture_default_str();
  app.add_option("--workers", s.workers, "threads with --comm in_process")->capture_default_str();
  app.add_option("--steps", s.steps, "gradient steps per worker")->capture_default_str();
  app.add_option("--local-steps", s.local_steps, "H: steps between rounds (local, loscar, diloco)")
      ->capture_default_str();
  app.add_option("--fraction", s.fraction,
                 "K/d for loscar's random_k, k/d for cd_adam's and top_k's (error feedback) top_k")
      ->capture_default_str();
  app.add_option("--overlap", s.overlap,
                 "loscar's and streaming's steps while the average is in flight")
      ->capture_default_str();
  app.add_option("--batch", s.batch, "mini-batch size per worker")->capture_default_str();
  app.add_option("--lr", s.lr, "SGD step size (minibatch, local, loscar, async)")
      ->capture_default_str();
  app.add_option("--adam-lr", s.adam_lr, "CD-Adam's step size and DiLoCo's inner AdamW's")
      ->capture_default_str();
  app.add_option("--outer-lr", s.outer_lr, "DiLoCo's outer Nesterov step")->capture_default_str();
  app.add_option("--outer-momentum", s.outer_momentum, "DiLoCo's outer momentum")
      ->capture_default_str();
  app.add_option("--fragments", s.fragments, "streaming: fragments P")->capture_default_str();
  app.add_option("--split", s.split, "streaming: shards, strided or balanced fragments")
      ->capture_default_str();
  app.add_option("--mixing", s.mixing, "streaming: alpha, the weight of a worker's own values")
      ->capture_default_str();
  app.add_flag("--fp4", s.fp4, "streaming: 4-bit outer gradients");
  app.add_option("--rank", s.rank, "powersgd: the approximation's rank")->capture_default_str();
  app.add_option("--start-iter", s.start_iter, "powersgd: rounds averaged dense first")
      ->capture_default_str();
  app.add_option("--channels", s.channels, "the two conv layers' widths")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--hidden", s.hidden, "the hidden fully connected layer's width")
      ->capture_default_str();
  app.add_option("--evaluations", s.evaluations, "test evaluations per method")
      ->capture_default_str();
  app.add_option("--test-rows", s.test_rows, "test images evaluated (at most 10000)")
      ->capture_default_str();
  app.add_option("--straggler-rank", s.straggler_rank, "the slow rank (-1: the last)")
      ->capture_default_str();
  app.add_option("--straggler-ms", s.straggler_ms, "the slow rank's extra sleep per step")
      ->capture_default_str();
  app.add_option("--out", s.out, "folder for trace.csv and summary.csv")->capture_default_str();
  app.add_option("--data", s.data, "Fashion-MNIST folder (default: the Debian package's)");
  app.add_option("--seed", s.seed, "seed of weights, shards and sampling")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(s);
  } catch (const c10::Error& e) {  // LibTorch's: without its C++ backtrace
    std::fprintf(stderr, "torch_cnn: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_cnn: %s\n", e.what());
    return 1;
  }
}
