// The doctest main of cdgan_cuda_tests. Without a usable CUDA device, every GPU test case prints
// "SKIPPED: no CUDA device" and returns; the program then exits with 77 so that CTest reports the test
// as Skipped rather than Passed (tests/cuda/CMakeLists.txt sets SKIP_RETURN_CODE 77).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "no_device.hpp"

int main(int argc, char** argv) {
  const std::string why = cdgan_test::no_device_reason();
  if (!why.empty()) std::printf("cdgan_cuda_tests: SKIPPED: no CUDA device (%s)\n", why.c_str());
  doctest::Context ctx(argc, argv);
  const int res = ctx.run();
  if (ctx.shouldExit() || res != 0) return res;
  if (!why.empty()) {
    std::printf("cdgan_cuda_tests: SKIPPED: no CUDA device; the GPU test cases did not run (exit code 77)\n");
    return 77;
  }
  return 0;
}
