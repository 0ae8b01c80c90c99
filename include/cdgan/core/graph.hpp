/// @file core/graph.hpp
/// `step_graph<Device>`: a recording of the work one training step queues on a device, replayed as
/// one unit (a CUDA graph on `cuda`, see backend/cuda/graph.hpp).
///
/// What this represents: `begin()` starts recording instead of running, `end()` turns what was
/// queued into something `launch()` replays, `abort()` drops a recording that failed. A replay runs
/// the same launches with the same arguments and the same pointers: whatever changes from step to
/// step must be read from device memory (gan/model.hpp keeps to that). This primary template is for
/// devices without such a recording (the CPU): `supported` is false and nothing can be recorded.
///
/// For tests on machines without a GPU, a program compiled with CDGAN_EMULATE_GRAPHS_ON_CPU (every
/// translation unit of it) gets a `step_graph<cpu>` that records too: while it records, every call of
/// the CPU backend and of device_memory<cpu> that would be a stream operation on cuda (expressions,
/// GEMMs, reductions, copies, uploads, downloads) is stored with its arguments instead of run, and
/// the calls that would wait for the device (to_host, from_host, all_finite, synchronize) or allocate
/// throw, as they break a CUDA stream capture. A replay runs the stored calls with their stored
/// arguments, so a value that changes from step to step but was passed as an argument makes the
/// replay differ from the step, as on a GPU (tests/emulated/graph_emulated_test.cpp).
#pragma once
#include <stdexcept>
#include <string>
#if defined(CDGAN_EMULATE_GRAPHS_ON_CPU)
#include <functional>
#include <vector>
#endif

#include "device.hpp"
#include "error.hpp"

#if defined(CDGAN_EMULATE_GRAPHS_ON_CPU)
namespace cdgan::detail {
/// The calls stored by an emulated recording (CDGAN_EMULATE_GRAPHS_ON_CPU).
struct cpu_recording {
  std::vector<std::function<void()>> calls;
};
/// The recording this thread's CPU calls go to, or nullptr when they run.
inline cpu_recording*& cpu_recorder() noexcept {
  thread_local cpu_recording* r = nullptr;
  return r;
}
}  // namespace cdgan::detail
/// In a CPU backend entry point: while a step is recorded, store the call (its arguments copied) and
/// return instead of running it.
#define CDGAN_CPU_RECORD(...)                                              \
  if (auto* cdgan_recording_ = ::cdgan::detail::cpu_recorder()) {        \
    cdgan_recording_->calls.emplace_back([=] { __VA_ARGS__; });           \
    return;                                                              \
  }
/// In a CPU entry point that would wait for the device or allocate: throw while a step is recorded.
#define CDGAN_CPU_NOT_WHILE_RECORDING(what)                                                        \
  if (::cdgan::detail::cpu_recorder())                                                             \
    throw ::cdgan::device_error(std::string("cdgan: ") + (what) +                                  \
                                " while a step is recorded (emulated CUDA graph: this would break a stream capture)");
#else
#define CDGAN_CPU_RECORD(...)
#define CDGAN_CPU_NOT_WHILE_RECORDING(what)
#endif

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

#if defined(CDGAN_EMULATE_GRAPHS_ON_CPU)
/// The emulated recording of a step on the CPU (see the file comment).
template <>
class step_graph<cpu> {
 public:
  static constexpr bool supported = true;
  void begin() {
    reset();
    detail::cpu_recorder() = &recording_;
  }
  void end() {
    detail::cpu_recorder() = nullptr;
    ready_ = true;
  }
  void abort() noexcept {
    detail::cpu_recorder() = nullptr;
    reset();
  }
  void launch() {
    for (auto& call : recording_.calls) call();
  }
  void reset() noexcept {
    recording_.calls.clear();
    ready_ = false;
  }
  bool ready() const noexcept { return ready_; }

 private:
  detail::cpu_recording recording_;
  bool ready_ = false;
};
#endif

}  // namespace cdgan
