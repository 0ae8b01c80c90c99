/// @file benchmarks/bench_layers.cpp
/// The kernels of the MNIST CD-GAN networks (presets::mnist_nets) at their shapes, on the CPU backend:
/// - BM_gemm: backend<cpu>::gemm at the shapes the layers issue (batch 64, and the encoder's conv at
///   batch 512), named by layer and pass;
/// - BM_layer: forward + backward (input and parameter gradients) of conv, conv_transpose, dense and
///   batch_norm at batch 64.
/// - BM_fma_peak/ymm, BM_fma_peak/zmm: one core's FMA ceiling, 12 independent chains of 256-bit or
///   512-bit FMAs (the latter where the build has AVX-512F); on Zen 4 the two are equal, as 512-bit
///   operations run as two 256-bit halves;
/// - BM_micro_kernel: the GEMM's register-tile kernel alone on L1-resident panels (KC = 256), its
///   ceiling against BM_fma_peak. These three are single-threaded and rate their FLOPs per CPU second
///   (the others per wall second), so that a busy machine lowers them less.
/// The argument is the number of threads. FLOP/s counts 2 per multiply-accumulate (benchmarks/flops.hpp);
/// batch_norm, which has none, counts a nominal 16 FLOPs per element (8 forward: mean, variance,
/// normalise, affine; 8 backward: two reductions and the input gradient) and also reports
/// elements per second (items_per_second).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include <cdgan/cdgan.hpp>

#include "flops.hpp"

namespace {

using cdgan::real;
using cdgan::shape;
namespace nn = cdgan::nn;

/// Sets the thread count for one benchmark and restores it afterwards.
struct thread_scope {
  int saved = cdgan::num_threads();
  explicit thread_scope(int n) { cdgan::set_num_threads(n); }
  ~thread_scope() { cdgan::set_num_threads(saved); }
};

using cdgan::bench::gemm_shape;

void BM_gemm(benchmark::State& state, gemm_shape s) {
  thread_scope threads(static_cast<int>(state.range(0)));
  cdgan::tensor<shape<1>> a(s.m * s.k), b(s.k * s.n), c(s.m * s.n);
  cdgan::rng g(1);
  a = g.uniform(-1.f, 1.f);
  b = g.uniform(-1.f, 1.f);
  for (auto _ : state) {
    cdgan::backend<cdgan::cpu>::gemm(s.ta, s.tb, s.m, s.n, s.k, 1, a.data(), b.data(), 0, c.data());
    benchmark::ClobberMemory();
  }
  const double flops = s.flops();
  state.counters["FLOP/s"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
}

/// Forward + backward (grads::assign) of policy L on input shape In at batch B.
template <class L, class In>
void BM_layer(benchmark::State& state) {
  thread_scope threads(static_cast<int>(state.range(0)));
  constexpr std::size_t B = 64;
  using layer_t = nn::bind_t<L, In, cdgan::cpu>;
  layer_t layer;
  cdgan::rng g(3);
  layer.init(g);
  cdgan::tensor<In> x(B);
  cdgan::tensor<typename layer_t::out_shape> dy(B);
  x = g.normal(0.f, 1.f);
  dy = g.normal(0.f, 1.f);
  for (auto _ : state) {
    auto y = layer.forward(x.cv(), cdgan::mode::train);
    benchmark::DoNotOptimize(y.ptr);
    auto dx = layer.backward(dy.cv(), nn::grads::assign);
    benchmark::DoNotOptimize(dx.ptr);
    benchmark::ClobberMemory();
  }
  const double macs = cdgan::bench::macs_per_sample<layer_t>();
  const double flops = macs > 0 ? 3 * 2 * macs * B : 16.0 * double(In::size) * B;  // see the file comment
  state.counters["FLOP/s"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(B * In::size));
  state.SetLabel(layer_t::name() + " on " + In::str() + ", batch 64");
}

#if defined(__AVX2__) && defined(__FMA__)
/// 12 independent FMA chains of vector type V (one core; FLOP/s = 2 × lanes × FMAs).
template <class V, class Splat, class Fma>
void fma_peak(benchmark::State& state, Splat splat, Fma fma, double lanes) {
  constexpr long n = 1 << 20;
  for (auto _ : state) {
    V acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = splat(static_cast<float>(i));
    const V x = splat(1.0000001f), y = splat(0.9999999f);
    for (long k = 0; k < n; ++k) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) acc[i] = fma(acc[i], x, y);
    }
    for (int i = 0; i < 12; ++i) benchmark::DoNotOptimize(acc[i]);
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * lanes * 12.0 * n * double(state.iterations()), benchmark::Counter::kIsRate);
}
void BM_fma_peak_ymm(benchmark::State& state) {
  fma_peak<__m256>(state, [](float v) { return _mm256_set1_ps(v); },
                   [](__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }, 8);
}
BENCHMARK(BM_fma_peak_ymm)->Name("BM_fma_peak/ymm")->Unit(benchmark::kMillisecond);
#if defined(__AVX512F__)
void BM_fma_peak_zmm(benchmark::State& state) {
  fma_peak<__m512>(state, [](float v) { return _mm512_set1_ps(v); },
                   [](__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }, 16);
}
BENCHMARK(BM_fma_peak_zmm)->Name("BM_fma_peak/zmm")->Unit(benchmark::kMillisecond);
#endif
#endif

#if CDGAN_CPU_GEMM
/// The GEMM micro-kernel alone: an MR×NR tile over KC = 256 of packed panels that stay in L1.
void BM_micro_kernel(benchmark::State& state) {
  namespace k = cdgan::detail::cpu_kernels;
  constexpr std::size_t kc = 256;
  alignas(64) static float a[k::mr * kc], b[k::nr * kc], c[k::mr * k::nr];  // the kernel loads B aligned
  for (std::size_t i = 0; i < k::mr * kc; ++i) a[i] = 0.001f * float(i % 97);
  for (std::size_t i = 0; i < k::nr * kc; ++i) b[i] = 0.002f * float(i % 89);
  for (auto _ : state) {
    for (int r = 0; r < 1000; ++r) k::micro_kernel(kc, a, b, c, k::nr, k::mr, k::nr, k::store_mode::add, 1.f);
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * k::mr * k::nr * kc * 1000.0 * double(state.iterations()),
                                                benchmark::Counter::kIsRate);
  state.SetLabel(std::to_string(k::mr) + "x" + std::to_string(k::nr) + " tile, KC 256");
}
BENCHMARK(BM_micro_kernel)->Unit(benchmark::kMillisecond);
#endif

void register_gemms() {
  for (const auto& s : cdgan::bench::mnist_gemm_shapes())
    benchmark::RegisterBenchmark((std::string("BM_gemm/") + s.name).c_str(), BM_gemm, s)
        ->ArgName("threads")
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
}
const int gemms_registered = (register_gemms(), 0);

#define CDGAN_BENCH_LAYER(name, ...)                                                                                  \
  BENCHMARK_TEMPLATE(BM_layer, __VA_ARGS__)->Name("BM_layer/" name)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond)

using conv64 = nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;
using conv128 = nn::conv<128, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;
using conv256 = nn::conv<256, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;
using convT64 = nn::conv_transpose<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;
using convT1 = nn::conv_transpose<1, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;

CDGAN_BENCH_LAYER("conv64_1x28x28", conv64, shape<1, 28, 28>);
CDGAN_BENCH_LAYER("conv128_64x14x14", conv128, shape<64, 14, 14>);
CDGAN_BENCH_LAYER("conv256_128x7x7", conv256, shape<128, 7, 7>);
CDGAN_BENCH_LAYER("conv_transpose64_128x7x7", convT64, shape<128, 7, 7>);
CDGAN_BENCH_LAYER("conv_transpose1_64x14x14", convT1, shape<64, 14, 14>);
CDGAN_BENCH_LAYER("dense1024_6272", nn::dense<1024>, shape<6272>);
CDGAN_BENCH_LAYER("dense6272_1024", nn::dense<6272>, shape<1024>);
CDGAN_BENCH_LAYER("batch_norm_6272", nn::batch_norm, shape<6272>);
CDGAN_BENCH_LAYER("batch_norm_64x14x14", nn::batch_norm, shape<64, 14, 14>);
CDGAN_BENCH_LAYER("batch_norm_1024", nn::batch_norm, shape<1024>);

}  // namespace
