/// @file nn/layer_norm.hpp
/// `layer_norm` (= `basic_layer_norm<1e-5f>`): each sample normalised over all of its elements, then an
/// elementwise affine map; PyTorch's nn.LayerNorm(normalized_shape = the whole sample shape).
///
/// What this represents. For one sample x of N = S::size elements:
///   μ = mean(x), σ² = mean((x − μ)²) (biased), r = 1/sqrt(σ² + ε), x̂ = (x − μ) r, y = γ ⊙ x̂ + β,
/// with `weight` γ (init 1) and `bias` β (init 0) of the sample shape S.
///
/// Backward: with ĝ = γ ⊙ dy, dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ x̂)) = r P ĝ, where
/// P = I − 11ᵀ/N − x̂x̂ᵀ/N is symmetric; dγ = Σ_batch dy ⊙ x̂, dβ = Σ_batch dy.
///
/// Second-order pass (a WGAN-GP critic may contain it; `linear_in_input = false`). Given gbar, the
/// adjoint of dx, and per sample m0 = mean(gbar ĝ), m1 = mean(gbar), m2 = mean(gbar x̂), A = mean(ĝ),
/// C = mean(ĝ x̂):
/// - adjoint of dy:  γ ⊙ t with t = r P gbar = r (gbar − m1 − x̂ m2);
/// - γ gradient:     += Σ_batch dy ⊙ t   (β does not enter dx);
/// - x adjoint:      += −r² [ m2 (ĝ − A) + C (gbar − m1) + x̂ (m0 − A m1 − 3 C m2) ]
///   (derived by writing <gbar, dx> = r(N m0 − N A m1) − r N C m2 as a function of r and x̂ and
///   differentiating through x̂ = (x − μ) r and ∂r/∂x = −r² x̂ / N; checked by finite differences in
///   tests/unit/nn_norm_test.cpp).
///
/// Requires: backward after forward, double_backward after backward, of the same batch.
///
/// @code
/// @article{ba2016layer, title={Layer normalization}, author={Ba, Jimmy Lei and Kiros, Jamie Ryan and
///   Hinton, Geoffrey E}, journal={arXiv:1607.06450}, year={2016}}
/// @endcode
#pragma once
#include <cstddef>
#include <string>

#include "layer.hpp"

namespace cdgan::nn {

template <float Eps = 1e-5f>
struct basic_layer_norm {
  static_assert(Eps > 0.f, "cdgan::nn::layer_norm: eps must be positive");

  template <shape_type In, class Device>
  struct bind {
    using in_shape = In;
    using out_shape = In;
    using device = Device;
    static constexpr std::size_t n = In::size;
    static constexpr bool linear_in_input = false;

    parameter<In, Device> weight;  ///< γ
    parameter<In, Device> bias;    ///< β

    bind() { reset(); }
    static std::string name() { return "layer_norm"; }
    void reset() {
      weight.value = 1.f;
      bias.value = 0.f;
    }
    void init(rng&) { reset(); }
    template <class F>
    void for_each_parameter(F&& f) {
      f(make_ref("weight", weight));
      f(make_ref("bias", bias));
    }

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      x_ = x;
      const std::size_t b = x.batch;
      for (auto* t : {&mean_, &rstd_}) t->resize(b);
      y_.resize(b);
      xhat_.resize(b);
      const real inv_n = real(1) / static_cast<real>(n);
      sum_per_sample(mean_, b, x * inv_n);
      sum_per_sample(rstd_, b, square(x - ps(mean_)) * inv_n);
      rstd_ = rsqrt(rstd_ + Eps);
      xhat_ = (x - ps(mean_)) * ps(rstd_);
      y_ = xhat_ * per_feature(weight.value.cv()) + per_feature(bias.value.cv());
      check_finite<Device>([] { return name(); }, "output", y_.data(), y_.size());
      return y_.cv();
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, x_.batch, [] { return out_shape::str(); });
      dy_ = dy;
      const std::size_t b = dy.batch;
      for (auto* t : {&a_, &c_}) t->resize(b);
      dx_.resize(b);
      const real inv_n = real(1) / static_cast<real>(n);
      const auto gh = dy * per_feature(weight.value.cv());  // ĝ
      sum_per_sample(a_, b, gh * inv_n);
      sum_per_sample(c_, b, gh * xhat_ * inv_n);
      dx_ = ps(rstd_) * (gh - ps(a_) - xhat_ * ps(c_));
      if (g != grads::skip) {
        backend<Device>::template reduce<reduction::sum>(weight.grad.data(), b, n, 1, dy * xhat_, grad_beta(g));
        backend<Device>::template reduce<reduction::sum>(bias.grad.data(), b, n, 1, dy.as_expr(), grad_beta(g));
      }
      return dx_.cv();
    }

    /// Second-order pass; see the file comment for the formulas.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> xbar) {
      check_batch([] { return name(); }, "the input-gradient adjoint", gbar.batch, x_.batch, [] { return in_shape::str(); });
      check_batch([] { return name(); }, "the input-gradient adjoint (vs. the last backward)", gbar.batch, dy_.batch, [] { return in_shape::str(); });
      const std::size_t b = gbar.batch;
      for (auto* t : {&m0_, &m1_, &m2_, &k_}) t->resize(b);
      dybar_.resize(b);
      const real inv_n = real(1) / static_cast<real>(n);
      const auto gh = dy_ * per_feature(weight.value.cv());  // ĝ
      sum_per_sample(m1_, b, gbar * inv_n);
      sum_per_sample(m2_, b, gbar * xhat_ * inv_n);
      const auto t = ps(rstd_) * (gbar - ps(m1_) - xhat_ * ps(m2_));
      dybar_ = t * per_feature(weight.value.cv());
      backend<Device>::template reduce<reduction::sum>(weight.grad.data(), b, n, 1, dy_ * t, real(1));
      if (!xbar.empty()) {
        sum_per_sample(m0_, b, gbar * gh * inv_n);
        k_ = m0_ - a_ * m1_ - 3.f * c_ * m2_;
        xbar += -(ps(rstd_) * ps(rstd_)) * (ps(m2_) * (gh - ps(a_)) + ps(c_) * (gbar - ps(m1_)) + xhat_ * ps(k_));
      }
      return dybar_.cv();
    }

   private:
    using stat = tensor<shape<1>, Device>;  // one value per sample
    /// Broadcast of a per-sample statistic over the sample's n elements.
    static expr_broadcast<Device> ps(const stat& s) { return per_sample<n, Device>(s.data(), s.batch()); }
    /// out[b] = Σ_i e[b·n + i].
    template <class E>
    static void sum_per_sample(stat& out, std::size_t b, const E& e) {
      backend<Device>::template reduce<reduction::sum>(out.data(), 1, b, n, e);
    }

    cview<in_shape, Device> x_{};
    cview<out_shape, Device> dy_{};
    tensor<in_shape, Device> y_, xhat_, dx_, dybar_;
    stat mean_, rstd_, a_, c_, m0_, m1_, m2_, k_;
  };
};

/// Layer normalisation with PyTorch's default eps 1e-5.
using layer_norm = basic_layer_norm<>;

}  // namespace cdgan::nn
