// Must not compile: the exact WGAN-GP penalty (double backward) of a critic that contains batch_norm,
// which has no second-order pass.
// Expected: "cdgan: layer I of this sequential ... has no second-order pass (double_backward), so a
// WGAN-GP critic cannot contain it".
#include "cdgan/nn/batch_norm.hpp"
#include "cdgan/nn/nn.hpp"

using namespace cdgan;

using critic = nn::sequential<nn::input<4>, nn::dense<6>, nn::batch_norm, nn::leaky_relu<>, nn::dense<1>>;

int main() {
  nn::network<critic> d;
  tensor<shape<4>> gbar(2);
  d.double_backward(gbar.cv(), {});
  return 0;
}
