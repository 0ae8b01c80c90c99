/// @file core/device.hpp
/// Device tags. A network, a tensor and an optimiser are instantiated for one device; the layer code
/// is written once against `cdgan::ops` and works on both.
#pragma once

namespace cdgan {

/// The host: Eigen GEMM, OpenMP-threaded vectorised loops.
struct cpu {
  static constexpr const char* name = "cpu";
};
/// One NVIDIA GPU: cuBLAS GEMM, one fused kernel per elementwise assignment. Needs the `cdgan::cuda`
/// CMake target (which defines CDGAN_WITH_CUDA) and a translation unit compiled by nvcc.
struct cuda {
  static constexpr const char* name = "cuda";
};

template <class D>
inline constexpr bool is_device_v = false;
template <>
inline constexpr bool is_device_v<cpu> = true;
template <>
inline constexpr bool is_device_v<cuda> = true;
template <class D>
concept device_type = is_device_v<D>;

/// Training or evaluation behaviour of layers such as batch_norm.
enum class mode { train, eval };

}  // namespace cdgan
