#pragma once
// What every driver does to save and resume (docs/checkpoint.md): build the
// header, write the policy section first, and on resume agree on a round,
// load this rank's file, check it belongs to this run and read it.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <loco/checkpoint/file.hpp>
#include <loco/checkpoint/format.hpp>
#include <loco/checkpoint/resume.hpp>
#include <loco/checkpoint/state.hpp>
#include <loco/error.hpp>
#include <string>

namespace loco::algorithm::detail {

struct checkpoint_identity {
  checkpoint::driver_kind driver;
  std::uint8_t value_type;
  std::size_t d;
  int size;
  int rank;
  std::string description;

  checkpoint::header header(std::uint64_t round) const {
    checkpoint::header h;
    h.driver = driver;
    h.value_type = value_type;
    h.dimension = d;
    h.world_size = static_cast<std::uint32_t>(size);
    h.rank = static_cast<std::uint32_t>(rank);
    h.fingerprint = checkpoint::fingerprint(description);
    h.round = round;
    return h;
  }
};

// Builds this rank's checkpoint of `round` (write(writer&) adds the driver's
// sections) and saves it at `where`; returns the path.
template <class Write>
std::filesystem::path save_checkpoint(const checkpoint_identity& id, std::uint64_t round,
                                      const checkpoint::location& where, Write&& write) {
  checkpoint::writer w(id.header(round));
  w.section(checkpoint::tags::policy,
            [&](wire::buffer& b) { b.append(id.description.data(), id.description.size()); });
  write(w);
  return checkpoint::save(where, id.rank, round, w.finish());
}

// Collective. Loads this rank's checkpoint of `round` and hands its contents
// to read(contents); any failure on any rank fails every rank.
template <class Comm, class Read>
void load_checkpoint(Comm& comm, const checkpoint_identity& id, const checkpoint::resume& from,
                     std::uint64_t round, Read&& read) {
  const auto path = checkpoint::file_path(from.dir(), from.name(), id.rank, round);
  checkpoint::load_on_every_rank(comm, path, [&] {
    checkpoint::file f(path);
    checkpoint::require(f.get(), {id.header(round), id.description});
    if (f.head().round != round) {
      f.get().fail(checkpoint_error::reason::mismatch, "round",
                   "the file holds round " + std::to_string(f.head().round) + ", its name says " +
                       std::to_string(round));
    }
    checkpoint::read_sections(f.get(), read);
  });
}

}  // namespace loco::algorithm::detail
