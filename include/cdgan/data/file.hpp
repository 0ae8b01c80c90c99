#pragma once
/// @file
/// Reading a whole data file into memory, gunzipping it when it starts with the gzip magic bytes.
///
/// What this represents: `read_file_bytes(path)` returns the bytes of a file; if the file begins
///   with 1f 8b (gzip), the bytes returned are the decompressed stream (zlib's gzread), and
///   `file_bytes::gzipped` is true. Byte offsets in error messages of the readers built on this
///   refer to the returned (decompressed) bytes.
/// Requires: `path` names a regular file. Link with zlib (`-lz`, CMake `ZLIB::ZLIB`).
/// Ensures: throws `dataset_not_found_error` for a missing file, `dataset_error` for an unreadable
///   file or a corrupt / truncated gzip stream (the message gives the decompressed byte offset
///   reached and zlib's own description).

#include <cdgan/data/error.hpp>

#include <zlib.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace cdgan::data {

/// The bytes of a file (decompressed when it was gzipped).
struct file_bytes {
    std::vector<std::uint8_t> bytes;
    bool gzipped = false;
};

namespace detail {

inline bool starts_with_gzip_magic(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    unsigned char magic[2] = {0, 0};
    in.read(reinterpret_cast<char*>(magic), 2);
    return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

inline std::vector<std::uint8_t> read_plain(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw dataset_error(path, no_offset, path.string() + ": cannot open file for reading");
    }
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) {
        throw dataset_error(path, no_offset,
                            path.string() + ": cannot read the file size: " + ec.message());
    }
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (static_cast<std::size_t>(in.gcount()) != bytes.size()) {
        throw_file_error(path, static_cast<std::size_t>(in.gcount()),
                         std::to_string(bytes.size()) + " bytes (the file size)",
                         "end of file after " + std::to_string(in.gcount()) + " bytes");
    }
    return bytes;
}

inline std::vector<std::uint8_t> read_gzip(const std::filesystem::path& path) {
    gzFile f = gzopen(path.string().c_str(), "rb");
    if (f == nullptr) {
        throw dataset_error(path, no_offset, path.string() + ": cannot open gzip file for reading");
    }
    gzbuffer(f, 1u << 17);
    std::vector<std::uint8_t> bytes;
    constexpr std::size_t chunk = std::size_t{1} << 20;
    for (;;) {
        const std::size_t old = bytes.size();
        bytes.resize(old + chunk);
        const int n = gzread(f, bytes.data() + old, static_cast<unsigned>(chunk));
        if (n < 0) {
            int errnum = 0;
            const std::string what = gzerror(f, &errnum);
            gzclose(f);
            throw_file_error(path, old, "a valid gzip stream (offset in the decompressed data)",
                             "zlib error '" + what + "'");
        }
        bytes.resize(old + static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < chunk) break;
    }
    int errnum = Z_OK;
    const std::string what = gzerror(f, &errnum);
    const int close_rc = gzclose(f);
    if ((errnum != Z_OK && errnum != Z_STREAM_END) || close_rc != Z_OK) {
        throw_file_error(path, bytes.size(),
                         "a complete gzip stream (offset in the decompressed data)",
                         "a truncated or corrupt stream (zlib: '" +
                             (what.empty() ? std::string("unexpected end of file") : what) + "')");
    }
    return bytes;
}

}  // namespace detail

/// Reads the whole file, gunzipping it if it starts with 1f 8b. See the file comment.
inline file_bytes read_file_bytes(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        throw dataset_not_found_error(path, no_offset, path.string() + ": no such file");
    }
    if (detail::starts_with_gzip_magic(path)) {
        return {detail::read_gzip(path), true};
    }
    return {detail::read_plain(path), false};
}

}  // namespace cdgan::data
