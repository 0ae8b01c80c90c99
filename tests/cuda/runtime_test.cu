// The CUDA runtime layer: error macros and messages, cuda_available(), the context, device memory.
// The first three test cases need no GPU and run everywhere.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "cuda_test.hpp"

using namespace cdgan;

namespace {
cudaError_t failing_cuda_call(cudaError_t e) { return e; }
cublasStatus_t failing_cublas_call(cublasStatus_t s) { return s; }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("CDGAN_CUDA_CHECK and CDGAN_CUBLAS_CHECK name the call, file, line and error") {
  CHECK_NOTHROW(CDGAN_CUDA_CHECK(failing_cuda_call(cudaSuccess)));
  std::string msg;
  const int line = __LINE__ + 2;
  try {
    CDGAN_CUDA_CHECK(failing_cuda_call(cudaErrorInvalidValue));
  } catch (const device_error& e) {
    msg = e.what();
  }
  CHECK(contains(msg, "failing_cuda_call(cudaErrorInvalidValue)"));
  CHECK(contains(msg, "runtime_test.cu:" + std::to_string(line)));
  CHECK(contains(msg, "cudaErrorInvalidValue"));
  CHECK(contains(msg, cudaGetErrorString(cudaErrorInvalidValue)));

  CHECK_NOTHROW(CDGAN_CUBLAS_CHECK(failing_cublas_call(CUBLAS_STATUS_SUCCESS)));
  msg.clear();
  try {
    CDGAN_CUBLAS_CHECK(failing_cublas_call(CUBLAS_STATUS_INVALID_VALUE));
  } catch (const error& e) {  // device_error is a cdgan::error
    msg = e.what();
  }
  CHECK(contains(msg, "failing_cublas_call(CUBLAS_STATUS_INVALID_VALUE)"));
  CHECK(contains(msg, "runtime_test.cu:"));
  CHECK(contains(msg, "CUBLAS_STATUS_INVALID_VALUE"));
}

TEST_CASE("an allocation failure reports the bytes asked for") {
  CHECK(detail::format_bytes(100) == "100 bytes");
  CHECK(detail::format_bytes(13107200) == "12.5 MiB (13107200 bytes)");
  std::string msg;
  try {
    CDGAN_CUDA_CHECK_ALLOC(failing_cuda_call(cudaErrorMemoryAllocation), std::size_t{3} << 30);
  } catch (const device_error& e) {
    msg = e.what();
  }
  CHECK(contains(msg, "out of device memory"));
  CHECK(contains(msg, "asked for 3.0 GiB (3221225472 bytes)"));
  CHECK(contains(msg, "failing_cuda_call(cudaErrorMemoryAllocation)"));
  if (cuda_available()) CHECK(contains(msg, " free of "));  // cudaMemGetInfo answered
}

TEST_CASE("cuda_available() agrees with the runtime and never throws") {
  bool avail = false;
  CHECK_NOTHROW(avail = cuda_available());
  CHECK(avail == cdgan_test::no_device_reason().empty());
  if (!avail) MESSAGE("no CUDA device here: " << cdgan_test::no_device_reason());
}

TEST_CASE("without a GPU, the first cdgan::cuda allocation says that there is none, and why") {
  if (cuda_available()) {
    MESSAGE("a CUDA device is present: nothing to check here");
    return;
  }
  std::string msg;
  try {
    tensor<shape<2>, cuda> t(3);
  } catch (const device_error& e) {
    msg = e.what();
  }
  CHECK(contains(msg, "no usable CUDA device"));
  CHECK(contains(msg, cdgan_test::no_device_reason()));
  CHECK(contains(msg, "cuda_available()"));
}

TEST_CASE("cuda_context: one stream, a cuBLAS handle bound to it, FP32 math unless TF32 is asked for") {
  CDGAN_REQUIRE_GPU();
  auto& ctx = cuda_context::instance();
  CHECK(&ctx == &cuda_context::instance());
  CHECK(ctx.stream() != nullptr);
  CHECK(ctx.sm_count() > 0);
  cublasHandle_t h = ctx.cublas();
  REQUIRE(h != nullptr);
  CHECK(h == ctx.cublas());
  cudaStream_t s = nullptr;
  CDGAN_CUBLAS_CHECK(cublasGetStream(h, &s));
  CHECK(s == ctx.stream());
  cublasMath_t mode{};
  CDGAN_CUBLAS_CHECK(cublasGetMathMode(h, &mode));
  CHECK(mode == CUBLAS_DEFAULT_MATH);
  CHECK_FALSE(ctx.tf32());
  ctx.set_tf32(true);
  CDGAN_CUBLAS_CHECK(cublasGetMathMode(h, &mode));
  CHECK(mode == CUBLAS_TF32_TENSOR_OP_MATH);
  ctx.set_tf32(false);
  CDGAN_CUBLAS_CHECK(cublasGetMathMode(h, &mode));
  CHECK(mode == CUBLAS_DEFAULT_MATH);
  CHECK_NOTHROW(ctx.synchronize());
}

TEST_CASE("device memory: round trips, zero, device copy, allocation counting") {
  CDGAN_REQUIRE_GPU();
  std::vector<real> h(1000);
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<real>(i) * 0.5f - 7.f;
  const std::size_t before = allocation_count();
  tensor<shape<10>, cuda> a;
  a.from_host(h);
  CHECK(a.batch() == 100);
  CHECK(allocation_count() == before + 1);
  CHECK(a.to_host() == h);
  tensor<shape<10>, cuda> b = a;  // buffer copy: device to device
  CHECK(b.to_host() == h);
  a.resize(50);                   // shrinking never allocates
  a.resize(100);
  CHECK(allocation_count() == before + 2);
  device_memory<cuda>::zero(b.data(), 10 * sizeof(real));
  auto hb = b.to_host();
  for (std::size_t i = 0; i < 10; ++i) CHECK(hb[i] == 0.f);
  CHECK(hb[10] == h[10]);
  backend<cuda>::copy(b.data() + 20, a.data() + 500, 30);
  hb = b.to_host();
  CHECK(hb[20] == h[500]);
  CHECK(hb[49] == h[529]);
  CHECK(hb[50] == h[50]);
}

TEST_CASE("out of device memory is a device_error that says how much was asked and how much is free") {
  CDGAN_REQUIRE_GPU();
  std::string msg;
  try {
    void* p = device_memory<cuda>::allocate(std::size_t{1} << 50);  // 1 PiB
    device_memory<cuda>::deallocate(p);
  } catch (const device_error& e) {
    msg = e.what();
  }
  CHECK((contains(msg, "out of device memory") || contains(msg, "device allocation failed")));
  CHECK(contains(msg, "cudaMalloc"));
  CHECK(contains(msg, "asked for 1024.0 TiB (1125899906842624 bytes)"));
  CHECK(contains(msg, " free of "));
  // the failure leaves the device usable
  tensor<shape<4>, cuda> t(2);
  t = 3.f;
  CHECK(t.to_host() == std::vector<real>(8, 3.f));
}
