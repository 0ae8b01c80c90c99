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
/// How. Both are lowered to GEMMs over the `backend<Device>::im2col` buffer, whose layout is
/// [batch][C·K·K][OH·OW]:
/// - conv forward: col = im2col(x); y_b = W·col_b (one strided-batched GEMM sharing W); y += bias.
///   backward: dcol_b = Wᵀ·dy_b, dx = col2im(dcol); dW = Σ_b dy_b·col_bᵀ; db = Σ dy.
/// - conv_transpose forward: col_b = Wᵀ·x_b; y = bias; y += col2im(col).
///   backward: dcol = im2col(dy); dx_b = W·dcol_b; dW = Σ_b x_b·dcol_bᵀ; db = Σ dy.
/// A 1×1 kernel with stride 1 and no padding skips im2col/col2im (the image is its own column buffer).
/// The per-sample GEMMs of the forward and input-gradient passes are one strided-batched GEMM sharing W
/// (stride 0); on the CPU this measured 2-3× faster than permuting the column buffer into one large GEMM.
/// Layers never loop over device memory themselves, so the same code runs on every backend.
///
/// Second-order pass (exact WGAN-GP penalty): both layers are linear in their input, and their input
/// gradient is bilinear in (dy, W). For conv, dx = convᵀ(dy; W): given the adjoint gbar of dx,
/// the adjoint of dy is conv(gbar; W) without bias, and dW += Σ_b dy_b·im2col(gbar)_bᵀ (the weight
/// gradient of a backward with input gbar and output gradient dy). For conv_transpose, dx = conv(dy; W)
/// without bias: the adjoint of dy is conv_transpose(gbar; W) without bias, and
/// dW += Σ_b gbar_b·im2col(dy)_bᵀ. Neither bias enters dx.
///
/// Requires: `backward` after the `forward` of the same batch (x stays valid in between);
/// `double_backward` after that `backward` (dy stays valid in between). The column buffer of the
/// forward pass survives `double_backward`, so the down sweep of sequential::double_backward may call
/// `backward(..., grads::accumulate)` again.
/// Ensures: impossible geometry (kernel larger than the padded input, zero filters, zero stride or
/// kernel, a non-image input) is a static_assert naming the layer; a wrong run-time batch is a
/// shape_error naming the layer. `init` is PyTorch's default: weight and bias ~ U(−1/√fan_in, 1/√fan_in)
/// (kaiming_uniform with a = √5), fan_in = C·K·K for conv and F·K·K for conv_transpose
/// (PyTorch computes it from weight.size(1)).
#pragma once
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

/// C = beta·C + Σ_b A_b·B_bᵀ, A_b (M×K) at A + b·M·K, B_b (N×K) at B + b·N·K (row-major): the weight
/// gradient of a convolution summed over the batch.
///
/// A backend may provide this as `backend<Device>::gemm_nt_batch_sum(M, N, K, A, B, batch, beta, C)`
/// (a GPU backend can then avoid one launch per sample); otherwise it is a sequence of GEMMs
/// accumulating into C, which needs no extra memory. Measured on the CPU backend (1 thread, batch 64,
/// the MNIST critic's and generator's layers) this loop beat both alternatives: permuting A and B into
/// [M][batch·K] / [N][batch·K] for one large GEMM (2-7× slower: the gather costs more than it saves) and
/// a strided-batched GEMM into per-sample partials followed by a batch reduction (1-4× slower).
template <class Device>
void gemm_nt_sum_over_batch(std::size_t M, std::size_t N, std::size_t K, const real* A, const real* B,
                            std::size_t batch, real beta, real* C) {
  if constexpr (requires { backend<Device>::gemm_nt_batch_sum(M, N, K, A, B, batch, beta, C); }) {
    backend<Device>::gemm_nt_batch_sum(M, N, K, A, B, batch, beta, C);
  } else {
    if (batch == 0) {
      backend<Device>::gemm(false, true, M, N, 0, 1, A, B, beta, C);
      return;
    }
    for (std::size_t b = 0; b < batch; ++b)
      backend<Device>::gemm(false, true, M, N, K, 1, A + b * M * K, B + b * N * K, b == 0 ? beta : real(1), C);
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
    /// A 1×1, stride-1, unpadded convolution is a plain GEMM on the image.
    static constexpr bool pointwise = k == 1 && s == 1 && p == 0;

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
      check_finite<Device>(name(), "weight", weight.value.data(), weight.value.size());
      const real* col = columns(x);
      backend<Device>::gemm_batched(false, false, filters, cols, rows, 1, weight.value.data(), 0, col, rows * cols, 0,
                                    y_.data(), filters * cols, x.batch);
      y_ += per_channel<cols, shape<filters>, Device>(bias.value.cv());
      return y_.cv();
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      check_batch(name(), "the output gradient", dy.batch, x_.batch, out_shape::str());
      dy_ = dy;
      dx_.resize(dy.batch);
      if constexpr (pointwise) {
        backend<Device>::gemm_batched(true, false, rows, cols, filters, 1, weight.value.data(), 0, dy.ptr,
                                      filters * cols, 0, dx_.data(), rows * cols, dy.batch);
      } else {
        work_.resize(dy.batch);
        backend<Device>::gemm_batched(true, false, rows, cols, filters, 1, weight.value.data(), 0, dy.ptr,
                                      filters * cols, 0, work_.data(), rows * cols, dy.batch);
        dx_ = 0.f;
        backend<Device>::col2im(work_.data(), dy.batch, geometry, dx_.data());
      }
      if (g == grads::skip) return dx_.cv();
      const real* col = pointwise ? x_.ptr : col_.data();
      detail::gemm_nt_sum_over_batch<Device>(filters, rows, cols, dy.ptr, col, dy.batch, grad_beta(g),
                                             weight.grad.data());
      backend<Device>::template reduce<reduction::sum>(bias.grad.data(), dy.batch, filters, cols, dy.as_expr(),
                                                       grad_beta(g));
      return dx_.cv();
    }

    /// See the file comment: returns conv(gbar; W) without bias, adds Σ_b dy_b·im2col(gbar)_bᵀ into dW.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> /*xbar*/) {
      check_batch(name(), "the input-gradient adjoint", gbar.batch, x_.batch, in_shape::str());
      check_batch(name(), "the saved output gradient", dy_.batch, x_.batch, out_shape::str());
      dybar_.resize(gbar.batch);
      const real* gcol = gbar.ptr;
      if constexpr (!pointwise) {
        work_.resize(gbar.batch);  // not col_: a later backward (the down sweep) still needs im2col(x)
        backend<Device>::im2col(gbar.ptr, gbar.batch, geometry, work_.data());
        gcol = work_.data();
      }
      backend<Device>::gemm_batched(false, false, filters, cols, rows, 1, weight.value.data(), 0, gcol, rows * cols, 0,
                                    dybar_.data(), filters * cols, gbar.batch);
      detail::gemm_nt_sum_over_batch<Device>(filters, rows, cols, dy_.ptr, gcol, gbar.batch, 1, weight.grad.data());
      return dybar_.cv();
    }

   private:
    /// im2col(x) into col_, or x itself for a pointwise convolution.
    const real* columns(cview<in_shape, Device> x) {
      if constexpr (pointwise) {
        return x.ptr;
      } else {
        col_.resize(x.batch);
        backend<Device>::im2col(x.ptr, x.batch, geometry, col_.data());
        return col_.data();
      }
    }

    cview<in_shape, Device> x_{};
    cview<out_shape, Device> dy_{};
    tensor<out_shape, Device> y_, dybar_;
    tensor<in_shape, Device> dx_;
    tensor<shape<rows, cols>, Device> col_, work_;
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
    static constexpr bool pointwise = k == 1 && s == 1 && p == 0;

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
      check_finite<Device>(name(), "weight", weight.value.data(), weight.value.size());
      y_ = per_channel<oh * ow, shape<filters>, Device>(bias.value.cv());
      if constexpr (pointwise) {
        backend<Device>::gemm_batched(true, false, rows, cols, c, 1, weight.value.data(), 0, x.ptr, c * cols, 1,
                                      y_.data(), rows * cols, x.batch);
      } else {
        work_.resize(x.batch);
        backend<Device>::gemm_batched(true, false, rows, cols, c, 1, weight.value.data(), 0, x.ptr, c * cols, 0,
                                      work_.data(), rows * cols, x.batch);
        backend<Device>::col2im(work_.data(), x.batch, geometry, y_.data());  // adds onto the bias
      }
      return y_.cv();
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      check_batch(name(), "the output gradient", dy.batch, x_.batch, out_shape::str());
      dy_ = dy;
      dx_.resize(dy.batch);
      const real* dcol = dy.ptr;
      if constexpr (!pointwise) {
        dcol_.resize(dy.batch);  // kept for double_backward
        backend<Device>::im2col(dy.ptr, dy.batch, geometry, dcol_.data());
        dcol = dcol_.data();
      }
      backend<Device>::gemm_batched(false, false, c, cols, rows, 1, weight.value.data(), 0, dcol, rows * cols, 0,
                                    dx_.data(), c * cols, dy.batch);
      if (g == grads::skip) return dx_.cv();
      detail::gemm_nt_sum_over_batch<Device>(c, rows, cols, x_.ptr, dcol, dy.batch, grad_beta(g), weight.grad.data());
      backend<Device>::template reduce<reduction::sum>(bias.grad.data(), dy.batch, filters, oh * ow, dy.as_expr(),
                                                       grad_beta(g));
      return dx_.cv();
    }

    /// See the file comment: returns conv_transpose(gbar; W) without bias, adds Σ_b gbar_b·im2col(dy)_bᵀ
    /// into dW.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> /*xbar*/) {
      check_batch(name(), "the input-gradient adjoint", gbar.batch, x_.batch, in_shape::str());
      check_batch(name(), "the saved output gradient", dy_.batch, x_.batch, out_shape::str());
      dybar_.resize(gbar.batch);
      const real* dcol = pointwise ? dy_.ptr : dcol_.data();
      detail::gemm_nt_sum_over_batch<Device>(c, rows, cols, gbar.ptr, dcol, gbar.batch, 1, weight.grad.data());
      if constexpr (pointwise) {
        backend<Device>::gemm_batched(true, false, rows, cols, c, 1, weight.value.data(), 0, gbar.ptr, c * cols, 0,
                                      dybar_.data(), rows * cols, gbar.batch);
      } else {
        work_.resize(gbar.batch);
        backend<Device>::gemm_batched(true, false, rows, cols, c, 1, weight.value.data(), 0, gbar.ptr, c * cols, 0,
                                      work_.data(), rows * cols, gbar.batch);
        dybar_ = 0.f;
        backend<Device>::col2im(work_.data(), gbar.batch, geometry, dybar_.data());
      }
      return dybar_.cv();
    }

   private:
    cview<in_shape, Device> x_{};
    cview<out_shape, Device> dy_{};
    tensor<out_shape, Device> y_, dybar_;
    tensor<in_shape, Device> dx_;
    tensor<shape<rows, cols>, Device> work_, dcol_;
  };
};

/// `conv2d<F, K, S, P>` = `conv<F, kernel<K>, stride<S>, pad<P>>`.
template <std::size_t Filters, std::size_t K, std::size_t S = 1, std::size_t P = 0>
using conv2d = conv<Filters, kernel<K>, stride<S>, pad<P>>;
/// `conv_transpose2d<F, K, S, P>` = `conv_transpose<F, kernel<K>, stride<S>, pad<P>>`.
template <std::size_t Filters, std::size_t K, std::size_t S = 1, std::size_t P = 0>
using conv_transpose2d = conv_transpose<Filters, kernel<K>, stride<S>, pad<P>>;

}  // namespace cdgan::nn
