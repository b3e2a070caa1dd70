#pragma once
// wire::buffer: the bytes of one message. It grows like a vector but never
// zero-fills, and clear() keeps its capacity, so a buffer reused every round
// allocates nothing in steady state.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <loco/wire/endian.hpp>
#include <memory>
#include <span>

namespace loco::wire {

class buffer {
 public:
  buffer() = default;
  explicit buffer(std::size_t capacity) { reserve(capacity); }
  buffer(const buffer& other) { assign(other.bytes()); }
  buffer& operator=(const buffer& other) {
    if (this != &other) assign(other.bytes());
    return *this;
  }
  buffer(buffer&& other) noexcept
      : data_(std::move(other.data_)), size_(other.size_), capacity_(other.capacity_) {
    other.size_ = other.capacity_ = 0;
  }
  buffer& operator=(buffer&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.size_ = other.capacity_ = 0;
    return *this;
  }
  ~buffer() = default;

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  std::byte* data() noexcept { return data_.get(); }
  const std::byte* data() const noexcept { return data_.get(); }
  std::span<const std::byte> bytes() const noexcept { return {data_.get(), size_}; }
  std::span<std::byte> bytes() noexcept { return {data_.get(), size_}; }

  void clear() noexcept { size_ = 0; }
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    auto fresh = std::make_unique_for_overwrite<std::byte[]>(n);
    if (size_ != 0) std::memcpy(fresh.get(), data_.get(), size_);
    data_ = std::move(fresh);
    capacity_ = n;
  }
  // Sets the size; new bytes are left uninitialised (callers overwrite them).
  void resize(std::size_t n) {
    if (n > capacity_) reserve(std::max(n, capacity_ + capacity_ / 2));
    size_ = n;
  }
  // Appends n uninitialised bytes and returns them for the caller to fill:
  // packing kernels write straight into the message.
  std::span<std::byte> grow(std::size_t n) {
    const std::size_t at = size_;
    resize(size_ + n);
    return {data_.get() + at, n};
  }
  void assign(std::span<const std::byte> src) {
    size_ = 0;
    append(src.data(), src.size());
  }
  void append(const void* src, std::size_t n) {
    if (n == 0) return;
    std::memcpy(grow(n).data(), src, n);
  }
  template <wire_scalar T>
  void put(T value) {
    store_le(grow(sizeof(T)).data(), value);
  }
  // Overwrites a scalar written earlier (lengths known only at the end).
  template <wire_scalar T>
  void put_at(std::size_t offset, T value) noexcept {
    store_le(data_.get() + offset, value);
  }

  friend bool operator==(const buffer& a, const buffer& b) noexcept {
    return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data(), b.data(), a.size_) == 0);
  }

 private:
  std::unique_ptr<std::byte[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace loco::wire
