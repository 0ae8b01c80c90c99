/// @file backend/cuda/graph.hpp
/// `step_graph<cuda>`: the work a training step queues on the CUDA stream, recorded once by stream
/// capture and replayed with cudaGraphLaunch (core/graph.hpp has the contract).
///
/// What this represents: `begin()` puts `cuda_context`'s stream in capture mode (relaxed), so the
/// kernels, cuBLAS calls, copies and memsets queued on it are recorded, not run; while it records,
/// device allocations throw (the recorded step must find every buffer in place) and frees wait for
/// the end. `end()` instantiates the graph; `launch()` queues one replay on the stream.
/// Requires: nothing in the recorded work waits for the device (no to_host, no all_finite): such a
/// call fails the capture, and `abort()` then leaves the stream as it was.
#pragma once
#include <cuda_runtime.h>

#include "../../core/graph.hpp"
#include "error.hpp"
#include "memory.hpp"

namespace cdgan {

template <>
class step_graph<cuda> {
 public:
  static constexpr bool supported = true;
  step_graph() = default;
  step_graph(const step_graph&) = delete;
  step_graph& operator=(const step_graph&) = delete;
  ~step_graph() { reset(); }

  void begin() {
    reset();
    cuda_context::instance().begin_capture();
  }
  void end() {
    cudaGraph_t g = cuda_context::instance().end_capture();
    const cudaError_t e = cudaGraphInstantiate(&exec_, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
      exec_ = nullptr;
      detail::throw_cuda_error(e, "cudaGraphInstantiate", __FILE__, __LINE__);
    }
  }
  void abort() noexcept {
    cuda_context::instance().abort_capture();
    reset();
  }
  void launch() { CDGAN_CUDA_CHECK(cudaGraphLaunch(exec_, cuda_context::instance().stream())); }
  void reset() noexcept {
    if (exec_ && cudaGraphExecDestroy(exec_) != cudaSuccess) (void)cudaGetLastError();
    exec_ = nullptr;
  }
  bool ready() const noexcept { return exec_ != nullptr; }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace cdgan
