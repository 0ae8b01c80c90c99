/// @file benchmarks/bench_eval.cpp
/// The evaluation protocol's cost: eval::kmeans (k = 10, 10 seeded restarts, scikit-learn's defaults
/// otherwise) on 10,000 × 40 features, then ACC (Hungarian), NMI and ARI against the true labels —
/// what benchmarks/sklearn_kmeans.py times with scikit-learn's KMeans(n_clusters=10, n_init=10).
///
/// The features are the same numbers as that script's: one SplitMix64 stream (seed 2024, doubles from
/// the top 53 bits), first the 10 × 40 centres, uniform in [-1, 1), then for each point i (label
/// i mod 10) 20 Box–Muller pairs u1, u2 → sqrt(−2 ln(1 − u1)) (cos, sin)(2π u2), x = centre + σ·noise
/// (σ = 1), cast to float. The argument is the number of threads (cdgan::set_num_threads: the OpenMP
/// threads Eigen's products may use). Counters: items_per_second = clusterings per second, and the
/// scores, the Lloyd iterations of the best restart and a checksum of the data (to compare with the
/// script's output).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <vector>

#include <cdgan/backend/cpu/backend.hpp>  // set_num_threads, num_threads
#include <cdgan/eval/metrics.hpp>

namespace {

constexpr std::size_t n_points = 10000, dims = 40, clusters = 10;
constexpr std::uint64_t data_seed = 2024;
constexpr double sigma = 1.0;

struct clustered_data {
  std::vector<float> x;
  std::vector<int> labels;
  double checksum = 0;
};

const clustered_data& data() {
  static const clustered_data d = [] {
    clustered_data r;
    cdgan::data::splitmix64 g(data_seed);
    std::vector<double> centres(clusters * dims);
    for (auto& c : centres) c = 2.0 * cdgan::data::uniform_unit(g) - 1.0;
    r.x.resize(n_points * dims);
    r.labels.resize(n_points);
    for (std::size_t i = 0; i < n_points; ++i) {
      const std::size_t l = i % clusters;
      r.labels[i] = static_cast<int>(l);
      for (std::size_t j = 0; j < dims; j += 2) {
        const double u1 = cdgan::data::uniform_unit(g), u2 = cdgan::data::uniform_unit(g);
        const double rad = std::sqrt(-2.0 * std::log(1.0 - u1)), a = 2.0 * std::numbers::pi * u2;
        r.x[i * dims + j] = static_cast<float>(centres[l * dims + j] + sigma * rad * std::cos(a));
        r.x[i * dims + j + 1] = static_cast<float>(centres[l * dims + j + 1] + sigma * rad * std::sin(a));
      }
    }
    for (float v : r.x) r.checksum += static_cast<double>(v);
    return r;
  }();
  return d;
}

void BM_kmeans_metrics(benchmark::State& state) {
  const int saved = cdgan::num_threads();
  cdgan::set_num_threads(static_cast<int>(state.range(0)));
  const auto& d = data();
  cdgan::eval::kmeans_options o;
  o.k = clusters;
  o.n_init = 10;
  cdgan::eval::clustering_scores s;
  std::size_t iterations = 0;
  std::uint64_t run = 0;
  for (auto _ : state) {
    o.seed = run++;
    const auto km = cdgan::eval::kmeans(d.x, n_points, dims, o);
    s = cdgan::eval::score_clustering(d.labels, km.labels);
    iterations = km.iterations;
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["acc"] = s.acc;
  state.counters["nmi"] = s.nmi;
  state.counters["ari"] = s.ari;
  state.counters["iterations"] = static_cast<double>(iterations);
  state.counters["data_checksum"] = d.checksum;
  state.SetLabel("10000x40, k=10, n_init=10");
  cdgan::set_num_threads(saved);
}

}  // namespace

BENCHMARK(BM_kmeans_metrics)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
