/// @file nn/nn.hpp
/// All layer policies and combinators.
#pragma once
#include "activations.hpp"
#include "batch_norm.hpp"
#include "buffers.hpp"
#include "conv.hpp"
#include "dense.hpp"
#include "heads.hpp"
#include "l2_normalize.hpp"
#include "layer.hpp"
#include "layer_norm.hpp"
#include "pool.hpp"
#include "reshape.hpp"
#include "residual.hpp"
#include "sequential.hpp"
#include "spectral_norm.hpp"
