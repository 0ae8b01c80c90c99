/// @file optim/adam.hpp
/// Adam (Kingma & Ba, ICLR 2015), with exactly the semantics of PyTorch's `torch.optim.Adam`
/// (amsgrad = false, maximize = false).
///
/// What this represents: `adam<Device>` updates a list of parameters. For each parameter θ with
/// gradient g, at step t = 1, 2, ... (`step_count()` after the step):
///
///   g ← g + weight_decay·θ                          (L2 penalty added to the gradient, not AdamW)
///   m ← β1·m + (1 − β1)·g
///   v ← β2·v + (1 − β2)·g²
///   θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)
///
/// Requires: see optim/optimizer.hpp (the networks outlive the optimiser).
/// Ensures: m and v are allocated (on Device) and zeroed once, in the constructor; each step is one
/// fused pass per parameter (`backend<Device>::for_each`) reading θ, g, m, v and writing θ, m, v.
/// The bias corrections are computed on the host in double.
///
/// @code
/// @inproceedings{kingma2015adam, title={Adam: A Method for Stochastic Optimization},
///   author={Kingma, Diederik P and Ba, Jimmy}, booktitle={ICLR}, year={2015}}
/// @endcode
///
/// Usage (the DCGAN / CD-GAN setting):
/// @code
/// optim::adam opt{net, optim::adam_options{}.lr(2e-4f).betas(0.5f, 0.9f)};
/// net.forward(x); net.backward(dy); opt.step();
/// @endcode
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include <Eigen/Core>

#include "optimizer.hpp"

namespace cdgan::optim {

/// Options of `adam`, libtorch style: `adam_options{}.lr(2e-4f).betas(0.5f, 0.9f)`.
/// Defaults are PyTorch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.
struct adam_options {
  adam_options& lr(real v) {
    lr_ = v;
    return *this;
  }
  adam_options& betas(real b1, real b2) {
    beta1_ = b1;
    beta2_ = b2;
    return *this;
  }
  adam_options& beta1(real v) {
    beta1_ = v;
    return *this;
  }
  adam_options& beta2(real v) {
    beta2_ = v;
    return *this;
  }
  adam_options& eps(real v) {
    eps_ = v;
    return *this;
  }
  adam_options& weight_decay(real v) {
    weight_decay_ = v;
    return *this;
  }
  real lr() const { return lr_; }
  std::pair<real, real> betas() const { return {beta1_, beta2_}; }
  real beta1() const { return beta1_; }
  real beta2() const { return beta2_; }
  real eps() const { return eps_; }
  real weight_decay() const { return weight_decay_; }

 private:
  real lr_ = real(1e-3), beta1_ = real(0.9), beta2_ = real(0.999), eps_ = real(1e-8), weight_decay_ = 0;
};

namespace detail {
/// The fused Adam update of one parameter: element i of θ, m, v in one pass.
struct adam_update {
  real* p;
  const real* g;
  real* m;
  real* v;
  real beta1, beta2, one_minus_beta1, one_minus_beta2, weight_decay, step_size, sqrt_bc2, eps;
  CDGAN_HOST_DEVICE void operator()(std::size_t i) const {
    real gi = g[i];
    if (weight_decay != real(0)) gi += weight_decay * p[i];
    const real mi = beta1 * m[i] + one_minus_beta1 * gi;
    const real vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= step_size * mi / (::sqrtf(vi) / sqrt_bc2 + eps);
  }
  /// The same update over [lo, hi) on the host, which the CPU backend's for_each prefers: Eigen's
  /// packet sqrt vectorises where the loop above cannot (sqrtf may set errno, so GCC keeps it scalar
  /// unless the user compiles with -fno-math-errno). Blocks of 2048 keep θ, g, m, v in L1.
  void range(std::size_t lo, std::size_t hi) const {
    using array = Eigen::Array<real, Eigen::Dynamic, 1>;
    constexpr std::size_t block = 2048;
    for (std::size_t b = lo; b < hi; b += block) {
      const auto n = static_cast<Eigen::Index>(hi - b < block ? hi - b : block);
      Eigen::Map<array> P(p + b, n), M(m + b, n), V(v + b, n);
      const Eigen::Map<const array> G(g + b, n);
      if (weight_decay != real(0)) {
        M = beta1 * M + one_minus_beta1 * (G + weight_decay * P);
        V = beta2 * V + one_minus_beta2 * (G + weight_decay * P).square();
      } else {
        M = beta1 * M + one_minus_beta1 * G;
        V = beta2 * V + one_minus_beta2 * G.square();
      }
      P -= step_size * M / (V.sqrt() / sqrt_bc2 + eps);
    }
  }
};
}  // namespace detail

template <class Device = cpu>
class adam : public detail::optimizer_base<Device> {
  using base = detail::optimizer_base<Device>;

 public:
  using options_type = adam_options;

  explicit adam(parameter_list<Device> params, adam_options o = {})
      : base("adam", std::move(params), o.lr()), opt_(validated(o)), m_(this->params_), v_(this->params_) {}
  template <parameterised Net>
    requires std::is_same_v<typename Net::device, Device>
  explicit adam(Net& net, adam_options o = {}) : adam(parameters(net), o) {}

  const adam_options& options() const { return opt_; }

  /// One Adam step over every parameter.
  void step() {
    this->check_gradients();
    const std::uint64_t t = ++this->steps_;
    const double b1 = opt_.beta1(), b2 = opt_.beta2();
    const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(b2, static_cast<double>(t));
    detail::adam_update u{};
    u.beta1 = opt_.beta1();
    u.beta2 = opt_.beta2();
    u.one_minus_beta1 = static_cast<real>(1.0 - b1);
    u.one_minus_beta2 = static_cast<real>(1.0 - b2);
    u.weight_decay = opt_.weight_decay();
    u.step_size = static_cast<real>(static_cast<double>(this->lr_) / bc1);
    u.sqrt_bc2 = static_cast<real>(std::sqrt(bc2));
    u.eps = opt_.eps();
    for (std::size_t k = 0; k < this->params_.size(); ++k) {
      auto& p = this->params_[k];
      u.p = p.value;
      u.g = p.grad;
      u.m = m_.at(k);
      u.v = v_.at(k);
      backend<Device>::for_each(p.size, u);
    }
  }

  /// f(name, data, size) for each state array: "<param>.exp_avg" (m) and "<param>.exp_avg_sq" (v),
  /// device pointers. Together with step_count() this is the whole state.
  template <class F>
  void for_each_state(F&& f) {
    for (std::size_t k = 0; k < this->params_.size(); ++k) {
      const auto& p = this->params_[k];
      f(p.name + ".exp_avg", m_.at(k), p.size);
      f(p.name + ".exp_avg_sq", v_.at(k), p.size);
    }
  }
  template <class F>
  void for_each_state(F&& f) const {
    for (std::size_t k = 0; k < this->params_.size(); ++k) {
      const auto& p = this->params_[k];
      f(p.name + ".exp_avg", m_.at(k), p.size);
      f(p.name + ".exp_avg_sq", v_.at(k), p.size);
    }
  }

 private:
  static adam_options validated(const adam_options& o) {
    detail::require_unit_interval("adam", "beta1", o.beta1());
    detail::require_unit_interval("adam", "beta2", o.beta2());
    detail::require_non_negative("adam", "eps", o.eps());
    detail::require_non_negative("adam", "weight_decay", o.weight_decay());
    return o;
  }

  adam_options opt_;
  detail::state_array<Device> m_, v_;
};

template <class Device>
adam(parameter_list<Device>, adam_options) -> adam<Device>;
template <class Device>
adam(parameter_list<Device>) -> adam<Device>;
template <parameterised Net>
adam(Net&, adam_options) -> adam<typename Net::device>;
template <parameterised Net>
adam(Net&) -> adam<typename Net::device>;

}  // namespace cdgan::optim
