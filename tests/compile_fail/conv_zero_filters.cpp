// Must not compile: a convolution with zero output channels.
// Expected: "cdgan::nn::conv<Filters, ...>: zero filters".
#include "cdgan/nn/conv.hpp"
#include "cdgan/nn/nn.hpp"

using namespace cdgan;

using critic = nn::sequential<nn::input<1, 28, 28>, nn::conv<0, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                              nn::leaky_relu<>, nn::flatten, nn::dense<1>>;

int main() {
  nn::network<critic> d;
  return static_cast<int>(d.num_parameters());
}
