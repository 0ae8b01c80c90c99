#pragma once
/// @file
/// Small, portable, seeded random numbers for data shuffling, subset selection and k-means.
///
/// What this represents: `splitmix64`, Steele, Lea and Flood's SplitMix64 generator (a 64-bit
///   counter hashed by a fixed mixer), and helpers built only on its output bits, so that the
///   same seed gives the same permutation, subset or initialisation with every compiler and
///   standard library (std::uniform_int_distribution and std::shuffle are not specified bit for
///   bit, so they are not used).
///   - `splitmix64::operator()`   next 64 random bits (a UniformRandomBitGenerator);
///   - `uniform_below(g, n)`      unbiased integer in [0, n) (rejection sampling);
///   - `uniform_unit(g)`          double in [0, 1) with 53 random bits;
///   - `shuffle(g, span)`         Fisher-Yates shuffle;
///   - `mix_seed(a, b)`           a derived seed for sub-streams (epoch e of seed s, restart r...).
/// Requires: n > 0 for `uniform_below`.
/// Ensures: all results are functions of the seed only.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>

namespace cdgan::data {

/// SplitMix64 generator (UniformRandomBitGenerator).
class splitmix64 {
public:
    using result_type = std::uint64_t;
    explicit constexpr splitmix64(std::uint64_t seed = 0) noexcept : state_(seed) {}
    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }
    constexpr result_type operator()() noexcept {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

private:
    std::uint64_t state_;
};

/// A seed derived from two values (for independent sub-streams).
constexpr std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) noexcept {
    splitmix64 g(a ^ (b * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL));
    g();
    return g();
}

/// Unbiased integer in [0, n). Requires: n > 0.
template <class G>
constexpr std::uint64_t uniform_below(G& g, std::uint64_t n) {
    const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
        const std::uint64_t r = g();
        if (r >= threshold) return r % n;
    }
}

/// Double in [0, 1).
template <class G>
constexpr double uniform_unit(G& g) {
    return static_cast<double>(g() >> 11) * 0x1.0p-53;
}

/// Fisher-Yates shuffle of v.
template <class G, class T>
constexpr void shuffle(G& g, std::span<T> v) {
    for (std::size_t i = v.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(uniform_below(g, i));
        std::swap(v[i - 1], v[j]);
    }
}

}  // namespace cdgan::data
