// Algorithm 1 on a tiny CD-GAN: finite losses, determinism, no allocation after the first step,
// each step changes only the network it should.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "cdgan/gan/gan.hpp"
#include "cdgan/nn/nn.hpp"

using namespace cdgan;

namespace {
using lat = latent<4, 3>;
using gen = nn::sequential<lat::input, nn::dense<16>, nn::relu, nn::dense<36>, nn::sigmoid, nn::reshape<1, 6, 6>>;
using trunk = nn::sequential<nn::input<1, 6, 6>, nn::flatten, nn::dense<16>, nn::leaky_relu<>>;
using critic = nn::append<trunk, nn::dense<1>>;
using encoder = nn::heads<trunk, nn::dense<5>, nn::dense<4>>;
using tiny = model<gen, critic, encoder, objective::wgan_gp, optim::adam, cpu>;

model_options tiny_options(losses::positives p = losses::positives::all) {
  model_options o;
  o.batch_d = 4;
  o.batch_g = 6;
  o.batch_e = 8;
  o.beta1 = 1;
  o.beta2 = 0.5f;
  o.tau = 0.5f;
  o.positives = p;
  o.seed = 3;
  return o;
}
auto adam_opts() { return optim::adam_options{}.lr(1e-3f).betas(0.5f, 0.9f); }

std::vector<real> snapshot(auto& net) {
  std::vector<real> v;
  net.for_each_parameter([&](nn::parameter_ref<cpu> p) { v.insert(v.end(), p.value, p.value + p.size); });
  return v;
}
}  // namespace

TEST_CASE("model: compile-time junctions and derived sizes") {
  static_assert(tiny::z_dim == 4 && tiny::c_dim == 3 && tiny::f_dim == 5);
  static_assert(std::is_same_v<tiny::image_shape, shape<1, 6, 6>>);
}

TEST_CASE("model: Algorithm 1 runs, losses finite, deterministic, allocation-free after the first step") {
  for (auto form : {losses::positives::all, losses::positives::one}) {
    tiny a(tiny_options(form), adam_opts(), adam_opts(), adam_opts());
    tiny b(tiny_options(form), adam_opts(), adam_opts(), adam_opts());
    rng data(1);
    tensor<shape<1, 6, 6>> real_x(4), lab_x(3);
    tensor<shape<1>> lab(3);
    lab.from_host({0, 1, 2});
    std::size_t allocs = 0;
    for (int it = 0; it < 4; ++it) {
      real_x = data.uniform();
      lab_x = data.uniform();
      auto ra = a.step(real_x.cv(), lab_x.cv(), lab.data());
      auto rb = b.step(real_x.cv(), lab_x.cv(), lab.data());
      for (real v : {ra.d_loss, ra.gp, ra.g_gan, ra.g_lc, ra.g_lz, ra.e_lc, ra.e_lz}) CHECK(std::isfinite(v));
      CHECK(ra.d_loss == rb.d_loss);
      CHECK(ra.e_lc == rb.e_lc);
      CHECK(ra.g_lz == rb.g_lz);
      CHECK(ra.gp > 0);
      CHECK(ra.e_lc > 0);
      if (it == 1) allocs = allocation_count();
      if (it > 1) CHECK(allocation_count() == allocs);
    }
    CHECK(a.steps() == 4);
    CHECK(snapshot(a.generator()) == snapshot(b.generator()));
    // model_options::cuda_graph is on by default and means nothing on the CPU: every step ran as it is
    CHECK(a.options().cuda_graph);
    CHECK(a.graph_recordings() == 0);
    CHECK(a.graph_replays() == 0);
    CHECK(a.graph_status() == "no CUDA graphs on cpu");
  }
}

TEST_CASE("model: each phase updates only its own network") {
  tiny m(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  tensor<shape<1, 6, 6>> real_x(4);
  rng data(2);
  real_x = data.uniform();
  step_report r;
  auto g0 = snapshot(m.generator()), d0 = snapshot(m.critic()), e0 = snapshot(m.encoder());
  m.d_step(real_x.cv(), r);
  CHECK(snapshot(m.generator()) == g0);
  CHECK(snapshot(m.encoder()) == e0);
  CHECK(snapshot(m.critic()) != d0);
  auto d1 = snapshot(m.critic());
  m.g_step({}, nullptr, r);
  CHECK(snapshot(m.critic()) == d1);
  CHECK(snapshot(m.encoder()) == e0);
  CHECK(snapshot(m.generator()) != g0);
  auto g1 = snapshot(m.generator());
  m.e_step({}, nullptr, r);
  CHECK(snapshot(m.generator()) == g1);
  CHECK(snapshot(m.encoder()) != e0);
}

TEST_CASE("model: the β1 schedule is the ablation until it starts, then ramps linearly") {
  model_options o = tiny_options();
  o.beta1 = 2;
  o.beta1_start = 2;
  o.beta1_ramp = 4;
  CHECK(o.beta1_at(0) == 0);
  CHECK(o.beta1_at(1) == 0);
  CHECK(o.beta1_at(2) == doctest::Approx(0.5));
  CHECK(o.beta1_at(4) == doctest::Approx(1.5));
  CHECK(o.beta1_at(5) == 2);
  CHECK(o.beta1_at(1000) == 2);
  model_options ablation = tiny_options();
  ablation.beta1 = 0;
  tiny scheduled(o, adam_opts(), adam_opts(), adam_opts()), plain(ablation, adam_opts(), adam_opts(), adam_opts());
  rng data(5);
  tensor<shape<1, 6, 6>> real_x(4);
  for (int it = 0; it < 4; ++it) {
    real_x = data.uniform();
    auto rs = scheduled.step(real_x.cv());
    auto rp = plain.step(real_x.cv());
    CHECK(rs.beta1 == doctest::Approx(o.beta1_at(static_cast<std::uint64_t>(it))));
    if (it < 2) {  // β1 = 0: bit for bit the β1 = 0 run, no contrastive loss computed
      CHECK(rs.g_lc == 0);
      CHECK(rs.e_lc == 0);
      CHECK(rs.e_lz == rp.e_lz);
      CHECK(snapshot(scheduled.generator()) == snapshot(plain.generator()));
      CHECK(snapshot(scheduled.encoder()) == snapshot(plain.encoder()));
    } else {  // switched on: L_c is computed and the generators part ways
      CHECK(rs.g_lc > 0);
      CHECK(rs.e_lc > 0);
      CHECK(snapshot(scheduled.generator()) != snapshot(plain.generator()));
    }
  }
}

TEST_CASE("model: the β2 schedule is the base β2's run until beta2_late_start, then weighs L_z by beta2_late") {
  model_options o = tiny_options();
  o.beta2_late = 4;
  o.beta2_late_start = 2;
  CHECK(o.beta2_at(0) == o.beta2);
  CHECK(o.beta2_at(1) == o.beta2);
  CHECK(o.beta2_at(2) == 4);
  CHECK(o.beta2_at(1000) == 4);
  model_options off = o;
  off.beta2_late_start = 0;  // never switches
  CHECK(off.beta2_at(1000) == o.beta2);
  // scheduled: through the switch; plain: the base β2 throughout (the equality with a run resumed
  // at the switch with --beta2 4 is checked end to end by tests/trainer_smoke.sh)
  tiny scheduled(o, adam_opts(), adam_opts(), adam_opts()), plain(off, adam_opts(), adam_opts(), adam_opts());
  rng data(7);
  tensor<shape<1, 6, 6>> real_x(4);
  for (int it = 0; it < 4; ++it) {
    real_x = data.uniform();
    auto rs = scheduled.step(real_x.cv());
    auto rp = plain.step(real_x.cv());
    CHECK(rs.beta2 == doctest::Approx(o.beta2_at(static_cast<std::uint64_t>(it))));
    CHECK(rp.beta2 == doctest::Approx(o.beta2));
    if (it < 2) {  // before the switch: bit for bit the plain run
      CHECK(rs.e_lz == rp.e_lz);
      CHECK(snapshot(scheduled.generator()) == snapshot(plain.generator()));
      CHECK(snapshot(scheduled.encoder()) == snapshot(plain.encoder()));
    } else {  // switched: the heavier L_z moves G and E elsewhere
      CHECK(snapshot(scheduled.generator()) != snapshot(plain.generator()));
      CHECK(snapshot(scheduled.encoder()) != snapshot(plain.encoder()));
    }
  }
  model_options bad = o;
  bad.beta2_late = -1;
  CHECK_THROWS_WITH_AS(tiny(bad, adam_opts(), adam_opts(), adam_opts()), doctest::Contains("beta2_late"), value_error);
}

TEST_CASE("model: bad input is an error that names it") {
  model_options o = tiny_options();
  o.tau = 0;
  CHECK_THROWS_WITH_AS(tiny(o, adam_opts(), adam_opts(), adam_opts()), doctest::Contains("tau"), value_error);
  tiny m(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  tensor<shape<1, 6, 6>> wrong(5);
  wrong = 0.5f;
  CHECK_THROWS_WITH_AS(m.step(wrong.cv()), doctest::Contains("got 5"), shape_error);
}

TEST_CASE("model: a second view per generated image (random resized crop)") {
  // the crop of the whole plane is the identity; a half-size crop is a bilinear upscale
  tensor<shape<1, 4, 4>> x(2), y(2);
  rng g(4);
  x = g.uniform();
  y = generate<cpu>(detail::resized_crop<4, 4>{x.data(), 0, 0, 4, 4});
  CHECK(y.to_host() == x.to_host());
  y = generate<cpu>(detail::resized_crop<4, 4>{x.data(), 1, 1, 2, 2});
  auto xh = x.to_host(), yh = y.to_host();
  CHECK(yh[0] == doctest::Approx(xh[5]));        // corner: clamped to the crop's first pixel
  CHECK(yh[15] == doctest::Approx(xh[10]));      // opposite corner: the crop's last pixel
  CHECK(yh[16 + 5] == doctest::Approx(0.5625f * xh[16 + 5] + 0.1875f * xh[16 + 6] + 0.1875f * xh[16 + 9] + 0.0625f * xh[16 + 10]));

  model_options o = tiny_options();
  o.two_views = true;
  tiny m(o, adam_opts(), adam_opts(), adam_opts());
  tensor<shape<1, 6, 6>> real_x(4);
  real_x = g.uniform();
  for (int it = 0; it < 2; ++it) {
    auto r = m.step(real_x.cv());
    CHECK(std::isfinite(r.e_lc));
    CHECK(r.e_lc > 0);
  }
  o.positives = losses::positives::one;
  CHECK_THROWS_AS(o.validate(), value_error);
}

TEST_CASE("model: labelled real images in L_c: cropped with two views, anchors with real_anchors") {
  rng data(11);
  tensor<shape<1, 6, 6>> lab_x(3);
  tensor<shape<1>> lab(3);
  lab_x = data.uniform();
  lab.from_host({0, 1, 2});
  real value[2] = {0, 0};
  for (bool anchors : {false, true}) {
    model_options o = tiny_options();
    o.two_views = true;
    o.crop_min_scale = 1;  // with 6×6 images every draw is then the full plane: the crop is the identity
    o.real_anchors = anchors;
    tiny m(o, adam_opts(), adam_opts(), adam_opts());
    // the E step's L_c recomputed from outside, before the step changes E: the same codes (a copy of
    // the model's stream), G and E in eval mode (the tiny networks have no batch norm), rows
    // [x; crop(x); l; crop(l)] with labels [c; c; y; y]
    rng copy = m.random();
    latent_batch<4, 3, cpu> lat;
    lat.sample(o.batch_e, o.sigma, copy, false);
    auto x = m.generate(lat.zc.cv());
    const std::size_t B = o.batch_e, M = 3, S = 36;
    tensor<shape<1, 6, 6>> rows(2 * B + 2 * M);
    tensor<shape<1>> ids(2 * B + 2 * M);
    auto c = lat.c.to_host(), y = lab.to_host();
    std::vector<real> idh;
    for (int v = 0; v < 2; ++v) {
      backend<cpu>::copy(rows.data() + v * B * S, x.ptr, B * S);
      idh.insert(idh.end(), c.begin(), c.end());
    }
    for (int v = 0; v < 2; ++v) {
      backend<cpu>::copy(rows.data() + (2 * B + v * M) * S, lab_x.data(), M * S);
      idh.insert(idh.end(), y.begin(), y.end());
    }
    ids.from_host(idh);
    losses::contrastive<5, cpu> lc(losses::contrastive_options{}.temperature(o.tau).form(losses::positives::all));
    tensor<shape<5>> df(2 * B + 2 * M);
    const real expected = lc(m.encode(rows.cv()), ids.data(), anchors ? 2 * B + 2 * M : 2 * B, df.v());
    // the same rows without the labelled crop: another value, so the comparison can tell them apart
    tensor<shape<5>> df_short(2 * B + M);
    const real short_rows = lc(m.encode(rows.cv().slice(0, 2 * B + M)), ids.data(), anchors ? 2 * B + M : 2 * B, df_short.v());
    step_report r;
    m.e_step(lab_x.cv(), lab.data(), r);
    CHECK(r.e_lc == doctest::Approx(expected).epsilon(1e-5));
    CHECK(std::abs(short_rows - expected) > 1e-3f);
    value[anchors] = r.e_lc;
  }
  CHECK(std::abs(value[0] - value[1]) > 1e-3f);  // the real rows as anchors add their own terms
  model_options bad = tiny_options(losses::positives::one);
  bad.real_anchors = true;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("real_anchors"), value_error);
}

TEST_CASE("model: E held for the first iterations, and E pretrained on real images alone (labelled or not)") {
  rng data(12);
  tensor<shape<1, 6, 6>> real_x(4), lab_x(6);
  tensor<shape<1>> lab(6);
  lab.from_host({0, 1, 2, 0, 1, 2});
  model_options o = tiny_options();
  o.e_hold = 2;
  tiny m(o, adam_opts(), adam_opts(), adam_opts());
  for (int it = 0; it < 3; ++it) {
    real_x = data.uniform();
    lab_x = data.uniform();
    auto e0 = snapshot(m.encoder()), g0 = snapshot(m.generator());
    auto r = m.step(real_x.cv(), lab_x.cv(), lab.data());
    CHECK(snapshot(m.generator()) != g0);
    CHECK(r.g_lc > 0);  // G still contrasts through the fixed E
    if (it < 2) {
      CHECK(snapshot(m.encoder()) == e0);
      CHECK(r.e_lc == 0);
    } else {
      CHECK(snapshot(m.encoder()) != e0);
      CHECK(r.e_lc > 0);
    }
  }

  // pretraining: a fixed labelled batch whose classes differ in brightness; the contrast falls,
  // only E changes, and no step is counted
  tiny p(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  std::vector<real> h(6 * 36);
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = 0.2f * static_cast<real>(i / 36 % 3) + 0.05f * static_cast<real>(i % 7) / 7;
  lab_x.from_host(h);
  auto g0 = snapshot(p.generator()), d0 = snapshot(p.critic()), e0 = snapshot(p.encoder());
  real first = 0, last = 0;
  for (int it = 0; it < 80; ++it) {
    const real l = p.pretrain_encoder(lab_x.cv(), lab.data());
    CHECK(std::isfinite(l));
    if (it < 5) first += l / 5;
    if (it >= 75) last += l / 5;
  }
  CHECK(last < 0.8f * first);
  CHECK(snapshot(p.generator()) == g0);
  CHECK(snapshot(p.critic()) == d0);
  CHECK(snapshot(p.encoder()) != e0);
  CHECK(p.steps() == 0);
  CHECK_THROWS_AS(p.pretrain_encoder(lab_x.cv().slice(0, 1), lab.data()), value_error);
  // without labels each image is its own class and its crop its only positive (SimCLR): 6 images
  // and their crops, 1 positive among 11 others, so about log 11 untrained, and it falls too
  tiny q(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  lab_x = data.uniform();
  first = last = 0;
  for (int it = 0; it < 80; ++it) {
    const real l = q.pretrain_encoder(lab_x.cv());
    if (it < 5) first += l / 5;
    if (it >= 75) last += l / 5;
  }
  CHECK(first > 1.5f);
  CHECK(first < 3.5f);
  CHECK(last < 0.8f * first);
  CHECK(q.steps() == 0);
}

TEST_CASE("model: e_hold_content trains E_e alone during the hold, then the full E optimiser takes over") {
  rng data(14);
  tensor<shape<1, 6, 6>> real_x(4);
  model_options o = tiny_options();
  o.e_hold = 40;
  o.e_hold_content = true;
  // G's learning rate 0: G stays as it is, so that only E_e can lower L_z
  tiny m(o, optim::adam_options{}.lr(0.f).betas(0.5f, 0.9f), adam_opts(), optim::adam_options{}.lr(1e-2f).betas(0.5f, 0.9f));
  const auto g_init = snapshot(m.generator());
  // the trunk and E_f (head 0) apart from E_e (head 1)
  auto part = [&](const std::string& prefix) {
    std::vector<real> v;
    m.encoder().for_each_parameter([&](nn::parameter_ref<cpu> p) {
      if (p.name.rfind(prefix, 0) == 0) v.insert(v.end(), p.value, p.value + p.size);
    });
    REQUIRE(!v.empty());
    return v;
  };
  const auto trunk0 = part("trunk."), f0 = part("head0.");
  real first = 0, last = 0;
  for (int it = 0; it < 40; ++it) {
    real_x = data.uniform();
    const auto ee = part("head1.");
    auto r = m.step(real_x.cv());
    CHECK(part("head1.") != ee);  // E_e moves in every held iteration
    CHECK(r.e_lc == 0);           // no contrast update of E while held
    CHECK(std::isfinite(r.e_lz));
    if (it < 5) first += r.e_lz / 5;
    if (it >= 35) last += r.e_lz / 5;
  }
  CHECK(part("trunk.") == trunk0);  // bit for bit: the heads' backward stopped at E_e
  CHECK(part("head0.") == f0);
  CHECK(snapshot(m.generator()) == g_init);
  CHECK(last < 0.8f * first);  // E_e learns to read z (the gradient has the right sign)
  real_x = data.uniform();
  auto r = m.step(real_x.cv());  // iteration 40: the hold is over
  CHECK(r.e_lc > 0);
  CHECK(part("trunk.") != trunk0);
  // the head's optimiser state is part of the model state (checkpoints) only when the option is on
  auto names = [](auto& model) {
    std::size_t n = 0;
    model.for_each_state([&](const std::string& name, real*, std::size_t, const std::vector<std::size_t>&) {
      n += name.rfind("E_e.optim.", 0) == 0 ? 1 : 0;
    });
    return n;
  };
  CHECK(names(m) > 0);
  tiny plain(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  CHECK(names(plain) == 0);
  model_options bad = tiny_options();
  bad.e_hold_content = true;  // without a hold there is nothing to train E_e in
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("e_hold_content"), value_error);
}

TEST_CASE("model: the second view from a later iteration is the one-view run until then") {
  model_options o = tiny_options();
  o.two_views = true;
  o.two_views_start = 2;
  CHECK(!o.two_views_at(0));
  CHECK(!o.two_views_at(1));
  CHECK(o.two_views_at(2));
  CHECK(o.two_views_at(100));
  tiny late(o, adam_opts(), adam_opts(), adam_opts()), plain(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  rng data(6);
  tensor<shape<1, 6, 6>> real_x(4);
  for (int it = 0; it < 4; ++it) {
    real_x = data.uniform();
    auto rl = late.step(real_x.cv());
    auto rp = plain.step(real_x.cv());
    CHECK(rl.two_views == (it >= 2));
    CHECK(!rp.two_views);
    if (it < 2) {  // one view: bit for bit the plain run (same losses, weights and random stream)
      CHECK(rl.e_lc == rp.e_lc);
      CHECK(rl.g_lc == rp.g_lc);
      CHECK(snapshot(late.generator()) == snapshot(plain.generator()));
      CHECK(snapshot(late.encoder()) == snapshot(plain.encoder()));
    } else {  // the crop joins the contrast: twice the positives, another loss, the runs part ways
      CHECK(std::isfinite(rl.e_lc));
      CHECK(rl.e_lc != rp.e_lc);
      CHECK(snapshot(late.encoder()) != snapshot(plain.encoder()));
    }
  }
  model_options bad = tiny_options();
  bad.two_views_start = 5;  // without two_views
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("two_views_start"), value_error);
}

TEST_CASE("model: the instance contrast of real images trains E only, and E learns it") {
  model_options o = tiny_options();
  o.real_contrast = 2;
  tiny with(o, adam_opts(), adam_opts(), adam_opts()), plain(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  rng data(9);
  tensor<shape<1, 6, 6>> real_x(4);
  real_x = data.uniform();
  auto rw = with.step(real_x.cv());
  auto rp = plain.step(real_x.cv());
  // first iteration: D and G steps are the plain run's (E not yet changed); the E steps differ
  CHECK(rw.d_loss == rp.d_loss);
  CHECK(rw.g_lc == rp.g_lc);
  CHECK(snapshot(with.generator()) == snapshot(plain.generator()));
  CHECK(snapshot(with.critic()) == snapshot(plain.critic()));
  CHECK(snapshot(with.encoder()) != snapshot(plain.encoder()));
  CHECK(rp.e_real == 0);
  // 4 images and their crops: each anchor has 1 positive among 7 others, so about log 7 untrained
  CHECK(rw.e_real > 0.5f);
  CHECK(rw.e_real < 3.f);
  // L_c of the generated rows is computed on those rows alone: the same value as without the real rows
  CHECK(rw.e_lc == doctest::Approx(rp.e_lc).epsilon(1e-6));
  // E steps on one fixed real batch: the instance contrast falls
  step_report r;
  real first = 0, last = 0;
  for (int it = 0; it < 60; ++it) {
    with.e_step({}, nullptr, r, real_x.cv());
    if (it < 5) first += r.e_real / 5;
    if (it >= 55) last += r.e_real / 5;
  }
  CHECK(last < 0.8f * first);
  model_options bad = tiny_options();
  bad.real_contrast = -1;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("real_contrast"), value_error);
}

TEST_CASE_TEMPLATE("baselines: ClusterGAN and InfoGAN train G and E jointly on the cross-entropy", Obj,
                   objective::cluster_gan<>, objective::info_gan<>) {
  using enc3 = nn::heads<trunk, nn::dense<3>, nn::dense<4>>;
  using baseline = model<gen, critic, enc3, Obj, optim::adam, cpu>;
  baseline m(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  tensor<shape<1, 6, 6>> real_x(4);
  rng data(8);
  real_x = data.uniform();
  step_report r;
  auto g0 = snapshot(m.generator()), e0 = snapshot(m.encoder());
  m.g_step({}, nullptr, r);
  CHECK(snapshot(m.generator()) != g0);
  CHECK(snapshot(m.encoder()) != e0);  // joint update
  CHECK(r.g_lc > 0.5f);                // cross-entropy of 3 classes starts near log 3
  CHECK(r.g_lc < 2.0f);
  auto e1 = snapshot(m.encoder());
  m.e_step({}, nullptr, r);
  CHECK(snapshot(m.encoder()) == e1);  // no separate E step
  for (int it = 0; it < 3; ++it) {
    auto s = m.step(real_x.cv());
    CHECK(std::isfinite(s.g_lc));
    CHECK(std::isfinite(s.d_loss));
  }
}

TEST_CASE("model: the clustering term on real images trains E only, and E lowers it") {
  model_options o = tiny_options();
  o.real_clustering = 3;
  tiny with(o, adam_opts(), adam_opts(), adam_opts()), plain(tiny_options(), adam_opts(), adam_opts(), adam_opts());
  rng data(11);
  tensor<shape<1, 6, 6>> real_x(4);
  real_x = data.uniform();
  auto rw = with.step(real_x.cv());
  auto rp = plain.step(real_x.cv());
  // first iteration: D and G steps are the plain run's (E not yet changed); the E steps differ
  CHECK(rw.d_loss == rp.d_loss);
  CHECK(rw.g_lc == rp.g_lc);
  CHECK(snapshot(with.generator()) == snapshot(plain.generator()));
  CHECK(snapshot(with.critic()) == snapshot(plain.critic()));
  CHECK(snapshot(with.encoder()) != snapshot(plain.encoder()));
  CHECK(rp.e_im == 0);
  CHECK(rw.e_real == 0);  // no instance contrast asked for
  CHECK(rw.e_im >= -std::log(3.f) - 1e-5f);  // 3 codes: −log 3 ≤ L ≤ log 3
  CHECK(rw.e_im <= std::log(3.f) + 1e-5f);
  // L_c of the generated rows is computed on those rows alone: the same value as without the real rows
  CHECK(rw.e_lc == doctest::Approx(rp.e_lc).epsilon(1e-6));
  // E steps on one fixed real batch: the term falls (each real image drawn to one code's prototype)
  step_report r;
  real first = 0, last = 0;
  for (int it = 0; it < 60; ++it) {
    with.e_step({}, nullptr, r, real_x.cv());
    if (it < 5) first += r.e_im / 5;
    if (it >= 55) last += r.e_im / 5;
  }
  CHECK(last < first - 0.1f);
  model_options bad = tiny_options();
  bad.real_clustering = -1;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("real_clustering"), value_error);
}

TEST_CASE("affine warp: identity, a quarter turn, a shift, and zero outside the image") {
  constexpr std::size_t H = 4, W = 5;
  std::vector<real> img(2 * H * W);
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = static_cast<real>(i + 1);
  tensor<shape<1, H, W>> x(2), out(2);
  x.from_host(img);
  tensor<shape<6>> theta(2);
  // image 0: identity; image 1: a shift by one pixel to the right (output x samples input x − 1)
  theta.from_host({1, 0, 0, 0, 1, 0, 1, 0, -1, 0, 1, 0});
  out = generate<cpu>(detail::affine_warp<1, H, W>{x.data(), theta.data()});
  auto o = out.to_host();
  for (std::size_t i = 0; i < H * W; ++i) CHECK(o[i] == img[i]);
  for (std::size_t y = 0; y < H; ++y)
    for (std::size_t c = 0; c < W; ++c)
      CHECK(o[H * W + y * W + c] == (c == 0 ? real(0) : img[H * W + y * W + c - 1]));
  // a quarter turn of a square image: output (y, x) samples input (W−1−x, y) — u' = −v, v' = u
  constexpr std::size_t S = 4;
  std::vector<real> sq(S * S);
  for (std::size_t i = 0; i < sq.size(); ++i) sq[i] = static_cast<real>(i);
  tensor<shape<1, S, S>> xs(1), os(1);
  xs.from_host(sq);
  tensor<shape<6>> turn(1);
  turn.from_host({0, -1, 0, 1, 0, 0});
  os = generate<cpu>(detail::affine_warp<1, S, S>{xs.data(), turn.data()});
  auto r = os.to_host();
  for (std::size_t y = 0; y < S; ++y)
    for (std::size_t c = 0; c < S; ++c) CHECK(r[y * S + c] == doctest::Approx(sq[c * S + (S - 1 - y)]));
}

TEST_CASE("model: the consistency term compares distorted real images with the originals, and E lowers it") {
  model_options o = tiny_options();
  o.real_clustering = 1;
  o.real_consistency = 3;
  model_options clustering_only = o;
  clustering_only.real_consistency = 0;
  tiny with(o, adam_opts(), adam_opts(), adam_opts()), without(clustering_only, adam_opts(), adam_opts(), adam_opts());
  rng data(13);
  tensor<shape<1, 6, 6>> real_x(4);
  real_x = data.uniform();
  auto rw = with.step(real_x.cv());
  auto ro = without.step(real_x.cv());
  CHECK(ro.e_sat == 0);
  CHECK(rw.e_sat > 0);
  // the clustering term is computed on the undistorted rows alone: the same value with or without the term
  CHECK(rw.e_im == doctest::Approx(ro.e_im).epsilon(1e-6));
  CHECK(snapshot(with.encoder()) != snapshot(without.encoder()));
  CHECK(snapshot(with.generator()) == snapshot(without.generator()));
  // E steps on one draw, repeated: the model's random stream is rewound before each e_step, so
  // every step sees the same distortions and generated batch, and the term, with the undistorted
  // assignments as moving targets, falls. Plain SGD (Adam's first steps follow the sign of each
  // parameter's gradient, whatever its size) and the other terms made negligible.
  model_options mostly_sat = o;
  mostly_sat.real_clustering = 1e-4f;
  mostly_sat.beta1 = mostly_sat.beta2 = 1e-4f;
  mostly_sat.real_consistency = 1;
  const auto sgd = optim::sgd_options{}.lr(0.5f);
  model<gen, critic, encoder, objective::wgan_gp, optim::sgd, cpu> sat(mostly_sat, sgd, sgd, sgd);
  const rng draw = sat.random();
  step_report r;
  real first = 0;
  for (int it = 0; it < 200; ++it) {
    sat.random() = draw;
    sat.e_step({}, nullptr, r, real_x.cv());
    if (it == 0) first = r.e_sat;
  }
  CHECK(first > 0);
  CHECK(r.e_sat < 0.5f * first);
  model_options bad = tiny_options();
  bad.real_consistency = 1;  // without real_clustering
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("real_consistency"), value_error);
  bad.real_clustering = 1;
  bad.affine_scale = 1;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("affine_scale"), value_error);
}
