// A compressor that forgot decode(): the check names the missing member.
#include <loco/concepts/compressor.hpp>

struct half_done {
  static constexpr bool unbiased = true;
  static constexpr bool contractive = false;
  template <class T>
  struct state {
    state(const half_done&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T>, state<T>&, loco::wire::buffer&) const {}
  std::size_t wire_bytes(std::size_t d) const { return d; }
};

static_assert(loco::check_compressor<half_done>());
int main() {}
