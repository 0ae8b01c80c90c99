/// @file backend/cuda/cuda.hpp
/// The one header that brings in the CUDA backend, in the right order; the umbrella
/// <cdgan/cdgan.hpp> includes it after the core headers. Safe to include from any translation unit.
///
/// What it does:
/// - Without CDGAN_WITH_CUDA (no `cdgan::cuda` target): nothing. Using a `cdgan::cuda` tensor then
///   fails at compile time with "this device's memory is not available ... link the cdgan::cuda target".
/// - With CDGAN_WITH_CUDA, in any C++ compiler: the host-only parts, error.hpp (CDGAN_CUDA_CHECK,
///   CDGAN_CUBLAS_CHECK), memory.hpp (`cuda_context`, `cuda_available()`, `device_memory<cuda>`) and
///   graph.hpp (`step_graph<cuda>`, the recorded training step),
///   so a plain .cpp file may allocate, copy and inspect CUDA tensors.
/// - With CDGAN_WITH_CUDA under nvcc (`__CUDACC__`): also backend.cuh, the kernels (`executor<cuda>`,
///   `backend<cuda>`). Evaluating an expression or running a layer on `cdgan::cuda` in a TU that g++
///   compiles stops at the static_assert of the primary `executor`/`backend` templates, whose message
///   says to compile that TU with nvcc.
///
/// Requires: CDGAN_WITH_CUDA comes only from the `cdgan::cuda` CMake target, so that it is the same in
/// every translation unit of a program.
#pragma once
#include "../../backend/backend.hpp"
#include "../../core/expr.hpp"
#include "../../core/memory.hpp"

#if defined(CDGAN_WITH_CUDA)
#include "error.hpp"
#include "graph.hpp"
#include "memory.hpp"
#if defined(__CUDACC__)
#include "backend.cuh"
#endif
#endif
