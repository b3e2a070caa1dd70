#pragma once
// All of loco's policy concepts.
#include <loco/concepts/communicator.hpp>
#include <loco/concepts/compressor.hpp>
#include <loco/concepts/merge_rule.hpp>
#include <loco/concepts/objective.hpp>
#include <loco/concepts/stepsize.hpp>
