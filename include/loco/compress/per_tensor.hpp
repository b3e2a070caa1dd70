#pragma once
// per_tensor<C>: C applied to each tensor of the model's layout on its own
// (per-layer top-k: every layer keeps its share of the entries, where a
// global top-k can starve layers whose values are small). One message
// carries one message of C per tensor, in layout order:
//   header (kind per_tensor, value type, d, length)
//   u32 tensor count
//   C's message for tensor 0, tensor 1, ...
// Each inner message is validated by C against its tensor's size; an error
// names the tensor. Tensor i's state is C's, built with stream
// (stream, i) mixed, so random compressors draw independently per tensor.
// docs/compressors.md#per_tensor
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <loco/compress/detail/common.hpp>
#include <loco/concepts/compressor.hpp>
#include <loco/error.hpp>
#include <loco/tensor/layout.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <vector>

namespace loco::compress {

template <class C>
class per_tensor {
  static_assert(check_compressor<C>());
  static_assert(!traits<C>::linear,
                "loco: per_tensor wraps a compressor that encodes messages; powersgd already "
                "works tensor by tensor");

 public:
  static constexpr bool unbiased = C::unbiased;
  static constexpr bool contractive = C::contractive;
  static constexpr bool lossless = traits<C>::lossless;
  static constexpr const char* name = "per_tensor";

  per_tensor(tensor::layout model, C inner) : layout_(std::move(model)), inner_(std::move(inner)) {
    if (layout_.empty()) throw config_error("compress::per_tensor: the layout has no tensors");
    (void)detail::checked_dimension(name, layout_.dimension());
  }
  const tensor::layout& layout() const noexcept { return layout_; }
  const C& inner() const noexcept { return inner_; }

  template <class T>
  class state {
   public:
    state(const per_tensor& c, std::size_t d, std::uint64_t stream) : scratch_(d) {
      c.layout_.require_dimension(d, "compress::per_tensor");
      parts_.reserve(c.layout_.size());
      for (std::size_t i = 0; i < c.layout_.size(); ++i) {
        parts_.emplace_back(c.inner_, c.layout_[i].size, tensor_stream(stream, i));
      }
    }
    std::size_t dimension() const noexcept { return scratch_.size(); }
    // C's state of tensor i.
    state_t<C, T>& part(std::size_t i) { return parts_.at(i); }

    void save(wire::buffer& out) const {
      for (const auto& p : parts_) save_state(p, out);
    }
    void restore(wire::view& in) {
      for (auto& p : parts_) restore_state(p, in);
    }

   private:
    friend class per_tensor;
    std::vector<state_t<C, T>> parts_;
    std::vector<T> scratch_;  // decode writes here, then out: a bad message leaves out as it was
  };

  // Throws non_finite_error for a NaN or Inf in v before any tensor's state
  // moves; on any other error of C, out is left as it was.
  template <class T>
  void encode(std::span<const T> v, state<T>& s, wire::buffer& out) const {
    detail::check_encode_size(name, s.dimension(), v.size());
    detail::check_finite(name, v);
    const std::size_t start = out.size();
    out.reserve(start + wire_bytes<T>(v.size()));
    wire::write_header(out, {wire::payload_kind::per_tensor, wire::value_type_of<T>(), 0,
                             static_cast<std::uint32_t>(v.size()), wire_bytes<T>(v.size())});
    out.put<std::uint32_t>(static_cast<std::uint32_t>(layout_.size()));
    try {
      for (std::size_t i = 0; i < layout_.size(); ++i) {
        const auto& t = layout_[i];
        inner_.encode(v.subspan(t.offset, t.size), s.parts_[i], out);
      }
    } catch (...) {
      out.resize(start);
      throw;
    }
  }

  // Reads one message and leaves `in` after it.
  template <class T>
  void decode(wire::view& in, state<T>& s, std::span<T> out) const {
    detail::check_decode_size(name, s.dimension(), out.size());
    const std::size_t d = out.size();
    const auto h =
        wire::read_header(in, {wire::payload_kind::per_tensor, wire::value_type_of<T>(), d});
    wire::check_length(in, h, wire_bytes<T>(d));
    const auto count = in.get<std::uint32_t>("tensors");
    if (count != layout_.size()) {
      in.fail("tensors", "message has " + std::to_string(count) + " tensors, the layout has " +
                             std::to_string(layout_.size()));
    }
    for (std::size_t i = 0; i < layout_.size(); ++i) {
      const auto& t = layout_[i];
      // A view of its own so that C's errors name the tensor.
      const std::string source = std::string(in.source()) + ", tensor '" + t.name + "'";
      wire::view part(in.rest(), source);
      inner_.decode(part, s.parts_[i], std::span<T>(s.scratch_).subspan(t.offset, t.size));
      (void)in.take(part.position(), "tensor");
    }
    std::copy(s.scratch_.begin(), s.scratch_.end(), out.begin());
  }
  template <class T>
  void decode(wire::view&& in, state<T>& s, std::span<T> out) const {
    decode(in, s, out);
  }

  template <class T = float>
  std::size_t wire_bytes(std::size_t d) const {
    layout_.require_dimension(d, "compress::per_tensor");
    std::size_t bytes = wire::header_bytes + 4;
    for (const auto& t : layout_) bytes += inner_.template wire_bytes<T>(t.size);
    return bytes;
  }

 private:
  // Distinct streams per tensor for any stream id a driver passes.
  static std::uint64_t tensor_stream(std::uint64_t stream, std::size_t i) noexcept {
    std::uint64_t z = stream + 0x9e3779b97f4a7c15ull * (static_cast<std::uint64_t>(i) + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  tensor::layout layout_;
  C inner_;
};

}  // namespace loco::compress
