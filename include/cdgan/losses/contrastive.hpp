/// @file losses/contrastive.hpp
/// The contrastive loss L_c of CD-GAN (Eq. 3), its all-positives form (SupCon's L_out), and labelled
/// real anchors for the few-labels variant (Eq. 7).
///
/// What this represents. Rows 0..N−1 of `f` are features E_f(G(z, c)) of generated images with class
/// codes c; rows N..R−1 are optional extra contrast points (features of labelled real images with
/// their labels). Features are L2-normalised inside the loss; s_ij = f̂_iᵀ f̂_j / τ. Each generated row
/// i is an anchor of the loss; every other row j is in its contrast set.
/// - positives::all  (SupCon L_out): every other row with the same label is a positive:
///     ℓ_i = −1/|P(i)| Σ_{p∈P(i)} log( e^{s_ip} / Σ_{j≠i} e^{s_ij} ).
/// - positives::one  (Eq. 3, and Eq. 7 with anchors): generated rows come in pairs (2k, 2k+1) with the
///   same c; the positives of row i are its partner i^1 and the real rows of its class (one per class
///   when the labelled batch holds one image per class, which is Eq. 7's numerator exactly); the
///   negatives are the rows with another label:
///     ℓ_i = −log( Σ_{p∈P(i)} e^{s_ip} / (Σ_{p∈P(i)} e^{s_ip} + Σ_{n∈N(i)} e^{s_in}) ).
/// L_c is the mean of ℓ_i over the anchors that have at least one positive; an anchor without
/// positives contributes nothing (not NaN). The row maximum is subtracted before exponentiating.
///
/// Ensures: `operator()` returns L_c and writes dL_c/df for all R rows (real rows included: in the E
/// step they train E; in the G step the caller ignores them, E being fixed).
///
/// @code
/// @article{pan2021cdgan, title={Disentangled Representation Learning with Contrastive ... (CD-GAN)},
///   author={Pan, Lili and Tang, Peijun and Chen, Zhiyong and Xu, Zenglin}, journal={arXiv:2103.03636}, year={2021}}
/// @inproceedings{khosla2020supervised, title={Supervised contrastive learning}, author={Khosla, Prannay and others},
///   booktitle={NeurIPS}, year={2020}}
/// @endcode
#pragma once
#include <string>

#include "loss.hpp"

namespace cdgan::losses {

enum class positives { one, all };

struct contrastive_options {
  real temperature_ = 0.07f;
  positives positives_ = positives::all;
  contrastive_options& temperature(real t) {
    if (!(t > 0)) throw value_error("cdgan: contrastive temperature must be > 0, got " + std::to_string(t));
    temperature_ = t;
    return *this;
  }
  contrastive_options& form(positives p) {
    positives_ = p;
    return *this;
  }
};

namespace detail {
/// Masks of the contrast: element k of the N×R matrix is row i = k / R, column j = k % R.
struct contrast_mask {
  const real* labels;  // R labels on the device
  std::size_t rows, cols;
  bool one;
  CDGAN_HOST_DEVICE bool positive(std::size_t k) const {
    const std::size_t i = k / cols, j = k % cols;
    if (i == j || labels[i] != labels[j]) return false;
    return !one || j >= rows || j == (i ^ std::size_t(1));
  }
  CDGAN_HOST_DEVICE bool in_denominator(std::size_t k) const {
    const std::size_t i = k / cols, j = k % cols;
    if (i == j) return false;
    return !one || labels[i] != labels[j] || positive(k);
  }
};
struct positive_mask {
  contrast_mask m;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const { return m.positive(k) ? real(1) : real(0); }
};
struct denominator_mask {
  contrast_mask m;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const { return m.in_denominator(k) ? real(1) : real(0); }
};
}  // namespace detail

/// L_c over D-dimensional features on Device. Holds its work buffers (allocated once per batch size).
template <std::size_t D, class Device>
class contrastive {
 public:
  using feature_shape = shape<D>;
  explicit contrastive(contrastive_options o = {}) : o_(o) {
    if (!(o.temperature_ > 0)) throw value_error("cdgan: contrastive temperature must be > 0");
  }
  const contrastive_options& options() const { return o_; }

  /// f: R feature rows; labels: R class ids (as reals) on the device; n_anchors: N ≤ R generated rows;
  /// df: receives dL/df (R rows). Returns L_c.
  real operator()(cview<feature_shape, Device> f, const real* labels, std::size_t n_anchors,
                  view<feature_shape, Device> df) {
    return host_value<Device>([&](real* v) { (*this)(f, labels, n_anchors, df, v); });
  }
  /// The same, with L_c written into the device real `value`.
  void operator()(cview<feature_shape, Device> f, const real* labels, std::size_t n_anchors,
                  view<feature_shape, Device> df, real* value) {
    const std::size_t R = f.batch, N = n_anchors;
    if (N > R || N == 0)
      throw shape_error("cdgan: contrastive loss: " + std::to_string(N) + " anchors among " + std::to_string(R) + " rows");
    if (o_.positives_ == positives::one && N % 2)
      throw shape_error("cdgan: contrastive loss (one positive): generated rows come in pairs; got " + std::to_string(N));
    require_same_batch("contrastive (features vs gradient)", R, df.batch);
    using B = backend<Device>;
    const real inv_t = 1 / o_.temperature_;
    u_.resize(R);
    du_.resize(R);
    rinv_.resize(R);
    rdot_.resize(R);
    s_.resize(N * R);
    e_.resize(N * R);
    m_.resize(N);
    z_.resize(N);
    zp_.resize(N);
    cnt_.resize(N);
    row_.resize(N);
    tot_.resize(2);

    // normalise rows: û = f / max(‖f‖, 1e-12)
    B::template reduce<reduction::sum>(rinv_.data(), 1, R, D, square(f), 0);
    rinv_ = rsqrt(max(rinv_, 1e-24f));
    u_ = f * per_sample<D, Device>(rinv_.data(), R);
    // similarities / τ (N × R)
    B::gemm(false, true, N, R, D, inv_t, u_.data(), u_.data(), 0, s_.data());

    const detail::contrast_mask mask{labels, N, R, o_.positives_ == positives::one};
    const auto pos = generate<Device>(detail::positive_mask{mask});
    const auto den = generate<Device>(detail::denominator_mask{mask});
    const auto S = s_.as_expr();
    B::template reduce<reduction::max>(m_.data(), 1, N, R, where(den, S, -1e30f), 0);
    e_ = where(den, exp(S - per_row(m_)), 0.f);
    B::template reduce<reduction::sum>(z_.data(), 1, N, R, e_.as_expr(), 0);
    B::template reduce<reduction::sum>(zp_.data(), 1, N, R, e_ * pos, 0);
    B::template reduce<reduction::sum>(cnt_.data(), 1, N, R, pos, 0);
    // per-anchor loss (0 without positives)
    if (o_.positives_ == positives::all) {
      B::template reduce<reduction::sum>(row_.data(), 1, N, R, pos * (S - per_row(m_)), 0);
      row_ = where(cnt_ > 0.f, log(z_) - row_ / max(cnt_, 1.f), 0.f);
    } else {
      row_ = where(cnt_ > 0.f, log(z_) - log(max(zp_, 1e-30f)), 0.f);
    }
    B::template reduce<reduction::sum>(tot_.data(), 1, 1, N, row_.as_expr(), 0);
    B::template reduce<reduction::sum>(tot_.data() + 1, 1, 1, N, cnt_ > 0.f, 0);
    // K = tot_[1], the anchors with positives (a count, so max(K, 1) is K when K > 0), stays on the device
    const expr_broadcast<Device> k{{}, tot_.data() + 1, N * R, 1};

    // dℓ_i/ds_ij = softmax_den(ij) − target_ij; scaled by 1/K for anchors with positives
    const auto valid_over_k = where(per_row(cnt_) > 0.f, 1.f / max(k, 1.f), 0.f);
    if (o_.positives_ == positives::all)
      e_ = valid_over_k * (e_ / per_row(z_) - pos / max(per_row(cnt_), 1.f));
    else
      e_ = valid_over_k * (e_ / per_row(z_) - e_ * pos / max(per_row(zp_), 1e-30f));
    // through s = û_N ûᵀ / τ
    B::gemm(true, false, R, D, N, inv_t, e_.data(), u_.data(), 0, du_.data());
    B::gemm(false, false, N, D, R, inv_t, e_.data(), u_.data(), 1, du_.data());
    // through the normalisation: df = (dû − û ⟨dû, û⟩) / ‖f‖
    B::template reduce<reduction::sum>(rdot_.data(), 1, R, D, du_ * u_, 0);
    df = (du_ - u_ * per_sample<D, Device>(rdot_.data(), R)) * per_sample<D, Device>(rinv_.data(), R);
    const auto total = device_scalar<Device>(tot_.data()), anchors = device_scalar<Device>(tot_.data() + 1);
    device_scalar<Device>(value) = where(anchors > 0.f, total / max(anchors, 1.f), 0.f);
  }

 private:
  /// A per-anchor (length-N) vector broadcast over the N × R matrix.
  expr_broadcast<Device> per_row(const tensor<shape<1>, Device>& v) const {
    return {{}, v.data(), s_.batch() / v.batch(), v.batch()};
  }

  contrastive_options o_;
  tensor<feature_shape, Device> u_, du_;
  tensor<shape<1>, Device> rinv_, rdot_, s_, e_, m_, z_, zp_, cnt_, row_, tot_;
};

}  // namespace cdgan::losses
