// Must not compile: 2×2 average pooling of a 7×7 image.
// Expected: "cdgan::nn::avg_pool<K>: the input height and width must be divisible by K".
#include "cdgan/nn/nn.hpp"
#include "cdgan/nn/pool.hpp"

using namespace cdgan;

using critic = nn::sequential<nn::input<3, 7, 7>, nn::avg_pool<2>, nn::flatten, nn::dense<1>>;

int main() {
  nn::network<critic> d;
  return static_cast<int>(d.num_parameters());
}
