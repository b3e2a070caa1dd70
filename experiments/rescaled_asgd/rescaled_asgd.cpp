// Rescaled asynchronous SGD (ALGORITHMS.md sections 5 and 7), in virtual
// time on comm::simulated with fixed per-worker compute times tau_i.
//
// Part 1, heterogeneous quadratics f_i(x) = 0.5 ||x - b_i||^2 (+ gradient
// noise): vanilla ASGD's time-averaged iterate settles near the frequency-
// weighted optimum sum_i w_i b_i, w_i ~ 1 / tau_i; rescaled ASGD
// (gamma_i = gamma tau_i / tau_max) near the plain mean of the b_i. More
// generally the averaged iterate settles where sum_i m_i (x - b_i) = 0, m_i
// being the total step applied to worker i's gradients; the program records
// m_i and prints that target too, for every method.
//
// Part 2, Fashion-MNIST softmax regression, label-skewed Dirichlet split,
// half the workers fast and half slow: vanilla, delay-adaptive and rescaled
// ASGD against synchronous mini-batch SGD (minibatch_sgd, every worker one
// gradient per round, on the same simulator and compute model). Global
// training loss and test accuracy vs virtual time, and per-class test
// accuracy against the share of each class held by the fast workers.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <limits>
#include <loco/aliases.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/partition.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/timed.hpp>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "experiment.hpp"

namespace {

using loco::comm::simulated;

std::string fmt(double v, int precision = 4) {
  std::ostringstream o;
  o.precision(precision);
  o << v;
  return o.str();
}

double mean_of(const std::vector<double>& v) {
  return v.empty() ? std::numeric_limits<double>::quiet_NaN()
                   : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}
double sd_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

double sum_inverse(const std::vector<double>& tau) {
  double s = 0;
  for (double t : tau) s += 1.0 / t;
  return s;
}

// What a run's server (or rank 0 of a synchronous run) sees after every
// update: it keeps the time average of the model over the second half of the
// budget, the step mass applied per worker, and calls `sample` on a grid of
// virtual times for the curves.
template <class T>
struct tracker {
  double budget = 0;
  double sample_every = 0;  // 0: no curve
  std::function<void(double time, std::uint64_t step, std::uint64_t bytes, std::span<const T> x)>
      sample;
  std::vector<double> tail_sum;
  std::uint64_t tail_count = 0;
  std::vector<double> step_mass;  // per worker: sum of the steps applied to its gradients
  double next_sample = 0;

  void observe(double time, std::uint64_t step, std::uint64_t bytes, std::span<const T> x) {
    if (tail_sum.empty()) tail_sum.assign(x.size(), 0.0);
    if (time >= 0.5 * budget) {
      for (std::size_t j = 0; j < x.size(); ++j) tail_sum[j] += static_cast<double>(x[j]);
      ++tail_count;
    }
    if (sample && sample_every > 0 && time >= next_sample) {
      sample(time, step, bytes, x);
      next_sample += sample_every;
    }
  }
  std::vector<T> tail_average() const {
    std::vector<T> out(tail_sum.size());
    for (std::size_t j = 0; j < out.size(); ++j)
      out[j] =
          static_cast<T>(tail_sum[j] / static_cast<double>(std::max<std::uint64_t>(1, tail_count)));
    return out;
  }
};

template <class T>
struct async_watch {
  tracker<T>& track;
  void on_round_end(const loco::algorithm::update_info<T>& u) {
    if (track.step_mass.size() <= static_cast<std::size_t>(u.worker)) {
      track.step_mass.resize(static_cast<std::size_t>(u.worker) + 1, 0.0);
    }
    track.step_mass[static_cast<std::size_t>(u.worker)] += u.step;
    track.observe(u.time, u.update,
                  u.ledger->totals().bytes_sent + u.ledger->totals().bytes_received, u.model);
  }
};

// On every rank of a synchronous run (the driver agrees on stopping with a
// collective each round); only rank 0 records.
template <class T>
struct sync_watch {
  tracker<T>* track;  // null on ranks other than 0
  simulated& comm;
  double step;
  void on_round_end(const loco::algorithm::round_info<T>& r) {
    if (track == nullptr) return;
    if (track->step_mass.size() < static_cast<std::size_t>(r.size)) {
      track->step_mass.assign(static_cast<std::size_t>(r.size), 0.0);
    }
    // Each worker's gradient enters the average with weight 1/n.
    for (auto& m : track->step_mass) m += step / static_cast<double>(r.size);
    track->observe(comm.now(), r.round,
                   r.ledger->totals().bytes_sent * static_cast<std::uint64_t>(r.size), r.model);
  }
};

// Runs async_sgd with worker w's objective make(w) costing tau[w] per gradient.
template <class T, class Step, class Make>
loco::algorithm::async_sgd_stats run_async(const std::vector<double>& tau, Step step, double budget,
                                           std::uint64_t seed, Make&& make, std::span<const T> x0,
                                           tracker<T>& track) {
  loco::algorithm::async_sgd_options o;
  // Fixed compute times: the updates in the budget are known exactly.
  o.updates = static_cast<std::uint64_t>(std::floor(budget * sum_inverse(tau) + 1e-9));
  o.seed = seed;
  loco::async_sgd<loco::compress::identity, simulated, Step> driver({}, step, o);
  std::vector<double> per_rank{0.0};
  per_rank.insert(per_rank.end(), tau.begin(), tau.end());
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed(per_rank);
  loco::algorithm::async_sgd_stats stats;
  track.budget = budget;
  loco::comm::run_simulated(
      static_cast<int>(per_rank.size()),
      [&](simulated& comm) {
        loco::sim::timed f(make(std::max(comm.rank() - 1, 0)), comm.clock());
        if (comm.rank() == 0) {
          stats = driver.run(comm, f, x0, async_watch<T>{track}).stats;
        } else {
          (void)driver.run(comm, f, x0);
        }
      },
      opt);
  return stats;
}

// Synchronous mini-batch SGD: every worker one gradient per round, models
// averaged; a round lasts max_i tau_i.
template <class T, class Make>
void run_sync(const std::vector<double>& tau, double eta, double budget, std::uint64_t seed,
              Make&& make, std::span<const T> x0, tracker<T>& track) {
  const double slowest = *std::max_element(tau.begin(), tau.end());
  const auto rounds = static_cast<std::size_t>(std::floor(budget / slowest + 1e-9));
  loco::algorithm::local_sgd_options o;
  o.schedule = loco::algorithm::schedule::every_step(std::max<std::size_t>(1, rounds));
  o.seed = seed;
  loco::minibatch_sgd<simulated, loco::stepsize::constant> driver({}, {},
                                                                  loco::stepsize::constant(eta), o);
  loco::sim::options opt;
  opt.compute = loco::sim::compute_model::fixed(tau);
  track.budget = budget;
  loco::comm::run_simulated(
      static_cast<int>(tau.size()),
      [&](simulated& comm) {
        loco::sim::timed f(make(comm.rank()), comm.clock());
        (void)driver.run(comm, f, x0,
                         sync_watch<T>{comm.rank() == 0 ? &track : nullptr, comm, eta});
      },
      opt);
}

// ------------------------------------------------------------ part 1: quadratics

struct quadratic_settings {
  std::vector<double> tau{1, 1, 2, 2, 4, 4, 8, 8};
  std::size_t dim = 10;
  std::vector<double> noises{1.0, 0.0};  // E|xi|^2; noise-free runs need one seed
  double budget = 4000;                  // virtual seconds
  std::vector<double> gammas{0.04, 0.01, 0.0025};
  std::size_t seeds = 3;
};

using quad = loco::problems::quadratic<double>;

double distance(std::span<const double> a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t j = 0; j < b.size(); ++j) s += (a[j] - b[j]) * (a[j] - b[j]);
  return std::sqrt(s);
}

int part_quadratics(const experiment::common_flags& flags, const quadratic_settings& s) {
  const std::size_t n = s.tau.size(), d = s.dim;
  std::vector<std::vector<double>> b(n, std::vector<double>(d));
  loco::random::stream rng(flags.seed, 0x9b);
  for (auto& bi : b)
    for (auto& v : bi) v = rng.normal();
  // The two targets of ALGORITHMS.md section 5.
  std::vector<double> weighted(d, 0.0), plain(d, 0.0);
  const double inv_sum = sum_inverse(s.tau);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < d; ++j) {
      weighted[j] += (1.0 / s.tau[i]) / inv_sum * b[i][j];
      plain[j] += b[i][j] / static_cast<double>(n);
    }
  }
  const double gap = distance(weighted, plain);
  const auto balanced_excess = [&](std::span<const double> x) {
    // F(x) - F* for F = (1/n) sum f_i = 0.5 ||x - mean||^2 + const.
    const double dd = distance(x, plain);
    return 0.5 * dd * dd;
  };
  double noise = 0;
  const auto make = [&](int w) {
    auto ones = loco::tensor::vector<double>::from_shape({d});
    auto centre = loco::tensor::vector<double>::from_shape({d});
    for (std::size_t j = 0; j < d; ++j) {
      ones(j) = 1.0;
      centre(j) = b[static_cast<std::size_t>(w)][j];
    }
    return quad::diagonal(ones, centre, {.noise_variance = noise});
  };
  std::cout << "Part 1: " << n << " quadratics f_i = 0.5 |x - b_i|^2 in d = " << d
            << ", b_i ~ N(0, I), gradient noise E|xi|^2 in {";
  for (std::size_t i = 0; i < s.noises.size(); ++i) std::cout << (i ? ", " : "") << s.noises[i];
  std::cout << "}, tau_i = {";
  for (std::size_t i = 0; i < n; ++i) std::cout << (i ? ", " : "") << s.tau[i];
  std::cout << "}, budget " << s.budget << " virtual s, " << s.seeds
            << " seeds (1 without noise); time average over the second half.\n"
            << "|x_weighted - x_mean| = " << gap
            << " (x_weighted = sum_i w_i b_i, w_i ~ 1/tau_i; x_mean = mean of b_i)\n\n";

  loco::observe::csv_writer csv(
      flags.file("rescaled_asgd_quadratic.csv"),
      {"method", "noise", "gamma", "seed", "dist_weighted", "dist_mean", "dist_step_mass_target",
       "gap", "balanced_excess", "updates", "mean_delay"});
  auto columns = experiment::trace_columns();
  columns.insert(columns.end(), {"dist_weighted", "dist_mean"});
  loco::observe::csv_writer trace(flags.file("rescaled_asgd_quadratic_trace.csv"), columns);
  loco::observe::table table{"method",
                             "noise",
                             "gamma",
                             "|avg - x_w| / gap",
                             "|avg - x_mean| / gap",
                             "|avg - x_m| / gap",
                             "F(avg) - F*",
                             "sd of |avg - x_mean|"};
  const std::vector<double> x0(d, 0.0);
  bool rescaled_closer = true;

  for (const double noise_level : s.noises) {
    noise = noise_level;
    const std::size_t seeds = noise > 0 ? s.seeds : 1;
    for (double gamma : s.gammas) {
      struct row {
        std::string name;
        std::vector<double> dw, dm, dstep, excess;
      };
      std::vector<row> rows{{"vanilla ASGD", {}, {}, {}, {}},
                            {"delay-adaptive ASGD", {}, {}, {}, {}},
                            {"rescaled ASGD (given tau_i)", {}, {}, {}, {}},
                            {"rescaled ASGD (online tau_i)", {}, {}, {}, {}},
                            {"sync mini-batch SGD (eta = n gamma)", {}, {}, {}, {}}};
      for (std::size_t k = 0; k < seeds; ++k) {
        const std::uint64_t seed = flags.seed * 1000 + k;
        for (std::size_t m = 0; m < rows.size(); ++m) {
          tracker<double> track;
          const bool keep = k == 0 && gamma == s.gammas.front() && noise == s.noises.front();
          const std::string label = rows[m].name + " gamma=" + fmt(gamma);
          if (keep) {
            track.sample_every = s.budget / 200.0;
            track.sample = [&](double t, std::uint64_t step, std::uint64_t bytes,
                               std::span<const double> x) {
              trace.row(label, step, step, t, bytes, balanced_excess(x), std::string(),
                        distance(x, weighted), distance(x, plain));
            };
          }
          std::uint64_t updates = 0;
          double mean_delay = 0;
          const auto async = [&](auto step) {
            const auto st = run_async<double>(s.tau, step, s.budget, seed, make, x0, track);
            updates = st.updates;
            mean_delay = st.mean_delay;
          };
          switch (m) {
            case 0:
              async(loco::stepsize::constant(gamma));
              break;
            case 1:
              async(loco::stepsize::delay_adaptive(gamma));
              break;
            case 2:
              async(loco::stepsize::rescaled(gamma, s.tau));
              break;
            case 3:
              async(loco::stepsize::rescaled(gamma));
              break;
            default:
              run_sync<double>(s.tau, static_cast<double>(n) * gamma, s.budget, seed, make, x0,
                               track);
          }
          // The target of this run's own step masses m_i.
          std::vector<double> step_target(d, 0.0);
          const double mass = std::accumulate(track.step_mass.begin(), track.step_mass.end(), 0.0);
          for (std::size_t i = 0; i < track.step_mass.size(); ++i)
            for (std::size_t j = 0; j < d; ++j)
              step_target[j] += track.step_mass[i] / mass * b[i][j];
          const auto avg = track.tail_average();
          rows[m].dw.push_back(distance(avg, weighted));
          rows[m].dm.push_back(distance(avg, plain));
          rows[m].dstep.push_back(distance(avg, step_target));
          rows[m].excess.push_back(balanced_excess(avg));
          csv.row(rows[m].name, noise, gamma, seed, rows[m].dw.back(), rows[m].dm.back(),
                  rows[m].dstep.back(), gap, rows[m].excess.back(), updates, mean_delay);
        }
      }
      for (const auto& r : rows) {
        table.add_row(r.name, noise, gamma, mean_of(r.dw) / gap, mean_of(r.dm) / gap,
                      mean_of(r.dstep) / gap, mean_of(r.excess), sd_of(r.dm));
      }
      rescaled_closer = rescaled_closer && mean_of(rows[2].dm) < mean_of(rows[0].dm) &&
                        mean_of(rows[3].dm) < mean_of(rows[0].dm);
    }
  }
  table.print(std::cout);
  std::cout << "(avg: the time average of x over the second half; x_m: sum_i m_i b_i / sum_i "
               "m_i with m_i the step mass applied to worker i's gradients in the run)\n\n";
  return rescaled_closer ? 0 : 1;
}

// ------------------------------------------------------------ part 2: Fashion-MNIST

struct fmnist_settings {
  std::size_t workers = 10;
  std::size_t fast = 5;  // workers 0..fast-1 are fast
  double tau_fast = 1.0, tau_slow = 10.0;
  double alpha = 0.1;  // Dirichlet concentration of the label skew
  std::size_t batch = 64;
  double l2 = 1e-4;
  double budget = 4000;                              // virtual seconds
  std::vector<double> gammas{0.2, 0.1, 0.05, 0.02};  // async grid (gamma = the largest step)
  std::vector<double> sync_etas{0.5, 0.2, 0.1, 0.05};
  std::size_t seeds = 3;
  std::size_t trace_points = 40;
  std::size_t train_rows = 0;     // 0: all 60000
  std::size_t test_rows = 0;      // 0: all 10000
  std::size_t eval_rows = 10000;  // training rows for the loss curve
  std::size_t reference_steps = 20000;
};

using sm = loco::problems::softmax_regression<float>;
using dataset = loco::data::dataset<float>;

std::vector<double> class_accuracy(const dataset& test, std::span<const std::size_t> rows,
                                   std::span<const float> x) {
  const std::size_t k = test.classes, p = test.cols();
  std::vector<double> right(k, 0.0), total(k, 0.0);
  std::vector<double> z(k);
  for (std::size_t i : rows) {
    const auto a = test.row(i);
    for (std::size_t c = 0; c < k; ++c) {
      double s = static_cast<double>(x[k * p + c]);
      const float* w = x.data() + c * p;
      for (std::size_t j = 0; j < p; ++j) s += static_cast<double>(w[j] * a[j]);
      z[c] = s;
    }
    const auto best = static_cast<std::size_t>(std::max_element(z.begin(), z.end()) - z.begin());
    const auto y = static_cast<std::size_t>(test.labels[i]);
    total[y] += 1;
    if (best == y) right[y] += 1;
  }
  for (std::size_t c = 0; c < k; ++c) right[c] = total[c] > 0 ? right[c] / total[c] : 0.0;
  return right;
}

struct fmnist_outcome {
  double train_loss = 0, test_accuracy = 0, fast_accuracy = 0, slow_accuracy = 0;
  std::vector<double> per_class;
};

int part_fmnist(const experiment::common_flags& flags, const fmnist_settings& s) {
  auto fm = loco::data::fashion_mnist<float>::load();
  auto train = std::make_shared<const dataset>(std::move(fm.train));
  auto test = std::make_shared<const dataset>(std::move(fm.test));
  const std::size_t m = s.train_rows ? std::min(s.train_rows, train->rows()) : train->rows();
  const std::size_t classes = train->classes;
  std::vector<std::size_t> test_rows(s.test_rows ? std::min(s.test_rows, test->rows())
                                                 : test->rows());
  std::iota(test_rows.begin(), test_rows.end(), std::size_t{0});

  // Label-skewed split of the first m training rows.
  const auto parts =
      loco::data::partition_dirichlet(std::span<const std::int32_t>(train->labels.data(), m),
                                      classes, s.workers, s.alpha, flags.seed);
  // Which workers are fast: the subset of the given size whose classes
  // differ most from the slow workers' (largest sum over classes of
  // (share on fast workers - 1/2)^2), so that the fast workers hold
  // different classes than the slow ones.
  std::vector<std::vector<double>> held(s.workers, std::vector<double>(classes, 0.0));
  std::vector<double> class_count(classes, 0.0);
  for (std::size_t w = 0; w < s.workers; ++w) {
    for (std::size_t i : parts[w]) {
      const auto c = static_cast<std::size_t>(train->labels[i]);
      held[w][c] += 1;
      class_count[c] += 1;
    }
  }
  const auto shares_of = [&](std::uint32_t mask) {
    std::vector<double> share(classes, 0.0);
    for (std::size_t w = 0; w < s.workers; ++w) {
      if ((mask >> w) & 1U) {
        for (std::size_t c = 0; c < classes; ++c) share[c] += held[w][c];
      }
    }
    for (std::size_t c = 0; c < classes; ++c) share[c] /= std::max(1.0, class_count[c]);
    return share;
  };
  std::uint32_t fast_mask = (1U << s.fast) - 1U;  // workers 0..fast-1 when there is no search
  if (s.workers <= 20) {
    double best = -1.0;
    for (std::uint32_t mask = 0; mask < (1U << s.workers); ++mask) {
      if (static_cast<std::size_t>(std::popcount(mask)) != s.fast) continue;
      double spread = 0;
      for (double v : shares_of(mask)) spread += (v - 0.5) * (v - 0.5);
      if (spread > best) {
        best = spread;
        fast_mask = mask;
      }
    }
  }
  const std::vector<double> fast_share = shares_of(fast_mask);
  std::vector<double> tau(s.workers, s.tau_slow);
  std::string fast_list;
  for (std::size_t w = 0; w < s.workers; ++w) {
    if ((fast_mask >> w) & 1U) {
      tau[w] = s.tau_fast;
      fast_list += (fast_list.empty() ? "" : ", ") + std::to_string(w);
    }
  }
  // Each worker's per-gradient weight in vanilla ASGD is ~ 1/tau_w; the
  // frequency-weighted objective gives class c the weight below.
  std::vector<double> vanilla_weight(classes, 0.0);
  {
    double total = 0;
    for (std::size_t w = 0; w < s.workers; ++w) {
      for (std::size_t i : parts[w]) {
        const double wt = 1.0 / (tau[w] * static_cast<double>(parts[w].size()));
        vanilla_weight[static_cast<std::size_t>(train->labels[i])] += wt;
        total += wt;
      }
    }
    for (auto& v : vanilla_weight) v /= total;
  }

  // The balanced objective F = (1/m) sum over all m rows (the shards are
  // near-equal, so this is (1/n) sum f_i): the curve uses a fixed sample.
  std::vector<std::size_t> all_rows(m), eval_rows;
  std::iota(all_rows.begin(), all_rows.end(), std::size_t{0});
  {
    loco::random::stream pick(flags.seed, 0xe7a1);
    eval_rows = all_rows;
    for (std::size_t i = eval_rows.size(); i > 1; --i)
      std::swap(eval_rows[i - 1], eval_rows[static_cast<std::size_t>(pick.below(i))]);
    eval_rows.resize(std::min(s.eval_rows, eval_rows.size()));
    std::sort(eval_rows.begin(), eval_rows.end());
  }
  const sm::dataset_type& test_data = *test;
  const sm full_loss(train, all_rows, {.batch_size = s.batch, .l2 = s.l2});
  const sm sample_loss(train, eval_rows, {.batch_size = s.batch, .l2 = s.l2});
  const auto make = [&](int w) {
    return sm(train, parts[static_cast<std::size_t>(w)], {.batch_size = s.batch, .l2 = s.l2});
  };
  const std::size_t d = full_loss.dimension();
  const std::vector<float> x0(d, 0.0f);

  std::cout << "Part 2: Fashion-MNIST softmax regression (d = " << d << "), " << m
            << " training rows split over " << s.workers << " workers by Dirichlet(" << s.alpha
            << "); workers " << fast_list << " need " << s.tau_fast
            << " s per gradient, the others " << s.tau_slow << " s; batch " << s.batch << ", l2 "
            << s.l2 << ", budget " << s.budget << " virtual s\n";
  {
    loco::observe::table split{"class", "examples", "share on fast workers",
                               "weight in vanilla's objective"};
    for (std::size_t c = 0; c < classes; ++c) {
      split.add_row(std::to_string(c), class_count[c], fast_share[c], vanilla_weight[c]);
    }
    split.print(std::cout);
  }
  std::vector<std::size_t> fast_classes, slow_classes;
  for (std::size_t c = 0; c < classes; ++c)
    (fast_share[c] >= 0.5 ? fast_classes : slow_classes).push_back(c);

  const auto evaluate = [&](std::span<const float> x, fmnist_outcome& out) {
    out.train_loss = full_loss.loss(x);
    out.per_class = class_accuracy(test_data, test_rows, x);
    double fsum = 0, ssum = 0;
    for (auto c : fast_classes) fsum += out.per_class[c];
    for (auto c : slow_classes) ssum += out.per_class[c];
    out.fast_accuracy = fast_classes.empty() ? 0 : fsum / static_cast<double>(fast_classes.size());
    out.slow_accuracy = slow_classes.empty() ? 0 : ssum / static_cast<double>(slow_classes.size());
    // Test classes are balanced (1000 each): overall accuracy is the mean.
    out.test_accuracy = mean_of(out.per_class);
  };

  auto columns = experiment::trace_columns();
  columns.insert(columns.end(), {"fast_class_accuracy", "slow_class_accuracy"});
  loco::observe::csv_writer trace(flags.file("rescaled_asgd_fmnist_trace.csv"), columns);
  loco::observe::csv_writer runs_csv(
      flags.file("rescaled_asgd_fmnist_runs.csv"),
      {"method", "step", "seed", "phase", "train_loss", "test_accuracy", "fast_class_accuracy",
       "slow_class_accuracy", "gradients", "mean_delay"});

  enum method { vanilla, adaptive, rescaled, sync };
  const std::vector<std::string> names{"vanilla ASGD", "delay-adaptive ASGD", "rescaled ASGD",
                                       "sync mini-batch SGD"};
  const auto run = [&](method which, double step, std::uint64_t seed, bool keep,
                       const std::string& phase) {
    tracker<float> track;
    const std::string label = names[which];
    if (keep) {
      track.sample_every = s.budget / static_cast<double>(s.trace_points);
      track.sample = [&](double t, std::uint64_t k, std::uint64_t bytes, std::span<const float> x) {
        const auto acc = class_accuracy(test_data, test_rows, x);
        double fsum = 0, ssum = 0;
        for (auto c : fast_classes) fsum += acc[c];
        for (auto c : slow_classes) ssum += acc[c];
        trace.row(label, k, k, t, bytes, sample_loss.loss(x), mean_of(acc),
                  fsum / static_cast<double>(std::max<std::size_t>(1, fast_classes.size())),
                  ssum / static_cast<double>(std::max<std::size_t>(1, slow_classes.size())));
      };
    }
    std::uint64_t updates = 0;
    double mean_delay = 0;
    std::vector<float> last;
    const auto async = [&](auto stepsize) {
      const auto st = run_async<float>(tau, stepsize, s.budget, seed, make, x0, track);
      updates = st.updates;
      mean_delay = st.mean_delay;
    };
    switch (which) {
      case vanilla:
        async(loco::stepsize::constant(step));
        break;
      case adaptive:
        async(loco::stepsize::delay_adaptive(step));
        break;
      case rescaled:
        async(loco::stepsize::rescaled(step));
        break;
      case sync:
        run_sync<float>(tau, step, s.budget, seed, make, x0, track);
        // Every worker computes one gradient per round of max_i tau_i.
        updates = static_cast<std::uint64_t>(
                      std::floor(s.budget / *std::max_element(tau.begin(), tau.end()) + 1e-9)) *
                  s.workers;
        break;
    }
    fmnist_outcome out;
    evaluate(track.tail_average(), out);
    runs_csv.row(label, step, seed, phase, out.train_loss, out.test_accuracy, out.fast_accuracy,
                 out.slow_accuracy, updates, mean_delay);
    return out;
  };

  // Tune each method's step on its grid (first seed; lowest balanced
  // training loss of the time-averaged model), then run every seed.
  std::vector<double> chosen(4);
  loco::observe::table tuning{"method", "step", "train loss F", "test acc."};
  for (int mth = vanilla; mth <= sync; ++mth) {
    const auto& grid = mth == sync ? s.sync_etas : s.gammas;
    double best = std::numeric_limits<double>::infinity();
    for (double step : grid) {
      const auto out = run(static_cast<method>(mth), step, flags.seed * 1000 + 999, false, "tune");
      tuning.add_row(names[static_cast<std::size_t>(mth)], step, out.train_loss, out.test_accuracy);
      if (out.train_loss < best) {
        best = out.train_loss;
        chosen[static_cast<std::size_t>(mth)] = step;
      }
    }
  }
  std::cout << "\nStep tuning (seed " << flags.seed * 1000 + 999
            << ", time-averaged model over the second half of the budget)\n";
  tuning.print(std::cout);

  // Balanced reference: single-machine SGD on all m rows (iid), batch b.
  fmnist_outcome reference;
  double reference_step = 0;
  {
    double best = std::numeric_limits<double>::infinity();
    for (double step : s.gammas) {
      sm f(train, all_rows, {.batch_size = s.batch, .l2 = s.l2});
      std::vector<float> x(d, 0.0f), g(d);
      std::vector<double> sum(d, 0.0);
      loco::random::stream rng(flags.seed, 0x7ef);
      for (std::size_t t = 0; t < s.reference_steps; ++t) {
        (void)f.gradient(x, g, rng);
        for (std::size_t j = 0; j < d; ++j) x[j] -= static_cast<float>(step) * g[j];
        if (2 * t >= s.reference_steps)
          for (std::size_t j = 0; j < d; ++j) sum[j] += static_cast<double>(x[j]);
      }
      const double count = static_cast<double>(s.reference_steps - s.reference_steps / 2);
      for (std::size_t j = 0; j < d; ++j) x[j] = static_cast<float>(sum[j] / count);
      fmnist_outcome out;
      evaluate(x, out);
      if (out.train_loss < best) {
        best = out.train_loss;
        reference = out;
        reference_step = step;
      }
    }
  }

  loco::observe::csv_writer summary(
      flags.file("rescaled_asgd_fmnist_summary.csv"),
      {"method", "step", "seeds", "train_loss_mean", "train_loss_sd", "test_accuracy_mean",
       "test_accuracy_sd", "fast_class_accuracy", "slow_class_accuracy"});
  loco::observe::table results{"method",    "step", "train loss F", "sd",
                               "test acc.", "sd",   "fast classes", "slow classes"};
  std::vector<std::vector<double>> class_means(4, std::vector<double>(classes, 0.0));
  std::vector<double> test_means(4), slow_means(4);
  for (int mth = vanilla; mth <= sync; ++mth) {
    const auto i = static_cast<std::size_t>(mth);
    std::vector<double> loss, acc, fast, slow;
    for (std::size_t k = 0; k < s.seeds; ++k) {
      const auto out =
          run(static_cast<method>(mth), chosen[i], flags.seed * 1000 + k, k == 0, "final");
      loss.push_back(out.train_loss);
      acc.push_back(out.test_accuracy);
      fast.push_back(out.fast_accuracy);
      slow.push_back(out.slow_accuracy);
      for (std::size_t c = 0; c < classes; ++c)
        class_means[i][c] += out.per_class[c] / static_cast<double>(s.seeds);
    }
    test_means[i] = mean_of(acc);
    slow_means[i] = mean_of(slow);
    summary.row(names[i], chosen[i], s.seeds, mean_of(loss), sd_of(loss), mean_of(acc), sd_of(acc),
                mean_of(fast), mean_of(slow));
    results.add_row(names[i], chosen[i], mean_of(loss), sd_of(loss), mean_of(acc), sd_of(acc),
                    mean_of(fast), mean_of(slow));
    std::cout << names[i] << " done\n" << std::flush;
  }
  summary.row(std::string("reference: single-machine SGD on all rows"), reference_step, 1,
              reference.train_loss, 0.0, reference.test_accuracy, 0.0, reference.fast_accuracy,
              reference.slow_accuracy);
  results.add_row(std::string("reference: SGD, all rows, iid"), reference_step,
                  reference.train_loss, 0.0, reference.test_accuracy, 0.0, reference.fast_accuracy,
                  reference.slow_accuracy);
  std::cout << "\nAfter " << s.budget << " virtual s, time-averaged model (second half), mean of "
            << s.seeds << " seeds; fast/slow classes: mean test accuracy over the classes whose "
            << "examples sit mostly on fast / slow workers\n";
  results.print(std::cout);

  loco::observe::csv_writer per_class(flags.file("rescaled_asgd_fmnist_classes.csv"),
                                      {"class", "fast_share", "vanilla_weight", "vanilla",
                                       "delay_adaptive", "rescaled", "sync", "reference"});
  loco::observe::table classes_table{"class",    "fast share", "vanilla weight", "vanilla",
                                     "adaptive", "rescaled",   "sync",           "reference"};
  for (std::size_t c = 0; c < classes; ++c) {
    per_class.row(c, fast_share[c], vanilla_weight[c], class_means[0][c], class_means[1][c],
                  class_means[2][c], class_means[3][c], reference.per_class[c]);
    classes_table.add_row(std::to_string(c), fast_share[c], vanilla_weight[c], class_means[0][c],
                          class_means[1][c], class_means[2][c], class_means[3][c],
                          reference.per_class[c]);
  }
  std::cout << "\nPer-class test accuracy (mean over seeds)\n";
  classes_table.print(std::cout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Rescaled asynchronous SGD: the asynchronous bias and its correction"};
  experiment::common_flags flags;
  flags.add_to(app);
  std::string part = "all";
  quadratic_settings qs;
  fmnist_settings fs;
  app.add_option("--part", part, "quadratic, fmnist or all")
      ->check(CLI::IsMember({"quadratic", "fmnist", "all"}))
      ->capture_default_str();
  app.add_option("--seeds", qs.seeds, "seeds per configuration (both parts)")
      ->capture_default_str();
  app.add_option("--fmnist-budget", fs.budget, "virtual seconds per Fashion-MNIST run")
      ->capture_default_str();
  app.add_option("--alpha", fs.alpha, "Dirichlet concentration of the label skew")
      ->capture_default_str();
  app.add_option("--tau-slow", fs.tau_slow, "seconds per gradient of the slow workers")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  fs.seeds = qs.seeds;
  if (flags.quick) {
    qs.budget = 600;
    qs.gammas = {0.04};
    qs.noises = {1.0};
    qs.seeds = 1;
    fs.seeds = 1;
    fs.budget = 100;
    fs.train_rows = 6000;
    fs.test_rows = 2000;
    fs.eval_rows = 2000;
    fs.gammas = {0.1};
    fs.sync_etas = {0.2};
    fs.trace_points = 5;
    fs.reference_steps = 500;
  }
  if (qs.seeds == 0) throw loco::config_error("--seeds 0 must be >= 1");
  if (fs.fast == 0 || fs.fast >= fs.workers || fs.workers > 31) {
    throw loco::config_error("rescaled_asgd: " + std::to_string(fs.fast) + " fast of " +
                             std::to_string(fs.workers) +
                             " workers; need 1 <= fast < workers <= 31");
  }
  if (!(fs.tau_slow > 0) || !(fs.alpha > 0) || !(fs.budget > 0)) {
    throw loco::config_error("rescaled_asgd: --tau-slow, --alpha and --fmnist-budget must be > 0");
  }
  int status = 0;
  if (part != "fmnist") status |= part_quadratics(flags, qs);
  if (part != "quadratic") status |= part_fmnist(flags, fs);
  std::cout << "\nCSV written to " << flags.out << "/rescaled_asgd_*.csv\n";
  return status;
}
