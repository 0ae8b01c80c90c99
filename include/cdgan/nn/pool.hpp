/// @file nn/pool.hpp
/// `avg_pool<K>` (K×K average pooling, stride K) and `upsample<K>` (nearest-neighbour, factor K).
///
/// What this represents. Two parameter-free, linear layers over images shape<C, H, W>, each the
/// other's adjoint up to the factor K²:
///   avg_pool<K>:  y[c, oy, ox] = (1/K²) Σ_{ky,kx<K} x[c, K·oy + ky, K·ox + kx],  out shape<C, H/K, W/K>;
///   upsample<K>:  y[c, oy, ox] = x[c, oy / K, ox / K],                              out shape<C, H·K, W·K>.
/// Both are written as single elementwise expressions (a gather node per direction, below), so each
/// forward, backward and second-order pass is one fused loop (one kernel on CUDA), on either device.
///
/// Requires: an image input shape<C, H, W>; for avg_pool<K>, H and W divisible by K; K > 0
/// (all checked by static_assert with a message naming the layer).
/// Ensures: backward returns dx = Aᵀ·dy; double_backward (for exact gradient penalties) returns the
/// adjoint of dy, A·gbar, and touches nothing else (no parameters; `linear_in_input` is true).
#pragma once
#include <cstddef>
#include <string>

#include "layer.hpp"

namespace cdgan::nn {

namespace detail {

/// Extent I of S, or 1 when S has no such axis (keeps a failing static_assert from cascading).
template <shape_type S, std::size_t I>
inline constexpr std::size_t pool_extent = I < S::rank ? S::dims[I < S::rank ? I : 0] : 1;

/// Nearest-neighbour gather: element i of a batch of (H·K)×(W·K) planes is
/// scale · p[plane, oy / K, ox / K] from a batch of H×W planes. `n` is the length of the source.
template <class Device, std::size_t H, std::size_t W, std::size_t K>
struct expr_upsample_nearest : expr_base {
  using device = Device;
  const real* p;
  std::size_t n;
  real scale;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const {
    constexpr std::size_t ow = W * K, oh = H * K;
    const std::size_t ox = i % ow, t = i / ow, oy = t % oh, plane = t / oh;
    return scale * p[(plane * H + oy / K) * W + ox / K];
  }
  bool fits(std::size_t m) const { return m == n * K * K; }
};

/// K×K window sum: element i of a batch of H×W planes is scale · Σ_{ky,kx<K} p[plane, K·oy+ky, K·ox+kx]
/// from a batch of (H·K)×(W·K) planes. `n` is the length of the source.
template <class Device, std::size_t H, std::size_t W, std::size_t K>
struct expr_window_sum : expr_base {
  using device = Device;
  const real* p;
  std::size_t n;
  real scale;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const {
    constexpr std::size_t iw = W * K, ih = H * K;
    const std::size_t ox = i % W, t = i / W, oy = t % H, plane = t / H;
    const real* base = p + (plane * ih + oy * K) * iw + ox * K;
    real s = 0;
    for (std::size_t ky = 0; ky < K; ++ky)
      for (std::size_t kx = 0; kx < K; ++kx) s += base[ky * iw + kx];
    return scale * s;
  }
  bool fits(std::size_t m) const { return m * K * K == n; }
};

/// `upsample(x) · scale` for a view x of H×W planes (any number of them).
template <std::size_t H, std::size_t W, std::size_t K, shape_type S, class Device>
expr_upsample_nearest<Device, H, W, K> upsample_expr(cview<S, Device> x, real scale) {
  return {{}, x.ptr, x.size(), scale};
}
/// `window_sum(x) · scale` for a view x of (H·K)×(W·K) planes; H, W are the output extents.
template <std::size_t H, std::size_t W, std::size_t K, shape_type S, class Device>
expr_window_sum<Device, H, W, K> window_sum_expr(cview<S, Device> x, real scale) {
  return {{}, x.ptr, x.size(), scale};
}

}  // namespace detail

/// K×K average pooling with stride K (no padding, no overlap): shape<C, H, W> -> shape<C, H/K, W/K>.
template <std::size_t K>
struct avg_pool {
  static_assert(K > 0, "cdgan::nn::avg_pool<K>: the pooling window K must be positive");

  template <shape_type In, class Device>
  struct bind {
    static_assert(In::rank == 3,
                  "cdgan::nn::avg_pool<K>: the input must be an image shape<C, H, W>; insert reshape<C, H, W> "
                  "before the pooling layer");
    static constexpr std::size_t c = detail::pool_extent<In, 0>, h = detail::pool_extent<In, 1>,
                                 w = detail::pool_extent<In, 2>;
    static_assert(K == 0 || (h % K == 0 && w % K == 0),
                  "cdgan::nn::avg_pool<K>: the input height and width must be divisible by K");
    static constexpr std::size_t k = K > 0 ? K : 1;
    static constexpr std::size_t oh = h / k > 0 ? h / k : 1, ow = w / k > 0 ? w / k : 1;

    using in_shape = In;
    using out_shape = shape<c, oh, ow>;
    using device = Device;
    static constexpr bool linear_in_input = true;
    static constexpr real inv_area = real(1) / static_cast<real>(k * k);

    static std::string name() { return "avg_pool<" + std::to_string(K) + ">"; }
    void init(rng&) {}
    template <class F>
    void for_each_parameter(F&&) {}

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      batch_ = x.batch;
      y_.resize(x.batch);
      y_ = detail::window_sum_expr<oh, ow, k>(x, inv_area);
      return y_.cv();
    }
    /// dx = upsample(dy) / K².
    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, batch_, [] { return out_shape::str(); });
      dx_.resize(dy.batch);
      dx_ = detail::upsample_expr<oh, ow, k>(dy, inv_area);
      return dx_.cv();
    }
    /// dx = Aᵀ·dy with A the pooling: the adjoint of dy is A·gbar (the pooling of gbar).
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> /*xbar*/) {
      check_batch([] { return name(); }, "the input-gradient adjoint", gbar.batch, batch_, [] { return in_shape::str(); });
      dybar_.resize(gbar.batch);
      dybar_ = detail::window_sum_expr<oh, ow, k>(gbar, inv_area);
      return dybar_.cv();
    }

   private:
    std::size_t batch_ = 0;
    tensor<out_shape, Device> y_, dybar_;
    tensor<in_shape, Device> dx_;
  };
};

/// Nearest-neighbour upsampling by K on both axes: shape<C, H, W> -> shape<C, H·K, W·K>.
template <std::size_t K>
struct upsample {
  static_assert(K > 0, "cdgan::nn::upsample<K>: the upsampling factor K must be positive");

  template <shape_type In, class Device>
  struct bind {
    static_assert(In::rank == 3,
                  "cdgan::nn::upsample<K>: the input must be an image shape<C, H, W>; insert reshape<C, H, W> "
                  "before the upsampling layer");
    static constexpr std::size_t c = detail::pool_extent<In, 0>, h = detail::pool_extent<In, 1>,
                                 w = detail::pool_extent<In, 2>;
    static constexpr std::size_t k = K > 0 ? K : 1;

    using in_shape = In;
    using out_shape = shape<c, h * k, w * k>;
    using device = Device;
    static constexpr bool linear_in_input = true;

    static std::string name() { return "upsample<" + std::to_string(K) + ">"; }
    void init(rng&) {}
    template <class F>
    void for_each_parameter(F&&) {}

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      batch_ = x.batch;
      y_.resize(x.batch);
      y_ = detail::upsample_expr<h, w, k>(x, real(1));
      return y_.cv();
    }
    /// dx = K×K window sums of dy.
    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, batch_, [] { return out_shape::str(); });
      dx_.resize(dy.batch);
      dx_ = detail::window_sum_expr<h, w, k>(dy, real(1));
      return dx_.cv();
    }
    /// The adjoint of dy is the upsampling of gbar.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> /*xbar*/) {
      check_batch([] { return name(); }, "the input-gradient adjoint", gbar.batch, batch_, [] { return in_shape::str(); });
      dybar_.resize(gbar.batch);
      dybar_ = detail::upsample_expr<h, w, k>(gbar, real(1));
      return dybar_.cv();
    }

   private:
    std::size_t batch_ = 0;
    tensor<out_shape, Device> y_, dybar_;
    tensor<in_shape, Device> dx_;
  };
};

}  // namespace cdgan::nn
