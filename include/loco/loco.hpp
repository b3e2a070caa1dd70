#pragma once
// Everything in loco that needs no optional dependency (xtensor only).
// Optional parts have their own headers and CMake targets:
//   <loco/comm/tcp.hpp>      loco::tcp     <loco/comm/mpi.hpp>           loco::mpi
//   <loco/problems/mlp.hpp>  loco::blas    <loco/data/fashion_mnist.hpp> loco::zlib
#include <loco/algorithm/async_sgd.hpp>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/algorithm/schedule.hpp>
#include <loco/aliases.hpp>
#include <loco/checkpoint/every.hpp>
#include <loco/checkpoint/file.hpp>
#include <loco/checkpoint/format.hpp>
#include <loco/checkpoint/resume.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/compress.hpp>
#include <loco/concepts.hpp>
#include <loco/data/dataset.hpp>
#include <loco/data/libsvm.hpp>
#include <loco/data/partition.hpp>
#include <loco/data/synthetic.hpp>
#include <loco/error.hpp>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/observe/callbacks.hpp>
#include <loco/problems/least_squares.hpp>
#include <loco/problems/logistic_regression.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/timed.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/delay_adaptive.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <loco/stepsize/rescaled.hpp>
#include <loco/stepsize/warmup.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/tensor/vector.hpp>
#include <loco/version.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
