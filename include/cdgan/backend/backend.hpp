/// @file backend/backend.hpp
/// The device interface that every layer, loss and optimiser is written against.
///
/// What this represents: `backend<Device>` is a struct of static functions, specialised once per
/// device (backend/cpu/backend.hpp, backend/cuda/backend.hpp). Layers call only these and the
/// elementwise expressions of core/expr.hpp, so each layer is written once and compiles for both.
///
/// The set (row-major matrices, all pointers on the device):
/// - gemm(ta, tb, M, N, K, alpha, A, B, beta, C): C[M×N] = alpha·op(A)·op(B) + beta·C, op(A) is M×K.
/// - gemm_batched(..., count, strideA, strideB, strideC): `count` independent gemms.
/// - reduce<R>(out, outer, mid, inner, e, beta): out[m] = beta·out[m] + R over (o, i) of
///   e[(o·mid + m)·inner + i]; R is `reduction::sum` or `reduction::max`. Deterministic order.
/// - im2col / col2im over a batch of NCHW images (col is [batch][C·K·K][OH·OW]; col2im adds into x).
/// - im2col_wide(x, batch, g, col) / col2im_wide(col, batch, g, x): the same over the batch-wide
///   column matrix, col is [C·K·K][batch·OH·OW] (row r holds sample b's OH·OW columns at b·OH·OW),
///   so that one GEMM convolves the whole batch; col2im_wide adds into x, each pixel adding its
///   contributions onto its value in (ky, kx) order, as col2im.
/// - swap_axes(dst, src, outer, mid, inner, bias = nullptr): dst[m][o][i] = src[o][m][i] (+ bias[o]),
///   the permutation between NCHW and the [channels][batch·H·W] layout of those GEMMs.
/// - Optional: `static constexpr std::size_t column_chunk_elements`: when present, convolutions bound
///   their column matrices to about this many elements by working on chunks of the batch (the CPU
///   keeps them in cache); a backend without it gets the whole batch in one GEMM per pass.
/// - for_each(n, f): calls f(i) for every i < n (order and threads unspecified). f is a trivially
///   copyable functor whose `void operator()(std::size_t i) const` is CDGAN_HOST_DEVICE and touches
///   only index i of the arrays it holds. It is the fused multi-output kernel: one pass that writes
///   several arrays (the optimisers update a parameter and its m, v state this way). CPU: one OpenMP
///   loop; CUDA: one grid-stride kernel launch `template <class F> __global__ k(size_t n, F f)`.
/// - copy(dst, src, n), fill via expressions, synchronize().
#pragma once
#include <cstddef>

#include "../core/device.hpp"

namespace cdgan {

/// Geometry of a 2-D convolution with square kernel, equal stride and padding on both axes.
struct conv_geometry {
  std::size_t c, h, w, k, stride, pad, oh, ow;
  constexpr std::size_t col_rows() const { return c * k * k; }
  constexpr std::size_t col_cols() const { return oh * ow; }
};

namespace reduction {
struct sum {};
struct max {};
}  // namespace reduction

template <class Device>
struct backend {
  static_assert(sizeof(Device) == 0, "cdgan: no backend for this device in this translation unit (see backend/backend.hpp). cdgan::cuda "
                "layers need the cdgan::cuda target (CDGAN_WITH_CUDA), <cdgan/cdgan.hpp>, and a .cu translation "
                "unit compiled by nvcc");
};

}  // namespace cdgan
