/// @file config.hpp
/// Compiler glue shared by every header: host/device qualifiers and the version.
#pragma once
#include <cstddef>

#define CDGAN_VERSION_MAJOR 0
#define CDGAN_VERSION_MINOR 1
#define CDGAN_VERSION_PATCH 0

#if defined(__CUDACC__)
#define CDGAN_HOST_DEVICE __forceinline__ __host__ __device__
#define CDGAN_HD __host__ __device__
#else
#define CDGAN_HOST_DEVICE inline
#define CDGAN_HD
#endif

namespace cdgan {
/// The scalar type every network trains in.
using real = float;
inline constexpr const char* version_string = "0.1.0";
}  // namespace cdgan
