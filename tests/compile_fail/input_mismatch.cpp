// Must not compile: an input<...> marker inside a network that disagrees with the shape reaching it
// (the conv gives shape<64, 14, 14>).
// Expected: "cdgan::nn::input<...>: the network's input shape differs from the shape fed to it".
#include "cdgan/nn/conv.hpp"
#include "cdgan/nn/nn.hpp"

using namespace cdgan;

using critic = nn::sequential<nn::input<1, 28, 28>, nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                              nn::input<64, 7, 7>, nn::flatten, nn::dense<1>>;

int main() {
  nn::network<critic> d;
  return static_cast<int>(d.num_parameters());
}
