// comm::tcp over TLS with certificates made at test time: results equal
// plain TCP's, the conformance suite passes, and a peer with a certificate
// from another CA, without TLS, or with another rank's certificate is
// refused with a named error while the legitimate ranks go on.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <future>
#include <loco/comm/tcp.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../comm/conformance.hpp"
#include "../support/test_certificates.hpp"
#include "raw_client.hpp"
#include "tcp_world.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

// The listener's handshake timeout in these tests: generous, since a TLS
// handshake on a machine shared with parallel builds can take a while.
constexpr ms tls_handshake_timeout{3000};

// One CA and a certificate per rank (DNS name rank<k>.loco), plus a second,
// unrelated CA with its own rank certificates. Even ranks read files, odd
// ranks get PEM text, so both ways of configuring are exercised.
struct pki {
  test_certificates::authority ca{"loco test CA"};
  test_certificates::authority rogue{"another CA"};
  test_certificates::temp_dir dir;
  std::vector<test_certificates::pem_pair> ranks, rogue_ranks;
  std::string ca_file;
  pki() {
    ca_file = dir.write("ca.pem", ca.cert_pem());
    for (int r = 0; r < 4; ++r) {
      const std::string name = "rank" + std::to_string(r) + ".loco";
      ranks.push_back(ca.issue(name, {name}));
      rogue_ranks.push_back(rogue.issue(name, {name}));
      dir.write("rank" + std::to_string(r) + ".pem", ranks.back().cert);
      dir.write("rank" + std::to_string(r) + ".key", ranks.back().key);
    }
  }
  // TLS settings for `rank` presenting the certificate of `as` (default: its own).
  loco::comm::tcp_tls_options for_rank(int rank, int as = -1) const {
    if (as < 0) as = rank;
    loco::comm::tcp_tls_options t;
    t.enabled = true;
    if (rank % 2 == 0) {
      t.ca_file = ca_file;
      t.cert_file = (dir.path() / ("rank" + std::to_string(as) + ".pem")).string();
      t.key_file = (dir.path() / ("rank" + std::to_string(as) + ".key")).string();
    } else {
      t.ca_pem = ca.cert_pem();
      t.cert_pem = ranks[static_cast<std::size_t>(as)].cert;
      t.key_pem = ranks[static_cast<std::size_t>(as)].key;
    }
    t.peer_name = "rank{rank}.loco";
    return t;
  }
};

const pki& certificates() {
  static const pki p;
  return p;
}

struct tls_world {
  template <class Fn>
  static void run(int n, Fn fn) {
    tcp_test::run_threads(
        n, [&](loco::comm::tcp& c) { fn(c); },
        [](loco::comm::tcp_options& o) {
          o.tls = certificates().for_rank(o.rank);
          o.handshake_timeout = tls_handshake_timeout;
          o.timeout = ms(20000);
        });
  }
};

// Every rank's allreduce result (sum) of a vector of d floats.
template <class Tweak>
std::vector<std::vector<float>> allreduce_results(int n, std::size_t d, Tweak tweak) {
  std::vector<std::vector<float>> out(static_cast<std::size_t>(n));
  tcp_test::run_threads(
      n,
      [&](loco::comm::tcp& c) {
        std::vector<float> v(d);
        for (std::size_t i = 0; i < d; ++i) {
          v[i] = static_cast<float>((i * 2654435761u + static_cast<std::size_t>(c.rank()) * 97u) %
                                    1000u) /
                 7.0f;
        }
        c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
        out[static_cast<std::size_t>(c.rank())] = std::move(v);
      },
      tweak);
  return out;
}

// What constructing a communicator with these options threw ("" if nothing):
// "protocol_error <field>", "peer_lost <rank>" or "other <what>".
std::string join_outcome(const loco::comm::tcp_options& o, std::string* what = nullptr) {
  try {
    loco::comm::tcp c(o);
    return "";
  } catch (const loco::protocol_error& e) {
    if (what) *what = e.what();
    return "protocol_error " + e.field();
  } catch (const loco::peer_lost& e) {
    if (what) *what = e.what();
    return "peer_lost " + std::to_string(e.rank());
  } catch (const std::exception& e) {
    if (what) *what = e.what();
    return std::string("other ") + e.what();
  }
}

// Rank 0 of a world of 2 over TLS; first an intruder tries to join as rank 1
// (attempt(port, &what) returns its outcome, which must be `expected`), then
// the real rank 1 joins and an allreduce must give the right sum: the
// listener stayed up.
template <class Attempt>
void intruder_then_legitimate(Attempt attempt, const std::string& expected,
                              const std::string& logged) {
  const auto port = tcp_test::free_port();
  tcp_test::log_capture log;
  auto rank0 = std::async(std::launch::async, [&] {
    auto o = tcp_test::options(0, 2, port);
    o.tls = certificates().for_rank(0);
    o.handshake_timeout = tls_handshake_timeout;
    o.timeout = ms(20000);
    o.log = log.sink();
    loco::comm::tcp c(o);
    std::vector<float> v(1000, 1.0f);
    c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
    return v[999];
  });
  const auto start = clock_type::now();
  std::string what;
  const auto got = attempt(port, &what);
  const auto took = clock_type::now() - start;
  INFO(what);
  if (std::getenv("LOCO_TEST_VERBOSE")) WARN(got << ": " << what);
  CHECK(got == expected);
  CHECK(took < tls_handshake_timeout + ms(1000));  // named within the handshake timeout
  auto good = tcp_test::options(1, 2, port);
  good.tls = certificates().for_rank(1);
  good.timeout = ms(20000);
  float sum = 0;
  std::string legitimate_failed;
  std::thread rank1([&] {
    try {
      loco::comm::tcp c(good);
      std::vector<float> v(1000, 1.0f);
      c.allreduce(std::span<float>(v), loco::comm::reduce_op::sum);
      sum = v[999];
    } catch (const std::exception& e) {
      legitimate_failed = e.what();
    }
  });
  rank1.join();
  CHECK(legitimate_failed == "");
  REQUIRE(rank0.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  float sum0 = 0;
  CHECK_NOTHROW(sum0 = rank0.get());
  CHECK(sum0 == 2.0f);
  CHECK(sum == 2.0f);
  if (!logged.empty()) {
    INFO("rank 0's log should mention: " << logged);
    CHECK(log.contains(logged));
  }
}

}  // namespace

TEST_CASE("tcp over TLS: allreduce on 2 and 4 ranks equals plain TCP's result bit for bit",
          "[comm][tcp][tls]") {
  for (int n : {2, 4}) {
    for (std::size_t d : {std::size_t{1000}, std::size_t{300000}}) {  // one round trip; ring
      INFO(n << " ranks, " << d << " floats");
      const auto plain = allreduce_results(n, d, [](loco::comm::tcp_options&) {});
      const auto tls = allreduce_results(n, d, [](loco::comm::tcp_options& o) {
        o.tls = certificates().for_rank(o.rank);
        o.handshake_timeout = tls_handshake_timeout;
        o.timeout = ms(20000);
      });
      for (int r = 0; r < n; ++r) {
        CHECK(tls[static_cast<std::size_t>(r)] == plain[static_cast<std::size_t>(r)]);
      }
    }
  }
}

TEST_CASE("tcp over TLS passes the communicator conformance suite", "[comm][tcp][tls]") {
  REQUIRE_NOTHROW(conformance::run_all<tls_world>(3));
}

TEST_CASE("tcp over TLS: a certificate from another CA is refused, the listener stays up",
          "[comm][tcp][tls][bad_peer]") {
  for (int rep = 0; rep < 5; ++rep) {
    INFO("repetition " << rep);
    // Trusts our CA but presents a certificate of the other CA: rank 0
    // refuses it (under TLS 1.3 the alert reaches the client after its
    // handshake, while it waits for the token challenge).
    intruder_then_legitimate(
        [](unsigned short port, std::string* what) {
          auto o = tcp_test::options(1, 2, port);
          o.timeout = ms(3000);
          o.tls = certificates().for_rank(1);
          o.tls.cert_file.clear();
          o.tls.key_file.clear();
          o.tls.cert_pem = certificates().rogue_ranks[1].cert;
          o.tls.key_pem = certificates().rogue_ranks[1].key;
          return join_outcome(o, what);
        },
        "protocol_error tls", "certificate");
    // Trusts only the other CA: it refuses rank 0's certificate itself.
    intruder_then_legitimate(
        [](unsigned short port, std::string* what) {
          auto o = tcp_test::options(1, 2, port);
          o.timeout = ms(3000);
          o.tls = certificates().for_rank(1);
          o.tls.ca_pem = certificates().rogue.cert_pem();
          o.tls.cert_pem = certificates().rogue_ranks[1].cert;
          o.tls.key_pem = certificates().rogue_ranks[1].key;
          return join_outcome(o, what);
        },
        "protocol_error tls.handshake", "TLS handshake failed");
  }
}

TEST_CASE("tcp over TLS: a peer without TLS is refused on both sides, the listener stays up",
          "[comm][tcp][tls][bad_peer]") {
  for (int rep = 0; rep < 5; ++rep) {
    INFO("repetition " << rep);
    // A plain rank talking to a TLS rank: its hello is no TLS record.
    intruder_then_legitimate(
        [](unsigned short port, std::string* what) {
          auto o = tcp_test::options(1, 2, port);
          o.timeout = ms(3000);
          return join_outcome(o, what);
        },
        "protocol_error handshake.challenge", "TLS handshake failed");
    // Raw plaintext bytes (a loco hello): closed by the TLS rank at once.
    intruder_then_legitimate(
        [](unsigned short port, std::string*) {
          tcp_test::raw_client c(port);
          if (!c.connected()) return std::string("not connected");
          c.send_hello(1, 2, 1);
          const auto closed_after = c.wait_closed(static_cast<int>(tls_handshake_timeout.count()));
          return closed_after >= 0 ? std::string("closed") : std::string("still open");
        },
        "closed", "TLS handshake failed");
    if (rep >= 2) continue;  // silence: closed after the handshake timeout (twice: it takes 3 s)
    intruder_then_legitimate(
        [](unsigned short port, std::string*) {
          tcp_test::raw_client c(port);
          if (!c.connected()) return std::string("not connected");
          const auto closed_after =
              c.wait_closed(static_cast<int>(tls_handshake_timeout.count()) + 900);
          return closed_after >= 0 ? std::string("closed") : std::string("still open");
        },
        "closed", "no complete handshake within 3000 ms");
  }
  // A TLS rank talking to a plain rank: the plain rank closes on the ClientHello.
  const auto port = tcp_test::free_port();
  tcp_test::log_capture log;
  std::string plain_outcome, tls_outcome, tls_what;
  std::thread plain([&] {
    auto o = tcp_test::options(0, 2, port);
    o.timeout = ms(800);
    o.log = log.sink();
    plain_outcome = join_outcome(o);
  });
  std::thread tls([&] {
    auto o = tcp_test::options(1, 2, port);
    o.timeout = ms(800);
    o.tls = certificates().for_rank(1);
    tls_outcome = join_outcome(o, &tls_what);
  });
  plain.join();
  tls.join();
  INFO(tls_what);
  CHECK(tls_outcome == "protocol_error tls.handshake");
  CHECK(plain_outcome == "peer_lost 1");
  CHECK(log.contains("not a loco tcp handshake"));
}

TEST_CASE("tcp over TLS: a certificate for another rank is refused when peer_name is set",
          "[comm][tcp][tls][bad_peer]") {
  // Rank 1 presents rank 2's (valid, same-CA) certificate: the TLS handshake
  // succeeds, and rank 0 refuses the claimed rank before the token exchange.
  intruder_then_legitimate(
      [](unsigned short port, std::string* what) {
        auto o = tcp_test::options(1, 2, port);
        o.timeout = ms(3000);
        o.tls = certificates().for_rank(1, 2);
        return join_outcome(o, what);
      },
      "protocol_error handshake.challenge", "not valid for 'rank1.loco'");
  // Without peer_name the same certificate is accepted (any certificate of the CA).
  const auto results = allreduce_results(2, 10, [](loco::comm::tcp_options& o) {
    o.tls = certificates().for_rank(o.rank, o.rank == 1 ? 2 : -1);
    o.tls.peer_name.clear();
    o.handshake_timeout = tls_handshake_timeout;
  });
  CHECK(results[1][0] == results[0][0]);
}

TEST_CASE("tcp TLS settings are checked before joining", "[comm][tcp][tls]") {
  const auto& pki = certificates();
  auto o = tcp_test::options(0, 2, 1);
  o.tls.enabled = true;
  CHECK_THROWS_WITH(loco::comm::tcp(o), Catch::Contains("tls.ca_file and tls.ca_pem"));
  o.tls = pki.for_rank(0);
  o.tls.ca_pem = pki.ca.cert_pem();
  CHECK_THROWS_WITH(loco::comm::tcp(o), Catch::Contains("(both are set)"));
  o.tls = pki.for_rank(0);
  o.tls.cert_file = "/nonexistent/cert.pem";
  CHECK_THROWS_WITH(loco::comm::tcp(o), Catch::Contains("'/nonexistent/cert.pem'"));
  o.tls = pki.for_rank(1);
  o.tls.key_pem = pki.ranks[2].key;  // not the certificate's key
  CHECK_THROWS_WITH(loco::comm::tcp(o),
                    Catch::Contains("tls.key_pem") && Catch::Contains("mismatch"));
  o.tls = pki.for_rank(1);
  o.tls.ca_pem = "not PEM";
  CHECK_THROWS_AS(loco::comm::tcp(o), loco::config_error);
  o.tls = pki.for_rank(0);
  o.tls.enabled = false;
  CHECK_THROWS_WITH(loco::comm::tcp(o), Catch::Contains("tls.enabled is false"));
  // TLS does not replace the token: an empty one is still refused beyond loopback.
  o.tls = pki.for_rank(0);
  o.token.clear();
  o.coordinator = "0.0.0.0:0";
  CHECK_THROWS_WITH(loco::comm::tcp(o), Catch::Contains("empty token"));

  ::setenv("LOCO_RANK", "0", 1);
  ::setenv("LOCO_WORLD_SIZE", "2", 1);
  ::setenv("LOCO_COORDINATOR", "127.0.0.1:29400", 1);
  ::setenv("LOCO_TOKEN", "secret", 1);
  ::setenv("LOCO_TLS_CA", pki.ca_file.c_str(), 1);
  CHECK_THROWS_WITH(loco::comm::tcp_options::from_env(), Catch::Contains("LOCO_TLS_CERT"));
  ::setenv("LOCO_TLS_CERT", "c.pem", 1);
  ::setenv("LOCO_TLS_KEY", "k.pem", 1);
  ::setenv("LOCO_TLS_PEER_NAME", "rank{rank}.loco", 1);
  const auto env = loco::comm::tcp_options::from_env();
  CHECK(env.tls.enabled);
  CHECK(env.tls.ca_file == pki.ca_file);
  CHECK(env.tls.cert_file == "c.pem");
  CHECK(env.tls.key_file == "k.pem");
  CHECK(env.tls.peer_name == "rank{rank}.loco");
  for (const char* v : {"LOCO_RANK", "LOCO_WORLD_SIZE", "LOCO_COORDINATOR", "LOCO_TOKEN",
                        "LOCO_TLS_CA", "LOCO_TLS_CERT", "LOCO_TLS_KEY", "LOCO_TLS_PEER_NAME"}) {
    ::unsetenv(v);
  }
}
