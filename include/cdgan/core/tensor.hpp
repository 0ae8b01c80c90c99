/// @file core/tensor.hpp
/// Tensors and views with a compile-time per-sample shape and a run-time batch size.
///
/// What this represents: `tensor<S, Device>` owns `batch × S::size` reals on `Device`, laid out
/// sample-major (NCHW for images). `view<S, Device>` and `cview<S, Device>` are non-owning,
/// trivially-copyable windows over such memory. Assigning an expression to either evaluates it on the
/// view's device: `y = leaky_relu(x, 0.2f) * g + b;`.
///
/// Requires: every full-size operand of an assigned expression has exactly as many elements as the
/// destination. Ensures: otherwise a `shape_error` naming both lengths, never an out-of-bounds read.
#pragma once
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include "../config.hpp"
#include "device.hpp"
#include "error.hpp"
#include "expr.hpp"
#include "memory.hpp"
#include "shape.hpp"

namespace cdgan {

namespace detail {
template <class Device, class E>
void assign_expr(real* dst, std::size_t n, const E& e, const char* what) {
  using ed = typename E::device;
  static_assert(std::is_void_v<ed> || std::is_same_v<ed, Device>,
                "cdgan: an expression over tensors of one device is assigned to a tensor of another device");
  if (!e.fits(n))
    throw shape_error(std::string("cdgan: elementwise assignment to ") + what + " of " + std::to_string(n) +
                      " elements from an expression whose operands have a different number of elements");
  if (n) executor<Device>::run(dst, n, e);
}
}  // namespace detail

/// Non-owning view of `batch` samples of shape S on Device. T is `real` or `const real`.
template <shape_type S, class Device = cpu, class T = real>
struct view {
  using shape = S;
  using device = Device;
  T* ptr = nullptr;
  std::size_t batch = 0;

  static constexpr std::size_t sample_size = S::size;
  constexpr std::size_t size() const { return batch * S::size; }
  T* data() const { return ptr; }
  bool empty() const { return ptr == nullptr; }
  /// Samples [first, first + count).
  view slice(std::size_t first, std::size_t count) const {
    if (first + count > batch)
      throw shape_error("cdgan: slice [" + std::to_string(first) + ", " + std::to_string(first + count) +
                        ") of a batch of " + std::to_string(batch) + " samples of shape " + S::str());
    return {ptr + first * S::size, count};
  }
  /// The same memory seen with another shape of the same per-sample size.
  template <shape_type S2>
  view<S2, Device, T> as() const {
    static_assert(S2::size == S::size, "cdgan: view::as<S2>() needs a shape with the same number of elements");
    return {ptr, batch};
  }
  // A template so that the const view (for which this would be a conversion to its own type) has no
  // such member at all: nvcc warns about a never-callable conversion function otherwise.
  template <class U = T>
    requires(!std::is_const_v<U>)
  operator view<S, Device, const real>() const {
    return {ptr, batch};
  }
  expr_ref<Device> as_expr() const { return {{}, ptr, size()}; }

  template <expr_like E>
    requires(!std::is_const_v<T>)
  const view& operator=(const E& e) const {
    detail::assign_expr<Device>(ptr, size(), to_expr(e), "a view");
    return *this;
  }
  template <scalar_like V>
    requires(!std::is_const_v<T>)
  const view& operator=(V v) const {
    return *this = expr_scalar{{}, static_cast<real>(v)};
  }
  template <class E>
    requires(!std::is_const_v<T>) && (expr_like<E> || scalar_like<E>)
  const view& operator+=(const E& e) const {
    return *this = as_expr() + e;
  }
};
template <shape_type S, class Device = cpu>
using cview = view<S, Device, const real>;

/// Owning tensor of `batch` samples of shape S on Device.
template <shape_type S, class Device = cpu>
class tensor {
 public:
  using shape = S;
  using device = Device;
  static constexpr std::size_t sample_size = S::size;

  tensor() = default;
  explicit tensor(std::size_t batch) { resize(batch); }

  /// Sets the batch size; allocates only when it grows past every earlier size.
  void resize(std::size_t batch) {
    buf_.resize(batch * S::size);
    batch_ = batch;
  }
  std::size_t batch() const { return batch_; }
  std::size_t size() const { return batch_ * S::size; }
  real* data() { return buf_.data(); }
  const real* data() const { return buf_.data(); }

  view<S, Device> v() { return {buf_.data(), batch_}; }
  cview<S, Device> v() const { return {buf_.data(), batch_}; }
  cview<S, Device> cv() const { return {buf_.data(), batch_}; }
  operator view<S, Device>() { return v(); }
  operator cview<S, Device>() const { return cv(); }
  expr_ref<Device> as_expr() const { return {{}, buf_.data(), size()}; }

  template <class E>
    requires expr_like<E> || scalar_like<E>
  tensor& operator=(const E& e) {
    v() = e;
    return *this;
  }
  template <class E>
    requires expr_like<E> || scalar_like<E>
  tensor& operator+=(const E& e) {
    v() += e;
    return *this;
  }

  /// Copies to a host vector (any device).
  std::vector<real> to_host() const {
    std::vector<real> h(size());
    if (size()) device_memory<Device>::to_host(h.data(), buf_.data(), size() * sizeof(real));
    return h;
  }
  /// Copies from host memory; the vector's length must be a multiple of the sample size.
  void from_host(const std::vector<real>& h) {
    if (h.size() % S::size)
      throw shape_error("cdgan: tensor::from_host got " + std::to_string(h.size()) +
                        " values, not a multiple of the sample shape " + S::str());
    resize(h.size() / S::size);
    if (size()) device_memory<Device>::from_host(buf_.data(), h.data(), size() * sizeof(real));
  }

 private:
  buffer<Device> buf_;
  std::size_t batch_ = 0;
};

/// Broadcast a per-feature vector (e.g. a bias of shape<F>) over a batch: element i is b[i % F].
template <shape_type S, class Device>
expr_broadcast<Device> per_feature(cview<S, Device> b) {
  return {{}, b.ptr, 1, S::size};
}
/// Broadcast a per-channel vector over a batch of C×H×W images: element i is b[(i / (H*W)) % C].
template <std::size_t HW, shape_type S, class Device>
expr_broadcast<Device> per_channel(cview<S, Device> b) {
  return {{}, b.ptr, HW, S::size};
}
/// Broadcast one value per sample over a sample of N elements: element i is v[i / N].
template <std::size_t N, class Device>
expr_broadcast<Device> per_sample(const real* v, std::size_t batch) {
  return {{}, v, N, batch};
}

}  // namespace cdgan
