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
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
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

}  // namespace loco::compress::detail
