#pragma once
// Exact top-k selection by magnitude, streaming the data once in the common
// case (docs/compressors.md#top_k):
//
//  1. estimate a threshold t from a sample of up to 32768 keys (runs of 64
//     entries at pseudo-random offsets, one run per 512 entries of v, at
//     most 512 runs; no sample below d = 8192), placed a few standard
//     deviations above the expected rank so that at least k entries have
//     |x| >= t with high probability;
//  2. one pass over v collects every entry with key >= t (index and bits),
//     32 entries per SIMD compare-and-movemask;
//  3. an MSD radix select on the candidates' keys finds the exact k-th
//     largest key; entries above it are kept, and ties at it go to the lowest
//     indices.
// If the sample misled (fewer than k candidates, or far too many), an exact
// histogram of the top 11 key bits over all of v gives a safe threshold and
// step 2 runs again: correct for any input, two more passes at worst.
// The key of an entry is its bit pattern without the sign; Inf and NaN have
// keys above every finite one, so with t clamped to the Inf key they are
// always candidates and the fused non-finite check costs nothing.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <loco/compress/detail/simd.hpp>
#include <loco/random/stream.hpp>
#include <span>
#include <vector>

namespace loco::compress::detail {

// The k-th largest (k >= 1) of keys, by most-significant-digit radix select
// with 11-bit digits. `scratch` must hold keys.size() entries; hist is reused.
template <class K>
K kth_largest_key(std::span<const K> keys, std::size_t k, std::span<K> scratch,
                  std::vector<std::uint32_t>& hist) {
  constexpr int key_bits = sizeof(K) == 4 ? 31 : 63;  // the sign bit is always clear
  constexpr int digit = 11;
  hist.resize(std::size_t{1} << digit);
  std::span<const K> cur = keys;
  K prefix = 0;
  std::size_t need = k;  // rank still wanted inside the current bucket, from the top
  int shift = key_bits;
  while (shift > 0) {
    const int width = shift >= digit ? digit : shift;
    shift -= width;
    const K mask = (K{1} << width) - 1;
    std::fill(hist.begin(), hist.begin() + (std::ptrdiff_t{1} << width), 0u);
    for (const K key : cur) ++hist[static_cast<std::size_t>((key >> shift) & mask)];
    std::size_t b = static_cast<std::size_t>(mask);
    std::size_t above = 0;
    for (;; --b) {
      if (above + hist[b] >= need) break;
      above += hist[b];
    }
    need -= above;
    prefix |= static_cast<K>(b) << shift;
    if (shift == 0 || hist[b] == 1 || need == hist[b]) {
      if (shift == 0) return prefix;
      // The bucket is decided at this digit: the answer is its smallest key
      // when every key in it is wanted, and its only key when it has one.
      K best = ~K{0};
      K only = 0;
      for (const K key : cur) {
        if ((key >> shift) == (prefix >> shift)) {
          best = std::min(best, key);
          only = key;
        }
      }
      return hist[b] == 1 ? only : best;
    }
    // Keep only the keys of the chosen bucket.
    std::size_t n = 0;
    for (const K key : cur) {
      scratch[n] = key;
      n += static_cast<std::size_t>((key >> shift) == (prefix >> shift));
    }
    cur = std::span<const K>(scratch.data(), n);
  }
  return prefix;
}

template <class T>
struct topk_scratch {
  using K = bits_t<T>;
  std::vector<K> sample;
  std::vector<std::uint32_t> cand_index;
  std::vector<K> cand_bits;
  std::vector<K> keys;
  std::vector<K> select;
  std::vector<std::uint32_t> hist;
};

inline constexpr std::size_t topk_max_runs = 512;
inline constexpr std::size_t topk_run = 64;
// Runs sampled for length d: one per 8 * 64 entries (the sample is at most
// 1/8 of v), at most 512 (32768 keys); below 16 runs no sample is taken.
inline constexpr std::size_t topk_runs(std::size_t d) noexcept {
  const std::size_t r = d / (8 * topk_run);
  return r < topk_max_runs ? r : topk_max_runs;
}

// Collects entries with key >= t into cand_index / cand_bits (which must
// have room for `cap` entries). Returns the count, or cap + 1 if there were
// more than cap.
template <class T>
std::size_t collect_candidates(std::span<const T> v, bits_t<T> t, std::size_t cap,
                               std::uint32_t* cand_index, bits_t<T>* cand_bits) noexcept {
  using K = bits_t<T>;
  const T* p = v.data();
  const std::size_t d = v.size();
  const std::size_t full = d - d % 32;
  std::size_t n = 0;
  for (std::size_t i = 0; i < full; i += 32) {
    std::uint32_t m = key_ge_mask32(p + i, t);
    if (m == 0) continue;
    if (n + 32 > cap) {
      // Near the cap: take the entries one by one and stop at it.
      while (m != 0) {
        if (n == cap) return cap + 1;
        const auto j = static_cast<std::size_t>(std::countr_zero(m));
        cand_index[n] = static_cast<std::uint32_t>(i + j);
        cand_bits[n] = std::bit_cast<K>(p[i + j]);
        ++n;
        m &= m - 1;
      }
      continue;
    }
    do {
      const auto j = static_cast<std::size_t>(std::countr_zero(m));
      cand_index[n] = static_cast<std::uint32_t>(i + j);
      cand_bits[n] = std::bit_cast<K>(p[i + j]);
      ++n;
      m &= m - 1;
    } while (m != 0);
  }
  for (std::size_t i = full; i < d; ++i) {
    if (abs_key(p[i]) >= t) {
      if (n == cap) return cap + 1;
      cand_index[n] = static_cast<std::uint32_t>(i);
      cand_bits[n] = std::bit_cast<K>(p[i]);
      ++n;
    }
  }
  return n;
}

// The sample rank used for the threshold: a few standard deviations above
// the expected number k * m / d of sampled keys at or above the k-th largest.
inline std::size_t sample_rank(std::size_t k, std::size_t d, std::size_t m) noexcept {
  const double expected = static_cast<double>(k) * static_cast<double>(m) / static_cast<double>(d);
  return static_cast<std::size_t>(std::ceil(expected + 4.0 * std::sqrt(expected) + 8.0));
}

// The key of rank r (from the top) among the m = runs * 64 sampled keys:
// runs of 64 consecutive entries at pseudo-random offsets in d / runs equal
// strides (each stride holds at least 8 runs' worth of entries).
template <class T>
bits_t<T> sampled_threshold(std::span<const T> v, std::size_t runs, std::size_t r,
                            topk_scratch<T>& s) {
  using K = bits_t<T>;
  const std::size_t d = v.size();
  const std::size_t m = runs * topk_run;
  if (s.sample.size() < topk_max_runs * topk_run) s.sample.resize(topk_max_runs * topk_run);
  if (s.select.size() < topk_max_runs * topk_run) s.select.resize(topk_max_runs * topk_run);
  const std::size_t stride = d / runs;
  std::size_t n = 0;
  for (std::size_t c = 0; c < runs; ++c) {
    const std::size_t start =
        c * stride + static_cast<std::size_t>(random::hash(0x746f706bULL, c) % (stride - topk_run));
    for (std::size_t j = 0; j < topk_run; ++j) s.sample[n++] = abs_key(v[start + j]);
  }
  return kth_largest_key<K>(std::span<const K>(s.sample.data(), m), r,
                            std::span<K>(s.select.data(), m), s.hist);
}

// The exact threshold bucket from a histogram of the top 11 key bits of all
// of v: every entry at or above the bucket holding the k-th largest key.
template <class T>
bits_t<T> histogram_threshold(std::span<const T> v, std::size_t k, topk_scratch<T>& s) {
  using K = bits_t<T>;
  constexpr int shift = (sizeof(K) == 4 ? 31 : 63) - 11;
  s.hist.assign(2048, 0);
  for (const T x : v) ++s.hist[static_cast<std::size_t>(abs_key(x) >> shift)];
  std::size_t above = 0;
  std::size_t b = 2047;
  for (;; --b) {
    if (above + s.hist[b] >= k) break;
    above += s.hist[b];
  }
  return static_cast<K>(static_cast<K>(b) << shift);
}

// The k entries of largest magnitude, ascending by index, ties at the k-th
// magnitude broken towards lower indices. Writes k indices and k raw bit
// patterns. Returns the index of the first non-finite entry, or d.
template <class T>
std::size_t top_k_select(std::span<const T> v, std::size_t k, topk_scratch<T>& s,
                         std::uint32_t* out_index, bits_t<T>* out_bits) {
  using K = bits_t<T>;
  const std::size_t d = v.size();
  constexpr K inf_key = float_bits<T>::exp_mask;
  K t = 0;
  std::size_t cap = d;
  const std::size_t runs = topk_runs(d);
  const std::size_t m = runs * topk_run;
  const std::size_t r = runs >= 16 ? sample_rank(k, d, m) : m;
  if (runs >= 16 && r < m / 2) {
    t = std::min(sampled_threshold(v, runs, r, s), inf_key);
    // Room for twice what the sample predicts; beyond that the sample was
    // unrepresentative and the histogram path takes over.
    cap = std::min(d, 2 * (r * (d / m + 1)) + 4096);
  }
  if (s.cand_index.size() < cap) {
    s.cand_index.resize(cap);
    s.cand_bits.resize(cap);
  }
  std::size_t n = collect_candidates(v, t, cap, s.cand_index.data(), s.cand_bits.data());
  if (n > cap || n < k) {
    t = std::min(histogram_threshold(v, k, s), inf_key);
    if (s.cand_index.size() < d) {
      s.cand_index.resize(d);
      s.cand_bits.resize(d);
    }
    n = collect_candidates(v, t, d, s.cand_index.data(), s.cand_bits.data());
  }
  // Any Inf or NaN is a candidate (t <= inf_key); the first one is the first in v.
  if (s.keys.size() < s.cand_index.size()) s.keys.resize(s.cand_index.size());
  if (s.select.size() < s.cand_index.size()) s.select.resize(s.cand_index.size());
  bool bad = false;
  for (std::size_t i = 0; i < n; ++i) {
    const K key = s.cand_bits[i] & float_bits<T>::abs_mask;
    s.keys[i] = key;
    bad |= key >= inf_key;
  }
  if (bad) {
    for (std::size_t i = 0; i < n; ++i) {
      if (s.keys[i] >= inf_key) return s.cand_index[i];
    }
  }
  const K kth = kth_largest_key<K>(std::span<const K>(s.keys.data(), n), k,
                                   std::span<K>(s.select.data(), n), s.hist);
  std::size_t greater = 0;
  for (std::size_t i = 0; i < n; ++i) greater += static_cast<std::size_t>(s.keys[i] > kth);
  std::size_t ties = k - greater;
  std::size_t w = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const K key = s.keys[i];
    bool take = key > kth;
    if (key == kth && ties != 0) {
      take = true;
      --ties;
    }
    if (take) {
      out_index[w] = s.cand_index[i];
      out_bits[w] = s.cand_bits[i];
      ++w;
    }
  }
  return d;
}

}  // namespace loco::compress::detail
