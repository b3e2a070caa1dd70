// The decorators whose decode differs from their inner compressor's:
// ef21<C> (a receiver accumulates each sender's estimate h += decode(m)) and
// warmup<C> (a dense identity message or C's, told apart by the kind byte).
// error_feedback<C> and size_threshold<C> decode exactly as C or identity
// do, which fuzz_compress covers. Input: u8 decorator (even: ef21, odd:
// warmup), the codec prefix of fuzz/codecs.hpp, then several messages in a
// row, decoded into one receiver state as a stream from one peer would be.
// Invariants: only protocol_error is thrown; after an accepted message the
// ef21 output equals the previous estimate plus the inner decode of the
// same bytes and is finite; a rejected message leaves the estimate as it
// was; warmup decodes exactly as identity or C decode the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <loco/compress.hpp>
#include <loco/error.hpp>
#include <loco/tensor/finite.hpp>
#include <loco/wire/view.hpp>
#include <span>
#include <vector>

#include "codecs.hpp"
#include "common.hpp"

namespace {

namespace lc = loco::compress;
namespace wire = loco::wire;

constexpr int max_messages = 8;

template <class T, class C>
void fuzz_ef21(const C& inner, std::size_t d, std::span<const std::byte> stream) {
  const lc::ef21<C> c(inner);
  lc::state_t<lc::ef21<C>, T> receiver(c, d, 1);
  lc::state_t<C, T> reference(inner, d, 1);
  std::vector<T> out(d), plain(d), before(d);
  wire::view in(stream, "fuzz");
  for (int m = 0; m < max_messages && in.remaining() > 0; ++m) {
    const auto est = receiver.estimate();
    std::copy(est.begin(), est.end(), before.begin());
    wire::view probe = in;
    bool plain_ok = true;
    try {
      inner.decode(probe, reference, std::span<T>(plain));
    } catch (const loco::protocol_error&) {
      plain_ok = false;
    }
    try {
      c.decode(in, receiver, std::span<T>(out));
    } catch (const loco::protocol_error&) {
      // Rejected: the sender's estimate is untouched.
      LOCO_FUZZ_CHECK(std::equal(est.begin(), est.end(), before.begin()));
      return;
    }
    LOCO_FUZZ_CHECK(plain_ok);
    LOCO_FUZZ_CHECK(in.position() == probe.position());
    for (std::size_t i = 0; i < d; ++i) {
      LOCO_FUZZ_CHECK(out[i] == before[i] + plain[i]);
      LOCO_FUZZ_CHECK(loco::tensor::is_finite(out[i]));
      LOCO_FUZZ_CHECK(est[i] == out[i]);
    }
  }
}

template <class T, class C>
void fuzz_warmup(const C& inner, std::size_t d, std::span<const std::byte> stream) {
  const lc::warmup<C> c(inner, 2);
  lc::state_t<lc::warmup<C>, T> receiver(c, d, 1);
  lc::state_t<C, T> reference(inner, d, 1);
  lc::identity::state<T> dense(lc::identity{}, d, 1);
  std::vector<T> out(d), plain(d);
  wire::view in(stream, "fuzz");
  for (int m = 0; m < max_messages && in.remaining() > 0; ++m) {
    wire::view probe = in;
    bool plain_ok = true;
    try {
      if (static_cast<std::uint8_t>(probe.rest()[0]) ==
          static_cast<std::uint8_t>(wire::payload_kind::identity)) {
        lc::identity{}.decode(probe, dense, std::span<T>(plain));
      } else {
        inner.decode(probe, reference, std::span<T>(plain));
      }
    } catch (const loco::protocol_error&) {
      plain_ok = false;
    }
    try {
      c.decode(in, receiver, std::span<T>(out));
    } catch (const loco::protocol_error&) {
      LOCO_FUZZ_CHECK(!plain_ok);
      return;
    }
    LOCO_FUZZ_CHECK(plain_ok);
    LOCO_FUZZ_CHECK(in.position() == probe.position());
    LOCO_FUZZ_CHECK(out == plain);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  loco_fuzz::prefix_reader in(loco_fuzz::as_bytes(data, size));
  const bool ef21 = in.u8() % 2 == 0;
  const auto cfg = loco_fuzz::read_codec_config(in);
  const auto stream = in.rest();
  loco_fuzz::with_codec(cfg, [&]<class T>(const auto& c) {
    if (ef21) {
      fuzz_ef21<T>(c, cfg.d, stream);
    } else {
      fuzz_warmup<T>(c, cfg.d, stream);
    }
  });
  return 0;
}
