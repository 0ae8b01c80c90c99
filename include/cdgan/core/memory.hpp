/// @file core/memory.hpp
/// Device memory: `buffer<Device, T>` owns a flat allocation that only grows. Allocations are counted
/// (`cdgan::allocation_count()`), which lets a test prove that a training step allocates nothing
/// after the first.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "../config.hpp"
#include "device.hpp"
#include "error.hpp"
#include "graph.hpp"

namespace cdgan {

namespace detail {
inline std::atomic<std::size_t>& allocation_counter() {
  static std::atomic<std::size_t> n{0};
  return n;
}
}  // namespace detail

/// Number of device or host tensor allocations made by cdgan so far (all devices).
inline std::size_t allocation_count() { return detail::allocation_counter().load(); }

namespace detail {
template <class Device>
std::atomic<std::size_t>& release_counter() {
  static std::atomic<std::size_t> n{0};
  return n;
}
}  // namespace detail

/// Number of times cdgan gave memory of `Device` back so far (a buffer that grew or was destroyed).
/// While it stays the same, every pointer into a live cdgan buffer of Device stays valid: a recorded
/// CUDA graph of a training step is still right (gan/model.hpp).
template <class Device>
std::size_t release_count() {
  return detail::release_counter<Device>().load();
}

/// Allocation policy per device; the CUDA specialisation lives in backend/cuda/memory.hpp.
template <class Device>
struct device_memory {
  static_assert(sizeof(Device) == 0,
                "cdgan: this device's memory is not available. For cdgan::cuda link the cdgan::cuda target "
                "(it defines CDGAN_WITH_CUDA) and include <cdgan/cdgan.hpp>.");
};

template <>
struct device_memory<cpu> {
  static void* allocate(std::size_t bytes) {
    CDGAN_CPU_NOT_WHILE_RECORDING("an allocation of " + std::to_string(bytes) + " bytes")
    std::size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  static void deallocate(void* p) noexcept { std::free(p); }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    CDGAN_CPU_RECORD(copy(dst, src, bytes))
    std::memcpy(dst, src, bytes);
  }
  static void to_host(void* dst, const void* src, std::size_t bytes) {
    CDGAN_CPU_NOT_WHILE_RECORDING("a copy to the host")
    std::memcpy(dst, src, bytes);
  }
  static void from_host(void* dst, const void* src, std::size_t bytes) {
    CDGAN_CPU_NOT_WHILE_RECORDING("a waiting copy from the host")
    std::memcpy(dst, src, bytes);
  }
  static void zero(void* dst, std::size_t bytes) {
    CDGAN_CPU_RECORD(zero(dst, bytes))
    std::memset(dst, 0, bytes);
  }
  /// Host memory that the device copies to and from without waiting (plain memory here; pinned,
  /// page-locked memory for cuda).
  static void* allocate_staging(std::size_t bytes) { return allocate(bytes); }
  static void deallocate_staging(void* p) noexcept { deallocate(p); }
  /// Staging (host) to device and device to staging, queued after earlier work and not waited for;
  /// the caller keeps the staging memory untouched until a synchronisation. Here: plain copies.
  static void upload(void* dst, const void* staging, std::size_t bytes) {
    CDGAN_CPU_RECORD(upload(dst, staging, bytes))
    std::memcpy(dst, staging, bytes);
  }
  static void download(void* staging, const void* src, std::size_t bytes) {
    CDGAN_CPU_RECORD(download(staging, src, bytes))
    std::memcpy(staging, src, bytes);
  }
};

/// Owning, growable, uninitialised storage of `T` on `Device`. Never shrinks: resizing to a smaller
/// or equal count does not allocate.
template <class Device, class T = real>
class buffer {
 public:
  buffer() = default;
  explicit buffer(std::size_t n) { resize(n); }
  buffer(const buffer& o) { *this = o; }
  buffer& operator=(const buffer& o) {
    if (this != &o) {
      resize(o.n_);
      if (n_) device_memory<Device>::copy(p_, o.p_, n_ * sizeof(T));
    }
    return *this;
  }
  buffer(buffer&& o) noexcept { swap(o); }
  buffer& operator=(buffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~buffer() { release(); }

  void resize(std::size_t n) {
    if (n > cap_) {
      release();
      p_ = static_cast<T*>(device_memory<Device>::allocate(n * sizeof(T)));
      cap_ = n;
      ++detail::allocation_counter();
    }
    n_ = n;
  }
  void swap(buffer& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(cap_, o.cap_);
  }
  T* data() noexcept { return p_; }
  const T* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  std::size_t capacity() const noexcept { return cap_; }

 private:
  void release() noexcept {
    if (p_) {
      device_memory<Device>::deallocate(p_);
      ++detail::release_counter<Device>();
    }
    p_ = nullptr;
    n_ = cap_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0, cap_ = 0;
};

/// A fixed-size host array that `Device` copies to and from asynchronously
/// (device_memory<Device>::upload / download): pinned (page-locked) memory for cuda, so that the copies
/// can be part of a recorded CUDA graph. Not copyable; allocated once.
template <class Device, class T>
class staging_buffer {
 public:
  explicit staging_buffer(std::size_t n)
      : p_(static_cast<T*>(device_memory<Device>::allocate_staging((n ? n : 1) * sizeof(T)))), n_(n) {
    ++detail::allocation_counter();
    std::memset(static_cast<void*>(p_), 0, (n ? n : 1) * sizeof(T));
  }
  staging_buffer(const staging_buffer&) = delete;
  staging_buffer& operator=(const staging_buffer&) = delete;
  ~staging_buffer() { device_memory<Device>::deallocate_staging(p_); }
  T* data() noexcept { return p_; }
  const T* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  T& operator[](std::size_t i) noexcept { return p_[i]; }
  const T& operator[](std::size_t i) const noexcept { return p_[i]; }

 private:
  T* p_;
  std::size_t n_;
};

}  // namespace cdgan
