// Allocation discipline of a full CD-GAN training step, counted at the allocator itself.
//
// This program replaces the global operator new / delete with counting versions (so it is its own
// executable: the replacement would count every other test's allocations too), builds the paper's
// MNIST networks (presets::mnist_nets<30, 10, 40>, WGAN-GP, Adam) with small batches, runs two steps
// (the first sizes every buffer), then counts heap allocations during three more steps: on one
// thread without labelled anchors, and on two threads (the CPU backend's thread pool must not
// allocate per job either) with them. Any allocation inside those steps fails the test and prints
// how many.
// cdgan's own device-buffer counter (allocation_count()) is checked too.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include <cdgan/cdgan.hpp>
#include <cdgan/gan/presets.hpp>

namespace {
std::atomic<std::size_t> g_news{0};
}

void* operator new(std::size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

int main() {
  using namespace cdgan;
  using nets = presets::mnist_nets<30, 10, 40>;
  using model_t = model<nets::generator, nets::critic, nets::encoder, nets::objective, optim::adam, cpu>;
  int failures = 0;
  struct config {
    int threads;
    bool anchors;
  };
  for (auto [threads, anchors] : {config{1, false}, config{2, true}}) {
      set_num_threads(threads);
      model_options o;
      o.batch_d = 16;
      o.batch_g = 16;
      o.batch_e = 32;
      const auto adam = optim::adam_options{}.lr(1e-4f).betas(0.5f, 0.9f);
      model_t m(o, adam, adam, adam);
      tensor<model_t::image_shape> real_x(o.batch_d), lab_x(anchors ? 10 : 0);
      tensor<shape<1>> lab(anchors ? 10 : 0);
      std::vector<real> labels_host;
      for (int c = 0; c < (anchors ? 10 : 0); ++c) labels_host.push_back(static_cast<real>(c));
      if (anchors) lab.from_host(labels_host);
      rng data(3);
      auto step = [&] {
        real_x = data.uniform();
        if (anchors) lab_x = data.uniform();
        return anchors ? m.step(real_x.cv(), lab_x.cv(), lab.data()) : m.step(real_x.cv());
      };
      step();
      step();
      const std::size_t news = g_news.load(), buffers = allocation_count();
      float sum = 0;
      for (int i = 0; i < 3; ++i) {
        const auto r = step();
        sum += r.d_loss + r.g_gan + r.e_lc;
      }
      const std::size_t during = g_news.load() - news, buffer_allocs = allocation_count() - buffers;
      std::printf("threads %d, anchors %s: %zu heap allocations and %zu device-buffer allocations in 3 steps (losses %s)\n",
                  threads, anchors ? "yes" : "no", during, buffer_allocs, std::isfinite(sum) ? "finite" : "NOT FINITE");
      if (during != 0 || buffer_allocs != 0 || !std::isfinite(sum)) ++failures;
    }
  std::printf(failures ? "FAILED: a training step allocated (or its losses were not finite)\n"
                       : "passed: no allocation inside a training step after the first two\n");
  return failures ? 1 : 0;
}
