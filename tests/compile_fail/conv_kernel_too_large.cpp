// Must not compile: a 7×7 kernel on a 4×4 image without padding.
// Expected: "cdgan::nn::conv: the kernel is larger than the padded input".
#include "cdgan/nn/conv.hpp"
#include "cdgan/nn/nn.hpp"

using namespace cdgan;

using critic = nn::sequential<nn::input<1, 4, 4>, nn::conv<8, nn::kernel<7>>, nn::leaky_relu<>, nn::flatten, nn::dense<1>>;

int main() {
  nn::network<critic> d;
  return static_cast<int>(d.num_parameters());
}
