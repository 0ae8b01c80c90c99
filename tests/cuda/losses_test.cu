// Losses on the GPU against the CPU: softmax cross-entropy (the ClusterGAN / InfoGAN code loss),
// the contrastive loss with generated rows and labelled real anchors (both forms) and L_z.
#include <doctest/doctest.h>

#include <vector>

#include "cuda_test.hpp"
#include "cdgan/losses/losses.hpp"

using namespace cdgan;
using cdgan_test::check_close;
using cdgan_test::host;
using cdgan_test::upload;

namespace {
template <class S>
tensor<S, cpu> random_tensor(std::size_t batch, std::uint64_t seed) {
  tensor<S, cpu> t(batch);
  rng r(seed);
  t = r.normal();
  return t;
}
tensor<shape<1>, cpu> labels_of(const std::vector<real>& v) {
  tensor<shape<1>, cpu> t(v.size());
  t.from_host(v);
  return t;
}
}  // namespace

TEST_CASE("cross_entropy on the GPU equals the CPU (loss and gradient)") {
  CDGAN_REQUIRE_GPU();
  constexpr std::size_t K = 10, B = 37;
  auto logits = random_tensor<shape<K>>(B, 4);
  logits = logits * 3.f;
  std::vector<real> lab(B);
  for (std::size_t i = 0; i < B; ++i) lab[i] = static_cast<real>((i * 7) % K);
  auto lc = labels_of(lab);
  auto gl = upload(logits);
  auto glab = upload(lc);
  tensor<shape<K>, cpu> dc(B);
  tensor<shape<K>, cuda> dg(B);
  tensor<shape<1>, cpu> wc;
  tensor<shape<1>, cuda> wg;
  const real lcpu = losses::cross_entropy<K, cpu>(logits.cv(), lc.data(), dc.v(), wc);
  const real lgpu = losses::cross_entropy<K, cuda>(gl.cv(), glab.data(), dg.v(), wg);
  CHECK(lgpu == doctest::Approx(lcpu).epsilon(1e-5));
  check_close(host(dc.cv()), host(dg.cv()), 1e-5, 1e-7, "cross_entropy gradient");
}

TEST_CASE("the contrastive loss with labelled anchors and L_z on the GPU equal the CPU") {
  CDGAN_REQUIRE_GPU();
  constexpr std::size_t F = 12, N = 16, M = 6, R = N + M;
  auto f = random_tensor<shape<F>>(R, 9);
  std::vector<real> lab(R);
  for (std::size_t i = 0; i < R; ++i) lab[i] = static_cast<real>(i < N ? (i / 2) % 4 : i % 4);
  auto lc = labels_of(lab);
  auto gf = upload(f);
  auto glab = upload(lc);
  for (auto form : {losses::positives::all, losses::positives::one}) {
    const auto opts = losses::contrastive_options{}.temperature(0.1f).form(form);
    losses::contrastive<F, cpu> c(opts);
    losses::contrastive<F, cuda> g(opts);
    tensor<shape<F>, cpu> dc(R);
    tensor<shape<F>, cuda> dg(R);
    const real lcpu = c(f.cv(), lc.data(), N, dc.v());
    const real lgpu = g(gf.cv(), glab.data(), N, dg.v());
    CHECK(lgpu == doctest::Approx(lcpu).epsilon(1e-5));
    check_close(host(dc.cv()), host(dg.cv()), 1e-4, 1e-6, "contrastive gradient");
  }
  auto e = random_tensor<shape<F>>(N, 11), z = random_tensor<shape<F>>(N, 12);
  auto ge = upload(e), gz = upload(z);
  tensor<shape<F>, cpu> dec(N);
  tensor<shape<F>, cuda> deg(N);
  const real zc = losses::content<shape<F>, cpu>(e.cv(), z.cv(), dec.v());
  const real zg = losses::content<shape<F>, cuda>(ge.cv(), gz.cv(), deg.v());
  CHECK(zg == doctest::Approx(zc).epsilon(1e-5));
  check_close(host(dec.cv()), host(deg.cv()), 1e-6, 1e-7, "L_z gradient");
}
