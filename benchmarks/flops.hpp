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
#include <utility>

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

}  // namespace cdgan::bench
