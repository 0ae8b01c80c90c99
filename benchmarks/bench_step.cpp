/// @file benchmarks/bench_step.cpp
/// One iteration of Algorithm 1 (model::step) with the paper's MNIST networks
/// (presets::mnist_nets<30, 10, 40>, WGAN-GP, Adam, the "mnist" preset's options), on random real
/// images. Arguments: E batch (512 as the paper, or 64) and the number of threads.
/// Counters: items_per_second = steps per second, FLOP/s from the layer shapes (benchmarks/flops.hpp).
#include <benchmark/benchmark.h>

#include "flops.hpp"
#include "mnist_step.hpp"

namespace {

void BM_mnist_step(benchmark::State& state) {
  const auto threads = static_cast<int>(state.range(1));
  const int saved = cdgan::num_threads();
  cdgan::set_num_threads(threads);
  cdgan::bench::mnist_step s(static_cast<std::size_t>(state.range(0)));
  const cdgan::model_options& o = s.options;
  s.run();  // the first step sizes every buffer

  for (auto _ : state) {
    auto r = s.run();
    benchmark::DoNotOptimize(r);
  }

  cdgan::bench::set_step_counters<cdgan::bench::mnist_model>(state, o);
  state.SetLabel("E batch " + std::to_string(o.batch_e) + ", " + std::to_string(threads) + " thread(s)");
  cdgan::set_num_threads(saved);
}

}  // namespace

BENCHMARK(BM_mnist_step)
    ->ArgNames({"batch_e", "threads"})
    ->Args({512, 1})
    ->Args({512, 2})
    ->Args({64, 1})
    ->Args({64, 2})
    ->Args({128, 1})  // the cost against E batch (64 to 1024) at one thread
    ->Args({256, 1})
    ->Args({1024, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->MinTime(2.0);
