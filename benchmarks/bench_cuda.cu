/// @file benchmarks/bench_cuda.cu
/// Google Benchmark timings of the CUDA backend (cdgan_bench_cuda):
/// - BM_gemm_cuda/<shape>: backend<cuda>::gemm against cublasSgemm called directly with the same
///   handle, stream, operands and math mode, interleaved in the same loop (the order alternates each
///   iteration) and timed with CUDA events. Reported time: cdgan's GEMM. Counters: `cdgan/cublas`
///   (the ratio of the two total GPU times; the issue's target is ≤ 1.10), `cublas_us`, `TFLOP/s`
///   (cdgan's). Argument tf32: 0 = exact FP32 (the default of cdgan), 1 = TF32 tensor cores allowed
///   (cuda_context::set_tf32) for both.
/// - BM_layer_cuda/<layer>: forward + backward (input and parameter gradients) of the MNIST networks'
///   layers at batch 64 (the encoder's convolutions also at 512), synchronised after each iteration.
/// - BM_mnist_step_cuda: one model::step of the paper's MNIST CD-GAN (presets::mnist_nets<30, 10, 40>,
///   WGAN-GP, Adam, the "mnist" preset), D/G batch 64, E batch 512 (the paper) or 64, tf32 0/1,
///   graph 0/1 (model_options::cuda_graph: the step recorded once as a CUDA graph and replayed, or
///   run kernel by kernel); model::step waits for the device at its end (it copies the losses to the
///   host). Counters: steps per second (items_per_second), FLOP/s and GFLOP/step
///   (benchmarks/flops.hpp's convention, as the CPU benchmark), `replays` (the graph replays in the
///   timed steps; with graph 1 it must equal the iterations, else the label says why not).
/// Without a usable CUDA device every benchmark reports the error "no CUDA device" (SkipWithError)
/// and the program exits normally.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <cdgan/cdgan.hpp>
#include <cdgan/gan/presets.hpp>

#include "flops.hpp"

namespace {

using cdgan::cuda;
using cdgan::real;
using cdgan::shape;
namespace nn = cdgan::nn;

bool skip_without_device(benchmark::State& state) {
  if (cdgan::cuda_available()) return false;
  state.SkipWithError("no CUDA device");
  return true;
}

/// Sets TF32 for one benchmark and restores the previous setting.
struct tf32_scope {
  bool saved;
  explicit tf32_scope(bool on) : saved(cdgan::cuda_context::instance().tf32()) { cdgan::cuda_context::instance().set_tf32(on); }
  ~tf32_scope() { cdgan::cuda_context::instance().set_tf32(saved); }
};

/// A pair of CUDA events on the cdgan stream.
struct event_pair {
  cudaEvent_t a = nullptr, b = nullptr;
  event_pair() {
    CDGAN_CUDA_CHECK(cudaEventCreate(&a));
    CDGAN_CUDA_CHECK(cudaEventCreate(&b));
  }
  ~event_pair() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  event_pair(const event_pair&) = delete;
  event_pair& operator=(const event_pair&) = delete;
};

using cdgan::bench::gemm_shape;

// Two square sizes (the card's FP32 peak), then the largest GEMMs of the MNIST step
// (benchmarks/flops.hpp's table, which the CPU benchmark runs in full).
std::vector<gemm_shape> gemm_shapes() {
  std::vector<gemm_shape> s = {{"square4096", false, false, 4096, 4096, 4096}, {"square8192", false, false, 8192, 8192, 8192}};
  for (const auto& g : cdgan::bench::mnist_gemm_shapes())
    for (const char* name : {"conv128_fwd_b512", "conv128_dW_b512", "conv256_dcol_b512", "dense6272to1024_fwd_b64",
                             "dense1024to6272_fwd_b64"})
      if (std::string(g.name) == name) s.push_back(g);
  return s;
}

void BM_gemm_cuda(benchmark::State& state, gemm_shape s) {
  if (skip_without_device(state)) return;
  try {
    tf32_scope tf32(state.range(0) != 0);
    auto& ctx = cdgan::cuda_context::instance();
    cdgan::tensor<shape<1>, cuda> a(s.m * s.k), b(s.k * s.n), c(s.m * s.n);
    cdgan::rng g(1);
    a = g.uniform(-1.f, 1.f);
    b = g.uniform(-1.f, 1.f);
    c = 0.f;
    // The direct call: the same transpose identity backend<cuda>::gemm uses (Cᵀ = op(B)ᵀ·op(A)ᵀ).
    const int m = static_cast<int>(s.m), n = static_cast<int>(s.n), k = static_cast<int>(s.k);
    const int lda = s.ta ? m : k, ldb = s.tb ? k : n, ldc = n;
    const cublasOperation_t opa = s.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = s.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const real one = 1, zero = 0;
    cublasHandle_t h = ctx.cublas();
    auto ours = [&] { cdgan::backend<cuda>::gemm(s.ta, s.tb, s.m, s.n, s.k, 1, a.data(), b.data(), 0, c.data()); };
    auto direct = [&] {
      CDGAN_CUBLAS_CHECK(cublasSgemm(h, opb, opa, n, m, k, &one, b.data(), ldb, a.data(), lda, &zero, c.data(), ldc));
    };
    ours();  // warm-up: cuBLAS picks its kernel, the handle and workspace exist
    direct();
    cdgan::backend<cuda>::synchronize();
    event_pair e1, e2, e3;
    double ours_ms = 0, direct_ms = 0;
    bool ours_first = true;
    for (auto _ : state) {
      // e1 → first → e2 → second → e3, alternating which one goes first
      CDGAN_CUDA_CHECK(cudaEventRecord(e1.a, ctx.stream()));
      ours_first ? ours() : direct();
      CDGAN_CUDA_CHECK(cudaEventRecord(e2.a, ctx.stream()));
      ours_first ? direct() : ours();
      CDGAN_CUDA_CHECK(cudaEventRecord(e3.a, ctx.stream()));
      CDGAN_CUDA_CHECK(cudaEventSynchronize(e3.a));
      float first = 0, second = 0;
      CDGAN_CUDA_CHECK(cudaEventElapsedTime(&first, e1.a, e2.a));
      CDGAN_CUDA_CHECK(cudaEventElapsedTime(&second, e2.a, e3.a));
      const double o = ours_first ? first : second, d = ours_first ? second : first;
      ours_ms += o;
      direct_ms += d;
      state.SetIterationTime(o * 1e-3);
      ours_first = !ours_first;
    }
    const double flops = s.flops(), it = double(state.iterations());
    state.counters["cdgan/cublas"] = direct_ms > 0 ? ours_ms / direct_ms : 0;
    state.counters["cublas_us"] = it > 0 ? 1e3 * direct_ms / it : 0;
    state.counters["TFLOP/s"] = ours_ms > 0 ? flops * it / (ours_ms * 1e-3) / 1e12 : 0;
    state.SetLabel(std::string(s.name) + (state.range(0) ? ", TF32" : ", FP32"));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void register_gemms() {
  for (const auto& s : gemm_shapes())
    benchmark::RegisterBenchmark((std::string("BM_gemm_cuda/") + s.name).c_str(), BM_gemm_cuda, s)
        ->ArgName("tf32")
        ->Arg(0)
        ->Arg(1)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
}
const int gemms_registered = (register_gemms(), 0);

/// Forward + backward (grads::assign) of policy L on input shape In at batch range(0), on the GPU.
template <class L, class In>
void BM_layer_cuda(benchmark::State& state) {
  if (skip_without_device(state)) return;
  try {
    const auto B = static_cast<std::size_t>(state.range(0));
    using layer_t = nn::bind_t<L, In, cuda>;
    auto layer = std::make_unique<layer_t>();
    cdgan::rng g(3);
    layer->init(g);
    cdgan::tensor<In, cuda> x(B);
    cdgan::tensor<typename layer_t::out_shape, cuda> dy(B);
    x = g.normal(0.f, 1.f);
    dy = g.normal(0.f, 1.f);
    layer->forward(x.cv(), cdgan::mode::train);  // sizes the layer's buffers
    layer->backward(dy.cv(), nn::grads::assign);
    cdgan::backend<cuda>::synchronize();
    for (auto _ : state) {
      auto y = layer->forward(x.cv(), cdgan::mode::train);
      benchmark::DoNotOptimize(y.ptr);
      auto dx = layer->backward(dy.cv(), nn::grads::assign);
      benchmark::DoNotOptimize(dx.ptr);
      cdgan::backend<cuda>::synchronize();
    }
    const double macs = cdgan::bench::macs_per_sample<layer_t>();
    const double flops = macs > 0 ? 3 * 2 * macs * double(B) : 16.0 * double(In::size) * double(B);
    state.counters["FLOP/s"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(B * In::size));
    state.SetLabel(layer_t::name() + " on " + In::str() + ", batch " + std::to_string(B));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

#define CDGAN_BENCH_LAYER_CUDA(name, ...)                                                                        \
  BENCHMARK_TEMPLATE(BM_layer_cuda, __VA_ARGS__)->Name("BM_layer_cuda/" name)->ArgName("batch")->Arg(64)->UseRealTime() \
      ->Unit(benchmark::kMicrosecond)

using conv64 = nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;
using conv128 = nn::conv<128, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;
using conv256 = nn::conv<256, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;
using convT64 = nn::conv_transpose<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;
using convT1 = nn::conv_transpose<1, nn::kernel<4>, nn::stride<2>, nn::pad<1>>;

CDGAN_BENCH_LAYER_CUDA("conv64_1x28x28", conv64, shape<1, 28, 28>)->Arg(512);
CDGAN_BENCH_LAYER_CUDA("conv128_64x14x14", conv128, shape<64, 14, 14>)->Arg(512);
CDGAN_BENCH_LAYER_CUDA("conv256_128x7x7", conv256, shape<128, 7, 7>)->Arg(512);
CDGAN_BENCH_LAYER_CUDA("conv_transpose64_128x7x7", convT64, shape<128, 7, 7>);
CDGAN_BENCH_LAYER_CUDA("conv_transpose1_64x14x14", convT1, shape<64, 14, 14>);
CDGAN_BENCH_LAYER_CUDA("dense1024_6272", nn::dense<1024>, shape<6272>);
CDGAN_BENCH_LAYER_CUDA("dense6272_1024", nn::dense<6272>, shape<1024>);
CDGAN_BENCH_LAYER_CUDA("batch_norm_6272", nn::batch_norm, shape<6272>);
CDGAN_BENCH_LAYER_CUDA("batch_norm_64x14x14", nn::batch_norm, shape<64, 14, 14>);

using nets = cdgan::presets::mnist_nets<30, 10, 40>;
using model_t = cdgan::model<nets::generator, nets::critic, nets::encoder, nets::objective, cdgan::optim::adam, cuda>;

void BM_mnist_step_cuda(benchmark::State& state) {
  if (skip_without_device(state)) return;
  try {
    tf32_scope tf32(state.range(1) != 0);
    const auto preset = cdgan::presets::find("mnist");
    cdgan::model_options o = preset.model;
    o.batch_e = static_cast<std::size_t>(state.range(0));
    o.cuda_graph = state.range(2) != 0;
    const auto adam = cdgan::optim::adam_options{}.lr(preset.lr).betas(preset.adam_beta1, preset.adam_beta2);
    auto m = std::make_unique<model_t>(o, adam, adam, adam);
    cdgan::tensor<model_t::image_shape, cuda> real(o.n_critic * o.batch_d);
    cdgan::rng g(7);
    real = g.uniform(0.f, 1.f);
    // the first steps size every buffer and pick the cuBLAS kernels; with graphs, step 2 is recorded
    for (int k = 0; k < 3; ++k) m->step(real.cv());
    cdgan::backend<cuda>::synchronize();
    const std::size_t replays = m->graph_replays();
    for (auto _ : state) {
      auto r = m->step(real.cv());
      benchmark::DoNotOptimize(r);
    }
    cdgan::bench::set_step_counters<model_t>(state, o);
    state.counters["replays"] = static_cast<double>(m->graph_replays() - replays);
    const bool replayed = m->graph_replays() - replays == state.iterations();
    state.SetLabel("D/G batch " + std::to_string(o.batch_d) + ", E batch " + std::to_string(o.batch_e) +
                   (state.range(1) ? ", TF32" : ", FP32") +
                   (!o.cuda_graph ? std::string(", no CUDA graph")
                                  : replayed ? std::string(", CUDA graph") : ", CUDA graph NOT replayed: " + m->graph_status()));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

BENCHMARK(BM_mnist_step_cuda)
    ->ArgNames({"batch_e", "tf32", "graph"})
    ->Args({512, 0, 0})
    ->Args({512, 0, 1})
    ->Args({512, 1, 1})
    ->Args({64, 0, 0})
    ->Args({64, 0, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::string why = cdgan::cuda_unavailable_reason();
  if (why.empty()) {
    int dev = 0, runtime = 0, driver = 0;
    cudaDeviceProp p{};
    if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&p, dev) == cudaSuccess) {
      benchmark::AddCustomContext("gpu", p.name);
      benchmark::AddCustomContext("gpu_sm", std::to_string(p.major) + "." + std::to_string(p.minor) + ", " +
                                                std::to_string(p.multiProcessorCount) + " SMs");
      benchmark::AddCustomContext("gpu_memory_gib", std::to_string(double(p.totalGlobalMem) / (1u << 30)));
    }
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    benchmark::AddCustomContext("cuda_runtime", std::to_string(runtime));
    benchmark::AddCustomContext("cuda_driver", std::to_string(driver));
  } else {
    benchmark::AddCustomContext("gpu", "none (" + why + ")");
    std::fprintf(stderr, "cdgan_bench_cuda: no CUDA device (%s): every benchmark is skipped\n", why.c_str());
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
