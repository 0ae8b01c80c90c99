// A user program: build a small network, train it a few steps, check that the output is finite.
// Returns 0 only if everything ran and every output is finite.
#include <cdgan/cdgan.hpp>

#include <cmath>
#include <iostream>

namespace nn = cdgan::nn;

using net_t = nn::sequential<nn::input<1, 8, 8>, nn::flatten, nn::dense<16>, nn::leaky_relu<>, nn::dense<4>, nn::tanh>;

int main() {
  nn::network<net_t> net;
  cdgan::rng g(1);
  net.init(g);
  cdgan::optim::adam opt{net, cdgan::optim::adam_options{}.lr(1e-3f).betas(0.5f, 0.9f)};

  cdgan::tensor<cdgan::shape<1, 8, 8>> x(5);
  cdgan::tensor<cdgan::shape<4>> dy(5);
  x = g.normal();
  for (int step = 0; step < 3; ++step) {
    auto y = net.forward(x.cv());
    dy = y * 2.f;  // gradient of sum(y^2)
    net.backward(dy.cv());
    opt.step();
  }
  auto y = net.forward(x.cv(), cdgan::mode::eval);
  bool finite = true;
  for (std::size_t i = 0; i < y.size(); ++i) finite = finite && std::isfinite(y.ptr[i]);
  std::cout << "cdgan " << cdgan::version_string << ": " << nn::network<net_t>::out_shape::str() << " output "
            << (finite ? "finite" : "NOT finite") << ", " << net.num_parameters() << " parameters\n";
  return finite ? 0 : 1;
}
