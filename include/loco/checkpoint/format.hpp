#pragma once
// The checkpoint file format (docs/checkpoint.md#format), version 1. All
// integers little-endian.
//
//   offset  size  field
//        0     8  magic "LOCOCKPT"
//        8     2  format version (1)
//       10     2  driver kind (1 local_sgd, 2 async_sgd, 3 compressed_amsgrad)
//       12     1  value type (1 fp32, 2 fp64: the model's T)
//       13     3  reserved, zero
//       16     8  d, the model dimension
//       24     4  world size
//       28     4  rank
//       32     8  policy fingerprint (FNV-1a 64 of the policy description)
//       40     8  round (rounds, updates or iterations completed)
//       48     4  section count S
//       52     4  reserved, zero
//       56        S sections: [tag u32][length u64][length bytes]
//   size-4     4  CRC-32C of bytes [0, size-4)
//
// parse() reads from memory and checks every length before it is used, so
// a fuzzer can call it on any bytes; it throws loco::checkpoint_error.
#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <loco/checkpoint/crc32c.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/endian.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loco::checkpoint {

inline constexpr std::array<char, 8> magic = {'L', 'O', 'C', 'O', 'C', 'K', 'P', 'T'};
inline constexpr std::uint16_t format_version = 1;
inline constexpr std::size_t header_bytes = 56;
inline constexpr std::size_t section_header_bytes = 12;  // tag u32, length u64
inline constexpr std::size_t trailer_bytes = 4;          // CRC-32C
inline constexpr std::size_t min_file_bytes = header_bytes + trailer_bytes;

enum class driver_kind : std::uint16_t { local_sgd = 1, async_sgd = 2, compressed_amsgrad = 3 };

constexpr std::string_view to_string(driver_kind k) noexcept {
  switch (k) {
    case driver_kind::local_sgd:
      return "local_sgd";
    case driver_kind::async_sgd:
      return "async_sgd";
    case driver_kind::compressed_amsgrad:
      return "compressed_amsgrad";
  }
  return "unknown driver";
}

// A section tag: four ASCII characters, stored so the file reads them in order.
using tag = std::uint32_t;
constexpr tag make_tag(const char (&s)[5]) noexcept {
  return static_cast<tag>(static_cast<unsigned char>(s[0])) |
         static_cast<tag>(static_cast<unsigned char>(s[1])) << 8 |
         static_cast<tag>(static_cast<unsigned char>(s[2])) << 16 |
         static_cast<tag>(static_cast<unsigned char>(s[3])) << 24;
}
inline std::string tag_name(tag t) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    const auto c = static_cast<unsigned char>((t >> (8 * i)) & 0xffu);
    if (c >= 0x20 && c < 0x7f) {
      s += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      s += hex;
    }
  }
  return s;
}

struct header {
  driver_kind driver = driver_kind::local_sgd;
  std::uint8_t value_type = 1;  // wire::value_type: 1 fp32, 2 fp64
  std::uint64_t dimension = 0;
  std::uint32_t world_size = 0;
  std::uint32_t rank = 0;
  std::uint64_t fingerprint = 0;
  std::uint64_t round = 0;
};

// FNV-1a 64: the policy fingerprint of a description string.
constexpr std::uint64_t fingerprint(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Builds one checkpoint in memory: the header, then sections, then finish().
class writer {
 public:
  explicit writer(const header& h) {
    out_.append(magic.data(), magic.size());
    out_.put<std::uint16_t>(format_version);
    out_.put<std::uint16_t>(static_cast<std::uint16_t>(h.driver));
    out_.put<std::uint8_t>(h.value_type);
    for (int i = 0; i < 3; ++i) out_.put<std::uint8_t>(0);
    out_.put<std::uint64_t>(h.dimension);
    out_.put<std::uint32_t>(h.world_size);
    out_.put<std::uint32_t>(h.rank);
    out_.put<std::uint64_t>(h.fingerprint);
    out_.put<std::uint64_t>(h.round);
    out_.put<std::uint32_t>(0);  // section count, patched by finish()
    out_.put<std::uint32_t>(0);
  }

  // Appends one section; fill(wire::buffer&) writes its bytes.
  template <class Fill>
  requires std::invocable<Fill&, wire::buffer&>
  void section(tag t, Fill&& fill) {
    out_.put<std::uint32_t>(t);
    const std::size_t length_at = out_.size();
    out_.put<std::uint64_t>(0);
    const std::size_t start = out_.size();
    fill(out_);
    out_.put_at<std::uint64_t>(length_at, out_.size() - start);
    ++sections_;
  }
  void section(tag t, std::span<const std::byte> bytes) {
    section(t, [&](wire::buffer& b) { b.append(bytes.data(), bytes.size()); });
  }

  // Patches the section count and appends the CRC-32C; returns the file's bytes.
  std::span<const std::byte> finish() {
    if (!finished_) {
      out_.put_at<std::uint32_t>(48, sections_);
      out_.put<std::uint32_t>(crc32c(out_.bytes()));
      finished_ = true;
    }
    return out_.bytes();
  }

 private:
  wire::buffer out_;
  std::uint32_t sections_ = 0;
  bool finished_ = false;
};

namespace detail {
struct parser;
}

struct section {
  tag id = 0;
  std::span<const std::byte> bytes;
};

// A parsed checkpoint: the header and its sections, viewing the bytes it was
// parsed from (keep them alive and in place while this is used).
class contents {
 public:
  const header& head() const noexcept { return head_; }
  const std::string& source() const noexcept { return source_; }
  const std::vector<section>& sections() const noexcept { return sections_; }

  bool has(tag t) const noexcept {
    return std::any_of(sections_.begin(), sections_.end(),
                       [t](const section& s) { return s.id == t; });
  }
  // A reader over section t; errors name the file and the section. The view
  // refers to this object: use it while this object stays where it is.
  wire::view open(tag t) const {
    for (const auto& s : sections_) {
      if (s.id == t) return wire::view(s.bytes, source_);
    }
    fail(checkpoint_error::reason::format, "section " + tag_name(t), "missing");
  }

  [[noreturn]] void fail(checkpoint_error::reason why, const std::string& field,
                         const std::string& what) const {
    throw checkpoint_error(why, source_, field, what);
  }

 private:
  friend struct detail::parser;
  header head_;
  std::string source_;
  std::vector<section> sections_;
};

// Parses a checkpoint from memory. `source` names it in errors (the file's
// path). With verify_checksum false the CRC is not checked (for fuzzing the
// structure behind it); everything else is.
namespace detail {
struct parser {
  static contents run(std::span<const std::byte> bytes, std::string_view source,
                      bool verify_checksum);
};
}  // namespace detail

inline contents parse(std::span<const std::byte> bytes, std::string_view source = "memory",
                      bool verify_checksum = true) {
  return detail::parser::run(bytes, source, verify_checksum);
}

inline contents detail::parser::run(std::span<const std::byte> bytes, std::string_view source,
                                    bool verify_checksum) {
  using reason = checkpoint_error::reason;
  contents c;
  c.source_ = std::string(source);
  const std::size_t size = bytes.size();
  if (size < min_file_bytes) {
    c.fail(reason::truncated, "file size",
           std::to_string(size) + " bytes; the smallest checkpoint has " +
               std::to_string(min_file_bytes));
  }
  const std::size_t body = size - trailer_bytes;
  if (verify_checksum) {
    const auto stored = wire::load_le<std::uint32_t>(bytes.data() + body);
    const auto computed = crc32c(bytes.first(body));
    if (stored != computed) {
      char text[96];
      std::snprintf(text, sizeof text, "stored 0x%08x, computed 0x%08x over %zu bytes",
                    static_cast<unsigned>(stored), static_cast<unsigned>(computed), body);
      c.fail(reason::checksum, "crc32c",
             std::string(text) + " (the file is corrupt or was cut short)");
    }
  }
  if (!std::equal(magic.begin(), magic.end(), reinterpret_cast<const char*>(bytes.data()))) {
    c.fail(reason::format, "magic", "not a loco checkpoint");
  }
  wire::view in(bytes.first(body), c.source_);
  (void)in.take(magic.size(), "magic");
  const auto version = in.get<std::uint16_t>("format version");
  if (version != format_version) {
    c.fail(reason::format, "format version",
           "version " + std::to_string(version) + "; this build reads version " +
               std::to_string(format_version));
  }
  c.head_.driver = static_cast<driver_kind>(in.get<std::uint16_t>("driver kind"));
  c.head_.value_type = in.get<std::uint8_t>("value type");
  if (c.head_.value_type != 1 && c.head_.value_type != 2) {
    c.fail(reason::format, "value type",
           "code " + std::to_string(c.head_.value_type) + " is neither fp32 (1) nor fp64 (2)");
  }
  for (int i = 0; i < 3; ++i) {
    if (in.get<std::uint8_t>("reserved") != 0) c.fail(reason::format, "reserved", "not zero");
  }
  c.head_.dimension = in.get<std::uint64_t>("d");
  c.head_.world_size = in.get<std::uint32_t>("world size");
  c.head_.rank = in.get<std::uint32_t>("rank");
  c.head_.fingerprint = in.get<std::uint64_t>("policy fingerprint");
  c.head_.round = in.get<std::uint64_t>("round");
  const auto count = in.get<std::uint32_t>("section count");
  if (in.get<std::uint32_t>("reserved") != 0) c.fail(reason::format, "reserved", "not zero");
  if (count > in.remaining() / section_header_bytes) {
    c.fail(reason::format, "section count",
           std::to_string(count) + " sections cannot fit in the " + std::to_string(in.remaining()) +
               " bytes left");
  }
  c.sections_.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string field = "section " + std::to_string(i);
    if (in.remaining() < section_header_bytes) {
      c.fail(reason::format, field, "header cut short");
    }
    const auto id = in.get<std::uint32_t>("section tag");
    const auto length = in.get<std::uint64_t>("section length");
    if (length > in.remaining()) {
      c.fail(reason::format, field + " (" + tag_name(id) + ")",
             "length " + std::to_string(length) + " exceeds the " + std::to_string(in.remaining()) +
                 " bytes left");
    }
    if (c.has(id)) c.fail(reason::format, field, "tag " + tag_name(id) + " appears twice");
    c.sections_.push_back({id, in.take(static_cast<std::size_t>(length), "section")});
  }
  if (in.remaining() != 0) {
    c.fail(reason::format, "end", std::to_string(in.remaining()) + " bytes after the last section");
  }
  return c;
}

// What a driver expects of the checkpoint it resumes from.
struct expectation {
  header head;              // driver, value type, d, world size, rank, fingerprint
  std::string description;  // the policy description behind the fingerprint
};

// The section tags drivers use (docs/checkpoint.md#sections).
namespace tags {
inline constexpr tag policy = make_tag("PLCY");       // the policy description (text)
inline constexpr tag counters = make_tag("CNTR");     // step and round counters
inline constexpr tag model = make_tag("MODL");        // this rank's model x
inline constexpr tag rng = make_tag("RNG ");          // this rank's random stream
inline constexpr tag reference = make_tag("REFR");    // local_sgd: the last aggregate
inline constexpr tag polyak = make_tag("POLY");       // Polyak-Ruppert sums
inline constexpr tag compressors = make_tag("CMPS");  // compressor states
inline constexpr tag moments = make_tag("MOMS");      // AMSGrad m, v, v_hat
inline constexpr tag estimates = make_tag("ESTM");    // CD-Adam h_i, h_tilde, h
inline constexpr tag residuals = make_tag("RESD");    // error-feedback residuals
inline constexpr tag server = make_tag("ASRV");       // async_sgd server scalars
inline constexpr tag tail = make_tag("TAIL");         // async_sgd tail sums
inline constexpr tag workers = make_tag("WRKS");      // async_sgd per-worker bookkeeping
inline constexpr tag jobs = make_tag("JOBS");         // async_sgd jobs a worker holds
inline constexpr tag update = make_tag("UPDT");       // local_sgd: the inner update rule's state
inline constexpr tag merge = make_tag("MRGS");        // local_sgd: the merge rule's state
inline constexpr tag stats = make_tag("STAT");        // driver counters (deterministic)
inline constexpr tag ledger = make_tag("LDGR");       // observe::ledger totals so far
inline constexpr tag clock = make_tag("CLCK");        // the virtual clock (simulator)
inline constexpr tag memories = make_tag("MEMS");     // CD-Adam: the server's copy of each h_i
}  // namespace tags
inline constexpr tag policy_tag = tags::policy;

// Throws checkpoint_error(mismatch) naming the first field that differs.
inline void require(const contents& c, const expectation& e) {
  using reason = checkpoint_error::reason;
  const header& h = c.head();
  if (h.driver != e.head.driver) {
    c.fail(reason::mismatch, "driver kind",
           "saved by " + std::string(to_string(h.driver)) + " (code " +
               std::to_string(static_cast<unsigned>(h.driver)) + "), this run is " +
               std::string(to_string(e.head.driver)));
  }
  if (h.value_type != e.head.value_type) {
    const auto name = [](std::uint8_t v) { return v == 1 ? "fp32" : "fp64"; };
    c.fail(reason::mismatch, "value type",
           std::string("saved as ") + name(h.value_type) + ", this run uses " +
               name(e.head.value_type));
  }
  const auto differ = [&](const char* field, std::uint64_t saved, std::uint64_t now) {
    if (saved != now) {
      c.fail(reason::mismatch, field,
             "saved with " + std::to_string(saved) + ", this run has " + std::to_string(now));
    }
  };
  differ("d", h.dimension, e.head.dimension);
  differ("world size", h.world_size, e.head.world_size);
  differ("rank", h.rank, e.head.rank);
  if (h.fingerprint != e.head.fingerprint) {
    std::string saved = "?";
    if (c.has(policy_tag)) {
      const auto b = c.open(policy_tag).rest();
      saved.assign(reinterpret_cast<const char*>(b.data()), std::min<std::size_t>(b.size(), 512));
    }
    c.fail(reason::mismatch, "policy",
           "saved by '" + saved + "', this run is '" + e.description + "'");
  }
}

}  // namespace loco::checkpoint
