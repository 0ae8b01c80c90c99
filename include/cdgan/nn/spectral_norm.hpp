/// @file nn/spectral_norm.hpp
/// `spectral_norm<Layer, PowerIterations = 1>`: a weight-bearing layer (dense, conv, conv_transpose)
/// whose weight is divided by an estimate of its largest singular value, as SNGAN and
/// torch.nn.utils.spectral_norm do.
///
/// What this represents. The wrapper owns the trained weight `weight_orig` (W, same shape as the inner
/// layer's `weight`) and two persistent unit vectors u and v (buffers `weight_u`, `weight_v`, drawn
/// from N(0, 1) and normalised at `init`). W is viewed as a matrix M of `rows` × `cols`:
/// - Dim = 0 (default): M = W reshaped to [shape[0], rest], PyTorch's choice for Linear and Conv2d.
/// - Dim = 1: M[b, (a, r)] = W[a, b, r], i.e. dim 1 moved to the front, PyTorch's choice for
///   ConvTranspose2d, whose weight is laid out (in, out, k, k).
///   The default Dim is `spectral_norm_dim<Layer>::value` (1 for `conv_transpose`, 0 otherwise), or
///   the bound inner layer's `static constexpr std::size_t spectral_norm_dim` when it declares one;
///   the third template argument overrides both.
/// forward(x, m):
/// - in mode::train, unless `freeze_u` is set, runs `PowerIterations` steps of
///   v ← normalize(Mᵀu), u ← normalize(M v)   (normalize(z) = z / max(‖z‖, 1e-12));
/// - σ = uᵀ M v (in both modes; mode::eval never changes u, v: PyTorch's behaviour);
/// - writes W / σ into the inner layer's `weight.value` and runs the inner forward.
/// backward: u and v are constants (as in PyTorch), σ = uᵀWv is a function of W, so with
/// G = dL/dW_sn (the inner layer's weight gradient):
///   dL/dW = (G − λ u vᵀ) / σ,   λ = <G, W_sn> = Σ G ⊙ W / σ
/// (u vᵀ laid out as W). The inner bias gradient is the inner layer's own.
/// double_backward: the inner layer's second-order weight term, converted by the same map and *added*
/// into weight_orig's gradient.
///
/// Parameters: "weight_orig", then the inner layer's other parameters ("bias"). Buffers (see
/// `for_each_buffer`): "weight_u", "weight_v" (PyTorch's state_dict names).
///
/// Deterministic use (gradient checks, the penalty gradient check): σ depends on u and v, which a
/// train-mode forward changes. Either forward in mode::eval (u, v fixed) or set `freeze_u = true`.
///
/// Requires: the inner layer has members `weight` and `bias` (parameter<...>) and names them so in
/// for_each_parameter; for double_backward it must have one.
///
/// @code
/// @inproceedings{miyato2018spectral, title={Spectral Normalization for Generative Adversarial Networks},
///   author={Miyato, Takeru and Kataoka, Toshiki and Koyama, Masanori and Yoshida, Yuichi}, booktitle={ICLR}, year={2018}}
/// @endcode
#pragma once
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

#include "layer.hpp"

namespace cdgan::nn {

template <std::size_t Filters, class... Options>
struct conv_transpose;  // nn/conv.hpp

/// The weight dimension that spectral_norm<Layer> moves to the front (0 unless said otherwise):
/// specialise it for a layer policy, or give the bound layer `static constexpr std::size_t
/// spectral_norm_dim`. conv_transpose (weight (in, out, k, k), as PyTorch) uses 1.
template <class Layer>
struct spectral_norm_dim {
  static constexpr std::size_t value = 0;
};
template <std::size_t Filters, class... Options>
struct spectral_norm_dim<conv_transpose<Filters, Options...>> {
  static constexpr std::size_t value = 1;
};

namespace detail {
template <class L>
concept declares_spectral_dim = requires { L::spectral_norm_dim; };
}  // namespace detail

template <class Layer, std::size_t PowerIterations = 1, std::size_t Dim = std::size_t(-1)>
struct spectral_norm {
  static_assert(Dim == std::size_t(-1) || Dim <= 1, "cdgan::nn::spectral_norm: Dim must be 0 or 1");

  template <shape_type In, class Device>
  struct bind {
    using inner_type = bind_t<Layer, In, Device>;
    using in_shape = In;
    using out_shape = typename inner_type::out_shape;
    using device = Device;
    using weight_shape = typename decltype(std::declval<inner_type&>().weight.value)::shape;
    static constexpr bool linear_in_input = inner_type::linear_in_input;

    static constexpr std::size_t dim = [] {
      if constexpr (Dim != std::size_t(-1))
        return Dim;
      else if constexpr (detail::declares_spectral_dim<inner_type>)
        return std::size_t(inner_type::spectral_norm_dim);
      else
        return spectral_norm_dim<Layer>::value;
    }();
    static_assert(dim == 0 || weight_shape::rank >= 2,
                  "cdgan::nn::spectral_norm: Dim = 1 needs a weight with at least two extents");
    /// W seen as [outer][rows][inner]; M[b, (a, r)] = W[a, b, r] is rows × cols.
    static constexpr std::size_t outer = dim == 0 ? 1 : weight_shape::dims[0];
    static constexpr std::size_t rows = weight_shape::dims[dim < weight_shape::rank ? dim : 0];
    static constexpr std::size_t inner = weight_shape::size / (outer * rows);
    static constexpr std::size_t cols = outer * inner;
    static constexpr std::size_t wsize = weight_shape::size;

    parameter<weight_shape, Device> weight_orig;
    /// When true, train-mode forwards leave u and v alone (for finite-difference checks).
    bool freeze_u = false;

    static std::string name() {
      return "spectral_norm<" + inner_type::name() + (PowerIterations != 1 ? ", " + std::to_string(PowerIterations) : "") +
             ">";
    }

    inner_type& inner_layer() { return inner_; }
    const tensor<shape<rows>, Device>& u() const { return u_; }
    const tensor<shape<cols>, Device>& v() const { return v_; }
    /// σ of the last forward (or power_iteration), copied to the host.
    real sigma() const { return sigma_.to_host()[0]; }

    /// The inner layer's initialisation for W; u, v ~ N(0, 1), normalised (no power iteration, as
    /// torch.nn.utils.spectral_norm).
    void init(rng& g) {
      inner_.init(g);
      weight_orig.value = inner_.weight.value.cv();
      u_ = g.normal();
      v_ = g.normal();
      normalize(u_);
      normalize(v_);
      compute_sigma();
    }
    template <class F>
    void for_each_parameter(F&& f) {
      f(make_ref("weight_orig", weight_orig));
      inner_.for_each_parameter([&](parameter_ref<Device> p) {
        if (p.name != "weight") f(std::move(p));
      });
    }
    template <class F>
    void for_each_buffer(F&& f) {
      f(parameter_ref<Device>{"weight_u", u_.data(), nullptr, rows, {rows}});
      f(parameter_ref<Device>{"weight_v", v_.data(), nullptr, cols, {cols}});
    }

    /// Runs `iterations` power-iteration steps on the current weight_orig, updates σ and the inner
    /// layer's weight (W / σ).
    void power_iteration(std::size_t iterations) {
      for (std::size_t i = 0; i < iterations; ++i) {
        mat_t_vec(u_.data(), v_.data());
        normalize(v_);
        mat_vec(v_.data(), u_.data());
        normalize(u_);
      }
      compute_sigma();
    }

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode m = mode::train) {
      check_finite<Device>([] { return name(); }, "weight_orig", weight_orig.value.data(), wsize);
      if (m == mode::train && !freeze_u)
        power_iteration(PowerIterations);
      else
        compute_sigma();
      return inner_.forward(x, m);
    }

    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      if (g == grads::skip) return inner_.backward(dy, g);
      // The inner layer writes G into its own weight gradient (and its bias gradient as g asks).
      if (g == grads::accumulate) inner_.weight.grad = 0.f;
      auto dx = inner_.backward(dy, g);
      convert(g);
      return dx;
    }

    /// Second-order pass: the inner layer's, with its added weight term converted to weight_orig.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> xbar)
      requires detail::has_double_backward<inner_type>
    {
      inner_.weight.grad = 0.f;
      auto dybar = inner_.double_backward(gbar, xbar);
      convert(grads::accumulate);
      return dybar;
    }

   private:
    /// dst[rows] = M src[cols].
    void mat_vec(const real* src, real* dst) {
      const real* w = weight_orig.value.data();
      if constexpr (outer == 1) {
        backend<Device>::gemm(false, false, rows, 1, inner, 1, w, src, 0, dst);
      } else {
        backend<Device>::gemm_batched(false, false, rows, 1, inner, 1, w, rows * inner, src, inner, 0, tmp_.data(),
                                      rows, outer);
        backend<Device>::template reduce<reduction::sum>(dst, outer, rows, 1, tmp_.as_expr());
      }
    }
    /// dst[cols] = Mᵀ src[rows].
    void mat_t_vec(const real* src, real* dst) {
      const real* w = weight_orig.value.data();
      if constexpr (outer == 1)
        backend<Device>::gemm(true, false, inner, 1, rows, 1, w, src, 0, dst);
      else
        backend<Device>::gemm_batched(true, false, inner, 1, rows, 1, w, rows * inner, src, 0, 0, dst, inner, outer);
    }
    /// z ← z / max(‖z‖, 1e-12), on the device.
    template <std::size_t N>
    void normalize(tensor<shape<N>, Device>& z) {
      backend<Device>::template reduce<reduction::sum>(norm_.data(), 1, 1, N, square(z));
      norm_ = max(sqrt(norm_), 1e-12f);
      z = z / per_sample<N, Device>(norm_.data(), 1);
    }
    /// σ = uᵀ M v; the inner weight becomes W / σ.
    void compute_sigma() {
      mat_vec(v_.data(), wv_.data());
      backend<Device>::template reduce<reduction::sum>(sigma_.data(), 1, 1, rows, u_ * wv_);
      inner_.weight.value = weight_orig.value / per_sample<wsize, Device>(sigma_.data(), 1);
    }
    /// weight_orig.grad (per g) ← (G − λ u vᵀ) / σ with G the inner weight gradient, λ = <G, W_sn>.
    void convert(grads g) {
      backend<Device>::template reduce<reduction::sum>(lambda_.data(), 1, 1, wsize,
                                                       inner_.weight.grad * inner_.weight.value);
      // u vᵀ laid out as W: uv[a][b][r] = u[b] v[a·inner + r].
      if constexpr (outer == 1)
        backend<Device>::gemm(false, false, rows, inner, 1, 1, u_.data(), v_.data(), 0, uv_.data());
      else
        backend<Device>::gemm_batched(false, false, rows, inner, 1, 1, u_.data(), 0, v_.data(), inner, 0, uv_.data(),
                                      rows * inner, outer);
      const auto s = per_sample<wsize, Device>(sigma_.data(), 1);
      const auto l = per_sample<wsize, Device>(lambda_.data(), 1);
      write_grad(weight_orig, (inner_.weight.grad - l * uv_) / s, g);
    }

    inner_type inner_;
    tensor<shape<rows>, Device> u_{1}, wv_{1};
    tensor<shape<cols>, Device> v_{1};
    tensor<shape<outer, rows>, Device> tmp_{1};
    tensor<weight_shape, Device> uv_{1};
    tensor<shape<1>, Device> sigma_{1}, lambda_{1}, norm_{1};
  };
};

}  // namespace cdgan::nn
