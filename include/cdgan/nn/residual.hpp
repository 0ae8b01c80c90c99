/// @file nn/residual.hpp
/// `residual<Body, Shortcut = identity>`: y = Body(x) + Shortcut(x), the building block of ResNet
/// critics and generators (SNGAN's CIFAR-10 blocks: Body = bn, relu, upsample, conv3x3, bn, relu,
/// conv3x3; Shortcut = upsample, conv1x1). Body and Shortcut are layer policies, usually
/// `sequential<...>` without an `input<...>`; `identity` passes x through.
///
/// What this represents / Ensures:
/// - forward runs Body then Shortcut on the same x and returns the sum (their output shapes must
///   agree: a static_assert says so otherwise);
/// - backward runs both backward passes with the same dy and grads mode and returns the sum of the two
///   input gradients;
/// - double_backward (when both branches have one): adjoint of dy = Body's + Shortcut's; both branches
///   ADD their direct input adjoints into xbar (a sequential body does so in its down sweep);
///   `linear_in_input` is false when either branch's input gradient depends on x;
/// - parameters are named "body.<name>" and "shortcut.<name>", buffers likewise (`for_each_buffer`).
#pragma once
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "buffers.hpp"
#include "layer.hpp"
#include "sequential.hpp"

namespace cdgan::nn {

/// y = x: the default shortcut of a residual block.
struct identity {
  template <shape_type In, class Device>
  struct bind {
    using in_shape = In;
    using out_shape = In;
    using device = Device;
    static constexpr bool linear_in_input = true;
    static std::string name() { return "identity"; }
    void init(rng&) {}
    template <class F>
    void for_each_parameter(F&&) {}
    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode = mode::train) {
      batch_ = x.batch;
      return x;
    }
    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads = grads::assign) {
      check_batch([] { return name(); }, "the output gradient", dy.batch, batch_, [] { return out_shape::str(); });
      return dy;
    }
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device>) { return gbar; }

   private:
    std::size_t batch_ = 0;
  };
};

template <class Body, class Shortcut = identity>
struct residual {
  template <shape_type In, class Device>
  struct bind {
    using body_type = bind_t<Body, In, Device>;
    using shortcut_type = bind_t<Shortcut, In, Device>;
    static_assert(std::is_same_v<typename body_type::out_shape, typename shortcut_type::out_shape>,
                  "cdgan::nn::residual<Body, Shortcut>: the body and the shortcut must produce the same output "
                  "shape (give the shortcut the same upsampling/pooling and a 1x1 conv to the body's channels)");
    using in_shape = In;
    using out_shape = typename body_type::out_shape;
    using device = Device;
    static constexpr bool linear_in_input = body_type::linear_in_input && shortcut_type::linear_in_input;

    static std::string name() { return "residual"; }
    body_type& body() { return body_; }
    shortcut_type& shortcut() { return shortcut_; }

    void init(rng& g) {
      body_.init(g);
      shortcut_.init(g);
    }
    template <class F>
    void for_each_parameter(F&& f) {
      body_.for_each_parameter(prefixed("body.", f));
      shortcut_.for_each_parameter(prefixed("shortcut.", f));
    }
    template <class F>
    void for_each_buffer(F&& f) {
      nn::for_each_buffer(body_, prefixed("body.", f));
      nn::for_each_buffer(shortcut_, prefixed("shortcut.", f));
    }
    std::size_t num_parameters() { return detail::count_parameters(*this); }

    cview<out_shape, Device> forward(cview<in_shape, Device> x, mode m = mode::train) {
      auto yb = body_.forward(x, m);
      auto ys = shortcut_.forward(x, m);
      y_.resize(x.batch);
      y_ = yb + ys;
      return y_.cv();
    }
    cview<in_shape, Device> backward(cview<out_shape, Device> dy, grads g = grads::assign) {
      auto db = body_.backward(dy, g);
      auto ds = shortcut_.backward(dy, g);
      dx_.resize(dy.batch);
      dx_ = db + ds;
      return dx_.cv();
    }
    cview<out_shape, Device> double_backward(cview<in_shape, Device> gbar, view<in_shape, Device> xbar)
      requires detail::has_double_backward<body_type> && detail::has_double_backward<shortcut_type>
    {
      auto db = body_.double_backward(gbar, xbar);
      auto ds = shortcut_.double_backward(gbar, xbar);
      dybar_.resize(gbar.batch);
      dybar_ = db + ds;
      return dybar_.cv();
    }

    void summary(std::ostream& os, const std::string& indent = "") {
      os << indent << "body:\n";
      summary_of(body_, os, indent + "  ");
      os << indent << "shortcut:\n";
      summary_of(shortcut_, os, indent + "  ");
    }

   private:
    template <class F>
    static auto prefixed(std::string prefix, F& f) {
      return [&f, prefix = std::move(prefix)](parameter_ref<Device> p) {
        p.name = prefix + p.name;
        f(std::move(p));
      };
    }
    template <class L>
    static void summary_of(L& l, std::ostream& os, const std::string& indent) {
      if constexpr (detail::has_summary<L>)
        l.summary(os, indent);
      else
        os << indent << L::name() << " -> " << L::out_shape::str() << "  params " << detail::count_parameters(l)
           << '\n';
    }

    body_type body_;
    shortcut_type shortcut_;
    tensor<out_shape, Device> y_, dybar_;
    tensor<in_shape, Device> dx_;
  };
};

}  // namespace cdgan::nn
