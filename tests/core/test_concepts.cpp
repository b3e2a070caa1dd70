// Positive checks: a minimal model of each concept passes its check_*(),
// and a type missing one member is rejected by the concept.
#include <catch2/catch.hpp>

#include <cstring>
#include <loco/concepts.hpp>
#include <loco/merge/average.hpp>
#include <loco/merge/delay_corrected.hpp>
#include <loco/stepsize/constant.hpp>
#include <loco/stepsize/polynomial.hpp>
#include <loco/stepsize/warmup.hpp>

namespace {

// The smallest possible compressor: sends the vector as raw floats.
struct raw {
  static constexpr bool unbiased = true;
  static constexpr bool contractive = true;
  template <class T>
  struct state {
    state(const raw&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T> v, state<T>&, loco::wire::buffer& out) const {
    for (T x : v) out.put(x);
  }
  template <class T>
  void decode(loco::wire::view in, state<T>&, std::span<T> out) const {
    for (auto& x : out) x = in.get<T>("value");
  }
  std::size_t wire_bytes(std::size_t d) const { return 4 * d; }
};
struct raw_without_flags {
  template <class T>
  struct state {
    state(const raw_without_flags&, std::size_t, std::uint64_t) {}
  };
  template <class T>
  void encode(std::span<const T>, state<T>&, loco::wire::buffer&) const {}
  template <class T>
  void decode(loco::wire::view, state<T>&, std::span<T>) const {}
  std::size_t wire_bytes(std::size_t) const { return 0; }
};

struct done_request {
  void wait() {}
  bool test() { return true; }
  bool wait_for(loco::comm::duration) { return true; }
  int source() const { return 0; }
};
// A world of one rank.
struct solo {
  int rank() const { return 0; }
  int size() const { return 1; }
  void send(int, int, std::span<const std::byte>) {}
  int recv(int, int, loco::wire::buffer&) { return 0; }
  void barrier() {}
  template <class T>
  void allreduce(std::span<T>, loco::comm::reduce_op) {}
  void allgather(std::span<const std::byte> mine, std::vector<loco::wire::buffer>& all) {
    all.resize(1);
    all[0].assign(mine);
  }
  void broadcast(loco::wire::buffer&, int) {}
  void gather(std::span<const std::byte> mine, std::vector<loco::wire::buffer>& all, int) {
    allgather(mine, all);
  }
  done_request isend(int, int, std::span<const std::byte>) { return {}; }
  done_request irecv(int, int, loco::wire::buffer&) { return {}; }
  done_request iallgather(std::span<const std::byte>, std::vector<loco::wire::buffer>&) {
    return {};
  }
  template <class T>
  done_request iallreduce(std::span<T>, loco::comm::reduce_op) {
    return {};
  }
};
// Reduces float only: every driver also reduces double (the model-size check).
struct solo_float_only : solo {
  void allreduce(std::span<float>, loco::comm::reduce_op) {}
};
struct solo_without_barrier {
  int rank() const { return 0; }
  int size() const { return 1; }
};

struct half_norm {
  using value_type = double;
  std::size_t dimension() const { return 3; }
  double loss(std::span<const double> x) const {
    double s = 0;
    for (double v : x) s += v * v;
    return 0.5 * s;
  }
  double gradient(std::span<const double> x, std::span<double> g, loco::random::stream&) {
    std::memcpy(g.data(), x.data(), x.size_bytes());
    return loss(x);
  }
};
struct no_value_type {
  std::size_t dimension() const { return 3; }
};

}  // namespace

static_assert(loco::check_compressor<raw>());
static_assert(loco::check_compressor<raw, double>());
static_assert(loco::Compressor<raw>);
static_assert(!loco::Compressor<raw_without_flags>);
static_assert(!loco::compress::traits<raw>::shared_support);
static_assert(loco::compress::traits<raw>::name == "compressor");

static_assert(loco::check_communicator<solo>());
static_assert(loco::Communicator<solo>);
static_assert(!loco::Communicator<solo_without_barrier>);
static_assert(!loco::Communicator<solo_float_only>);

static_assert(loco::check_merge_rule<loco::merge::average>());
static_assert(loco::check_merge_rule<loco::merge::overwrite, double>());
static_assert(loco::check_merge_rule<loco::merge::delay_corrected>());
static_assert(!loco::MergeRule<int>);

static_assert(loco::check_stepsize<loco::stepsize::constant>());
static_assert(loco::check_stepsize<loco::stepsize::polynomial>());
static_assert(loco::check_stepsize<loco::stepsize::warmup<loco::stepsize::constant>>());
static_assert(!loco::Stepsize<int>);

static_assert(loco::check_objective<half_norm>());
static_assert(!loco::Objective<no_value_type>);

TEST_CASE("concept models work through the concept's interface", "[concepts]") {
  raw c;
  raw::state<float> s(c, 3, 0);
  loco::wire::buffer b;
  const float v[3] = {1, 2, 3};
  c.encode(std::span<const float>(v), s, b);
  CHECK(b.size() == c.wire_bytes(3));
  float out[3] = {};
  c.decode(loco::wire::view(b), s, std::span<float>(out));
  CHECK(out[2] == 3.0f);

  solo comm;
  std::vector<loco::wire::buffer> all;
  comm.allgather(b.bytes(), all);
  CHECK(all.at(0) == b);
}

// The umbrella header compiles on its own and the aliases name real drivers.
#include <loco/loco.hpp>
static_assert(std::is_class_v<loco::loscar_sgd<loco::comm::in_process>>);
static_assert(std::is_class_v<loco::rescaled_asgd<loco::comm::simulated>>);
static_assert(std::is_class_v<loco::cd_adam<loco::comm::in_process>>);
static_assert(std::is_class_v<loco::minibatch_sgd<loco::comm::simulated>>);
