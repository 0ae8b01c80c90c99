// backend<cuda> against backend<cpu>: GEMM (every transpose combination), batched GEMM, reductions,
// im2col/col2im, for_each, all_finite; and determinism (bitwise-equal repeats).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "cuda_test.hpp"

using namespace cdgan;
using cdgan_test::check_close;

namespace {
/// A flat host vector on both devices.
struct pair_buf {
  tensor<shape<1>, cpu> c;
  tensor<shape<1>, cuda> g;
  explicit pair_buf(std::size_t n, rng& r, real fill = std::numeric_limits<real>::quiet_NaN()) : c(n) {
    if (std::isnan(fill))
      c = r.normal();
    else
      c = fill;
    g.from_host(c.to_host());
  }
  void check(double rtol, double atol, const std::string& what) const { check_close(c.to_host(), g.to_host(), rtol, atol, what); }
};

struct functor_pair {  // the multi-output kernel of backend::for_each: two outputs, one pass
  const real* x;
  real* twice;
  real* plus_one;
  CDGAN_HOST_DEVICE void operator()(std::size_t i) const {
    twice[i] = 2.f * x[i];
    plus_one[i] = x[i] + 1.f;
  }
};
}  // namespace

TEST_CASE("gemm: every transpose combination, alpha and beta, equals the CPU") {
  CDGAN_REQUIRE_GPU();
  rng r(1);
  const std::size_t M = 13, N = 17, K = 19;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (real beta : {0.f, 0.3f}) {
        pair_buf A(M * K, r), B(K * N, r), C(M * N, r);
        if (beta == 0.f) {  // beta = 0 must ignore C, even NaN
          C.c = std::numeric_limits<real>::quiet_NaN();
          C.g = std::numeric_limits<real>::quiet_NaN();
        }
        backend<cpu>::gemm(ta, tb, M, N, K, 0.7f, A.c.data(), B.c.data(), beta, C.c.data());
        backend<cuda>::gemm(ta, tb, M, N, K, 0.7f, A.g.data(), B.g.data(), beta, C.g.data());
        C.check(1e-5, 1e-5, "gemm ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " beta=" + std::to_string(beta));
      }
  // a larger product (several cuBLAS tiles), and K = 0 (C = beta·C)
  pair_buf A(96 * 200, r), B(200 * 130, r), C(96 * 130, r);
  backend<cpu>::gemm(false, true, 96, 130, 200, 1.f, A.c.data(), B.c.data(), 1.f, C.c.data());
  backend<cuda>::gemm(false, true, 96, 130, 200, 1.f, A.g.data(), B.g.data(), 1.f, C.g.data());
  C.check(1e-4, 1e-4, "gemm 96x130x200");
  backend<cpu>::gemm(false, false, 96, 130, 0, 1.f, A.c.data(), B.c.data(), 0.5f, C.c.data());
  backend<cuda>::gemm(false, false, 96, 130, 0, 1.f, A.g.data(), B.g.data(), 0.5f, C.g.data());
  C.check(1e-6, 1e-6, "gemm K = 0");
}

TEST_CASE("gemm with TF32 allowed stays close to FP32; FP32 is the default") {
  CDGAN_REQUIRE_GPU();
  rng r(2);
  pair_buf A(64 * 256, r), B(256 * 64, r), C(64 * 64, r, 0.f);
  backend<cpu>::gemm(false, false, 64, 64, 256, 1.f, A.c.data(), B.c.data(), 0.f, C.c.data());
  cuda_context::instance().set_tf32(true);
  backend<cuda>::gemm(false, false, 64, 64, 256, 1.f, A.g.data(), B.g.data(), 0.f, C.g.data());
  cuda_context::instance().set_tf32(false);
  C.check(2e-2, 2e-1, "gemm with TF32");  // TF32 keeps 10 mantissa bits: |error| ~ 1e-3·sqrt(K)·|a||b|
  backend<cuda>::gemm(false, false, 64, 64, 256, 1.f, A.g.data(), B.g.data(), 0.f, C.g.data());
  C.check(1e-4, 1e-4, "gemm after TF32 is switched off again");
}

TEST_CASE("gemm_batched: strided batches, every transpose combination") {
  CDGAN_REQUIRE_GPU();
  rng r(3);
  const std::size_t M = 5, N = 9, K = 6, count = 4;
  const std::size_t sa = M * K + 3, sb = K * N + 1, sc = M * N + 2;  // padded strides
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      pair_buf A(sa * count, r), B(sb * count, r), C(sc * count, r);
      backend<cpu>::gemm_batched(ta, tb, M, N, K, 1.5f, A.c.data(), sa, B.c.data(), sb, 0.25f, C.c.data(), sc, count);
      backend<cuda>::gemm_batched(ta, tb, M, N, K, 1.5f, A.g.data(), sa, B.g.data(), sb, 0.25f, C.g.data(), sc, count);
      C.check(1e-5, 1e-5, "gemm_batched ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
    }
  // a shared operand (stride 0), as a convolution's weight across the batch
  pair_buf W(M * K, r), X(K * N * count, r), Y(M * N * count, r);
  backend<cpu>::gemm_batched(false, false, M, N, K, 1.f, W.c.data(), 0, X.c.data(), K * N, 0.f, Y.c.data(), M * N, count);
  backend<cuda>::gemm_batched(false, false, M, N, K, 1.f, W.g.data(), 0, X.g.data(), K * N, 0.f, Y.g.data(), M * N, count);
  Y.check(1e-5, 1e-5, "gemm_batched with a shared A");
}

TEST_CASE("reduce<sum> and reduce<max> over expressions equal the CPU, for every layout") {
  CDGAN_REQUIRE_GPU();
  struct layout {
    std::size_t outer, mid, inner;
  };
  rng r(4);
  // small and large outer/mid/inner, inner = 1 with few and many outputs (the two kernels), and
  // sizes that make the GPU split each output over several blocks
  for (layout l : {layout{3, 5, 7}, layout{64, 40, 1}, layout{1000, 3, 1}, layout{2, 2, 5000}, layout{700, 64, 1},
                   layout{5, 1, 1}, layout{1, 300, 1}, layout{50, 33, 2}, layout{64, 1024, 1}, layout{2, 1, 20000},
                   layout{16, 8, 196}}) {
    const std::string tag = std::to_string(l.outer) + "x" + std::to_string(l.mid) + "x" + std::to_string(l.inner);
    pair_buf x(l.outer * l.mid * l.inner, r);
    for (real beta : {0.f, 0.5f}) {
      pair_buf s(l.mid, r), m(l.mid, r);
      backend<cpu>::reduce<reduction::sum>(s.c.data(), l.outer, l.mid, l.inner, square(x.c) + x.c * 0.5f, beta);
      backend<cuda>::reduce<reduction::sum>(s.g.data(), l.outer, l.mid, l.inner, square(x.g) + x.g * 0.5f, beta);
      s.check(1e-4, 1e-5 * std::sqrt(double(l.outer * l.inner)), "sum " + tag + " beta " + std::to_string(beta));
      backend<cpu>::reduce<reduction::max>(m.c.data(), l.outer, l.mid, l.inner, x.c.as_expr(), beta);
      backend<cuda>::reduce<reduction::max>(m.g.data(), l.outer, l.mid, l.inner, x.g.as_expr(), beta);
      m.check(0, 0, "max " + tag + " beta " + std::to_string(beta));  // max is exact
    }
  }
  // an empty range: the sum is 0 and the max is -inf, as on the CPU
  pair_buf x(1, r), s(4, r), m(4, r);
  backend<cpu>::reduce<reduction::sum>(s.c.data(), 0, 4, 3, x.c.as_expr(), 0);
  backend<cuda>::reduce<reduction::sum>(s.g.data(), 0, 4, 3, x.g.as_expr(), 0);
  s.check(0, 0, "empty sum");
  backend<cpu>::reduce<reduction::max>(m.c.data(), 0, 4, 3, x.c.as_expr(), 0);
  backend<cuda>::reduce<reduction::max>(m.g.data(), 0, 4, 3, x.g.as_expr(), 0);
  m.check(0, 0, "empty max");
}

TEST_CASE("reductions and col2im are deterministic: repeats give the same bits") {
  CDGAN_REQUIRE_GPU();
  rng r(5);
  pair_buf x(300000, r);
  tensor<shape<1>, cuda> a(7), b(7);
  backend<cuda>::reduce<reduction::sum>(a.data(), 1000, 7, 1, x.g.as_expr() * 3.f, 0);  // only the first 7000 values
  backend<cuda>::reduce<reduction::sum>(b.data(), 1000, 7, 1, x.g.as_expr() * 3.f, 0);
  CHECK(a.to_host() == b.to_host());
  tensor<shape<1>, cuda> s1(1), s2(1);
  backend<cuda>::reduce<reduction::sum>(s1.data(), 1, 1, 300000, x.g.as_expr(), 0);
  backend<cuda>::reduce<reduction::sum>(s2.data(), 1, 1, 300000, x.g.as_expr(), 0);
  CHECK(s1.to_host() == s2.to_host());

  const conv_geometry g{4, 9, 9, 3, 2, 1, 5, 5};
  const std::size_t batch = 6;
  pair_buf col(batch * g.col_rows() * g.col_cols(), r);
  tensor<shape<1>, cuda> x1(batch * g.c * g.h * g.w), x2(batch * g.c * g.h * g.w);
  x1 = 0.f;
  x2 = 0.f;
  backend<cuda>::col2im(col.g.data(), batch, g, x1.data());
  backend<cuda>::col2im(col.g.data(), batch, g, x2.data());
  CHECK(x1.to_host() == x2.to_host());
}

TEST_CASE("im2col and col2im equal the CPU (col2im adds, in the same order: bitwise equal)") {
  CDGAN_REQUIRE_GPU();
  rng r(6);
  // c, h, w, k, stride, pad, oh, ow
  for (conv_geometry g : {conv_geometry{3, 7, 6, 3, 1, 1, 7, 6}, conv_geometry{2, 8, 8, 4, 2, 1, 4, 4},
                          conv_geometry{1, 5, 5, 2, 2, 0, 2, 2}, conv_geometry{2, 4, 4, 4, 2, 1, 2, 2},
                          conv_geometry{2, 3, 3, 4, 3, 2, 2, 2}, conv_geometry{1, 28, 28, 4, 2, 1, 14, 14},
                          conv_geometry{5, 6, 7, 1, 1, 0, 6, 7}}) {
    const std::string tag = "c" + std::to_string(g.c) + " " + std::to_string(g.h) + "x" + std::to_string(g.w) + " k" +
                            std::to_string(g.k) + " s" + std::to_string(g.stride) + " p" + std::to_string(g.pad);
    const std::size_t batch = 3, xs = batch * g.c * g.h * g.w, cs = batch * g.col_rows() * g.col_cols();
    pair_buf x(xs, r), col(cs, r, 0.f);
    backend<cpu>::im2col(x.c.data(), batch, g, col.c.data());
    backend<cuda>::im2col(x.g.data(), batch, g, col.g.data());
    col.check(0, 0, "im2col " + tag);
    pair_buf dcol(cs, r), dx(xs, r);  // col2im adds into a non-zero x
    backend<cpu>::col2im(dcol.c.data(), batch, g, dx.c.data());
    backend<cuda>::col2im(dcol.g.data(), batch, g, dx.g.data());
    dx.check(0, 0, "col2im " + tag);
    // the batch-wide layout [C·K·K][batch·OH·OW] of the convolutions' single GEMM
    pair_buf wcol(cs, r, 0.f);
    backend<cpu>::im2col_wide(x.c.data(), batch, g, wcol.c.data());
    backend<cuda>::im2col_wide(x.g.data(), batch, g, wcol.g.data());
    wcol.check(0, 0, "im2col_wide " + tag);
    pair_buf wdx(xs, r);
    backend<cpu>::col2im_wide(dcol.c.data(), batch, g, wdx.c.data());
    backend<cuda>::col2im_wide(dcol.g.data(), batch, g, wdx.g.data());
    wdx.check(0, 0, "col2im_wide " + tag);
  }
}

TEST_CASE("swap_axes equals the CPU, with and without a bias") {
  CDGAN_REQUIRE_GPU();
  rng r(8);
  const std::size_t outer = 5, mid = 7, inner = 13, n = outer * mid * inner;
  pair_buf src(n, r), bias(outer, r), a(n, r, 0.f), b(n, r, 0.f);
  backend<cpu>::swap_axes(a.c.data(), src.c.data(), outer, mid, inner);
  backend<cuda>::swap_axes(a.g.data(), src.g.data(), outer, mid, inner);
  a.check(0, 0, "swap_axes");
  backend<cpu>::swap_axes(b.c.data(), src.c.data(), outer, mid, inner, bias.c.data());
  backend<cuda>::swap_axes(b.g.data(), src.g.data(), outer, mid, inner, bias.g.data());
  b.check(0, 0, "swap_axes with bias");
}

TEST_CASE("for_each, copy and all_finite") {
  CDGAN_REQUIRE_GPU();
  rng r(7);
  const std::size_t n = 100003;
  pair_buf x(n, r), a(n, r, 0.f), b(n, r, 0.f);
  backend<cpu>::for_each(n, functor_pair{x.c.data(), a.c.data(), b.c.data()});
  backend<cuda>::for_each(n, functor_pair{x.g.data(), a.g.data(), b.g.data()});
  a.check(0, 0, "for_each output 1");
  b.check(0, 0, "for_each output 2");

  backend<cuda>::copy(a.g.data(), x.g.data(), n);
  CHECK(a.g.to_host() == x.c.to_host());

  CHECK(backend<cuda>::all_finite(x.g.data(), n));
  CHECK(backend<cuda>::all_finite(x.g.data(), 0));
  const real bad[] = {std::numeric_limits<real>::quiet_NaN(), std::numeric_limits<real>::infinity(),
                      -std::numeric_limits<real>::infinity()};
  for (real v : bad)
    for (std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
      auto h = x.c.to_host();
      h[at] = v;
      a.g.from_host(h);
      CHECK_FALSE(backend<cuda>::all_finite(a.g.data(), n));
      CHECK(backend<cuda>::all_finite(a.g.data(), at));  // the prefix before it is finite
    }
  std::vector<real> big(n, std::numeric_limits<real>::max());
  a.g.from_host(big);
  CHECK(backend<cuda>::all_finite(a.g.data(), n));  // the largest finite float is finite
  CHECK_NOTHROW(backend<cuda>::synchronize());
}
