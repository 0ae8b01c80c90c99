// Compile-only test (see tests/cuda/CMakeLists.txt): a translation unit compiled by the C++ compiler,
// not nvcc, that runs a layer on cdgan::cuda. It must NOT compile, and the first error must say what
// to do: with CDGAN_WITH_CUDA, "... a .cu translation unit compiled by nvcc"; without it, "... link the
// cdgan::cuda target".
#include "cdgan/backend/cuda/cuda.hpp"
#include "cdgan/nn/dense.hpp"

int main() {
  cdgan::nn::bind_t<cdgan::nn::dense<3>, cdgan::shape<4>, cdgan::cuda> layer;
  cdgan::tensor<cdgan::shape<4>, cdgan::cuda> x(2);
  x = 1.f;
  layer.forward(x.cv());
  return 0;
}
