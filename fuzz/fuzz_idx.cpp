// The IDX parser behind the Fashion-MNIST loader, from memory (gzip
// decompression is zlib's and not fuzzed here). Input: u8 mode, then
//   even mode: u8 rank (rank % 4), then one IDX file (data::detail::parse_idx)
//   odd mode:  u32 split, then the images file (the first split % n bytes)
//              and the labels file (the rest): fashion_mnist<float>::from_memory
// Invariants: only protocol_error is thrown; an accepted file's payload is
// exactly the product of its dimensions; an accepted split has one label in
// [0, 10) per 28x28 image and every pixel in [0, 1].
#include <cstddef>
#include <cstdint>
#include <loco/data/fashion_mnist.hpp>
#include <loco/error.hpp>
#include <vector>

#include "common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader in(loco_fuzz::as_bytes(data, size));
  const bool single = in.u8() % 2 == 0;
  if (single) {
    const std::size_t rank = in.u8() % 4;
    const auto rest = in.rest();
    const auto* p = reinterpret_cast<const std::uint8_t*>(rest.data());
    loco::data::detail::idx_file f;
    try {
      f = loco::data::detail::parse_idx(std::vector<std::uint8_t>(p, p + rest.size()), "fuzz",
                                        rank);
    } catch (const loco::protocol_error&) {
      return 0;
    }
    LOCO_FUZZ_CHECK(f.dims.size() == rank);
    LOCO_FUZZ_CHECK(f.offset == 4 + 4 * rank);
    std::size_t count = 1;
    for (std::size_t dim : f.dims) count *= dim;
    LOCO_FUZZ_CHECK(f.bytes.size() == f.offset + count);
    return 0;
  }
  const std::uint32_t split_at = in.u32();
  const auto rest = in.rest();
  const auto* p = reinterpret_cast<const std::uint8_t*>(rest.data());
  const std::size_t split = rest.empty() ? 0 : split_at % (rest.size() + 1);
  loco::data::dataset<float> d;
  try {
    d = loco::data::fashion_mnist<float>::from_memory(
        std::vector<std::uint8_t>(p, p + split),
        std::vector<std::uint8_t>(p + split, p + rest.size()));
  } catch (const loco::protocol_error&) {
    return 0;
  }
  LOCO_FUZZ_CHECK(d.cols() == 784);
  LOCO_FUZZ_CHECK(d.labels.size() == d.rows());
  LOCO_FUZZ_CHECK(d.classes == 10);
  for (auto y : d.labels) LOCO_FUZZ_CHECK(y >= 0 && y < 10);
  for (float x : d.features) LOCO_FUZZ_CHECK(x >= 0.0f && x <= 1.0f);
  d.validate("fuzz");
  return 0;
}
