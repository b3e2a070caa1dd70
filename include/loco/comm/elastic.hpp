#pragma once
// comm::elastic<Comm>: a communicator over any other whose collectives go on
// without the ranks it loses (docs/fault_tolerance.md).
//
// Ranks keep their identities (rank() and size() are the world's); the
// collectives run over the live members, and a rank found lost during one
// (the inner communicator reports peer_lost: a dropped connection, missed
// heartbeats, a timeout, a dropped-out simulated rank) is left out of it and
// of every later one. Every survivor learns the same membership with the
// same collective, so averages divide by the same live count everywhere and
// results are bit-identical across the survivors.
//
// How: the leader (the lowest live rank) collects every member's
// contribution point to point, reduces or forwards them in rank order, and
// sends back the result with the membership it was computed over, stamped
// with the collective's sequence number. When the leader is lost, the next
// lowest live rank takes over: every member sends it its sequence number,
// its contribution and the last result it received. A leader that died
// while handing a result out left the members at most one collective
// apart, so the new leader forwards that result to those that missed it
// and then leads the next collective with the contributions it already
// holds: every survivor gets the same results, bit for bit.
//
// Cost: the leader moves (live - 1) contributions in and out per
// collective, so this trades the inner communicator's ring for tolerance;
// local SGD and DiLoCo communicate once per round, which keeps it small.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <list>
#include <loco/comm/types.hpp>
#include <loco/concepts/communicator.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <loco/wire/endian.hpp>
#include <loco/wire/values.hpp>
#include <loco/wire/view.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace loco::comm {

struct elastic_options {
  // The point-to-point tags elastic uses on the inner communicator (tag to
  // tag + 3); user messages must not use them.
  int tag = 32000;
};

// One change of membership, as every survivor records it.
struct membership_change {
  std::uint64_t epoch = 0;       // the membership's number after the change
  std::uint64_t collective = 0;  // the collective during which it was found (1-based)
  int rank = -1;
  bool joined = false;  // false: the rank was lost
  double waited = 0.0;  // seconds the leader had waited in that collective when it knew
  std::string why;
};

template <class Comm>
class elastic {
 public:
  using inner_type = Comm;

  explicit elastic(Comm& inner, elastic_options o = {}) : inner_(inner), opt_(o) {
    static_assert(check_communicator<Comm>());
    if (o.tag < 0 || o.tag > 32764) {
      throw config_error("comm::elastic: tag " + std::to_string(o.tag) +
                         " must be in [0, 32764] (it uses tag to tag + 3)");
    }
    if constexpr (requires { inner.rejoining(); }) joining_ = inner.rejoining();
    // A joining rank learns the members from the leader in join().
    if (!joining_) {
      for (int q = 0; q < inner.size(); ++q) members_.push_back(q);
    }
  }

  int rank() const { return inner_.rank(); }
  int size() const { return inner_.size(); }
  Comm& inner() noexcept { return inner_; }

  // ------------------------------------------------------------ membership
  std::span<const int> members() const noexcept { return members_; }
  int live_count() const noexcept { return static_cast<int>(members_.size()); }
  bool is_live(int q) const noexcept {
    return std::binary_search(members_.begin(), members_.end(), q);  // kept sorted
  }
  std::uint64_t epoch() const noexcept { return epoch_; }
  // The leader: contributions it combined so far, its own included (the
  // work done: a collective of m members counts m); 0 on the others.
  std::uint64_t contributions() const noexcept { return contributions_total_; }
  const std::vector<membership_change>& changes() const noexcept { return changes_; }

  // ------------------------------------------------------------ rejoining
  // True on a process that replaces a lost rank (the inner communicator's
  // rejoining(), tcp_options::rejoin) until join() returns.
  bool joining() const noexcept { return joining_; }

  // The replacement's side: waits for the leader's admission, adopts the
  // membership and collective count, checks the state's hash and hands the
  // state's bytes to load(std::span<const std::byte>); returns its round.
  template <class Load>
  std::uint64_t join(Load&& load) {
    if (!joining_) throw config_error("comm::elastic::join: this rank is not joining");
    // Ready: the leader admits a replacement only once it asks, so one that
    // still loads its data holds nobody up.
    outgoing_.clear();
    outgoing_.put<std::uint64_t>(ready_mark);
    inner_.send(0, tag_join(), outgoing_.bytes());
    (void)inner_.recv(0, tag_down(), incoming_);
    const std::string source = "comm::elastic admission from rank 0";
    wire::view in(incoming_, source);
    const auto round = in.get<std::uint64_t>("round");
    sequence_ = in.get<std::uint64_t>("sequence");
    epoch_ = in.get<std::uint64_t>("epoch");
    read_members(in, members_);
    if (!is_live(rank())) in.fail("member", "the admission does not list this rank");
    const auto hash = in.get<std::uint64_t>("state hash");
    const auto length = in.get<std::uint64_t>("state length");
    const auto state = in.take(static_cast<std::size_t>(length), "state");
    in.expect_end("admission");
    if (state_hash(state) != hash) {
      in.fail("state hash", "the state's bytes do not match the hash the leader sent");
    }
    changes_.push_back(
        {epoch_, sequence_, rank(), true, 0.0, "rejoined at round " + std::to_string(round)});
    reported_ = changes_.size();
    load(state);
    joining_ = false;
    return round;
  }

  // The leader's side, called by a driver after each round on every rank
  // (free when nobody joins): replacements that connected since the last
  // call become members, and each receives save(wire::buffer&)'s bytes, the
  // driver's state after `round`. The others learn of them with the next
  // collective.
  template <class Save>
  void admit(std::uint64_t round, Save&& save) {
    if constexpr (requires { inner_.take_rejoined(); }) {
      if (joining_ || !leading()) return;
      notice_replacements();
      std::vector<int> joiners;
      for (auto it = replacements_.begin(); it != replacements_.end();) {
        bool ready = false;
        try {
          if (!it->asked.test()) {
            ++it;
            continue;
          }
          it->asked.wait();
          wire::view in(it->message, "comm::elastic join request");
          ready = in.get<std::uint64_t>("mark") == ready_mark;
        } catch (const error&) {  // the replacement died or sent garbage: forget it
        }
        if (ready) joiners.push_back(it->rank);
        it = replacements_.erase(it);
      }
      if (joiners.empty()) return;
      state_.clear();
      save(state_);
      for (int q : joiners) {
        add(q, "rejoined at round " + std::to_string(round));
      }
      wire::buffer message;
      message.put<std::uint64_t>(round);
      message.put<std::uint64_t>(sequence_);
      message.put<std::uint64_t>(epoch_);
      message.put<std::uint32_t>(static_cast<std::uint32_t>(members_.size()));
      for (int m : members_) message.put<std::int32_t>(m);
      message.put<std::uint64_t>(state_hash(state_.bytes()));
      message.put<std::uint64_t>(state_.size());
      message.append(state_.data(), state_.size());
      started_ = comm::now(inner_);
      for (int q : joiners) send_or_lose(q, message.bytes());
    } else {
      (void)round;
      (void)save;
    }
  }

  // The inner communicator's clock, when it has one (the simulator's).
  double now() const requires requires(const Comm& c) { c.now(); }
  { return static_cast<double>(inner_.now()); }

  // ------------------------------------------------------------ point to point
  void send(int dst, int tag, std::span<const std::byte> bytes) {
    check_tag(tag, "send");
    inner_.send(dst, tag, bytes);
  }
  int recv(int src, int tag, wire::buffer& out) {
    check_tag(tag, "recv");
    return inner_.recv(src, tag, out);
  }
  auto isend(int dst, int tag, std::span<const std::byte> bytes) {
    check_tag(tag, "isend");
    return inner_.isend(dst, tag, bytes);
  }
  auto irecv(int src, int tag, wire::buffer& out) {
    check_tag(tag, "irecv");
    return inner_.irecv(src, tag, out);
  }

  // ------------------------------------------------------------ collectives over the members
  template <class T>
  requires std::is_same_v<T, float> || std::is_same_v<T, double>
  void allreduce(std::span<T> data, reduce_op op) {
    begin();
    wire::buffer& mine = scratch_;
    mine.clear();
    mine.put<std::uint64_t>(sequence_);
    wire::put_values<T>(mine, std::span<const T>(data));
    for (;;) {  // again when this rank took over from a lost leader
      if (leading()) {
        collect(mine);
        count_contributions();
        reduce_contributions(data, op);
        result_.clear();
        put_header(result_);
        wire::put_values<T>(result_, std::span<const T>(data));
        reported_ = changes_.size();
        hand_out(nullptr);
        return;
      }
      if (auto in = contribute(mine)) {
        wire::get_values<T>(*in, data, "values");
        in->expect_end("values");
        return;
      }
    }
  }

  // all[q]: member q's bytes; empty for ranks that are not members.
  void allgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    exchange(mine, all, -1, true);
  }
  // Filled on root only (empty entries for ranks that are not members).
  void gather(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root) {
    check_member(root, "gather");
    exchange(mine, all, root, false);
  }
  void broadcast(wire::buffer& b, int root) {
    check_member(root, "broadcast");
    std::vector<wire::buffer>& all = gathered_;
    exchange(rank() == root ? b.bytes() : std::span<const std::byte>{}, all, -2 - root, true);
    if (rank() != root) b = all[static_cast<std::size_t>(root)];
  }
  void barrier() {
    std::vector<wire::buffer>& all = gathered_;
    exchange({}, all, -1, false);
  }

  // Non-blocking forms run the collective when waited on or tested (the
  // exchange needs the caller's thread); they overlap nothing. A request
  // holds the call's arguments and a plain function, so issuing one
  // allocates nothing.
  class request {
   public:
    request() = default;
    void wait() {
      if (run_ != nullptr) std::exchange(run_, nullptr)(*this);
    }
    bool test() {
      wait();
      return true;
    }
    bool wait_for(duration) { return test(); }
    int source() const { return -1; }

   private:
    friend class elastic;
    void (*run_)(request&) = nullptr;
    elastic* owner_ = nullptr;
    void* data_ = nullptr;  // allreduce: the values
    std::size_t count_ = 0;
    reduce_op op_ = reduce_op::sum;
    std::span<const std::byte> mine_;           // allgather
    std::vector<wire::buffer>* all_ = nullptr;  // allgather
  };
  template <class T>
  requires std::is_same_v<T, float> || std::is_same_v<T, double> request
  iallreduce(std::span<T> data, reduce_op op) {
    request r;
    r.owner_ = this;
    r.data_ = data.data();
    r.count_ = data.size();
    r.op_ = op;
    r.run_ = [](request& q) {
      q.owner_->allreduce(std::span<T>(static_cast<T*>(q.data_), q.count_), q.op_);
    };
    return r;
  }
  request iallgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    request r;
    r.owner_ = this;
    r.mine_ = mine;
    r.all_ = &all;
    r.run_ = [](request& q) { q.owner_->allgather(q.mine_, *q.all_); };
    return r;
  }

 private:
  int tag_up() const noexcept { return opt_.tag; }
  int tag_down() const noexcept { return opt_.tag + 1; }
  int tag_join() const noexcept { return opt_.tag + 2; }
  int tag_recover() const noexcept { return opt_.tag + 3; }
  static constexpr std::uint64_t ready_mark = 0x594441455220434fULL;  // the bytes of OC READY
  int leader() const noexcept { return members_.front(); }
  bool leading() const noexcept { return rank() == leader(); }

  void check_tag(int tag, const char* what) const {
    if (tag >= tag_up() && tag <= tag_recover()) {
      throw config_error("comm::elastic::" + std::string(what) + ": tag " + std::to_string(tag) +
                         " is reserved by comm::elastic (elastic_options::tag)");
    }
  }
  void check_member(int root, const char* what) const {
    if (!is_live(root)) {
      throw peer_lost(root, "comm::elastic::" + std::string(what) + ": root rank " +
                                std::to_string(root) + " is not a member any more");
    }
  }

  void begin() {
    ++sequence_;
    started_ = comm::now(inner_);
    if (!is_live(rank())) {
      throw error("loco: comm::elastic: rank " + std::to_string(rank()) +
                  " was left out of the world (found lost by the others)");
    }
  }

  // The leader: every member's contribution (sequence number first) in
  // contributions_[q], checked; empty when q is not a member or was lost on
  // the way.
  void collect(const wire::buffer& mine) {
    contributions_.resize(static_cast<std::size_t>(size()));
    for (auto& c : contributions_) c.clear();
    contributions_[static_cast<std::size_t>(rank())].assign(mine.bytes());
    expected_ = members_;
    for (int q : expected_) {
      if (q == rank()) continue;
      auto& in = contributions_[static_cast<std::size_t>(q)];
      notice_replacements();
      if (!is_live(q)) continue;
      if (!held_.empty() && !held_[static_cast<std::size_t>(q)].empty()) {
        // Sent with its recovery message after the last leader was lost.
        std::swap(in, held_[static_cast<std::size_t>(q)]);
        held_[static_cast<std::size_t>(q)].clear();
      } else if (!recv_or_lose(q, tag_up(), in)) {
        continue;
      }
      wire::view v(in, contribution_source(q));
      const auto seq = v.get<std::uint64_t>("sequence");
      if (seq != sequence_) {
        v.fail("sequence", "collective " + std::to_string(seq) + " arrived during collective " +
                               std::to_string(sequence_) +
                               " (do the ranks call the same collectives in the same order?)");
      }
    }
    require_majority(expected_.size());
  }

  // A leader that reaches no more than half of the `before` members it
  // expected is more likely cut off itself (stopped, partitioned) than
  // outlived by them: it leaves, so that a minority never goes on as a world
  // of its own next to the majority. Two members cannot tell; they go on.
  void require_majority(std::size_t before) const {
    if (before <= 2 || 2 * members_.size() > before) return;
    throw error("loco: comm::elastic: rank " + std::to_string(rank()) + " reached only " +
                std::to_string(members_.size()) + " of the " + std::to_string(before) +
                " members in collective " + std::to_string(sequence_) +
                ": cut off from the majority, it leaves (the others go on without it)");
  }
  void count_contributions() {
    for (int q : members_) {
      if (!contributions_[static_cast<std::size_t>(q)].empty()) ++contributions_total_;
    }
  }
  // A contribution after its sequence number.
  std::span<const std::byte> body(int q) const {
    return contributions_[static_cast<std::size_t>(q)].bytes().subspan(sizeof(std::uint64_t));
  }

  // Sends result_ to every other member; `per_member` (gather to a root)
  // replaces it for ranks that get only the membership. A member that cannot
  // be reached is lost, found by the next collective.
  void hand_out(const wire::buffer* header_only, int only_full = -1) {
    expected_ = members_;  // a loss below changes members_
    for (int q : expected_) {
      if (q == rank()) continue;
      const auto& msg = header_only != nullptr && q != only_full ? *header_only : result_;
      send_or_lose(q, msg.bytes());
    }
  }

  // Point to point with a member: a peer_lost loses it instead of ending
  // the collective (recv: false then, and `out` is empty).
  bool recv_or_lose(int q, int tag, wire::buffer& out) {
    try {
      (void)inner_.recv(q, tag, out);
      return true;
    } catch (const peer_lost& e) {
      lose(q, e.what());
      out.clear();
      return false;
    }
  }
  void send_or_lose(int q, std::span<const std::byte> bytes) {
    try {
      inner_.send(q, tag_down(), bytes);
    } catch (const peer_lost& e) {
      lose(q, e.what());
    }
  }

  // A member: sends its contribution to the leader and returns a view of
  // the result after the header, having adopted the membership in it; or
  // nothing when the leader was lost and this rank, its successor, now
  // leads this collective.
  std::optional<wire::view> contribute(const wire::buffer& mine) {
    std::swap(incoming_, previous_);  // the last result, should the leader be lost
    previous_sequence_ = result_sequence_;
    const std::size_t before = members_.size();
    int from = -1;
    for (bool recovering = false;;) {
      from = leader();
      try {
        if (recovering) {
          send_recovery(from, mine);
        } else {
          inner_.send(from, tag_up(), mine.bytes());
        }
        (void)inner_.recv(from, tag_down(), incoming_);
        break;
      } catch (const peer_lost& e) {
        if (e.rank() != from) throw;
        lose(from, e.what());
        if (leading()) {
          if (!take_over(before)) return std::nullopt;
          break;  // incoming_: this collective's result, from a member that had it
        }
        recovering = true;
      }
    }
    wire::view in(incoming_, result_source(from));
    read_header(in);
    result_sequence_ = sequence_;
    return in;
  }

  // To the new leader: u64 sequence, u64 sequence of the last result, u64
  // its length, the last result, then this collective's contribution.
  void send_recovery(int to, const wire::buffer& mine) {
    outgoing_.clear();
    outgoing_.put<std::uint64_t>(sequence_);
    outgoing_.put<std::uint64_t>(previous_sequence_);
    outgoing_.put<std::uint64_t>(previous_.size());
    outgoing_.append(previous_.data(), previous_.size());
    outgoing_.append(mine.data(), mine.size());
    inner_.send(to, tag_recover(), outgoing_.bytes());
  }

  // The new leader, after the old one was lost during this rank's
  // collective: hears from every member where it is. The members are at
  // most one collective apart (the old leader handed a result to some of
  // them only); those behind get that result, forwarded as it was, and the
  // contributions to the collective after it are kept for collect().
  // Returns true when this rank was behind too (incoming_ then holds its
  // result), false when it leads this collective now.
  bool take_over(std::size_t before) {
    reported_ = changes_.size();  // each member found the old leader lost itself
    const auto n = static_cast<std::size_t>(size());
    recovery_.resize(n);
    recovered_.resize(n);
    held_.resize(n);
    std::uint64_t low = sequence_, high = sequence_;
    expected_ = members_;  // a loss below changes members_
    for (int q : expected_) {
      auto& m = recovery_[static_cast<std::size_t>(q)];
      if (q == rank() || !recv_or_lose(q, tag_recover(), m)) continue;
      wire::view in(m, contribution_source(q));
      auto& r = recovered_[static_cast<std::size_t>(q)];
      r.sequence = in.get<std::uint64_t>("sequence");
      if (r.sequence + 1 < sequence_ || r.sequence > sequence_ + 1) {
        in.fail("sequence", "collective " + std::to_string(r.sequence) + " while this rank is in " +
                                std::to_string(sequence_));
      }
      r.last = in.get<std::uint64_t>("last result");
      const auto length = in.get<std::uint64_t>("last result length");
      r.result = in.take(static_cast<std::size_t>(length), "last result");
      r.contribution = in.take(in.remaining(), "contribution");
      low = std::min(low, r.sequence);
      high = std::max(high, r.sequence);
    }
    require_majority(before);
    if (high > low + 1) {
      throw error("loco: comm::elastic: after the leader's loss the members are in collectives " +
                  std::to_string(low) + " to " + std::to_string(high));
    }
    // The result of `low` (held by the ranks at `high` when they differ),
    // and the contributions to `high`.
    std::span<const std::byte> result;
    if (sequence_ == high && previous_sequence_ == low) result = previous_.bytes();
    for (int q : members_) {
      const auto& r = recovered_[static_cast<std::size_t>(q)];
      if (q == rank() || r.sequence != high) continue;
      if (result.empty() && r.last == low) result = r.result;
      held_[static_cast<std::size_t>(q)].assign(r.contribution);
    }
    if (high == low) return false;
    if (result.empty()) {
      throw error("loco: comm::elastic: no member holds the result of collective " +
                  std::to_string(low) + " that the lost leader handed out in part");
    }
    expected_ = members_;
    for (int q : expected_) {
      if (q != rank() && recovered_[static_cast<std::size_t>(q)].sequence == low) {
        send_or_lose(q, result);
      }
    }
    if (sequence_ == high) return false;
    incoming_.assign(result);
    return true;
  }

  // Header: u64 sequence, u64 epoch, u32 count, count x i32 member ranks,
  // then per new loss: (i32 rank, f64 waited, u32 length, why).
  void put_header(wire::buffer& b) const {
    b.put<std::uint64_t>(sequence_);
    b.put<std::uint64_t>(epoch_);
    b.put<std::uint32_t>(static_cast<std::uint32_t>(members_.size()));
    for (int q : members_) b.put<std::int32_t>(q);
    const auto fresh = static_cast<std::uint32_t>(changes_.size() - reported_);
    b.put<std::uint32_t>(fresh);
    for (std::size_t k = reported_; k < changes_.size(); ++k) {
      const auto& c = changes_[k];
      b.put<std::int32_t>(c.rank);
      b.put<std::uint8_t>(c.joined ? 1 : 0);
      b.put<double>(c.waited);
      b.put<std::uint32_t>(static_cast<std::uint32_t>(c.why.size()));
      b.append(c.why.data(), c.why.size());
    }
  }
  void read_header(wire::view& in) {
    const auto seq = in.get<std::uint64_t>("sequence");
    if (seq != sequence_) {
      in.fail("sequence", "result of collective " + std::to_string(seq) + " during collective " +
                              std::to_string(sequence_));
    }
    const auto epoch = in.get<std::uint64_t>("epoch");
    std::vector<int>& members = listed_;
    read_members(in, members);
    const auto fresh = in.get<std::uint32_t>("changes");
    if (fresh > static_cast<std::uint32_t>(size())) in.fail("changes", "more than the world");
    for (std::uint32_t k = 0; k < fresh; ++k) {
      membership_change c;
      c.rank = in.get<std::int32_t>("change rank");
      c.joined = in.get<std::uint8_t>("change kind") != 0;
      c.waited = in.get<double>("change waited");
      const auto length = in.get<std::uint32_t>("change reason length");
      const auto text = in.take(length, "change reason");
      c.why.assign(reinterpret_cast<const char*>(text.data()), text.size());
      if (c.rank < 0 || c.rank >= size()) in.fail("change rank", "outside the world");
      if (c.joined && !is_live(c.rank)) add(c.rank, c.why);
      if (!c.joined && is_live(c.rank)) record(c.rank, c.waited, c.why);
    }
    if (epoch != epoch_ || members != members_) {
      // Differences without a reported change: a rank the leader does not
      // list is lost here too. A rank listed but lost here stays lost (a
      // result the old leader handed out before its loss, forwarded by its
      // successor, still lists it); joins always come as changes.
      for (int q : std::vector<int>(members_)) {
        if (!std::binary_search(members.begin(), members.end(), q)) {
          record(q, 0.0, "left out by the leader");
        }
      }
      epoch_ = std::max(epoch_, epoch);
    }
    if (!is_live(rank())) {
      throw error("loco: comm::elastic: rank " + std::to_string(rank()) +
                  " was left out of the world by the leader (it was found lost)");
    }
  }

  // Names of the peers' messages in errors, made once (no allocation per
  // collective).
  std::string_view contribution_source(int q) {
    return source_names(q, 0, "comm::elastic contribution of rank ");
  }
  std::string_view result_source(int q) {
    return source_names(q, 1, "comm::elastic result from rank ");
  }
  std::string_view source_names(int q, std::size_t kind, const char* prefix) {
    auto& names = sources_[kind];
    if (names.empty()) {
      for (int r = 0; r < size(); ++r) names.push_back(prefix + std::to_string(r));
    }
    return names[static_cast<std::size_t>(q)];
  }

  // The member list of a header or an admission: u32 count, then the
  // ranks in increasing order, each inside the world.
  void read_members(wire::view& in, std::vector<int>& out) const {
    const auto count = in.get<std::uint32_t>("member count");
    if (count == 0 || count > static_cast<std::uint32_t>(size())) {
      in.fail("member count",
              std::to_string(count) + " outside [1, " + std::to_string(size()) + "]");
    }
    out.clear();
    for (std::uint32_t k = 0; k < count; ++k) {
      const auto q = in.get<std::int32_t>("member");
      if (q < 0 || q >= size() || (!out.empty() && q <= out.back())) {
        in.fail("member", "rank " + std::to_string(q) + " out of order or outside the world");
      }
      out.push_back(q);
    }
  }

  void lose(int q, const std::string& why) {
    if (!is_live(q)) return;
    const double waited = comm::now(inner_) - started_;
    record(q, waited, why);
  }
  void record(int q, double waited, const std::string& why) {
    if (!held_.empty()) held_[static_cast<std::size_t>(q)].clear();
    members_.erase(std::find(members_.begin(), members_.end(), q));
    ++epoch_;
    changes_.push_back({epoch_, sequence_, q, false, waited, why});
  }

  // The leader: a rank whose process was replaced lost its old one, even
  // if no collective noticed yet (its new link must not be waited on before
  // admission); it joins at the next admit().
  void notice_replacements() {
    if constexpr (requires { inner_.take_rejoined(); }) {
      for (int q : inner_.take_rejoined()) {
        if (is_live(q)) lose(q, "its process was replaced by a new one");
        std::erase_if(replacements_, [q](const replacement& r) { return r.rank == q; });
        auto& r = replacements_.emplace_back(q);
        r.asked = inner_.irecv(q, tag_join(), r.message);
      }
    }
  }

  void add(int q, const std::string& why) {
    if (!held_.empty()) held_[static_cast<std::size_t>(q)].clear();
    members_.insert(std::upper_bound(members_.begin(), members_.end(), q), q);
    ++epoch_;
    changes_.push_back({epoch_, sequence_, q, true, 0.0, why});
  }

  // FNV-1a over the state a joiner receives (the checkpoint inside has its
  // own CRC-32C as well).
  static std::uint64_t state_hash(std::span<const std::byte> bytes) noexcept {
    std::uint64_t h = 1469598103934665603ull;
    for (std::byte b : bytes) h = (h ^ static_cast<std::uint64_t>(b)) * 1099511628211ull;
    return h;
  }

  // allreduce on the leader: contributions in rank order, so every
  // survivor gets the same bits; average divides by the contributors.
  template <class T>
  void reduce_contributions(std::span<T> data, reduce_op op) {
    bool first = true;
    std::size_t count = 0;
    for (int q : members_) {
      wire::view in(body(q), contribution_source(q));
      const auto n = in.get<std::uint64_t>("values");
      if (n != data.size()) {
        in.fail("values", std::to_string(n) + " values, the leader has " +
                              std::to_string(data.size()) +
                              " (do the ranks disagree on the vector size?)");
      }
      const auto bytes = in.take(data.size_bytes(), "values");
      in.expect_end("values");
      for (std::size_t k = 0; k < data.size(); ++k) {
        const T v = wire::load_le<T>(bytes.data() + k * sizeof(T));
        T& out = data[k];
        if (first) {
          out = v;
        } else if (op == reduce_op::max) {
          out = std::max(out, v);
        } else if (op == reduce_op::min) {
          out = std::min(out, v);
        } else {
          out += v;
        }
      }
      first = false;
      ++count;
    }
    if (op == reduce_op::average) {
      const T inv = T{1} / static_cast<T>(count);
      for (auto& v : data) v *= inv;
    }
  }

  // The leader's side of exchange().
  void lead_exchange(std::vector<wire::buffer>& all, int root, bool forward, int source_only) {
    collect(scratch_);
    count_contributions();
    result_.clear();
    put_header(result_);
    header_.clear();
    put_header(header_);
    header_.put<std::int32_t>(-1);
    reported_ = changes_.size();
    if (forward || root >= 0) {
      for (int q : members_) {
        if (source_only >= 0 && q != source_only) continue;
        const auto b = body(q);
        result_.put<std::int32_t>(q);
        result_.put<std::uint64_t>(b.size());
        result_.append(b.data(), b.size());
        if (forward || root == rank()) all[static_cast<std::size_t>(q)].assign(b);
      }
      result_.put<std::int32_t>(-1);
    }
    if (root >= 0) {
      hand_out(&header_, root);
    } else {
      hand_out(forward ? nullptr : &header_);
    }
  }

  // allgather (root -1), gather (root >= 0: only root gets the bytes),
  // broadcast (root -2 - r: everybody gets r's bytes); `forward` false with
  // root -1 is a barrier.
  void exchange(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root,
                bool forward) {
    begin();
    all.resize(static_cast<std::size_t>(size()));
    for (auto& b : all) b.clear();
    const int source_only = root <= -2 ? -2 - root : -1;
    scratch_.clear();
    scratch_.put<std::uint64_t>(sequence_);
    scratch_.append(mine.data(), mine.size());
    std::optional<wire::view> got;
    while (!got) {  // again when this rank took over from a lost leader
      if (leading()) {
        lead_exchange(all, root, forward, source_only);
        return;
      }
      got = contribute(scratch_);
    }
    wire::view& in = *got;
    for (;;) {
      const auto q = in.get<std::int32_t>("body rank");
      if (q == -1) break;
      if (q < 0 || q >= size()) in.fail("body rank", "rank " + std::to_string(q) + " outside");
      const auto length = in.get<std::uint64_t>("body length");
      const auto bytes = in.take(static_cast<std::size_t>(length), "body");
      all[static_cast<std::size_t>(q)].assign(bytes);
    }
    in.expect_end("comm::elastic result");
  }

  Comm& inner_;
  elastic_options opt_;
  std::vector<int> members_;             // the live ranks, in increasing order
  std::vector<int> listed_;              // members: the leader's list in the last result
  std::vector<std::string> sources_[2];  // contribution_source, result_source
  std::vector<int> expected_;            // leader: the members a collective waits for
  std::uint64_t epoch_ = 0;
  std::uint64_t sequence_ = 0;
  std::uint64_t contributions_total_ = 0;
  std::vector<membership_change> changes_;
  std::size_t reported_ = 0;  // leader: changes already sent to the members
  double started_ = 0.0;      // comm::now() when the collective began (virtual on the simulator)
  wire::buffer scratch_, outgoing_, incoming_, result_, header_, state_;
  // Members: the result before the one in incoming_, and both sequence
  // numbers; sent to a new leader when the old one is lost.
  wire::buffer previous_;
  std::uint64_t previous_sequence_ = 0, result_sequence_ = 0;
  // A new leader: each member's recovery message, and the contributions to
  // the collective it leads next that arrived with them.
  std::vector<wire::buffer> recovery_, held_;
  struct recovered {  // a recovery message, parsed (views into recovery_)
    std::uint64_t sequence = 0, last = 0;
    std::span<const std::byte> result, contribution;
  };
  std::vector<recovered> recovered_;
  bool joining_ = false;
  // Leader: replaced ranks, each with its posted receive of the request to join.
  struct replacement {
    explicit replacement(int q) : rank(q) {}
    int rank;
    wire::buffer message;
    decltype(std::declval<Comm&>().irecv(0, 0, std::declval<wire::buffer&>())) asked{};
  };
  std::list<replacement> replacements_;  // a list: each receive writes into its own message
  std::vector<wire::buffer> contributions_, gathered_;
};

// The live members of `c` (its size for communicators that never shrink).
template <class C>
int live_count(const C& c) {
  if constexpr (requires { c.live_count(); }) {
    return c.live_count();
  } else {
    return c.size();
  }
}

}  // namespace loco::comm
