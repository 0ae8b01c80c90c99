// Must not compile: reshape to a shape with a different number of elements (2·14·14 = 392 ≠ 784).
// Expected: "cdgan::nn::reshape<...>: the new shape must have as many elements as the input shape".
#include "cdgan/nn/conv.hpp"
#include "cdgan/nn/nn.hpp"

using namespace cdgan;

using critic = nn::sequential<nn::input<784>, nn::reshape<2, 14, 14>, nn::conv<8, nn::kernel<3>, nn::pad<1>>,
                              nn::flatten, nn::dense<1>>;

int main() {
  nn::network<critic> d;
  return static_cast<int>(d.num_parameters());
}
