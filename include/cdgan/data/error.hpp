#pragma once
/// @file
/// Errors raised by the dataset readers, samplers and loaders of `cdgan::data`.
///
/// What this represents:
///   - `dataset_error`: a data file that cannot be used (missing, unreadable, truncated, wrong
///     magic number, sizes that disagree). Its message names the file, the byte offset where the
///     problem was seen, and what was expected versus what was found, e.g.
///     `data/mnist/train-images-idx3-ubyte: byte offset 16: expected 47040000 pixel bytes
///     (60000 images x 28 x 28) after the header, found 1000 (file is truncated)`.
///     `file()` and `offset()` give the same facts to programs.
///   - `dataset_not_found_error`: a dataset directory or file is missing; the message says how to
///     install the dataset (see docs/datasets.md).
///   - `argument_error`: a request that makes no sense (a labelled fraction outside (0, 1], a batch
///     larger than the data, an index out of range). The message names the argument, the accepted
///     range and the value received.
/// Requires: nothing.
/// Ensures: every error derives from `std::runtime_error`; `what()` is a complete English sentence
///   fragment that can be printed as it is.

#include <cstddef>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>

namespace cdgan::data {

/// Offset value meaning "no particular byte offset" (the whole file, or a missing file).
inline constexpr std::size_t no_offset = std::numeric_limits<std::size_t>::max();

/// A data file that cannot be used. See the file comment for the message format.
class dataset_error : public std::runtime_error {
public:
    dataset_error(std::filesystem::path file, std::size_t offset, const std::string& message)
        : std::runtime_error(message), file_(std::move(file)), offset_(offset) {}

    /// The file the problem was seen in (may be a directory for a missing dataset).
    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }
    /// Byte offset of the problem (in the decompressed stream for gzipped files), or `no_offset`.
    [[nodiscard]] std::size_t offset() const noexcept { return offset_; }

private:
    std::filesystem::path file_;
    std::size_t offset_;
};

/// A dataset directory or file that does not exist; the message says how to install it.
class dataset_not_found_error : public dataset_error {
public:
    using dataset_error::dataset_error;
};

/// An argument outside its accepted range.
class argument_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

/// Builds "FILE: byte offset N: expected E, found F" (the offset part is left out for `no_offset`).
inline std::string format_file_error(const std::filesystem::path& file, std::size_t offset,
                                     const std::string& expected, const std::string& found) {
    std::string msg = file.string();
    if (offset != no_offset) {
        msg += ": byte offset " + std::to_string(offset);
    }
    msg += ": expected " + expected + ", found " + found;
    return msg;
}

/// Throws `dataset_error` with the message of `format_file_error`.
[[noreturn]] inline void throw_file_error(const std::filesystem::path& file, std::size_t offset,
                                          const std::string& expected, const std::string& found) {
    throw dataset_error(file, offset, format_file_error(file, offset, expected, found));
}

}  // namespace detail
}  // namespace cdgan::data
