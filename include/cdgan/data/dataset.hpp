#pragma once
/// @file
/// In-memory labelled image dataset, and the `sample_source` concept the loaders gather from.
///
/// What this represents:
///   - `dataset`: N images of C x H x W floats in [0, 1], stored contiguously, image-major and
///     channel-major inside an image (CHW, the layout of the network input tensors), with one class
///     label per image. MNIST, Fashion-MNIST and CIFAR-10 load into it.
///   - `sample_source`: anything the batch loaders can gather from: it has `size()`,
///     `sample_size()` (floats per sample), `copy_sample(i, out)` and `label(i)`. `dataset` is one;
///     the procedural `dsprites_source` (dsprites.hpp) is another, which renders on demand.
/// Requires: for `dataset`, `images.size() == labels.size() * channels * height * width`
///   (checked by `validate()`); labels are < `num_classes`.
/// Ensures: `image(i)` is a view of sample i; `copy_sample(i, out)` writes exactly
///   `sample_size()` floats to `out`; `evenly_spaced(n)` keeps images floor(i·size()/n).

#include <cdgan/data/error.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace cdgan::data {

/// Something the loaders can gather samples from (see the file comment).
template <class S>
concept sample_source = requires(const S& s, std::size_t i, std::span<float> out) {
    { s.size() } -> std::convertible_to<std::size_t>;
    { s.sample_size() } -> std::convertible_to<std::size_t>;
    s.copy_sample(i, out);
    { s.label(i) } -> std::convertible_to<std::size_t>;
};

/// Labelled images in memory, floats in [0, 1], CHW per image.
struct dataset {
    std::string name;                  ///< e.g. "mnist/train"
    std::size_t channels = 1;          ///< C
    std::size_t height = 0;            ///< H
    std::size_t width = 0;             ///< W
    std::size_t num_classes = 0;       ///< labels are in [0, num_classes)
    std::vector<float> images;         ///< size() * sample_size() floats
    std::vector<std::uint8_t> labels;  ///< one per image

    /// Number of images.
    [[nodiscard]] std::size_t size() const noexcept { return labels.size(); }
    /// Floats per image (C * H * W).
    [[nodiscard]] std::size_t sample_size() const noexcept { return channels * height * width; }
    /// View of image i. Requires: i < size().
    [[nodiscard]] std::span<const float> image(std::size_t i) const {
        check_index(i);
        return std::span<const float>(images).subspan(i * sample_size(), sample_size());
    }
    /// Class label of image i. Requires: i < size().
    [[nodiscard]] std::size_t label(std::size_t i) const {
        check_index(i);
        return labels[i];
    }
    /// Copies image i into out. Requires: i < size(), out.size() >= sample_size().
    void copy_sample(std::size_t i, std::span<float> out) const {
        auto src = image(i);
        if (out.size() < src.size()) {
            throw argument_error("dataset '" + name + "': copy_sample needs an output of " +
                                 std::to_string(src.size()) + " floats, got " +
                                 std::to_string(out.size()));
        }
        std::copy(src.begin(), src.end(), out.begin());
    }
    /// Number of images of each class (size num_classes).
    [[nodiscard]] std::vector<std::size_t> class_counts() const {
        std::vector<std::size_t> counts(num_classes, 0);
        for (auto l : labels) {
            if (l < counts.size()) ++counts[l];
        }
        return counts;
    }
    /// The n images at indices floor(i * size() / n), i < n, in order: an evenly spaced subset, so
    /// that a split stored in order of its factors (dSprites: shape slowest) keeps its class mix.
    /// n >= size() returns a copy. Named "<name>[n of size()]".
    [[nodiscard]] dataset evenly_spaced(std::size_t n) const {
        if (n >= size()) return *this;
        dataset out;
        out.name = name + "[" + std::to_string(n) + " of " + std::to_string(size()) + "]";
        out.channels = channels;
        out.height = height;
        out.width = width;
        out.num_classes = num_classes;
        out.images.resize(n * sample_size());
        out.labels.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t j = i * size() / n;
            copy_sample(j, std::span<float>(out.images).subspan(i * sample_size(), sample_size()));
            out.labels[i] = labels[j];
        }
        return out;
    }
    /// Throws `argument_error` when the sizes disagree or a label is >= num_classes.
    void validate() const {
        if (images.size() != labels.size() * sample_size()) {
            throw argument_error("dataset '" + name + "': expected " +
                                 std::to_string(labels.size() * sample_size()) +
                                 " floats of image data (" + std::to_string(labels.size()) +
                                 " images x " + std::to_string(sample_size()) + "), found " +
                                 std::to_string(images.size()));
        }
        for (std::size_t i = 0; i < labels.size(); ++i) {
            if (labels[i] >= num_classes) {
                throw argument_error("dataset '" + name + "': label of image " + std::to_string(i) +
                                     " is " + std::to_string(labels[i]) + ", expected < " +
                                     std::to_string(num_classes));
            }
        }
    }

private:
    void check_index(std::size_t i) const {
        if (i >= size()) {
            throw argument_error("dataset '" + name + "': index " + std::to_string(i) +
                                 " out of range, expected < " + std::to_string(size()));
        }
    }
};

static_assert(sample_source<dataset>);

}  // namespace cdgan::data
