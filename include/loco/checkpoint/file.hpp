#pragma once
// Checkpoint files on disk: one file per rank and round,
//   <dir>/<name>-r<rank>-<round>.loco
// written atomically (a temporary file in the same directory, written,
// flushed and fsynced, renamed over the final name, then the directory
// fsynced), so a crash leaves either the old set of files or the new one,
// never a half-written checkpoint under a final name. POSIX only.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <loco/checkpoint/format.hpp>
#include <loco/error.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace loco::checkpoint {

// Where a rank writes its checkpoints, and how many it keeps.
struct location {
  std::filesystem::path dir;
  std::string name = "loco";
  // After a save, delete this rank's older checkpoints of this name beyond
  // the newest keep_last (0 keeps every one).
  std::size_t keep_last = 0;
};

inline void check_name(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..") {
    throw config_error("checkpoint: name '" + std::string(name) +
                       "' must be non-empty and hold no '/'");
  }
}

inline std::filesystem::path file_path(const std::filesystem::path& dir, std::string_view name,
                                       int rank, std::uint64_t round) {
  check_name(name);
  return dir /
         (std::string(name) + "-r" + std::to_string(rank) + "-" + std::to_string(round) + ".loco");
}

// The rank and round of a checkpoint file name of `name`, or nullopt.
struct file_id {
  int rank = 0;
  std::uint64_t round = 0;
};
inline std::optional<file_id> parse_file_name(std::string_view file, std::string_view name) {
  constexpr std::string_view ext = ".loco";
  if (file.size() <= name.size() + ext.size() || file.substr(0, name.size()) != name ||
      file.substr(file.size() - ext.size()) != ext) {
    return std::nullopt;
  }
  std::string_view rest = file.substr(name.size(), file.size() - name.size() - ext.size());
  if (rest.substr(0, 2) != "-r") return std::nullopt;
  rest.remove_prefix(2);
  const auto dash = rest.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == rest.size()) return std::nullopt;
  const auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  const std::string_view r = rest.substr(0, dash), n = rest.substr(dash + 1);
  if (!digits(r) || !digits(n)) return std::nullopt;
  file_id id;
  if (std::from_chars(r.data(), r.data() + r.size(), id.rank).ec != std::errc{})
    return std::nullopt;
  if (std::from_chars(n.data(), n.data() + n.size(), id.round).ec != std::errc{}) {
    return std::nullopt;
  }
  return id;
}

// The rounds of `rank`'s checkpoints of `name` in dir, ascending. Temporary
// files of unfinished writes are not checkpoints and are not listed.
inline std::vector<std::uint64_t> rounds_on_disk(const std::filesystem::path& dir,
                                                 std::string_view name, int rank) {
  check_name(name);
  std::vector<std::uint64_t> rounds;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto id = parse_file_name(it->path().filename().string(), name);
    if (id && id->rank == rank) rounds.push_back(id->round);
  }
  std::sort(rounds.begin(), rounds.end());
  return rounds;
}

namespace detail {

[[noreturn]] inline void io_fail(const std::filesystem::path& p, const std::string& what) {
  throw checkpoint_error(checkpoint_error::reason::io, p.string(), "file",
                         what + ": " + std::strerror(errno));
}

class fd {
 public:
  explicit fd(int f) noexcept : f_(f) {}
  fd(const fd&) = delete;
  fd& operator=(const fd&) = delete;
  ~fd() {
    if (f_ >= 0) ::close(f_);
  }
  int get() const noexcept { return f_; }
  int release() noexcept { return std::exchange(f_, -1); }

 private:
  int f_;
};

}  // namespace detail

// Writes bytes to path atomically: a crash at any point leaves the previous
// file at path (or none), never part of this one. The temporary file is
// "<path>.tmp.<pid>.<n>" in the same directory (rename is atomic only there).
inline void write_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  static std::atomic<std::uint64_t> counter{0};
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid()) + "." +
                                    std::to_string(counter.fetch_add(1));
  {
    detail::fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (out.get() < 0) detail::io_fail(tmp, "cannot create the temporary file");
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ::ssize_t n = ::write(out.get(), bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int saved = errno;
        ::unlink(tmp.c_str());
        errno = saved;
        detail::io_fail(tmp, "write failed");
      }
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(out.get()) != 0 || ::close(out.release()) != 0) {
      const int saved = errno;
      ::unlink(tmp.c_str());
      errno = saved;
      detail::io_fail(tmp, "fsync or close failed");
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    detail::io_fail(path, "rename from " + tmp.filename().string() + " failed");
  }
  // Make the rename itself durable.
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  detail::fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0 || ::fsync(d.get()) != 0) detail::io_fail(dir, "cannot fsync the directory");
}

inline std::vector<std::byte> read_bytes(const std::filesystem::path& path) {
  detail::fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) detail::io_fail(path, "cannot open");
  struct ::stat st {};
  if (::fstat(in.get(), &st) != 0) detail::io_fail(path, "cannot stat");
  if (!S_ISREG(st.st_mode)) {
    throw checkpoint_error(checkpoint_error::reason::io, path.string(), "file",
                           "not a regular file");
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ::ssize_t n = ::read(in.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) detail::io_fail(path, "read failed");
    if (n == 0) break;  // shrank while reading: parse() reports it
    done += static_cast<std::size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

// A checkpoint read from disk: owns its bytes and their parsed contents.
class file {
 public:
  explicit file(const std::filesystem::path& path)
      : path_(path), bytes_(read_bytes(path)), contents_(parse(bytes_, path_.string())) {}
  file(const file&) = delete;
  file& operator=(const file&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  const contents& get() const noexcept { return contents_; }
  const header& head() const noexcept { return contents_.head(); }

 private:
  std::filesystem::path path_;
  std::vector<std::byte> bytes_;
  contents contents_;
};

// Deletes rank's checkpoints of `name` in dir beyond the newest keep_last,
// and temporary files its interrupted writes left behind.
inline void prune(const std::filesystem::path& dir, std::string_view name, int rank,
                  std::size_t keep_last) {
  if (keep_last == 0) return;
  const auto rounds = rounds_on_disk(dir, name, rank);
  std::error_code ec;
  for (std::size_t i = 0; i + keep_last < rounds.size(); ++i) {
    std::filesystem::remove(file_path(dir, name, rank, rounds[i]), ec);
  }
  const std::string prefix = std::string(name) + "-r" + std::to_string(rank) + "-";
  std::vector<std::filesystem::path> stale;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string f = it->path().filename().string();
    if (f.rfind(prefix, 0) == 0 && f.find(".loco.tmp.") != std::string::npos) {
      stale.push_back(it->path());
    }
  }
  for (const auto& p : stale) std::filesystem::remove(p, ec);
}

// Writes one rank's checkpoint bytes at `loc` for `round` (creating the
// directory), then prunes; returns the path written.
inline std::filesystem::path save(const location& loc, int rank, std::uint64_t round,
                                  std::span<const std::byte> bytes) {
  std::error_code ec;
  std::filesystem::create_directories(loc.dir, ec);
  if (ec) {
    throw checkpoint_error(checkpoint_error::reason::io, loc.dir.string(), "directory",
                           "cannot create: " + ec.message());
  }
  const auto path = file_path(loc.dir, loc.name, rank, round);
  write_atomically(path, bytes);
  prune(loc.dir, loc.name, rank, loc.keep_last);
  return path;
}

}  // namespace loco::checkpoint
