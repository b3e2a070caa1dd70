// A linear compressor (powersgd: payloads averaged by allreduce) where a
// driver needs messages: compressed_amsgrad says so instead of failing deep
// inside on encode().
#include <loco/aliases.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/compress/powersgd.hpp>
#include <loco/random/stream.hpp>
#include <span>
#include <vector>

struct bowl {
  using value_type = float;
  std::size_t dimension() const { return 16; }
  double loss(std::span<const float>) const { return 0.0; }
  double gradient(std::span<const float> x, std::span<float> g, loco::random::stream&) const {
    for (std::size_t j = 0; j < 16; ++j) g[j] = x[j];
    return 0.0;
  }
};

int main() {
  loco::tensor::layout l;
  l.add("w", {4, 4});
  loco::cd_adam<loco::comm::in_process, loco::compress::powersgd> driver(
      loco::compress::powersgd(l), loco::stepsize::constant(0.1));
  loco::comm::run_in_process(2, [&](loco::comm::in_process& comm) {
    bowl f;
    const std::vector<float> x0(16, 0.0f);
    auto copy = driver;
    (void)copy.run(comm, f, std::span<const float>(x0));
  });
}
