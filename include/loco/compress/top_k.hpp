#pragma once
// top_k: keeps the k entries of largest magnitude; contractive, B(k/d),
// deterministic (ties at the k-th magnitude go to the lowest indices).
// docs/compressors.md#top_k
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/compress/detail/common.hpp>
#include <loco/compress/detail/select.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>

namespace loco::compress {

class top_k {
 public:
  static constexpr bool unbiased = false;
  static constexpr bool contractive = true;
  static constexpr const char* name = "top_k";

  // k = round(fraction * d), at least 1; fraction in (0, 1].
  explicit top_k(double fraction) : rule_(detail::k_rule::fraction(name, fraction)) {}
  // Exactly k entries; k >= 1, and k <= d is checked when a state is built.
  static top_k with_count(std::size_t k) { return top_k(detail::k_rule::count(name, k)); }

  std::size_t k(std::size_t d) const { return rule_.k(name, d); }

  template <class T>
  class state {
   public:
    state(const top_k& c, std::size_t d, std::uint64_t /*stream*/)
        : d_(detail::checked_dimension(name, d)), k_(c.k(d)) {}
    std::size_t dimension() const noexcept { return d_; }
    std::size_t k() const noexcept { return k_; }

   private:
    friend class top_k;
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
    const std::size_t start = out.size();
    const std::size_t total = wire_bytes<T>(s.d_);
    out.reserve(start + total);
    wire::write_header(out, {wire::payload_kind::top_k, wire::value_type_of<T>(), 0,
                             static_cast<std::uint32_t>(s.d_), total});
    out.put<std::uint32_t>(static_cast<std::uint32_t>(k));
    std::byte* body = out.grow(k * (4 + sizeof(T))).data();
    if constexpr (std::endian::native == std::endian::little) {
      // Select straight into the message: k indices, then k values.
      auto* idx = reinterpret_cast<std::uint32_t*>(body);
      auto* bits = reinterpret_cast<detail::bits_t<T>*>(body + 4 * k);
      const bool aligned = reinterpret_cast<std::uintptr_t>(idx) % alignof(std::uint32_t) == 0 &&
                           reinterpret_cast<std::uintptr_t>(bits) % alignof(detail::bits_t<T>) == 0;
      if (aligned) {
        select(v, s, idx, bits, out, start);
        return;
      }
    }
    s.index_.resize(k);
    s.bits_.resize(k);
    select(v, s, s.index_.data(), s.bits_.data(), out, start);
    for (std::size_t i = 0; i < k; ++i) wire::store_le(body + 4 * i, s.index_[i]);
    for (std::size_t i = 0; i < k; ++i) wire::store_le(body + 4 * k + sizeof(T) * i, s.bits_[i]);
  }

  // Reads one message and leaves `in` after it. Indices must be in range and
  // strictly ascending (so none repeats), values finite.
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
    const auto h = wire::read_header(in, {wire::payload_kind::top_k, wire::value_type_of<T>(), d});
    const std::uint32_t k = in.get<std::uint32_t>("k");
    detail::check_message_k(in, k, s.k_, d);
    wire::check_length(in, h, wire_bytes<T>(d));
    const std::byte* idx = in.take(4 * std::size_t{k}, "indices").data();
    const std::byte* val = in.take(sizeof(T) * std::size_t{k}, "values").data();
    std::int64_t prev = -1;
    for (std::size_t i = 0; i < k; ++i) {
      const std::uint32_t j = wire::load_le<std::uint32_t>(idx + 4 * i);
      detail::check_next_index(in, j, i, d, prev);
      const T x = wire::load_le<T>(val + sizeof(T) * i);
      if (!tensor::is_finite(x))
        in.fail("values", "non-finite value at position " + std::to_string(i));
      put(std::size_t{j}, x);
    }
  }

  // Header, k (u32), k indices (u32), k values (T).
  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    return wire::header_bytes + 4 + k(d) * (4 + sizeof(T));
  }

 private:
  explicit top_k(detail::k_rule r) : rule_(r) {}

  template <class T>
  static void select(std::span<const T> v, state<T>& s, std::uint32_t* idx, detail::bits_t<T>* bits,
                     wire::buffer& out, std::size_t start) {
    const std::size_t bad = detail::top_k_select(v, s.k_, s.scratch_, idx, bits);
    if (bad != v.size()) {
      out.resize(start);
      detail::throw_non_finite(name, bad);
    }
  }

  detail::k_rule rule_;
};

}  // namespace loco::compress
