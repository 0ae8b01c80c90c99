// Positive control for the compile-fail tests: the same headers and the same kind of networks as the
// files next to it, with shapes that fit. It must compile; if it does not (a broken include path, a
// header that no longer compiles), the compile-fail tests prove nothing and this test says so.
#include "cdgan/nn/conv.hpp"
#include "cdgan/nn/nn.hpp"
#include "cdgan/nn/pool.hpp"

using namespace cdgan;

using critic = nn::sequential<nn::input<1, 28, 28>, nn::conv<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>,
                              nn::leaky_relu<>, nn::avg_pool<7>, nn::flatten, nn::dense<1>>;
using generator = nn::sequential<nn::input<8>, nn::dense<128 * 7 * 7>, nn::relu, nn::reshape<128, 7, 7>,
                                 nn::conv_transpose<64, nn::kernel<4>, nn::stride<2>, nn::pad<1>>, nn::relu,
                                 nn::upsample<2>, nn::conv<1, nn::kernel<3>, nn::pad<1>>, nn::sigmoid>;
static_assert(std::is_same_v<nn::network_output_t<generator>, shape<1, 28, 28>>);

int main() {
  nn::network<critic> d;
  nn::network<generator> g;
  rng r(1);
  d.init(r);
  g.init(r);
  return d.num_parameters() > 0 && g.num_parameters() > 0 ? 0 : 1;
}
