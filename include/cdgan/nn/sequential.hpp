/// @file nn/sequential.hpp
/// `sequential<Layers...>`: layers applied in order, each bound to the previous one's output shape at
/// compile time. A sequential is itself a layer policy, so networks nest (`append<trunk, dense<1>>`).
/// With `input<...>` first it is a complete network: `network<Net, Device>` is its concrete type.
#pragma once
#include <cstddef>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "layer.hpp"
#include "reshape.hpp"

namespace cdgan::nn {

namespace detail {
template <shape_type In, class Device, class... Ls>
struct chain {
  using types = std::tuple<>;
  using out = In;
};
template <shape_type In, class Device, class L, class... Rest>
struct chain<In, Device, L, Rest...> {
  using first = bind_t<L, In, Device>;
  using rest = chain<typename first::out_shape, Device, Rest...>;
  using types = decltype(std::tuple_cat(std::declval<std::tuple<first>>(), std::declval<typename rest::types>()));
  using out = typename rest::out;
};

template <class L>
struct input_of {
  static constexpr bool rooted = false;
};
template <std::size_t... Ds>
struct input_of<input<Ds...>> {
  static constexpr bool rooted = true;
  using type = shape<Ds...>;
};

template <class L>
concept has_summary = requires(L& l, std::ostream& os) { l.summary(os, std::string{}); };

template <class L>
std::size_t count_parameters(L& l) {
  std::size_t n = 0;
  l.for_each_parameter([&](const auto& p) { n += p.size; });
  return n;
}
}  // namespace detail

template <class... Ls>
struct sequential {
  static_assert(sizeof...(Ls) > 0, "cdgan::nn::sequential: a sequential needs at least one layer");
  using first_layer = std::tuple_element_t<0, std::tuple<Ls...>>;
  static constexpr bool rooted = detail::input_of<first_layer>::rooted;

  template <shape_type In, class Device>
  struct bind {
    using layers_tuple = typename detail::chain<In, Device, Ls...>::types;
    static constexpr std::size_t size = std::tuple_size_v<layers_tuple>;
    using in_shape = In;
    using out_shape = typename detail::chain<In, Device, Ls...>::out;
    using device = Device;
    template <std::size_t I>
    using layer_type = std::tuple_element_t<I, layers_tuple>;
    static constexpr bool linear_in_input = []<std::size_t... I>(std::index_sequence<I...>) {
      return (layer_type<I>::linear_in_input && ...);
    }(std::make_index_sequence<size>{});

    static std::string name() { return "sequential"; }

    template <std::size_t I>
    auto& layer() {
      return std::get<I>(layers_);
    }

    void init(rng& g) {
      std::apply([&](auto&... l) { (l.init(g), ...); }, layers_);
    }
    template <class F>
    void for_each_parameter(F&& f) {
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (std::get<I>(layers_).for_each_parameter([&](parameter_ref<Device> p) {
          p.name = std::to_string(I) + "." + p.name;
          f(std::move(p));
        }),
         ...);
      }(std::make_index_sequence<size>{});
    }
    std::size_t num_parameters() { return detail::count_parameters(*this); }

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode m = mode::train) { return fwd<0>(x, m); }
    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) { return bwd<size>(dy, g); }

    /// Second-order pass (see nn/double_backward.hpp): the up sweep carries the adjoint of each layer's
    /// input gradient to the adjoint of its output gradient; where a layer's input gradient depends on
    /// its input (sigmoid, tanh, layer_norm), the direct adjoint of that input is then carried back
    /// down through the ordinary backward pass, accumulating parameter gradients on the way.
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> xbar) {
      auto dybar = up<0>(gbar);
      if constexpr (!linear_in_input) down<size>(xbar);
      return dybar;
    }

    /// Prints one line per layer: name, output shape, parameter count.
    void summary(std::ostream& os, const std::string& indent = "") {
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (summary_row<I>(os, indent), ...);
      }(std::make_index_sequence<size>{});
      if (indent.empty()) os << "total parameters: " << num_parameters() << '\n';
    }

   private:
    template <std::size_t I>
    void summary_row(std::ostream& os, const std::string& indent) {
      auto& l = std::get<I>(layers_);
      using L = std::remove_reference_t<decltype(l)>;
      if constexpr (detail::has_summary<L>) {
        os << indent << I << ": " << L::name() << " -> " << L::out_shape::str() << '\n';
        l.summary(os, indent + "  ");
      } else {
        std::string n = indent + std::to_string(I) + ": " + L::name();
        if (n.size() < 40) n.resize(40, ' ');
        os << n << " -> " << L::out_shape::str();
        if (auto p = detail::count_parameters(l)) os << "  params " << p;
        os << '\n';
      }
    }

    template <std::size_t I, class X>
    auto fwd(X x, mode m) {
      if constexpr (I == size)
        return x;
      else
        return fwd<I + 1>(std::get<I>(layers_).forward(x, m), m);
    }
    template <std::size_t I, class G>
    auto bwd(G dy, grads g) {
      auto dx = std::get<I - 1>(layers_).backward(dy, g);
      if constexpr (I == 1)
        return dx;
      else
        return bwd<I - 1>(dx, g);
    }
    template <std::size_t I, class G>
    auto up(G gbar) {
      if constexpr (I == size) {
        return gbar;
      } else {
        auto& l = std::get<I>(layers_);
        using L = std::remove_reference_t<decltype(l)>;
        static_assert(detail::has_double_backward<L>,
                      "cdgan: layer I of this sequential (see 'with I =' above; the next error names its type) "
                      "has no second-order pass (double_backward), so a WGAN-GP critic cannot contain it "
                      "(for batch_norm: use layer_norm or spectral_norm in critics)");
        auto& xb = std::get<I>(xbar_);
        if constexpr (!L::linear_in_input) {
          xb.resize(gbar.batch);
          xb = 0.f;
        }
        return up<I + 1>(l.double_backward(gbar, xb.v()));
      }
    }
    /// Carries the direct input adjoints xbar_I back to the input, highest non-linear layer first.
    template <std::size_t I, class A>
    void down_from(A a, view<in_shape, Device> xbar_out) {
      // a: adjoint of the input of layer I (already including xbar_I).
      if constexpr (I == 0) {
        if (!xbar_out.empty()) xbar_out += a;
      } else {
        auto dx = std::get<I - 1>(layers_).backward(a, grads::accumulate);
        using L = layer_type<I - 1>;
        if constexpr (!L::linear_in_input) {
          auto& xb = std::get<I - 1>(xbar_);
          xb += dx;
          down_from<I - 1>(xb.cv(), xbar_out);
        } else {
          down_from<I - 1>(dx, xbar_out);
        }
      }
    }
    template <std::size_t I>
    void down(view<in_shape, Device> xbar_out) {
      // find the highest layer I-1 that is not linear in its input and start there
      if constexpr (I > 0) {
        using L = layer_type<I - 1>;
        if constexpr (!L::linear_in_input)
          down_from<I - 1>(std::get<I - 1>(xbar_).cv(), xbar_out);
        else
          down<I - 1>(xbar_out);
      }
    }

    template <class T>
    struct xbar_of;
    template <class... Bound>
    struct xbar_of<std::tuple<Bound...>> {
      using type = std::tuple<tensor<typename Bound::in_shape, Device>...>;
    };

    layers_tuple layers_;
    typename xbar_of<layers_tuple>::type xbar_;
  };
};

namespace detail {
template <class Net>
struct network_of {
  static_assert(Net::rooted,
                "cdgan::nn::network<Net>: Net must be a sequential whose first element is input<...> (the input shape)");
  using type = bind_t<Net, typename detail::input_of<typename Net::first_layer>::type, cpu>;
};
}  // namespace detail

/// The input shape of a complete network description.
template <class Net>
using input_shape_t = typename detail::input_of<typename Net::first_layer>::type;

/// The concrete network of description Net on Device.
template <class Net, class Device = cpu>
using network = bind_t<Net, input_shape_t<Net>, Device>;

/// The output shape of a complete network description.
template <class Net>
using network_output_t = typename network<Net, cpu>::out_shape;

namespace detail {
template <class S>
struct input_for;
template <std::size_t... Ds>
struct input_for<shape<Ds...>> {
  using type = input<Ds...>;
};
}  // namespace detail

/// Net followed by more layers (a critic is `append<trunk, dense<1>>`).
template <class Net, class... Ls>
using append = sequential<typename detail::input_for<input_shape_t<Net>>::type, Net, Ls...>;

}  // namespace cdgan::nn
