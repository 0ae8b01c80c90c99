/// @file core/graph.hpp
/// `step_graph<Device>`: a recording of the work one training step queues on a device, replayed as
/// one unit (a CUDA graph on `cuda`, see backend/cuda/graph.hpp).
///
/// What this represents: `begin()` starts recording instead of running, `end()` turns what was
/// queued into something `launch()` replays, `abort()` drops a recording that failed. A replay runs
/// the same launches with the same arguments and the same pointers: whatever changes from step to
/// step must be read from device memory (gan/model.hpp keeps to that). This primary template is for
/// devices without such a recording (the CPU): `supported` is false and nothing can be recorded.
#pragma once
#include <stdexcept>

namespace cdgan {

template <class Device>
class step_graph {
 public:
  static constexpr bool supported = false;
  void begin() { throw std::logic_error("cdgan::step_graph: this device cannot record its work"); }
  void end() {}
  void abort() noexcept {}
  void launch() {}
  void reset() noexcept {}
  bool ready() const noexcept { return false; }
};

}  // namespace cdgan
