#pragma once
// Every local_sgd alias of loco/aliases.hpp against its plain-loop reference
// (local_sgd_reference.hpp), on any communicator: run_alias() runs one rank,
// check_alias() compares that rank's result with the reference and returns
// "" or what differs, so MPI ranks can agree on the verdict.
#include <cstddef>
#include <cstdint>
#include <loco/aliases.hpp>
#include <loco/compress/per_tensor.hpp>
#include <loco/compress/powersgd.hpp>
#include <span>
#include <string>
#include <vector>

#include "local_sgd_reference.hpp"

namespace local_sgd_reference {

enum class alias {
  minibatch_sgd,
  one_shot_averaging,
  local_sgd_decaying,
  loscar_sgd,
  loscar_overwrite,
  diloco,
  streaming_diloco,
  powersgd,
  per_tensor,
  diloco_powersgd
};

inline const std::vector<alias>& all_aliases() {
  static const std::vector<alias> all{alias::minibatch_sgd,      alias::one_shot_averaging,
                                      alias::local_sgd_decaying, alias::loscar_sgd,
                                      alias::loscar_overwrite,   alias::diloco,
                                      alias::streaming_diloco,   alias::powersgd,
                                      alias::per_tensor,         alias::diloco_powersgd};
  return all;
}

inline std::string name_of(alias a) {
  switch (a) {
    case alias::minibatch_sgd:
      return "minibatch_sgd";
    case alias::one_shot_averaging:
      return "one_shot_averaging";
    case alias::local_sgd_decaying:
      return "local_sgd (decaying steps, growing gaps)";
    case alias::loscar_sgd:
      return "loscar_sgd";
    case alias::loscar_overwrite:
      return "loscar_overwrite";
    case alias::diloco:
      return "diloco";
    case alias::streaming_diloco:
      return "streaming_diloco (2 fragments, overlap 1, mixing 0.5)";
    case alias::powersgd:
      return "local_sgd with powersgd (full rank, decaying steps, growing gaps)";
    case alias::per_tensor:
      return "local_sgd with per_tensor<top_k> (every entry, decaying steps, growing gaps)";
    case alias::diloco_powersgd:
      return "diloco with full-rank powersgd outer gradients";
  }
  return "?";
}

// The settings of each case.
constexpr std::size_t minibatch_steps = 8, one_shot_steps = 12, local_total = 20, local_rounds = 5;
constexpr double decay_c = 0.6, decay_alpha = 0.75;
constexpr std::size_t loscar_rounds = 5;
constexpr double loscar_step = 0.2, loscar_fraction = 0.4;  // K = 2 of 5 coordinates
constexpr std::uint64_t loscar_seed = 3;
inline const std::vector<std::size_t> loscar_local{1, 2, 3}, loscar_overlap{2, 1, 0};

// DiLoCo: R rounds of H AdamW steps, Nesterov outside. Streaming: rounds
// of `streaming_local` steps plus `streaming_tau` in flight, fragments
// {0, 1} and {2, 3, 4} (shards of the flat model), mixing alpha.
constexpr std::size_t diloco_rounds = 4, diloco_h = 5;
constexpr std::size_t streaming_rounds = 6, streaming_local = 3, streaming_tau = 1;
constexpr double diloco_lr = 0.05, outer_lr = 0.7, outer_mu = 0.9, streaming_alpha = 0.5;
inline const std::vector<std::vector<std::size_t>> streaming_parts{{0, 1}, {2, 3, 4}};

inline loco::compress::random_k_unscaled loscar_compressor() {
  return loco::compress::random_k_unscaled(loscar_fraction, loscar_seed);
}

// The model as a 5 x 1 matrix: rank 1 is full rank, so PowerSGD's two
// allreduce phases must reproduce plain local SGD.
inline loco::compress::powersgd full_rank_powersgd() {
  loco::tensor::layout l;
  l.add("w", {dim, 1});
  return loco::compress::powersgd(l, {.rank = 1, .min_compression_rate = 0.0});
}

// The model as tensors of 2 and 3 values, each sent whole by top_k: the
// general (allgather) path must reproduce plain local SGD.
inline loco::compress::per_tensor<loco::compress::top_k> whole_per_tensor() {
  loco::tensor::layout l;
  l.add("a", {2});
  l.add("b", {dim - 2});
  return {l, loco::compress::top_k(1.0)};
}

template <class Comm>
loco::algorithm::local_sgd_result<double> run_alias(alias a, Comm& comm) {
  namespace alg = loco::algorithm;
  auto f = make_worker(comm.rank());
  const vec x0 = start();
  const std::span<const double> from(x0);
  alg::local_sgd_options opt;
  opt.polyak_average = true;
  const loco::stepsize::polynomial decay(decay_c, decay_alpha);
  switch (a) {
    case alias::minibatch_sgd: {
      opt.schedule = alg::schedule::every_step(minibatch_steps);
      loco::minibatch_sgd<Comm> driver({}, {}, decay, opt);
      return driver.run(comm, f, from);
    }
    case alias::one_shot_averaging: {
      opt.schedule = alg::schedule::once(one_shot_steps);
      loco::one_shot_averaging<Comm> driver({}, {}, decay, opt);
      return driver.run(comm, f, from);
    }
    case alias::local_sgd_decaying: {
      opt.schedule = alg::schedule::growing(local_total, local_rounds);
      loco::local_sgd_dense<Comm> driver({}, {}, decay, opt);
      return driver.run(comm, f, from);
    }
    case alias::loscar_sgd:
    case alias::loscar_overwrite: {
      opt.schedule = alg::schedule::rounds(loscar_rounds, 1);
      opt.local_steps = loscar_local;
      opt.overlap_steps = loscar_overlap;
      const loco::stepsize::constant step(loscar_step);
      if (a == alias::loscar_sgd) {
        loco::loscar_sgd<Comm> driver(loscar_compressor(), {}, step, opt);
        return driver.run(comm, f, from);
      }
      loco::loscar_overwrite<Comm> driver(loscar_compressor(), {}, step, opt);
      return driver.run(comm, f, from);
    }
    case alias::diloco: {
      opt.schedule = alg::schedule::rounds(diloco_rounds, diloco_h);
      loco::diloco<Comm> driver({}, loco::merge::outer_nesterov(outer_lr, outer_mu),
                                loco::stepsize::constant(diloco_lr), opt, loco::update::adamw());
      return driver.run(comm, f, from);
    }
    case alias::streaming_diloco: {
      opt.schedule = alg::schedule::rounds(streaming_rounds, streaming_local);
      opt.overlap_steps = {streaming_tau};
      opt.fragments = {.count = streaming_parts.size()};
      opt.mixing = streaming_alpha;
      loco::streaming_diloco<Comm> driver({}, loco::merge::outer_nesterov(outer_lr, outer_mu),
                                          loco::stepsize::constant(diloco_lr), opt,
                                          loco::update::adamw());
      return driver.run(comm, f, from);
    }
    case alias::powersgd: {
      opt.schedule = alg::schedule::growing(local_total, local_rounds);
      loco::local_sgd<loco::compress::powersgd, Comm, loco::merge::average,
                      loco::stepsize::polynomial>
          driver(full_rank_powersgd(), {}, decay, opt);
      return driver.run(comm, f, from);
    }
    case alias::diloco_powersgd: {
      opt.schedule = alg::schedule::rounds(diloco_rounds, diloco_h);
      loco::local_sgd<loco::compress::powersgd, Comm, loco::merge::outer_nesterov,
                      loco::stepsize::constant, loco::update::adamw>
          driver(full_rank_powersgd(), loco::merge::outer_nesterov(outer_lr, outer_mu),
                 loco::stepsize::constant(diloco_lr), opt, loco::update::adamw());
      return driver.run(comm, f, from);
    }
    case alias::per_tensor: {
      opt.schedule = alg::schedule::growing(local_total, local_rounds);
      loco::local_sgd<loco::compress::per_tensor<loco::compress::top_k>, Comm, loco::merge::average,
                      loco::stepsize::polynomial>
          driver(whole_per_tensor(), {}, decay, opt);
      return driver.run(comm, f, from);
    }
  }
  throw std::logic_error("run_alias: unknown alias");
}

// The round's support is an input of the reference: the K coordinates that
// random_k draws from (seed, r) (its own tests check the draw).
inline std::vector<std::uint32_t> loscar_support(std::size_t round) {
  const auto c = loscar_compressor();
  loco::compress::random_k_unscaled::state<double> s(c, dim, 0);
  const auto idx = c.support(s, round);
  return {idx.begin(), idx.end()};
}

inline outcome expected(alias a) {
  switch (a) {
    case alias::minibatch_sgd: {
      std::vector<std::size_t> every;
      for (std::size_t t = 1; t <= minibatch_steps; ++t) every.push_back(t);
      return averaged_at(every, polynomial_eta(decay_c, decay_alpha));
    }
    case alias::one_shot_averaging:
      return averaged_at({one_shot_steps}, polynomial_eta(decay_c, decay_alpha));
    case alias::local_sgd_decaying:
    case alias::powersgd:
    case alias::per_tensor:
      // growing(20, 5): boundaries ceil(20 (k/5)^2) = 1, 4, 8, 13, 20.
      return averaged_at({1, 4, 8, 13, 20}, polynomial_eta(decay_c, decay_alpha));
    case alias::loscar_sgd:
    case alias::loscar_overwrite:
      return loscar(loscar_rounds, loscar_local, loscar_overlap, loscar_support,
                    a == alias::loscar_sgd, constant_eta(loscar_step));
    case alias::diloco:
    case alias::diloco_powersgd:
      return streaming_diloco(diloco_rounds, diloco_h, 0, {{0, 1, 2, 3, 4}}, 0.0, diloco_lr,
                              outer_lr, outer_mu);
    case alias::streaming_diloco:
      return streaming_diloco(streaming_rounds, streaming_local, streaming_tau, streaming_parts,
                              streaming_alpha, diloco_lr, outer_lr, outer_mu);
  }
  throw std::logic_error("expected: unknown alias");
}

// Payload bytes each worker contributes: d doubles per round on the dense
// paths, K doubles per round on LOSCAR's shared support.
inline std::uint64_t expected_bytes_sent(alias a) {
  switch (a) {
    case alias::minibatch_sgd:
      return minibatch_steps * dim * sizeof(double);
    case alias::one_shot_averaging:
      return dim * sizeof(double);
    case alias::local_sgd_decaying:
      return local_rounds * dim * sizeof(double);
    case alias::loscar_sgd:
    case alias::loscar_overwrite:
      return loscar_rounds * 2 * sizeof(double);
    case alias::diloco:
      return diloco_rounds * dim * sizeof(double);
    case alias::powersgd:  // P (5 x 1), then Q (1 x 1), every round
      return local_rounds * (dim + 1) * sizeof(double);
    case alias::diloco_powersgd:  // P (5 x 1), then Q (1 x 1), every round
      return diloco_rounds * (dim + 1) * sizeof(double);
    case alias::per_tensor:  // one message a round: two top_k messages in per_tensor's frame
      return local_rounds * whole_per_tensor().wire_bytes<double>(dim);
    case alias::streaming_diloco: {
      std::uint64_t values = 0;  // the fragment of each round
      for (std::size_t r = 0; r < streaming_rounds; ++r)
        values += streaming_parts[r % streaming_parts.size()].size();
      return values * sizeof(double);
    }
  }
  return 0;
}

// "" when rank's result equals the reference within tol.
inline std::string check_alias(alias a, int rank,
                               const loco::algorithm::local_sgd_result<double>& got,
                               double tol = 1e-9) {
  const outcome want = expected(a);
  const std::string who = name_of(a) + ", worker " + std::to_string(rank) + ": ";
  if (auto m =
          mismatch(who + "local model", got.local, want.local[static_cast<std::size_t>(rank)], tol);
      !m.empty())
    return m;
  if (auto m = mismatch(who + "average", got.average, want.average, tol); !m.empty()) return m;
  if (auto m = mismatch(who + "Polyak-Ruppert average", got.polyak, want.polyak, tol); !m.empty())
    return m;
  if (got.ledger.totals().bytes_sent != expected_bytes_sent(a)) {
    return who + "bytes_sent " + std::to_string(got.ledger.totals().bytes_sent) + ", expected " +
           std::to_string(expected_bytes_sent(a));
  }
  return "";
}

}  // namespace local_sgd_reference
