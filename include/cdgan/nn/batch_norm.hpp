/// @file nn/batch_norm.hpp
/// `batch_norm` (= `basic_batch_norm<0.1f, 1e-5f>`): batch normalisation that adapts to its input
/// shape, as PyTorch's nn.BatchNorm1d / nn.BatchNorm2d.
///
/// What this represents. The first extent of the per-sample shape is the *channel* axis and the rest
/// is pooled with the batch:
/// - `shape<F>`       : per feature, statistics over the batch (BatchNorm1d on (N, F));
/// - `shape<C, L>`    : per channel, statistics over batch × L (BatchNorm1d on (N, C, L));
/// - `shape<C, H, W>` : per channel, statistics over batch × H × W (BatchNorm2d).
/// With M = batch · (S::size / C) values per channel:
///   train: y = γ (x − μ_B) / sqrt(σ²_B + ε) + β, μ_B and the biased σ²_B from the batch; then
///          running_mean ← (1 − m) running_mean + m μ_B, running_var ← (1 − m) running_var + m σ²_B M/(M−1)
///          (the unbiased variance, as PyTorch);
///   eval:  y = γ (x − running_mean) / sqrt(running_var + ε) + β.
/// Parameters: `weight` (γ, init 1) and `bias` (β, init 0), shape<C>. Buffers (not trained, saved in
/// checkpoints through `for_each_buffer`): `running_mean` (init 0) and `running_var` (init 1).
///
/// Requires: in train mode more than one value per channel (M > 1), as PyTorch; `backward` after the
/// `forward` of the same batch, with x still valid (x̂ is recomputed from x, not stored).
/// Ensures:
/// - `backward` after a train forward is the full batch-norm gradient (the batch statistics depend on
///   x); after an eval forward it is the gradient of the affine map above.
/// - A train forward with M = 1 throws a `shape_error` naming the layer and the shape.
/// - There is no second-order pass: a WGAN-GP critic (whose penalty needs `double_backward`) cannot
///   contain a batch_norm, and asking for it is a compile-time error (see sequential::double_backward).
///   Use layer_norm or spectral_norm in critics, as the WGAN-GP paper advises.
///
/// @code
/// @inproceedings{ioffe2015batch, title={Batch normalization: Accelerating deep network training by
///   reducing internal covariate shift}, author={Ioffe, Sergey and Szegedy, Christian}, booktitle={ICML}, year={2015}}
/// @endcode
#pragma once
#include <cstddef>
#include <string>

#include "layer.hpp"

namespace cdgan::nn {

template <float Momentum = 0.1f, float Eps = 1e-5f>
struct basic_batch_norm {
  static_assert(Momentum >= 0.f && Momentum <= 1.f, "cdgan::nn::batch_norm: the momentum must lie in [0, 1]");
  static_assert(Eps > 0.f, "cdgan::nn::batch_norm: eps must be positive");

  template <shape_type In, class Device>
  struct bind {
    using in_shape = In;
    using out_shape = In;
    using device = Device;
    /// Channels (first extent) and the number of values per channel in one sample.
    static constexpr std::size_t channels = In::dims[0];
    static constexpr std::size_t spatial = In::size / channels;
    using channel_shape = shape<channels>;
    /// dx depends on x (through the batch statistics); there is no double_backward at all.
    static constexpr bool linear_in_input = false;

    parameter<channel_shape, Device> weight;  ///< γ
    parameter<channel_shape, Device> bias;    ///< β
    tensor<channel_shape, Device> running_mean{1}, running_var{1};

    bind() { reset(); }

    static std::string name() { return "batch_norm"; }

    /// γ = 1, β = 0, running_mean = 0, running_var = 1 (PyTorch's reset_parameters + reset_running_stats).
    void reset() {
      weight.value = 1.f;
      bias.value = 0.f;
      running_mean = 0.f;
      running_var = 1.f;
    }
    void init(rng&) { reset(); }

    template <class F>
    void for_each_parameter(F&& f) {
      f(make_ref("weight", weight));
      f(make_ref("bias", bias));
    }
    /// The running statistics, as handles whose `grad` is null (for checkpoints).
    template <class F>
    void for_each_buffer(F&& f) {
      f(parameter_ref<Device>{"running_mean", running_mean.data(), nullptr, channels, {channels}});
      f(parameter_ref<Device>{"running_var", running_var.data(), nullptr, channels, {channels}});
    }

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode m = mode::train) {
      x_ = x;
      mode_ = m;
      const std::size_t count = x.batch * spatial;  // values per channel
      y_.resize(x.batch);
      if (m == mode::train) {
        if (count <= 1)
          throw shape_error("cdgan: layer " + name() + ": training needs more than one value per channel, but the input has batch " +
                            std::to_string(x.batch) + " of shape " + In::str() +
                            " (use a larger batch, or mode::eval)");
        const real inv_m = real(1) / static_cast<real>(count);
        backend<Device>::template reduce<reduction::sum>(mean_.data(), x.batch, channels, spatial, x * inv_m);
        backend<Device>::template reduce<reduction::sum>(
            var_.data(), x.batch, channels, spatial, square(x - per_channel<spatial>(mean_.cv())) * inv_m);
        invstd_ = rsqrt(var_ + Eps);
        const real unbias = static_cast<real>(count) / static_cast<real>(count - 1);
        running_mean = running_mean * (1.f - Momentum) + mean_ * Momentum;
        running_var = running_var * (1.f - Momentum) + var_ * (Momentum * unbias);
      } else {
        mean_ = running_mean.cv();
        invstd_ = rsqrt(running_var + Eps);
      }
      // y = (x − μ)·(γ/σ) + β in one pass; x̂ is not stored (backward recomputes it from x)
      scale_ = weight.value * invstd_;
      y_ = (x - per_channel<spatial>(mean_.cv())) * per_channel<spatial>(scale_.cv()) +
           per_channel<spatial>(bias.value.cv());
      check_finite<Device>([] { return name(); }, "output", y_.data(), y_.size());
      return y_.cv();
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, x_.batch, [] { return out_shape::str(); });
      dx_.resize(dy.batch);
      const auto xhat = (x_ - per_channel<spatial>(mean_.cv())) * per_channel<spatial>(invstd_.cv());
      scale_ = weight.value * invstd_;  // γ as it is now
      backend<Device>::template reduce<reduction::sum>(sum_dy_.data(), dy.batch, channels, spatial, dy.as_expr());
      backend<Device>::template reduce<reduction::sum>(sum_dy_xhat_.data(), dy.batch, channels, spatial, dy * xhat);
      if (mode_ == mode::train) {
        // dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), means over the M values of each channel.
        const real inv_m = real(1) / static_cast<real>(dy.batch * spatial);
        mean_dy_ = sum_dy_ * inv_m;
        mean_dy_xhat_ = sum_dy_xhat_ * inv_m;
        dx_ = per_channel<spatial>(scale_.cv()) *
              (dy - per_channel<spatial>(mean_dy_.cv()) - xhat * per_channel<spatial>(mean_dy_xhat_.cv()));
      } else {
        dx_ = dy * per_channel<spatial>(scale_.cv());
      }
      write_grad(weight, sum_dy_xhat_.cv(), g);
      write_grad(bias, sum_dy_.cv(), g);
      return dx_.cv();
    }

   private:
    cview<in_shape, Device> x_{};
    mode mode_ = mode::train;
    tensor<in_shape, Device> y_, dx_;
    /// Per channel: batch (or running) mean, variance, 1/σ, scale γ/σ (of the last forward), and the
    /// sums and means of the backward pass.
    tensor<channel_shape, Device> mean_{1}, var_{1}, invstd_{1}, scale_{1}, sum_dy_{1}, sum_dy_xhat_{1}, mean_dy_{1},
        mean_dy_xhat_{1};
  };
};

/// Batch normalisation with PyTorch's defaults (momentum 0.1, eps 1e-5).
using batch_norm = basic_batch_norm<>;

}  // namespace cdgan::nn
