// Must not compile: a transposed convolution with stride 0.
// Expected: "cdgan::nn::conv_transpose: stride<0>; the stride must be positive".
#include "cdgan/nn/conv.hpp"
#include "cdgan/nn/nn.hpp"

using namespace cdgan;

using generator = nn::sequential<nn::input<128, 7, 7>, nn::conv_transpose<64, nn::kernel<4>, nn::stride<0>, nn::pad<1>>,
                                 nn::sigmoid>;

int main() {
  nn::network<generator> g;
  return static_cast<int>(g.num_parameters());
}
