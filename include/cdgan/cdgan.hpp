/// @file cdgan.hpp
/// The umbrella header: `#include <cdgan/cdgan.hpp>` gives the whole library — shapes, tensors and
/// expressions, the CPU backend (and the CUDA backend when the `cdgan::cuda` target is linked and the
/// translation unit is compiled by nvcc), layers and networks, losses, optimisers, the CD-GAN model,
/// datasets, evaluation and checkpoint/image I/O.
#pragma once
#include "config.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "core/expr.hpp"
#include "core/graph.hpp"
#include "core/memory.hpp"
#include "core/random.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "backend/backend.hpp"
#include "backend/cpu/backend.hpp"
#include "backend/cuda/cuda.hpp"
#include "nn/nn.hpp"
#include "losses/losses.hpp"
#include "optim/optim.hpp"
#include "gan/gan.hpp"
#include "data/data.hpp"
#include "eval/metrics.hpp"
#include "eval/quality.hpp"
#include "io/io.hpp"
#include "testing/gradient_check.hpp"
