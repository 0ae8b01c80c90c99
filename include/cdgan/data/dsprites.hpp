#pragma once
/// @file
/// Procedural, deterministic dSprites (Matthey et al. 2017), rendered one image at a time.
///
/// What this represents: the 737,280 binary 64 x 64 images of dSprites, one for every combination
///   of its latent factors, in the original order (shape slowest, pos_y fastest):
///     shape        3 values: 0 square, 1 ellipse, 2 heart   (the class label)
///     scale        6 values: linspace(0.5, 1, 6)
///     orientation 40 values: linspace(0, 2 pi, 40)          (first and last are the same angle,
///                                                            as in the original)
///     pos_x       32 values: linspace(0, 1, 32)
///     pos_y       32 values: linspace(0, 1, 32)
///   index = (((shape * 6 + scale) * 40 + orientation) * 32 + pos_x) * 32 + pos_y.
///   The original pixels are not reachable from these machines, so the images are drawn here from
///   the factors. Calibration (see docs/datasets.md for the reasoning):
///     - pixel (row r, col c) covers [c, c+1) x [r, r+1); it is on (1) when its centre
///       (c + 0.5, r + 0.5) is inside the shape: binary, aliased, like the original;
///     - sprite centre x = 10 + 44 * pos_x, y = 10 + 44 * pos_y (pixels; pos_y grows downwards), so
///       centres sweep 10..54 in steps of 44/31 ~ 1.42 px; only the largest rotated sprites at the
///       extreme positions touch the frame and are clipped;
///     - size unit s = 10 px * scale: the square has side 2s (20 px at scale 1, 10 px at 0.5);
///       the ellipse has semi-axes s and s/2 (major axis horizontal at orientation 0); the heart
///       is the curve (x^2 + y^2 - 1)^3 - x^2 y^3 = 0 scaled to the square's width (2s), centred
///       on its bounding box, lobes up and tip down at orientation 0 (so it is not symmetric top
///       to bottom);
///     - orientation turns the sprite counter-clockwise as seen on screen, about its centre.
///   At these settings the mean pixel value over the dataset is about 0.04 (the original's is
///   about 0.042), i.e. about 170 lit pixels per image.
///   - `decode(i)` / `encode(f)`      index <-> factor indices;  `values(f)` the factor values;
///   - `render(i, out)`                image i into 4096 bytes (0/1) or 4096 floats (0.0/1.0);
///   - `label(i)`                      the shape, 0..2;
///   - `paper_split(seed)`            the paper's split: 10,000 test images (a seeded, fixed
///                                     random subset), the other 727,280 for training;
///   - `dsprites_source`               a `sample_source` over a list of indices that renders on
///                                     demand (nothing is materialised);
///   - `materialize(indices)`          an in-memory `dataset` of the listed images (on request).
/// Requires: index < num_images; output spans of at least 4096 elements.
/// Ensures: the same index gives the same image on every call and platform (IEEE double
///   arithmetic; a pixel whose centre lies within ~1e-12 of an edge could in principle differ
///   between math libraries).

#include <cdgan/data/dataset.hpp>
#include <cdgan/data/error.hpp>
#include <cdgan/data/random.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cdgan::data::dsprites {

inline constexpr std::size_t num_shapes = 3;
inline constexpr std::size_t num_scales = 6;
inline constexpr std::size_t num_orientations = 40;
inline constexpr std::size_t num_positions = 32;
inline constexpr std::size_t image_side = 64;
inline constexpr std::size_t image_pixels = image_side * image_side;
inline constexpr std::size_t num_images =
    num_shapes * num_scales * num_orientations * num_positions * num_positions;  // 737,280
static_assert(num_images == 737280);

/// Paper split sizes (Section 4, dSprites): 727,280 train, 10,000 test.
inline constexpr std::size_t paper_test_size = 10000;
/// Default seed of the paper split (any fixed value; this one is the paper's arXiv date).
inline constexpr std::uint64_t default_split_seed = 20210305;

/// Calibration constants (pixels), see the file comment.
inline constexpr double position_first_px = 10.0;
inline constexpr double position_span_px = 44.0;
inline constexpr double size_unit_px = 10.0;

enum class shape : std::uint8_t { square = 0, ellipse = 1, heart = 2 };
inline constexpr std::array<std::string_view, 3> shape_names = {"square", "ellipse", "heart"};

/// Factor indices of one image.
struct factors {
    std::size_t shape = 0;        ///< 0..2
    std::size_t scale = 0;        ///< 0..5
    std::size_t orientation = 0;  ///< 0..39
    std::size_t pos_x = 0;        ///< 0..31
    std::size_t pos_y = 0;        ///< 0..31
    friend bool operator==(const factors&, const factors&) = default;
};

/// Factor values of one image, as in the original latents_values.
struct factor_values {
    double scale = 0;        ///< 0.5 .. 1
    double orientation = 0;  ///< 0 .. 2 pi (radians)
    double pos_x = 0;        ///< 0 .. 1
    double pos_y = 0;        ///< 0 .. 1
};

namespace detail {
inline void check_image_index(std::size_t i) {
    if (i >= num_images) {
        throw argument_error("dsprites: image index " + std::to_string(i) +
                             " out of range, expected < 737280");
    }
}
}  // namespace detail

/// Factor indices of image i. Requires: i < num_images.
inline factors decode(std::size_t i) {
    detail::check_image_index(i);
    factors f;
    f.pos_y = i % num_positions;
    i /= num_positions;
    f.pos_x = i % num_positions;
    i /= num_positions;
    f.orientation = i % num_orientations;
    i /= num_orientations;
    f.scale = i % num_scales;
    f.shape = i / num_scales;
    return f;
}

/// Image index of the given factor indices. Requires: every index in its range.
inline std::size_t encode(const factors& f) {
    if (f.shape >= num_shapes || f.scale >= num_scales || f.orientation >= num_orientations ||
        f.pos_x >= num_positions || f.pos_y >= num_positions) {
        throw argument_error(
            "dsprites: factor index out of range (expected shape < 3, scale < 6, orientation < "
            "40, pos_x < 32, pos_y < 32), got shape " + std::to_string(f.shape) + ", scale " +
            std::to_string(f.scale) + ", orientation " + std::to_string(f.orientation) +
            ", pos_x " + std::to_string(f.pos_x) + ", pos_y " + std::to_string(f.pos_y));
    }
    return (((f.shape * num_scales + f.scale) * num_orientations + f.orientation) * num_positions +
            f.pos_x) *
               num_positions +
           f.pos_y;
}

/// Factor values (linspace grids of the original dataset).
inline factor_values values(const factors& f) {
    factor_values v;
    v.scale = 0.5 + 0.5 * static_cast<double>(f.scale) / static_cast<double>(num_scales - 1);
    v.orientation = 2.0 * std::numbers::pi * static_cast<double>(f.orientation) /
                    static_cast<double>(num_orientations - 1);
    v.pos_x = static_cast<double>(f.pos_x) / static_cast<double>(num_positions - 1);
    v.pos_y = static_cast<double>(f.pos_y) / static_cast<double>(num_positions - 1);
    return v;
}

/// Class label (the shape) of image i.
inline std::uint8_t label(std::size_t i) { return static_cast<std::uint8_t>(decode(i).shape); }

namespace detail {

// Heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0: bounding box x in [-1.1385, 1.1385],
// y in [-1, 1.2360]; we shift y so that the box is centred and scale so the width is 2.
inline constexpr double heart_half_width = 1.1385;
inline constexpr double heart_y_centre = (1.2360 - 1.0) / 2.0;

/// Is the point (u, w) (sprite frame, w up, units of s) inside the shape?
inline bool inside(std::size_t shape_index, double u, double w) {
    switch (shape_index) {
        case 0: return std::abs(u) <= 1.0 && std::abs(w) <= 1.0;
        case 1: return u * u + 4.0 * w * w <= 1.0;
        default: {
            const double x = u * heart_half_width;
            const double y = w * heart_half_width + heart_y_centre;
            const double a = x * x + y * y - 1.0;
            return a * a * a - x * x * y * y * y <= 0.0;
        }
    }
}

template <class T>
void render_into(std::size_t index, std::span<T> out, T on) {
    if (out.size() < image_pixels) {
        throw argument_error("dsprites: render needs an output of 4096 elements, got " +
                             std::to_string(out.size()));
    }
    const factors f = decode(index);
    const factor_values v = values(f);
    std::fill(out.begin(), out.begin() + image_pixels, T{0});
    const double s = size_unit_px * v.scale;
    const double cx = position_first_px + position_span_px * v.pos_x;
    const double cy = position_first_px + position_span_px * v.pos_y;
    const double c = std::cos(v.orientation);
    const double sn = std::sin(v.orientation);
    const double reach = 1.5 * s + 1.0;  // every shape fits in a disc of radius 1.5 s
    const auto lo = [](double x) {
        return static_cast<std::size_t>(std::clamp(std::floor(x), 0.0, double(image_side)));
    };
    const std::size_t r0 = lo(cy - reach), r1 = lo(cy + reach + 1.0);
    const std::size_t c0 = lo(cx - reach), c1 = lo(cx + reach + 1.0);
    const double inv_s = 1.0 / s;
    for (std::size_t r = r0; r < r1; ++r) {
        const double up = -((static_cast<double>(r) + 0.5) - cy);  // screen y grows downwards
        for (std::size_t col = c0; col < c1; ++col) {
            const double dx = (static_cast<double>(col) + 0.5) - cx;
            // rotate the offset by -orientation into the sprite frame
            const double u = (c * dx + sn * up) * inv_s;
            const double w = (-sn * dx + c * up) * inv_s;
            if (inside(f.shape, u, w)) out[r * image_side + col] = on;
        }
    }
}

}  // namespace detail

/// Renders image i as 4096 bytes, 0 or 1, row-major. Requires: out.size() >= 4096.
inline void render(std::size_t i, std::span<std::uint8_t> out) {
    detail::render_into<std::uint8_t>(i, out, 1);
}
/// Renders image i as 4096 floats, 0.0 or 1.0, row-major. Requires: out.size() >= 4096.
inline void render(std::size_t i, std::span<float> out) { detail::render_into<float>(i, out, 1.0f); }
/// Renders image i into a new vector of 4096 bytes (0 or 1).
inline std::vector<std::uint8_t> render(std::size_t i) {
    std::vector<std::uint8_t> out(image_pixels);
    render(i, std::span<std::uint8_t>(out));
    return out;
}

/// Train and test indices, each sorted ascending.
struct split_indices {
    std::vector<std::size_t> train;
    std::vector<std::size_t> test;
};

/// The paper's split: `test_size` images drawn without replacement with `seed`, the rest train.
inline split_indices paper_split(std::uint64_t seed = default_split_seed,
                                 std::size_t test_size = paper_test_size) {
    if (test_size > num_images) {
        throw argument_error("dsprites: test_size must be <= 737280, got " +
                             std::to_string(test_size));
    }
    std::vector<std::uint32_t> all(num_images);
    for (std::size_t i = 0; i < num_images; ++i) all[i] = static_cast<std::uint32_t>(i);
    splitmix64 g(seed);
    // Partial Fisher-Yates: the first test_size entries become a uniform random subset.
    for (std::size_t i = 0; i < test_size; ++i) {
        const auto j = i + static_cast<std::size_t>(uniform_below(g, num_images - i));
        std::swap(all[i], all[j]);
    }
    std::vector<bool> is_test(num_images, false);
    split_indices out;
    out.test.reserve(test_size);
    for (std::size_t i = 0; i < test_size; ++i) is_test[all[i]] = true;
    out.train.reserve(num_images - test_size);
    for (std::size_t i = 0; i < num_images; ++i) (is_test[i] ? out.test : out.train).push_back(i);
    return out;
}

/// A `sample_source` over dSprites images that renders on demand.
class dsprites_source {
public:
    /// All 737,280 images, in order.
    dsprites_source() = default;
    /// The listed images (e.g. `paper_split().train`). Requires: every index < num_images.
    explicit dsprites_source(std::vector<std::size_t> indices) : indices_(std::move(indices)) {
        for (auto i : indices_) detail::check_image_index(i);
        all_ = false;
    }
    [[nodiscard]] std::size_t size() const noexcept { return all_ ? num_images : indices_.size(); }
    [[nodiscard]] static constexpr std::size_t sample_size() noexcept { return image_pixels; }
    [[nodiscard]] static constexpr std::size_t channels() noexcept { return 1; }
    [[nodiscard]] static constexpr std::size_t height() noexcept { return image_side; }
    [[nodiscard]] static constexpr std::size_t width() noexcept { return image_side; }
    [[nodiscard]] static constexpr std::size_t num_classes() noexcept { return num_shapes; }
    /// dSprites image index of sample i.
    [[nodiscard]] std::size_t image_index(std::size_t i) const {
        if (i >= size()) {
            throw argument_error("dsprites_source: sample " + std::to_string(i) +
                                 " out of range, expected < " + std::to_string(size()));
        }
        return all_ ? i : indices_[i];
    }
    void copy_sample(std::size_t i, std::span<float> out) const { render(image_index(i), out); }
    [[nodiscard]] std::size_t label(std::size_t i) const { return dsprites::label(image_index(i)); }
    /// Labels of all samples (one byte each; 737,280 bytes for the whole set).
    [[nodiscard]] std::vector<std::uint8_t> labels() const {
        std::vector<std::uint8_t> out(size());
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(label(i));
        return out;
    }

private:
    std::vector<std::size_t> indices_;
    bool all_ = true;
};

static_assert(sample_source<dsprites_source>);

/// Renders the listed images into an in-memory dataset (1 x 64 x 64, 3 classes). Each image
/// takes 16 KiB: the whole set would take 11.3 GiB, so pass only what is needed.
inline dataset materialize(std::span<const std::size_t> indices, std::string name = "dsprites") {
    dataset ds;
    ds.name = std::move(name);
    ds.channels = 1;
    ds.height = image_side;
    ds.width = image_side;
    ds.num_classes = num_shapes;
    ds.images.resize(indices.size() * image_pixels);
    ds.labels.resize(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) {
        render(indices[k], std::span<float>(ds.images).subspan(k * image_pixels, image_pixels));
        ds.labels[k] = label(indices[k]);
    }
    return ds;
}

}  // namespace cdgan::data::dsprites
