#pragma once
// The ranks of comm::simulated as fibers: every rank runs on a stack of its
// own, all on the thread that called run_simulated, and the scheduler
// switches between them (docs/simulation.md#ranks-as-fibers). A switch
// saves the callee-saved registers on the old stack and loads the new stack
// pointer: a few nanoseconds, where a hand-off between threads costs
// microseconds and an operating-system thread per rank stops at thousands.
//
// x86-64 switches with the few instructions below; other targets use POSIX
// ucontext (correct, but glibc's swapcontext makes a system call per switch).
// Sanitizers are told about every switch, and the C++ runtime's per-thread
// exception state is kept per fiber, so a rank may block inside a catch block.
//
// Stacks are one reserved mapping (pages are committed when touched). Below
// each stack lies a guard page when the kernel's mapping limit allows it
// (vm.max_map_count; two mappings per rank): an overflow then stops the
// process with a message naming the rank. Past that limit the lowest bytes
// of each stack hold a pattern, checked whenever its rank switches out and
// on a segmentation fault, with the same message.
#include <sys/mman.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <loco/error.hpp>
#include <memory>
#include <mutex>
#include <string>

#if !defined(__x86_64__) || defined(LOCO_SIM_UCONTEXT)
#define LOCO_SIM_FIBER_UCONTEXT 1
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define LOCO_SIM_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOCO_SIM_FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define LOCO_SIM_FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LOCO_SIM_FIBER_TSAN 1
#endif
#endif
#ifdef LOCO_SIM_FIBER_ASAN
#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef LOCO_SIM_FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

// The C++ runtime's per-thread exception state (Itanium C++ ABI, 2.2.2): the
// exceptions being handled and the count of those not yet caught.
namespace __cxxabiv1 {
struct __cxa_eh_globals;
extern "C" __cxa_eh_globals* __cxa_get_globals() noexcept;
}  // namespace __cxxabiv1

namespace loco::sim::detail {

struct exception_state {
  void* caught = nullptr;
  unsigned int uncaught = 0;
};

inline exception_state* thread_exception_state() noexcept {
  return reinterpret_cast<exception_state*>(__cxxabiv1::__cxa_get_globals());
}

#ifndef LOCO_SIM_FIBER_UCONTEXT
// Pushes the callee-saved registers and the SSE/x87 control words on the
// current stack, stores the stack pointer in *from, then loads `to` and pops
// the same from there: the `ret` resumes whoever saved `to`.
[[gnu::naked, gnu::noinline]] inline void switch_stack(void** /*from*/, void* /*to*/) noexcept {
  __asm__(
      "pushq %rbp\n\t"
      "pushq %rbx\n\t"
      "pushq %r12\n\t"
      "pushq %r13\n\t"
      "pushq %r14\n\t"
      "pushq %r15\n\t"
      "subq $16, %rsp\n\t"
      "stmxcsr (%rsp)\n\t"
      "fnstcw 4(%rsp)\n\t"
      "movq %rsp, (%rdi)\n\t"
      "movq %rsi, %rsp\n\t"
      "ldmxcsr (%rsp)\n\t"
      "fldcw 4(%rsp)\n\t"
      "addq $16, %rsp\n\t"
      "popq %r15\n\t"
      "popq %r14\n\t"
      "popq %r13\n\t"
      "popq %r12\n\t"
      "popq %rbx\n\t"
      "popq %rbp\n\t"
      "ret\n\t");
}
// A new fiber's first `ret` lands here: r12 holds the function, r13 its
// argument (see fibers::prepare). The function never returns.
[[gnu::naked, gnu::noinline]] inline void fiber_entry() noexcept {
  __asm__(
      "movq %r13, %rdi\n\t"
      "callq *%r12\n\t"
      "ud2\n\t");
}
#endif

// n fibers and the thread that runs them (the host). entry(user, rank) is a
// rank's body; it must end with finish(), never return.
class fibers {
 public:
  using entry_fn = void (*)(void* user, int rank);
  static constexpr std::size_t min_stack_size = 16 * 1024;

  fibers(int n, std::size_t stack_size, entry_fn entry, void* user)
      : n_(n), entry_(entry), user_(user), slots_(std::make_unique<slot[]>(slot_count(n))) {
    if (stack_size < min_stack_size) {
      throw config_error("sim::options::stack_size " + std::to_string(stack_size) +
                         " bytes: must be at least " + std::to_string(min_stack_size));
    }
#ifdef LOCO_SIM_FIBER_TSAN
    // ThreadSanitizer counts fibers as threads and dies past 8128 of them.
    if (n > 8000) {
      throw config_error("comm::simulated: " + std::to_string(n) +
                         " ranks under ThreadSanitizer, which allows about 8000 fibers");
    }
#endif
    page_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    stack_ = (stack_size + page_ - 1) / page_ * page_;
    guarded_ = 2 * static_cast<std::size_t>(n) + 8192 <= map_limit();
    stride_ = stack_ + (guarded_ ? page_ : 0);
    bytes_ = stride_ * static_cast<std::size_t>(n);
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) {
      throw error("comm::simulated: cannot reserve " + std::to_string(bytes_) + " bytes for " +
                  std::to_string(n) + " stacks of " + std::to_string(stack_) +
                  " bytes (sim::options::stack_size)");
    }
    base_ = static_cast<std::byte*>(p);
    unpoison();
    try {
      for (int r = 0; r < n; ++r) {
        if (guarded_ &&
            ::mprotect(base_ + stride_ * static_cast<std::size_t>(r), page_, PROT_NONE) != 0) {
          throw error("comm::simulated: cannot protect the guard page of rank " +
                      std::to_string(r));
        }
        prepare(r);
      }
      watch();
    } catch (...) {
      release();
      throw;
    }
#ifdef LOCO_SIM_FIBER_TSAN
    host().tsan = __tsan_get_current_fiber();
#endif
#ifdef LOCO_SIM_FIBER_ASAN
    pthread_attr_t a;
    if (::pthread_getattr_np(::pthread_self(), &a) == 0) {
      void* low = nullptr;
      std::size_t size = 0;
      ::pthread_attr_getstack(&a, &low, &size);
      host().low = static_cast<std::byte*>(low);
      host().size = size;
      ::pthread_attr_destroy(&a);
    }
#endif
  }
  fibers(const fibers&) = delete;
  fibers& operator=(const fibers&) = delete;
  ~fibers() {
    unwatch();
    release();
  }

  // From the host: runs rank `first`; returns when a fiber finishes to the host.
  void run(int first) { jump(host(), at(first), false); }
  // From rank `me`'s fiber: suspends it and resumes rank `to`.
  void switch_to(int me, int to) {
    check(me);
    jump(at(me), at(to), false);
  }
  // Rank `me`'s last act: resumes rank `to`, or the host when to < 0.
  [[noreturn]] void finish(int me, int to) {
    check(me);
    jump(at(me), to < 0 ? host() : at(to), true);
    std::terminate();  // a finished fiber is never resumed
  }

 private:
  struct slot {
#ifdef LOCO_SIM_FIBER_UCONTEXT
    ucontext_t uc{};
#else
    void* sp = nullptr;
#endif
    std::byte* low = nullptr;  // the stack's lowest usable byte
    std::size_t size = 0;
    exception_state eh{};
    fibers* owner = nullptr;
    int rank = -1;
    void* asan_fake_stack = nullptr;
    void* tsan = nullptr;
  };

  static std::size_t slot_count(int n) { return static_cast<std::size_t>(n) + 1; }
  slot& at(int r) noexcept { return slots_[static_cast<std::size_t>(r)]; }
  slot& host() noexcept { return slots_[static_cast<std::size_t>(n_)]; }

  static constexpr std::uint64_t canary = 0x6c6f636f2d737461ull;  // "loco-sta"
  // 2 KiB: every frame smaller than that which passes through the zone
  // leaves at least its return address in it.
  static constexpr std::size_t canary_words = 256;

  // The largest count of mappings the kernel allows this process.
  static std::size_t map_limit() {
    std::ifstream in("/proc/sys/vm/max_map_count");
    std::size_t v = 65530;
    if (!(in >> v)) v = 65530;
    return v;
  }

  void prepare(int r) {
    auto& s = at(r);
    s.owner = this;
    s.rank = r;
    s.low = base_ + stride_ * static_cast<std::size_t>(r) + (guarded_ ? page_ : 0);
    s.size = stack_;
    if (!guarded_) {
      auto* w = reinterpret_cast<std::uint64_t*>(s.low);
      std::fill(w, w + canary_words, canary);
    }
#ifdef LOCO_SIM_FIBER_TSAN
    s.tsan = __tsan_create_fiber(0);
#endif
#ifdef LOCO_SIM_FIBER_UCONTEXT
    if (::getcontext(&s.uc) != 0) throw error("comm::simulated: getcontext failed");
    s.uc.uc_stack.ss_sp = s.low;
    s.uc.uc_stack.ss_size = s.size;
    s.uc.uc_link = nullptr;
    // makecontext passes int arguments: the slot's address in two halves.
    const auto a = reinterpret_cast<std::uintptr_t>(&s);
    ::makecontext(&s.uc, reinterpret_cast<void (*)()>(&start_ucontext), 2,
                  static_cast<unsigned>(a >> 32), static_cast<unsigned>(a & 0xffffffffu));
#else
    // The frame switch_stack pops: control words, r15..r12, rbx, rbp, and
    // fiber_entry as the return address; 16 bytes of zeros above it end
    // backtraces, and keep the stack 16-byte aligned at the call.
    auto* top = reinterpret_cast<std::uint64_t*>(s.low + s.size);
    std::uint64_t* sp = top - 2;
    *--sp = reinterpret_cast<std::uint64_t>(&fiber_entry);
    *--sp = 0;                                        // rbp
    *--sp = 0;                                        // rbx
    *--sp = reinterpret_cast<std::uint64_t>(&start);  // r12: the function
    *--sp = reinterpret_cast<std::uint64_t>(&s);      // r13: its argument
    *--sp = 0;                                        // r14
    *--sp = 0;                                        // r15
    *--sp = 0;                                        // padding
    *--sp = 0x037full << 32 | 0x1f80u;                // x87 control word, MXCSR: the defaults
    s.sp = sp;
#endif
  }

  void jump(slot& from, slot& to, bool last) {
    current_.store(to.rank, std::memory_order_relaxed);
    auto* state = thread_exception_state();
    from.eh = *state;
    *state = to.eh;
#ifdef LOCO_SIM_FIBER_ASAN
    __sanitizer_start_switch_fiber(last ? nullptr : &from.asan_fake_stack, to.low, to.size);
#endif
#ifdef LOCO_SIM_FIBER_TSAN
    __tsan_switch_to_fiber(to.tsan, 0);
#endif
#ifdef LOCO_SIM_FIBER_UCONTEXT
    ::swapcontext(&from.uc, &to.uc);
#else
    switch_stack(&from.sp, to.sp);
#endif
    (void)last;
#ifdef LOCO_SIM_FIBER_ASAN
    __sanitizer_finish_switch_fiber(from.asan_fake_stack, nullptr, nullptr);
#endif
  }

  static void start(slot* s) {
#ifdef LOCO_SIM_FIBER_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    s->owner->entry_(s->owner->user_, s->rank);
    std::terminate();  // entry must end with finish()
  }
#ifdef LOCO_SIM_FIBER_UCONTEXT
  static void start_ucontext(unsigned high, unsigned low) {
    start(reinterpret_cast<slot*>(static_cast<std::uintptr_t>(high) << 32 | low));
  }
#endif

  // Without guard pages: a rank that wrote below its stack stops the process.
  void check(int r) const {
    if (!guarded_ && !intact(r)) overflowed(r, stack_);
  }
  bool intact(int r) const noexcept {
    const auto* w = reinterpret_cast<const std::uint64_t*>(slots_[static_cast<std::size_t>(r)].low);
    std::uint64_t diff = 0;
    for (std::size_t i = 0; i < canary_words; ++i) diff |= w[i] ^ canary;
    return diff == 0;
  }

  [[noreturn]] static void overflowed(int r, std::size_t stack) noexcept {
    char msg[200];
    const int len = std::snprintf(msg, sizeof msg,
                                  "loco: comm::simulated: rank %d overflowed its stack of %zu "
                                  "bytes: raise sim::options::stack_size\n",
                                  r, stack);
    if (len > 0) {
      [[maybe_unused]] const auto w = ::write(2, msg, static_cast<std::size_t>(len));
    }
    std::abort();
  }

  // ---------------------------------------------------------------- faults
  // A SIGSEGV handler, on an alternate stack, names the rank whose guard page
  // was hit, or the running rank if its pattern is broken; any other fault
  // goes to the handler installed before.
  struct registry {
    std::mutex mutex;
    int users = 0;
    std::atomic<const fibers*> live[64] = {};
    struct sigaction previous {};
  };
  static registry& watched() {
    static registry r;
    return r;
  }

  void watch() {
    // The handler runs on a stack of this thread's own: the faulting one has
    // no room left.
    constexpr std::size_t alt_size = 64 * 1024;
    alt_ = std::make_unique<std::byte[]>(alt_size);
    stack_t ss{};
    ss.ss_sp = alt_.get();
    ss.ss_size = alt_size;
    ::sigaltstack(&ss, &previous_alt_);
    auto& g = watched();
    std::lock_guard lock(g.mutex);
    std::size_t i = 0;
    while (i < std::size(g.live) && g.live[i].load() != nullptr) ++i;
    if (i == std::size(g.live)) return;  // too many runs at once: these go unnamed
    g.live[i].store(this);
    if (g.users++ > 0) return;
    struct sigaction sa {};
    sa.sa_sigaction = &on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g.previous);
  }
  void unwatch() {
    if (alt_) {
      ::sigaltstack(&previous_alt_, nullptr);
      alt_.reset();
    }
    auto& g = watched();
    std::lock_guard lock(g.mutex);
    bool found = false;
    for (auto& l : g.live) {
      if (l.load() == this) {
        l.store(nullptr);
        found = true;
      }
    }
    if (!found || --g.users > 0) return;
    ::sigaction(SIGSEGV, &g.previous, nullptr);
  }

  static void on_fault(int sig, siginfo_t* info, void* uc) {
    auto& g = watched();
    const auto* addr = static_cast<const std::byte*>(info->si_addr);
    for (auto& l : g.live) {
      const fibers* f = l.load();
      if (!f) continue;
      if (f->guarded_ && addr >= f->base_ && addr < f->base_ + f->bytes_) {
        const auto off = static_cast<std::size_t>(addr - f->base_);
        if (off % f->stride_ < f->page_) {
          overflowed(static_cast<int>(off / f->stride_), f->stack_);
        }
      }
      const int r = f->current_.load(std::memory_order_relaxed);
      if (!f->guarded_ && r >= 0 && !f->intact(r)) overflowed(r, f->stack_);
    }
    const auto& p = g.previous;
    if (p.sa_flags & SA_SIGINFO) {
      if (p.sa_sigaction) return p.sa_sigaction(sig, info, uc);
    } else if (p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN) {
      return p.sa_handler(sig);
    }
    ::signal(SIGSEGV, SIG_DFL);  // the faulting instruction runs again and stops the process
  }

  // A rank that finished never returned from its frames, so AddressSanitizer
  // still marks their red zones: clear them, or the next run that gets the
  // same addresses reads them as overflows.
  void unpoison() noexcept {
#ifdef LOCO_SIM_FIBER_ASAN
    __asan_unpoison_memory_region(base_, bytes_);
#endif
  }

  void release() noexcept {
#ifdef LOCO_SIM_FIBER_TSAN
    for (int r = 0; r < n_; ++r) {
      if (at(r).tsan) __tsan_destroy_fiber(at(r).tsan);
    }
#endif
    if (base_) {
      unpoison();
      ::munmap(base_, bytes_);
    }
    base_ = nullptr;
  }

  int n_;
  entry_fn entry_;
  void* user_;
  std::unique_ptr<slot[]> slots_;
  std::size_t page_ = 4096, stack_ = 0, stride_ = 0, bytes_ = 0;
  bool guarded_ = false;
  std::byte* base_ = nullptr;
  std::atomic<int> current_{-1};      // the running rank; -1: the host
  std::unique_ptr<std::byte[]> alt_;  // this thread's signal stack during the run
  stack_t previous_alt_{};
};

}  // namespace loco::sim::detail
