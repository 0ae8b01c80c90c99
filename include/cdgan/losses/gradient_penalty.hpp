/// @file losses/gradient_penalty.hpp
/// The exact WGAN-GP gradient penalty λ·E[(‖∇ₓD(x̂)‖ − 1)²] by double backpropagation.
///
/// What this represents: `gradient_penalty<Critic>` owns the buffers of the penalty for a critic
/// network type. `operator()(critic, real, fake, rng)`:
///   1. x̂ = ε·real + (1 − ε)·fake, ε ~ U(0, 1) per sample;
///   2. forward x̂; backward a gradient of ones with `grads::skip` → g = ∇ₓD(x̂) per sample;
///   3. P = λ/B Σ_b (‖g_b‖ − 1)², and its adjoint ḡ_b = 2λ/B (‖g_b‖ − 1) g_b/‖g_b‖;
///   4. critic.double_backward(ḡ): ADDS ∂P/∂θ to every parameter gradient of the critic.
/// So call it after the critic's ordinary backward of L_D (which assigns), and the critic's gradients
/// hold ∂(L_D + P)/∂θ. Exact, not finite differences; tests/unit/losses_test.cpp checks it against them.
///
/// Requires: every layer of the critic implements `double_backward` (dense, conv, conv_transpose,
/// activations, reshape/flatten, layer_norm, spectral_norm, avg_pool, upsample, residual).
#pragma once
#include "../core/random.hpp"
#include "../nn/layer.hpp"
#include "loss.hpp"

namespace cdgan::losses {

template <class Critic>
class gradient_penalty {
 public:
  using device = typename Critic::device;
  using in_shape = typename Critic::in_shape;
  static_assert(Critic::out_shape::size == 1, "cdgan: the gradient penalty needs a critic with one output per sample");

  explicit gradient_penalty(real lambda = 10) : lambda_(lambda) {
    if (!(lambda >= 0)) throw value_error("cdgan: gradient penalty lambda must be >= 0");
  }
  real lambda() const { return lambda_; }

  /// The penalty at random points between real_x and fake_x, into the device real `value`.
  void operator()(Critic& critic, cview<in_shape, device> real_x, cview<in_shape, device> fake_x, rng& g, real* value) {
    require_same_batch("gradient_penalty (real vs fake)", real_x.batch, fake_x.batch);
    const std::size_t B = real_x.batch;
    eps_.resize(B);
    eps_ = g.uniform(0.f, 1.f);
    xhat_.resize(B);
    const auto e = per_sample<in_shape::size, device>(eps_.data(), B);
    xhat_ = e * real_x + (1.f - e) * fake_x;
    penalty(critic, xhat_.cv(), value);
  }
  /// The same, returning the penalty on the host.
  real operator()(Critic& critic, cview<in_shape, device> real_x, cview<in_shape, device> fake_x, rng& g) {
    return host_value<device>([&](real* v) { (*this)(critic, real_x, fake_x, g, v); });
  }

  /// The penalty at given points x̂ (exposed for tests), on the host.
  real penalty(Critic& critic, cview<in_shape, device> xhat) {
    return host_value<device>([&](real* v) { penalty(critic, xhat, v); });
  }

  /// The penalty at given points x̂, into the device real `value`.
  void penalty(Critic& critic, cview<in_shape, device> xhat, real* value) {
    const std::size_t B = xhat.batch;
    ones_.resize(B);
    ones_ = 1.f;
    norm_.resize(B);
    gbar_.resize(B);
    critic.forward(xhat, mode::train);
    auto grad = critic.backward(ones_.cv(), nn::grads::skip);
    backend<device>::template reduce<reduction::sum>(norm_.data(), 1, B, in_shape::size, square(grad), 0);
    norm_ = sqrt(norm_);
    const real scale = 2 * lambda_ / static_cast<real>(B);
    const auto n = per_sample<in_shape::size, device>(norm_.data(), B);
    gbar_ = grad * (scale * (n - 1.f) / max(n, 1e-12f));
    critic.double_backward(gbar_.cv(), view<in_shape, device>{});
    sum_into<device>(value, square(norm_ - 1.f), B);
    const auto v = device_scalar<device>(value);
    v = v * lambda_ / static_cast<real>(B);
  }

 private:
  real lambda_;
  tensor<shape<1>, device> eps_, ones_, norm_;
  tensor<in_shape, device> xhat_, gbar_;
};

}  // namespace cdgan::losses
