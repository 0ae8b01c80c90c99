/// @file benchmarks/flops.hpp
/// Multiply-accumulate counts of cdgan networks, from their layer shapes (for the FLOP/s counters of
/// the benchmarks).
///
/// What this represents: `macs_per_sample<L>()` walks a bound layer type L (a sequential, heads, or a
/// single layer) and adds, per sample, the multiply-accumulates of one forward pass of every
/// weight-bearing layer: dense In·Out, conv F·C·K·K·OH·OW (= out size × fan_in), conv_transpose
/// C·F·K·K·H·W (= in size × fan_in). Elementwise layers count 0. A backward pass that computes both
/// the input gradient and the weight gradient costs two forward passes; a second-order pass
/// (double_backward) two as well.
#pragma once
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace cdgan::bench {

template <class L>
double macs_per_sample();

namespace detail {
template <class Tuple, std::size_t... I>
double sum_macs(std::index_sequence<I...>) {
  return (0.0 + ... + macs_per_sample<std::tuple_element_t<I, Tuple>>());
}
inline bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
}  // namespace detail

template <class L>
double macs_per_sample() {
  if constexpr (requires { typename L::layers_tuple; }) {
    using T = typename L::layers_tuple;
    return detail::sum_macs<T>(std::make_index_sequence<std::tuple_size_v<T>>{});
  } else if constexpr (requires {
                         typename L::trunk_type;
                         typename L::heads_tuple;
                       }) {
    using T = typename L::heads_tuple;
    return macs_per_sample<typename L::trunk_type>() +
           detail::sum_macs<T>(std::make_index_sequence<std::tuple_size_v<T>>{});
  } else {
    const std::string n = L::name();
    if (detail::starts_with(n, "dense<")) return double(L::in_shape::size) * double(L::out_shape::size);
    if constexpr (requires { L::fan_in; }) {
      if (detail::starts_with(n, "conv<")) return double(L::out_shape::size) * double(L::fan_in);
      if (detail::starts_with(n, "conv_transpose<")) return double(L::in_shape::size) * double(L::fan_in);
    }
    return 0.0;
  }
}

/// FLOPs (2 per multiply-accumulate) of one CD-GAN step (model::step with the WGAN-GP objective and
/// the contrastive code loss, n_critic = 1), from the per-sample MACs of G, D and E:
/// - D step: G forward (Bd); D forward + full backward on 2·Bd; gradient penalty on Bd: D forward,
///   input-gradient backward, double backward (1 + 1 + 2);
/// - G step: G forward + full backward (Bg); D and E forward + input-gradient backward (Bg);
/// - E step: G forward (Be); E forward + full backward (Be).
inline double cdgan_step_flops(double g, double d, double e, double bd, double bg, double be) {
  const double d_step = g * bd + 3 * d * 2 * bd + 4 * d * bd;
  const double g_step = 3 * g * bg + 2 * d * bg + 2 * e * bg;
  const double e_step = g * be + 3 * e * be;
  return 2 * (d_step + g_step + e_step);
}

/// The FLOPs of one step of `Model` (a cdgan::model) with options `o`, from its networks' shapes.
template <class Model, class Options>
double model_step_flops(const Options& o) {
  return cdgan_step_flops(macs_per_sample<typename Model::generator_type>(), macs_per_sample<typename Model::critic_type>(),
                          macs_per_sample<typename Model::encoder_type>(), double(o.batch_d), double(o.batch_g),
                          double(o.batch_e));
}

/// Google Benchmark counters of a step benchmark (the CPU and the GPU one): steps per second as
/// items, FLOP/s as a rate and GFLOP/step. `State` is benchmark::State (a template parameter so that
/// this header does not need Google Benchmark).
template <class Model, class State, class Options>
void set_step_counters(State& state, const Options& o) {
  const double flops = model_step_flops<Model>(o);
  state.SetItemsProcessed(state.iterations());
  using counter = std::remove_cvref_t<decltype(state.counters["FLOP/s"])>;
  state.counters["FLOP/s"] = counter(flops * double(state.iterations()), counter::kIsRate);
  state.counters["GFLOP/step"] = flops / 1e9;
}

/// One GEMM, row-major C[M×N] = op(A)[M×K]·op(B)[K×N], named by layer and pass.
struct gemm_shape {
  const char* name;
  bool ta, tb;
  std::size_t m, n, k;
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
};

/// The GEMMs the MNIST networks (presets::mnist_nets<30, 10, 40>) issue, at batch 64 and at the E
/// step's batch 512. Convolutions use the batch-wide column matrix: N or K = batch·OH·OW.
inline const std::vector<gemm_shape>& mnist_gemm_shapes() {
  static const std::vector<gemm_shape> s = {
      {"conv64_fwd_b64", false, false, 64, 64 * 196, 16},  // D/E conv<64> on 1×28×28
      {"conv64_dW_b64", false, true, 64, 16, 64 * 196},
      {"conv128_fwd_b64", false, false, 128, 64 * 49, 1024},  // D/E conv<128> on 64×14×14
      {"conv128_dcol_b64", true, false, 1024, 64 * 49, 128},
      {"conv128_dW_b64", false, true, 128, 1024, 64 * 49},
      {"conv128_fwd_b512", false, false, 128, 512 * 49, 1024},  // the E step's batch
      {"conv128_dcol_b512", true, false, 1024, 512 * 49, 128},
      {"conv128_dW_b512", false, true, 128, 1024, 512 * 49},
      {"conv256_fwd_b512", false, false, 256, 512 * 9, 2048},  // E conv<256> on 128×7×7
      {"conv256_dcol_b512", true, false, 2048, 512 * 9, 256},
      {"conv256_dW_b512", false, true, 256, 2048, 512 * 9},
      {"convT64_fwd_b64", true, false, 1024, 64 * 49, 128},  // G conv_transpose<64> on 128×7×7
      {"convT64_dx_b64", false, false, 128, 64 * 49, 1024},
      {"convT64_dW_b64", false, true, 128, 1024, 64 * 49},
      {"dense6272to1024_fwd_b64", false, true, 64, 1024, 6272},  // D dense<1024> on 6272
      {"dense6272to1024_dx_b64", false, false, 64, 6272, 1024},
      {"dense6272to1024_dW_b64", true, false, 1024, 6272, 64},
      {"dense1024to6272_fwd_b64", false, true, 64, 6272, 1024},    // G dense<6272> on 1024
      {"dense2304to1024_fwd_b512", false, true, 512, 1024, 2304},  // E dense<1024> on 256×3×3
      // what the convolutions issue: column matrices in chunks of at most 2^20 elements
      // (nn/conv.hpp, conv_chunk), so N (or K for dW) is a chunk of 16 to 52 images
      {"conv128_fwd_chunk20", false, false, 128, 20 * 49, 1024},  // E step, batch 512 in 26 chunks
      {"conv128_dcol_chunk20", true, false, 1024, 20 * 49, 128},
      {"conv128_dW_chunk20", false, true, 128, 1024, 20 * 49},
      {"conv128_fwd_chunk16", false, false, 128, 16 * 49, 1024},  // batch 64 in 4 chunks
      {"conv256_fwd_chunk52", false, false, 256, 52 * 9, 2048},   // E step, batch 512 in 10 chunks
      {"conv256_dcol_chunk52", true, false, 2048, 52 * 9, 256},
      {"conv256_dW_chunk52", false, true, 256, 2048, 52 * 9},
      {"conv256_fwd_chunk32", false, false, 256, 32 * 9, 2048},   // batch 64 in 2 chunks
  };
  return s;
}

}  // namespace cdgan::bench
