#pragma once
// Names the calling thread (Linux: 15 characters at most), so `top -H`,
// `perf sched` and a debugger tell the communicators' threads apart.
#if defined(__linux__)
#include <pthread.h>
#endif

namespace loco::comm::detail {

inline void name_this_thread([[maybe_unused]] const char* name) noexcept {
#if defined(__linux__)
  (void)pthread_setname_np(pthread_self(), name);
#endif
}

}  // namespace loco::comm::detail
