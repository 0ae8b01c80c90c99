#pragma once
/// @file
/// Seeded batch loaders: an epoch-wise shuffling loader, a class-balanced labelled subset, and a
/// class-balanced batch sampler over that subset (the few-labels setting of CD-GAN, Eq. 7).
///
/// What this represents:
///   - `shuffling_batch_loader(n, batch_size, seed, drop_last)`: walks a fresh random permutation
///     of [0, n) each epoch and hands out its consecutive slices as batches. The permutation of
///     epoch e depends only on (seed, e), so `set_epoch(e)` resumes a run exactly.
///     `next_indices()` returns the next batch's sample indices; `next_batch(source, images,
///     labels)` also gathers the samples of any `sample_source` into caller-provided buffers.
///   - `select_labelled_subset(labels, fraction, seed)`: a fixed, class-balanced set of
///     round(fraction * N) sample indices (at least one per class): every class gets the same
///     number of samples, q = m / C, and m mod C classes (chosen with the seed) get one more; a
///     class with fewer samples than its share gives all it has and the shortfall goes, one at a
///     time, to the classes that still have samples. fraction = 1 selects everything.
///   - `class_balanced_sampler(subset, labels, seed)`: draws batches from the subset with every
///     class equally represented (batch_size / C per class; the remainder classes rotate from one
///     batch to the next), walking a per-class seeded permutation and reshuffling a class when its
///     samples are used up.
/// Requires: n >= 1 and 1 <= batch_size (and batch_size <= n when drop_last); fraction finite and
///   in (0, 1]; labels of the subset < num_classes; output buffers of at least
///   batch_size * sample_size floats (and batch_size labels).
/// Ensures: every result is a function of the arguments and the seed only (SplitMix64, no
///   std::uniform_int_distribution), identical across platforms. Each epoch of
///   `shuffling_batch_loader` visits every index exactly once (drop_last = false) or all but the
///   last n mod batch_size of that epoch's permutation (drop_last = true). Invalid arguments throw
///   `argument_error` naming the argument, the accepted range and the value received.

#include <cdgan/data/dataset.hpp>
#include <cdgan/data/error.hpp>
#include <cdgan/data/random.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace cdgan::data {

namespace detail {

template <sample_source S, std::integral L>
void gather(const S& source, std::span<const std::size_t> indices, std::span<float> images,
            std::span<L> labels) {
    const std::size_t d = source.sample_size();
    if (images.size() < indices.size() * d) {
        throw argument_error("gather: the image buffer needs " + std::to_string(indices.size() * d) +
                             " floats (" + std::to_string(indices.size()) + " samples x " +
                             std::to_string(d) + "), got " + std::to_string(images.size()));
    }
    if (!labels.empty() && labels.size() < indices.size()) {
        throw argument_error("gather: the label buffer needs " + std::to_string(indices.size()) +
                             " entries, got " + std::to_string(labels.size()));
    }
    for (std::size_t k = 0; k < indices.size(); ++k) {
        source.copy_sample(indices[k], images.subspan(k * d, d));
        if (!labels.empty()) labels[k] = static_cast<L>(source.label(indices[k]));
    }
}

}  // namespace detail

/// Copies the listed samples of `source` into `images` (sample after sample) and, when `labels`
/// is not empty, their labels into `labels`.
template <sample_source S, std::integral L = std::int64_t>
void gather(const S& source, std::span<const std::size_t> indices, std::span<float> images,
            std::span<L> labels = {}) {
    detail::gather(source, indices, images, labels);
}

/// Epoch-wise shuffling batch loader (see the file comment).
class shuffling_batch_loader {
public:
    shuffling_batch_loader(std::size_t dataset_size, std::size_t batch_size, std::uint64_t seed,
                           bool drop_last = true)
        : n_(dataset_size), batch_(batch_size), seed_(seed), drop_last_(drop_last) {
        if (n_ == 0) throw argument_error("shuffling_batch_loader: dataset_size must be >= 1, got 0");
        if (batch_ == 0) throw argument_error("shuffling_batch_loader: batch_size must be >= 1, got 0");
        if (drop_last_ && batch_ > n_) {
            throw argument_error("shuffling_batch_loader: batch_size must be <= dataset_size (" +
                                 std::to_string(n_) + ") when drop_last is set, got " +
                                 std::to_string(batch_));
        }
        set_epoch(0);
    }

    [[nodiscard]] std::size_t dataset_size() const noexcept { return n_; }
    [[nodiscard]] std::size_t batch_size() const noexcept { return batch_; }
    /// Batches per epoch: n / batch_size (drop_last) or ceil(n / batch_size).
    [[nodiscard]] std::size_t batches_per_epoch() const noexcept {
        return drop_last_ ? n_ / batch_ : (n_ + batch_ - 1) / batch_;
    }
    /// Epoch of the next batch (starts at 0).
    [[nodiscard]] std::size_t epoch() const noexcept { return epoch_; }
    /// Batch number of the next batch inside its epoch.
    [[nodiscard]] std::size_t batch_in_epoch() const noexcept { return pos_ / batch_; }
    /// The permutation of the epoch of the next batch.
    [[nodiscard]] std::span<const std::size_t> permutation() const noexcept { return perm_; }

    /// Jumps to the start of epoch e (its permutation depends only on the seed and e).
    void set_epoch(std::size_t e) {
        epoch_ = e;
        pos_ = 0;
        perm_.resize(n_);
        std::iota(perm_.begin(), perm_.end(), std::size_t{0});
        splitmix64 g(mix_seed(seed_, static_cast<std::uint64_t>(e)));
        shuffle(g, std::span<std::size_t>(perm_));
    }

    /// Indices of the next batch; moves on to the next epoch when this one is exhausted. The span
    /// stays valid until the next call. Its size is batch_size, except for the last batch of an
    /// epoch when drop_last is false.
    std::span<const std::size_t> next_indices() {
        const std::size_t take = std::min(batch_, n_ - pos_);
        current_.assign(perm_.begin() + static_cast<std::ptrdiff_t>(pos_),
                        perm_.begin() + static_cast<std::ptrdiff_t>(pos_ + take));
        pos_ += take;
        const std::size_t left = n_ - pos_;
        if (left == 0 || (drop_last_ && left < batch_)) set_epoch(epoch_ + 1);
        return current_;
    }

    /// Gathers the next batch of `source` into `images` (and `labels` if not empty); returns the
    /// indices. Requires: source.size() == dataset_size().
    template <sample_source S, std::integral L = std::int64_t>
    std::span<const std::size_t> next_batch(const S& source, std::span<float> images,
                                            std::span<L> labels = {}) {
        if (source.size() != n_) {
            throw argument_error("shuffling_batch_loader: source has " +
                                 std::to_string(source.size()) + " samples, expected " +
                                 std::to_string(n_));
        }
        auto idx = next_indices();
        detail::gather(source, idx, images, labels);
        return idx;
    }

private:
    std::size_t n_;
    std::size_t batch_;
    std::uint64_t seed_;
    bool drop_last_;
    std::size_t epoch_ = 0;
    std::size_t pos_ = 0;
    std::vector<std::size_t> perm_;
    std::vector<std::size_t> current_;
};

namespace detail {

template <std::integral L>
std::size_t infer_num_classes(std::span<const L> labels) {
    std::size_t c = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if constexpr (std::is_signed_v<L>) {
            if (labels[i] < 0) {
                throw argument_error("labels: label of sample " + std::to_string(i) + " is " +
                                     std::to_string(labels[i]) + ", expected >= 0");
            }
        }
        c = std::max(c, static_cast<std::size_t>(labels[i]) + 1);
    }
    return c;
}

inline std::string format_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

inline void check_fraction(double fraction) {
    if (!(std::isfinite(fraction) && fraction > 0.0 && fraction <= 1.0)) {
        throw argument_error("select_labelled_subset: fraction must be in (0, 1], got " +
                             format_number(fraction));
    }
}

}  // namespace detail

/// Fixed class-balanced subset of round(fraction * N) indices (sorted ascending). See the file
/// comment. `num_classes` = 0 means max(label) + 1.
template <std::integral L>
std::vector<std::size_t> select_labelled_subset(std::span<const L> labels, double fraction,
                                                std::uint64_t seed, std::size_t num_classes = 0) {
    detail::check_fraction(fraction);
    const std::size_t n = labels.size();
    if (n == 0) throw argument_error("select_labelled_subset: labels is empty");
    const std::size_t inferred = detail::infer_num_classes(labels);
    if (num_classes == 0) num_classes = inferred;
    if (inferred > num_classes) {
        throw argument_error("select_labelled_subset: a label is " + std::to_string(inferred - 1) +
                             ", expected < num_classes = " + std::to_string(num_classes));
    }
    std::vector<std::vector<std::size_t>> by_class(num_classes);
    for (std::size_t i = 0; i < n; ++i) by_class[static_cast<std::size_t>(labels[i])].push_back(i);
    std::size_t present = 0;
    for (const auto& v : by_class) present += v.empty() ? 0 : 1;

    std::size_t m = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(n)));
    m = std::clamp<std::size_t>(m, 1, n);
    if (m < present) {
        throw argument_error("select_labelled_subset: fraction " + detail::format_number(fraction) + " of " +
                             std::to_string(n) + " samples gives " + std::to_string(m) +
                             " labelled samples, expected at least one per class (" +
                             std::to_string(present) + " classes)");
    }
    splitmix64 g(seed);
    // Quotas: q each, plus one for m mod C classes picked at random.
    std::vector<std::size_t> order(num_classes);
    std::iota(order.begin(), order.end(), std::size_t{0});
    shuffle(g, std::span<std::size_t>(order));
    std::vector<std::size_t> quota(num_classes, 0);
    // Distribute m over the classes that have samples, respecting their sizes (water filling).
    std::size_t remaining = m;
    for (;;) {
        std::size_t open = 0;
        for (std::size_t c = 0; c < num_classes; ++c) open += quota[c] < by_class[c].size() ? 1 : 0;
        if (remaining == 0 || open == 0) break;
        const std::size_t each = remaining / open;
        std::size_t extra = remaining % open;
        for (std::size_t k = 0; k < num_classes; ++k) {
            const std::size_t c = order[k];
            const std::size_t room = by_class[c].size() - quota[c];
            if (room == 0) continue;
            std::size_t want = each;
            if (extra > 0) {
                ++want;
                --extra;
            }
            const std::size_t give = std::min(want, room);
            quota[c] += give;
            remaining -= give;
        }
    }
    std::vector<std::size_t> out;
    out.reserve(m);
    for (std::size_t c = 0; c < num_classes; ++c) {
        auto& v = by_class[c];
        splitmix64 gc(mix_seed(seed, 0x100000000ULL + c));
        // Partial Fisher-Yates: the first quota[c] entries are a uniform random subset.
        for (std::size_t i = 0; i < quota[c]; ++i) {
            const auto j = i + static_cast<std::size_t>(uniform_below(gc, v.size() - i));
            std::swap(v[i], v[j]);
        }
        out.insert(out.end(), v.begin(), v.begin() + static_cast<std::ptrdiff_t>(quota[c]));
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// Convenience overload for containers (std::vector<std::uint8_t>, ...).
template <class R>
    requires std::integral<typename R::value_type>
std::vector<std::size_t> select_labelled_subset(const R& labels, double fraction,
                                                std::uint64_t seed, std::size_t num_classes = 0) {
    return select_labelled_subset(std::span<const typename R::value_type>(labels), fraction, seed,
                                  num_classes);
}

/// Class-balanced batch sampler over a labelled subset (see the file comment).
class class_balanced_sampler {
public:
    /// `subset`: sample indices (e.g. from select_labelled_subset); `labels`: labels of the whole
    /// dataset, indexed by sample index; `num_classes` = 0 means max(label over subset) + 1.
    /// Classes with no sample in the subset are skipped.
    template <std::integral L>
    class_balanced_sampler(std::span<const std::size_t> subset, std::span<const L> labels,
                           std::uint64_t seed, std::size_t num_classes = 0)
        : seed_(seed) {
        if (subset.empty()) throw argument_error("class_balanced_sampler: subset is empty");
        std::size_t inferred = 0;
        for (auto i : subset) {
            if (i >= labels.size()) {
                throw argument_error("class_balanced_sampler: subset index " + std::to_string(i) +
                                     " out of range, expected < " + std::to_string(labels.size()));
            }
            if constexpr (std::is_signed_v<L>) {
                if (labels[i] < 0) {
                    throw argument_error("class_balanced_sampler: label of sample " +
                                         std::to_string(i) + " is negative");
                }
            }
            inferred = std::max(inferred, static_cast<std::size_t>(labels[i]) + 1);
        }
        if (num_classes == 0) num_classes = inferred;
        if (inferred > num_classes) {
            throw argument_error("class_balanced_sampler: a label is " +
                                 std::to_string(inferred - 1) + ", expected < num_classes = " +
                                 std::to_string(num_classes));
        }
        std::vector<std::vector<std::size_t>> by_class(num_classes);
        for (auto i : subset) by_class[static_cast<std::size_t>(labels[i])].push_back(i);
        for (std::size_t c = 0; c < num_classes; ++c) {
            if (by_class[c].empty()) continue;
            classes_.push_back(c);
            pools_.push_back(std::move(by_class[c]));
        }
        pos_.assign(pools_.size(), 0);
        rounds_.assign(pools_.size(), 0);
        for (std::size_t k = 0; k < pools_.size(); ++k) reshuffle(k);
    }

    /// Container convenience overload.
    template <class R>
        requires std::integral<typename R::value_type>
    class_balanced_sampler(std::span<const std::size_t> subset, const R& labels,
                           std::uint64_t seed, std::size_t num_classes = 0)
        : class_balanced_sampler(subset, std::span<const typename R::value_type>(labels), seed,
                                 num_classes) {}

    /// Classes that have samples in the subset, ascending.
    [[nodiscard]] std::span<const std::size_t> classes() const noexcept { return classes_; }

    /// Next batch of `batch_size` indices, grouped by class (class after class). Valid until the
    /// next call.
    std::span<const std::size_t> next_indices(std::size_t batch_size) {
        if (batch_size == 0) throw argument_error("class_balanced_sampler: batch_size must be >= 1");
        const std::size_t c = pools_.size();
        const std::size_t each = batch_size / c;
        const std::size_t extra = batch_size % c;
        batch_.clear();
        for (std::size_t k = 0; k < c; ++k) {
            // classes (rotate_ + 0 .. extra-1) mod C get one more this batch
            const std::size_t rel = (k + c - rotate_ % c) % c;
            const std::size_t take = each + (rel < extra ? 1 : 0);
            for (std::size_t t = 0; t < take; ++t) batch_.push_back(draw(k));
        }
        rotate_ = (rotate_ + extra) % c;
        return batch_;
    }

    /// Gathers the next batch of `source` (indexed like `labels`) into the buffers.
    template <sample_source S, std::integral L = std::int64_t>
    std::span<const std::size_t> next_batch(const S& source, std::size_t batch_size,
                                            std::span<float> images, std::span<L> labels = {}) {
        auto idx = next_indices(batch_size);
        detail::gather(source, idx, images, labels);
        return idx;
    }

private:
    void reshuffle(std::size_t k) {
        splitmix64 g(mix_seed(mix_seed(seed_, classes_[k]), rounds_[k]++));
        shuffle(g, std::span<std::size_t>(pools_[k]));
        pos_[k] = 0;
    }
    std::size_t draw(std::size_t k) {
        if (pos_[k] == pools_[k].size()) reshuffle(k);
        return pools_[k][pos_[k]++];
    }

    std::uint64_t seed_;
    std::vector<std::size_t> classes_;
    std::vector<std::vector<std::size_t>> pools_;
    std::vector<std::size_t> pos_;
    std::vector<std::uint64_t> rounds_;
    std::size_t rotate_ = 0;
    std::vector<std::size_t> batch_;
};

}  // namespace cdgan::data
