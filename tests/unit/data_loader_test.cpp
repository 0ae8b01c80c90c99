// Tests of include/cdgan/data/loader.hpp: determinism, epoch permutations, gathering, the
// class-balanced labelled subset, the class-balanced sampler and the device-resident dataset.
#include <doctest/doctest.h>

#include <cdgan/backend/cpu/backend.hpp>
#include <cdgan/data/device_dataset.hpp>
#include <cdgan/data/dsprites.hpp>
#include <cdgan/data/loader.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <set>
#include <vector>

using cdgan::data::argument_error;
using cdgan::data::class_balanced_sampler;
using cdgan::data::select_labelled_subset;
using cdgan::data::shuffling_batch_loader;

namespace {

/// A small in-memory dataset: sample i is 3 floats {i, i + 0.5, -i}, label i % classes.
cdgan::data::dataset toy(std::size_t n, std::size_t classes) {
    cdgan::data::dataset d;
    d.name = "toy";
    d.channels = 1;
    d.height = 1;
    d.width = 3;
    d.num_classes = classes;
    for (std::size_t i = 0; i < n; ++i) {
        d.images.insert(d.images.end(), {float(i), float(i) + 0.5f, -float(i)});
        d.labels.push_back(static_cast<std::uint8_t>(i % classes));
    }
    return d;
}

}  // namespace

TEST_CASE("loader: deterministic for a seed, each epoch a permutation") {
    shuffling_batch_loader a(103, 10, 42, /*drop_last=*/false);
    shuffling_batch_loader b(103, 10, 42, false);
    shuffling_batch_loader c(103, 10, 43, false);
    CHECK(a.batches_per_epoch() == 11);
    std::vector<std::size_t> first_epoch_a, first_epoch_c;
    for (int epoch = 0; epoch < 3; ++epoch) {
        std::vector<std::size_t> seen;
        for (std::size_t k = 0; k < a.batches_per_epoch(); ++k) {
            CHECK(a.epoch() == static_cast<std::size_t>(epoch));
            auto ia = a.next_indices();
            auto ib = b.next_indices();
            auto ic = c.next_indices();
            CHECK(std::equal(ia.begin(), ia.end(), ib.begin(), ib.end()));
            CHECK(ia.size() == (k + 1 < a.batches_per_epoch() ? 10u : 3u));
            seen.insert(seen.end(), ia.begin(), ia.end());
            if (epoch == 0) first_epoch_c.insert(first_epoch_c.end(), ic.begin(), ic.end());
        }
        if (epoch == 0) first_epoch_a = seen;
        std::sort(seen.begin(), seen.end());
        std::vector<std::size_t> iota(103);
        std::iota(iota.begin(), iota.end(), std::size_t{0});
        CHECK(seen == iota);  // every index exactly once per epoch
    }
    CHECK(first_epoch_a != first_epoch_c);  // another seed, another order
    std::vector<std::size_t> sorted = first_epoch_a;
    std::sort(sorted.begin(), sorted.end());
    CHECK(first_epoch_a != sorted);  // actually shuffled

    // set_epoch resumes exactly
    shuffling_batch_loader r(103, 10, 42, false);
    r.set_epoch(2);
    shuffling_batch_loader s(103, 10, 42, false);
    for (int i = 0; i < 22; ++i) (void)s.next_indices();
    auto x = r.next_indices();
    auto y = s.next_indices();
    CHECK(std::equal(x.begin(), x.end(), y.begin(), y.end()));
    CHECK(s.epoch() == 2);
}

TEST_CASE("loader: drop_last gives full batches only, different permutation per epoch") {
    shuffling_batch_loader a(25, 8, 1);
    CHECK(a.batches_per_epoch() == 3);
    std::set<std::vector<std::size_t>> perms;
    for (int epoch = 0; epoch < 4; ++epoch) {
        std::set<std::size_t> seen;
        for (int k = 0; k < 3; ++k) {
            auto idx = a.next_indices();
            CHECK(idx.size() == 8);
            seen.insert(idx.begin(), idx.end());
        }
        CHECK(seen.size() == 24);  // no repeats inside an epoch
        perms.insert(std::vector<std::size_t>(a.permutation().begin(), a.permutation().end()));
    }
    CHECK(perms.size() == 4);
    CHECK_THROWS_AS(shuffling_batch_loader(5, 8, 1), argument_error);
    CHECK_THROWS_AS(shuffling_batch_loader(5, 0, 1), argument_error);
    CHECK_THROWS_AS(shuffling_batch_loader(0, 1, 1), argument_error);
}

TEST_CASE("loader: next_batch gathers samples and labels into caller buffers") {
    const auto d = toy(20, 4);
    shuffling_batch_loader l(20, 6, 9);
    std::vector<float> images(6 * 3);
    std::vector<std::int64_t> labels(6);
    auto idx = l.next_batch(d, std::span<float>(images), std::span<std::int64_t>(labels));
    REQUIRE(idx.size() == 6);
    for (std::size_t k = 0; k < 6; ++k) {
        CHECK(images[k * 3] == float(idx[k]));
        CHECK(images[k * 3 + 2] == -float(idx[k]));
        CHECK(labels[k] == static_cast<std::int64_t>(idx[k] % 4));
    }
    std::vector<float> small(5);
    CHECK_THROWS_AS(l.next_batch(d, std::span<float>(small)), argument_error);
    CHECK_THROWS_AS(l.next_batch(toy(21, 4), std::span<float>(images)), argument_error);

    // works on the procedural dSprites too
    const cdgan::data::dsprites::dsprites_source src(std::vector<std::size_t>{0, 245760, 491520, 737279});
    shuffling_batch_loader ld(4, 2, 3);
    std::vector<float> img(2 * 4096);
    std::vector<int> lab(2);
    auto i2 = ld.next_batch(src, std::span<float>(img), std::span<int>(lab));
    CHECK(lab[0] == static_cast<int>(src.label(i2[0])));
    CHECK(std::count(img.begin(), img.end(), 1.0f) > 50);
}

TEST_CASE("labelled subset: class balanced, fixed for a seed, validated fraction") {
    // imbalanced labels: class c has 100 + 50 c samples, 10 classes -> 3250 samples
    std::vector<std::uint8_t> labels;
    for (std::uint8_t c = 0; c < 10; ++c) labels.insert(labels.end(), 100 + 50 * c, c);
    std::reverse(labels.begin(), labels.end());

    const auto s = select_labelled_subset(labels, 0.02, 7);  // round(65) = 65 samples
    CHECK(s.size() == 65);
    CHECK(std::is_sorted(s.begin(), s.end()));
    CHECK(std::adjacent_find(s.begin(), s.end()) == s.end());
    std::map<int, int> per;
    for (auto i : s) ++per[labels[i]];
    CHECK(per.size() == 10);
    for (auto [c, n] : per) CHECK((n == 6 || n == 7));  // 65 = 10 x 6 + 5
    CHECK(select_labelled_subset(labels, 0.02, 7) == s);
    CHECK(select_labelled_subset(labels, 0.02, 8) != s);

    // a small class gives all it has; the others make up the difference
    std::vector<int> skewed(1000, 0);
    for (int i = 0; i < 3; ++i) skewed[static_cast<std::size_t>(i)] = 1;
    const auto t = select_labelled_subset(skewed, 0.1, 1);  // 100 samples
    CHECK(t.size() == 100);
    CHECK(std::count_if(t.begin(), t.end(), [&](std::size_t i) { return skewed[i] == 1; }) == 3);

    CHECK(select_labelled_subset(labels, 1.0, 3).size() == labels.size());

    for (double bad : {0.0, -0.1, 1.5, std::nan("")}) {
        try {
            (void)select_labelled_subset(labels, bad, 1);
            FAIL("no exception");
        } catch (const argument_error& e) {
            CHECK(std::string(e.what()).find("fraction must be in (0, 1]") != std::string::npos);
        }
    }
    CHECK_THROWS_AS(select_labelled_subset(labels, 0.001, 1), argument_error);  // 3 < 10 classes
}

TEST_CASE("class-balanced sampler: equal classes per batch, cycles through the subset") {
    std::vector<std::uint8_t> labels;
    for (std::uint8_t c = 0; c < 3; ++c) labels.insert(labels.end(), 50, c);
    const auto subset = select_labelled_subset(labels, 0.2, 5);  // 30 samples, 10 per class
    REQUIRE(subset.size() == 30);
    class_balanced_sampler a(subset, labels, 11);
    class_balanced_sampler b(subset, labels, 11);
    CHECK(a.classes().size() == 3);
    const std::set<std::size_t> allowed(subset.begin(), subset.end());
    std::map<std::size_t, int> uses;
    std::map<int, int> class_total;
    for (int k = 0; k < 20; ++k) {
        auto ia = a.next_indices(8);  // 8 = 3 x 2 + 2: the two extra rotate
        auto ib = b.next_indices(8);
        CHECK(std::equal(ia.begin(), ia.end(), ib.begin(), ib.end()));
        std::map<int, int> per;
        for (auto i : ia) {
            CHECK(allowed.count(i) == 1);
            ++per[labels[i]];
            ++uses[i];
            ++class_total[labels[i]];
        }
        for (auto [c, n] : per) CHECK((n == 2 || n == 3));
    }
    // 160 draws over 3 classes: rotation keeps the totals within one of each other
    CHECK(std::abs(class_total[0] - class_total[1]) <= 1);
    CHECK(std::abs(class_total[1] - class_total[2]) <= 1);
    // each class pool is walked as a permutation: uses of its members differ by at most one
    for (int c = 0; c < 3; ++c) {
        int lo = 1 << 30, hi = 0;
        for (auto i : subset) {
            if (labels[i] != c) continue;
            lo = std::min(lo, uses[i]);
            hi = std::max(hi, uses[i]);
        }
        CHECK(hi - lo <= 1);
    }
    const auto d = toy(150, 3);
    std::vector<float> img(6 * 3);
    std::vector<std::int64_t> lab(6);
    class_balanced_sampler s(subset, d.labels, 2);
    s.next_batch(d, 6, std::span<float>(img), std::span<std::int64_t>(lab));
    CHECK(std::count(lab.begin(), lab.end(), 0) == 2);
    CHECK(std::count(lab.begin(), lab.end(), 2) == 2);
    CHECK_THROWS_AS(class_balanced_sampler(std::vector<std::size_t>{}, labels, 1), argument_error);
    CHECK_THROWS_AS(class_balanced_sampler(std::vector<std::size_t>{1000}, labels, 1), argument_error);
}

TEST_CASE("dataset::evenly_spaced keeps images floor(i * size / n) and a sorted split's class mix") {
    // labels sorted, as dSprites' test split is (shape slowest): 0 for images 0..39, 1 for 40..79, 2 after
    auto d = toy(120, 3);
    for (std::size_t i = 0; i < d.size(); ++i) d.labels[i] = static_cast<std::uint8_t>(i / 40);
    const auto s = d.evenly_spaced(12);
    REQUIRE(s.size() == 12);
    REQUIRE(s.images.size() == 12 * 3);
    s.validate();
    for (std::size_t i = 0; i < 12; ++i) {
        const std::size_t j = i * 10;  // floor(i * 120 / 12)
        CHECK(s.images[i * 3] == float(j));
        CHECK(s.images[i * 3 + 2] == -float(j));
        CHECK(s.labels[i] == j / 40);
    }
    const auto counts = s.class_counts();
    CHECK(counts == std::vector<std::size_t>{4, 4, 4});  // the first 12 images would all be class 0
    CHECK(s.name == "toy[12 of 120]");
    // a size that does not divide: 7 of 120 -> 0, 17, 34, 51, 68, 85, 102
    const auto t = d.evenly_spaced(7);
    REQUIRE(t.size() == 7);
    CHECK(t.images[6 * 3] == 102.f);
    CHECK(d.evenly_spaced(120).images == d.images);
    CHECK(d.evenly_spaced(500).size() == 120);
}

TEST_CASE("device_dataset: uploaded in chunks, gathered by index, bad indices named") {
  using S = cdgan::shape<2, 3>;
  constexpr std::size_t n = 11;
  auto value = [](std::size_t i, std::size_t j) { return static_cast<cdgan::real>(i * 100 + j); };
  // chunk 4 does not divide 11: the last chunk is partial
  cdgan::data::device_dataset<S, cdgan::cpu> all(
      n, [&](std::size_t i, std::span<cdgan::real> out) {
        for (std::size_t j = 0; j < out.size(); ++j) out[j] = value(i, j);
      },
      4);
  CHECK(all.size() == n);
  CHECK(all.bytes() == n * S::size * sizeof(cdgan::real));
  const std::vector<std::size_t> idx{10, 0, 4, 4, 7};
  cdgan::tensor<S, cdgan::cpu> batch(idx.size());
  all.gather(idx, batch.v());
  const auto h = batch.to_host();
  for (std::size_t k = 0; k < idx.size(); ++k)
    for (std::size_t j = 0; j < S::size; ++j) CHECK(h[k * S::size + j] == value(idx[k], j));
  const std::vector<std::size_t> bad{1, 11};
  cdgan::tensor<S, cdgan::cpu> two(2);
  CHECK_THROWS_WITH_AS(all.gather(bad, two.v()), doctest::Contains("index 11 (position 1)"), cdgan::shape_error);
  CHECK_THROWS_WITH_AS(all.gather(idx, two.v()), doctest::Contains("5 indices for a batch of 2"), cdgan::shape_error);
  auto none = [](std::size_t, std::span<cdgan::real>) {};
  CHECK_THROWS_WITH_AS((cdgan::data::device_dataset<S, cdgan::cpu>(3, none, 0)), doctest::Contains("chunk"),
                       cdgan::shape_error);
  CHECK_THROWS_WITH_AS((cdgan::data::device_dataset<S, cdgan::cpu>(std::size_t(1) << 25, none)),
                       doctest::Contains("at most 16777216 samples, got 33554432"), cdgan::shape_error);
}
