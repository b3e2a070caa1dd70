#pragma once
// Every exception loco throws, declared once.
//
//   loco::error            runtime failures (base of the ones below)
//   loco::protocol_error   bytes from a peer or a file that break the format
//   loco::checkpoint_error a checkpoint file that cannot be read, is corrupt,
//                          or belongs to another run (a protocol_error)
//   loco::peer_lost        a peer died or stopped answering within the timeout
//   loco::non_finite_error a NaN or Inf where a finite value is required
//   loco::config_error     a bad setting, thrown before any work starts
//                          (a std::invalid_argument, so callers may catch that)
#include <cstddef>
#include <stdexcept>
#include <string>

namespace loco {

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A malformed message or file. `source` names the peer or file, `field` the
// part of the format that was wrong.
class protocol_error : public error {
 public:
  protocol_error(std::string source, std::string field, const std::string& what)
      : error("loco: protocol error from " + source + " in field '" + field + "': " + what),
        source_(std::move(source)),
        field_(std::move(field)) {}
  const std::string& source() const noexcept { return source_; }
  const std::string& field() const noexcept { return field_; }

 protected:
  // For subclasses that word their own message.
  struct worded {};
  protocol_error(worded, std::string source, std::string field, const std::string& message)
      : error(message), source_(std::move(source)), field_(std::move(field)) {}

 private:
  std::string source_;
  std::string field_;
};

// A checkpoint file that cannot be used: `source()` is the file, `field()`
// the part of the format (or the setting) that failed, `why()` the kind.
class checkpoint_error : public protocol_error {
 public:
  enum class reason {
    io,         // missing, unreadable or unwritable
    truncated,  // shorter than the smallest checkpoint
    checksum,   // the CRC-32C does not match: corrupt or cut short
    format,     // wrong magic, unknown format version, malformed section
    mismatch,   // a valid checkpoint of another run (d, world size, rank, driver, policy)
  };
  checkpoint_error(reason why, std::string file, std::string field, const std::string& what)
      : protocol_error(worded{}, file, field,
                       "loco: checkpoint " + file + ": " + std::string(name(why)) + " in field '" +
                           field + "': " + what),
        why_(why) {}
  reason why() const noexcept { return why_; }

  static constexpr const char* name(reason r) noexcept {
    switch (r) {
      case reason::io:
        return "i/o error";
      case reason::truncated:
        return "truncated file";
      case reason::checksum:
        return "checksum mismatch";
      case reason::format:
        return "bad format";
      case reason::mismatch:
        return "mismatch";
    }
    return "error";
  }

 private:
  reason why_;
};

// A peer that died, closed its connection or did not answer in time.
class peer_lost : public error {
 public:
  peer_lost(int rank, const std::string& why)
      : error("loco: lost peer rank " + std::to_string(rank) + ": " + why), rank_(rank) {}
  int rank() const noexcept { return rank_; }

 private:
  int rank_;
};

// A NaN or Inf found in a gradient, a message or a residual.
class non_finite_error : public error {
 public:
  non_finite_error(const std::string& where, std::size_t index)
      : error("loco: non-finite value in " + where + " at index " + std::to_string(index)),
        index_(index) {}
  std::size_t index() const noexcept { return index_; }

 private:
  std::size_t index_;
};

// A setting that cannot work; the message names the value and the rule.
class config_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace loco
