/// @file gan/model.hpp
/// `cdgan::model<G, D, E, Objective, Optimiser, Device>`: the networks, their optimisers and
/// Algorithm 1 of the CD-GAN paper.
///
/// What this represents. G maps `latent<Z, C>::input` to images, D maps images to one logit, and
/// E = heads<trunk, E_f, E_e> maps images to a class feature f and a content estimate e (shape<Z>).
/// `step(real_d, labelled, labels)` runs one iteration:
///   1. D (n_critic times): L_D of the GAN loss on a real batch and G(z, c) (+ the exact gradient
///      penalty for WGAN-GP); Adam step on D.
///   2. G, E fixed: L_GAN + β1·L_c + β2·L_z on a batch of batch_g codes; step on G only.
///   3. E, G fixed: β1·L_c + β2·L_z on a batch of batch_e codes; step on E only.
/// With labelled real images (the few-labels variant, Eq. 7) their E_f features join the contrast
/// of steps 2 and 3 as extra rows with their true labels: positives for generated images of the same
/// c, negatives for the others. β1 = 0 gives the paper's ablation.
///
/// Requires: G's input is shape<Z + C>, G's output shape equals D's and E's input shape, D's output
/// is shape<1>, E's second head gives shape<Z> (compile-time checks).
/// Ensures: after the first iteration, a step allocates nothing (all buffers are sized once per batch
/// size); the same seed gives the same run (on one thread bit for bit).
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "../core/graph.hpp"

#include "../losses/losses.hpp"
#include "../nn/buffers.hpp"
#include "../nn/heads.hpp"
#include "../optim/optim.hpp"
#include "latent.hpp"

namespace cdgan {

/// Training objectives over the same networks.
namespace objective {
/// CD-GAN with a GAN loss policy (losses::wasserstein, hinge or non_saturating); Penalty adds the
/// exact WGAN-GP gradient penalty to the critic's loss.
/// How the class code c is recovered from E_f.
enum class code_loss {
  contrastive,   ///< CD-GAN's L_c (E_f is a feature; E is trained in its own step with G fixed)
  cross_entropy  ///< the baselines: E_f gives C logits, G and E minimise the cross-entropy jointly
};
template <class GanLoss = losses::wasserstein, bool Penalty = std::is_same_v<GanLoss, losses::wasserstein>>
struct cd_gan {
  using gan_loss = GanLoss;
  static constexpr bool penalty = Penalty;
  static constexpr code_loss code = code_loss::contrastive;
  static constexpr bool content = true;  ///< β2·L_z is part of the objective
  static constexpr const char* name = "cd-gan";
};
/// ClusterGAN (Mukherjee et al., AAAI 2019) over the same networks: E_f predicts c (cross-entropy,
/// weight β1), E_e predicts z (L2, weight β2); G and E are updated together on
/// L_GAN + β1·CE + β2·L_z, as in ClusterGAN; no separate E step.
template <class GanLoss = losses::wasserstein, bool Penalty = std::is_same_v<GanLoss, losses::wasserstein>>
struct cluster_gan : cd_gan<GanLoss, Penalty> {
  static constexpr code_loss code = code_loss::cross_entropy;
  static constexpr const char* name = "clustergan";
};
/// InfoGAN (Chen et al., NeurIPS 2016) with a categorical code: the Q head (E_f, C logits) and G
/// minimise β1·CE(c, Q(G(z, c))), the variational lower bound of the mutual information I(c; G(z, c))
/// up to the constant H(c); no content term.
template <class GanLoss = losses::wasserstein, bool Penalty = std::is_same_v<GanLoss, losses::wasserstein>>
struct info_gan : cd_gan<GanLoss, Penalty> {
  static constexpr code_loss code = code_loss::cross_entropy;
  static constexpr bool content = false;
  static constexpr const char* name = "infogan";
};
/// The paper's MNIST / Fashion-MNIST setting: WGAN-GP (λ = 10).
using wgan_gp = cd_gan<losses::wasserstein, true>;
/// The SNGAN setting (dSprites, CIFAR-10): hinge loss, spectral norm in the networks.
using hinge = cd_gan<losses::hinge, false>;
}  // namespace objective

/// Hyperparameters of Algorithm 1 (section 5.2 of the paper gives them per dataset).
struct model_options {
  std::size_t batch_d = 64, batch_g = 64, batch_e = 512, n_critic = 1;
  real beta1 = 50, beta2 = 5e-4f, tau = 0.07f, sigma = 1, gp_lambda = 10;
  losses::positives positives = losses::positives::all;
  /// A second view of every generated image in L_c (a random resized crop of the whole batch, scale
  /// in [crop_min_scale, 1], aspect ratio in [3/4, 4/3], bilinear, as torchvision's RandomResizedCrop
  /// in the authors' code). The second view is detached from G. The labelled real images of the
  /// few-labels run get their crop too (another draw), with their labels, as in the authors' code.
  /// Needs positives::all.
  bool two_views = false;
  real crop_min_scale = 0.7f;
  /// With two_views: the first iteration (0-based) that uses the second view (not in the paper;
  /// default 0, from the start). Before it the run is the one-view run, bit for bit. The crop makes
  /// E read what survives a change of framing, which is what carries over from generated to real
  /// images; switched on from the start it also keeps G longer in its early noise regime
  /// (docs/results.md).
  std::uint64_t two_views_start = 0;
  /// Weight γ of an instance contrast of real images in the E step (not in the paper; 0, off, by
  /// default): the critic's first real batch and one random resized crop of it join E's batch, each
  /// image's crop its only positive and the other real images its negatives (SimCLR's loss: the
  /// all-positives L_c with one label per image), in a contrast of their own. It makes E's features
  /// of real images depend on the real images, which L_c alone, trained on generated images only,
  /// does not (docs/results.md, sixth session). G never sees this term.
  real real_contrast = 0;
  /// Weight γ of an information-maximisation term on real images in the E step (not in the paper; 0,
  /// off, by default; losses/information.hpp): the critic's first real batch is assigned, softly at
  /// temperature τ, to the codes' prototypes (the normalised mean E_f of the generated images of
  /// each code in the same E batch), and E is asked to make each real image's assignment confident
  /// and the assignments balanced over the codes. Generated images with their codes are the labelled
  /// source, real images the unlabelled target: it asks E to cluster real images around what it
  /// learnt to tell apart in generated ones. G never sees this term.
  real real_clustering = 0;
  /// Weight of a self-augmented consistency term on the same real images (not in the paper; 0, off,
  /// by default; needs real_clustering; IMSAT's SAT term, losses/information.hpp): each real image
  /// gets its own random affine distortion (rotation within ±affine_degrees, scale within
  /// 1 ± affine_scale, shift within ±affine_shift of the side, bilinear, zero outside), and E is asked
  /// to assign the distorted image to the codes' prototypes as it assigns the original
  /// (KL(p ‖ p′), the original's assignment the target). The clustering term alone is met by any
  /// confident, balanced split of real images, by stroke or slant as well as by class; this one
  /// makes splits that a small distortion changes cost something. G never sees the term.
  real real_consistency = 0;
  real affine_degrees = 15, affine_scale = 0.1f, affine_shift = 0.08f;
  /// Few labels: the labelled real rows are anchors of L_c too (not only contrast points), each with
  /// the generated images of its class and the other labelled images of it as positives — the
  /// authors' code, whose SupConLoss runs over all rows. Off by default: in the paper (Eq. 7) the
  /// real images are the generated images' anchor points only. Needs positives::all. In the E step
  /// this is a supervised contrast of the labelled real images; in the G step it adds the real rows'
  /// pull on the generated images of their class.
  bool real_anchors = false;
  /// Few labels: E is not updated in the first `e_hold` iterations (0, off, by default; not in the
  /// paper). The authors' code (its `chain_step`) starts the few-labels run from a pretrained E and
  /// keeps it fixed for the first 200 epochs while G learns to match its real anchors; with E
  /// fixed, G cannot co-adapt a code of its own with E and must draw what E reads in real images of
  /// the class. Pair it with `pretrain_encoder`.
  std::uint64_t e_hold = 0;
  /// With `e_hold`: during the hold, the content head E_e alone is trained on β2·L_z (the trunk and
  /// E_f stay as they are, bit for bit), so that L_z tells G from the start which z it drew instead
  /// of comparing z with the output of an untrained head. Off by default (not in the paper or the
  /// authors' code). E_e has an optimiser of its own for this (its state is in checkpoints as
  /// "E_e.optim.*" when the option is on); the full E optimiser takes over after the hold.
  bool e_hold_content = false;
  /// β1 schedule (not in the paper; off by default): L_c is off (β1 = 0, the ablation) for the
  /// first `beta1_start` iterations, then its weight rises linearly to beta1 over `beta1_ramp`
  /// iterations. Lets the generator learn images from the critic before the contrast splits them.
  std::uint64_t beta1_start = 0, beta1_ramp = 0;
  /// β2 schedule (not in the paper; off by default): from iteration `beta2_late_start` on (0: never)
  /// L_z's weight is `beta2_late` instead of beta2. On Fashion-MNIST with the real-image terms the
  /// paper's β2 = 5·10⁻⁴ lets G ignore most of z; β2 = 1 from 4,000 on gives it back its variety
  /// without moving the encoder's scores (docs/results.md, runs FUL, FULZ, FUZ).
  real beta2_late = 0;
  std::uint64_t beta2_late_start = 0;
  std::uint64_t seed = 0;
  /// On cuda: record the training step as a CUDA graph once and replay it (default on). The first
  /// step with a given configuration runs as it is, the second is recorded, the later ones replay it;
  /// anything that changes the step's launches (a β schedule, another batch pointer, device memory
  /// given back, e.g. by an evaluation at a larger batch, a learning rate) makes the next steps run as
  /// they are and record again. Steps that draw host
  /// randomness (two_views, real_contrast, real_clustering, real_consistency) or run checks
  /// (set_checks) are never recorded. A recording that fails (a CUDA call that cannot be recorded)
  /// is dropped, the step runs as it is, and the model does not record again. Replays give the same
  /// bits as running the step. Ignored on the CPU. See model::graph_status().
  bool cuda_graph = true;

  /// Whether iteration `step` (0-based) contrasts a second view of each generated image.
  bool two_views_at(std::uint64_t step) const { return two_views && step >= two_views_start; }

  /// β1 in effect in iteration `step` (0-based: the iteration that makes steps() == step + 1).
  real beta1_at(std::uint64_t step) const {
    if (step < beta1_start) return 0;
    if (beta1_ramp == 0 || step - beta1_start + 1 >= beta1_ramp) return beta1;
    return beta1 * static_cast<real>(static_cast<double>(step - beta1_start + 1) / static_cast<double>(beta1_ramp));
  }

  /// β2 in effect in iteration `step` (0-based, as beta1_at).
  real beta2_at(std::uint64_t step) const { return beta2_late_start > 0 && step >= beta2_late_start ? beta2_late : beta2; }

  void validate() const {
    auto fail = [](const std::string& m) { throw value_error("cdgan: model_options: " + m); };
    if (batch_d == 0 || batch_g == 0 || batch_e == 0) fail("batch sizes must be positive");
    if (n_critic == 0) fail("n_critic must be >= 1");
    if (!(tau > 0)) fail("tau must be > 0, got " + std::to_string(tau));
    if (!(beta1 >= 0) || !(beta2 >= 0)) fail("beta1 and beta2 must be >= 0");
    if (!(beta2_late >= 0)) fail("beta2_late must be >= 0, got " + std::to_string(beta2_late));
    if (!(sigma > 0)) fail("sigma must be > 0, got " + std::to_string(sigma));
    if (!(gp_lambda >= 0)) fail("gp_lambda must be >= 0");
    if (positives == losses::positives::one && (batch_g % 2 || batch_e % 2))
      fail("the one-positive contrastive loss needs even G and E batch sizes");
    if (two_views && positives != losses::positives::all) fail("two_views needs the all-positives contrastive loss");
    if (two_views_start > 0 && !two_views) fail("two_views_start needs two_views");
    if (real_anchors && positives != losses::positives::all) fail("real_anchors needs the all-positives contrastive loss");
    if (e_hold_content && e_hold == 0) fail("e_hold_content needs e_hold > 0 (it trains E_e during the hold)");
    if (!(real_contrast >= 0)) fail("real_contrast must be >= 0");
    if (!(real_clustering >= 0)) fail("real_clustering must be >= 0");
    if (!(real_consistency >= 0)) fail("real_consistency must be >= 0");
    if (real_consistency > 0 && !(real_clustering > 0))
      fail("real_consistency needs real_clustering > 0 (it compares assignments to the same prototypes)");
    if (!(affine_degrees >= 0 && affine_degrees <= 180)) fail("affine_degrees must be in [0, 180]");
    if (!(affine_scale >= 0 && affine_scale < 1)) fail("affine_scale must be in [0, 1)");
    if (!(affine_shift >= 0 && affine_shift <= 1)) fail("affine_shift must be in [0, 1]");
    if (!(crop_min_scale > 0 && crop_min_scale <= 1)) fail("crop_min_scale must be in (0, 1]");
  }
};

namespace detail {
/// Bilinear resize of the crop [top, top+ch) × [left, left+cw) of every H×W plane back to H×W
/// (half-pixel centres, edges clamped: torchvision / PyTorch with align_corners = false).
template <std::size_t H, std::size_t W>
struct resized_crop {
  const real* x;
  std::size_t top, left, ch, cw;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const {
    const std::size_t plane = k / (H * W), yx = k % (H * W), y = yx / W, xo = yx % W;
    real sy = (static_cast<real>(y) + real(0.5)) * static_cast<real>(ch) / static_cast<real>(H) - real(0.5);
    real sx = (static_cast<real>(xo) + real(0.5)) * static_cast<real>(cw) / static_cast<real>(W) - real(0.5);
    sy = sy < 0 ? real(0) : (sy > static_cast<real>(ch - 1) ? static_cast<real>(ch - 1) : sy);
    sx = sx < 0 ? real(0) : (sx > static_cast<real>(cw - 1) ? static_cast<real>(cw - 1) : sx);
    const auto y0 = static_cast<std::size_t>(sy), x0 = static_cast<std::size_t>(sx);
    const std::size_t y1 = y0 + 1 < ch ? y0 + 1 : y0, x1 = x0 + 1 < cw ? x0 + 1 : x0;
    const real fy = sy - static_cast<real>(y0), fx = sx - static_cast<real>(x0);
    const real* p = x + plane * H * W + top * W + left;
    return (1 - fy) * ((1 - fx) * p[y0 * W + x0] + fx * p[y0 * W + x1]) + fy * ((1 - fx) * p[y1 * W + x0] + fx * p[y1 * W + x1]);
  }
};

/// A per-image affine warp of C×H×W images: output pixel (y, x) of image n samples image n at
/// (a·u + b·v + tx, c·u + d·v + ty) + centre, where (u, v) is the output pixel's centre relative to
/// the image centre and theta + 6n holds (a, b, tx, c, d, ty); bilinear, zero outside the image.
template <std::size_t C, std::size_t H, std::size_t W>
struct affine_warp {
  const real* x;
  const real* theta;
  CDGAN_HOST_DEVICE real operator()(std::size_t k) const {
    const std::size_t plane = k / (H * W), yx = k % (H * W), y = yx / W, xo = yx % W;
    const real* t = theta + 6 * (plane / C);
    const real u = static_cast<real>(xo) + real(0.5) - real(W) / 2, v = static_cast<real>(y) + real(0.5) - real(H) / 2;
    const real sx = t[0] * u + t[1] * v + t[2] + real(W) / 2 - real(0.5);
    const real sy = t[3] * u + t[4] * v + t[5] + real(H) / 2 - real(0.5);
    if (!(sx > real(-1) && sx < real(W) && sy > real(-1) && sy < real(H))) return 0;
    const int x0 = sx < 0 ? -1 : static_cast<int>(sx), y0 = sy < 0 ? -1 : static_cast<int>(sy);
    const real fx = sx - static_cast<real>(x0), fy = sy - static_cast<real>(y0);
    const real* p = x + plane * H * W;
    auto at = [&](int yy, int xx) -> real {
      return yy >= 0 && xx >= 0 && yy < int(H) && xx < int(W) ? p[std::size_t(yy) * W + std::size_t(xx)] : real(0);
    };
    return (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
  }
};
}  // namespace detail

namespace detail {
/// The device reals of gan/model.hpp's step_report that the step's losses write (in this order).
enum report_slot : unsigned { slot_d_loss, slot_gp, slot_g_gan, slot_g_lc, slot_g_lz, slot_e_lc, slot_e_lz, slot_count };
}  // namespace detail

/// Losses of one iteration (host values, for logging).
struct step_report {
  std::uint64_t step = 0;
  real beta1 = 0;  ///< β1 in effect in this iteration (model_options::beta1_at)
  real beta2 = 0;  ///< β2 in effect in this iteration (model_options::beta2_at)
  bool two_views = false;  ///< whether this iteration contrasted a second view (model_options::two_views_at)
  real d_loss = 0, gp = 0, g_gan = 0, g_lc = 0, g_lz = 0, e_lc = 0, e_lz = 0;
  real e_real = 0;  ///< the instance contrast of real images (model_options::real_contrast), unweighted
  real e_im = 0;  ///< the information-maximisation term on real images (model_options::real_clustering), unweighted
  real e_sat = 0;  ///< the consistency term of distorted real images (model_options::real_consistency), unweighted
};

template <class G, class D, class E, class Objective = objective::wgan_gp, template <class> class Optimiser = optim::adam,
          class Device = cpu>
class model {
 public:
  using device = Device;
  using generator_type = nn::network<G, Device>;
  using critic_type = nn::network<D, Device>;
  using encoder_type = nn::network<E, Device>;
  using image_shape = typename generator_type::out_shape;
  using feature_shape = typename encoder_type::template head_shape<0>;
  /// Z comes from E_e's output, C from the rest of G's input.
  static constexpr std::size_t z_dim = encoder_type::template head_shape<1>::size;
  static_assert(generator_type::in_shape::size > z_dim + 1,
                "cdgan::model: the generator's input must be latent<Z, C>::input with Z = E_e's output size and C > 1");
  static constexpr std::size_t c_dim = generator_type::in_shape::size - z_dim, f_dim = feature_shape::size;
  static constexpr std::size_t Z = z_dim, C = c_dim;
  using optimiser_type = Optimiser<Device>;
  using optimiser_options = typename optimiser_type::options_type;

  static_assert(generator_type::in_shape::rank == 1, "cdgan::model: the generator's input must be latent<Z, C>::input");
  static_assert(std::is_same_v<typename critic_type::in_shape, image_shape>,
                "cdgan::model: the critic's input shape must equal the generator's output shape");
  static_assert(std::is_same_v<typename critic_type::out_shape, shape<1>>,
                "cdgan::model: the critic must give one logit per image (end it with dense<1>)");
  static_assert(std::is_same_v<typename encoder_type::in_shape, image_shape>,
                "cdgan::model: the encoder's input shape must equal the generator's output shape");
  static_assert(encoder_type::count == 2, "cdgan::model: the encoder must be heads<trunk, E_f, E_e>");
  static_assert(encoder_type::template head_shape<1>::rank == 1,
                "cdgan::model: the encoder's second head E_e must give a vector (the content estimate)");
  static_assert(feature_shape::rank == 1, "cdgan::model: the encoder's first head E_f must give a vector");
  static constexpr bool joint = Objective::code == objective::code_loss::cross_entropy;
  static_assert(!joint || feature_shape::size == c_dim,
                "cdgan::model: the ClusterGAN and InfoGAN objectives need E_f to give C logits (F = C)");

  model(model_options o, optimiser_options g_opt, optimiser_options d_opt, optimiser_options e_opt)
      : o_((o.validate(), o)), rng_(o.seed), init_(o.seed ^ 0x9E3779B97F4A7C15ull),
        lc_(losses::contrastive_options{}.temperature(o.tau).form(o.positives)),
        lc_real_(losses::contrastive_options{}.temperature(o.tau).form(losses::positives::all)), gp_(o.gp_lambda) {
    g_.init(init_);
    d_.init(init_);
    e_.init(init_);
    g_opt_.emplace(g_, g_opt);
    d_opt_.emplace(d_, d_opt);
    e_opt_.emplace(e_, e_opt);
    if (o_.e_hold_content && o_.e_hold > 0 && !joint && Objective::content) ee_opt_.emplace(e_.template head<1>(), e_opt);
  }

  const model_options& options() const { return o_; }
  generator_type& generator() { return g_; }
  critic_type& critic() { return d_; }
  encoder_type& encoder() { return e_; }
  optimiser_type& g_optimiser() { return *g_opt_; }
  optimiser_type& d_optimiser() { return *d_opt_; }
  optimiser_type& e_optimiser() { return *e_opt_; }
  /// E_e's own optimiser during the hold (model_options::e_hold_content); nullptr without one. Its
  /// arrays are in for_each_state; a checkpoint must keep its step_count() too, as for the others.
  optimiser_type* e_content_optimiser() { return ee_opt_ ? &*ee_opt_ : nullptr; }
  rng& random() { return rng_; }
  std::uint64_t steps() const { return steps_; }
  void set_steps(std::uint64_t s) { steps_ = s; }

  /// One iteration of Algorithm 1. real_d: n_critic × batch_d real images; labelled: M labelled real
  /// images with their class ids `labels` (device memory, M reals), or empty for the unsupervised run.
  /// The losses are written on the device and copied to the host once, at the end (the one wait for
  /// the device in a step). On cuda the step may be a replay of a recorded CUDA graph
  /// (model_options::cuda_graph).
  step_report step(cview<image_shape, Device> real_d, cview<image_shape, Device> labelled = {},
                   const real* labels = nullptr) {
    if (real_d.batch != o_.n_critic * o_.batch_d)
      throw shape_error("cdgan::model::step: expected n_critic × batch_d = " + std::to_string(o_.n_critic * o_.batch_d) +
                        " real images of shape " + image_shape::str() + ", got " + std::to_string(real_d.batch));
    if (!labelled.empty() && !labels) throw value_error("cdgan::model::step: labelled images need their labels");
    step_report r;
    beta1_ = o_.beta1_at(steps_);
    r.beta1 = beta1_;
    beta2_ = o_.beta2_at(steps_);
    r.beta2 = beta2_;
    two_views_ = o_.two_views_at(steps_);
    r.two_views = two_views_;
    auto body = [&] {
      for (std::size_t k = 0; k < o_.n_critic; ++k) d_phase(real_d.slice(k * o_.batch_d, o_.batch_d));
      g_phase(labelled, labels);
      if (steps_ >= o_.e_hold)
        e_phase(labelled, labels, r, real_d.slice(0, o_.batch_d));
      else if (ee_opt_)
        e_content_phase();
    };
    const step_key key = key_of(real_d, labelled, labels);
    if (graph_.ready() && key == graph_key_) {
      replay();
    } else {
      graph_.reset();
      const bool record = graph_wanted() && last_key_ && key == *last_key_;
      if (!record || !record_and_launch(body, key)) run(body);
    }
    last_key_ = key_of(real_d, labelled, labels);
    read_values(r);
    r.step = ++steps_;
    return r;
  }

  /// Critic update on one real batch (fills r.d_loss and r.gp).
  void d_step(cview<image_shape, Device> real, step_report& r) {
    run([&] { d_phase(real); });
    read_values(r);
  }

  /// Generator update with D and E fixed (fills r.g_gan, r.g_lc, r.g_lz).
  void g_step(cview<image_shape, Device> labelled, const real* labels, step_report& r) {
    run([&] { g_phase(labelled, labels); });
    read_values(r);
  }

  /// Encoder update with G fixed; `unlabelled`: real images for the instance contrast and the
  /// clustering term (model_options::real_contrast, real_clustering; ignored when both are 0).
  void e_step(cview<image_shape, Device> labelled, const real* labels, step_report& r,
              cview<image_shape, Device> unlabelled = {}) {
    run([&] { e_phase(labelled, labels, r, unlabelled); });
    read_values(r);
  }

  /// During the hold (model_options::e_hold_content): E_e alone on β2·L_z of batch_e generated
  /// images, G and the trunk fixed — the heads' backward stops at E_e, so no trunk gradient is made.
  void e_content_step(step_report& r) {
    run([&] { e_content_phase(); });
    read_values(r);
  }

  /// How the last steps ran on this device: whether the step is being replayed as a CUDA graph, how
  /// many times it was recorded and replayed, and why not when it is not.
  std::string graph_status() const {
    std::string s = "recorded " + std::to_string(graph_recordings_) + " time(s), replayed " +
                    std::to_string(graph_replays_) + " time(s)";
    if (!step_graph<Device>::supported) return "no CUDA graphs on " + std::string(Device::name);
    if (!o_.cuda_graph) return "off (model_options::cuda_graph = false); " + s;
    if (!graph_off_.empty()) return graph_off_ + "; " + s;
    return s;
  }
  std::size_t graph_recordings() const { return graph_recordings_; }
  std::size_t graph_replays() const { return graph_replays_; }

  /// One E update on real images alone, before Algorithm 1 (not in the paper): the all-positives
  /// contrast (τ) over [x; crop(x)], one random resized crop of the batch as in `two_views`. With
  /// `labels` (few labels) the labels are [y; y] — a supervised contrastive pretraining of E_f from
  /// the labelled subset, standing in for the pretrained E of the authors' code; without, each image
  /// is its own class and its crop its only positive (SimCLR's loss), a pretraining that needs no
  /// labels. E_e is not trained. Returns the loss before the update. Does not count as a step.
  real pretrain_encoder(cview<image_shape, Device> x, const real* labels = nullptr) {
    const std::size_t M = x.batch;
    if (M < 2) throw value_error("cdgan::model::pretrain_encoder: needs at least two images, got " + std::to_string(M));
    xe_.resize(2 * M);
    ce_.resize(2 * M);
    backend<Device>::copy(xe_.data(), x.ptr, x.size());
    random_resized_crop(x, xe_.v().slice(M, M));
    const real* ids = labels ? ce_.data() : instance_ids(M);
    if (labels)
      for (std::size_t v = 0; v < 2; ++v) backend<Device>::copy(ce_.data() + v * M, labels, M);
    auto [f, e] = e_.forward(xe_.cv(), mode::train);
    df_.resize(2 * M);
    de_.resize(2 * M);
    const real loss = lc_real_(f, ids, 2 * M, df_.v());
    de_ = 0.f;
    e_.backward({df_.cv(), de_.cv()}, nn::grads::assign);
    e_opt_->step();
    return loss;
  }

  /// G(z, c) for given codes, in eval mode (batch-norm running statistics).
  cview<image_shape, Device> generate(cview<shape<Z + C>, Device> zc) { return g_.forward(zc, mode::eval); }
  /// E_f of images, in eval mode.
  cview<feature_shape, Device> encode(cview<image_shape, Device> x) { return std::get<0>(e_.forward(x, mode::eval)); }

  /// Every tensor of the model's state (parameters, batch-norm statistics, optimiser states), with
  /// stable names, for checkpoints: f(name, real* device pointer, size, dims).
  template <class F>
  void for_each_state(F&& f) {
    auto net = [&](const char* prefix, auto& n, optimiser_type& opt) {
      n.for_each_parameter([&](nn::parameter_ref<Device> p) { f(std::string(prefix) + p.name, p.value, p.size, p.dims); });
      nn::for_each_buffer(n, [&](nn::parameter_ref<Device> p) { f(std::string(prefix) + p.name, p.value, p.size, p.dims); });
      opt.for_each_state([&](const std::string& name, real* data, std::size_t size) {
        f(std::string(prefix) + "optim." + name, data, size, std::vector<std::size_t>{size});
      });
    };
    net("G.", g_, *g_opt_);
    net("D.", d_, *d_opt_);
    net("E.", e_, *e_opt_);
    if (ee_opt_)
      ee_opt_->for_each_state([&](const std::string& name, real* data, std::size_t size) {
        f("E_e.optim." + name, data, size, std::vector<std::size_t>{size});
      });
  }

 private:
  /// What decides whether a recorded step may be replayed: everything the step's launches depend on
  /// that is not read from device memory.
  struct step_key {
    real beta1, beta2, lr_g, lr_d, lr_e, lr_ee;
    bool two_views, e_active, checks;
    const real* real_d;
    std::size_t real_batch;
    const real* labelled;
    std::size_t labelled_batch;
    const real* labels;
    std::size_t releases;     // memory of Device given back: a buffer of the step may have moved
    std::thread::id thread;   // the losses' per-thread scratch
    bool operator==(const step_key&) const = default;
  };
  step_key key_of(cview<image_shape, Device> real_d, cview<image_shape, Device> labelled, const real* labels) const {
    return {beta1_, beta2_, g_opt_->lr(), d_opt_->lr(), e_opt_->lr(), ee_opt_ ? ee_opt_->lr() : real(0), two_views_,
            steps_ >= o_.e_hold, checks_enabled(), real_d.ptr, real_d.batch, labelled.ptr, labelled.batch, labels,
            release_count<Device>(), std::this_thread::get_id()};
  }

  /// Whether this step may be recorded (see model_options::cuda_graph); sets graph_off_ when not.
  bool graph_wanted() {
    auto no = [&](const char* why) {
      graph_off_ = why;
      return false;
    };
    if (!step_graph<Device>::supported || !o_.cuda_graph || graph_failed_) return false;
    if constexpr (!requires { optimiser_type::replayable; })
      return no("not recorded: the optimiser does not declare itself replayable");
    else if (!optimiser_type::replayable)
      return no("not recorded: the optimiser is not replayable");
    if (checks_enabled()) return no("not recorded: checks are on (set_checks), which wait for the device");
    if (two_views_ || o_.real_contrast > 0 || o_.real_clustering > 0 || o_.real_consistency > 0)
      return no("not recorded: two_views, real_contrast, real_clustering and real_consistency draw on the host");
    // No check of the optimisers' first steps (SGD's is special): a step is recorded only after a step
    // with the same key, and the key fixes which optimisers step, so none takes its first step here.
    graph_off_.clear();
    return true;
  }

  /// Runs f's work as it is: the step's counter and values around it.
  template <class F>
  void run(F&& f) {
    begin_work();
    f();
    end_work();
  }
  /// Records f's work as a CUDA graph and launches it; false (nothing run, host state as before)
  /// when the recording fails, with the reason in graph_off_.
  template <class F>
  bool record_and_launch(F&& f, const step_key& key) {
    const std::uint64_t calls = rng_.calls();
    std::uint64_t counts[4] = {};
    for_each_optimiser([&](optimiser_type& o, std::size_t k) { counts[k] = o.step_count(); });
    try {
      graph_.begin();
      run(f);
      graph_.end();
      if (release_count<Device>() != key.releases) throw device_error("cdgan: the step moved a buffer while it was recorded");
    } catch (const std::exception& e) {
      graph_.abort();
      rng_.unbind_counter();
      rng_.set_state(rng_.seed(), calls);
      for_each_optimiser([&](optimiser_type& o, std::size_t k) { o.set_step_count(counts[k]); });
      graph_off_ = std::string("recording the step as a CUDA graph failed, so steps run as they are from now on: ") + e.what();
      graph_failed_ = true;
      return false;
    }
    recorded_.draws = rng_.calls() - calls;
    for_each_optimiser([&](optimiser_type& o, std::size_t k) { recorded_.steps[k] = o.step_count() - counts[k]; });
    recorded_.written = written_;
    graph_key_ = key;
    ++graph_recordings_;
    graph_.launch();
    return true;
  }
  /// Replays the recorded step: the step's counter goes to the device first (the graph's first node
  /// copies it from counter_host_), and the host counts the draws and optimiser steps it made.
  void replay() {
    counter_host_[0] = rng_.calls();
    graph_.launch();
    rng_.skip(recorded_.draws);
    for_each_optimiser([&](optimiser_type& o, std::size_t k) { o.skip_steps(recorded_.steps[k]); });
    written_ = recorded_.written;
    ++graph_replays_;
  }

  /// f(optimiser, k) for G's, D's and E's optimisers (k = 0, 1, 2) and E_e's (k = 3) when there is one.
  template <class F>
  void for_each_optimiser(F&& f) {
    f(*g_opt_, 0);
    f(*d_opt_, 1);
    f(*e_opt_, 2);
    if (ee_opt_) f(*ee_opt_, 3);
  }

  /// Before a step's work: the draw counter to the device (rng_ then reads it there), no values yet.
  void begin_work() {
    counter_host_[0] = rng_.calls();
    device_memory<Device>::upload(counter_.data(), counter_host_.data(), sizeof(std::uint64_t));
    rng_.bind_counter(counter_.data());
    written_ = 0;
  }
  /// After a step's work: its values to the host staging (not waited for).
  void end_work() {
    rng_.unbind_counter();
    device_memory<Device>::download(values_host_.data(), values_.data(), detail::slot_count * sizeof(real));
  }
  /// Waits for the device and copies the values the last work wrote into r.
  void read_values(step_report& r) {
    backend<Device>::synchronize();
    real* const fields[detail::slot_count] = {&r.d_loss, &r.gp, &r.g_gan, &r.g_lc, &r.g_lz, &r.e_lc, &r.e_lz};
    for (unsigned k = 0; k < detail::slot_count; ++k)
      if (written_ & (1u << k)) *fields[k] = values_host_[k];
  }
  /// The device real of report slot k, marked as written.
  real* slot(detail::report_slot k) {
    written_ |= 1u << k;
    return values_.data() + k;
  }

  /// Critic update on one real batch.
  void d_phase(cview<image_shape, Device> real_x) {
    const std::size_t B = real_x.batch;
    lat_.sample(B, o_.sigma, rng_, false);
    auto fake = g_.forward(lat_.zc.cv(), mode::train);
    xd_.resize(2 * B);
    backend<Device>::copy(xd_.data(), real_x.ptr, real_x.size());
    backend<Device>::copy(xd_.data() + real_x.size(), fake.ptr, fake.size());
    auto out = d_.forward(xd_.cv(), mode::train);
    dlogit_.resize(2 * B);
    real* loss = slot(detail::slot_d_loss);
    gan_.d_loss(out.slice(0, B), out.slice(B, B), dlogit_.v().slice(0, B), dlogit_.v().slice(B, B), loss);
    d_.backward(dlogit_.cv(), nn::grads::assign);
    if constexpr (Objective::penalty) {
      auto x = xd_.cv();
      real* gp = slot(detail::slot_gp);
      gp_(d_, x.slice(0, B), x.slice(B, B), rng_, gp);
      const auto l = losses::device_scalar<Device>(loss);
      l = l + losses::device_scalar<Device>(gp);
    }
    d_opt_->step();
  }

  /// Generator update with D and E fixed.
  void g_phase(cview<image_shape, Device> labelled, const real* labels) {
    const std::size_t B = o_.batch_g;
    lat_.sample(B, o_.sigma, rng_, o_.positives == losses::positives::one);
    auto x = g_.forward(lat_.zc.cv(), mode::train);
    auto out = d_.forward(x, mode::train);
    dlogit_.resize(B);
    gan_.g_loss(out, dlogit_.v(), slot(detail::slot_g_gan));
    auto dxd = d_.backward(dlogit_.cv(), nn::grads::skip);
    dx_.resize(B);
    dx_ = dxd;
    if (beta1_ > 0 || beta2_ > 0) {
      // CD-GAN: E fixed here. The baselines train E jointly with G on the same loss.
      auto dxe = encoder_losses(x, labelled, labels, detail::slot_g_lc, detail::slot_g_lz,
                                joint ? nn::grads::assign : nn::grads::skip);
      dx_ += dxe.slice(0, B);
    }
    g_.backward(dx_.cv(), nn::grads::assign);
    g_opt_->step();
    if (joint && (beta1_ > 0 || beta2_ > 0)) e_opt_->step();
  }

  /// Encoder update with G fixed (the host-valued real-image terms go straight into r).
  void e_phase(cview<image_shape, Device> labelled, const real* labels, step_report& r,
               cview<image_shape, Device> unlabelled) {
    if (joint || !(beta1_ > 0 || beta2_ > 0)) return;
    lat_.sample(o_.batch_e, o_.sigma, rng_, o_.positives == losses::positives::one);
    auto x = g_.forward(lat_.zc.cv(), mode::train);
    const bool reals = o_.real_contrast > 0 || o_.real_clustering > 0;
    encoder_losses(x, labelled, labels, detail::slot_e_lc, detail::slot_e_lz, nn::grads::assign,
                   reals ? unlabelled : cview<image_shape, Device>{}, &r.e_real, &r.e_im, &r.e_sat);
    e_opt_->step();
  }

  /// E_e alone on β2·L_z (model_options::e_hold_content).
  void e_content_phase() {
    lat_.sample(o_.batch_e, o_.sigma, rng_, false);
    auto x = g_.forward(lat_.zc.cv(), mode::train);
    auto out = e_.forward(x, mode::train);
    de_.resize(o_.batch_e);
    losses::content<shape<Z>, Device>(std::get<1>(out), lat_.z.cv(), de_.v(), slot(detail::slot_e_lz));
    de_.v() = de_.v() * beta2_;
    e_.template head<1>().backward(de_.cv(), nn::grads::assign);
    ee_opt_->step();
  }

  /// E forward on [x; crop(x); l; crop(l); u; u′] (the crops of x and l with two_views; l: the
  /// labelled images; u′ with real_contrast or real_consistency: a per-image affine distortion of u
  /// with real_consistency, else one crop of u), β1·L_c + β2·L_z (+ γ·instance contrast of [u; u′],
  /// γ'·clustering term of u and γ''·consistency of u′), E backward with `g`; returns dL/d[...] (the
  /// first x.batch rows are the gradient with respect to x).
  cview<image_shape, Device> encoder_losses(cview<image_shape, Device> x, cview<image_shape, Device> labelled,
                                            const real* labels, detail::report_slot lc, detail::report_slot lz, nn::grads g,
                                            cview<image_shape, Device> unlabelled = {}, real* instance_loss = nullptr,
                                            real* clustering_loss = nullptr, real* consistency_loss = nullptr) {
    const std::size_t B = x.batch, V = two_views_ ? 2 : 1, M = labelled.empty() ? 0 : labelled.batch;
    const std::size_t U = unlabelled.empty() ? 0 : unlabelled.batch, Q = V * (B + M);  // Q: rows of L_c
    const bool sat = U && o_.real_consistency > 0 && o_.real_clustering > 0;
    const std::size_t UV = U && (o_.real_contrast > 0 || sat) ? 2 : 1;  // views of u
    const std::size_t R = Q + UV * U, anchors = o_.real_anchors ? Q : V * B;
    xe_.resize(R);
    ce_.resize(R);
    backend<Device>::copy(xe_.data(), x.ptr, x.size());
    for (std::size_t v = 0; v < V; ++v) backend<Device>::copy(ce_.data() + v * B, lat_.c.data(), B);
    if (V == 2) random_resized_crop(x, xe_.v().slice(B, B));
    if (M) {
      backend<Device>::copy(xe_.data() + V * x.size(), labelled.ptr, labelled.size());
      for (std::size_t v = 0; v < V; ++v) backend<Device>::copy(ce_.data() + V * B + v * M, labels, M);
      if (V == 2) random_resized_crop(labelled, xe_.v().slice(V * B + M, M));
    }
    if (U) {
      backend<Device>::copy(xe_.data() + Q * image_shape::size, unlabelled.ptr, unlabelled.size());
      if (sat)
        random_affine(unlabelled, xe_.v().slice(Q + U, U));
      else if (UV == 2)
        random_resized_crop(unlabelled, xe_.v().slice(Q + U, U));
    }
    auto [f, e] = e_.forward(xe_.cv(), mode::train);
    df_.resize(R);
    de_.resize(R);
    auto dfq = df_.v().slice(0, Q);
    if constexpr (joint)
      losses::cross_entropy<f_dim, Device>(f, ce_.data(), df_.v(), ce_work_, slot(lc));
    else if (beta1_ > 0)
      lc_(f.slice(0, Q), ce_.data(), anchors, dfq, slot(lc));
    else
      losses::device_scalar<Device>(slot(lc)) = 0.f;
    dfq = dfq * beta1_;
    if (UV == 2 && o_.real_contrast > 0) {
      auto dfu = df_.v().slice(Q, 2 * U);
      const real li = lc_real_(f.slice(Q, 2 * U), instance_ids(U), 2 * U, dfu);
      if (instance_loss) *instance_loss = li;
      dfu = dfu * o_.real_contrast;
    } else if (U) {
      df_.v().slice(Q, UV * U) = 0.f;
    }
    if (U && o_.real_clustering > 0) {  // on the undistorted real rows, prototypes from the generated rows
      dim_.resize(U);
      const real li = im_(f.slice(0, V * B), ce_.data(), f.slice(Q, U), dim_.v());
      if (clustering_loss) *clustering_loss = li;
      auto dfu = df_.v().slice(Q, U);
      dfu += dim_.cv() * o_.real_clustering;
      if (sat) {  // the distorted rows against the same prototypes, the undistorted assignments as targets
        const real ls = im_.consistency(f.slice(Q + U, U), dim_.v());
        if (consistency_loss) *consistency_loss = ls;
        auto dfa = df_.v().slice(Q + U, U);
        dfa += dim_.cv() * o_.real_consistency;
      }
    }
    losses::content<shape<Z>, Device>(e.slice(0, B), lat_.z.cv(), de_.v().slice(0, B), slot(lz));
    auto de = de_.v();
    de.slice(0, B) = de.slice(0, B) * (Objective::content ? beta2_ : real(0));
    if (R > B) de.slice(B, R - B) = 0.f;
    return e_.backward({df_.cv(), de_.cv()}, g);
  }

  /// Labels 0..n−1 twice (each image and its crop, one class per image) on the device, made once per n.
  const real* instance_ids(std::size_t n) {
    if (instance_ids_.batch() != 2 * n) {
      std::vector<real> ids(2 * n);
      for (std::size_t i = 0; i < 2 * n; ++i) ids[i] = static_cast<real>(i % n);
      instance_ids_.from_host(ids);
    }
    return instance_ids_.data();
  }

  /// An affine distortion of its own for every image (model_options::affine_*), drawn from rng_.
  void random_affine(cview<image_shape, Device> x, view<image_shape, Device> out) {
    static_assert(image_shape::rank == 3, "cdgan::model: real_consistency needs image shapes <C, H, W>");
    constexpr std::size_t C = image_shape::dims[0], H = image_shape::dims[1], W = image_shape::dims[2];
    auto sym = [&] { return 2 * static_cast<double>(rng_.next_index(1u << 24)) / double(1u << 24) - 1; };
    affine_host_.resize(6 * x.batch);
    for (std::size_t n = 0; n < x.batch; ++n) {
      const double a = sym() * o_.affine_degrees * 3.14159265358979323846 / 180, s = 1 + sym() * o_.affine_scale;
      real* t = affine_host_.data() + 6 * n;
      t[0] = static_cast<real>(s * std::cos(a)), t[1] = static_cast<real>(-s * std::sin(a));
      t[2] = static_cast<real>(sym() * o_.affine_shift * W);
      t[3] = static_cast<real>(s * std::sin(a)), t[4] = static_cast<real>(s * std::cos(a));
      t[5] = static_cast<real>(sym() * o_.affine_shift * H);
    }
    affine_.from_host(affine_host_);
    out = cdgan::generate<Device>(detail::affine_warp<C, H, W>{x.ptr, affine_.data()});
  }

  /// One random resized crop (torchvision's RandomResizedCrop parameters) applied to the whole batch.
  void random_resized_crop(cview<image_shape, Device> x, view<image_shape, Device> out) {
    static_assert(image_shape::rank == 3, "cdgan::model: two_views needs image shapes <C, H, W>");
    constexpr std::size_t H = image_shape::dims[1], W = image_shape::dims[2];
    auto unit = [&] { return static_cast<double>(rng_.next_index(1u << 24)) / double(1u << 24); };
    std::size_t ch = H, cw = W, top = 0, left = 0;
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double area = H * W * (o_.crop_min_scale + (1 - o_.crop_min_scale) * unit());
      const double ratio = std::exp(std::log(3.0 / 4.0) + (std::log(4.0 / 3.0) - std::log(3.0 / 4.0)) * unit());
      const auto w = static_cast<std::size_t>(std::lround(std::sqrt(area * ratio)));
      const auto h = static_cast<std::size_t>(std::lround(std::sqrt(area / ratio)));
      if (w >= 1 && h >= 1 && w <= W && h <= H) {
        ch = h, cw = w;
        top = static_cast<std::size_t>(unit() * static_cast<double>(H - h + 1));
        left = static_cast<std::size_t>(unit() * static_cast<double>(W - w + 1));
        break;
      }
    }
    out = cdgan::generate<Device>(detail::resized_crop<H, W>{x.ptr, top, left, ch, cw});
  }

  model_options o_;
  rng rng_, init_;
  std::uint64_t steps_ = 0;
  real beta1_ = o_.beta1_at(0);  // set by step(); g_step / e_step called alone use the last value
  real beta2_ = o_.beta2_at(0);  // likewise
  bool two_views_ = o_.two_views_at(0);  // likewise
  generator_type g_;
  critic_type d_;
  encoder_type e_;
  std::optional<optimiser_type> g_opt_, d_opt_, e_opt_;
  std::optional<optimiser_type> ee_opt_;  // E_e alone, during the hold (model_options::e_hold_content)
  typename Objective::gan_loss gan_;
  losses::contrastive<f_dim, Device> lc_, lc_real_;
  losses::prototype_information<f_dim, c_dim, Device> im_{o_.tau};
  losses::gradient_penalty<critic_type> gp_;
  latent_batch<Z, C, Device> lat_;
  tensor<image_shape, Device> xd_, dx_, xe_;
  tensor<shape<1>, Device> dlogit_, ce_, ce_work_, instance_ids_;
  tensor<shape<6>, Device> affine_;  // per-image distortions (random_affine)
  std::vector<real> affine_host_;
  tensor<feature_shape, Device> df_, dim_;
  tensor<shape<Z>, Device> de_;
  // The step's draw counter (rng_ reads it on the device, see rng::bind_counter) and loss values,
  // each with the host staging it is copied from or to.
  buffer<Device, std::uint64_t> counter_{1};
  staging_buffer<Device, std::uint64_t> counter_host_{1};
  tensor<shape<1>, Device> values_{detail::slot_count};
  staging_buffer<Device, real> values_host_{detail::slot_count};
  unsigned written_ = 0;  // which report slots the last work wrote
  // The recorded step (model_options::cuda_graph) and what one replay stands for.
  step_graph<Device> graph_;
  std::optional<step_key> last_key_;  // the last step's key, after it ran
  step_key graph_key_{};
  struct {
    std::uint64_t draws = 0;
    std::uint64_t steps[4] = {};  // per optimiser, in for_each_optimiser's order
    unsigned written = 0;
  } recorded_;
  std::size_t graph_recordings_ = 0, graph_replays_ = 0;
  bool graph_failed_ = false;  // a recording failed: not tried again
  std::string graph_off_;
};

}  // namespace cdgan
