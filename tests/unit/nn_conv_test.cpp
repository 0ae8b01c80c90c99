// Tests of nn/conv.hpp (conv, conv_transpose) and nn/pool.hpp (avg_pool, upsample): compile-time
// shapes, forward values against direct loops written here, the adjoint relation between conv and
// conv_transpose, finite-difference gradient checks, and the second-order pass (exact WGAN-GP penalty
// gradient) of small critics built from these layers.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cdgan/nn/conv.hpp"
#include "cdgan/nn/nn.hpp"
#include "cdgan/nn/pool.hpp"
#include "cdgan/testing/gradient_check.hpp"

using namespace cdgan;

// ---- compile-time shapes ---------------------------------------------------------------------------
static_assert(std::is_same_v<nn::output_shape_t<nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<1, 28, 28>>,
                             shape<64, 14, 14>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::conv<128, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<64, 14, 14>>,
                             shape<128, 7, 7>>);
// options in any order, defaults stride 1 and pad 0
static_assert(std::is_same_v<nn::output_shape_t<nn::conv<8, nn::pad<1>, nn::kernel<3>>, shape<3, 10, 12>>, shape<8, 10, 12>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::conv<8, nn::kernel<3>>, shape<3, 10, 12>>, shape<8, 8, 10>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::conv<2, nn::stride<2>, nn::kernel<3>>, shape<1, 8, 7>>, shape<2, 3, 3>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::conv<5, nn::kernel<1>>, shape<3, 4, 4>>, shape<5, 4, 4>>);
static_assert(std::is_same_v<nn::conv2d<64, 4, 2, 1>, nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>>);
static_assert(std::is_same_v<nn::conv2d<3, 5>, nn::conv<3, nn::kernel<5>, nn::stride<1>, nn::pad<0>>>);
// the ClusterGAN generator: 7 -> 14 -> 28
static_assert(std::is_same_v<
              nn::output_shape_t<nn::conv_transpose<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<128, 7, 7>>,
              shape<64, 14, 14>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::conv_transpose2d<1, 4, 2, 1>, shape<64, 14, 14>>, shape<1, 28, 28>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::conv_transpose<2, nn::kernel<3>>, shape<4, 5, 6>>, shape<2, 7, 8>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::conv_transpose2d<2, 3, 2>, shape<4, 3, 4>>, shape<2, 7, 9>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::avg_pool<2>, shape<3, 8, 6>>, shape<3, 4, 3>>);
static_assert(std::is_same_v<nn::output_shape_t<nn::upsample<3>, shape<3, 2, 5>>, shape<3, 6, 15>>);
// parameter shapes (PyTorch's layouts)
static_assert(std::is_same_v<decltype(nn::bind_t<nn::conv2d<6, 3>, shape<2, 5, 5>, cpu>::weight),
                             nn::parameter<shape<6, 2, 3, 3>, cpu>>);
static_assert(std::is_same_v<decltype(nn::bind_t<nn::conv_transpose2d<6, 3>, shape<2, 5, 5>, cpu>::weight),
                             nn::parameter<shape<2, 6, 3, 3>, cpu>>);
static_assert(nn::bind_t<nn::conv_transpose2d<6, 3>, shape<2, 5, 5>, cpu>::fan_in == 6 * 9);
static_assert(nn::bind_t<nn::conv2d<6, 3>, shape<2, 5, 5>, cpu>::fan_in == 2 * 9);
// the MNIST networks of DESIGN.md type-check end to end
namespace {
using mnist_trunk = nn::sequential<nn::input<1, 28, 28>, nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                                   nn::leaky_relu<>, nn::conv<128, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                                   nn::leaky_relu<>, nn::flatten, nn::dense<1024>, nn::leaky_relu<>>;
static_assert(std::is_same_v<nn::network_output_t<mnist_trunk>, shape<1024>>);
using mnist_gen_tail = nn::sequential<nn::input<1024>, nn::dense<128 * 7 * 7>, nn::relu, nn::reshape<128, 7, 7>,
                                      nn::conv_transpose<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, nn::relu,
                                      nn::conv_transpose<1, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, nn::sigmoid>;
static_assert(std::is_same_v<nn::network_output_t<mnist_gen_tail>, shape<1, 28, 28>>);
}  // namespace

namespace {

template <class Policy, class In>
testing::check_result check_policy(testing::check_options o = {}) {
  nn::bind_t<Policy, In, cpu> layer;
  rng g(7);
  layer.init(g);
  return testing::check_layer(layer, o);
}

struct geometry {
  std::size_t c, h, w, f, k, s, p;
};

/// Direct cross-correlation, PyTorch's Conv2d: x (B,C,H,W), wt (F,C,K,K), b (F) -> (B,F,OH,OW).
std::vector<double> naive_conv(const real* x, const real* wt, const real* b, std::size_t batch, const geometry& g) {
  const std::size_t oh = (g.h + 2 * g.p - g.k) / g.s + 1, ow = (g.w + 2 * g.p - g.k) / g.s + 1;
  std::vector<double> y(batch * g.f * oh * ow);
  for (std::size_t n = 0; n < batch; ++n)
    for (std::size_t f = 0; f < g.f; ++f)
      for (std::size_t oy = 0; oy < oh; ++oy)
        for (std::size_t ox = 0; ox < ow; ++ox) {
          double acc = b[f];
          for (std::size_t c = 0; c < g.c; ++c)
            for (std::size_t ky = 0; ky < g.k; ++ky)
              for (std::size_t kx = 0; kx < g.k; ++kx) {
                const long iy = long(oy * g.s + ky) - long(g.p), ix = long(ox * g.s + kx) - long(g.p);
                if (iy < 0 || ix < 0 || iy >= long(g.h) || ix >= long(g.w)) continue;
                acc += double(wt[((f * g.c + c) * g.k + ky) * g.k + kx]) *
                       x[((n * g.c + c) * g.h + std::size_t(iy)) * g.w + std::size_t(ix)];
              }
          y[((n * g.f + f) * oh + oy) * ow + ox] = acc;
        }
  return y;
}

/// Direct scatter form of PyTorch's ConvTranspose2d: x (B,C,H,W), wt (C,F,K,K), b (F) -> (B,F,OH,OW).
std::vector<double> naive_conv_transpose(const real* x, const real* wt, const real* b, std::size_t batch,
                                         const geometry& g) {
  const std::size_t oh = (g.h - 1) * g.s + g.k - 2 * g.p, ow = (g.w - 1) * g.s + g.k - 2 * g.p;
  std::vector<double> y(batch * g.f * oh * ow);
  for (std::size_t n = 0; n < batch; ++n)
    for (std::size_t f = 0; f < g.f; ++f)
      for (std::size_t i = 0; i < oh * ow; ++i) y[(n * g.f + f) * oh * ow + i] = b[f];
  for (std::size_t n = 0; n < batch; ++n)
    for (std::size_t c = 0; c < g.c; ++c)
      for (std::size_t iy = 0; iy < g.h; ++iy)
        for (std::size_t ix = 0; ix < g.w; ++ix)
          for (std::size_t f = 0; f < g.f; ++f)
            for (std::size_t ky = 0; ky < g.k; ++ky)
              for (std::size_t kx = 0; kx < g.k; ++kx) {
                const long oy = long(iy * g.s + ky) - long(g.p), ox = long(ix * g.s + kx) - long(g.p);
                if (oy < 0 || ox < 0 || oy >= long(oh) || ox >= long(ow)) continue;
                y[((n * g.f + f) * oh + std::size_t(oy)) * ow + std::size_t(ox)] +=
                    double(wt[((c * g.f + f) * g.k + ky) * g.k + kx]) * x[((n * g.c + c) * g.h + iy) * g.w + ix];
              }
  return y;
}

template <class T>
std::vector<real> host(const T& v) {
  return std::vector<real>(v.ptr, v.ptr + v.size());
}

/// Forward of a bound conv-like layer (random weights, bias and input) against a direct loop.
template <class Policy, class In, bool Transpose>
void check_forward_against_naive(std::size_t batch) {
  using L = nn::bind_t<Policy, In, cpu>;
  L layer;
  rng g(21);
  layer.init(g);
  layer.bias.value = g.normal();  // make the bias visible
  tensor<In> x(batch);
  x = g.normal();
  auto y = layer.forward(x.cv());
  const geometry geo{In::dims[0], In::dims[1], In::dims[2], L::out_shape::dims[0], Policy::k, Policy::s, Policy::p};
  auto want = Transpose ? naive_conv_transpose(x.data(), layer.weight.value.data(), layer.bias.value.data(), batch, geo)
                        : naive_conv(x.data(), layer.weight.value.data(), layer.bias.value.data(), batch, geo);
  REQUIRE(want.size() == y.size());
  double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(want[i] - y.ptr[i]));
  CHECK_MESSAGE(worst < 1e-4, L::name() << " on " << In::str() << ": max deviation " << worst);
}

/// Zeroes every parameter gradient of a layer or network.
template <class Net>
void zero_grads(Net& net) {
  net.for_each_parameter([](nn::parameter_ref<cpu> p) { std::fill(p.grad, p.grad + p.size, real(0)); });
}

/// The exact WGAN-GP penalty P = Σ_b (‖∂D/∂x_b‖ − 1)² of a critic D with one output, and its
/// parameter gradient by double backpropagation, checked against finite differences of P.
/// Also checks ∂P/∂x (the xbar output), which is non-zero when the critic has a smooth activation.
template <class Net>
void check_penalty_gradient(std::uint64_t seed, std::size_t batch, double abs_tol = 1e-4, real input_scale = 1) {
  using In = nn::input_shape_t<Net>;
  static_assert(std::is_same_v<nn::network_output_t<Net>, shape<1>>);
  nn::network<Net> net;
  rng g(seed);
  net.init(g);
  tensor<In> x(batch);
  x = g.normal(0.f, input_scale);
  tensor<shape<1>> ones(batch);
  ones = 1.f;

  auto penalty = [&]() -> double {
    net.forward(x.cv());
    auto dx = net.backward(ones.cv(), nn::grads::skip);
    double p = 0;
    for (std::size_t b = 0; b < batch; ++b) {
      double n2 = 0;
      for (std::size_t i = 0; i < In::size; ++i) n2 += double(dx.ptr[b * In::size + i]) * dx.ptr[b * In::size + i];
      p += (std::sqrt(n2) - 1) * (std::sqrt(n2) - 1);
    }
    return p;
  };

  net.forward(x.cv());
  auto dx = net.backward(ones.cv(), nn::grads::skip);
  tensor<In> gbar(batch), xbar(batch);
  for (std::size_t b = 0; b < batch; ++b) {
    double n2 = 0;
    for (std::size_t i = 0; i < In::size; ++i) n2 += double(dx.ptr[b * In::size + i]) * dx.ptr[b * In::size + i];
    const double n = std::sqrt(n2);
    REQUIRE(n > 1e-6);
    for (std::size_t i = 0; i < In::size; ++i)
      gbar.data()[b * In::size + i] = static_cast<real>(2 * (n - 1) * dx.ptr[b * In::size + i] / n);
  }
  xbar = 0.f;
  zero_grads(net);
  net.double_backward(gbar.cv(), xbar.v());

  std::vector<nn::parameter_ref<cpu>> ps;
  net.for_each_parameter([&](nn::parameter_ref<cpu> p) { ps.push_back(p); });
  std::vector<std::vector<real>> analytic;
  double total = 0;
  for (auto& p : ps) {
    analytic.emplace_back(p.grad, p.grad + p.size);
    for (std::size_t i = 0; i < p.size; ++i) total += std::fabs(p.grad[i]);
  }
  CHECK(total > 1e-3);  // the penalty really depends on the parameters
  testing::check_options o;
  o.max_elements = 150;
  o.abs_tol = abs_tol;
  for (std::size_t k = 0; k < ps.size(); ++k) {
    auto r = testing::check_gradient("penalty d/d" + ps[k].name, ps[k].value, ps[k].size, penalty, analytic[k].data(), o);
    CHECK_MESSAGE(r.ok, r.message);
  }
  std::vector<real> xb(xbar.data(), xbar.data() + xbar.size());
  auto rx = testing::check_gradient("penalty d/dx", x.data(), x.size(), penalty, xb.data(), o);
  CHECK_MESSAGE(rx.ok, rx.message);
}

}  // namespace

TEST_CASE("conv: forward equals a direct convolution") {
  check_forward_against_naive<nn::conv<4, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<3, 8, 8>, false>(2);
  check_forward_against_naive<nn::conv<3, nn::kernel<3>, nn::pad<1>>, shape<2, 5, 6>, false>(3);
  check_forward_against_naive<nn::conv<5, nn::kernel<1>>, shape<3, 4, 3>, false>(2);
  check_forward_against_naive<nn::conv<2, nn::kernel<3>, nn::stride<2>>, shape<2, 7, 8>, false>(2);
  check_forward_against_naive<nn::conv<2, nn::kernel<2>, nn::stride<3>, nn::pad<2>>, shape<1, 5, 5>, false>(1);
}

TEST_CASE("conv_transpose: forward equals the direct scatter form of ConvTranspose2d") {
  check_forward_against_naive<nn::conv_transpose<3, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<4, 3, 3>, true>(2);
  check_forward_against_naive<nn::conv_transpose<2, nn::kernel<3>, nn::pad<1>>, shape<3, 4, 5>, true>(2);
  check_forward_against_naive<nn::conv_transpose<2, nn::kernel<3>, nn::stride<2>>, shape<2, 3, 4>, true>(3);
  check_forward_against_naive<nn::conv_transpose<4, nn::kernel<1>>, shape<3, 2, 3>, true>(2);
  check_forward_against_naive<nn::conv_transpose<2, nn::kernel<5>, nn::stride<3>, nn::pad<2>>, shape<1, 3, 2>, true>(1);
}

TEST_CASE_TEMPLATE("conv_transpose is the adjoint of conv with the same weights", G,
                   // conv geometry; conv_transpose maps the conv's output shape back to its input shape
                   std::integral_constant<int, 0>, std::integral_constant<int, 1>, std::integral_constant<int, 2>,
                   std::integral_constant<int, 3>) {
  auto run = []<class Conv, class ConvT, class In>() {
    using C = nn::bind_t<Conv, In, cpu>;
    using T = nn::bind_t<ConvT, typename C::out_shape, cpu>;
    static_assert(std::is_same_v<typename T::out_shape, In>);
    static_assert(std::is_same_v<decltype(C::weight.value), decltype(T::weight.value)>);
    C conv;
    T convt;
    rng g(5);
    conv.init(g);
    conv.bias.value = 0.f;
    convt.bias.value = 0.f;
    convt.weight.value = conv.weight.value;  // (F, C, K, K) serves as the transpose's (C_in, F_out, K, K)
    const std::size_t batch = 3;
    tensor<In> x(batch);
    tensor<typename C::out_shape> y(batch);
    x = g.normal();
    y = g.normal();
    auto cx = conv.forward(x.cv());
    auto ty = convt.forward(y.cv());
    double lhs = 0, rhs = 0, scale = 0;
    for (std::size_t i = 0; i < cx.size(); ++i) lhs += double(cx.ptr[i]) * y.data()[i], scale += std::fabs(cx.ptr[i] * y.data()[i]);
    for (std::size_t i = 0; i < ty.size(); ++i) rhs += double(x.data()[i]) * ty.ptr[i];
    CHECK_MESSAGE(std::fabs(lhs - rhs) <= 1e-5 * scale, C::name() << ": <conv(x), y> = " << lhs << ", <x, convT(y)> = " << rhs);
    // and the transpose's input gradient is the conv: backward(dy) of convT = conv(dy) without bias
    auto dx = convt.backward(x.cv(), nn::grads::skip);
    double worst = 0;
    for (std::size_t i = 0; i < dx.size(); ++i) worst = std::max(worst, double(std::fabs(dx.ptr[i] - cx.ptr[i])));
    CHECK(worst < 1e-4);
  };
  if constexpr (G::value == 0)
    run.template operator()<nn::conv<3, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                            nn::conv_transpose<2, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<2, 8, 6>>();
  else if constexpr (G::value == 1)
    run.template operator()<nn::conv<4, nn::kernel<3>, nn::pad<1>>, nn::conv_transpose<3, nn::kernel<3>, nn::pad<1>>,
                            shape<3, 5, 5>>();
  else if constexpr (G::value == 2)
    run.template operator()<nn::conv<2, nn::kernel<3>, nn::stride<2>>, nn::conv_transpose<1, nn::kernel<3>, nn::stride<2>>,
                            shape<1, 7, 9>>();
  else
    run.template operator()<nn::conv<5, nn::kernel<1>>, nn::conv_transpose<2, nn::kernel<1>>, shape<2, 3, 4>>();
}

TEST_CASE("avg_pool and upsample: forward values") {
  nn::bind_t<nn::avg_pool<2>, shape<2, 4, 6>, cpu> pool;
  nn::bind_t<nn::upsample<3>, shape<2, 2, 3>, cpu> up;
  tensor<shape<2, 4, 6>> x(2);
  rng g(3);
  x = g.normal();
  auto y = pool.forward(x.cv());
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t oy = 0; oy < 2; ++oy)
        for (std::size_t ox = 0; ox < 3; ++ox) {
          double s = 0;
          for (std::size_t dy = 0; dy < 2; ++dy)
            for (std::size_t dx = 0; dx < 2; ++dx) s += x.data()[((n * 2 + c) * 4 + 2 * oy + dy) * 6 + 2 * ox + dx];
          CHECK(y.ptr[((n * 2 + c) * 2 + oy) * 3 + ox] == doctest::Approx(s / 4).epsilon(1e-5));
        }
  tensor<shape<2, 2, 3>> z(2);
  z = g.normal();
  auto u = up.forward(z.cv());
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t oy = 0; oy < 6; ++oy)
        for (std::size_t ox = 0; ox < 9; ++ox)
          CHECK(u.ptr[((n * 2 + c) * 6 + oy) * 9 + ox] == z.data()[((n * 2 + c) * 2 + oy / 3) * 3 + ox / 3]);
}

TEST_CASE("conv: gradient checks over several geometries") {
  auto r1 = check_policy<nn::conv<4, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<2, 8, 8>>();
  CHECK_MESSAGE(r1.ok, r1.message);
  CHECK(r1.checked > 400);
  auto r2 = check_policy<nn::conv<3, nn::kernel<3>, nn::pad<1>>, shape<2, 5, 5>>();
  CHECK_MESSAGE(r2.ok, r2.message);
  auto r3 = check_policy<nn::conv<5, nn::kernel<1>>, shape<3, 4, 4>>();  // pointwise path (no im2col)
  CHECK_MESSAGE(r3.ok, r3.message);
  auto r4 = check_policy<nn::conv<2, nn::kernel<3>, nn::stride<2>>, shape<3, 7, 6>>();  // floor, unequal H and W
  CHECK_MESSAGE(r4.ok, r4.message);
  auto r5 = check_policy<nn::conv2d<2, 2, 3, 2>, shape<1, 5, 5>>();  // stride larger than the kernel
  CHECK_MESSAGE(r5.ok, r5.message);
}

TEST_CASE("conv_transpose: gradient checks over several geometries") {
  auto r1 = check_policy<nn::conv_transpose<3, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<4, 3, 3>>();
  CHECK_MESSAGE(r1.ok, r1.message);
  CHECK(r1.checked == 4 * 3 * 3 * 3 + 4 * 3 * 16 + 3);  // every input, weight and bias element
  auto r2 = check_policy<nn::conv_transpose<2, nn::kernel<3>, nn::pad<1>>, shape<3, 4, 5>>();
  CHECK_MESSAGE(r2.ok, r2.message);
  auto r3 = check_policy<nn::conv_transpose<2, nn::kernel<3>, nn::stride<2>>, shape<2, 3, 4>>();
  CHECK_MESSAGE(r3.ok, r3.message);
  auto r4 = check_policy<nn::conv_transpose<4, nn::kernel<1>>, shape<3, 2, 3>>();  // pointwise path
  CHECK_MESSAGE(r4.ok, r4.message);
  auto r5 = check_policy<nn::conv_transpose2d<2, 5, 3, 2>, shape<1, 3, 2>>();
  CHECK_MESSAGE(r5.ok, r5.message);
}

TEST_CASE("avg_pool and upsample: gradient checks") {
  auto r1 = check_policy<nn::avg_pool<2>, shape<2, 4, 6>>();
  CHECK_MESSAGE(r1.ok, r1.message);
  auto r2 = check_policy<nn::avg_pool<3>, shape<1, 3, 6>>();
  CHECK_MESSAGE(r2.ok, r2.message);
  auto r3 = check_policy<nn::upsample<2>, shape<2, 3, 3>>();
  CHECK_MESSAGE(r3.ok, r3.message);
  auto r4 = check_policy<nn::upsample<3>, shape<1, 2, 1>>();
  CHECK_MESSAGE(r4.ok, r4.message);
}

TEST_CASE("a small convolutional network: gradient check end to end") {
  using net = nn::sequential<nn::input<1, 8, 8>, nn::conv<3, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, nn::leaky_relu<>,
                             nn::upsample<2>, nn::conv<2, nn::kernel<3>, nn::pad<1>>, nn::tanh, nn::avg_pool<4>,
                             nn::conv_transpose<2, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, nn::sigmoid, nn::flatten,
                             nn::dense<3>>;
  nn::network<net> n;
  rng g(9);
  n.init(g);
  auto r = testing::check_layer(n);
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("double backward: exact gradient-penalty gradient of a conv critic") {
  using critic = nn::sequential<nn::input<1, 8, 8>, nn::conv<4, nn::kernel<3>, nn::stride<2>, nn::pad<1>>,
                                nn::leaky_relu<>, nn::flatten, nn::dense<1>>;
  static_assert(nn::network<critic>::linear_in_input);
  check_penalty_gradient<critic>(1, 3);
}

TEST_CASE("double backward: critic with conv_transpose, avg_pool, upsample and smooth activations") {
  // tanh and sigmoid make the penalty depend on x, so sequential's down sweep runs backward(accumulate)
  // through every layer below them after their double_backward: that must still see the forward state.
  using critic = nn::sequential<nn::input<2, 4, 4>, nn::conv_transpose<3, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                                nn::tanh, nn::avg_pool<2>, nn::conv<4, nn::kernel<3>, nn::pad<1>>, nn::leaky_relu<>,
                                nn::upsample<2>, nn::conv<2, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, nn::sigmoid,
                                nn::flatten, nn::dense<1>>;
  static_assert(!nn::network<critic>::linear_in_input);
  check_penalty_gradient<critic>(2, 2);
}

TEST_CASE("double backward: a conv directly under tanh (large second-order term through the down sweep)") {
  using critic = nn::sequential<nn::input<2, 5, 5>, nn::conv<3, nn::kernel<3>, nn::stride<2>, nn::pad<1>>, nn::tanh,
                                nn::flatten, nn::dense<1>>;
  check_penalty_gradient<critic>(5, 3, 1e-4, 2.f);
  using critic_t = nn::sequential<nn::input<2, 3, 3>, nn::conv_transpose<2, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                                  nn::sigmoid, nn::flatten, nn::dense<1>>;
  check_penalty_gradient<critic_t>(6, 3, 1e-4, 2.f);
}

TEST_CASE("double backward: pointwise (1x1) conv and conv_transpose") {
  using critic = nn::sequential<nn::input<3, 3, 3>, nn::conv<2, nn::kernel<1>>, nn::tanh,
                                nn::conv_transpose<3, nn::kernel<1>>, nn::sigmoid, nn::flatten, nn::dense<1>>;
  check_penalty_gradient<critic>(3, 2);
}

TEST_CASE("double backward adds into the parameter gradients and keeps the forward state") {
  nn::bind_t<nn::conv<2, nn::kernel<3>, nn::stride<2>, nn::pad<1>>, shape<2, 5, 5>, cpu> c;
  nn::bind_t<nn::conv_transpose<2, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<2, 3, 3>, cpu> t;
  rng g(4);
  auto twice = [&](auto& layer, auto in_tag, auto out_tag) {
    using In = decltype(in_tag);
    using Out = decltype(out_tag);
    layer.init(g);
    tensor<In> x(2), gbar(2);
    tensor<Out> dy(2);
    x = g.normal();
    gbar = g.normal();
    dy = g.normal();
    layer.forward(x.cv());
    auto dx0 = host(layer.backward(dy.cv(), nn::grads::assign));
    auto w0 = layer.weight.grad.to_host();
    auto b0 = layer.bias.grad.to_host();
    layer.weight.grad = 0.f;
    layer.bias.grad = 7.f;
    auto d1 = host(layer.double_backward(gbar.cv(), view<In>{}));
    auto w1 = layer.weight.grad.to_host();
    auto d2 = host(layer.double_backward(gbar.cv(), view<In>{}));
    auto w2 = layer.weight.grad.to_host();
    CHECK(d1 == d2);
    double norm = 0;
    for (std::size_t i = 0; i < w1.size(); ++i) {
      CHECK(w2[i] == doctest::Approx(2 * w1[i]).epsilon(1e-5));
      norm += std::fabs(w1[i]);
    }
    CHECK(norm > 0);
    for (real b : layer.bias.grad.to_host()) CHECK(b == 7.f);  // the bias does not enter dx
    // the forward state survives double_backward: a backward now (as sequential's down sweep makes)
    // gives exactly what it gave before
    CHECK(host(layer.backward(dy.cv(), nn::grads::assign)) == dx0);
    CHECK(layer.weight.grad.to_host() == w0);
    CHECK(layer.bias.grad.to_host() == b0);
  };
  twice(c, shape<2, 5, 5>{}, shape<2, 3, 3>{});
  twice(t, shape<2, 3, 3>{}, shape<2, 6, 6>{});
}

TEST_CASE("conv and conv_transpose: PyTorch's default initialisation bounds") {
  rng g(8);
  nn::bind_t<nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<8, 6, 6>, cpu> c;
  nn::bind_t<nn::conv_transpose<16, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<64, 3, 3>, cpu> t;
  c.init(g);
  t.init(g);
  auto check_uniform = [](const std::vector<real>& v, double bound) {
    double lo = 1e9, hi = -1e9, mean = 0;
    for (real e : v) lo = std::min(lo, double(e)), hi = std::max(hi, double(e)), mean += e;
    mean /= double(v.size());
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    CHECK(hi > 0.95 * bound);
    CHECK(lo < -0.95 * bound);
    CHECK(std::fabs(mean) < 0.05 * bound);
  };
  check_uniform(c.weight.value.to_host(), 1 / std::sqrt(8.0 * 16));
  check_uniform(t.weight.value.to_host(), 1 / std::sqrt(16.0 * 16));  // fan_in = weight.size(1) * K * K
  auto cb = c.bias.value.to_host();
  for (real b : cb) CHECK(std::fabs(b) <= 1 / std::sqrt(8.0 * 16));
  auto tb = t.bias.value.to_host();
  for (real b : tb) CHECK(std::fabs(b) <= 1 / std::sqrt(16.0 * 16));
}

TEST_CASE("conv reads its weight parameter at every forward (as spectral_norm relies on)") {
  nn::bind_t<nn::conv2d<3, 3, 1, 1>, shape<2, 4, 4>, cpu> c;
  nn::bind_t<nn::conv_transpose2d<3, 3, 1, 1>, shape<2, 4, 4>, cpu> t;
  rng g(2);
  auto check = [&](auto& layer) {
    layer.init(g);
    layer.bias.value = 0.f;
    tensor<shape<2, 4, 4>> x(2);
    x = g.normal();
    auto y1 = host(layer.forward(x.cv()));
    layer.weight.value = layer.weight.value * -3.f;
    auto y2 = host(layer.forward(x.cv()));
    for (std::size_t i = 0; i < y1.size(); ++i) CHECK(y2[i] == doctest::Approx(-3 * y1[i]).epsilon(1e-5));
  };
  check(c);
  check(t);
  std::vector<std::string> names;
  c.for_each_parameter([&](nn::parameter_ref<cpu> p) { names.push_back(p.name); });
  CHECK(names == std::vector<std::string>{"weight", "bias"});
  CHECK(decltype(c)::name() == "conv<3, kernel<3>, stride<1>, pad<1>>");
  CHECK(decltype(t)::name() == "conv_transpose<3, kernel<3>, stride<1>, pad<1>>");
  CHECK(nn::bind_t<nn::avg_pool<2>, shape<1, 2, 2>, cpu>::name() == "avg_pool<2>");
  CHECK(nn::bind_t<nn::upsample<2>, shape<1, 2, 2>, cpu>::name() == "upsample<2>");
}

TEST_CASE("conv layers: wrong batches throw errors naming the layer; no allocation after the first step") {
  using critic = nn::sequential<nn::input<1, 8, 8>, nn::conv<4, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                                nn::leaky_relu<>, nn::avg_pool<2>, nn::upsample<2>,
                                nn::conv_transpose<2, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, nn::tanh, nn::flatten,
                                nn::dense<1>>;
  nn::network<critic> net;
  rng g(6);
  net.init(g);
  tensor<shape<1, 8, 8>> x(4), gbar(4), xbar(4);
  tensor<shape<1>> ones(4);
  x = g.normal();
  gbar = g.normal();
  ones = 1.f;
  auto step = [&] {
    net.forward(x.cv());
    net.backward(ones.cv(), nn::grads::skip);
    xbar = 0.f;
    net.double_backward(gbar.cv(), xbar.v());
    net.forward(x.cv());
    net.backward(ones.cv());
  };
  step();
  const auto before = allocation_count();
  step();
  CHECK(allocation_count() == before);

  auto& conv = net.layer<1>();
  tensor<shape<4, 4, 4>> dy(3);
  dy = 1.f;
  CHECK_THROWS_WITH_AS(conv.backward(dy.cv()), doctest::Contains("conv<4, kernel<4>, stride<2>, pad<1>>"), shape_error);
  CHECK_THROWS_WITH_AS(conv.backward(dy.cv()), doctest::Contains("batch 3"), shape_error);
  auto& convt = net.layer<5>();
  tensor<shape<4, 4, 4>> g3(3);
  g3 = 1.f;
  CHECK_THROWS_WITH_AS(convt.double_backward(g3.cv(), {}), doctest::Contains("conv_transpose<2"), shape_error);
  auto& pool = net.layer<3>();
  tensor<shape<4, 2, 2>> p3(3);
  p3 = 1.f;
  CHECK_THROWS_WITH_AS(pool.backward(p3.cv()), doctest::Contains("avg_pool<2>"), shape_error);
}
