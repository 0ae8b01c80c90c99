// The device-resident training set on the GPU: gathered batches equal the CPU's, bit for bit.
#include <doctest/doctest.h>

#include <span>
#include <vector>

#include "cdgan/data/device_dataset.hpp"
#include "cuda_test.hpp"

using namespace cdgan;
using cdgan_test::host;

TEST_CASE("device_dataset on the GPU: uploaded in chunks, gathered batches equal the CPU's") {
  CDGAN_REQUIRE_GPU();
  using S = shape<1, 28, 28>;
  constexpr std::size_t n = 2500;  // three chunks of 1024, the last one partial
  auto fill = [](std::size_t i, std::span<real> out) {
    for (std::size_t j = 0; j < out.size(); ++j) out[j] = static_cast<real>((i * 7919 + j * 31) % 1000) / 999.f;
  };
  data::device_dataset<S, cpu> c(n, fill);
  data::device_dataset<S, cuda> g(n, fill);
  const std::vector<std::size_t> idx{2499, 0, 1023, 1024, 2048, 7, 7, 1500};
  tensor<S, cpu> bc(idx.size());
  tensor<S, cuda> bg(idx.size());
  c.gather(idx, bc.v());
  g.gather(idx, bg.v());
  CHECK(host(bc.cv()) == host(bg.cv()));
  tensor<S, cuda> one(1);
  const std::vector<std::size_t> bad{n};
  CHECK_THROWS_AS(g.gather(bad, one.v()), shape_error);
}
