// Compressor kernels (docs/compressors.md#benchmarks).
//
// Every compressor's encode and decode at d = 1e5, 1e6, 1e7 (k = 1% and
// 0.1% for top_k and random_k), one thread, with the baselines in the same
// run so each result reads as a ratio:
//   read/<d>   sum of the d words: the machine's streaming read bandwidth
//   copy/<d>   memcpy of the d floats
//   peer/top_k_nth_element@<f>/<d>   top-k the slow way: std::nth_element
//                                    over an index array by |v|
//   gather@<f>/<d>   the k values at random_k's indices, a new round's each
//                    time as in its encode: random_k's floor (its encode
//                    also draws them)
//   random_k_stratified@<f>, gather_stratified@<f>/<d>   the same with
//                    sampling::stratified (one index per stratum of d/k)
// The decorators with memory (error_feedback, ef21) encode a different
// input each time (4 in turn): on one constant input their residuals would
// settle and the benchmark would time a degenerate case.
// bytes_per_second is input bytes (4 d) per second for every benchmark;
// the counter wire_bytes is the size of one message. Output buffers and
// states are reused, so the steady state allocates nothing.
//
// PowerSGD (one worker's round: begin, next, end; the averaging between is
// the communicator's) on the MLP's and the CNN's layouts and a 4096 x 4096
// matrix at ranks 1, 2, 4, next to the GEMM rate of the BLAS loco links:
//   powersgd_gemm/<model>/r<r>   the round's three products alone, on BLAS
//   powersgd/<model>/r<r>        Gram-Schmidt
//   powersgd_blas/<model>/r<r>   LAPACK's QR at r > 2 (as torch's hook)
// bench/powersgd_vs_torch.py times torch's hook arithmetic on the same shapes.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <loco/compress.hpp>
#ifdef LOCO_BENCH_WITH_BLAS
#include <loco/compress/powersgd_blas.hpp>
#endif
#include <loco/random/stream.hpp>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace {

namespace lc = loco::compress;

// The i-th input of length d (i < inputs_per_size), N(0, 1) entries.
constexpr std::size_t inputs_per_size = 4;
const std::vector<float>& input(std::size_t d, std::size_t i = 0) {
  static std::map<std::pair<std::size_t, std::size_t>, std::vector<float>> cache;
  auto& v = cache[{d, i}];
  if (v.empty()) {
    v.resize(d);
    loco::random::stream rng(d, i);
    for (auto& x : v) x = static_cast<float>(rng.normal());
  }
  return v;
}

// Decorators that keep a residual or an estimate.
template <class C>
constexpr bool has_memory = false;
template <class C>
constexpr bool has_memory<lc::error_feedback<C>> = true;
template <class C>
constexpr bool has_memory<lc::ef21<C>> = true;

void set_bytes(benchmark::State& st, std::size_t d) {
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) *
                       static_cast<std::int64_t>(d * sizeof(float)));
  st.counters["d"] = static_cast<double>(d);
}

void bm_read(benchmark::State& st, std::size_t d) {
  // The words summed as integers: associative, so the loop vectorises at any
  // width and runs at the memory's pace, whatever the compiler flags.
  const auto& v = input(d);
  const auto* words = reinterpret_cast<const std::uint32_t*>(v.data());
  for (auto _ : st) {
    std::uint32_t s = 0;
    for (std::size_t i = 0; i < d; ++i) s += words[i];
    benchmark::DoNotOptimize(s);
  }
  set_bytes(st, d);
}

void bm_copy(benchmark::State& st, std::size_t d) {
  const auto& v = input(d);
  std::vector<float> out(d);
  for (auto _ : st) {
    std::memcpy(out.data(), v.data(), d * sizeof(float));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(st, d);
}

void bm_nth_element_peer(benchmark::State& st, std::size_t d, double fraction) {
  const auto& v = input(d);
  const auto k = static_cast<std::size_t>(fraction * static_cast<double>(d));
  std::vector<std::uint32_t> idx(d);
  std::vector<float> values(k);
  for (auto _ : st) {
    std::iota(idx.begin(), idx.end(), 0u);
    std::nth_element(
        idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
        [&](std::uint32_t a, std::uint32_t b) { return std::abs(v[a]) > std::abs(v[b]); });
    for (std::size_t i = 0; i < k; ++i) values[i] = v[idx[i]];
    benchmark::DoNotOptimize(values.data());
  }
  set_bytes(st, d);
}

// The supports of consecutive rounds, as random_k's encode draws them, in
// turn: gathering one support over and over would find its k lines in
// cache every time, while each encode reads the lines of a new round.
// Enough rounds to touch 128 MB of lines (at most 1024).
void bm_gather(benchmark::State& st, double fraction, std::size_t d, lc::sampling how) {
  const auto& v = input(d);
  const lc::random_k c(fraction, 1, how);
  lc::random_k::state<float> s(c, d, 0);
  const std::size_t k = c.support(s, 0).size();
  const std::size_t rounds = std::clamp<std::size_t>((std::size_t{128} << 20) / (64 * k), 1, 1024);
  std::vector<std::uint32_t> supports(rounds * k);
  for (std::size_t r = 0; r < rounds; ++r) {
    const auto idx = c.support(s, r);
    std::copy(idx.begin(), idx.end(), supports.begin() + static_cast<std::ptrdiff_t>(r * k));
  }
  std::vector<float> values(k);
  std::size_t r = 0;
  for (auto _ : st) {
    const std::uint32_t* idx = supports.data() + r * k;
    for (std::size_t i = 0; i < k; ++i) {
      if (i + 32 < k) __builtin_prefetch(v.data() + idx[i + 32]);  // as the encode does
      values[i] = v[idx[i]];
    }
    benchmark::DoNotOptimize(values.data());
    benchmark::ClobberMemory();
    r = r + 1 < rounds ? r + 1 : 0;
  }
  set_bytes(st, d);
}

template <class C>
void bm_encode(benchmark::State& st, C c, std::size_t d) {
  std::vector<std::span<const float>> inputs;
  for (std::size_t i = 0; i < (has_memory<C> ? inputs_per_size : 1); ++i) {
    inputs.emplace_back(input(d, i));
  }
  lc::state_t<C, float> s(c, d, 0);
  loco::wire::buffer b;
  std::size_t turn = 0;
  for (auto _ : st) {
    b.clear();
    c.encode(inputs[turn], s, b);
    turn = (turn + 1) % inputs.size();
    benchmark::DoNotOptimize(b.data());
  }
  set_bytes(st, d);
  st.counters["wire_bytes"] = static_cast<double>(b.size());
}

template <class C>
void bm_decode(benchmark::State& st, C c, std::size_t d) {
  const auto& v = input(d);
  lc::state_t<C, float> s(c, d, 0), r(c, d, 1);
  loco::wire::buffer b;
  c.encode(std::span<const float>(v), s, b);
  std::vector<float> out(d);
  for (auto _ : st) {
    loco::wire::view in(b);
    c.decode(in, r, std::span<float>(out));
    benchmark::DoNotOptimize(out.data());
  }
  set_bytes(st, d);
  st.counters["wire_bytes"] = static_cast<double>(b.size());
}

template <class C>
void add_pair(const std::string& label, const C& c, std::size_t d) {
  const std::string tail = "/" + label + "/" + std::to_string(d);
  benchmark::RegisterBenchmark(("encode" + tail).c_str(),
                               [c, d](benchmark::State& st) { bm_encode(st, c, d); });
  benchmark::RegisterBenchmark(("decode" + tail).c_str(),
                               [c, d](benchmark::State& st) { bm_decode(st, c, d); });
}

// The layouts whose PowerSGD rounds are timed.
std::vector<std::pair<std::string, loco::tensor::layout>> powersgd_models() {
  loco::tensor::layout mlp;  // 784 - 128 - 10
  mlp.add("w1", {128, 784});
  mlp.add("b1", {128});
  mlp.add("w2", {10, 128});
  mlp.add("b2", {10});
  loco::tensor::layout cnn;  // the LibTorch example's CNN at --channels 32,64 --hidden 128
  cnn.add("conv1.weight", {32, 1, 3, 3});
  cnn.add("conv1.bias", {32});
  cnn.add("conv2.weight", {64, 32, 3, 3});
  cnn.add("conv2.bias", {64});
  cnn.add("fc1.weight", {128, 9216});
  cnn.add("fc1.bias", {128});
  cnn.add("fc2.weight", {10, 128});
  cnn.add("fc2.bias", {10});
  loco::tensor::layout big;
  big.add("w", {4096, 4096});
  return {{"mlp", mlp}, {"cnn", cnn}, {"4096x4096", big}};
}

template <class C>
void bm_powersgd_round(benchmark::State& st, const C& c, std::size_t d) {
  const auto& v = input(d);
  typename C::template state<float> s(c, d, 0);
  std::vector<float> out(d);
  for (auto _ : st) {
    (void)c.begin(s, std::span<const float>(v));
    while (!c.next(s).empty()) {
    }
    c.end(s, std::span<float>(out));
    benchmark::DoNotOptimize(out.data());
  }
  set_bytes(st, d);
  st.counters["sent_values"] = static_cast<double>(c.first_payload() + c.second_payload());
}

#ifdef LOCO_BENCH_WITH_BLAS
// The three products of a round (P = M Q, Q = M^T P, P Q^T) over the
// matrices powersgd compresses, on BLAS: what a round costs at BLAS's rate.
void bm_powersgd_gemm(benchmark::State& st, const loco::tensor::layout& model,
                      const lc::powersgd& c, std::size_t r) {
  const auto& v = input(model.dimension());
  std::vector<float> p(c.first_payload()), q(c.second_payload() + 1, 0.5f), out(model.dimension());
  for (auto _ : st) {
    std::size_t at_p = 0, at_q = 0;
    for (const auto& t : model) {
      const std::size_t rows = t.matrix_rows(), cols = t.matrix_cols();
      if (!t.is_matrix() || rows * cols <= 2 * (rows + cols) * r) continue;
      const float* m = v.data() + t.offset;
      loco::tensor::blas::gemm(false, false, rows, r, cols, m, q.data() + at_q, 0.0f,
                               p.data() + at_p);
      loco::tensor::blas::gemm(true, false, cols, r, rows, m, p.data() + at_p, 0.0f,
                               q.data() + at_q);
      loco::tensor::blas::gemm(false, true, rows, cols, r, p.data() + at_p, q.data() + at_q, 0.0f,
                               out.data() + t.offset);
      at_p += rows * r;
      at_q += cols * r;
    }
    benchmark::DoNotOptimize(out.data());
  }
  set_bytes(st, model.dimension());
}
#endif

void register_powersgd() {
  for (const auto& [label, model] : powersgd_models()) {
    for (const std::size_t r : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
      const std::string tail = "/" + label + "/r" + std::to_string(r);
      const std::size_t d = model.dimension();
      const lc::powersgd loops(model, {.rank = r});
      benchmark::RegisterBenchmark(("powersgd" + tail).c_str(), [loops, d](benchmark::State& st) {
        bm_powersgd_round(st, loops, d);
      });
#ifdef LOCO_BENCH_WITH_BLAS
      const lc::powersgd_blas blas(
          model, {.rank = r,
                  .orthogonalize =
                      r > 2 ? lc::orthogonalization::qr : lc::orthogonalization::gram_schmidt});
      benchmark::RegisterBenchmark(
          ("powersgd_blas" + tail).c_str(),
          [blas, d](benchmark::State& st) { bm_powersgd_round(st, blas, d); });
      benchmark::RegisterBenchmark(
          ("powersgd_gemm" + tail).c_str(),
          [model, loops, r](benchmark::State& st) { bm_powersgd_gemm(st, model, loops, r); });
#endif
    }
  }
}

std::string pct(double f) { return f == 0.01 ? "1%" : "0.1%"; }

void register_all() {
  for (std::size_t d : {std::size_t{100000}, std::size_t{1000000}, std::size_t{10000000}}) {
    const std::string n = std::to_string(d);
    benchmark::RegisterBenchmark(("read/" + n).c_str(),
                                 [d](benchmark::State& st) { bm_read(st, d); });
    benchmark::RegisterBenchmark(("copy/" + n).c_str(),
                                 [d](benchmark::State& st) { bm_copy(st, d); });
    add_pair("identity", lc::identity{}, d);
    add_pair("fp16", lc::fp16{}, d);
    add_pair("bf16", lc::bf16{}, d);
    for (double f : {0.01, 0.001}) {
      add_pair("top_k@" + pct(f), lc::top_k(f), d);
      add_pair("random_k@" + pct(f), lc::random_k(f, 1), d);
      benchmark::RegisterBenchmark(
          ("gather@" + pct(f) + "/" + n).c_str(),
          [d, f](benchmark::State& st) { bm_gather(st, f, d, lc::sampling::uniform); });
      add_pair("random_k_stratified@" + pct(f), lc::random_k(f, 1, lc::sampling::stratified), d);
      benchmark::RegisterBenchmark(
          ("gather_stratified@" + pct(f) + "/" + n).c_str(),
          [d, f](benchmark::State& st) { bm_gather(st, f, d, lc::sampling::stratified); });
      benchmark::RegisterBenchmark(("peer/top_k_nth_element@" + pct(f) + "/" + n).c_str(),
                                   [d, f](benchmark::State& st) { bm_nth_element_peer(st, d, f); });
    }
    add_pair("qsgd@s=1", lc::qsgd(1, 1), d);
    add_pair("qsgd@s=15", lc::qsgd(15, 1), d);
    add_pair("scaled_sign", lc::scaled_sign{}, d);
    add_pair("natural", lc::natural(1), d);
    add_pair("error_feedback<top_k@1%>", lc::error_feedback<lc::top_k>(lc::top_k(0.01)), d);
    add_pair("ef21<top_k@1%>", lc::ef21<lc::top_k>(lc::top_k(0.01)), d);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Which build of the kernels ran: compiled for AVX2, dispatched to it at
  // run time, or baseline x86-64 (docs/compressors.md#dispatch).
  benchmark::AddCustomContext("kernel_isa",
                              loco::tensor::to_string(loco::tensor::active_kernel_isa()));
  register_all();
  register_powersgd();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
