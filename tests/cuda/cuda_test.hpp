// Helpers of the CUDA tests: skipping without a device, host copies of device views, CPU-vs-GPU
// comparison, and copying a CPU layer's parameters and buffers into its GPU twin.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cdgan/backend/cuda/cuda.hpp"
#include "cdgan/nn/nn.hpp"
#include "no_device.hpp"
#if __has_include("cdgan/nn/buffers.hpp")
#include "cdgan/nn/buffers.hpp"
#define CDGAN_TEST_HAS_BUFFERS 1
#endif

namespace cdgan_test {
using namespace cdgan;

/// Host copy of any view or tensor data on either device.
template <class S, class T>
std::vector<real> host(view<S, cpu, T> v) {
  return std::vector<real>(v.ptr, v.ptr + v.size());
}
template <class S, class T>
std::vector<real> host(view<S, cuda, T> v) {
  std::vector<real> h(v.size());
  if (!h.empty()) device_memory<cuda>::to_host(h.data(), v.ptr, h.size() * sizeof(real));
  return h;
}
inline std::vector<real> host_of(const real* p, std::size_t n, cpu) { return std::vector<real>(p, p + n); }
inline std::vector<real> host_of(const real* p, std::size_t n, cuda) {
  std::vector<real> h(n);
  if (n) device_memory<cuda>::to_host(h.data(), p, n * sizeof(real));
  return h;
}

/// A GPU tensor holding the same values as a CPU one.
template <class S>
tensor<S, cuda> upload(const tensor<S, cpu>& t) {
  tensor<S, cuda> g;
  g.from_host(t.to_host());
  return g;
}

/// |want − got| ≤ atol + rtol·|want| everywhere (NaN only where both are NaN).
inline void check_close(const std::vector<real>& want, const std::vector<real>& got, double rtol, double atol,
                        const std::string& what) {
  REQUIRE_MESSAGE(want.size() == got.size(), what << ": " << want.size() << " CPU values, " << got.size() << " GPU values");
  std::size_t bad = 0, worst = 0;
  double worst_excess = -1;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double w = want[i], g = got[i];
    if (std::isnan(w) && std::isnan(g)) continue;
    if (w == g) continue;  // also equal infinities
    const double err = std::fabs(w - g), lim = atol + rtol * std::fabs(w);
    if (!(err <= lim)) {
      ++bad;
      if (!(err - lim <= worst_excess)) {
        worst_excess = err - lim;
        worst = i;
      }
    }
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << want.size() << " values differ beyond " << atol << " + " << rtol
                               << "·|cpu|; worst at " << worst << ": cpu " << (want.empty() ? 0.f : want[worst])
                               << ", gpu " << (got.empty() ? 0.f : got[worst]));
}

/// Every parameter of a CPU layer against its GPU twin (same order, names and sizes).
template <class LC, class LG>
void check_parameters(LC& c, LG& g, double rtol, double atol, const std::string& what, bool grads) {
  std::vector<nn::parameter_ref<cpu>> pc;
  std::vector<nn::parameter_ref<cuda>> pg;
  c.for_each_parameter([&](nn::parameter_ref<cpu> p) { pc.push_back(p); });
  g.for_each_parameter([&](nn::parameter_ref<cuda> p) { pg.push_back(p); });
  REQUIRE(pc.size() == pg.size());
  for (std::size_t i = 0; i < pc.size(); ++i) {
    REQUIRE(pc[i].name == pg[i].name);
    REQUIRE(pc[i].size == pg[i].size);
    if (grads)
      check_close(host_of(pc[i].grad, pc[i].size, cpu{}), host_of(pg[i].grad, pg[i].size, cuda{}), rtol, atol,
                  what + ": gradient of " + pc[i].name);
    else
      check_close(host_of(pc[i].value, pc[i].size, cpu{}), host_of(pg[i].value, pg[i].size, cuda{}), rtol, atol,
                  what + ": " + pc[i].name);
  }
}

/// Copies the CPU layer's parameter values (and persistent buffers) into the GPU layer, exactly.
template <class LC, class LG>
void copy_parameters(LC& c, LG& g) {
  std::vector<nn::parameter_ref<cpu>> pc;
  std::vector<nn::parameter_ref<cuda>> pg;
  c.for_each_parameter([&](nn::parameter_ref<cpu> p) { pc.push_back(p); });
  g.for_each_parameter([&](nn::parameter_ref<cuda> p) { pg.push_back(p); });
  REQUIRE(pc.size() == pg.size());
  for (std::size_t i = 0; i < pc.size(); ++i)
    device_memory<cuda>::from_host(pg[i].value, pc[i].value, pc[i].size * sizeof(real));
#ifdef CDGAN_TEST_HAS_BUFFERS
  std::vector<nn::parameter_ref<cpu>> bc;
  std::vector<nn::parameter_ref<cuda>> bg;
  nn::for_each_buffer(c, [&](nn::parameter_ref<cpu> p) { bc.push_back(p); });
  nn::for_each_buffer(g, [&](nn::parameter_ref<cuda> p) { bg.push_back(p); });
  REQUIRE(bc.size() == bg.size());
  for (std::size_t i = 0; i < bc.size(); ++i)
    device_memory<cuda>::from_host(bg[i].value, bc[i].value, bc[i].size * sizeof(real));
#endif
}

struct tolerance {
  double rtol = 1e-4, atol = 1e-4;
};

/// The layer of policy P on input shape In, on both devices: same-seed init (RNG parity), exact
/// parameter copy, then forward, backward (assign, then accumulate) and, where the layer has one,
/// double_backward must agree. SecondOrder = false skips double_backward, for networks that contain a
/// layer without one (batch_norm): a sequential always declares the member, but cannot instantiate it.
template <class P, class In, bool SecondOrder = true>
void check_layer_parity(std::size_t batch = 3, mode m = mode::train, tolerance tol = {}, std::uint64_t seed = 5) {
  using LC = nn::bind_t<P, In, cpu>;
  using LG = nn::bind_t<P, In, cuda>;
  using Out = typename LC::out_shape;
  static_assert(std::is_same_v<Out, typename LG::out_shape>);
  const std::string name = LC::name();
  auto lc = std::make_unique<LC>();
  auto lg = std::make_unique<LG>();
  rng r1(seed), r2(seed);
  lc->init(r1);
  lg->init(r2);
  check_parameters(*lc, *lg, 1e-5, 1e-6, name + " init (same seed)", false);
  copy_parameters(*lc, *lg);

  rng d(seed + 100);
  tensor<In, cpu> x(batch);
  x = d.normal();
  auto xg = upload(x);
  check_close(host(lc->forward(x.cv(), m)), host(lg->forward(xg.cv(), m)), tol.rtol, tol.atol, name + " forward");

  tensor<Out, cpu> dy(batch);
  dy = d.normal();
  auto dyg = upload(dy);
  check_close(host(lc->backward(dy.cv())), host(lg->backward(dyg.cv())), tol.rtol, tol.atol, name + " backward dx");
  check_parameters(*lc, *lg, tol.rtol, tol.atol, name + " backward", true);
  check_close(host(lc->backward(dy.cv(), nn::grads::accumulate)), host(lg->backward(dyg.cv(), nn::grads::accumulate)),
              tol.rtol, tol.atol, name + " backward dx (accumulate)");
  check_parameters(*lc, *lg, tol.rtol, tol.atol, name + " backward (accumulate)", true);

#ifdef CDGAN_TEST_HAS_BUFFERS
  {  // persistent state (batch_norm's running statistics, spectral_norm's u and v) after the passes
    std::vector<nn::parameter_ref<cpu>> bc;
    std::vector<nn::parameter_ref<cuda>> bg;
    nn::for_each_buffer(*lc, [&](nn::parameter_ref<cpu> p) { bc.push_back(p); });
    nn::for_each_buffer(*lg, [&](nn::parameter_ref<cuda> p) { bg.push_back(p); });
    REQUIRE(bc.size() == bg.size());
    for (std::size_t i = 0; i < bc.size(); ++i)
      check_close(host_of(bc[i].value, bc[i].size, cpu{}), host_of(bg[i].value, bg[i].size, cuda{}), tol.rtol, tol.atol,
                  name + ": buffer " + bc[i].name);
  }
#endif
  if constexpr (SecondOrder && nn::detail::has_double_backward<LC>) {
    tensor<In, cpu> gbar(batch), xbar(batch);
    gbar = d.normal();
    xbar = 0.f;
    auto gbarg = upload(gbar);
    auto xbarg = upload(xbar);
    check_close(host(lc->double_backward(gbar.cv(), xbar.v())), host(lg->double_backward(gbarg.cv(), xbarg.v())),
                tol.rtol, tol.atol, name + " double_backward dybar");
    check_close(xbar.to_host(), xbarg.to_host(), tol.rtol, tol.atol, name + " double_backward xbar");
    check_parameters(*lc, *lg, tol.rtol, tol.atol, name + " double_backward", true);
  }
}

}  // namespace cdgan_test

/// First statement of every test case that needs a GPU.
#define CDGAN_REQUIRE_GPU()                                 \
  do {                                                      \
    if (!::cdgan::cuda_available()) {                       \
      MESSAGE("SKIPPED: no CUDA device");                   \
      return;                                               \
    }                                                       \
  } while (0)
