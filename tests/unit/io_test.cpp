// Tests of include/cdgan/io/{safetensors,npy,png}.hpp: round trips, corrupt-file errors, header
// bytes, atomic (temporary file + rename) writes.
#include <doctest/doctest.h>

#include <cdgan/io/npy.hpp>
#include <cdgan/io/png.hpp>
#include <cdgan/io/safetensors.hpp>

#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace io = cdgan::io;

struct temp_dir {
    fs::path path;
    explicit temp_dir(const std::string& tag) {
        const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
        path = fs::temp_directory_path() / ("cdgan_" + tag + "_" + std::to_string(t));
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::string& s) {
    std::ofstream out(p, std::ios::binary);
    out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

std::uint32_t be32(const std::string& s, std::size_t at) {
    return (std::uint32_t{static_cast<unsigned char>(s[at])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 2])} << 8) |
           std::uint32_t{static_cast<unsigned char>(s[at + 3])};
}

/// A safetensors file by hand: header JSON + data bytes.
std::string make_safetensors(const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    const std::uint64_t n = header.size();
    for (int b = 0; b < 8; ++b) out[static_cast<std::size_t>(b)] = static_cast<char>((n >> (8 * b)) & 0xff);
    return out + header + data;
}

std::string load_error(const fs::path& p) {
    try {
        (void)io::load_safetensors(p);
    } catch (const io::format_error& e) {
        return e.what();
    }
    return "";
}

/// The values the python check (tests/python/read_safetensors.py --expect-cdgan-test) expects.
void write_python_check_file(const fs::path& p) {
    std::vector<float> weight(6);
    for (std::size_t i = 0; i < 6; ++i) weight[i] = static_cast<float>(i) * 0.5f - 1.0f;
    const std::vector<std::int64_t> step = {1234, -5};
    const std::vector<std::uint8_t> mask = {0, 1, 254, 255};
    const std::vector<double> scalar = {3.25};
    io::safetensors_writer w;
    w.add("generator.dense.weight", weight, {2, 3});
    w.add("step", step, {2});
    w.add("mask", mask, {4});
    w.add("scalar", scalar, {});
    w.set_metadata("format", "cdgan");
    w.set_metadata("note", "written by io_test.cpp");
    w.save(p);
}

template <class W, class C>
concept can_add = requires(W w, C&& c) { w.add("x", std::forward<C>(c), std::vector<std::size_t>{1}); };
// A temporary container would dangle before save(): rejected at compile time.
static_assert(!can_add<io::safetensors_writer, std::vector<float>>);
static_assert(can_add<io::safetensors_writer, std::vector<float>&>);
static_assert(can_add<io::safetensors_writer, const std::vector<float>&>);

}  // namespace

TEST_CASE("safetensors: round trip of several dtypes and metadata") {
    temp_dir dir("st_round");
    const auto p = dir.path / "ckpt.safetensors";
    std::vector<float> w(2 * 3 * 4);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) / 7.0f - 1.0f;
    const std::vector<std::int64_t> steps = {-1, 0, 1LL << 40};
    const std::vector<std::uint8_t> bytes = {1, 2, 3};
    const std::vector<double> d = {3.141592653589793};
    const std::vector<std::int32_t> i32 = {-7, 7};
    io::safetensors_writer wr;
    wr.add("w", w, {2, 3, 4});
    wr.add("steps", steps, {3});
    wr.add("bytes", bytes, {3});
    wr.add("pi", d, {});
    wr.add("i32", std::span<const std::int32_t>(i32), {1, 2});
    const std::vector<float> none;
    wr.add("empty", none, {0, 5});
    wr.set_metadata("epoch", "12");
    CHECK(wr.size() == 6);
    wr.save(p);
    CHECK(fs::exists(p));
    CHECK(!fs::exists(dir.path / "ckpt.safetensors.tmp"));

    const auto raw = read_all(p);
    std::uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = (n << 8) | static_cast<unsigned char>(raw[static_cast<std::size_t>(b)]);
    CHECK((8 + n) % 8 == 0);  // header padded to 8 bytes
    CHECK(raw[8] == '{');

    const auto f = io::load_safetensors(p);
    CHECK(f.metadata.at("epoch") == "12");
    CHECK(f.tensors.size() == 6);
    CHECK(f.tensors.at("w").type == io::dtype::f32);
    CHECK(f.tensors.at("w").shape == std::vector<std::size_t>{2, 3, 4});
    CHECK(f.tensors.at("w").values<float>() == w);
    CHECK(f.tensors.at("steps").values<std::int64_t>() == steps);
    CHECK(f.tensors.at("bytes").values<std::uint8_t>() == bytes);
    CHECK(f.tensors.at("pi").values<double>() == d);
    CHECK(f.tensors.at("pi").shape.empty());
    CHECK(f.tensors.at("i32").values<std::int32_t>() == i32);
    CHECK(f.tensors.at("empty").numel() == 0);
    CHECK_THROWS_AS((void)f.tensors.at("w").values<double>(), io::io_error);

    // save_safetensors(load(...)) reproduces the tensors
    const auto p2 = dir.path / "copy.safetensors";
    io::save_safetensors(p2, f);
    const auto g = io::load_safetensors(p2);
    CHECK(g.tensors.at("w").values<float>() == w);
    CHECK(g.metadata == f.metadata);

    // overwriting keeps working (rename over an existing file)
    io::safetensors_writer w2;
    const std::vector<float> one = {1.0f};
    w2.add("only", one, {1});
    w2.save(p);
    CHECK(io::load_safetensors(p).tensors.size() == 1);
}

TEST_CASE("safetensors: writer argument checks") {
    io::safetensors_writer w;
    const std::vector<float> v(6);
    CHECK_THROWS_AS(w.add("x", v, {2, 2}), io::io_error);
    CHECK_THROWS_AS(w.add("__metadata__", v, {6}), io::io_error);
    w.add("x", v, {6});
    CHECK_THROWS_AS(w.add("x", v, {6}), io::io_error);
}

TEST_CASE("safetensors: a failed write leaves the previous file intact") {
    temp_dir dir("st_atomic");
    const auto p = dir.path / "keep.safetensors";
    io::safetensors_writer w;
    const std::vector<float> a = {1, 2}, b = {3};
    w.add("a", a, {2});
    w.save(p);
    const auto before = read_all(p);
    // the temporary path is a directory: the write must fail, and the old file must survive
    fs::create_directories(dir.path / "keep.safetensors.tmp");
    io::safetensors_writer w2;
    w2.add("b", b, {1});
    CHECK_THROWS_AS(w2.save(p), io::io_error);
    CHECK(read_all(p) == before);
}

TEST_CASE("safetensors: corrupt files name the file, the tensor and the offset") {
    temp_dir dir("st_bad");
    const auto p = dir.path / "bad.safetensors";

    write_all(p, "abc");
    auto m = load_error(p);
    INFO(m);
    CHECK(m.find(p.string()) != std::string::npos);
    CHECK(m.find("byte offset 3") != std::string::npos);

    // header length beyond the file
    write_all(p, make_safetensors("{}", "").substr(0, 8) + "{}");
    {
        std::string s = read_all(p);
        s[0] = static_cast<char>(200);
        write_all(p, s);
    }
    m = load_error(p);
    INFO(m);
    CHECK(m.find("byte offset 0") != std::string::npos);
    CHECK(m.find("header runs beyond the file") != std::string::npos);
    CHECK(m.find("found 200") != std::string::npos);

    // malformed JSON
    write_all(p, make_safetensors("{\"a\": [", ""));
    m = load_error(p);
    INFO(m);
    CHECK(m.find("valid JSON header") != std::string::npos);

    // offsets beyond the data buffer
    write_all(p, make_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"));
    m = load_error(p);
    INFO(m);
    CHECK(m.find("tensor 'w'") != std::string::npos);
    CHECK(m.find("within the 4-byte data buffer") != std::string::npos);
    CHECK(m.find("found [0, 8]") != std::string::npos);

    // dtype / shape disagree with the byte size
    const std::string h = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
    write_all(p, make_safetensors(h, "12345678"));
    m = load_error(p);
    INFO(m);
    CHECK(m.find("tensor 'w': byte offset " + std::to_string(8 + h.size())) != std::string::npos);
    CHECK(m.find("expected 12 bytes for dtype F32 and shape [3]") != std::string::npos);
    CHECK(m.find("found 8 bytes") != std::string::npos);

    // unknown dtype
    write_all(p, make_safetensors(R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}})", "1"));
    m = load_error(p);
    INFO(m);
    CHECK(m.find("tensor 'w'") != std::string::npos);
    CHECK(m.find("\"F7\"") != std::string::npos);

    // gap and overlap between tensors
    write_all(p, make_safetensors(
                     R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                     "123"));
    m = load_error(p);
    INFO(m);
    CHECK(m.find("tensor 'b'") != std::string::npos);
    CHECK(m.find("(overlap)") != std::string::npos);
    write_all(p, make_safetensors(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "1234"));
    m = load_error(p);
    INFO(m);
    CHECK(m.find("2 more bytes not covered by any tensor") != std::string::npos);

    // metadata must be strings
    write_all(p, make_safetensors(R"({"__metadata__":{"epoch":3}})", ""));
    CHECK(load_error(p).find("metadata key 'epoch'") != std::string::npos);

    // a file that does not exist
    CHECK_THROWS_AS(io::load_safetensors(dir.path / "nothing.safetensors"), io::io_error);
}

TEST_CASE("safetensors: file for the Python reader check") {
    // With CDGAN_SAFETENSORS_CHECK_FILE set, writes that file and leaves it for CTest's
    //   python3 tests/python/read_safetensors.py --expect-cdgan-test <that file>
    // Without it, writes and checks a temporary file.
    temp_dir dir("st_python");
    fs::path p = dir.path / "cdgan_safetensors_check.safetensors";
    if (const char* env = std::getenv("CDGAN_SAFETENSORS_CHECK_FILE"); env != nullptr && *env != '\0') p = env;
    write_python_check_file(p);
    const auto f = io::load_safetensors(p);
    CHECK(f.tensors.size() == 4);
    CHECK(f.tensors.at("generator.dense.weight").values<float>()[5] == doctest::Approx(1.5));
    CHECK(f.tensors.at("step").values<std::int64_t>() == std::vector<std::int64_t>{1234, -5});
    CHECK(f.metadata.at("format") == "cdgan");
}

TEST_CASE("npy: header bytes and round trip") {
    temp_dir dir("npy");
    const auto p = dir.path / "a.npy";
    const std::vector<float> v = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
    io::write_npy(p, v, {2, 3});
    const auto raw = read_all(p);
    CHECK(raw.compare(0, 6, "\x93NUMPY") == 0);
    CHECK(raw[6] == 1);
    CHECK(raw[7] == 0);
    const std::size_t hlen = static_cast<unsigned char>(raw[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(raw[9])) << 8);
    CHECK((10 + hlen) % 64 == 0);
    const std::string header = raw.substr(10, hlen);
    CHECK(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0) == 0);
    CHECK(header.back() == '\n');
    CHECK(raw.size() == 10 + hlen + 6 * 4);
    float first = 0;
    std::memcpy(&first, raw.data() + 10 + hlen, 4);
    CHECK(first == 1.5f);
    const auto back = io::read_npy(p);
    CHECK(back.descr == "<f4");
    CHECK(back.shape == std::vector<std::size_t>{2, 3});
    CHECK(back.values<float>() == v);

    // 1-D shapes have a trailing comma, scalars an empty tuple
    io::write_npy(p, std::vector<std::int64_t>{1, 2, 3}, {3});
    CHECK(read_all(p).find("'descr': '<i8', 'fortran_order': False, 'shape': (3,), }") != std::string::npos);
    CHECK(io::read_npy(p).values<std::int64_t>() == std::vector<std::int64_t>{1, 2, 3});
    io::write_npy(p, std::vector<std::uint8_t>{9}, {});
    CHECK(read_all(p).find("'descr': '|u1', 'fortran_order': False, 'shape': (), }") != std::string::npos);
    CHECK(io::read_npy(p).values<std::uint8_t>() == std::vector<std::uint8_t>{9});
    CHECK(!fs::exists(dir.path / "a.npy.tmp"));

    CHECK_THROWS_AS(io::write_npy(p, v, {4, 2}), io::io_error);
    write_all(p, "not a numpy file");
    CHECK_THROWS_AS(io::read_npy(p), io::format_error);
}

TEST_CASE("png: signature, IHDR, CRCs, size and pixels of a grid") {
    temp_dir dir("png");
    // 3 grey 4 x 5 images on a 2 x 2 grid with 2-pixel padding: 2*(5+2)+2 = 16 wide, 2*(4+2)+2 = 14 high
    std::vector<float> imgs(3 * 4 * 5);
    for (std::size_t i = 0; i < imgs.size(); ++i) imgs[i] = static_cast<float>(i % 20) / 19.0f;
    imgs[0] = -1.0f;  // clamped to 0
    imgs[1] = 2.0f;   // clamped to 1
    const auto p = dir.path / "grid.png";
    io::write_png_grid(p, imgs, 3, 1, 4, 5, 2, 2);
    const auto raw = read_all(p);
    CHECK(raw.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) == 0);
    CHECK(be32(raw, 8) == 13);
    CHECK(raw.compare(12, 4, "IHDR") == 0);
    CHECK(be32(raw, 16) == 16);  // width
    CHECK(be32(raw, 20) == 14);  // height
    CHECK(raw[24] == 8);         // bit depth
    CHECK(raw[25] == 0);         // grey
    CHECK(raw.compare(raw.size() - 12, 12, std::string("\0\0\0\0IEND\xae\x42\x60\x82", 12)) == 0);

    // walk the chunks, check every CRC, inflate IDAT and check pixels
    std::size_t at = 8;
    std::string idat;
    while (at < raw.size()) {
        const std::uint32_t len = be32(raw, at);
        const std::string type = raw.substr(at + 4, 4);
        const auto crc = crc32(0L, reinterpret_cast<const Bytef*>(raw.data() + at + 4), len + 4);
        CHECK(be32(raw, at + 8 + len) == static_cast<std::uint32_t>(crc));
        if (type == "IDAT") idat += raw.substr(at + 8, len);
        at += 12 + len;
    }
    CHECK(at == raw.size());
    std::vector<unsigned char> pix(14 * (16 + 1));
    uLongf out_len = static_cast<uLongf>(pix.size());
    REQUIRE(uncompress(pix.data(), &out_len, reinterpret_cast<const Bytef*>(idat.data()),
                       static_cast<uLong>(idat.size())) == Z_OK);
    CHECK(out_len == pix.size());
    auto px = [&](std::size_t y, std::size_t x) { return pix[y * 17 + 1 + x]; };
    CHECK(pix[0] == 0);             // filter byte
    CHECK(px(0, 0) == 128);         // padding: 0.5 grey
    CHECK(px(2, 2) == 0);           // image 0 pixel (0,0), clamped from -1
    CHECK(px(2, 3) == 255);         // image 0 pixel (0,1), clamped from 2
    CHECK(px(2, 4) == 27);          // 2/19 -> round(26.8)
    CHECK(px(2, 9) == 0);           // image 1 starts at x = 2 + 5 + 2 = 9: value 0/19 -> 0
    CHECK(px(2, 10) == 13);         // image 1 pixel (0,1): 1/19 -> round(13.4)
    CHECK(px(8, 2) == 0);           // image 2 starts at y = 2 + 4 + 2 = 8
    CHECK(px(8, 9) == 128);         // 4th cell is empty: padding value

    // RGB: channel planes become interleaved pixels
    const std::vector<float> rgb = {1.0f, 0.0f, 0.5f};  // one 1 x 1 image: R, G, B planes
    const auto g = io::make_grid(rgb, 1, 3, 1, 1, 1, 1, {0, 0.0f});
    CHECK(g.width == 1);
    CHECK(g.height == 1);
    CHECK(g.pixels == std::vector<std::uint8_t>{255, 0, 128});
    io::write_png_grid(dir.path / "rgb.png", rgb, 1, 3, 1, 1, 1, 1);
    const auto r2 = read_all(dir.path / "rgb.png");
    CHECK(r2[25] == 2);  // colour type RGB
    CHECK(be32(r2, 16) == 5);

    CHECK_THROWS_AS(io::write_png_grid(p, imgs, 3, 1, 4, 5, 1, 2), io::io_error);  // 3 > 1 x 2
    CHECK_THROWS_AS(io::write_png_grid(p, imgs, 3, 2, 4, 5, 2, 2), io::io_error);  // 2 channels
    CHECK(!fs::exists(dir.path / "grid.png.tmp"));
}
