#pragma once
// Vocabulary shared by every communicator.
#include <chrono>

namespace loco::comm {

enum class reduce_op { sum, average, max, min };

// recv() from any rank (a server applying updates as they arrive).
inline constexpr int any_source = -1;

using duration = std::chrono::milliseconds;

}  // namespace loco::comm
