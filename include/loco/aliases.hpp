#pragma once
// The papers' methods by name: each is one driver with its policies filled
// in, so a baseline is one policy away (docs/local_sgd.md, docs/async_sgd.md,
// docs/compressed_amsgrad.md).
#include <loco/algorithm/async_sgd.hpp>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/compress/fp4.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/random_k.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/merge/outer.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/delay_adaptive.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <loco/stepsize/rescaled.hpp>
#include <loco/update/adamw.hpp>

namespace loco {

// Patel and Dieuleveut: pick the schedule (every_step, once, evenly, growing).
template <class Comm, class Step = stepsize::polynomial>
using minibatch_sgd = local_sgd<compress::identity, Comm, merge::average, Step>;
template <class Comm, class Step = stepsize::polynomial>
using one_shot_averaging = local_sgd<compress::identity, Comm, merge::average, Step>;
template <class Comm, class Step = stepsize::polynomial>
using local_sgd_dense = local_sgd<compress::identity, Comm, merge::average, Step>;

// LOSCAR-SGD and its naive-overwrite baseline.
template <class Comm, class Step = stepsize::constant>
using loscar_sgd = local_sgd<compress::random_k_unscaled, Comm, merge::delay_corrected, Step>;
template <class Comm, class Step = stepsize::constant>
using loscar_overwrite = local_sgd<compress::random_k_unscaled, Comm, merge::overwrite, Step>;

// DiLoCo (Douillard et al. 2023): H AdamW steps per round (the schedule's
// round length), then Nesterov on the averaged outer gradient. Construct as
//   diloco<Comm>({}, merge::outer_nesterov(0.7, 0.9), stepsize::constant(lr),
//                {.schedule = algorithm::schedule::rounds(R, H)}, update::adamw());
template <class Comm, class Step = stepsize::constant>
using diloco = local_sgd<compress::identity, Comm, merge::outer_nesterov, Step, update::adamw>;

// Streaming DiLoCo (Douillard et al. 2025): DiLoCo whose round r syncs only
// fragment r mod P, its exchange overlapping tau inner steps, its result
// mixed with the worker's own values. With P fragments a fragment syncs
// every H inner steps when the round length is H/P - tau:
//   streaming_diloco<Comm, compress::fp4>(
//       compress::fp4(), merge::outer_nesterov(0.7, 0.9), stepsize::constant(lr),
//       {.schedule = algorithm::schedule::rounds(R, H / P - tau), .overlap_steps = {tau},
//        .fragments = {.count = P}, .mixing = alpha},
//       update::adamw());
// The compressor carries the outer gradients (identity: fp32; fp4: 4 bits).
template <class Comm, class Compressor = compress::identity, class Step = stepsize::constant>
using streaming_diloco = local_sgd<Compressor, Comm, merge::outer_nesterov, Step, update::adamw>;

// Asynchronous SGD: Koloskova et al. and Rescaled ASGD.
template <class Comm>
using asgd = async_sgd<compress::identity, Comm, stepsize::constant>;
template <class Comm>
using delay_adaptive_asgd = async_sgd<compress::identity, Comm, stepsize::delay_adaptive>;
template <class Comm>
using rescaled_asgd = async_sgd<compress::identity, Comm, stepsize::rescaled>;

// CD-Adam with the authors' default compressor (top_k; k = 1% of d is
// compress::top_k(0.01)).
template <class Comm, class Compressor = compress::top_k, class Step = stepsize::constant>
using cd_adam = compressed_amsgrad<Compressor, Comm, Step>;

}  // namespace loco
