/// @file nn/reshape.hpp
/// `reshape<Ds...>`, `flatten` and `input<Ds...>`: layers that only re-type memory (no copy).
#pragma once
#include <string>

#include "layer.hpp"

namespace cdgan::nn {

namespace detail {
template <shape_type Out, bool Check, class Name>
struct retype {
  template <shape_type In, class Device>
  struct bind {
    static_assert(!Check || std::is_same_v<In, Out>,
                  "cdgan::nn::input<...>: the network's input shape differs from the shape fed to it");
    static_assert(Check || In::size == Out::size,
                  "cdgan::nn::reshape<...>: the new shape must have as many elements as the input shape");
    using in_shape = In;
    using out_shape = Out;
    using device = Device;
    static constexpr bool linear_in_input = true;

    static std::string name() { return Name::str() + Out::str(); }
    void init(rng&) {}
    template <class Fn>
    void for_each_parameter(Fn&&) {}
    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      batch_ = x.batch;
      return x.template as<Out>();
    }
    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, batch_, [] { return out_shape::str(); });
      return dy.template as<In>();
    }
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device>) {
      return gbar.template as<Out>();
    }

   private:
    std::size_t batch_ = 0;
  };
};
struct reshape_name {
  static std::string str() { return "reshape"; }
};
struct input_name {
  static std::string str() { return "input"; }
};
struct flatten_name {
  static std::string str() { return "flatten"; }
};
}  // namespace detail

/// Re-types each sample as shape<Ds...> (same number of elements).
template <std::size_t... Ds>
using reshape = detail::retype<shape<Ds...>, false, detail::reshape_name>;

/// Flattens each sample into a vector.
struct flatten {
  template <shape_type In, class Device>
  using bind = typename detail::retype<flat_shape<In>, false, detail::flatten_name>::template bind<In, Device>;
};

/// The input of a network: `input<1, 28, 28>`. As the first element of a `sequential` it fixes the
/// network's input shape; anywhere else it asserts the shape reaching it.
template <std::size_t... Ds>
struct input : detail::retype<shape<Ds...>, true, detail::input_name> {
  using shape_type = shape<Ds...>;
};

}  // namespace cdgan::nn
