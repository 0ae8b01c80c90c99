/// @file nn/heads.hpp
/// `heads<Trunk, Heads...>`: one trunk feeding several heads, as CD-GAN's encoder E = {E_f, E_e}.
/// The forward pass returns one view per head; the backward pass takes one output gradient per head
/// (an empty view means "this head does not enter the loss") and sums the heads' input gradients
/// before running the trunk's backward pass once.
#pragma once
#include <ostream>
#include <string>
#include <tuple>
#include <utility>

#include "sequential.hpp"

namespace cdgan::nn {

template <class Trunk, class... Heads>
struct heads {
  static_assert(sizeof...(Heads) >= 1, "cdgan::nn::heads: give at least one head");
  static constexpr bool rooted = Trunk::rooted;
  using first_layer = typename Trunk::first_layer;

  template <shape_type In, class Device>
  struct bind {
    using trunk_type = bind_t<Trunk, In, Device>;
    using feature_shape = typename trunk_type::out_shape;
    using heads_tuple = std::tuple<bind_t<Heads, feature_shape, Device>...>;
    static constexpr std::size_t count = sizeof...(Heads);
    using in_shape = In;
    using device = Device;
    template <std::size_t I>
    using head_type = std::tuple_element_t<I, heads_tuple>;
    template <std::size_t I>
    using head_shape = typename head_type<I>::out_shape;
    using outputs = std::tuple<cview<typename bind_t<Heads, feature_shape, Device>::out_shape, Device>...>;

    static std::string name() { return "heads"; }

    trunk_type& trunk() { return trunk_; }
    template <std::size_t I>
    auto& head() {
      return std::get<I>(heads_);
    }

    void init(rng& g) {
      trunk_.init(g);
      std::apply([&](auto&... h) { (h.init(g), ...); }, heads_);
    }
    template <class F>
    void for_each_parameter(F&& f) {
      trunk_.for_each_parameter([&](parameter_ref<Device> p) {
        p.name = "trunk." + p.name;
        f(std::move(p));
      });
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (std::get<I>(heads_).for_each_parameter([&](parameter_ref<Device> p) {
          p.name = "head" + std::to_string(I) + "." + p.name;
          f(std::move(p));
        }),
         ...);
      }(std::make_index_sequence<count>{});
    }
    std::size_t num_parameters() { return detail::count_parameters(*this); }

    outputs forward(cview<in_shape, Device> x, mode m = mode::train) {
      auto t = trunk_.forward(x, m);
      return std::apply([&](auto&... h) { return outputs{h.forward(t, m)...}; }, heads_);
    }
    /// dys: one gradient per head; an empty view skips that head.
    cview<in_shape, Device> backward(const outputs& dys, grads g = grads::assign) {
      bool any = false;
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (head_backward<I>(std::get<I>(dys), g, any), ...);
      }(std::make_index_sequence<count>{});
      if (!any) throw shape_error("cdgan: heads::backward needs the gradient of at least one head");
      return trunk_.backward(dfeat_.cv(), g);
    }

    void summary(std::ostream& os, const std::string& indent = "") {
      os << indent << "trunk:\n";
      trunk_.summary(os, indent + "  ");
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((os << indent << "head " << I << ":\n", summary_of(std::get<I>(heads_), os, indent + "  ")), ...);
      }(std::make_index_sequence<count>{});
      if (indent.empty()) os << "total parameters: " << num_parameters() << '\n';
    }

   private:
    template <class H>
    static void summary_of(H& h, std::ostream& os, const std::string& indent) {
      if constexpr (detail::has_summary<H>)
        h.summary(os, indent);
      else
        os << indent << H::name() << " -> " << H::out_shape::str() << "  params " << detail::count_parameters(h)
           << '\n';
    }
    template <std::size_t I, class G>
    void head_backward(G dy, grads g, bool& any) {
      if (dy.empty()) return;
      auto d = std::get<I>(heads_).backward(dy, g);
      dfeat_.resize(d.batch);
      if (any)
        dfeat_ += d;
      else
        dfeat_ = d;
      any = true;
    }

    trunk_type trunk_;
    heads_tuple heads_;
    tensor<feature_shape, Device> dfeat_;
  };
};

}  // namespace cdgan::nn
