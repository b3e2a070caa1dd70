#pragma once
// A uniform k-subset of [0, d), ascending, in O(k) expected time and with
// integer arithmetic only, so every platform derives the same subset from
// the same generator (docs/compressors.md#random_k).
//
// The subset is the set of the first m distinct values of an i.i.d. uniform
// sequence, which is uniform over m-subsets by symmetry. It is computed in
// batches: draw m values, LSD-radix-sort and deduplicate them, then draw the
// missing ones, sort and merge them in, until m are distinct. For m <= d/2
// the expected number of repeats is at most m/4 and shrinks geometrically.
// For k > d/2 the complement (d - k excluded indices) is drawn instead.
//
// stratified_subset draws one index in each of k strata instead: ascending by
// construction, with no sort and no repeats.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <loco/compress/detail/common.hpp>
#include <loco/random/stream.hpp>
#include <vector>

namespace loco::compress::detail {

struct sample_scratch {
  std::vector<std::uint32_t> a, b;
  std::vector<std::uint32_t> hist;
};

// Sorts x[0..n) ascending; values < 2^bits. tmp holds n entries. LSD radix
// with the fewest passes of at most 12-bit digits (two passes up to 2^24).
inline void radix_sort_u32(std::uint32_t* x, std::uint32_t* tmp, std::size_t n, int bits,
                           std::vector<std::uint32_t>& hist) {
  const int passes = (bits + 11) / 12;
  const int digit = (bits + passes - 1) / passes;
  const std::uint32_t mask = (1u << digit) - 1u;
  hist.resize(std::size_t{1} << digit);
  std::uint32_t* src = x;
  std::uint32_t* dst = tmp;
  for (int shift = 0; shift < bits; shift += digit) {
    std::fill(hist.begin(), hist.end(), 0u);
    for (std::size_t i = 0; i < n; ++i) ++hist[(src[i] >> shift) & mask];
    std::uint32_t sum = 0;
    for (auto& h : hist) {
      const std::uint32_t c = h;
      h = sum;
      sum += c;
    }
    for (std::size_t i = 0; i < n; ++i) dst[hist[(src[i] >> shift) & mask]++] = src[i];
    std::swap(src, dst);
  }
  if (src != x) std::copy(src, src + n, x);
}

// Removes repeats from sorted x[0..n); returns the new length.
inline std::size_t dedupe_sorted(std::uint32_t* x, std::size_t n) {
  if (n == 0) return 0;
  std::size_t w = 1;
  // Compared with the last value read, kept in a register: comparing with
  // x[w - 1] waited each turn for the store just made.
  std::uint32_t last = x[0];
  for (std::size_t i = 1; i < n; ++i) {
    const std::uint32_t v = x[i];
    x[w] = v;
    w += static_cast<std::size_t>(v != last);
    last = v;
  }
  return w;
}

// m distinct uniform values of [0, d), ascending, into s.a[0..m).
inline void distinct_sorted(random::stream& state_rng, std::size_t d, std::size_t m,
                            sample_scratch& s) {
  random::stream rng = state_rng;  // a local copy stays in registers while drawing
  if (s.a.size() < m) {
    s.a.resize(m);
    s.b.resize(m);
  }
  std::uint32_t* a = s.a.data();
  std::uint32_t* b = s.b.data();
  const int bits = d <= 1 ? 1 : static_cast<int>(std::bit_width(static_cast<std::uint64_t>(d - 1)));
  std::size_t have = 0;
  while (have < m) {
    // Draw the missing values into the tail, sort and deduplicate them.
    const std::size_t want = m - have;
    for (std::size_t i = 0; i < want; ++i) a[have + i] = static_cast<std::uint32_t>(rng.below(d));
    radix_sort_u32(a + have, b, want, bits, s.hist);
    const std::size_t fresh = dedupe_sorted(a + have, want);
    if (have == 0) {
      have = fresh;
      continue;
    }
    // Merge head and tail into b, dropping tail values the head has.
    std::size_t i = 0, j = 0, w = 0;
    const std::uint32_t* tail = a + have;
    while (i < have && j < fresh) {
      if (a[i] < tail[j]) {
        b[w++] = a[i++];
      } else if (tail[j] < a[i]) {
        b[w++] = tail[j++];
      } else {
        b[w++] = a[i++];
        ++j;
      }
    }
    while (i < have) b[w++] = a[i++];
    while (j < fresh) b[w++] = tail[j++];
    std::copy(b, b + w, a);
    have = w;
  }
  state_rng = rng;
}

// The k-subset into out[0..k), ascending.
inline void uniform_subset(random::stream& rng, std::size_t d, std::size_t k, std::uint32_t* out,
                           sample_scratch& s) {
  if (2 * k <= d) {
    distinct_sorted(rng, d, k, s);
    std::copy(s.a.data(), s.a.data() + k, out);
    return;
  }
  const std::size_t excluded = d - k;
  distinct_sorted(rng, d, excluded, s);
  std::size_t e = 0, w = 0;
  for (std::size_t i = 0; i < d; ++i) {
    if (e < excluded && s.a[e] == i) {
      ++e;
    } else {
      out[w++] = static_cast<std::uint32_t>(i);
    }
  }
}

// [0, d) cut into k strata of consecutive indices: the first d mod k of
// size floor(d/k) + 1, the others of floor(d/k), so stratum j starts at
// j floor(d/k) + min(j, d mod k) (no division per index).
struct strata {
  std::size_t base, longer;  // floor(d/k); how many strata have base + 1
  strata(std::size_t d, std::size_t k) : base(d / k), longer(d % k) {}
  std::size_t size(std::size_t j) const noexcept { return base + (j < longer ? 1 : 0); }
  std::size_t start(std::size_t j) const noexcept { return j * base + std::min(j, longer); }
};

// One uniform index in each stratum, into out[0..k), ascending. The offsets
// come from the 16-lane generator, 32 bits each, as Lemire's
// multiply-shift: offset = (u * size) >> 32, exact because the rare u whose
// low product half falls under 2^32 mod size (probability < size / 2^32)
// is drawn again, from the scalar stream. Entry j always takes lane j mod
// 16, so every build derives the same support.
inline void stratified_subset(random::stream& rng, std::size_t d, std::size_t k,
                              std::uint32_t* out) {
  // Vector types for locals only (their alignment follows the target).
  using u32x8 = std::uint32_t __attribute__((vector_size(32)));
  using u64x8 = std::uint64_t __attribute__((vector_size(64)));
  constexpr std::size_t w = lane_rng::lanes;
  static_assert(w == 16, "two halves of 8 lanes");
  const strata s(d, k);
  lane_rng lanes(rng);
  const auto base = static_cast<std::uint32_t>(s.base);
  const auto longer = static_cast<std::uint32_t>(s.longer);
  constexpr u32x8 iota = {0, 1, 2, 3, 4, 5, 6, 7};
  for (std::size_t j0 = 0; j0 < k; j0 += w) {
    std::uint32_t u[w], low[w];
    lanes.next(u);
    u32x8 close = {};  // lanes that may need a new draw
    for (std::size_t h = 0; h < w; h += 8) {
      u32x8 uh;
      std::memcpy(&uh, u + h, sizeof(uh));
      const u32x8 j = static_cast<std::uint32_t>(j0 + h) + iota;
      const u32x8 size = base - static_cast<u32x8>(j < longer);  // true is all ones
      const u64x8 m = __builtin_convertvector(uh, u64x8) * __builtin_convertvector(size, u64x8);
      const u32x8 high = __builtin_convertvector(m >> 32, u32x8);
      const u32x8 lo = __builtin_convertvector(m, u32x8);
      close |= static_cast<u32x8>(lo < size);
      const u32x8 index = j * base + (j < longer ? j : longer) + high;  // strata::start + offset
      std::memcpy(low + h, &lo, sizeof(lo));
      std::memcpy(u + h, &index, sizeof(index));  // u now holds the indices
    }
    const std::size_t n = std::min(w, k - j0);
    std::uint32_t any = 0;
    for (std::size_t l = 0; l < 8; ++l) any |= close[l];
    if (any != 0) {
      for (std::size_t l = 0; l < n; ++l) {
        const auto size = static_cast<std::uint32_t>(s.size(j0 + l));
        const std::uint32_t threshold = (0u - size) % size;
        while (low[l] < threshold) {
          const std::uint64_t m = (rng() >> 32) * size;
          u[l] = static_cast<std::uint32_t>(s.start(j0 + l) + (m >> 32));
          low[l] = static_cast<std::uint32_t>(m);
        }
      }
    }
    std::memcpy(out + j0, u, n * sizeof(std::uint32_t));
  }
}

}  // namespace loco::compress::detail
