/// @file data/device_dataset.hpp
/// A training set held in one device's memory, uploaded once, with batches gathered there by
/// index: each step moves only its index list (a few hundred bytes) from the host, not its images.
///
///     data::device_dataset<shape<1, 28, 28>, cuda> all(n, [&](std::size_t i, std::span<real> out) { ... });
///     all.gather(indices, batch.v());   // batch[k] = sample indices[k]
///
/// Requires: fewer than 2^24 samples (indices travel as reals, exact up to 2^24).
/// Ensures: gather gives bitwise the samples that `fill` wrote, on every device; an index out of
/// range or a batch of the wrong size is a shape_error naming both numbers.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/expr.hpp"
#include "../core/memory.hpp"
#include "../core/tensor.hpp"

namespace cdgan::data {

namespace detail {
/// Element k of a batch gathered from `rows` (row_size reals each) by `index` (at namespace scope:
/// a CUDA kernel's template argument cannot be a type local to a function).
struct gather_rows {
  const real* rows;
  const real* index;
  std::size_t row_size;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const {
    return rows[static_cast<std::size_t>(index[k / row_size]) * row_size + k % row_size];
  }
};
}  // namespace detail

template <class S, class Device>
class device_dataset {
 public:
  static constexpr std::size_t max_samples = std::size_t(1) << 24;

  device_dataset() = default;
  /// Uploads n samples, `chunk` at a time; fill(i, out) writes sample i (S::size reals) into out.
  template <class Fill>
  device_dataset(std::size_t n, Fill&& fill, std::size_t chunk = 1024) : all_(checked(n, chunk)) {
    std::vector<real> host(chunk * S::size);
    for (std::size_t first = 0; first < n; first += chunk) {
      const std::size_t count = first + chunk <= n ? chunk : n - first;
      for (std::size_t i = 0; i < count; ++i) fill(first + i, std::span<real>(host.data() + i * S::size, S::size));
      device_memory<Device>::from_host(all_.data() + first * S::size, host.data(), count * S::size * sizeof(real));
    }
  }

  std::size_t size() const { return all_.batch(); }
  /// Device bytes held.
  std::size_t bytes() const { return all_.size() * sizeof(real); }

  /// out[k] = sample indices[k], for every k < out.batch == indices.size().
  void gather(std::span<const std::size_t> indices, view<S, Device> out) {
    if (indices.size() != out.batch)
      throw shape_error("cdgan: device_dataset::gather: " + std::to_string(indices.size()) + " indices for a batch of " +
                        std::to_string(out.batch));
    host_index_.resize(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) {
      if (indices[k] >= size())
        throw shape_error("cdgan: device_dataset::gather: index " + std::to_string(indices[k]) + " (position " +
                          std::to_string(k) + ") is out of range for " + std::to_string(size()) + " samples");
      host_index_[k] = static_cast<real>(indices[k]);
    }
    if (indices.empty()) return;
    index_.resize(indices.size());
    index_.from_host(host_index_);
    out = cdgan::generate<Device>(detail::gather_rows{all_.data(), index_.data(), S::size});
  }

 private:
  /// n, once it is known to fit (before anything is allocated).
  static std::size_t checked(std::size_t n, std::size_t chunk) {
    if (n > max_samples)
      throw shape_error("cdgan: device_dataset holds at most " + std::to_string(max_samples) + " samples, got " +
                        std::to_string(n));
    if (chunk == 0) throw shape_error("cdgan: device_dataset: the upload chunk must hold at least one sample");
    return n;
  }

  tensor<S, Device> all_;
  tensor<shape<1>, Device> index_;
  std::vector<real> host_index_;
};

}  // namespace cdgan::data
