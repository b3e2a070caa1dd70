#pragma once
// TLS for comm::tcp through Asio's OpenSSL stream: the context every link of
// a rank shares (mutual certificates, TLS 1.2 or newer, forward-secret AEAD
// suites only), the optional check binding a certificate to a rank, and
// readable reasons for failed handshakes. See docs/communicators.md#tls.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstddef>
#include <memory>
#include <string>

#include <loco/comm/tcp/asio.hpp>

#include <loco/comm/tcp/options.hpp>
#include <loco/error.hpp>

namespace loco::comm::detail::tcp {

using tls_stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

// The OpenSSL error queue as one line (emptied).
inline std::string openssl_errors() {
  std::string text;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

inline bool tls_requested(const tcp_tls_options& t) {
  return t.enabled || !t.ca_file.empty() || !t.ca_pem.empty() || !t.cert_file.empty() ||
         !t.cert_pem.empty() || !t.key_file.empty() || !t.key_pem.empty() || !t.peer_name.empty();
}

// Throws config_error when the settings cannot work (checked before joining).
inline void validate_tls(const tcp_tls_options& t) {
  if (!t.enabled) {
    if (tls_requested(t)) {
      throw config_error(
          "comm::tcp: tls settings are given but tls.enabled is false (set it, or clear them)");
    }
    return;
  }
  const auto one_of = [](const std::string& file, const std::string& pem, const char* what) {
    if (file.empty() == pem.empty()) {
      throw config_error(std::string("comm::tcp: tls needs exactly one of tls.") + what +
                         "_file and tls." + what + "_pem" +
                         (file.empty() ? " (neither is set)" : " (both are set)"));
    }
  };
  one_of(t.ca_file, t.ca_pem, "ca");
  one_of(t.cert_file, t.cert_pem, "cert");
  one_of(t.key_file, t.key_pem, "key");
}

// One context per rank: it both connects (client) and accepts (server), and
// presents the same certificate either way.
inline std::unique_ptr<boost::asio::ssl::context> make_tls_context(const tcp_tls_options& t) {
  namespace ssl = boost::asio::ssl;
  validate_tls(t);
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls);
  SSL_CTX* native = ctx->native_handle();
  ERR_clear_error();
  const auto fail = [](const std::string& what) {
    throw config_error("comm::tcp: tls: " + what + ": " + openssl_errors());
  };
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) fail("cannot require TLS 1.2");
  // TLS 1.2 suites: ephemeral key exchange and AEAD only (TLS 1.3's are all such).
  if (SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    fail("cannot set the TLS 1.2 cipher suites");
  }
  // Links live as long as the world: no resumption tickets, no renegotiation.
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(native, 0);
  boost::system::error_code ec;
  const auto check = [&](const std::string& what) {
    if (ec) {
      throw config_error("comm::tcp: tls: " + what + ": " + ec.message() +
                         (ERR_peek_error() ? " (" + openssl_errors() + ")" : std::string()));
    }
  };
  if (!t.ca_file.empty()) {
    ctx->load_verify_file(t.ca_file, ec);
    check("cannot load the CA file '" + t.ca_file + "'");
  } else {
    ctx->add_certificate_authority(boost::asio::buffer(t.ca_pem), ec);
    check("cannot load the CA from tls.ca_pem");
  }
  if (!t.cert_file.empty()) {
    ctx->use_certificate_chain_file(t.cert_file, ec);
    check("cannot load the certificate file '" + t.cert_file + "'");
  } else {
    ctx->use_certificate_chain(boost::asio::buffer(t.cert_pem), ec);
    check("cannot load the certificate from tls.cert_pem");
  }
  if (!t.key_file.empty()) {
    ctx->use_private_key_file(t.key_file, ssl::context::pem, ec);
    check("cannot load the key file '" + t.key_file + "'");
  } else {
    ctx->use_private_key(boost::asio::buffer(t.key_pem), ssl::context::pem, ec);
    check("cannot load the key from tls.key_pem");
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    fail("the private key does not match the certificate");
  }
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

// "{rank}" in the pattern -> the rank.
inline std::string expected_peer_name(const std::string& pattern, int rank) {
  std::string name = pattern;
  for (auto at = name.find("{rank}"); at != std::string::npos; at = name.find("{rank}")) {
    name.replace(at, 6, std::to_string(rank));
  }
  return name;
}

// Throws protocol_error unless the peer's (already verified) certificate is
// valid for the expected name.
inline void check_peer_name(SSL* ssl, const std::string& pattern, int rank,
                            const std::string& peer) {
  if (pattern.empty()) return;
  const std::string want = expected_peer_name(pattern, rank);
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) throw protocol_error(peer, "tls.peer_name", "no peer certificate");
  const int ok = X509_check_host(cert, want.data(), want.size(), 0, nullptr);
  X509_free(cert);
  if (ok != 1) {
    throw protocol_error(peer, "tls.peer_name",
                         "the certificate is not valid for '" + want + "' (claimed rank " +
                             std::to_string(rank) + ")");
  }
}

// Why a TLS handshake or record failed, in words a user can act on.
inline std::string describe_tls_failure(const boost::system::error_code& ec, SSL* ssl) {
  namespace ssl_errors = boost::asio::ssl::error;
  std::string why = ec.message();
  if (ec == ssl_errors::stream_truncated || ec == boost::asio::error::eof ||
      ec == boost::asio::error::connection_reset) {
    why = "the peer closed the connection (it rejected our certificate, or it does not speak TLS)";
  }
  if (ssl != nullptr) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      why += std::string("; its certificate failed verification: ") +
             X509_verify_cert_error_string(verify);
    }
  }
  return why;
}

}  // namespace loco::comm::detail::tcp
