/// @file backend/cpu/backend.hpp
/// The CPU backend: Eigen GEMM, OpenMP-threaded vectorised loops for expressions and reductions,
/// im2col/col2im. See backend/backend.hpp for the contract.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../../core/expr.hpp"
#include "../../core/memory.hpp"
#include "../backend.hpp"

namespace cdgan {

/// Number of threads the CPU backend uses (OpenMP and Eigen).
inline void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}
inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

template <>
struct executor<cpu> {
  /// dst[i] = e[i] for i < n: one loop, vectorised by the compiler, split across threads when large.
  template <class E>
  static void run(real* dst, std::size_t n, const E& e) {
    const std::ptrdiff_t m = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for simd schedule(static) if (m >= 32768)
    for (std::ptrdiff_t i = 0; i < m; ++i) dst[i] = e[static_cast<std::size_t>(i)];
  }
};

template <>
struct backend<cpu> {
  using rmat = Eigen::Matrix<real, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using map = Eigen::Map<rmat>;
  using cmap = Eigen::Map<const rmat>;

  static void gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha, const real* A,
                   const real* B, real beta, real* C) {
    const auto m = static_cast<Eigen::Index>(M), n = static_cast<Eigen::Index>(N), k = static_cast<Eigen::Index>(K);
    map c(C, m, n);
    if (beta == real(0))
      c.setZero();
    else if (beta != real(1))
      c *= beta;
    cmap a(A, ta ? k : m, ta ? m : k);
    cmap b(B, tb ? n : k, tb ? k : n);
    if (!ta && !tb)
      c.noalias() += alpha * a * b;
    else if (ta && !tb)
      c.noalias() += alpha * a.transpose() * b;
    else if (!ta && tb)
      c.noalias() += alpha * a * b.transpose();
    else
      c.noalias() += alpha * a.transpose() * b.transpose();
  }

  static void gemm_batched(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha,
                           const real* A, std::size_t sa, const real* B, std::size_t sb, real beta, real* C,
                           std::size_t sc, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) gemm(ta, tb, M, N, K, alpha, A + i * sa, B + i * sb, beta, C + i * sc);
  }

  template <class R, class E>
  static void reduce(real* out, std::size_t outer, std::size_t mid, std::size_t inner, const E& e, real beta = 0) {
    const std::ptrdiff_t pm = static_cast<std::ptrdiff_t>(mid);
    constexpr bool is_sum = std::is_same_v<R, reduction::sum>;
#pragma omp parallel for schedule(static) if (outer * mid * inner >= 32768 && mid > 1)
    for (std::ptrdiff_t mm = 0; mm < pm; ++mm) {
      const auto m = static_cast<std::size_t>(mm);
      double acc = is_sum ? 0.0 : -std::numeric_limits<double>::infinity();
      for (std::size_t o = 0; o < outer; ++o) {
        const std::size_t base = (o * mid + m) * inner;
        if constexpr (is_sum) {
          float part = 0.f;  // a vectorisable inner sum, accumulated in double across rows
          for (std::size_t i = 0; i < inner; ++i) part += e[base + i];
          acc += part;
        } else {
          for (std::size_t i = 0; i < inner; ++i) acc = std::max<double>(acc, e[base + i]);
        }
      }
      const real r = static_cast<real>(acc);
      out[m] = beta == real(0) ? r : (is_sum ? beta * out[m] + r : std::max(beta * out[m], r));
    }
  }

  static void im2col(const real* x, std::size_t batch, const conv_geometry& g, real* col) {
    const std::size_t rows = g.col_rows(), cols = g.col_cols();
    const auto total = static_cast<std::ptrdiff_t>(batch * rows);
#pragma omp parallel for schedule(static) if (batch * rows * cols >= 32768)
    for (std::ptrdiff_t br = 0; br < total; ++br) {
      const std::size_t b = static_cast<std::size_t>(br) / rows, r = static_cast<std::size_t>(br) % rows;
      const std::size_t c = r / (g.k * g.k), ky = (r / g.k) % g.k, kx = r % g.k;
      const real* xc = x + (b * g.c + c) * g.h * g.w;
      real* out = col + (b * rows + r) * cols;
      for (std::size_t oy = 0; oy < g.oh; ++oy) {
        const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.pad);
        for (std::size_t ox = 0; ox < g.ow; ++ox) {
          const std::ptrdiff_t ix = static_cast<std::ptrdiff_t>(ox * g.stride + kx) - static_cast<std::ptrdiff_t>(g.pad);
          const bool inside = iy >= 0 && ix >= 0 && iy < static_cast<std::ptrdiff_t>(g.h) && ix < static_cast<std::ptrdiff_t>(g.w);
          out[oy * g.ow + ox] = inside ? xc[static_cast<std::size_t>(iy) * g.w + static_cast<std::size_t>(ix)] : real(0);
        }
      }
    }
  }

  /// x[b] += col2im(col[b]); threads split the batch so no two threads write the same image.
  static void col2im(const real* col, std::size_t batch, const conv_geometry& g, real* x) {
    const std::size_t rows = g.col_rows(), cols = g.col_cols();
#pragma omp parallel for schedule(static) if (batch * rows * cols >= 32768)
    for (std::ptrdiff_t bb = 0; bb < static_cast<std::ptrdiff_t>(batch); ++bb) {
      const auto b = static_cast<std::size_t>(bb);
      for (std::size_t r = 0; r < rows; ++r) {
        const std::size_t c = r / (g.k * g.k), ky = (r / g.k) % g.k, kx = r % g.k;
        real* xc = x + (b * g.c + c) * g.h * g.w;
        const real* in = col + (b * rows + r) * cols;
        for (std::size_t oy = 0; oy < g.oh; ++oy) {
          const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.pad);
          if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(g.h)) continue;
          for (std::size_t ox = 0; ox < g.ow; ++ox) {
            const std::ptrdiff_t ix = static_cast<std::ptrdiff_t>(ox * g.stride + kx) - static_cast<std::ptrdiff_t>(g.pad);
            if (ix < 0 || ix >= static_cast<std::ptrdiff_t>(g.w)) continue;
            xc[static_cast<std::size_t>(iy) * g.w + static_cast<std::size_t>(ix)] += in[oy * g.ow + ox];
          }
        }
      }
    }
  }

  /// f(i) for every i < n, in any order and on any thread: a fused multi-output elementwise kernel
  /// (e.g. the optimisers' update of a parameter and its state in one pass). F is trivially copyable
  /// and its `operator()(std::size_t) const` is CDGAN_HOST_DEVICE; f(i) touches only index i.
  template <class F>
  static void for_each(std::size_t n, const F& f) {
    const std::ptrdiff_t m = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for simd schedule(static) if (m >= 32768)
    for (std::ptrdiff_t i = 0; i < m; ++i) f(static_cast<std::size_t>(i));
  }

  static void copy(real* dst, const real* src, std::size_t n) {
    if (n) std::memcpy(dst, src, n * sizeof(real));
  }
  static bool all_finite(const real* p, std::size_t n) {
    bool ok = true;
    for (std::size_t i = 0; i < n; ++i) ok &= std::isfinite(p[i]);
    return ok;
  }
  static void synchronize() {}
};

}  // namespace cdgan
