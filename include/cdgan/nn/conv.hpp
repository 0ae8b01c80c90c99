/// @file nn/conv.hpp
/// `conv<Filters, kernel<K>, stride<S>, pad<P>>` (PyTorch's nn.Conv2d) and
/// `conv_transpose<Filters, kernel<K>, stride<S>, pad<P>>` (nn.ConvTranspose2d), square kernels, the same
/// stride and zero padding on both axes. Short aliases: `conv2d<F, K, S = 1, P = 0>`,
/// `conv_transpose2d<F, K, S = 1, P = 0>`.
///
/// What this represents.
/// - conv, input shape<C, H, W>, output shape<F, OH, OW> with OH = (H + 2P − K)/S + 1 (floor):
///   y[f, oy, ox] = b[f] + Σ_{c,ky,kx} W[f, c, ky, kx] · x[c, S·oy − P + ky, S·ox − P + kx]
///   (zero outside the image). Parameters `weight` shape<F, C, K, K> and `bias` shape<F>.
/// - conv_transpose, input shape<C, H, W>, output shape<F, (H − 1)·S − 2P + K, ...>: the adjoint (in x) of
///   the conv from F to C channels with the same K, S, P, plus a bias:
///   y[f, S·iy − P + ky, S·ix − P + kx] += W[c, f, ky, kx] · x[c, iy, ix].
///   Parameters `weight` shape<C, F, K, K> (PyTorch's layout) and `bias` shape<F>.
/// Options come in any order; `kernel<K>` is required, `stride<1>` and `pad<0>` are the defaults.
///
/// How. Both are lowered to one GEMM per pass over the whole batch, on the batch-wide column matrix of
/// `backend<Device>::im2col_wide`, [C·K·K][batch·OH·OW] (sample b's columns at b·OH·OW of every row);
/// `swap_axes` moves between NCHW and the [channels][batch·H·W] layout of the GEMM operands:
/// - conv forward: col = im2col_wide(x); Y = W·col ([F][batch·OH·OW]); y = swap_axes(Y) + bias.
///   backward: DY = swap_axes(dy); dx = col2im_wide(Wᵀ·DY); dW = DY·colᵀ (K = batch·OH·OW); db = Σ dy.
/// - conv_transpose forward: X = swap_axes(x); y = bias; y += col2im_wide(Wᵀ·X).
///   backward: dcol = im2col_wide(dy); dx = swap_axes(W·dcol); dW = X·dcolᵀ; db = Σ dy.
/// One large GEMM instead of one per sample amortises the packing of W and gives the GEMM long
/// rows (measured on the CPU backend: several times faster than the per-sample GEMMs at batch 64-512).
/// Layers never loop over device memory themselves, so the same code runs on every backend.
///
/// Second-order pass (exact WGAN-GP penalty): both layers are linear in their input, and their input
/// gradient is bilinear in (dy, W). For conv, dx = convᵀ(dy; W): given the adjoint gbar of dx,
/// the adjoint of dy is conv(gbar; W) without bias, and dW += DY·im2col_wide(gbar)ᵀ (the weight
/// gradient of a backward with input gbar and output gradient dy). For conv_transpose, dx = conv(dy; W)
/// without bias: the adjoint of dy is conv_transpose(gbar; W) without bias, and
/// dW += swap_axes(gbar)·im2col_wide(dy)ᵀ. Neither bias enters dx.
///
/// Requires: `backward` after the `forward` of the same batch (x stays valid in between);
/// `double_backward` after that `backward` (which keeps what it needs: the permuted dy of conv, the
/// column matrix of dy of conv_transpose). The column buffer of the forward pass survives
/// `double_backward`, so the down sweep of sequential::double_backward may call
/// `backward(..., grads::accumulate)` again.
/// Ensures: impossible geometry (kernel larger than the padded input, zero filters, zero stride or
/// kernel, a non-image input) is a static_assert naming the layer; a wrong run-time batch is a
/// shape_error naming the layer. `init` is PyTorch's default: weight and bias ~ U(−1/√fan_in, 1/√fan_in)
/// (kaiming_uniform with a = √5), fan_in = C·K·K for conv and F·K·K for conv_transpose
/// (PyTorch computes it from weight.size(1)).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>

#include "layer.hpp"

namespace cdgan::nn {

/// Square kernel size option of conv / conv_transpose.
template <std::size_t K>
struct kernel {
  static constexpr std::size_t value = K;
};
/// Stride option (both axes) of conv / conv_transpose; default 1.
template <std::size_t S>
struct stride {
  static constexpr std::size_t value = S;
};
/// Zero-padding option (both axes, both sides) of conv / conv_transpose; default 0.
template <std::size_t P>
struct pad {
  static constexpr std::size_t value = P;
};

namespace detail {

template <template <std::size_t> class Opt, class T>
struct option_match {
  static constexpr std::size_t count = 0, v = 0;
};
template <template <std::size_t> class Opt, std::size_t V>
struct option_match<Opt, Opt<V>> {
  static constexpr std::size_t count = 1, v = V;
};

/// Reads kernel/stride/pad from a pack of options in any order.
template <class... Options>
struct conv_options {
  static constexpr std::size_t kernels = (std::size_t{0} + ... + option_match<kernel, Options>::count);
  static constexpr std::size_t strides = (std::size_t{0} + ... + option_match<stride, Options>::count);
  static constexpr std::size_t pads = (std::size_t{0} + ... + option_match<pad, Options>::count);
  static constexpr bool all_known = kernels + strides + pads == sizeof...(Options);
  static constexpr std::size_t k = (std::size_t{0} + ... + option_match<kernel, Options>::v);
  static constexpr std::size_t s = strides ? (std::size_t{0} + ... + option_match<stride, Options>::v) : 1;
  static constexpr std::size_t p = (std::size_t{0} + ... + option_match<pad, Options>::v);
};

/// Extent I of S, or 1 when S has no such axis (keeps a failing static_assert from cascading).
template <shape_type S, std::size_t I>
inline constexpr std::size_t conv_extent = I < S::rank ? S::dims[I < S::rank ? I : 0] : 1;

/// Samples per pass of a convolution whose column matrix has `per_sample` elements per sample: the
/// whole batch, or, when the backend prefers bounded column matrices
/// (`backend<Device>::column_chunk_elements`, the CPU's caches), equal chunks under that bound.
template <class Device>
std::size_t conv_chunk(std::size_t batch, std::size_t per_sample) {
  if constexpr (requires { backend<Device>::column_chunk_elements; }) {
    const std::size_t most = std::max<std::size_t>(1, backend<Device>::column_chunk_elements / per_sample);
    const std::size_t chunks = (batch + most - 1) / most;
    return chunks <= 1 ? batch : (batch + chunks - 1) / chunks;
  } else {
    return batch;
  }
}

inline std::string conv_name(const char* layer, std::size_t f, std::size_t k, std::size_t s, std::size_t p) {
  return std::string(layer) + "<" + std::to_string(f) + ", kernel<" + std::to_string(k) + ">, stride<" +
         std::to_string(s) + ">, pad<" + std::to_string(p) + ">>";
}

}  // namespace detail

/// 2-D convolution (cross-correlation, as PyTorch), see the file comment.
template <std::size_t Filters, class... Options>
struct conv {
  using options = detail::conv_options<Options...>;
  static_assert(options::all_known,
                "cdgan::nn::conv<Filters, Options...>: every option must be nn::kernel<K>, nn::stride<S> or nn::pad<P>");
  static_assert(options::kernels == 1,
                "cdgan::nn::conv<Filters, Options...>: give the kernel size exactly once, e.g. "
                "nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>");
  static_assert(options::strides <= 1 && options::pads <= 1,
                "cdgan::nn::conv<Filters, Options...>: nn::stride and nn::pad may each be given at most once");
  static_assert(Filters > 0, "cdgan::nn::conv<Filters, ...>: zero filters; a convolution needs at least one output channel");
  static_assert(options::kernels != 1 || options::k > 0, "cdgan::nn::conv: kernel<0>; the kernel size must be positive");
  static_assert(options::s > 0, "cdgan::nn::conv: stride<0>; the stride must be positive");

  static constexpr std::size_t filters = Filters > 0 ? Filters : 1;
  static constexpr std::size_t k = options::k > 0 ? options::k : 1, s = options::s > 0 ? options::s : 1,
                               p = options::p;

  template <shape_type In, class Device>
  struct bind {
    static_assert(In::rank == 3,
                  "cdgan::nn::conv: the input must be an image shape<C, H, W> (a flat input cannot be convolved; "
                  "insert nn::reshape<C, H, W> before the convolution)");
    static constexpr std::size_t c = detail::conv_extent<In, 0>, h = detail::conv_extent<In, 1>,
                                 w = detail::conv_extent<In, 2>;
    static_assert(In::rank != 3 || (k <= h + 2 * p && k <= w + 2 * p),
                  "cdgan::nn::conv: the kernel is larger than the padded input (kernel > H + 2*pad or kernel > W + 2*pad)");
    static constexpr bool fits = k <= h + 2 * p && k <= w + 2 * p;
    static constexpr std::size_t oh = fits ? (h + 2 * p - k) / s + 1 : 1, ow = fits ? (w + 2 * p - k) / s + 1 : 1;

    using in_shape = In;
    using out_shape = shape<filters, oh, ow>;
    using device = Device;
    static constexpr bool linear_in_input = true;
    static constexpr std::size_t fan_in = c * k * k;
    static constexpr conv_geometry geometry{c, h, w, k, s, p, oh, ow};
    static constexpr std::size_t rows = fan_in, cols = oh * ow;  // of one sample's column matrix

    parameter<shape<filters, c, k, k>, Device> weight;
    parameter<shape<filters>, Device> bias;

    static std::string name() { return detail::conv_name("conv", Filters, k, s, p); }

    void init(rng& g) {
      const real bound = real(1) / std::sqrt(static_cast<real>(fan_in));
      weight.value = g.uniform(-bound, bound);
      bias.value = g.uniform(-bound, bound);
    }
    template <class F>
    void for_each_parameter(F&& f) {
      f(make_ref("weight", weight));
      f(make_ref("bias", bias));
    }

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      x_ = x;
      y_.resize(x.batch);
      check_finite<Device>([] { return name(); }, "weight", weight.value.data(), weight.value.size());
      const std::size_t chunk = detail::conv_chunk<Device>(x.batch, rows * cols);
      col_.resize(chunk);
      wide_.resize(chunk);
      for (std::size_t b0 = 0; b0 < x.batch; b0 += chunk) {
        const std::size_t nb = std::min(chunk, x.batch - b0);
        backend<Device>::im2col_wide(x.ptr + b0 * in_shape::size, nb, geometry, col_.data());
        backend<Device>::gemm(false, false, filters, nb * cols, rows, 1, weight.value.data(), col_.data(), 0,
                              wide_.data());
        backend<Device>::swap_axes(y_.data() + b0 * out_shape::size, wide_.data(), filters, nb, cols,
                                   bias.value.data());
      }
      whole_col_ = chunk == x.batch;  // col_ holds im2col(x) of the whole batch
      return y_.cv();
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, x_.batch, [] { return out_shape::str(); });
      dy_ = dy;
      dx_.resize(dy.batch);
      dx_ = 0.f;
      const std::size_t chunk = detail::conv_chunk<Device>(dy.batch, rows * cols);
      dyw_.resize(chunk);
      work_.resize(chunk);
      for (std::size_t b0 = 0; b0 < dy.batch; b0 += chunk) {
        const std::size_t nb = std::min(chunk, dy.batch - b0), n = nb * cols;
        backend<Device>::swap_axes(dyw_.data(), dy.ptr + b0 * out_shape::size, nb, filters, cols);
        backend<Device>::gemm(true, false, rows, n, filters, 1, weight.value.data(), dyw_.data(), 0, work_.data());
        backend<Device>::col2im_wide(work_.data(), nb, geometry, dx_.data() + b0 * in_shape::size);
        if (g == grads::skip) continue;
        if (!whole_col_) backend<Device>::im2col_wide(x_.ptr + b0 * in_shape::size, nb, geometry, col_.data());
        backend<Device>::gemm(false, true, filters, rows, n, 1, dyw_.data(), col_.data(), b0 == 0 ? grad_beta(g) : 1,
                              weight.grad.data());
      }
      if (g == grads::skip) return dx_.cv();
      if (dy.batch == 0)  // no chunk ran: dW = beta·dW
        backend<Device>::gemm(false, true, filters, rows, 0, 1, dyw_.data(), col_.data(), grad_beta(g), weight.grad.data());
      backend<Device>::template reduce<reduction::sum>(bias.grad.data(), dy.batch, filters, cols, dy.as_expr(),
                                                       grad_beta(g));
      return dx_.cv();
    }

    /// See the file comment: returns conv(gbar; W) without bias, adds DY·im2col_wide(gbar)ᵀ into dW.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> /*xbar*/) {
      check_batch([] { return name(); }, "the input-gradient adjoint", gbar.batch, x_.batch, [] { return in_shape::str(); });
      check_batch([] { return name(); }, "the saved output gradient", dy_.batch, x_.batch, [] { return out_shape::str(); });
      dybar_.resize(gbar.batch);
      const std::size_t chunk = detail::conv_chunk<Device>(gbar.batch, rows * cols);
      work_.resize(chunk);  // not col_: a later backward (the down sweep) still needs im2col(x)
      wide_.resize(chunk);
      dyw_.resize(chunk);
      for (std::size_t b0 = 0; b0 < gbar.batch; b0 += chunk) {
        const std::size_t nb = std::min(chunk, gbar.batch - b0), n = nb * cols;
        backend<Device>::im2col_wide(gbar.ptr + b0 * in_shape::size, nb, geometry, work_.data());
        backend<Device>::gemm(false, false, filters, n, rows, 1, weight.value.data(), work_.data(), 0, wide_.data());
        backend<Device>::swap_axes(dybar_.data() + b0 * out_shape::size, wide_.data(), filters, nb, cols);
        backend<Device>::swap_axes(dyw_.data(), dy_.ptr + b0 * out_shape::size, nb, filters, cols);
        backend<Device>::gemm(false, true, filters, rows, n, 1, dyw_.data(), work_.data(), 1, weight.grad.data());
      }
      return dybar_.cv();
    }

   private:
    cview<in_shape, Device> x_{};
    cview<out_shape, Device> dy_{};
    bool whole_col_ = false;
    tensor<out_shape, Device> y_, dybar_, wide_, dyw_;  // wide_, dyw_: [F][chunk·OH·OW]
    tensor<in_shape, Device> dx_;
    tensor<shape<rows, cols>, Device> col_, work_;  // [C·K·K][chunk·OH·OW]
  };
};

/// 2-D transposed convolution (PyTorch's ConvTranspose2d without output_padding), see the file comment.
template <std::size_t Filters, class... Options>
struct conv_transpose {
  using options = detail::conv_options<Options...>;
  static_assert(options::all_known,
                "cdgan::nn::conv_transpose<Filters, Options...>: every option must be nn::kernel<K>, nn::stride<S> "
                "or nn::pad<P>");
  static_assert(options::kernels == 1,
                "cdgan::nn::conv_transpose<Filters, Options...>: give the kernel size exactly once, e.g. "
                "nn::conv_transpose<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>");
  static_assert(options::strides <= 1 && options::pads <= 1,
                "cdgan::nn::conv_transpose<Filters, Options...>: nn::stride and nn::pad may each be given at most once");
  static_assert(Filters > 0,
                "cdgan::nn::conv_transpose<Filters, ...>: zero filters; a transposed convolution needs at least one "
                "output channel");
  static_assert(options::kernels != 1 || options::k > 0,
                "cdgan::nn::conv_transpose: kernel<0>; the kernel size must be positive");
  static_assert(options::s > 0, "cdgan::nn::conv_transpose: stride<0>; the stride must be positive");

  static constexpr std::size_t filters = Filters > 0 ? Filters : 1;
  static constexpr std::size_t k = options::k > 0 ? options::k : 1, s = options::s > 0 ? options::s : 1,
                               p = options::p;

  template <shape_type In, class Device>
  struct bind {
    static_assert(In::rank == 3,
                  "cdgan::nn::conv_transpose: the input must be an image shape<C, H, W> (insert nn::reshape<C, H, W> "
                  "before the transposed convolution)");
    static constexpr std::size_t c = detail::conv_extent<In, 0>, h = detail::conv_extent<In, 1>,
                                 w = detail::conv_extent<In, 2>;
    static_assert(In::rank != 3 || ((h - 1) * s + k > 2 * p && (w - 1) * s + k > 2 * p),
                  "cdgan::nn::conv_transpose: the padding removes the whole output ((H - 1)*stride + kernel <= 2*pad)");
    static constexpr bool fits = (h - 1) * s + k > 2 * p && (w - 1) * s + k > 2 * p;
    static constexpr std::size_t oh = fits ? (h - 1) * s + k - 2 * p : 1, ow = fits ? (w - 1) * s + k - 2 * p : 1;

    using in_shape = In;
    using out_shape = shape<filters, oh, ow>;
    using device = Device;
    static constexpr bool linear_in_input = true;
    static constexpr std::size_t fan_in = filters * k * k;  // PyTorch: weight.size(1) * K * K
    /// The convolution this layer is the transpose of: from the output image back to the input grid.
    static constexpr conv_geometry geometry{filters, oh, ow, k, s, p, h, w};
    static constexpr std::size_t rows = filters * k * k, cols = h * w;  // of one sample's column matrix

    parameter<shape<c, filters, k, k>, Device> weight;
    parameter<shape<filters>, Device> bias;

    static std::string name() { return detail::conv_name("conv_transpose", Filters, k, s, p); }

    void init(rng& g) {
      const real bound = real(1) / std::sqrt(static_cast<real>(fan_in));
      weight.value = g.uniform(-bound, bound);
      bias.value = g.uniform(-bound, bound);
    }
    template <class F>
    void for_each_parameter(F&& f) {
      f(make_ref("weight", weight));
      f(make_ref("bias", bias));
    }

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      x_ = x;
      y_.resize(x.batch);
      check_finite<Device>([] { return name(); }, "weight", weight.value.data(), weight.value.size());
      y_ = per_channel<oh * ow, shape<filters>, Device>(bias.value.cv());
      const std::size_t chunk = detail::conv_chunk<Device>(x.batch, rows * cols);
      xw_.resize(chunk);
      work_.resize(chunk);
      for (std::size_t b0 = 0; b0 < x.batch; b0 += chunk) {
        const std::size_t nb = std::min(chunk, x.batch - b0);
        backend<Device>::swap_axes(xw_.data(), x.ptr + b0 * in_shape::size, nb, c, cols);
        backend<Device>::gemm(true, false, rows, nb * cols, c, 1, weight.value.data(), xw_.data(), 0, work_.data());
        backend<Device>::col2im_wide(work_.data(), nb, geometry, y_.data() + b0 * out_shape::size);  // onto the bias
      }
      whole_x_ = chunk == x.batch;  // xw_ holds x of the whole batch, [C][batch·H·W]
      return y_.cv();
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, x_.batch, [] { return out_shape::str(); });
      dy_ = dy;
      dx_.resize(dy.batch);
      const std::size_t chunk = detail::conv_chunk<Device>(dy.batch, rows * cols);
      dcol_.resize(chunk);
      wide_.resize(chunk);
      for (std::size_t b0 = 0; b0 < dy.batch; b0 += chunk) {
        const std::size_t nb = std::min(chunk, dy.batch - b0), n = nb * cols;
        backend<Device>::im2col_wide(dy.ptr + b0 * out_shape::size, nb, geometry, dcol_.data());
        backend<Device>::gemm(false, false, c, n, rows, 1, weight.value.data(), dcol_.data(), 0, wide_.data());
        backend<Device>::swap_axes(dx_.data() + b0 * in_shape::size, wide_.data(), c, nb, cols);
        if (g == grads::skip) continue;
        if (!whole_x_) backend<Device>::swap_axes(xw_.data(), x_.ptr + b0 * in_shape::size, nb, c, cols);
        backend<Device>::gemm(false, true, c, rows, n, 1, xw_.data(), dcol_.data(), b0 == 0 ? grad_beta(g) : 1,
                              weight.grad.data());
      }
      whole_dcol_ = chunk == dy.batch;  // dcol_ holds im2col(dy) of the whole batch
      if (g == grads::skip) return dx_.cv();
      if (dy.batch == 0)  // no chunk ran: dW = beta·dW
        backend<Device>::gemm(false, true, c, rows, 0, 1, xw_.data(), dcol_.data(), grad_beta(g), weight.grad.data());
      backend<Device>::template reduce<reduction::sum>(bias.grad.data(), dy.batch, filters, oh * ow, dy.as_expr(),
                                                       grad_beta(g));
      return dx_.cv();
    }

    /// See the file comment: returns conv_transpose(gbar; W) without bias, adds
    /// swap_axes(gbar)·im2col_wide(dy)ᵀ into dW.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> /*xbar*/) {
      check_batch([] { return name(); }, "the input-gradient adjoint", gbar.batch, x_.batch, [] { return in_shape::str(); });
      check_batch([] { return name(); }, "the saved output gradient", dy_.batch, x_.batch, [] { return out_shape::str(); });
      dybar_.resize(gbar.batch);
      dybar_ = 0.f;
      const std::size_t chunk = detail::conv_chunk<Device>(gbar.batch, rows * cols);
      wide_.resize(chunk);
      work_.resize(chunk);
      dcol_.resize(chunk);
      for (std::size_t b0 = 0; b0 < gbar.batch; b0 += chunk) {
        const std::size_t nb = std::min(chunk, gbar.batch - b0), n = nb * cols;
        backend<Device>::swap_axes(wide_.data(), gbar.ptr + b0 * in_shape::size, nb, c, cols);
        if (!whole_dcol_) backend<Device>::im2col_wide(dy_.ptr + b0 * out_shape::size, nb, geometry, dcol_.data());
        backend<Device>::gemm(false, true, c, rows, n, 1, wide_.data(), dcol_.data(), 1, weight.grad.data());
        backend<Device>::gemm(true, false, rows, n, c, 1, weight.value.data(), wide_.data(), 0, work_.data());
        backend<Device>::col2im_wide(work_.data(), nb, geometry, dybar_.data() + b0 * out_shape::size);
      }
      return dybar_.cv();
    }

   private:
    cview<in_shape, Device> x_{};
    cview<out_shape, Device> dy_{};
    bool whole_x_ = false, whole_dcol_ = false;
    tensor<out_shape, Device> y_, dybar_;
    tensor<in_shape, Device> dx_, xw_, wide_;  // xw_, wide_: [C][chunk·H·W]
    tensor<shape<rows, cols>, Device> work_, dcol_;  // [F·K·K][chunk·H·W]
  };
};

/// `conv2d<F, K, S, P>` = `conv<F, kernel<K>, stride<S>, pad<P>>`.
template <std::size_t Filters, std::size_t K, std::size_t S = 1, std::size_t P = 0>
using conv2d = conv<Filters, kernel<K>, stride<S>, pad<P>>;
/// `conv_transpose2d<F, K, S, P>` = `conv_transpose<F, kernel<K>, stride<S>, pad<P>>`.
template <std::size_t Filters, std::size_t K, std::size_t S = 1, std::size_t P = 0>
using conv_transpose2d = conv_transpose<Filters, kernel<K>, stride<S>, pad<P>>;

}  // namespace cdgan::nn
