/// @file testing/gradient_check.hpp
/// Finite-difference checks of analytic gradients, for cdgan's layers and for yours.
///
/// What this represents (a port of dlib's `test_layer` idea, written anew):
/// - `check_gradient(x, n, value, analytic)`: compares analytic dF/dx[i] against central differences
///   (F(x+h) − F(x−h)) / 2h evaluated in double, sweeping h = h0·2^j from 1e-4 (relative to |x[i]|,
///   at least absolute 1e-4) up to 0.05. An element passes if some h gives relative error ≤ rel_tol
///   or absolute error ≤ abs_tol (defaults 0.05 and 0.006, dlib's thresholds).
/// - `check_layer(layer, batch)`: for a bound CPU layer, F(x, θ) = ⟨forward(x), g⟩ with random x and g;
///   checks dL/dx and every parameter gradient. Parameter gradients are pre-filled with +inf before
///   `backward`, so an entry the layer forgot to write fails the check. It then checks that
///   `grads::accumulate` adds and `grads::skip` leaves the gradients alone.
/// Ensures: `result.ok` is false, and `result.message` names the tensor, the index, the analytic and
/// numeric values, when any checked element fails.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../nn/layer.hpp"

namespace cdgan::testing {

struct check_options {
  double rel_tol = 0.05;
  double abs_tol = 0.006;
  double h0 = 1e-4;
  double h_max = 0.05;
  std::size_t max_elements = 400;  ///< per tensor: check a random subset when larger
  std::uint64_t seed = 1;
  std::size_t batch = 3;
  mode forward_mode = mode::train;
  real input_scale = 1;
};

struct check_result {
  bool ok = true;
  std::size_t checked = 0;
  double worst_abs_error = 0;
  std::string message;
  explicit operator bool() const { return ok; }
};

namespace detail {
inline std::vector<std::size_t> pick(std::size_t n, std::size_t max, std::uint64_t seed) {
  std::vector<std::size_t> idx;
  if (n <= max) {
    for (std::size_t i = 0; i < n; ++i) idx.push_back(i);
    return idx;
  }
  rng r(seed);
  for (std::size_t i = 0; i < max; ++i) idx.push_back(r.next_index(n));
  return idx;
}
}  // namespace detail

/// Checks analytic[i] = dF/dx[i] for (a subset of) the n reals at x, perturbing them in place.
/// `value` recomputes F in double from the current x.
inline check_result check_gradient(const std::string& what, real* x, std::size_t n, const std::function<double()>& value,
                                   const real* analytic, const check_options& o = {}) {
  check_result r;
  for (std::size_t i : detail::pick(n, o.max_elements, o.seed + n)) {
    const real saved = x[i];
    const double a = analytic[i];
    bool pass = false;
    double best_abs = std::numeric_limits<double>::infinity(), best_num = 0;
    for (double h = std::max(o.h0, o.h0 * std::fabs(saved)); h <= o.h_max * std::max(1.0, std::fabs(double(saved)));
         h *= 2) {
      x[i] = static_cast<real>(saved + h);
      const double hp = static_cast<double>(x[i]) - saved;  // the step actually taken in float
      const double fp = value();
      x[i] = static_cast<real>(saved - h);
      const double hm = saved - static_cast<double>(x[i]);
      const double fm = value();
      x[i] = saved;
      const double num = (fp - fm) / (hp + hm);
      const double abs_err = std::fabs(num - a);
      const double rel_err = abs_err / std::max(std::fabs(num), std::fabs(a));
      if (abs_err < best_abs) {
        best_abs = abs_err;
        best_num = num;
      }
      if (std::isfinite(a) && (rel_err <= o.rel_tol || abs_err <= o.abs_tol)) {
        pass = true;
        break;
      }
    }
    ++r.checked;
    if (!pass) {
      if (r.ok || best_abs > r.worst_abs_error) {
        std::ostringstream m;
        m << what << "[" << i << "]: analytic " << a << ", numeric " << best_num;
        r.message = m.str();
      }
      r.ok = false;
    }
    if (std::isfinite(best_abs)) r.worst_abs_error = std::max(r.worst_abs_error, pass ? 0.0 : best_abs);
  }
  return r;
}

/// Merges check results (first failure message kept).
inline void merge(check_result& into, const check_result& r) {
  into.checked += r.checked;
  into.worst_abs_error = std::max(into.worst_abs_error, r.worst_abs_error);
  if (!r.ok && into.ok) into.message = r.message;
  into.ok = into.ok && r.ok;
}

/// Checks the input and parameter gradients of a bound CPU layer (see file comment).
template <class Layer>
check_result check_layer(Layer& layer, const check_options& o = {}) {
  using In = typename Layer::in_shape;
  using Out = typename Layer::out_shape;
  rng gen(o.seed);
  tensor<In, cpu> x(o.batch);
  tensor<Out, cpu> g(o.batch);
  x = gen.normal(0.f, o.input_scale);
  g = gen.normal(0.f, 1.f);
  const std::string lname = Layer::name();

  auto value = [&]() -> double {
    auto y = layer.forward(x.cv(), o.forward_mode);
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y.ptr[i]) * g.data()[i];
    return s;
  };

  // analytic gradients, parameter gradients pre-filled with +inf
  std::vector<nn::parameter_ref<cpu>> params;
  layer.for_each_parameter([&](nn::parameter_ref<cpu> p) { params.push_back(std::move(p)); });
  for (auto& p : params) std::fill(p.grad, p.grad + p.size, std::numeric_limits<real>::infinity());
  layer.forward(x.cv(), o.forward_mode);
  auto dxv = layer.backward(g.cv(), nn::grads::assign);
  std::vector<real> dx(dxv.ptr, dxv.ptr + dxv.size());
  std::vector<std::vector<real>> pg;
  for (auto& p : params) pg.emplace_back(p.grad, p.grad + p.size);

  check_result r;
  for (std::size_t k = 0; k < params.size(); ++k)
    for (std::size_t i = 0; i < params[k].size; ++i)
      if (!std::isfinite(pg[k][i])) {
        r.ok = false;
        r.message = lname + ": backward left " + params[k].name + "[" + std::to_string(i) + "] unwritten (or not finite)";
        return r;
      }

  merge(r, check_gradient(lname + " input gradient", x.data(), x.size(), value, dx.data(), o));
  for (std::size_t k = 0; k < params.size(); ++k)
    merge(r, check_gradient(lname + " " + params[k].name, params[k].value, params[k].size, value, pg[k].data(), o));
  if (!r.ok) return r;

  // grads::accumulate adds, grads::skip leaves alone
  layer.forward(x.cv(), o.forward_mode);
  layer.backward(g.cv(), nn::grads::accumulate);
  layer.forward(x.cv(), o.forward_mode);
  layer.backward(g.cv(), nn::grads::skip);
  for (std::size_t k = 0; k < params.size(); ++k)
    for (std::size_t i = 0; i < params[k].size; ++i) {
      const double want = 2.0 * pg[k][i], got = params[k].grad[i];
      if (std::fabs(got - want) > 1e-4 * std::max(1.0, std::fabs(want))) {
        r.ok = false;
        r.message = lname + ": grads::accumulate/skip gave " + params[k].name + "[" + std::to_string(i) +
                    "] = " + std::to_string(got) + ", expected twice the assigned gradient " + std::to_string(want);
        return r;
      }
    }
  return r;
}

}  // namespace cdgan::testing
