#pragma once
// wire::view: a bounds-checked reader over untrusted bytes. Every read names
// the field it reads, so a short or malformed message becomes a
// loco::protocol_error saying which peer sent it and which field broke.
#include <cstddef>
#include <cstdint>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/endian.hpp>
#include <span>
#include <string>
#include <string_view>

namespace loco::wire {

class view {
 public:
  view() = default;
  explicit view(std::span<const std::byte> bytes, std::string_view source = "local") noexcept
      : bytes_(bytes), source_(source) {}
  explicit view(const buffer& b, std::string_view source = "local") noexcept
      : bytes_(b.bytes()), source_(source) {}

  std::size_t size() const noexcept { return bytes_.size(); }
  std::size_t position() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }
  std::string_view source() const noexcept { return source_; }
  std::span<const std::byte> rest() const noexcept { return bytes_.subspan(pos_); }

  template <wire_scalar T>
  T get(std::string_view field) {
    need(sizeof(T), field);
    T v = load_le<T>(bytes_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  // The next n bytes, checked against what is left.
  std::span<const std::byte> take(std::size_t n, std::string_view field) {
    need(n, field);
    auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  // A message must be consumed exactly: trailing bytes are an error too.
  void expect_end(std::string_view field) const {
    if (pos_ != bytes_.size()) {
      fail(field, std::to_string(bytes_.size() - pos_) + " unexpected trailing bytes");
    }
  }
  [[noreturn]] void fail(std::string_view field, const std::string& what) const {
    throw protocol_error(std::string(source_), std::string(field), what);
  }

 private:
  void need(std::size_t n, std::string_view field) const {
    if (n > bytes_.size() - pos_) {
      fail(field, "truncated: needs " + std::to_string(n) + " bytes, " +
                      std::to_string(bytes_.size() - pos_) + " left");
    }
  }

  std::span<const std::byte> bytes_;
  std::size_t pos_ = 0;
  std::string_view source_ = "local";
};

}  // namespace loco::wire
