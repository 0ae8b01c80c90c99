// cdgan-train: trains, samples and scores CD-GAN models from the command line.
//
//   cdgan-train train --preset mnist --iterations 2000 --out runs/mnist
//   cdgan-train train --preset mnist --out runs/mnist --resume          (continues from the checkpoint)
//   cdgan-train sample --preset mnist --checkpoint runs/mnist/checkpoint.safetensors --npy
//   cdgan-train eval --preset mnist --checkpoint runs/mnist/checkpoint.safetensors --features-npy
//
// Every preset setting can be overridden by a flag or by a TOML/INI file given with --config.
// Presets (include/cdgan/gan/presets.hpp): mnist, mnist-code, fashion-mnist, the baselines
// mnist-clustergan, mnist-infogan, and mnist-imsat and fashion-mnist-imsat (mnist / fashion-mnist
// with the two real-image terms that are not in the paper, the latter also with β2 = 1); with few
// labels fashion-mnist-few-labels and dsprites-few-labels (recipes that trained here: a pretrained,
// held encoder, L_z switched on late; presets.hpp gives the flags for the paper's settings). The
// β1 = 0 ablation is `--beta1 0`.
//
// Each evaluation (during `train`, and `eval`) scores the encoder (k-means on E_f of the test split:
// ACC, purity, NMI, ARI) and the generator: the classifier Fréchet distance (NOT the Inception FID;
// overall and per class), the intra-class diversity of G(z, c) against real images of the matched
// class, and the classifier consistency, with a small classifier (include/cdgan/eval/quality.hpp)
// trained once on the labelled training split and cached (default <out>/../classifiers/).
#include <cdgan/cdgan.hpp>
#include <cdgan/gan/presets.hpp>
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace fs = std::filesystem;
using namespace cdgan;

namespace {

/// Settings of one run: a preset plus the run's own choices.
struct settings {
  presets::preset p;
  std::string command = "train";
  std::string data_dir;  // empty: the dataset's default location
  std::string out;       // empty: runs/<preset>
  std::string checkpoint;
  std::string device = "cpu";
  std::string data_on_device = "auto";  // the training set in device memory, batches gathered there
  std::string cuda_graph = "on";        // model_options::cuda_graph
  /// The features k-means clusters: "normalized" (E_f / ‖E_f‖, the directions the contrast compares
  /// and what the authors' test clusters: their encoder ends in F.normalize) or "raw" (E_f as is).
  /// The baselines' E_f are logits and are always clustered raw.
  std::string eval_features = "normalized";
  std::size_t eval_every = 500, log_every = 50, eval_samples = 0, kmeans_restarts = 10, grid_columns = 10;
  std::size_t samples_per_class = 100;
  std::size_t quality_samples = 300;        // generated images per class for the quality figures (0: off)
  std::size_t classifier_iterations = 0;    // 0: the library's default budget for the dataset
  std::uint64_t classifier_seed = 0;
  std::string classifier;                   // empty: <out>/../classifiers/<dataset>-<budget>-seed<s>.safetensors
  int threads = 0;
  bool resume = false, npy = false, features_npy = false;

  fs::path out_dir() const { return out.empty() ? fs::path("runs") / p.name : fs::path(out); }
  fs::path checkpoint_path() const { return checkpoint.empty() ? out_dir() / "checkpoint.safetensors" : fs::path(checkpoint); }
  /// The cached quality classifier: shared by the runs under the same parent directory (same
  /// dataset and budget), so that their Fréchet distances come from the same classifier.
  fs::path classifier_path() const {
    if (!classifier.empty()) return classifier;
    const auto budget = classifier_iterations ? fmt::format("it{}", classifier_iterations) : std::string("default");
    return out_dir().parent_path() / "classifiers" / fmt::format("{}-{}-seed{}.safetensors", p.dataset, budget, classifier_seed);
  }
};

// ---------------------------------------------------------------------------------------------
// Data: the training and test splits of a preset's dataset, on the host.
// ---------------------------------------------------------------------------------------------

struct split_data {
  data::dataset train, test;  // for dSprites, train holds no images: they are rendered on demand
  std::vector<std::size_t> train_indices;  // dSprites: the image index of each training sample
  std::size_t classes = 0;
  std::size_t size() const { return train_indices.empty() ? train.size() : train_indices.size(); }
  std::size_t label(std::size_t i) const {
    return train_indices.empty() ? train.labels[i] : data::dsprites::label(train_indices[i]);
  }
  void copy(std::size_t i, real* out, std::size_t n) const {
    if (train_indices.empty())
      std::copy_n(train.images.data() + i * n, n, out);
    else
      data::dsprites::render(train_indices[i], std::span<float>(out, n));
  }
  /// The first `per_class` training images of each class (class-major), with their labels.
  std::pair<std::vector<real>, std::vector<real>> first_per_class(std::size_t per_class, std::size_t n) const {
    std::vector<std::vector<std::size_t>> pick(classes);
    std::size_t full = 0;
    for (std::size_t i = 0; i < size() && full < classes; ++i) {
      const std::size_t c = label(i);
      if (c >= classes || pick[c].size() == per_class) continue;
      pick[c].push_back(i);
      if (pick[c].size() == per_class) ++full;
    }
    std::pair<std::vector<real>, std::vector<real>> out;
    for (std::size_t c = 0; c < classes; ++c)
      for (auto i : pick[c]) {
        out.first.resize(out.first.size() + n);
        copy(i, out.first.data() + out.first.size() - n, n);
        out.second.push_back(static_cast<real>(c));
      }
    return out;
  }
};

split_data load_data(const settings& s) {
  split_data d;
  if (s.p.dataset == "mnist") {
    d.train = s.data_dir.empty() ? data::mnist("train") : data::mnist("train", s.data_dir);
    d.test = s.data_dir.empty() ? data::mnist("test") : data::mnist("test", s.data_dir);
  } else if (s.p.dataset == "fashion-mnist") {
    d.train = s.data_dir.empty() ? data::fashion_mnist("train") : data::fashion_mnist("train", s.data_dir);
    d.test = s.data_dir.empty() ? data::fashion_mnist("test") : data::fashion_mnist("test", s.data_dir);
  } else if (s.p.dataset == "dsprites") {
    auto split = data::dsprites::paper_split();
    d.train_indices = std::move(split.train);
    d.test = data::dsprites::materialize(split.test, "dsprites/test");
  } else {
    throw value_error("cdgan-train: unknown dataset '" + s.p.dataset + "'");
  }
  d.classes = d.test.num_classes;
  // --eval-samples: an evenly spaced subset (dSprites' test split is sorted, shape slowest, so its
  // first images would all be squares)
  if (s.eval_samples) d.test = d.test.evenly_spaced(s.eval_samples);
  return d;
}

// ---------------------------------------------------------------------------------------------
// The run, for one compiled network family.
// ---------------------------------------------------------------------------------------------

template <class Nets, class Device>
class run {
 public:
  using model_t = model<typename Nets::generator, typename Nets::critic, typename Nets::encoder, typename Nets::objective,
                        optim::adam, Device>;
  using image = typename model_t::image_shape;
  static constexpr std::size_t Z = model_t::z_dim, C = model_t::c_dim, F = model_t::f_dim;
  using classifier_t = eval::classifier_for<image, C, Device>;

  explicit run(const settings& s)
      : s_(s),
        m_(s.p.model, adam(s.p), adam(s.p, false), adam(s.p)),
        loader_(1, 1, 0) {
    if (s.p.init_std > 0) {
      rng g(s.p.model.seed ^ 0xC0FFEEull);
      presets::init_normal(m_.generator(), g, s.p.init_std);
      presets::init_normal(m_.critic(), g, s.p.init_std);
      presets::init_normal(m_.encoder(), g, s.p.init_std);
    }
  }

  static optim::adam_options adam(const presets::preset& p, bool decay = true) {
    return optim::adam_options{}.lr(p.lr).betas(p.adam_beta1, p.adam_beta2).weight_decay(decay ? p.weight_decay : 0.f);
  }

  int train() {
    auto d = load_data(s_);
    if (d.classes != C)
      throw value_error(fmt::format("cdgan-train: preset {} has {} classes in c, the dataset {}", s_.p.name, C, d.classes));
    const auto& o = s_.p.model;
    fs::create_directories(s_.out_dir());
    if (s_.resume) load_checkpoint(s_.checkpoint_path());

    // the data order is a function of the step, so a resumed run sees the same batches
    const std::size_t per_step = o.n_critic * o.batch_d;
    if (d.size() < per_step) throw value_error("cdgan-train: the training set is smaller than one step's batch");
    const std::size_t batches_per_epoch = d.size() / per_step;
    loader_ = data::shuffling_batch_loader(d.size(), per_step, o.seed, true);
    std::vector<std::vector<std::size_t>> labelled_by_class;
    if (s_.p.label_fraction > 0) {
      std::vector<std::size_t> labels(d.size());
      for (std::size_t i = 0; i < d.size(); ++i) labels[i] = d.label(i);
      const auto subset = data::select_labelled_subset(labels, s_.p.label_fraction, o.seed, C);
      labelled_by_class.resize(C);
      for (auto i : subset) labelled_by_class[labels[i]].push_back(i);
      fmt::print("labelled subset: {} images ({:.2f} % of {}), {} per class in each step\n", subset.size(),
                 100.0 * subset.size() / d.size(), d.size(), s_.p.labels_per_class);
    }
    const std::size_t M = labelled_by_class.empty() ? 0 : s_.p.labels_per_class * C;
    tensor<image, Device> real_batch(per_step), lab_batch(M);
    tensor<shape<1>, Device> lab_labels(M);
    std::vector<real> host(per_step * image::size), lab_host(M * image::size), lab_lab(M);
    // --data-on-device: the training set uploaded once, each step's batches gathered on the device
    // (auto: on the GPU when the set fits in 4 GiB as floats; the CPU reads the host copy directly)
    std::optional<data::device_dataset<image, Device>> resident;
    std::vector<std::size_t> lab_idx(M);
    const double set_bytes = static_cast<double>(d.size()) * image::size * sizeof(real);
    if (s_.data_on_device == "on" || (s_.data_on_device == "auto" && !std::is_same_v<Device, cpu> && set_bytes <= 4.0 * (1ull << 30))) {
      resident.emplace(d.size(), [&](std::size_t i, std::span<real> out) { d.copy(i, out.data(), out.size()); });
      fmt::print("training set on the device: {} images, {:.0f} MiB\n", d.size(), set_bytes / (1 << 20));
    }

    // the real batch of the training set images at `idx` (gathered on the device when resident)
    auto fill_real = [&](std::span<const std::size_t> idx) {
      if (resident) {
        resident->gather(idx.first(per_step), real_batch.v());
      } else {
        for (std::size_t b = 0; b < per_step; ++b) d.copy(idx[b], host.data() + b * image::size, image::size);
        real_batch.from_host(host);
      }
    };
    // a class-balanced labelled batch, a function of (stream, index) alone: resumable
    auto pick_labelled = [&](std::uint64_t stream, std::uint64_t index) {
      rng pick(stream);
      pick.set_state(stream, index * M);
      for (std::size_t c = 0, j = 0; c < C; ++c)
        for (std::size_t r = 0; r < s_.p.labels_per_class; ++r, ++j) {
          const auto& pool = labelled_by_class[c];
          const std::size_t i = pool[pick.next_index(pool.size())];
          if (resident)
            lab_idx[j] = i;
          else
            d.copy(i, lab_host.data() + j * image::size, image::size);
          lab_lab[j] = static_cast<real>(c);
        }
      if (resident)
        resident->gather(lab_idx, lab_batch.v());
      else
        lab_batch.from_host(lab_host);
      lab_labels.from_host(lab_lab);
    };

    std::ofstream metrics(s_.out_dir() / "metrics.jsonl", std::ios::app);
    bool wrote = false;  // whether this invocation wrote a grid and a checkpoint
    auto write_outputs = [&](std::uint64_t step) {  // the step's grid, also as samples.png, and a checkpoint
      const auto grid = s_.out_dir() / fmt::format("samples_{:07}.png", step);
      write_grid(grid);
      fs::copy_file(grid, s_.out_dir() / "samples.png", fs::copy_options::overwrite_existing);
      save_checkpoint(s_.checkpoint_path());
      wrote = true;
    };
    if (s_.p.e_pretrain > 0 && m_.steps() == 0 && !pretrained_) {
      // with labels: class-balanced labelled batches (supervised contrast); without: the critic's
      // batch size of real images from a loader of its own (instance contrast, SimCLR)
      auto tp = std::chrono::steady_clock::now();
      real first = 0, last = 0;
      data::shuffling_batch_loader pre(d.size(), per_step, o.seed ^ 0x9e7a1ull, true);
      for (std::size_t k = 0; k < s_.p.e_pretrain; ++k) {
        real l;
        if (M) {
          pick_labelled(o.seed ^ 0x9e7a1ull, k);
          l = m_.pretrain_encoder(lab_batch.cv(), lab_labels.data());
        } else {
          fill_real(pre.next_indices());
          l = m_.pretrain_encoder(real_batch.cv());
        }
        if (!std::isfinite(l)) throw numeric_error(fmt::format("cdgan-train: the pretraining loss is not finite at update {}", k));
        (k == 0 ? first : last) = l;
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count();
      auto j = evaluate(d);  // what the pretraining alone gives E: the baseline the run must beat
      j["step"] = 0;
      j["e_pretrain"] = s_.p.e_pretrain;
      j["pretrain_loss_first"] = first;
      j["pretrain_loss_last"] = last;
      j["seconds"] = secs;
      metrics << j.dump() << '\n';
      metrics.flush();
      fmt::print("E pretrained on the {}: {} updates, contrast {:.4f} -> {:.4f} ({:.0f} s); ACC {:.4f}  NMI {:.4f}  ARI {:.4f}\n",
                 M ? "labelled images" : "real images (instance contrast)", s_.p.e_pretrain, first, last, secs, j["acc"].template get<double>(), j["nmi"].template get<double>(),
                 j["ari"].template get<double>());
      // a checkpoint at step 0 that says E is pretrained: --resume starts the GAN phase from it
      // instead of pretraining again (2,000 dSprites updates take over 20 minutes on one core)
      pretrained_ = true;
      write_outputs(0);
      std::fflush(stdout);
    }
    // --lr-e: E's own rate for the GAN phase (set after the pretraining, which uses --lr)
    if (s_.p.lr_e > 0) m_.e_optimiser().set_lr(s_.p.lr_e);
    const std::size_t total = s_.p.iterations;
    auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t first = m_.steps();
    step_report avg{};
    std::size_t in_avg = 0;
    const bool tty = isatty(fileno(stderr));
    fmt::print("training {} ({}), {} iterations from step {}, D/G/E batches {}/{}/{}, {} thread(s), output in {}\n",
               s_.p.name, s_.p.network, total, first, o.batch_d, o.batch_g, o.batch_e, num_threads(),
               s_.out_dir().string());
    while (m_.steps() < total) {
      const std::uint64_t t = m_.steps();
      loader_.set_epoch(t / batches_per_epoch);
      std::span<const std::size_t> idx;
      for (std::size_t k = 0; k <= t % batches_per_epoch; ++k) idx = loader_.next_indices();
      fill_real(idx);
      if (M) pick_labelled(o.seed ^ 0x1abe1ull, t);
      const auto r = m_.step(real_batch.cv(), lab_batch.cv(), M ? lab_labels.data() : nullptr);
      accumulate(avg, r, in_avg);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double rate = static_cast<double>(r.step - first) / secs;
      const bool log_line = r.step % s_.log_every == 0 || r.step == total;
      if (tty || log_line) {
        const double eta = rate > 0 ? static_cast<double>(total - r.step) / rate : 0;
        const auto line = fmt::format(
            "[{:>7}/{}] {:5.2f} it/s  ETA {:>5.0f}s | D {:+.3f} gp {:.3f} | G {:+.3f} Lc {:.3f} Lz {:.3f} | E Lc {:.3f} Lz {:.3f}",
            r.step, total, rate, eta, avg.d_loss / in_avg, avg.gp / in_avg, avg.g_gan / in_avg, avg.g_lc / in_avg,
            avg.g_lz / in_avg, avg.e_lc / in_avg, avg.e_lz / in_avg);
        if (tty)
          fmt::print(stderr, "\r{}{}", line, log_line ? "\n" : "");
        else
          fmt::print("{}\n", line);
        std::fflush(stdout);
        for (real v : std::array<real, 5>{r.d_loss, r.g_gan, r.g_lc, r.e_lc, r.e_lz})
          if (!std::isfinite(v)) throw numeric_error(fmt::format("cdgan-train: a loss is not finite at step {}", r.step));
      }
      if (log_line) {
        avg = {};
        in_avg = 0;
      }
      if (r.step % s_.eval_every == 0 || r.step == total) {
        auto j = evaluate(d);
        j["step"] = r.step;
        j["seconds"] = secs;
        j["beta1"] = r.beta1;
        j["beta2"] = r.beta2;
        j["two_views"] = r.two_views;
        j["e_real"] = r.e_real;
        j["e_im"] = r.e_im;
        j["e_sat"] = r.e_sat;
        j["d_loss"] = r.d_loss;
        j["g_lc"] = r.g_lc;
        j["e_lc"] = r.e_lc;
        j["e_lz"] = r.e_lz;
        metrics << j.dump() << '\n';
        metrics.flush();
        write_outputs(r.step);
        fmt::print("step {}: ACC {:.4f}  purity {:.4f}  NMI {:.4f}  ARI {:.4f}  consistency {:.4f}  code ACC {:.4f}  ({:.0f} s)\n", r.step,
                   j["acc"].template get<double>(), j["purity"].template get<double>(), j["nmi"].template get<double>(), j["ari"].template get<double>(),
                   j["consistency"].template get<double>(), j["code_acc"].template get<double>(), secs);
        print_quality(j);
        std::fflush(stdout);
      }
    }
    if (!wrote) {
      fmt::print("nothing to do: the run is at step {} of {}; nothing written\n", m_.steps(), total);
      return 0;
    }
    if constexpr (!std::is_same_v<Device, cpu>) fmt::print("CUDA graph of the step: {}\n", m_.graph_status());
    fmt::print("done: samples {}, metrics {}, checkpoint {}\n", (s_.out_dir() / "samples.png").string(),
               (s_.out_dir() / "metrics.jsonl").string(), s_.checkpoint_path().string());
    return 0;
  }

  int sample() {
    load_checkpoint(s_.checkpoint_path());
    fs::create_directories(s_.out_dir());
    const auto grid = s_.out_dir() / "samples_from_checkpoint.png";
    write_grid(grid);
    fmt::print("wrote {}\n", grid.string());
    if (s_.npy) {
      const std::size_t n = s_.samples_per_class * C;
      latent_batch<Z, C, Device> lat;
      rng g(s_.p.model.seed ^ 0x5A3Bull);
      lat.z.resize(n);
      lat.z = g.normal(0.f, s_.p.model.sigma);
      std::vector<real> cs(n);
      for (std::size_t i = 0; i < n; ++i) cs[i] = static_cast<real>(i / s_.samples_per_class);
      lat.c.from_host(cs);
      lat.assemble();
      auto imgs = generate_images(lat.zc);
      std::vector<std::size_t> dims{n};
      for (auto v : image::dims) dims.push_back(v);
      io::write_npy(s_.out_dir() / "images.npy", imgs, dims);
      std::vector<std::int64_t> ci(cs.begin(), cs.end());
      io::write_npy(s_.out_dir() / "c.npy", ci, {n});
      fmt::print("wrote {} and {}\n", (s_.out_dir() / "images.npy").string(), (s_.out_dir() / "c.npy").string());
    }
    return 0;
  }

  int eval() {
    load_checkpoint(s_.checkpoint_path());
    auto d = load_data(s_);
    auto j = evaluate(d);
    j["step"] = m_.steps();
    print_quality(j);
    fmt::print("{}\n", j.dump());
    if (s_.features_npy) {
      fs::create_directories(s_.out_dir());
      io::write_npy(s_.out_dir() / "features.npy", last_features_, {last_features_.size() / F, F});
      std::vector<std::int64_t> l(d.test.labels.begin(), d.test.labels.begin() + static_cast<std::ptrdiff_t>(last_features_.size() / F));
      io::write_npy(s_.out_dir() / "labels.npy", l, {l.size()});
      fmt::print("wrote {} and {}\n", (s_.out_dir() / "features.npy").string(), (s_.out_dir() / "labels.npy").string());
    }
    return 0;
  }

 private:
  static void accumulate(step_report& a, const step_report& r, std::size_t& n) {
    a.d_loss += r.d_loss;
    a.gp += r.gp;
    a.g_gan += r.g_gan;
    a.g_lc += r.g_lc;
    a.g_lz += r.g_lz;
    a.e_lc += r.e_lc;
    a.e_lz += r.e_lz;
    ++n;
  }

  /// E_f features of the test split, k-means, ACC (Hungarian) / purity / NMI / ARI, and the
  /// consistency of generated images (the share of G(z, c) that E_f + the test-set k-means centres put
  /// in the cluster matched to c); for the baselines (E_f = C logits) also the scores of argmax E_f;
  /// then the generation quality (`quality`).
  nlohmann::json evaluate(const split_data& d) {
    const auto t_eval = std::chrono::steady_clock::now();
    const data::dataset& test = d.test;
    const std::size_t n = test.size();  // --eval-samples has cut the split already (load_data)
    last_features_ = features(test.images.data(), n);
    eval::kmeans_options ko;
    ko.k = C;
    ko.n_init = s_.kmeans_restarts;
    ko.seed = s_.p.model.seed;
    const auto km = eval::kmeans(last_features_, n, F, ko);
    std::vector<std::size_t> truth(test.labels.begin(), test.labels.begin() + static_cast<std::ptrdiff_t>(n));
    const auto sc = eval::score_clustering(truth, km.labels);
    // consistency: generated images of each c, assigned to the nearest test-set cluster centre
    const std::size_t per = 100;
    latent_batch<Z, C, Device> lat;
    rng g(s_.p.model.seed ^ 0xE7A1ull);
    lat.z.resize(per * C);
    lat.z = g.normal(0.f, s_.p.model.sigma);
    std::vector<real> cs(per * C);
    for (std::size_t i = 0; i < cs.size(); ++i) cs[i] = static_cast<real>(i / per);
    lat.c.from_host(cs);
    lat.assemble();
    auto imgs = generate_images(lat.zc);
    auto gf = features(imgs.data(), cs.size());
    // rows of `x` (n × F) to the nearest of the C rows of `centres` (C × F)
    auto nearest_rows = [&](const std::vector<real>& x, std::size_t rows, const auto& centres) {
      std::vector<std::size_t> out(rows);
      for (std::size_t i = 0; i < rows; ++i) {
        double best = 1e300;
        for (std::size_t k = 0; k < C; ++k) {
          double dist = 0;
          for (std::size_t j = 0; j < F; ++j) {
            const double diff = x[i * F + j] - centres[k * F + j];
            dist += diff * diff;
          }
          if (dist < best) best = dist, out[i] = k;
        }
      }
      return out;
    };
    const auto assigned = nearest_rows(gf, cs.size(), km.centers);
    std::vector<std::size_t> code(cs.begin(), cs.end());
    const auto cons = eval::consistency(assigned, code);
    // the encoder's c on real images: each test image put at the nearest code centroid (the mean
    // feature of G(z, c) over the `per` images of each c), scored like a clustering
    std::vector<double> centroid(C * F, 0.0);
    for (std::size_t i = 0; i < cs.size(); ++i)
      for (std::size_t j = 0; j < F; ++j) centroid[(i / per) * F + j] += gf[i * F + j] / static_cast<double>(per);
    const auto nearest = nearest_rows(last_features_, n, centroid);
    const auto sn = eval::score_clustering(truth, nearest);
    nlohmann::json j{{"acc", sc.acc}, {"purity", sc.purity}, {"nmi", sc.nmi}, {"ari", sc.ari}, {"consistency", cons.value},
                     {"eval_samples", n}, {"inertia", km.inertia}, {"objective", s_.p.objective},
                     {"features", normalize_features() ? "normalized" : "raw"}, {"code_acc", sn.acc}, {"code_nmi", sn.nmi}};
    if constexpr (model_t::joint) {
      // ClusterGAN / InfoGAN: E_f is the class head (C logits); its argmax is a clustering too
      std::vector<std::size_t> am(n);
      for (std::size_t i = 0; i < n; ++i) {
        const real* row = last_features_.data() + i * F;
        am[i] = static_cast<std::size_t>(std::max_element(row, row + F) - row);
      }
      const auto sa = eval::score_clustering(truth, am);
      j["argmax_acc"] = sa.acc;
      j["argmax_purity"] = sa.purity;
      j["argmax_nmi"] = sa.nmi;
      j["argmax_ari"] = sa.ari;
    }
    j["encoder_eval_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_eval).count();
    if (s_.quality_samples) quality(d, j);
    j["eval_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_eval).count();
    return j;
  }

  /// The quality classifier (trained once on the labelled training split, or loaded from its cache),
  /// the reference statistics of the test split, and the real-vs-real floor: `quality_samples`
  /// training images per class scored as if generated. Made once per process.
  void prepare_quality(const split_data& d) {
    if (q_) return;
    const auto t0 = std::chrono::steady_clock::now();
    auto q = std::make_unique<quality_state>();
    q->path = s_.classifier_path();
    auto o = s_.p.dataset == "dsprites" ? eval::dsprites_classifier_options(s_.classifier_seed)
                                        : eval::default_classifier_options(s_.classifier_seed);
    if (s_.classifier_iterations) o.iterations = s_.classifier_iterations;
    o.batch_size = std::min(o.batch_size, d.size());
    const auto tag = fmt::format("dataset={} epochs={} iterations={} batch={} lr={} seed={}", s_.p.dataset, o.epochs,
                                 o.iterations, o.batch_size, o.lr, o.seed);
    fmt::print("quality classifier {}: ", q->path.string());
    std::fflush(stdout);
    if (d.train_indices.empty())
      q->cache = q->clf.load_or_train(q->path, d.train, o, static_cast<const data::dataset*>(nullptr), tag);
    else
      q->cache = q->clf.load_or_train(q->path, data::dsprites::dsprites_source(d.train_indices), o,
                                      static_cast<const data::dataset*>(nullptr), tag);
    // one pass over the test split gives both the accuracy and the reference features
    auto fp = q->clf.features_and_predictions(d.test);
    std::size_t right = 0;
    for (std::size_t i = 0; i < d.test.size(); ++i) right += fp.second[i] == d.test.labels[i] ? 1 : 0;
    q->cache.test_accuracy = static_cast<double>(right) / static_cast<double>(d.test.size());
    std::vector<std::size_t> labels(d.test.labels.begin(), d.test.labels.end());
    q->ref = eval::real_reference::from_features(std::move(fp.first), labels, classifier_t::feature_dim, C);
    const auto [imgs, lab] = d.first_per_class(s_.quality_samples, image::size);
    q->floor = eval::generation_quality(q->clf, std::span<const float>(imgs), lab, q->ref, C);
    q->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("{}{}{}, test accuracy {:.4f}; real-vs-real floor at {} training images per class: classifier FD {:.2f}, "
               "per-class FD mean {:.2f}, diversity ratio min {:.3f} ({:.1f} s)\n",
               q->cache.trained ? "trained: " : "loaded", q->cache.trained ? q->cache.reason : std::string(),
               q->cache.trained ? fmt::format(" ({} steps in {:.1f} s)", q->cache.train.iterations, q->cache.train.seconds) : "",
               q->cache.test_accuracy, s_.quality_samples, q->floor.fd_overall, finite_mean(q->floor.fd_per_class),
               q->floor.diversity_ratio_min, q->seconds);
    std::fflush(stdout);
    q_ = std::move(q);
  }

  /// Generation quality of `quality_samples` images per code c (fixed z across evaluations), added
  /// to the metrics line `j`.
  void quality(const split_data& d, nlohmann::json& j) {
    if (!q_) {
      prepare_quality(d);
      j["quality_setup_seconds"] = q_->seconds;  // classifier training or loading, reference: once per process
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t per = s_.quality_samples, n = per * C;
    latent_batch<Z, C, Device> lat;
    rng g(s_.p.model.seed ^ 0x9A11'7E5Dull);
    lat.z.resize(n);
    lat.z = g.normal(0.f, s_.p.model.sigma);
    std::vector<real> cs(n);
    for (std::size_t i = 0; i < n; ++i) cs[i] = static_cast<real>(i / per);
    lat.c.from_host(cs);
    lat.assemble();
    std::vector<real> imgs(n * image::size);
    constexpr std::size_t chunk = 500;
    for (std::size_t first = 0; first < n; first += chunk) {
      const std::size_t b = std::min(chunk, n - first);
      auto x = m_.generate(lat.zc.cv().slice(first, b));
      device_memory<Device>::to_host(imgs.data() + first * image::size, x.ptr, x.size() * sizeof(real));
    }
    const auto rep = eval::generation_quality(q_->clf, std::span<const float>(imgs), cs, q_->ref, C);
    nlohmann::json qj = rep;
    for (auto& [k, v] : qj.items()) {
      if (k == "consistency")
        j["classifier_consistency"] = v;
      else if (k == "code_to_class")
        j["classifier_code_to_class"] = v;
      else if (k == "generated" || k == "real" || k == "feature_dim")
        continue;
      else
        j[k] = v;
    }
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    j["fd_per_class_mean"] = num(finite_mean(rep.fd_per_class));
    j["quality_samples_per_class"] = per;
    j["classifier_test_accuracy"] = q_->cache.test_accuracy;
    j["fd_real_floor"] = num(q_->floor.fd_overall);
    j["fd_real_floor_per_class_mean"] = num(finite_mean(q_->floor.fd_per_class));
    j["quality_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  static double finite_mean(const std::vector<double>& v) {
    double s = 0;
    std::size_t k = 0;
    for (double x : v)
      if (std::isfinite(x)) s += x, ++k;
    return k ? s / static_cast<double>(k) : std::numeric_limits<double>::quiet_NaN();
  }

  /// The quality lines of an evaluation, and a WARNING for each class whose generated images are
  /// less than half as diverse as the real ones.
  void print_quality(const nlohmann::json& j) const {
    if (!j.contains("fd_overall")) return;
    auto d = [](const nlohmann::json& v) { return v.is_number() ? v.template get<double>() : std::numeric_limits<double>::quiet_NaN(); };
    auto list = [&](const nlohmann::json& a, const char* f) {
      std::string out;
      for (const auto& v : a) out += (out.empty() ? "" : " ") + fmt::format(fmt::runtime(f), d(v));
      return out;
    };
    fmt::print("  quality ({} per class; classifier Fréchet distance, not Inception FID): FD {:.2f} (real floor {:.2f})  "
               "per-class FD mean {:.2f} (floor {:.2f})  diversity ratio min {:.3f} mean {:.3f}  classifier consistency {:.4f}  "
               "({:.1f} s)\n",
               j["quality_samples_per_class"].template get<std::size_t>(), d(j["fd_overall"]), d(j["fd_real_floor"]),
               d(j["fd_per_class_mean"]), d(j["fd_real_floor_per_class_mean"]), d(j["diversity_ratio_min"]),
               d(j["diversity_ratio_mean"]), d(j["classifier_consistency"]), d(j["quality_seconds"]));
    fmt::print("  per c: FD [{}]  diversity ratio [{}]\n", list(j["fd_per_class"], "{:.1f}"), list(j["diversity_ratio"], "{:.2f}"));
    const auto& ratio = j["diversity_ratio"];
    std::string low;
    for (std::size_t c = 0; c < ratio.size(); ++c)
      if (!(d(ratio[c]) >= 0.5)) low += fmt::format("{}c={} ({:.3f})", low.empty() ? "" : ", ", c, d(ratio[c]));
    if (!low.empty())
      fmt::print("WARNING: collapse within class {}: the generated images of these codes are less than half as diverse "
                 "as real images of the matched class (diversity ratio < 0.5)\n", low);
  }

  bool normalize_features() const { return !model_t::joint && s_.eval_features == "normalized"; }

  /// The features that evaluation clusters: E_f of n host images, L2-normalised per row unless
  /// --eval-features raw (or a baseline, whose E_f are logits).
  std::vector<real> features(const real* images, std::size_t n) {
    auto f = encode(images, n);
    if (!normalize_features()) return f;
    for (std::size_t i = 0; i < n; ++i) {
      real* row = f.data() + i * F;
      double ss = 0;
      for (std::size_t j = 0; j < F; ++j) ss += static_cast<double>(row[j]) * row[j];
      const real inv = static_cast<real>(1.0 / std::max(std::sqrt(ss), 1e-12));  // F.normalize's ε
      for (std::size_t j = 0; j < F; ++j) row[j] *= inv;
    }
    return f;
  }

  /// E_f of n host images, in eval mode, in chunks.
  std::vector<real> encode(const real* images, std::size_t n) {
    constexpr std::size_t chunk = 500;
    std::vector<real> out(n * F), part;
    tensor<image, Device> x;
    for (std::size_t first = 0; first < n; first += chunk) {
      const std::size_t b = std::min(chunk, n - first);
      x.from_host(std::vector<real>(images + first * image::size, images + (first + b) * image::size));
      auto f = m_.encode(x.cv());
      part.resize(f.size());
      device_memory<Device>::to_host(part.data(), f.ptr, f.size() * sizeof(real));
      std::copy(part.begin(), part.end(), out.begin() + static_cast<std::ptrdiff_t>(first * F));
    }
    return out;
  }

  std::vector<real> generate_images(const tensor<shape<Z + C>, Device>& zc) {
    auto x = m_.generate(zc.cv());
    std::vector<real> h(x.size());
    device_memory<Device>::to_host(h.data(), x.ptr, x.size() * sizeof(real));
    return h;
  }

  /// One row per value of c, one column per z; the same z in every row and at every evaluation.
  void write_grid(const fs::path& path) {
    const std::size_t cols = s_.grid_columns;
    latent_batch<Z, C, Device> lat;
    tensor<shape<Z>, Device> zcol(cols);
    rng g(s_.p.model.seed ^ 0x6121Dull);
    zcol = g.normal(0.f, s_.p.model.sigma);
    auto zh = zcol.to_host();
    std::vector<real> z(C * cols * Z), cs(C * cols);
    for (std::size_t r = 0; r < C; ++r)
      for (std::size_t c = 0; c < cols; ++c) {
        std::copy_n(zh.data() + c * Z, Z, z.data() + (r * cols + c) * Z);
        cs[r * cols + c] = static_cast<real>(r);
      }
    lat.z.from_host(z);
    lat.c.from_host(cs);
    lat.assemble();
    auto imgs = generate_images(lat.zc);
    io::write_png_grid(path, imgs, C * cols, image::dims[0], image::dims[1], image::dims[2], C, cols);
  }

  void save_checkpoint(const fs::path& path) {
    io::safetensors_writer w;
    std::vector<std::vector<real>> keep;
    m_.for_each_state([&](const std::string& name, real* p, std::size_t n, const std::vector<std::size_t>& dims) {
      keep.emplace_back(n);
      device_memory<Device>::to_host(keep.back().data(), p, n * sizeof(real));
      w.add(name, keep.back(), dims);
    });
    w.set_metadata("format", "cdgan-checkpoint-1");
    w.set_metadata("preset", s_.p.name);
    w.set_metadata("network", s_.p.network);
    w.set_metadata("objective", s_.p.objective);
    w.set_metadata("step", std::to_string(m_.steps()));
    if (pretrained_) w.set_metadata("e_pretrained", "true");
    w.set_metadata("rng_seed", std::to_string(m_.random().seed()));
    w.set_metadata("rng_calls", std::to_string(m_.random().calls()));
    // G, D and E, then E_e's own optimiser where the run has one (--e-hold-content)
    std::string steps = fmt::format("{} {} {}", m_.g_optimiser().step_count(), m_.d_optimiser().step_count(),
                                    m_.e_optimiser().step_count());
    if (auto* ee = m_.e_content_optimiser()) steps += fmt::format(" {}", ee->step_count());
    w.set_metadata("optim_steps", steps);
    w.save(path);
  }

  void load_checkpoint(const fs::path& path) {
    if (!fs::exists(path))
      throw io::io_error(path, "no checkpoint to resume from (train first, or give --checkpoint)");
    const auto f = io::load_safetensors(path);
    auto meta = [&](const char* k) -> std::string {
      auto it = f.metadata.find(k);
      if (it == f.metadata.end()) throw io::io_error(path, std::string("checkpoint metadata lacks '") + k + "'");
      return it->second;
    };
    if (meta("network") != s_.p.network)
      throw io::io_error(path, "checkpoint of network '" + meta("network") + "' (preset " + meta("preset") +
                                   "), but preset " + s_.p.name + " builds network '" + s_.p.network + "'");
    if (auto it = f.metadata.find("objective"); it != f.metadata.end() && it->second != s_.p.objective)
      throw io::io_error(path, "checkpoint trained with objective '" + it->second + "' (preset " + meta("preset") +
                                   "), but preset " + s_.p.name + " uses '" + s_.p.objective + "'");
    std::size_t loaded = 0;
    m_.for_each_state([&](const std::string& name, real* p, std::size_t n, const std::vector<std::size_t>& dims) {
      auto it = f.tensors.find(name);
      if (it == f.tensors.end()) throw io::io_error(path, "checkpoint lacks tensor '" + name + "'");
      if (it->second.shape != dims)
        throw io::io_error(path, "tensor '" + name + "' has shape " + io::detail::shape_text(it->second.shape) +
                                     " in the checkpoint, the network needs " + io::detail::shape_text(dims));
      auto v = it->second.values<real>();
      device_memory<Device>::from_host(p, v.data(), n * sizeof(real));
      ++loaded;
    });
    m_.set_steps(std::stoull(meta("step")));
    pretrained_ = f.metadata.count("e_pretrained") > 0;
    m_.random().set_state(std::stoull(meta("rng_seed")), std::stoull(meta("rng_calls")));
    std::uint64_t gs = 0, ds = 0, es = 0, ees = 0;
    const int counts = std::sscanf(meta("optim_steps").c_str(), "%lu %lu %lu %lu", &gs, &ds, &es, &ees);
    if (counts < 3) throw io::io_error(path, "checkpoint metadata 'optim_steps' is '" + meta("optim_steps") + "', expected 3 or 4 step counts");
    m_.g_optimiser().set_step_count(gs);
    m_.d_optimiser().set_step_count(ds);
    m_.e_optimiser().set_step_count(es);
    if (auto* ee = m_.e_content_optimiser())
      // checkpoints written before E_e's count was kept: E_e stepped once per iteration of the hold
      ee->set_step_count(counts == 4 ? ees : std::min<std::uint64_t>(m_.steps(), s_.p.model.e_hold));
    fmt::print("resumed from {} at step {} ({} tensors)\n", path.string(), m_.steps(), loaded);
  }

  struct quality_state {
    classifier_t clf;
    eval::real_reference ref;
    eval::classifier_cache_report cache;
    eval::quality_report floor;  // real training images scored as if generated
    fs::path path;
    double seconds = 0;
  };

  settings s_;
  model_t m_;
  data::shuffling_batch_loader loader_;
  bool pretrained_ = false;  // E pretrained (--e-pretrain) in this run or in the checkpoint it resumed
  std::vector<real> last_features_;
  std::unique_ptr<quality_state> q_;
};

template <class Nets, class Device>
int dispatch_command(const settings& s) {
  auto r = std::make_unique<run<Nets, Device>>(s);
  if (s.command == "sample") return r->sample();
  if (s.command == "eval") return r->eval();
  return r->train();
}

template <class Nets>
int dispatch_device(const settings& s) {
  if (s.device == "cpu") return dispatch_command<Nets, cpu>(s);
#if defined(CDGAN_WITH_CUDA) && defined(__CUDACC__)
  if (s.device == "cuda") return dispatch_command<Nets, cuda>(s);
#endif
  throw value_error("cdgan-train: --device " + s.device + " is not available in this build (cpu" +
#if defined(CDGAN_WITH_CUDA) && defined(__CUDACC__)
                    std::string(", cuda") +
#else
                    std::string("; for cuda build the cdgan-train-cuda target with nvcc") +
#endif
                    ")");
}

int dispatch(const settings& s) {
  const auto& n = s.p.network;
  if (s.p.objective != "cd-gan" && n != "mnist-z30-f10")
    throw value_error("cdgan-train: objective '" + s.p.objective + "' needs a network whose E_f gives C logits (mnist-z30-f10)");
  if (n == "mnist-z30-f40") return dispatch_device<presets::mnist_nets<30, 10, 40>>(s);
  if (n == "mnist-z30-f120") return dispatch_device<presets::mnist_nets<30, 10, 120>>(s);
  if (n == "fashion-z40-f50") return dispatch_device<presets::mnist_nets<40, 10, 50>>(s);
  if (n == "dsprites-z52-f40") return dispatch_device<presets::dsprites_nets<52, 3, 40>>(s);
  if (n == "mnist-z30-f10") {  // the baselines: E_f gives C = 10 logits
    using nets = presets::mnist_nets<30, 10, 10>;
    if (s.p.objective == "clustergan") return dispatch_device<presets::with_objective<nets, objective::cluster_gan<>>>(s);
    if (s.p.objective == "infogan") return dispatch_device<presets::with_objective<nets, objective::info_gan<>>>(s);
    throw value_error("cdgan-train: network '" + n + "' is compiled for the objectives clustergan and infogan only, not '" +
                      s.p.objective + "'");
  }
  throw value_error("cdgan-train: no compiled network '" + n + "'");
}

/// Binds a flag to a field of the preset: the flag overrides the preset only when it was given.
class overrides {
 public:
  template <class T, class Get>
  void add(CLI::App& app, const std::string& flag, Get get, const std::string& help) {
    auto v = std::make_shared<T>();
    auto* opt = app.add_option(flag, *v, help);
    apply_.push_back([opt, v, get](presets::preset& p) {
      if (opt->count()) get(p) = *v;
    });
  }
  void apply(presets::preset& p) const {
    for (auto& f : apply_) f(p);
  }

 private:
  std::vector<std::function<void(presets::preset&)>> apply_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cdgan-train: Contrastive Disentanglement GANs (Pan et al., arXiv 2103.03636)"};
  app.set_config("--config", "", "read settings from a TOML or INI file (flags given on the command line win)");
  app.require_subcommand(1);
  settings s;
  std::string preset_name = "mnist", positives;
  overrides ov;
  std::vector<std::string> names;
  for (auto& p : presets::all()) names.push_back(p.name);
  for (const char* cmd : {"train", "sample", "eval"}) {
    auto* sub = app.add_subcommand(cmd, std::string(cmd) == "train"   ? "train a model (checkpoints, grids, metrics.jsonl)"
                                        : std::string(cmd) == "sample" ? "write sample grids from a checkpoint"
                                                                       : "score a checkpoint on the test split");
    sub->add_option("--preset", preset_name, "preset")->check(CLI::IsMember(names));
    sub->add_option("--data-dir", s.data_dir, "dataset directory (default: data/<dataset> or the Debian package)");
    sub->add_option("--out", s.out, "output directory (default: runs/<preset>)");
    sub->add_option("--checkpoint", s.checkpoint, "checkpoint file (default: <out>/checkpoint.safetensors)");
    sub->add_option("--device", s.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
    sub->add_option("--threads", s.threads, "CPU threads (default: all cores)")->check(CLI::Range(0, 1024));
    sub->add_option("--eval-samples", s.eval_samples, "test images to score, evenly spaced over the split (0: all)");
    sub->add_option("--kmeans-restarts", s.kmeans_restarts, "k-means restarts (best inertia wins)")->check(CLI::Range(1, 1000));
    if (std::string(cmd) != "sample")
      sub->add_option("--eval-features", s.eval_features,
                      "features to cluster: normalized (E_f / |E_f|, default; what L_c compares) or raw")
          ->check(CLI::IsMember({"normalized", "raw"}));
    ov.add<std::uint64_t>(*sub, "--seed", [](presets::preset& p) -> std::uint64_t& { return p.model.seed; }, "random seed");
    ov.add<real>(*sub, "--sigma", [](presets::preset& p) -> real& { return p.model.sigma; }, "std of z");
    if (std::string(cmd) != "sample") {
      sub->add_option("--quality-samples", s.quality_samples,
                      "generated images per class for the classifier Fréchet distance / diversity / consistency (0: off)")
          ->check(CLI::Range(0, 100000));
      sub->add_option("--classifier", s.classifier,
                      "cached quality classifier (default: <out>/../classifiers/<dataset>-<budget>-seed<s>.safetensors)");
      sub->add_option("--classifier-iterations", s.classifier_iterations,
                      "training batches of the quality classifier (0: the library's default, 2 epochs; dSprites 4000)");
      sub->add_option("--classifier-seed", s.classifier_seed, "seed of the quality classifier");
    }
    if (std::string(cmd) == "train") {
      sub->add_flag("--resume", s.resume, "continue from the checkpoint");
      sub->add_option("--data-on-device", s.data_on_device,
                      "keep the training set in device memory and gather batches there: auto (on for cuda when it "
                      "fits in 4 GiB), on, off")
          ->check(CLI::IsMember({"auto", "on", "off"}));
      sub->add_option("--cuda-graph", s.cuda_graph,
                      "with --device cuda: record the training step as a CUDA graph once and replay it (on, the "
                      "default) or run it kernel by kernel (off); the same results either way")
          ->check(CLI::IsMember({"on", "off"}));
      sub->add_option("--eval-every", s.eval_every, "iterations between evaluations and checkpoints")->check(CLI::Range(1, 100000000));
      sub->add_option("--log-every", s.log_every, "iterations between log lines")->check(CLI::Range(1, 100000000));
      ov.add<std::size_t>(*sub, "--iterations", [](presets::preset& p) -> std::size_t& { return p.iterations; }, "total iterations");
      ov.add<std::size_t>(*sub, "--batch-d", [](presets::preset& p) -> std::size_t& { return p.model.batch_d; }, "D batch");
      ov.add<std::size_t>(*sub, "--batch-g", [](presets::preset& p) -> std::size_t& { return p.model.batch_g; }, "G batch");
      ov.add<std::size_t>(*sub, "--batch-e", [](presets::preset& p) -> std::size_t& { return p.model.batch_e; }, "E batch");
      ov.add<std::size_t>(*sub, "--n-critic", [](presets::preset& p) -> std::size_t& { return p.model.n_critic; }, "D steps per iteration");
      ov.add<real>(*sub, "--beta1", [](presets::preset& p) -> real& { return p.model.beta1; }, "weight of L_c (0: ablation)");
      ov.add<std::uint64_t>(*sub, "--beta1-start", [](presets::preset& p) -> std::uint64_t& { return p.model.beta1_start; },
                            "iterations with L_c off before it is switched on (not in the paper; default 0)");
      ov.add<std::uint64_t>(*sub, "--beta1-ramp", [](presets::preset& p) -> std::uint64_t& { return p.model.beta1_ramp; },
                            "iterations over which beta1 rises linearly to its value after --beta1-start (default 0)");
      ov.add<real>(*sub, "--beta2", [](presets::preset& p) -> real& { return p.model.beta2; }, "weight of L_z");
      ov.add<real>(*sub, "--beta2-late", [](presets::preset& p) -> real& { return p.model.beta2_late; },
                   "weight of L_z from --beta2-late-start on (not in the paper; default 0)");
      ov.add<std::uint64_t>(*sub, "--beta2-late-start", [](presets::preset& p) -> std::uint64_t& { return p.model.beta2_late_start; },
                            "iteration from which L_z weighs --beta2-late instead of --beta2 (0: never; default 0)");
      ov.add<real>(*sub, "--tau", [](presets::preset& p) -> real& { return p.model.tau; }, "temperature of L_c (> 0)");
      ov.add<real>(*sub, "--gp-lambda", [](presets::preset& p) -> real& { return p.model.gp_lambda; }, "gradient penalty weight");
      ov.add<real>(*sub, "--lr", [](presets::preset& p) -> real& { return p.lr; }, "Adam learning rate");
      ov.add<real>(*sub, "--lr-e", [](presets::preset& p) -> real& { return p.lr_e; },
                   "E's learning rate in the GAN phase (default 0: --lr; the pretraining uses --lr; not in the paper)");
      ov.add<real>(*sub, "--adam-beta1", [](presets::preset& p) -> real& { return p.adam_beta1; }, "Adam beta1");
      ov.add<real>(*sub, "--adam-beta2", [](presets::preset& p) -> real& { return p.adam_beta2; }, "Adam beta2");
      ov.add<real>(*sub, "--weight-decay", [](presets::preset& p) -> real& { return p.weight_decay; }, "L2 on G and E");
      ov.add<real>(*sub, "--init-std", [](presets::preset& p) -> real& { return p.init_std; }, "N(0, std) init (0: PyTorch default)");
      ov.add<double>(*sub, "--label-fraction", [](presets::preset& p) -> double& { return p.label_fraction; }, "share of labelled training images, in (0, 1]");
      ov.add<std::size_t>(*sub, "--labels-per-class", [](presets::preset& p) -> std::size_t& { return p.labels_per_class; }, "labelled anchors per class per step");
      ov.add<bool>(*sub, "--two-views", [](presets::preset& p) -> bool& { return p.model.two_views; }, "contrast a random resized crop of each generated (and labelled real) image too (authors' code)");
      ov.add<std::uint64_t>(*sub, "--two-views-start", [](presets::preset& p) -> std::uint64_t& { return p.model.two_views_start; },
                            "with --two-views: iterations with one view before the second is added (not in the paper; default 0)");
      ov.add<real>(*sub, "--real-contrast", [](presets::preset& p) -> real& { return p.model.real_contrast; },
                   "weight of an instance contrast of real images (a crop as positive) in the E step (not in the paper; default 0)");
      ov.add<real>(*sub, "--real-clustering", [](presets::preset& p) -> real& { return p.model.real_clustering; },
                   "weight of an information-maximisation term in the E step: real images assigned confidently and evenly to the codes' prototypes (not in the paper; default 0)");
      ov.add<real>(*sub, "--real-consistency", [](presets::preset& p) -> real& { return p.model.real_consistency; },
                   "with --real-clustering: weight of a consistency term, each real image's assignment against that of an affine distortion of it (not in the paper; default 0)");
      ov.add<real>(*sub, "--affine-degrees", [](presets::preset& p) -> real& { return p.model.affine_degrees; },
                   "with --real-consistency: largest rotation of the distortion, degrees (default 15)");
      ov.add<real>(*sub, "--affine-scale", [](presets::preset& p) -> real& { return p.model.affine_scale; },
                   "with --real-consistency: scale within 1 +- this (default 0.1)");
      ov.add<real>(*sub, "--affine-shift", [](presets::preset& p) -> real& { return p.model.affine_shift; },
                   "with --real-consistency: shift within +- this fraction of the side (default 0.08)");
      ov.add<bool>(*sub, "--real-anchors", [](presets::preset& p) -> bool& { return p.model.real_anchors; },
                   "few labels: the labelled real images are anchors of L_c too, as in the authors' code (default false: Eq. 7)");
      ov.add<std::size_t>(*sub, "--e-pretrain", [](presets::preset& p) -> std::size_t& { return p.e_pretrain; },
                          "E updates on real images alone before iteration 0, a crop as second view: labelled batches (supervised contrast) or, without labels, instance contrast; checkpointed at step 0, so --resume does not repeat it (default 0)");
      ov.add<std::uint64_t>(*sub, "--e-hold", [](presets::preset& p) -> std::uint64_t& { return p.model.e_hold; },
                            "iterations at the start without E updates, as the authors' chain_step (default 0)");
      ov.add<bool>(*sub, "--e-hold-content", [](presets::preset& p) -> bool& { return p.model.e_hold_content; },
                   "with --e-hold: train the content head E_e alone on L_z during the hold, trunk and E_f fixed (not in the paper; default false)");
      ov.add<real>(*sub, "--crop-min-scale", [](presets::preset& p) -> real& { return p.model.crop_min_scale; }, "smallest crop area share for --two-views");
      sub->add_option("--positives", positives, "contrastive form: all (SupCon) or one (Eq. 3)")->check(CLI::IsMember({"all", "one"}));
    }
    if (std::string(cmd) == "sample") {
      sub->add_flag("--npy", s.npy, "also write images.npy and c.npy");
      sub->add_option("--per-class", s.samples_per_class, "images per class for --npy");
    }
    if (std::string(cmd) == "eval") sub->add_flag("--features-npy", s.features_npy, "write features.npy (the clustered features, see --eval-features) and labels.npy");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    s.command = app.get_subcommands().front()->get_name();
    s.p = presets::find(preset_name);
    ov.apply(s.p);
    if (positives == "one") s.p.model.positives = losses::positives::one;
    if (positives == "all") s.p.model.positives = losses::positives::all;
    s.p.model.cuda_graph = s.cuda_graph == "on";
    if (s.p.label_fraction < 0 || s.p.label_fraction > 1)
      throw value_error(fmt::format("cdgan-train: --label-fraction must be in (0, 1], got {}", s.p.label_fraction));
    if (s.p.label_fraction > 0 && s.p.labels_per_class == 0) s.p.labels_per_class = 1;
    if (!(s.p.lr_e >= 0))
      throw value_error(fmt::format("cdgan-train: --lr-e must be 0 (same as --lr) or positive, got {}", s.p.lr_e));
    if (s.quality_samples == 1)
      throw value_error("cdgan-train: --quality-samples must be 0 (off) or at least 2 images per class, got 1");
    s.p.model.validate();
    if (s.threads > 0) set_num_threads(s.threads);
    return dispatch(s);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
}
