/// @file optim/sgd.hpp
/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight
/// decay, with exactly the semantics of PyTorch's `torch.optim.SGD` (maximize = false).
///
/// What this represents: `sgd<Device>` updates a list of parameters. For each parameter θ with
/// gradient g, at step t = 1, 2, ...:
///
///   g ← g + weight_decay·θ
///   if momentum ≠ 0:   b ← g at t = 1, else b ← momentum·b + (1 − dampening)·g
///                      g ← g + momentum·b (nesterov) or g ← b
///   θ ← θ − lr·g
///
/// Requires: see optim/optimizer.hpp. Nesterov momentum needs momentum > 0 and dampening = 0
/// (PyTorch's rule); 0 ≤ dampening ≤ 1.
/// Ensures: the momentum buffers are allocated (on Device) once, in the constructor, and only when
/// momentum ≠ 0; each step is one fused pass per parameter (`backend<Device>::for_each`).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "optimizer.hpp"

namespace cdgan::optim {

/// Options of `sgd`, libtorch style: `sgd_options{}.lr(0.1f).momentum(0.9f).nesterov(true)`.
/// Defaults: lr 1e-3 (PyTorch has no default), momentum 0, dampening 0, nesterov off, weight_decay 0.
struct sgd_options {
  sgd_options& lr(real v) {
    lr_ = v;
    return *this;
  }
  sgd_options& momentum(real v) {
    momentum_ = v;
    return *this;
  }
  sgd_options& dampening(real v) {
    dampening_ = v;
    return *this;
  }
  sgd_options& nesterov(bool v) {
    nesterov_ = v;
    return *this;
  }
  sgd_options& weight_decay(real v) {
    weight_decay_ = v;
    return *this;
  }
  real lr() const { return lr_; }
  real momentum() const { return momentum_; }
  real dampening() const { return dampening_; }
  bool nesterov() const { return nesterov_; }
  real weight_decay() const { return weight_decay_; }

 private:
  real lr_ = real(1e-3), momentum_ = 0, dampening_ = 0, weight_decay_ = 0;
  bool nesterov_ = false;
};

namespace detail {
/// The fused SGD update of one parameter (and its momentum buffer, when b != nullptr).
struct sgd_update {
  real* p;
  const real* g;
  real* b;
  real lr, momentum, one_minus_dampening, weight_decay;
  bool first, nesterov;
  CDGAN_HOST_DEVICE void operator()(std::size_t i) const {
    real gi = g[i];
    if (weight_decay != real(0)) gi += weight_decay * p[i];
    if (b) {
      const real bi = first ? gi : momentum * b[i] + one_minus_dampening * gi;
      b[i] = bi;
      gi = nesterov ? gi + momentum * bi : bi;
    }
    p[i] -= lr * gi;
  }
};
}  // namespace detail

template <class Device = cpu>
class sgd : public detail::optimizer_base<Device> {
  using base = detail::optimizer_base<Device>;

 public:
  using options_type = sgd_options;

  explicit sgd(parameter_list<Device> params, sgd_options o = {})
      : base("sgd", std::move(params), o.lr()), opt_(validated(o)) {
    if (opt_.momentum() != real(0)) buf_ = detail::state_array<Device>(this->params_);
  }
  template <parameterised Net>
    requires std::is_same_v<typename Net::device, Device>
  explicit sgd(Net& net, sgd_options o = {}) : sgd(parameters(net), o) {}

  const sgd_options& options() const { return opt_; }

  /// Whether a recorded step (CUDA graph) may be replayed. The first step (no momentum buffer yet) is
  /// special, so a replay is only correct after it; lr() must be the one it was recorded with
  /// (gan/model.hpp records after the first step and checks both).
  static constexpr bool replayable = true;

  /// One SGD step over every parameter.
  void step() {
    this->check_gradients();
    const bool first = this->steps_ == 0;
    ++this->steps_;
    const bool with_momentum = opt_.momentum() != real(0);
    detail::sgd_update u{};
    u.lr = this->lr_;
    u.momentum = opt_.momentum();
    u.one_minus_dampening = real(1) - opt_.dampening();
    u.weight_decay = opt_.weight_decay();
    u.first = first;
    u.nesterov = opt_.nesterov();
    for (std::size_t k = 0; k < this->params_.size(); ++k) {
      auto& p = this->params_[k];
      u.p = p.value;
      u.g = p.grad;
      u.b = with_momentum ? buf_.at(k) : nullptr;
      backend<Device>::for_each(p.size, u);
    }
  }

  /// f(name, data, size) for each momentum buffer "<param>.momentum_buffer" (none without momentum).
  template <class F>
  void for_each_state(F&& f) {
    if (buf_.empty()) return;
    for (std::size_t k = 0; k < this->params_.size(); ++k)
      f(this->params_[k].name + ".momentum_buffer", buf_.at(k), this->params_[k].size);
  }
  template <class F>
  void for_each_state(F&& f) const {
    if (buf_.empty()) return;
    for (std::size_t k = 0; k < this->params_.size(); ++k)
      f(this->params_[k].name + ".momentum_buffer", buf_.at(k), this->params_[k].size);
  }

 private:
  static sgd_options validated(const sgd_options& o) {
    detail::require_non_negative("sgd", "momentum", o.momentum());
    detail::require(o.dampening() >= 0 && o.dampening() <= 1, "sgd", "dampening", o.dampening(), "must be in [0, 1]");
    detail::require_non_negative("sgd", "weight_decay", o.weight_decay());
    if (o.nesterov() && (o.momentum() <= 0 || o.dampening() != 0))
      throw value_error("cdgan::optim::sgd: invalid nesterov with momentum " + detail::number(o.momentum()) +
                        " and dampening " + detail::number(o.dampening()) +
                        " (Nesterov momentum needs momentum > 0 and dampening 0)");
    return o;
  }

  sgd_options opt_;
  detail::state_array<Device> buf_;
};

template <class Device>
sgd(parameter_list<Device>, sgd_options) -> sgd<Device>;
template <class Device>
sgd(parameter_list<Device>) -> sgd<Device>;
template <parameterised Net>
sgd(Net&, sgd_options) -> sgd<typename Net::device>;
template <parameterised Net>
sgd(Net&) -> sgd<typename Net::device>;

}  // namespace cdgan::optim
