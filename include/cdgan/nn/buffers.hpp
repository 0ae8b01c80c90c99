/// @file nn/buffers.hpp
/// `for_each_buffer(layer, f)`: visits the persistent non-trained state of a layer or network
/// (batch_norm's running statistics, spectral_norm's u and v), for checkpoints.
///
/// What this represents. A layer with state declares a member `for_each_buffer(f)` calling
/// f(parameter_ref<Device>{name, value, grad = nullptr, size, dims}). This free function also walks the
/// combinators — `sequential` (names prefixed "I."), `heads` ("trunk.", "headI.") and any layer with
/// its own member (residual: "body.", "shortcut.") — with the same names as `for_each_parameter`.
/// Ensures: layers without state are skipped; every handle's `grad` is null.
#pragma once
#include <cstddef>
#include <string>
#include <utility>

#include "layer.hpp"

namespace cdgan::nn {

namespace detail {
struct buffer_probe {
  template <class P>
  void operator()(P&&) const {}
};
template <class L>
concept has_member_buffers = requires(L& l) { l.for_each_buffer(buffer_probe{}); };
template <class L>
concept is_sequential_like = requires(L& l) {
  typename L::layers_tuple;
  { L::size } -> std::convertible_to<std::size_t>;
  l.template layer<0>();
};
template <class L>
concept is_heads_like = requires(L& l) {
  typename L::heads_tuple;
  l.trunk();
  l.template head<0>();
};
}  // namespace detail

template <class L, class F>
void for_each_buffer(L& layer, F&& f) {
  using Device = typename L::device;
  auto prefixed = [&](const std::string& prefix) {
    return [&f, prefix](parameter_ref<Device> p) {
      p.name = prefix + p.name;
      f(std::move(p));
    };
  };
  if constexpr (detail::has_member_buffers<L>) {
    layer.for_each_buffer(f);
  } else if constexpr (detail::is_sequential_like<L>) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (for_each_buffer(layer.template layer<I>(), prefixed(std::to_string(I) + ".")), ...);
    }(std::make_index_sequence<L::size>{});
  } else if constexpr (detail::is_heads_like<L>) {
    for_each_buffer(layer.trunk(), prefixed("trunk."));
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (for_each_buffer(layer.template head<I>(), prefixed("head" + std::to_string(I) + ".")), ...);
    }(std::make_index_sequence<L::count>{});
  }
}

}  // namespace cdgan::nn
