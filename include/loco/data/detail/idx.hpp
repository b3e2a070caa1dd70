#pragma once
// Reading the IDX format (LeCun's MNIST files) from a gzip-compressed file.
// zlib does the decompression; this header checks everything else: magic,
// element type, rank, dimensions and the exact payload length.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <loco/error.hpp>
#include <string>
#include <utility>
#include <vector>

namespace loco::data::detail {

// The whole decompressed content of `path` (a plain, uncompressed file is
// read as is, as zlib does). `hint` is appended to the not-found message.
inline std::vector<std::uint8_t> read_gzip(const std::string& path, const std::string& hint) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw config_error("loco: data file " + path + " not found" + hint);
  }
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw config_error("loco: cannot open data file " + path + hint);
  gzbuffer(f, 1u << 17);
  std::vector<std::uint8_t> out;
  constexpr std::size_t chunk = std::size_t{1} << 20;
  std::size_t used = 0;
  for (;;) {
    out.resize(used + chunk);
    const int got = gzread(f, out.data() + used, static_cast<unsigned>(chunk));
    int errnum = Z_OK;
    const char* msg = gzerror(f, &errnum);
    if (got < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR)) {
      const std::string what = msg != nullptr ? msg : "unknown zlib error";
      gzclose_r(f);
      throw protocol_error(path, "gzip stream", "corrupt compressed data: " + what);
    }
    used += static_cast<std::size_t>(got);
    if (static_cast<std::size_t>(got) < chunk) {
      // Z_BUF_ERROR at the end means the compressed stream stopped early.
      if (errnum == Z_BUF_ERROR) {
        gzclose_r(f);
        throw protocol_error(path, "gzip stream", "truncated: compressed data ends early");
      }
      break;
    }
  }
  gzclose_r(f);
  out.resize(used);
  return out;
}

struct idx_file {
  std::vector<std::size_t> dims;
  std::vector<std::uint8_t> bytes;  // the whole file
  std::size_t offset = 0;           // where the payload starts
  const std::uint8_t* data() const noexcept { return bytes.data() + offset; }
};

// An unsigned-byte IDX file of the given rank, already decompressed:
// magic 00 00 08 <rank>, big-endian uint32 dimensions, then exactly
// prod(dims) bytes. `path` names the source in errors.
inline idx_file parse_idx(std::vector<std::uint8_t> bytes, const std::string& path,
                          std::size_t rank) {
  idx_file f;
  f.bytes = std::move(bytes);
  const auto& b = f.bytes;
  if (b.size() < 4) {
    throw protocol_error(path, "magic",
                         "truncated: " + std::to_string(b.size()) + " bytes, needs 4");
  }
  if (b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] != rank) {
    char got[16];
    std::snprintf(got, sizeof got, "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
    char want[16];
    std::snprintf(want, sizeof want, "000008%02x", static_cast<unsigned>(rank));
    throw protocol_error(path, "magic",
                         std::string("0x") + got + " is not 0x" + want + " (unsigned bytes, rank " +
                             std::to_string(rank) + ")");
  }
  f.offset = 4 + 4 * rank;
  if (b.size() < f.offset) {
    throw protocol_error(path, "dimensions",
                         "truncated: header needs " + std::to_string(f.offset) +
                             " bytes, file has " + std::to_string(b.size()));
  }
  std::size_t count = 1;
  for (std::size_t k = 0; k < rank; ++k) {
    const std::uint8_t* p = b.data() + 4 + 4 * k;
    const std::size_t d = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                          (std::size_t{p[2]} << 8) | std::size_t{p[3]};
    f.dims.push_back(d);
    if (d != 0 && count > std::numeric_limits<std::size_t>::max() / d) {
      throw protocol_error(path, "dimensions", "product of dimensions overflows");
    }
    count *= d;
  }
  const std::size_t have = b.size() - f.offset;
  if (have < count) {
    throw protocol_error(path, "data",
                         "truncated: header promises " + std::to_string(count) +
                             " bytes, file has " + std::to_string(have));
  }
  if (have > count) {
    throw protocol_error(path, "data",
                         std::to_string(have - count) + " unexpected trailing bytes after " +
                             std::to_string(count) + " bytes of data");
  }
  return f;
}

// The same, read from a (gzip-compressed or plain) file.
inline idx_file read_idx(const std::string& path, std::size_t rank, const std::string& hint) {
  return parse_idx(read_gzip(path, hint), path, rank);
}

}  // namespace loco::data::detail
