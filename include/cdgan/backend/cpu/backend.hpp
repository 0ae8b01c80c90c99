/// @file backend/cpu/backend.hpp
/// The CPU backend: Eigen GEMM, OpenMP-threaded vectorised loops for expressions and reductions,
/// im2col/col2im. See backend/backend.hpp for the contract.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <cstdlib>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

#if !defined(CDGAN_CPU_GEMM)
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CDGAN_CPU_GEMM 1  ///< cdgan's own SSE/AVX2 GEMM; 0: Eigen's
#else
#define CDGAN_CPU_GEMM 0
#endif
#endif
#if CDGAN_CPU_GEMM
#include <immintrin.h>
#endif

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../../core/expr.hpp"
#include "../../core/memory.hpp"
#include "../backend.hpp"

namespace cdgan {

namespace detail::cpu_kernels {
#if CDGAN_CPU_GEMM

// ---------------------------------------------------------------------------------------------
// Single-precision GEMM (BLIS-style): C = alpha·op(A)·op(B) + beta·C over strided operands.
//
// Loops, outermost first: columns of C in blocks of NC (jc), depth in blocks of KC (pc: op(B)'s
// KC×NC block is packed into panels of NR columns), rows in blocks of MC (ic: op(A)'s MC×KC block
// is packed into panels of MR rows, scaled by alpha), then the NR-wide micro-panels of B (jr) and the
// MR-tall micro-panels of A (ir) meet in the MR×NR register-tile micro-kernel. The micro-kernel
// keeps 2·MR vector accumulators; one k step is two vector loads of B, MR broadcasts of A and 2·MR
// FMAs. With AVX2+FMA (compiled with -mavx2 -mfma or -march=native) a vector is 8 floats (6×16
// tile); otherwise it is 4 floats (SSE, 6×8 tile), so the same code runs on every x86-64 build.
//
// Threads: the work is cut into independent tasks along the longer of M and N (each task packs its
// own operands, so there is no barrier inside a GEMM and a descheduled thread delays only its own
// tasks); tasks are handed out dynamically. Every element of C is summed in the same order whatever
// the number of threads or tasks: results do not depend on the thread count.
// ---------------------------------------------------------------------------------------------

#if defined(__AVX2__) && defined(__FMA__)
using vec = __m256;
inline constexpr std::size_t vw = 8;
inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline vec vload_aligned(const float* p) { return _mm256_load_ps(p); }
inline void vstore(float* p, vec v) { _mm256_storeu_ps(p, v); }
inline vec vsplat(float s) { return _mm256_set1_ps(s); }
inline vec vzero() { return _mm256_setzero_ps(); }
inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
inline vec vmul(vec a, vec b) { return _mm256_mul_ps(a, b); }
#else
using vec = __m128;
inline constexpr std::size_t vw = 4;
inline vec vload(const float* p) { return _mm_loadu_ps(p); }
inline vec vload_aligned(const float* p) { return _mm_load_ps(p); }
inline void vstore(float* p, vec v) { _mm_storeu_ps(p, v); }
inline vec vsplat(float s) { return _mm_set1_ps(s); }
inline vec vzero() { return _mm_setzero_ps(); }
inline vec vfma(vec a, vec b, vec c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
inline vec vadd(vec a, vec b) { return _mm_add_ps(a, b); }
inline vec vmul(vec a, vec b) { return _mm_mul_ps(a, b); }
#endif

inline constexpr std::size_t mr = 6, nr = 2 * vw;
inline constexpr std::size_t kc_max = 256, mc_max = 120, nc_max = 2048;  // MC multiple of MR, NC of NR
static_assert(mc_max % mr == 0 && nc_max % nr == 0);

/// A strided matrix operand: element (i, j) is p[i·rs + j·cs].
struct operand {
  const float* p;
  std::size_t rs, cs;
  const float* at(std::size_t i, std::size_t j) const { return p + i * rs + j * cs; }
};

/// Per-thread packing buffers, allocated once per thread at their largest size.
struct pack_buffers {
  float* a = nullptr;
  float* b = nullptr;
  pack_buffers() {
    a = static_cast<float*>(std::aligned_alloc(64, mc_max * kc_max * sizeof(float)));
    b = static_cast<float*>(std::aligned_alloc(64, kc_max * nc_max * sizeof(float)));
    if (!a || !b) throw std::bad_alloc();
  }
  ~pack_buffers() {
    std::free(a);
    std::free(b);
  }
  pack_buffers(const pack_buffers&) = delete;
  pack_buffers& operator=(const pack_buffers&) = delete;
  static pack_buffers& local() {
    thread_local pack_buffers buffers;
    return buffers;
  }
};

/// Packs rows [i0, i0 + m) × depth [k0, k0 + kc) of op(A), times alpha, into MR-row panels: panel p
/// holds, for each k, the MR values of rows i0 + p·MR + r (zero past m).
inline void pack_a(operand a, std::size_t i0, std::size_t m, std::size_t k0, std::size_t kc, float alpha, float* out) {
  for (std::size_t p = 0; p < m; p += mr) {
    const std::size_t rows = std::min(mr, m - p);
    float* o = out + p * kc;
    if (a.rs == 1) {  // the MR values of one k are contiguous
      for (std::size_t k = 0; k < kc; ++k) {
        const float* s = a.at(i0 + p, k0 + k);
        std::size_t r = 0;
        for (; r < rows; ++r) o[k * mr + r] = alpha * s[r];
        for (; r < mr; ++r) o[k * mr + r] = 0.f;
      }
    } else {
      for (std::size_t r = 0; r < rows; ++r) {
        const float* s = a.at(i0 + p + r, k0);
        if (a.cs == 1)
          for (std::size_t k = 0; k < kc; ++k) o[k * mr + r] = alpha * s[k];
        else
          for (std::size_t k = 0; k < kc; ++k) o[k * mr + r] = alpha * s[k * a.cs];
      }
      for (std::size_t r = rows; r < mr; ++r)
        for (std::size_t k = 0; k < kc; ++k) o[k * mr + r] = 0.f;
    }
  }
}

#if defined(__AVX2__) && defined(__FMA__)
/// Transposes the 8×8 block whose rows start at s[r·ld] into 8 rows at o[k·ostride].
inline void transpose_8x8(const float* s, std::size_t ld, float* o, std::size_t ostride) {
  __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ld), r2 = _mm256_loadu_ps(s + 2 * ld),
         r3 = _mm256_loadu_ps(s + 3 * ld), r4 = _mm256_loadu_ps(s + 4 * ld), r5 = _mm256_loadu_ps(s + 5 * ld),
         r6 = _mm256_loadu_ps(s + 6 * ld), r7 = _mm256_loadu_ps(s + 7 * ld);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44),
         u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_store_ps(o, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_store_ps(o + ostride, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_store_ps(o + 2 * ostride, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_store_ps(o + 3 * ostride, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_store_ps(o + 4 * ostride, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_store_ps(o + 5 * ostride, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_store_ps(o + 6 * ostride, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_store_ps(o + 7 * ostride, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/// Packs depth [k0, k0 + kc) × columns [j0, j0 + n) of op(B) into NR-column panels: panel p holds,
/// for each k, the NR values of columns j0 + p·NR + c (zero past n).
inline void pack_b(operand b, std::size_t k0, std::size_t kc, std::size_t j0, std::size_t n, float* out) {
  for (std::size_t p = 0; p < n; p += nr) {
    const std::size_t cols = std::min(nr, n - p);
    float* o = out + p * kc;
    if (b.cs == 1) {  // the NR values of one k are contiguous
      if (cols == nr) {
        for (std::size_t k = 0; k < kc; ++k) {
          const float* s = b.at(k0 + k, j0 + p);
          for (std::size_t c = 0; c < nr; c += vw) vstore(o + k * nr + c, vload(s + c));
        }
      } else {
        for (std::size_t k = 0; k < kc; ++k) {
          const float* s = b.at(k0 + k, j0 + p);
          std::size_t c = 0;
          for (; c < cols; ++c) o[k * nr + c] = s[c];
          for (; c < nr; ++c) o[k * nr + c] = 0.f;
        }
      }
    } else {
      std::size_t k = 0;
#if defined(__AVX2__) && defined(__FMA__)
      if (b.rs == 1 && cols == nr) {  // op(B) = Bᵀ of a row-major B: transpose 8×8 blocks
        for (; k + 8 <= kc; k += 8)
          for (std::size_t c = 0; c < nr; c += 8) transpose_8x8(b.at(k0 + k, j0 + p + c), b.cs, o + k * nr + c, nr);
      }
#endif
      for (std::size_t c = 0; c < cols; ++c) {
        const float* s = b.at(k0, j0 + p + c);
        for (std::size_t kk = k; kk < kc; ++kk) o[kk * nr + c] = s[kk * b.rs];
      }
      for (std::size_t c = cols; c < nr; ++c)
        for (std::size_t kk = k; kk < kc; ++kk) o[kk * nr + c] = 0.f;
    }
  }
}

/// How the micro-kernel combines its tile with C: C = tile, C = tile + C, or C = tile + beta·C.
enum class store_mode { assign, add, scale_add };

/// C[0:m, 0:n] (m ≤ MR, n ≤ NR, row stride ldc) ⊕= Σ_k a[k·MR + r]·b[k·NR + c].
inline void micro_kernel(std::size_t kc, const float* __restrict a, const float* __restrict b, float* c, std::size_t ldc,
                         std::size_t m, std::size_t n, store_mode mode, float beta) {
  vec c00 = vzero(), c01 = vzero(), c10 = vzero(), c11 = vzero(), c20 = vzero(), c21 = vzero(), c30 = vzero(),
      c31 = vzero(), c40 = vzero(), c41 = vzero(), c50 = vzero(), c51 = vzero();
#pragma GCC unroll 4
  for (std::size_t k = 0; k < kc; ++k) {
    const vec b0 = vload_aligned(b), b1 = vload_aligned(b + vw);
    vec x = vsplat(a[0]);
    c00 = vfma(x, b0, c00);
    c01 = vfma(x, b1, c01);
    x = vsplat(a[1]);
    c10 = vfma(x, b0, c10);
    c11 = vfma(x, b1, c11);
    x = vsplat(a[2]);
    c20 = vfma(x, b0, c20);
    c21 = vfma(x, b1, c21);
    x = vsplat(a[3]);
    c30 = vfma(x, b0, c30);
    c31 = vfma(x, b1, c31);
    x = vsplat(a[4]);
    c40 = vfma(x, b0, c40);
    c41 = vfma(x, b1, c41);
    x = vsplat(a[5]);
    c50 = vfma(x, b0, c50);
    c51 = vfma(x, b1, c51);
    a += mr;
    b += nr;
  }
  const vec acc[mr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (m == mr && n == nr) {
    const vec vb = vsplat(beta);
    for (std::size_t r = 0; r < mr; ++r) {
      float* row = c + r * ldc;
      for (std::size_t h = 0; h < 2; ++h) {
        vec v = acc[r][h];
        if (mode == store_mode::add)
          v = vadd(v, vload(row + h * vw));
        else if (mode == store_mode::scale_add)
          v = vfma(vb, vload(row + h * vw), v);
        vstore(row + h * vw, v);
      }
    }
  } else {
    alignas(64) float tile[mr][nr];
    for (std::size_t r = 0; r < mr; ++r) {
      vstore(tile[r], acc[r][0]);
      vstore(tile[r] + vw, acc[r][1]);
    }
    for (std::size_t r = 0; r < m; ++r) {
      float* row = c + r * ldc;
      for (std::size_t j = 0; j < n; ++j) {
        const float v = tile[r][j];
        row[j] = mode == store_mode::assign ? v : mode == store_mode::add ? v + row[j] : v + beta * row[j];
      }
    }
  }
}

/// C[i0:i1, j0:j1] = alpha·op(A)·op(B) + beta·C on the calling thread (K > 0).
inline void gemm_block(std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1, std::size_t K, float alpha,
                       operand a, operand b, float beta, float* C, std::size_t ldc) {
  pack_buffers& buf = pack_buffers::local();
  for (std::size_t jc = j0; jc < j1; jc += nc_max) {
    const std::size_t nc = std::min(nc_max, j1 - jc);
    for (std::size_t pc = 0; pc < K; pc += kc_max) {
      const std::size_t kc = std::min(kc_max, K - pc);
      const store_mode mode = pc > 0 ? store_mode::add
                              : beta == 0.f ? store_mode::assign
                              : beta == 1.f ? store_mode::add
                                            : store_mode::scale_add;
      pack_b(b, pc, kc, jc, nc, buf.b);
      for (std::size_t ic = i0; ic < i1; ic += mc_max) {
        const std::size_t mc = std::min(mc_max, i1 - ic);
        pack_a(a, ic, mc, pc, kc, alpha, buf.a);
        for (std::size_t jr = 0; jr < nc; jr += nr)
          for (std::size_t ir = 0; ir < mc; ir += mr)
            micro_kernel(kc, buf.a + ir * kc, buf.b + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc,
                         std::min(mr, mc - ir), std::min(nr, nc - jr), mode, beta);
      }
    }
  }
}

/// Threads the GEMM may use from here: 1 inside a parallel region, else OpenMP's maximum.
inline int gemm_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

/// C[M×N] (row stride ldc) = alpha·op(A)·op(B) + beta·C, threaded (see the section comment).
inline void gemm(std::size_t M, std::size_t N, std::size_t K, float alpha, operand a, operand b, float beta, float* C,
                 std::size_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.f) {  // C = beta·C (beta = 0 overwrites whatever C held)
    for (std::size_t i = 0; i < M; ++i) {
      float* row = C + i * ldc;
      if (beta == 0.f)
        std::fill(row, row + N, 0.f);
      else if (beta != 1.f)
        for (std::size_t j = 0; j < N; ++j) row[j] *= beta;
    }
    return;
  }
  const int threads = gemm_threads();
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (threads <= 1 || work < 2e6) {
    gemm_block(0, M, 0, N, K, alpha, a, b, beta, C, ldc);
    return;
  }
  // Cut the longer side into about 4 tasks per thread, no thinner than 8 micro-tiles.
  const bool split_n = N >= M;
  const std::size_t len = split_n ? N : M, unit = split_n ? nr : mr;
  std::size_t piece = (len + 4 * static_cast<std::size_t>(threads) - 1) / (4 * static_cast<std::size_t>(threads));
  piece = std::max(piece, 8 * unit);
  piece = (piece + unit - 1) / unit * unit;
  const auto tasks = static_cast<std::ptrdiff_t>((len + piece - 1) / piece);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (tasks > 1)
  for (std::ptrdiff_t t = 0; t < tasks; ++t) {
    const std::size_t lo = static_cast<std::size_t>(t) * piece, hi = std::min(len, lo + piece);
    if (split_n)
      gemm_block(0, M, lo, hi, K, alpha, a, b, beta, C, ldc);
    else
      gemm_block(lo, hi, 0, N, K, alpha, a, b, beta, C, ldc);
  }
}

#endif  // CDGAN_CPU_GEMM
}  // namespace detail::cpu_kernels

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

  /// C[M×N] = alpha·op(A)·op(B) + beta·C, row-major (beta = 0 overwrites C, NaNs included).
  static void gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha, const real* A,
                   const real* B, real beta, real* C) {
#if CDGAN_CPU_GEMM
    using detail::cpu_kernels::operand;
    const operand a = ta ? operand{A, 1, M} : operand{A, K, 1};
    const operand b = tb ? operand{B, 1, K} : operand{B, N, 1};
    detail::cpu_kernels::gemm(M, N, K, alpha, a, b, beta, C, N);
#else
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
#endif
  }

  /// `count` GEMMs with operands at A + i·sa, B + i·sb, C + i·sc. Small products run one per thread;
  /// large ones one after another, each threaded.
  static void gemm_batched(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha,
                           const real* A, std::size_t sa, const real* B, std::size_t sb, real beta, real* C,
                           std::size_t sc, std::size_t count) {
    const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    const auto n = static_cast<std::ptrdiff_t>(count);
#pragma omp parallel for schedule(dynamic, 1) if (count > 1 && work < 4e6 && work * static_cast<double>(count) >= 1e6)
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      gemm(ta, tb, M, N, K, alpha, A + u * sa, B + u * sb, beta, C + u * sc);
    }
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

  /// col[b] = im2col(x[b]): col is [batch][C·K·K][OH·OW].
  static void im2col(const real* x, std::size_t batch, const conv_geometry& g, real* col) {
    const std::size_t rows = g.col_rows(), cols = g.col_cols(), kk = g.k * g.k;
    const auto planes = static_cast<std::ptrdiff_t>(batch * g.c);
#pragma omp parallel for schedule(static) if (batch * rows * cols >= 32768)
    for (std::ptrdiff_t bc = 0; bc < planes; ++bc) {
      const auto b = static_cast<std::size_t>(bc) / g.c, c = static_cast<std::size_t>(bc) % g.c;
      im2col_plane(x + static_cast<std::size_t>(bc) * g.h * g.w, g, col + (b * rows + c * kk) * cols, cols);
    }
  }

  /// x[b] += col2im(col[b]) (col as im2col's); threads split the images so no two threads write the
  /// same one. Each pixel adds its contributions in (ky, kx) order, as backend<cuda>.
  static void col2im(const real* col, std::size_t batch, const conv_geometry& g, real* x) {
    const std::size_t rows = g.col_rows(), cols = g.col_cols(), kk = g.k * g.k;
    const auto planes = static_cast<std::ptrdiff_t>(batch * g.c);
#pragma omp parallel for schedule(static) if (batch * rows * cols >= 32768)
    for (std::ptrdiff_t bc = 0; bc < planes; ++bc) {
      const auto b = static_cast<std::size_t>(bc) / g.c, c = static_cast<std::size_t>(bc) % g.c;
      col2im_plane(col + (b * rows + c * kk) * cols, cols, g, x + static_cast<std::size_t>(bc) * g.h * g.w);
    }
  }

  /// The batch-wide column matrix: col is [C·K·K][batch·OH·OW], sample b's columns at b·OH·OW of
  /// every row, so one GEMM with the [F][C·K·K] weight convolves the whole batch (its [F][batch·OH·OW]
  /// result becomes NCHW with swap_axes). Channel-major order: consecutive image planes of one
  /// channel fill consecutive stretches of the same K·K rows.
  static void im2col_wide(const real* x, std::size_t batch, const conv_geometry& g, real* col) {
    const std::size_t rows = g.col_rows(), cols = g.col_cols(), kk = g.k * g.k;
    const auto planes = static_cast<std::ptrdiff_t>(batch * g.c);
#pragma omp parallel for schedule(static) if (batch * rows * cols >= 32768)
    for (std::ptrdiff_t cb = 0; cb < planes; ++cb) {
      const auto c = static_cast<std::size_t>(cb) / batch, b = static_cast<std::size_t>(cb) % batch;
      im2col_plane(x + (b * g.c + c) * g.h * g.w, g, col + (c * kk * batch + b) * cols, batch * cols);
    }
  }

  /// x[b] += col2im of sample b's columns of the batch-wide column matrix (as im2col_wide's); the
  /// same per-pixel order as col2im.
  static void col2im_wide(const real* col, std::size_t batch, const conv_geometry& g, real* x) {
    const std::size_t rows = g.col_rows(), cols = g.col_cols(), kk = g.k * g.k;
    const auto planes = static_cast<std::ptrdiff_t>(batch * g.c);
#pragma omp parallel for schedule(static) if (batch * rows * cols >= 32768)
    for (std::ptrdiff_t cb = 0; cb < planes; ++cb) {
      const auto c = static_cast<std::size_t>(cb) / batch, b = static_cast<std::size_t>(cb) % batch;
      col2im_plane(col + (c * kk * batch + b) * cols, batch * cols, g, x + (b * g.c + c) * g.h * g.w);
    }
  }

  /// dst[m][o][i] = src[o][m][i] (+ bias[o] when bias is not null), for o < outer, m < mid, i < inner:
  /// swaps the two outer axes of a [outer][mid][inner] array ([F][batch][OH·OW] ↔ NCHW).
  static void swap_axes(real* dst, const real* src, std::size_t outer, std::size_t mid, std::size_t inner,
                        const real* bias = nullptr) {
    const auto total = static_cast<std::ptrdiff_t>(outer * mid);
#pragma omp parallel for schedule(static) if (outer * mid * inner >= 32768)
    for (std::ptrdiff_t om = 0; om < total; ++om) {
      const std::size_t o = static_cast<std::size_t>(om) / mid, m = static_cast<std::size_t>(om) % mid;
      const real* s = src + static_cast<std::size_t>(om) * inner;
      real* d = dst + (m * outer + o) * inner;
      if (bias) {
        const real v = bias[o];
        for (std::size_t i = 0; i < inner; ++i) d[i] = s[i] + v;
      } else {
        std::memcpy(d, s, inner * sizeof(real));
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

 private:
  /// The K·K column rows of one image plane xc (H×W): row (ky, kx) at col + (ky·K + kx)·row_stride gets
  /// out[oy·OW + ox] = xc[S·oy − P + ky][S·ox − P + kx] (0 outside the image).
  static void im2col_plane(const real* xc, const conv_geometry& g, real* col, std::size_t row_stride) {
    for (std::size_t ky = 0; ky < g.k; ++ky)
      for (std::size_t kx = 0; kx < g.k; ++kx) {
        real* out = col + (ky * g.k + kx) * row_stride;
        const auto [lo, hi] = valid_range(kx, g.stride, g.pad, g.w, g.ow);
        for (std::size_t oy = 0; oy < g.oh; ++oy, out += g.ow) {
          const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.pad);
          if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(g.h) || lo >= hi) {
            std::fill(out, out + g.ow, real(0));
            continue;
          }
          // column ox reads xc[base + S·ox], inside the row for ox in [lo, hi)
          const std::ptrdiff_t base = iy * static_cast<std::ptrdiff_t>(g.w) + static_cast<std::ptrdiff_t>(kx) -
                                      static_cast<std::ptrdiff_t>(g.pad);
          const real* xr = xc + (base + static_cast<std::ptrdiff_t>(g.stride * lo));  // column lo
          std::fill(out, out + lo, real(0));
          if (g.stride == 1) {
            std::memcpy(out + lo, xr, (hi - lo) * sizeof(real));
          } else if (g.stride == 2) {
            for (std::size_t i = 0; i < hi - lo; ++i) out[lo + i] = xr[2 * i];
          } else {
            for (std::size_t i = 0; i < hi - lo; ++i) out[lo + i] = xr[i * g.stride];
          }
          std::fill(out + hi, out + g.ow, real(0));
        }
      }
  }

  /// The output columns [lo, hi) whose input column S·o − P + kx lies inside [0, w).
  static std::pair<std::size_t, std::size_t> valid_range(std::size_t kx, std::size_t s, std::size_t p, std::size_t w,
                                                         std::size_t ow) {
    // S·o + kx ≥ P  and  S·o + kx < w + P
    const std::size_t lo = kx >= p ? 0 : (p - kx + s - 1) / s;
    const std::size_t hi = w + p > kx ? std::min(ow, (w + p - kx + s - 1) / s) : 0;
    return {std::min(lo, hi), hi};
  }

  /// Adds into one image plane xc (H×W) the K·K column rows of its channel, row (ky, kx) at
  /// col + (ky·K + kx)·row_stride, in (ky, kx) order.
  static void col2im_plane(const real* col, std::size_t row_stride, const conv_geometry& g, real* xc) {
    for (std::size_t ky = 0; ky < g.k; ++ky)
      for (std::size_t kx = 0; kx < g.k; ++kx) {
        const real* in = col + (ky * g.k + kx) * row_stride;
        const auto [lo, hi] = valid_range(kx, g.stride, g.pad, g.w, g.ow);
        if (lo >= hi) continue;
        for (std::size_t oy = 0; oy < g.oh; ++oy) {
          const std::ptrdiff_t iy = static_cast<std::ptrdiff_t>(oy * g.stride + ky) - static_cast<std::ptrdiff_t>(g.pad);
          if (iy < 0 || iy >= static_cast<std::ptrdiff_t>(g.h)) continue;
          const std::ptrdiff_t base = iy * static_cast<std::ptrdiff_t>(g.w) + static_cast<std::ptrdiff_t>(kx) -
                                      static_cast<std::ptrdiff_t>(g.pad);
          real* xr = xc + (base + static_cast<std::ptrdiff_t>(g.stride * lo));  // column lo
          const real* ir = in + oy * g.ow + lo;
          if (g.stride == 1) {
            for (std::size_t i = 0; i < hi - lo; ++i) xr[i] += ir[i];
          } else if (g.stride == 2) {
            for (std::size_t i = 0; i < hi - lo; ++i) xr[2 * i] += ir[i];
          } else {
            for (std::size_t i = 0; i < hi - lo; ++i) xr[i * g.stride] += ir[i];
          }
        }
      }
  }
};

}  // namespace cdgan
