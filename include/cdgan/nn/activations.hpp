/// @file nn/activations.hpp
/// Elementwise activations: relu, leaky_relu<Slope>, sigmoid, tanh. Each is one fused expression
/// forward, one backward, and (for the gradient penalty) one for the second-order pass.
#pragma once
#include <string>

#include "layer.hpp"

namespace cdgan::nn {

namespace detail {

/// An activation described by a function object F with static members:
///   f(x)            the activation as an expression of x,
///   df(x, y, dy)    the backward expression (dy · f'(x)), given x and y = f(x),
///   d2f(x, y)       f''(x) as an expression (only when !F::piecewise_linear).
template <class F>
struct activation {
  template <shape_type In, class Device>
  struct bind {
    using in_shape = In;
    using out_shape = In;
    using device = Device;
    static constexpr bool linear_in_input = F::piecewise_linear;

    static std::string name() { return F::name(); }
    void init(rng&) {}
    template <class Fn>
    void for_each_parameter(Fn&&) {}

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      x_ = x;
      y_.resize(x.batch);
      y_ = F::f(x);
      return y_.cv();
    }
    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, x_.batch, [] { return out_shape::str(); });
      dy_ = dy;
      dx_.resize(dy.batch);
      dx_ = F::df(x_, y_.cv(), dy);
      return dx_.cv();
    }
    /// dx = f'(x)·dy: the adjoint of dy is f'(x)·gbar, and x gets f''(x)·dy·gbar.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> xbar) {
      check_batch([] { return name(); }, "the input-gradient adjoint", gbar.batch, x_.batch, [] { return in_shape::str(); });
      dybar_.resize(gbar.batch);
      dybar_ = F::df(x_, y_.cv(), gbar);
      if constexpr (!F::piecewise_linear) xbar += F::d2f(x_, y_.cv()) * dy_ * gbar;
      return dybar_.cv();
    }

   private:
    cview<in_shape, Device> x_{};
    cview<out_shape, Device> dy_{};
    tensor<in_shape, Device> y_, dx_, dybar_;
  };
};

struct relu_fn {
  static constexpr bool piecewise_linear = true;
  static std::string name() { return "relu"; }
  template <class X>
  static auto f(const X& x) {
    return cdgan::relu(x);
  }
  template <class X, class Y, class G>
  static auto df(const X& x, const Y&, const G& dy) {
    return where(x > 0.f, dy, 0.f);
  }
};

template <float Slope>
struct leaky_relu_fn {
  static constexpr bool piecewise_linear = true;
  static std::string name() { return "leaky_relu<" + std::to_string(Slope) + ">"; }
  template <class X>
  static auto f(const X& x) {
    return cdgan::leaky_relu(x, Slope);
  }
  template <class X, class Y, class G>
  static auto df(const X& x, const Y&, const G& dy) {
    return where(x > 0.f, dy, dy * Slope);
  }
};

struct sigmoid_fn {
  static constexpr bool piecewise_linear = false;
  static std::string name() { return "sigmoid"; }
  template <class X>
  static auto f(const X& x) {
    return cdgan::sigmoid(x);
  }
  template <class X, class Y, class G>
  static auto df(const X&, const Y& y, const G& dy) {
    return dy * y * (1.f - y);
  }
  template <class X, class Y>
  static auto d2f(const X&, const Y& y) {
    return y * (1.f - y) * (1.f - 2.f * y);
  }
};

struct tanh_fn {
  static constexpr bool piecewise_linear = false;
  static std::string name() { return "tanh"; }
  template <class X>
  static auto f(const X& x) {
    return cdgan::tanh(x);
  }
  template <class X, class Y, class G>
  static auto df(const X&, const Y& y, const G& dy) {
    return dy * (1.f - y * y);
  }
  template <class X, class Y>
  static auto d2f(const X&, const Y& y) {
    return -2.f * y * (1.f - y * y);
  }
};

}  // namespace detail

/// max(x, 0).
using relu = detail::activation<detail::relu_fn>;
/// x for x > 0, Slope·x otherwise (default 0.2, as in DCGAN/ClusterGAN critics).
template <float Slope = 0.2f>
using leaky_relu = detail::activation<detail::leaky_relu_fn<Slope>>;
/// 1 / (1 + e^-x).
using sigmoid = detail::activation<detail::sigmoid_fn>;
/// tanh(x).
using tanh = detail::activation<detail::tanh_fn>;

}  // namespace cdgan::nn
