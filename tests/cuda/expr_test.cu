// Elementwise expressions on the GPU (one fused kernel each) against the CPU, and the RNG parity
// requirement: one seed gives the same Philox draws on both devices.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include "cuda_test.hpp"

using namespace cdgan;
using cdgan_test::check_close;
using cdgan_test::upload;

namespace {
using img = shape<3, 4, 5>;  // C = 3, HW = 20

struct operands {
  tensor<img, cpu> a, b, c;
  tensor<shape<3>, cpu> chan;
  tensor<img, cpu> feat;  // only its first sample is used, as a per-feature vector
  explicit operands(std::size_t batch) : a(batch), b(batch), c(batch), chan(1), feat(1) {
    rng g(11);
    a = g.normal();
    b = g.uniform(0.25f, 3.f);  // positive: log, sqrt, rsqrt, division
    c = g.normal(0.f, 4.f);
    chan = g.normal();
    feat = g.normal();
  }
};

/// Evaluates make(a, b, c, chan, feat) into a fresh tensor on each device and compares.
template <class Make>
void compare_expr(const char* what, Make make, double rtol = 2e-6, double atol = 1e-5, std::size_t batch = 7) {
  operands h(batch);
  auto ga = upload(h.a), gb = upload(h.b), gc = upload(h.c);
  auto gchan = upload(h.chan);
  auto gfeat = upload(h.feat);
  tensor<img, cpu> yc(batch);
  tensor<img, cuda> yg(batch);
  yc = make(h.a.cv(), h.b.cv(), h.c.cv(), h.chan.cv(), h.feat.cv());
  yg = make(ga.cv(), gb.cv(), gc.cv(), gchan.cv(), gfeat.cv());
  check_close(yc.to_host(), yg.to_host(), rtol, atol, what);
}
}  // namespace

TEST_CASE("expressions: arithmetic, comparisons, select and broadcasts equal the CPU") {
  CDGAN_REQUIRE_GPU();
  compare_expr("a * b + c / b - 2", [](auto a, auto b, auto c, auto, auto) { return a * b + c / b - 2.f; });
  compare_expr("-(a) * 3 + max(a, c) - min(b, 1)", [](auto a, auto b, auto c, auto, auto) { return -a * 3.f + max(a, c) - min(b, 1.f); });
  compare_expr("(a > c) + (a < 0)", [](auto a, auto, auto c, auto, auto) { return (a > c) + (a < 0.f); });
  compare_expr("where(a > 0, b, c * 0.5)", [](auto a, auto b, auto c, auto, auto) { return where(a > 0.f, b, c * 0.5f); });
  compare_expr("per_channel", [](auto a, auto, auto, auto chan, auto) {
    return a * per_channel<20>(chan) + per_channel<20>(chan);
  });
  compare_expr("per_feature", [](auto a, auto, auto, auto, auto feat) {
    return a - per_feature<img>(feat.slice(0, 1));
  });
  compare_expr("per_sample", [](auto a, auto b, auto, auto, auto) { return a * per_sample<img::size, typename decltype(b)::device>(b.ptr, 7); });
}

TEST_CASE("expressions: transcendental functions and activations equal the CPU to a few ulp") {
  CDGAN_REQUIRE_GPU();
  compare_expr("exp(a)", [](auto a, auto, auto, auto, auto) { return exp(a); });
  compare_expr("log(b)", [](auto, auto b, auto, auto, auto) { return log(b); });
  compare_expr("sqrt(b) + rsqrt(b)", [](auto, auto b, auto, auto, auto) { return sqrt(b) + rsqrt(b); });
  compare_expr("abs(c) + square(a)", [](auto a, auto, auto c, auto, auto) { return abs(c) + square(a); });
  compare_expr("tanh(c)", [](auto, auto, auto c, auto, auto) { return tanh(c); });
  compare_expr("sigmoid(c)", [](auto, auto, auto c, auto, auto) { return sigmoid(c); });
  compare_expr("softplus(c)", [](auto, auto, auto c, auto, auto) { return softplus(c); });
  compare_expr("relu + step + leaky_relu", [](auto a, auto, auto c, auto, auto) {
    return relu(a) + step(c) + leaky_relu(c, 0.2f);
  });
  // A long fused expression (the shape of an optimiser update) is still one kernel argument.
  compare_expr("adam-like", [](auto a, auto b, auto c, auto, auto) {
    return a - 0.01f * (0.9f * c + 0.1f * a) / (sqrt(0.999f * b + 0.001f * square(a)) + 1e-8f);
  });
}

TEST_CASE("expressions: in-place updates, large sizes (grid-stride loop) and shape errors") {
  CDGAN_REQUIRE_GPU();
  const std::size_t n = (std::size_t{1} << 21) + 7;  // more than one grid of threads
  tensor<shape<1>, cpu> x(n), y(n);
  rng g(5);
  x = g.uniform(-1.f, 1.f);
  y = g.normal();
  auto gx = upload(x), gy = upload(y);
  y = y * 2.f + x;  // the destination is also an operand
  y += x;
  gy = gy * 2.f + gx;
  gy += gx;
  check_close(y.to_host(), gy.to_host(), 1e-6, 1e-6, "y = 2y + x; y += x");

  tensor<shape<4>, cuda> small(3);
  tensor<shape<4>, cuda> other(2);
  CHECK_THROWS_AS(small = other * 2.f, shape_error);
  small = 1.5f;
  CHECK(small.to_host() == std::vector<real>(12, 1.5f));
}

TEST_CASE("Philox draws: the same seed gives the same numbers on the CPU and the GPU") {
  CDGAN_REQUIRE_GPU();
  const std::size_t n = (std::size_t{1} << 21) + 3;
  rng hc(2024), hg(2024);
  tensor<shape<1>, cpu> c(n);
  tensor<shape<1>, cuda> d(n);

  c = hc.normal();
  d = hg.normal();
  check_close(c.to_host(), d.to_host(), 1e-6, 1e-6, "normal(0, 1)");
  c = hc.normal(0.5f, 2.f);
  d = hg.normal(0.5f, 2.f);
  check_close(c.to_host(), d.to_host(), 1e-6, 1e-6, "normal(0.5, 2)");
  c = hc.uniform();
  d = hg.uniform();
  check_close(c.to_host(), d.to_host(), 0, 1e-6, "uniform(0, 1)");
  c = hc.uniform(-3.f, 5.f);
  d = hg.uniform(-3.f, 5.f);
  check_close(c.to_host(), d.to_host(), 1e-6, 1e-6, "uniform(-3, 5)");
  c = hc.categorical(10);
  d = hg.categorical(10);
  CHECK(c.to_host() == d.to_host());  // integers: exactly equal
  CHECK(hc.calls() == hg.calls());

  // A draw inside a larger expression (noise added to data) is also the same.
  tensor<shape<1>, cpu> base(n);
  base = hc.uniform();
  hg.set_state(hc.seed(), hc.calls());  // the GPU stream skips the draw that made base
  auto gbase = upload(base);
  c = base + 0.1f * hc.normal();
  d = gbase + 0.1f * hg.normal();
  check_close(c.to_host(), d.to_host(), 1e-6, 1e-6, "base + 0.1 normal()");

  // Different seeds differ.
  rng other(2025);
  d = other.normal();
  auto dh = d.to_host(), ch = c.to_host();
  std::size_t same = 0;
  for (std::size_t i = 0; i < 1000; ++i) same += dh[i] == ch[i];
  CHECK(same < 10);
}
