/// @file nn/l2_normalize.hpp
/// `l2_normalize`: y = x / max(‖x‖₂, ε) per sample, ε = 1e-12 (torch.nn.functional.normalize(x, dim=1)).
/// The projection head of a contrastive embedding ends with it.
///
/// What this represents. With d = max(‖x‖, ε) and s = [‖x‖ > ε]:
/// - forward:  y = x / d;
/// - backward: dx = (dy − s · y (y·dy)) / d;
/// - second-order pass (`linear_in_input = false`), with p = gbar·y, q = y·dy, a = gbar·dy:
///   adjoint of dy = (gbar − s · y p) / d, and the x adjoint += s · (3pq y − a y − q gbar − p dy) / d².
/// (Where ‖x‖ ≤ ε the map is x / ε, linear, and only the first terms remain.)
/// No parameters. Requires: backward after forward, double_backward after backward, same batch.
#pragma once
#include <cstddef>
#include <string>

#include "layer.hpp"

namespace cdgan::nn {

struct l2_normalize {
  static constexpr float eps = 1e-12f;

  template <shape_type In, class Device>
  struct bind {
    using in_shape = In;
    using out_shape = In;
    using device = Device;
    static constexpr std::size_t n = In::size;
    static constexpr bool linear_in_input = false;

    static std::string name() { return "l2_normalize"; }
    void init(rng&) {}
    template <class F>
    void for_each_parameter(F&&) {}

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      x_ = x;
      const std::size_t b = x.batch;
      for (auto* t : {&d_, &s_}) t->resize(b);
      y_.resize(b);
      sum_per_sample(d_, b, square(x));
      s_ = sqrt(d_) > eps;
      d_ = max(sqrt(d_), eps);
      y_ = x / ps(d_);
      return y_.cv();
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, x_.batch, [] { return out_shape::str(); });
      dy_ = dy;
      const std::size_t b = dy.batch;
      q_.resize(b);
      dx_.resize(b);
      sum_per_sample(q_, b, y_ * dy);
      dx_ = (dy - ps(s_) * ps(q_) * y_) / ps(d_);
      return dx_.cv();
    }

    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> xbar) {
      check_batch([] { return name(); }, "the input-gradient adjoint", gbar.batch, dy_.batch, [] { return in_shape::str(); });
      const std::size_t b = gbar.batch;
      for (auto* t : {&p_, &a_, &k_}) t->resize(b);
      dybar_.resize(b);
      sum_per_sample(p_, b, gbar * y_);
      dybar_ = (gbar - ps(s_) * ps(p_) * y_) / ps(d_);
      if (!xbar.empty()) {
        sum_per_sample(a_, b, gbar * dy_);
        k_ = 3.f * p_ * q_ - a_;
        xbar += ps(s_) / (ps(d_) * ps(d_)) * (ps(k_) * y_ - ps(q_) * gbar - ps(p_) * dy_);
      }
      return dybar_.cv();
    }

   private:
    using stat = tensor<shape<1>, Device>;
    static expr_broadcast<Device> ps(const stat& s) { return per_sample<n, Device>(s.data(), s.batch()); }
    template <class E>
    static void sum_per_sample(stat& out, std::size_t b, const E& e) {
      backend<Device>::template reduce<reduction::sum>(out.data(), 1, b, n, e);
    }

    cview<in_shape, Device> x_{};
    cview<out_shape, Device> dy_{};
    tensor<in_shape, Device> y_, dx_, dybar_;
    stat d_, s_, q_, p_, a_, k_;
  };
};

}  // namespace cdgan::nn
