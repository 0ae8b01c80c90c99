/// @file benchmarks/bench_layers.cpp
/// The kernels of the MNIST CD-GAN networks (presets::mnist_nets) at their shapes, on the CPU backend:
/// - BM_gemm: backend<cpu>::gemm at the shapes the layers issue (batch 64, and the encoder's conv at
///   batch 512), named by layer and pass;
/// - BM_layer: forward + backward (input and parameter gradients) of conv, conv_transpose, dense and
///   batch_norm at batch 64.
/// The argument is the number of threads. FLOP/s counts 2 per multiply-accumulate (benchmarks/flops.hpp);
/// batch_norm, which has none, counts a nominal 16 FLOPs per element (8 forward: mean, variance,
/// normalise, affine; 8 backward: two reductions and the input gradient) and also reports
/// elements per second (items_per_second).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

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
