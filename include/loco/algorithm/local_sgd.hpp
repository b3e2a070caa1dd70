#pragma once
// local_sgd: local SGD with periodic averaging, the one driver behind
// mini-batch SGD, one-shot averaging, local SGD with decaying steps
// (ALGORITHMS.md section 2) and LOSCAR-SGD (section 3).
//
// Every rank calls run() with its own communicator and objective (SPMD).
// Round r on worker i:
//   N_i local SGD steps                                   -> snapshot y
//   start aggregating y (non-blocking)
//   Q_i more local steps while it is in flight            -> z (x holds it)
//   wait; merge rule combines z, y and the aggregate      -> x
// With fragments (Streaming DiLoCo), round r exchanges and merges only the
// coordinates of fragment r mod P; with mixing alpha the merged values are
// alpha z + (1 - alpha) merge(...).
// What travels depends on the compressor:
//   lossless (identity fp32)  the dense snapshot, averaged by iallreduce (in
//                             the model itself when nothing else reads it)
//   shared support (random_k) the K snapshot values on the round's support,
//                             averaged by iallreduce; indices are never sent
//   any other compressor      C(y - ref), where ref is the last aggregate
//                             (equal on all workers), or the last global
//                             model of an outer optimizer, so what is
//                             compressed is DiLoCo's outer gradient;
//                             messages are allgathered, decoded and
//                             averaged: ref += mean
// The driver never asks which communicator it runs on.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <loco/algorithm/callbacks.hpp>
#include <loco/algorithm/detail/checks.hpp>
#include <loco/algorithm/detail/frame.hpp>
#include <loco/algorithm/fragments.hpp>
#include <loco/algorithm/schedule.hpp>
#include <loco/checkpoint/archive.hpp>
#include <loco/comm/types.hpp>
#include <loco/concepts.hpp>
#include <loco/concepts/update_rule.hpp>
#include <loco/error.hpp>
#include <loco/merge/inputs.hpp>
#include <loco/observe/ledger.hpp>
#include <loco/random/stream.hpp>
#include <loco/sim/hooks.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/tensor/layout.hpp>
#include <loco/update/sgd.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace loco {

namespace algorithm {

struct local_sgd_options {
  algorithm::schedule schedule = algorithm::schedule::rounds(100, 10);
  // N_i per worker (one entry: all workers). Replaces the schedule's round
  // lengths; the schedule then only gives the number of rounds.
  std::vector<std::size_t> local_steps{};
  // Or derive N_i = max(1, floor(round_budget / compute_times[i])).
  std::vector<double> compute_times{};
  double round_budget = 0.0;
  // Q_i: steps taken while the aggregate is in flight (one entry: all workers).
  std::vector<std::size_t> overlap_steps{};
  // Instead of a fixed Q_i, keep stepping until the aggregate has arrived
  // (at most max_overlap_steps): exact on comm::simulated, timing-dependent
  // on real transports.
  bool overlap_until_arrival = false;
  std::size_t max_overlap_steps = 64;
  // Streaming DiLoCo: round r synchronises fragment r mod P of the model
  // (algorithm/fragments.hpp), so a fragment syncs every P rounds.
  algorithm::fragments fragments{};
  // alpha in [0, 1): after a merge, x = alpha z + (1 - alpha) merged on the
  // synchronised coordinates, z being the worker's own values (0: the merge
  // rule's result as it is).
  double mixing = 0.0;
  // Also return the Polyak-Ruppert average of the iterates.
  bool polyak_average = false;
  std::uint64_t seed = 0;
  non_finite_policy on_non_finite = non_finite_policy::throw_error;
  // Start from a checkpoint instead of x0 (docs/checkpoint.md); the schedule
  // continues at the saved round.
  checkpoint::resume resume{};
  // Keep one ledger record per round (result.ledger.rounds()); the totals
  // are kept either way.
  bool record_rounds = true;
};

// What one worker counted during a run. Bytes and time are in the ledger.
struct local_sgd_stats {
  std::size_t rounds = 0;
  std::uint64_t local_steps = 0;
  std::uint64_t overlap_steps = 0;
  std::uint64_t skipped_steps = 0;  // non-finite gradients dropped or zeroed
  double last_round_loss = 0.0;     // mean mini-batch loss of the last round
};

// progress_info: round, round_count, rank, size, model (this worker's, after
// the merge), loss, time, ledger, average_model (a collective).
template <class T>
struct round_info : progress_info<T> {
  std::uint64_t step = 0;      // this worker's local steps so far
  double mean_batch_loss = 0;  // this worker's mean mini-batch loss this round (= loss)
  const local_sgd_stats* stats = nullptr;
  // Writes this rank's complete state after this round to a checkpoint file
  // at `where` and returns its path (checkpoint::every calls it). Each rank
  // saves its own; call it on every rank in the same round.
  std::function<std::filesystem::path(const checkpoint::location& where)> save;
};

template <class T>
struct local_sgd_result {
  std::vector<T> average;  // (1/n) sum_i x_i at the end, the reported model
  std::vector<T> polyak;   // the averaged Polyak-Ruppert iterate, if requested
  std::vector<T> local;    // this worker's own final model
  local_sgd_stats stats;
  // Bytes and time per round and in total; all ranks' totals in all_ranks().
  observe::ledger ledger;
};

}  // namespace algorithm

namespace algorithm::detail {

// Everything one worker's local_sgd run carries from round to round, with
// its checkpoint sections listed next to the fields.
template <class T, class Compressor, class Update, class MergeRule>
struct local_sgd_state {
  using compressor_state = compress::state_t<Compressor, T>;
  using update_state = typename Update::template state<T>;
  using merge_state = merge::state_t<MergeRule, T>;

  std::vector<T> x;                // this worker's model
  std::vector<T> reference;        // general compressors: the last aggregate (equal on all)
  std::vector<double> polyak_sum;  // Polyak-Ruppert sums, when requested
  std::uint64_t polyak_count = 0;
  std::uint64_t t = 0;  // local steps taken
  random::stream rng;
  std::vector<compressor_state> own;      // this worker's encoder, one per fragment
  std::vector<compressor_state> senders;  // general compressors: per fragment, a decoder per sender
  update_state update;                    // the inner optimizer's (sgd: none)
  merge_state merged;                     // an outer optimizer's, equal on all workers
  local_sgd_stats stats;

  // `fragment_sizes`: the number of values of each fragment (one entry: the
  // whole model). `reference`: compressed paths keep one; `decoders`: the
  // general path decodes every sender's messages.
  local_sgd_state(const Compressor& c, const Update& u, const MergeRule& m, std::span<const T> x0,
                  int n, int me, std::uint64_t seed, bool keeps_reference, bool decoders,
                  bool polyak, std::span<const std::size_t> fragment_sizes)
      : x(x0.begin(), x0.end()),
        reference(keeps_reference ? x : std::vector<T>{}),
        polyak_sum(polyak ? x0.size() : 0, 0.0),
        rng(seed, static_cast<std::uint64_t>(me)),
        update(u, x0.size()),
        merged(m, x0) {
    own.reserve(fragment_sizes.size());
    for (std::size_t size : fragment_sizes)
      own.emplace_back(c, size, static_cast<std::uint64_t>(me));
    if (!decoders) return;
    senders.reserve(fragment_sizes.size() * static_cast<std::size_t>(n));
    for (std::size_t size : fragment_sizes) {
      for (int q = 0; q < n; ++q) senders.emplace_back(c, size, static_cast<std::uint64_t>(q));
    }
  }

  template <class Archive>
  void sections(Archive& a) {
    using checkpoint::field;
    namespace tags = checkpoint::tags;
    a.section(tags::counters, field(t, "step"), field(polyak_count, "polyak count"),
              a.stop_agreement());
    a.section(tags::model, field(x, "model"));
    a.section(tags::rng, field(rng, "rng"));
    if (!reference.empty()) a.section(tags::reference, field(reference, "reference"));
    if (!polyak_sum.empty()) a.section(tags::polyak, field(polyak_sum, "polyak sum"));
    // One fragment keeps the layout files had before fragments existed;
    // the description records the count, so files of other counts are refused.
    if (own.size() == 1) {
      a.section(tags::compressors, checkpoint::compressor_state(own[0], "compressor state"),
                checkpoint::counted_compressor_states(senders, "sender states", "sender state"));
    } else {
      a.section(tags::compressors, checkpoint::compressor_states(own, "fragment compressor state"),
                checkpoint::counted_compressor_states(senders, "sender states", "sender state"));
    }
    // Only rules with state add a section, so files of stateless runs keep
    // their layout.
    if constexpr (compress::saves_state<update_state>) {
      a.section(tags::update, checkpoint::compressor_state(update, "update state"));
    }
    if constexpr (compress::saves_state<merge_state>) {
      a.section(tags::merge, checkpoint::compressor_state(merged, "merge state"));
    }
    a.section(tags::stats, field(stats.rounds, "rounds"), field(stats.local_steps, "local steps"),
              field(stats.overlap_steps, "overlap steps"),
              field(stats.skipped_steps, "skipped steps"),
              field(stats.last_round_loss, "last round loss"));
  }
};

// How a round's snapshot y travels and comes back as the aggregate, chosen
// from the compressor's traits (the driver never asks which compressor):
//   lossless        y, averaged by iallreduce (in place in the model when
//                   nothing reads the model before the merge)
//   shared support  y on the round's support, averaged by iallreduce
//   linear          C(y - reference) in payloads averaged by allreduce
//                   (powersgd: P, then Q); reference += the approximation
//   general         C(y - reference), allgathered; reference += mean decoded
// Only the round's fragment travels: its coordinates (all of them without
// fragments) are gathered into a contiguous buffer, and the compressor state
// of that fragment encodes them.
// Allreduced payloads count the values sent and as many read back;
// gathered messages count their bytes, each standing for the fragment.
template <class T, class Compressor, class State>
class local_sgd_exchange {
 public:
  static constexpr bool lossless = compress::traits<Compressor>::lossless;
  static constexpr bool shared = compress::traits<Compressor>::shared_support;
  static constexpr bool linear = compress::traits<Compressor>::linear;
  static constexpr bool general = !lossless && !shared && !linear;
  // Compressed paths send the change from a reference equal on every worker.
  static constexpr bool keeps_reference = general || linear;
  using state = State;

  // `parts`: the fragments' coordinates (empty: one fragment, the model).
  // `in_place`: the model may be averaged where it is, because no step is
  // taken while the aggregate is in flight and the merge rule reads only the
  // average (merge::reads_model); done for a lossless exchange of the whole
  // model, which then copies nothing.
  local_sgd_exchange(Compressor& c, std::size_t d, int n, int me,
                     std::vector<std::vector<std::uint32_t>> parts, bool in_place)
      : compressor_(c),
        d_(d),
        n_(n),
        me_(me),
        parts_(std::move(parts)),
        in_place_(lossless && in_place && parts_.empty()) {
    std::size_t largest = d;
    if (!parts_.empty()) {
      largest = 0;
      for (const auto& p : parts_) largest = std::max(largest, p.size());
    }
    if (!in_place_) aggregate_.resize(largest);
    if constexpr (shared) mapped_.reserve(largest);
    if constexpr (general) sources_ = rank_sources("local_sgd message", n);
    if constexpr (keeps_reference) {
      delta_.resize(largest);
      decoded_.resize(largest);
    }
  }

  std::size_t fragment_count() const noexcept { return parts_.empty() ? 1 : parts_.size(); }
  std::size_t fragment_of(std::size_t round) const noexcept { return round % fragment_count(); }
  // The coordinates of fragment p, ascending; empty for the whole model.
  std::span<const std::uint32_t> coordinates(std::size_t p) const noexcept {
    if (parts_.empty()) return {};
    return parts_[p];
  }
  std::size_t size_of(std::size_t p) const noexcept {
    return parts_.empty() ? d_ : parts_[p].size();
  }

  // Starts aggregating fragment p of the snapshot y in round r; returns its
  // request.
  template <class Frame>
  auto start(Frame& f, state& s, std::span<const T> y, std::size_t r, std::size_t p,
             observe::ledger& ledger) {
    const std::uint64_t n = static_cast<std::uint64_t>(n_);
    p_ = p;
    const auto at = coordinates(p);
    const std::size_t m = size_of(p);
    if constexpr (lossless) {
      count_reduced(ledger, m * sizeof(T), m, n);
      const std::span<T> values =
          in_place_ ? std::span<T>(s.x) : std::span<T>(aggregate_.data(), m);
      if (!in_place_) gather(y, at, values.data(), m);
      reduced_ = values;
      return f.comm().iallreduce(values, comm::reduce_op::average);
    } else if constexpr (shared) {
      support_ = compressor_.support(s.own[p], r);
      if (!at.empty()) {  // the support is drawn in fragment coordinates
        mapped_.clear();
        for (const auto k : support_) mapped_.push_back(at[k]);
        support_ = mapped_;
      }
      values_.resize(support_.size());
      for (std::size_t k = 0; k < support_.size(); ++k) values_[k] = y[support_[k]];
      count_reduced(ledger, support_.size() * sizeof(T), m, n);
      f.lap(observe::phase::compress);
      return f.comm().iallreduce(std::span<T>(values_), comm::reduce_op::average);
    } else if constexpr (linear) {
      change(y, s, at, m);
      const auto payload = compressor_.begin(s.own[p], std::span<const T>(delta_.data(), m));
      count_reduced(ledger, payload.size() * sizeof(T), m, n);
      f.lap(observe::phase::compress);
      return f.comm().iallreduce(payload, comm::reduce_op::average);
    } else {
      change(y, s, at, m);
      message_.clear();
      compressor_.encode(std::span<const T>(delta_.data(), m), s.own[p], message_);
      ledger.add_sent(message_.size(), m);
      f.lap(observe::phase::compress);
      return f.comm().iallgather(message_.bytes(), gathered_);
    }
  }

  // After the request completed: the general path decodes every message
  // and moves the reference by their mean, which is the aggregate.
  template <class Frame>
  void finish(Frame& f, state& s, observe::ledger& ledger) {
    if constexpr (linear) {
      // The later payloads (powersgd's Q), each averaged in turn.
      auto& own = s.own[p_];
      const auto n = static_cast<std::uint64_t>(n_);
      for (auto more = compressor_.next(own); !more.empty(); more = compressor_.next(own)) {
        count_reduced(ledger, more.size() * sizeof(T), 0, n);
        f.lap(observe::phase::compress);
        f.comm().allreduce(more, comm::reduce_op::average);
        f.lap(observe::phase::communicate);
      }
      const std::size_t m = size_of(p_);
      compressor_.end(own, std::span<T>(decoded_.data(), m));
      move_reference(s, std::span<const T>(decoded_.data(), m), T{1});
      f.lap(observe::phase::compress);
    } else if constexpr (general) {
      const auto at = coordinates(p_);
      const std::size_t m = size_of(p_);
      std::fill(aggregate_.begin(), aggregate_.begin() + static_cast<std::ptrdiff_t>(m), T{0});
      std::size_t heard = 0;
      for (int q = 0; q < n_; ++q) {
        const auto i = static_cast<std::size_t>(q);
        // No message: a worker an elastic communicator lost; the mean is
        // over the survivors.
        if (gathered_[i].empty()) continue;
        ++heard;
        ledger.add_all_workers_sent(gathered_[i].size());
        if (q != me_) ledger.add_received(gathered_[i].size(), m);
        wire::view in(gathered_[i], sources_[i]);
        compressor_.decode(in, s.senders[p_ * static_cast<std::size_t>(n_) + i],
                           std::span<T>(decoded_.data(), m));
        for (std::size_t k = 0; k < m; ++k) aggregate_[k] += decoded_[k];
      }
      move_reference(s, std::span<const T>(aggregate_.data(), m), T{1} / static_cast<T>(heard));
      f.lap(observe::phase::compress);
    }
  }

  // What the merge rule sees: the snapshot and the aggregate over the
  // round's coordinates (the support, or the fragment).
  merge::inputs<T> merge_inputs(std::span<const T> y) const {
    if constexpr (shared) return {y, values_, support_};
    if constexpr (lossless) return {y, reduced_, coordinates(p_)};
    return {y, std::span<const T>(aggregate_.data(), size_of(p_)), coordinates(p_)};
  }
  // After the merge: an outer optimizer's new global model becomes the
  // reference, so the next message compresses the outer gradient itself.
  void rebase(state& s) const {
    if constexpr (keeps_reference) {
      const auto global = merge::global_model<T>(s.merged);
      if (global.empty()) return;
      const auto at = coordinates(p_);
      for (std::size_t k = 0; k < size_of(p_); ++k) {
        const std::size_t j = at.empty() ? k : at[k];
        s.reference[j] = global[j];
      }
    }
  }

  // Mixing (Streaming DiLoCo's alpha): keep_own(x) before the merge, then
  // mix(x, alpha) sets x = alpha own + (1 - alpha) x on the merged coordinates.
  void keep_own(std::span<const T> x) {
    const auto at = merged_coordinates();
    own_.resize(at.empty() ? d_ : at.size());
    gather(x, at, own_.data(), own_.size());
  }
  void mix(std::span<T> x, T alpha) const {
    const auto at = merged_coordinates();
    for (std::size_t k = 0; k < own_.size(); ++k) {
      T& v = x[at.empty() ? k : at[k]];
      v = alpha * own_[k] + (T{1} - alpha) * v;
    }
  }

 private:
  // The coordinates the merge writes (empty: all).
  std::span<const std::uint32_t> merged_coordinates() const noexcept {
    if constexpr (shared) return support_;
    return coordinates(p_);
  }

  // delta = y - reference on the fragment's coordinates.
  void change(std::span<const T> y, const state& s, std::span<const std::uint32_t> at,
              std::size_t m) {
    gather(y, at, delta_.data(), m);
    gather(std::span<const T>(s.reference), at, decoded_.data(), m);
    for (std::size_t k = 0; k < m; ++k) delta_[k] -= decoded_[k];
  }
  // reference += scale * sum on the fragment; the aggregate is the new reference.
  void move_reference(state& s, std::span<const T> sum, T scale) {
    const auto at = coordinates(p_);
    for (std::size_t k = 0; k < sum.size(); ++k) {
      T& ref = s.reference[at.empty() ? k : at[k]];
      ref += sum[k] * scale;
      aggregate_[k] = ref;
    }
  }
  static void gather(std::span<const T> from, std::span<const std::uint32_t> at, T* to,
                     std::size_t m) {
    if (at.empty()) {
      std::copy(from.begin(), from.begin() + static_cast<std::ptrdiff_t>(m), to);
    } else {
      for (std::size_t k = 0; k < m; ++k) to[k] = from[at[k]];
    }
  }
  void count_reduced(observe::ledger& ledger, std::uint64_t bytes, std::uint64_t values,
                     std::uint64_t n) const {
    ledger.add_sent(bytes, values);
    ledger.add_received(bytes, values);
    ledger.add_all_workers_sent(n * bytes);
  }

  Compressor& compressor_;
  std::size_t d_;
  int n_, me_;
  std::vector<std::vector<std::uint32_t>> parts_;
  std::size_t p_ = 0;  // the fragment in flight
  bool in_place_;
  std::vector<T> aggregate_;
  std::span<const T> reduced_;  // lossless: the average (in aggregate_, or the model itself)
  std::span<const std::uint32_t> support_;
  std::vector<std::uint32_t> mapped_;  // a fragment's support in model coordinates
  std::vector<T> values_;              // the snapshot's values on the support, then their average
  std::vector<T> delta_, decoded_;
  std::vector<T> own_;  // the worker's values on the merged coordinates, when mixing
  wire::buffer message_;
  std::vector<wire::buffer> gathered_;
  std::vector<std::string> sources_;
};

}  // namespace algorithm::detail

// Update: the inner optimizer of the local steps (update::sgd, momentum,
// adamw); MergeRule may keep state (merge::outer_nesterov: DiLoCo).
template <class Compressor, class Comm, class MergeRule, class Stepsize, class Update = update::sgd>
class local_sgd {
 public:
  using options = algorithm::local_sgd_options;

  local_sgd(Compressor compressor, MergeRule merge, Stepsize step, options opt = {},
            Update update = Update())
      : compressor_(std::move(compressor)),
        merge_(std::move(merge)),
        step_(std::move(step)),
        update_(std::move(update)),
        opt_(std::move(opt)) {
    if (opt_.round_budget < 0.0 || !std::isfinite(opt_.round_budget)) {
      throw config_error("local_sgd: round_budget " + std::to_string(opt_.round_budget) +
                         " must be finite and >= 0");
    }
    if (!(opt_.mixing >= 0.0 && opt_.mixing < 1.0)) {
      throw config_error("local_sgd: mixing " + std::to_string(opt_.mixing) + " is outside [0, 1)");
    }
    if (opt_.fragments.count == 0) throw config_error("local_sgd: fragments.count 0 must be >= 1");
    if (opt_.overlap_until_arrival && opt_.max_overlap_steps == 0) {
      throw config_error("local_sgd: max_overlap_steps 0 must be >= 1 with overlap_until_arrival");
    }
  }

  const options& settings() const noexcept { return opt_; }

  // Runs on this rank from x0 (the same x0 on every rank).
  template <class Objective, class... Callbacks>
  algorithm::local_sgd_result<typename Objective::value_type> run(
      Comm& comm, Objective& objective, std::span<const typename Objective::value_type> x0,
      Callbacks&&... callbacks) {
    using T = typename Objective::value_type;
    static_assert(check_objective<Objective>());
    static_assert(check_compressor<Compressor, T>());
    static_assert(check_communicator<Comm>());
    static_assert(check_merge_rule<MergeRule, T>());
    static_assert(check_stepsize<Stepsize>());
    static_assert(check_update_rule<Update, T>());
    return run_impl<T>(comm, objective, x0, callbacks...);
  }

  // N_i and Q_i for worker `rank` of `n`, after validation.
  std::size_t local_steps_of(int rank, int n, std::size_t round_length) const {
    if (!opt_.compute_times.empty()) {
      const double tau = opt_.compute_times[static_cast<std::size_t>(rank)];
      return std::max<std::size_t>(1,
                                   static_cast<std::size_t>(std::floor(opt_.round_budget / tau)));
    }
    if (opt_.local_steps.size() == 1) return opt_.local_steps[0];
    if (!opt_.local_steps.empty()) return opt_.local_steps[static_cast<std::size_t>(rank)];
    (void)n;  // kept in the signature: per-worker vectors are validated against it
    return round_length;
  }
  std::size_t overlap_steps_of(int rank) const {
    if (opt_.overlap_steps.empty()) return 0;
    if (opt_.overlap_steps.size() == 1) return opt_.overlap_steps[0];
    return opt_.overlap_steps[static_cast<std::size_t>(rank)];
  }

 private:
  template <class T>
  using state = algorithm::detail::local_sgd_state<T, Compressor, Update, MergeRule>;
  template <class T>
  using exchange = algorithm::detail::local_sgd_exchange<T, Compressor, state<T>>;

  void validate(int n, std::size_t d, std::size_t x0_size) const {
    const auto per_worker = [&](const char* name, std::size_t size) {
      if (size != 0 && size != 1 && size != static_cast<std::size_t>(n)) {
        throw config_error(std::string("local_sgd: ") + name + " has " + std::to_string(size) +
                           " entries; give 1 or one per worker (" + std::to_string(n) + ")");
      }
    };
    per_worker("local_steps", opt_.local_steps.size());
    per_worker("overlap_steps", opt_.overlap_steps.size());
    for (auto s : opt_.local_steps) {
      if (s == 0) throw config_error("local_sgd: local_steps entry 0 must be >= 1");
    }
    if (!opt_.compute_times.empty()) {
      if (opt_.compute_times.size() != static_cast<std::size_t>(n)) {
        throw config_error("local_sgd: compute_times has " +
                           std::to_string(opt_.compute_times.size()) + " entries for " +
                           std::to_string(n) + " workers");
      }
      if (!(opt_.round_budget > 0.0)) {
        throw config_error("local_sgd: compute_times need round_budget > 0, got " +
                           std::to_string(opt_.round_budget));
      }
      for (double tau : opt_.compute_times) {
        if (!(tau > 0.0) || !std::isfinite(tau)) {
          throw config_error("local_sgd: compute time " + std::to_string(tau) + " must be > 0");
        }
      }
    }
    algorithm::detail::require_start_size(x0_size, d, "local_sgd");
    if (d == 0) throw config_error("local_sgd: dimension 0");
  }

  // Round r on this worker, as in the header comment: N_i local steps,
  // snapshot, start aggregating, Q_i overlap steps, wait, merge.
  template <class T, class Objective, class... Callbacks>
  algorithm::local_sgd_result<T> run_impl(Comm& comm, Objective& objective, std::span<const T> x0,
                                          Callbacks&... callbacks) {
    const int n = comm.size(), me = comm.rank();
    const std::size_t d = objective.dimension();
    validate(n, d, x0.size());
    // A replacement joining a running world (comm::elastic) skips the
    // start's collectives: the others ran them long ago, and the state it
    // receives is checked against its own dimension and policies.
    const bool joining = comm::joining(comm);
    if (!joining) algorithm::detail::require_same_dimension(comm, d, "local_sgd");

    auto parts = opt_.fragments.of(tensor::layout_of(objective));
    std::vector<std::size_t> fragment_sizes{d};
    if (!parts.empty()) {
      if constexpr (exchange<T>::linear) {
        throw config_error("local_sgd: fragments.count " + std::to_string(parts.size()) +
                           " with the linear compressor " +
                           std::string(compress::traits<Compressor>::name) +
                           ", whose layout covers the whole model; use fragments.count 1");
      }
      if (!joining) algorithm::detail::require_same_fragments(comm, parts, "local_sgd");
      fragment_sizes.clear();
      for (const auto& p : parts) fragment_sizes.push_back(p.size());
    }

    algorithm::local_sgd_result<T> result;
    auto& ledger = result.ledger;
    state<T> s = [&] {
      try {
        return state<T>(compressor_, update_, merge_, x0, n, me, opt_.seed,
                        exchange<T>::keeps_reference, exchange<T>::general, opt_.polyak_average,
                        fragment_sizes);
      } catch (const config_error& e) {
        if (parts.empty()) throw;
        // A compressor's settings (random_k's k) apply to each fragment.
        throw config_error(
            std::string(e.what()) +
            " (local_sgd builds one compressor state per "
            "fragment; the smallest of the " +
            std::to_string(parts.size()) + " fragments has " +
            std::to_string(*std::min_element(fragment_sizes.begin(), fragment_sizes.end())) +
            " values)");
      }
    }();
    const bool mixing = opt_.mixing != 0.0;
    // The snapshot y needs a copy of its own only if steps follow it before
    // the merge; otherwise x still holds it then, and the merge rule reads
    // it there (merge/inputs.hpp: y may share x's memory). Nor does the
    // model need a copy to be averaged if nothing else reads it meanwhile.
    const bool steps_in_flight = opt_.overlap_until_arrival || overlap_steps_of(me) > 0;
    const bool in_place = !steps_in_flight && !mixing && !merge::reads_model<MergeRule>();
    exchange<T> aggregation(compressor_, d, n, me, std::move(parts), in_place);
    std::vector<T> y(steps_in_flight ? d : 0), g(d);
    algorithm::detail::frame<Comm, algorithm::round_info<T>, Callbacks...> f(
        comm, ledger, identity<T>(d, n, me), callbacks...);
    const auto& lengths = opt_.schedule.round_lengths();
    // Every rank sees every worker's payload (equal sizes, or all gathered).
    ledger.start(me, n, observe::role::peer, f.now(), opt_.record_rounds, true);
    ledger.reserve_rounds(lengths.size());
    const auto first_round =
        joining ? take_over(f, s, me, lengths.size())
                : f.resume(opt_.resume, s, [&](std::uint64_t saved) {
                    if (saved > lengths.size()) {
                      throw config_error("local_sgd: the checkpoint of round " +
                                         std::to_string(saved) + " lies past the schedule's " +
                                         std::to_string(lengths.size()) + " rounds");
                    }
                  });
    average_model<T> average{comm, s.x, first_round};
    double round_loss = 0.0;
    std::size_t round_steps = 0;
    const auto step = [&] {
      round_loss += local_step(objective, s, g, me);
      ++round_steps;
    };

    for (std::size_t r = first_round; r < lengths.size(); ++r) {
      round_loss = 0.0;
      round_steps = 0;
      const std::size_t local = local_steps_of(me, n, lengths[r]);
      for (std::size_t i = 0; i < local; ++i) step();
      s.stats.local_steps += local;
      if (steps_in_flight) y = s.x;
      const std::span<const T> snapshot = steps_in_flight ? std::span<const T>(y) : s.x;
      f.lap(observe::phase::compute);

      auto request = aggregation.start(f, s, snapshot, r, aggregation.fragment_of(r), ledger);
      f.lap(observe::phase::communicate);

      // Overlap: keep stepping while the aggregate is in flight.
      std::size_t overlap = 0;
      if (opt_.overlap_until_arrival) {
        for (; overlap < opt_.max_overlap_steps && !request.test(); ++overlap) step();
      } else {
        overlap = overlap_steps_of(me);
        for (std::size_t i = 0; i < overlap; ++i) step();
      }
      s.stats.overlap_steps += overlap;
      f.lap(observe::phase::compute);

      request.wait();
      f.lap(observe::phase::wait);
      aggregation.finish(f, s, ledger);
      if (mixing) aggregation.keep_own(s.x);
      merge::apply_rule(merge_, s.merged, aggregation.merge_inputs(snapshot), std::span<T>(s.x));
      aggregation.rebase(s);
      if (mixing) aggregation.mix(std::span<T>(s.x), static_cast<T>(opt_.mixing));

      ++s.stats.rounds;
      f.note_membership(r + 1);
      average.round = r + 1;
      s.stats.last_round_loss = round_steps ? round_loss / static_cast<double>(round_steps) : 0.0;
      const auto& record = ledger.end_round(r + 1, s.t, f.now(), s.stats.last_round_loss);
      const auto save = [&](const checkpoint::location& l) { return f.save(s, r + 1, l); };
      auto info = info_at(s, r + 1, lengths.size(), n, me, record.time, ledger);
      info.average_model = std::ref(average.get);  // no copy, no allocation
      info.save = std::ref(save);
      if (f.round_end(info)) break;
      f.admit(s, r + 1);
    }
    ledger.finish(f.now());
    finish_run(f, s, result, lengths.size(), n, me);
    return result;
  }

  // A joining replacement: the leader's state after some round, with this
  // rank's own random stream; returns that round.
  template <class T, class Frame>
  std::size_t take_over(Frame& f, state<T>& s, int me, std::size_t rounds) const {
    const auto round = f.join(s);
    if (round > rounds) {
      throw protocol_error("comm::elastic admission", "round",
                           "round " + std::to_string(round) + " lies past the schedule's " +
                               std::to_string(rounds) + " rounds");
    }
    s.rng = random::stream(opt_.seed, static_cast<std::uint64_t>(me));
    return static_cast<std::size_t>(round);
  }

  // One local SGD step on x; returns the mini-batch loss.
  template <class Objective, class T>
  double local_step(Objective& objective, state<T>& s, std::vector<T>& g, int me) {
    ++s.t;
    const double loss = objective.gradient(std::span<const T>(s.x), std::span<T>(g), s.rng);
    if (algorithm::detail::screen_gradient(std::span<T>(g), opt_.on_non_finite,
                                           s.stats.skipped_steps, "local_sgd", me, s.t)) {
      stepsize::context ctx;
      ctx.t = s.t;
      ctx.worker = me;
      update_.step(s.update, std::span<T>(s.x), std::span<const T>(g), step_.eta(ctx));
    }
    if (opt_.polyak_average) {
      for (std::size_t j = 0; j < g.size(); ++j) s.polyak_sum[j] += static_cast<double>(s.x[j]);
      ++s.polyak_count;
    }
    return loss;
  }

  // The average of all workers' models, computed at most once per round: a
  // collective, so callbacks call it on every rank in the same round or none.
  template <class T>
  struct average_model {
    Comm& comm;
    const std::vector<T>& x;
    std::size_t round;
    std::vector<T> buffer{};
    std::size_t buffer_round = 0;
    std::function<std::span<const T>()> get = [this]() -> std::span<const T> {
      if (buffer_round != round || buffer.empty()) {
        buffer = x;
        comm.allreduce(std::span<T>(buffer), comm::reduce_op::average);
        buffer_round = round;
      }
      return buffer;
    };
  };

  template <class T>
  static algorithm::round_info<T> info_at(const state<T>& s, std::uint64_t round,
                                          std::size_t rounds, int n, int me, double time,
                                          observe::ledger& ledger) {
    algorithm::round_info<T> info;
    info.round = round;
    info.round_count = rounds;
    info.rank = me;
    info.size = n;
    info.model = s.x;
    info.loss = s.stats.last_round_loss;
    info.time = time;
    info.ledger = &ledger;
    info.step = s.t;
    info.mean_batch_loss = s.stats.last_round_loss;
    info.stats = &s.stats;
    return info;
  }

  // After the last round: the averaged model (and Polyak iterate), every
  // rank's ledger totals, and the run-end hooks.
  template <class T, class Frame>
  void finish_run(Frame& f, state<T>& s, algorithm::local_sgd_result<T>& result, std::size_t rounds,
                  int n, int me) {
    auto& ledger = result.ledger;
    result.local = s.x;
    result.average = s.x;
    f.comm().allreduce(std::span<T>(result.average), comm::reduce_op::average);
    if (opt_.polyak_average) {
      result.polyak.resize(s.x.size());
      const double inv = s.polyak_count ? 1.0 / static_cast<double>(s.polyak_count) : 0.0;
      for (std::size_t j = 0; j < s.x.size(); ++j) {
        result.polyak[j] = static_cast<T>(s.polyak_sum[j] * inv);
      }
      f.comm().allreduce(std::span<T>(result.polyak), comm::reduce_op::average);
    }
    ledger.gather(f.comm());
    auto info = info_at(s, s.stats.rounds, rounds, n, me, ledger.totals().elapsed, ledger);
    info.average_model = [&]() -> std::span<const T> { return result.average; };
    f.run_end(info);
    result.stats = s.stats;
  }

  template <class T>
  algorithm::detail::checkpoint_identity identity(std::size_t d, int n, int me) const {
    return {checkpoint::driver_kind::local_sgd,
            checkpoint::value_type_code<T>(),
            d,
            n,
            me,
            description<T>()};
  }

  // What a checkpoint must have been written by: the policies and the
  // options that shape the saved state.
  template <class T>
  std::string description() const {
    return "local_sgd<" + std::string(sizeof(T) == 4 ? "fp32" : "fp64") +
           "; compressor=" + checkpoint::compressor_description<Compressor>() +
           "; merge=" + checkpoint::policy_name<MergeRule>() +
           "; stepsize=" + checkpoint::policy_name<Stepsize>() +
           "; polyak=" + (opt_.polyak_average ? "1" : "0") + update_description() +
           fragments_description<T>() + ">";
  }
  // Runs with the plain sgd step keep the description (and the checkpoints)
  // they had before update rules existed.
  static std::string update_description() {
    if constexpr (std::is_same_v<Update, update::sgd>) {
      return "";
    } else {
      return "; update=" + checkpoint::policy_name<Update>();
    }
  }

  // Likewise runs without fragments. Compressed exchanges under an outer
  // optimizer take their reference from its global model (they took the
  // last aggregate before): files of the old meaning are refused.
  template <class T>
  std::string fragments_description() const {
    std::string out;
    if constexpr (exchange<T>::keeps_reference &&
                  requires(const state<T>& s) { s.merged.global; }) {
      out += "; reference=global";
    }
    if (opt_.fragments.count == 1) return out;
    return out + "; fragments=" + std::to_string(opt_.fragments.count) + " " +
           algorithm::fragments::name_of(opt_.fragments.by);
  }

  Compressor compressor_;
  MergeRule merge_;
  Stepsize step_;
  Update update_;
  options opt_;
};

}  // namespace loco
