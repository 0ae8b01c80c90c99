// Tests of the CPU backend's kernels (backend/cpu/backend.hpp) against plain loops written here:
// the packed GEMM over every transpose combination and edge sizes (partial micro-tiles, K across
// several depth blocks, alpha and beta), the batch-wide column layout of the convolutions
// (im2col_wide / col2im_wide against im2col / col2im), swap_axes, bitwise independence of the thread
// count, the thread pool's error propagation, and convolutions whose batch is cut into chunks
// (large batches) against the same layer run on sub-batches that fit in one chunk.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cdgan/cdgan.hpp"

using namespace cdgan;

namespace {

std::vector<real> random_vector(std::size_t n, std::uint64_t seed) {
  tensor<shape<1>> t(n);
  rng g(seed);
  t = g.normal();
  return t.to_host();
}

/// C = alpha·op(A)·op(B) + beta·C in double, row-major.
std::vector<real> naive_gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha,
                             const std::vector<real>& A, const std::vector<real>& B, real beta, std::vector<real> C) {
  for (std::size_t i = 0; i < M; ++i)
    for (std::size_t j = 0; j < N; ++j) {
      double s = 0;
      for (std::size_t k = 0; k < K; ++k)
        s += double(ta ? A[k * M + i] : A[i * K + k]) * double(tb ? B[j * K + k] : B[k * N + j]);
      C[i * N + j] = static_cast<real>(alpha * s + (beta == 0 ? 0.0 : double(beta) * C[i * N + j]));
    }
  return C;
}

/// The values of a host (CPU) view of n elements.
std::vector<real> tensor_host(const real* p, std::size_t n) { return std::vector<real>(p, p + n); }

struct thread_count {
  int saved = num_threads();
  explicit thread_count(int n) { set_num_threads(n); }
  ~thread_count() { set_num_threads(saved); }
};

}  // namespace

TEST_CASE("cpu gemm: every transpose, edge sizes, alpha and beta, against a double-precision loop") {
  struct dims {
    std::size_t m, n, k;
  };
  // partial tiles in M (6) and N (8, 16 or 32 by the build's vector width), K over several depth
  // blocks (256), vectors, and large products that take the threaded path; short wide products (M up
  // to 1.5·MC: B read in place, its narrow last panel packed; with tb the product computed as Cᵀ),
  // and narrow ones (N up to 4 panels: A read in place, a partial last row tile among them)
  for (dims d : {dims{1, 1, 1}, dims{5, 7, 3}, dims{6, 16, 8}, dims{12, 64, 40}, dims{13, 33, 300}, dims{1, 70, 9}, dims{70, 1, 9},
                 dims{130, 150, 520}, dims{64, 2100, 16}, dims{64, 1030, 600}, dims{13, 500, 270}, dims{128, 300, 40},
                 dims{100, 70, 300}, dims{181, 40, 9}})
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const auto A = random_vector(d.m * d.k, 1 + t), B = random_vector(d.k * d.n, 11 + t),
                 C0 = random_vector(d.m * d.n, 21 + t);
      for (const auto& [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.5f, 0.f}, std::pair{0.75f, 1.f}, std::pair{0.75f, -0.5f}}) {
        const auto want = naive_gemm(ta, tb, d.m, d.n, d.k, alpha, A, B, beta, C0);
        auto got = C0;
        backend<cpu>::gemm(ta, tb, d.m, d.n, d.k, alpha, A.data(), B.data(), beta, got.data());
        double worst = 0;
        for (std::size_t i = 0; i < want.size(); ++i)
          worst = std::max(worst, std::fabs(double(want[i]) - got[i]) / (1 + std::fabs(double(want[i]))));
        CHECK_MESSAGE(worst < 1e-4 * std::sqrt(double(d.k)), d.m << "x" << d.n << "x" << d.k << " ta " << ta << " tb " << tb
                                                                 << " alpha " << alpha << " beta " << beta << ": worst relative error " << worst);
      }
    }
  // beta = 0 overwrites NaN (C is not read), K = 0 scales C
  std::vector<real> c(6, std::nanf("")), a(6, 1.f), b(6, 1.f);
  backend<cpu>::gemm(false, false, 2, 3, 2, 1, a.data(), b.data(), 0, c.data());
  for (real v : c) CHECK(v == 2.f);
  backend<cpu>::gemm(false, false, 2, 3, 0, 1, a.data(), b.data(), 0.5f, c.data());
  for (real v : c) CHECK(v == 1.f);
}

TEST_CASE("cpu gemm and expressions give the same bits with 1 and 2 threads") {
  const std::size_t M = 150, N = 4000, K = 300;
  const auto A = random_vector(M * K, 3), B = random_vector(K * N, 4);
  std::vector<real> c1(M * N), c2(M * N);
  tensor<shape<1>> x(300000), s1(300000), s2(300000);
  rng g(5);
  x = g.normal();
  {
    thread_count one(1);
    backend<cpu>::gemm(false, true, M, N, K, 1, A.data(), B.data(), 0, c1.data());  // B read as Nᵀ: any layout
    s1 = tanh(x) * x + 1.f;
  }
  {
    thread_count two(2);
    backend<cpu>::gemm(false, true, M, N, K, 1, A.data(), B.data(), 0, c2.data());
    s2 = tanh(x) * x + 1.f;
  }
  CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(real)) == 0);
  CHECK(s1.to_host() == s2.to_host());
  // the paths that read an operand in place where the task is small (a dense layer's shapes at batch
  // 64: X·Wᵀ computed as (W·Xᵀ)ᵀ, X·W, Xᵀ·dY) give the same bits as the packed ones
  for (const auto& [ta, tb, m, n, k] : {std::tuple{false, true, 64, 1000, 700}, std::tuple{false, false, 64, 1000, 700},
                                       std::tuple{true, false, 700, 1000, 64}}) {
    const auto P = random_vector(std::size_t(m) * k, 6), Q = random_vector(std::size_t(k) * n, 7);
    std::vector<real> d1(std::size_t(m) * n), d2(std::size_t(m) * n);
    {
      thread_count one(1);
      backend<cpu>::gemm(ta, tb, m, n, k, 1, P.data(), Q.data(), 0, d1.data());
    }
    {
      thread_count two(2);
      backend<cpu>::gemm(ta, tb, m, n, k, 1, P.data(), Q.data(), 0, d2.data());
    }
    CHECK_MESSAGE(std::memcmp(d1.data(), d2.data(), d1.size() * sizeof(real)) == 0, m << "x" << n << "x" << k << " ta " << ta << " tb " << tb);
  }
}

TEST_CASE("cpu gemm: products cut into as many tasks as threads, or a multiple, at 1, 2 and 3 threads") {
  // the shapes of the convolutions' column chunks: few 32-wide tiles in N (15 for 468 columns), or a
  // long K with M the longer side (the first convolution's weight gradient: 11 six-row tiles), and
  // tile counts that do not divide by the thread count; every count gives the same bits
  struct dims {
    std::size_t m, n, k;
    bool tb;
  };
  for (dims d : {dims{256, 468, 64, false}, dims{64, 16, 3000, true}, dims{48, 290, 200, false}, dims{130, 40, 500, true}}) {
    const auto A = random_vector(d.m * d.k, 31), B = random_vector(d.k * d.n, 32);
    const auto want = naive_gemm(false, d.tb, d.m, d.n, d.k, 1, A, B, 0, std::vector<real>(d.m * d.n));
    std::vector<real> first;
    for (int threads : {1, 2, 3}) {
      thread_count tc(threads);
      std::vector<real> got(d.m * d.n, std::nanf(""));
      backend<cpu>::gemm(false, d.tb, d.m, d.n, d.k, 1, A.data(), B.data(), 0, got.data());
      double worst = 0;
      for (std::size_t i = 0; i < want.size(); ++i)
        worst = std::max(worst, std::fabs(double(want[i]) - got[i]) / (1 + std::fabs(double(want[i]))));
      CHECK_MESSAGE(worst < 1e-4 * std::sqrt(double(d.k)),
                    d.m << "x" << d.n << "x" << d.k << " at " << threads << " threads: worst relative error " << worst);
      if (first.empty())
        first = got;
      else
        CHECK_MESSAGE(std::memcmp(first.data(), got.data(), got.size() * sizeof(real)) == 0,
                      d.m << "x" << d.n << "x" << d.k << ": " << threads << " threads change the bits");
    }
  }
}

TEST_CASE("cpu thread pool: an exception thrown in a task reaches the caller, and the pool keeps working") {
  thread_count two(2);
  auto& pool = detail::cpu_kernels::thread_pool::instance();
  CHECK_THROWS_WITH_AS(pool.run(64, [](std::size_t t) { if (t == 37) throw std::runtime_error("task 37 failed"); }),
                       "task 37 failed", std::runtime_error);
  std::vector<int> hit(1000, 0);
  pool.run(hit.size(), [&](std::size_t t) { hit[t] += 1; });
  int total = 0;
  for (int h : hit) total += h;
  CHECK(total == 1000);  // every task ran exactly once
}

TEST_CASE("cpu im2col_wide / col2im_wide are im2col / col2im with the batch moved into the columns") {
  // c, h, w, k, stride, pad, oh, ow
  for (conv_geometry g : {conv_geometry{3, 7, 6, 3, 1, 1, 7, 6}, conv_geometry{2, 8, 8, 4, 2, 1, 4, 4},
                          conv_geometry{1, 5, 5, 2, 2, 0, 2, 2}, conv_geometry{2, 3, 3, 4, 3, 2, 2, 2},
                          conv_geometry{1, 28, 28, 4, 2, 1, 14, 14}, conv_geometry{64, 14, 14, 4, 2, 1, 7, 7},
                          conv_geometry{5, 6, 7, 1, 1, 0, 6, 7}}) {
    const std::size_t batch = 3, rows = g.col_rows(), cols = g.col_cols(), xs = batch * g.c * g.h * g.w;
    const auto x = random_vector(xs, 7);
    std::vector<real> col(batch * rows * cols), wide(batch * rows * cols, 7.f);
    backend<cpu>::im2col(x.data(), batch, g, col.data());
    backend<cpu>::im2col_wide(x.data(), batch, g, wide.data());
    std::size_t bad = 0;
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t p = 0; p < cols; ++p) bad += col[(b * rows + r) * cols + p] != wide[(r * batch + b) * cols + p];
    CHECK_MESSAGE(bad == 0, "im2col_wide, c " << g.c << " k " << g.k << ": " << bad << " values differ");

    // col2im_wide of the wide matrix adds exactly what col2im of the per-sample matrix adds
    const auto dcol = random_vector(batch * rows * cols, 8), x0 = random_vector(xs, 9);
    std::vector<real> dwide(dcol.size());
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t p = 0; p < cols; ++p) dwide[(r * batch + b) * cols + p] = dcol[(b * rows + r) * cols + p];
    auto y1 = x0, y2 = x0;
    backend<cpu>::col2im(dcol.data(), batch, g, y1.data());
    backend<cpu>::col2im_wide(dwide.data(), batch, g, y2.data());
    CHECK_MESSAGE(y1 == y2, "col2im_wide, c " << g.c << " k " << g.k);
  }
}

TEST_CASE("cpu swap_axes: dst[m][o][i] = src[o][m][i] (+ bias[o])") {
  const std::size_t outer = 5, mid = 7, inner = 13;
  const auto src = random_vector(outer * mid * inner, 10), bias = random_vector(outer, 11);
  std::vector<real> a(src.size()), b(src.size());
  backend<cpu>::swap_axes(a.data(), src.data(), outer, mid, inner);
  backend<cpu>::swap_axes(b.data(), src.data(), outer, mid, inner, bias.data());
  std::size_t bad = 0;
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t m = 0; m < mid; ++m)
      for (std::size_t i = 0; i < inner; ++i) {
        const real s = src[(o * mid + m) * inner + i];
        bad += a[(m * outer + o) * inner + i] != s;
        bad += b[(m * outer + o) * inner + i] != s + bias[o];
      }
  CHECK(bad == 0);
}

namespace {
/// A batch large enough that the layer cuts it into chunks (backend<cpu>::column_chunk_elements) gives
/// what the same layer gives on sub-batches that each fit in one chunk: forward, input gradient,
/// parameter gradients (summed over the sub-batches) and the second-order pass.
template <class Policy, class In>
void check_chunked_equals_split() {
  using L = nn::bind_t<Policy, In, cpu>;
  using Out = typename L::out_shape;
  constexpr std::size_t per_sample = L::rows * L::cols;
  const std::size_t batch = 2 * backend<cpu>::column_chunk_elements / per_sample + 3;  // three chunks
  const std::size_t piece = nn::detail::conv_chunk<cpu>(batch, per_sample);
  REQUIRE(piece < batch);
  REQUIRE(nn::detail::conv_chunk<cpu>(piece, per_sample) == piece);  // a sub-batch of `piece` is one chunk

  L whole, part;
  rng g(12);
  whole.init(g);
  part.weight.value.from_host(whole.weight.value.to_host());
  part.bias.value.from_host(whole.bias.value.to_host());
  tensor<In> x(batch), gbar(batch), xbar(batch);
  tensor<Out> dy(batch);
  x = g.normal();
  dy = g.normal();
  gbar = g.normal();

  const auto y = whole.forward(x.cv(), mode::train);
  const auto y_all = tensor_host(y.ptr, batch * Out::size);
  const auto dx = whole.backward(dy.cv(), nn::grads::assign);
  const auto dx_all = tensor_host(dx.ptr, batch * In::size);
  const auto dw_all = whole.weight.grad.to_host();
  xbar = 0.f;
  const auto dybar = whole.double_backward(gbar.cv(), xbar.v());
  const auto dybar_all = tensor_host(dybar.ptr, batch * Out::size);
  const auto dw2_all = whole.weight.grad.to_host();

  // the same on sub-batches of `piece` samples (each one chunk), gradients accumulated
  std::vector<real> y_p, dx_p, dybar_p;
  for (std::size_t b0 = 0; b0 < batch; b0 += piece) {
    const std::size_t nb = std::min(piece, batch - b0);
    auto ys = part.forward(x.cv().slice(b0, nb), mode::train);
    auto yv = tensor_host(ys.ptr, nb * Out::size);
    y_p.insert(y_p.end(), yv.begin(), yv.end());
    auto ds = part.backward(dy.cv().slice(b0, nb), b0 == 0 ? nn::grads::assign : nn::grads::accumulate);
    auto dv = tensor_host(ds.ptr, nb * In::size);
    dx_p.insert(dx_p.end(), dv.begin(), dv.end());
  }
  const auto dw_p = part.weight.grad.to_host();
  CHECK(y_all == y_p);  // the same GEMM rows for each sample: bitwise equal
  CHECK(dx_all == dx_p);
  double worst = 0;
  for (std::size_t i = 0; i < dw_all.size(); ++i)  // sums in another order: close, not equal
    worst = std::max(worst, std::fabs(double(dw_all[i]) - dw_p[i]) / (1 + std::fabs(double(dw_all[i]))));
  CHECK_MESSAGE(worst < 1e-4, L::name() << ": weight gradient differs by " << worst);
  for (std::size_t b0 = 0; b0 < batch; b0 += piece) {  // the second-order pass needs its own backward first
    const std::size_t nb = std::min(piece, batch - b0);
    part.forward(x.cv().slice(b0, nb), mode::train);
    part.backward(dy.cv().slice(b0, nb), nn::grads::skip);
    auto db = part.double_backward(gbar.cv().slice(b0, nb), xbar.v().slice(b0, nb));
    auto v = tensor_host(db.ptr, nb * Out::size);
    dybar_p.insert(dybar_p.end(), v.begin(), v.end());
  }
  CHECK(dybar_all == dybar_p);
  const auto dw2_p = part.weight.grad.to_host();  // dW + second-order term, both summed over pieces
  worst = 0;
  for (std::size_t i = 0; i < dw2_all.size(); ++i)
    worst = std::max(worst, std::fabs(double(dw2_all[i]) - dw2_p[i]) / (1 + std::fabs(double(dw2_all[i]))));
  CHECK_MESSAGE(worst < 1e-4, L::name() << ": weight gradient after double_backward differs by " << worst);
}
}  // namespace

TEST_CASE("conv and conv_transpose on batches cut into chunks equal the layer on sub-batches") {
  check_chunked_equals_split<nn::conv<8, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<3, 16, 16>>();
  check_chunked_equals_split<nn::conv_transpose<3, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, shape<8, 8, 8>>();
}
