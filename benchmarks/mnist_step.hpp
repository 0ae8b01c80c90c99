/// @file benchmarks/mnist_step.hpp
/// The MNIST CD-GAN training step that the benchmarks time (BM_mnist_step in bench_step.cpp) and that
/// cdgan_profile_step runs for profilers: the paper's MNIST networks (presets::mnist_nets<30, 10, 40>),
/// the "mnist" preset's options and Adam settings with the E batch given, on fixed random real images.
#pragma once
#include <cstddef>

#include <cdgan/cdgan.hpp>
#include <cdgan/gan/presets.hpp>

namespace cdgan::bench {

using mnist_nets = presets::mnist_nets<30, 10, 40>;
using mnist_model = model<mnist_nets::generator, mnist_nets::critic, mnist_nets::encoder, mnist_nets::objective,
                          optim::adam, cpu>;

/// A model and one iteration's real images; run() is one step of Algorithm 1.
struct mnist_step {
  model_options options;
  mnist_model net;
  tensor<mnist_model::image_shape> real;

  explicit mnist_step(std::size_t batch_e)
      : options(options_for(batch_e)),
        net(options, adam_for(), adam_for(), adam_for()),
        real(options.n_critic * options.batch_d) {
    rng g(7);
    real = g.uniform(0.f, 1.f);
  }

  auto run() { return net.step(real.cv()); }

 private:
  static model_options options_for(std::size_t batch_e) {
    model_options o = presets::find("mnist").model;
    o.batch_e = batch_e;
    return o;
  }
  static optim::adam_options adam_for() {
    const auto p = presets::find("mnist");
    return optim::adam_options{}.lr(p.lr).betas(p.adam_beta1, p.adam_beta2);
  }
};

}  // namespace cdgan::bench
