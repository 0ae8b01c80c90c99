// Why no CUDA device is usable (empty when one is): the library's cdgan::cuda_unavailable_reason().
// Light: the doctest main includes only this (the host-only part of the CUDA backend).
#pragma once
#include <string>

#include "cdgan/backend/cuda/memory.hpp"

namespace cdgan_test {
inline std::string no_device_reason() { return cdgan::cuda_unavailable_reason(); }
}  // namespace cdgan_test
