#pragma once
// Shared pieces of the checkpoint tests: a temporary directory, a noisy
// objective that draws from the worker's random stream (so a resume that
// lost the stream's position would show), the two communicators with one
// calling convention, and a byte-for-byte comparison of checkpoint files.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <loco/checkpoint/file.hpp>
#include <loco/comm/in_process.hpp>
#include <loco/comm/simulated.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/timed.hpp>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace checkpoint_tests {

namespace fs = std::filesystem;

class temp_dir {
 public:
  temp_dir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / ("loco-ckpt-test-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter.fetch_add(1)));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const fs::path& path() const noexcept { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

// f_i(x) = 0.5 sum_j a_ij (x_j - b_ij)^2 with N(0, s^2) noise on every
// gradient entry. An odd d leaves a Box-Muller spare in the stream between
// calls, so the spare must be checkpointed too.
template <class T>
struct noisy_quadratic {
  using value_type = T;
  std::vector<double> a, b;
  double noise = 0.3;
  std::size_t dimension() const { return b.size(); }
  double loss(std::span<const T> x) const {
    double s = 0;
    for (std::size_t j = 0; j < b.size(); ++j) {
      const double r = static_cast<double>(x[j]) - b[j];
      s += a[j] * r * r;
    }
    return 0.5 * s;
  }
  double gradient(std::span<const T> x, std::span<T> g, loco::random::stream& rng) const {
    for (std::size_t j = 0; j < b.size(); ++j) {
      g[j] = static_cast<T>(a[j] * (static_cast<double>(x[j]) - b[j]) + noise * rng.normal());
    }
    return loss(x);
  }
};

template <class T>
noisy_quadratic<T> make_objective(int rank, std::size_t d) {
  noisy_quadratic<T> f;
  for (std::size_t j = 0; j < d; ++j) {
    f.a.push_back(0.5 + 0.1 * static_cast<double>((j + static_cast<std::size_t>(rank)) % 5));
    f.b.push_back(std::sin(1.0 + static_cast<double>(rank * 7) + static_cast<double>(j)));
  }
  return f;
}

// Runs fn(comm, objective) on n ranks of Comm; on the simulator every
// gradient costs a random (exponential) amount of virtual time and messages
// take a latency, so a resume must restore clocks to continue exactly.
template <class Comm, class T, class Fn>
void run_world(int n, std::size_t d, Fn&& fn) {
  if constexpr (std::is_same_v<Comm, loco::comm::in_process>) {
    loco::comm::run_in_process(n, [&](loco::comm::in_process& comm) {
      auto f = make_objective<T>(comm.rank(), d);
      fn(comm, f);
    });
  } else {
    loco::sim::options opt;
    std::vector<double> tau{0.0};
    for (int r = 1; r < n; ++r) tau.push_back(0.5 + 0.37 * r);
    tau[0] = 0.4;
    opt.compute = loco::sim::compute_model::exponential(tau);
    opt.link = loco::sim::link_model(0.01, std::numeric_limits<double>::infinity());
    opt.seed = 11;
    loco::comm::run_simulated(
        n,
        [&](loco::comm::simulated& comm) {
          loco::sim::timed f(make_objective<T>(comm.rank(), d), comm.clock());
          fn(comm, f);
        },
        opt);
  }
}

template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// Two checkpoint files hold the same state: equal headers and every section
// equal byte for byte, except the wall-clock seconds (which no two runs share).
inline void require_same_state(const fs::path& a, const fs::path& b) {
  INFO("comparing " << a << " with " << b);
  loco::checkpoint::file fa(a), fb(b);
  const auto &ha = fa.head(), &hb = fb.head();
  REQUIRE(ha.driver == hb.driver);
  REQUIRE(ha.value_type == hb.value_type);
  REQUIRE(ha.dimension == hb.dimension);
  REQUIRE(ha.world_size == hb.world_size);
  REQUIRE(ha.rank == hb.rank);
  REQUIRE(ha.fingerprint == hb.fingerprint);
  REQUIRE(ha.round == hb.round);
  const auto& sa = fa.get().sections();
  const auto& sb = fb.get().sections();
  REQUIRE(sa.size() == sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    INFO("section " << loco::checkpoint::tag_name(sa[i].id));
    REQUIRE(sa[i].id == sb[i].id);
    if (sa[i].id == loco::checkpoint::tags::ledger) continue;  // wall-clock seconds
    REQUIRE(sa[i].bytes.size() == sb[i].bytes.size());
    REQUIRE(std::memcmp(sa[i].bytes.data(), sb[i].bytes.data(), sa[i].bytes.size()) == 0);
  }
}

// Ledger totals of a straight run and a resumed one: bytes, values and
// rounds always equal; time only on the simulator (virtual, restored exactly).
inline void require_same_totals(const loco::observe::rank_totals& a,
                                const loco::observe::rank_totals& b, bool same_clock) {
  REQUIRE(a.rounds == b.rounds);
  REQUIRE(a.bytes_sent == b.bytes_sent);
  REQUIRE(a.bytes_received == b.bytes_received);
  REQUIRE(a.values_sent == b.values_sent);
  REQUIRE(a.values_received == b.values_received);
  REQUIRE(a.all_workers_sent == b.all_workers_sent);
  if (same_clock) REQUIRE(a.elapsed == Approx(b.elapsed).epsilon(1e-12));
}

}  // namespace checkpoint_tests
