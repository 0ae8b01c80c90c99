/// @file losses/losses.hpp
/// All losses.
#pragma once
#include "adversarial.hpp"
#include "content.hpp"
#include "contrastive.hpp"
#include "information.hpp"
#include "gradient_penalty.hpp"
#include "loss.hpp"
