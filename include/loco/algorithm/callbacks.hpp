#pragma once
// Callbacks in the ensmallen manner: a driver takes any number of callback
// objects; each hook is optional and detected at compile time; a hook that
// returns true asks the run to stop (the driver agrees on it across ranks).
//
//   bool on_round_end(const round_info&)    after every merge; true stops
//   void on_round_end(const round_info&)    after every merge; observes only
//   void on_run_end(const round_info&)      once, after the last round
//
// Agreeing on a stop is a small collective every round; the synchronous
// drivers make it only when some hook returns bool, so observers cost no
// messages (and no virtual time on comm::simulated).
#include <concepts>
#include <type_traits>
#include <utility>

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
