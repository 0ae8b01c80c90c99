#pragma once
/// @file
/// Evaluation metrics of CD-GAN (Section 4 of the paper, following ClusterGAN): k-means on encoder
/// features, cluster accuracy with Hungarian matching, purity, NMI, ARI; the consistency of
/// generated images with their class code; Fréchet distance between Gaussian fits of two feature
/// sets; intra-class diversity.
///
/// What this represents (definitions in docs/evaluation.md):
///   - `contingency(truth, pred)`     counts n_ij of samples with true class i and cluster j; label
///     values may be any integers (they are mapped to 0..K-1 in ascending order of value);
///   - `hungarian(cost, rows, cols)`  minimum-cost assignment (Kuhn-Munkres with potentials,
///     O(n^2 m)); rectangular matrices allowed;
///   - `match_clusters`, `cluster_accuracy` (ACC)   best one-to-one cluster -> class map and the
///     share of samples it gets right (as scipy.optimize.linear_sum_assignment on the contingency
///     table);
///   - `purity`                       sum over clusters of their majority-class count, over N;
///   - `nmi`                          mutual information over the arithmetic mean of the two
///     entropies (scikit-learn >= 0.22 `normalized_mutual_info_score` default, with its special
///     cases: both single-cluster -> 1, MI = 0 -> 0);
///   - `ari`                          adjusted Rand index (scikit-learn `adjusted_rand_score`);
///   - `kmeans(data, n, d, options)`  Lloyd's k-means with greedy k-means++ seeding (as
///     scikit-learn: 2 + floor(ln k) candidates per centre), `n_init` seeded restarts keeping the
///     lowest inertia, `max_iter`, `tol` relative to the mean feature variance (as scikit-learn);
///     deterministic for a given seed;
///   - `consistency(pred, c)`         share of generated images whose predicted class is the class
///     matched (Hungarian) to their code c;
///   - `feature_statistics`, `frechet_distance`  mean and unbiased covariance of a feature set and
///     d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1^1/2 S2 S1^1/2)^1/2 ) (eigen-decompositions
///     of symmetric matrices, negative eigenvalues from round-off clamped to 0);
///   - `mean_pairwise_distance`, `intra_class_diversity`  mean L2 distance over all unordered pairs
///     of a set (O(n^2 d)), per class and averaged over classes.
/// Requires: label sequences are random-access ranges of integers of equal, non-zero length;
///   feature matrices are row-major n x d floats (`data.size() == n * d`); k-means needs
///   1 <= k <= n. Uses Eigen 3.4. Include Eigen as a system directory (`-isystem
///   /usr/include/eigen3`; CMake's Eigen3::Eigen target does so): at -O2, GCC 12 reports a false
///   -Wmaybe-uninitialized inside Eigen's tridiagonalisation (SelfAdjointEigenSolver) otherwise.
/// Ensures: results agree with scikit-learn 1.2 / scipy to ~1e-12 (checked against fixtures in
///   tests/fixtures/); invalid inputs throw `metric_error` naming the argument, the expected value
///   and the one received.

#include <cdgan/data/random.hpp>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <map>
#include <numeric>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cdgan::eval {

/// Invalid input to a metric.
class metric_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A random-access, sized range of integer labels (std::vector<int>, std::span<const uint8_t>...).
template <class R>
concept label_range = requires(const R& r, std::size_t i) {  // spelled out: nvcc 13 rejects std::ranges concepts here
    { r.size() } -> std::convertible_to<std::size_t>;
    requires std::integral<std::remove_cvref_t<decltype(r[i])>>;
};

/// Value meaning "not assigned" in assignments and mappings.
inline constexpr std::size_t unassigned = std::numeric_limits<std::size_t>::max();

// ---------------------------------------------------------------------------------------------
// Label encoding and contingency tables
// ---------------------------------------------------------------------------------------------

/// Labels mapped to codes 0..K-1 (ascending order of value); `values[code]` is the original value.
struct encoded_labels {
    std::vector<std::size_t> codes;
    std::vector<std::int64_t> values;
};

/// Encodes any integer label range.
template <label_range R>
encoded_labels encode_labels(const R& labels) {
    encoded_labels e;
    const auto n = static_cast<std::size_t>(std::ranges::size(labels));
    std::vector<std::int64_t> raw(n);
    std::size_t i = 0;
    for (auto v : labels) raw[i++] = static_cast<std::int64_t>(v);
    e.values = raw;
    std::sort(e.values.begin(), e.values.end());
    e.values.erase(std::unique(e.values.begin(), e.values.end()), e.values.end());
    e.codes.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
        e.codes[k] = static_cast<std::size_t>(
            std::lower_bound(e.values.begin(), e.values.end(), raw[k]) - e.values.begin());
    }
    return e;
}

/// Counts n_ij: rows are the true classes, columns the predicted clusters.
struct contingency_table {
    std::size_t rows = 0;                   ///< number of distinct true labels
    std::size_t cols = 0;                   ///< number of distinct predicted labels
    std::vector<std::int64_t> counts;       ///< rows x cols, row-major
    std::vector<std::int64_t> row_sums;     ///< a_i
    std::vector<std::int64_t> col_sums;     ///< b_j
    std::vector<std::int64_t> row_values;   ///< original true label of each row
    std::vector<std::int64_t> col_values;   ///< original predicted label of each column
    std::int64_t total = 0;                 ///< N
    [[nodiscard]] std::int64_t at(std::size_t i, std::size_t j) const { return counts[i * cols + j]; }
};

namespace detail {

template <label_range A, label_range B>
void check_same_length(const A& a, const B& b, const char* what) {
    const auto na = static_cast<std::size_t>(std::ranges::size(a));
    const auto nb = static_cast<std::size_t>(std::ranges::size(b));
    if (na != nb) {
        throw metric_error(std::string(what) + ": the two label sequences must have the same length, "
                           "got " + std::to_string(na) + " and " + std::to_string(nb));
    }
    if (na == 0) throw metric_error(std::string(what) + ": expected at least one sample, got 0");
}

}  // namespace detail

/// Contingency table of true labels versus predicted labels.
template <label_range A, label_range B>
contingency_table contingency(const A& truth, const B& pred) {
    detail::check_same_length(truth, pred, "contingency");
    const auto t = encode_labels(truth);
    const auto p = encode_labels(pred);
    contingency_table c;
    c.rows = t.values.size();
    c.cols = p.values.size();
    c.counts.assign(c.rows * c.cols, 0);
    c.row_sums.assign(c.rows, 0);
    c.col_sums.assign(c.cols, 0);
    c.row_values = t.values;
    c.col_values = p.values;
    for (std::size_t k = 0; k < t.codes.size(); ++k) {
        ++c.counts[t.codes[k] * c.cols + p.codes[k]];
        ++c.row_sums[t.codes[k]];
        ++c.col_sums[p.codes[k]];
    }
    c.total = static_cast<std::int64_t>(t.codes.size());
    return c;
}

// ---------------------------------------------------------------------------------------------
// Hungarian algorithm
// ---------------------------------------------------------------------------------------------

/// Minimum-cost assignment for a rows x cols cost matrix (row-major). Returns, for each row, the
/// column assigned to it; when rows > cols, rows - cols rows get `unassigned`. Every column is
/// used at most once, and min(rows, cols) pairs are made with the least total cost.
inline std::vector<std::size_t> hungarian(std::span<const double> cost, std::size_t rows,
                                          std::size_t cols) {
    if (cost.size() != rows * cols) {
        throw metric_error("hungarian: cost must have rows x cols = " + std::to_string(rows * cols) +
                           " entries, got " + std::to_string(cost.size()));
    }
    for (double v : cost) {
        if (!std::isfinite(v)) throw metric_error("hungarian: cost entries must be finite");
    }
    if (rows == 0 || cols == 0) return std::vector<std::size_t>(rows, unassigned);
    const bool transposed = rows > cols;
    const std::size_t n = transposed ? cols : rows;  // n <= m
    const std::size_t m = transposed ? rows : cols;
    auto a = [&](std::size_t i, std::size_t j) {  // 1-based, n x m
        return transposed ? cost[(j - 1) * cols + (i - 1)] : cost[(i - 1) * cols + (j - 1)];
    };
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> u(n + 1, 0.0), v(m + 1, 0.0), minv(m + 1);
    std::vector<std::size_t> p(m + 1, 0), way(m + 1, 0);
    std::vector<char> used(m + 1);
    for (std::size_t i = 1; i <= n; ++i) {
        p[0] = i;
        std::size_t j0 = 0;
        std::fill(minv.begin(), minv.end(), inf);
        std::fill(used.begin(), used.end(), 0);
        do {
            used[j0] = 1;
            const std::size_t i0 = p[j0];
            double delta = inf;
            std::size_t j1 = 0;
            for (std::size_t j = 1; j <= m; ++j) {
                if (used[j]) continue;
                const double cur = a(i0, j) - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (std::size_t j = 0; j <= m; ++j) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            const std::size_t j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0 != 0);
    }
    std::vector<std::size_t> out(rows, unassigned);
    for (std::size_t j = 1; j <= m; ++j) {
        if (p[j] == 0) continue;
        if (transposed) {
            out[j - 1] = p[j] - 1;  // row j-1 of the original matrix -> column p[j]-1
        } else {
            out[p[j] - 1] = j - 1;
        }
    }
    return out;
}

/// Total cost of an assignment returned by `hungarian`.
inline double assignment_cost(std::span<const double> cost, std::size_t cols,
                              std::span<const std::size_t> assignment) {
    double s = 0.0;
    for (std::size_t i = 0; i < assignment.size(); ++i) {
        if (assignment[i] != unassigned) s += cost[i * cols + assignment[i]];
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// Cluster accuracy, purity, NMI, ARI
// ---------------------------------------------------------------------------------------------

/// Best one-to-one map from predicted clusters to true classes.
struct cluster_matching {
    /// (predicted label value, true label value) pairs of the map; clusters left out of the map
    /// (more clusters than classes) do not appear.
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
    std::int64_t matched = 0;  ///< samples whose cluster maps to their true class
    std::int64_t total = 0;    ///< N
    double accuracy = 0.0;     ///< matched / total

    /// The true class matched to predicted label `p`, or `fallback` if p is not mapped.
    [[nodiscard]] std::int64_t map(std::int64_t p, std::int64_t fallback = -1) const {
        for (const auto& [from, to] : pairs) {
            if (from == p) return to;
        }
        return fallback;
    }
};

/// Best cluster -> class matching (maximises the matched count; Hungarian on the contingency table).
inline cluster_matching match_clusters(const contingency_table& c) {
    // cost[j][i] = max - n_ij over clusters j (rows) and classes i (cols)
    std::int64_t mx = 0;
    for (auto v : c.counts) mx = std::max(mx, v);
    std::vector<double> cost(c.cols * c.rows);
    for (std::size_t j = 0; j < c.cols; ++j) {
        for (std::size_t i = 0; i < c.rows; ++i) {
            cost[j * c.rows + i] = static_cast<double>(mx - c.at(i, j));
        }
    }
    const auto assign = hungarian(cost, c.cols, c.rows);
    cluster_matching m;
    m.total = c.total;
    for (std::size_t j = 0; j < c.cols; ++j) {
        if (assign[j] == unassigned) continue;
        m.pairs.emplace_back(c.col_values[j], c.row_values[assign[j]]);
        m.matched += c.at(assign[j], j);
    }
    m.accuracy = static_cast<double>(m.matched) / static_cast<double>(m.total);
    return m;
}

/// Best cluster -> class matching of the predicted labels against the true labels.
template <label_range A, label_range B>
cluster_matching match_clusters(const A& truth, const B& pred) {
    return match_clusters(contingency(truth, pred));
}

/// Cluster accuracy ACC: share of samples right under the best one-to-one cluster -> class map.
template <label_range A, label_range B>
double cluster_accuracy(const A& truth, const B& pred) {
    return match_clusters(truth, pred).accuracy;
}

/// Purity: sum over clusters of the count of their majority class, over N.
inline double purity(const contingency_table& c) {
    std::int64_t s = 0;
    for (std::size_t j = 0; j < c.cols; ++j) {
        std::int64_t best = 0;
        for (std::size_t i = 0; i < c.rows; ++i) best = std::max(best, c.at(i, j));
        s += best;
    }
    return static_cast<double>(s) / static_cast<double>(c.total);
}

template <label_range A, label_range B>
double purity(const A& truth, const B& pred) {
    return purity(contingency(truth, pred));
}

namespace detail {

inline double entropy_of_counts(const std::vector<std::int64_t>& counts, std::int64_t total) {
    std::size_t nonzero = 0;
    for (auto v : counts) nonzero += v > 0 ? 1 : 0;
    if (nonzero <= 1) return 0.0;
    const double lt = std::log(static_cast<double>(total));
    double h = 0.0;
    for (auto v : counts) {
        if (v <= 0) continue;
        const double p = static_cast<double>(v) / static_cast<double>(total);
        h -= p * (std::log(static_cast<double>(v)) - lt);
    }
    return h;
}

}  // namespace detail

/// Mutual information (nats) of a contingency table, as scikit-learn's mutual_info_score.
inline double mutual_information(const contingency_table& c) {
    if (c.rows == 1 || c.cols == 1) return 0.0;
    const double n = static_cast<double>(c.total);
    const double log_n = std::log(n);
    double mi = 0.0;
    for (std::size_t i = 0; i < c.rows; ++i) {
        for (std::size_t j = 0; j < c.cols; ++j) {
            const auto nij = c.at(i, j);
            if (nij == 0) continue;
            const double pij = static_cast<double>(nij) / n;
            const double outer =
                static_cast<double>(c.row_sums[i]) * static_cast<double>(c.col_sums[j]);
            double term = pij * (std::log(static_cast<double>(nij)) - log_n) +
                          pij * (-std::log(outer) + log_n + log_n);
            if (std::abs(term) < std::numeric_limits<double>::epsilon()) term = 0.0;
            mi += term;
        }
    }
    return std::max(mi, 0.0);
}

/// Normalised mutual information, arithmetic-mean normalisation (scikit-learn default).
inline double nmi(const contingency_table& c) {
    if (c.rows == 1 && c.cols == 1) return 1.0;
    const double mi = mutual_information(c);
    if (mi == 0.0) return 0.0;
    const double h_true = detail::entropy_of_counts(c.row_sums, c.total);
    const double h_pred = detail::entropy_of_counts(c.col_sums, c.total);
    return mi / ((h_true + h_pred) / 2.0);
}

template <label_range A, label_range B>
double nmi(const A& truth, const B& pred) {
    return nmi(contingency(truth, pred));
}

/// Adjusted Rand index (scikit-learn adjusted_rand_score, via the pair confusion matrix).
inline double ari(const contingency_table& c) {
    using wide = long double;
    const wide n = static_cast<wide>(c.total);
    wide sum_sq = 0, sum_a2 = 0, sum_b2 = 0;
    for (auto v : c.counts) sum_sq += static_cast<wide>(v) * static_cast<wide>(v);
    for (auto v : c.row_sums) sum_a2 += static_cast<wide>(v) * static_cast<wide>(v);
    for (auto v : c.col_sums) sum_b2 += static_cast<wide>(v) * static_cast<wide>(v);
    const wide tp = sum_sq - n;
    const wide fp = sum_b2 - sum_sq;
    const wide fn = sum_a2 - sum_sq;
    const wide tn = n * n - fp - fn - sum_sq;
    if (fn == 0 && fp == 0) return 1.0;
    return static_cast<double>(2.0L * (tp * tn - fn * fp) /
                               ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)));
}

template <label_range A, label_range B>
double ari(const A& truth, const B& pred) {
    return ari(contingency(truth, pred));
}

/// ACC, NMI, ARI and purity of one clustering.
struct clustering_scores {
    double acc = 0;
    double nmi = 0;
    double ari = 0;
    double purity = 0;
};

template <label_range A, label_range B>
clustering_scores score_clustering(const A& truth, const B& pred) {
    const auto c = contingency(truth, pred);
    return {match_clusters(c).accuracy, eval::nmi(c), eval::ari(c), eval::purity(c)};
}

/// Result of `consistency`.
struct consistency_result {
    double value = 0.0;          ///< share of images whose predicted class is the one matched to c
    cluster_matching matching;   ///< code value -> class value map (Hungarian)
};

/// Consistency of generated images with their class code: `pred_class_of_generated[i]` is the
/// class a classifier gives generated image i, `c[i]` the code it was generated from. The codes
/// are matched one-to-one to classes to maximise agreement; the result is the share that agrees.
template <label_range A, label_range B>
consistency_result consistency(const A& pred_class_of_generated, const B& c) {
    consistency_result r;
    r.matching = match_clusters(contingency(pred_class_of_generated, c));
    r.value = r.matching.accuracy;
    return r;
}

// ---------------------------------------------------------------------------------------------
// k-means
// ---------------------------------------------------------------------------------------------

/// Options of `kmeans` (defaults as scikit-learn's KMeans, except n_init = 10 explicitly).
struct kmeans_options {
    std::size_t k = 10;           ///< number of clusters
    std::size_t n_init = 10;      ///< restarts; the lowest inertia wins
    std::size_t max_iter = 300;   ///< Lloyd iterations per restart
    double tol = 1e-4;            ///< stop when the squared centre shift <= tol * mean variance
    std::uint64_t seed = 0;       ///< everything random derives from it
};

/// Result of `kmeans`.
struct kmeans_result {
    std::vector<float> centers;        ///< k x d, row-major
    std::vector<std::int32_t> labels;  ///< cluster of each point, 0..k-1 (nearest centre)
    double inertia = 0.0;              ///< sum of squared distances to the assigned centres
    std::size_t iterations = 0;        ///< Lloyd iterations of the best restart
    std::size_t best_init = 0;         ///< which restart won
};

namespace detail {

using row_matrix_f = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using const_map_f = Eigen::Map<const row_matrix_f>;

/// Squared distances of every point to every centre: n x k.
inline void squared_distances(const const_map_f& x, const Eigen::VectorXf& x_sq,
                              const row_matrix_f& c, row_matrix_f& out) {
    out.noalias() = x * c.transpose();
    const Eigen::VectorXf c_sq = c.rowwise().squaredNorm();
    const Eigen::Index n = x.rows(), k = c.rows();
    for (Eigen::Index i = 0; i < n; ++i) {
        float* row = out.data() + i * k;
        for (Eigen::Index j = 0; j < k; ++j) {
            row[j] = std::max(0.0f, x_sq[i] - 2.0f * row[j] + c_sq[j]);
        }
    }
}

/// Greedy k-means++ seeding (scikit-learn's variant).
inline row_matrix_f kmeans_plusplus(const const_map_f& x, const Eigen::VectorXf& x_sq,
                                    std::size_t k, data::splitmix64& g) {
    const Eigen::Index n = x.rows(), d = x.cols();
    row_matrix_f centers(static_cast<Eigen::Index>(k), d);
    const std::size_t trials = 2 + static_cast<std::size_t>(std::log(static_cast<double>(k)));
    const auto first = static_cast<Eigen::Index>(data::uniform_below(g, static_cast<std::uint64_t>(n)));
    centers.row(0) = x.row(first);
    auto dist_to = [&](const row_matrix_f& cand, row_matrix_f& out) {
        squared_distances(x, x_sq, cand, out);  // n x trials
    };
    row_matrix_f one = centers.row(0);
    row_matrix_f dist;
    dist_to(one, dist);
    std::vector<double> closest(static_cast<std::size_t>(n));
    double pot = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) {
        closest[static_cast<std::size_t>(i)] = dist(i, 0);
        pot += dist(i, 0);
    }
    std::vector<double> cumsum(static_cast<std::size_t>(n));
    row_matrix_f cand(static_cast<Eigen::Index>(trials), d);
    std::vector<Eigen::Index> cand_ids(trials);
    for (std::size_t c = 1; c < k; ++c) {
        std::partial_sum(closest.begin(), closest.end(), cumsum.begin());
        for (std::size_t t = 0; t < trials; ++t) {
            const double r = data::uniform_unit(g) * cumsum.back();
            auto it = std::lower_bound(cumsum.begin(), cumsum.end(), r);
            auto id = static_cast<Eigen::Index>(it - cumsum.begin());
            if (id >= n) id = n - 1;
            cand_ids[t] = id;
            cand.row(static_cast<Eigen::Index>(t)) = x.row(id);
        }
        dist_to(cand, dist);
        std::size_t best_t = 0;
        double best_pot = std::numeric_limits<double>::infinity();
        for (std::size_t t = 0; t < trials; ++t) {
            double p = 0.0;
            for (Eigen::Index i = 0; i < n; ++i) {
                p += std::min(closest[static_cast<std::size_t>(i)],
                              static_cast<double>(dist(i, static_cast<Eigen::Index>(t))));
            }
            if (p < best_pot) {
                best_pot = p;
                best_t = t;
            }
        }
        for (Eigen::Index i = 0; i < n; ++i) {
            auto& cl = closest[static_cast<std::size_t>(i)];
            cl = std::min(cl, static_cast<double>(dist(i, static_cast<Eigen::Index>(best_t))));
        }
        pot = best_pot;
        centers.row(static_cast<Eigen::Index>(c)) = x.row(cand_ids[best_t]);
    }
    (void)pot;
    return centers;
}

/// Exact inertia (double) of labels against centres.
inline double kmeans_inertia(const const_map_f& x, const row_matrix_f& c,
                             const std::vector<std::int32_t>& labels) {
    double s = 0.0;
    const Eigen::Index d = x.cols();
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
        const float* xi = x.data() + i * d;
        const float* ci = c.data() + labels[static_cast<std::size_t>(i)] * d;
        double r = 0.0;
        for (Eigen::Index j = 0; j < d; ++j) {
            const double diff = static_cast<double>(xi[j]) - static_cast<double>(ci[j]);
            r += diff * diff;
        }
        s += r;
    }
    return s;
}

struct single_run {
    row_matrix_f centers;
    std::vector<std::int32_t> labels;
    double inertia = 0.0;
    std::size_t iterations = 0;
};

inline single_run kmeans_single(const const_map_f& x, const Eigen::VectorXf& x_sq, std::size_t k,
                                std::size_t max_iter, double tol_abs, data::splitmix64& g) {
    const Eigen::Index n = x.rows(), d = x.cols();
    const auto kk = static_cast<Eigen::Index>(k);
    const auto nn = static_cast<std::size_t>(n);
    const auto dd = static_cast<std::size_t>(d);
    single_run r;
    r.centers = kmeans_plusplus(x, x_sq, k, g);
    r.labels.assign(nn, -1);
    std::vector<std::int32_t> old(nn, -1);
    std::vector<float> best_dist(nn);
    row_matrix_f dots(n, kk);
    std::vector<double> sums(k * dd);
    std::vector<std::int64_t> counts(k);
    row_matrix_f new_centers(kk, d);
    // E-step: nearest centre of every point. |x - c|^2 = |x|^2 - 2 x.c + |c|^2; the argmin does
    // not need |x|^2.
    auto assign = [&](const row_matrix_f& centers) {
        dots.noalias() = x * centers.transpose();
        const Eigen::VectorXf c_sq = centers.rowwise().squaredNorm();
        for (std::size_t i = 0; i < nn; ++i) {
            const float* row = dots.data() + i * k;
            float best = c_sq[0] - 2.0f * row[0];
            std::int32_t arg = 0;
            for (std::size_t j = 1; j < k; ++j) {
                const float v = c_sq[static_cast<Eigen::Index>(j)] - 2.0f * row[j];
                if (v < best) {
                    best = v;
                    arg = static_cast<std::int32_t>(j);
                }
            }
            r.labels[i] = arg;
            best_dist[i] = std::max(0.0f, x_sq[static_cast<Eigen::Index>(i)] + best);
        }
    };
    auto add_point = [&](std::size_t cluster, std::size_t i, double sign) {
        double* s = sums.data() + cluster * dd;
        const float* xi = x.data() + i * dd;
        for (std::size_t t = 0; t < dd; ++t) s[t] += sign * static_cast<double>(xi[t]);
    };
    bool strict = false;
    for (std::size_t it = 0; it < max_iter; ++it) {
        assign(r.centers);
        r.iterations = it + 1;
        // M-step
        std::fill(sums.begin(), sums.end(), 0.0);
        std::fill(counts.begin(), counts.end(), 0);
        for (std::size_t i = 0; i < nn; ++i) {
            const auto l = static_cast<std::size_t>(r.labels[i]);
            double* s = sums.data() + l * dd;
            const float* xi = x.data() + i * dd;
            for (std::size_t t = 0; t < dd; ++t) s[t] += static_cast<double>(xi[t]);
            ++counts[l];
        }
        // Empty clusters: move them to the points farthest from their centres.
        std::vector<std::size_t> empty;
        for (std::size_t j = 0; j < k; ++j) {
            if (counts[j] == 0) empty.push_back(j);
        }
        if (!empty.empty()) {
            std::vector<std::size_t> order(nn);
            std::iota(order.begin(), order.end(), std::size_t{0});
            const std::size_t m = std::min(empty.size(), order.size());
            std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(m),
                              order.end(), [&](std::size_t a, std::size_t b) {
                                  return best_dist[a] > best_dist[b] ||
                                         (best_dist[a] == best_dist[b] && a < b);
                              });
            for (std::size_t e = 0; e < m; ++e) {
                const std::size_t i = order[e];
                const auto from = static_cast<std::size_t>(r.labels[i]);
                if (counts[from] <= 1) continue;
                add_point(from, i, -1.0);
                --counts[from];
                add_point(empty[e], i, 1.0);
                counts[empty[e]] = 1;
                r.labels[i] = static_cast<std::int32_t>(empty[e]);
            }
        }
        double shift = 0.0;
        for (std::size_t j = 0; j < k; ++j) {
            const auto cnt = counts[j];
            float* nc = new_centers.data() + j * dd;
            const float* oc = r.centers.data() + j * dd;
            for (std::size_t t = 0; t < dd; ++t) {
                nc[t] = cnt == 0 ? oc[t]
                                 : static_cast<float>(sums[j * dd + t] / static_cast<double>(cnt));
                const double diff = static_cast<double>(nc[t]) - static_cast<double>(oc[t]);
                shift += diff * diff;
            }
        }
        std::swap(r.centers, new_centers);
        if (r.labels == old) {
            strict = true;
            break;
        }
        if (shift <= tol_abs) break;
        old = r.labels;
    }
    if (!strict) assign(r.centers);  // labels consistent with the final centres
    r.inertia = kmeans_inertia(x, r.centers, r.labels);
    return r;
}

}  // namespace detail

/// k-means on n points of dimension d (row-major floats). See the file comment.
inline kmeans_result kmeans(std::span<const float> data, std::size_t n, std::size_t d,
                            const kmeans_options& options = {}) {
    if (n == 0 || d == 0) {
        throw metric_error("kmeans: expected n >= 1 points of dimension d >= 1, got n = " +
                           std::to_string(n) + ", d = " + std::to_string(d));
    }
    if (data.size() != n * d) {
        throw metric_error("kmeans: data must hold n x d = " + std::to_string(n * d) +
                           " floats, got " + std::to_string(data.size()));
    }
    if (options.k == 0 || options.k > n) {
        throw metric_error("kmeans: k must be in [1, n = " + std::to_string(n) + "], got " +
                           std::to_string(options.k));
    }
    if (options.n_init == 0) throw metric_error("kmeans: n_init must be >= 1, got 0");
    if (options.max_iter == 0) throw metric_error("kmeans: max_iter must be >= 1, got 0");
    if (!(options.tol >= 0.0) || !std::isfinite(options.tol)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6g", options.tol);
        throw metric_error(std::string("kmeans: tol must be a finite number >= 0, got ") + buf);
    }
    for (float v : data) {
        if (!std::isfinite(v)) throw metric_error("kmeans: data contains a NaN or infinite value");
    }
    detail::const_map_f x(data.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
    const Eigen::VectorXf x_sq = x.rowwise().squaredNorm();
    // tol relative to the mean per-feature variance (scikit-learn's _tolerance)
    double tol_abs = 0.0;
    if (options.tol > 0.0) {
        const Eigen::VectorXd mean = x.cast<double>().colwise().mean().transpose();
        double var_sum = 0.0;
        for (Eigen::Index j = 0; j < x.cols(); ++j) {
            double v = 0.0;
            for (Eigen::Index i = 0; i < x.rows(); ++i) {
                const double diff = static_cast<double>(x(i, j)) - mean[j];
                v += diff * diff;
            }
            var_sum += v / static_cast<double>(n);
        }
        tol_abs = var_sum / static_cast<double>(d) * options.tol;
    }
    kmeans_result best;
    best.inertia = std::numeric_limits<double>::infinity();
    for (std::size_t r = 0; r < options.n_init; ++r) {
        data::splitmix64 g(data::mix_seed(options.seed, r));
        auto run = detail::kmeans_single(x, x_sq, options.k, options.max_iter, tol_abs, g);
        if (run.inertia < best.inertia) {
            best.inertia = run.inertia;
            best.centers.assign(run.centers.data(), run.centers.data() + run.centers.size());
            best.labels = std::move(run.labels);
            best.iterations = run.iterations;
            best.best_init = r;
        }
    }
    return best;
}

/// Paper protocol helper: k-means on features (n x d), then ACC / NMI / ARI / purity against the
/// true labels.
template <label_range R>
clustering_scores cluster_and_score(std::span<const float> features, std::size_t n, std::size_t d,
                                    const R& truth, const kmeans_options& options = {}) {
    const auto km = kmeans(features, n, d, options);
    return score_clustering(truth, km.labels);
}

// ---------------------------------------------------------------------------------------------
// Fréchet distance and diversity
// ---------------------------------------------------------------------------------------------

/// Mean and covariance of a feature set.
struct gaussian_stats {
    std::size_t dim = 0;
    std::vector<double> mean;        ///< d
    std::vector<double> covariance;  ///< d x d, row-major, unbiased (divides by n - 1)
};

/// Mean and unbiased covariance of n feature vectors of dimension d (row-major). Requires n >= 2.
inline gaussian_stats feature_statistics(std::span<const float> features, std::size_t n,
                                         std::size_t d) {
    if (n < 2 || d == 0 || features.size() != n * d) {
        throw metric_error("feature_statistics: expected n >= 2 vectors of dimension d >= 1 in n x d "
                           "floats, got n = " + std::to_string(n) + ", d = " + std::to_string(d) +
                           ", " + std::to_string(features.size()) + " floats");
    }
    detail::const_map_f x(features.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
    const Eigen::MatrixXd xd = x.cast<double>();
    const Eigen::RowVectorXd mu = xd.colwise().mean();
    const Eigen::MatrixXd centred = xd.rowwise() - mu;
    const Eigen::MatrixXd cov = (centred.transpose() * centred) / static_cast<double>(n - 1);
    gaussian_stats s;
    s.dim = d;
    s.mean.assign(mu.data(), mu.data() + d);
    s.covariance.resize(d * d);
    for (std::size_t i = 0; i < d; ++i) {
        for (std::size_t j = 0; j < d; ++j) {
            s.covariance[i * d + j] = cov(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
        }
    }
    return s;
}

/// Fréchet distance between two Gaussians (the FID formula, on whatever features are given).
inline double frechet_distance(const gaussian_stats& a, const gaussian_stats& b) {
    const std::size_t d = a.dim;
    if (d == 0 || b.dim != d || a.mean.size() != d || b.mean.size() != d ||
        a.covariance.size() != d * d || b.covariance.size() != d * d) {
        throw metric_error("frechet_distance: the two Gaussians must have the same dimension d >= 1 "
                           "(mean d, covariance d x d), got " + std::to_string(a.dim) + " and " +
                           std::to_string(b.dim));
    }
    const auto di = static_cast<Eigen::Index>(d);
    using mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::Map<const mat> s1(a.covariance.data(), di, di);
    const Eigen::Map<const mat> s2(b.covariance.data(), di, di);
    const Eigen::MatrixXd s1s = (s1 + s1.transpose()) / 2.0;
    const Eigen::MatrixXd s2s = (s2 + s2.transpose()) / 2.0;
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> e1(s1s);
    const Eigen::VectorXd ev1 = e1.eigenvalues().cwiseMax(0.0).cwiseSqrt();
    const Eigen::MatrixXd sqrt1 = e1.eigenvectors() * ev1.asDiagonal() * e1.eigenvectors().transpose();
    Eigen::MatrixXd m = sqrt1 * s2s * sqrt1;
    m = (m + m.transpose()) / 2.0;
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> em(m, Eigen::EigenvaluesOnly);
    const double tr_sqrt = em.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
    double diff2 = 0.0;
    for (std::size_t i = 0; i < d; ++i) {
        const double diff = a.mean[i] - b.mean[i];
        diff2 += diff * diff;
    }
    return diff2 + s1s.trace() + s2s.trace() - 2.0 * tr_sqrt;
}

/// Fréchet distance between the Gaussian fits of two feature sets (n1 x d and n2 x d).
inline double frechet_distance(std::span<const float> features1, std::size_t n1,
                               std::span<const float> features2, std::size_t n2, std::size_t d) {
    return frechet_distance(feature_statistics(features1, n1, d),
                            feature_statistics(features2, n2, d));
}

/// Mean L2 distance over all unordered pairs of n vectors of dimension d. Requires n >= 2.
inline double mean_pairwise_distance(std::span<const float> features, std::size_t n, std::size_t d) {
    if (n < 2 || d == 0 || features.size() != n * d) {
        throw metric_error("mean_pairwise_distance: expected n >= 2 vectors of dimension d >= 1 in "
                           "n x d floats, got n = " + std::to_string(n) + ", d = " +
                           std::to_string(d) + ", " + std::to_string(features.size()) + " floats");
    }
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const float* a = features.data() + i * d;
        for (std::size_t j = i + 1; j < n; ++j) {
            const float* b = features.data() + j * d;
            double s = 0.0;
            for (std::size_t t = 0; t < d; ++t) {
                const double diff = static_cast<double>(a[t]) - static_cast<double>(b[t]);
                s += diff * diff;
            }
            total += std::sqrt(s);
        }
    }
    return total / (static_cast<double>(n) * static_cast<double>(n - 1) / 2.0);
}

/// Intra-class diversity: mean pairwise distance inside each class.
struct diversity_result {
    std::vector<std::int64_t> classes;  ///< label values with at least two samples, ascending
    std::vector<double> per_class;      ///< mean pairwise L2 distance of each of those classes
    double mean = 0.0;                  ///< unweighted mean over those classes
};

/// Intra-class diversity of n feature vectors (n x d) with the given labels (classes with fewer
/// than two samples are skipped).
template <label_range R>
diversity_result intra_class_diversity(std::span<const float> features, std::size_t n,
                                       std::size_t d, const R& labels) {
    if (static_cast<std::size_t>(std::ranges::size(labels)) != n || features.size() != n * d) {
        throw metric_error("intra_class_diversity: expected n = " + std::to_string(n) +
                           " labels and n x d = " + std::to_string(n * d) + " floats, got " +
                           std::to_string(std::ranges::size(labels)) + " labels and " +
                           std::to_string(features.size()) + " floats");
    }
    const auto enc = encode_labels(labels);
    diversity_result r;
    std::vector<float> buf;
    for (std::size_t c = 0; c < enc.values.size(); ++c) {
        buf.clear();
        std::size_t m = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (enc.codes[i] != c) continue;
            buf.insert(buf.end(), features.begin() + static_cast<std::ptrdiff_t>(i * d),
                       features.begin() + static_cast<std::ptrdiff_t>((i + 1) * d));
            ++m;
        }
        if (m < 2) continue;
        r.classes.push_back(enc.values[c]);
        r.per_class.push_back(mean_pairwise_distance(buf, m, d));
    }
    if (r.per_class.empty()) {
        throw metric_error("intra_class_diversity: no class has two or more samples");
    }
    r.mean = std::accumulate(r.per_class.begin(), r.per_class.end(), 0.0) /
             static_cast<double>(r.per_class.size());
    return r;
}

}  // namespace cdgan::eval
