#pragma once
// The engine behind comm::simulated (docs/simulation.md#scheduling).
//
// Every rank is a fiber (detail/fiber.hpp) on the caller's thread, so
// exactly one runs at a time: the one holding the token. Each rank has a virtual time `now` and a
// scheduling key: its time if it can run, the earliest time it could continue if it is blocked and
// that time is known (a message in flight, a collective's completion, a deadline, its drop-out), or
// no key at all if nothing it waits for is known yet. The token always goes to the smallest (key,
// rank). A message sent later by a rank at time t >= key arrives no earlier than t, so when a
// blocked rank is picked at time A nothing can still reach it before A: virtual time is causal, and
// ties broken by rank make every run identical.
//
// All state below is touched only by the token holder, on one thread, so it
// needs no lock. Nothing here is proportional to the number of ranks per
// event: mailboxes are ordered maps, the ranks waiting for a message from a
// given rank are a list of their own, and the dead ranks a set.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <loco/sim/detail/fiber.hpp>
#include <loco/sim/detail/link_clock.hpp>
#include <loco/sim/detail/ready_queue.hpp>
#include <loco/sim/event.hpp>
#include <loco/sim/options.hpp>
#include <loco/sim/report.hpp>
#include <loco/wire/buffer.hpp>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace loco::sim::detail {

inline constexpr double never = std::numeric_limits<double>::infinity();

// Thrown in a rank that drops out. Not a std::exception, so a driver's
// catch (const std::exception&) does not swallow it.
struct dropped_out {};

inline std::string seconds_text(double t) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g s", t);
  return buf;
}

inline const char* collective_name(collective_kind k) {
  switch (k) {
    case collective_kind::barrier:
      return "barrier";
    case collective_kind::allreduce:
      return "allreduce";
    case collective_kind::allgather:
      return "allgather";
    case collective_kind::broadcast:
      return "broadcast";
    case collective_kind::gather:
      return "gather";
  }
  return "collective";
}

// A message in a mailbox is filed under (tag, arrival, source, send order):
// the first one of a tag is the one any_source receives take.
struct message_key {
  int tag;
  double arrival;
  int source;
  std::uint64_t seq;
  auto operator<=>(const message_key&) const = default;
};
// The same messages by (tag, source, arrival, send order), for receives
// from one rank.
struct source_key {
  int tag;
  int source;
  double arrival;
  std::uint64_t seq;
  auto operator<=>(const source_key&) const = default;
};

// A receive posted by irecv() and not yet matched.
struct receive {
  int source;
  int tag;
  wire::buffer* out;
  bool done = false;
  int from = -1;
};

struct collective;
using reducer = void (*)(collective&, int n);

// One collective call, shared by the n ranks that make it (the k-th
// collective of every rank is the same call).
struct collective {
  collective(std::uint64_t s, collective_kind k, int r, int n)
      : seq(s),
        kind(k),
        root(r),
        joined(static_cast<std::size_t>(n), false),
        data(static_cast<std::size_t>(n), nullptr),
        count(static_cast<std::size_t>(n), 0),
        done_at(static_cast<std::size_t>(n), never) {}
  std::uint64_t seq;
  collective_kind kind;
  int root;
  comm::reduce_op op = comm::reduce_op::sum;
  std::size_t element_size = 0;
  bool element_float = false;
  reducer reduce = nullptr;
  int arrived = 0;
  double latest = 0.0;
  std::vector<bool> joined;
  std::vector<const void*> data;   // each rank's contribution (valid until it completes)
  std::vector<std::size_t> count;  // elements (allreduce) or bytes
  bool complete = false;
  std::vector<double> done_at;  // per rank
  std::vector<std::byte> reduced;
  std::vector<wire::buffer> gathered;
  std::exception_ptr error;
};

// The state of one non-blocking operation, owned by its requests.
struct operation {
  enum class type : std::uint8_t { done, receive, collective };
  type t = type::done;
  int rank = -1;
  bool finished = true;
  int source = -1;
  std::shared_ptr<detail::receive> recv;
  std::shared_ptr<detail::collective> coll;
  void* out = nullptr;  // allreduce: the caller's span
  std::size_t out_bytes = 0;
  std::vector<wire::buffer>* all = nullptr;  // allgather, gather
  wire::buffer* bytes = nullptr;             // broadcast
};

enum class rank_state : std::uint8_t { runnable, blocked, finished, dead };

struct waiting {
  enum class on : std::uint8_t { nothing, message, collective };
  on what = on::nothing;
  int source = comm::any_source;
  int tag = 0;
  const collective* coll = nullptr;
};

struct rank_data {
  double now = 0.0;
  double key = 0.0;
  rank_state state = rank_state::runnable;
  waiting wait;
  std::exception_ptr wake_error;
  std::map<message_key, wire::buffer> inbox;
  std::set<source_key> by_source;
  std::vector<std::weak_ptr<receive>> posted;
  std::uint64_t steps = 0;
  std::uint64_t collectives = 0;
  double poll_step = 0.0;
  double drop_out = never;
  double silent_since = never;  // declared lost by the failure detector: offline from then
  double restart = never;       // when a replacement starts (compute_model::restart)
  bool rejoining = false;       // this incarnation replaces a lost one
  // Dead ranks already reported to this rank's any_source receives (each is
  // reported once, so a server can go on with the ranks that remain).
  std::vector<int> told_dead;
  // The list of ranks blocked on a message from one given rank.
  int waiter_prev = -1, waiter_next = -1;
};

class world {
 public:
  world(int n, options o)
      : size(n),
        opt(std::move(o)),
        ranks_(std::make_unique<rank_data[]>(static_cast<std::size_t>(n))),
        waiters_(static_cast<std::size_t>(n), -1),
        ready_(n) {
    rep_.finish_time.assign(static_cast<std::size_t>(n), 0.0);
    rep_.dropped.assign(static_cast<std::size_t>(n), false);
    if (!opt.availability.always_online()) offline_.resize(static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r) {
      at(r).drop_out = opt.compute.drop_out_time(r);
      at(r).restart = opt.compute.restart_time(r);
      // Offline at the start: later (or never, when declared lost meanwhile).
      if (!offline_.empty()) at(r).now = std::min(online_at(r, 0.0), at(r).drop_out);
      set_key(r, at(r).now);
    }
  }
  world(const world&) = delete;
  world& operator=(const world&) = delete;

  const int size;
  const options opt;

  rank_data& at(int r) noexcept { return ranks_[static_cast<std::size_t>(r)]; }

  // ---------------------------------------------------------------- lifecycle
  // Runs the ranks on their fibers; returns when the last one has left.
  void run(fibers& f) {
    fibers_ = &f;
    f.run(ready_.top().rank);
  }

  // A rank's function failed: remember the first root cause and wake every
  // blocked rank with peer_lost naming `lost` (as in_process does).
  void fail(std::exception_ptr e, bool root_cause, int lost, const std::string& why) {
    if (root_cause ? !first_is_root_cause_ : !first_error_) {
      first_error_ = std::move(e);
      first_is_root_cause_ = root_cause;
    }
    if (aborted_) return;
    aborted_ = true;
    abort_rank_ = lost;
    abort_why_ = why;
    for (int b = 0; b < size; ++b) {
      auto& r = at(b);
      if (r.state != rank_state::blocked) continue;
      r.wake_error = std::make_exception_ptr(peer_lost(lost, why));
      set_key(b, r.now);
    }
  }

  // The rank's function returned (finished) or it dropped out (dead): wake
  // the ranks that can now never complete, then hand the token on for good
  // (to the caller of run() after the last rank).
  [[noreturn]] void leave(int me, bool dead) {
    depart(me, dead);
    if (ready_.empty()) resolve_stall();
    fibers_->finish(me, ready_.empty() ? -1 : ready_.top().rank);
  }

  // After a drop-out: a rank with a replacement (compute_model::restart)
  // departs as dead, stays dead until the restart time (the others find it
  // lost meanwhile), then comes back rejoining, with nothing of its old
  // incarnation left in the others' mailboxes; true then, else false.
  bool revive(int me) {
    auto& r = at(me);
    if (r.restart == never) return false;
    depart(me, true);
    const double t = std::max(r.restart, r.now);
    r.restart = r.drop_out = r.silent_since = never;
    set_key(me, t);
    reschedule(me);
    r.now = std::max(r.now, r.key);
    r.state = rank_state::runnable;
    r.rejoining = true;
    dead_.erase(me);
    gone_.erase(me);
    for (int b = 0; b < size; ++b) {
      auto& o = at(b);
      std::erase(o.told_dead, me);
      std::erase_if(o.by_source, [&](const source_key& k) { return k.source == me; });
      std::erase_if(o.inbox, [&](const auto& m) { return m.first.source == me; });
    }
    rejoined_.push_back(me);
    record({r.now, me, event_kind::rejoin, -1, 0, 0, 0.0});
    return true;
  }
  // Rank 0: the ranks that came back since its last call (a replacement
  // reaches the others through rank 0, as with comm::tcp).
  std::vector<int> take_rejoined(int me) {
    if (me != 0) return {};
    return std::exchange(rejoined_, {});
  }

  // Marks the rank finished or dead and wakes the ranks that can now never
  // complete.
  void depart(int me, bool dead) {
    auto& r = at(me);
    r.state = dead ? rank_state::dead : rank_state::finished;
    if (dead) dead_.insert(me);
    gone_.insert(me);
    unqueue(me);
    r.inbox.clear();
    r.by_source.clear();
    r.posted.clear();
    rep_.finish_time[static_cast<std::size_t>(me)] = r.now;
    rep_.dropped[static_cast<std::size_t>(me)] = dead;
    record({r.now, me, dead ? event_kind::drop_out : event_kind::finish, -1, 0, 0, 0.0});
    const auto wake = [&](int b) {
      auto& o = at(b);
      if (o.state != rank_state::blocked || o.wake_error || !needs(b, me)) return;
      o.wake_error = lost_error(b, me);
      set_key(b, std::max(o.now, r.now));
    };
    for (int b = waiters_[static_cast<std::size_t>(me)]; b >= 0; b = at(b).waiter_next) wake(b);
    for (const auto& [seq, c] : collectives_) {
      if (c->joined[static_cast<std::size_t>(me)]) continue;
      for (int b = 0; b < size; ++b) {
        if (c->joined[static_cast<std::size_t>(b)]) wake(b);
      }
    }
  }

  std::exception_ptr first_error() const { return first_error_; }
  sim::report take_report() {
    rep_.events = 0;
    for (auto c : rep_.counts) rep_.events += c;
    return std::move(rep_);
  }

  // ---------------------------------------------------------------- time
  // Throws if this rank must stop: it dropped out or the world was aborted.
  void check_running(int me) {
    auto& r = at(me);
    if (r.now >= r.drop_out) throw dropped_out{};
    if (aborted_) throw peer_lost(abort_rank_, abort_why_);
  }

  void advance(int me, double dt, event_kind kind = event_kind::compute) {
    if (!(dt >= 0.0) || !std::isfinite(dt)) {
      throw config_error("comm::simulated::advance: " + std::to_string(dt) +
                         " s must be finite and >= 0");
    }
    check_running(me);
    auto& r = at(me);
    if (kind == event_kind::compute) r.poll_step = 0.0;
    record({r.now, me, kind, -1, 0, 0, dt});
    if (dt == 0.0) return;
    move_to(me, offline_.empty() ? r.now + dt : work_done(me, r.now, dt));
  }

  // Resumes a clock from a checkpoint: the step count is set and the time
  // moves forward to t (never back: other ranks may already have acted).
  void restore_clock(int me, double t, std::uint64_t steps) {
    if (!std::isfinite(t)) {
      throw config_error("comm::simulated::restore_clock: time " + std::to_string(t) +
                         " must be finite");
    }
    check_running(me);
    auto& r = at(me);
    r.steps = steps;
    r.poll_step = 0.0;
    if (t <= r.now) return;
    record({r.now, me, event_kind::compute, -1, 0, 0, t - r.now});
    move_to(me, t);
  }

  // One step of the compute model.
  double compute(int me) {
    check_running(me);
    auto& r = at(me);
    const double dt = opt.compute.sample(me, r.steps++, opt.seed);
    advance(me, dt);
    return dt;
  }

  // ---------------------------------------------------------------- point to point
  void send(int me, int dst, int tag, std::span<const std::byte> bytes) {
    check_running(me);
    auto& r = at(me);
    const auto l = opt.link.between(me, dst);
    const double tx = link_model::transfer_time(static_cast<double>(bytes.size()), l);
    double start = r.now;
    if (tx > 0.0) {
      auto& free_at = links_.busy_until(me, dst);
      start = std::max(start, free_at);
      free_at = start + tx;
    }
    const double arrival = start + tx + l.latency;
    record({r.now, me, event_kind::send, dst, tag, bytes.size(), arrival - r.now});
    rep_.bytes_sent += bytes.size();
    auto& d = at(dst);
    if (d.state == rank_state::finished || d.state == rank_state::dead) return;  // nobody reads it
    const std::uint64_t seq = next_seq_++;
    d.inbox.emplace(message_key{tag, arrival, me, seq}, take_spare()).first->second.assign(bytes);
    d.by_source.insert({tag, me, arrival, seq});
    if (d.state == rank_state::blocked && d.wait.what == waiting::on::message &&
        d.wait.tag == tag && (d.wait.source == comm::any_source || d.wait.source == me)) {
      const double c = std::max(d.now, arrival);
      if (!ready_.contains(dst) || c < d.key) set_key(dst, c);
    }
  }

  int recv(int me, int src, int tag, wire::buffer& out) {
    check_running(me);
    auto& r = at(me);
    int from = -1;
    block(
        me, {waiting::on::message, src, tag, nullptr}, never,
        [&] {
          match_posted(me);
          const auto i = find(r, src, tag, r.now);
          if (i == r.inbox.end()) return false;
          from = take(me, i, out);
          return true;
        },
        [&] { return earliest(r, src, tag); },
        [&] {
          if (src != comm::any_source) check_alive(me, src, tag);
        });
    r.poll_step = 0.0;
    return from;
  }

  std::shared_ptr<operation> irecv(int me, int src, int tag, wire::buffer& out) {
    check_running(me);
    auto op = std::make_shared<operation>();
    op->t = operation::type::receive;
    op->rank = me;
    op->finished = false;
    op->recv = std::make_shared<receive>(receive{src, tag, &out, false, -1});
    at(me).posted.push_back(op->recv);
    match_posted(me);
    if (op->recv->done) finish(*op);
    return op;
  }

  // ---------------------------------------------------------------- collectives
  // Joins this rank's next collective; the caller then sets up the
  // reduction (allreduce) and calls settle().
  std::shared_ptr<collective> arrive(int me, collective_kind kind, int root, const void* data,
                                     std::size_t count, std::size_t bytes) {
    check_running(me);
    auto& r = at(me);
    const std::uint64_t seq = r.collectives++;
    auto& slot = collectives_[seq];
    if (!slot) slot = std::make_shared<collective>(seq, kind, root, size);
    auto c = slot;
    if (c->kind != kind || c->root != root) {
      throw error("comm::simulated: collective #" + std::to_string(seq) + ": rank " +
                  std::to_string(me) + " called " + collective_name(kind) + " (root " +
                  std::to_string(root) + ") where another rank called " + collective_name(c->kind) +
                  " (root " + std::to_string(c->root) + ")");
    }
    const auto q = static_cast<std::size_t>(me);
    c->joined[q] = true;
    c->data[q] = data;
    c->count[q] = count;
    c->latest = c->arrived == 0 ? r.now : std::max(c->latest, r.now);
    ++c->arrived;
    record({r.now, me, event_kind::collective, root, static_cast<int>(kind), bytes, 0.0});
    return c;
  }
  // Completes c if every rank has joined it.
  void settle(collective& c) {
    if (c.arrived == size) complete(c);
  }

  // Called by the rank whose arrival completed the collective (after it set
  // up its own reducer): computes the result and every rank's completion time.
  void complete(collective& c) {
    const int n = size;
    const auto un = static_cast<std::size_t>(n);
    const double lat = opt.link.latency();
    const auto tx = [&](double bytes) { return opt.link.transfer_time(bytes); };
    int log2n = 0;
    while ((1 << log2n) < n) ++log2n;
    const double lg = static_cast<double>(log2n), n1 = static_cast<double>(n - 1);
    double total = 0.0;
    for (auto b : c.count) total += static_cast<double>(b);
    try {
      switch (c.kind) {
        case collective_kind::barrier:
          std::fill(c.done_at.begin(), c.done_at.end(), c.latest + 2.0 * lg * lat);
          break;
        case collective_kind::allreduce: {
          for (std::size_t q = 0; q < un; ++q) {
            if (c.count[q] != c.count[0]) {
              throw error("comm::simulated::allreduce: rank " + std::to_string(q) +
                          " contributed " + std::to_string(c.count[q]) + " values, rank 0 " +
                          std::to_string(c.count[0]));
            }
          }
          const double bytes = static_cast<double>(c.count[0] * c.element_size);
          std::fill(c.done_at.begin(), c.done_at.end(),
                    c.latest + 2.0 * n1 * lat + tx(2.0 * n1 / static_cast<double>(n) * bytes));
          c.reduce(c, n);
          break;
        }
        case collective_kind::allgather:
        case collective_kind::gather:
          c.gathered.resize(un);
          for (std::size_t q = 0; q < un; ++q) {
            c.gathered[q].assign({static_cast<const std::byte*>(c.data[q]), c.count[q]});
            const double mine = static_cast<double>(c.count[q]);
            if (n == 1) {
              c.done_at[q] = c.latest;
            } else if (c.kind == collective_kind::allgather) {
              c.done_at[q] = c.latest + n1 * lat + tx(total - mine);
            } else if (static_cast<int>(q) == c.root) {
              c.done_at[q] = c.latest + lat + tx(total - mine);
            } else {
              c.done_at[q] = c.latest + lat + tx(mine);
            }
          }
          break;
        case collective_kind::broadcast: {
          const auto root = static_cast<std::size_t>(c.root);
          c.gathered.resize(1);
          c.gathered[0].assign({static_cast<const std::byte*>(c.data[root]), c.count[root]});
          const double t =
              n == 1 ? c.latest : c.latest + lg * lat + tx(static_cast<double>(c.count[root]));
          std::fill(c.done_at.begin(), c.done_at.end(), t);
          break;
        }
      }
    } catch (const error&) {
      c.error = std::current_exception();
      std::fill(c.done_at.begin(), c.done_at.end(), c.latest);
    }
    std::fill(c.data.begin(), c.data.end(), nullptr);  // contributions are not read again
    c.complete = true;
    collectives_.erase(c.seq);
    for (int q = 0; q < n; ++q) {
      auto& o = at(q);
      if (o.state == rank_state::blocked && o.wait.what == waiting::on::collective &&
          o.wait.coll == &c) {
        const double t = std::max(o.now, c.done_at[static_cast<std::size_t>(q)]);
        if (!ready_.contains(q) || t < o.key) set_key(q, t);
      }
    }
  }

  // ---------------------------------------------------------------- requests
  bool test(operation& op) {
    const int me = op.rank;
    check_running(me);
    if (op.finished) return true;
    auto& r = at(me);
    if (op.t == operation::type::receive) {
      match_posted(me);
      if (!op.recv->done) {
        poll(me, earliest(r, op.recv->source, op.recv->tag));
        match_posted(me);
      }
      if (op.recv->done) finish(op);
    } else {
      auto& c = *op.coll;
      const auto q = static_cast<std::size_t>(me);
      if (!(c.complete && r.now >= c.done_at[q])) poll(me, c.complete ? c.done_at[q] : never);
      if (c.complete && r.now >= c.done_at[q]) finish(op);
    }
    return op.finished;
  }

  // Blocks until op completes or the virtual deadline passes; true if it completed.
  bool wait(operation& op, double deadline) {
    const int me = op.rank;
    check_running(me);
    if (op.finished) return true;
    auto& r = at(me);
    bool ok;
    if (op.t == operation::type::receive) {
      auto& p = *op.recv;
      ok = block(
          me, {waiting::on::message, p.source, p.tag, nullptr}, deadline,
          [&] {
            match_posted(me);
            return p.done;
          },
          [&] { return earliest(r, p.source, p.tag); },
          [&] {
            if (p.source != comm::any_source) check_alive(me, p.source, p.tag);
          });
    } else {
      auto& c = *op.coll;
      const auto q = static_cast<std::size_t>(me);
      ok = block(
          me, {waiting::on::collective, comm::any_source, 0, &c}, deadline,
          [&] { return c.complete && r.now >= c.done_at[q]; },
          [&] { return c.complete ? c.done_at[q] : never; },
          [&] {
            for (int o : gone_) {
              if (!c.joined[static_cast<std::size_t>(o)]) check_alive(me, o, 0, &c);
            }
          });
    }
    if (ok) finish(op);
    return ok;
  }

  double deadline_after(int me, comm::duration timeout) {
    return at(me).now + std::chrono::duration<double>(timeout).count();
  }

 private:
  // ---------------------------------------------------------------- scheduling
  void set_key(int r, double t) {
    if (!offline_.empty()) {
      // An offline rank runs again when it is back, or when the failure
      // detector declares it lost, whichever is first.
      const double back = online_at(r, t);
      t = std::min(back, std::max(t, at(r).drop_out));
    }
    at(r).key = t;  // kept after the rank leaves the queue: block() resumes at it
    ready_.set(r, t);
  }
  void unqueue(int r) { ready_.erase(r); }

  // Hands the token to the earliest rank; returns when `me` holds it again.
  void reschedule(int me) {
    if (ready_.empty()) resolve_stall();
    const int next = ready_.top().rank;
    if (next != me) fibers_->switch_to(me, next);
  }

  // Moves a running rank's clock forward, letting every earlier rank run first.
  void move_to(int me, double t) {
    auto& r = at(me);
    if (!offline_.empty()) t = online_at(me, t);
    r.now = std::min(t, r.drop_out);
    set_key(me, r.now);
    reschedule(me);
    if (r.now >= r.drop_out) throw dropped_out{};
    if (aborted_) throw peer_lost(abort_rank_, abort_why_);
  }

  // The charge of a test() that found its operation unfinished.
  void poll(int me, double known) {
    auto& r = at(me);
    const double step = r.poll_step > 0.0 ? r.poll_step : opt.poll_interval;
    r.poll_step = 2.0 * step;
    double t = r.now + step;
    if (known > r.now) t = std::min(t, known);
    // Never past the next moment another rank acts, so a completion it causes
    // is seen on time (one ulp late when that rank ties with this one).
    if (const auto* next = ready_.first_other_than(me)) {
      t = std::min(t, next->key > r.now ? next->key : std::nextafter(r.now, never));
    }
    record({r.now, me, event_kind::poll, -1, 0, 0, t - r.now});
    move_to(me, t);
  }

  // The blocking pattern: try; if that fails, sleep until the earliest time
  // it might succeed (or the deadline, or the drop-out), then try again.
  // Returns false when the deadline passed first.
  template <class Try, class Next, class Hopeless>
  bool block(int me, waiting w, double deadline, Try&& try_now, Next&& next_time,
             Hopeless&& hopeless) {
    auto& r = at(me);
    for (;;) {
      if (try_now()) return true;
      if (r.now >= deadline) return false;
      const double next = next_time();
      if (next == never) hopeless();
      // Its next offline period, and so a declared loss in it, is known.
      if (!offline_.empty()) (void)online_at(me, r.now);
      const double t = std::min({next, deadline, r.drop_out});
      r.state = rank_state::blocked;
      r.wait = w;
      if (t < never) {
        set_key(me, std::max(t, r.now));
      } else {
        unqueue(me);
      }
      const bool listed = w.what == waiting::on::message && w.source != comm::any_source;
      if (listed) link_waiter(me, w.source);
      reschedule(me);
      if (listed) unlink_waiter(me, w.source);
      r.state = rank_state::runnable;
      r.wait = {};
      r.now = std::max(r.now, r.key);
      if (r.wake_error) {
        auto e = std::exchange(r.wake_error, nullptr);
        std::rethrow_exception(e);
      }
      if (r.now >= r.drop_out) throw dropped_out{};
    }
  }

  // Does blocked rank b wait for something only rank q could still provide?
  bool needs(int b, int q) {
    auto& r = at(b);
    if (r.wait.what == waiting::on::message) {
      return r.wait.source == q && earliest(r, q, r.wait.tag) == never;
    }
    if (r.wait.what == waiting::on::collective) {
      return !r.wait.coll->complete && !r.wait.coll->joined[static_cast<std::size_t>(q)];
    }
    return false;
  }

  // The error for rank b, which waits for a finished or dead rank q.
  std::exception_ptr lost_error(int b, int q) {
    auto& o = at(q);
    if (o.state == rank_state::dead) {
      return std::make_exception_ptr(peer_lost(q, gone_why(q)));
    }
    return std::make_exception_ptr(error("comm::simulated: deadlock: rank " + std::to_string(b) +
                                         " waits for " + describe(b) + "; rank " +
                                         std::to_string(q) + " has finished"));
  }

  // Why dead rank q is gone.
  std::string gone_why(int q) {
    auto& o = at(q);
    if (o.silent_since == never) return "dropped out at t=" + seconds_text(o.now);
    return "offline since t=" + seconds_text(o.silent_since) +
           ", declared lost at t=" + seconds_text(o.now) + " (sim::options::failure_detection)";
  }

  // Throws at once when rank me waits for rank q, which can no longer act.
  void check_alive(int me, int q, int tag, const collective* c = nullptr) {
    auto& o = at(q);
    if (o.state != rank_state::finished && o.state != rank_state::dead) return;
    if (o.state == rank_state::dead) {
      throw peer_lost(q, gone_why(q));
    }
    const std::string what =
        c ? std::string(collective_name(c->kind)) + " #" + std::to_string(c->seq)
          : "a message with tag " + std::to_string(tag);
    throw error("comm::simulated: deadlock: rank " + std::to_string(me) + " waits for " + what +
                (c ? "" : " from rank " + std::to_string(q)) + "; rank " + std::to_string(q) +
                " has finished");
  }

  std::string describe(int b) {
    auto& r = at(b);
    if (r.wait.what == waiting::on::message) {
      return "a message with tag " + std::to_string(r.wait.tag) + " from " +
             (r.wait.source == comm::any_source ? std::string("any rank")
                                                : "rank " + std::to_string(r.wait.source));
    }
    if (r.wait.what == waiting::on::collective) {
      std::string missing;
      for (int q = 0; q < size; ++q) {
        if (!r.wait.coll->joined[static_cast<std::size_t>(q)]) {
          missing += (missing.empty() ? "" : ", ") + std::to_string(q);
        }
      }
      return std::string(collective_name(r.wait.coll->kind)) + " #" +
             std::to_string(r.wait.coll->seq) + " (missing rank " + missing + ")";
    }
    return "nothing";
  }

  // No rank can run and some are blocked: nothing they wait for can happen.
  // The ranks waiting on a dropped-out rank get peer_lost naming it (an
  // any_source receive: a dead rank not yet reported to it); the others
  // stay blocked, since the woken ones may still act. Only when no rank can
  // be woken that way does every blocked rank get a deadlock error.
  void resolve_stall() {
    const auto culprit_of = [&](int b) {
      auto& r = at(b);
      int culprit = -1;
      if (r.wait.what == waiting::on::message) {
        if (r.wait.source != comm::any_source) return r.wait.source;
        for (int q : dead_) {
          if (std::find(r.told_dead.begin(), r.told_dead.end(), q) == r.told_dead.end()) {
            culprit = q;
            break;
          }
        }
      } else if (r.wait.what == waiting::on::collective) {
        for (int q : dead_) {
          if (!r.wait.coll->joined[static_cast<std::size_t>(q)]) {
            culprit = q;
            break;
          }
        }
      }
      return culprit;
    };
    bool woken = false;
    for (int b = 0; b < size; ++b) {
      auto& r = at(b);
      if (r.state != rank_state::blocked) continue;
      const int culprit = culprit_of(b);
      if (culprit < 0 || at(culprit).state != rank_state::dead) continue;
      if (r.wait.what == waiting::on::message && r.wait.source == comm::any_source) {
        r.told_dead.push_back(culprit);
      }
      r.wake_error = std::make_exception_ptr(peer_lost(culprit, gone_why(culprit)));
      set_key(b, r.now);
      woken = true;
    }
    if (woken) return;
    for (int b = 0; b < size; ++b) {
      auto& r = at(b);
      if (r.state != rank_state::blocked) continue;
      r.wake_error = std::make_exception_ptr(
          error("comm::simulated: deadlock at t=" + seconds_text(r.now) + ": rank " +
                std::to_string(b) + " waits for " + describe(b) + " and no rank can run"));
      set_key(b, r.now);
    }
  }

  // ---------------------------------------------------------------- availability
  // A rank's offline intervals that end after its clock, made as needed.
  struct offline_periods {
    std::vector<availability::interval> next;
    std::size_t head = 0;    // the first that may end after the rank's clock
    std::uint64_t made = 0;  // intervals made so far
    bool exhausted = false;
  };

  // The i-th offline interval of rank r from the first that ends after its
  // clock; nullptr if there is none.
  const availability::interval* offline_interval(int r, std::size_t i) {
    auto& p = offline_[static_cast<std::size_t>(r)];
    const double now = at(r).now;
    while (p.head < p.next.size() && p.next[p.head].until <= now) ++p.head;
    if (p.head > 32 && 2 * p.head > p.next.size()) {  // keep the list short
      p.next.erase(p.next.begin(), p.next.begin() + static_cast<std::ptrdiff_t>(p.head));
      p.head = 0;
    }
    while (p.head + i >= p.next.size() && !p.exhausted) {
      availability::interval v{};
      const double previous = p.next.empty() ? 0.0 : p.next.back().until;
      if (!opt.availability.next(r, p.made, previous, opt.seed, v)) {
        p.exhausted = true;
        break;
      }
      ++p.made;
      p.next.push_back(v);
      declare_if_silent(r, v);
      if (v.until <= now) ++p.head;  // already over: look further
    }
    return p.head + i < p.next.size() ? &p.next[p.head + i] : nullptr;
  }
  // The failure detector: an offline period longer than failure_detection
  // ends the rank failure_detection seconds into it.
  void declare_if_silent(int r, const availability::interval& v) {
    if (!(v.until - v.from > opt.failure_detection)) return;
    auto& d = at(r);
    const double t = v.from + opt.failure_detection;
    if (t < d.drop_out) {
      d.drop_out = t;
      d.silent_since = v.from;
    }
  }
  // The first time >= t at which rank r is online.
  double online_at(int r, double t) {
    for (std::size_t i = 0;; ++i) {
      const auto* v = offline_interval(r, i);
      if (!v || v->from > t) return t;
      if (v->until > t) t = v->until;
    }
  }
  // When rank r, starting at `start`, has been online for `work` seconds.
  double work_done(int r, double start, double work) {
    double t = online_at(r, start);
    for (std::size_t i = 0;; ++i) {
      const auto* v = offline_interval(r, i);
      if (!v) return t + work;
      if (v->until <= t) continue;
      if (t + work <= v->from) return t + work;
      work -= v->from - t;
      t = v->until;
    }
  }

  // ---------------------------------------------------------------- mailboxes
  using mail = std::map<message_key, wire::buffer>::iterator;
  // The message for (src, tag) with the earliest arrival (ties: lower sender,
  // then send order); end() if none.
  static mail first(rank_data& r, int src, int tag) {
    if (src == comm::any_source) {
      const auto i = r.inbox.lower_bound({tag, -never, std::numeric_limits<int>::min(), 0});
      return i != r.inbox.end() && i->first.tag == tag ? i : r.inbox.end();
    }
    const auto s = r.by_source.lower_bound({tag, src, -never, 0});
    if (s == r.by_source.end() || s->tag != tag || s->source != src) return r.inbox.end();
    return r.inbox.find({tag, s->arrival, src, s->seq});
  }
  // As first(), among the messages that arrived by `limit`.
  static mail find(rank_data& r, int src, int tag, double limit) {
    const auto i = first(r, src, tag);
    return i != r.inbox.end() && i->first.arrival <= limit ? i : r.inbox.end();
  }
  static double earliest(rank_data& r, int src, int tag) {
    const auto i = first(r, src, tag);
    return i != r.inbox.end() ? i->first.arrival : never;
  }
  int take(int me, mail i, wire::buffer& out) {
    auto& r = at(me);
    const auto k = i->first;
    record({r.now, me, event_kind::recv, k.source, k.tag, i->second.size(), 0.0});
    std::swap(out, i->second);
    spares_.push_back(std::move(i->second));
    r.by_source.erase({k.tag, k.source, k.arrival, k.seq});
    r.inbox.erase(i);
    return k.source;
  }
  void link_waiter(int me, int source) {
    auto& r = at(me);
    auto& head = waiters_[static_cast<std::size_t>(source)];
    r.waiter_prev = -1;
    r.waiter_next = head;
    if (head >= 0) at(head).waiter_prev = me;
    head = me;
  }
  void unlink_waiter(int me, int source) {
    auto& r = at(me);
    if (r.waiter_prev >= 0) {
      at(r.waiter_prev).waiter_next = r.waiter_next;
    } else {
      waiters_[static_cast<std::size_t>(source)] = r.waiter_next;
    }
    if (r.waiter_next >= 0) at(r.waiter_next).waiter_prev = r.waiter_prev;
    r.waiter_prev = r.waiter_next = -1;
  }
  // Gives arrived messages to posted receives, oldest receive first.
  void match_posted(int me) {
    auto& r = at(me);
    for (std::size_t k = 0; k < r.posted.size();) {
      auto p = r.posted[k].lock();
      if (p && !p->done) {
        const auto i = find(r, p->source, p->tag, r.now);
        if (i == r.inbox.end()) {
          ++k;
          continue;
        }
        p->from = take(me, i, *p->out);
        p->done = true;
      }
      r.posted.erase(r.posted.begin() + static_cast<std::ptrdiff_t>(k));
    }
  }

  // Completes op on its rank: copies the collective's result out.
  void finish(operation& op) {
    auto& r = at(op.rank);
    op.finished = true;
    r.poll_step = 0.0;
    if (op.t == operation::type::receive) {
      op.source = op.recv->from;
      return;
    }
    auto& c = *op.coll;
    record({r.now, op.rank, event_kind::complete, c.root, static_cast<int>(c.kind), 0, 0.0});
    if (c.error) std::rethrow_exception(c.error);
    switch (c.kind) {
      case collective_kind::barrier:
        break;
      case collective_kind::allreduce:
        if (op.out_bytes) std::memcpy(op.out, c.reduced.data(), op.out_bytes);
        break;
      case collective_kind::gather:
        if (op.rank != c.root) break;
        [[fallthrough]];
      case collective_kind::allgather:
        op.all->resize(static_cast<std::size_t>(size));
        for (std::size_t q = 0; q < c.gathered.size(); ++q)
          (*op.all)[q].assign(c.gathered[q].bytes());
        break;
      case collective_kind::broadcast:
        if (op.rank != c.root) op.bytes->assign(c.gathered[0].bytes());
        break;
    }
  }

  wire::buffer take_spare() {
    if (spares_.empty()) return {};
    auto b = std::move(spares_.back());
    spares_.pop_back();
    return b;
  }

  void record(const event& e) {
    ++rep_.counts[static_cast<std::size_t>(e.kind)];
    if (opt.log_events) rep_.log.push_back(e);
  }

  std::unique_ptr<rank_data[]> ranks_;
  std::vector<int> waiters_;  // per rank: the first rank blocked on a message from it
  std::set<int> dead_;
  std::set<int> gone_;         // finished or dead
  std::vector<int> rejoined_;  // ranks revived since rank 0's last take_rejoined
  fibers* fibers_ = nullptr;
  ready_queue ready_;
  std::vector<offline_periods> offline_;  // empty: every rank always online
  std::map<std::uint64_t, std::shared_ptr<collective>> collectives_;
  link_clock links_;
  std::vector<wire::buffer> spares_;
  std::uint64_t next_seq_ = 0;
  bool aborted_ = false;
  int abort_rank_ = -1;
  std::string abort_why_;
  std::exception_ptr first_error_;
  bool first_is_root_cause_ = false;
  sim::report rep_;
};

// Reduces the contributions in rank order, so the result is the same bit for
// bit on every rank and equal to comm::in_process's.
template <class T>
void reduce_in_rank_order(collective& c, int n) {
  const std::size_t d = c.count[0];
  std::vector<T> acc(d);
  const T* first = static_cast<const T*>(c.data[0]);
  std::copy(first, first + d, acc.begin());
  for (std::size_t q = 1; q < static_cast<std::size_t>(n); ++q) {
    const T* src = static_cast<const T*>(c.data[q]);
    switch (c.op) {
      case comm::reduce_op::sum:
      case comm::reduce_op::average:
        for (std::size_t i = 0; i < d; ++i) acc[i] = static_cast<T>(acc[i] + src[i]);
        break;
      case comm::reduce_op::max:
        for (std::size_t i = 0; i < d; ++i) acc[i] = std::max(acc[i], src[i]);
        break;
      case comm::reduce_op::min:
        for (std::size_t i = 0; i < d; ++i) acc[i] = std::min(acc[i], src[i]);
        break;
    }
  }
  if (c.op == comm::reduce_op::average) {
    const T count = static_cast<T>(n);
    for (auto& v : acc) v = static_cast<T>(v / count);
  }
  c.reduced.resize(d * sizeof(T));
  if (d) std::memcpy(c.reduced.data(), acc.data(), d * sizeof(T));
}

}  // namespace loco::sim::detail
