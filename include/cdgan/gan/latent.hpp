/// @file gan/latent.hpp
/// The latent code of CD-GAN: z ~ N(0, σ²I) in R^Z and a one-hot class factor c over C classes.
///
/// What this represents: `latent<Z, C>` names the generator's input `input<Z + C>` (z first, then the
/// one-hot c) and `latent_batch<Z, C, Device>` holds one sampled batch: `z` (B × Z), `zc` (B × (Z+C),
/// the generator input) and `c` (B class ids as reals). With `paired = true`, rows 2k and 2k+1 share
/// c (the positive pairs of the one-positive contrastive loss). All draws are Philox expressions, so
/// one seed gives the same batch on every device and thread count.
#pragma once
#include <cstddef>

#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../nn/reshape.hpp"

namespace cdgan {

template <std::size_t Z, std::size_t C>
struct latent {
  static_assert(Z > 0 && C > 1, "cdgan::latent<Z, C>: need Z > 0 content dimensions and C > 1 classes");
  static constexpr std::size_t z_dim = Z, c_dim = C;
  using input = nn::input<Z + C>;
  using shape_type = shape<Z + C>;
};

namespace detail {
struct class_of_row {
  philox_call draw;
  std::uint32_t classes;
  bool paired;
  CDGAN_HOST_DEVICE real operator()(std::size_t b) const {
    return expr_categorical{{}, draw, classes}[paired ? b / 2 : b];
  }
};
template <std::size_t Z, std::size_t C>
struct zc_element {
  const real* z;
  class_of_row cls;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const {
    const std::size_t b = k / (Z + C), j = k % (Z + C);
    if (j < Z) return z[b * Z + j];
    return static_cast<std::size_t>(cls(b)) == j - Z ? real(1) : real(0);
  }
};
/// One-hot rows for given class ids.
template <std::size_t Z, std::size_t C>
struct zc_from_labels {
  const real* z;
  const real* c;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const {
    const std::size_t b = k / (Z + C), j = k % (Z + C);
    if (j < Z) return z[b * Z + j];
    return static_cast<std::size_t>(c[b]) == j - Z ? real(1) : real(0);
  }
};
}  // namespace detail

template <std::size_t Z, std::size_t C, class Device>
struct latent_batch {
  tensor<shape<Z>, Device> z;
  tensor<shape<Z + C>, Device> zc;
  tensor<shape<1>, Device> c;

  /// Draws B codes: z ~ N(0, σ²), c uniform over C classes (in pairs when `paired`).
  void sample(std::size_t B, real sigma, rng& g, bool paired) {
    z.resize(B);
    zc.resize(B);
    c.resize(B);
    z = g.normal(0.f, sigma);
    const auto draw = g.categorical(static_cast<std::uint32_t>(C));
    const detail::class_of_row cls{draw.draw, static_cast<std::uint32_t>(C), paired};
    c = generate<Device>(cls);
    zc = generate<Device>(detail::zc_element<Z, C>{z.data(), cls});
  }
  /// Uses the given z (already in `z`) and class ids (already in `c`) to build `zc`.
  void assemble() {
    zc.resize(z.batch());
    zc = generate<Device>(detail::zc_from_labels<Z, C>{z.data(), c.data()});
  }
};

}  // namespace cdgan
