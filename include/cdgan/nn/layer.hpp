/// @file nn/layer.hpp
/// The layer contract, parameters and the helpers every layer uses.
///
/// What this represents. A *layer policy* (`dense<128>`, `conv<64, kernel<4>, stride<2>, pad<1>>`,
/// `relu`) is an empty type naming only what the layer adds. Binding it to an input shape and a device,
/// `typename L::template bind<In, Device>`, gives the concrete layer, whose members are:
///
///   using in_shape = In; using out_shape = ...; using device = Device;
///   static std::string name();                         // "dense<128>"
///   cview<out_shape, Device> forward(cview<in_shape, Device> x, mode m);
///   cview<in_shape, Device>  backward(cview<out_shape, Device> dy, grads g = grads::assign);
///   template <class F> void for_each_parameter(F&& f); // f(parameter_ref<Device>)
///   void init(rng& g);                                 // PyTorch's default initialisation
///
/// Requires: `backward` follows the `forward` of the same batch; `x` stays valid in between.
/// Ensures:
/// - `forward` returns a view of the layer's own output buffer (valid until the next forward).
/// - `backward` returns dL/dx in the layer's own buffer; parameter gradients are *assigned*
///   (`grads::assign`: every element is written, which the gradient checker verifies by pre-filling
///   them with +inf), *added* (`grads::accumulate`) or left alone (`grads::skip`, used for the input
///   gradient of a gradient penalty).
/// - A batch that disagrees with the forward batch, or a NaN when checks are on, throws an error
///   that names the layer and the shapes.
///
/// Layers that a WGAN-GP critic may contain also implement the second-order pass (see
/// nn/double_backward.hpp): `double_backward(gbar, xbar)`.
#pragma once
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include "../backend/cpu/backend.hpp"
#include "../core/device.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/shape.hpp"
#include "../core/tensor.hpp"

namespace cdgan::nn {

using cdgan::cview;
using cdgan::mode;
using cdgan::shape;
using cdgan::tensor;
using cdgan::view;

/// A trainable tensor: its value and its gradient, both of shape S (batch 1).
template <shape_type S, class Device>
struct parameter {
  tensor<S, Device> value{1}, grad{1};
};

/// A type-erased handle on one parameter, for optimisers, checkpoints and gradient checks.
template <class Device>
struct parameter_ref {
  std::string name;
  real* value;
  real* grad;
  std::size_t size;
  std::vector<std::size_t> dims;
};

template <shape_type S, class Device>
parameter_ref<Device> make_ref(std::string name, parameter<S, Device>& p) {
  return {std::move(name), p.value.data(), p.grad.data(), S::size, {S::dims.begin(), S::dims.end()}};
}

/// What `backward` does with parameter gradients.
enum class grads { assign, accumulate, skip };

/// The beta of a GEMM or reduction that writes a parameter gradient.
inline real grad_beta(grads g) { return g == grads::accumulate ? real(1) : real(0); }

/// Writes a parameter gradient: g = e, g += e, or nothing.
template <shape_type S, class Device, class E>
void write_grad(parameter<S, Device>& p, const E& e, grads g) {
  if (g == grads::accumulate)
    p.grad += e;
  else if (g == grads::assign)
    p.grad = e;
}

namespace detail {
/// The text of a message part: a string, or a callable returning one (evaluated only on failure, so
/// that a passing check builds no string and allocates nothing inside a training step).
template <class T>
std::string message_text(const T& t) {
  if constexpr (std::is_invocable_v<const T&>)
    return std::string(t());
  else
    return std::string(t);
}
}  // namespace detail

/// Throws a shape_error naming the layer when a run-time batch disagrees with the expected one.
/// `layer` and `sample_shape` are strings or callables returning them (e.g. `[] { return name(); }`).
template <class Layer, class Shape>
void check_batch(const Layer& layer, const char* what, std::size_t got, std::size_t want, const Shape& sample_shape) {
  if (got != want)
    throw shape_error("cdgan: layer " + detail::message_text(layer) + ": " + what + " has batch " + std::to_string(got) +
                      " of shape " + detail::message_text(sample_shape) + ", but the forward pass had batch " +
                      std::to_string(want));
}

/// When checks are on (cdgan::set_checks(true)), throws a numeric_error naming the layer and the
/// tensor if any element of [p, p + n) is not finite. `layer` as for check_batch.
template <class Device, class Layer>
void check_finite(const Layer& layer, const char* what, const real* p, std::size_t n) {
  if (!checks_enabled() || n == 0) return;
  if (!backend<Device>::all_finite(p, n))
    throw numeric_error("cdgan: layer " + detail::message_text(layer) + ": " + what + " holds a NaN or an infinity");
}

namespace detail {
template <class L>
concept has_double_backward = requires(L& l) { &L::double_backward; };
}  // namespace detail

/// The concrete layer of policy L for input shape In on Device.
template <class L, shape_type In, class Device>
using bind_t = typename L::template bind<In, Device>;
/// The output shape of policy L for input shape In.
template <class L, shape_type In>
using output_shape_t = typename bind_t<L, In, cpu>::out_shape;

}  // namespace cdgan::nn
