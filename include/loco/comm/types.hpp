#pragma once
// Vocabulary shared by every communicator.
#include <chrono>
#include <concepts>
#include <cstdint>

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

namespace loco::comm {

// Membership (comm::elastic, docs/fault_tolerance.md). Drivers call these
// without asking which communicator they run on: on one whose membership
// never changes nobody joins, and admitting does nothing.
template <class Comm>
bool joining(const Comm& c) {
  if constexpr (requires { c.joining(); }) {
    return c.joining();
  } else {
    return false;
  }
}

// After round `round` on every rank: replacements waiting to join become
// members and receive save(wire::buffer&)'s bytes.
template <class Comm, class Save>
void admit_joiners(Comm& c, std::uint64_t round, Save&& save) {
  if constexpr (requires { c.admit(round, save); }) c.admit(round, save);
}

}  // namespace loco::comm
