/// @file nn/dense.hpp
/// `dense<Out, Bias = true>`: y = x Wᵀ + b over flattened samples (PyTorch's nn.Linear).
#pragma once
#include <cmath>
#include <string>

#include "layer.hpp"

namespace cdgan::nn {

template <std::size_t Out, bool Bias = true>
struct dense {
  static_assert(Out > 0, "cdgan::nn::dense<Out>: a dense layer needs at least one output feature");

  template <shape_type In, class Device>
  struct bind {
    using in_shape = In;
    using out_shape = shape<Out>;
    using device = Device;
    static constexpr std::size_t fan_in = In::size;
    static constexpr bool linear_in_input = true;  // dx does not depend on x: no x-adjoint in double backward

    parameter<shape<Out, fan_in>, Device> weight;
    parameter<shape<Out>, Device> bias;

    static std::string name() { return "dense<" + std::to_string(Out) + (Bias ? "" : ", no bias") + ">"; }

    void init(rng& g) {
      const real bound = real(1) / std::sqrt(static_cast<real>(fan_in));
      weight.value = g.uniform(-bound, bound);
      if constexpr (Bias) bias.value = g.uniform(-bound, bound);
    }
    template <class F>
    void for_each_parameter(F&& f) {
      f(make_ref("weight", weight));
      if constexpr (Bias) f(make_ref("bias", bias));
    }

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      x_ = x;
      y_.resize(x.batch);
      check_finite<Device>([] { return name(); }, "weight", weight.value.data(), weight.value.size());
      backend<Device>::gemm(false, true, x.batch, Out, fan_in, 1, x.ptr, weight.value.data(), 0, y_.data());
      if constexpr (Bias) y_ += per_feature<out_shape, Device>(bias.value.cv());
      return y_.cv();
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, x_.batch, [] { return out_shape::str(); });
      dy_ = dy;
      dx_.resize(dy.batch);
      backend<Device>::gemm(false, false, dy.batch, fan_in, Out, 1, dy.ptr, weight.value.data(), 0, dx_.data());
      if (g == grads::skip) return dx_.cv();
      backend<Device>::gemm(true, false, Out, fan_in, dy.batch, 1, dy.ptr, x_.ptr, grad_beta(g), weight.grad.data());
      if constexpr (Bias)
        backend<Device>::template reduce<reduction::sum>(bias.grad.data(), dy.batch, Out, 1, dy.as_expr(), grad_beta(g));
      return dx_.cv();
    }

    /// Second-order pass for the exact gradient penalty. dx = dy·W, so for an adjoint gbar of dx:
    /// the adjoint of dy is gbar·Wᵀ and dW += dyᵀ·gbar (the bias does not enter dx).
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> /*xbar*/) {
      check_batch([] { return name(); }, "the input-gradient adjoint", gbar.batch, x_.batch, [] { return in_shape::str(); });
      dybar_.resize(gbar.batch);
      backend<Device>::gemm(false, true, gbar.batch, Out, fan_in, 1, gbar.ptr, weight.value.data(), 0, dybar_.data());
      backend<Device>::gemm(true, false, Out, fan_in, gbar.batch, 1, dy_.ptr, gbar.ptr, 1, weight.grad.data());
      return dybar_.cv();
    }

   private:
    cview<in_shape, Device> x_{};
    cview<out_shape, Device> dy_{};
    tensor<out_shape, Device> y_, dybar_;
    tensor<in_shape, Device> dx_;
  };
};

}  // namespace cdgan::nn
