/// @file core/error.hpp
/// Exceptions thrown by cdgan. Every message names what is wrong: the layer, the shape, the call.
#pragma once
#include <stdexcept>
#include <string>

namespace cdgan {

/// Base class of every cdgan exception.
struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A run-time extent (batch size, buffer length) that does not match what a layer expects.
struct shape_error : error {
  using error::error;
};
/// A value outside its allowed range (an option, a hyperparameter).
struct value_error : error {
  using error::error;
};
/// A non-finite number found by the run-time checks (see `cdgan::set_checks`).
struct numeric_error : error {
  using error::error;
};
/// A failed device call (CUDA runtime, cuBLAS) or a tensor on the wrong device.
struct device_error : error {
  using error::error;
};

namespace detail {
inline bool& checks_flag() {
  static bool on = false;
  return on;
}
}  // namespace detail

/// Turns the run-time NaN/Inf checks of parameters and activations on or off (off by default).
inline void set_checks(bool on) { detail::checks_flag() = on; }
inline bool checks_enabled() { return detail::checks_flag(); }

}  // namespace cdgan
