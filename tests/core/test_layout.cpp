// tensor::layout: tensors placed in order without gaps, matrix views as
// low-rank compressors see them, errors naming the bad tensor, and the flat
// layout of objectives that have none.
#include <catch2/catch.hpp>

#include <loco/error.hpp>
#include <loco/tensor/layout.hpp>
#include <span>
#include <vector>

using loco::tensor::layout;

namespace {
struct no_layout {
  using value_type = float;
  std::size_t dimension() const { return 7; }
};
struct wrong_layout {
  std::size_t dimension() const { return 7; }
  loco::tensor::layout layout() const { return loco::tensor::layout::flat(6); }
};
}  // namespace

TEST_CASE("layout: offsets cover exactly d, in order", "[core][layout]") {
  layout l;
  l.add("conv1.weight", {32, 1, 3, 3});
  l.add("conv1.bias", {32});
  l.add("fc.weight", {10, 128});
  l.add("scale", std::vector<std::size_t>{});
  REQUIRE(l.size() == 4);
  std::size_t next = 0;
  for (const auto& t : l) {
    REQUIRE(t.offset == next);
    next += t.size;
  }
  REQUIRE(next == l.dimension());
  REQUIRE(l.dimension() == 32 * 9 + 32 + 1280 + 1);
  REQUIRE(l[0].is_matrix());
  REQUIRE(l[0].matrix_rows() == 32);
  REQUIRE(l[0].matrix_cols() == 9);
  REQUIRE_FALSE(l[1].is_matrix());
  REQUIRE(l[1].matrix_rows() == 1);
  REQUIRE(l[1].matrix_cols() == 32);
  REQUIRE(l[3].size == 1);
  REQUIRE(l.find("fc.weight").offset == 32 * 9 + 32);
}

TEST_CASE("layout::chunks: d values in chunks, the last one shorter", "[core][layout]") {
  const auto l = loco::tensor::layout::chunks(10, 4);
  REQUIRE(l.size() == 3);
  CHECK(l.dimension() == 10);
  CHECK(l[0].name == "chunk0");
  CHECK(l[1].offset == 4);
  CHECK(l[2].offset == 8);
  CHECK(l[2].size == 2);
  CHECK(loco::tensor::layout::chunks(8, 4).size() == 2);
  REQUIRE_THROWS_WITH(loco::tensor::layout::chunks(8, 0), Catch::Contains("chunk size 0"));
}

TEST_CASE("layout: bad tensors are refused by name", "[core][layout]") {
  layout l;
  l.add("w", {2, 2});
  REQUIRE_THROWS_WITH(l.add("w", {3}), Catch::Contains("'w' added twice"));
  REQUIRE_THROWS_WITH(l.add("v", {3, 0}), Catch::Contains("'v' has an extent 0"));
  REQUIRE_THROWS_AS(l.add("", {1}), loco::config_error);
  REQUIRE_THROWS_WITH(l.find("nope"), Catch::Contains("no tensor named 'nope'"));
  REQUIRE_THROWS_WITH(l.require_dimension(5, "driver"),
                      Catch::Contains("covers 4 values, the model has 5"));
}

TEST_CASE("layout_of: one flat tensor without a layout, checked with one", "[core][layout]") {
  const auto flat = loco::tensor::layout_of(no_layout{});
  REQUIRE(flat.size() == 1);
  REQUIRE(flat[0].name == "x");
  REQUIRE(flat.dimension() == 7);
  REQUIRE_THROWS_AS(loco::tensor::layout_of(wrong_layout{}), loco::config_error);
}
