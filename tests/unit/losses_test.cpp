// Losses: values against direct formulas in double, gradients against finite differences.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cdgan/losses/losses.hpp"
#include "cdgan/nn/nn.hpp"
#include "cdgan/testing/gradient_check.hpp"

using namespace cdgan;

namespace {
/// Direct evaluation of L_c in double (the definition in losses/contrastive.hpp).
double reference_lc(const std::vector<real>& f, const std::vector<real>& lab, std::size_t N, std::size_t D, double tau,
                    bool one) {
  const std::size_t R = lab.size();
  std::vector<double> u(f.begin(), f.end());
  for (std::size_t r = 0; r < R; ++r) {
    double n = 0;
    for (std::size_t d = 0; d < D; ++d) n += u[r * D + d] * u[r * D + d];
    for (std::size_t d = 0; d < D; ++d) u[r * D + d] /= std::sqrt(n);
  }
  auto s = [&](std::size_t i, std::size_t j) {
    double v = 0;
    for (std::size_t d = 0; d < D; ++d) v += u[i * D + d] * u[j * D + d];
    return v / tau;
  };
  double total = 0;
  int k = 0;
  for (std::size_t i = 0; i < N; ++i) {
    std::vector<std::size_t> pos, den;
    for (std::size_t j = 0; j < R; ++j) {
      if (j == i) continue;
      const bool same = lab[i] == lab[j];
      const bool p = same && (!one || j >= N || j == (i ^ 1u));
      if (p) pos.push_back(j);
      if (!one || !same || p) den.push_back(j);
    }
    if (pos.empty()) continue;
    double z = 0;
    for (auto j : den) z += std::exp(s(i, j));
    double l;
    if (one) {
      double zp = 0;
      for (auto j : pos) zp += std::exp(s(i, j));
      l = -std::log(zp / z);
    } else {
      l = 0;
      for (auto j : pos) l -= std::log(std::exp(s(i, j)) / z);
      l /= pos.size();
    }
    total += l;
    ++k;
  }
  return k ? total / k : 0;
}

void check_contrastive(losses::positives form, std::size_t N, std::size_t M, std::vector<real> labels) {
  constexpr std::size_t D = 5;
  const std::size_t R = N + M;
  REQUIRE(labels.size() == R);
  rng g(5);
  tensor<shape<D>> f(R), df(R);
  f = g.normal();
  tensor<shape<1>> lab(R);
  lab.from_host(labels);
  losses::contrastive<D, cpu> lc(losses::contrastive_options{}.temperature(0.5f).form(form));
  const real v = lc(f.cv(), lab.data(), N, df.v());
  const bool one = form == losses::positives::one;
  CHECK(v == doctest::Approx(reference_lc(f.to_host(), labels, N, D, 0.5, one)).epsilon(1e-4));
  auto grad = df.to_host();
  tensor<shape<D>> scratch(R);
  auto value = [&]() -> double { return lc(f.cv(), lab.data(), N, scratch.v()); };
  auto r = testing::check_gradient("L_c features", f.data(), f.size(), value, grad.data());
  CHECK_MESSAGE(r.ok, r.message);
}
}  // namespace

TEST_CASE("contrastive loss, all positives, generated rows only") {
  check_contrastive(losses::positives::all, 8, 0, {0, 0, 1, 1, 2, 2, 0, 1});
}
TEST_CASE("contrastive loss, one positive (Eq. 3), generated pairs") {
  check_contrastive(losses::positives::one, 8, 0, {0, 0, 1, 1, 2, 2, 0, 0});
}
TEST_CASE("contrastive loss with labelled real anchors (Eq. 7)") {
  check_contrastive(losses::positives::all, 6, 3, {0, 0, 1, 1, 2, 2, 0, 1, 2});
  check_contrastive(losses::positives::one, 6, 3, {0, 0, 1, 1, 3, 3, 0, 1, 2});
}
TEST_CASE("contrastive loss: an anchor without positives contributes nothing, never NaN") {
  // label 7 appears once: that row has no positive
  check_contrastive(losses::positives::all, 5, 0, {0, 0, 1, 1, 7});
  constexpr std::size_t D = 3;
  tensor<shape<D>> f(2), df(2);
  f = 1.f;
  tensor<shape<1>> lab(2);
  lab.from_host({0, 1});
  losses::contrastive<D, cpu> lc;
  CHECK(lc(f.cv(), lab.data(), 2, df.v()) == 0.f);
  for (real x : df.to_host()) CHECK(x == 0.f);
  CHECK_THROWS_AS(losses::contrastive_options{}.temperature(0.f), value_error);
  CHECK_THROWS_AS(losses::contrastive_options{}.temperature(-1.f), value_error);
}

namespace {
/// Soft assignments (double) of the rows of fr to the prototypes of fg's codes (the definition in
/// losses/information.hpp), one row of K per real row.
std::vector<double> reference_assignments(const std::vector<real>& fg, const std::vector<real>& codes,
                                          const std::vector<real>& fr, std::size_t D, std::size_t K, double tau) {
  auto normalised = [&](const std::vector<real>& f) {
    std::vector<double> u(f.begin(), f.end());
    for (std::size_t r = 0; r < f.size() / D; ++r) {
      double n = 0;
      for (std::size_t d = 0; d < D; ++d) n += u[r * D + d] * u[r * D + d];
      for (std::size_t d = 0; d < D; ++d) u[r * D + d] /= std::sqrt(n);
    }
    return u;
  };
  const auto ug = normalised(fg), ur = normalised(fr);
  std::vector<double> mu(K * D, 0.0);
  for (std::size_t i = 0; i < codes.size(); ++i)
    for (std::size_t d = 0; d < D; ++d) mu[std::size_t(codes[i]) * D + d] += ug[i * D + d];
  for (std::size_t k = 0; k < K; ++k) {
    double n = 0;
    for (std::size_t d = 0; d < D; ++d) n += mu[k * D + d] * mu[k * D + d];
    for (std::size_t d = 0; d < D && n > 0; ++d) mu[k * D + d] /= std::sqrt(n);
  }
  const std::size_t U = fr.size() / D;
  std::vector<double> p(U * K);
  for (std::size_t i = 0; i < U; ++i) {
    double z = 0;
    for (std::size_t k = 0; k < K; ++k) {
      double s = 0;
      for (std::size_t d = 0; d < D; ++d) s += ur[i * D + d] * mu[k * D + d];
      z += p[i * K + k] = std::exp(s / tau);
    }
    for (std::size_t k = 0; k < K; ++k) p[i * K + k] /= z;
  }
  return p;
}

/// Direct evaluation of the prototype IM loss in double (the definition in losses/information.hpp).
double reference_im(const std::vector<real>& fg, const std::vector<real>& codes, const std::vector<real>& fr,
                    std::size_t D, std::size_t K, double tau) {
  const auto p = reference_assignments(fg, codes, fr, D, K, tau);
  const std::size_t U = fr.size() / D;
  std::vector<double> pbar(K, 0.0);
  double mean_h = 0;
  for (std::size_t i = 0; i < U; ++i)
    for (std::size_t k = 0; k < K; ++k) {
      mean_h -= p[i * K + k] * std::log(p[i * K + k]) / double(U);
      pbar[k] += p[i * K + k] / double(U);
    }
  double h_bar = 0;
  for (double v : pbar) h_bar -= v * std::log(v);
  return mean_h - h_bar;
}
}  // namespace

TEST_CASE("prototype information loss: value against its definition, gradient against finite differences") {
  constexpr std::size_t D = 5, K = 4;
  const std::size_t N = 12, U = 7;
  // code 3 is absent from the generated batch: its prototype is 0 (every real row gives it s = 0)
  const std::vector<real> codes = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 1};
  rng g(9);
  tensor<shape<D>> fg(N), fr(U), df(U), scratch(U);
  fg = g.normal();
  fr = g.normal() * 0.3f;  // short rows: dL/df scales with 1 / ‖f‖
  tensor<shape<1>> c(N);
  c.from_host(codes);
  losses::prototype_information<D, K, cpu> im(0.25f);
  const real v = im(fg.cv(), c.data(), fr.cv(), df.v());
  CHECK(v == doctest::Approx(reference_im(fg.to_host(), codes, fr.to_host(), D, K, 0.25)).epsilon(1e-4));
  CHECK(v >= -std::log(double(K)) - 1e-5);
  CHECK(v <= std::log(double(K)) + 1e-5);
  auto grad = df.to_host();
  double largest = 0;
  for (real x : grad) largest = std::max(largest, double(std::fabs(x)));
  CHECK(largest > 0.05);  // gradients large enough for the finite differences to tell a wrong one
  auto value = [&]() -> double { return im(fg.cv(), c.data(), fr.cv(), scratch.v()); };
  auto r = testing::check_gradient("IM real features", fr.data(), fr.size(), value, grad.data());
  CHECK_MESSAGE(r.ok, r.message);
  using im_t = losses::prototype_information<D, K, cpu>;
  CHECK_THROWS_AS(im_t(0.f), value_error);
  tensor<shape<D>> none(0);
  CHECK_THROWS_AS(im(none.cv(), c.data(), fr.cv(), df.v()), shape_error);
}


TEST_CASE("prototype consistency (SAT) term: value against its definition, gradient against finite differences") {
  constexpr std::size_t D = 5, K = 4;
  const std::size_t N = 12, U = 7;
  const std::vector<real> codes = {0, 1, 2, 3, 1, 2, 0, 1, 2, 3, 1, 1};
  rng g(21);
  tensor<shape<D>> fg(N), fr(U), fa(U), df(U), da(U), scratch(U);
  fg = g.normal();
  fr = g.normal();
  fa = g.normal() * 0.4f;  // the perturbed rows: unrelated to fr here, so the term is far from 0
  tensor<shape<1>> c(N);
  c.from_host(codes);
  losses::prototype_information<D, K, cpu> im(0.25f);
  // before any call there are no targets
  CHECK_THROWS_AS(im.consistency(fa.cv(), da.v()), shape_error);
  im(fg.cv(), c.data(), fr.cv(), df.v());
  const real v = im.consistency(fa.cv(), da.v());
  const auto p = reference_assignments(fg.to_host(), codes, fr.to_host(), D, K, 0.25);
  const auto q = reference_assignments(fg.to_host(), codes, fa.to_host(), D, K, 0.25);
  double kl = 0;
  for (std::size_t i = 0; i < U * K; ++i) kl += p[i] * std::log(p[i] / q[i]) / double(U);
  CHECK(kl > 0.05);
  CHECK(v == doctest::Approx(kl).epsilon(1e-4));
  auto grad = da.to_host();
  double largest = 0;
  for (real x : grad) largest = std::max(largest, double(std::fabs(x)));
  CHECK(largest > 0.05);
  // the targets are those of the last operator() call: re-running it on fr before each evaluation
  // keeps them fixed while fa moves
  auto value = [&]() -> double {
    im(fg.cv(), c.data(), fr.cv(), scratch.v());
    return im.consistency(fa.cv(), scratch.v());
  };
  auto r = testing::check_gradient("SAT perturbed features", fa.data(), fa.size(), value, grad.data());
  CHECK_MESSAGE(r.ok, r.message);
  // the same rows as the targets: KL = 0, and no gradient
  im(fg.cv(), c.data(), fr.cv(), df.v());
  CHECK(std::fabs(im.consistency(fr.cv(), da.v())) < 1e-6f);
  for (real x : da.to_host()) CHECK(std::fabs(x) < 1e-6f);
  tensor<shape<D>> fewer(U - 1), dfewer(U - 1);
  CHECK_THROWS_AS(im.consistency(fewer.cv(), dfewer.v()), shape_error);
}

TEST_CASE("content loss L_z and cross-entropy") {
  rng g(9);
  tensor<shape<4>> e(3), z(3), de(3), tmp(3);
  e = g.normal();
  z = g.normal();
  const real v = losses::content<shape<4>, cpu>(e.cv(), z.cv(), de.v());
  auto eh = e.to_host(), zh = z.to_host();
  double want = 0;
  for (std::size_t i = 0; i < eh.size(); ++i) want += (eh[i] - zh[i]) * (eh[i] - zh[i]);
  CHECK(v == doctest::Approx(want / 3).epsilon(1e-5));
  auto grad = de.to_host();
  auto r = testing::check_gradient("L_z", e.data(), e.size(), [&]() -> double { return losses::content<shape<4>, cpu>(e.cv(), z.cv(), tmp.v()); }, grad.data());
  CHECK_MESSAGE(r.ok, r.message);

  tensor<shape<5>> lg(4), dl(4), dt(4);
  lg = g.normal(0.f, 2.f);
  tensor<shape<1>> lab(4), work;
  lab.from_host({0, 4, 2, 2});
  losses::cross_entropy<5, cpu>(lg.cv(), lab.data(), dl.v(), work);
  auto gl = dl.to_host();
  auto r2 = testing::check_gradient("cross_entropy", lg.data(), lg.size(), [&]() -> double { return losses::cross_entropy<5, cpu>(lg.cv(), lab.data(), dt.v(), work); }, gl.data());
  CHECK_MESSAGE(r2.ok, r2.message);
}

TEST_CASE_TEMPLATE("adversarial losses: gradients", L, losses::wasserstein, losses::hinge, losses::non_saturating) {
  rng g(2);
  tensor<shape<1>> r(6), f(6), dr(6), df(6), t1(6), t2(6);
  r = g.normal(0.f, 2.f);
  f = g.normal(0.f, 2.f);
  L loss;
  loss.d_loss(r.cv(), f.cv(), dr.v(), df.v());
  auto gr = dr.to_host(), gf = df.to_host();
  auto dval = [&]() -> double { return loss.d_loss(r.cv(), f.cv(), t1.v(), t2.v()); };
  auto c1 = testing::check_gradient("d_loss real", r.data(), r.size(), dval, gr.data());
  auto c2 = testing::check_gradient("d_loss fake", f.data(), f.size(), dval, gf.data());
  CHECK_MESSAGE(c1.ok, c1.message);
  CHECK_MESSAGE(c2.ok, c2.message);
  loss.g_loss(f.cv(), df.v());
  gf = df.to_host();
  auto c3 = testing::check_gradient("g_loss", f.data(), f.size(), [&]() -> double { return loss.g_loss(f.cv(), t2.v()); }, gf.data());
  CHECK_MESSAGE(c3.ok, c3.message);
}

TEST_CASE("each loss's device-value form writes the bits its host-value form returns") {
  // the training step uses the device forms (no wait for the device); logs and tests the host forms
  rng g(4);
  tensor<shape<1>> v(1), r(6), f(6), dr(6), df(6);
  r = g.normal(0.f, 2.f);
  f = g.normal(0.f, 2.f);
  auto same = [&](real host, const char* what) {
    const real dev = v.to_host()[0];
    CHECK_MESSAGE(std::memcmp(&host, &dev, sizeof host) == 0, what << ": host form " << host << ", device form " << dev);
  };
  losses::wasserstein w;
  losses::hinge h;
  losses::non_saturating n;
  w.d_loss(r.cv(), f.cv(), dr.v(), df.v(), v.data());
  same(w.d_loss(r.cv(), f.cv(), dr.v(), df.v()), "wasserstein d_loss");
  w.g_loss(f.cv(), df.v(), v.data());
  same(w.g_loss(f.cv(), df.v()), "wasserstein g_loss");
  h.d_loss(r.cv(), f.cv(), dr.v(), df.v(), v.data());
  same(h.d_loss(r.cv(), f.cv(), dr.v(), df.v()), "hinge d_loss");
  n.d_loss(r.cv(), f.cv(), dr.v(), df.v(), v.data());
  same(n.d_loss(r.cv(), f.cv(), dr.v(), df.v()), "non_saturating d_loss");
  n.g_loss(f.cv(), df.v(), v.data());
  same(n.g_loss(f.cv(), df.v()), "non_saturating g_loss");
  // the Wasserstein critic loss is mean(fake) − mean(real), not the other way round
  double mr = 0, mf = 0;
  for (real x : r.to_host()) mr += x / 6;
  for (real x : f.to_host()) mf += x / 6;
  CHECK(w.d_loss(r.cv(), f.cv(), dr.v(), df.v()) == doctest::Approx(mf - mr).epsilon(1e-5));

  tensor<shape<4>> e(3), z(3), de(3);
  e = g.normal();
  z = g.normal();
  losses::content<shape<4>, cpu>(e.cv(), z.cv(), de.v(), v.data());
  same(losses::content<shape<4>, cpu>(e.cv(), z.cv(), de.v()), "content");
  tensor<shape<5>> lg(4), dl(4);
  tensor<shape<1>> lab(4), work;
  lg = g.normal();
  lab.from_host({0, 3, 1, 4});
  losses::cross_entropy<5, cpu>(lg.cv(), lab.data(), dl.v(), work, v.data());
  same(losses::cross_entropy<5, cpu>(lg.cv(), lab.data(), dl.v(), work), "cross_entropy");
  tensor<shape<3>> feats(6), dfe(6);
  feats = g.normal();
  tensor<shape<1>> ids(6);
  ids.from_host({0, 0, 1, 1, 2, 9});  // the last row has no positive
  for (auto form : {losses::positives::all, losses::positives::one}) {
    losses::contrastive<3, cpu> lc(losses::contrastive_options{}.temperature(0.5f).form(form));
    lc(feats.cv(), ids.data(), 4, dfe.v(), v.data());
    same(lc(feats.cv(), ids.data(), 4, dfe.v()), "contrastive");
  }
}

namespace {
template <class Net>
void check_penalty_gradient(std::uint64_t seed) {
  using critic_t = nn::network<Net>;
  critic_t d;
  rng g(seed);
  d.init(g);
  using S = typename critic_t::in_shape;
  tensor<S> x(3);
  x = g.normal();
  losses::gradient_penalty<critic_t> gp(10.f);
  std::vector<nn::parameter_ref<cpu>> ps;
  d.for_each_parameter([&](nn::parameter_ref<cpu> p) { ps.push_back(p); });
  for (auto& p : ps) std::fill(p.grad, p.grad + p.size, 0.f);
  const real p0 = gp.penalty(d, x.cv());
  CHECK(p0 > 0);
  std::vector<std::vector<real>> analytic;
  for (auto& p : ps) analytic.emplace_back(p.grad, p.grad + p.size);
  auto value = [&]() -> double { return gp.penalty(d, x.cv()); };
  for (std::size_t k = 0; k < ps.size(); ++k) {
    auto r = testing::check_gradient("penalty " + ps[k].name, ps[k].value, ps[k].size, value, analytic[k].data());
    CHECK_MESSAGE(r.ok, r.message);
  }
}
}  // namespace

TEST_CASE("gradient penalty: exact parameter gradient of a dense/leaky_relu critic") {
  check_penalty_gradient<nn::sequential<nn::input<6>, nn::dense<8>, nn::leaky_relu<>, nn::dense<5>, nn::leaky_relu<>, nn::dense<1>>>(4);
}
TEST_CASE("gradient penalty: critics with smooth activations (non-zero input adjoints)") {
  check_penalty_gradient<nn::sequential<nn::input<2, 2, 2>, nn::flatten, nn::dense<7>, nn::tanh, nn::dense<4>, nn::sigmoid, nn::dense<1>>>(6);
}
namespace {
// A tanh whose second-order x-adjoint is dropped: the penalty gradient must then disagree.
struct broken_tanh {
  template <shape_type In, class Device>
  struct bind : nn::tanh::bind<In, Device> {
    cview<In, Device> double_backward(cview<In, Device> gbar, view<In, Device>) {
      tensor<In, Device> dummy(gbar.batch);
      auto r = nn::tanh::bind<In, Device>::double_backward(gbar, dummy.v());
      keep_.resize(r.batch);
      keep_ = r;
      return keep_.cv();
    }
    tensor<In, Device> keep_;
  };
};
}  // namespace

TEST_CASE("gradient penalty: a wrong second-order term is caught") {
  using net = nn::sequential<nn::input<4>, nn::dense<6>, broken_tanh, nn::dense<1>>;
  nn::network<net> d;
  rng g(3);
  d.init(g);
  tensor<shape<4>> x(3);
  x = g.normal();
  losses::gradient_penalty<nn::network<net>> gp(10.f);
  std::vector<nn::parameter_ref<cpu>> ps;
  d.for_each_parameter([&](nn::parameter_ref<cpu> p) { ps.push_back(p); });
  for (auto& p : ps) std::fill(p.grad, p.grad + p.size, 0.f);
  gp.penalty(d, x.cv());
  std::vector<real> a0(ps[0].grad, ps[0].grad + ps[0].size);
  auto r = testing::check_gradient("first weight", ps[0].value, ps[0].size, [&]() -> double { return gp.penalty(d, x.cv()); }, a0.data());
  CHECK_FALSE(r.ok);
}
