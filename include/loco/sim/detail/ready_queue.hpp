#pragma once
// The simulator's ranks by scheduling key: a 4-ary min-heap on (key, rank)
// with each rank's position, so changing a key is O(log n) in place, with no
// allocation and the keys beside each other in one array (a std::set of
// 100,000 nodes cost a cache miss per level).
#include <cstddef>
#include <utility>
#include <vector>

namespace loco::sim::detail {

class ready_queue {
 public:
  struct entry {
    double key;
    int rank;
  };

  explicit ready_queue(int n) : pos_(static_cast<std::size_t>(n), npos) {
    heap_.reserve(static_cast<std::size_t>(n));
  }

  bool empty() const noexcept { return heap_.empty(); }
  bool contains(int r) const noexcept { return pos_[static_cast<std::size_t>(r)] != npos; }
  // The smallest (key, rank); the queue must not be empty.
  const entry& top() const noexcept { return heap_.front(); }
  // The smallest entry of another rank than r, or nullptr.
  const entry* first_other_than(int r) const noexcept {
    if (heap_.empty()) return nullptr;
    if (heap_.front().rank != r) return &heap_.front();
    const entry* best = nullptr;
    for (std::size_t c = 1; c <= arity && c < heap_.size(); ++c) {
      if (!best || less(heap_[c], *best)) best = &heap_[c];
    }
    return best;
  }

  // Queues r with key t, or moves it there.
  void set(int r, double t) {
    auto& p = pos_[static_cast<std::size_t>(r)];
    if (p == npos) {
      p = heap_.size();
      heap_.push_back({t, r});
      up(p);
      return;
    }
    const bool earlier = t < heap_[p].key;
    heap_[p].key = t;
    if (earlier) {
      up(p);
    } else {
      down(p);
    }
  }

  void erase(int r) {
    auto& p = pos_[static_cast<std::size_t>(r)];
    if (p == npos) return;
    const std::size_t i = p;
    p = npos;
    const entry last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;
    place(i, last);
    if (i > 0 && less(heap_[i], heap_[(i - 1) / arity])) {
      up(i);
    } else {
      down(i);
    }
  }

 private:
  static constexpr std::size_t arity = 4;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  static bool less(const entry& a, const entry& b) noexcept {
    return a.key < b.key || (a.key == b.key && a.rank < b.rank);
  }
  void place(std::size_t i, const entry& e) {
    heap_[i] = e;
    pos_[static_cast<std::size_t>(e.rank)] = i;
  }
  void up(std::size_t i) {
    const entry e = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / arity;
      if (!less(e, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, e);
  }
  void down(std::size_t i) {
    const entry e = heap_[i];
    const std::size_t n = heap_.size();
    for (;;) {
      const std::size_t first = i * arity + 1;
      if (first >= n) break;
      std::size_t best = first;
      for (std::size_t c = first + 1; c < first + arity && c < n; ++c) {
        if (less(heap_[c], heap_[best])) best = c;
      }
      if (!less(heap_[best], e)) break;
      place(i, heap_[best]);
      i = best;
    }
    place(i, e);
  }

  std::vector<entry> heap_;
  std::vector<std::size_t> pos_;
};

}  // namespace loco::sim::detail
