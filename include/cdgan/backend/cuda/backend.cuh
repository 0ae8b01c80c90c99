/// @file backend/cuda/backend.cuh
/// The CUDA backend: the expression executor (one fused kernel per assignment), cuBLAS GEMM,
/// deterministic reductions, im2col/col2im. See backend/backend.hpp for the contract. nvcc only.
///
/// What this represents:
/// - `executor<cuda>::run(dst, n, e)`: `e` is the expression's node tree, a small trivially-copyable
///   struct of raw device pointers and scalars. It is passed BY VALUE as the argument of one kernel
///   template, `eval_kernel<E>`, instantiated per expression type; each thread evaluates `e[i]` (the
///   nodes' `CDGAN_HOST_DEVICE operator[]`, fully inlined) over a grid-stride loop and stores it. So
///   `y = leaky_relu(x * w + b, 0.2f)` is one launch that reads x, w, b once and writes y once.
/// - `backend<cuda>`: the same static functions as `backend<cpu>`, over device pointers, queued on
///   the default `cuda_context`'s stream (see memory.hpp): gemm/gemm_batched (cuBLAS, row-major via
///   the transpose identity Cᵀ = op(B)ᵀ·op(A)ᵀ), reduce<sum|max> (a kernel over the expression:
///   fixed-shape tree reductions, double accumulation for sums), im2col/col2im (col2im gathers: one
///   thread per input pixel, adding its contributions in the CPU's order, so no atomics),
///   for_each (a multi-output elementwise kernel over a functor), copy, all_finite, synchronize.
///
/// Requires: a translation unit compiled by nvcc (`.cu`, or LANGUAGE CUDA) with CDGAN_WITH_CUDA
/// (the cdgan::cuda target). Pointers are device pointers from cdgan tensors.
/// Ensures: results are deterministic: the same inputs give the same bits on the same GPU model, run
/// after run (no atomics in any sum; reduction shapes depend only on the problem size). Launch and
/// cuBLAS failures throw cdgan::device_error naming the call; errors of kernels that fail while
/// running surface at the next synchronising call (to_host, all_finite, synchronize).
#pragma once
#if !defined(__CUDACC__)
#error "cdgan/backend/cuda/backend.cuh contains CUDA kernels: compile this translation unit with nvcc (a .cu file, or set_source_files_properties(... LANGUAGE CUDA))"
#endif

#include <climits>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../../core/expr.hpp"
#include "../../core/memory.hpp"
#include "../backend.hpp"
#include "error.hpp"
#include "kernels.cuh"
#include "memory.hpp"

namespace cdgan {

namespace detail::cuda_kernels {

inline unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + block_size - 1) / block_size;
  const std::size_t cap = static_cast<std::size_t>(cuda_context::instance().sm_count()) * 32;
  const std::size_t g = blocks < cap ? blocks : cap;
  return static_cast<unsigned>(g == 0 ? 1 : g);
}

inline void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_cuda_error(e, kernel, __FILE__, __LINE__);
}

inline int to_blas_int(std::size_t v, const char* what) {
  if (v > static_cast<std::size_t>(INT_MAX))
    throw device_error(std::string("cdgan: backend<cuda>::gemm: ") + what + " = " + std::to_string(v) +
                       " exceeds cuBLAS's 32-bit int range");
  return static_cast<int>(v);
}


}  // namespace detail::cuda_kernels

template <>
struct executor<cuda> {
  /// dst[i] = e[i] for i < n, as ONE kernel launch whose argument is the expression tree.
  template <class E>
  static void run(real* dst, std::size_t n, const E& e) {
    static_assert(std::is_trivially_copyable_v<E>, "cdgan: an expression node must be trivially copyable to be a kernel argument");
    static_assert(sizeof(E) <= 4096, "cdgan: this expression is too large to pass as a CUDA kernel argument; split it in two assignments");
    if (n == 0) return;
    namespace k = detail::cuda_kernels;
    k::eval_kernel<E><<<k::grid_for(n), k::block_size, 0, cuda_context::instance().stream()>>>(dst, n, e);
    k::check_launch("eval_kernel<<<...>>> (elementwise expression)");
  }
};

template <>
struct backend<cuda> {
  /// C[M×N] = alpha·op(A)·op(B) + beta·C, all row-major. cuBLAS is column-major, and a row-major
  /// matrix is its transpose seen column-major, so we ask cuBLAS for Cᵀ = op(B)ᵀ·op(A)ᵀ.
  static void gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha, const real* A,
                   const real* B, real beta, real* C) {
    gemm_batched(ta, tb, M, N, K, alpha, A, 0, B, 0, beta, C, 0, 1);
  }

  static void gemm_batched(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha,
                           const real* A, std::size_t sa, const real* B, std::size_t sb, real beta, real* C,
                           std::size_t sc, std::size_t count) {
    namespace k = detail::cuda_kernels;
    if (M == 0 || N == 0 || count == 0) return;
    if (K == 0) {  // C = beta·C (cuBLAS would also do this, but its leading-dimension checks reject K = 0)
      for (std::size_t i = 0; i < count; ++i) {
        const expr_ref<cuda> c{{}, C + i * sc, M * N};
        if (beta == real(0))
          executor<cuda>::run(C + i * sc, M * N, expr_scalar{{}, 0});
        else
          executor<cuda>::run(C + i * sc, M * N, make_binary<op::mul>(c, beta));
      }
      return;
    }
    const int m = k::to_blas_int(M, "M"), n = k::to_blas_int(N, "N"), kk = k::to_blas_int(K, "K");
    const int lda = ta ? m : kk, ldb = tb ? kk : n, ldc = n;
    const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasHandle_t h = cuda_context::instance().cublas();
    if (count == 1) {
      CDGAN_CUBLAS_CHECK(cublasSgemm(h, opb, opa, n, m, kk, &alpha, B, ldb, A, lda, &beta, C, ldc));
    } else {
      CDGAN_CUBLAS_CHECK(cublasSgemmStridedBatched(h, opb, opa, n, m, kk, &alpha, B, ldb, static_cast<long long>(sb), A,
                                                   lda, static_cast<long long>(sa), &beta, C, ldc,
                                                   static_cast<long long>(sc), k::to_blas_int(count, "count")));
    }
  }

  /// out[m] = beta·out[m] + R over (o, i) of e[(o·mid + m)·inner + i] (max: max(beta·out[m], ·)).
  template <class R, class E>
  static void reduce(real* out, std::size_t outer, std::size_t mid, std::size_t inner, const E& e, real beta = 0) {
    static_assert(std::is_same_v<R, reduction::sum> || std::is_same_v<R, reduction::max>,
                  "cdgan: backend<cuda>::reduce<R>: R is reduction::sum or reduction::max");
    constexpr bool is_sum = std::is_same_v<R, reduction::sum>;
    using acc = typename detail::cuda_kernels::red<is_sum>::acc;
    namespace k = detail::cuda_kernels;
    if (mid == 0) return;
    auto& ctx = cuda_context::instance();
    const k::reduce_plan plan = k::plan_reduce(outer, mid, inner);
    if (plan.grid_x > 0x7fffffffu)
      throw device_error("cdgan: backend<cuda>::reduce: " + std::to_string(mid) + " outputs exceed the CUDA grid limit");
    const auto splits = static_cast<unsigned>(plan.splits);
    acc* partial = splits > 1 ? static_cast<acc*>(ctx.workspace(mid * splits * sizeof(acc))) : nullptr;
    const dim3 grid(static_cast<unsigned>(plan.grid_x), splits);
    if (plan.columns)
      k::reduce_cols_kernel<is_sum, E><<<grid, dim3(32, 8), 0, ctx.stream()>>>(out, outer, mid, e, beta, partial, splits);
    else
      k::reduce_rows_kernel<is_sum, E><<<grid, k::block_size, 0, ctx.stream()>>>(out, outer, mid, inner, e, beta, partial, splits);
    k::check_launch("reduce_kernel<<<...>>> (reduction)");
    if (splits > 1) {
      k::reduce_finish_kernel<is_sum><<<static_cast<unsigned>(mid), k::block_size, 0, ctx.stream()>>>(out, partial, splits, beta);
      k::check_launch("reduce_finish_kernel<<<...>>> (reduction)");
    }
  }

  /// col[b] = im2col(x[b]) for every image of the batch (col is [batch][C·K·K][OH·OW]).
  static void im2col(const real* x, std::size_t batch, const conv_geometry& g, real* col) {
    const std::size_t total = batch * g.col_rows() * g.col_cols();
    if (total == 0) return;
    if (fits_32(total, batch * g.c * g.h * g.w))
      launch_im2col<std::uint32_t>(x, total, g, col);
    else
      launch_im2col<std::size_t>(x, total, g, col);
  }

  /// x[b] += col2im(col[b]); deterministic (each input pixel gathers its own contributions).
  static void col2im(const real* col, std::size_t batch, const conv_geometry& g, real* x) {
    const std::size_t total = batch * g.c * g.h * g.w;
    if (total == 0 || g.col_cols() == 0) return;
    if (fits_32(total, batch * g.col_rows() * g.col_cols()))
      launch_col2im<std::uint32_t>(col, total, g, x);
    else
      launch_col2im<std::size_t>(col, total, g, x);
  }

  /// The batch-wide column matrix [C·K·K][batch·OH·OW] of backend/backend.hpp (one GEMM per batch).
  static void im2col_wide(const real* x, std::size_t batch, const conv_geometry& g, real* col) {
    const std::size_t total = batch * g.col_rows() * g.col_cols();
    if (total == 0) return;
    if (fits_32(total, batch * g.c * g.h * g.w))
      launch_im2col<std::uint32_t, true>(x, total, g, col, batch);
    else
      launch_im2col<std::size_t, true>(x, total, g, col, batch);
  }

  /// x[b] += col2im of sample b's columns of the batch-wide column matrix.
  static void col2im_wide(const real* col, std::size_t batch, const conv_geometry& g, real* x) {
    const std::size_t total = batch * g.c * g.h * g.w;
    if (total == 0 || g.col_cols() == 0) return;
    if (fits_32(total, batch * g.col_rows() * g.col_cols()))
      launch_col2im<std::uint32_t, true>(col, total, g, x, batch);
    else
      launch_col2im<std::size_t, true>(col, total, g, x, batch);
  }

  /// dst[m][o][i] = src[o][m][i] (+ bias[o]).
  static void swap_axes(real* dst, const real* src, std::size_t outer, std::size_t mid, std::size_t inner,
                        const real* bias = nullptr) {
    const std::size_t total = outer * mid * inner;
    if (total == 0) return;
    namespace k = detail::cuda_kernels;
    auto stream = cuda_context::instance().stream();
    if (fits_32(total, total))
      k::swap_axes_kernel<std::uint32_t><<<k::grid_for(total), k::block_size, 0, stream>>>(
          dst, src, static_cast<std::uint32_t>(total), static_cast<std::uint32_t>(outer), static_cast<std::uint32_t>(mid),
          static_cast<std::uint32_t>(inner), bias);
    else
      k::swap_axes_kernel<std::size_t><<<k::grid_for(total), k::block_size, 0, stream>>>(dst, src, total, outer, mid,
                                                                                          inner, bias);
    k::check_launch("swap_axes_kernel<<<...>>>");
  }

  /// f(i) for every i < n as one kernel launch (f passed by value; see backend/backend.hpp).
  template <class F>
  static void for_each(std::size_t n, const F& f) {
    static_assert(std::is_trivially_copyable_v<F>, "cdgan: backend<cuda>::for_each: the functor must be trivially copyable (it is a kernel argument)");
    if (n == 0) return;
    namespace k = detail::cuda_kernels;
    k::for_each_kernel<F><<<k::grid_for(n), k::block_size, 0, cuda_context::instance().stream()>>>(n, f);
    k::check_launch("for_each_kernel<<<...>>>");
  }

  static void copy(real* dst, const real* src, std::size_t n) { device_memory<cuda>::copy(dst, src, n * sizeof(real)); }

  /// True when no element of [p, p + n) is NaN or infinite (waits for the stream).
  static bool all_finite(const real* p, std::size_t n) {
    if (n == 0) return true;
    namespace k = detail::cuda_kernels;
    auto& ctx = cuda_context::instance();
    int* bad = static_cast<int*>(ctx.workspace(sizeof(int)));
    CDGAN_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), ctx.stream()));
    k::all_finite_kernel<real><<<k::grid_for(n), k::block_size, 0, ctx.stream()>>>(p, n, bad);
    k::check_launch("all_finite_kernel<<<...>>>");
    int host_bad = 0;
    CDGAN_CUDA_CHECK(cudaMemcpyAsync(&host_bad, bad, sizeof(int), cudaMemcpyDeviceToHost, ctx.stream()));
    ctx.synchronize();
    return host_bad == 0;
  }

  /// Waits for all queued work; reports errors of kernels that failed while running.
  static void synchronize() { cuda_context::instance().synchronize(); }

 private:
  static bool fits_32(std::size_t a, std::size_t b) {
    constexpr std::size_t lim = 0x7fffffffu;  // leaves headroom for idx + grid stride
    return a <= lim && b <= lim;
  }
  template <class I, bool Wide = false>
  static void launch_im2col(const real* x, std::size_t total, const conv_geometry& g, real* col, std::size_t batch = 1) {
    namespace k = detail::cuda_kernels;
    k::im2col_kernel<I, Wide><<<k::grid_for(total), k::block_size, 0, cuda_context::instance().stream()>>>(
        x, static_cast<I>(total), k::geometry<I>(g), col, static_cast<I>(batch));
    k::check_launch("im2col_kernel<<<...>>>");
  }
  template <class I, bool Wide = false>
  static void launch_col2im(const real* col, std::size_t total, const conv_geometry& g, real* x, std::size_t batch = 1) {
    namespace k = detail::cuda_kernels;
    k::col2im_kernel<I, Wide><<<k::grid_for(total), k::block_size, 0, cuda_context::instance().stream()>>>(
        col, static_cast<I>(total), k::geometry<I>(g), x, static_cast<I>(batch));
    k::check_launch("col2im_kernel<<<...>>>");
  }
};

}  // namespace cdgan
