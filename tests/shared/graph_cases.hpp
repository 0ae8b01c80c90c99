// The cases of the recorded training step (model_options::cuda_graph), written once for a device:
// tests/cuda/graph_test.cu runs them on a GPU (CUDA graphs), tests/emulated/graph_emulated_test.cpp on
// the CPU with the emulated recording of core/graph.hpp (CDGAN_EMULATE_GRAPHS_ON_CPU), so that the
// model's recording and replaying logic is tested on every machine.
//
// The model: the paper's MNIST networks (presets::mnist_nets<30, 10, 40>, WGAN-GP, contrastive and
// content losses, Adam) at small batches. Two models with the same seed, one recording its step and
// one not, are trained one after the other on the same real batches, uploaded into one device buffer
// before each step (as the trainer's gather does). A replay runs the same calls with the same
// arguments on the same data, and everything that changes from step to step (the Philox counter,
// Adam's step count) is read from memory, so the two runs must agree bit for bit: every loss of every
// step and every array of the final state. The cases also check how often the step was recorded and
// replayed: after a step with an unchanged configuration ("key"), after memory was given back (an
// evaluation at a larger batch), and around a β1 ramp (a host value that changes every step).
#pragma once
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cdgan/gan/latent.hpp"
#include "cdgan/gan/model.hpp"
#include "cdgan/gan/presets.hpp"

namespace graph_cases {
using namespace cdgan;

using nets = presets::mnist_nets<30, 10, 40>;
template <class Device>
using model_t = model<nets::generator, nets::critic, nets::encoder, nets::objective, optim::adam, Device>;
using image = model_t<cpu>::image_shape;

inline model_options options(bool graph) {
  model_options o;
  o.batch_d = 16;
  o.batch_g = 16;
  o.batch_e = 32;
  o.seed = 11;
  o.cuda_graph = graph;
  return o;
}
inline optim::adam_options adam() { return optim::adam_options{}.lr(1e-4f).betas(0.5f, 0.9f); }

template <class Device>
std::vector<real> state(model_t<Device>& m) {
  std::vector<real> all;
  m.for_each_state([&](const std::string&, real* p, std::size_t n, const auto&) {
    std::vector<real> h(n);
    device_memory<Device>::to_host(h.data(), p, n * sizeof(real));
    all.insert(all.end(), h.begin(), h.end());
  });
  return all;
}
inline bool same_bits(real a, real b) { return std::memcmp(&a, &b, sizeof a) == 0; }
inline std::string describe(const step_report& r) {
  return "d " + std::to_string(r.d_loss) + " gp " + std::to_string(r.gp) + " g_gan " + std::to_string(r.g_gan) +
         " g_lc " + std::to_string(r.g_lc) + " g_lz " + std::to_string(r.g_lz) + " e_lc " + std::to_string(r.e_lc) +
         " e_lz " + std::to_string(r.e_lz);
}
inline bool same_losses(const step_report& a, const step_report& b) {
  return same_bits(a.d_loss, b.d_loss) && same_bits(a.gp, b.gp) && same_bits(a.g_gan, b.g_gan) &&
         same_bits(a.g_lc, b.g_lc) && same_bits(a.g_lz, b.g_lz) && same_bits(a.e_lc, b.e_lc) && same_bits(a.e_lz, b.e_lz);
}

/// Trains m for `steps` steps on the batches of a fixed seed, each uploaded into the same device buffer
/// before its step; `between(m, s)` runs after step s. Returns the step reports.
template <class Device, class Between>
std::vector<step_report> train(model_t<Device>& m, int steps, Between&& between, const tensor<image, Device>* labelled = nullptr,
                               const tensor<shape<1>, Device>* labels = nullptr) {
  const std::size_t B = m.options().n_critic * m.options().batch_d;
  tensor<image, Device> batch(B);
  tensor<image, cpu> host(B);
  rng data(5);
  std::vector<step_report> reports;
  for (int s = 0; s < steps; ++s) {
    host = data.uniform(0.f, 1.f);
    batch.from_host(host.to_host());
    reports.push_back(m.step(batch.cv(), labelled ? labelled->cv() : cview<image, Device>{}, labels ? labels->data() : nullptr));
    between(m, s + 1);
  }
  return reports;
}

/// The recording model and the plain one on the same batches: every step's losses, then the state.
template <class Device, class Between>
void compare(model_t<Device>& graph, model_t<Device>& plain, int steps, Between&& between,
             const tensor<image, Device>* labelled = nullptr, const tensor<shape<1>, Device>* labels = nullptr) {
  const auto a = train<Device>(graph, steps, between, labelled, labels);
  const auto b = train<Device>(plain, steps, between, labelled, labels);
  for (int s = 0; s < steps; ++s)
    CHECK_MESSAGE(same_losses(a[s], b[s]), "step " << s + 1 << ": recorded " << describe(a[s]) << " | plain " << describe(b[s]));
  const auto x = state(graph), y = state(plain);
  REQUIRE(x.size() == y.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i) differ += !same_bits(x[i], y[i]);
  CHECK_MESSAGE(differ == 0, differ << " of " << x.size() << " state values differ between the replayed and the plain run");
  CHECK(graph.random().calls() == plain.random().calls());
  CHECK(graph.g_optimiser().step_count() == plain.g_optimiser().step_count());
  CHECK(graph.d_optimiser().step_count() == plain.d_optimiser().step_count());
  CHECK(graph.e_optimiser().step_count() == plain.e_optimiser().step_count());
  MESSAGE("recording model: " << graph.graph_status() << "; plain model: " << plain.graph_status());
}

/// Unsupervised (n_critic 1) and few labels (labelled anchors, n_critic 2): step 1 runs as it is, step
/// 2 is recorded, steps 3..7 replay it; the plain model records nothing.
template <class Device>
void replay_equals_plain() {
  for (const bool few_labels : {false, true}) {
    CAPTURE(few_labels);
    model_options o = options(true), p = options(false);
    o.real_anchors = p.real_anchors = few_labels;
    o.n_critic = p.n_critic = few_labels ? 2 : 1;
    auto g = std::make_unique<model_t<Device>>(o, adam(), adam(), adam());
    auto q = std::make_unique<model_t<Device>>(p, adam(), adam(), adam());
    tensor<image, Device> lab(8);
    tensor<shape<1>, Device> ids(8);
    if (few_labels) {
      rng r(3);
      lab = r.uniform(0.f, 1.f);
      std::vector<real> y(8);
      for (std::size_t i = 0; i < y.size(); ++i) y[i] = real(i % 10);
      ids.from_host(y);
    }
    constexpr int steps = 7;
    compare<Device>(*g, *q, steps, [](auto&, int) {}, few_labels ? &lab : nullptr, few_labels ? &ids : nullptr);
    CHECK(g->graph_recordings() == 1);
    CHECK(g->graph_replays() == steps - 2);
    CHECK(q->graph_recordings() == 0);
    CHECK(q->graph_replays() == 0);
  }
}

/// An evaluation at batch 200 after step 4 grows G's buffers (memory given back): step 5 runs as it
/// is, 6 is recorded again, 7-8 replay; steps 3-4 replayed the first recording.
template <class Device>
void memory_given_back_records_again() {
  auto g = std::make_unique<model_t<Device>>(options(true), adam(), adam(), adam());
  auto q = std::make_unique<model_t<Device>>(options(false), adam(), adam(), adam());
  latent_batch<30, 10, Device> codes;
  rng r(8);
  codes.sample(200, 1.f, r, false);
  compare<Device>(*g, *q, 8, [&](auto& m, int s) {
    if (s == 4) m.generate(codes.zc.cv());
  });
  CHECK(g->graph_recordings() == 2);
  CHECK(g->graph_replays() == 4);
}

/// β1 changes in steps 1-2 of a ramp of 3 and stays from step 3: steps 1-3 run as they are (a new key
/// each), 4 is recorded, 5-6 replay.
template <class Device>
void ramp_delays_recording() {
  model_options o = options(true), p = options(false);
  o.beta1_ramp = p.beta1_ramp = 3;
  auto g = std::make_unique<model_t<Device>>(o, adam(), adam(), adam());
  auto q = std::make_unique<model_t<Device>>(p, adam(), adam(), adam());
  compare<Device>(*g, *q, 6, [](auto&, int) {});
  CHECK(g->graph_recordings() == 1);
  CHECK(g->graph_replays() == 2);
}

}  // namespace graph_cases
