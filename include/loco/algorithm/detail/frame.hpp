#pragma once
// The plumbing every driver repeats around its rounds, in one place:
//   lap(phase)          the ledger's time per phase
//   save / resume       checkpoints of a state type's sections plus the
//                       ledger and the virtual clock (docs/checkpoint.md)
//   round_end / run_end callback dispatch and the agreement on a stop
//   screen_gradient     the non-finite policy
// A state type lists its own sections (checkpoint/archive.hpp):
//   template <class Archive> void sections(Archive& a);
#include <cstdint>
#include <filesystem>
#include <loco/algorithm/callbacks.hpp>
#include <loco/algorithm/detail/checkpoints.hpp>
#include <loco/checkpoint/archive.hpp>
#include <loco/checkpoint/resume.hpp>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/sim/hooks.hpp>
#include <loco/tensor/finite.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

namespace loco {

// What to do with a NaN or Inf in a gradient.
enum class non_finite_policy {
  throw_error,  // throw loco::non_finite_error naming the worker and step (default)
  skip_update,  // drop this step's update
  zero,         // zero the non-finite entries, apply the rest
};

}  // namespace loco

namespace loco::algorithm::detail {

// Applies `policy` to a fresh gradient g of `worker` at `step` (what the
// error calls it: `at`). Returns false when the step must not be applied;
// counts skipped and zeroed steps.
template <class T>
bool screen_gradient(std::span<T> g, non_finite_policy policy, std::uint64_t& skipped,
                     const char* driver, int worker, std::uint64_t step,
                     std::string_view at = "step") {
  const std::size_t bad = tensor::first_non_finite(std::span<const T>(g));
  if (bad == tensor::npos) return true;
  switch (policy) {
    case non_finite_policy::throw_error:
      throw non_finite_error(std::string(driver) + ": gradient of worker " +
                                 std::to_string(worker) + " at " + std::string(at) + " " +
                                 std::to_string(step),
                             bad);
    case non_finite_policy::skip_update:
      ++skipped;
      return false;
    case non_finite_policy::zero:
      for (auto& v : g) {
        if (!tensor::is_finite(v)) v = T{0};
      }
      ++skipped;
      return true;
  }
  return true;
}

// One rank's run of a driver whose rounds report to callbacks of type Info.
template <class Comm, class Info, class... Callbacks>
class frame {
 public:
  // A hook returning bool can stop the run: then every round ends with a
  // small collective agreeing on the stop.
  static constexpr bool agrees_on_stop = any_stopping_round_end_hook<Info, Callbacks...>();

  frame(Comm& comm, observe::ledger& ledger, checkpoint_identity identity, Callbacks&... callbacks)
      : comm_(comm), ledger_(ledger), identity_(std::move(identity)), callbacks_(callbacks...) {}

  Comm& comm() noexcept { return comm_; }
  observe::ledger& ledger() noexcept { return ledger_; }
  double now() { return comm::now(comm_); }
  // Ends the current phase of this round on the ledger.
  void lap(observe::phase p) { ledger_.lap(p, now()); }

  // Saves this rank's state after `round` at `where`; returns the path.
  template <class State>
  std::filesystem::path save(State& state, std::uint64_t round, const checkpoint::location& where) {
    return save_checkpoint(identity_, round, where, [&](checkpoint::writer& w) {
      checkpoint::section_writer a(w, agrees_on_stop);
      state.sections(a);
      w.section(checkpoint::tags::ledger, [&](wire::buffer& b) { ledger_.save(b, now()); });
      w.section(checkpoint::tags::clock,
                [&](wire::buffer& b) { checkpoint::put_clock(b, sim::saved_clock(comm_)); });
    });
  }

  // Rejoining (comm::elastic): after each round the leader hands this
  // rank's complete state, as an in-memory checkpoint, to any replacement
  // waiting to join; a replacement takes it in join() instead of resuming,
  // and goes on from the round it returns.
  template <class State>
  void admit(State& state, std::uint64_t round) {
    comm::admit_joiners(comm_, round, [&](wire::buffer& out) {
      checkpoint::writer w(identity_.header(round));
      w.section(checkpoint::tags::policy, [&](wire::buffer& b) {
        b.append(identity_.description.data(), identity_.description.size());
      });
      checkpoint::section_writer a(w, agrees_on_stop);
      state.sections(a);
      const auto bytes = w.finish();
      out.append(bytes.data(), bytes.size());
    });
  }
  // at_round(round) runs before the state is read (a driver whose
  // sections expect the round's counter sets it there).
  template <class State, class AtRound = void (*)(std::uint64_t)>
  std::uint64_t join(
      State& state, AtRound&& at_round = [](std::uint64_t) {}) {
    if constexpr (requires { comm_.join([](std::span<const std::byte>) {}); }) {
      return comm_.join([&](std::span<const std::byte> bytes) {
        const auto c = checkpoint::parse(bytes, "the state rank 0 sent to this joining rank");
        auto head = identity_.header(c.head().round);
        head.rank = c.head().rank;  // the sender's state, taken over by this rank
        checkpoint::require(c, {head, identity_.description});
        at_round(c.head().round);
        checkpoint::read_sections(c, [&](const checkpoint::contents& in) {
          checkpoint::section_reader a(in);
          state.sections(a);
        });
      });
    } else {
      (void)state;
      (void)at_round;
      return 0;
    }
  }

  // Collective. Agrees on a checkpoint to resume from; if there is one,
  // check_round(round) may refuse it, then the state, ledger and clock are
  // restored. Returns the round resumed from (0: none, start afresh).
  template <class State, class CheckRound>
  std::uint64_t resume(const checkpoint::resume& from, State& state, CheckRound&& check_round) {
    const auto saved = from.agree(comm_);
    if (!saved) return 0;
    check_round(*saved);
    std::optional<sim::clock_state> clock;
    observe::rank_totals totals;
    bool saver_agreed = false;
    load_checkpoint(comm_, identity_, from, *saved, [&](const checkpoint::contents& c) {
      checkpoint::section_reader a(c);
      state.sections(a);
      saver_agreed = a.saver_agreed();
      checkpoint::read_section(c, checkpoint::tags::ledger,
                               [&](wire::view& in) { totals = ledger_.read_saved(in); });
      checkpoint::read_section(c, checkpoint::tags::clock,
                               [&](wire::view& in) { clock = checkpoint::get_clock(in); });
    });
    if (clock) sim::restore_clock(comm_, *clock);  // before the ledger reads the time
    ledger_.restore(totals, now());
    // If the saving run agreed on its stop flag after the save, so does this
    // one (the collective costs virtual time on the simulator).
    if (saver_agreed) agree_on_stop(false);
    return *saved;
  }

  // Records in the ledger the membership changes (comm::elastic) learned
  // since the last call, as of the end of `round`.
  void note_membership(std::uint64_t round) {
    if constexpr (requires { comm_.changes(); }) {
      const auto& changes = comm_.changes();
      for (; membership_seen_ < changes.size(); ++membership_seen_) {
        const auto& c = changes[membership_seen_];
        ledger_.add_membership({round, c.rank, c.joined, c.waited, c.why});
      }
    }
  }

  // Calls every round-end hook with info; collective when a hook can stop.
  // Returns true when the ranks agreed to stop.
  bool round_end(const Info& info) {
    if constexpr (sizeof...(Callbacks) == 0) {
      return false;
    } else {
      bool stop = false;
      std::apply([&](auto&... cb) { ((stop = call_round_end(cb, info) || stop), ...); },
                 callbacks_);
      if constexpr (agrees_on_stop) stop = agree_on_stop(stop);
      lap(observe::phase::other);
      return stop;
    }
  }
  void run_end(const Info& info) {
    std::apply([&](auto&... cb) { (call_run_end(cb, info), ...); }, callbacks_);
  }

 private:
  bool agree_on_stop(bool stop) {
    float flag[1] = {stop ? 1.0f : 0.0f};
    comm_.allreduce(std::span<float>(flag), comm::reduce_op::max);
    return flag[0] > 0.0f;
  }

  Comm& comm_;
  observe::ledger& ledger_;
  checkpoint_identity identity_;
  std::tuple<Callbacks&...> callbacks_;
  std::size_t membership_seen_ = 0;
};

}  // namespace loco::algorithm::detail
