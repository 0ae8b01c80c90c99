#pragma once
/// @file
/// Errors of `cdgan::io` and the write-to-temporary-then-rename helper every writer uses.
///
/// What this represents:
///   - `io_error`: a file that cannot be written or read (open, write, rename failures). The
///     message names the file and the operation.
///   - `format_error`: a file whose content is not what the format requires (safetensors header
///     length beyond the file, tensor offsets out of range, dtype / shape that disagree with the
///     byte size, bad npy header...). The message names the file, the tensor when there is one,
///     the byte offset, and what was expected versus found. `file()`, `tensor()` and `offset()`
///     give the same facts to programs.
///   - `atomic_file_writer`: writes to `path + ".tmp"` and, on `commit()`, closes it and renames it
///     over `path` (std::filesystem::rename, atomic on POSIX within one file system), so a crash or
///     an error while writing never destroys a file saved before. Without `commit()` the
///     temporary file is removed.
/// Requires: the directory of `path` exists and is writable.
/// Ensures: errors derive from `std::runtime_error`.

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace cdgan::io {

/// Offset value meaning "no particular byte offset".
inline constexpr std::size_t no_offset = std::numeric_limits<std::size_t>::max();

/// A file that cannot be opened, written, renamed or read.
class io_error : public std::runtime_error {
public:
    io_error(std::filesystem::path file, const std::string& message)
        : std::runtime_error(message), file_(std::move(file)) {}
    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

private:
    std::filesystem::path file_;
};

/// A file whose content breaks its format.
class format_error : public io_error {
public:
    format_error(std::filesystem::path file, std::string tensor, std::size_t offset,
                 const std::string& expected, const std::string& found)
        : io_error(file, make_message(file, tensor, offset, expected, found)),
          tensor_(std::move(tensor)),
          offset_(offset) {}
    /// Name of the tensor concerned, or empty.
    [[nodiscard]] const std::string& tensor() const noexcept { return tensor_; }
    /// Byte offset of the problem, or `no_offset`.
    [[nodiscard]] std::size_t offset() const noexcept { return offset_; }

    static std::string make_message(const std::filesystem::path& file, const std::string& tensor,
                                    std::size_t offset, const std::string& expected,
                                    const std::string& found) {
        std::string m = file.string();
        if (!tensor.empty()) m += ": tensor '" + tensor + "'";
        if (offset != no_offset) m += ": byte offset " + std::to_string(offset);
        m += ": expected " + expected + ", found " + found;
        return m;
    }

private:
    std::string tensor_;
    std::size_t offset_;
};

/// Writes `path + ".tmp"`, then renames it over `path` on commit().
class atomic_file_writer {
public:
    explicit atomic_file_writer(std::filesystem::path path)
        : path_(std::move(path)), tmp_(path_.string() + ".tmp") {
        out_.open(tmp_, std::ios::binary | std::ios::trunc);
        if (!out_) throw io_error(path_, tmp_.string() + ": cannot open for writing");
    }
    atomic_file_writer(const atomic_file_writer&) = delete;
    atomic_file_writer& operator=(const atomic_file_writer&) = delete;
    ~atomic_file_writer() {
        if (!committed_) {
            out_.close();
            std::error_code ec;
            std::filesystem::remove(tmp_, ec);
        }
    }

    /// Appends bytes.
    void write(const void* data, std::size_t size) {
        out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
        if (!out_) throw io_error(path_, tmp_.string() + ": write failed (disk full?)");
    }
    void write(std::span<const std::byte> bytes) { write(bytes.data(), bytes.size()); }
    void write(const std::string& s) { write(s.data(), s.size()); }

    /// Closes the temporary file and renames it over the target.
    void commit() {
        out_.flush();
        out_.close();
        if (out_.fail()) throw io_error(path_, tmp_.string() + ": closing failed (disk full?)");
        std::error_code ec;
        std::filesystem::rename(tmp_, path_, ec);
        if (ec) {
            throw io_error(path_, "cannot rename " + tmp_.string() + " to " + path_.string() + ": " +
                                      ec.message());
        }
        committed_ = true;
    }

private:
    std::filesystem::path path_;
    std::filesystem::path tmp_;
    std::ofstream out_;
    bool committed_ = false;
};

namespace detail {

/// Reads a whole file (for the readers of this folder).
inline std::string read_whole_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error(path, path.string() + ": cannot open for reading");
    std::string s;
    in.seekg(0, std::ios::end);
    const auto size = in.tellg();
    if (size < 0) throw io_error(path, path.string() + ": cannot read the file size");
    s.resize(static_cast<std::size_t>(size));
    in.seekg(0, std::ios::beg);
    in.read(s.data(), static_cast<std::streamsize>(s.size()));
    if (static_cast<std::size_t>(in.gcount()) != s.size()) {
        throw io_error(path, path.string() + ": short read");
    }
    return s;
}

}  // namespace detail
}  // namespace cdgan::io
