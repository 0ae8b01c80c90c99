/// @file core/random.hpp
/// Counter-based random numbers (Philox 4x32-10, Salmon et al., SC'11).
///
/// What this represents: `rng` holds a 64-bit seed (the Philox key) and a count of draws made. Each
/// draw (`normal`, `uniform`, `categorical`) is an elementwise *expression*: element i of draw d is a
/// pure function of (seed, d, i). So one seed gives the same numbers on the CPU and the GPU, whatever
/// the number of threads, and a draw costs no memory of its own: `z = rng.normal(0.f, sigma);`.
///
/// @code
/// @inproceedings{salmon2011parallel, title={Parallel random numbers: as easy as 1, 2, 3},
///   author={Salmon, John K and Moraes, Mark A and Dror, Ron O and Shaw, David E}, booktitle={SC'11}, year={2011}}
/// @endcode
#pragma once
#include <cstdint>

#include "../config.hpp"
#include "expr.hpp"

namespace cdgan {

/// Four 32-bit words: Philox's counter and output.
struct u32x4 {
  std::uint32_t v[4];
};

/// Philox 4x32 with 10 rounds.
CDGAN_HOST_DEVICE u32x4 philox4x32_10(u32x4 ctr, std::uint32_t k0, std::uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * ctr.v[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * ctr.v[2];
    const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    ctr = u32x4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return ctr;
}

/// Uniform in (0, 1] from 24 random bits (never 0, so log() is safe).
CDGAN_HOST_DEVICE real bits_to_unit(std::uint32_t x) { return (static_cast<real>(x >> 8) + real(1)) * real(5.9604644775390625e-8); }

/// Element i of draw `call` under key `seed`.
CDGAN_HOST_DEVICE u32x4 philox_at(std::uint64_t seed, std::uint64_t call, std::uint64_t i) {
  return philox4x32_10(u32x4{{static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i >> 32),
                              static_cast<std::uint32_t>(call), static_cast<std::uint32_t>(call >> 32)}},
                       static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

/// Which draw an expression evaluates: draw `offset` of key `seed`, or, when `base` is set, draw
/// `*base + offset`, with *base read from device memory when the kernel runs. The second form is
/// what lets a recorded CUDA graph make new numbers at every replay: its kernels keep their
/// arguments, and the model writes the counter of the replayed step into *base first
/// (rng::bind_counter, gan/model.hpp). Either form gives the same numbers for the same draw.
struct philox_call {
  std::uint64_t seed, offset;
  const std::uint64_t* base;
  CDGAN_HOST_DEVICE std::uint64_t call() const { return base ? *base + offset : offset; }
  CDGAN_HOST_DEVICE u32x4 at(std::uint64_t i) const { return philox_at(seed, call(), i); }
};

/// N(mean, std²) draws (Box–Muller on the first two words).
struct expr_normal : expr_base {
  using device = void;
  philox_call draw;
  real mean, std;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const {
    const u32x4 r = draw.at(i);
    const real u1 = bits_to_unit(r.v[0]), u2 = bits_to_unit(r.v[1]);
    return mean + std * ::sqrtf(real(-2) * ::logf(u1)) * ::cosf(real(6.283185307179586) * u2);
  }
  bool fits(std::size_t) const { return true; }
};
/// U(lo, hi) draws.
struct expr_uniform : expr_base {
  using device = void;
  philox_call draw;
  real lo, hi;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const {
    return lo + (hi - lo) * (bits_to_unit(draw.at(i).v[0]) - real(5.9604644775390625e-8));
  }
  bool fits(std::size_t) const { return true; }
};
/// Uniform integers in [0, k), as reals.
struct expr_categorical : expr_base {
  using device = void;
  philox_call draw;
  std::uint32_t k;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const {
    const std::uint64_t x = draw.at(i).v[0];
    return static_cast<real>((x * k) >> 32);  // Lemire's multiply-shift: unbiased enough for k << 2^32
  }
  bool fits(std::size_t) const { return true; }
};

/// A seeded stream of draws. Copyable; `state()`/`set_state()` for checkpoints.
class rng {
 public:
  explicit rng(std::uint64_t seed = 0) : seed_(seed) {}
  expr_normal normal(real mean = 0, real std = 1) { return {{}, next_draw(), mean, std}; }
  expr_uniform uniform(real lo = 0, real hi = 1) { return {{}, next_draw(), lo, hi}; }
  expr_categorical categorical(std::uint32_t k) { return {{}, next_draw(), k}; }
  /// A host-side integer in [0, n), for data shuffling.
  std::uint64_t next_index(std::uint64_t n) {
    const u32x4 r = philox_at(seed_, calls_++, 0);
    const std::uint64_t x = (static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1];
    return n ? x % n : 0;
  }
  /// An independent stream derived from this one (for per-layer initialisation, data order, ...).
  rng split() {
    const u32x4 r = philox_at(seed_, calls_++, 0);
    return rng((static_cast<std::uint64_t>(r.v[0]) << 32) | r.v[1]);
  }
  std::uint64_t seed() const { return seed_; }
  std::uint64_t calls() const { return calls_; }
  void set_state(std::uint64_t seed, std::uint64_t calls) {
    seed_ = seed;
    calls_ = calls;
  }

  /// From now on the expressions of draws (normal, uniform, categorical) read their counter as
  /// `*base + (calls() − calls() now)`: the caller keeps *base (device memory, read when the kernels
  /// run) equal to calls() as of this call, and they give the numbers they would give unbound.
  /// Host draws (next_index, split) are not affected. See philox_call.
  void bind_counter(const std::uint64_t* base) {
    base_ = base;
    bound_at_ = calls_;
  }
  void unbind_counter() { base_ = nullptr; }
  /// Counts n draws as made without making them (a replayed CUDA graph made them).
  void skip(std::uint64_t n) { calls_ += n; }

 private:
  philox_call next_draw() {
    const std::uint64_t c = calls_++;
    return base_ ? philox_call{seed_, c - bound_at_, base_} : philox_call{seed_, c, nullptr};
  }
  std::uint64_t seed_, calls_ = 0, bound_at_ = 0;
  const std::uint64_t* base_ = nullptr;
};

}  // namespace cdgan
