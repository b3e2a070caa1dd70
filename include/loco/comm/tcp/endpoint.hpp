#pragma once
// Addresses for comm::tcp: "host:port" parsing (a name is resolved) and the
// text an endpoint is named by in messages.
#include <charconv>
#include <loco/comm/tcp/asio.hpp>
#include <loco/error.hpp>
#include <string>
#include <system_error>

namespace loco::comm::detail::tcp {

using endpoint_t = asio::ip::tcp::endpoint;

inline std::string describe(const endpoint_t& ep) {
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// "host:port" -> endpoint; the host may be a name.
inline endpoint_t parse_endpoint(const std::string& text, const char* what) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    throw config_error(std::string("comm::tcp: ") + what + " '" + text + "' is not host:port");
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) {
    throw config_error(std::string("comm::tcp: ") + what + " port '" + port_text +
                       "' is not in [0, 65535]");
  }
  boost::system::error_code error;
  auto address = asio::ip::make_address(host, error);
  if (error) {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    auto results = resolver.resolve(host, port_text, error);
    if (error || results.empty()) {
      throw config_error(std::string("comm::tcp: cannot resolve ") + what + " host '" + host +
                         "': " + error.message());
    }
    return results.begin()->endpoint();
  }
  return {address, static_cast<unsigned short>(port)};
}

}  // namespace loco::comm::detail::tcp
