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
/// The bias corrections are computed in double by a one-element kernel (`adam_schedule`) from a step
/// counter kept on Device next to m and v, so a step's launches do not depend on host values that
/// change from step to step: a recorded CUDA graph of the step stays right when it is replayed.
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
/// The step's constants, in s = {t, step size, √(1 − β2^t)} on the device: t ← t + 1, then
/// s[1] = lr / (1 − β1^t) and s[2] = √(1 − β2^t), in double (the update rounds them to real once).
/// One element.
struct adam_schedule {
  double* s;
  double beta1, beta2, lr;
  CDGAN_HOST_DEVICE void operator()(std::size_t) const {
    const double t = s[0] + 1;
    s[0] = t;
    s[1] = lr / (1.0 - ::pow(beta1, t));
    s[2] = ::sqrt(1.0 - ::pow(beta2, t));
  }
};

/// The fused Adam update of one parameter: element i of θ, m, v in one pass; c: adam_schedule's
/// s + 1 (step size, √(1 − β2^t)).
struct adam_update {
  real* p;
  const real* g;
  real* m;
  real* v;
  const double* c;
  real beta1, beta2, one_minus_beta1, one_minus_beta2, weight_decay, eps;
  CDGAN_HOST_DEVICE void operator()(std::size_t i) const {
    const real step_size = static_cast<real>(c[0]), sqrt_bc2 = static_cast<real>(c[1]);
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
    const real step_size = static_cast<real>(c[0]), sqrt_bc2 = static_cast<real>(c[1]);
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
      : base("adam", std::move(params), o.lr()), opt_(validated(o)), m_(this->params_), v_(this->params_), s_(3) {
    upload_step_count();
  }
  template <parameterised Net>
    requires std::is_same_v<typename Net::device, Device>
  explicit adam(Net& net, adam_options o = {}) : adam(parameters(net), o) {}

  const adam_options& options() const { return opt_; }

  /// Whether a recorded step (CUDA graph) may be replayed: every value that changes from step to step
  /// is read from device memory (the step counter), none is a kernel argument. lr() is one: a replay
  /// needs the lr() it was recorded with (gan/model.hpp checks).
  static constexpr bool replayable = true;

  /// One Adam step over every parameter.
  void step() {
    this->check_gradients();
    ++this->steps_;
    const double b1 = opt_.beta1(), b2 = opt_.beta2();
    backend<Device>::for_each(1, detail::adam_schedule{s_.data(), b1, b2, static_cast<double>(this->lr_)});
    detail::adam_update u{};
    u.c = s_.data() + 1;
    u.beta1 = opt_.beta1();
    u.beta2 = opt_.beta2();
    u.one_minus_beta1 = static_cast<real>(1.0 - b1);
    u.one_minus_beta2 = static_cast<real>(1.0 - b2);
    u.weight_decay = opt_.weight_decay();
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

  /// Sets the step count t (a checkpoint's), here and in the device copy that the update reads.
  void set_step_count(std::uint64_t n) {
    this->steps_ = n;
    upload_step_count();
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

  void upload_step_count() {
    const double t = static_cast<double>(this->steps_);
    device_memory<Device>::from_host(s_.data(), &t, sizeof t);
  }

  adam_options opt_;
  detail::state_array<Device> m_, v_;
  buffer<Device, double> s_;  // the step count t and the update's constants (adam_schedule)
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
