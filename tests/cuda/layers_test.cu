// Layers on the GPU against the CPU: dense, activations, a sequential network, heads; plus the
// run-time contracts (batch checks, NaN checks, no allocation after the first step) on the GPU.
#include <doctest/doctest.h>

#include <memory>
#include <tuple>

#include "cuda_test.hpp"

using namespace cdgan;
using cdgan_test::check_close;
using cdgan_test::check_layer_parity;
using cdgan_test::host;
using cdgan_test::upload;

TEST_CASE("dense: forward, backward and double backward on the GPU equal the CPU") {
  CDGAN_REQUIRE_GPU();
  static_assert(std::is_same_v<nn::bind_t<nn::dense<5>, shape<7>, cuda>::out_shape, shape<5>>);
  check_layer_parity<nn::dense<5>, shape<7>>();
  check_layer_parity<nn::dense<3, false>, shape<2, 3>>(4);
  check_layer_parity<nn::dense<64>, shape<100>>(33);  // several GEMM tiles, bias reduced over 33 rows
}

TEST_CASE_TEMPLATE("activations: GPU equals CPU", A, nn::relu, nn::leaky_relu<>, nn::sigmoid, nn::tanh) {
  CDGAN_REQUIRE_GPU();
  check_layer_parity<A, shape<2, 3, 3>>(3, mode::train, {2e-5, 2e-6});
}

TEST_CASE("a sequential network runs on the GPU and equals the CPU (forward, backward, double backward)") {
  CDGAN_REQUIRE_GPU();
  using net = nn::sequential<nn::input<12>, nn::dense<8>, nn::leaky_relu<>, nn::reshape<2, 2, 2>, nn::tanh,
                             nn::flatten, nn::dense<3>, nn::sigmoid>;
  check_layer_parity<net, shape<12>>(5);
  nn::network<net, cuda> g;
  rng r(3);
  g.init(r);
  CHECK(g.num_parameters() == 12 * 8 + 8 + 8 * 3 + 3);
}

TEST_CASE("heads: the trunk's gradient sums both heads on the GPU as on the CPU") {
  CDGAN_REQUIRE_GPU();
  using trunk = nn::sequential<nn::input<6>, nn::dense<5>, nn::tanh>;
  using enc = nn::heads<trunk, nn::dense<3>, nn::sequential<nn::dense<2>, nn::sigmoid>>;
  auto c = std::make_unique<nn::network<enc, cpu>>();
  auto g = std::make_unique<nn::network<enc, cuda>>();
  rng r1(11), r2(11);
  c->init(r1);
  g->init(r2);
  cdgan_test::copy_parameters(*c, *g);
  rng d(12);
  tensor<shape<6>, cpu> x(4);
  tensor<shape<3>, cpu> d0(4);
  tensor<shape<2>, cpu> d1(4);
  x = d.normal();
  d0 = d.normal();
  d1 = d.normal();
  auto xg = upload(x);
  auto d0g = upload(d0);
  auto d1g = upload(d1);
  auto [f, e] = c->forward(x.cv());
  auto [fg, eg] = g->forward(xg.cv());
  check_close(host(f), host(fg), 1e-5, 1e-5, "heads: head 0");
  check_close(host(e), host(eg), 1e-5, 1e-5, "heads: head 1");
  auto dx = c->backward({d0.cv(), d1.cv()});
  auto dxg = g->backward({d0g.cv(), d1g.cv()});
  check_close(host(dx), host(dxg), 1e-5, 1e-5, "heads: dx");
  cdgan_test::check_parameters(*c, *g, 1e-5, 1e-5, "heads", true);
}

TEST_CASE("GPU layers keep the run-time contracts: batch checks, NaN checks, no allocation after the first step") {
  CDGAN_REQUIRE_GPU();
  using net = nn::sequential<nn::input<10>, nn::dense<16>, nn::relu, nn::dense<4>>;
  nn::network<net, cuda> n;
  rng r(1);
  n.init(r);
  tensor<shape<10>, cuda> x(8);
  tensor<shape<4>, cuda> dy(8), dy_wrong(5);
  x = r.normal();
  dy = r.normal();
  n.forward(x.cv());
  n.backward(dy.cv());
  const std::size_t allocations = allocation_count();
  for (int step = 0; step < 3; ++step) {
    n.forward(x.cv());
    n.backward(dy.cv());
  }
  CHECK(allocation_count() == allocations);
  dy_wrong = 0.f;
  CHECK_THROWS_AS(n.backward(dy_wrong.cv()), shape_error);

  set_checks(true);
  std::vector<nn::parameter_ref<cuda>> ps;
  n.for_each_parameter([&](nn::parameter_ref<cuda> p) { ps.push_back(p); });
  std::vector<real> w(ps[0].size, 0.1f);
  w[3] = std::numeric_limits<real>::quiet_NaN();
  device_memory<cuda>::from_host(ps[0].value, w.data(), w.size() * sizeof(real));
  CHECK_THROWS_AS(n.forward(x.cv()), numeric_error);
  set_checks(false);
  CHECK_NOTHROW(n.forward(x.cv()));
}
