#pragma once
// sim::request: the handle of a non-blocking operation of comm::simulated.
// Everything is in virtual time: test() is true once the rank's clock has
// reached the operation's completion (an unfinished test() charges a small
// polling time, see sim::options::poll_interval), wait() moves the clock to
// the completion, and wait_for(timeout) waits at most `timeout` of VIRTUAL
// time. A request belongs to the rank that made it; dropping an unfinished
// receive withdraws it.
#include <loco/comm/types.hpp>
#include <loco/sim/detail/world.hpp>
#include <memory>
#include <utility>

namespace loco::sim {

class request {
 public:
  request() = default;  // an empty request is complete
  request(std::shared_ptr<detail::world> w, std::shared_ptr<detail::operation> op)
      : world_(std::move(w)), op_(std::move(op)) {}

  bool test() { return !op_ || world_->test(*op_); }
  void wait() {
    if (op_) world_->wait(*op_, detail::never);
  }
  bool wait_for(comm::duration timeout) {
    if (!op_) return true;
    return world_->wait(*op_, world_->deadline_after(op_->rank, timeout));
  }
  // The sender of a completed receive; -1 otherwise.
  int source() const { return op_ ? op_->source : -1; }

 private:
  std::shared_ptr<detail::world> world_;
  std::shared_ptr<detail::operation> op_;
};

}  // namespace loco::sim
