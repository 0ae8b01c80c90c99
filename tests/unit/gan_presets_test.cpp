// The named presets: valid, unique, and the paper's settings kept free of what the paper does not have.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "cdgan/gan/gan.hpp"

using namespace cdgan;

namespace {
// Every option of a preset that is not in the paper (section 5.2) or its algorithm is off.
void check_paper_only(const presets::preset& p) {
  INFO("preset ", p.name);
  const auto& m = p.model;
  CHECK(p.objective == "cd-gan");
  CHECK(p.e_pretrain == 0);
  CHECK(p.lr_e == 0);
  CHECK(m.e_hold == 0);
  CHECK_FALSE(m.e_hold_content);
  CHECK(m.beta2_late_start == 0);
  CHECK(m.beta1_start == 0);
  CHECK(m.real_contrast == 0);
  CHECK(m.real_clustering == 0);
  CHECK(m.real_consistency == 0);
  CHECK_FALSE(m.real_anchors);
  CHECK_FALSE(m.two_views);
  CHECK(m.positives == losses::positives::all);
  CHECK(m.tau == doctest::Approx(0.07));
  CHECK(m.sigma == 1);
}
}  // namespace

TEST_CASE("presets: names unique, options valid, unknown names listed") {
  std::set<std::string> names;
  for (const auto& p : presets::all()) {
    INFO("preset ", p.name);
    CHECK(names.insert(p.name).second);
    CHECK_NOTHROW(p.model.validate());
    CHECK(p.iterations > 0);
    CHECK((p.label_fraction == 0) == (p.labels_per_class == 0));
    CHECK(presets::find(p.name).name == p.name);
  }
  CHECK_THROWS_WITH_AS(presets::find("mnist-fast"), doctest::Contains("known presets: mnist, mnist-imsat"), value_error);
}

TEST_CASE("presets: the paper's settings stay the paper's (section 5.2)") {
  for (const char* n : {"mnist", "fashion-mnist"}) check_paper_only(presets::find(n));
  const auto mn = presets::find("mnist").model;
  CHECK(mn.batch_d == 64);
  CHECK(mn.batch_g == 64);
  CHECK(mn.batch_e == 512);
  CHECK(mn.beta1 == 50);
  CHECK(mn.beta2 == doctest::Approx(5e-4));
  const auto fm = presets::find("fashion-mnist").model;
  CHECK(fm.batch_e == 1200);
  CHECK(fm.beta1 == 100);
}

// The few-labels presets hold recipes that trained here; their comments (and docs/evaluation.md)
// give the flags that turn them back into the paper's settings. Those flags, applied here:
TEST_CASE("presets: the few-labels recipes, and the flags that give the paper's settings back") {
  auto fl = presets::find("fashion-mnist-few-labels");
  auto ds = presets::find("dsprites-few-labels");
  for (auto* r : {&fl, &ds}) {
    INFO("preset ", r->name);
    CHECK(r->e_pretrain > 0);                  // E pretrained on the labelled subset
    CHECK(r->model.e_hold == r->iterations);   // and held for the whole run
    CHECK(r->model.e_hold_content);            // E_e learns L_z during the hold
    CHECK(r->model.beta2_late == 1);           // L_z switched on late
    CHECK(r->model.beta2_late_start > 0);
    CHECK(r->model.beta2_late_start < r->iterations);
    // turned back: --e-pretrain 0 --e-hold 0 --e-hold-content false --beta2-late-start 0
    r->e_pretrain = 0;
    r->model.e_hold = 0;
    r->model.e_hold_content = false;
    r->model.beta2_late_start = 0;
  }
  // fashion-mnist-few-labels: --beta1 50 --init-std 0.02
  fl.model.beta1 = 50;
  fl.init_std = 0.02f;
  check_paper_only(fl);
  CHECK(fl.model.batch_e == 1200);
  CHECK(fl.model.beta2 == doctest::Approx(5e-4));
  CHECK(fl.label_fraction == doctest::Approx(0.024));
  // dsprites-few-labels: --batch-d 300 --batch-g 300 --batch-e 1200 --labels-per-class 1
  ds.model.batch_d = ds.model.batch_g = 300;
  ds.model.batch_e = 1200;
  ds.labels_per_class = 1;
  check_paper_only(ds);
  CHECK(ds.model.beta1 == 1);
  CHECK(ds.model.beta2 == doctest::Approx(1e-4));
  CHECK(ds.label_fraction == doctest::Approx(0.012));
  CHECK(ds.lr == doctest::Approx(2e-4));
  CHECK(ds.adam_beta1 == 0);
  CHECK(ds.adam_beta2 == doctest::Approx(0.9));
  CHECK_NOTHROW(fl.model.validate());
  CHECK_NOTHROW(ds.model.validate());
}
