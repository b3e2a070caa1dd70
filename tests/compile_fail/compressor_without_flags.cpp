// A compressor that does not say whether it is unbiased or contractive.
#include <loco/concepts/compressor.hpp>

struct silent {
  template <class T>
  struct state {
    state(const silent&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T>, state<T>&, loco::wire::buffer&) const {}
  template <class T>
  void decode(loco::wire::view, state<T>&, std::span<T>) const {}
  std::size_t wire_bytes(std::size_t d) const { return d; }
};

static_assert(loco::check_compressor<silent>());
int main() {}
