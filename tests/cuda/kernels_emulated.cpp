// The CUDA kernels of backend/cuda/kernels.cuh run on the CPU, against backend<cpu>, so that their
// index arithmetic, tree reductions and reduction plans are tested on every machine, GPU or not.
//
// How: this C++ file defines __CUDACC__ and stand-ins for the few CUDA built-ins the kernels use
// (threadIdx, blockIdx, blockDim, gridDim, __syncthreads, __shared__, __int_as_float,
// __float_as_uint, atomicExch), then includes kernels.cuh. A launch runs the grid block by block; the
// 256 threads of a block are fibers that run in turns between barriers, so a kernel that reads
// shared memory before the barrier that publishes it, or indexes it wrongly, fails here as on a GPU.
// It does not replace the GPU tests (cdgan_cuda_tests): cuBLAS, memory and launch code are not
// exercised, and real concurrency within a phase is not (fibers run one after another).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#define __CUDACC__ 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static  // blocks run one at a time, so a function-local static is a block's shared memory
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3() = default;
  dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
namespace emu {
dim3 thread_idx, block_idx, block_dim, grid_dim;
void sync_threads();
}  // namespace emu
#define threadIdx ::emu::thread_idx
#define blockIdx ::emu::block_idx
#define blockDim ::emu::block_dim
#define gridDim ::emu::grid_dim
inline void __syncthreads() { emu::sync_threads(); }
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline int atomicExch(int* p, int v) {
  const int old = *p;
  *p = v;
  return old;
}

#include "cdgan/backend/cuda/kernels.cuh"
#undef __CUDACC__  // the rest (Eigen, the CPU backend) is ordinary host code

#include "cdgan/backend/cpu/backend.hpp"
#include "cdgan/core/random.hpp"
#include "cdgan/core/tensor.hpp"

namespace emu {
/// The threads of one block as 256 fibers (ucontext) on this one OS thread. A round resumes every
/// fiber once; each runs until its next __syncthreads (or its end) and yields. No fiber passes a
/// barrier before all have reached it, which is exactly __syncthreads' guarantee.
class block_runner {
 public:
  static constexpr unsigned size = 256;
  static constexpr std::size_t stack_bytes = 256 * 1024;
  block_runner() : fibers_(size), stacks_(size) {
    for (auto& st : stacks_) st = std::make_unique<char[]>(stack_bytes);
  }
  void run(dim3 grid, dim3 block, const std::function<void()>& job) {
    job_ = &job;
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        block_idx = dim3(bx, by);
        run_block(block);
      }
  }
  [[gnu::noinline]] void make_fiber(unsigned t) {
    getcontext(&fibers_[t]);
    fibers_[t].uc_stack.ss_sp = stacks_[t].get();
    fibers_[t].uc_stack.ss_size = stack_bytes;
    fibers_[t].uc_link = &scheduler_;
    makecontext(&fibers_[t], &block_runner::entry, 0);
  }
  [[gnu::noinline]] void resume(unsigned t) { swapcontext(&scheduler_, &fibers_[t]); }
  void run_block(dim3 block) {
    for (unsigned t = 0; t < size; ++t) make_fiber(t);
    finished_.assign(size, false);
    for (unsigned left = size; left > 0;) {
      for (unsigned t = 0; t < size; ++t) {
        if (finished_[t]) continue;
        current_ = t;
        thread_idx = dim3(t % block.x, t / block.x);
        returned_ = false;
        resume(t);
        if (!returned_) {  // the fiber ran to its end (uc_link brought us back)
          finished_[t] = true;
          --left;
        }
      }
    }
  }
  void yield() {
    returned_ = true;
    swapcontext(&fibers_[current_], &scheduler_);
  }

 private:
  static void entry();
  ucontext_t scheduler_{};
  std::vector<ucontext_t> fibers_;
  std::vector<std::unique_ptr<char[]>> stacks_;
  std::vector<bool> finished_;
  const std::function<void()>* job_ = nullptr;
  unsigned current_ = 0;
  bool returned_ = false;
};
inline block_runner& runner() {
  static block_runner r;
  return r;
}
void block_runner::entry() { (*runner().job_)(); }
void sync_threads() { runner().yield(); }

/// kernel<<<grid, block>>>(args...), synchronously. Every kernel here uses 256-thread blocks.
template <class Kernel, class... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
  REQUIRE(block.x * block.y * block.z == block_runner::size);
  grid_dim = grid;
  block_dim = block;
  const std::function<void()> job = [&] { kernel(args...); };
  runner().run(grid, block, job);
}
}  // namespace emu

using namespace cdgan;
namespace k = cdgan::detail::cuda_kernels;

namespace {
void check_equal(const std::vector<real>& want, const std::vector<real>& got, double rtol, const std::string& what) {
  REQUIRE(want.size() == got.size());
  std::size_t bad = 0, at = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i] == got[i] || (std::isnan(want[i]) && std::isnan(got[i]))) continue;
    if (std::fabs(double(want[i]) - got[i]) <= rtol * (1 + std::fabs(double(want[i])))) continue;
    if (bad++ == 0) at = i;
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " values differ, first at " << at << ": cpu " << want[at] << ", kernel "
                               << got[at]);
}

/// What backend<cuda>::reduce launches, run here.
template <bool Sum, class E>
void reduce(real* out, std::size_t outer, std::size_t mid, std::size_t inner, const E& e, real beta) {
  using acc = typename k::red<Sum>::acc;
  const k::reduce_plan plan = k::plan_reduce(outer, mid, inner);
  std::vector<acc> partial(mid * plan.splits);
  const dim3 grid(static_cast<unsigned>(plan.grid_x), static_cast<unsigned>(plan.splits));
  const auto splits = static_cast<unsigned>(plan.splits);
  if (plan.columns)
    emu::launch(grid, dim3(32, 8), k::reduce_cols_kernel<Sum, E>, out, outer, mid, e, beta, partial.data(), splits);
  else
    emu::launch(grid, dim3(256), k::reduce_rows_kernel<Sum, E>, out, outer, mid, inner, e, beta, partial.data(), splits);
  if (plan.splits > 1)
    emu::launch(dim3(static_cast<unsigned>(mid)), dim3(256), k::reduce_finish_kernel<Sum>, out,
                static_cast<const acc*>(partial.data()), splits, beta);
}
}  // namespace

TEST_CASE("emulated reduce kernels equal backend<cpu>::reduce, for both plans and split and unsplit grids") {
  struct layout {
    std::size_t outer, mid, inner;
  };
  rng g(3);
  bool saw_columns = false, saw_rows_split = false, saw_columns_split = false;
  // few blocks each (the emulation runs 256 real threads per block), covering both kernels, split and
  // unsplit, the finishing pass, an empty range and strided rows
  for (layout l : {layout{3, 5, 7}, layout{2, 2, 3000}, layout{40, 32, 1}, layout{1, 300, 1}, layout{0, 4, 3},
                   layout{50, 3, 2}, layout{300, 2, 1}}) {
    const auto plan = k::plan_reduce(l.outer, l.mid, l.inner);
    saw_columns |= plan.columns;
    saw_rows_split |= !plan.columns && plan.splits > 1;
    saw_columns_split |= plan.columns && plan.splits > 1;
    const std::string tag = std::to_string(l.outer) + "x" + std::to_string(l.mid) + "x" + std::to_string(l.inner);
    tensor<shape<1>> x(l.outer * l.mid * l.inner);
    x = g.normal();
    for (real beta : {0.f, 0.5f}) {
      tensor<shape<1>> c(l.mid), e(l.mid);
      c = g.normal();
      e.from_host(c.to_host());
      backend<cpu>::reduce<reduction::sum>(c.data(), l.outer, l.mid, l.inner, square(x) + 1.f, beta);
      reduce<true>(e.data(), l.outer, l.mid, l.inner, square(x) + 1.f, beta);
      check_equal(c.to_host(), e.to_host(), 2e-6, "sum " + tag);
      c = g.normal();
      e.from_host(c.to_host());
      backend<cpu>::reduce<reduction::max>(c.data(), l.outer, l.mid, l.inner, x.as_expr(), beta);
      reduce<false>(e.data(), l.outer, l.mid, l.inner, x.as_expr(), beta);
      check_equal(c.to_host(), e.to_host(), 0, "max " + tag);
    }
  }
  CHECK(saw_columns);
  CHECK(saw_rows_split);
  CHECK(saw_columns_split);
}

TEST_CASE("emulated im2col and col2im kernels equal the CPU bit for bit, with 32- and 64-bit indices") {
  rng g(4);
  // c, h, w, k, stride, pad, oh, ow
  for (conv_geometry geo : {conv_geometry{3, 7, 6, 3, 1, 1, 7, 6}, conv_geometry{2, 8, 8, 4, 2, 1, 4, 4},
                            conv_geometry{1, 5, 5, 2, 2, 0, 2, 2}, conv_geometry{2, 4, 4, 4, 2, 1, 2, 2},
                            conv_geometry{2, 3, 3, 4, 3, 2, 2, 2}}) {
    const std::size_t batch = 3, xs = batch * geo.c * geo.h * geo.w, cs = batch * geo.col_rows() * geo.col_cols();
    tensor<shape<1>> x(xs), c1(cs), c2(cs);
    x = g.normal();
    backend<cpu>::im2col(x.data(), batch, geo, c1.data());
    c2 = 7.f;
    emu::launch(dim3(3), dim3(256), k::im2col_kernel<std::uint32_t>, static_cast<const real*>(x.data()),
                static_cast<std::uint32_t>(cs), k::geometry<std::uint32_t>(geo), c2.data(), std::uint32_t{1});
    check_equal(c1.to_host(), c2.to_host(), 0, "im2col (32-bit)");
    c2 = 7.f;
    emu::launch(dim3(2), dim3(256), k::im2col_kernel<std::size_t>, static_cast<const real*>(x.data()), cs,
                k::geometry<std::size_t>(geo), c2.data(), std::size_t{1});
    check_equal(c1.to_host(), c2.to_host(), 0, "im2col (64-bit)");

    tensor<shape<1>> y1(xs), y2(xs), col(cs);
    col = g.normal();
    y1 = g.normal();
    y2.from_host(y1.to_host());
    backend<cpu>::col2im(col.data(), batch, geo, y1.data());
    emu::launch(dim3(2), dim3(256), k::col2im_kernel<std::uint32_t>, static_cast<const real*>(col.data()),
                static_cast<std::uint32_t>(xs), k::geometry<std::uint32_t>(geo), y2.data(), std::uint32_t{1});
    check_equal(y1.to_host(), y2.to_host(), 0, "col2im (32-bit)");
    y1 = 0.f;
    y2 = 0.f;
    backend<cpu>::col2im(col.data(), batch, geo, y1.data());
    emu::launch(dim3(5), dim3(256), k::col2im_kernel<std::size_t>, static_cast<const real*>(col.data()), xs,
                k::geometry<std::size_t>(geo), y2.data(), std::size_t{1});
    check_equal(y1.to_host(), y2.to_host(), 0, "col2im (64-bit)");

    // the batch-wide layout [C·K·K][batch·OH·OW] (backend::im2col_wide / col2im_wide)
    backend<cpu>::im2col_wide(x.data(), batch, geo, c1.data());
    c2 = 7.f;
    emu::launch(dim3(3), dim3(256), k::im2col_kernel<std::uint32_t, true>, static_cast<const real*>(x.data()),
                static_cast<std::uint32_t>(cs), k::geometry<std::uint32_t>(geo), c2.data(),
                static_cast<std::uint32_t>(batch));
    check_equal(c1.to_host(), c2.to_host(), 0, "im2col_wide");
    y1 = g.normal();
    y2.from_host(y1.to_host());
    backend<cpu>::col2im_wide(col.data(), batch, geo, y1.data());
    emu::launch(dim3(2), dim3(256), k::col2im_kernel<std::size_t, true>, static_cast<const real*>(col.data()), xs,
                k::geometry<std::size_t>(geo), y2.data(), batch);
    check_equal(y1.to_host(), y2.to_host(), 0, "col2im_wide");
  }
}

TEST_CASE("emulated swap_axes kernel equals the CPU, with and without a bias") {
  rng g(9);
  const std::size_t outer = 5, mid = 7, inner = 13, n = outer * mid * inner;
  tensor<shape<1>> src(n), bias(outer), want(n), got(n);
  src = g.normal();
  bias = g.normal();
  for (const real* b : {static_cast<const real*>(nullptr), static_cast<const real*>(bias.data())}) {
    backend<cpu>::swap_axes(want.data(), src.data(), outer, mid, inner, b);
    got = 7.f;
    emu::launch(dim3(2), dim3(256), k::swap_axes_kernel<std::uint32_t>, got.data(), static_cast<const real*>(src.data()),
                static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(outer), static_cast<std::uint32_t>(mid),
                static_cast<std::uint32_t>(inner), b);
    check_equal(want.to_host(), got.to_host(), 0, b ? "swap_axes with bias" : "swap_axes");
  }
}

TEST_CASE("emulated elementwise, for_each and all_finite kernels") {
  rng g(5);
  const std::size_t n = 5000;  // more than the 3 blocks × 256 threads: the grid-stride loop matters
  tensor<shape<1>> a(n), b(n), want(n), got(n);
  a = g.normal();
  b = g.uniform(0.5f, 2.f);
  const auto e = where(a > 0.f, log(b) * a, sigmoid(a)) + per_sample<10, cpu>(b.data(), n / 10);
  want = e;
  emu::launch(dim3(3), dim3(256), k::eval_kernel<std::remove_const_t<decltype(e)>>, got.data(), n, e);
  check_equal(want.to_host(), got.to_host(), 0, "eval_kernel");

  struct twice {
    const real* x;
    real* y;
    CDGAN_HOST_DEVICE void operator()(std::size_t i) const { y[i] = 2.f * x[i]; }
  };
  got = 0.f;
  emu::launch(dim3(2), dim3(256), k::for_each_kernel<twice>, n, twice{a.data(), got.data()});
  want = a * 2.f;
  check_equal(want.to_host(), got.to_host(), 0, "for_each_kernel");

  int bad = 0;
  emu::launch(dim3(3), dim3(256), k::all_finite_kernel<real>, static_cast<const real*>(a.data()), n, &bad);
  CHECK(bad == 0);
  for (real v : {std::numeric_limits<real>::quiet_NaN(), std::numeric_limits<real>::infinity(),
                 -std::numeric_limits<real>::infinity()}) {
    const real saved = a.data()[4321];
    a.data()[4321] = v;
    bad = 0;
    emu::launch(dim3(3), dim3(256), k::all_finite_kernel<real>, static_cast<const real*>(a.data()), n, &bad);
    CHECK(bad == 1);
    a.data()[4321] = saved;
  }
}
