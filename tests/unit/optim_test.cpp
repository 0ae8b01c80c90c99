// Optimisers: Adam and SGD steps against the PyTorch update rules evaluated by hand in double, option
// validation, state allocation, checkpoint state, and training a small network.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cdgan/nn/nn.hpp"
#include "cdgan/optim/optim.hpp"

using namespace cdgan;

namespace {

/// Two parameters (5 and 2x3 scalars) with known values, and their references.
struct two_params {
  nn::parameter<shape<5>, cpu> a;
  nn::parameter<shape<2, 3>, cpu> b;
  two_params() {
    a.value.from_host({0.5f, -1.25f, 2.f, 0.f, -0.3f});
    b.value.from_host({1.f, -2.f, 0.75f, 3.f, -0.01f, 0.2f});
  }
  optim::parameter_list<cpu> refs() { return {nn::make_ref("a", a), nn::make_ref("b", b)}; }
  std::vector<real*> values() { return {a.value.data(), b.value.data()}; }
  std::vector<real*> grads() { return {a.grad.data(), b.grad.data()}; }
  static constexpr std::size_t sizes[2] = {5, 6};
};

/// A gradient that differs per element and per step: large, tiny, zero, negative entries.
real grad_at(std::size_t k, std::size_t i, int t) {
  if (k == 0 && i == 3) return 0.f;                                    // a zero gradient
  if (k == 1 && i == 4) return 1e-4f * static_cast<real>(t);           // a tiny one (eps matters)
  return static_cast<real>(std::sin(0.7 * static_cast<double>(i + 3 * k) + 1.3 * t) * (1.0 + static_cast<double>(k)));
}
void set_grads(two_params& tp, int t) {
  auto g = tp.grads();
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t i = 0; i < two_params::sizes[k]; ++i) g[k][i] = grad_at(k, i, t);
}

/// PyTorch's Adam (torch/optim/adam.py, _single_tensor_adam, amsgrad=False) in double.
struct adam_reference {
  double lr, b1, b2, eps, wd;
  std::vector<std::vector<double>> p, m, v;
  int t = 0;
  void step(const std::vector<std::vector<double>>& g) {
    ++t;
    const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    for (std::size_t k = 0; k < p.size(); ++k)
      for (std::size_t i = 0; i < p[k].size(); ++i) {
        double gi = g[k][i] + wd * p[k][i];
        m[k][i] = b1 * m[k][i] + (1 - b1) * gi;
        v[k][i] = b2 * v[k][i] + (1 - b2) * gi * gi;
        const double denom = std::sqrt(v[k][i]) / std::sqrt(bc2) + eps;
        p[k][i] -= lr / bc1 * m[k][i] / denom;
      }
  }
};

/// PyTorch's SGD (torch/optim/sgd.py, _single_tensor_sgd) in double.
struct sgd_reference {
  double lr, momentum, dampening, wd;
  bool nesterov;
  std::vector<std::vector<double>> p, buf;
  int t = 0;
  void step(const std::vector<std::vector<double>>& g) {
    ++t;
    for (std::size_t k = 0; k < p.size(); ++k)
      for (std::size_t i = 0; i < p[k].size(); ++i) {
        double d = g[k][i] + wd * p[k][i];
        if (momentum != 0) {
          buf[k][i] = t == 1 ? d : momentum * buf[k][i] + (1 - dampening) * d;
          d = nesterov ? d + momentum * buf[k][i] : buf[k][i];
        }
        p[k][i] -= lr * d;
      }
  }
};

std::vector<std::vector<double>> host_values(two_params& tp) {
  std::vector<std::vector<double>> r;
  auto v = tp.values();
  for (std::size_t k = 0; k < 2; ++k) r.emplace_back(v[k], v[k] + two_params::sizes[k]);
  return r;
}
std::vector<std::vector<double>> host_grads(two_params& tp) {
  std::vector<std::vector<double>> r;
  auto g = tp.grads();
  for (std::size_t k = 0; k < 2; ++k) r.emplace_back(g[k], g[k] + two_params::sizes[k]);
  return r;
}
std::vector<std::vector<double>> zeros_like(const std::vector<std::vector<double>>& x) {
  std::vector<std::vector<double>> r;
  for (const auto& v : x) r.emplace_back(v.size(), 0.0);
  return r;
}

void check_close(two_params& tp, const std::vector<std::vector<double>>& want, double tol, int step) {
  auto v = tp.values();
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t i = 0; i < two_params::sizes[k]; ++i) {
      INFO("step ", step, " parameter ", k, " element ", i);
      CHECK(std::abs(double(v[k][i]) - want[k][i]) <= tol);
    }
}

void run_adam_case(optim::adam_options o) {
  two_params tp;
  adam_reference ref{o.lr(), o.beta1(), o.beta2(), o.eps(), o.weight_decay(), host_values(tp), {}, {}};
  ref.m = ref.v = zeros_like(ref.p);
  optim::adam<cpu> opt(tp.refs(), o);
  for (int t = 1; t <= 3; ++t) {
    set_grads(tp, t);
    ref.step(host_grads(tp));
    opt.step();
    CHECK(opt.step_count() == static_cast<std::uint64_t>(t));
    check_close(tp, ref.p, 1e-6, t);
  }
  // the state is exposed as m ("exp_avg") and v ("exp_avg_sq")
  std::vector<std::string> names;
  std::size_t k = 0;
  opt.for_each_state([&](const std::string& name, real* data, std::size_t n) {
    names.push_back(name);
    const auto& want = (k % 2 == 0 ? ref.m : ref.v)[k / 2];
    REQUIRE(n == want.size());
    for (std::size_t i = 0; i < n; ++i) CHECK(double(data[i]) == doctest::Approx(want[i]).epsilon(1e-5).scale(1e-3));
    ++k;
  });
  CHECK(names == std::vector<std::string>{"a.exp_avg", "a.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq"});
}

void run_sgd_case(optim::sgd_options o) {
  two_params tp;
  sgd_reference ref{o.lr(), o.momentum(), o.dampening(), o.weight_decay(), o.nesterov(), host_values(tp), {}};
  ref.buf = zeros_like(ref.p);
  optim::sgd<cpu> opt(tp.refs(), o);
  for (int t = 1; t <= 3; ++t) {
    set_grads(tp, t);
    ref.step(host_grads(tp));
    opt.step();
    check_close(tp, ref.p, 1e-6, t);
  }
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const value_error& e) {
    return e.what();
  }
  return "(no value_error)";
}

}  // namespace

TEST_CASE("adam: three steps match PyTorch's update computed in double") {
  SUBCASE("defaults") { run_adam_case(optim::adam_options{}); }
  SUBCASE("GAN betas, larger lr") { run_adam_case(optim::adam_options{}.lr(0.05f).betas(0.5f, 0.9f)); }
  SUBCASE("weight decay is an L2 term added to the gradient, eps is added after sqrt(v_hat)") {
    // eps = 1e-3 is large next to sqrt(v_hat) of the tiny gradient, so eps inside the root would fail
    run_adam_case(optim::adam_options{}.lr(0.05f).beta1(0.8f).beta2(0.95f).eps(1e-3f).weight_decay(0.1f));
  }
}

TEST_CASE("adam: a parameter of several blocks and two threads' pieces matches the reference everywhere") {
  // The CPU backend runs Adam through adam_update::range (Eigen blocks of 2048 over each piece of
  // a parallel_for, pieces of at least executor<cpu>::grain = 16384 elements). With 2 threads the
  // second piece starts at 16384 and holds two whole blocks and a short one. Every element is
  // compared, so a skipped, doubled or misplaced block fails.
  constexpr std::size_t n = executor<cpu>::grain + 2 * 2048 + 1031;
  const int threads = num_threads();
  for (int th : {1, 2}) {
    set_num_threads(th);
    for (real wd : {real(0), real(0.05)}) {
      INFO("threads ", th, " weight_decay ", wd);
      nn::parameter<shape<n>, cpu> a;
      std::vector<real> init(n);
      for (std::size_t i = 0; i < n; ++i) init[i] = static_cast<real>(std::cos(0.37 * static_cast<double>(i)));
      a.value.from_host(init);
      const auto o = optim::adam_options{}.lr(0.01f).betas(0.5f, 0.9f).weight_decay(wd);
      adam_reference ref{o.lr(), o.beta1(), o.beta2(), o.eps(), o.weight_decay(), {}, {}, {}};
      ref.p = {std::vector<double>(init.begin(), init.end())};
      ref.m = ref.v = zeros_like(ref.p);
      optim::adam<cpu> opt(optim::parameter_list<cpu>{nn::make_ref("a", a)}, o);
      for (int t = 1; t <= 3; ++t) {
        std::vector<double> g(n);
        for (std::size_t i = 0; i < n; ++i) {
          g[i] = i % 97 == 0 ? 0.0 : std::sin(0.013 * static_cast<double>(i) + t);
          a.grad.data()[i] = static_cast<real>(g[i]);
        }
        ref.step({g});
        opt.step();
      }
      std::size_t bad = 0;
      for (std::size_t i = 0; i < n; ++i) bad += std::abs(double(a.value.data()[i]) - ref.p[0][i]) > 1e-6;
      CHECK(bad == 0);
    }
  }
  set_num_threads(threads);
}

TEST_CASE("sgd: three steps match PyTorch's update computed in double") {
  SUBCASE("plain") { run_sgd_case(optim::sgd_options{}.lr(0.1f)); }
  SUBCASE("weight decay") { run_sgd_case(optim::sgd_options{}.lr(0.1f).weight_decay(0.05f)); }
  SUBCASE("momentum (the first step copies the gradient into the buffer)") {
    run_sgd_case(optim::sgd_options{}.lr(0.1f).momentum(0.9f));
  }
  SUBCASE("momentum with dampening") { run_sgd_case(optim::sgd_options{}.lr(0.1f).momentum(0.9f).dampening(0.3f)); }
  SUBCASE("nesterov with weight decay") {
    run_sgd_case(optim::sgd_options{}.lr(0.05f).momentum(0.8f).nesterov(true).weight_decay(0.01f));
  }
}

TEST_CASE("optimiser options are validated with messages naming the option and the value") {
  two_params tp;
  auto adam_error = [&](optim::adam_options o) { return error_of([&] { optim::adam<cpu> a(tp.refs(), o); }); };
  auto sgd_error = [&](optim::sgd_options o) { return error_of([&] { optim::sgd<cpu> s(tp.refs(), o); }); };
  CHECK(adam_error(optim::adam_options{}.lr(-0.5f)) == "cdgan::optim::adam: invalid lr -0.5 (must be finite and >= 0)");
  CHECK(adam_error(optim::adam_options{}.beta1(1.f)) == "cdgan::optim::adam: invalid beta1 1 (must be in [0, 1))");
  CHECK(adam_error(optim::adam_options{}.betas(0.5f, -0.25f)) ==
        "cdgan::optim::adam: invalid beta2 -0.25 (must be in [0, 1))");
  CHECK(adam_error(optim::adam_options{}.eps(-1.f)) == "cdgan::optim::adam: invalid eps -1 (must be finite and >= 0)");
  CHECK(adam_error(optim::adam_options{}.weight_decay(-2.f)) ==
        "cdgan::optim::adam: invalid weight_decay -2 (must be finite and >= 0)");
  CHECK(adam_error(optim::adam_options{}.lr(std::numeric_limits<real>::quiet_NaN())).find("invalid lr nan") !=
        std::string::npos);
  CHECK(sgd_error(optim::sgd_options{}.momentum(-0.5f)) ==
        "cdgan::optim::sgd: invalid momentum -0.5 (must be finite and >= 0)");
  CHECK(sgd_error(optim::sgd_options{}.momentum(0.9f).dampening(1.5f)) ==
        "cdgan::optim::sgd: invalid dampening 1.5 (must be in [0, 1])");
  CHECK(sgd_error(optim::sgd_options{}.nesterov(true)).find("nesterov with momentum 0") != std::string::npos);
  CHECK(sgd_error(optim::sgd_options{}.momentum(0.9f).dampening(0.1f).nesterov(true)).find("dampening 0.1") !=
        std::string::npos);
  CHECK(sgd_error(optim::sgd_options{}.lr(-1.f)) == "cdgan::optim::sgd: invalid lr -1 (must be finite and >= 0)");
  // valid options do not throw, and are kept
  optim::adam<cpu> a(tp.refs(), optim::adam_options{}.lr(2e-4f).betas(0.5f, 0.9f).eps(1e-8f).weight_decay(0));
  CHECK(a.lr() == 2e-4f);
  CHECK(a.options().beta1() == 0.5f);
  CHECK(a.options().beta2() == 0.9f);
  CHECK(error_of([&] { a.set_lr(-1.f); }) == "cdgan::optim::adam: invalid lr -1 (must be finite and >= 0)");
  CHECK(a.lr() == 2e-4f);
  // the parameter list itself
  CHECK(error_of([] { optim::adam<cpu> e(optim::parameter_list<cpu>{}); }) ==
        "cdgan::optim::adam: the parameter list is empty");
  auto twice = tp.refs();
  twice.push_back(twice[0]);
  CHECK(error_of([&] { optim::sgd<cpu> s(twice); }) ==
        "cdgan::optim::sgd: parameter 'a' appears more than once in the parameter list");
}

TEST_CASE("optimiser state is allocated once, in the constructor") {
  two_params tp;
  const std::size_t before = allocation_count();
  optim::adam<cpu> a(tp.refs());
  const std::size_t after_adam = allocation_count();
  CHECK(after_adam > before);
  CHECK(after_adam - before <= 3);  // m, v, and the step count with the update's constants (adam_schedule)
  optim::sgd<cpu> plain(tp.refs(), optim::sgd_options{}.lr(0.1f));
  CHECK(allocation_count() == after_adam);  // no momentum: no state
  optim::sgd<cpu> mom(tp.refs(), optim::sgd_options{}.lr(0.1f).momentum(0.9f));
  const std::size_t after_all = allocation_count();
  CHECK(after_all - after_adam == 1);
  for (int t = 1; t <= 5; ++t) {
    set_grads(tp, t);
    a.step();
    mom.step();
    plain.step();
    a.zero_grad();
  }
  CHECK(allocation_count() == after_all);
  // state starts at zero
  optim::adam<cpu> fresh(tp.refs());
  fresh.for_each_state([](const std::string& name, const real* d, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) CHECK_MESSAGE(d[i] == 0.f, name);
  });
  std::size_t states = 0;
  plain.for_each_state([&](const std::string&, real*, std::size_t) { ++states; });
  CHECK(states == 0);
  mom.for_each_state([&](const std::string& name, real*, std::size_t n) {
    CHECK((name == "a.momentum_buffer" ? n == 5 : name == "b.momentum_buffer" && n == 6));
    ++states;
  });
  CHECK(states == 2);
}

TEST_CASE("zero_grad, set_lr and the non-finite gradient check") {
  two_params tp;
  optim::adam<cpu> a(tp.refs(), optim::adam_options{}.lr(0.1f));
  set_grads(tp, 1);
  a.zero_grad();
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t i = 0; i < two_params::sizes[k]; ++i) CHECK(tp.grads()[k][i] == 0.f);
  // lr 0 leaves the parameters where they are
  set_grads(tp, 1);
  const auto before = host_values(tp);
  a.set_lr(0.f);
  a.step();
  CHECK(host_values(tp) == before);
  // with checks on, a NaN gradient throws naming the parameter and changes nothing
  a.set_lr(0.1f);
  tp.b.grad.data()[2] = std::numeric_limits<real>::quiet_NaN();
  set_checks(true);
  CHECK_THROWS_WITH_AS(a.step(), "cdgan::optim::adam: the gradient of parameter 'b' holds a NaN or an infinity",
                       numeric_error);
  set_checks(false);
  CHECK(host_values(tp) == before);
  CHECK(a.step_count() == 1);
}

TEST_CASE("optimiser state and step count resume training bit for bit") {
  auto grads_at = [](two_params& tp, int t) { set_grads(tp, t); };
  two_params p1, p2;
  const auto o = optim::adam_options{}.lr(0.05f).betas(0.5f, 0.9f);
  optim::adam<cpu> a1(p1.refs(), o);
  for (int t = 1; t <= 3; ++t) {
    grads_at(p1, t);
    a1.step();
  }
  // "checkpoint": parameters, optimiser state and step count into a fresh pair
  optim::adam<cpu> a2(p2.refs(), o);
  for (std::size_t k = 0; k < 2; ++k)
    std::memcpy(p2.values()[k], p1.values()[k], two_params::sizes[k] * sizeof(real));
  std::vector<std::vector<real>> saved;
  a1.for_each_state([&](const std::string&, const real* d, std::size_t n) { saved.emplace_back(d, d + n); });
  std::size_t k = 0;
  a2.for_each_state([&](const std::string&, real* d, std::size_t n) {
    std::memcpy(d, saved[k++].data(), n * sizeof(real));
  });
  a2.set_step_count(a1.step_count());
  for (int t = 4; t <= 5; ++t) {
    grads_at(p1, t);
    grads_at(p2, t);
    a1.step();
    a2.step();
  }
  CHECK(host_values(p1) == host_values(p2));
  // without the step count the bias corrections differ
  two_params p3;
  optim::adam<cpu> a3(p3.refs(), o);
  for (std::size_t j = 0; j < 2; ++j)
    std::memcpy(p3.values()[j], p2.values()[j], two_params::sizes[j] * sizeof(real));
  grads_at(p2, 6);
  grads_at(p3, 6);
  a2.step();
  a3.step();
  CHECK(host_values(p3) != host_values(p2));
}

TEST_CASE("a large parameter updates identically with 1 and 2 threads") {
  nn::parameter<shape<40000>, cpu> w1, w2;
  auto fill = [](nn::parameter<shape<40000>, cpu>& w, int t) {
    for (std::size_t i = 0; i < 40000; ++i) {
      w.grad.data()[i] = static_cast<real>(std::cos(0.001 * static_cast<double>(i) * t));
      if (t == 1) w.value.data()[i] = static_cast<real>(std::sin(0.01 * static_cast<double>(i)));
    }
  };
  const int threads = num_threads();
  fill(w1, 1);
  fill(w2, 1);
  optim::adam<cpu> a1({nn::make_ref("w", w1)}, optim::adam_options{}.weight_decay(0.01f));
  optim::adam<cpu> a2({nn::make_ref("w", w2)}, optim::adam_options{}.weight_decay(0.01f));
  for (int t = 1; t <= 3; ++t) {
    fill(w1, t + 1);
    fill(w2, t + 1);
    set_num_threads(1);
    a1.step();
    set_num_threads(2);
    a2.step();
  }
  set_num_threads(threads);
  CHECK(std::memcmp(w1.value.data(), w2.value.data(), 40000 * sizeof(real)) == 0);
}

TEST_CASE_TEMPLATE("optimisers fit a small regression network", Opt, optim::adam<cpu>, optim::sgd<cpu>) {
  using net_t = nn::sequential<nn::input<3>, nn::dense<8>, nn::tanh, nn::dense<1>>;
  nn::network<net_t> net;
  rng g(5);
  net.init(g);
  tensor<shape<3>> x(64);
  x = g.normal();
  tensor<shape<1>> target(64), dy(64);
  {
    auto xh = x.to_host();
    std::vector<real> th(64);
    for (std::size_t b = 0; b < 64; ++b) th[b] = 0.5f * xh[3 * b] - 0.25f * xh[3 * b + 1] + 0.1f;
    target.from_host(th);
  }
  auto loss = [&] {
    auto y = net.forward(x.cv());
    double s = 0;
    for (std::size_t b = 0; b < 64; ++b) s += (double(y.ptr[b]) - target.data()[b]) * (double(y.ptr[b]) - target.data()[b]);
    return s / 64;
  };
  typename Opt::options_type o;
  if constexpr (std::is_same_v<Opt, optim::adam<cpu>>)
    o.lr(0.02f);
  else
    o.lr(0.1f).momentum(0.9f);
  Opt opt(net, o);  // collects net's parameters
  CHECK(opt.params().size() == 4);
  CHECK(opt.num_parameters() == net.num_parameters());
  const double start = loss();
  for (int it = 0; it < 300; ++it) {
    auto y = net.forward(x.cv());
    dy = (y - target.cv()) * (2.f / 64.f);
    net.backward(dy.cv());
    opt.step();
  }
  const double end = loss();
  INFO("loss ", start, " -> ", end);
  CHECK(end < 0.02 * start);
  CHECK(end < 1e-3);
}

TEST_CASE("class template argument deduction and the optimizer concept") {
  nn::network<nn::sequential<nn::input<2>, nn::dense<2>>> net;
  optim::adam a{net, optim::adam_options{}.lr(1e-3f)};
  optim::sgd s{optim::parameters(net)};
  static_assert(std::is_same_v<decltype(a), optim::adam<cpu>>);
  static_assert(std::is_same_v<decltype(s), optim::sgd<cpu>>);
  static_assert(optim::optimizer<optim::adam<cpu>>);
  static_assert(optim::optimizer<optim::sgd<cpu>>);
  nn::network<nn::sequential<nn::input<3>, nn::dense<1>>> other;
  auto both = optim::parameters(net, other);
  CHECK(both.size() == 4);
  CHECK(both[0].name == "1.weight");
  CHECK(both[3].name == "1.bias");
  CHECK(both[2].size == 3);
}
