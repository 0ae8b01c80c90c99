#pragma once
/// @file
/// CIFAR-10 binary-batch reader.
///
/// What this represents: the "binary version" of CIFAR-10 (cifar-10-batches-bin/): files
///   data_batch_1.bin ... data_batch_5.bin (train, 10000 records each) and test_batch.bin (test).
///   Each record is 3073 bytes: 1 label byte (0..9), then 3072 pixel bytes, 1024 red, 1024 green,
///   1024 blue, each plane row-major 32 x 32 (CHW). Pixels become floats in [0, 1] (byte / 255).
///   - `read_cifar10_batch(path)`   one batch file (plain or gzipped) as a `dataset` 3 x 32 x 32;
///   - `load_cifar10(dir, split)`   split "train" (the five data batches, in order) or "test",
///     looking in `dir` and in `dir/cifar-10-batches-bin`.
///   Class names, by label: airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck.
/// Requires: the files exist (no copy of CIFAR-10 is packaged for these machines: the user places
///   the binary batches, see docs/datasets.md).
/// Ensures: an empty file, a size that is not a multiple of 3073, or a label byte > 9 throws
///   `dataset_error` naming the file, the byte offset and expected versus found. A missing
///   directory or batch throws `dataset_not_found_error` saying where the files are expected.

#include <cdgan/data/dataset.hpp>
#include <cdgan/data/error.hpp>
#include <cdgan/data/file.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace cdgan::data {

/// Bytes per CIFAR-10 record: 1 label + 3 x 32 x 32 pixels.
inline constexpr std::size_t cifar10_record_size = 3073;

/// CIFAR-10 class names, indexed by label.
inline constexpr std::array<std::string_view, 10> cifar10_class_names = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

namespace detail {

/// Appends the records of one batch file to ds (which must already be 3 x 32 x 32, 10 classes).
inline void append_cifar10_batch(const std::filesystem::path& path, dataset& ds) {
    const auto bytes = read_file_bytes(path).bytes;
    const std::size_t size = bytes.size();
    if (size == 0) {
        throw_file_error(path, 0, "at least one 3073-byte record (1 label + 3072 pixels)",
                         "an empty file");
    }
    if (size % cifar10_record_size != 0) {
        const std::size_t last = size - size % cifar10_record_size;
        throw_file_error(path, last,
                         "a size that is a multiple of 3073 (records of 1 label byte + 3072 pixel "
                         "bytes); the incomplete record " +
                             std::to_string(size / cifar10_record_size) + " starts here",
                         std::to_string(size) + " bytes (" +
                             std::to_string(size / cifar10_record_size) + " records and " +
                             std::to_string(size % cifar10_record_size) + " bytes left over)");
    }
    const std::size_t n = size / cifar10_record_size;
    const std::size_t first = ds.labels.size();
    ds.labels.resize(first + n);
    ds.images.resize((first + n) * 3072);
    for (std::size_t r = 0; r < n; ++r) {
        const std::uint8_t* rec = bytes.data() + r * cifar10_record_size;
        if (rec[0] > 9) {
            throw_file_error(path, r * cifar10_record_size,
                             "a label byte in 0..9 (record " + std::to_string(r) + ")",
                             std::to_string(rec[0]));
        }
        ds.labels[first + r] = rec[0];
        float* dst = ds.images.data() + (first + r) * 3072;
        for (std::size_t p = 0; p < 3072; ++p) {
            dst[p] = static_cast<float>(rec[1 + p]) * (1.0f / 255.0f);
        }
    }
}

inline dataset empty_cifar10(std::string name) {
    dataset ds;
    ds.name = std::move(name);
    ds.channels = 3;
    ds.height = 32;
    ds.width = 32;
    ds.num_classes = 10;
    return ds;
}

inline const std::string& cifar10_install_hint() {
    static const std::string hint =
        "CIFAR-10 is not packaged for these machines: place the binary version's batches "
        "(data_batch_1.bin ... data_batch_5.bin, test_batch.bin, from cifar-10-binary.tar.gz) in "
        "this directory or in its cifar-10-batches-bin/ subdirectory";
    return hint;
}

}  // namespace detail

/// Reads one CIFAR-10 binary batch file as a 3 x 32 x 32, 10-class dataset.
inline dataset read_cifar10_batch(const std::filesystem::path& path) {
    dataset ds = detail::empty_cifar10("cifar10/" + path.filename().string());
    detail::append_cifar10_batch(path, ds);
    return ds;
}

/// Loads split "train" (data_batch_1..5.bin, 50000 images) or "test" (test_batch.bin, 10000).
inline dataset load_cifar10(const std::filesystem::path& dir, std::string_view split = "train") {
    std::vector<std::string> names;
    if (split == "train") {
        for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
    } else if (split == "test") {
        names.emplace_back("test_batch.bin");
    } else {
        throw argument_error(dir.string() + ": CIFAR-10 split must be \"train\" or \"test\", got \"" +
                             std::string(split) + "\"");
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
        throw dataset_not_found_error(dir, no_offset,
                                      dir.string() + ": no such dataset directory. " +
                                          detail::cifar10_install_hint());
    }
    std::filesystem::path base = dir;
    if (!std::filesystem::is_regular_file(base / names.front(), ec) &&
        std::filesystem::is_regular_file(dir / "cifar-10-batches-bin" / names.front(), ec)) {
        base = dir / "cifar-10-batches-bin";
    }
    dataset ds = detail::empty_cifar10("cifar10/" + std::string(split));
    for (const auto& n : names) {
        const auto p = base / n;
        if (!std::filesystem::is_regular_file(p, ec)) {
            throw dataset_not_found_error(p, no_offset,
                                          p.string() + ": no such file. " +
                                              detail::cifar10_install_hint());
        }
        detail::append_cifar10_batch(p, ds);
    }
    return ds;
}

}  // namespace cdgan::data
