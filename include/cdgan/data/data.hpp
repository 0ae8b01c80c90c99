/// @file data/data.hpp
/// Datasets: IDX (MNIST, Fashion-MNIST), CIFAR-10 binary batches, procedural dSprites, loaders.
#pragma once
#include "cifar10.hpp"
#include "dataset.hpp"
#include "device_dataset.hpp"
#include "dsprites.hpp"
#include "error.hpp"
#include "idx.hpp"
#include "loader.hpp"
