/// @file io/io.hpp
/// Checkpoints (safetensors), NumPy .npy files and PNG sample grids.
#pragma once
#include "error.hpp"
#include "npy.hpp"
#include "png.hpp"
#include "safetensors.hpp"
