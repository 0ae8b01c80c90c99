// Tests of include/cdgan/eval/metrics.hpp against scikit-learn / SciPy fixtures
// (tests/fixtures/*.json, made by tests/fixtures/make_metric_fixtures.py) and known cases.
#include <doctest/doctest.h>

#include <cdgan/data/random.hpp>
#include <cdgan/eval/metrics.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

namespace ev = cdgan::eval;

namespace {

/// tests/fixtures: from the CDGAN_TEST_FIXTURE_DIR macro (set by the build), else the
/// CDGAN_SOURCE_DIR environment variable (the repository root), else next to this source file.
std::filesystem::path fixture_dir() {
#ifdef CDGAN_TEST_FIXTURE_DIR
    return CDGAN_TEST_FIXTURE_DIR;
#else
    if (const char* env = std::getenv("CDGAN_SOURCE_DIR"); env != nullptr && *env != '\0') {
        return std::filesystem::path(env) / "tests" / "fixtures";
    }
    return std::filesystem::absolute(std::filesystem::path(__FILE__)).parent_path().parent_path() /
           "fixtures";
#endif
}

nlohmann::json load_fixture(const char* name) {
    const auto p = fixture_dir() / name;
    std::ifstream in(p);
    REQUIRE_MESSAGE(in.good(), "cannot open fixture " << p.string());
    return nlohmann::json::parse(in);
}

/// Brute-force minimum assignment cost of a square matrix.
double brute_force_min(const std::vector<double>& cost, std::size_t n) {
    std::vector<std::size_t> perm(n);
    std::iota(perm.begin(), perm.end(), std::size_t{0});
    double best = 1e300;
    do {
        double s = 0;
        for (std::size_t i = 0; i < n; ++i) s += cost[i * n + perm[i]];
        best = std::min(best, s);
    } while (std::next_permutation(perm.begin(), perm.end()));
    return best;
}

/// Gaussian blobs: k centres spread on a scaled simplex-like grid, n points in d dimensions.
std::vector<float> blobs(std::size_t n, std::size_t d, std::size_t k, double spread, double noise,
                         std::uint64_t seed, std::vector<int>& truth) {
    cdgan::data::splitmix64 g(seed);
    auto normal = [&] {  // Box-Muller
        const double u1 = std::max(cdgan::data::uniform_unit(g), 1e-300);
        const double u2 = cdgan::data::uniform_unit(g);
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.141592653589793 * u2);
    };
    std::vector<double> centres(k * d);
    for (auto& c : centres) c = spread * normal();
    std::vector<float> x(n * d);
    truth.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t c = i % k;
        truth[i] = static_cast<int>(c);
        for (std::size_t j = 0; j < d; ++j) x[i * d + j] = static_cast<float>(centres[c * d + j] + noise * normal());
    }
    return x;
}

}  // namespace

TEST_CASE("metrics: ACC, NMI, ARI and purity match scikit-learn / SciPy fixtures") {
    const auto j = load_fixture("metrics_cases.json");
    REQUIRE(j["cases"].size() >= 8);
    for (const auto& c : j["cases"]) {
        const auto t = c["labels_true"].get<std::vector<std::int64_t>>();
        const auto p = c["labels_pred"].get<std::vector<std::int64_t>>();
        INFO("case " << c["name"].get<std::string>());
        CHECK(ev::ari(t, p) == doctest::Approx(c["ari"].get<double>()).epsilon(1e-9).scale(1.0));
        CHECK(std::abs(ev::ari(t, p) - c["ari"].get<double>()) < 1e-6);
        CHECK(std::abs(ev::nmi(t, p) - c["nmi"].get<double>()) < 1e-6);
        CHECK(std::abs(ev::cluster_accuracy(t, p) - c["acc"].get<double>()) < 1e-6);
        CHECK(std::abs(ev::purity(t, p) - c["purity"].get<double>()) < 1e-6);
        const auto s = ev::score_clustering(t, p);
        CHECK(s.acc == doctest::Approx(c["acc"].get<double>()));
    }
}

TEST_CASE("metrics: label types and small known values") {
    const std::vector<std::uint8_t> t = {0, 0, 1, 1, 2, 2};
    const std::vector<int> p = {1, 1, 0, 0, 0, 2};
    CHECK(ev::cluster_accuracy(t, p) == doctest::Approx(5.0 / 6.0));
    const auto m = ev::match_clusters(t, p);
    CHECK(m.matched == 5);
    CHECK(m.map(1) == 0);
    CHECK(m.map(0) == 1);
    CHECK(m.map(2) == 2);
    CHECK(m.map(9) == -1);
    CHECK(ev::ari(t, p) == doctest::Approx(4.0 / 9.0));
    CHECK(ev::nmi(t, t) == doctest::Approx(1.0));
    CHECK_THROWS_AS(ev::nmi(t, std::vector<int>{1, 2}), ev::metric_error);
    CHECK_THROWS_AS(ev::ari(std::vector<int>{}, std::vector<int>{}), ev::metric_error);
}

TEST_CASE("hungarian: known matrices, rectangular cases, brute force") {
    // Classic example: optimum 5 (rows -> cols 1, 0, 2).
    const std::vector<double> a = {4, 1, 3, 2, 0, 5, 3, 2, 2};
    const auto r = ev::hungarian(a, 3, 3);
    CHECK(r == std::vector<std::size_t>{1, 0, 2});
    CHECK(ev::assignment_cost(a, 3, r) == doctest::Approx(5.0));

    // 2 x 3: each row gets a distinct column
    const std::vector<double> w = {1, 2, 3, 3, 1, 0};
    const auto rw = ev::hungarian(w, 2, 3);
    CHECK(rw == std::vector<std::size_t>{0, 2});
    // 3 x 2: one row stays unassigned
    const std::vector<double> tall = {5, 1, 1, 5, 0, 0};
    const auto rt = ev::hungarian(tall, 3, 2);
    CHECK(ev::assignment_cost(tall, 2, rt) == doctest::Approx(1.0));  // rows 2 and 0 (or 1)
    CHECK(std::count(rt.begin(), rt.end(), ev::unassigned) == 1);

    // random 6 x 6 against brute force (with negative costs and ties)
    cdgan::data::splitmix64 g(3);
    for (int trial = 0; trial < 30; ++trial) {
        std::vector<double> c(36);
        for (auto& v : c) v = static_cast<double>(cdgan::data::uniform_below(g, 21)) - 10.0;
        const auto h = ev::hungarian(c, 6, 6);
        std::vector<std::size_t> sorted = h;
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted == std::vector<std::size_t>{0, 1, 2, 3, 4, 5});
        CHECK(ev::assignment_cost(c, 6, h) == doctest::Approx(brute_force_min(c, 6)));
    }
    CHECK_THROWS_AS(ev::hungarian(a, 2, 2), ev::metric_error);
}

TEST_CASE("consistency: generated images against their codes") {
    // codes 0..2 generate classes 2, 0, 1 (a permutation), 10% wrong
    std::vector<int> c, pred;
    for (int i = 0; i < 300; ++i) {
        c.push_back(i % 3);
        const int cls = (i % 3 + 2) % 3;
        pred.push_back(i % 10 == 0 ? (cls + 1) % 3 : cls);
    }
    const auto r = ev::consistency(pred, c);
    CHECK(r.value == doctest::Approx(0.9));
    CHECK(r.matching.map(0) == 2);
    CHECK(r.matching.map(1) == 0);
    CHECK(r.matching.map(2) == 1);
}

TEST_CASE("kmeans: recovers blobs and matches scikit-learn's inertia") {
    const auto j = load_fixture("kmeans_cases.json");
    for (const auto& c : j["cases"]) {
        INFO("case " << c["name"].get<std::string>());
        const auto n = c["n"].get<std::size_t>();
        const auto d = c["d"].get<std::size_t>();
        const auto k = c["k"].get<std::size_t>();
        const auto data = c["data"].get<std::vector<float>>();
        const auto truth = c["labels_true"].get<std::vector<int>>();
        const double sk = c["sklearn_inertia"].get<double>();
        ev::kmeans_options o;
        o.k = k;
        o.seed = 1;
        const auto r = ev::kmeans(data, n, d, o);
        MESSAGE(c["name"].get<std::string>() << ": inertia " << r.inertia << " vs sklearn " << sk);
        CHECK(r.inertia <= sk * (1 + 1e-4));
        CHECK(r.inertia >= sk * (1 - 1e-3));  // and not suspiciously below
        CHECK(r.labels.size() == n);
        CHECK(r.centers.size() == k * d);
        CHECK(ev::ari(truth, r.labels) >= c["sklearn_ari_vs_true"].get<double>() - 1e-3);
        // deterministic
        const auto r2 = ev::kmeans(data, n, d, o);
        CHECK(r2.labels == r.labels);
        CHECK(r2.inertia == r.inertia);
    }
}

TEST_CASE("kmeans: well-separated blobs, argument checks, speed") {
    std::vector<int> truth;
    const auto x = blobs(2000, 16, 10, 10.0, 1.0, 5, truth);
    ev::kmeans_options o;
    o.k = 10;
    o.seed = 3;
    const auto r = ev::kmeans(x, 2000, 16, o);
    CHECK(ev::cluster_accuracy(truth, r.labels) == doctest::Approx(1.0));
    CHECK(ev::nmi(truth, r.labels) == doctest::Approx(1.0));
    // labels are the nearest centres
    for (std::size_t i = 0; i < 2000; i += 97) {
        double best = 1e300;
        int arg = -1;
        for (int c = 0; c < 10; ++c) {
            double s = 0;
            for (std::size_t t = 0; t < 16; ++t) {
                const double diff = x[i * 16 + t] - r.centers[static_cast<std::size_t>(c) * 16 + t];
                s += diff * diff;
            }
            if (s < best) {
                best = s;
                arg = c;
            }
        }
        CHECK(r.labels[i] == arg);
    }
    const auto sc = ev::cluster_and_score(x, 2000, 16, truth, o);
    CHECK(sc.acc == doctest::Approx(1.0));
    CHECK(sc.ari == doctest::Approx(1.0));

    o.k = 0;
    CHECK_THROWS_AS(ev::kmeans(x, 2000, 16, o), ev::metric_error);
    o.k = 3;
    CHECK_THROWS_AS(ev::kmeans(x, 2000, 15, o), ev::metric_error);
    o.k = 2001;
    CHECK_THROWS_AS(ev::kmeans(x, 2000, 16, o), ev::metric_error);
    // k = n and duplicate points still work
    const std::vector<float> dup = {1, 1, 1, 1, 2, 2};
    o.k = 3;
    const auto rd = ev::kmeans(dup, 3, 2, o);
    CHECK(rd.inertia == doctest::Approx(0.0));

    // paper-sized problem: 10,000 x 40, k = 10, 10 restarts
    const auto big = blobs(10000, 40, 10, 3.0, 1.0, 9, truth);
    o.k = 10;
    o.n_init = 10;
    const auto t0 = std::chrono::steady_clock::now();
    const auto rb = ev::kmeans(big, 10000, 40, o);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("kmeans 10000 x 40, k = 10, n_init = 10: " << secs << " s, " << rb.iterations
                                                      << " iterations in the best restart");
    CHECK(ev::cluster_accuracy(truth, rb.labels) > 0.95);
}

TEST_CASE("frechet distance and diversity match NumPy / SciPy fixtures") {
    const auto j = load_fixture("feature_cases.json");
    for (const auto& c : j["cases"]) {
        INFO("case " << c["name"].get<std::string>());
        const auto d = c["d"].get<std::size_t>();
        const auto a = c["a"].get<std::vector<float>>();
        const auto b = c["b"].get<std::vector<float>>();
        const auto n1 = c["n1"].get<std::size_t>(), n2 = c["n2"].get<std::size_t>();
        const double fd = ev::frechet_distance(a, n1, b, n2, d);
        CHECK(std::abs(fd - c["frechet"].get<double>()) < 1e-6 * std::max(1.0, c["frechet"].get<double>()));
        CHECK(std::abs(ev::mean_pairwise_distance(a, n1, d) - c["mean_pairwise_a"].get<double>()) < 1e-6);
        CHECK(std::abs(ev::frechet_distance(a, n1, a, n1, d)) < 1e-8);
    }
    // diagonal Gaussians: |m1 - m2|^2 + sum (sqrt v1 - sqrt v2)^2
    ev::gaussian_stats g1{2, {0.0, 1.0}, {4.0, 0.0, 0.0, 1.0}};
    ev::gaussian_stats g2{2, {1.0, 1.0}, {1.0, 0.0, 0.0, 9.0}};
    CHECK(ev::frechet_distance(g1, g2) == doctest::Approx(1.0 + 1.0 + 4.0));
    CHECK_THROWS_AS(ev::frechet_distance(g1, ev::gaussian_stats{3, {}, {}}), ev::metric_error);

    const std::vector<float> pts = {0, 0, 3, 4, 0, 0, 6, 8, 100, 100};
    const std::vector<int> lab = {0, 0, 1, 1, 2};
    const auto div = ev::intra_class_diversity(pts, 5, 2, lab);
    CHECK(div.classes == std::vector<std::int64_t>{0, 1});  // class 2 has one sample: skipped
    CHECK(div.per_class[0] == doctest::Approx(5.0));
    CHECK(div.per_class[1] == doctest::Approx(10.0));
    CHECK(div.mean == doctest::Approx(7.5));
    CHECK(ev::mean_pairwise_distance(std::vector<float>{0, 0, 3, 4, 6, 8}, 3, 2) ==
          doctest::Approx((5.0 + 10.0 + 5.0) / 3.0));
}
