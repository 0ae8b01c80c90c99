#pragma once
/// @file
/// Writer and reader of the safetensors format (Hugging Face), used for cdgan checkpoints.
///
/// What this represents: a safetensors file is
///     [8 bytes]  N, the header length, unsigned 64-bit little-endian;
///     [N bytes]  a UTF-8 JSON object: for each tensor name,
///                  {"dtype": "F32"|"F64"|"F16"|"BF16"|"I64"|"I32"|"I16"|"I8"|"U64"|"U32"|"U16"|
///                            "U8"|"BOOL", "shape": [d0, d1, ...], "data_offsets": [begin, end]},
///                and optionally "__metadata__": {string: string};
///                padded with spaces so that 8 + N is a multiple of 8;
///     [rest]     the byte buffer: each tensor's elements, row-major, little-endian, at
///                [begin, end) relative to the start of the buffer; the tensors tile the buffer
///                with no gap and no overlap.
///   - `safetensors_writer`: collects views of tensors (`add(name, values, shape)`, no copy) and
///     metadata, and `save(path)` writes them (larger dtypes first so that each tensor is aligned
///     to its element size, otherwise in the order added) to `path + ".tmp"`, then renames
///     it over `path`, so a checkpoint saved before is never lost to a failed write.
///   - `load_safetensors(path)`: reads and validates a file into `safetensors_file` (owning).
///   - `tensor_entry::values<T>()`: the elements as std::vector<T>, T matching the dtype.
/// Requires: the values given to `add` stay alive until `save` (passing a temporary container is
///   a compile-time error); product(shape) == values.size().
///   Uses nlohmann-json (`nlohmann/json.hpp`).
/// Ensures: `load_safetensors(save(x)) == x` for every dtype. A file whose header length runs
///   beyond the file, whose JSON is malformed, whose dtype is unknown, whose data_offsets fall
///   outside the buffer, overlap or leave gaps, or whose byte size disagrees with dtype x shape
///   throws `format_error`, naming the file, the tensor and the byte offset. Open / write / rename
///   failures throw `io_error`.

#include <cdgan/io/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cdgan::io {

/// Element types of safetensors.
enum class dtype : std::uint8_t { f64, f32, f16, bf16, i64, i32, i16, i8, u64, u32, u16, u8, boolean };

/// The safetensors name of a dtype ("F32", ...).
constexpr std::string_view dtype_name(dtype t) noexcept {
    switch (t) {
        case dtype::f64: return "F64";
        case dtype::f32: return "F32";
        case dtype::f16: return "F16";
        case dtype::bf16: return "BF16";
        case dtype::i64: return "I64";
        case dtype::i32: return "I32";
        case dtype::i16: return "I16";
        case dtype::i8: return "I8";
        case dtype::u64: return "U64";
        case dtype::u32: return "U32";
        case dtype::u16: return "U16";
        case dtype::u8: return "U8";
        case dtype::boolean: return "BOOL";
    }
    return "?";
}

/// Bytes per element.
constexpr std::size_t dtype_size(dtype t) noexcept {
    switch (t) {
        case dtype::f64: case dtype::i64: case dtype::u64: return 8;
        case dtype::f32: case dtype::i32: case dtype::u32: return 4;
        case dtype::f16: case dtype::bf16: case dtype::i16: case dtype::u16: return 2;
        case dtype::i8: case dtype::u8: case dtype::boolean: return 1;
    }
    return 0;
}

/// The dtype named `s`, if any.
inline std::optional<dtype> parse_dtype(std::string_view s) noexcept {
    for (auto t : {dtype::f64, dtype::f32, dtype::f16, dtype::bf16, dtype::i64, dtype::i32,
                   dtype::i16, dtype::i8, dtype::u64, dtype::u32, dtype::u16, dtype::u8,
                   dtype::boolean}) {
        if (dtype_name(t) == s) return t;
    }
    return std::nullopt;
}

/// The dtype of a C++ element type.
template <class T>
constexpr dtype dtype_of() noexcept {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, double>) return dtype::f64;
    else if constexpr (std::is_same_v<U, float>) return dtype::f32;
    else if constexpr (std::is_same_v<U, bool>) return dtype::boolean;
    else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 8) return dtype::i64;
    else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 4) return dtype::i32;
    else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 2) return dtype::i16;
    else if constexpr (std::is_integral_v<U> && std::is_signed_v<U> && sizeof(U) == 1) return dtype::i8;
    else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 8) return dtype::u64;
    else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 4) return dtype::u32;
    else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 2) return dtype::u16;
    else if constexpr (std::is_integral_v<U> && std::is_unsigned_v<U> && sizeof(U) == 1) return dtype::u8;
    else static_assert(sizeof(U) == 0, "cdgan::io::dtype_of: no safetensors dtype for this type");
}

namespace detail {

/// Copies n elements of `size` bytes each, reversing each element's bytes on big-endian hosts.
inline void copy_little_endian(std::byte* dst, const std::byte* src, std::size_t n, std::size_t size) {
    if constexpr (std::endian::native == std::endian::little) {
        if (n * size != 0) std::memcpy(dst, src, n * size);
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t b = 0; b < size; ++b) dst[i * size + b] = src[i * size + size - 1 - b];
        }
    }
}

inline std::string shape_text(std::span<const std::size_t> shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

inline std::size_t numel(std::span<const std::size_t> shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

}  // namespace detail

/// One tensor read from a file (owning).
struct tensor_entry {
    io::dtype type = dtype::f32;
    std::vector<std::size_t> shape;
    std::vector<std::byte> bytes;  ///< little-endian, as in the file

    [[nodiscard]] std::size_t numel() const { return detail::numel(shape); }

    /// The elements as T. Requires: dtype_of<T>() == type (else format_error-free io_error).
    template <class T>
    [[nodiscard]] std::vector<T> values() const {
        if (dtype_of<T>() != type) {
            throw io_error({}, "tensor_entry::values: the tensor's dtype is " +
                                   std::string(dtype_name(type)) + ", requested " +
                                   std::string(dtype_name(dtype_of<T>())));
        }
        std::vector<T> out(numel());
        detail::copy_little_endian(reinterpret_cast<std::byte*>(out.data()), bytes.data(), out.size(),
                                   sizeof(T));
        return out;
    }
};

/// The contents of a safetensors file.
struct safetensors_file {
    std::map<std::string, tensor_entry> tensors;
    std::map<std::string, std::string> metadata;
};

/// Collects tensor views and metadata, then writes them (see the file comment).
class safetensors_writer {
public:
    /// Adds a tensor view. Requires: product(shape) == values.size(); a new, non-empty name that
    /// is not "__metadata__". The span must stay alive until save().
    template <class T>
    void add(std::string name, std::span<const T> values, std::vector<std::size_t> shape) {
        static_assert(std::is_arithmetic_v<T>, "safetensors_writer::add: arithmetic element types only");
        add_raw(std::move(name), dtype_of<T>(), std::move(shape),
                std::as_bytes(values), sizeof(T));
    }
    /// Container convenience (std::vector<float>...).
    template <class C>
        requires requires(const C& c) { std::span(c); }
    void add(std::string name, const C& values, std::vector<std::size_t> shape) {
        add(std::move(name), std::span<const typename C::value_type>(values), std::move(shape));
    }
    /// Temporaries would dangle before save(): adding one is a compile-time error.
    template <class C>
        requires(!std::is_lvalue_reference_v<C> && requires(const C& c) { std::span(c); })
    void add(std::string name, C&& values, std::vector<std::size_t> shape) = delete;
    /// Adds raw elements (e.g. F16 / BF16 bits) of the given dtype, in host byte order.
    void add_raw(std::string name, io::dtype type, std::vector<std::size_t> shape,
                 std::span<const std::byte> bytes, std::size_t element_size = 0) {
        if (element_size == 0) element_size = dtype_size(type);
        if (element_size != dtype_size(type)) {
            throw io_error({}, "safetensors_writer: tensor '" + name + "': dtype " +
                                   std::string(dtype_name(type)) + " needs " +
                                   std::to_string(dtype_size(type)) + "-byte elements, got " +
                                   std::to_string(element_size));
        }
        if (name.empty() || name == "__metadata__") {
            throw io_error({}, "safetensors_writer: tensor name must be non-empty and not "
                               "\"__metadata__\", got \"" + name + "\"");
        }
        for (const auto& e : entries_) {
            if (e.name == name) {
                throw io_error({}, "safetensors_writer: tensor '" + name + "' added twice");
            }
        }
        const std::size_t n = detail::numel(shape);
        if (n * dtype_size(type) != bytes.size()) {
            throw io_error({}, "safetensors_writer: tensor '" + name + "': shape " +
                                   detail::shape_text(shape) + " of " +
                                   std::string(dtype_name(type)) + " needs " +
                                   std::to_string(n * dtype_size(type)) + " bytes, got " +
                                   std::to_string(bytes.size()));
        }
        entries_.push_back({std::move(name), type, std::move(shape), bytes});
    }
    /// Sets a metadata string (the "__metadata__" object).
    void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

    /// Number of tensors added.
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

    /// Writes the file: path + ".tmp", then rename over path.
    void save(const std::filesystem::path& path) const {
        nlohmann::ordered_json header = nlohmann::ordered_json::object();
        if (!metadata_.empty()) {
            nlohmann::ordered_json md = nlohmann::ordered_json::object();
            for (const auto& [k, v] : metadata_) md[k] = v;
            header["__metadata__"] = md;
        }
        // Larger elements first (stable otherwise), so that every tensor starts at a multiple of
        // its element size (the header is padded to 8 bytes), as the reference writer does.
        std::vector<const entry*> order;
        for (const auto& e : entries_) order.push_back(&e);
        std::stable_sort(order.begin(), order.end(), [](const entry* a, const entry* b) {
            return dtype_size(a->type) > dtype_size(b->type);
        });
        std::uint64_t offset = 0;
        for (const entry* ep : order) {
            const entry& e = *ep;
            const std::uint64_t end = offset + e.bytes.size();
            header[e.name] = {{"dtype", std::string(dtype_name(e.type))},
                              {"shape", e.shape},
                              {"data_offsets", {offset, end}}};
            offset = end;
        }
        std::string text = header.dump();
        while ((8 + text.size()) % 8 != 0) text.push_back(' ');
        std::byte len[8];
        const std::uint64_t n = text.size();
        for (int b = 0; b < 8; ++b) len[b] = static_cast<std::byte>((n >> (8 * b)) & 0xffu);
        atomic_file_writer out(path);
        out.write(len, 8);
        out.write(text);
        std::vector<std::byte> buf;
        for (const entry* ep : order) {
            const entry& e = *ep;
            if constexpr (std::endian::native == std::endian::little) {
                out.write(e.bytes);
            } else {
                buf.resize(e.bytes.size());
                const std::size_t sz = dtype_size(e.type);
                detail::copy_little_endian(buf.data(), e.bytes.data(), e.bytes.size() / sz, sz);
                out.write(std::span<const std::byte>(buf));
            }
        }
        out.commit();
    }

private:
    struct entry {
        std::string name;
        io::dtype type;
        std::vector<std::size_t> shape;
        std::span<const std::byte> bytes;
    };
    std::vector<entry> entries_;
    std::map<std::string, std::string> metadata_;
};

/// Writes `file` (all its tensors and metadata) to `path`, via path + ".tmp" and a rename.
inline void save_safetensors(const std::filesystem::path& path, const safetensors_file& file) {
    safetensors_writer w;
    // The entries hold file (little-endian) bytes while add_raw takes host-order bytes: on
    // big-endian hosts convert a copy first (save() converts back to little-endian).
    std::vector<std::vector<std::byte>> host;
    host.reserve(file.tensors.size());
    for (const auto& [name, t] : file.tensors) {
        if constexpr (std::endian::native == std::endian::little) {
            w.add_raw(name, t.type, t.shape, t.bytes);
        } else {
            const std::size_t sz = dtype_size(t.type);
            auto& b = host.emplace_back(t.bytes.size());
            detail::copy_little_endian(b.data(), t.bytes.data(), b.size() / sz, sz);
            w.add_raw(name, t.type, t.shape, b);
        }
    }
    for (const auto& [k, v] : file.metadata) w.set_metadata(k, v);
    w.save(path);
}

/// Reads and validates a safetensors file (see the file comment).
inline safetensors_file load_safetensors(const std::filesystem::path& path) {
    const std::string raw = detail::read_whole_file(path);
    const std::size_t size = raw.size();
    if (size < 8) {
        throw format_error(path, "", size, "an 8-byte little-endian header length",
                           "end of file (the file has " + std::to_string(size) + " bytes)");
    }
    std::uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = (n << 8) | static_cast<unsigned char>(raw[static_cast<std::size_t>(b)]);
    if (n > size - 8) {
        throw format_error(path, "", 0,
                           "a header length of at most " + std::to_string(size - 8) +
                               " bytes (the file has " + std::to_string(size) + " bytes)",
                           std::to_string(n) + " (the header runs beyond the file)");
    }
    const std::size_t data_start = 8 + static_cast<std::size_t>(n);
    const std::size_t data_size = size - data_start;
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(raw.begin() + 8, raw.begin() + static_cast<std::ptrdiff_t>(data_start));
    } catch (const nlohmann::json::parse_error& e) {
        throw format_error(path, "", 8 + (e.byte > 0 ? e.byte - 1 : 0), "a valid JSON header",
                           std::string("a JSON syntax error (") + e.what() + ")");
    }
    if (!header.is_object()) {
        throw format_error(path, "", 8, "a JSON object as header",
                           std::string("a JSON ") + header.type_name());
    }
    safetensors_file out;
    struct span_info {
        std::size_t begin, end;
        std::string name;
    };
    std::vector<span_info> spans;
    for (const auto& [name, value] : header.items()) {
        if (name == "__metadata__") {
            if (!value.is_object()) {
                throw format_error(path, "__metadata__", 8, "an object of strings",
                                   std::string("a JSON ") + value.type_name());
            }
            for (const auto& [k, v] : value.items()) {
                if (!v.is_string()) {
                    throw format_error(path, "__metadata__", 8,
                                       "a string value for metadata key '" + k + "'",
                                       std::string("a JSON ") + v.type_name());
                }
                out.metadata[k] = v.get<std::string>();
            }
            continue;
        }
        if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
            !value.contains("data_offsets")) {
            throw format_error(path, name, 8, "an object with dtype, shape and data_offsets",
                               value.dump());
        }
        const auto& jd = value["dtype"];
        const auto type = jd.is_string() ? parse_dtype(jd.get<std::string>()) : std::nullopt;
        if (!type) {
            throw format_error(path, name, 8,
                               "a dtype among F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL",
                               jd.dump());
        }
        tensor_entry t;
        t.type = *type;
        const auto& js = value["shape"];
        if (!js.is_array()) throw format_error(path, name, 8, "a shape array", js.dump());
        for (const auto& d : js) {
            if (!d.is_number_unsigned()) {
                throw format_error(path, name, 8, "non-negative integer dimensions in shape", js.dump());
            }
            t.shape.push_back(d.get<std::size_t>());
        }
        const auto& jo = value["data_offsets"];
        if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() ||
            !jo[1].is_number_unsigned()) {
            throw format_error(path, name, 8, "data_offsets [begin, end] of two non-negative integers",
                               jo.dump());
        }
        const auto begin = jo[0].get<std::uint64_t>();
        const auto end = jo[1].get<std::uint64_t>();
        if (begin > end || end > data_size) {
            throw format_error(path, name, data_start + std::min<std::uint64_t>(begin, data_size),
                               "data_offsets within the " + std::to_string(data_size) +
                                   "-byte data buffer (which starts at byte offset " +
                                   std::to_string(data_start) + ")",
                               "[" + std::to_string(begin) + ", " + std::to_string(end) + "]");
        }
        // numel * size with overflow check
        std::size_t count = 1;
        bool overflow = false;
        for (auto d : t.shape) {
            if (d != 0 && count > static_cast<std::size_t>(-1) / d) overflow = true;
            count *= d;
        }
        const std::size_t esz = dtype_size(t.type);
        if (overflow || count > static_cast<std::size_t>(-1) / esz || count * esz != end - begin) {
            throw format_error(path, name, data_start + begin,
                               (overflow ? std::string("a representable size")
                                         : std::to_string(count * esz) + " bytes for dtype " +
                                               std::string(dtype_name(t.type)) + " and shape " +
                                               detail::shape_text(t.shape)),
                               std::to_string(end - begin) + " bytes (data_offsets [" +
                                   std::to_string(begin) + ", " + std::to_string(end) + "])");
        }
        const auto* src = reinterpret_cast<const std::byte*>(raw.data() + data_start + begin);
        t.bytes.assign(src, src + (end - begin));
        spans.push_back({static_cast<std::size_t>(begin), static_cast<std::size_t>(end), name});
        out.tensors.emplace(name, std::move(t));
    }
    std::sort(spans.begin(), spans.end(), [](const span_info& a, const span_info& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::size_t expect = 0;
    for (const auto& s : spans) {
        if (s.begin != expect) {
            throw format_error(path, s.name, data_start + s.begin,
                               "the tensor to start at buffer offset " + std::to_string(expect) +
                                   " (tensors must tile the buffer without gaps or overlaps)",
                               "data_offsets [" + std::to_string(s.begin) + ", " +
                                   std::to_string(s.end) + "]" +
                                   (s.begin < expect ? " (overlap)" : " (gap)"));
        }
        expect = s.end;
    }
    if (expect != data_size) {
        throw format_error(path, "", data_start + expect,
                           "end of file after the last tensor (buffer offset " +
                               std::to_string(expect) + ")",
                           std::to_string(data_size - expect) + " more bytes not covered by any tensor");
    }
    return out;
}

}  // namespace cdgan::io
