// Loaders: LIBSVM text files and gzip-compressed IDX files the tests write
// themselves (valid, truncated, wrong magic, wrong dimensions, ...), and one
// test on the real Fashion-MNIST files of Debian's dataset-fashion-mnist.
#include <unistd.h>
#include <zlib.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <loco/data/fashion_mnist.hpp>
#include <loco/data/libsvm.hpp>
#include <loco/data/partition.hpp>
#include <loco/problems/softmax_regression.hpp>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace ld = loco::data;
namespace fs = std::filesystem;

namespace {

// A fresh folder under the system temp directory, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() /
           ("loco_test_data_" + std::to_string(::getpid()) + "_" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

void write_gzip(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!bytes.empty()) {
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
            static_cast<int>(bytes.size()));
  }
  REQUIRE(gzclose(f) == Z_OK);
}

// An IDX file: magic 00 00 08 rank, big-endian dims, then the payload.
std::vector<std::uint8_t> idx(std::vector<std::uint32_t> dims,
                              const std::vector<std::uint8_t>& data, std::uint8_t type = 0x08) {
  std::vector<std::uint8_t> b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// n images whose pixel j of image i is (i + j) % 256, labels i % 10.
void write_fake_split(const temp_dir& dir, const std::string& split, std::uint32_t n,
                      std::uint32_t side = 28) {
  std::vector<std::uint8_t> px(std::size_t{n} * side * side);
  for (std::size_t i = 0; i < px.size(); ++i) {
    px[i] = static_cast<std::uint8_t>((i / (side * side) + i % (side * side)) % 256);
  }
  std::vector<std::uint8_t> lab(n);
  for (std::uint32_t i = 0; i < n; ++i) lab[i] = static_cast<std::uint8_t>(i % 10);
  write_gzip(dir.file(split + "-images-idx3-ubyte.gz"), idx({n, side, side}, px));
  write_gzip(dir.file(split + "-labels-idx1-ubyte.gz"), idx({n}, lab));
}

// Runs f, which must throw E; returns its message.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no exception of the expected type");
  return {};
}

}  // namespace

TEST_CASE("libsvm: a valid file, sparse and dense", "[data][libsvm]") {
  temp_dir dir;
  const auto path = dir.file("ok.svm");
  write_text(path,
             "# a comment line\n"
             "+1 1:0.5 3:-2\n"
             "\n"
             "-1 2:1e-3   4:4 # trailing comment\n"
             "1\t1:1\n");
  const auto f = ld::libsvm<float>::read(path);
  REQUIRE(f.features.rows() == 3);
  REQUIRE(f.features.cols == 4);
  REQUIRE(f.features.nonzeros() == 5);
  REQUIRE(f.labels == std::vector<double>{1.0, -1.0, 1.0});
  REQUIRE(f.class_values == std::vector<double>{-1.0, 1.0});
  const auto d = f.to_dataset();
  REQUIRE(d.classes == 2);
  REQUIRE(d.labels == std::vector<std::int32_t>{1, 0, 1});
  REQUIRE(d.features(0, 0) == 0.5f);
  REQUIRE(d.features(0, 1) == 0.0f);
  REQUIRE(d.features(0, 2) == -2.0f);
  REQUIRE(d.features(1, 1) == 1e-3f);
  REQUIRE(d.features(1, 3) == 4.0f);
  REQUIRE(d.features(2, 0) == 1.0f);
  d.validate("libsvm test");

  // features fixes p; regression keeps real targets
  const auto r = ld::load_libsvm<double>(path, {6, ld::libsvm_task::regression});
  REQUIRE(r.cols() == 6);
  REQUIRE(r.classes == 0);
  REQUIRE(r.targets(1) == -1.0);
  // multiclass labels 1..3 become 0..2
  write_text(dir.file("multi.svm"), "3 1:1\n1 1:2\n2 2:1\n3 1:0\n");
  const auto m = ld::load_libsvm<float>(dir.file("multi.svm"));
  REQUIRE(m.classes == 3);
  REQUIRE(m.labels == std::vector<std::int32_t>{2, 0, 1, 2});
}

TEST_CASE("libsvm: malformed files name the file, line and fault", "[data][libsvm]") {
  temp_dir dir;
  struct bad {
    const char* text;
    const char* expect;  // part of the message
  };
  const std::vector<bad> cases = {
      {"1 1:1\n1 0:2\n", "line 2"},           // index 0
      {"1 2:1 2:3\n", "does not increase"},   // repeated index
      {"1 3:1 2:3\n", "does not increase"},   // decreasing
      {"1 1:abc\n", "value 'abc'"},           // bad value
      {"1 1:nan\n", "not a finite number"},   // NaN value
      {"1 1:1e60\n", "not a finite number"},  // out of float range
      {"1 12\n", "is not <index>:<value>"},   // missing colon
      {"x 1:1\n", "label 'x'"},               // bad label
      {"1 qid:3 1:1\n", "qid"},               // ranking data
      {"1 -2:1\n", "is not an integer"},      // negative index
      {"# only a comment\n", "no examples"},  // empty
      {"1.5 1:1\n", "not an integer"},        // non-integer class label
      {"1 9:1\n", "exceeds features"},        // beyond the declared p
  };
  for (const auto& c : cases) {
    const auto path = dir.file("bad.svm");
    write_text(path, c.text);
    INFO("file text: " << c.text);
    const auto msg = message_of<loco::protocol_error>(
        [&] { ld::libsvm<float>::read(path, {std::string(c.text) == "1 9:1\n" ? 4u : 0u}); });
    INFO("message: " << msg);
    REQUIRE(msg.find(path) != std::string::npos);
    REQUIRE(msg.find(c.expect) != std::string::npos);
  }
  const auto missing = dir.file("missing.svm");
  const auto msg = message_of<loco::config_error>([&] { ld::libsvm<float>::read(missing); });
  REQUIRE(msg.find(missing) != std::string::npos);
}

TEST_CASE("libsvm: a huge feature index is refused before the dense matrix is built",
          "[data][libsvm]") {
  // Found by fuzz/fuzz_libsvm.cpp: two rows and an index of 2^63 + 1 made the
  // dense size n * p wrap around (undefined behaviour, then writes out of
  // bounds). The sparse file parses; the dense conversion throws.
  std::istringstream text("-1 1:1\n1 9223372036854775809:1\n");
  const auto f = ld::libsvm<float>::parse(text, "huge.svm");
  CHECK(f.features.cols == 9223372036854775809ull);
  const auto msg = message_of<loco::config_error>([&] { (void)f.to_dataset(); });
  CHECK(msg.find("2 x 9223372036854775809") != std::string::npos);
  // One row of 2^62 columns of float does not wrap, but is still too large to index.
  std::istringstream one("1 4611686018427387904:1\n");
  const auto g = ld::libsvm<float>::parse(one, "wide.svm");
  CHECK_THROWS_AS(g.to_dataset(), loco::config_error);
}

TEST_CASE("fashion_mnist: a split parses from memory as from files", "[data][idx]") {
  // The in-memory entry point the IDX fuzz target uses.
  auto idx = [](const std::vector<std::uint8_t>& dims_be, std::size_t payload, std::uint8_t fill) {
    std::vector<std::uint8_t> b(4 + dims_be.size() + payload, fill);
    b[0] = b[1] = 0;
    b[2] = 8;
    b[3] = static_cast<std::uint8_t>(dims_be.size() / 4);
    for (std::size_t i = 0; i < dims_be.size(); ++i) b[4 + i] = dims_be[i];
    return b;
  };
  const auto images = idx({0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28}, 2 * 784, 51);
  const auto labels = idx({0, 0, 0, 2}, 2, 7);
  const auto d = ld::fashion_mnist<float>::from_memory(images, labels);
  CHECK(d.rows() == 2);
  CHECK(d.cols() == 784);
  CHECK(d.labels == std::vector<std::int32_t>{7, 7});
  CHECK(d.features(1, 783) == Approx(0.2f));
  auto short_labels = labels;
  short_labels.pop_back();
  const auto msg = message_of<loco::protocol_error>(
      [&] { (void)ld::fashion_mnist<float>::from_memory(images, short_labels, "im", "lab"); });
  CHECK(msg.find("lab") != std::string::npos);
  CHECK(msg.find("truncated") != std::string::npos);
}

TEST_CASE("fashion_mnist: IDX files are validated", "[data][idx]") {
  temp_dir dir;
  using fm = ld::fashion_mnist<float>;
  const std::string images = dir.file("train-images-idx3-ubyte.gz");
  const std::string labels = dir.file("train-labels-idx1-ubyte.gz");

  SECTION("a valid small split loads, scaled to [0, 1]") {
    write_fake_split(dir, "train", 3);
    const auto d = fm::load_split(dir.path.string(), "train");
    REQUIRE(d.rows() == 3);
    REQUIRE(d.cols() == 784);
    REQUIRE(d.classes == 10);
    REQUIRE(d.labels == std::vector<std::int32_t>{0, 1, 2});
    REQUIRE(d.features(0, 0) == 0.0f);
    REQUIRE(d.features(1, 5) == 6.0f / 255.0f);
    REQUIRE(d.features(2, 253) == 1.0f);  // (2 + 253) % 256 = 255
  }
  SECTION("a missing file names the path and the Debian package") {
    const auto msg =
        message_of<loco::config_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(msg.find(images) != std::string::npos);
    REQUIRE(msg.find("dataset-fashion-mnist") != std::string::npos);
  }
  SECTION("wrong magic") {
    write_fake_split(dir, "train", 2);
    auto b = idx({2, 28, 28}, std::vector<std::uint8_t>(2 * 784, 1), 0x0d);  // float type
    write_gzip(images, b);
    const auto msg =
        message_of<loco::protocol_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(msg.find(images) != std::string::npos);
    REQUIRE(msg.find("magic") != std::string::npos);
    // A labels file where images belong: rank 1, not 3
    write_gzip(images, idx({2}, {1, 2}));
    REQUIRE_THROWS_AS(fm::load_split(dir.path.string(), "train"), loco::protocol_error);
  }
  SECTION("wrong dimensions") {
    write_fake_split(dir, "train", 2, 27);
    const auto msg =
        message_of<loco::protocol_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(msg.find("27x27") != std::string::npos);
    REQUIRE(msg.find(images) != std::string::npos);
    // label count differs from image count
    write_fake_split(dir, "train", 2);
    write_gzip(labels, idx({3}, {0, 1, 2}));
    const auto m2 =
        message_of<loco::protocol_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(m2.find(labels) != std::string::npos);
    REQUIRE(m2.find("3 labels for the 2 images") != std::string::npos);
  }
  SECTION("truncated payload and trailing bytes") {
    write_fake_split(dir, "train", 2);
    write_gzip(images, idx({2, 28, 28}, std::vector<std::uint8_t>(784 + 100, 1)));
    auto msg =
        message_of<loco::protocol_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(msg.find("truncated") != std::string::npos);
    REQUIRE(msg.find(images) != std::string::npos);
    write_gzip(images, idx({2, 28, 28}, std::vector<std::uint8_t>(2 * 784 + 1, 1)));
    msg = message_of<loco::protocol_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(msg.find("trailing") != std::string::npos);
    write_gzip(images, {0, 0, 8});
    REQUIRE_THROWS_AS(fm::load_split(dir.path.string(), "train"), loco::protocol_error);
  }
  SECTION("truncated and corrupt gzip streams") {
    write_fake_split(dir, "train", 4);
    std::vector<char> gz(static_cast<std::size_t>(fs::file_size(images)));
    std::ifstream(images, std::ios::binary)
        .read(gz.data(), static_cast<std::streamsize>(gz.size()));
    REQUIRE(gz.size() > 40);
    std::ofstream(images, std::ios::binary)
        .write(gz.data(), static_cast<std::streamsize>(gz.size() / 2));
    auto msg =
        message_of<loco::protocol_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(msg.find(images) != std::string::npos);
    REQUIRE(msg.find("truncated") != std::string::npos);
    for (std::size_t i = 20; i < gz.size() - 8; ++i) gz[i] = static_cast<char>(gz[i] ^ 0x5a);
    std::ofstream(images, std::ios::binary)
        .write(gz.data(), static_cast<std::streamsize>(gz.size()));
    msg = message_of<loco::protocol_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(msg.find(images) != std::string::npos);
  }
  SECTION("a label outside 0..9") {
    write_fake_split(dir, "train", 2);
    write_gzip(labels, idx({2}, {3, 10}));
    const auto msg =
        message_of<loco::protocol_error>([&] { fm::load_split(dir.path.string(), "train"); });
    REQUIRE(msg.find("label 10") != std::string::npos);
  }
  SECTION("standardise uses the training pixels' mean and deviation") {
    write_fake_split(dir, "train", 5);
    write_fake_split(dir, "t10k", 2);
    const auto s = fm::load(dir.path.string(), {ld::pixel_scaling::standardise});
    double sum = 0.0, sq = 0.0;
    for (float v : s.train.features) {
      sum += double(v);
      sq += double(v) * double(v);
    }
    const double n = double(s.train.features.size());
    REQUIRE(sum / n == Approx(0.0).margin(1e-5));
    REQUIRE(sq / n == Approx(1.0).epsilon(1e-4));
    REQUIRE(s.test.rows() == 2);
  }
}

TEST_CASE("fashion_mnist: the real files", "[data][real]") {
  using fm = ld::fashion_mnist<float>;
  const std::string dir = fm::directory();
  std::printf("Fashion-MNIST directory: %s\n", dir.c_str());
  fm data;
  try {
    data = fm::load(dir);
  } catch (const std::exception& e) {
    FAIL(
        "could not load Fashion-MNIST (install the Debian package dataset-fashion-mnist, or "
        "set LOCO_FASHION_MNIST_DIR): "
        << e.what());
  }
  REQUIRE(data.train.rows() == 60000);
  REQUIRE(data.test.rows() == 10000);
  REQUIRE(data.train.cols() == 784);
  data.train.validate("train");
  data.test.validate("test");
  // Fashion-MNIST is balanced: 6000 / 1000 of each class.
  std::vector<std::size_t> train_count(10, 0), test_count(10, 0);
  for (auto y : data.train.labels) ++train_count[static_cast<std::size_t>(y)];
  for (auto y : data.test.labels) ++test_count[static_cast<std::size_t>(y)];
  for (std::size_t c = 0; c < 10; ++c) {
    REQUIRE(train_count[c] == 6000);
    REQUIRE(test_count[c] == 1000);
  }
  float lo = 1.0f, hi = 0.0f;
  for (float v : data.train.features) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  REQUIRE(lo == 0.0f);
  REQUIRE(hi == 1.0f);

  // A few hundred SGD steps of softmax regression on one worker's share of a
  // Dirichlet split already beat chance (10%) by far on the test set.
  auto train = std::make_shared<const ld::dataset<float>>(std::move(data.train));
  auto test = std::make_shared<const ld::dataset<float>>(std::move(data.test));
  const auto parts = ld::partition_iid(train->rows(), 4, 1);
  loco::problems::softmax_regression<float> worker(train, parts[0], {32, 0.0});
  loco::problems::softmax_regression<float> eval(test, {32, 0.0});
  std::vector<float> x(worker.dimension(), 0.0f), g(x.size());
  loco::random::stream rng(3);
  const std::span<const float> xs(x);
  const double before = eval.accuracy(xs);
  for (int t = 0; t < 300; ++t) {
    worker.gradient(xs, std::span<float>(g), rng);
    for (std::size_t k = 0; k < x.size(); ++k) x[k] -= 0.2f * g[k];
  }
  const double after = eval.accuracy(xs);
  std::printf("softmax regression, 300 SGD steps: test accuracy %.4f (from %.4f)\n", after, before);
  REQUIRE(after > 0.65);
}
