/// @file losses/loss.hpp
/// Shared helpers of the losses: device scalars and batch sums.
///
/// What this represents: every loss in cdgan::losses takes device views of its inputs, writes the
/// gradient with respect to those inputs into caller-provided views (assigned, not added), and returns
/// its value as a host float. The value needs one small device→host copy; everything else stays on
/// the device.
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

/// Sum over all elements of an expression with n elements, as a host real (through a device scalar).
template <class Device, class E>
real sum(const E& e, std::size_t n, tensor<shape<1>, Device>& scratch) {
  scratch.resize(1);
  backend<Device>::template reduce<reduction::sum>(scratch.data(), 1, 1, n, e, 0);
  return read_scalar<Device>(scratch.data());
}

/// A per-thread device scalar for loss values (allocated once).
template <class Device>
tensor<shape<1>, Device>& scratch() {
  thread_local tensor<shape<1>, Device> t(1);
  return t;
}

inline void require_same_batch(const char* loss, std::size_t a, std::size_t b) {
  if (a != b)
    throw shape_error(std::string("cdgan: loss ") + loss + ": inputs have batches " + std::to_string(a) + " and " +
                      std::to_string(b));
}

}  // namespace cdgan::losses
