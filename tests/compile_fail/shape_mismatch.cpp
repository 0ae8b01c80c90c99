// Must not compile: a convolution fed a flat vector (the reshape<1, 28, 28> is missing).
// Expected: "cdgan::nn::conv: the input must be an image shape<C, H, W>".
#include "cdgan/nn/conv.hpp"
#include "cdgan/nn/nn.hpp"

using namespace cdgan;

using critic = nn::sequential<nn::input<784>, nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, nn::leaky_relu<>,
                              nn::flatten, nn::dense<1>>;

int main() {
  nn::network<critic> d;
  return static_cast<int>(d.num_parameters());
}
