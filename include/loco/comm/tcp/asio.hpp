#pragma once
// Boost.Asio (with its OpenSSL streams) for comm::tcp, included once with
// the warnings it trips silenced: GCC's late -Wnull-dereference fires inside
// Asio's scheduler after inlining, and GCC 12's -Wtsan on Asio's fences under
// -fsanitize=thread.
#include <utility>  // Asio uses std::exchange without including it

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#pragma GCC diagnostic ignored "-Wtsan"
#endif
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#pragma GCC diagnostic pop

namespace loco::comm::detail::tcp {
namespace asio = boost::asio;
}  // namespace loco::comm::detail::tcp
