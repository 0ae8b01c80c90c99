// Tests of eval/quality.hpp: the feature classifier (training, features, save / load, cache), the
// classifier Fréchet distance, intra-class diversity and consistency of generated images.
#include <doctest/doctest.h>

#include <cdgan/eval/quality.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

namespace {

using namespace cdgan;
namespace nn = cdgan::nn;
namespace eval = cdgan::eval;
namespace fs = std::filesystem;

/// A tiny trunk so that the tests train in well under a second.
using tiny_trunk = nn::sequential<nn::input<1, 28, 28>, nn::avg_pool<2>,
                                  nn::conv<8, nn::kernel<3>, nn::stride<2>, nn::pad<1>>, nn::relu,  // 8×7×7
                                  nn::flatten, nn::dense<16>, nn::relu>;
using tiny_classifier = eval::feature_classifier<tiny_trunk, 4>;
/// Same trunk, another head: a file of tiny_classifier does not fit it.
using other_classifier = eval::feature_classifier<tiny_trunk, 3>;

/// Deterministic host random numbers (splitmix64), independent of the standard library.
struct host_rng {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    double normal() {
        const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
};

/// Class k of 4: a Gaussian blob in quadrant k of a 28×28 image (position jittered by ±2 px,
/// amplitude 0.6..1), plus uniform noise in [0, 0.1). Trivially separable.
data::dataset blobs(std::size_t per_class, std::uint64_t seed, double dx = 0) {
    host_rng g{seed};
    data::dataset d;
    d.name = "blobs";
    d.height = d.width = 28;
    d.num_classes = 4;
    for (std::size_t i = 0; i < per_class * 4; ++i) {
        const std::size_t k = i % 4;
        const double cx = 7 + 14 * static_cast<double>(k % 2) + 4 * g.uniform() - 2 + dx;
        const double cy = 7 + 14 * static_cast<double>(k / 2) + 4 * g.uniform() - 2;
        const double amp = 0.6 + 0.4 * g.uniform();
        for (std::size_t y = 0; y < 28; ++y)
            for (std::size_t x = 0; x < 28; ++x) {
                const double r2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
                const double v = amp * std::exp(-r2 / (2 * 2.5 * 2.5)) + 0.1 * g.uniform();
                d.images.push_back(static_cast<float>(std::min(1.0, v)));
            }
        d.labels.push_back(static_cast<std::uint8_t>(k));
    }
    d.validate();
    return d;
}

eval::classifier_train_options tiny_options(std::uint64_t seed = 7) {
    eval::classifier_train_options o;
    o.epochs = 6;
    o.batch_size = 32;
    o.lr = 3e-3f;
    o.seed = seed;
    return o;
}

/// One trained tiny classifier shared by the tests (trained once, ~0.1 s).
tiny_classifier& trained() {
    static tiny_classifier clf = [] {
        tiny_classifier c;
        c.train(blobs(64, 1), tiny_options());
        return c;
    }();
    return clf;
}

fs::path temp_file(const std::string& name) {
    return fs::temp_directory_path() / ("cdgan_eval_quality_" + name + ".safetensors");
}

}  // namespace

TEST_CASE("quality: the feature classifier learns separable synthetic images") {
    auto test = blobs(32, 2);
    auto& clf = trained();
    CHECK(clf.accuracy(test) >= 0.97);
    // an untrained classifier is at chance level or so, far from that
    tiny_classifier fresh(123);
    CHECK(fresh.accuracy(test) < 0.9);
    // predictions agree with accuracy, features have the trunk's width and are ReLU outputs
    auto [f, p] = clf.features_and_predictions(std::span<const float>(test.images), test.size());
    CHECK(f.size() == test.size() * tiny_classifier::feature_dim);
    CHECK(tiny_classifier::feature_dim == 16);
    CHECK(std::all_of(f.begin(), f.end(), [](float v) { return v >= 0.f && std::isfinite(v); }));
    CHECK(p == clf.predict(test.images, test.size()));
    CHECK(f == clf.features(test.images, test.size()));
    std::size_t right = 0;
    for (std::size_t i = 0; i < test.size(); ++i) right += p[i] == test.labels[i] ? 1 : 0;
    CHECK(static_cast<double>(right) / static_cast<double>(test.size()) == doctest::Approx(clf.accuracy(test)));
}

TEST_CASE("quality: training is a function of the data and the seed") {
    auto train = blobs(16, 3);
    auto o = tiny_options(11);
    o.epochs = 2;
    tiny_classifier a(1), b(2);
    const auto ra = a.train(train, o);
    b.train(train, o);
    CHECK(ra.iterations == 2 * (64 / 32));
    CHECK(std::isfinite(ra.final_loss));
    CHECK(a.features(train.images, train.size()) == b.features(train.images, train.size()));
}

TEST_CASE("quality: classifier errors name the problem") {
    tiny_classifier clf;
    data::dataset wrong = blobs(2, 4);
    wrong.labels[0] = 3;
    other_classifier three;
    CHECK_THROWS_AS(three.train(wrong, tiny_options()), value_error);  // label 3 with 3 classes
    data::dataset small;
    small.height = small.width = 8;
    small.num_classes = 4;
    small.images.assign(4 * 64, 0.f);
    small.labels = {0, 1, 2, 3};
    CHECK_THROWS_AS(clf.train(small, tiny_options()), shape_error);
    auto o = tiny_options();
    o.batch_size = 1000;
    CHECK_THROWS_AS(clf.train(blobs(2, 4), o), value_error);
    std::vector<float> img(28 * 28 * 2 - 1);
    CHECK_THROWS_AS(clf.features(img, 2), shape_error);
}

TEST_CASE("quality: the library's classifier architectures") {
    eval::mnist_classifier<> m(3);
    eval::dsprites_classifier<> d(3);
    static_assert(eval::mnist_classifier<>::feature_dim == 128 && eval::mnist_classifier<>::num_classes == 10);
    static_assert(eval::dsprites_classifier<>::feature_dim == 128 && eval::dsprites_classifier<>::num_classes == 3);
    static_assert(std::is_same_v<eval::mnist_classifier<>::image_shape, shape<1, 28, 28>>);
    static_assert(std::is_same_v<eval::dsprites_classifier<>::image_shape, shape<1, 64, 64>>);
    static_assert(std::is_same_v<eval::classifier_for<shape<1, 28, 28>, 10>, eval::mnist_classifier<>>);
    static_assert(std::is_same_v<eval::classifier_for<shape<1, 64, 64>, 3>, eval::dsprites_classifier<>>);
    std::vector<float> x28(3 * 28 * 28, 0.5f), x64(3 * 64 * 64, 0.25f);
    auto [f1, p1] = m.features_and_predictions(std::span<const float>(x28), 3);
    auto [f2, p2] = d.features_and_predictions(std::span<const float>(x64), 3);
    CHECK(f1.size() == 3 * 128);
    CHECK(f2.size() == 3 * 128);
    CHECK(std::all_of(p1.begin(), p1.end(), [](std::size_t k) { return k < 10; }));
    CHECK(std::all_of(p2.begin(), p2.end(), [](std::size_t k) { return k < 3; }));
    CHECK(f1[0] == f1[128]);  // identical images, identical features (eval mode, per-sample)
}

TEST_CASE("quality: Fréchet distance of a set to itself is ~0, to a shifted set larger") {
    auto& clf = trained();
    auto real = blobs(40, 5);
    const auto ref = eval::real_reference::from_classifier(clf, real);
    std::vector<std::size_t> codes(real.labels.begin(), real.labels.end());
    const auto same = eval::generation_quality(clf, real.images, codes, ref);
    auto shifted = blobs(40, 5, 3.0);  // every blob moved 3 px to the right
    const auto moved = eval::generation_quality(clf, shifted.images, codes, ref);
    CHECK(std::abs(same.fd_overall) < 1e-3);
    CHECK(moved.fd_overall > 0.05);
    CHECK(moved.fd_overall > 1000 * std::abs(same.fd_overall));
    for (std::size_t c = 0; c < 4; ++c) {
        CHECK(std::abs(same.fd_per_class[c]) < 1e-3);
        CHECK(moved.fd_per_class[c] > 1000 * std::abs(same.fd_per_class[c]));
        CHECK(same.diversity_ratio[c] == doctest::Approx(1.0).epsilon(1e-6));
    }
    // the features of another sample of the same distribution are much closer than the shifted ones
    auto fresh = blobs(40, 6);
    const auto other = eval::generation_quality(clf, fresh.images, codes, ref);
    CHECK(10 * other.fd_overall < moved.fd_overall);
}

TEST_CASE("quality: Fréchet distance on features: a mean shift adds its squared length") {
    host_rng g{9};
    const std::size_t n = 200, d = 5;
    std::vector<float> a(n * d), b(n * d);
    std::vector<std::size_t> labels(n);
    for (std::size_t i = 0; i < n; ++i) {
        labels[i] = i % 2;
        for (std::size_t j = 0; j < d; ++j) {
            a[i * d + j] = static_cast<float>(g.normal() * (1.0 + static_cast<double>(j)));
            b[i * d + j] = a[i * d + j] + (j == 0 ? 3.0f : 0.0f);
        }
    }
    const auto ref = eval::real_reference::from_features(a, labels, d, 2);
    const auto self = eval::generation_quality(a, labels, labels, ref);
    const auto shift = eval::generation_quality(b, labels, labels, ref);
    CHECK(std::abs(self.fd_overall) < 1e-8);
    CHECK(shift.fd_overall == doctest::Approx(9.0).epsilon(1e-6));
    CHECK(shift.fd_per_class[0] == doctest::Approx(9.0).epsilon(1e-6));
    CHECK(shift.diversity_ratio_min == doctest::Approx(1.0).epsilon(1e-5));  // a translation keeps distances
}

TEST_CASE("quality: a collapsed generator has diversity ratio ~0, a faithful one ~1") {
    auto& clf = trained();
    const auto ref = eval::real_reference::from_classifier(clf, blobs(50, 8));
    const std::vector<std::size_t> perm{2, 0, 3, 1};  // code c draws images of class perm[c]
    auto faithful_src = blobs(50, 9);
    std::vector<float> faithful, collapsed;
    std::vector<float> codes;  // reals, as a latent batch holds them
    const std::size_t px = 28 * 28;
    for (std::size_t c = 0; c < 4; ++c)
        for (std::size_t i = 0; i < faithful_src.size(); ++i) {
            if (faithful_src.labels[i] != perm[c]) continue;
            const auto img = faithful_src.image(i);
            faithful.insert(faithful.end(), img.begin(), img.end());
            codes.push_back(static_cast<float>(c));
            // collapsed: always the first image of that class
            std::size_t first = 0;
            while (faithful_src.labels[first] != perm[c]) ++first;
            const auto one = faithful_src.image(first);
            collapsed.insert(collapsed.end(), one.begin(), one.end());
        }
    REQUIRE(codes.size() * px == faithful.size());
    const auto good = eval::generation_quality(clf, faithful, codes, ref);
    const auto bad = eval::generation_quality(clf, collapsed, codes, ref);

    CHECK(good.code_to_class == perm);
    CHECK(good.consistency == 1.0);  // every image predicted as its code's class (after matching)
    CHECK(good.diversity_ratio_min > 0.75);
    CHECK(good.diversity_ratio_min <= good.diversity_ratio_mean);
    CHECK(good.diversity_ratio_mean == doctest::Approx(1.0).epsilon(0.15));
    CHECK_FALSE(good.diversity_failure());
    for (std::size_t c = 0; c < 4; ++c) {
        CHECK(good.diversity_real[c] == doctest::Approx(ref.diversity[perm[c]]));
        CHECK(good.generated_per_code[c] == 50);
    }

    CHECK(bad.code_to_class == perm);
    CHECK(bad.diversity_ratio_min == 0.0);
    CHECK(bad.diversity_ratio_mean == 0.0);
    CHECK(bad.diversity_failure());
    CHECK(bad.fd_overall > good.fd_overall);
    for (std::size_t c = 0; c < 4; ++c) CHECK(bad.fd_per_class[c] > good.fd_per_class[c]);
}

TEST_CASE("quality: consistency and the code-to-class matching from predictions") {
    // 3 codes, 3 classes, 2-d features; the classifier puts code c in class (c + 1) % 3
    const std::size_t n = 60, d = 2;
    host_rng g{4};
    std::vector<float> f(n * d);
    for (auto& v : f) v = static_cast<float>(g.normal());
    std::vector<int> codes(n), pred(n), labels(n);
    for (std::size_t i = 0; i < n; ++i) {
        codes[i] = static_cast<int>(i % 3);
        pred[i] = (codes[i] + 1) % 3;
        labels[i] = static_cast<int>((i / 3) % 3);
    }
    const auto ref = eval::real_reference::from_features(f, labels, d, 3);
    auto r = eval::generation_quality(f, codes, pred, ref);
    CHECK(r.consistency == 1.0);
    CHECK(r.code_to_class == std::vector<std::size_t>{1, 2, 0});
    // 6 of 60 images predicted in a wrong class: consistency 0.9, matching unchanged
    for (std::size_t i = 0; i < 6; ++i) pred[i * 10] = (pred[i * 10] + 1) % 3;
    r = eval::generation_quality(f, codes, pred, ref);
    CHECK(r.consistency == doctest::Approx(0.9));
    CHECK(r.code_to_class == std::vector<std::size_t>{1, 2, 0});
    // more codes than classes: the extra code is unassigned, its images count as inconsistent
    std::vector<int> codes4 = codes;
    codes4[0] = 3;
    r = eval::generation_quality(f, codes4, pred, ref, 4);
    CHECK(std::count(r.code_to_class.begin(), r.code_to_class.end(), eval::unassigned) == 1);
    CHECK(r.code_to_class.size() == 4);
    CHECK(std::isnan(r.fd_per_class[3]));  // one image: no covariance
    // a code that is not an integer, a bad size, a prediction out of range
    std::vector<float> bad_codes(n, 0.5f);
    CHECK_THROWS_AS(eval::generation_quality(f, bad_codes, pred, ref), eval::metric_error);
    CHECK_THROWS_AS(eval::generation_quality(std::span<const float>(f).first(n * d - 1), codes, pred, ref),
                    eval::metric_error);
    pred[0] = 3;
    CHECK_THROWS_AS(eval::generation_quality(f, codes, pred, ref), eval::metric_error);
}

TEST_CASE("quality: the report as JSON says it is not the Inception FID") {
    eval::quality_report r;
    r.fd_overall = 2.5;
    r.fd_per_class = {1.0, std::nan("")};
    r.diversity_ratio_min = 0.4;
    r.code_to_class = {1, eval::unassigned};
    nlohmann::json j = r;
    CHECK(j["fd_kind"] == "classifier Fréchet distance, not the Inception FID");
    CHECK(j["fd_overall"] == 2.5);
    CHECK(j["fd_per_class"][1].is_null());
    CHECK(j["code_to_class"][1].is_null());
    CHECK(j["diversity_failure"] == true);
    CHECK(j.dump().find("NaN") == std::string::npos);
}

TEST_CASE("quality: save / load round trip gives identical features") {
    auto& clf = trained();
    auto test = blobs(8, 10);
    const auto path = temp_file("roundtrip");
    clf.save(path, {{"note", "unit test"}});
    tiny_classifier copy(999);
    CHECK(copy.features(test.images, test.size()) != clf.features(test.images, test.size()));
    const auto md = copy.load(path);
    CHECK(md.at("note") == "unit test");
    CHECK(md.at("format") == tiny_classifier::file_format);
    CHECK(md.at("feature_dim") == "16");
    CHECK(copy.features(test.images, test.size()) == clf.features(test.images, test.size()));
    CHECK(copy.predict(test.images, test.size()) == clf.predict(test.images, test.size()));
    // another architecture does not load, and keeps its weights
    other_classifier other(5);
    const auto before = other.features(test.images, test.size());
    CHECK_THROWS_AS(other.load(path), io::format_error);
    CHECK(other.features(test.images, test.size()) == before);
    fs::remove(path);
    CHECK_THROWS_AS(copy.load(path), io::io_error);
}

TEST_CASE("quality: load_or_train caches the classifier in a file") {
    const auto path = temp_file("cache");
    fs::remove(path);
    auto train = blobs(16, 12);
    auto test = blobs(8, 13);
    auto o = tiny_options(3);
    o.epochs = 2;
    tiny_classifier a;
    const auto r1 = a.load_or_train(path, train, o, &test, "blobs");
    CHECK(r1.trained);
    CHECK(r1.reason == "no file");
    CHECK(r1.train.iterations == 4);
    REQUIRE(fs::exists(path));
    tiny_classifier b(77);
    const auto r2 = b.load_or_train(path, train, o, &test, "blobs");
    CHECK_FALSE(r2.trained);
    CHECK(r2.reason == "loaded");
    CHECK(r2.test_accuracy == r1.test_accuracy);
    CHECK(b.features(test.images, test.size()) == a.features(test.images, test.size()));
    // another tag (another dataset) retrains, and so does a file of another architecture
    tiny_classifier c;
    CHECK(c.load_or_train(path, train, o, &test, "other").trained);
    other_classifier d;
    auto train3 = blobs(16, 12);
    for (auto& l : train3.labels) l = static_cast<std::uint8_t>(l % 3);
    train3.num_classes = 3;
    const auto r4 = d.load_or_train(path, train3, o, static_cast<const data::dataset*>(nullptr), "other");
    CHECK(r4.trained);
    CHECK(r4.reason.find("tensor") != std::string::npos);
    fs::remove(path);
}
