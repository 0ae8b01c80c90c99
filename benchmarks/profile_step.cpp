/// @file benchmarks/profile_step.cpp
/// A driver for profilers: runs the same MNIST CD-GAN step as BM_mnist_step (bench_step.cpp) many
/// times on one model, after warm-up steps, and prints the fastest and the median step. Unlike the
/// Google Benchmark, which builds a new model per run, every timed step here reuses warm buffers, so
/// a `perf record -D <ms>` started after the warm-up sees the steady state a training process has.
///
///   cdgan_profile_step [E batch = 64] [threads = 1] [timed steps = 10] [warm-up steps = 3]
///   perf record -F 999 -D 4000 -- cdgan_profile_step 64 1 20
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mnist_step.hpp"

namespace {

long positive_arg(int argc, char** argv, int i, long fallback, const char* what) {
  if (argc <= i) return fallback;
  char* end = nullptr;
  const long v = std::strtol(argv[i], &end, 10);
  if (end == argv[i] || *end != '\0' || v <= 0) {
    std::fprintf(stderr, "cdgan_profile_step: argument %d (%s) must be a positive integer, got '%s'\n", i, what, argv[i]);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  const auto batch_e = static_cast<std::size_t>(positive_arg(argc, argv, 1, 64, "E batch"));
  const auto threads = static_cast<int>(positive_arg(argc, argv, 2, 1, "threads"));
  const auto steps = static_cast<std::size_t>(positive_arg(argc, argv, 3, 10, "timed steps"));
  const auto warmup = positive_arg(argc, argv, 4, 3, "warm-up steps");
  cdgan::set_num_threads(threads);
  cdgan::bench::mnist_step s(batch_e);
  for (long i = 0; i < warmup; ++i) s.run();
  std::vector<double> ms;
  for (std::size_t i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    s.run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("MNIST CD-GAN step, E batch %zu, %d thread(s), %zu steps: fastest %.1f ms, median %.1f ms\n", batch_e,
              threads, steps, ms.front(), ms[ms.size() / 2]);
}
