/// @file optim/optimizer.hpp
/// The optimiser contract and what every optimiser shares.
///
/// What this represents. An optimiser (`optim::adam<Device>`, `optim::sgd<Device>`) is a policy over a
/// list of `nn::parameter_ref<Device>`, collected once from a network by `optim::parameters(net)`
/// (which calls `net.for_each_parameter`). Its members are:
///
///   explicit opt(parameter_list<Device> params, opt_options o = {});   // or opt(net, o)
///   void step();                     // one update of every parameter from its current gradient
///   void zero_grad();                // every gradient := 0
///   real lr() const; void set_lr(real);
///   std::uint64_t step_count() const; void set_step_count(std::uint64_t);
///   template <class F> void for_each_state(F&& f);   // f(name, real* data, size): checkpoints
///
/// Requires: the networks the parameters came from outlive the optimiser and are not re-bound
/// (the references hold raw pointers into their parameter tensors).
/// Ensures:
/// - All state is allocated, on Device, and zeroed in the constructor; `step()` and `zero_grad()`
///   never allocate (`cdgan::allocation_count()` is unchanged by them).
/// - Each parameter's update is one fused pass over the parameter, its gradient and its state
///   (`backend<Device>::for_each`), so a step costs one read and one write of each array.
/// - Bad options (a negative learning rate, a beta outside [0, 1), ...) throw `cdgan::value_error`
///   naming the optimiser, the option and the value; an empty or duplicated parameter list too.
/// - With `cdgan::set_checks(true)`, a non-finite gradient throws `cdgan::numeric_error` naming the
///   parameter before anything is updated.
/// - The state of an optimiser (every `for_each_state` array plus `step_count()`) determines its
///   future updates exactly: copying them into a fresh optimiser over the same parameters resumes
///   training bit for bit.
#pragma once
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../backend/cpu/backend.hpp"
#include "../core/error.hpp"
#include "../core/memory.hpp"
#include "../nn/layer.hpp"

namespace cdgan::optim {

/// The parameters an optimiser updates.
template <class Device>
using parameter_list = std::vector<nn::parameter_ref<Device>>;

/// Every parameter of a network (or of a layer), in `for_each_parameter` order.
template <class Net>
auto parameters(Net& net) {
  using device = typename Net::device;
  parameter_list<device> ps;
  net.for_each_parameter([&](nn::parameter_ref<device> p) { ps.push_back(std::move(p)); });
  return ps;
}

/// The parameters of several networks in one list (one optimiser over G and E, say).
template <class Net, class... Nets>
auto parameters(Net& net, Nets&... nets) requires(sizeof...(Nets) > 0) {
  auto ps = parameters(net);
  (
      [&] {
        auto more = parameters(nets);
        ps.insert(ps.end(), more.begin(), more.end());
      }(),
      ...);
  return ps;
}

/// What a type must offer to be used as an optimiser.
template <class O>
concept optimizer = requires(O& o, const O& co, real r, std::uint64_t n) {
  o.step();
  o.zero_grad();
  { co.lr() } -> std::convertible_to<real>;
  o.set_lr(r);
  { co.step_count() } -> std::convertible_to<std::uint64_t>;
  o.set_step_count(n);
};

namespace detail {
/// A callable taking one parameter_ref<Device> (a named type: nvcc 13 rejects a lambda inside the
/// requires-expression below, which made `optim::adam opt{net, ...}` fail to compile for cdgan::cuda).
template <class Device>
struct parameter_sink {
  void operator()(nn::parameter_ref<Device>) const {}
};
}  // namespace detail

/// A network type (anything with `for_each_parameter` and a `device`).
template <class N>
concept parameterised = requires { typename N::device; } && requires(N& n, detail::parameter_sink<typename N::device> f) {
  n.for_each_parameter(f);
};

namespace detail {

inline std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

/// Throws value_error "cdgan::optim::<who>: invalid <option> <value> (<rule>)" unless ok.
inline void require(bool ok, const char* who, const char* option, double value, const char* rule) {
  if (!ok)
    throw value_error(std::string("cdgan::optim::") + who + ": invalid " + option + " " + number(value) + " (" +
                      rule + ")");
}
inline void require_non_negative(const char* who, const char* option, double value) {
  require(value >= 0 && std::isfinite(value), who, option, value, "must be finite and >= 0");
}
inline void require_unit_interval(const char* who, const char* option, double value) {
  require(value >= 0 && value < 1, who, option, value, "must be in [0, 1)");
}

/// The part every optimiser shares: the parameter list, the learning rate, the step count,
/// zero_grad and the non-finite gradient check.
template <class Device>
class optimizer_base {
 public:
  using device = Device;

  real lr() const { return lr_; }
  void set_lr(real lr) {
    require_non_negative(who_, "lr", lr);
    lr_ = lr;
  }
  std::uint64_t step_count() const { return steps_; }
  void set_step_count(std::uint64_t n) { steps_ = n; }
  /// Counts n steps as taken without taking them (a replayed CUDA graph of the training step took
  /// them on the device; gan/model.hpp).
  void skip_steps(std::uint64_t n) { steps_ += n; }
  const parameter_list<Device>& params() const { return params_; }
  /// Total number of scalars over all parameters.
  std::size_t num_parameters() const { return total_; }

  /// Sets every parameter gradient to zero (needed before a `grads::accumulate` backward pass).
  void zero_grad() {
    for (auto& p : params_) device_memory<Device>::zero(p.grad, p.size * sizeof(real));
  }

 protected:
  optimizer_base(const char* who, parameter_list<Device> params, real lr) : who_(who), params_(std::move(params)) {
    set_lr(lr);
    if (params_.empty())
      throw value_error(std::string("cdgan::optim::") + who_ + ": the parameter list is empty");
    std::vector<const real*> seen;
    for (const auto& p : params_) {
      if (!p.value || !p.grad || p.size == 0)
        throw value_error(std::string("cdgan::optim::") + who_ + ": parameter '" + p.name +
                          "' has no storage (null pointer or size 0)");
      seen.push_back(p.value);
      total_ += p.size;
    }
    std::sort(seen.begin(), seen.end());
    if (std::adjacent_find(seen.begin(), seen.end()) != seen.end()) {
      for (const auto& p : params_)
        if (std::count_if(params_.begin(), params_.end(), [&](const auto& q) { return q.value == p.value; }) > 1)
          throw value_error(std::string("cdgan::optim::") + who_ + ": parameter '" + p.name +
                            "' appears more than once in the parameter list");
    }
  }

  /// With checks on, throws numeric_error naming the first parameter whose gradient is not finite.
  void check_gradients() const {
    if (!checks_enabled()) return;
    for (const auto& p : params_)
      if (!backend<Device>::all_finite(p.grad, p.size))
        throw numeric_error(std::string("cdgan::optim::") + who_ + ": the gradient of parameter '" + p.name +
                            "' holds a NaN or an infinity");
  }

  const char* who_;
  parameter_list<Device> params_;
  std::size_t total_ = 0;
  real lr_ = 0;
  std::uint64_t steps_ = 0;
};

/// One zeroed device array per parameter, all in a single allocation: `offset(k)` is parameter k's
/// slice.
template <class Device>
class state_array {
 public:
  state_array() = default;
  template <class Params>
  explicit state_array(const Params& ps) {
    std::size_t total = 0;
    for (const auto& p : ps) {
      offsets_.push_back(total);
      total += p.size;
    }
    buf_.resize(total);
    device_memory<Device>::zero(buf_.data(), total * sizeof(real));
  }
  real* at(std::size_t k) { return buf_.data() + offsets_[k]; }
  const real* at(std::size_t k) const { return buf_.data() + offsets_[k]; }
  bool empty() const { return buf_.size() == 0; }

 private:
  buffer<Device> buf_;
  std::vector<std::size_t> offsets_;
};

}  // namespace detail
}  // namespace cdgan::optim
