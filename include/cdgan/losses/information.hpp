/// @file losses/information.hpp
/// Information maximisation of real images' assignments to the class codes' prototypes (not in the
/// paper; `model_options::real_clustering`). Generated images come with their code c, real images
/// without one: this treats G's images as a labelled source domain and the real training images as
/// the unlabelled target, and asks E to place each real image confidently near one code's
/// prototype while using every code equally often — the IM objective of RIM / IMSAT and of the
/// domain adaptation method SHOT, over prototypes instead of a classifier head.
///
/// What this represents. Rows of `f_gen` are E_f(G(z, c)) with codes c ∈ {0..K−1}; rows of `f_real`
/// are E_f of U real images. Features are L2-normalised (û). The prototype of code k is
/// μ_k = normalise(Σ_{c_i = k} û_i), held fixed (no gradient reaches f_gen; a code absent from the
/// batch has μ_k = 0). For real row i: s_ik = û_iᵀ μ_k / τ, p_i = softmax(s_i),
///     L = (1/U) Σ_i H(p_i) − H(p̄),   p̄ = (1/U) Σ_i p_i,   H(p) = −Σ_k p_k log p_k,
/// so −log K ≤ L ≤ log K: low when each real image is assigned to one prototype and the assignments
/// are balanced over the codes.
///
/// Ensures: `operator()` returns L and writes dL/df_real (U rows).
///
/// Self-augmented consistency (IMSAT's SAT term; `model_options::real_consistency`). After
/// `operator()`, `consistency(f_aug, df_aug)` takes E_f of a perturbed copy of the same U real images
/// (row i a distortion of row i) and returns
///     L_sat = (1/U) Σ_i KL(p_i ‖ p′_i),
/// p′_i the assignment of the perturbed row to the same prototypes; p_i is the target (no gradient
/// reaches it), dL_sat/ds′_ik = (p′_ik − p_ik) / U. IM alone is satisfied by any confident, balanced
/// split of the real images — by stroke width or slant as well as by digit; the consistency term
/// makes a split that a small rotation, scaling or shift of the image changes cost something.
///
/// @code
/// @inproceedings{hu2017imsat, title={Learning discrete representations via information maximizing
///   self-augmented training}, author={Hu, Weihua and others}, booktitle={ICML}, year={2017}}
/// @inproceedings{liang2020shot, title={Do we really need to access the source data? Source hypothesis
///   transfer for unsupervised domain adaptation}, author={Liang, Jian and others}, booktitle={ICML}, year={2020}}
/// @endcode
#pragma once
#include <string>

#include "loss.hpp"

namespace cdgan::losses {

namespace detail {
/// The N×K one-hot matrix of N codes (reals on the device): element k is row k / K, column k % K.
struct one_hot {
  const real* codes;
  std::size_t classes;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const {
    return static_cast<std::size_t>(codes[k / classes]) == k % classes ? real(1) : real(0);
  }
};
}  // namespace detail

/// The IM loss over D-dimensional features and K codes on Device. Holds its work buffers (allocated
/// once per batch size).
template <std::size_t D, std::size_t K, class Device>
class prototype_information {
 public:
  explicit prototype_information(real temperature = 0.07f) : inv_t_(1 / temperature) {
    if (!(temperature > 0)) throw value_error("cdgan: prototype information temperature must be > 0");
  }

  /// f_gen: N generated rows, codes: their N codes (as reals, device); f_real: U real rows; df_real:
  /// receives dL/df_real. Returns L.
  real operator()(cview<shape<D>, Device> f_gen, const real* codes, cview<shape<D>, Device> f_real,
                  view<shape<D>, Device> df_real) {
    const std::size_t N = f_gen.batch, U = f_real.batch;
    if (N == 0 || U == 0)
      throw shape_error("cdgan: prototype information: needs generated and real rows, got " + std::to_string(N) +
                        " and " + std::to_string(U));
    require_same_batch("prototype information (real features vs gradient)", U, df_real.batch);
    using B = backend<Device>;
    ug_.resize(N);
    ur_.resize(U);
    du_.resize(U);
    rg_.resize(N);
    rr_.resize(U);
    rdot_.resize(U);
    y_.resize(N * K);
    mu_.resize(K);
    mn_.resize(K);
    s_.resize(U * K);
    p_.resize(U * K);
    m_.resize(U);
    z_.resize(U);
    h_.resize(U);
    q_.resize(U);
    pb_.resize(K);
    tot_.resize(2);

    normalise(f_gen, rg_, ug_);
    normalise(f_real, rr_, ur_);
    // prototypes: μ = normalise(Yᵀ Û_gen), Y the N×K one-hot codes
    y_ = generate<Device>(detail::one_hot{codes, K});
    B::gemm(true, false, K, D, N, 1, y_.data(), ug_.data(), 0, mu_.data());
    B::template reduce<reduction::sum>(mn_.data(), 1, K, D, square(mu_), 0);
    mn_ = where(mn_ > 0.f, rsqrt(max(mn_, 1e-24f)), 0.f);
    mu_ = mu_ * per_sample<D, Device>(mn_.data(), K);
    // s = Û_real μᵀ / τ (U × K), p = softmax by row, log p = s − m − log z
    B::gemm(false, true, U, K, D, inv_t_, ur_.data(), mu_.data(), 0, s_.data());
    B::template reduce<reduction::max>(m_.data(), 1, U, K, s_.as_expr(), 0);
    p_ = exp(s_ - per_row(m_));
    B::template reduce<reduction::sum>(z_.data(), 1, U, K, p_.as_expr(), 0);
    s_ = s_ - per_row(m_) - log(per_row(z_));  // s_ holds log p from here on
    p_ = p_ / per_row(z_);
    // H_i = −Σ_k p_ik log p_ik; p̄ = column means; log p̄ kept in pb_
    B::template reduce<reduction::sum>(h_.data(), 1, U, K, -(p_ * s_), 0);
    B::template reduce<reduction::sum>(pb_.data(), U, K, 1, p_.as_expr(), 0);
    pb_ = pb_ * (1.f / static_cast<real>(U));
    B::template reduce<reduction::sum>(tot_.data(), 1, 1, U, h_.as_expr(), 0);
    B::template reduce<reduction::sum>(tot_.data() + 1, 1, 1, K, pb_ * log(max(pb_, 1e-30f)), 0);
    real host[2];
    device_memory<Device>::to_host(host, tot_.data(), sizeof host);
    pb_ = log(max(pb_, 1e-30f));
    target_.resize(U * K);  // p, kept for consistency()
    B::copy(target_.data(), p_.data(), U * K);
    // dL/ds_ij = (1/U) p_ij [ −(log p_ij + H_i) + log p̄_j − Σ_k p_ik log p̄_k ]
    B::template reduce<reduction::sum>(q_.data(), 1, U, K, p_ * per_col(pb_), 0);
    p_ = (1.f / static_cast<real>(U)) * p_ * (per_col(pb_) - s_ - per_row(h_) - per_row(q_));
    // through s = Û_real μᵀ / τ and the normalisation of f_real
    B::gemm(false, false, U, D, K, inv_t_, p_.data(), mu_.data(), 0, du_.data());
    B::template reduce<reduction::sum>(rdot_.data(), 1, U, D, du_ * ur_, 0);
    df_real = (du_ - ur_ * per_sample<D, Device>(rdot_.data(), U)) * per_sample<D, Device>(rr_.data(), U);
    return host[0] / static_cast<real>(U) + host[1];
  }

  /// L_sat of the perturbed copies `f_aug` of the real rows of the last `operator()` call (same
  /// order, same prototypes); df_aug receives dL_sat/df_aug. Returns L_sat ≥ 0.
  real consistency(cview<shape<D>, Device> f_aug, view<shape<D>, Device> df_aug) {
    const std::size_t U = f_aug.batch;
    if (U == 0 || target_.batch() != U * K)
      throw shape_error("cdgan: prototype information: consistency needs the " + std::to_string(target_.batch() / K) +
                        " rows of the last call, got " + std::to_string(U));
    require_same_batch("prototype consistency (perturbed features vs gradient)", U, df_aug.batch);
    using B = backend<Device>;
    normalise(f_aug, rr_, ur_);
    B::gemm(false, true, U, K, D, inv_t_, ur_.data(), mu_.data(), 0, s_.data());
    B::template reduce<reduction::max>(m_.data(), 1, U, K, s_.as_expr(), 0);
    p_ = exp(s_ - per_row(m_));
    B::template reduce<reduction::sum>(z_.data(), 1, U, K, p_.as_expr(), 0);
    s_ = s_ - per_row(m_) - log(per_row(z_));  // log p′
    p_ = p_ / per_row(z_);
    B::template reduce<reduction::sum>(tot_.data(), 1, 1, U * K,
                                       where(target_ > 0.f, target_ * (log(max(target_, 1e-30f)) - s_), 0.f), 0);
    real host = 0;
    device_memory<Device>::to_host(&host, tot_.data(), sizeof host);
    p_ = (p_ - target_) * (1.f / static_cast<real>(U));
    B::gemm(false, false, U, D, K, inv_t_, p_.data(), mu_.data(), 0, du_.data());
    B::template reduce<reduction::sum>(rdot_.data(), 1, U, D, du_ * ur_, 0);
    df_aug = (du_ - ur_ * per_sample<D, Device>(rdot_.data(), U)) * per_sample<D, Device>(rr_.data(), U);
    return host / static_cast<real>(U);
  }

 private:
  /// û = f / max(‖f‖, 1e-12) by row; rinv receives 1 / max(‖f‖, 1e-12).
  static void normalise(cview<shape<D>, Device> f, tensor<shape<1>, Device>& rinv, tensor<shape<D>, Device>& u) {
    backend<Device>::template reduce<reduction::sum>(rinv.data(), 1, f.batch, D, square(f), 0);
    rinv = rsqrt(max(rinv, 1e-24f));
    u = f * per_sample<D, Device>(rinv.data(), f.batch);
  }
  /// A length-U vector broadcast over the rows of the U × K matrix, and a length-K one over its columns.
  expr_broadcast<Device> per_row(const tensor<shape<1>, Device>& v) const { return {{}, v.data(), K, v.batch()}; }
  expr_broadcast<Device> per_col(const tensor<shape<1>, Device>& v) const { return {{}, v.data(), 1, K}; }

  real inv_t_;
  tensor<shape<D>, Device> ug_, ur_, du_, mu_;
  tensor<shape<1>, Device> rg_, rr_, rdot_, y_, mn_, s_, p_, m_, z_, h_, q_, pb_, tot_, target_;
};

}  // namespace cdgan::losses
