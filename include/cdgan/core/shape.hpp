/// @file core/shape.hpp
/// Compile-time per-sample shapes.
///
/// What this represents: `shape<Ds...>` is the shape of ONE sample (a feature vector `shape<F>` or an
/// image `shape<C, H, W>`). The batch size is the only extent known at run time. Every layer computes
/// its output shape from its input shape at compile time, so a network that does not fit together
/// is a compile error.
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <type_traits>

namespace cdgan {

template <std::size_t... Ds>
struct shape {
  static_assert(sizeof...(Ds) >= 1, "cdgan::shape: a shape needs at least one extent");
  static_assert(((Ds > 0) && ...), "cdgan::shape: every extent must be positive (zero channels or zero size)");
  static constexpr std::size_t rank = sizeof...(Ds);
  static constexpr std::size_t size = (Ds * ...);
  static constexpr std::array<std::size_t, rank> dims{Ds...};
  static std::string str() {
    std::string s = "(";
    bool first = true;
    for (auto d : dims) {
      if (!first) s += ", ";
      s += std::to_string(d);
      first = false;
    }
    return s + ")";
  }
};

template <class T>
struct is_shape : std::false_type {};
template <std::size_t... Ds>
struct is_shape<shape<Ds...>> : std::true_type {};
template <class T>
concept shape_type = is_shape<T>::value;

/// Channels, height and width of an image shape `shape<C, H, W>`.
template <shape_type S>
struct image_dims {
  static_assert(S::rank == 3, "cdgan: this layer needs an image input shape<C, H, W>; insert a reshape<C, H, W> before it");
  static constexpr std::size_t c = S::dims[0], h = S::dims[1], w = S::dims[2];
};

/// `shape<N>` with the same number of elements as S.
template <shape_type S>
using flat_shape = shape<S::size>;

}  // namespace cdgan
