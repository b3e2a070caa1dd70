#pragma once
// observe::ledger: what one rank sent, received and spent its time on, per
// round and in total; after the run also every rank's totals, so the summary
// on any rank covers the whole job. Every driver fills one and returns it in
// its result (`result.ledger`); callbacks see it as `info.ledger`.
//
//   auto result = driver.run(comm, objective, x0);
//   result.ledger.print_summary(std::cout);   // one row per rank and a sum
//   result.ledger.to_csv("trace.csv", "loscar");
//
// Time is read on the communicator's clock (comm::now: virtual seconds on the
// simulator, the steady clock elsewhere) and split into phases by laps: a
// driver calls lap(phase, now) after each piece of work, and the time since
// the previous lap goes to that phase, so the phases of a round add up to the
// round's duration and the phases of the run to its elapsed time.
// docs/observe.md has the exact meaning of every field for each driver.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <limits>
#include <loco/error.hpp>
#include <loco/observe/csv.hpp>
#include <loco/observe/table.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/view.hpp>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loco::observe {

// What a rank is in its algorithm: a peer of a collective (local_sgd), a
// worker of a server algorithm (async_sgd, compressed_amsgrad), or the server.
enum class role : std::uint8_t { peer = 0, worker = 1, server = 2 };

inline const char* role_name(role r) noexcept {
  switch (r) {
    case role::peer:
      return "peer";
    case role::worker:
      return "worker";
    case role::server:
      return "server";
  }
  return "?";
}

// Where a rank's time goes (docs/observe.md#phases):
//   compute      gradients, local steps, model updates
//   compress     encode and decode, building and reading messages
//   communicate  starting transfers and blocking collectives and sends (these
//                include waiting for the slowest participant to join)
//   wait         idle: blocked on a transfer started earlier, or on a message
//                a peer has not produced yet
//   other        callbacks (evaluation, logging, the stop agreement)
enum class phase : std::uint8_t { compute = 0, compress, communicate, wait, other };

struct phase_seconds {
  double compute = 0.0;
  double compress = 0.0;
  double communicate = 0.0;
  double wait = 0.0;
  double other = 0.0;

  double& operator[](phase p) noexcept {
    switch (p) {
      case phase::compute:
        return compute;
      case phase::compress:
        return compress;
      case phase::communicate:
        return communicate;
      case phase::wait:
        return wait;
      case phase::other:
        break;
    }
    return other;
  }
  double operator[](phase p) const noexcept { return const_cast<phase_seconds&>(*this)[p]; }
  double sum() const noexcept { return compute + compress + communicate + wait + other; }
  phase_seconds& operator+=(const phase_seconds& o) noexcept {
    compute += o.compute;
    compress += o.compress;
    communicate += o.communicate;
    wait += o.wait;
    other += o.other;
    return *this;
  }
};

// bytes / (bytes_per_value * values): 1 means as large as sending the same
// vectors uncompressed at that width, 0.01 means 1% of it. NaN when no vector.
inline double ratio(std::uint64_t bytes, std::uint64_t values, double bytes_per_value) noexcept {
  if (values == 0) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(bytes) / (bytes_per_value * static_cast<double>(values));
}

// One round of one rank: a communication round (local_sgd), an iteration
// (compressed_amsgrad), an applied update (async_sgd server) or a job
// (async_sgd worker).
struct round_record {
  std::uint64_t round = 0;  // from 1
  std::uint64_t step = 0;   // the driver's step counter at the end of the round
  double time = 0.0;        // end of the round, seconds since the run started
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  // How many vector entries those bytes carry (each message counts its full
  // dimension d): the uncompressed fp32 baseline is 4 bytes per value.
  std::uint64_t values_sent = 0;
  std::uint64_t values_received = 0;
  // Bytes every worker sent this round, where this rank sees them all
  // (ledger::sees_all_workers()); 0 elsewhere.
  std::uint64_t all_workers_sent = 0;
  // The trace's "bytes" column: cumulative all_workers_sent where this rank
  // sees every worker, otherwise its own cumulative bytes_sent.
  std::uint64_t bytes_cumulative = 0;
  phase_seconds seconds;
  double loss = std::numeric_limits<double>::quiet_NaN();       // this rank's mean batch loss
  double accuracy = std::numeric_limits<double>::quiet_NaN();   // set by an evaluation
  double test_loss = std::numeric_limits<double>::quiet_NaN();  // set by an evaluation
  std::int64_t delay = -1;  // async_sgd server: staleness of the applied update; else -1

  double ratio_fp32() const noexcept {
    return ratio(bytes_sent + bytes_received, values_sent + values_received, 4.0);
  }
  double ratio_fp16() const noexcept {
    return ratio(bytes_sent + bytes_received, values_sent + values_received, 2.0);
  }
};

// One rank's totals over the run (or so far, during it).
// A rank that left or joined the world (comm::elastic), as this rank
// learned it at the end of `round`.
struct membership_record {
  std::uint64_t round = 0;
  int rank = -1;
  bool joined = false;
  double waited = 0.0;  // seconds the collective that found it had waited
  std::string why;
};

struct rank_totals {
  int rank = 0;
  observe::role role = role::peer;
  std::uint64_t rounds = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t values_sent = 0;
  std::uint64_t values_received = 0;
  std::uint64_t all_workers_sent = 0;
  phase_seconds seconds;
  double elapsed = 0.0;  // from start to finish on the communicator's clock

  // Directions: up is toward the server (or the aggregate), down away from it.
  std::uint64_t bytes_up() const noexcept {
    return role == role::server ? bytes_received : bytes_sent;
  }
  std::uint64_t bytes_down() const noexcept {
    return role == role::server ? bytes_sent : bytes_received;
  }
  std::uint64_t values_up() const noexcept {
    return role == role::server ? values_received : values_sent;
  }
  std::uint64_t values_down() const noexcept {
    return role == role::server ? values_sent : values_received;
  }
  double ratio_fp32() const noexcept {
    return ratio(bytes_sent + bytes_received, values_sent + values_received, 4.0);
  }
  double ratio_fp16() const noexcept {
    return ratio(bytes_sent + bytes_received, values_sent + values_received, 2.0);
  }
  double ratio_up_fp32() const noexcept { return ratio(bytes_up(), values_up(), 4.0); }
  double ratio_down_fp32() const noexcept { return ratio(bytes_down(), values_down(), 4.0); }
};

// The latest evaluation an evaluate_every callback (or the user) recorded.
struct evaluation {
  std::uint64_t round = 0;  // 0: none yet
  double accuracy = std::numeric_limits<double>::quiet_NaN();
  double test_loss = std::numeric_limits<double>::quiet_NaN();
};

// "1.23 MB": decimal units, 3 significant digits.
inline std::string format_bytes(double bytes) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  std::size_t u = 0;
  while (std::abs(bytes) >= 999.5 && u + 1 < std::size(units)) {
    bytes /= 1000.0;
    ++u;
  }
  char text[32];
  if (u == 0) {
    std::snprintf(text, sizeof text, "%.0f B", bytes);
  } else {
    std::snprintf(text, sizeof text,
                  std::abs(bytes) < 9.995   ? "%.2f %s"
                  : std::abs(bytes) < 99.95 ? "%.1f %s"
                                            : "%.0f %s",
                  bytes, units[u]);
  }
  return text;
}

// "37.6 ms": 3 significant digits in s, ms, us or ns; "0" for zero.
inline std::string format_seconds(double seconds) {
  if (seconds == 0.0) return "0";
  static const char* units[] = {"s", "ms", "us", "ns"};
  std::size_t u = 0;
  while (std::abs(seconds) < 0.9995 && u + 1 < std::size(units)) {
    seconds *= 1000.0;
    ++u;
  }
  char text[32];
  const double a = std::abs(seconds);
  std::snprintf(text, sizeof text,
                a < 9.995   ? "%.2f %s"
                : a < 99.95 ? "%.1f %s"
                            : "%.0f %s",
                seconds, units[u]);
  return text;
}

class ledger {
 public:
  // ---- filled by the driver ----------------------------------------------

  // Starts a run on this rank at `now` (communicator clock); clears the ledger.
  void start(int rank, int size, observe::role r, double now, bool record_rounds = true,
             bool sees_all_workers = false) {
    *this = ledger();
    rank_ = rank;
    size_ = size;
    totals_.rank = rank;
    totals_.role = r;
    record_rounds_ = record_rounds;
    sees_all_ = sees_all_workers;
    start_ = mark_ = now;
  }
  // Room for n records (at most 65536 up front; beyond, the vector grows
  // geometrically), so recording allocates nothing per round.
  void reserve_rounds(std::size_t n) {
    if (record_rounds_) records_.reserve(std::min<std::size_t>(n, std::size_t{1} << 16));
  }
  // The time since the previous lap (or start) was spent in p.
  void lap(phase p, double now) noexcept {
    current_.seconds[p] += now - mark_;
    mark_ = now;
  }
  void add_sent(std::uint64_t bytes, std::uint64_t values) noexcept {
    current_.bytes_sent += bytes;
    current_.values_sent += values;
  }
  void add_received(std::uint64_t bytes, std::uint64_t values) noexcept {
    current_.bytes_received += bytes;
    current_.values_received += values;
  }
  void add_all_workers_sent(std::uint64_t bytes) noexcept { current_.all_workers_sent += bytes; }
  void set_delay(std::uint64_t delay) noexcept {
    current_.delay = static_cast<std::int64_t>(delay);
  }

  // Closes the round: time since the last lap goes to `last_phase`.
  const round_record& end_round(std::uint64_t round, std::uint64_t step, double now, double loss,
                                phase last_phase = phase::compute) {
    lap(last_phase, now);
    current_.round = round;
    current_.step = step;
    current_.time = now - start_;
    current_.loss = loss;
    fold(current_);
    ++totals_.rounds;
    current_.bytes_cumulative = sees_all_ ? totals_.all_workers_sent : totals_.bytes_sent;
    last_ = current_;
    has_last_ = true;
    if (record_rounds_) records_.push_back(current_);
    current_ = round_record{};
    return last_;
  }
  // Ends the run: what happened after the last round (draining, stop
  // messages, callbacks) joins the totals; time since the last lap is `other`.
  void finish(double now) noexcept {
    lap(phase::other, now);
    fold(current_);
    current_ = round_record{};
    totals_.elapsed = now - start_;
  }
  // Worlds up to this size gather every rank's totals on every rank; larger
  // ones on rank 0 only, since n copies of n totals grow as n^2 (100,000
  // simulated ranks would need a terabyte).
  static constexpr int gather_everywhere_up_to = 1024;

  // A collective: every rank calls it once, after finish(); afterwards
  // all_ranks() holds every rank's totals, ordered by rank, on every rank
  // (on rank 0 only beyond gather_everywhere_up_to ranks; the others keep
  // their own). Bytes from peers are checked (protocol_error naming the field).
  template <class Comm>
  void gather(Comm& comm) {
    wire::buffer mine;
    encode(totals_, mine);
    std::vector<wire::buffer> all;
    if (comm.size() <= gather_everywhere_up_to) {
      comm.allgather(mine.bytes(), all);
    } else {
      comm.gather(mine.bytes(), all, 0);
      if (comm.rank() != 0) return;
    }
    all_ranks_.clear();
    all_ranks_.reserve(all.size());
    for (std::size_t q = 0; q < all.size(); ++q) {
      if (all[q].empty()) continue;  // a rank an elastic communicator lost
      const std::string source = "ledger totals of rank " + std::to_string(q);
      wire::view in(all[q], source);
      all_ranks_.push_back(decode(in, static_cast<int>(q)));
    }
  }

  // Checkpoints (docs/checkpoint.md): this rank's totals so far, with the
  // time elapsed at `now`. Saved at a round's end, so nothing is pending.
  void save(wire::buffer& b, double now) const { save_totals(b, totals_, elapsed_at(now)); }
  static void save_totals(wire::buffer& b, const rank_totals& totals, double elapsed) {
    rank_totals t = totals;
    t.elapsed = elapsed;
    encode(t, b);
  }
  // Seconds since start() (or since the resumed run's start) at `now`.
  double elapsed_at(double now) const noexcept { return now - start_; }
  // Resume, in two steps so a driver can restore its clock in between:
  // read_saved checks a saved section against this run (call after start()),
  // restore continues its totals, with the elapsed time counted from the
  // saved run's start. Round records restart empty: the saving run's records
  // are its own, and a resumed trace begins at the resume.
  rank_totals read_saved(wire::view& in) const {
    rank_totals t = decode(in, rank_);
    if (t.role != totals_.role) {
      in.fail("role", std::string("saved as ") + std::string(role_name(t.role)) + ", resumed as " +
                          std::string(role_name(totals_.role)));
    }
    return t;
  }
  void restore(const rank_totals& saved, double now) noexcept {
    totals_ = saved;
    totals_.elapsed = 0.0;
    start_ = now - saved.elapsed;
    mark_ = now;
  }

  // ---- read by users and callbacks ---------------------------------------

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  observe::role role() const noexcept { return totals_.role; }
  // True where this rank sees every worker's payload (every rank of
  // local_sgd, the server of async_sgd, rank 0 of compressed_amsgrad).
  bool sees_all_workers() const noexcept { return sees_all_; }
  bool records_rounds() const noexcept { return record_rounds_; }
  // Membership changes (comm::elastic), in the order they were learned.
  void add_membership(membership_record r) { membership_.push_back(std::move(r)); }
  std::span<const membership_record> membership() const noexcept { return membership_; }

  // This rank's totals: complete after the run, up to the last round during it.
  const rank_totals& totals() const noexcept { return totals_; }
  // One record per round (empty when the driver's record_rounds is false).
  std::span<const round_record> rounds() const noexcept { return records_; }
  // The round that ended last, whether or not rounds are recorded.
  const round_record* last_round() const noexcept { return has_last_ ? &last_ : nullptr; }

  // Every rank's totals after the run (empty before gather(), and on ranks
  // other than 0 of a world larger than gather_everywhere_up_to).
  std::span<const rank_totals> all_ranks() const noexcept { return all_ranks_; }
  // The sum over every rank that is not a server (its traffic mirrors the
  // workers'): bytes, values, rounds and seconds are summed; rank is -1.
  // Before gather(), this rank's own totals.
  rank_totals workers_total() const {
    if (all_ranks_.empty()) return totals_;
    rank_totals sum;
    sum.rank = -1;
    sum.role = role::worker;
    for (const auto& t : all_ranks_) {
      if (t.role == role::server) continue;
      sum.role = t.role;
      sum.rounds += t.rounds;
      sum.bytes_sent += t.bytes_sent;
      sum.bytes_received += t.bytes_received;
      sum.values_sent += t.values_sent;
      sum.values_received += t.values_received;
      sum.seconds += t.seconds;
      sum.elapsed = std::max(sum.elapsed, t.elapsed);
    }
    for (const auto& t : all_ranks_)
      sum.all_workers_sent = std::max(sum.all_workers_sent, t.all_workers_sent);
    return sum;
  }

  // Evaluations (evaluate_every records them on the round that just ended).
  void record_evaluation(double accuracy, double test_loss) noexcept {
    evaluation_.round = has_last_ ? last_.round : 0;
    evaluation_.accuracy = accuracy;
    evaluation_.test_loss = test_loss;
    if (!has_last_) return;
    last_.accuracy = accuracy;
    last_.test_loss = test_loss;
    if (!records_.empty() && records_.back().round == last_.round) {
      records_.back().accuracy = accuracy;
      records_.back().test_loss = test_loss;
    }
  }
  const evaluation& last_evaluation() const noexcept { return evaluation_; }

  // CSV: the trace columns first (run,round,step,time_s,bytes,loss,accuracy),
  // then this ledger's own.
  static std::vector<std::string> csv_columns() {
    return {"run",           "round",           "step",
            "time_s",        "bytes",           "loss",
            "accuracy",      "test_loss",       "rank",
            "role",          "bytes_sent",      "bytes_received",
            "values_sent",   "values_received", "ratio_fp32",
            "ratio_fp16",    "compute_s",       "compress_s",
            "communicate_s", "wait_s",          "other_s",
            "delay"};
  }
  void write_csv_row(csv_writer& out, std::string_view run, const round_record& r) const {
    const double delay =
        r.delay < 0 ? std::numeric_limits<double>::quiet_NaN() : static_cast<double>(r.delay);
    out.row(run, r.round, r.step, r.time, r.bytes_cumulative, r.loss, r.accuracy, r.test_loss,
            rank_, role_name(totals_.role), r.bytes_sent, r.bytes_received, r.values_sent,
            r.values_received, r.ratio_fp32(), r.ratio_fp16(), r.seconds.compute,
            r.seconds.compress, r.seconds.communicate, r.seconds.wait, r.seconds.other, delay);
  }
  // Writes every recorded round of this rank to `path` (throws loco::error if
  // it cannot be written, config_error if rounds were not recorded).
  void to_csv(const std::filesystem::path& path, std::string_view run = "run") const {
    if (!record_rounds_) {
      throw config_error("ledger::to_csv: rounds were not recorded (record_rounds = false) for " +
                         path.string());
    }
    csv_writer out(path, csv_columns());
    for (const auto& r : records_) write_csv_row(out, run, r);
    out.flush();
  }

  // One row per rank (or only this rank before gather) and a sum row over
  // the non-server ranks. Bytes in decimal units; time per phase on the
  // communicator's clock.
  table summary_table() const {
    table t{"rank",    "role",     "rounds", "sent", "received", "vs fp32",
            "compute", "compress", "comm",   "wait", "other"};
    t.precision(3);
    const auto add = [&](const std::string& name, const rank_totals& r, const std::string& rounds) {
      t.add_row(name, std::string(role_name(r.role)), aligned_right{rounds},
                aligned_right{format_bytes(static_cast<double>(r.bytes_sent))},
                aligned_right{format_bytes(static_cast<double>(r.bytes_received))}, r.ratio_fp32(),
                aligned_right{format_seconds(r.seconds.compute)},
                aligned_right{format_seconds(r.seconds.compress)},
                aligned_right{format_seconds(r.seconds.communicate)},
                aligned_right{format_seconds(r.seconds.wait)},
                aligned_right{format_seconds(r.seconds.other)});
    };
    if (all_ranks_.empty()) {
      add(std::to_string(rank_), totals_, std::to_string(totals_.rounds));
      return t;
    }
    for (const auto& r : all_ranks_) add(std::to_string(r.rank), r, std::to_string(r.rounds));
    const rank_totals sum = workers_total();
    add("sum", sum, "");
    return t;
  }
  void print_summary(std::ostream& out) const {
    const auto sum = workers_total();
    out << "ledger: " << size_ << (size_ == 1 ? " rank" : " ranks") << ", "
        << format_bytes(static_cast<double>(sum.bytes_sent)) << " sent by the "
        << (sum.role == role::peer ? "peers" : "workers") << ", "
        << format_bytes(static_cast<double>(sum.bytes_received)) << " received";
    const double r = sum.ratio_fp32();
    if (!std::isnan(r)) {
      char text[32];
      std::snprintf(text, sizeof text, "%.3g", r);
      out << " (" << text << " x fp32)";
    }
    out << "\ntime per phase on the communicator's clock (virtual on the simulator)\n";
    summary_table().print(out);
  }

 private:
  void fold(const round_record& r) noexcept {
    totals_.bytes_sent += r.bytes_sent;
    totals_.bytes_received += r.bytes_received;
    totals_.values_sent += r.values_sent;
    totals_.values_received += r.values_received;
    totals_.all_workers_sent += r.all_workers_sent;
    totals_.seconds += r.seconds;
  }

  static constexpr std::uint32_t totals_magic = 0x4c4f4354;  // "LOCT"
  static void encode(const rank_totals& t, wire::buffer& b) {
    b.put<std::uint32_t>(totals_magic);
    b.put<std::int32_t>(t.rank);
    b.put<std::uint8_t>(static_cast<std::uint8_t>(t.role));
    b.put<std::uint64_t>(t.rounds);
    b.put<std::uint64_t>(t.bytes_sent);
    b.put<std::uint64_t>(t.bytes_received);
    b.put<std::uint64_t>(t.values_sent);
    b.put<std::uint64_t>(t.values_received);
    b.put<std::uint64_t>(t.all_workers_sent);
    b.put<double>(t.seconds.compute);
    b.put<double>(t.seconds.compress);
    b.put<double>(t.seconds.communicate);
    b.put<double>(t.seconds.wait);
    b.put<double>(t.seconds.other);
    b.put<double>(t.elapsed);
  }
  static rank_totals decode(wire::view& in, int expected_rank) {
    if (in.get<std::uint32_t>("magic") != totals_magic) in.fail("magic", "not ledger totals");
    rank_totals t;
    t.rank = in.get<std::int32_t>("rank");
    if (t.rank != expected_rank) {
      in.fail("rank", std::to_string(t.rank) + " arrived in the slot of rank " +
                          std::to_string(expected_rank));
    }
    const auto r = in.get<std::uint8_t>("role");
    if (r > static_cast<std::uint8_t>(role::server))
      in.fail("role", "unknown role " + std::to_string(r));
    t.role = static_cast<observe::role>(r);
    t.rounds = in.get<std::uint64_t>("rounds");
    t.bytes_sent = in.get<std::uint64_t>("bytes_sent");
    t.bytes_received = in.get<std::uint64_t>("bytes_received");
    t.values_sent = in.get<std::uint64_t>("values_sent");
    t.values_received = in.get<std::uint64_t>("values_received");
    t.all_workers_sent = in.get<std::uint64_t>("all_workers_sent");
    t.seconds.compute = in.get<double>("seconds.compute");
    t.seconds.compress = in.get<double>("seconds.compress");
    t.seconds.communicate = in.get<double>("seconds.communicate");
    t.seconds.wait = in.get<double>("seconds.wait");
    t.seconds.other = in.get<double>("seconds.other");
    t.elapsed = in.get<double>("elapsed");
    in.expect_end("totals");
    return t;
  }

  int rank_ = 0;
  int size_ = 1;
  bool record_rounds_ = true;
  bool sees_all_ = false;
  double start_ = 0.0;
  double mark_ = 0.0;
  rank_totals totals_;
  round_record current_;
  round_record last_;
  bool has_last_ = false;
  std::vector<round_record> records_;
  std::vector<membership_record> membership_;
  std::vector<rank_totals> all_ranks_;
  evaluation evaluation_;
};

}  // namespace loco::observe
