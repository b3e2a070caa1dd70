#pragma once
// A raw-bytes client for the bad-peer tests: it speaks the wire format by
// hand (or not at all) to a legitimate rank.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <loco/comm/tcp/frame.hpp>
#include <loco/comm/tcp/handshake.hpp>
#include <loco/comm/tcp/socket_io.hpp>
#include <string>
#include <thread>
#include <vector>

namespace tcp_test {

namespace wire_tcp = loco::comm::detail::tcp;

class raw_client {
 public:
  // Connects to 127.0.0.1:port, retrying while nobody listens (up to 5 s).
  explicit raw_client(unsigned short port) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
        ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);  // the helpers poll
        return;
      }
      ::close(fd_);
      fd_ = -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;
  ~raw_client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  void send_bytes(const void* p, std::size_t n) {
    (void)wire_tcp::write_all(fd_, p, n, deadline(2000));
  }
  // The hello a legitimate rank would send, with fields overridable.
  void send_hello(std::uint16_t version, std::uint32_t world, std::int32_t rank) {
    wire_tcp::hello h;
    h.version = version;
    h.world_size = world;
    h.rank = rank;
    h.random = wire_tcp::make_nonce();
    std::array<std::byte, wire_tcp::hello_bytes> b{};
    wire_tcp::encode_hello(h, b.data());
    send_bytes(b.data(), b.size());
  }
  // A full valid handshake as `rank` of `world`, then the coordinator's table.
  void join(const std::string& token, std::uint32_t world, std::int32_t rank) {
    (void)wire_tcp::client_handshake(fd_, "test coordinator", 0, token, world, rank, 1,
                                     deadline(5000));
    std::array<std::byte, wire_tcp::header_bytes> head{};
    (void)wire_tcp::read_all(fd_, head.data(), head.size(), deadline(5000));
    const auto h = wire_tcp::decode_header(head, "test coordinator", 1 << 20);
    std::vector<std::byte> table(static_cast<std::size_t>(h.length));
    (void)wire_tcp::read_all(fd_, table.data(), table.size(), deadline(5000));
  }
  void send_header(wire_tcp::frame_type type, std::int32_t tag, std::uint32_t sub,
                   std::uint64_t length) {
    const auto head = wire_tcp::encode_header({type, tag, sub, length});
    send_bytes(head.data(), head.size());
  }
  // Milliseconds until the other side closes (reads and discards what it sends).
  long long wait_closed(int max_ms) {
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + std::chrono::milliseconds(max_ms);
    char sink[256];
    for (;;) {
      if (wire_tcp::wait_ready(fd_, POLLIN, end).status != wire_tcp::io_status::ok) return -1;
      const auto n = ::recv(fd_, sink, sizeof(sink), 0);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
      received_ += n > 0 ? static_cast<std::size_t>(n) : 0;
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  }
  std::size_t received() const { return received_; }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  static wire_tcp::clock::time_point deadline(int ms) {
    return wire_tcp::clock::now() + std::chrono::milliseconds(ms);
  }
  int fd_ = -1;
  std::size_t received_ = 0;
};

}  // namespace tcp_test
