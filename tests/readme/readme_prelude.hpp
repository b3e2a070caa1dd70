#pragma once
// What README.md's C++ snippets assume without showing it (tests/readme).
#include <loco/aliases.hpp>
#include <loco/problems/quadratic.hpp>
#ifdef LOCO_README_TCP
#include <loco/comm/tcp.hpp>
#endif
#ifdef LOCO_README_MPI
#include <loco/comm/mpi.hpp>
#endif
#include <span>
#include <vector>

// The README's "any loco::Objective": worker r minimises
// 0.5 ||x - (r + 1)||^2 over 64 coordinates.
inline loco::problems::quadratic<float> my_objective_for_worker(int rank) {
  using vec = loco::tensor::vector<float>;
  constexpr std::size_t d = 64;
  return loco::problems::quadratic<float>::diagonal(
      vec(vec::shape_type{d}, 1.0f), vec(vec::shape_type{d}, static_cast<float>(rank + 1)));
}

// A fragment is compiled as the body of readme_fragment(argc, argv), which
// starts with these: an objective f and a starting point x0.
#define READMEFRAGMENT_CONTEXT                             \
  (void)argc;                                              \
  (void)argv;                                              \
  auto f = my_objective_for_worker(0);                     \
  const std::vector<float> x0_values(f.dimension(), 0.0f); \
  const std::span<const float> x0(x0_values);              \
  (void)x0;
