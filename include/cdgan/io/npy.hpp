#pragma once
/// @file
/// NumPy .npy writer (and a small reader for the same files).
///
/// What this represents: the .npy format version 1.0: the magic "\x93NUMPY", the version bytes
///   01 00, a little-endian uint16 header length, then an ASCII Python dict literal
///   `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and ended by
///   '\n' so that the data starts at a multiple of 64 bytes, then the elements, C order,
///   little-endian.
///   - `write_npy(path, values, shape)`  float32 ('<f4'), float64 ('<f8'), int64 ('<i8'),
///     int32 ('<i4'), uint8 ('|u1'); written to `path + ".tmp"` and renamed over `path`;
///   - `read_npy(path)`                  reads such a file back (any of those dtypes, C order).
/// Requires: product(shape) == values.size() (shape {} is a scalar: one value).
/// Ensures: numpy.load reads the file to an array of that dtype and shape. Bad files throw
///   `format_error` naming the file, the byte offset and expected versus found.

#include <cdgan/io/error.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace cdgan::io {

/// The .npy descr of a supported element type.
template <class T>
constexpr std::string_view npy_descr() noexcept {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, float>) return "<f4";
    else if constexpr (std::is_same_v<U, double>) return "<f8";
    else if constexpr (std::is_same_v<U, std::int64_t>) return "<i8";
    else if constexpr (std::is_same_v<U, std::int32_t>) return "<i4";
    else if constexpr (std::is_same_v<U, std::uint8_t>) return "|u1";
    else static_assert(sizeof(U) == 0, "write_npy: supported types are float, double, int64, int32, uint8");
}

namespace detail {

inline std::string npy_header(std::string_view descr, std::span<const std::size_t> shape) {
    std::string dict = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        dict += std::to_string(shape[i]);
        if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
        if (i + 1 < shape.size()) dict += " ";
    }
    dict += "), }";
    // magic (6) + version (2) + length (2) + dict + padding + '\n' == multiple of 64
    std::size_t total = 10 + dict.size() + 1;
    const std::size_t pad = (64 - total % 64) % 64;
    dict.append(pad, ' ');
    dict.push_back('\n');
    std::string out("\x93NUMPY\x01\x00", 8);
    const auto len = static_cast<std::uint16_t>(dict.size());
    out.push_back(static_cast<char>(len & 0xffu));
    out.push_back(static_cast<char>(len >> 8));
    return out + dict;
}

}  // namespace detail

/// Writes values with the given shape as a .npy file (temp file + rename).
template <class T>
void write_npy(const std::filesystem::path& path, std::span<const T> values,
               std::span<const std::size_t> shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    if (n != values.size()) {
        throw io_error(path, path.string() + ": write_npy: shape holds " + std::to_string(n) +
                                 " elements, got " + std::to_string(values.size()) + " values");
    }
    const std::string header = detail::npy_header(npy_descr<T>(), shape);
    if (header.size() > 65535 + 10) throw io_error(path, path.string() + ": npy header too long");
    atomic_file_writer out(path);
    out.write(header);
    if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
        out.write(values.data(), values.size() * sizeof(T));
    } else {
        std::vector<std::byte> buf(values.size() * sizeof(T));
        const auto* src = reinterpret_cast<const std::byte*>(values.data());
        for (std::size_t i = 0; i < values.size(); ++i) {
            for (std::size_t b = 0; b < sizeof(T); ++b) buf[i * sizeof(T) + b] = src[i * sizeof(T) + sizeof(T) - 1 - b];
        }
        out.write(std::span<const std::byte>(buf));
    }
    out.commit();
}

/// Container convenience: write_npy(path, std::vector<float>{...}, {2, 3}).
template <class C>
    requires requires(const C& c) {  // not std::span(c): nvcc 13 cannot deduce that in a requires-clause
        typename C::value_type;
        { c.data() } -> std::convertible_to<const typename C::value_type*>;
        { c.size() } -> std::convertible_to<std::size_t>;
    }
void write_npy(const std::filesystem::path& path, const C& values, std::vector<std::size_t> shape) {
    write_npy(path, std::span<const typename C::value_type>(values), std::span<const std::size_t>(shape));
}

/// A .npy file read back.
struct npy_array {
    std::string descr;               ///< e.g. "<f4"
    std::vector<std::size_t> shape;
    std::vector<std::byte> bytes;    ///< little-endian elements, C order

    /// The elements as T. Requires: npy_descr<T>() == descr.
    template <class T>
    [[nodiscard]] std::vector<T> values() const {
        if (npy_descr<T>() != descr) {
            throw io_error({}, "npy_array::values: the array's descr is '" + descr +
                                   "', requested '" + std::string(npy_descr<T>()) + "'");
        }
        std::vector<T> out(bytes.size() / sizeof(T));
        if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
            if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
        } else {
            auto* dst = reinterpret_cast<std::byte*>(out.data());
            for (std::size_t i = 0; i < out.size(); ++i) {
                for (std::size_t b = 0; b < sizeof(T); ++b) dst[i * sizeof(T) + b] = bytes[i * sizeof(T) + sizeof(T) - 1 - b];
            }
        }
        return out;
    }
};

/// Reads a version 1.0 / 2.0 .npy file written in C order with one of the supported dtypes.
inline npy_array read_npy(const std::filesystem::path& path) {
    const std::string raw = detail::read_whole_file(path);
    if (raw.size() < 10 || raw.compare(0, 6, "\x93NUMPY") != 0) {
        throw format_error(path, "", 0, "the .npy magic \\x93NUMPY", "something else");
    }
    const auto major = static_cast<unsigned char>(raw[6]);
    std::size_t hlen = 0, start = 0;
    if (major == 1) {
        hlen = static_cast<unsigned char>(raw[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(raw[9])) << 8);
        start = 10;
    } else if (major == 2 || major == 3) {
        if (raw.size() < 12) throw format_error(path, "", raw.size(), "a 4-byte header length", "end of file");
        for (int b = 3; b >= 0; --b) hlen = (hlen << 8) | static_cast<unsigned char>(raw[8 + static_cast<std::size_t>(b)]);
        start = 12;
    } else {
        throw format_error(path, "", 6, "version 1, 2 or 3", std::to_string(major));
    }
    if (start + hlen > raw.size()) {
        throw format_error(path, "", start, std::to_string(hlen) + " header bytes",
                           "end of file after " + std::to_string(raw.size() - start));
    }
    const std::string dict = raw.substr(start, hlen);
    npy_array a;
    auto field = [&](std::string_view key) -> std::size_t {
        const auto p = dict.find("'" + std::string(key) + "'");
        if (p == std::string::npos) {
            throw format_error(path, "", start, "the key '" + std::string(key) + "' in the header", dict);
        }
        return dict.find(':', p) + 1;
    };
    std::size_t p = dict.find('\'', field("descr"));
    const std::size_t q = dict.find('\'', p + 1);
    a.descr = dict.substr(p + 1, q - p - 1);
    p = field("fortran_order");
    while (p < dict.size() && dict[p] == ' ') ++p;
    if (dict.compare(p, 5, "False") != 0) {
        throw format_error(path, "", start + p, "fortran_order False", dict.substr(p, 5));
    }
    p = dict.find('(', field("shape"));
    const std::size_t e = dict.find(')', p);
    std::string dims = dict.substr(p + 1, e - p - 1);
    std::size_t pos = 0;
    while (pos < dims.size()) {
        while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
        if (pos >= dims.size()) break;
        std::size_t used = 0;
        a.shape.push_back(static_cast<std::size_t>(std::stoull(dims.substr(pos), &used)));
        pos += used;
    }
    std::size_t esz = 0;
    if (a.descr == "<f4" || a.descr == "<i4") esz = 4;
    else if (a.descr == "<f8" || a.descr == "<i8") esz = 8;
    else if (a.descr == "|u1") esz = 1;
    else throw format_error(path, "", start, "descr <f4, <f8, <i8, <i4 or |u1", "'" + a.descr + "'");
    std::size_t n = 1;
    for (auto d : a.shape) n *= d;
    const std::size_t data = start + hlen;
    if (raw.size() - data != n * esz) {
        throw format_error(path, "", data, std::to_string(n * esz) + " data bytes", std::to_string(raw.size() - data));
    }
    const auto* src = reinterpret_cast<const std::byte*>(raw.data() + data);
    a.bytes.assign(src, src + n * esz);
    return a;
}

}  // namespace cdgan::io
