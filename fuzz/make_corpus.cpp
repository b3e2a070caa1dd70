// Writes the seed corpora of the fuzz targets: valid inputs, each a target's
// configuration prefix followed by a message the library itself produced.
//   fuzz_make_corpus <dir>     writes <dir>/<target>/<name> (fuzz/corpus in the tree)
// Deterministic: the same files on every run, so regenerating shows no diff.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <loco/algorithm/detail/async_messages.hpp>
#include <loco/checkpoint/format.hpp>
#include <loco/checkpoint/state.hpp>
#include <loco/compress.hpp>
#include <loco/random/stream.hpp>
#include <loco/wire/bit_pack.hpp>
#include <loco/wire/payload.hpp>
#include <loco/wire/values.hpp>
#include <span>
#include <string>
#include <vector>

#include "codecs.hpp"
#include "common.hpp"
#ifdef LOCO_FUZZ_HAVE_TCP  // set by CMake when loco::tcp is built
#include <loco/comm/tcp/frame.hpp>
#include <loco/comm/tcp/handshake.hpp>
#endif

namespace {

namespace fs = std::filesystem;
namespace lc = loco::compress;
namespace wire = loco::wire;
using bytes = std::vector<std::byte>;
using namespace loco_fuzz;

fs::path root;
std::size_t files = 0, total = 0;

void write(const std::string& target, const std::string& name, const bytes& b) {
  const fs::path dir = root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ++files;
  total += b.size();
}

template <class T>
std::vector<T> sample(std::size_t d, std::uint64_t seed) {
  loco::random::stream rng(seed, d);
  std::vector<T> v(d);
  for (auto& x : v) x = static_cast<T>(rng.uniform() * 4.0 - 2.0);
  return v;
}

// One message of the configured codec for a random vector.
wire::buffer encode_message(const codec_config& cfg, std::uint64_t seed) {
  wire::buffer msg;
  with_codec(cfg, [&]<class T>(const auto& c) {
    using C = std::decay_t<decltype(c)>;
    lc::state_t<C, T> s(c, cfg.d, seed);
    const auto v = sample<T>(cfg.d, seed);
    c.encode(std::span<const T>(v), s, msg);
  });
  return msg;
}

void compressors() {
  for (std::uint8_t k = 0; k < static_cast<std::uint8_t>(codec::count); ++k) {
    for (bool dbl : {false, true}) {
      for (std::size_t d : {std::size_t{1}, std::size_t{37}}) {
        codec_config cfg{static_cast<codec>(k), dbl, static_cast<std::uint8_t>(d == 1 ? 0 : 5), d};
        bytes in;
        put_codec_config(in, cfg);
        const auto msg = encode_message(cfg, 1);
        put_bytes(in, msg.bytes());
        write("fuzz_compress",
              std::string(codec_names[k]) + (dbl ? "_f64_d" : "_f32_d") + std::to_string(d), in);
      }
    }
  }
}

void decorators() {
  for (std::uint8_t k = 0; k < static_cast<std::uint8_t>(codec::count); ++k) {
    const codec_config cfg{static_cast<codec>(k), false, 3, 20};
    // ef21: three messages from one sender (its differences, as C encodes them).
    bytes ef21;
    put_u8(ef21, 0);
    put_codec_config(ef21, cfg);
    with_codec(cfg, [&]<class T>(const auto& c) {
      using C = std::decay_t<decltype(c)>;
      const lc::ef21<C> e(c);
      lc::state_t<lc::ef21<C>, T> s(e, cfg.d, 1);
      wire::buffer msg;
      for (std::uint64_t r = 0; r < 3; ++r) {
        const auto v = sample<T>(cfg.d, r);
        e.encode(std::span<const T>(v), s, msg);
      }
      put_bytes(ef21, msg.bytes());
    });
    write("fuzz_compress_decorators", std::string("ef21_") + codec_names[k], ef21);
    // warmup (2 dense steps): identity, identity, then C.
    bytes warm;
    put_u8(warm, 1);
    put_codec_config(warm, cfg);
    with_codec(cfg, [&]<class T>(const auto& c) {
      using C = std::decay_t<decltype(c)>;
      const lc::warmup<C> w(c, 2);
      lc::state_t<lc::warmup<C>, T> s(w, cfg.d, 1);
      wire::buffer msg;
      for (std::uint64_t r = 0; r < 3; ++r) {
        const auto v = sample<T>(cfg.d, r);
        w.encode(std::span<const T>(v), s, msg);
      }
      put_bytes(warm, msg.bytes());
    });
    write("fuzz_compress_decorators", std::string("warmup_") + codec_names[k], warm);
  }
}

void wire_header() {
  const codec_config configs[] = {
      {codec::identity, false, 0, 5}, {codec::random_k, true, 2, 9}, {codec::qsgd, false, 4, 40}};
  int n = 0;
  for (const auto& cfg : configs) {
    const auto msg = encode_message(cfg, 2);
    bytes in;
    put_u8(in, 0);
    put_u8(in, static_cast<std::uint8_t>(msg.bytes()[0]));
    put_u8(in, static_cast<std::uint8_t>(msg.bytes()[2]));
    put_u8(in, cfg.kind == codec::random_k ? 1 : 0);
    put_u32(in, static_cast<std::uint32_t>(cfg.d));
    put_bytes(in, msg.bytes());
    write("fuzz_wire_header", "header_" + std::to_string(n++), in);
  }
  for (unsigned bits : {1u, 3u, 9u, 16u}) {
    const std::size_t r = 13;
    std::uint32_t planes[16];
    for (unsigned b = 0; b < bits; ++b) planes[b] = 0x5a5au * (b + 1);
    std::byte body[64] = {};
    wire::write_tail_planes(body, r, bits, planes);
    bytes in;
    put_u8(in, 1);
    put_u8(in, static_cast<std::uint8_t>(r - 1));
    put_u8(in, static_cast<std::uint8_t>(bits - 1));
    put_bytes(in, std::span<const std::byte>(body, wire::plane_bytes(r, bits)));
    write("fuzz_wire_header", "planes_" + std::to_string(bits), in);
  }
}

void async_messages() {
  namespace ad = loco::algorithm::detail;
  const std::vector<float> x = {1.5f, -2.0f, 0.25f};
  wire::buffer job;
  ad::write_async_job<float>(job, 7, std::span<const float>(x));
  bytes in;
  put_u8(in, 0);
  put_u8(in, 0);
  put_u16(in, 2);  // d = 3
  put_bytes(in, job.bytes());
  write("fuzz_async_messages", "job", in);
  const std::vector<float> tail = {1.0f, -1.0f, 0.5f};
  ad::write_async_stop<float>(job, true, std::span<const float>(x), std::span<const float>(tail));
  in.clear();
  put_u8(in, 0);
  put_u8(in, 0);
  put_u16(in, 2);
  put_bytes(in, job.bytes());
  write("fuzz_async_messages", "stop", in);
  ad::write_async_abort(job, 2, "connection reset by peer");
  in.clear();
  put_u8(in, 0);
  put_u8(in, 0);
  put_u16(in, 2);
  put_bytes(in, job.bytes());
  write("fuzz_async_messages", "abort", in);
  // A gradient at version 5 while the server is at 9, with a dense message.
  in.clear();
  put_u8(in, 1);
  put_u8(in, 0);
  put_u16(in, 2);
  put_u32(in, 9);
  put_u32(in, 0);
  wire::buffer g;
  g.put<std::uint64_t>(5);
  lc::identity::state<float> s(lc::identity{}, 3, 0);
  lc::identity{}.encode(std::span<const float>(x), s, g);
  put_bytes(in, g.bytes());
  write("fuzz_async_messages", "gradient", in);
}

// comm::elastic (fuzz_elastic.cpp): a result, a contribution, an admission, a
// recovery message to a new leader.
void elastic_messages() {
  const std::vector<double> v = {0.5, -1.0, 2.0};
  const auto prefix = [](std::uint8_t which) {
    bytes in;
    put_u8(in, which);
    put_u8(in, 2);  // n = 4
    put_u8(in, 2);  // d = 3
    return in;
  };
  wire::buffer m;  // allreduce result: members 0, 1, 3; rank 2 lost
  m.put<std::uint64_t>(1);
  m.put<std::uint64_t>(1);
  m.put<std::uint32_t>(3);
  for (std::int32_t q : {0, 1, 3}) m.put<std::int32_t>(q);
  m.put<std::uint32_t>(1);
  m.put<std::int32_t>(2);
  m.put<std::uint8_t>(0);
  m.put<double>(0.25);
  const std::string why = "connection lost";
  m.put<std::uint32_t>(static_cast<std::uint32_t>(why.size()));
  m.append(why.data(), why.size());
  wire::put_values<double>(m, std::span<const double>(v));
  bytes in = prefix(0);
  put_bytes(in, m.bytes());
  write("fuzz_elastic", "allreduce_result", in);
  m.clear();  // allgather result: all four members, 4 bytes each
  m.put<std::uint64_t>(1);
  m.put<std::uint64_t>(0);
  m.put<std::uint32_t>(4);
  for (std::int32_t q = 0; q < 4; ++q) m.put<std::int32_t>(q);
  m.put<std::uint32_t>(0);
  for (std::int32_t q = 0; q < 4; ++q) {
    m.put<std::int32_t>(q);
    m.put<std::uint64_t>(4);
    m.put<std::uint32_t>(static_cast<std::uint32_t>(q));
  }
  m.put<std::int32_t>(-1);
  in = prefix(1);
  put_bytes(in, m.bytes());
  write("fuzz_elastic", "allgather_result", in);
  m.clear();  // a member's contribution to the leader's allreduce
  m.put<std::uint64_t>(1);
  wire::put_values<double>(m, std::span<const double>(v));
  in = prefix(2);
  put_bytes(in, m.bytes());
  write("fuzz_elastic", "contribution", in);
  m.clear();  // an admission: round 5, collective 9, members 0 and 1, a state
  const std::string state = "LOCOCKPT state bytes";
  std::uint64_t hash = 1469598103934665603ull;
  for (char c : state) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  m.put<std::uint64_t>(5);
  m.put<std::uint64_t>(9);
  m.put<std::uint64_t>(2);
  m.put<std::uint32_t>(2);
  m.put<std::int32_t>(0);
  m.put<std::int32_t>(1);
  m.put<std::uint64_t>(hash);
  m.put<std::uint64_t>(state.size());
  m.append(state.data(), state.size());
  in = prefix(3);
  put_bytes(in, m.bytes());
  write("fuzz_elastic", "admission", in);
  m.clear();  // to a new leader: in collective 1, no last result, a contribution
  m.put<std::uint64_t>(1);
  m.put<std::uint64_t>(0);
  m.put<std::uint64_t>(0);
  m.put<std::uint64_t>(1);
  wire::put_values<double>(m, std::span<const double>(v));
  in = prefix(4);
  put_bytes(in, m.bytes());
  write("fuzz_elastic", "recovery", in);
}

void data_files() {
  // IDX: labels (rank 1) and a tiny rank-3 file.
  bytes labels = {std::byte{0}, std::byte{0}, std::byte{8}, std::byte{1},
                  std::byte{0}, std::byte{0}, std::byte{0}, std::byte{3}};
  for (int y : {1, 9, 0}) put_u8(labels, static_cast<std::uint8_t>(y));
  bytes in;
  put_u8(in, 0);
  put_u8(in, 1);
  put_bytes(in, labels);
  write("fuzz_idx", "labels_rank1", in);
  bytes cube = {std::byte{0}, std::byte{0}, std::byte{8}, std::byte{3}};
  for (int k = 0; k < 3; ++k) {
    for (int b : {0, 0, 0, 2}) put_u8(cube, static_cast<std::uint8_t>(b));
  }
  for (int i = 0; i < 8; ++i) put_u8(cube, static_cast<std::uint8_t>(30 * i));
  in.clear();
  put_u8(in, 0);
  put_u8(in, 3);
  put_bytes(in, cube);
  write("fuzz_idx", "cube_rank3", in);
  // A Fashion-MNIST split of one image and its label.
  bytes image = {std::byte{0}, std::byte{0}, std::byte{8}, std::byte{3}};
  for (int b : {0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28}) put_u8(image, static_cast<std::uint8_t>(b));
  for (int i = 0; i < 784; ++i) put_u8(image, static_cast<std::uint8_t>((i * 7) % 256));
  bytes one_label = {std::byte{0}, std::byte{0}, std::byte{8}, std::byte{1}, std::byte{0},
                     std::byte{0}, std::byte{0}, std::byte{1}, std::byte{4}};
  in.clear();
  put_u8(in, 1);
  put_u32(in, static_cast<std::uint32_t>(image.size()));
  put_bytes(in, image);
  put_bytes(in, one_label);
  write("fuzz_idx", "fashion_one_image", in);

  const char* texts[][2] = {
      {"classes", "1 1:0.5 3:-2 7:1e-3\n-1 2:4 # comment\n\n1 5:0.25\n"},
      {"regression", "0.75 1:1 2:2\n-3.5e2 4:0.125\n"},
      {"sparse", "+1 10:1.5 100:2.5\n0 1:-1\n2 3:3 4:4 5:5\n"},
  };
  for (const auto& t : texts) {
    in.clear();
    put_u8(in, std::string(t[0]) == "regression" ? 1 : 0);
    const std::string s = t[1];
    put_bytes(in, std::as_bytes(std::span<const char>(s.data(), s.size())));
    write("fuzz_libsvm", t[0], in);
  }
  in.clear();
  put_u8(in, 2 * 12);  // features = 12
  const std::string s = "3 1:1 12:2\n4 6:0.5\n";
  put_bytes(in, std::as_bytes(std::span<const char>(s.data(), s.size())));
  write("fuzz_libsvm", "fixed_features", in);
}

#ifdef LOCO_FUZZ_HAVE_TCP
void tcp_frames() {
  namespace tcp = loco::comm::detail::tcp;
  auto frame = [](std::uint8_t world_minus_1, const tcp::frame_header& h,
                  std::span<const std::byte> payload) {
    bytes in;
    put_u8(in, world_minus_1);
    put_u32(in, 1u << 20);
    const auto head = tcp::encode_header(h);
    put_bytes(in, head);
    put_bytes(in, payload);
    return in;
  };
  const bytes ten(10, std::byte{0x42});
  write("fuzz_tcp_frame", "data", frame(1, {tcp::frame_type::data, 7, 0, 10}, ten));
  write("fuzz_tcp_frame", "collective", frame(1, {tcp::frame_type::collective, 3, 2, 10}, ten));
  write("fuzz_tcp_frame", "goodbye", frame(1, {tcp::frame_type::goodbye, 0, 0, 0}, {}));
  const auto note = tcp::encode_abort({2, "rank 2 timed out"});
  write("fuzz_tcp_frame", "abort",
        frame(1, {tcp::frame_type::abort, 0, 0, note.size()}, note.bytes()));
  std::vector<tcp::table_entry> entries(3);
  entries[1].address = {127, 0, 0, 1};
  entries[1].port = 40001;
  entries[2].family = 6;
  entries[2].address[15] = 1;
  entries[2].port = 40002;
  const auto table = tcp::encode_table(entries);
  write("fuzz_tcp_frame", "table",
        frame(2, {tcp::frame_type::table, 0, 0, table.size()}, table.bytes()));

  tcp::hello h;
  h.world_size = 4;
  h.rank = 2;
  h.listen_port = 40000;
  for (std::size_t i = 0; i < h.random.size(); ++i) {
    h.random[i] = std::byte{static_cast<unsigned char>(i * 13 + 1)};
  }
  std::byte hello[tcp::challenge_bytes] = {};
  tcp::encode_hello(h, hello);
  bytes in;
  put_u8(in, 0);
  put_bytes(in, std::span<const std::byte>(hello, tcp::hello_bytes));
  put_bytes(in, bytes(tcp::mac_bytes, std::byte{0x11}));  // a proof without the token
  write("fuzz_tcp_handshake", "server_hello_proof", in);
  in.clear();
  put_u8(in, 1);
  put_bytes(in, std::span<const std::byte>(hello, tcp::challenge_bytes));
  write("fuzz_tcp_handshake", "client_challenge", in);
}
#endif

// Checkpoint files shaped like the drivers' (fixed contents, no wall time).
void checkpoints() {
  namespace ckpt = loco::checkpoint;
  constexpr std::size_t d = 7;
  const auto file = [&](ckpt::driver_kind kind, auto&& sections) {
    ckpt::header h;
    h.driver = kind;
    h.value_type = 1;
    h.dimension = d;
    h.world_size = 3;
    h.rank = 1;
    h.fingerprint = ckpt::fingerprint("corpus");
    h.round = 12;
    ckpt::writer w(h);
    w.section(ckpt::tags::policy, [](wire::buffer& b) { b.append("corpus", 6); });
    sections(w);
    const auto s = w.finish();
    return bytes(s.begin(), s.end());
  };
  const auto x = sample<float>(d, 1);
  lc::qsgd q(4, 2);
  lc::state_t<lc::qsgd, float> qs(q, d, 1);
  const auto sync = file(ckpt::driver_kind::local_sgd, [&](ckpt::writer& w) {
    w.section(ckpt::tags::counters, [](wire::buffer& b) {
      b.put<std::uint64_t>(48);
      b.put<std::uint64_t>(48);
      b.put<std::uint8_t>(0);
    });
    w.section(ckpt::tags::model, [&](wire::buffer& b) { wire::put_values<float>(b, x); });
    w.section(ckpt::tags::rng,
              [](wire::buffer& b) { ckpt::put_stream(b, loco::random::stream(3, 1)); });
    w.section(ckpt::tags::compressors, [&](wire::buffer& b) { ckpt::put_state(b, qs); });
    w.section(ckpt::tags::clock, [](wire::buffer& b) { ckpt::put_clock(b, {{1.5, 48}}); });
  });
  const auto async_worker = file(ckpt::driver_kind::async_sgd, [&](ckpt::writer& w) {
    w.section(ckpt::tags::jobs, [&](wire::buffer& b) {
      wire::buffer job;
      loco::algorithm::detail::write_async_job<float>(job, 11, x);
      b.put<std::uint32_t>(1);
      ckpt::put_clock(b, {{2.0, 5}});
      b.put<std::uint64_t>(job.size());
      b.append(job.data(), job.size());
    });
    w.section(ckpt::tags::server, [](wire::buffer& b) {
      loco::algorithm::detail::write_async_checkpoint(b, {12, 1, 3, "ckpt", "run"});
    });
  });
  for (const int m : {0, 1}) {
    const auto mode = static_cast<std::uint8_t>(m);
    bytes in;
    put_u8(in, mode);
    put_u8(in, static_cast<std::uint8_t>(d - 1));
    put_bytes(in, sync);
    write("fuzz_checkpoint", std::string("local_sgd_") + (mode ? "crc" : "nocrc"), in);
    in.resize(2);
    put_bytes(in, async_worker);
    write("fuzz_checkpoint", std::string("async_worker_") + (mode ? "crc" : "nocrc"), in);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  root = argv[1];
  compressors();
  decorators();
  wire_header();
  async_messages();
  elastic_messages();
  data_files();
  checkpoints();
#ifdef LOCO_FUZZ_HAVE_TCP
  tcp_frames();
#endif
  std::printf("fuzz_make_corpus: %zu files, %zu bytes under %s\n", files, total, argv[1]);
  return 0;
}
