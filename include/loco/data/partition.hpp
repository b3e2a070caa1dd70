#pragma once
// Splitting a dataset's examples across n workers. Each function returns one
// sorted index list per worker; together the lists cover every example
// exactly once, and the same seed gives the same split on every platform.
//
//   partition_iid        shuffle, then cut into n near-equal parts
//   partition_dirichlet  label skew: worker i's class mix q_i ~ Dirichlet(alpha),
//                        near-equal sizes (Hsu, Qi and Brown 2019)
//   partition_shards     sort by label, cut into n * s shards, deal s shards
//                        to each worker (McMahan et al. 2017)
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace loco::data {

using partition = std::vector<std::vector<std::size_t>>;

namespace detail {

inline void check_workers(const char* who, std::size_t n, std::size_t workers) {
  if (workers == 0) throw config_error(std::string(who) + ": workers 0 must be >= 1");
  if (workers > n) {
    throw config_error(std::string(who) + ": workers " + std::to_string(workers) + " exceeds the " +
                       std::to_string(n) + " examples (a worker would be empty)");
  }
}

template <class V>
void shuffle(V& v, random::stream& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    std::swap(v[i - 1], v[static_cast<std::size_t>(rng.below(i))]);
  }
}

// Size of part i when n items are cut into k near-equal parts.
constexpr std::size_t part_size(std::size_t n, std::size_t k, std::size_t i) noexcept {
  return n / k + (i < n % k ? 1 : 0);
}

inline void check_labels(const char* who, std::span<const std::int32_t> labels,
                         std::size_t classes) {
  if (classes == 0) throw config_error(std::string(who) + ": classes 0 must be >= 1");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || static_cast<std::size_t>(labels[i]) >= classes) {
      throw config_error(std::string(who) + ": label " + std::to_string(labels[i]) +
                         " of example " + std::to_string(i) + " is outside [0, " +
                         std::to_string(classes) + ")");
    }
  }
}

}  // namespace detail

// Uniformly random split into near-equal parts (sizes differ by at most 1).
inline partition partition_iid(std::size_t n, std::size_t workers, std::uint64_t seed) {
  detail::check_workers("partition_iid", n, workers);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  random::stream rng(seed, 0x11d);
  detail::shuffle(order, rng);
  partition parts(workers);
  std::size_t at = 0;
  for (std::size_t w = 0; w < workers; ++w) {
    const std::size_t m = detail::part_size(n, workers, w);
    parts[w].assign(order.begin() + static_cast<std::ptrdiff_t>(at),
                    order.begin() + static_cast<std::ptrdiff_t>(at + m));
    std::sort(parts[w].begin(), parts[w].end());
    at += m;
  }
  return parts;
}

// Label-skewed split. Worker i draws its class proportions q_i from a
// symmetric Dirichlet(alpha); workers then take turns drawing one example at
// a time, worker i picking class c with probability proportional to q_ic
// among the classes with examples left (or, once all its classes are used
// up, proportional to what is left). Sizes stay near-equal; small alpha
// (0.1) gives each worker one or two dominant classes, large alpha (100) is
// close to iid.
inline partition partition_dirichlet(std::span<const std::int32_t> labels, std::size_t classes,
                                     std::size_t workers, double alpha, std::uint64_t seed) {
  const std::size_t n = labels.size();
  detail::check_workers("partition_dirichlet", n, workers);
  detail::check_labels("partition_dirichlet", labels, classes);
  if (!(alpha > 0.0) || !std::isfinite(alpha)) {
    throw config_error("partition_dirichlet: alpha " + std::to_string(alpha) +
                       " must be finite and > 0");
  }
  random::stream rng(seed, 0xd1c);
  std::vector<std::vector<std::size_t>> pools(classes);
  for (std::size_t i = 0; i < n; ++i) pools[static_cast<std::size_t>(labels[i])].push_back(i);
  for (auto& p : pools) detail::shuffle(p, rng);

  std::vector<double> q(workers * classes);
  for (std::size_t w = 0; w < workers; ++w) {
    double sum = 0.0;
    for (std::size_t c = 0; c < classes; ++c) sum += q[w * classes + c] = rng.gamma(alpha);
    if (sum > 0.0) {
      for (std::size_t c = 0; c < classes; ++c) q[w * classes + c] /= sum;
    } else {  // every draw underflowed (alpha tiny): all mass on one class
      q[w * classes + static_cast<std::size_t>(rng.below(classes))] = 1.0;
    }
  }

  partition parts(workers);
  std::vector<std::size_t> quota(workers);
  for (std::size_t w = 0; w < workers; ++w) {
    quota[w] = detail::part_size(n, workers, w);
    parts[w].reserve(quota[w]);
  }
  std::size_t left = n;
  while (left > 0) {
    for (std::size_t w = 0; w < workers && left > 0; ++w) {
      if (parts[w].size() == quota[w]) continue;
      double total = 0.0;
      for (std::size_t c = 0; c < classes; ++c) {
        if (!pools[c].empty()) total += q[w * classes + c];
      }
      const bool by_remaining = !(total > 0.0);
      if (by_remaining) total = static_cast<double>(left);
      double u = rng.uniform() * total;
      std::size_t pick = classes;
      for (std::size_t c = 0; c < classes; ++c) {
        if (pools[c].empty()) continue;
        pick = c;  // the last non-empty class absorbs rounding at the top end
        const double weight =
            by_remaining ? static_cast<double>(pools[c].size()) : q[w * classes + c];
        if (u < weight) break;
        u -= weight;
      }
      parts[w].push_back(pools[pick].back());
      pools[pick].pop_back();
      --left;
    }
  }
  for (auto& p : parts) std::sort(p.begin(), p.end());
  return parts;
}

// By-label shards: examples sorted by label (random order within a label),
// cut into workers * shards_per_worker near-equal shards, and each worker gets
// shards_per_worker shards chosen at random. With 2 shards per worker most
// workers see only two classes.
inline partition partition_shards(std::span<const std::int32_t> labels, std::size_t classes,
                                  std::size_t workers, std::size_t shards_per_worker,
                                  std::uint64_t seed) {
  const std::size_t n = labels.size();
  detail::check_workers("partition_shards", n, workers);
  detail::check_labels("partition_shards", labels, classes);
  if (shards_per_worker == 0) {
    throw config_error("partition_shards: shards_per_worker 0 must be >= 1");
  }
  const std::size_t shards = workers * shards_per_worker;
  if (shards > n) {
    throw config_error("partition_shards: workers * shards_per_worker = " + std::to_string(shards) +
                       " exceeds the " + std::to_string(n) + " examples");
  }
  random::stream rng(seed, 0x5a4d);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  detail::shuffle(order, rng);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return labels[a] < labels[b]; });
  std::vector<std::size_t> deal(shards);
  std::iota(deal.begin(), deal.end(), std::size_t{0});
  detail::shuffle(deal, rng);
  std::vector<std::size_t> start(shards + 1, 0);
  for (std::size_t s = 0; s < shards; ++s)
    start[s + 1] = start[s] + detail::part_size(n, shards, s);
  partition parts(workers);
  for (std::size_t w = 0; w < workers; ++w) {
    for (std::size_t k = 0; k < shards_per_worker; ++k) {
      const std::size_t s = deal[w * shards_per_worker + k];
      parts[w].insert(parts[w].end(), order.begin() + static_cast<std::ptrdiff_t>(start[s]),
                      order.begin() + static_cast<std::ptrdiff_t>(start[s + 1]));
    }
    std::sort(parts[w].begin(), parts[w].end());
  }
  return parts;
}

}  // namespace loco::data
