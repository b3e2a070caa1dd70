#pragma once
// Vocabulary shared by every communicator.
#include <chrono>
#include <concepts>

namespace loco::comm {

enum class reduce_op { sum, average, max, min };

// recv() from any rank (a server applying updates as they arrive).
inline constexpr int any_source = -1;

using duration = std::chrono::milliseconds;

}  // namespace loco::comm

namespace loco::comm {

// Seconds on the communicator's clock: its own now() when it has one (the
// simulator's virtual time), otherwise the steady clock. Drivers time events
// with this, so they never ask which communicator they run on.
template <class Comm>
double now(const Comm& c) {
  if constexpr (requires {
                  { c.now() } -> std::convertible_to<double>;
                }) {
    return static_cast<double>(c.now());
  } else {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
}

}  // namespace loco::comm
