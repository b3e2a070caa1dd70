// loco::loco alone (xtensor, threads): four in-process workers run local SGD
// with the top_k compressor on a quadratic. tools/test.sh checks that this
// binary links no SSL, BLAS or zlib.
#include <cstdio>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/compress/top_k.hpp>
#include <loco/merge/average.hpp>
#include <loco/problems/quadratic.hpp>
#include <loco/stepsize/constant.hpp>
#include <vector>

int main() {
  using namespace loco;
  constexpr std::size_t d = 8;
  using driver = local_sgd<compress::top_k, comm::in_process, merge::average, stepsize::constant>;
  driver sgd(compress::top_k(0.5), {}, stepsize::constant(0.2),
             {.schedule = algorithm::schedule::rounds(40, 5)});
  std::vector<float> model;
  comm::run_in_process(4, [&](comm::in_process& comm) {
    using vec = tensor::vector<float>;
    auto f = problems::quadratic<float>::diagonal(vec(vec::shape_type{d}, 1.0f),
                                                  vec(vec::shape_type{d}, 1.0f));
    const std::vector<float> x0(d, 0.0f);
    auto result = sgd.run(comm, f, std::span<const float>(x0));
    if (comm.rank() == 0) model = result.average;
  });
  double mean = 0;
  for (float v : model) mean += static_cast<double>(v) / d;
  std::printf(
      "conan consumer, core only: mean x = %.4f after local SGD with top_k (from 0; "
      "optimum 1)\n",
      mean);
  return mean > 0.5 && mean < 1.1 ? 0 : 1;
}
