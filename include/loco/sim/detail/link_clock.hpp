#pragma once
// When each directed link of the simulator is free again: an open-addressing
// table from (source, destination) to a time, since a world of n ranks has
// up to n^2 links but uses few of them. One probe sequence in one array: a
// node-based hash map cost two or three cache misses per message at 100,000
// ranks.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace loco::sim::detail {

class link_clock {
 public:
  // The time link src -> dst is busy until (0 if never used), to update.
  double& busy_until(int src, int dst) {
    const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(src)) << 32 |
                               static_cast<std::uint32_t>(dst)) +
                              1;  // 0 marks an empty slot
    if (2 * (used_ + 1) > slots_.size()) grow();
    std::size_t i = spread(key) & (slots_.size() - 1);
    for (;;) {
      auto& s = slots_[i];
      if (s.key == key) return s.until;
      if (s.key == 0) {
        s.key = key;
        ++used_;
        return s.until;
      }
      i = (i + 1) & (slots_.size() - 1);
    }
  }

 private:
  struct slot {
    std::uint64_t key = 0;
    double until = 0.0;
  };
  static std::size_t spread(std::uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return static_cast<std::size_t>(k);
  }
  void grow() {
    std::vector<slot> old(slots_.empty() ? 64 : 2 * slots_.size());
    old.swap(slots_);
    for (const auto& s : old) {
      if (s.key == 0) continue;
      std::size_t i = spread(s.key) & (slots_.size() - 1);
      while (slots_[i].key != 0) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = s;
    }
  }

  std::vector<slot> slots_;
  std::size_t used_ = 0;
};

}  // namespace loco::sim::detail
