/// @file nn/nn.hpp
/// All layer policies and combinators.
#pragma once
#include "activations.hpp"
#include "dense.hpp"
#include "heads.hpp"
#include "layer.hpp"
#include "reshape.hpp"
#include "sequential.hpp"
