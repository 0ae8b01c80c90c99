/// @file losses/adversarial.hpp
/// GAN objectives on critic outputs (one logit per sample): Wasserstein, hinge, non-saturating.
///
/// What this represents: each policy has
///   real d_loss(cview real_out, cview fake_out, view d_real, view d_fake)  // critic loss + its gradients
///   real g_loss(cview fake_out, view d_fake)                               // generator loss + gradient
/// Means are over the batch. The exact gradient penalty of WGAN-GP is separate
/// (losses/gradient_penalty.hpp) because it needs the critic itself.
///
/// @code
/// @inproceedings{gulrajani2017improved, title={Improved training of Wasserstein GANs},
///   author={Gulrajani, Ishaan and others}, booktitle={NeurIPS}, year={2017}}
/// @inproceedings{miyato2018spectral, title={Spectral normalization for generative adversarial networks},
///   author={Miyato, Takeru and others}, booktitle={ICLR}, year={2018}}
/// @endcode
#pragma once
#include "loss.hpp"

namespace cdgan::losses {

template <class Device>
using logits = cview<shape<1>, Device>;
template <class Device>
using logit_grads = view<shape<1>, Device>;

/// L_D = E[D(fake)] − E[D(real)], L_G = −E[D(fake)].
struct wasserstein {
  static constexpr const char* name = "wasserstein";
  template <class Device>
  real d_loss(logits<Device> r, logits<Device> f, logit_grads<Device> dr, logit_grads<Device> df) {
    dr = expr_scalar{{}, -1.f / static_cast<real>(r.batch)};
    df = expr_scalar{{}, 1.f / static_cast<real>(f.batch)};
    return sum(f.as_expr(), f.batch, scratch<Device>()) / f.batch - sum(r.as_expr(), r.batch, scratch<Device>()) / r.batch;
  }
  template <class Device>
  real g_loss(logits<Device> f, logit_grads<Device> df) {
    df = expr_scalar{{}, -1.f / static_cast<real>(f.batch)};
    return -sum(f.as_expr(), f.batch, scratch<Device>()) / f.batch;
  }
};

/// L_D = E[relu(1 − D(real))] + E[relu(1 + D(fake))], L_G = −E[D(fake)].
struct hinge {
  static constexpr const char* name = "hinge";
  template <class Device>
  real d_loss(logits<Device> r, logits<Device> f, logit_grads<Device> dr, logit_grads<Device> df) {
    dr = where(r < 1.f, -1.f / static_cast<real>(r.batch), 0.f);
    df = where(f > -1.f, 1.f / static_cast<real>(f.batch), 0.f);
    return sum(relu(1.f - r), r.batch, scratch<Device>()) / r.batch + sum(relu(1.f + f), f.batch, scratch<Device>()) / f.batch;
  }
  template <class Device>
  real g_loss(logits<Device> f, logit_grads<Device> df) {
    df = expr_scalar{{}, -1.f / static_cast<real>(f.batch)};
    return -sum(f.as_expr(), f.batch, scratch<Device>()) / f.batch;
  }
};

/// The original GAN loss on logits: L_D = E[softplus(−D(real))] + E[softplus(D(fake))],
/// L_G = E[softplus(−D(fake))] (non-saturating).
struct non_saturating {
  static constexpr const char* name = "non_saturating";
  template <class Device>
  real d_loss(logits<Device> r, logits<Device> f, logit_grads<Device> dr, logit_grads<Device> df) {
    dr = -sigmoid(-r) / static_cast<real>(r.batch);
    df = sigmoid(f) / static_cast<real>(f.batch);
    return sum(softplus(-r), r.batch, scratch<Device>()) / r.batch + sum(softplus(f), f.batch, scratch<Device>()) / f.batch;
  }
  template <class Device>
  real g_loss(logits<Device> f, logit_grads<Device> df) {
    df = -sigmoid(-f) / static_cast<real>(f.batch);
    return sum(softplus(-f), f.batch, scratch<Device>()) / f.batch;
  }
};

}  // namespace cdgan::losses
