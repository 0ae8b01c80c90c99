/// @file losses/loss.hpp
/// Shared helpers of the losses: device scalars and batch sums.
///
/// What this represents: every loss in cdgan::losses takes device views of its inputs, writes the
/// gradient with respect to those inputs into caller-provided views (assigned, not added), and gives
/// its value in one of two forms:
/// - returned as a host float (the value needs one small device→host copy, which waits for the
///   device);
/// - written into a device real given as the last argument `real* value`, which nothing waits for.
///   The training step (gan/model.hpp) uses this form, so that a step makes no host round trip and
///   can be recorded as a CUDA graph; it copies all its loss values to the host once, at the end.
/// Both forms run the same launches and give the same bits.
#pragma once
#include <string>

#include "../backend/cpu/backend.hpp"
#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace cdgan::losses {

/// Copies one real from device memory to the host.
template <class Device>
real read_scalar(const real* p) {
  real v = 0;
  device_memory<Device>::to_host(&v, p, sizeof(real));
  return v;
}

/// A per-thread device scalar for the losses' intermediate values (allocated once).
template <class Device>
tensor<shape<1>, Device>& scratch() {
  thread_local tensor<shape<1>, Device> t(1);
  return t;
}

/// out[0] = the sum over the n elements of an expression, on the device.
template <class Device, class E>
void sum_into(real* out, const E& e, std::size_t n) {
  backend<Device>::template reduce<reduction::sum>(out, 1, 1, n, e, 0);
}

/// A device real as a one-element view, for arithmetic on loss values that stays on the device.
template <class Device>
view<shape<1>, Device> device_scalar(real* p) {
  return {p, 1};
}

/// The host-value form of a loss from its device-value form: `write(value)` writes the loss into the
/// device real `value` (a per-thread slot), which is then copied to the host.
template <class Device, class F>
real host_value(F&& write) {
  thread_local tensor<shape<1>, Device> slot(1);
  write(slot.data());
  return read_scalar<Device>(slot.data());
}

inline void require_same_batch(const char* loss, std::size_t a, std::size_t b) {
  if (a != b)
    throw shape_error(std::string("cdgan: loss ") + loss + ": inputs have batches " + std::to_string(a) + " and " +
                      std::to_string(b));
}

}  // namespace cdgan::losses
