/// @file core/expr.hpp
/// Elementwise expression templates, written once for both devices.
///
/// What this represents: `a * b + 1.f`, `leaky_relu(x, 0.2f)`, `where(x > 0.f, dy, 0.f)` build small
/// trivially-copyable node structs holding raw pointers. Nothing is computed until an expression is
/// assigned to a tensor view; then `executor<Device>::run` evaluates it: on the CPU as one vectorised
/// loop split across OpenMP threads, on CUDA as one fused kernel launch whose argument is the node
/// tree itself (see backend/cuda/executor.cuh). Node `operator[]` is `CDGAN_HOST_DEVICE`, which is
/// what lets the same expression source compile for both.
///
/// Ensures: mixing tensors of two devices in one expression is a compile error; a full-size operand
/// whose length differs from the destination is a run-time `shape_error` (see `fits`).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../config.hpp"
#include "device.hpp"

namespace cdgan {

/// Tag base of every expression node.
struct expr_base {};
template <class T>
concept expression = std::is_base_of_v<expr_base, std::remove_cvref_t<T>>;

/// Anything with `.as_expr()` (tensors and views) can appear in an expression.
template <class T>
concept has_as_expr = requires(const T& t) {
  { t.as_expr() } -> expression;
};
template <class T>
concept expr_like = expression<T> || has_as_expr<T>;
template <class T>
concept scalar_like = std::is_arithmetic_v<std::remove_cvref_t<T>>;

namespace detail {
template <class A, class B>
struct common_device {
  static_assert(std::is_same_v<A, B>, "cdgan: an expression mixes tensors of different devices; copy one of them first");
  using type = A;
};
template <class B>
struct common_device<void, B> {
  using type = B;
};
template <class A>
struct common_device<A, void> {
  using type = A;
};
template <>
struct common_device<void, void> {
  using type = void;
};
}  // namespace detail
template <class A, class B>
using common_device_t = typename detail::common_device<A, B>::type;

/// A full-size operand: element i is p[i].
template <class Device>
struct expr_ref : expr_base {
  using device = Device;
  const real* p;
  std::size_t n;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const { return p[i]; }
  bool fits(std::size_t m) const { return n == m; }
};

/// A constant.
struct expr_scalar : expr_base {
  using device = void;
  real v;
  CDGAN_HOST_DEVICE real operator[](std::size_t) const { return v; }
  bool fits(std::size_t) const { return true; }
};

/// Broadcast of a small vector: element i is p[(i / inner) % period]. A bias over a batch of feature
/// vectors is `broadcast(b, 1, F)`; a per-channel value over a batch of C×H×W images is
/// `broadcast(b, H*W, C)`.
template <class Device>
struct expr_broadcast : expr_base {
  using device = Device;
  const real* p;
  std::size_t inner, period;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const { return p[(i / inner) % period]; }
  bool fits(std::size_t m) const { return m % (inner * period) == 0; }
};

/// Element i is f(i): masks and index patterns (f is a CDGAN_HOST_DEVICE functor that may read
/// device memory of `Device`).
template <class Device, class F>
struct expr_generate : expr_base {
  using device = Device;
  F f;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const { return f(i); }
  bool fits(std::size_t) const { return true; }
};
template <class Device, class F>
expr_generate<Device, F> generate(F f) {
  return {{}, f};
}

template <class Op, class A>
struct expr_unary : expr_base {
  using device = typename A::device;
  A a;
  Op op;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const { return op(a[i]); }
  bool fits(std::size_t m) const { return a.fits(m); }
};

template <class Op, class A, class B>
struct expr_binary : expr_base {
  using device = common_device_t<typename A::device, typename B::device>;
  A a;
  B b;
  Op op;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const { return op(a[i], b[i]); }
  bool fits(std::size_t m) const { return a.fits(m) && b.fits(m); }
};

template <class C, class A, class B>
struct expr_select : expr_base {
  using device = common_device_t<typename C::device, common_device_t<typename A::device, typename B::device>>;
  C c;
  A a;
  B b;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const { return c[i] != real(0) ? a[i] : b[i]; }
  bool fits(std::size_t m) const { return c.fits(m) && a.fits(m) && b.fits(m); }
};

/// Turns a tensor, view, expression or number into an expression node.
template <class X>
auto to_expr(const X& x) {
  if constexpr (expression<X>)
    return x;
  else if constexpr (scalar_like<X>)
    return expr_scalar{{}, static_cast<real>(x)};
  else
    return x.as_expr();
}
template <class X>
using expr_t = decltype(to_expr(std::declval<const X&>()));

/// Elementwise functors. Each is usable on host and device.
namespace op {
// clang-format off
struct add { CDGAN_HOST_DEVICE real operator()(real a, real b) const { return a + b; } };
struct sub { CDGAN_HOST_DEVICE real operator()(real a, real b) const { return a - b; } };
struct mul { CDGAN_HOST_DEVICE real operator()(real a, real b) const { return a * b; } };
struct div { CDGAN_HOST_DEVICE real operator()(real a, real b) const { return a / b; } };
struct max { CDGAN_HOST_DEVICE real operator()(real a, real b) const { return a > b ? a : b; } };
struct min { CDGAN_HOST_DEVICE real operator()(real a, real b) const { return a < b ? a : b; } };
struct gt  { CDGAN_HOST_DEVICE real operator()(real a, real b) const { return a > b ? real(1) : real(0); } };
struct lt  { CDGAN_HOST_DEVICE real operator()(real a, real b) const { return a < b ? real(1) : real(0); } };
struct neg { CDGAN_HOST_DEVICE real operator()(real a) const { return -a; } };
struct exp { CDGAN_HOST_DEVICE real operator()(real a) const { return ::expf(a); } };
struct log { CDGAN_HOST_DEVICE real operator()(real a) const { return ::logf(a); } };
struct sqrt { CDGAN_HOST_DEVICE real operator()(real a) const { return ::sqrtf(a); } };
struct rsqrt { CDGAN_HOST_DEVICE real operator()(real a) const { return real(1) / ::sqrtf(a); } };
struct abs { CDGAN_HOST_DEVICE real operator()(real a) const { return ::fabsf(a); } };
struct square { CDGAN_HOST_DEVICE real operator()(real a) const { return a * a; } };
struct tanh { CDGAN_HOST_DEVICE real operator()(real a) const { return ::tanhf(a); } };
struct sigmoid { CDGAN_HOST_DEVICE real operator()(real a) const {
  return a >= real(0) ? real(1) / (real(1) + ::expf(-a)) : ::expf(a) / (real(1) + ::expf(a)); } };
struct softplus { CDGAN_HOST_DEVICE real operator()(real a) const {   // log(1 + e^a), stable
  return (a > real(0) ? a : real(0)) + ::log1pf(::expf(-::fabsf(a))); } };
struct relu { CDGAN_HOST_DEVICE real operator()(real a) const { return a > real(0) ? a : real(0); } };
struct leaky_relu { real slope; CDGAN_HOST_DEVICE real operator()(real a) const { return a > real(0) ? a : slope * a; } };
struct step { CDGAN_HOST_DEVICE real operator()(real a) const { return a > real(0) ? real(1) : real(0); } };
// clang-format on
}  // namespace op

template <class Op, class A>
auto make_unary(const A& a, Op o = {}) {
  return expr_unary<Op, expr_t<A>>{{}, to_expr(a), o};
}
template <class Op, class A, class B>
auto make_binary(const A& a, const B& b, Op o = {}) {
  return expr_binary<Op, expr_t<A>, expr_t<B>>{{}, to_expr(a), to_expr(b), o};
}

template <class A, class B>
concept operand_pair = (expr_like<A> && (expr_like<B> || scalar_like<B>)) || (scalar_like<A> && expr_like<B>);

// clang-format off
template <class A, class B> requires operand_pair<A, B> auto operator+(const A& a, const B& b) { return make_binary<op::add>(a, b); }
template <class A, class B> requires operand_pair<A, B> auto operator-(const A& a, const B& b) { return make_binary<op::sub>(a, b); }
template <class A, class B> requires operand_pair<A, B> auto operator*(const A& a, const B& b) { return make_binary<op::mul>(a, b); }
template <class A, class B> requires operand_pair<A, B> auto operator/(const A& a, const B& b) { return make_binary<op::div>(a, b); }
template <class A, class B> requires operand_pair<A, B> auto operator>(const A& a, const B& b) { return make_binary<op::gt>(a, b); }
template <class A, class B> requires operand_pair<A, B> auto operator<(const A& a, const B& b) { return make_binary<op::lt>(a, b); }
template <class A, class B> requires operand_pair<A, B> auto max(const A& a, const B& b) { return make_binary<op::max>(a, b); }
template <class A, class B> requires operand_pair<A, B> auto min(const A& a, const B& b) { return make_binary<op::min>(a, b); }
template <expr_like A> auto operator-(const A& a) { return make_unary<op::neg>(a); }
template <expr_like A> auto exp(const A& a) { return make_unary<op::exp>(a); }
template <expr_like A> auto log(const A& a) { return make_unary<op::log>(a); }
template <expr_like A> auto sqrt(const A& a) { return make_unary<op::sqrt>(a); }
template <expr_like A> auto rsqrt(const A& a) { return make_unary<op::rsqrt>(a); }
template <expr_like A> auto abs(const A& a) { return make_unary<op::abs>(a); }
template <expr_like A> auto square(const A& a) { return make_unary<op::square>(a); }
template <expr_like A> auto tanh(const A& a) { return make_unary<op::tanh>(a); }
template <expr_like A> auto sigmoid(const A& a) { return make_unary<op::sigmoid>(a); }
template <expr_like A> auto softplus(const A& a) { return make_unary<op::softplus>(a); }
template <expr_like A> auto relu(const A& a) { return make_unary<op::relu>(a); }
template <expr_like A> auto step(const A& a) { return make_unary<op::step>(a); }
template <expr_like A> auto leaky_relu(const A& a, real slope) { return make_unary(a, op::leaky_relu{slope}); }
// clang-format on

/// `where(c, a, b)`: a where c != 0, else b.
template <class C, class A, class B>
  requires expr_like<C>
auto where(const C& c, const A& a, const B& b) {
  return expr_select<expr_t<C>, expr_t<A>, expr_t<B>>{{}, to_expr(c), to_expr(a), to_expr(b)};
}

/// Executor: evaluates `dst[i] = e[i]` for i < n on a device (specialised in backend/).
template <class Device>
struct executor {
  static_assert(sizeof(Device) == 0,
                "cdgan: no executor for this device in this translation unit. cdgan::cuda expressions need "
                "the cdgan::cuda target and a .cu translation unit compiled by nvcc.");
};

}  // namespace cdgan
