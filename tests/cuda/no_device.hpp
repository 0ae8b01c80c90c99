// Why no CUDA device is usable (empty when one is). Light: the doctest main includes only this.
#pragma once
#include <string>

#include <cuda_runtime.h>

namespace cdgan_test {
inline std::string no_device_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  }
  return n > 0 ? std::string() : std::string("the CUDA runtime reports 0 devices");
}
}  // namespace cdgan_test
