/// @file backend/cuda/error.hpp
/// Checked CUDA runtime and cuBLAS calls.
///
/// What this represents: `CDGAN_CUDA_CHECK(cudaMemcpy(...))` and `CDGAN_CUBLAS_CHECK(cublasSgemm(...))`
/// evaluate the call once and, when it does not return success, throw `cdgan::device_error` whose
/// message names the call as written, the file and line of the check, and the error's name and
/// description. Host code only: it needs <cuda_runtime.h> and <cublas_v2.h>, not nvcc.
///
/// Requires: the CUDA toolkit headers (the `cdgan::cuda` CMake target provides them).
/// Ensures: a failed allocation checked with `CDGAN_CUDA_CHECK_ALLOC(call, bytes)` also reports the
/// bytes asked for and the bytes free on the device (cudaMemGetInfo), so it says how far off it was.
#pragma once
#include <cstddef>
#include <cstdio>
#include <string>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../../core/error.hpp"

namespace cdgan::detail {

/// "12.5 MiB (13107200 bytes)": a byte count a human can read.
inline std::string format_bytes(std::size_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) return std::to_string(bytes) + " bytes";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f %s (%zu bytes)", v, units[u], bytes);
  return buf;
}

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
  throw device_error(std::string("cdgan: CUDA call ") + call + " failed at " + file + ":" + std::to_string(line) +
                     ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED (is a CUDA device present and the driver loaded?)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED (out of device memory)";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE (a size, leading dimension or pointer is invalid)";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH (the device lacks a needed feature)";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED (a kernel failed to launch or run)";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
  throw device_error(std::string("cdgan: cuBLAS call ") + call + " failed at " + file + ":" + std::to_string(line) +
                     ": status " + std::to_string(static_cast<int>(s)) + ", " + cublas_status_name(s));
}

/// Throws the device_error for an allocation of `bytes` that just failed with `e`: it names the call,
/// the bytes asked for and, when the device still answers, the bytes free (cudaMemGetInfo).
[[noreturn]] inline void throw_allocation_error(cudaError_t e, std::size_t bytes, const char* call, const char* file,
                                                int line) {
  (void)cudaGetLastError();  // clear the (non-sticky) allocation error so later calls are unaffected
  std::size_t free_b = 0, total_b = 0;
  int dev = -1;
  (void)cudaGetDevice(&dev);
  const bool known = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
  (void)cudaGetLastError();
  std::string msg = e == cudaErrorMemoryAllocation ? "cdgan: out of device memory: " : "cdgan: device allocation failed: ";
  msg += std::string(call) + " at " + file + ":" + std::to_string(line) + " asked for " + format_bytes(bytes) +
         " on CUDA device " + std::to_string(dev);
  if (known) msg += ", which has " + format_bytes(free_b) + " free of " + format_bytes(total_b);
  msg += std::string(" (") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")";
  if (e == cudaErrorMemoryAllocation) msg += "; use a smaller batch or free other tensors";
  throw device_error(msg);
}

}  // namespace cdgan::detail

/// Evaluates a CUDA runtime call; throws cdgan::device_error naming the call, file, line and error.
#define CDGAN_CUDA_CHECK(call)                                                       \
  do {                                                                               \
    const cudaError_t cdgan_cuda_status_ = (call);                                   \
    if (cdgan_cuda_status_ != cudaSuccess)                                           \
      ::cdgan::detail::throw_cuda_error(cdgan_cuda_status_, #call, __FILE__, __LINE__); \
  } while (0)

/// Evaluates a cuBLAS call; throws cdgan::device_error naming the call, file, line and status.
#define CDGAN_CUBLAS_CHECK(call)                                                         \
  do {                                                                                   \
    const cublasStatus_t cdgan_cublas_status_ = (call);                                  \
    if (cdgan_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                   \
      ::cdgan::detail::throw_cublas_error(cdgan_cublas_status_, #call, __FILE__, __LINE__); \
  } while (0)

/// Like CDGAN_CUDA_CHECK for an allocation of `bytes`: the message adds the bytes asked for and free.
#define CDGAN_CUDA_CHECK_ALLOC(call, bytes)                                                    \
  do {                                                                                         \
    const cudaError_t cdgan_cuda_status_ = (call);                                             \
    if (cdgan_cuda_status_ != cudaSuccess)                                                     \
      ::cdgan::detail::throw_allocation_error(cdgan_cuda_status_, (bytes), #call, __FILE__, __LINE__); \
  } while (0)
