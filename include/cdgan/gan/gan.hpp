/// @file gan/gan.hpp
/// Latent codes, objectives and the CD-GAN model.
#pragma once
#include "latent.hpp"
#include "model.hpp"
#include "presets.hpp"
