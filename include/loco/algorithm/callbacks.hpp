#pragma once
// Callbacks in the ensmallen manner: a driver takes any number of callback
// objects; each hook is optional and detected at compile time; a hook that
// returns true asks the run to stop (the driver agrees on it across ranks).
//
//   bool on_round_end(const Info&)    after every round (local_sgd), applied
//                                     update (async_sgd, on the server) or
//                                     iteration (compressed_amsgrad); true stops
//   void on_round_end(const Info&)    the same; observes only
//   void on_run_end(const Info&)      once, after the last round
//
// Agreeing on a stop is a small collective every round; the synchronous
// drivers make it only when some hook returns bool, so observers cost no
// messages (and no virtual time on comm::simulated).
//
// Every driver's Info derives from progress_info<T>, so one callback written
// against its fields works with all drivers (loco/observe/ has several).
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <loco/observe/ledger.hpp>
#include <span>
#include <type_traits>
#include <utility>

namespace loco::algorithm {

template <class T>
struct progress_info {
  // Rounds completed, from 1: communication rounds (local_sgd), applied
  // updates (async_sgd), iterations (compressed_amsgrad).
  std::uint64_t round = 0;
  std::uint64_t round_count = 0;  // planned
  int rank = 0;
  int size = 1;
  std::span<const T> model;  // this rank's model (the server's for async_sgd)
  // This rank's mean mini-batch loss this round; NaN where the rank computed
  // no gradient (the async_sgd server).
  double loss = std::numeric_limits<double>::quiet_NaN();
  double time = 0.0;  // seconds since the run started, on the communicator's clock
  // This rank's ledger; last_round() is the round that just ended. Evaluators
  // record results on it (record_evaluation), which later callbacks read.
  observe::ledger* ledger = nullptr;
  // The average of all workers' models. In local_sgd a collective: call it
  // on every rank in the same round or on none. Elsewhere local and free.
  std::function<std::span<const T>()> average_model;
};

}  // namespace loco::algorithm

namespace loco::algorithm::detail {

template <class Callback, class Info>
bool call_round_end(Callback& cb, const Info& info) {
  if constexpr (requires {
                  { cb.on_round_end(info) } -> std::convertible_to<bool>;
                }) {
    return static_cast<bool>(cb.on_round_end(info));
  } else if constexpr (requires { cb.on_round_end(info); }) {
    cb.on_round_end(info);
    return false;
  } else {
    return false;
  }
}

template <class Callback, class Info>
void call_run_end(Callback& cb, const Info& info) {
  if constexpr (requires { cb.on_run_end(info); }) cb.on_run_end(info);
}

template <class Callback, class Info>
concept has_round_end_hook = requires(Callback& cb, const Info& info) {
  cb.on_round_end(info);
};

template <class Info, class... Callbacks>
constexpr bool any_round_end_hook() {
  return (has_round_end_hook<std::remove_cvref_t<Callbacks>, Info> || ...);
}

// A round-end hook that can ask to stop (returns something convertible to bool).
template <class Callback, class Info>
concept has_stopping_round_end_hook = requires(Callback& cb, const Info& info) {
  { cb.on_round_end(info) } -> std::convertible_to<bool>;
};

template <class Info, class... Callbacks>
constexpr bool any_stopping_round_end_hook() {
  return (has_stopping_round_end_hook<std::remove_cvref_t<Callbacks>, Info> || ...);
}

}  // namespace loco::algorithm::detail
