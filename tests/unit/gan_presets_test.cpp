// The named presets: valid, unique, and the paper's settings kept free of what the paper does not have.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "cdgan/gan/gan.hpp"

using namespace cdgan;

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

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
  for (const char* n : {"mnist", "fashion-mnist", "fashion-mnist-few-labels-paper", "dsprites-few-labels-paper"})
    check_paper_only(presets::find(n));
  const auto mn = presets::find("mnist").model;
  CHECK(mn.batch_d == 64);
  CHECK(mn.batch_g == 64);
  CHECK(mn.batch_e == 512);
  CHECK(mn.beta1 == 50);
  CHECK(mn.beta2 == doctest::Approx(5e-4));
  const auto fm = presets::find("fashion-mnist").model;
  CHECK(fm.batch_e == 1200);
  CHECK(fm.beta1 == 100);
  const auto fl = presets::find("fashion-mnist-few-labels-paper");
  CHECK(fl.model.beta1 == 50);
  CHECK(fl.label_fraction == doctest::Approx(0.024));
  const auto ds = presets::find("dsprites-few-labels-paper");
  CHECK(ds.model.batch_d == 300);
  CHECK(ds.model.batch_g == 300);
  CHECK(ds.model.batch_e == 1200);
  CHECK(ds.model.beta1 == 1);
  CHECK(ds.model.beta2 == doctest::Approx(1e-4));
  CHECK(ds.label_fraction == doctest::Approx(0.012));
  CHECK(ds.lr == doctest::Approx(2e-4));
  CHECK(ds.adam_beta1 == 0);
  CHECK(ds.adam_beta2 == doctest::Approx(0.9));
}

TEST_CASE("presets: each recipe differs from its -paper preset only where it says so") {
  for (const auto& p : presets::all()) {
    if (!ends_with(p.name, "-paper")) continue;
    const auto r = presets::find(p.name.substr(0, p.name.size() - 6));
    INFO("preset ", r.name);
    CHECK(r.dataset == p.dataset);
    CHECK(r.network == p.network);
    CHECK(r.label_fraction == p.label_fraction);
    CHECK(r.model.tau == p.model.tau);
    CHECK(r.model.beta2 == p.model.beta2);
    CHECK(r.e_pretrain > 0);  // the recipes start from an encoder pretrained on the labelled subset
    CHECK(r.model.e_hold == r.iterations);  // and hold it for the whole run
    CHECK(r.model.e_hold_content);
    CHECK(r.model.beta2_late_start > 0);
    CHECK(r.model.beta2_late_start < r.iterations);
  }
}
