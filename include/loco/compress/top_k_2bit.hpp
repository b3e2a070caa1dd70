#pragma once
// top_k_2bit: top_k's k entries in 2 bits each, with their indices packed in
// bit_width(d - 1) bits: the sparse message of SparseLoCo (arXiv 2508.15706).
// A selected value's code is its sign and whether its magnitude reaches the
// mean magnitude of the k selected; the receiver sets each entry to the mean
// of the selected values that share its code (four levels, sent in T). Per
// entry 2 + bit_width(d - 1) bits instead of top_k's 32 + 8 sizeof(T): 14
// against 64 in a chunk of 4096 (per_tensor over layout::chunks).
// Biased. Not contractive in the strict sense: each level is the mean of its
// group, so the selected entries' error is at most their norm and
// ||C(v) - v|| <= ||v||. Meant to run under error_feedback.
// docs/compressors.md#top_k_2bit
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/compress/detail/common.hpp>
#include <loco/compress/detail/select.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/bit_stream.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/endian.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::compress {

class top_k_2bit {
 public:
  static constexpr bool unbiased = false;
  static constexpr bool contractive = false;
  static constexpr const char* name = "top_k_2bit";
  static constexpr unsigned code_bits = 2;
  static constexpr std::size_t levels = 4;

  // k = round(fraction * d), at least 1; fraction in (0, 1].
  explicit top_k_2bit(double fraction) : rule_(detail::k_rule::fraction(name, fraction)) {}
  // Exactly k entries; k >= 1, and k <= d is checked when a state is built.
  static top_k_2bit with_count(std::size_t k) { return top_k_2bit(detail::k_rule::count(name, k)); }

  std::size_t k(std::size_t d) const { return rule_.k(name, d); }
  // Bits per index: enough for d - 1, at least 1.
  static unsigned index_bits(std::size_t d) noexcept {
    return std::max(1u, static_cast<unsigned>(std::bit_width(d - 1)));
  }

  template <class T>
  class state {
   public:
    state(const top_k_2bit& c, std::size_t d, std::uint64_t /*stream*/)
        : d_(detail::checked_dimension(name, d)), k_(c.k(d)), index_(k_), bits_(k_) {}
    std::size_t dimension() const noexcept { return d_; }
    std::size_t k() const noexcept { return k_; }

   private:
    friend class top_k_2bit;
    std::size_t d_;
    std::size_t k_;
    detail::topk_scratch<T> scratch_;
    std::vector<std::uint32_t> index_;
    std::vector<detail::bits_t<T>> bits_;
  };

  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.d_, v.size());
    const std::size_t k = s.k_;
    const std::size_t bad = detail::top_k_select(v, k, s.scratch_, s.index_.data(), s.bits_.data());
    if (bad != v.size()) detail::throw_non_finite(name, bad);

    // Running means: a group's values share a sign, so no step overflows.
    T threshold = 0;
    for (std::size_t i = 0; i < k; ++i) {
      threshold += (std::abs(value<T>(s, i)) - threshold) / static_cast<T>(i + 1);
    }
    std::array<T, levels> level{};
    std::array<std::size_t, levels> count{};
    for (std::size_t i = 0; i < k; ++i) {
      const T x = value<T>(s, i);
      const unsigned c = code_of(x, threshold);
      level[c] += (x - level[c]) / static_cast<T>(++count[c]);
    }

    const unsigned w = index_bits(s.d_);
    const std::size_t total = wire_bytes<T>(s.d_);
    out.reserve(out.size() + total);
    wire::write_header(out, {wire::payload_kind::top_k_2bit, wire::value_type_of<T>(), 0,
                             static_cast<std::uint32_t>(s.d_), total});
    out.put<std::uint32_t>(static_cast<std::uint32_t>(k));
    std::byte* body = out.grow(levels * sizeof(T) + wire::bit_stream_bytes(k, w) +
                               wire::bit_stream_bytes(k, code_bits))
                          .data();
    for (std::size_t c = 0; c < levels; ++c) wire::store_le(body + c * sizeof(T), level[c]);
    wire::bit_writer indices(body + levels * sizeof(T));
    for (std::size_t i = 0; i < k; ++i) indices.put(s.index_[i], w);
    indices.finish();
    wire::bit_writer codes(body + levels * sizeof(T) + wire::bit_stream_bytes(k, w));
    for (std::size_t i = 0; i < k; ++i) codes.put(code_of(value<T>(s, i), threshold), code_bits);
    codes.finish();
  }

  // Reads one message and leaves `in` after it. Levels must be finite,
  // indices in range and strictly ascending, padding bits zero.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::decode_through_sparse(*this, in, s, out);
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  // decode without the zeros: calls put(j, x) for each sent entry, in
  // ascending j, as it validates them (a bad message throws part way).
  template <class T, class Put>
  void decode_sparse(wire::view& in, state<T>& s, Put&& put) const {
    const std::size_t d = s.d_;
    const auto h =
        wire::read_header(in, {wire::payload_kind::top_k_2bit, wire::value_type_of<T>(), d});
    const std::uint32_t k = in.get<std::uint32_t>("k");
    detail::check_message_k(in, k, s.k_, d);
    wire::check_length(in, h, wire_bytes<T>(d));
    const unsigned w = index_bits(d);
    const std::byte* lv = in.take(levels * sizeof(T), "levels").data();
    std::array<T, levels> level{};
    for (std::size_t c = 0; c < levels; ++c) {
      level[c] = wire::load_le<T>(lv + c * sizeof(T));
      if (!tensor::is_finite(level[c]))
        in.fail("levels", "level " + std::to_string(c) + " is not finite");
    }
    wire::bit_reader indices(in.take(wire::bit_stream_bytes(k, w), "indices").data());
    wire::bit_reader codes(in.take(wire::bit_stream_bytes(k, code_bits), "codes").data());
    std::int64_t prev = -1;
    for (std::size_t i = 0; i < k; ++i) {
      const std::uint32_t j = indices.get(w);
      detail::check_next_index(in, j, i, d, prev);
      put(std::size_t{j}, level[codes.get(code_bits)]);
    }
    if (!indices.padding_is_zero()) in.fail("indices", "padding bits are not zero");
    if (!codes.padding_is_zero()) in.fail("codes", "padding bits are not zero");
  }

  // Header, k (u32), 4 levels (T), k indices of index_bits(d) bits, k codes
  // of 2 bits; each bit stream padded to whole bytes.
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    const std::size_t n = k(d);
    return wire::header_bytes + 4 + levels * sizeof(T) + wire::bit_stream_bytes(n, index_bits(d)) +
           wire::bit_stream_bytes(n, code_bits);
  }

 private:
  explicit top_k_2bit(detail::k_rule r) : rule_(r) {}

  template <class T>
  static T value(const state<T>& s, std::size_t i) noexcept {
    return std::bit_cast<T>(s.bits_[i]);
  }
  // Codes in the order of their levels: large negative, small negative,
  // small non-negative, large non-negative.
  template <class T>
  static unsigned code_of(T x, T threshold) noexcept {
    const bool large = std::abs(x) >= threshold;
    if (x < 0) return large ? 0u : 1u;
    return large ? 3u : 2u;
  }

  detail::k_rule rule_;
};

}  // namespace loco::compress
