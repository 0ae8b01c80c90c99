/// @file backend/cuda/memory.hpp
/// The CUDA context (stream, cuBLAS handle, scratch space) and `device_memory<cuda>`.
///
/// What this represents:
/// - `cuda_context::instance()`: the process-wide default context, created on first use on the CUDA
///   device that is current then (device 0 unless the program chose another). It owns one
///   non-blocking stream, on which cdgan issues every kernel, copy, allocation and cuBLAS call, so work
///   runs in program order without host synchronisation; the cuBLAS handle (bound to that stream) is
///   created on the first GEMM. GEMMs run in exact FP32 unless `set_tf32(true)` allows TF32
///   tensor-core math (faster, ~1e-3 relative error); off by default.
/// - `device_memory<cuda>`: allocation with cudaMallocAsync on that stream (cudaMalloc where the
///   device has no memory pools), device-to-device copy and zeroing queued on the stream; `to_host`
///   and `from_host` return only when the copy is complete, so the host memory may be reused at once.
/// - `cuda_available()`: whether a CUDA device can be used; never throws (false without a driver);
///   `cuda_unavailable_reason()`: why not, in the runtime's words (empty when one can).
///
/// Host code only: compiles with any C++20 compiler given the CUDA headers (`cdgan::cuda` target).
/// Requires: work from several host threads is serialised by the caller (one stream, one handle).
/// Ensures: every failed call throws cdgan::device_error naming the call (see error.hpp); an
/// allocation that does not fit says how many bytes it asked for and how many were free; the first
/// use of a cdgan::cuda tensor on a machine without a usable GPU says so, and why.
#pragma once
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../../core/device.hpp"
#include "../../core/memory.hpp"
#include "error.hpp"

namespace cdgan {

/// Why no CUDA device can be used: the runtime's error ("cudaErrorNoDevice: no CUDA-capable device
/// is detected", ...) or "the CUDA runtime reports 0 devices"; empty when one can. Clears the
/// runtime's sticky last error.
inline std::string cuda_unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  }
  return n > 0 ? std::string() : std::string("the CUDA runtime reports 0 devices");
}

/// True when at least one CUDA device is usable. Never throws: a machine without a GPU or without the
/// driver gives false.
inline bool cuda_available() noexcept {
  try {
    return cuda_unavailable_reason().empty();
  } catch (...) {  // std::bad_alloc building the reason
    return false;
  }
}

/// The stream, cuBLAS handle and scratch memory that the CUDA backend works with.
class cuda_context {
 public:
  /// The process-wide default context (created on first use, intentionally never destroyed so that
  /// tensors freed during static destruction still find their stream).
  static cuda_context& instance() {
    static cuda_context* ctx = new cuda_context();
    return *ctx;
  }
  cuda_context(const cuda_context&) = delete;
  cuda_context& operator=(const cuda_context&) = delete;

  int device() const noexcept { return device_; }
  cudaStream_t stream() const noexcept { return stream_; }
  /// Number of streaming multiprocessors (sizes kernel grids).
  int sm_count() const noexcept { return sm_count_; }
  /// Whether allocations are stream-ordered (cudaMallocAsync) on this device.
  bool stream_ordered_allocation() const noexcept { return pools_; }

  /// The cuBLAS handle, created on first use and bound to `stream()`.
  cublasHandle_t cublas() {
    std::call_once(cublas_once_, [this] {
      std::lock_guard<std::mutex> lock(mutex_);
      cublasHandle_t h = nullptr;
      CDGAN_CUBLAS_CHECK(cublasCreate(&h));
      CDGAN_CUBLAS_CHECK(cublasSetStream(h, stream_));
      CDGAN_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
      // A workspace of our own (NVIDIA's recommendation for Hopper: 32 MiB), so that cuBLAS does not
      // allocate while a training step is recorded into a CUDA graph.
      cublas_workspace_ = allocate(cublas_workspace_bytes);
      CDGAN_CUBLAS_CHECK(cublasSetWorkspace(h, cublas_workspace_, cublas_workspace_bytes));
      cublas_ = h;
      apply_math_mode();
    });
    return cublas_;
  }

  /// Allows (true) or forbids (false, the default) TF32 tensor-core math in cuBLAS GEMMs.
  void set_tf32(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    tf32_ = on;
    if (cublas_) apply_math_mode();
  }
  bool tf32() const noexcept { return tf32_; }

  /// Waits until all work queued on the stream has finished (and reports any asynchronous error).
  void synchronize() const { CDGAN_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  /// Raw device allocation in stream order (what device_memory<cuda> uses). Refused while the stream
  /// is being recorded into a CUDA graph (begin_capture): the recorded step must find all its
  /// buffers in place, and an allocation there would belong to the graph, not to the tensor.
  void* allocate(std::size_t bytes) const {
    if (capturing_)
      throw device_error("cdgan: a device allocation of " + std::to_string(bytes) +
                         " bytes while recording a CUDA graph (a buffer of the step grew since the step before)");
    void* p = nullptr;
    const std::size_t b = bytes < 256 ? 256 : bytes;
    if (pools_)
      CDGAN_CUDA_CHECK_ALLOC(cudaMallocAsync(&p, b, stream_), b);
    else
      CDGAN_CUDA_CHECK_ALLOC(cudaMalloc(&p, b), b);
    return p;
  }
  void deallocate(void* p) const noexcept {
    if (!p) return;
    if (capturing_) {  // not a stream operation of the recorded step: freed when the recording ends
      try {
        deferred_frees_.push_back(p);
        return;
      } catch (...) {  // out of host memory: free it now and let the recording fail
      }
    }
    // Errors are ignored: this runs in destructors, possibly after the driver shut down at exit.
    const cudaError_t e = pools_ ? cudaFreeAsync(p, stream_) : cudaFree(p);
    if (e != cudaSuccess) (void)cudaGetLastError();
  }

  /// Device scratch memory of at least `bytes`, valid for work queued on `stream()` until the next
  /// call (grow-only; a reallocation is stream-ordered, so earlier queued kernels are unaffected).
  void* workspace(std::size_t bytes) {
    if (bytes > workspace_bytes_) {
      deallocate(workspace_);
      workspace_ = nullptr;
      workspace_bytes_ = 0;
      const std::size_t want = bytes < 4096 ? 4096 : bytes;
      workspace_ = allocate(want);
      workspace_bytes_ = want;
      ++detail::release_counter<cuda>();  // a recorded CUDA graph that used the old workspace is stale
    }
    return workspace_;
  }

  /// Starts recording the work queued on `stream()` into a CUDA graph instead of running it
  /// (relaxed mode: other threads' CUDA calls are not affected). Allocations are refused and frees
  /// deferred until end_capture / abort_capture.
  void begin_capture() {
    CDGAN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
    capturing_ = true;
  }
  /// Ends the recording and returns the graph (the caller owns it).
  cudaGraph_t end_capture() {
    cudaGraph_t g = nullptr;
    const cudaError_t e = cudaStreamEndCapture(stream_, &g);
    finish_capture();
    if (e != cudaSuccess) detail::throw_cuda_error(e, "cudaStreamEndCapture", __FILE__, __LINE__);
    return g;
  }
  /// Ends a recording that failed, dropping what was recorded; never throws.
  void abort_capture() noexcept {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream_, &st) == cudaSuccess && st != cudaStreamCaptureStatusNone) {
      cudaGraph_t g = nullptr;
      if (cudaStreamEndCapture(stream_, &g) == cudaSuccess && g) cudaGraphDestroy(g);
    }
    (void)cudaGetLastError();
    finish_capture();
  }
  bool capturing() const noexcept { return capturing_; }

 private:
  cuda_context() {
    if (const std::string why = cuda_unavailable_reason(); !why.empty())
      throw device_error("cdgan: no usable CUDA device (" + why +
                         "): cdgan::cuda tensors need an NVIDIA GPU and its driver; test cdgan::cuda_available() "
                         "first, or use cdgan::cpu");
    CDGAN_CUDA_CHECK(cudaGetDevice(&device_));
    CDGAN_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_));
    int pools = 0;
    CDGAN_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device_));
    pools_ = pools != 0;
    CDGAN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void finish_capture() noexcept {
    capturing_ = false;
    for (void* p : deferred_frees_) deallocate(p);
    deferred_frees_.clear();
  }
  void apply_math_mode() { CDGAN_CUBLAS_CHECK(cublasSetMathMode(cublas_, tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH)); }

  int device_ = 0, sm_count_ = 1;
  bool pools_ = false;
  bool tf32_ = false;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::once_flag cublas_once_;
  std::mutex mutex_;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  static constexpr std::size_t cublas_workspace_bytes = std::size_t(32) << 20;
  void* cublas_workspace_ = nullptr;
  bool capturing_ = false;
  mutable std::vector<void*> deferred_frees_;
};

/// Device memory on the default CUDA context's stream.
template <>
struct device_memory<cuda> {
  static void* allocate(std::size_t bytes) { return cuda_context::instance().allocate(bytes); }
  static void deallocate(void* p) noexcept {
    if (p) cuda_context::instance().deallocate(p);
  }
  /// Device to device, queued on the stream.
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes)
      CDGAN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_context::instance().stream()));
  }
  /// Device to host; returns when the host memory holds the data (after all earlier queued work).
  static void to_host(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    auto& c = cuda_context::instance();
    CDGAN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c.stream()));
    c.synchronize();
  }
  /// Host to device; returns when the copy is complete, so `src` may be reused at once.
  static void from_host(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    auto& c = cuda_context::instance();
    CDGAN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c.stream()));
    c.synchronize();
  }
  /// All bits zero (0.0f), queued on the stream.
  static void zero(void* dst, std::size_t bytes) {
    if (bytes) CDGAN_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, cuda_context::instance().stream()));
  }
  /// Pinned (page-locked) host memory, for copies that do not wait and can be recorded in a graph.
  static void* allocate_staging(std::size_t bytes) {
    void* p = nullptr;
    CDGAN_CUDA_CHECK(cudaMallocHost(&p, bytes));
    return p;
  }
  static void deallocate_staging(void* p) noexcept {
    if (p && cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError();
  }
  /// Pinned host to device, queued on the stream, not waited for.
  static void upload(void* dst, const void* staging, std::size_t bytes) {
    if (bytes)
      CDGAN_CUDA_CHECK(cudaMemcpyAsync(dst, staging, bytes, cudaMemcpyHostToDevice, cuda_context::instance().stream()));
  }
  /// Device to pinned host, queued on the stream, not waited for (synchronize before reading it).
  static void download(void* staging, const void* src, std::size_t bytes) {
    if (bytes)
      CDGAN_CUDA_CHECK(cudaMemcpyAsync(staging, src, bytes, cudaMemcpyDeviceToHost, cuda_context::instance().stream()));
  }
};

}  // namespace cdgan
