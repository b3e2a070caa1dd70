#pragma once
// comm::mpi: the Communicator concept on an MPI communicator, for users who
// already run MPI jobs (`mpirun -np 64 ./train`). Needs the loco::mpi target.
//
//   int main(int argc, char** argv) {
//     loco::comm::mpi_environment env(&argc, &argv);  // MPI_THREAD_MULTIPLE
//     loco::comm::mpi comm;                           // duplicates MPI_COMM_WORLD
//     ...
//   }
//
// Threading model. MPI is initialised with MPI_THREAD_MULTIPLE. The caller's
// thread issues every operation itself (MPI_Iallreduce, MPI_Isend, ...), so
// collectives reach MPI in program order. Pending operations are tested by
// whichever thread waits on one and, every `progress_interval`, by one
// background thread per communicator: OpenMPI advances non-blocking
// collectives only inside MPI calls, and that thread makes the calls while
// the caller computes. One thread at a time may issue collectives on one
// communicator (as in MPI itself).
//
// Semantics shared with the other communicators:
//  * send() copies the bytes and returns at once (no rendezvous deadlock when
//    two ranks send to each other first); isend() does not copy.
//  * recv()/irecv() need not know the size: the message is probed, then
//    received into the resized buffer (MPI_Improbe + MPI_Imrecv).
//  * broadcast/allgather/gather move variable sizes: the sizes first, then the
//    bytes on a second duplicated communicator, in issue order on every rank.
//  * allreduce uses MPI's built-in ops, whose result is the same on every
//    rank; average is sum then division by size() on each rank.
//  * Every wait gives up after `timeout` with loco::peer_lost. A receive that
//    times out is withdrawn; any other operation cannot be withdrawn from
//    MPI, so the communicator is marked failed and every later call throws
//    peer_lost. Memory handed to the abandoned operation must stay valid
//    until the communicator is destroyed; the usual reaction is abort().
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <loco/comm/detail/thread_name.hpp>
#include <loco/comm/types.hpp>
#include <loco/error.hpp>
#include <loco/wire/buffer.hpp>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace loco::comm {

// Initialises MPI with MPI_THREAD_MULTIPLE and finalises it at scope exit.
// If MPI is already initialised (by the user or another library) it only
// checks the thread level and leaves finalisation to its owner.
class mpi_environment {
 public:
  mpi_environment() : mpi_environment(nullptr, nullptr) {}
  mpi_environment(int* argc, char*** argv) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) throw error("comm::mpi_environment: MPI was already finalised");
    int initialised = 0;
    MPI_Initialized(&initialised);
    int provided = MPI_THREAD_SINGLE;
    if (initialised) {
      MPI_Query_thread(&provided);
    } else {
      if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
        throw error("comm::mpi_environment: MPI_Init_thread failed");
      }
      owner_ = true;
    }
    if (provided < MPI_THREAD_MULTIPLE) {
      if (owner_) MPI_Finalize();
      throw error("comm::mpi_environment: MPI provides thread level " + std::to_string(provided) +
                  ", loco needs MPI_THREAD_MULTIPLE (" + std::to_string(MPI_THREAD_MULTIPLE) +
                  ") for its progress thread");
    }
  }
  mpi_environment(const mpi_environment&) = delete;
  mpi_environment& operator=(const mpi_environment&) = delete;
  ~mpi_environment() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
  }
  // True when this object initialised MPI (and will finalise it).
  bool owner() const noexcept { return owner_; }

 private:
  bool owner_ = false;
};

struct mpi_options {
  // How long any wait (a collective, a recv, a request's wait()) may take
  // before loco::peer_lost is thrown.
  duration timeout{30000};
  // How often the background thread tests pending operations; zero turns the
  // thread off (then only test()/wait() advance non-blocking operations).
  std::chrono::microseconds progress_interval{50};
  // Blocking allreduce() and barrier() call MPI_Allreduce / MPI_Barrier
  // directly: OpenMPI's tuned blocking algorithms beat its non-blocking ones
  // (about 2x at 64 KB-1 MB on shared memory, see docs/communicators-mpi.md), but
  // these two calls then have no timeout; a dead peer is left to mpirun.
  bool native_blocking = false;
};

namespace detail {

inline std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) {
    return "MPI error code " + std::to_string(code);
  }
  return std::string(text, static_cast<std::size_t>(len));
}

// Errors that mean a wrong call rather than a broken peer or network.
inline bool mpi_usage_error(int code) {
  int cls = MPI_ERR_OTHER;
  MPI_Error_class(code, &cls);
  return cls == MPI_ERR_TRUNCATE || cls == MPI_ERR_COUNT || cls == MPI_ERR_ARG ||
         cls == MPI_ERR_TYPE || cls == MPI_ERR_OP || cls == MPI_ERR_BUFFER || cls == MPI_ERR_TAG ||
         cls == MPI_ERR_RANK || cls == MPI_ERR_ROOT;
}

template <class T>
MPI_Datatype mpi_datatype() {
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return MPI_INT32_T;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return MPI_INT64_T;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return MPI_UINT32_T;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return MPI_UINT64_T;
  else
    static_assert(sizeof(T) == 0,
                  "comm::mpi::allreduce needs float, double or a 32/64-bit integer");
}

inline MPI_Op mpi_reduction(reduce_op op) {
  switch (op) {
    case reduce_op::max:
      return MPI_MAX;
    case reduce_op::min:
      return MPI_MIN;
    case reduce_op::sum:
    case reduce_op::average:
      break;
  }
  return MPI_SUM;
}

template <class T>
void divide_by(void* data, std::size_t count, int n) {
  T* v = static_cast<T*>(data);
  const T d = static_cast<T>(n);
  for (std::size_t i = 0; i < count; ++i) v[i] = static_cast<T>(v[i] / d);
}

// One pending operation. Multi-phase collectives move the sizes (phase 0),
// wait for their turn (phase 1), then move the bytes (phase 2).
struct mpi_op {
  enum class kind { send, isend, recv, allreduce, barrier, allgather, gather, broadcast };
  kind what = kind::barrier;
  const char* name = "";
  int phase = 0;
  MPI_Request req = MPI_REQUEST_NULL;
  int peer = -1;  // the other rank (point to point), the root, or -1
  int tag = 0;
  wire::buffer* out = nullptr;  // recv target, broadcast buffer
  wire::buffer owned;           // detached send's copy, gathered bytes
  std::span<const std::byte> mine;
  std::vector<wire::buffer>* all = nullptr;
  std::uint64_t my_size = 0;
  std::vector<std::uint64_t> sizes;
  std::vector<int> counts, displs;
  void* data = nullptr;
  std::size_t count = 0;
  void (*divide)(void*, std::size_t, int) = nullptr;
  bool done = false;
  int source = -1;
  std::exception_ptr error;

  bool multi_phase() const {
    return what == kind::allgather || what == kind::gather || what == kind::broadcast;
  }
};

// The state of one loco::comm::mpi: its two MPI communicators, the pending
// operations and the background progress thread. Requests share it, so a
// request that outlives its communicator stays safe to wait on.
class mpi_engine {
 public:
  using clock = std::chrono::steady_clock;

  mpi_engine(MPI_Comm base, mpi_options opt) : options_(opt) {
    int initialised = 0, finalized = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalized);
    if (!initialised || finalized) {
      throw config_error("comm::mpi: MPI is not initialised; create a comm::mpi_environment first");
    }
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    if (level < MPI_THREAD_MULTIPLE) {
      throw config_error("comm::mpi: MPI thread level " + std::to_string(level) +
                         " is below MPI_THREAD_MULTIPLE, which loco's progress thread needs");
    }
    if (opt.timeout.count() <= 0) {
      throw config_error("comm::mpi: timeout " + std::to_string(opt.timeout.count()) +
                         " ms must be > 0");
    }
    if (opt.progress_interval.count() < 0) {
      throw config_error("comm::mpi: progress_interval " +
                         std::to_string(opt.progress_interval.count()) + " us must be >= 0");
    }
    // Private duplicates: loco's traffic never matches the user's.
    check_setup(MPI_Comm_dup(base, &comm_), "MPI_Comm_dup");
    check_setup(MPI_Comm_dup(base, &phase2_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(phase2_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    void* ub = nullptr;
    int has_ub = 0;
    MPI_Comm_get_attr(comm_, MPI_TAG_UB, &ub, &has_ub);
    tag_ub_ = has_ub ? *static_cast<int*>(ub) : 32767;  // 32767: the least MPI guarantees
    if (opt.progress_interval.count() > 0) {
      thread_ = std::thread([this] {
        name_this_thread("loco-mpi-prog");
        progress_loop();
      });
    }
  }
  mpi_engine(const mpi_engine&) = delete;
  mpi_engine& operator=(const mpi_engine&) = delete;
  ~mpi_engine() { close(); }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  int tag_ub() const noexcept { return tag_ub_; }
  const mpi_options& options() const noexcept { return options_; }
  MPI_Comm comm() const noexcept { return comm_; }

  // Lets operations still in flight finish (within the timeout; an abandoned
  // one may still be joined late), fails the rest and frees the MPI communicators.
  void close() {
    {
      std::unique_lock lock(mutex_);
      if (closed_) return;
      closed_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mutex_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;  // nothing can be called any more
    const auto deadline = clock::now() + options_.timeout;
    while (in_flight_locked() && clock::now() < deadline) poll_locked();
    for (auto& op : ops_) {
      if (op->done) continue;
      // A collective or send still in MPI's hands cannot be freed; its
      // request is left to MPI (MPI_Comm_free lets it finish).
      op->done = true;
      op->error = std::make_exception_ptr(error("comm::mpi: communicator destroyed before " +
                                                std::string(op->name) + " completed"));
    }
    ops_.clear();
    MPI_Comm_free(&comm_);
    MPI_Comm_free(&phase2_);
  }

  // ------------------------------------------------------------ issuing
  // Each start_* issues the MPI call from the caller's thread (program order)
  // and queues the operation for testing.
  std::shared_ptr<mpi_op> start_send(int dst, int tag, std::span<const std::byte> bytes,
                                     bool copy) {
    auto op = std::make_shared<mpi_op>();
    op->what = copy ? mpi_op::kind::send : mpi_op::kind::isend;
    op->name = copy ? "send" : "isend";
    op->peer = dst;
    op->tag = tag;
    std::unique_lock lock(mutex_);
    throw_if_failed_locked();
    const void* data = bytes.data();
    if (copy) {
      op->owned = take_spare_locked();
      op->owned.assign(bytes);
      data = op->owned.data();
    }
    issue_locked(*op, MPI_Isend(data, checked_int(bytes.size(), op->name), MPI_BYTE, dst, tag,
                                comm_, &op->req));
    return queue_locked(std::move(op));
  }

  std::shared_ptr<mpi_op> start_recv(int src, int tag, wire::buffer& out) {
    auto op = std::make_shared<mpi_op>();
    op->what = mpi_op::kind::recv;
    op->name = "recv";
    op->peer = src;
    op->tag = tag;
    op->out = &out;
    std::unique_lock lock(mutex_);
    throw_if_failed_locked();
    return queue_locked(std::move(op));  // probed in poll_locked(), in posting order
  }

  template <class T>
  std::shared_ptr<mpi_op> start_allreduce(std::span<T> data, reduce_op rop) {
    auto op = std::make_shared<mpi_op>();
    op->what = mpi_op::kind::allreduce;
    op->name = "allreduce";
    op->data = data.data();
    op->count = data.size();
    if (rop == reduce_op::average) op->divide = &divide_by<T>;
    std::unique_lock lock(mutex_);
    throw_if_failed_locked();
    issue_locked(*op, MPI_Iallreduce(MPI_IN_PLACE, data.data(), checked_int(data.size(), op->name),
                                     mpi_datatype<T>(), mpi_reduction(rop), comm_, &op->req));
    return queue_locked(std::move(op));
  }

  std::shared_ptr<mpi_op> start_barrier() {
    auto op = std::make_shared<mpi_op>();
    op->what = mpi_op::kind::barrier;
    op->name = "barrier";
    std::unique_lock lock(mutex_);
    throw_if_failed_locked();
    issue_locked(*op, MPI_Ibarrier(comm_, &op->req));
    return queue_locked(std::move(op));
  }

  // root < 0: allgather; otherwise gather to root.
  std::shared_ptr<mpi_op> start_gather(std::span<const std::byte> mine,
                                       std::vector<wire::buffer>& all, int root) {
    auto op = std::make_shared<mpi_op>();
    op->what = root < 0 ? mpi_op::kind::allgather : mpi_op::kind::gather;
    op->name = root < 0 ? "allgather" : "gather";
    op->peer = root;
    op->mine = mine;
    op->all = &all;
    op->my_size = mine.size();
    op->sizes.resize(static_cast<std::size_t>(size_));
    std::unique_lock lock(mutex_);
    throw_if_failed_locked();
    // Every rank learns every size, so all agree whether the bytes fit MPI's int counts.
    issue_locked(*op, MPI_Iallgather(&op->my_size, 1, MPI_UINT64_T, op->sizes.data(), 1,
                                     MPI_UINT64_T, comm_, &op->req));
    return queue_locked(std::move(op));
  }

  std::shared_ptr<mpi_op> start_broadcast(wire::buffer& b, int root) {
    auto op = std::make_shared<mpi_op>();
    op->what = mpi_op::kind::broadcast;
    op->name = "broadcast";
    op->peer = root;
    op->out = &b;
    op->my_size = rank_ == root ? b.size() : 0;
    std::unique_lock lock(mutex_);
    throw_if_failed_locked();
    issue_locked(*op, MPI_Ibcast(&op->my_size, 1, MPI_UINT64_T, root, comm_, &op->req));
    return queue_locked(std::move(op));
  }

  // ------------------------------------------------------------ waiting
  // Tests pending operations until op is done or the timeout passes.
  void wait(mpi_op& op) {
    const auto deadline = clock::now() + options_.timeout;
    for (unsigned spins = 0;; ++spins) {
      {
        std::lock_guard lock(mutex_);
        if (!op.done) poll_locked();
        if (op.done) {
          if (op.error) std::rethrow_exception(op.error);
          return;
        }
        if (clock::now() >= deadline) timeout_locked(op);
      }
      if (spins > 64) std::this_thread::yield();
    }
  }
  bool wait_for(mpi_op& op, duration limit) {
    const auto deadline = clock::now() + limit;
    for (unsigned spins = 0;; ++spins) {
      {
        std::lock_guard lock(mutex_);
        if (!op.done) poll_locked();
        if (op.done) {
          if (op.error) std::rethrow_exception(op.error);
          return true;
        }
      }
      if (clock::now() >= deadline) return false;
      if (spins > 64) std::this_thread::yield();
    }
  }
  bool test(mpi_op& op) {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return done(op);  // someone else is polling right now
    if (!op.done) poll_locked();
    return op.done;
  }
  bool done(const mpi_op& op) const {
    std::lock_guard lock(mutex_);
    return op.done;
  }
  int source(const mpi_op& op) const {
    std::lock_guard lock(mutex_);
    return op.done ? op.source : -1;
  }

  // Blocking single-phase collectives skip the queue: the caller tests its
  // own request, as MPI's blocking calls would, but with a deadline.
  template <class T>
  void allreduce_now(std::span<T> data, reduce_op rop) {
    throw_if_failed();
    if (options_.native_blocking) {
      check_call(MPI_Allreduce(MPI_IN_PLACE, data.data(), checked_int(data.size(), "allreduce"),
                               mpi_datatype<T>(), mpi_reduction(rop), comm_),
                 -1, "allreduce");
      if (rop == reduce_op::average) divide_by<T>(data.data(), data.size(), size_);
      return;
    }
    MPI_Request req = MPI_REQUEST_NULL;
    check_call(MPI_Iallreduce(MPI_IN_PLACE, data.data(), checked_int(data.size(), "allreduce"),
                              mpi_datatype<T>(), mpi_reduction(rop), comm_, &req),
               -1, "allreduce");
    wait_private(req, "allreduce");
    if (rop == reduce_op::average) divide_by<T>(data.data(), data.size(), size_);
  }
  void barrier_now() {
    throw_if_failed();
    if (options_.native_blocking) return check_call(MPI_Barrier(comm_), -1, "barrier");
    MPI_Request req = MPI_REQUEST_NULL;
    check_call(MPI_Ibarrier(comm_, &req), -1, "barrier");
    wait_private(req, "barrier");
  }

  void throw_if_failed() const {
    std::lock_guard lock(mutex_);
    throw_if_failed_locked();
  }

 private:
  static void check_setup(int rc, const char* call) {
    if (rc != MPI_SUCCESS)
      throw error(std::string("comm::mpi: ") + call + ": " + mpi_error_text(rc));
  }
  static int checked_int(std::size_t n, const char* what) {
    if (n > static_cast<std::size_t>(INT_MAX)) {
      throw config_error(std::string("comm::mpi::") + what + ": " + std::to_string(n) +
                         " elements exceed MPI's int count limit " + std::to_string(INT_MAX));
    }
    return static_cast<int>(n);
  }

  std::exception_ptr make_error_locked(int rc, int peer, const char* what) {
    const std::string text = std::string("comm::mpi::") + what + ": " + mpi_error_text(rc);
    if (mpi_usage_error(rc)) return std::make_exception_ptr(error(text));
    mark_failed_locked(peer, text);
    return std::make_exception_ptr(peer_lost(peer, text));
  }
  void check_call(int rc, int peer, const char* what) {
    if (rc == MPI_SUCCESS) return;
    std::exception_ptr e;
    {
      std::lock_guard lock(mutex_);
      e = make_error_locked(rc, peer, what);
    }
    std::rethrow_exception(e);
  }
  void issue_locked(mpi_op& op, int rc) {
    if (rc != MPI_SUCCESS) std::rethrow_exception(make_error_locked(rc, op.peer, op.name));
  }
  std::shared_ptr<mpi_op> queue_locked(std::shared_ptr<mpi_op> op) {
    ops_.push_back(op);
    wake_.notify_one();
    return op;
  }
  void mark_failed_locked(int peer, const std::string& why) {
    if (failed_) return;
    failed_ = true;
    failed_peer_ = peer;
    failed_why_ = why;
  }
  void throw_if_failed_locked() const {
    if (closed_) throw error("comm::mpi: communicator already destroyed");
    if (failed_) {
      throw peer_lost(failed_peer_,
                      "communicator failed earlier and cannot be used: " + failed_why_);
    }
  }
  bool in_flight_locked() const {
    return std::any_of(ops_.begin(), ops_.end(), [](const auto& op) {
      return !op->done && (op->req != MPI_REQUEST_NULL || op->phase == 1);
    });
  }

  void wait_private(MPI_Request& req, const char* what) {
    const auto deadline = clock::now() + options_.timeout;
    for (unsigned spins = 0;; ++spins) {
      int flag = 0;
      check_call(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), -1, what);
      if (flag) return;
      if (clock::now() >= deadline) {
        // The request cannot be withdrawn; it stays queued so it is still tested.
        auto op = std::make_shared<mpi_op>();
        op->name = what;
        op->req = req;
        const std::string why = std::string(what) + " did not complete within " +
                                std::to_string(options_.timeout.count()) +
                                " ms: a rank did not join it or died";
        {
          std::lock_guard lock(mutex_);
          mark_failed_locked(-1, why);
          ops_.push_back(std::move(op));
        }
        wake_.notify_one();
        throw peer_lost(-1, why);
      }
      if (spins > 64) std::this_thread::yield();
    }
  }

  [[noreturn]] void timeout_locked(mpi_op& op) {
    const std::string limit = std::to_string(options_.timeout.count()) + " ms";
    if (op.what == mpi_op::kind::recv && op.phase == 0) {
      // Not yet matched: withdraw it; the communicator stays usable.
      std::erase_if(ops_, [&](const auto& p) { return p.get() == &op; });
      op.done = true;
      const std::string why =
          "no message with tag " + std::to_string(op.tag) + " arrived within " + limit;
      op.error = std::make_exception_ptr(peer_lost(op.peer, why));
      throw peer_lost(op.peer, why);
    }
    const std::string why =
        std::string(op.name) + " did not complete within " + limit +
        (op.peer >= 0 && op.what != mpi_op::kind::gather && op.what != mpi_op::kind::broadcast
             ? ""
             : ": a rank did not join it or died");
    mark_failed_locked(op.peer, why);
    throw peer_lost(op.peer, why);
  }

  wire::buffer take_spare_locked() {
    if (spares_.empty()) return {};
    auto b = std::move(spares_.back());
    spares_.pop_back();
    return b;
  }

  // One pass over the pending operations; true if any advanced.
  bool poll_locked() {
    bool progressed = false;
    // Receives waiting for a message, in posting order (MPI's matching order).
    // Messages arrive between probes, so a receive may not probe once an
    // earlier one that could take the same message found nothing.
    unmatched_.clear();
    for (auto& op : ops_) {
      if (op->what != mpi_op::kind::recv || op->phase != 0 || op->done) continue;
      const bool behind = std::any_of(unmatched_.begin(), unmatched_.end(), [&](const auto& e) {
        return e.second == op->tag &&
               (e.first == op->peer || e.first == any_source || op->peer == any_source);
      });
      if (behind) continue;
      int flag = 0;
      MPI_Message msg = MPI_MESSAGE_NULL;
      MPI_Status st;
      int rc = MPI_Improbe(op->peer == any_source ? MPI_ANY_SOURCE : op->peer, op->tag, comm_,
                           &flag, &msg, &st);
      if (rc == MPI_SUCCESS && !flag) {
        unmatched_.emplace_back(op->peer, op->tag);
        continue;
      }
      progressed = true;
      int count = 0;
      if (rc == MPI_SUCCESS) rc = MPI_Get_count(&st, MPI_BYTE, &count);
      if (rc == MPI_SUCCESS) {
        op->source = st.MPI_SOURCE;
        op->out->resize(static_cast<std::size_t>(count));
        rc = MPI_Imrecv(op->out->data(), count, MPI_BYTE, &msg, &op->req);
        op->phase = 2;
      }
      if (rc != MPI_SUCCESS) fail_locked(*op, rc);
    }
    // Everything in flight, tested together.
    reqs_.clear();
    where_.clear();
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      if (ops_[i]->req == MPI_REQUEST_NULL) continue;
      reqs_.push_back(ops_[i]->req);
      where_.push_back(i);
    }
    if (!reqs_.empty()) {
      indices_.resize(reqs_.size());
      statuses_.resize(reqs_.size());
      int outcount = 0;
      const int rc = MPI_Testsome(static_cast<int>(reqs_.size()), reqs_.data(), &outcount,
                                  indices_.data(), statuses_.data());
      for (std::size_t k = 0; k < reqs_.size(); ++k) ops_[where_[k]]->req = reqs_[k];
      if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) {
        for (std::size_t k : where_) fail_locked(*ops_[k], rc);
        outcount = 0;
      }
      for (int j = 0; j < outcount && outcount != MPI_UNDEFINED; ++j) {
        const auto at = static_cast<std::size_t>(indices_[static_cast<std::size_t>(j)]);
        auto& op = *ops_[where_[at]];
        const int err = rc == MPI_ERR_IN_STATUS ? statuses_[static_cast<std::size_t>(j)].MPI_ERROR
                                                : MPI_SUCCESS;
        if (err != MPI_SUCCESS)
          fail_locked(op, err);
        else
          phase_done_locked(op);
        progressed = true;
      }
    }
    // Second phases start in issue order, so every rank issues them alike.
    for (auto& op : ops_) {
      if (!op->multi_phase() || op->done) continue;
      if (op->phase == 0) break;
      if (op->phase == 1) {
        start_bytes_locked(*op);
        progressed = true;
      }
    }
    std::erase_if(ops_, [](const auto& op) { return op->done; });
    return progressed;
  }

  void fail_locked(mpi_op& op, int rc) {
    op.error = make_error_locked(rc, op.peer, op.name);
    op.done = true;
  }

  void phase_done_locked(mpi_op& op) {
    using k = mpi_op::kind;
    switch (op.what) {
      case k::send:
        op.owned.clear();
        spares_.push_back(std::move(op.owned));
        op.done = true;
        break;
      case k::allreduce:
        if (op.divide) op.divide(op.data, op.count, size_);
        op.done = true;
        break;
      case k::allgather:
      case k::gather:
      case k::broadcast:
        if (op.phase == 0) {
          op.phase = 1;
        } else {
          finish_bytes_locked(op);
          op.done = true;
        }
        break;
      case k::isend:
      case k::recv:
      case k::barrier:
        op.done = true;
        break;
    }
  }

  void start_bytes_locked(mpi_op& op) {
    op.phase = 2;
    int rc = MPI_SUCCESS;
    if (op.what == mpi_op::kind::broadcast) {
      if (op.my_size > static_cast<std::uint64_t>(INT_MAX)) return too_big_locked(op, op.my_size);
      const int n = static_cast<int>(op.my_size);
      if (rank_ != op.peer) op.out->resize(op.my_size);
      rc = MPI_Ibcast(op.out->data(), n, MPI_BYTE, op.peer, phase2_, &op.req);
    } else {
      std::uint64_t total = 0;
      for (auto s : op.sizes) total += s;
      if (total > static_cast<std::uint64_t>(INT_MAX)) return too_big_locked(op, total);
      op.counts.resize(op.sizes.size());
      op.displs.resize(op.sizes.size());
      int at = 0;
      for (std::size_t q = 0; q < op.sizes.size(); ++q) {
        op.counts[q] = static_cast<int>(op.sizes[q]);
        op.displs[q] = at;
        at += op.counts[q];
      }
      const int mine = static_cast<int>(op.mine.size());
      if (op.what == mpi_op::kind::allgather) {
        op.owned.resize(static_cast<std::size_t>(at));
        rc = MPI_Iallgatherv(op.mine.data(), mine, MPI_BYTE, op.owned.data(), op.counts.data(),
                             op.displs.data(), MPI_BYTE, phase2_, &op.req);
      } else {
        if (rank_ == op.peer) op.owned.resize(static_cast<std::size_t>(at));
        rc = MPI_Igatherv(op.mine.data(), mine, MPI_BYTE, op.owned.data(), op.counts.data(),
                          op.displs.data(), MPI_BYTE, op.peer, phase2_, &op.req);
      }
    }
    if (rc != MPI_SUCCESS) fail_locked(op, rc);
  }
  // Every rank knows the sizes, so every rank skips the bytes alike.
  void too_big_locked(mpi_op& op, std::uint64_t bytes) {
    op.done = true;
    op.error = std::make_exception_ptr(
        config_error(std::string("comm::mpi::") + op.name + ": " + std::to_string(bytes) +
                     " bytes exceed MPI's int count limit " + std::to_string(INT_MAX)));
  }
  void finish_bytes_locked(mpi_op& op) {
    if (op.what == mpi_op::kind::broadcast) return;
    if (op.what == mpi_op::kind::gather && rank_ != op.peer) return;
    op.all->resize(op.sizes.size());
    for (std::size_t q = 0; q < op.sizes.size(); ++q) {
      (*op.all)[q].assign(std::span<const std::byte>(op.owned.data() + op.displs[q],
                                                     static_cast<std::size_t>(op.counts[q])));
    }
  }

  void progress_loop() {
    std::unique_lock lock(mutex_);
    while (!closed_) {
      if (ops_.empty()) {
        wake_.wait(lock, [&] { return closed_ || !ops_.empty(); });
        continue;
      }
      poll_locked();
      lock.unlock();
      std::this_thread::sleep_for(options_.progress_interval);
      lock.lock();
    }
  }

  const mpi_options options_;
  MPI_Comm comm_ = MPI_COMM_NULL;    // operations in the caller's order
  MPI_Comm phase2_ = MPI_COMM_NULL;  // second phases, in issue order
  int rank_ = 0, size_ = 1, tag_ub_ = 32767;
  mutable std::mutex mutex_;  // guards everything below and every test of queued requests
  std::condition_variable wake_;
  std::deque<std::shared_ptr<mpi_op>> ops_;
  std::vector<wire::buffer> spares_;            // recycled send copies
  std::vector<std::pair<int, int>> unmatched_;  // (source, tag) probed in vain this pass
  std::vector<MPI_Request> reqs_;
  std::vector<std::size_t> where_;
  std::vector<int> indices_;
  std::vector<MPI_Status> statuses_;
  bool closed_ = false;
  bool failed_ = false;
  int failed_peer_ = -1;
  std::string failed_why_;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace detail

class mpi {
 public:
  // The handle of a non-blocking operation. wait() tests pending operations
  // itself (no hand-off latency) and gives up after the communicator's timeout.
  class request {
   public:
    request() = default;  // an empty request is complete
    request(std::shared_ptr<detail::mpi_engine> engine, std::shared_ptr<detail::mpi_op> op)
        : engine_(std::move(engine)), op_(std::move(op)) {}

    // True once the operation finished; never blocks (tests pending operations once).
    bool test() { return !op_ || engine_->test(*op_); }
    // Blocks until done; loco::peer_lost after the timeout; rethrows the operation's error.
    void wait() {
      if (op_) engine_->wait(*op_);
    }
    // Waits at most `limit`; true when done (rethrowing its error). A false
    // return abandons nothing: the operation continues.
    bool wait_for(duration limit) { return !op_ || engine_->wait_for(*op_, limit); }
    // The sender of a completed receive; -1 otherwise.
    int source() const { return op_ ? engine_->source(*op_) : -1; }

   private:
    std::shared_ptr<detail::mpi_engine> engine_;
    std::shared_ptr<detail::mpi_op> op_;
  };

  // Duplicates `base` (MPI_Comm_dup is collective: every rank of base must
  // construct its comm::mpi together).
  explicit mpi(MPI_Comm base = MPI_COMM_WORLD, mpi_options opt = {})
      : engine_(std::make_shared<detail::mpi_engine>(base, opt)) {}
  explicit mpi(mpi_options opt) : mpi(MPI_COMM_WORLD, opt) {}
  mpi(const mpi&) = delete;
  mpi& operator=(const mpi&) = delete;
  mpi(mpi&&) noexcept = default;
  mpi& operator=(mpi&&) = delete;
  ~mpi() {
    if (engine_) engine_->close();
  }

  int rank() const noexcept { return engine_->rank(); }
  int size() const noexcept { return engine_->size(); }
  duration timeout() const noexcept { return engine_->options().timeout; }
  // The private duplicate loco communicates on (for MPI_Abort or tools).
  MPI_Comm native_handle() const noexcept { return engine_->comm(); }
  // Ends the whole job; the usual answer to loco::peer_lost on MPI.
  [[noreturn]] void abort(int code = 1) const {
    MPI_Abort(engine_->comm(), code);
    std::terminate();  // MPI_Abort does not return
  }

  // ------------------------------------------------------------ point to point
  // Copies the bytes and returns; the copy is sent in the background.
  void send(int dst, int tag, std::span<const std::byte> bytes) {
    check_peer(dst, "send");
    check_tag(tag, "send");
    (void)engine_->start_send(dst, tag, bytes, true);
  }
  // Receives the next message with this tag from src (or any rank); returns the sender.
  int recv(int src, int tag, wire::buffer& out) {
    auto r = irecv(src, tag, out);
    r.wait();
    return r.source();
  }
  // No copy: bytes must stay valid until the request completes.
  request isend(int dst, int tag, std::span<const std::byte> bytes) {
    check_peer(dst, "isend");
    check_tag(tag, "isend");
    return {engine_, engine_->start_send(dst, tag, bytes, false)};
  }
  request irecv(int src, int tag, wire::buffer& out) {
    if (src != any_source) check_peer(src, "irecv");
    check_tag(tag, "irecv");
    return {engine_, engine_->start_recv(src, tag, out)};
  }

  // ------------------------------------------------------------ collectives
  void barrier() { engine_->barrier_now(); }
  request ibarrier() { return {engine_, engine_->start_barrier()}; }

  template <class T>
  void allreduce(std::span<T> data, reduce_op op) {
    engine_->allreduce_now(data, op);
  }
  // data must stay valid and untouched until the request completes.
  template <class T>
  request iallreduce(std::span<T> data, reduce_op op) {
    return {engine_, engine_->start_allreduce(data, op)};
  }

  void allgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    iallgather(mine, all).wait();
  }
  request iallgather(std::span<const std::byte> mine, std::vector<wire::buffer>& all) {
    return {engine_, engine_->start_gather(mine, all, -1)};
  }

  // all is filled on root only.
  void gather(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root) {
    igather(mine, all, root).wait();
  }
  request igather(std::span<const std::byte> mine, std::vector<wire::buffer>& all, int root) {
    check_peer(root, "gather");
    return {engine_, engine_->start_gather(mine, all, root)};
  }

  // Receivers' buffers are replaced by root's bytes, whatever their size.
  void broadcast(wire::buffer& b, int root) { ibroadcast(b, root).wait(); }
  request ibroadcast(wire::buffer& b, int root) {
    check_peer(root, "broadcast");
    return {engine_, engine_->start_broadcast(b, root)};
  }

 private:
  void check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= size()) {
      throw config_error(std::string("comm::mpi::") + what + ": rank " + std::to_string(peer) +
                         " outside [0, " + std::to_string(size()) + ")");
    }
  }
  void check_tag(int tag, const char* what) const {
    if (tag < 0 || tag > engine_->tag_ub()) {
      throw config_error(std::string("comm::mpi::") + what + ": tag " + std::to_string(tag) +
                         " outside [0, MPI_TAG_UB = " + std::to_string(engine_->tag_ub()) + "]");
    }
  }

  std::shared_ptr<detail::mpi_engine> engine_;
};

}  // namespace loco::comm
