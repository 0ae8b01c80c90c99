/// @file losses/content.hpp
/// The content loss L_z = mean over the batch of ‖z − e‖², e = E_e(G(z, c)) (Eq. 5), and the
/// categorical cross-entropy used by the ClusterGAN and InfoGAN baselines.
#pragma once
#include "loss.hpp"

namespace cdgan::losses {

/// L_z = (1/B) Σ_b ‖z_b − e_b‖² into the device real `value`. Writes dL/de = 2(e − z)/B.
template <shape_type S, class Device>
void content(cview<S, Device> e, cview<S, Device> z, view<S, Device> de, real* value) {
  require_same_batch("content (e vs z)", e.batch, z.batch);
  require_same_batch("content (e vs gradient)", e.batch, de.batch);
  const real inv_b = real(1) / static_cast<real>(e.batch);
  de = (e - z) * (2 * inv_b);
  sum_into<Device>(value, square(e - z), e.size());
  device_scalar<Device>(value) = device_scalar<Device>(value) * inv_b;
}
/// The same, returning L_z on the host.
template <shape_type S, class Device>
real content(cview<S, Device> e, cview<S, Device> z, view<S, Device> de) {
  return host_value<Device>([&](real* v) { content<S, Device>(e, z, de, v); });
}

namespace detail {
/// Element k of the B×K one-hot matrix of `labels` (at namespace scope: a CUDA kernel's template
/// argument cannot be a type local to a host function).
template <std::size_t K>
struct onehot {
  const real* labels;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const {
    return static_cast<std::size_t>(labels[k / K]) == k % K ? real(1) : real(0);
  }
};
}  // namespace detail

/// Softmax cross-entropy: (1/B) Σ_b −log softmax(logits_b)[label_b], labels as reals on the device.
/// Writes dL/dlogits = (softmax − onehot)/B and the loss into the device real `value`. `work` is a
/// work buffer (2B reals).
template <std::size_t K, class Device>
void cross_entropy(cview<shape<K>, Device> logits, const real* labels, view<shape<K>, Device> dlogits,
                   tensor<shape<1>, Device>& work, real* value) {
  require_same_batch("cross_entropy (logits vs gradient)", logits.batch, dlogits.batch);
  const std::size_t B = logits.batch;
  work.resize(2 * B);
  real* mx = work.data();
  real* lse = work.data() + B;
  using BK = backend<Device>;
  BK::template reduce<reduction::max>(mx, 1, B, K, logits.as_expr(), 0);
  const expr_broadcast<Device> row_max{{}, mx, K, B}, row_lse{{}, lse, K, B};
  BK::template reduce<reduction::sum>(lse, 1, B, K, exp(logits - row_max), 0);
  view<shape<1>, Device>{lse, B} = log(view<shape<1>, Device>{lse, B}) + view<shape<1>, Device>{mx, B};
  const auto y = generate<Device>(detail::onehot<K>{labels});
  const real inv_b = real(1) / static_cast<real>(B);
  dlogits = (exp(logits - row_lse) - y) * inv_b;
  sum_into<Device>(value, y * (row_lse - logits), logits.size());
  device_scalar<Device>(value) = device_scalar<Device>(value) * inv_b;
}
/// The same, returning the loss on the host.
template <std::size_t K, class Device>
real cross_entropy(cview<shape<K>, Device> logits, const real* labels, view<shape<K>, Device> dlogits,
                   tensor<shape<1>, Device>& work) {
  return host_value<Device>([&](real* v) { cross_entropy<K, Device>(logits, labels, dlogits, work, v); });
}

}  // namespace cdgan::losses
