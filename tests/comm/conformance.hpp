#pragma once
// The communicator conformance suite, written once and run against every
// communicator. A World type provides
//   template <class Fn> static void run(int n, Fn fn);   // fn(comm&) on n ranks
// propagating the first rank's failure. Checks inside ranks throw
// conformance_failure (Catch2's macros are not thread-safe); the test case
// asserts that run() completes.
#include <cmath>
#include <cstdint>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace conformance {

struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void expect(bool ok, const std::string& what) {
  if (!ok) throw failure(what);
}

using loco::comm::reduce_op;

// Values that sum exactly in float, so every communicator must agree bit for bit.
template <class T>
T value(int rank, std::size_t i) {
  return static_cast<T>(static_cast<int>((i * 7 + static_cast<std::size_t>(rank) * 13) % 64) - 32);
}

template <class T>
T expected(int n, std::size_t i, reduce_op op) {
  T acc = value<T>(0, i);
  for (int r = 1; r < n; ++r) {
    const T v = value<T>(r, i);
    if (op == reduce_op::max)
      acc = std::max(acc, v);
    else if (op == reduce_op::min)
      acc = std::min(acc, v);
    else
      acc = static_cast<T>(acc + v);
  }
  if (op == reduce_op::average) acc = static_cast<T>(acc / static_cast<T>(n));
  return acc;
}

inline const std::vector<std::size_t>& sizes() {
  static const std::vector<std::size_t> s = {0, 1, 2, 7, 512, 513, 1000, 65537};
  return s;
}

template <class T, class Comm>
void check_allreduce_on(Comm& comm, bool nonblocking) {
  const int n = comm.size();
  for (auto op : {reduce_op::sum, reduce_op::average, reduce_op::max, reduce_op::min}) {
    for (std::size_t d : sizes()) {
      std::vector<T> v(d);
      for (std::size_t i = 0; i < d; ++i) v[i] = value<T>(comm.rank(), i);
      if (nonblocking) {
        auto req = comm.iallreduce(std::span<T>(v), op);
        req.wait();
        expect(req.test(), "a waited request reports done");
      } else {
        comm.allreduce(std::span<T>(v), op);
      }
      for (std::size_t i = 0; i < d; ++i) {
        if (v[i] != expected<T>(n, i, op)) {
          throw failure("allreduce op " + std::to_string(static_cast<int>(op)) + " d " +
                        std::to_string(d) + " rank " + std::to_string(comm.rank()) + " index " +
                        std::to_string(i) + ": got " + std::to_string(v[i]) + ", expected " +
                        std::to_string(expected<T>(n, i, op)));
        }
      }
    }
  }
}

inline std::vector<std::byte> pattern(int rank, std::size_t len) {
  std::vector<std::byte> b(len);
  for (std::size_t i = 0; i < len; ++i) {
    b[i] = static_cast<std::byte>((static_cast<std::size_t>(rank) * 31 + i) & 0xff);
  }
  return b;
}

template <class Comm>
void check_allgather(Comm& comm) {
  const int n = comm.size();
  for (std::size_t scale : {std::size_t{0}, std::size_t{1}, std::size_t{1000}}) {
    const auto mine = pattern(comm.rank(), scale * static_cast<std::size_t>(comm.rank()) + scale);
    std::vector<loco::wire::buffer> all;
    comm.allgather(std::span<const std::byte>(mine), all);
    expect(all.size() == static_cast<std::size_t>(n), "allgather returns one buffer per rank");
    for (int r = 0; r < n; ++r) {
      const auto want = pattern(r, scale * static_cast<std::size_t>(r) + scale);
      const auto got = all[static_cast<std::size_t>(r)].bytes();
      expect(got.size() == want.size() && std::equal(got.begin(), got.end(), want.begin()),
             "allgather: rank " + std::to_string(r) + "'s bytes arrive intact");
    }
  }
}

template <class Comm>
void check_broadcast_and_gather(Comm& comm) {
  const int n = comm.size();
  for (int root = 0; root < n; ++root) {
    loco::wire::buffer b;
    if (comm.rank() == root) {
      const auto p = pattern(root, 333);
      b.assign(p);
    } else {
      b.put<std::uint32_t>(0xdeadbeef);  // must be replaced, not appended to
    }
    comm.broadcast(b, root);
    const auto want = pattern(root, 333);
    expect(b.size() == want.size() && std::equal(b.bytes().begin(), b.bytes().end(), want.begin()),
           "broadcast from root " + std::to_string(root));

    const auto mine = pattern(comm.rank(), 10 + static_cast<std::size_t>(comm.rank()));
    std::vector<loco::wire::buffer> all;
    comm.gather(std::span<const std::byte>(mine), all, root);
    if (comm.rank() == root) {
      expect(all.size() == static_cast<std::size_t>(n), "gather fills root");
      for (int r = 0; r < n; ++r) {
        const auto w = pattern(r, 10 + static_cast<std::size_t>(r));
        expect(all[static_cast<std::size_t>(r)].size() == w.size(), "gather sizes");
      }
    }
  }
}

template <class Comm>
void check_point_to_point(Comm& comm) {
  const int n = comm.size(), me = comm.rank();
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  // A ring, two tags sent in reverse order: tags must be matched, not FIFO.
  const auto a = pattern(me, 100), b = pattern(me, 7);
  comm.send(next, 2, std::span<const std::byte>(b));
  comm.send(next, 1, std::span<const std::byte>(a));
  loco::wire::buffer got;
  expect(comm.recv(prev, 1, got) == prev, "recv returns the sender");
  expect(got.size() == 100 && got.bytes()[5] == pattern(prev, 100)[5], "tag 1 payload");
  expect(comm.recv(prev, 2, got) == prev, "recv returns the sender");
  expect(got.size() == 7, "tag 2 payload");

  // A server (rank 0) receiving from any rank, as asynchronous SGD does.
  if (me == 0) {
    std::vector<int> seen(static_cast<std::size_t>(n), 0);
    for (int k = 0; k < n - 1; ++k) {
      const int from = comm.recv(loco::comm::any_source, 9, got);
      expect(from > 0 && from < n, "any_source returns a real rank");
      expect(got.size() == static_cast<std::size_t>(from), "payload from the right sender");
      ++seen[static_cast<std::size_t>(from)];
    }
    for (int r = 1; r < n; ++r) expect(seen[static_cast<std::size_t>(r)] == 1, "each once");
  } else {
    const auto p = pattern(me, static_cast<std::size_t>(me));
    comm.send(0, 9, std::span<const std::byte>(p));
  }

  // Non-blocking: post the receive first, then the matching send.
  loco::wire::buffer in;
  auto r = comm.irecv(prev, 5, in);
  const auto c = pattern(me, 4096);
  auto s = comm.isend(next, 5, std::span<const std::byte>(c));
  r.wait();
  s.wait();
  expect(r.source() == prev, "irecv's source");
  expect(in.size() == 4096 && in.bytes()[4095] == pattern(prev, 4096)[4095], "irecv payload");
  comm.barrier();
}

// The collective runs while the caller computes: the caller polls test()
// and must see completion without calling wait().
template <class Comm>
void check_overlap(Comm& comm) {
  std::vector<float> v(100000, 1.0f);
  auto req = comm.iallreduce(std::span<float>(v), reduce_op::sum);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!req.test()) {
    expect(std::chrono::steady_clock::now() < deadline, "iallreduce progressed without wait()");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  req.wait();
  expect(v[99999] == static_cast<float>(comm.size()), "overlapped allreduce result");
}

// A blocking collective issued while a non-blocking one is still in flight
// runs after it (in_process runs blocking ones inline only when idle).
template <class Comm>
void check_blocking_after_nonblocking(Comm& comm) {
  std::vector<float> big(65537, 1.0f), small(7, 2.0f);
  auto req = comm.iallreduce(std::span<float>(big), reduce_op::sum);
  comm.allreduce(std::span<float>(small), reduce_op::sum);
  req.wait();
  const auto n = static_cast<float>(comm.size());
  for (float x : small) expect(x == 2.0f * n, "blocking allreduce after a non-blocking one");
  for (float x : big) expect(x == n, "non-blocking allreduce before a blocking one");
}

template <class World>
void run_all(int n) {
  World::run(n, [](auto& comm) {
    check_allreduce_on<float>(comm, false);
    check_allreduce_on<double>(comm, false);
    check_allreduce_on<float>(comm, true);
    check_allgather(comm);
    check_broadcast_and_gather(comm);
    check_point_to_point(comm);
    check_overlap(comm);
    check_blocking_after_nonblocking(comm);
    comm.barrier();
  });
}

}  // namespace conformance
