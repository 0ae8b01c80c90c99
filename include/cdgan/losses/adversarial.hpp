/// @file losses/adversarial.hpp
/// GAN objectives on critic outputs (one logit per sample): Wasserstein, hinge, non-saturating.
///
/// What this represents: each policy has
///   real d_loss(cview real_out, cview fake_out, view d_real, view d_fake)  // critic loss + its gradients
///   real g_loss(cview fake_out, view d_fake)                               // generator loss + gradient
/// and the same two with a last argument `real* value` (a device real that receives the loss; they
/// return nothing and wait for nothing, see losses/loss.hpp).
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

namespace detail {
/// value = Σa/na + sign·Σb/nb (the two sums in this order), on the device.
template <class Device, class A, class B>
void mean_of_two(real* value, const A& a, std::size_t na, const B& b, std::size_t nb, int sign) {
  real* t = scratch<Device>().data();
  sum_into<Device>(value, a, na);
  sum_into<Device>(t, b, nb);
  const auto v = device_scalar<Device>(value), w = device_scalar<Device>(t);
  if (sign < 0)
    v = v / static_cast<real>(na) - w / static_cast<real>(nb);
  else
    v = v / static_cast<real>(na) + w / static_cast<real>(nb);
}
/// value = −Σa/n, on the device.
template <class Device, class A>
void negated_mean(real* value, const A& a, std::size_t n) {
  sum_into<Device>(value, a, n);
  const auto v = device_scalar<Device>(value);
  v = -v / static_cast<real>(n);
}

/// The host-value forms of a policy's d_loss and g_loss (see losses/loss.hpp), from its device-value
/// forms; a policy derives from host_forms<itself> and names both overload sets.
template <class Policy>
struct host_forms {
  template <class Device>
  real d_loss(logits<Device> r, logits<Device> f, logit_grads<Device> dr, logit_grads<Device> df) {
    return host_value<Device>([&](real* v) { static_cast<Policy&>(*this).d_loss(r, f, dr, df, v); });
  }
  template <class Device>
  real g_loss(logits<Device> f, logit_grads<Device> df) {
    return host_value<Device>([&](real* v) { static_cast<Policy&>(*this).g_loss(f, df, v); });
  }
};
}  // namespace detail

/// L_D = E[D(fake)] − E[D(real)], L_G = −E[D(fake)].
struct wasserstein : detail::host_forms<wasserstein> {
  static constexpr const char* name = "wasserstein";
  using host_forms::d_loss;
  using host_forms::g_loss;
  template <class Device>
  void d_loss(logits<Device> r, logits<Device> f, logit_grads<Device> dr, logit_grads<Device> df, real* value) {
    dr = expr_scalar{{}, -1.f / static_cast<real>(r.batch)};
    df = expr_scalar{{}, 1.f / static_cast<real>(f.batch)};
    detail::mean_of_two<Device>(value, f.as_expr(), f.batch, r.as_expr(), r.batch, -1);
  }
  template <class Device>
  void g_loss(logits<Device> f, logit_grads<Device> df, real* value) {
    df = expr_scalar{{}, -1.f / static_cast<real>(f.batch)};
    detail::negated_mean<Device>(value, f.as_expr(), f.batch);
  }
};

/// L_D = E[relu(1 − D(real))] + E[relu(1 + D(fake))], L_G = −E[D(fake)].
struct hinge : detail::host_forms<hinge> {
  static constexpr const char* name = "hinge";
  using host_forms::d_loss;
  using host_forms::g_loss;
  template <class Device>
  void d_loss(logits<Device> r, logits<Device> f, logit_grads<Device> dr, logit_grads<Device> df, real* value) {
    dr = where(r < 1.f, -1.f / static_cast<real>(r.batch), 0.f);
    df = where(f > -1.f, 1.f / static_cast<real>(f.batch), 0.f);
    detail::mean_of_two<Device>(value, relu(1.f - r), r.batch, relu(1.f + f), f.batch, 1);
  }
  template <class Device>
  void g_loss(logits<Device> f, logit_grads<Device> df, real* value) {
    df = expr_scalar{{}, -1.f / static_cast<real>(f.batch)};
    detail::negated_mean<Device>(value, f.as_expr(), f.batch);
  }
};

/// The original GAN loss on logits: L_D = E[softplus(−D(real))] + E[softplus(D(fake))],
/// L_G = E[softplus(−D(fake))] (non-saturating).
struct non_saturating : detail::host_forms<non_saturating> {
  static constexpr const char* name = "non_saturating";
  using host_forms::d_loss;
  using host_forms::g_loss;
  template <class Device>
  void d_loss(logits<Device> r, logits<Device> f, logit_grads<Device> dr, logit_grads<Device> df, real* value) {
    dr = -sigmoid(-r) / static_cast<real>(r.batch);
    df = sigmoid(f) / static_cast<real>(f.batch);
    detail::mean_of_two<Device>(value, softplus(-r), r.batch, softplus(f), f.batch, 1);
  }
  template <class Device>
  void g_loss(logits<Device> f, logit_grads<Device> df, real* value) {
    df = -sigmoid(-f) / static_cast<real>(f.batch);
    sum_into<Device>(value, softplus(-f), f.batch);
    device_scalar<Device>(value) = device_scalar<Device>(value) / static_cast<real>(f.batch);
  }
};

}  // namespace cdgan::losses
