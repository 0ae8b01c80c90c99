// Gradient checks of dense, activations, reshape/flatten, sequential and heads; the checker itself
// must reject a deliberately wrong layer.
#include <doctest/doctest.h>

#include <sstream>

#include "cdgan/nn/nn.hpp"
#include "cdgan/testing/gradient_check.hpp"

using namespace cdgan;

namespace {
template <class Policy, class In>
testing::check_result check_policy(testing::check_options o = {}) {
  nn::bind_t<Policy, In, cpu> layer;
  rng g(7);
  layer.init(g);
  return testing::check_layer(layer, o);
}

/// A dense layer whose weight gradient is off by 10 %: the checker must reject it.
struct wrong_dense {
  template <shape_type In, class Device>
  struct bind : nn::dense<4>::bind<In, Device> {
    using base = typename nn::dense<4>::template bind<In, Device>;
    static std::string name() { return "wrong_dense"; }
    cview<In, Device> backward(cview<shape<4>, Device> dy, nn::grads g = nn::grads::assign) {
      auto dx = base::backward(dy, g);
      base::weight.grad = base::weight.grad * 1.1f;
      return dx;
    }
  };
};
/// A layer that forgets to write its bias gradient: the +inf pre-fill must catch it.
struct lazy_dense {
  template <shape_type In, class Device>
  struct bind : nn::dense<4>::bind<In, Device> {
    using base = typename nn::dense<4>::template bind<In, Device>;
    static std::string name() { return "lazy_dense"; }
    cview<In, Device> backward(cview<shape<4>, Device> dy, nn::grads g = nn::grads::assign) {
      auto saved = base::bias.grad.to_host();
      auto dx = base::backward(dy, g);
      base::bias.grad.from_host(saved);
      return dx;
    }
  };
};
}  // namespace

TEST_CASE("dense: input and parameter gradients") {
  auto r = check_policy<nn::dense<5>, shape<7>>();
  CHECK_MESSAGE(r.ok, r.message);
  CHECK(r.checked > 40);
  auto r2 = check_policy<nn::dense<3, false>, shape<2, 3>>();
  CHECK_MESSAGE(r2.ok, r2.message);
}

TEST_CASE_TEMPLATE("activations: gradients", A, nn::relu, nn::leaky_relu<>, nn::leaky_relu<0.01f>, nn::sigmoid, nn::tanh) {
  auto r = check_policy<A, shape<2, 3, 3>>();
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("reshape, flatten and sequential compose; gradients flow through") {
  using net = nn::sequential<nn::input<12>, nn::dense<8>, nn::leaky_relu<>, nn::reshape<2, 2, 2>, nn::tanh,
                             nn::flatten, nn::dense<3>, nn::sigmoid>;
  static_assert(std::is_same_v<nn::network_output_t<net>, shape<3>>);
  nn::network<net> n;
  rng g(3);
  n.init(g);
  CHECK(n.num_parameters() == 12 * 8 + 8 + 8 * 3 + 3);
  auto r = testing::check_layer(n);
  CHECK_MESSAGE(r.ok, r.message);
  std::ostringstream os;
  n.summary(os);
  CHECK(os.str().find("dense<8>") != std::string::npos);
  CHECK(os.str().find("(2, 2, 2)") != std::string::npos);
  CHECK(os.str().find("total parameters: 131") != std::string::npos);
}

TEST_CASE("the gradient checker rejects wrong and unwritten gradients") {
  auto r = check_policy<wrong_dense, shape<6>>();
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("weight") != std::string::npos);
  auto r2 = check_policy<lazy_dense, shape<6>>();
  CHECK_FALSE(r2.ok);
  CHECK(r2.message.find("unwritten") != std::string::npos);
}

TEST_CASE("heads: a shared trunk sums the gradients of its heads") {
  using trunk = nn::sequential<nn::input<6>, nn::dense<5>, nn::tanh>;
  using enc = nn::heads<trunk, nn::dense<3>, nn::sequential<nn::dense<2>, nn::sigmoid>>;
  nn::network<enc> e;
  rng g(11);
  e.init(g);
  tensor<shape<6>> x(4);
  x = g.normal();
  tensor<shape<3>> g0(4);
  tensor<shape<2>> g1(4);
  g0 = g.normal();
  g1 = g.normal();
  auto value = [&]() -> double {
    auto [f, c] = e.forward(x.cv());
    double s = 0;
    for (std::size_t i = 0; i < f.size(); ++i) s += double(f.ptr[i]) * g0.data()[i];
    for (std::size_t i = 0; i < c.size(); ++i) s += double(c.ptr[i]) * g1.data()[i];
    return s;
  };
  e.forward(x.cv());
  auto dx = e.backward({g0.cv(), g1.cv()});
  std::vector<real> dxh(dx.ptr, dx.ptr + dx.size());
  std::vector<nn::parameter_ref<cpu>> ps;
  e.for_each_parameter([&](nn::parameter_ref<cpu> p) { ps.push_back(p); });
  CHECK(ps.size() == 6);
  CHECK(ps[0].name == "trunk.1.weight");
  CHECK(ps[4].name == "head1.0.weight");
  std::vector<std::vector<real>> pg;
  for (auto& p : ps) pg.emplace_back(p.grad, p.grad + p.size);
  auto r = testing::check_gradient("heads input", x.data(), x.size(), value, dxh.data());
  CHECK_MESSAGE(r.ok, r.message);
  for (std::size_t k = 0; k < ps.size(); ++k) {
    auto rk = testing::check_gradient(ps[k].name, ps[k].value, ps[k].size, value, pg[k].data());
    CHECK_MESSAGE(rk.ok, rk.message);
  }
  // a head left out of the loss contributes nothing
  e.forward(x.cv());
  e.backward({g0.cv(), {}});
  CHECK(ps[4].grad[0] == doctest::Approx(pg[4][0]));  // untouched from the previous backward
  CHECK_THROWS_AS(e.backward({{}, {}}), shape_error);
}

TEST_CASE("run-time errors name the layer and the shapes") {
  nn::bind_t<nn::dense<4>, shape<3>, cpu> d;
  rng g(1);
  d.init(g);
  tensor<shape<3>> x(5);
  x = 1.f;
  d.forward(x.cv());
  tensor<shape<4>> dy(2);
  dy = 1.f;
  try {
    d.backward(dy.cv());
    FAIL("no exception");
  } catch (const shape_error& e) {
    std::string m = e.what();
    CHECK(m.find("dense<4>") != std::string::npos);
    CHECK(m.find("batch 2") != std::string::npos);
    CHECK(m.find("batch 5") != std::string::npos);
  }
  set_checks(true);
  std::vector<nn::parameter_ref<cpu>> ps;
  d.for_each_parameter([&](nn::parameter_ref<cpu> p) { ps.push_back(p); });
  ps[0].value[2] = std::numeric_limits<real>::quiet_NaN();
  CHECK_THROWS_WITH_AS(d.forward(x.cv()), doctest::Contains("dense<4>: weight"), numeric_error);
  set_checks(false);
}
