#pragma once
// random_k: keeps k randomly chosen entries. The support of round r is
// derived from (seed, r) alone, the same on every worker, so only the k
// values travel (shared_support). Encoding is O(k).
//   random_k           scaled by 1/P(j kept) (d/k): unbiased, U(d/k - 1)
//   random_k_unscaled  not scaled: contractive, B(k/d)
// (The scaling is part of the type because the traits are compile-time.)
// The support is a uniform k-subset, or with sampling::stratified one
// uniform index in each of k strata of consecutive indices: each index is
// kept with probability 1/(its stratum's size), k/d when k divides d, and
// the support costs k draws instead of a sort (the variance bounds become
// ceil(d/k) - 1 and 1 - 1/ceil(d/k)).
// docs/compressors.md#random_k
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/compress/detail/common.hpp>
#include <loco/compress/detail/sample.hpp>
#include <loco/error.hpp>
#include <loco/random/stream.hpp>
#include <loco/tensor/dispatch.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::compress {

// How random_k draws a round's support.
enum class sampling : std::uint8_t {
  uniform,     // a uniform k-subset of [0, d): random-k as the literature defines it
  stratified,  // one uniform index in each of k strata of about d/k consecutive indices
};

inline const char* name_of(sampling s) noexcept {
  return s == sampling::uniform ? "uniform" : "stratified";
}

template <bool Scaled>
class basic_random_k {
 public:
  static constexpr bool unbiased = Scaled;
  static constexpr bool contractive = !Scaled;
  static constexpr bool shared_support = true;
  static constexpr bool scaled = Scaled;
  static constexpr const char* name = Scaled ? "random_k" : "random_k_unscaled";
  static constexpr std::uint8_t scaled_flag = 1;
  static constexpr std::uint8_t stratified_flag = 2;

  // k = round(fraction * d), at least 1; fraction in (0, 1].
  explicit basic_random_k(double fraction, std::uint64_t seed = 0, sampling how = sampling::uniform)
      : rule_(detail::k_rule::fraction(name, fraction)), seed_(seed), sampling_(checked(how)) {}
  // Exactly k entries; k >= 1, and k <= d is checked when a state is built.
  static basic_random_k with_count(std::size_t k, std::uint64_t seed = 0,
                                   sampling how = sampling::uniform) {
    return basic_random_k(detail::k_rule::count(name, k), seed, checked(how));
  }

  std::size_t k(std::size_t d) const { return rule_.k(name, d); }
  std::uint64_t seed() const noexcept { return seed_; }
  sampling how() const noexcept { return sampling_; }

  // The state's round counter says which support the next encode uses; each
  // encode uses it, then advances it. Receivers read the round from the message.
  template <class T>
  class state {
   public:
    state(const basic_random_k& c, std::size_t d, std::uint64_t /*stream: the support is shared*/)
        : d_(detail::checked_dimension(name, d)), k_(c.k(d)), support_(k_) {}
    std::size_t dimension() const noexcept { return d_; }
    std::size_t k() const noexcept { return k_; }
    std::uint64_t round() const noexcept { return round_; }
    void set_round(std::uint64_t r) noexcept { round_ = r; }
    // The round counter, for checkpoints (the support is derived from it).
    void save(wire::buffer& out) const {
      out.put<std::uint64_t>(d_);
      out.put<std::uint64_t>(k_);
      out.put<std::uint64_t>(round_);
    }
    void restore(wire::view& in) {
      detail::restore_dimension(in, name, d_);
      const auto k = in.get<std::uint64_t>("k");
      if (k != k_) {
        in.fail("k", "state saved with k = " + std::to_string(k) +
                         ", this one has k = " + std::to_string(k_));
      }
      round_ = in.get<std::uint64_t>("round");
    }

   private:
    friend class basic_random_k;
    std::size_t d_;
    std::size_t k_;
    std::uint64_t round_ = 0;
    std::vector<std::uint32_t> support_;
    std::uint64_t cached_round_ = 0;
    sampling cached_sampling_ = sampling::uniform;
    bool cached_ = false;
    detail::sample_scratch scratch_;
  };

  // The ascending k indices of round r: the same on every worker with the
  // same seed and sampling. Computed into the state (O(k) expected) and
  // cached for r.
  template <class T>
  std::span<const std::uint32_t> support(state<T>& s, std::uint64_t round) const {
    if (!s.cached_ || s.cached_round_ != round || s.cached_sampling_ != sampling_) {
      random::stream rng(seed_, random::hash(0x72616e646b5f6b00ULL, round));
      if (sampling_ == sampling::stratified) {
        // Integer arithmetic: every path draws the same support.
        tensor::vectorized([&] { detail::stratified_subset(rng, s.d_, s.k_, s.support_.data()); });
      } else {
        detail::uniform_subset(rng, s.d_, s.k_, s.support_.data(), s.scratch_);
      }
      s.cached_round_ = round;
      s.cached_sampling_ = sampling_;
      s.cached_ = true;
    }
    return {s.support_.data(), s.k_};
  }

  // The values sent for v: v[j] (times d/k when scaled) on the support.
  // Only those k entries are read, so only they are checked for NaN and Inf;
  // a finite entry whose scaled value overflows throws non_finite_error too.
  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.d_, v.size());
    const std::uint64_t round = s.round_;
    const auto idx = support(s, round);
    const std::size_t k = s.k_;
    const std::size_t start = out.size();
    const std::size_t total = wire_bytes<T>(s.d_);
    out.reserve(start + total);
    wire::write_header(out, {wire::payload_kind::random_k, wire::value_type_of<T>(), flags(),
                             static_cast<std::uint32_t>(s.d_), total});
    out.put<std::uint32_t>(static_cast<std::uint32_t>(k));
    out.put<std::uint64_t>(seed_);
    out.put<std::uint64_t>(round);
    std::byte* body = out.grow(k * sizeof(T)).data();
    const scales<T> scale(s.d_, k, sampling_);
    const T* p = v.data();
    bool bad = false;
    constexpr std::size_t ahead = 32;  // the support is sparse: fetch lines ahead of use
    for (std::size_t i = 0; i < k; ++i) {
      if (i + ahead < k) __builtin_prefetch(p + idx[i + ahead]);
      // Checking the scaled value also catches a finite entry that d/k
      // scales past T's range (the receiver would reject an Inf).
      const T y = p[idx[i]] * scale(i);
      bad |= !tensor::is_finite(y);
      wire::store_le(body + sizeof(T) * i, y);
    }
    if (bad) {
      out.resize(start);
      for (std::size_t i = 0; i < k; ++i) {
        if (!tensor::is_finite(p[idx[i]])) detail::throw_non_finite(name, idx[i]);
      }
      for (std::size_t i = 0; i < k; ++i) {
        if (!tensor::is_finite(p[idx[i]] * scale(i))) {
          throw non_finite_error("compress::" + std::string(name) + " input * d/k (overflow)",
                                 idx[i]);
        }
      }
    }
    s.round_ = round + 1;
  }

  // Reads one message and leaves `in` after it; zeros off the support.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::decode_through_sparse(*this, in, s, out);
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  // decode without the zeros: calls put(j, x) for each entry of the
  // support, in ascending j; a non-finite value throws after the calls.
  template <class T, class Put>
  void decode_sparse(wire::view& in, state<T>& s, Put&& put) const {
    const std::size_t d = s.d_;
    const auto h = wire::read_header(in, {wire::payload_kind::random_k, wire::value_type_of<T>(), d,
                                          scaled_flag | stratified_flag});
    if ((h.flags & scaled_flag) != (Scaled ? scaled_flag : 0)) {
      in.fail("flags", std::string("the message is ") + (Scaled ? "unscaled" : "scaled") +
                           ", the receiver is " + name);
    }
    if ((h.flags & stratified_flag) != (flags() & stratified_flag)) {
      const auto sent = (h.flags & stratified_flag) ? sampling::stratified : sampling::uniform;
      in.fail("flags", std::string("the message's support is ") + name_of(sent) +
                           ", the receiver samples " + name_of(sampling_));
    }
    const std::uint32_t k = in.get<std::uint32_t>("k");
    detail::check_message_k(in, k, s.k_, d);
    const std::uint64_t seed = in.get<std::uint64_t>("seed");
    if (seed != seed_) {
      in.fail("seed", "message was made with seed " + std::to_string(seed) +
                          ", the receiver's is " + std::to_string(seed_));
    }
    const std::uint64_t round = in.get<std::uint64_t>("round");
    wire::check_length(in, h, wire_bytes<T>(d));
    const std::byte* val = in.take(sizeof(T) * std::size_t{k}, "values").data();
    const auto idx = support(s, round);
    bool bad = false;
    for (std::size_t i = 0; i < k; ++i) {
      const T x = wire::load_le<T>(val + sizeof(T) * i);
      bad |= !tensor::is_finite(x);
      put(std::size_t{idx[i]}, x);
    }
    if (bad) {
      for (std::size_t i = 0; i < k; ++i) {
        if (!tensor::is_finite(wire::load_le<T>(val + sizeof(T) * i))) {
          in.fail("values", "non-finite value at position " + std::to_string(i));
        }
      }
    }
  }

  // Header, k (u32), seed (u64), round (u64), k values (T).
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    return wire::header_bytes + 4 + 8 + 8 + k(d) * sizeof(T);
  }

 private:
  basic_random_k(detail::k_rule r, std::uint64_t seed, sampling how)
      : rule_(r), seed_(seed), sampling_(how) {}
  static sampling checked(sampling how) {
    if (how != sampling::uniform && how != sampling::stratified) {
      throw config_error("compress::" + std::string(name) + ": sampling " +
                         std::to_string(static_cast<int>(how)) +
                         " is neither uniform nor stratified");
    }
    return how;
  }
  std::uint8_t flags() const noexcept {
    return static_cast<std::uint8_t>((Scaled ? scaled_flag : 0) |
                                     (sampling_ == sampling::stratified ? stratified_flag : 0));
  }

  // Entry i's scale, 1/P(kept): d/k for a uniform support, the size of
  // stratum i for a stratified one (1 unscaled).
  template <class T>
  class scales {
   public:
    scales(std::size_t d, std::size_t k, sampling how)
        : strata_(d, k),
          stratified_(how == sampling::stratified),
          uniform_(static_cast<T>(static_cast<double>(d) / static_cast<double>(k))) {}
    T operator()(std::size_t i) const noexcept {
      if constexpr (!Scaled) {
        return T(1);
      } else {
        return stratified_ ? static_cast<T>(strata_.size(i)) : uniform_;
      }
    }

   private:
    detail::strata strata_;
    bool stratified_;
    T uniform_;
  };

  detail::k_rule rule_;
  std::uint64_t seed_;
  sampling sampling_;
};

using random_k = basic_random_k<true>;
using random_k_unscaled = basic_random_k<false>;

}  // namespace loco::compress
