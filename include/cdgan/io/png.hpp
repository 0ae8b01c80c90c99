#pragma once
/// @file
/// PNG writer for sample grids (grayscale or RGB), written with zlib (no stb, no ODR traps).
///
/// What this represents:
///   - `make_grid(images, count, channels, height, width, rows, cols, options)`: lays `count`
///     images (floats in [0, 1], CHW per image, image after image) on a rows x cols grid, image k
///     at row k / cols, column k % cols, with `options.padding` pixels (default 2) of
///     `options.pad_value` (default 0.5, mid grey, visible on black and on white backgrounds)
///     around and between the images, as torchvision's make_grid does. Values are clamped to
///     [0, 1] and mapped to round(255 v). Grid cells past `count` stay at the pad value. The grid
///     is (rows (H + p) + p) x (cols (W + p) + p) pixels, interleaved (HWC) 8-bit.
///   - `write_png(path, pixels, width, height, channels)`: an 8-bit PNG, colour type 0 (grey,
///     channels = 1) or 2 (RGB, channels = 3), no interlace, filter 0 on every row, one IDAT
///     (zlib compress2, level 6), CRC-32 from zlib. Written to `path + ".tmp"`, then renamed.
///   - `write_png_grid(path, ...)`: make_grid + write_png.
/// Requires: channels is 1 or 3; images.size() == count * channels * height * width;
///   count <= rows * cols; dimensions fit PNG's 31-bit limits. Link with zlib.
/// Ensures: the file starts with the 8-byte PNG signature and a 13-byte IHDR with the grid's
///   width and height; any PNG decoder reads it back to the same pixels.

#include <cdgan/io/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace cdgan::io {

/// Grid layout options.
struct grid_options {
    std::size_t padding = 2;  ///< pixels around and between images
    float pad_value = 0.5f;   ///< grey level of the padding, in [0, 1]
};

/// An 8-bit interleaved image.
struct image_u8 {
    std::size_t width = 0;
    std::size_t height = 0;
    std::size_t channels = 1;
    std::vector<std::uint8_t> pixels;  ///< height x width x channels
};

namespace detail {

inline std::uint8_t to_u8(float v) {
    if (!(v > 0.0f)) return 0;  // also NaN -> 0
    if (v >= 1.0f) return 255;
    return static_cast<std::uint8_t>(std::lround(v * 255.0f));
}

inline void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 24));
    out.push_back(static_cast<std::uint8_t>(v >> 16));
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

inline void put_chunk(std::vector<std::uint8_t>& out, const char type[4],
                      const std::uint8_t* data, std::size_t size) {
    put_be32(out, static_cast<std::uint32_t>(size));
    const std::size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    if (size != 0) out.insert(out.end(), data, data + size);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, out.data() + start, static_cast<uInt>(4 + size));
    put_be32(out, static_cast<std::uint32_t>(crc));
}

}  // namespace detail

/// Encodes 8-bit grey (channels 1) or RGB (channels 3) pixels, HWC, as PNG bytes.
inline std::vector<std::uint8_t> encode_png(std::span<const std::uint8_t> pixels, std::size_t width,
                                            std::size_t height, std::size_t channels) {
    if (channels != 1 && channels != 3) {
        throw io_error({}, "encode_png: channels must be 1 (grey) or 3 (RGB), got " +
                               std::to_string(channels));
    }
    if (width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu) {
        throw io_error({}, "encode_png: width and height must be in [1, 2^31 - 1], got " +
                               std::to_string(width) + " x " + std::to_string(height));
    }
    if (pixels.size() != width * height * channels) {
        throw io_error({}, "encode_png: expected " + std::to_string(width * height * channels) +
                               " bytes (" + std::to_string(height) + " x " + std::to_string(width) +
                               " x " + std::to_string(channels) + "), got " +
                               std::to_string(pixels.size()));
    }
    const std::size_t stride = width * channels;
    std::vector<std::uint8_t> raw((stride + 1) * height);
    for (std::size_t y = 0; y < height; ++y) {
        raw[y * (stride + 1)] = 0;  // filter type None
        std::copy_n(pixels.data() + y * stride, stride, raw.data() + y * (stride + 1) + 1);
    }
    uLongf zsize = compressBound(static_cast<uLong>(raw.size()));
    std::vector<std::uint8_t> z(zsize);
    if (compress2(z.data(), &zsize, raw.data(), static_cast<uLong>(raw.size()), 6) != Z_OK) {
        throw io_error({}, "encode_png: zlib compress2 failed");
    }
    z.resize(zsize);
    std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    std::vector<std::uint8_t> ihdr;
    detail::put_be32(ihdr, static_cast<std::uint32_t>(width));
    detail::put_be32(ihdr, static_cast<std::uint32_t>(height));
    ihdr.push_back(8);                                              // bit depth
    ihdr.push_back(channels == 1 ? std::uint8_t{0} : std::uint8_t{2});  // colour type
    ihdr.push_back(0);                                              // compression
    ihdr.push_back(0);                                              // filter method
    ihdr.push_back(0);                                              // interlace
    detail::put_chunk(out, "IHDR", ihdr.data(), ihdr.size());
    detail::put_chunk(out, "IDAT", z.data(), z.size());
    detail::put_chunk(out, "IEND", nullptr, 0);
    return out;
}

/// Writes an 8-bit grey / RGB PNG (path + ".tmp", then rename).
inline void write_png(const std::filesystem::path& path, std::span<const std::uint8_t> pixels,
                      std::size_t width, std::size_t height, std::size_t channels) {
    std::vector<std::uint8_t> bytes;
    try {
        bytes = encode_png(pixels, width, height, channels);
    } catch (const io_error& e) {
        throw io_error(path, path.string() + ": " + e.what());
    }
    atomic_file_writer out(path);
    out.write(bytes.data(), bytes.size());
    out.commit();
}

/// Lays images out on a grid (see the file comment).
inline image_u8 make_grid(std::span<const float> images, std::size_t count, std::size_t channels,
                          std::size_t height, std::size_t width, std::size_t rows, std::size_t cols,
                          const grid_options& options = {}) {
    if (channels != 1 && channels != 3) {
        throw io_error({}, "make_grid: channels must be 1 or 3, got " + std::to_string(channels));
    }
    if (height == 0 || width == 0 || rows == 0 || cols == 0) {
        throw io_error({}, "make_grid: height, width, rows and cols must be >= 1");
    }
    if (images.size() != count * channels * height * width) {
        throw io_error({}, "make_grid: expected " + std::to_string(count * channels * height * width) +
                               " floats (" + std::to_string(count) + " images x " +
                               std::to_string(channels) + " x " + std::to_string(height) + " x " +
                               std::to_string(width) + "), got " + std::to_string(images.size()));
    }
    if (count > rows * cols) {
        throw io_error({}, "make_grid: " + std::to_string(count) + " images do not fit a " +
                               std::to_string(rows) + " x " + std::to_string(cols) + " grid");
    }
    const std::size_t p = options.padding;
    image_u8 g;
    g.channels = channels;
    g.width = cols * (width + p) + p;
    g.height = rows * (height + p) + p;
    g.pixels.assign(g.width * g.height * channels, detail::to_u8(options.pad_value));
    const std::size_t plane = height * width;
    for (std::size_t k = 0; k < count; ++k) {
        const float* img = images.data() + k * channels * plane;
        const std::size_t y0 = p + (k / cols) * (height + p);
        const std::size_t x0 = p + (k % cols) * (width + p);
        for (std::size_t y = 0; y < height; ++y) {
            for (std::size_t x = 0; x < width; ++x) {
                std::uint8_t* dst = g.pixels.data() + ((y0 + y) * g.width + (x0 + x)) * channels;
                for (std::size_t c = 0; c < channels; ++c) {
                    dst[c] = detail::to_u8(img[c * plane + y * width + x]);
                }
            }
        }
    }
    return g;
}

/// Writes a rows x cols grid of images (floats in [0, 1], CHW) as a PNG.
inline void write_png_grid(const std::filesystem::path& path, std::span<const float> images,
                           std::size_t count, std::size_t channels, std::size_t height,
                           std::size_t width, std::size_t rows, std::size_t cols,
                           const grid_options& options = {}) {
    image_u8 g;
    try {
        g = make_grid(images, count, channels, height, width, rows, cols, options);
    } catch (const io_error& e) {
        throw io_error(path, path.string() + ": " + e.what());
    }
    write_png(path, g.pixels, g.width, g.height, g.channels);
}

}  // namespace cdgan::io
