/// @file optim/optim.hpp
/// All optimisers: `optim::adam`, `optim::sgd` (see optim/optimizer.hpp for the contract).
#pragma once
#include "adam.hpp"
#include "optimizer.hpp"
#include "sgd.hpp"
