// Tests of include/cdgan/data/dsprites.hpp: order, factor decoding, determinism, shape sanity,
// and the paper split. Only a few hundred images are rendered.
#include <doctest/doctest.h>

#include <cdgan/data/dsprites.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace ds = cdgan::data::dsprites;

namespace {

std::size_t lit(const std::vector<std::uint8_t>& img) {
    return static_cast<std::size_t>(std::count(img.begin(), img.end(), std::uint8_t{1}));
}

/// Centre of mass (row, col) of an image.
std::pair<double, double> centroid(const std::vector<std::uint8_t>& img) {
    double r = 0, c = 0, n = 0;
    for (std::size_t i = 0; i < img.size(); ++i) {
        if (!img[i]) continue;
        r += static_cast<double>(i / 64) + 0.5;
        c += static_cast<double>(i % 64) + 0.5;
        n += 1;
    }
    return {r / n, c / n};
}

std::size_t index_of(std::size_t shape, std::size_t scale, std::size_t orientation,
                     std::size_t x, std::size_t y) {
    return ds::encode({shape, scale, orientation, x, y});
}

}  // namespace

TEST_CASE("dsprites: count and factor order (shape slowest, pos_y fastest)") {
    CHECK(ds::num_images == 737280);
    CHECK(ds::decode(0) == ds::factors{0, 0, 0, 0, 0});
    CHECK(ds::decode(1) == ds::factors{0, 0, 0, 0, 1});
    CHECK(ds::decode(32) == ds::factors{0, 0, 0, 1, 0});
    CHECK(ds::decode(1024) == ds::factors{0, 0, 1, 0, 0});
    CHECK(ds::decode(40960) == ds::factors{0, 1, 0, 0, 0});
    CHECK(ds::decode(245760) == ds::factors{1, 0, 0, 0, 0});
    CHECK(ds::decode(737279) == ds::factors{2, 5, 39, 31, 31});
    for (std::size_t i : {0UL, 17UL, 12345UL, 245759UL, 500000UL, 737279UL}) {
        CHECK(ds::encode(ds::decode(i)) == i);
    }
    CHECK(ds::label(245759) == 0);
    CHECK(ds::label(245760) == 1);
    CHECK(ds::label(737279) == 2);
    CHECK_THROWS_AS(ds::decode(737280), cdgan::data::argument_error);
    CHECK_THROWS_AS(ds::encode({0, 6, 0, 0, 0}), cdgan::data::argument_error);

    const auto v = ds::values(ds::decode(737279));
    CHECK(v.scale == doctest::Approx(1.0));
    CHECK(v.orientation == doctest::Approx(2 * std::numbers::pi));
    CHECK(v.pos_x == doctest::Approx(1.0));
    CHECK(v.pos_y == doctest::Approx(1.0));
    const auto v0 = ds::values(ds::decode(index_of(0, 1, 1, 0, 0)));
    CHECK(v0.scale == doctest::Approx(0.6));
    CHECK(v0.orientation == doctest::Approx(2 * std::numbers::pi / 39));
}

TEST_CASE("dsprites: rendering is deterministic and binary") {
    for (std::size_t i : {0UL, 99999UL, 300001UL, 737279UL}) {
        const auto a = ds::render(i);
        const auto b = ds::render(i);
        CHECK(a == b);
        CHECK(a.size() == 4096);
        CHECK(std::all_of(a.begin(), a.end(), [](std::uint8_t p) { return p <= 1; }));
        std::vector<float> f(4096);
        ds::render(i, std::span<float>(f));
        CHECK(f == std::vector<float>(a.begin(), a.end()));
    }
    // Lit pixel counts of a few reference sprites (orientation 0, centre position).
    CHECK(lit(ds::render(index_of(0, 5, 0, 16, 16))) == 400);  // square side 20 px
    CHECK(lit(ds::render(index_of(0, 0, 0, 16, 16))) == 100);  // square side 10 px
}

TEST_CASE("dsprites: shapes look right") {
    // Same scale, orientation 0, centre: square > heart > ellipse in area.
    const auto sq = ds::render(index_of(0, 5, 0, 16, 16));
    const auto el = ds::render(index_of(1, 5, 0, 16, 16));
    const auto he = ds::render(index_of(2, 5, 0, 16, 16));
    CHECK(lit(sq) > lit(he));
    CHECK(lit(he) > lit(el));
    CHECK(std::abs(static_cast<double>(lit(el)) - std::numbers::pi * 10 * 5) < 12);
    CHECK(std::abs(static_cast<double>(lit(he)) - 282.5) < 15);

    // Ellipse: wider than tall at orientation 0; taller than wide at a quarter turn (10/39 of 2 pi
    // is close to pi/2).
    auto extent = [](const std::vector<std::uint8_t>& img) {
        std::size_t r0 = 64, r1 = 0, c0 = 64, c1 = 0;
        for (std::size_t i = 0; i < 4096; ++i) {
            if (!img[i]) continue;
            r0 = std::min(r0, i / 64);
            r1 = std::max(r1, i / 64);
            c0 = std::min(c0, i % 64);
            c1 = std::max(c1, i % 64);
        }
        return std::pair<std::size_t, std::size_t>{r1 - r0 + 1, c1 - c0 + 1};  // (height, width)
    };
    CHECK(extent(el).second == 20);
    CHECK(extent(el).first == 10);
    const auto el90 = extent(ds::render(index_of(1, 5, 10, 16, 16)));
    CHECK(el90.first > el90.second);
    CHECK(extent(sq) == std::pair<std::size_t, std::size_t>{20, 20});

    // Heart: left-right symmetric, not top-bottom symmetric (lobes up, tip down), so more pixels
    // in its upper half than in its lower half. At pos_x = 0 the centre x = 10 lies on a pixel
    // boundary, so columns 9 - j and 10 + j mirror each other exactly.
    const auto he0 = ds::render(index_of(2, 5, 0, 0, 16));
    CHECK(std::abs(static_cast<double>(lit(he0)) - static_cast<double>(lit(he))) <= 4);  // aliasing
    std::size_t mirror_mismatch = 0;
    for (std::size_t r = 0; r < 64; ++r) {
        for (std::size_t j = 0; j < 10; ++j) mirror_mismatch += he0[r * 64 + 9 - j] != he0[r * 64 + 10 + j];
    }
    CHECK(mirror_mismatch == 0);
    const double cy = 10 + 44 * (16.0 / 31.0);
    std::size_t upper = 0, lower = 0;
    for (std::size_t i = 0; i < 4096; ++i) {
        if (he0[i]) ((static_cast<double>(i / 64) + 0.5 < cy) ? upper : lower) += 1;
    }
    CHECK(upper > lower + 20);
    CHECK(centroid(he0).second == doctest::Approx(10.0));
    // Upside-down heart (orientation 20/39 of 2 pi, about pi) has more pixels in its lower half.
    const auto he180 = ds::render(index_of(2, 5, 20, 16, 16));
    std::size_t up2 = 0, lo2 = 0;
    for (std::size_t i = 0; i < 4096; ++i) {
        if (he180[i]) ((static_cast<double>(i / 64) + 0.5 < cy) ? up2 : lo2) += 1;
    }
    CHECK(lo2 > up2 + 20);

    // Orientation turns counter-clockwise on screen: a quarter turn (10/39 of 2 pi) puts the
    // lobes on the left and the tip on the right.
    const auto he90 = ds::render(index_of(2, 5, 10, 16, 16));
    const double cx = 10 + 44 * (16.0 / 31.0);
    std::size_t left = 0, right = 0;
    for (std::size_t i = 0; i < 4096; ++i) {
        if (he90[i]) ((static_cast<double>(i % 64) + 0.5 < cx) ? left : right) += 1;
    }
    CHECK(left > right + 20);

    // Square rotated by about 45 degrees (orientation 5/39 of 2 pi = 46 deg) keeps its area and
    // becomes wider (diagonal ~28 px).
    const auto sq45 = ds::render(index_of(0, 5, 5, 16, 16));
    CHECK(std::abs(static_cast<double>(lit(sq45)) - 400.0) < 20);
    CHECK(extent(sq45).second >= 26);
}

TEST_CASE("dsprites: positions move the sprite") {
    const auto a = centroid(ds::render(index_of(1, 2, 0, 0, 0)));
    const auto b = centroid(ds::render(index_of(1, 2, 0, 31, 0)));
    const auto c = centroid(ds::render(index_of(1, 2, 0, 0, 31)));
    CHECK(a.first == doctest::Approx(10.0).epsilon(0.05));   // row of pos_y = 0
    CHECK(a.second == doctest::Approx(10.0).epsilon(0.05));  // column of pos_x = 0
    CHECK(b.second == doctest::Approx(54.0).epsilon(0.02));  // pos_x moves columns
    CHECK(b.first == doctest::Approx(a.first));
    CHECK(c.first == doctest::Approx(54.0).epsilon(0.02));   // pos_y moves rows
    CHECK(c.second == doctest::Approx(a.second));
}

TEST_CASE("dsprites: paper split and the on-demand source") {
    const auto s = ds::paper_split();
    CHECK(s.test.size() == 10000);
    CHECK(s.train.size() == 727280);
    CHECK(std::is_sorted(s.test.begin(), s.test.end()));
    CHECK(std::is_sorted(s.train.begin(), s.train.end()));
    std::vector<std::size_t> all;
    std::merge(s.train.begin(), s.train.end(), s.test.begin(), s.test.end(), std::back_inserter(all));
    CHECK(all.size() == ds::num_images);
    bool is_iota = true;
    for (std::size_t i = 0; i < all.size(); ++i) is_iota = is_iota && all[i] == i;
    CHECK(is_iota);
    CHECK(ds::paper_split().test == s.test);               // fixed for the default seed
    CHECK(ds::paper_split(7, 10000).test != s.test);       // depends on the seed
    // roughly a third of each shape in the test set
    std::size_t counts[3] = {0, 0, 0};
    for (auto i : s.test) ++counts[ds::label(i)];
    for (auto c : counts) CHECK(std::abs(static_cast<double>(c) - 3333.3) < 200);

    const ds::dsprites_source src(s.test);
    CHECK(src.size() == 10000);
    CHECK(src.sample_size() == 4096);
    std::vector<float> buf(4096);
    src.copy_sample(5, buf);
    std::vector<float> direct(4096);
    ds::render(s.test[5], std::span<float>(direct));
    CHECK(buf == direct);
    CHECK(src.label(5) == ds::label(s.test[5]));
    CHECK(ds::dsprites_source{}.size() == 737280);

    const std::vector<std::size_t> few = {0, 245760, 737279};
    const auto m = ds::materialize(few);
    CHECK(m.size() == 3);
    CHECK(m.labels == std::vector<std::uint8_t>{0, 1, 2});
    CHECK(m.sample_size() == 4096);
}

TEST_CASE("dsprites: mean pixel value is close to the original's (~0.042)") {
    // Sample 2000 images spread over the whole index range.
    double sum = 0;
    std::size_t n = 0;
    for (std::size_t i = 0; i < ds::num_images; i += 367) {
        sum += static_cast<double>(lit(ds::render(i)));
        ++n;
    }
    const double mean = sum / static_cast<double>(n) / 4096.0;
    MESSAGE("dSprites mean pixel value (sampled): " << mean);
    CHECK(mean > 0.034);
    CHECK(mean < 0.05);
}
