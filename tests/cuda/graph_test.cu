// The training step recorded as a CUDA graph (model_options::cuda_graph) against the same step run as
// it is: the paper's MNIST model (presets::mnist_nets<30, 10, 40>, WGAN-GP, contrastive and content
// losses, Adam), two models with the same seed on the same GPU, one with graphs and one without, fed
// the same real batches through the same device buffer (as the trainer's gather does), one model
// after the other. A replay runs
// the same kernels with the same arguments on the same data, and everything that changes from step to
// step (the Philox draw counter, Adam's step count) is read from device memory, so the two runs must
// agree bit for bit: every loss of every step and every array of the final state. The cases also
// check that the graph was recorded and replayed as often as model_options::cuda_graph says, that an
// allocation between steps (an evaluation at another batch size) makes the model record again, and
// that a β1 ramp (a host value that changes every step) keeps the step from being recorded until it
// ends. Without a CUDA device every case prints "SKIPPED: no CUDA device" (see cuda_test.hpp).
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cdgan/gan/latent.hpp"
#include "cdgan/gan/model.hpp"
#include "cdgan/gan/presets.hpp"
#include "cuda_test.hpp"

using namespace cdgan;

namespace {

using nets = presets::mnist_nets<30, 10, 40>;
using gpu_model = model<nets::generator, nets::critic, nets::encoder, nets::objective, optim::adam, cuda>;
using image = gpu_model::image_shape;

model_options options(bool graph) {
  model_options o;
  o.batch_d = 16;
  o.batch_g = 16;
  o.batch_e = 32;
  o.seed = 11;
  o.cuda_graph = graph;
  return o;
}
optim::adam_options adam() { return optim::adam_options{}.lr(1e-4f).betas(0.5f, 0.9f); }

std::vector<real> state(gpu_model& m) {
  std::vector<real> all;
  m.for_each_state([&](const std::string&, real* p, std::size_t n, const auto&) {
    const auto h = cdgan_test::host_of(p, n, cuda{});
    all.insert(all.end(), h.begin(), h.end());
  });
  return all;
}
bool same_bits(real a, real b) { return std::memcmp(&a, &b, sizeof a) == 0; }
std::string describe(const step_report& r) {
  return "d " + std::to_string(r.d_loss) + " gp " + std::to_string(r.gp) + " g_gan " + std::to_string(r.g_gan) +
         " g_lc " + std::to_string(r.g_lc) + " g_lz " + std::to_string(r.g_lz) + " e_lc " + std::to_string(r.e_lc) +
         " e_lz " + std::to_string(r.e_lz);
}
bool same_losses(const step_report& a, const step_report& b) {
  return same_bits(a.d_loss, b.d_loss) && same_bits(a.gp, b.gp) && same_bits(a.g_gan, b.g_gan) &&
         same_bits(a.g_lc, b.g_lc) && same_bits(a.g_lz, b.g_lz) && same_bits(a.e_lc, b.e_lc) && same_bits(a.e_lz, b.e_lz);
}

/// Trains m for `steps` steps on the batches of a fixed seed, each uploaded into the same device buffer
/// before its step; `between(s)` runs after step s. Returns the step reports.
template <class Between>
std::vector<step_report> train(gpu_model& m, int steps, Between&& between, const tensor<image, cuda>* labelled = nullptr,
                               const tensor<shape<1>, cuda>* labels = nullptr) {
  const std::size_t B = m.options().n_critic * m.options().batch_d;
  tensor<image, cuda> batch(B);
  tensor<image, cpu> host(B);
  rng data(5);
  std::vector<step_report> reports;
  for (int s = 0; s < steps; ++s) {
    host = data.uniform(0.f, 1.f);
    batch.from_host(host.to_host());
    reports.push_back(m.step(batch.cv(), labelled ? labelled->cv() : cview<image, cuda>{}, labels ? labels->data() : nullptr));
    between(s + 1);
  }
  return reports;
}

/// `graph` and `plain` trained one after the other on the same batches: every step's losses equal.
template <class Between>
void side_by_side(gpu_model& graph, gpu_model& plain, int steps, Between&& between, const tensor<image, cuda>* labelled = nullptr,
                  const tensor<shape<1>, cuda>* labels = nullptr) {
  const auto a = train(graph, steps, between, labelled, labels);
  const auto b = train(plain, steps, between, labelled, labels);
  for (int s = 0; s < steps; ++s)
    CHECK_MESSAGE(same_losses(a[s], b[s]), "step " << s + 1 << ": graph " << describe(a[s]) << " | plain " << describe(b[s]));
}

void check_same_state(gpu_model& graph, gpu_model& plain) {
  const auto a = state(graph), b = state(plain);
  REQUIRE(a.size() == b.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differ += !same_bits(a[i], b[i]);
  CHECK_MESSAGE(differ == 0, differ << " of " << a.size() << " state values differ between the replayed and the plain run");
  CHECK(graph.random().calls() == plain.random().calls());
  CHECK(graph.g_optimiser().step_count() == plain.g_optimiser().step_count());
  CHECK(graph.d_optimiser().step_count() == plain.d_optimiser().step_count());
  CHECK(graph.e_optimiser().step_count() == plain.e_optimiser().step_count());
}

}  // namespace

TEST_CASE("graph: replaying the recorded training step gives the bits of running it") {
  CDGAN_REQUIRE_GPU();
  for (const bool few_labels : {false, true}) {
    CAPTURE(few_labels);
    model_options o = options(true), p = options(false);
    o.real_anchors = p.real_anchors = few_labels;
    o.n_critic = p.n_critic = few_labels ? 2 : 1;
    auto g = std::make_unique<gpu_model>(o, adam(), adam(), adam());
    auto q = std::make_unique<gpu_model>(p, adam(), adam(), adam());
    tensor<image, cuda> lab(8);
    tensor<shape<1>, cuda> ids(8);
    if (few_labels) {
      rng r(3);
      lab = r.uniform(0.f, 1.f);
      std::vector<real> y(8);
      for (std::size_t i = 0; i < y.size(); ++i) y[i] = real(i % 10);
      ids.from_host(y);
    }
    constexpr int steps = 12;
    side_by_side(*g, *q, steps, [](int) {}, few_labels ? &lab : nullptr, few_labels ? &ids : nullptr);
    MESSAGE("graph model: " << g->graph_status() << "; plain model: " << q->graph_status());
    // step 1 runs as it is (first optimiser steps), step 2 is recorded, steps 3..12 replay it
    CHECK(g->graph_recordings() == 1);
    CHECK(g->graph_replays() == steps - 2);
    CHECK(q->graph_recordings() == 0);
    check_same_state(*g, *q);
  }
}

TEST_CASE("graph: an allocation between steps makes the model record the step again") {
  CDGAN_REQUIRE_GPU();
  auto g = std::make_unique<gpu_model>(options(true), adam(), adam(), adam());
  auto q = std::make_unique<gpu_model>(options(false), adam(), adam(), adam());
  latent_batch<30, 10, cuda> codes;
  rng r(8);
  codes.sample(200, 1.f, r, false);
  gpu_model* current = nullptr;
  auto evaluate = [&](int s) {
    if (s == 5) current->generate(codes.zc.cv());  // an evaluation at batch 200: G's buffers grow (and move)
  };
  current = g.get();
  const auto a = train(*g, 10, evaluate);
  current = q.get();
  const auto b = train(*q, 10, evaluate);
  for (int s = 0; s < 10; ++s) CHECK_MESSAGE(same_losses(a[s], b[s]), "step " << s + 1 << ": graph " << describe(a[s]) << " | plain " << describe(b[s]));
  MESSAGE("graph model: " << g->graph_status());
  // steps 1 (plain), 2 (recorded), 3-5 (replayed); the allocation: 6 plain, 7 recorded, 8-10 replayed
  CHECK(g->graph_recordings() == 2);
  CHECK(g->graph_replays() == 6);
  check_same_state(*g, *q);
}

TEST_CASE("graph: a β1 ramp keeps the step from being recorded until it ends") {
  CDGAN_REQUIRE_GPU();
  model_options o = options(true), p = options(false);
  o.beta1_ramp = p.beta1_ramp = 5;  // β1 changes in steps 1..5, then stays
  auto g = std::make_unique<gpu_model>(o, adam(), adam(), adam());
  auto q = std::make_unique<gpu_model>(p, adam(), adam(), adam());
  side_by_side(*g, *q, 9, [](int) {});
  MESSAGE("graph model: " << g->graph_status());
  // steps 1-4 plain (a new β1 each), 5 plain (the first with the final β1), 6 recorded, 7-9 replayed
  CHECK(g->graph_recordings() == 1);
  CHECK(g->graph_replays() == 3);
  check_same_state(*g, *q);
}
