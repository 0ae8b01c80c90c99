// Tests of include/cdgan/data/cifar10.hpp on batch files the test writes.
#include <doctest/doctest.h>

#include <cdgan/data/cifar10.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

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

/// `n` records; record r has label (r + first_label) % 10 and pixel p = (r * 7 + p) % 256.
std::vector<std::uint8_t> batch_bytes(std::size_t n, std::size_t first_label = 0) {
    std::vector<std::uint8_t> v;
    for (std::size_t r = 0; r < n; ++r) {
        v.push_back(static_cast<std::uint8_t>((r + first_label) % 10));
        for (std::size_t p = 0; p < 3072; ++p) v.push_back(static_cast<std::uint8_t>((r * 7 + p) % 256));
    }
    return v;
}

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& v) {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size()));
}

std::string error_of(const fs::path& p) {
    try {
        (void)cdgan::data::read_cifar10_batch(p);
    } catch (const cdgan::data::dataset_error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("cifar10: one batch file reads as 3 x 32 x 32 CHW floats") {
    temp_dir dir("cifar_one");
    write_bytes(dir.path / "data_batch_1.bin", batch_bytes(3, 4));
    const auto ds = cdgan::data::read_cifar10_batch(dir.path / "data_batch_1.bin");
    CHECK(ds.size() == 3);
    CHECK(ds.channels == 3);
    CHECK(ds.height == 32);
    CHECK(ds.width == 32);
    CHECK(ds.num_classes == 10);
    CHECK(ds.labels == std::vector<std::uint8_t>{4, 5, 6});
    const auto im = ds.image(2);
    // red (0,0), green (0,0) and blue (31,31) of record 2
    CHECK(im[0] == doctest::Approx((2 * 7 + 0) % 256 / 255.0));
    CHECK(im[1024] == doctest::Approx((2 * 7 + 1024) % 256 / 255.0));
    CHECK(im[3071] == doctest::Approx((2 * 7 + 3071) % 256 / 255.0));
    CHECK(cdgan::data::cifar10_class_names[ds.labels[0]] == "deer");
}

TEST_CASE("cifar10: train split is the five data batches in order; test split") {
    temp_dir dir("cifar_split");
    fs::create_directories(dir.path / "cifar-10-batches-bin");
    for (int i = 1; i <= 5; ++i) {
        write_bytes(dir.path / "cifar-10-batches-bin" / ("data_batch_" + std::to_string(i) + ".bin"),
                    batch_bytes(2, static_cast<std::size_t>(i)));
    }
    write_bytes(dir.path / "cifar-10-batches-bin" / "test_batch.bin", batch_bytes(4, 0));
    const auto train = cdgan::data::load_cifar10(dir.path, "train");
    CHECK(train.size() == 10);
    CHECK(train.labels == std::vector<std::uint8_t>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6});
    CHECK(cdgan::data::load_cifar10(dir.path / "cifar-10-batches-bin", "test").size() == 4);
    CHECK_THROWS_AS(cdgan::data::load_cifar10(dir.path, "valid"), cdgan::data::argument_error);

    fs::remove(dir.path / "cifar-10-batches-bin" / "data_batch_4.bin");
    try {
        (void)cdgan::data::load_cifar10(dir.path, "train");
        FAIL("no exception");
    } catch (const cdgan::data::dataset_not_found_error& e) {
        const std::string m = e.what();
        CHECK(m.find("data_batch_4.bin: no such file") != std::string::npos);
        CHECK(m.find("not packaged") != std::string::npos);
    }
}

TEST_CASE("cifar10: sizes that are not a multiple of 3073, bad labels, empty files") {
    temp_dir dir("cifar_bad");
    const auto p = dir.path / "data_batch_1.bin";
    auto v = batch_bytes(2);
    v.resize(v.size() + 100);
    write_bytes(p, v);
    auto m = error_of(p);
    INFO(m);
    CHECK(m.find(p.string()) != std::string::npos);
    CHECK(m.find("byte offset 6146") != std::string::npos);
    CHECK(m.find("multiple of 3073") != std::string::npos);
    CHECK(m.find("found 6246 bytes (2 records and 100 bytes left over)") != std::string::npos);

    v = batch_bytes(3);
    v[2 * 3073] = 200;
    write_bytes(p, v);
    m = error_of(p);
    INFO(m);
    CHECK(m.find("byte offset 6146: expected a label byte in 0..9 (record 2), found 200") != std::string::npos);

    write_bytes(p, {});
    CHECK(error_of(p).find("an empty file") != std::string::npos);
}
