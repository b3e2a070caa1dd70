// The checkpoint file format and its failure modes: CRC-32C, corrupt and
// truncated files, malformed structure, files of another run, atomic writes
// and pruning.
#include <catch2/catch.hpp>

#include "common.hpp"

#include <exception>
#include <fstream>
#include <loco/algorithm/compressed_amsgrad.hpp>
#include <loco/algorithm/local_sgd.hpp>
#include <loco/checkpoint/crc32c.hpp>
#include <loco/checkpoint/every.hpp>
#include <loco/checkpoint/format.hpp>
#include <loco/checkpoint/resume.hpp>
#include <loco/checkpoint/state.hpp>
#include <loco/compress.hpp>
#include <loco/merge/average.hpp>
#include <loco/random/stream.hpp>
#include <loco/stepsize/constant.hpp>
#include <string_view>

namespace {

using namespace checkpoint_tests;
namespace ckpt = loco::checkpoint;
using reason = loco::checkpoint_error::reason;

std::vector<std::byte> bytes_of(std::string_view s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

std::vector<std::byte> sample_file() {
  ckpt::header h;
  h.driver = ckpt::driver_kind::local_sgd;
  h.value_type = 1;
  h.dimension = 3;
  h.world_size = 2;
  h.rank = 1;
  h.fingerprint = ckpt::fingerprint("test policy");
  h.round = 7;
  ckpt::writer w(h);
  w.section(ckpt::tags::policy, bytes_of("test policy"));
  w.section(ckpt::tags::model, [](loco::wire::buffer& b) {
    const float x[3] = {1.0f, -2.0f, 0.5f};
    loco::wire::put_values<float>(b, x);
  });
  w.section(ckpt::tags::counters, [](loco::wire::buffer& b) { b.put<std::uint64_t>(42); });
  const auto s = w.finish();
  return {s.begin(), s.end()};
}

// Re-signs bytes after a deliberate edit, as an attacker or a bug would.
void resign(std::vector<std::byte>& b) {
  const auto crc = ckpt::crc32c(std::span<const std::byte>(b.data(), b.size() - 4));
  loco::wire::store_le<std::uint32_t>(b.data() + b.size() - 4, crc);
}

template <class F>
loco::checkpoint_error catch_checkpoint_error(F&& f) {
  try {
    f();
  } catch (const loco::checkpoint_error& e) {
    return e;
  }
  FAIL("no checkpoint_error was thrown");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("crc32c matches the Castagnoli check value and continues across pieces", "[checkpoint]") {
  const auto b = bytes_of("123456789");
  REQUIRE(ckpt::crc32c(b) == 0xE3069283u);
  REQUIRE(ckpt::crc32c({}) == 0u);
  std::vector<std::byte> longer(1000);
  loco::random::stream rng(1);
  for (auto& x : longer) x = static_cast<std::byte>(rng() & 0xff);
  const auto whole = ckpt::crc32c(longer);
  for (std::size_t cut : {0u, 1u, 7u, 8u, 9u, 500u, 999u, 1000u}) {
    const std::span<const std::byte> all(longer);
    REQUIRE(ckpt::crc32c(all.subspan(cut), ckpt::crc32c(all.first(cut))) == whole);
  }
}

TEST_CASE("a written checkpoint parses back to its header and sections", "[checkpoint]") {
  const auto file = sample_file();
  REQUIRE(file.size() == ckpt::header_bytes + 3 * ckpt::section_header_bytes + 11 + (8 + 12) + 8 +
                             ckpt::trailer_bytes);
  const auto c = ckpt::parse(file, "sample");
  REQUIRE(c.head().driver == ckpt::driver_kind::local_sgd);
  REQUIRE(c.head().dimension == 3);
  REQUIRE(c.head().world_size == 2);
  REQUIRE(c.head().rank == 1);
  REQUIRE(c.head().round == 7);
  REQUIRE(c.head().fingerprint == ckpt::fingerprint("test policy"));
  REQUIRE(c.sections().size() == 3);
  auto in = c.open(ckpt::tags::model);
  std::vector<float> x(3);
  loco::wire::get_values<float>(in, x, "model");
  REQUIRE(x == std::vector<float>{1.0f, -2.0f, 0.5f});
  REQUIRE(c.open(ckpt::tags::counters).get<std::uint64_t>("n") == 42);
  const auto e = catch_checkpoint_error([&] { (void)c.open(ckpt::tags::rng); });
  REQUIRE(e.why() == reason::format);
  REQUIRE(e.field() == "section RNG ");
  // The magic opens the file, the CRC closes it.
  REQUIRE(std::memcmp(file.data(), "LOCOCKPT", 8) == 0);
}

TEST_CASE("flipping any byte of a checkpoint is a checksum error", "[checkpoint]") {
  const auto good = sample_file();
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (unsigned mask : {0x01u, 0x80u, 0xffu}) {
      auto bad = good;
      bad[i] ^= static_cast<std::byte>(mask);
      const auto e = catch_checkpoint_error([&] { (void)ckpt::parse(bad, "flipped"); });
      INFO("byte " << i << " mask " << mask << ": " << e.what());
      REQUIRE(e.why() == reason::checksum);
      REQUIRE(e.source() == "flipped");
    }
  }
}

TEST_CASE("every truncation of a checkpoint is an error, never a crash", "[checkpoint]") {
  const auto good = sample_file();
  for (std::size_t n = 0; n < good.size(); ++n) {
    const std::span<const std::byte> prefix(good.data(), n);
    const auto e = catch_checkpoint_error([&] { (void)ckpt::parse(prefix, "cut"); });
    INFO("prefix " << n << ": " << e.what());
    REQUIRE(e.why() == (n < ckpt::min_file_bytes ? reason::truncated : reason::checksum));
    // Without the checksum the structure alone still refuses it.
    if (n >= ckpt::min_file_bytes) {
      const auto s = catch_checkpoint_error([&] { (void)ckpt::parse(prefix, "cut", false); });
      REQUIRE(s.why() == reason::format);
    }
  }
}

TEST_CASE("malformed structure behind a valid checksum is a named format error", "[checkpoint]") {
  const auto good = sample_file();
  const auto expect = [&](std::vector<std::byte> bad, const std::string& field) {
    resign(bad);
    const auto e = catch_checkpoint_error([&] { (void)ckpt::parse(bad, "edited"); });
    INFO(e.what());
    REQUIRE(e.why() == reason::format);
    REQUIRE(e.field().find(field) != std::string::npos);
  };
  {
    auto b = good;
    b[0] = std::byte{'X'};
    expect(b, "magic");
  }
  {
    auto b = good;
    b[8] = std::byte{2};  // format version 2
    expect(b, "format version");
  }
  {
    auto b = good;
    b[12] = std::byte{3};  // value type fp16 is not a model type
    expect(b, "value type");
  }
  {
    auto b = good;
    b[13] = std::byte{1};
    expect(b, "reserved");
  }
  {
    auto b = good;
    loco::wire::store_le<std::uint32_t>(b.data() + 48, 1000000);  // section count
    expect(b, "section count");
  }
  {
    auto b = good;
    loco::wire::store_le<std::uint32_t>(b.data() + 48, 2);  // one section left over
    expect(b, "end");
  }
  {
    auto b = good;
    loco::wire::store_le<std::uint64_t>(b.data() + 56 + 4, ~std::uint64_t{0});  // length
    expect(b, "section 0");
  }
  {
    auto b = good;  // the second section's tag made equal to the first's
    const std::size_t second = 56 + 12 + 11;
    std::memcpy(b.data() + second, b.data() + 56, 4);
    expect(b, "section 1");
  }
}

TEST_CASE("random bytes and random edits never crash the parser", "[checkpoint]") {
  const auto good = sample_file();
  loco::random::stream rng(2024);
  for (int trial = 0; trial < 20000; ++trial) {
    auto b = good;
    if (trial % 4 == 0) {
      b.resize(rng.below(200));
      for (auto& x : b) x = static_cast<std::byte>(rng() & 0xff);
    } else {
      const auto edits = 1 + rng.below(4);
      for (std::uint64_t k = 0; k < edits; ++k) {
        b[rng.below(b.size())] = static_cast<std::byte>(rng() & 0xff);
      }
      if (trial % 3 == 0) b.resize(rng.below(b.size() + 1));
    }
    for (bool verify : {true, false}) {
      try {
        const auto c = ckpt::parse(b, "fuzz", verify);
        for (const auto& s : c.sections()) {
          REQUIRE(s.bytes.data() >= b.data());
          REQUIRE(s.bytes.data() + s.bytes.size() <= b.data() + b.size());
        }
      } catch (const loco::checkpoint_error&) {
      }
    }
  }
}

TEST_CASE("file names, atomic writes, leftover temporary files and keep_last", "[checkpoint]") {
  temp_dir dir;
  REQUIRE(ckpt::file_path(dir.path(), "run", 3, 120) == dir.path() / "run-r3-120.loco");
  const auto id = ckpt::parse_file_name("my-run-r12-7.loco", "my-run");
  REQUIRE(id);
  REQUIRE(id->rank == 12);
  REQUIRE(id->round == 7);
  REQUIRE_FALSE(ckpt::parse_file_name("my-run-r12-7.loco.tmp.1.0", "my-run"));
  REQUIRE_FALSE(ckpt::parse_file_name("other-r1-7.loco", "my-run"));
  REQUIRE_FALSE(ckpt::parse_file_name("my-run-r-7.loco", "my-run"));
  REQUIRE_THROWS_AS(ckpt::file_path(dir.path(), "a/b", 0, 0), loco::config_error);

  const auto good = sample_file();
  const ckpt::location where{dir.path(), "run", 2};
  for (std::uint64_t round : {10u, 20u, 30u}) (void)ckpt::save(where, 1, round, good);
  // keep_last 2: round 10 is gone, 20 and 30 remain; other ranks are untouched.
  (void)ckpt::save({dir.path(), "run", 0}, 0, 10, good);
  REQUIRE(ckpt::rounds_on_disk(dir.path(), "run", 1) == std::vector<std::uint64_t>{20, 30});
  REQUIRE(ckpt::rounds_on_disk(dir.path(), "run", 0) == std::vector<std::uint64_t>{10});

  // A crash mid-write leaves a temporary file: it is not a checkpoint, it
  // does not replace the good file, and the next save with keep_last removes it.
  const auto leftover = dir.path() / "run-r1-30.loco.tmp.999.0";
  {
    std::ofstream out(leftover, std::ios::binary);
    out << "half a checkpo";
  }
  REQUIRE(ckpt::rounds_on_disk(dir.path(), "run", 1) == std::vector<std::uint64_t>{20, 30});
  {
    ckpt::file f(ckpt::file_path(dir.path(), "run", 1, 30));
    REQUIRE(f.head().round == 7);  // the sample's bytes, intact
  }
  (void)ckpt::save(where, 1, 40, good);
  REQUIRE_FALSE(fs::exists(leftover));
  REQUIRE(ckpt::rounds_on_disk(dir.path(), "run", 1) == std::vector<std::uint64_t>{30, 40});

  // Overwriting in place is atomic too: the old bytes or the new, nothing between.
  auto other = good;
  other[40] = std::byte{9};  // round 9
  resign(other);
  ckpt::write_atomically(ckpt::file_path(dir.path(), "run", 1, 40), other);
  REQUIRE(ckpt::file(ckpt::file_path(dir.path(), "run", 1, 40)).head().round == 9);
  for (const auto& e : fs::directory_iterator(dir.path())) {
    REQUIRE(e.path().string().find(".tmp.") == std::string::npos);
  }

  const auto missing = catch_checkpoint_error([&] { ckpt::file f(dir.path() / "nope.loco"); });
  REQUIRE(missing.why() == reason::io);
  REQUIRE(std::string(missing.what()).find("nope.loco") != std::string::npos);
  REQUIRE_THROWS_AS(ckpt::every(0, dir.path()), loco::config_error);
}

// ---------------------------------------------------------------- files of another run

namespace {

constexpr std::size_t dim = 13;

template <class C = loco::compress::identity>
using sgd =
    loco::local_sgd<C, loco::comm::in_process, loco::merge::average, loco::stepsize::constant>;

// Runs the driver on n ranks; returns each rank's exception (or null).
template <class Driver>
std::vector<std::exception_ptr> run_sgd(int n, std::size_t d, const Driver& driver, bool save,
                                        const fs::path& dir) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  run_world<loco::comm::in_process, float>(n, d, [&](loco::comm::in_process& comm, auto& f) {
    Driver algo = driver;
    std::vector<float> x0(d, 0.5f);
    try {
      if (save) {
        (void)algo.run(comm, f, std::span<const float>(x0), ckpt::every(2, dir));
      } else {
        (void)algo.run(comm, f, std::span<const float>(x0));
      }
    } catch (...) {  // every rank fails at the same point: none is left waiting
      errors[static_cast<std::size_t>(comm.rank())] = std::current_exception();
    }
  });
  return errors;
}

loco::checkpoint_error error_of(const std::vector<std::exception_ptr>& errors, int rank) {
  return catch_checkpoint_error([&] {
    if (auto e = errors[static_cast<std::size_t>(rank)]) std::rethrow_exception(e);
  });
}

template <class C = loco::compress::identity>
sgd<C> make_sgd(ckpt::resume from = {}, C c = {}) {
  loco::algorithm::local_sgd_options opt;
  opt.schedule = loco::algorithm::schedule::rounds(4, 2);
  opt.resume = std::move(from);
  return sgd<C>(c, {}, loco::stepsize::constant(0.1), opt);
}

}  // namespace

TEST_CASE("resuming from a file of another run names what differs", "[checkpoint]") {
  temp_dir dir;
  REQUIRE(run_sgd(3, dim, make_sgd(), true, dir.path())[0] == nullptr);  // rounds 2 and 4
  const auto at2 = ckpt::resume::at(dir.path(), "loco", 2);

  SECTION("different d") {
    const auto e = error_of(run_sgd(3, dim + 1, make_sgd(at2), false, {}), 0);
    REQUIRE(e.why() == reason::mismatch);
    REQUIRE(e.field() == "d");
    REQUIRE(std::string(e.what()).find("saved with 13, this run has 14") != std::string::npos);
  }
  SECTION("different world size") {
    const auto e = error_of(run_sgd(2, dim, make_sgd(at2), false, {}), 0);
    REQUIRE(e.why() == reason::mismatch);
    REQUIRE(e.field() == "world size");
  }
  SECTION("different compressor") {
    const auto e =
        error_of(run_sgd(3, dim, make_sgd(at2, loco::compress::top_k(0.5)), false, {}), 0);
    REQUIRE(e.why() == reason::mismatch);
    REQUIRE(e.field() == "policy");
    const std::string what = e.what();
    REQUIRE(what.find("compressor=identity[") != std::string::npos);
    REQUIRE(what.find("compressor=top_k[") != std::string::npos);
  }
  SECTION("different driver") {
    using amsgrad = loco::compressed_amsgrad<loco::compress::identity, loco::comm::in_process,
                                             loco::stepsize::constant>;
    loco::algorithm::compressed_amsgrad_options opt;
    opt.iterations = 4;
    opt.resume = at2;
    const amsgrad driver({}, loco::stepsize::constant(0.1), opt);
    std::vector<std::exception_ptr> errors(3);
    run_world<loco::comm::in_process, float>(3, dim, [&](auto& comm, auto& f) {
      amsgrad algo = driver;
      std::vector<float> x0(dim, 0.5f);
      try {
        (void)algo.run(comm, f, std::span<const float>(x0));
      } catch (...) {
        errors[static_cast<std::size_t>(comm.rank())] = std::current_exception();
      }
    });
    const auto e = error_of(errors, 0);
    REQUIRE(e.why() == reason::mismatch);
    REQUIRE(e.field() == "driver kind");
    REQUIRE(std::string(e.what()).find("saved by local_sgd") != std::string::npos);
  }
  SECTION("another rank's file") {
    fs::copy_file(ckpt::file_path(dir.path(), "loco", 1, 2),
                  ckpt::file_path(dir.path(), "loco", 0, 2), fs::copy_options::overwrite_existing);
    const auto e = error_of(run_sgd(3, dim, make_sgd(at2), false, {}), 0);
    REQUIRE(e.why() == reason::mismatch);
    REQUIRE(e.field() == "rank");
  }
  SECTION("a renamed round") {
    fs::rename(ckpt::file_path(dir.path(), "loco", 0, 4),
               ckpt::file_path(dir.path(), "loco", 0, 2));
    const auto e = error_of(run_sgd(3, dim, make_sgd(at2), false, {}), 0);
    REQUIRE(e.why() == reason::mismatch);
    REQUIRE(e.field() == "round");
  }
  SECTION("a corrupt file on one rank fails every rank") {
    const auto path = ckpt::file_path(dir.path(), "loco", 1, 2);
    auto bytes = ckpt::read_bytes(path);
    bytes[bytes.size() / 2] ^= std::byte{0x10};
    ckpt::write_atomically(path, bytes);
    // Rank 1 reports the checksum; rank 0's own file is fine: it reports that rank 1 failed.
    const auto errors = run_sgd(3, dim, make_sgd(at2), false, {});
    REQUIRE(error_of(errors, 1).why() == reason::checksum);
    const auto e = error_of(errors, 0);
    REQUIRE(e.why() == reason::io);
    REQUIRE(e.field() == "peer");
    REQUIRE(std::string(e.what()).find("rank 1") != std::string::npos);
  }
  SECTION("a section that lies about its contents, correctly signed") {
    const auto path = ckpt::file_path(dir.path(), "loco", 0, 2);
    const auto old_bytes = ckpt::read_bytes(path);
    const auto c = ckpt::parse(old_bytes, path.string());
    ckpt::writer w(c.head());
    for (const auto& s : c.sections()) {
      if (s.id == ckpt::tags::model) {
        w.section(s.id, [](loco::wire::buffer& b) {
          const float x[2] = {1, 2};
          loco::wire::put_values<float>(b, x);  // 2 values for d = 13
        });
      } else {
        w.section(s.id, s.bytes);
      }
    }
    ckpt::write_atomically(path, w.finish());
    const auto e = error_of(run_sgd(3, dim, make_sgd(at2), false, {}), 0);
    REQUIRE(e.why() == reason::format);
    REQUIRE(e.field() == "model");
  }
  SECTION("a missing round") {
    const auto e =
        error_of(run_sgd(3, dim, make_sgd(ckpt::resume::at(dir.path(), "loco", 3)), false, {}), 0);
    REQUIRE(e.why() == reason::io);
  }
  SECTION("latest: the newest round every rank has") {
    fs::remove(ckpt::file_path(dir.path(), "loco", 2, 4));  // rank 2 crashed before saving 4
    std::vector<std::uint64_t> chosen(3);
    run_world<loco::comm::in_process, float>(3, dim, [&](loco::comm::in_process& comm, auto&) {
      chosen[static_cast<std::size_t>(comm.rank())] =
          ckpt::resume::latest(dir.path(), "loco").agree(comm).value_or(99);
    });
    REQUIRE(chosen == std::vector<std::uint64_t>{2, 2, 2});
    std::vector<std::uint64_t> none(3);
    run_world<loco::comm::in_process, float>(3, dim, [&](loco::comm::in_process& comm, auto&) {
      none[static_cast<std::size_t>(comm.rank())] =
          ckpt::resume::latest(dir.path(), "other").agree(comm).value_or(99);
    });
    REQUIRE(none == std::vector<std::uint64_t>{99, 99, 99});  // nothing saved: start from x0
  }
}

// ---------------------------------------------------------------- state pieces

namespace {

// After one encode, a state saved and restored into a fresh one encodes the
// next vector to the same bytes as the original state does.
template <class C>
void require_state_round_trip(const C& c) {
  constexpr std::size_t d = 37;
  using state = loco::compress::state_t<C, float>;
  state a(c, d, 5);
  std::vector<float> v(d);
  loco::random::stream rng(3);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  loco::wire::buffer m1, m2, m3, saved;
  c.encode(std::span<const float>(v), a, m1);
  ckpt::put_state(saved, a);
  state b(c, d, 5);
  loco::wire::view in(saved, "saved");
  ckpt::get_state(in, b, "state");
  in.expect_end("state");
  for (auto& x : v) x = static_cast<float>(rng.normal());
  c.encode(std::span<const float>(v), a, m2);
  c.encode(std::span<const float>(v), b, m3);
  REQUIRE(m2 == m3);
  // A state saved for another d is refused.
  if constexpr (loco::compress::saves_state<state>) {
    state other(c, d + 1, 5);
    loco::wire::view again(saved, "saved");
    REQUIRE_THROWS_AS(ckpt::get_state(again, other, "state"), loco::protocol_error);
  }
}

}  // namespace

TEST_CASE("compressor states round-trip through a checkpoint", "[checkpoint][compress]") {
  namespace compress = loco::compress;
  require_state_round_trip(compress::qsgd(4, 9));
  require_state_round_trip(compress::natural(2));
  require_state_round_trip(compress::random_k(0.2, 4));
  require_state_round_trip(compress::warmup(compress::qsgd(2, 1), 1));
  require_state_round_trip(compress::error_feedback(compress::top_k(0.1)));
  require_state_round_trip(compress::ef21(compress::natural(6)));
  require_state_round_trip(compress::size_threshold(compress::ef21(compress::qsgd(8, 2)), 10));
  require_state_round_trip(compress::top_k(0.3));  // stateless: nothing saved, still equal
  STATIC_REQUIRE_FALSE(loco::compress::saves_state<compress::top_k::state<float>>);
  STATIC_REQUIRE(loco::compress::saves_state<compress::qsgd::state<float>>);
}

TEST_CASE("random streams round-trip with their Box-Muller spare", "[checkpoint]") {
  loco::random::stream s(7, 2);
  (void)s.normal();  // leaves a spare
  loco::wire::buffer b;
  ckpt::put_stream(b, s);
  loco::random::stream t;
  loco::wire::view in(b, "stream");
  ckpt::get_stream(in, t, "rng");
  REQUIRE(t == s);
  REQUIRE(t.normal() == s.normal());
  REQUIRE(t() == s());
  loco::wire::buffer zero;
  for (int i = 0; i < 4; ++i) zero.put<std::uint64_t>(0);
  zero.put<double>(0.0);
  zero.put<std::uint8_t>(0);
  loco::wire::view z(zero, "stream");
  REQUIRE_THROWS_AS(ckpt::get_stream(z, t, "rng"), loco::protocol_error);
}
