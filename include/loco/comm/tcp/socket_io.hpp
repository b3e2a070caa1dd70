#pragma once
// Blocking reads and writes with a deadline on a non-blocking socket
// descriptor. comm::tcp writes frames from the caller's threads with these
// (gathering header and payload with sendmsg, so a large vector is never
// copied) and reads with them only during the handshake: an established
// link is read by the holder of the engine's read token (engine_poll.hpp).
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

namespace loco::comm::detail::tcp {

using clock = std::chrono::steady_clock;

enum class io_status { ok, timeout, closed, failed };
struct io_result {
  io_result() = default;
  io_result(io_status s, int e, std::string why = {})
      : status(s), error(e), detail(std::move(why)) {}
  io_status status = io_status::ok;
  int error = 0;       // errno when failed
  std::string detail;  // a reason in words (TLS), preferred by describe()
  std::string describe() const {
    if (!detail.empty()) return detail;
    switch (status) {
      case io_status::ok:
        return "ok";
      case io_status::timeout:
        return "timed out";
      case io_status::closed:
        return "connection closed";
      case io_status::failed:
        return std::strerror(error);
    }
    return "unknown";
  }
};

// Waits until fd is ready for `events` or the deadline passes.
inline io_result wait_ready(int fd, short events, clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) return {io_status::timeout, 0};
    pollfd p{fd, events, 0};
    const int ms = static_cast<int>(std::min<long long>(left.count() + 1, 60000));
    const int r = ::poll(&p, 1, ms);
    if (r > 0) return {};
    if (r < 0 && errno != EINTR) return {io_status::failed, errno};
  }
}

// Writes every byte of the iovecs (modified in place) before the deadline.
// While the socket is full, blocked(fd, deadline) waits for room (and may do
// other work meanwhile); a result other than ok ends the write with it.
template <class Blocked>
io_result write_all(int fd, iovec* iov, int count, clock::time_point deadline, Blocked&& blocked) {
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(count);
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (auto r = blocked(fd, deadline); r.status != io_status::ok) return r;
        continue;
      }
      return {io_status::failed, errno};
    }
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return {};
}

inline io_result write_all(int fd, iovec* iov, int count, clock::time_point deadline) {
  return write_all(fd, iov, count, deadline,
                   [](int f, clock::time_point d) { return wait_ready(f, POLLOUT, d); });
}

inline io_result write_all(int fd, const void* data, std::size_t n, clock::time_point deadline) {
  iovec v{const_cast<void*>(data), n};
  return write_all(fd, &v, 1, deadline);
}

// Reads exactly n bytes before the deadline (used only during the handshake).
inline io_result read_all(int fd, void* data, std::size_t n, clock::time_point deadline) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t got = ::recv(fd, p, n, 0);
    if (got == 0) return {io_status::closed, 0};
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (auto r = wait_ready(fd, POLLIN, deadline); r.status != io_status::ok) return r;
        continue;
      }
      return {io_status::failed, errno};
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return {};
}

}  // namespace loco::comm::detail::tcp
