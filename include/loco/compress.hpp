#pragma once
// Every compressor and decorator of loco::compress (docs/compressors.md).
#include <loco/compress/bf16.hpp>
#include <loco/compress/ef21.hpp>
#include <loco/compress/error_feedback.hpp>
#include <loco/compress/fp16.hpp>
#include <loco/compress/fp4.hpp>
#include <loco/compress/identity.hpp>
#include <loco/compress/natural.hpp>
#include <loco/compress/per_tensor.hpp>
#include <loco/compress/powersgd.hpp>
#include <loco/compress/qsgd.hpp>
#include <loco/compress/random_k.hpp>
#include <loco/compress/scaled_sign.hpp>
#include <loco/compress/size_threshold.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/compress/top_k_2bit.hpp>
#include <loco/compress/warmup.hpp>
