#pragma once
// Everything in loco that needs no optional dependency (xtensor only).
// Optional parts have their own headers and CMake targets:
//   <loco/comm/tcp.hpp>  loco::tcp     <loco/comm/mpi.hpp>  loco::mpi
//   <loco/problems/mlp.hpp> loco::blas <loco/data/fashion_mnist.hpp> loco::zlib
#include <loco/comm/in_process.hpp>
#include <loco/concepts.hpp>
#include <loco/error.hpp>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/random/stream.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <loco/stepsize/warmup.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/tensor/vector.hpp>
#include <loco/version.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
