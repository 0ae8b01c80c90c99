/// @file backend/cuda/kernels.cuh
/// The CUDA kernels of the backend, without any host-side launch code (that is backend.cuh).
///
/// What this represents: every kernel is a template over what it evaluates, so that one source serves
/// every expression: `eval_kernel<E>` (an elementwise assignment, E = the expression node tree),
/// `for_each_kernel<F>` (a multi-output functor), the reductions `reduce_rows_kernel<Sum, E>`,
/// `reduce_cols_kernel<Sum, E>` and `reduce_finish_kernel<Sum>`, `all_finite_kernel`, and
/// `im2col_kernel<I, Wide>` / `col2im_kernel<I, Wide>` (I = 32- or 64-bit index; Wide: the batch-wide
/// column layout), `swap_axes_kernel<I>`. All are grid-stride or
/// fixed-shape: any grid size gives the same result.
///
/// Requires: nvcc (included through backend.cuh). Only depends on config.hpp, expr.hpp and
/// backend/backend.hpp, not on the CUDA runtime API.
/// Ensures: no atomics in any arithmetic; sums combine in a fixed order (deterministic).
#pragma once
#if !defined(__CUDACC__)
#error "cdgan/backend/cuda/kernels.cuh holds CUDA kernels: compile this translation unit with nvcc"
#endif
#include <cstddef>
#include <cstdint>

#include "../../config.hpp"
#include "../../core/expr.hpp"
#include "../backend.hpp"

namespace cdgan {

namespace detail::cuda_kernels {

inline constexpr unsigned block_size = 256;
/// Target number of blocks of a reduction (a constant, not the SM count, so that the summation
/// order, and hence the rounding, is the same on every GPU).
inline constexpr std::size_t reduce_target_blocks = 256;
inline constexpr std::size_t max_splits = 1024;

/// How backend<cuda>::reduce splits a reduction over the grid. `columns`: the 32×8-block kernel for
/// inner == 1 and many outputs; otherwise one row of `splits` blocks per output. With splits > 1 a
/// second kernel combines the partial results. A pure function of the problem size.
struct reduce_plan {
  bool columns;
  std::size_t grid_x, splits;
};
inline reduce_plan plan_reduce(std::size_t outer, std::size_t mid, std::size_t inner) {
  const auto clamp = [](std::size_t want, std::size_t useful) {
    std::size_t s = want < useful ? want : useful;
    if (s > max_splits) s = max_splits;
    return s == 0 ? std::size_t{1} : s;
  };
  if (inner == 1 && mid >= 32) {
    const std::size_t bx = (mid + 31) / 32;
    return {true, bx, clamp((reduce_target_blocks + bx - 1) / bx, (outer + 31) / 32)};
  }
  const std::size_t per_block = 4 * static_cast<std::size_t>(block_size);
  return {false, mid, clamp((reduce_target_blocks + mid - 1) / mid, (outer * inner + per_block - 1) / per_block)};
}

// ---- elementwise ---------------------------------------------------------------------------------

/// dst[i] = e[i] for i < n. `e` is the whole expression tree, passed by value in kernel parameter
/// space; dst may alias an operand (each element is read and written by the same thread).
template <class E>
__global__ void __launch_bounds__(block_size) eval_kernel(real* dst, std::size_t n, const E e) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = e[i];
}

/// f(i) for i < n: the fused multi-output kernel of backend<cuda>::for_each.
template <class F>
__global__ void __launch_bounds__(block_size) for_each_kernel(std::size_t n, const F f) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

// ---- reductions ----------------------------------------------------------------------------------

template <bool Sum>
struct red;
template <>
struct red<true> {
  using acc = double;
  static __device__ __forceinline__ double identity() { return 0.0; }
  static __device__ __forceinline__ double combine(double a, double b) { return a + b; }
};
template <>
struct red<false> {
  using acc = float;
  static __device__ __forceinline__ float identity() { return __int_as_float(static_cast<int>(0xff800000u)); }  // -inf
  // The CPU backend's std::max(acc, x): keeps acc when x is NaN.
  static __device__ __forceinline__ float combine(float a, float b) { return a < b ? b : a; }
};

/// out[m] = r, or beta·out[m] + r (sum), or max(beta·out[m], r) (max), exactly as backend<cpu>.
template <bool Sum, class Acc>
__device__ __forceinline__ void write_reduced(real* out, std::size_t m, Acc r, real beta) {
  const real v = static_cast<real>(r);
  if (beta == real(0)) {
    out[m] = v;
  } else if constexpr (Sum) {
    out[m] = beta * out[m] + v;
  } else {
    const real a = beta * out[m];
    out[m] = a < v ? v : a;
  }
}

/// One row of blocks per output m (blockIdx.x), `splits` blocks along the reduced range
/// (blockIdx.y). Thread t of split s accumulates j = s·256 + t, + splits·256, ... of the outer×inner
/// range; the block then combines its 256 values in a fixed tree.
template <bool Sum, class E>
__global__ void __launch_bounds__(block_size)
    reduce_rows_kernel(real* out, std::size_t outer, std::size_t mid, std::size_t inner, const E e, real beta,
                       typename red<Sum>::acc* partial, unsigned splits) {
  using R = red<Sum>;
  using Acc = typename R::acc;
  __shared__ Acc s[block_size];
  const std::size_t m = blockIdx.x;
  const std::size_t count = outer * inner;
  const std::size_t step = static_cast<std::size_t>(splits) * block_size;
  Acc acc = R::identity();
  if (inner == 1) {
    for (std::size_t o = static_cast<std::size_t>(blockIdx.y) * block_size + threadIdx.x; o < count; o += step)
      acc = R::combine(acc, static_cast<Acc>(e[o * mid + m]));
  } else {
    for (std::size_t j = static_cast<std::size_t>(blockIdx.y) * block_size + threadIdx.x; j < count; j += step) {
      const std::size_t o = j / inner, i = j - o * inner;
      acc = R::combine(acc, static_cast<Acc>(e[(o * mid + m) * inner + i]));
    }
  }
  s[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned h = block_size / 2; h > 0; h >>= 1) {
    if (threadIdx.x < h) s[threadIdx.x] = R::combine(s[threadIdx.x], s[threadIdx.x + h]);
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    if (splits == 1)
      write_reduced<Sum>(out, m, s[0], beta);
    else
      partial[m * splits + blockIdx.y] = s[0];
  }
}

/// For inner == 1 and many outputs (a bias gradient: the column sums of a batch×features matrix):
/// a 32×8 block covers 32 consecutive m (coalesced reads) and 8 lanes of the outer range.
template <bool Sum, class E>
__global__ void __launch_bounds__(block_size)
    reduce_cols_kernel(real* out, std::size_t outer, std::size_t mid, const E e, real beta,
                       typename red<Sum>::acc* partial, unsigned splits) {
  using R = red<Sum>;
  using Acc = typename R::acc;
  __shared__ Acc s[8][33];
  const std::size_t m = static_cast<std::size_t>(blockIdx.x) * 32 + threadIdx.x;
  const std::size_t lanes = static_cast<std::size_t>(splits) * 8;
  Acc acc = R::identity();
  if (m < mid)
    for (std::size_t o = static_cast<std::size_t>(blockIdx.y) * 8 + threadIdx.y; o < outer; o += lanes)
      acc = R::combine(acc, static_cast<Acc>(e[o * mid + m]));
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  for (unsigned h = 4; h > 0; h >>= 1) {
    if (threadIdx.y < h) s[threadIdx.y][threadIdx.x] = R::combine(s[threadIdx.y][threadIdx.x], s[threadIdx.y + h][threadIdx.x]);
    __syncthreads();
  }
  if (threadIdx.y == 0 && m < mid) {
    if (splits == 1)
      write_reduced<Sum>(out, m, s[0][threadIdx.x], beta);
    else
      partial[m * splits + blockIdx.y] = s[0][threadIdx.x];
  }
}

/// Second pass: combines the `splits` partial results of each m in a fixed tree.
template <bool Sum>
__global__ void __launch_bounds__(block_size)
    reduce_finish_kernel(real* out, const typename red<Sum>::acc* partial, unsigned splits, real beta) {
  using R = red<Sum>;
  using Acc = typename R::acc;
  __shared__ Acc s[block_size];
  const std::size_t m = blockIdx.x;
  Acc acc = R::identity();
  for (unsigned j = threadIdx.x; j < splits; j += block_size) acc = R::combine(acc, partial[m * splits + j]);
  s[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned h = block_size / 2; h > 0; h >>= 1) {
    if (threadIdx.x < h) s[threadIdx.x] = R::combine(s[threadIdx.x], s[threadIdx.x + h]);
    __syncthreads();
  }
  if (threadIdx.x == 0) write_reduced<Sum>(out, m, s[0], beta);
}

/// Sets *bad when p holds a NaN or an infinity. (A template, as every kernel here, so that the header
/// may be included by several translation units of one program.)
template <class T>
__global__ void __launch_bounds__(block_size) all_finite_kernel(const T* p, std::size_t n, int* bad) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  bool ok = true;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    ok &= (__float_as_uint(p[i]) & 0x7f800000u) != 0x7f800000u;
  if (!ok) atomicExch(bad, 1);
}

// ---- convolution helpers -------------------------------------------------------------------------

/// conv_geometry in the index type I (32-bit when every index fits, which avoids 64-bit division).
template <class I>
struct geometry {
  I c, h, w, k, stride, pad, oh, ow, rows, cols;
  explicit geometry(const conv_geometry& g)
      : c(static_cast<I>(g.c)), h(static_cast<I>(g.h)), w(static_cast<I>(g.w)), k(static_cast<I>(g.k)),
        stride(static_cast<I>(g.stride)), pad(static_cast<I>(g.pad)), oh(static_cast<I>(g.oh)),
        ow(static_cast<I>(g.ow)), rows(static_cast<I>(g.col_rows())), cols(static_cast<I>(g.col_cols())) {}
};

/// Index of column p of row r of sample b in a column matrix: [b][rows][cols], or, when Wide, the
/// batch-wide [rows][batch·cols] of backend::im2col_wide.
template <bool Wide, class I>
__device__ inline I col_index(I b, I r, I p, I batch, const geometry<I>& g) {
  return Wide ? (r * batch + b) * g.cols + p : (b * g.rows + r) * g.cols + p;
}

/// One thread per element of col ([b][c·k·k][oh·ow], or [c·k·k][b·oh·ow] when Wide; batch is used only
/// when Wide), gathering from x (zero outside the image).
template <class I, bool Wide = false>
__global__ void __launch_bounds__(block_size) im2col_kernel(const real* x, I total, const geometry<I> g, real* col,
                                                            I batch) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const I p = idx % g.cols, t = idx / g.cols;
    const I r = Wide ? t / batch : t % g.rows, b = Wide ? t % batch : t / g.rows;
    const I c = r / (g.k * g.k), ky = (r / g.k) % g.k, kx = r % g.k;
    const I oy = p / g.ow, ox = p % g.ow;
    const I yp = oy * g.stride + ky, xp = ox * g.stride + kx;  // padded coordinates
    real v = real(0);
    if (yp >= g.pad && xp >= g.pad && yp - g.pad < g.h && xp - g.pad < g.w)
      v = x[((b * g.c + c) * g.h + (yp - g.pad)) * g.w + (xp - g.pad)];
    col[idx] = v;
  }
}

/// One thread per element of x: x += the sum of every col entry that im2col copied from it, added in
/// the order of backend<cpu>::col2im (ky, then kx, ascending), so both give the same bits.
template <class I, bool Wide = false>
__global__ void __launch_bounds__(block_size) col2im_kernel(const real* col, I total, const geometry<I> g, real* x,
                                                            I batch) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const I ix = idx % g.w, t0 = idx / g.w;
    const I iy = t0 % g.h, t1 = t0 / g.h;
    const I c = t1 % g.c, b = t1 / g.c;
    const I yp = iy + g.pad, xp = ix + g.pad;
    real acc = x[idx];
    for (I ky = 0; ky < g.k && ky <= yp; ++ky) {
      const I dy = yp - ky;
      if (dy % g.stride != 0) continue;
      const I oy = dy / g.stride;
      if (oy >= g.oh) continue;
      for (I kx = 0; kx < g.k && kx <= xp; ++kx) {
        const I dx = xp - kx;
        if (dx % g.stride != 0) continue;
        const I ox = dx / g.stride;
        if (ox >= g.ow) continue;
        acc += col[col_index<Wide>(b, (c * g.k + ky) * g.k + kx, oy * g.ow + ox, batch, g)];
      }
    }
    x[idx] = acc;
  }
}

/// dst[m][o][i] = src[o][m][i] (+ bias[o]): one thread per element of dst.
template <class I>
__global__ void __launch_bounds__(block_size) swap_axes_kernel(real* dst, const real* src, I total, I outer, I mid,
                                                               I inner, const real* bias) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const I i = idx % inner, t = idx / inner;
    const I o = t % outer, m = t / outer;
    const real v = src[(o * mid + m) * inner + i];
    dst[idx] = bias ? v + bias[o] : v;
  }
}

}  // namespace detail::cuda_kernels

}  // namespace cdgan
