/// @file backend/cpu/backend.hpp
/// The CPU backend. See backend/backend.hpp for the contract.
///
/// What this represents: `backend<cpu>` and `executor<cpu>` over host memory:
/// - GEMM: a blocked, packed single-precision GEMM with an AVX2/FMA (6×16) or SSE (6×8) register
///   kernel (`detail::cpu_kernels::gemm`; Eigen when CDGAN_CPU_GEMM=0 or not on x86-64);
/// - expressions and reductions as vectorised loops; broadcasts are evaluated a block at a time
///   (no division per element);
/// - im2col/col2im through padded (and, for strides > 1, phase-split) image planes;
/// - threads: its own pool (`set_num_threads`), whose jobs never wait for a thread that has not
///   started, so a loaded machine degrades to fewer threads instead of stalling every loop.
/// Ensures: results do not depend on the number of threads (every sum has a fixed order).
/// Tuning macros: CDGAN_CPU_GEMM (0: Eigen's GEMM), CDGAN_CPU_COLUMN_CHUNK (elements of a convolution's
/// column matrix per chunk, default 2^20).
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(CDGAN_CPU_COLUMN_CHUNK)
#define CDGAN_CPU_COLUMN_CHUNK (std::size_t(1) << 20)  ///< see backend<cpu>::column_chunk_elements
#endif
#if !defined(CDGAN_CPU_GEMM)
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CDGAN_CPU_GEMM 1  ///< cdgan's own SSE/AVX2 GEMM; 0: Eigen's
#else
#define CDGAN_CPU_GEMM 0
#endif
#endif
#if CDGAN_CPU_GEMM
#include <immintrin.h>
#endif

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../../core/expr.hpp"
#include "../../core/memory.hpp"
#include "../backend.hpp"

namespace cdgan {

namespace detail::cpu_kernels {

// ---------------------------------------------------------------------------------------------
// The CPU backend's threads. A fixed pool of n − 1 workers plus the calling thread runs
// `parallel_for` jobs: the job's tasks are handed out one at a time from a shared counter, and the
// caller works on them too. When the caller has taken the last task it waits only for tasks that
// workers are running, never for a worker that has not started (OpenMP's fork-join waits for every
// thread of the team, so a descheduled thread on a loaded machine stalls every parallel loop).
// Idle workers spin briefly, then sleep on a condition variable.
// Calls from inside a task, or from a second thread while a job runs, run serially on the caller.
// ---------------------------------------------------------------------------------------------

inline void cpu_relax() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_ia32_pause();
#endif
}

/// Per-thread scratch of the convolution kernels (padded image planes and their pixel offsets,
/// phase planes). Every thread of the pool reserves `reserved` elements of each when the pool starts
/// it, and the thread that sizes the pool does the same, so that which thread takes which task —
/// which changes from run to run on a loaded machine — does not decide whether a training step
/// allocates: a kernel grows a buffer only when its shapes need more than that (then on every run).
struct thread_scratch {
  static constexpr std::size_t reserved = std::size_t(1) << 16;  // 256 KiB of floats per buffer
  std::vector<float> planes, phases;
  std::vector<std::int32_t> offsets;
  static thread_scratch& local() {
    thread_local thread_scratch s;
    return s;
  }
  void reserve() {
    if (planes.size() < reserved) planes.resize(reserved);
    if (phases.size() < reserved) phases.resize(reserved);
    if (offsets.size() < reserved) offsets.resize(reserved);
  }
};

class thread_pool {
 public:
  static thread_pool& instance() {
    static thread_pool pool;
    return pool;
  }
  /// Threads taking part in a job, the caller included.
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  /// True on a thread that is running a task of a job.
  static bool& in_task() {
    thread_local bool flag = false;
    return flag;
  }
  void resize(int n) {
    n = std::max(n, 1);
    std::lock_guard<std::mutex> lock(job_mutex_);
    thread_scratch::local().reserve();
    if (n == size()) return;
    stop_workers();
    start_workers(n - 1);
  }

  /// f(t) for every t < tasks, on the pool (see above).
  template <class F>
  void run(std::size_t tasks, const F& f) {
    if (tasks == 0) return;
    std::unique_lock<std::mutex> lock(job_mutex_, std::defer_lock);
    if (tasks == 1 || workers_.empty() || in_task() || !lock.try_lock()) {
      for (std::size_t t = 0; t < tasks; ++t) f(t);
      return;
    }
    call_ = [](const void* ctx, std::size_t t) { (*static_cast<const F*>(ctx))(t); };
    ctx_ = &f;
    tasks_ = tasks;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    // open the job (workers may join from now on) and wake the sleeping workers
    const std::uint64_t gen = (state_.load(std::memory_order_relaxed) >> 32) + 1;
    state_.store(gen << 32 | open_bit, std::memory_order_release);
    wake_workers();
    work();
    // close the job once no worker runs a task of it
    for (unsigned spins = 0;; ++spins) {
      std::uint64_t s = state_.load(std::memory_order_acquire);
      if ((s & active_mask) == 0 &&
          state_.compare_exchange_weak(s, s & ~open_bit, std::memory_order_acq_rel, std::memory_order_acquire))
        break;
      if (spins < 4096)
        cpu_relax();
      else
        std::this_thread::yield();
    }
    if (error_) std::rethrow_exception(error_);
  }

  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  ~thread_pool() { stop_workers(); }

 private:
  static constexpr std::uint64_t open_bit = std::uint64_t(1) << 31, active_mask = open_bit - 1;

  thread_pool() {
    thread_scratch::local().reserve();
#ifdef _OPENMP
    start_workers(std::max(omp_get_max_threads(), 1) - 1);  // OMP_NUM_THREADS, as before
#else
    start_workers(0);
#endif
  }

  /// Takes tasks until none is left (caller and workers alike).
  void work() {
    bool& flag = in_task();
    flag = true;
    for (std::size_t t; (t = next_.fetch_add(1, std::memory_order_relaxed)) < tasks_;) {
      try {
        call_(ctx_, t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    flag = false;
  }

  /// seen: the signal when the worker was created (a later one means a job, or stop).
  void worker_loop(std::uint32_t seen) {
    for (;;) {
      // wait for a new signal: spin a little (jobs often follow each other closely), then sleep
      auto waiting = [&] {
        return signal_.load(std::memory_order_seq_cst) == seen && !stop_.load(std::memory_order_seq_cst);
      };
      for (unsigned spins = 0; waiting(); ++spins) {
        if (spins < 2048) {
          cpu_relax();
        } else {
          std::unique_lock<std::mutex> lock(sleep_mutex_);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          wake_.wait(lock, [&] { return !waiting(); });
          sleepers_.fetch_sub(1, std::memory_order_relaxed);
        }
      }
      seen = signal_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_acquire)) return;
      // join the open job, if it is still open
      std::uint64_t s = state_.load(std::memory_order_acquire);
      bool joined = false;
      while (s & open_bit)
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          joined = true;
          break;
        }
      if (!joined) continue;
      work();
      state_.fetch_sub(1, std::memory_order_release);
    }
  }

  /// Bumps the signal; wakes the workers that sleep (a worker that is about to sleep sees the new
  /// signal under the mutex and does not).
  void wake_workers() {
    signal_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex_); }
      wake_.notify_all();
    }
  }

  /// Starts n workers and returns once each has reserved its scratch (thread_scratch).
  void start_workers(int n) {
    stop_.store(false, std::memory_order_relaxed);
    const std::uint32_t seen = signal_.load(std::memory_order_seq_cst);
    std::atomic<int> ready{0};
    for (int i = 0; i < n; ++i)
      workers_.emplace_back([this, seen, &ready] {
        thread_scratch::local().reserve();
        ready.fetch_add(1, std::memory_order_release);
        worker_loop(seen);
      });
    while (ready.load(std::memory_order_acquire) < n) std::this_thread::yield();
  }
  void stop_workers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_release);
    wake_workers();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex job_mutex_, error_mutex_, sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> state_{0};  // job generation << 32 | open bit | workers running its tasks
  std::atomic<std::uint32_t> signal_{0};  // bumped to wake workers (a new job, or stop)
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  void (*call_)(const void*, std::size_t) = nullptr;
  const void* ctx_ = nullptr;
  std::size_t tasks_ = 0;
  std::atomic<std::size_t> next_{0};
  std::exception_ptr error_;
};

/// Threads the backend uses from here: 1 inside a task of a job, else the pool's size.
inline int available_threads() { return thread_pool::in_task() ? 1 : thread_pool::instance().size(); }

/// f(lo, hi) over [0, n) in pieces of at least `grain` (about 8 pieces per thread), on the pool;
/// one call f(0, n) on the caller when n ≤ grain or there is one thread.
template <class F>
void parallel_for(std::size_t n, std::size_t grain, const F& f) {
  const auto threads = static_cast<std::size_t>(available_threads());
  if (threads <= 1 || n <= grain) {
    if (n) f(std::size_t(0), n);
    return;
  }
  const std::size_t piece = std::max(grain, (n + 8 * threads - 1) / (8 * threads));
  const std::size_t tasks = (n + piece - 1) / piece;
  thread_pool::instance().run(tasks, [&](std::size_t t) { f(t * piece, std::min(n, (t + 1) * piece)); });
}

#if CDGAN_CPU_GEMM

// ---------------------------------------------------------------------------------------------
// Single-precision GEMM (BLIS-style): C = alpha·op(A)·op(B) + beta·C over strided operands.
//
// Loops, outermost first: columns of C in blocks of NC (jc), depth in blocks of KC (pc: op(B)'s
// KC×NC block is packed into panels of NR columns), rows in blocks of MC (ic: op(A)'s MC×KC block
// is packed into panels of MR rows, scaled by alpha), then the NR-wide micro-panels of B (jr) and the
// MR-tall micro-panels of A (ir) meet in the MR×NR register-tile micro-kernel. The micro-kernel
// keeps 2·MR vector accumulators; one k step is two vector loads of B, MR broadcasts of A and 2·MR
// FMAs. With AVX-512F (compiled with -mavx512f or -march=native on such a CPU) a vector is 16 floats
// (6×32 tile); with AVX2+FMA (-mavx2 -mfma) 8 floats (6×16 tile); otherwise 4 floats (SSE, 6×8
// tile), so the same code runs on every x86-64 build. CDGAN_CPU_GEMM_AVX512=0 keeps the AVX2 tile
// on an AVX-512 build (the benchmarks compare the two). A CPU that runs 512-bit FMAs at full width
// (Zen 5, Intel server cores) doubles its FMA rate with the wider tile; Zen 4 splits them in two
// halves, so there it changes only the instruction count (docs/performance.md).
//
// Threads: the work is cut into independent tasks along the longer of M and N (each task packs its
// own operands, so there is no barrier inside a GEMM and a descheduled thread delays only its own
// tasks); tasks are handed out dynamically. Every element of C is summed in the same order whatever
// the number of threads or tasks: results do not depend on the thread count.
// ---------------------------------------------------------------------------------------------

#ifndef CDGAN_CPU_GEMM_AVX512
#if defined(__AVX512F__)
#define CDGAN_CPU_GEMM_AVX512 1
#else
#define CDGAN_CPU_GEMM_AVX512 0
#endif
#endif

#if CDGAN_CPU_GEMM_AVX512 && defined(__AVX512F__)
using vec = __m512;
inline constexpr std::size_t vw = 16;
inline vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline vec vload_aligned(const float* p) { return _mm512_load_ps(p); }
inline void vstore(float* p, vec v) { _mm512_storeu_ps(p, v); }
inline vec vsplat(float s) { return _mm512_set1_ps(s); }
inline vec vzero() { return _mm512_setzero_ps(); }
inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec vadd(vec a, vec b) { return _mm512_add_ps(a, b); }
inline vec vmul(vec a, vec b) { return _mm512_mul_ps(a, b); }
#elif defined(__AVX2__) && defined(__FMA__)
using vec = __m256;
inline constexpr std::size_t vw = 8;
inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline vec vload_aligned(const float* p) { return _mm256_load_ps(p); }
inline void vstore(float* p, vec v) { _mm256_storeu_ps(p, v); }
inline vec vsplat(float s) { return _mm256_set1_ps(s); }
inline vec vzero() { return _mm256_setzero_ps(); }
inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
inline vec vmul(vec a, vec b) { return _mm256_mul_ps(a, b); }
#else
using vec = __m128;
inline constexpr std::size_t vw = 4;
inline vec vload(const float* p) { return _mm_loadu_ps(p); }
inline vec vload_aligned(const float* p) { return _mm_load_ps(p); }
inline void vstore(float* p, vec v) { _mm_storeu_ps(p, v); }
inline vec vsplat(float s) { return _mm_set1_ps(s); }
inline vec vzero() { return _mm_setzero_ps(); }
inline vec vfma(vec a, vec b, vec c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
inline vec vadd(vec a, vec b) { return _mm_add_ps(a, b); }
inline vec vmul(vec a, vec b) { return _mm_mul_ps(a, b); }
#endif

inline constexpr std::size_t mr = 6, nr = 2 * vw;
inline constexpr std::size_t kc_max = 256, mc_max = 120, nc_max = 2048;  // MC multiple of MR, NC of NR
static_assert(mc_max % mr == 0 && nc_max % nr == 0);

/// A strided matrix operand: element (i, j) is p[i·rs + j·cs].
struct operand {
  const float* p;
  std::size_t rs, cs;
  const float* at(std::size_t i, std::size_t j) const { return p + i * rs + j * cs; }
};

/// Per-thread packing buffers, allocated once per thread at their largest size.
struct pack_buffers {
  float* a = nullptr;
  float* b = nullptr;
  pack_buffers() {
    a = static_cast<float*>(std::aligned_alloc(64, 2 * mc_max * kc_max * sizeof(float)));
    b = static_cast<float*>(std::aligned_alloc(64, kc_max * nc_max * sizeof(float)));
    if (!a || !b) {
      std::free(a);
      std::free(b);
      throw std::bad_alloc();
    }
  }
  ~pack_buffers() {
    std::free(a);
    std::free(b);
  }
  pack_buffers(const pack_buffers&) = delete;
  pack_buffers& operator=(const pack_buffers&) = delete;
  static pack_buffers& local() {
    thread_local pack_buffers buffers;
    return buffers;
  }
};

#if defined(__AVX2__) && defined(__FMA__)
/// Transposes the 8×8 block with rows r0..r7 (8 floats each) into 8 rows at o[k·ostride] (aligned).
inline void transpose_8x8(__m256 r0, __m256 r1, __m256 r2, __m256 r3, __m256 r4, __m256 r5, __m256 r6, __m256 r7,
                          float* o, std::size_t ostride) {
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44),
         u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_store_ps(o, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_store_ps(o + ostride, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_store_ps(o + 2 * ostride, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_store_ps(o + 3 * ostride, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_store_ps(o + 4 * ostride, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_store_ps(o + 5 * ostride, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_store_ps(o + 6 * ostride, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_store_ps(o + 7 * ostride, _mm256_permute2f128_ps(u3, u7, 0x31));
}
/// Transposes the 8×8 block whose rows start at s[r·ld] into 8 rows at o[k·ostride] (aligned).
inline void transpose_8x8(const float* s, std::size_t ld, float* o, std::size_t ostride) {
  transpose_8x8(_mm256_loadu_ps(s), _mm256_loadu_ps(s + ld), _mm256_loadu_ps(s + 2 * ld), _mm256_loadu_ps(s + 3 * ld),
                _mm256_loadu_ps(s + 4 * ld), _mm256_loadu_ps(s + 5 * ld), _mm256_loadu_ps(s + 6 * ld),
                _mm256_loadu_ps(s + 7 * ld), o, ostride);
}
#endif

/// Packs rows [i0, i0 + m) × depth [k0, k0 + kc) of op(A), times alpha, into MR-row panels: panel p
/// holds, for each k, the MR values of rows i0 + p·MR + r (zero past m).
inline void pack_a(operand a, std::size_t i0, std::size_t m, std::size_t k0, std::size_t kc, float alpha, float* out) {
  for (std::size_t p = 0; p < m; p += mr) {
    const std::size_t rows = std::min(mr, m - p);
    float* o = out + p * kc;
    if (rows == mr && alpha == 1.f && a.rs == 1) {  // a panel's MR values of one k are contiguous
      for (std::size_t k = 0; k < kc; ++k) std::memcpy(o + k * mr, a.at(i0 + p, k0 + k), mr * sizeof(float));
      continue;
    }
    std::size_t k_done = 0;
#if defined(__AVX2__) && defined(__FMA__)
    if (rows == mr && alpha == 1.f && a.cs == 1) {  // rows contiguous in k: transpose 8 k at a time
      alignas(32) float t[8 * 8];
      const float* s = a.at(i0 + p, k0);
      const std::size_t ld = a.rs;
      for (; k_done + 8 <= kc; k_done += 8) {
        const float* r = s + k_done;
        const __m256 r5 = _mm256_loadu_ps(r + 5 * ld);  // rows 6 and 7 of the block: row 5 again, dropped
        transpose_8x8(_mm256_loadu_ps(r), _mm256_loadu_ps(r + ld), _mm256_loadu_ps(r + 2 * ld), _mm256_loadu_ps(r + 3 * ld),
                      _mm256_loadu_ps(r + 4 * ld), r5, r5, r5, t, 8);
        for (std::size_t kk = 0; kk < 8; ++kk) std::memcpy(o + (k_done + kk) * mr, t + kk * 8, mr * sizeof(float));
      }
    }
#endif
    for (std::size_t r = 0; r < rows; ++r) {
      const float* s = a.at(i0 + p + r, k0);
      for (std::size_t k = k_done; k < kc; ++k) o[k * mr + r] = alpha * s[k * a.cs];
    }
    for (std::size_t r = rows; r < mr; ++r)
      for (std::size_t k = k_done; k < kc; ++k) o[k * mr + r] = 0.f;
  }
}

/// Packs depth [k0, k0 + kc) × columns [j0, j0 + n) of op(B) into NR-column panels: panel p holds,
/// for each k, the NR values of columns j0 + p·NR + c (zero past n).
inline void pack_b(operand b, std::size_t k0, std::size_t kc, std::size_t j0, std::size_t n, float* out) {
  if (b.cs == 1) {  // rows of op(B) are contiguous: read each row once, in order, into every panel
    const std::size_t full = n / nr * nr;
    for (std::size_t k = 0; k < kc; ++k) {
      const float* s = b.at(k0 + k, j0);
      float* o = out + k * nr;
      for (std::size_t p = 0; p < full; p += nr, o += kc * nr)
        for (std::size_t c = 0; c < nr; c += vw) vstore(o + c, vload(s + p + c));
      if (full < n) {
        std::size_t c = 0;
        for (; c < n - full; ++c) o[c] = s[full + c];
        for (; c < nr; ++c) o[c] = 0.f;
      }
    }
    return;
  }
  for (std::size_t p = 0; p < n; p += nr) {  // strided rows (op(B) = Bᵀ of a row-major B): panel by panel
    const std::size_t cols = std::min(nr, n - p);
    float* o = out + p * kc;
    std::size_t k = 0;
#if defined(__AVX2__) && defined(__FMA__)
    if (b.rs == 1 && cols == nr) {  // columns of op(B) are contiguous: transpose 8×8 blocks
      for (; k + 8 <= kc; k += 8)
        for (std::size_t c = 0; c < nr; c += 8) transpose_8x8(b.at(k0 + k, j0 + p + c), b.cs, o + k * nr + c, nr);
    }
#endif
    for (std::size_t c = 0; c < cols; ++c) {
      const float* s = b.at(k0, j0 + p + c);
      for (std::size_t kk = k; kk < kc; ++kk) o[kk * nr + c] = s[kk * b.rs];
    }
    for (std::size_t c = cols; c < nr; ++c)
      for (std::size_t kk = k; kk < kc; ++kk) o[kk * nr + c] = 0.f;
  }
}

/// How the micro-kernel combines its tile with C: C = tile, C = tile + C, or C = tile + beta·C.
enum class store_mode { assign, add, scale_add };

/// C[0:m, 0:n] (m ≤ MR, n ≤ NR, row stride ldc) ⊕= Σ_k A(r, k)·B(k, c), where A(r, k) is a[k·MR + r]
/// (a packed panel) or, with DirectA, a[r·lda + k] (rows of op(A) read in place, contiguous in k; rows
/// past m read row m − 1 again and are dropped), and B(k, c) is b[k·NR + c] (a packed panel) or, with
/// DirectB, b[k·ldb + c] (rows of op(B) read in place; n = NR).
template <bool DirectA, bool DirectB>
inline void micro_kernel(std::size_t kc, const float* __restrict a, std::size_t lda, const float* __restrict b,
                         std::size_t ldb, float* c, std::size_t ldc, std::size_t m, std::size_t n, store_mode mode,
                         float beta) {
  // Fetch the C tile now, so that its misses (rows ldc apart, often not in cache) overlap the k loop
  // instead of stalling the stores after it.
  for (std::size_t r = 0; r < m; ++r) {
    __builtin_prefetch(c + r * ldc, 1, 3);
    __builtin_prefetch(c + r * ldc + nr - 1, 1, 3);
  }
  [[maybe_unused]] const float *a0 = a, *a1 = a, *a2 = a, *a3 = a, *a4 = a, *a5 = a;
  if constexpr (DirectA) {
    const auto row = [&](std::size_t r) { return a + std::min(r, m - 1) * lda; };
    a1 = row(1), a2 = row(2), a3 = row(3), a4 = row(4), a5 = row(5);
  }
  vec c00 = vzero(), c01 = vzero(), c10 = vzero(), c11 = vzero(), c20 = vzero(), c21 = vzero(), c30 = vzero(),
      c31 = vzero(), c40 = vzero(), c41 = vzero(), c50 = vzero(), c51 = vzero();
#if !defined(__CUDACC__)  // nvcc's front end does not know the pragma (a .cu file's CPU path)
#pragma GCC unroll 4
#endif
  for (std::size_t k = 0; k < kc; ++k) {
    vec b0, b1;
    if constexpr (DirectB) {
      b0 = vload(b), b1 = vload(b + vw);
      b += ldb;
    } else {
      b0 = vload_aligned(b), b1 = vload_aligned(b + vw);
      b += nr;
    }
    const auto at = [&](const float* row, std::size_t r) {
      if constexpr (DirectA)
        return row[k];
      else
        return a[r];
    };
    vec x = vsplat(at(a0, 0));
    c00 = vfma(x, b0, c00);
    c01 = vfma(x, b1, c01);
    x = vsplat(at(a1, 1));
    c10 = vfma(x, b0, c10);
    c11 = vfma(x, b1, c11);
    x = vsplat(at(a2, 2));
    c20 = vfma(x, b0, c20);
    c21 = vfma(x, b1, c21);
    x = vsplat(at(a3, 3));
    c30 = vfma(x, b0, c30);
    c31 = vfma(x, b1, c31);
    x = vsplat(at(a4, 4));
    c40 = vfma(x, b0, c40);
    c41 = vfma(x, b1, c41);
    x = vsplat(at(a5, 5));
    c50 = vfma(x, b0, c50);
    c51 = vfma(x, b1, c51);
    if constexpr (!DirectA) a += mr;
  }
  const vec acc[mr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (m == mr && n == nr) {
    const vec vb = vsplat(beta);
    for (std::size_t r = 0; r < mr; ++r) {
      float* row = c + r * ldc;
      for (std::size_t h = 0; h < 2; ++h) {
        vec v = acc[r][h];
        if (mode == store_mode::add)
          v = vadd(v, vload(row + h * vw));
        else if (mode == store_mode::scale_add)
          v = vfma(vb, vload(row + h * vw), v);
        vstore(row + h * vw, v);
      }
    }
  } else {
    alignas(64) float tile[mr][nr];
    for (std::size_t r = 0; r < mr; ++r) {
      vstore(tile[r], acc[r][0]);
      vstore(tile[r] + vw, acc[r][1]);
    }
    for (std::size_t r = 0; r < m; ++r) {
      float* row = c + r * ldc;
      for (std::size_t j = 0; j < n; ++j) {
        const float v = tile[r][j];
        row[j] = mode == store_mode::assign ? v : mode == store_mode::add ? v + row[j] : v + beta * row[j];
      }
    }
  }
}

/// The kernel on packed panels of A and B (as BM_micro_kernel measures it).
inline void micro_kernel(std::size_t kc, const float* __restrict a, const float* __restrict b, float* c, std::size_t ldc,
                         std::size_t m, std::size_t n, store_mode mode, float beta) {
  micro_kernel<false, false>(kc, a, mr, b, nr, c, ldc, m, n, mode, beta);
}

/// C[i0:i1, j0:j1] = alpha·op(A)·op(B) + beta·C on the calling thread (K > 0).
///
/// Packing copies each operand block once so that the micro-kernel reads it from the caches in its
/// own order; it pays where a packed element is used many times. Where it is not, the operand is read
/// in place (the products of the dense layers at batch 64, whose weight matrix is streamed once):
/// - op(B) with contiguous rows, when C has at most 16 MR tiles of rows (m ≤ 96): each packed panel of
///   B would serve at most 16 micro-kernel calls; the micro-kernel reads B's rows in place (whole NR
///   panels; the last, narrower one is packed). With 22 tiles (m = 128: the convolutions with 128
///   filters) packing measured faster again (docs/performance.md, run 8);
/// - op(A) with rows contiguous in k and alpha = 1, when C has at most 4 NR panels of columns: each
///   packed panel of A would serve at most 4 micro-kernel calls.
/// Each element of C is still summed in the same order (k ascending, depth blocks in order).
inline void gemm_block(std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1, std::size_t K, float alpha,
                       operand a, operand b, float beta, float* C, std::size_t ldc) {
  pack_buffers& buf = pack_buffers::local();
  // rows in equal blocks of about MC (up to 1.5·MC when that saves a pass over the packed B block)
  const std::size_t m = i1 - i0, blocks = m <= mc_max * 3 / 2 ? 1 : (m + mc_max - 1) / mc_max;
  const std::size_t mc_step = ((m + blocks - 1) / blocks + mr - 1) / mr * mr;
  const bool direct_b = b.cs == 1 && m <= 16 * mr;
  const bool direct_a = a.cs == 1 && alpha == 1.f && j1 - j0 <= 4 * nr;
  for (std::size_t jc = j0; jc < j1; jc += nc_max) {
    const std::size_t nc = std::min(nc_max, j1 - jc), full = direct_b ? nc / nr * nr : 0;
    for (std::size_t pc = 0; pc < K; pc += kc_max) {
      const std::size_t kc = std::min(kc_max, K - pc);
      const store_mode mode = pc > 0 ? store_mode::add
                              : beta == 0.f ? store_mode::assign
                              : beta == 1.f ? store_mode::add
                                            : store_mode::scale_add;
      if (full < nc) pack_b(b, pc, kc, jc + full, nc - full, buf.b + full * kc);  // all, or the narrow last panel
      for (std::size_t ic = i0; ic < i1; ic += mc_step) {
        const std::size_t mc = std::min(mc_step, i1 - ic);
        if (!direct_a) pack_a(a, ic, mc, pc, kc, alpha, buf.a);
        for (std::size_t jr = 0; jr < nc; jr += nr) {
          const bool in_place_b = jr < full;
          const float* bp = in_place_b ? b.at(pc, jc + jr) : buf.b + jr * kc;
          for (std::size_t ir = 0; ir < mc; ir += mr) {
            float* cp = C + (ic + ir) * ldc + jc + jr;
            const std::size_t mm = std::min(mr, mc - ir), nn = std::min(nr, nc - jr);
            if (direct_a) {
              const float* ap = a.at(ic + ir, pc);
              if (in_place_b)
                micro_kernel<true, true>(kc, ap, a.rs, bp, b.rs, cp, ldc, mm, nn, mode, beta);
              else
                micro_kernel<true, false>(kc, ap, a.rs, bp, nr, cp, ldc, mm, nn, mode, beta);
            } else {
              const float* ap = buf.a + ir * kc;
              if (in_place_b)
                micro_kernel<false, true>(kc, ap, mr, bp, b.rs, cp, ldc, mm, nn, mode, beta);
              else
                micro_kernel<false, false>(kc, ap, mr, bp, nr, cp, ldc, mm, nn, mode, beta);
            }
          }
        }
      }
    }
  }
}

/// C[M×N] (row stride ldc) = alpha·op(A)·op(B) + beta·C for K > 0, cut into tasks on the pool.
inline void gemm_tasks(std::size_t M, std::size_t N, std::size_t K, float alpha, operand a, operand b, float beta,
                       float* C, std::size_t ldc) {
  const int threads = available_threads();
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (threads <= 1 || work < 2e6) {
    gemm_block(0, M, 0, N, K, alpha, a, b, beta, C, ldc);
    return;
  }
  // Cut the longer side into tasks of equal numbers of micro-tiles: up to 4 tasks per thread of at
  // least 8 tiles each, and then a multiple of the thread count where there are tiles enough. The
  // convolutions' column chunks (2^20 elements) give N of a few hundred columns — 9 to 31 tiles of 32
  // — which 8 tiles a task alone cut into 1 to 3 tasks: serial, or one of 2 threads idle for a third
  // of the product (docs/performance.md, run 6).
  const bool split_n = N >= M;
  const std::size_t len = split_n ? N : M, unit = split_n ? nr : mr, units = (len + unit - 1) / unit;
  const auto T = static_cast<std::size_t>(threads);
  std::size_t tasks = std::clamp<std::size_t>(units / 8, 1, 4 * T);
  tasks = std::min(units, (tasks + T - 1) / T * T);
  thread_pool::instance().run(tasks, [&](std::size_t t) {
    const std::size_t lo = t * units / tasks * unit, hi = std::min(len, (t + 1) * units / tasks * unit);
    if (split_n)
      gemm_block(0, M, lo, hi, K, alpha, a, b, beta, C, ldc);
    else
      gemm_block(lo, hi, 0, N, K, alpha, a, b, beta, C, ldc);
  });
}

/// C[M×N] (row stride ldc) = alpha·op(A)·op(B) + beta·C, threaded (see the section comment).
///
/// A short, wide product whose op(B) is a transposed row-major matrix — a dense layer's forward pass
/// at batch 64, X·Wᵀ with the weight W [out][in] — is computed the other way round: Cᵀ = op(B)ᵀ·op(A)ᵀ
/// into a scratch matrix, then transposed into C. There the weight is op(A) with rows contiguous in k,
/// which gemm_block reads in place, and only the small op(A)ᵀ is packed; the direct way packs (and
/// transposes) all of W for a product that uses each of its elements M times.
inline void gemm(std::size_t M, std::size_t N, std::size_t K, float alpha, operand a, operand b, float beta, float* C,
                 std::size_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.f) {  // C = beta·C (beta = 0 overwrites whatever C held)
    for (std::size_t i = 0; i < M; ++i) {
      float* row = C + i * ldc;
      if (beta == 0.f)
        std::fill(row, row + N, 0.f);
      else if (beta != 1.f)
        for (std::size_t j = 0; j < N; ++j) row[j] *= beta;
    }
    return;
  }
  if (!(a.cs == 1 && b.rs == 1 && b.cs != 1 && M <= 4 * nr && N >= 2 * M)) {
    gemm_tasks(M, N, K, alpha, a, b, beta, C, ldc);
    return;
  }
  thread_local std::vector<float> scratch;  // grows to the largest product seen, then stays
  if (scratch.size() < M * N) scratch.resize(M * N);
  float* t = scratch.data();
  gemm_tasks(N, M, K, 1.f, operand{b.p, b.cs, b.rs}, operand{a.p, a.cs, a.rs}, 0.f, t, M);  // t = (op(A)·op(B))ᵀ
  parallel_for(N, 512, [&](std::size_t lo, std::size_t hi) {
    constexpr std::size_t block = 64;  // columns of C per pass: their rows of t stay in L1
    for (std::size_t j0 = lo; j0 < hi; j0 += block) {
      const std::size_t j1 = std::min(hi, j0 + block);
      for (std::size_t i = 0; i < M; ++i) {
        float* row = C + i * ldc;
        if (beta == 0.f)
          for (std::size_t j = j0; j < j1; ++j) row[j] = alpha * t[j * M + i];
        else
          for (std::size_t j = j0; j < j1; ++j) row[j] = alpha * t[j * M + i] + beta * row[j];
      }
    }
  });
}

#endif  // CDGAN_CPU_GEMM
}  // namespace detail::cpu_kernels

namespace detail::cpu_kernels {

// ---------------------------------------------------------------------------------------------
// Broadcasts evaluated by segment. `expr_broadcast` reads p[(i / inner) % period]: a division per
// element, which costs more than the rest of a typical expression. Over a stretch of indices where
// every broadcast of a tree is constant (one block of `inner` values) or walks its vector in order
// (inner 1: one row of `period` values), the executor rebinds the tree, replacing each broadcast by
// a scalar or a shifted pointer, and the loop becomes plain vector code. Nodes of other kinds are
// kept as they are and still evaluated at the global index, so the result is the same bits as the
// element-by-element loop.
// ---------------------------------------------------------------------------------------------

/// Element i is p[i − off] (a broadcast with inner 1 on the row of its period that starts at off).
struct expr_shifted_ref : expr_base {
  using device = cpu;
  const real* p;
  std::size_t off;
  CDGAN_HOST_DEVICE real operator[](std::size_t i) const { return p[i - off]; }
  bool fits(std::size_t) const { return true; }
};

/// What the broadcasts of a tree have in common.
struct broadcast_scan {
  std::size_t count = 0, inner = 0, period = 0;
  bool same_inner = true, same_period = true;
  void add(std::size_t i, std::size_t p) {
    if (count++ == 0) {
      inner = i;
      period = p;
    } else {
      same_inner &= i == inner;
      same_period &= p == period;
    }
  }
  /// The segment length over which the tree can be rebound, or 0.
  std::size_t segment() const {
    if (count == 0 || !same_inner || inner == 0) return 0;
    if (inner > 1) return inner;
    return same_period && period > 1 ? period : 0;
  }
};

template <class E>
void scan(const E&, broadcast_scan&) {}
template <class D>
void scan(const expr_broadcast<D>& e, broadcast_scan& s) {
  s.add(e.inner, e.period);
}
template <class Op, class A>
void scan(const expr_unary<Op, A>& e, broadcast_scan& s) {
  scan(e.a, s);
}
template <class Op, class A, class B>
void scan(const expr_binary<Op, A, B>& e, broadcast_scan& s) {
  scan(e.a, s);
  scan(e.b, s);
}
template <class C, class A, class B>
void scan(const expr_select<C, A, B>& e, broadcast_scan& s) {
  scan(e.c, s);
  scan(e.a, s);
  scan(e.b, s);
}

/// Tag argument of on_block / on_row: it makes the recursive calls find every overload (argument-
/// dependent lookup in this namespace), whatever their order of declaration.
struct rebind_tag {};

/// The tree on block `seg` of a segmentation with inner > 1: every broadcast is the scalar
/// p[seg % period].
template <class E>
E on_block(const E& e, std::size_t, rebind_tag = {}) {
  return e;
}
template <class D>
expr_scalar on_block(const expr_broadcast<D>& e, std::size_t seg, rebind_tag = {}) {
  return {{}, e.p[seg % e.period]};
}
template <class Op, class A>
auto on_block(const expr_unary<Op, A>& e, std::size_t seg, rebind_tag t = {}) {
  using a_t = decltype(on_block(e.a, seg, t));
  return expr_unary<Op, a_t>{{}, on_block(e.a, seg, t), e.op};
}
template <class Op, class A, class B>
auto on_block(const expr_binary<Op, A, B>& e, std::size_t seg, rebind_tag t = {}) {
  using a_t = decltype(on_block(e.a, seg, t));
  using b_t = decltype(on_block(e.b, seg, t));
  return expr_binary<Op, a_t, b_t>{{}, on_block(e.a, seg, t), on_block(e.b, seg, t), e.op};
}
template <class C, class A, class B>
auto on_block(const expr_select<C, A, B>& e, std::size_t seg, rebind_tag t = {}) {
  using c_t = decltype(on_block(e.c, seg, t));
  using a_t = decltype(on_block(e.a, seg, t));
  using b_t = decltype(on_block(e.b, seg, t));
  return expr_select<c_t, a_t, b_t>{{}, on_block(e.c, seg, t), on_block(e.a, seg, t), on_block(e.b, seg, t)};
}

/// The tree on the row of a segmentation with inner 1 that starts at index off: every broadcast is
/// its vector shifted to off.
template <class E>
E on_row(const E& e, std::size_t, rebind_tag = {}) {
  return e;
}
template <class D>
expr_shifted_ref on_row(const expr_broadcast<D>& e, std::size_t off, rebind_tag = {}) {
  return {{}, e.p, off};
}
template <class Op, class A>
auto on_row(const expr_unary<Op, A>& e, std::size_t off, rebind_tag t = {}) {
  using a_t = decltype(on_row(e.a, off, t));
  return expr_unary<Op, a_t>{{}, on_row(e.a, off, t), e.op};
}
template <class Op, class A, class B>
auto on_row(const expr_binary<Op, A, B>& e, std::size_t off, rebind_tag t = {}) {
  using a_t = decltype(on_row(e.a, off, t));
  using b_t = decltype(on_row(e.b, off, t));
  return expr_binary<Op, a_t, b_t>{{}, on_row(e.a, off, t), on_row(e.b, off, t), e.op};
}
template <class C, class A, class B>
auto on_row(const expr_select<C, A, B>& e, std::size_t off, rebind_tag t = {}) {
  using c_t = decltype(on_row(e.c, off, t));
  using a_t = decltype(on_row(e.a, off, t));
  using b_t = decltype(on_row(e.b, off, t));
  return expr_select<c_t, a_t, b_t>{{}, on_row(e.c, off, t), on_row(e.a, off, t), on_row(e.b, off, t)};
}

/// d[i] = s[i] and d[i] += s[i] for i < n: short rows of an image. The tail is one vector that
/// overlaps the last full one, computed before anything is stored (masked stores are slow on AMD).
#if defined(__AVX__)
inline void copy_row(float* __restrict d, const float* __restrict s, std::size_t n) {
  if (n >= 8) {
    const __m256 tail = _mm256_loadu_ps(s + n - 8);
    for (std::size_t i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_loadu_ps(s + i));
    _mm256_storeu_ps(d + n - 8, tail);
  } else if (n >= 4) {
    const __m128 head = _mm_loadu_ps(s), tail = _mm_loadu_ps(s + n - 4);
    _mm_storeu_ps(d, head);
    _mm_storeu_ps(d + n - 4, tail);
  } else {
    for (std::size_t i = 0; i < n; ++i) d[i] = s[i];
  }
}
inline void add_row(float* __restrict d, const float* __restrict s, std::size_t n) {
  if (n >= 8) {
    const __m256 tail = _mm256_add_ps(_mm256_loadu_ps(d + n - 8), _mm256_loadu_ps(s + n - 8));
    for (std::size_t i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_add_ps(_mm256_loadu_ps(d + i), _mm256_loadu_ps(s + i)));
    _mm256_storeu_ps(d + n - 8, tail);
  } else if (n >= 4) {
    const __m128 head = _mm_add_ps(_mm_loadu_ps(d), _mm_loadu_ps(s));
    const __m128 tail = _mm_add_ps(_mm_loadu_ps(d + n - 4), _mm_loadu_ps(s + n - 4));
    _mm_storeu_ps(d, head);
    _mm_storeu_ps(d + n - 4, tail);
  } else {
    for (std::size_t i = 0; i < n; ++i) d[i] += s[i];
  }
}
#else
inline void copy_row(float* __restrict d, const float* __restrict s, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) d[i] = s[i];
}
inline void add_row(float* __restrict d, const float* __restrict s, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) d[i] += s[i];
}
#endif

/// dst[i] = e[i] for i in [lo, hi).
template <class E>
inline void assign_range(real* dst, std::size_t lo, std::size_t hi, const E& e) {
  const E local = e;  // a copy that the stores to dst cannot alias, so its pointers stay in registers
#pragma omp simd
  for (std::size_t i = lo; i < hi; ++i) dst[i] = local[i];
}

/// Σ e[i] for i in [lo, hi), in float with a fixed vector-lane order.
template <class E>
inline float sum_range(std::size_t lo, std::size_t hi, const E& e) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (std::size_t i = lo; i < hi; ++i) s += e[i];
  return s;
}

}  // namespace detail::cpu_kernels

/// Sets the number of threads the CPU backend uses (its own pool; also OpenMP's and Eigen's, for
/// code built with CDGAN_CPU_GEMM=0). The default is OpenMP's (OMP_NUM_THREADS, else the number of
/// CPUs), or 1 without OpenMP. Call it between steps, not while another thread uses the backend.
inline void set_num_threads(int n) {
  detail::cpu_kernels::thread_pool::instance().resize(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}
/// The number of threads the CPU backend uses.
inline int num_threads() { return detail::cpu_kernels::thread_pool::instance().size(); }

template <>
struct executor<cpu> {
  /// dst[i] = e[i] for i < n: one vectorised loop, split across threads when large. A tree with
  /// broadcasts runs block by block (see detail::cpu_kernels::on_block / on_row).
  template <class E>
  static void run(real* dst, std::size_t n, const E& e) {
    CDGAN_CPU_RECORD(run(dst, n, e))
    namespace k = detail::cpu_kernels;
    k::broadcast_scan s;
    k::scan(e, s);
    const std::size_t len = s.segment();
    if (len == 0 || n % len != 0) {
      k::parallel_for(n, grain, [&](std::size_t lo, std::size_t hi) { k::assign_range(dst, lo, hi, e); });
      return;
    }
    const bool blocks = s.inner > 1;
    k::parallel_for(n / len, (grain + len - 1) / len, [&](std::size_t s0, std::size_t s1) {
      for (std::size_t seg = s0; seg < s1; ++seg) {
        const std::size_t lo = seg * len;
        if (blocks)
          k::assign_range(dst, lo, lo + len, k::on_block(e, seg));
        else
          k::assign_range(dst, lo, lo + len, k::on_row(e, lo));
      }
    });
  }
  /// Elements per task of a threaded elementwise loop.
  static constexpr std::size_t grain = 16384;
};

template <>
struct backend<cpu> {
  /// Convolutions work on column matrices of at most about this many elements (default 2^20, 4 MiB:
  /// they stay in the caches between im2col, the GEMMs and col2im); see nn/conv.hpp.
  static constexpr std::size_t column_chunk_elements = CDGAN_CPU_COLUMN_CHUNK;

  using rmat = Eigen::Matrix<real, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using map = Eigen::Map<rmat>;
  using cmap = Eigen::Map<const rmat>;

  /// C[M×N] = alpha·op(A)·op(B) + beta·C, row-major (beta = 0 overwrites C, NaNs included).
  static void gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha, const real* A,
                   const real* B, real beta, real* C) {
    CDGAN_CPU_RECORD(gemm(ta, tb, M, N, K, alpha, A, B, beta, C))
#if CDGAN_CPU_GEMM
    using detail::cpu_kernels::operand;
    const operand a = ta ? operand{A, 1, M} : operand{A, K, 1};
    const operand b = tb ? operand{B, 1, K} : operand{B, N, 1};
    detail::cpu_kernels::gemm(M, N, K, alpha, a, b, beta, C, N);
#else
    const auto m = static_cast<Eigen::Index>(M), n = static_cast<Eigen::Index>(N), k = static_cast<Eigen::Index>(K);
    map c(C, m, n);
    if (beta == real(0))
      c.setZero();
    else if (beta != real(1))
      c *= beta;
    cmap a(A, ta ? k : m, ta ? m : k);
    cmap b(B, tb ? n : k, tb ? k : n);
    if (!ta && !tb)
      c.noalias() += alpha * a * b;
    else if (ta && !tb)
      c.noalias() += alpha * a.transpose() * b;
    else if (!ta && tb)
      c.noalias() += alpha * a * b.transpose();
    else
      c.noalias() += alpha * a.transpose() * b.transpose();
#endif
  }

  /// `count` GEMMs with operands at A + i·sa, B + i·sb, C + i·sc. Small products run one per thread;
  /// large ones one after another, each threaded.
  static void gemm_batched(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, real alpha,
                           const real* A, std::size_t sa, const real* B, std::size_t sb, real beta, real* C,
                           std::size_t sc, std::size_t count) {
    CDGAN_CPU_RECORD(gemm_batched(ta, tb, M, N, K, alpha, A, sa, B, sb, beta, C, sc, count))
    const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    auto one = [&](std::size_t u) { gemm(ta, tb, M, N, K, alpha, A + u * sa, B + u * sb, beta, C + u * sc); };
    if (count > 1 && work < 4e6 && work * static_cast<double>(count) >= 1e6)
      detail::cpu_kernels::thread_pool::instance().run(count, one);  // small products: one per task
    else
      for (std::size_t u = 0; u < count; ++u) one(u);
  }

  /// out[m] = beta·out[m] + R over (o, i) of e[(o·mid + m)·inner + i]. Sums add each run of `inner`
  /// values in float (a fixed vector-lane order) and the runs in double, in order of o; with inner 1
  /// they add in double in order of o. Deterministic: the same bits for any thread count.
  template <class R, class E>
  static void reduce(real* out, std::size_t outer, std::size_t mid, std::size_t inner, const E& e, real beta = 0) {
    CDGAN_CPU_RECORD(reduce<R>(out, outer, mid, inner, e, beta))
    namespace k = detail::cpu_kernels;
    constexpr bool is_sum = std::is_same_v<R, reduction::sum>;
    const bool big = outer * mid * inner >= 32768;
    k::broadcast_scan s;
    k::scan(e, s);
    auto finish = [&](std::size_t m, double acc) {
      const real r = static_cast<real>(acc);
      out[m] = beta == real(0) ? r : (is_sum ? beta * out[m] + r : std::max(beta * out[m], r));
    };
    if constexpr (is_sum) {
      if (inner == 1) {
        // columns of an [outer][mid] array: blocks of m, each row of the block added in order of o
        constexpr std::size_t blk = 256;
        // broadcasts with inner 1 and period mid walk each row: shift them
        const bool rows = s.count > 0 && s.same_inner && s.inner == 1 && s.same_period && s.period == mid;
        const bool plain = s.count == 0;
        const std::size_t nb = (mid + blk - 1) / blk;
        k::parallel_for(nb, big ? 1 : nb, [&](std::size_t b0, std::size_t b1) {
        for (std::size_t bb = b0; bb < b1; ++bb) {
          const std::size_t m0 = bb * blk, len = std::min(blk, mid - m0);
          double acc[blk];
          for (std::size_t j = 0; j < len; ++j) acc[j] = 0.0;
          for (std::size_t o = 0; o < outer; ++o) {
            const std::size_t base = o * mid + m0;
            if (rows) {
              const auto eo = k::on_row(e, o * mid);
#pragma omp simd
              for (std::size_t j = 0; j < len; ++j) acc[j] += static_cast<double>(eo[base + j]);
            } else if (plain) {
#pragma omp simd
              for (std::size_t j = 0; j < len; ++j) acc[j] += static_cast<double>(e[base + j]);
            } else {
              for (std::size_t j = 0; j < len; ++j) acc[j] += static_cast<double>(e[base + j]);
            }
          }
          for (std::size_t j = 0; j < len; ++j) finish(m0 + j, acc[j]);
        }
        });
        return;
      }
    }
    // broadcasts whose inner is the run length are constant on each run
    const bool blocks = s.count > 0 && s.same_inner && s.inner == inner && inner > 1;
    if constexpr (is_sum) {
      // blocks of m, each sweeping the array in order of o (runs of one block are contiguous)
      constexpr std::size_t max_blk = 512;
      const std::size_t threads = big ? static_cast<std::size_t>(detail::cpu_kernels::available_threads()) : 1;
      const std::size_t nb = std::max((mid + max_blk - 1) / max_blk, std::min(mid, 2 * threads));
      const std::size_t blk = (mid + nb - 1) / nb;
      k::parallel_for(nb, big ? 1 : nb, [&](std::size_t b0, std::size_t b1) {
      for (std::size_t bb = b0; bb < b1; ++bb) {
        const std::size_t m0 = bb * blk, m1 = std::min(mid, m0 + blk);
        if (m0 >= m1) continue;
        double acc[max_blk];
        for (std::size_t m = m0; m < m1; ++m) acc[m - m0] = 0.0;
        for (std::size_t o = 0; o < outer; ++o)
          for (std::size_t m = m0; m < m1; ++m) {
            const std::size_t seg = o * mid + m, base = seg * inner;
            acc[m - m0] += blocks ? k::sum_range(base, base + inner, k::on_block(e, seg)) : k::sum_range(base, base + inner, e);
          }
        for (std::size_t m = m0; m < m1; ++m) finish(m, acc[m - m0]);
      }
      });
    } else {
      k::parallel_for(mid, big ? 1 : mid, [&](std::size_t mlo, std::size_t mhi) {
      for (std::size_t m = mlo; m < mhi; ++m) {
        double acc = -std::numeric_limits<double>::infinity();
        for (std::size_t o = 0; o < outer; ++o) {
          const std::size_t base = (o * mid + m) * inner;
          for (std::size_t i = 0; i < inner; ++i) acc = std::max<double>(acc, e[base + i]);
        }
        finish(m, acc);
      }
      });
    }
  }

  /// col[b] = im2col(x[b]): col is [batch][C·K·K][OH·OW].
  static void im2col(const real* x, std::size_t batch, const conv_geometry& g, real* col) {
    CDGAN_CPU_RECORD(im2col(x, batch, g, col))
    const std::size_t rows = g.col_rows(), cols = g.col_cols(), kk = g.k * g.k;
    detail::cpu_kernels::parallel_for(batch * g.c, plane_grain(g, 1), [&](std::size_t lo, std::size_t hi) {
      for (std::size_t bc = lo; bc < hi; ++bc) {
        const std::size_t b = bc / g.c, c = bc % g.c;
        im2col_planes(x + bc * g.h * g.w, 0, 1, g, col + (b * rows + c * kk) * cols, cols);
      }
    });
  }

  /// x[b] += col2im(col[b]) (col as im2col's); threads split the images so no two threads write the
  /// same one. Each pixel adds its contributions in (ky, kx) order, as backend<cuda>.
  static void col2im(const real* col, std::size_t batch, const conv_geometry& g, real* x) {
    CDGAN_CPU_RECORD(col2im(col, batch, g, x))
    const std::size_t rows = g.col_rows(), cols = g.col_cols(), kk = g.k * g.k;
    detail::cpu_kernels::parallel_for(batch * g.c, plane_grain(g, 1), [&](std::size_t lo, std::size_t hi) {
      for (std::size_t bc = lo; bc < hi; ++bc) {
        const std::size_t b = bc / g.c, c = bc % g.c;
        col2im_planes(col + (b * rows + c * kk) * cols, cols, 1, g, x + bc * g.h * g.w, 0);
      }
    });
  }

  /// The batch-wide column matrix: col is [C·K·K][batch·OH·OW], sample b's columns at b·OH·OW of
  /// every row, so one GEMM with the [F][C·K·K] weight convolves the whole batch (its [F][batch·OH·OW]
  /// result becomes NCHW with swap_axes). Channel-major order: consecutive image planes of one
  /// channel fill consecutive stretches of the same K·K rows.
  static void im2col_wide(const real* x, std::size_t batch, const conv_geometry& g, real* col) {
    CDGAN_CPU_RECORD(im2col_wide(x, batch, g, col))
    const std::size_t cols = g.col_cols(), kk = g.k * g.k, hw = g.h * g.w;
    const std::size_t G = group_size(g), groups = (batch + G - 1) / G;
    detail::cpu_kernels::parallel_for(g.c * groups, plane_grain(g, G), [&](std::size_t lo, std::size_t hi) {
      for (std::size_t t = lo; t < hi; ++t) {
        const std::size_t c = t / groups, b = t % groups * G;
        im2col_planes(x + (b * g.c + c) * hw, g.c * hw, std::min(G, batch - b), g, col + (c * kk * batch + b) * cols,
                      batch * cols);
      }
    });
  }

  /// x[b] += col2im of sample b's columns of the batch-wide column matrix (as im2col_wide's); the
  /// same per-pixel order as col2im.
  static void col2im_wide(const real* col, std::size_t batch, const conv_geometry& g, real* x) {
    CDGAN_CPU_RECORD(col2im_wide(col, batch, g, x))
    const std::size_t cols = g.col_cols(), kk = g.k * g.k, hw = g.h * g.w;
    const std::size_t G = group_size(g), groups = (batch + G - 1) / G;
    detail::cpu_kernels::parallel_for(g.c * groups, plane_grain(g, G), [&](std::size_t lo, std::size_t hi) {
      for (std::size_t t = lo; t < hi; ++t) {
        const std::size_t c = t / groups, b = t % groups * G;
        col2im_planes(col + (c * kk * batch + b) * cols, batch * cols, std::min(G, batch - b), g,
                      x + (b * g.c + c) * hw, g.c * hw);
      }
    });
  }

  /// dst[m][o][i] = src[o][m][i] (+ bias[o] when bias is not null), for o < outer, m < mid, i < inner:
  /// swaps the two outer axes of a [outer][mid][inner] array ([F][batch][OH·OW] ↔ NCHW).
  static void swap_axes(real* dst, const real* src, std::size_t outer, std::size_t mid, std::size_t inner,
                        const real* bias = nullptr) {
    CDGAN_CPU_RECORD(swap_axes(dst, src, outer, mid, inner, bias))
    const std::size_t grain = std::max<std::size_t>(1, executor<cpu>::grain / std::max<std::size_t>(inner, 1));
    detail::cpu_kernels::parallel_for(outer * mid, grain, [&](std::size_t lo, std::size_t hi) {
      for (std::size_t om = lo; om < hi; ++om) {
        const std::size_t o = om / mid, m = om % mid;
        const real* s = src + om * inner;
        real* d = dst + (m * outer + o) * inner;
        if (bias) {
          const real v = bias[o];
          for (std::size_t i = 0; i < inner; ++i) d[i] = s[i] + v;
        } else {
          std::memcpy(d, s, inner * sizeof(real));
        }
      }
    });
  }

  /// f(i) for every i < n, in any order and on any thread: a fused multi-output elementwise kernel
  /// (e.g. the optimisers' update of a parameter and its state in one pass). F is trivially copyable
  /// and its `operator()(std::size_t) const` is CDGAN_HOST_DEVICE; f(i) touches only index i. Where F
  /// also has a host `range(lo, hi)` doing f(i) for i in [lo, hi) (a vectorised form, e.g. Adam's),
  /// that is called instead.
  template <class F>
  static void for_each(std::size_t n, const F& f) {
    CDGAN_CPU_RECORD(for_each(n, f))
    detail::cpu_kernels::parallel_for(n, executor<cpu>::grain, [&](std::size_t lo, std::size_t hi) {
      if constexpr (requires(const F& x, std::size_t i) { x.range(i, i); }) {
        f.range(lo, hi);
      } else {
        const F local = f;  // a copy the stores cannot alias
#pragma omp simd
        for (std::size_t i = lo; i < hi; ++i) local(i);
      }
    });
  }

  static void copy(real* dst, const real* src, std::size_t n) {
    CDGAN_CPU_RECORD(copy(dst, src, n))
    if (n) std::memcpy(dst, src, n * sizeof(real));
  }
  static bool all_finite(const real* p, std::size_t n) {
    CDGAN_CPU_NOT_WHILE_RECORDING("all_finite (it waits for the device)")
    bool ok = true;
    for (std::size_t i = 0; i < n; ++i) ok &= std::isfinite(p[i]);
    return ok;
  }
  static void synchronize() { CDGAN_CPU_NOT_WHILE_RECORDING("synchronize") }

 private:
  /// Zero-padded image planes, (H + 2P) × (W + 2P), and the offsets of the output pixels in them:
  /// pixel (oy, ox) of the kernel offset (ky, kx) reads padded element ky·Wp + kx + off[oy·OW + ox],
  /// off[oy·OW + ox] = S·oy·Wp + S·ox.
  struct padded_planes {
    std::size_t hp, wp, elems;
    real* p;
    std::int32_t* off;

    padded_planes(const conv_geometry& g, std::size_t n)
        : hp(g.h + 2 * g.pad), wp(g.w + 2 * g.pad), elems(hp * wp) {
      auto& planes = detail::cpu_kernels::thread_scratch::local().planes;
      auto& offsets = detail::cpu_kernels::thread_scratch::local().offsets;
      if (planes.size() < n * elems) planes.resize(n * elems);
      if (offsets.size() < g.oh * g.ow) offsets.resize(g.oh * g.ow);
      p = planes.data();
      off = offsets.data();
      for (std::size_t oy = 0; oy < g.oh; ++oy)
        for (std::size_t ox = 0; ox < g.ow; ++ox)
          off[oy * g.ow + ox] = static_cast<std::int32_t>(g.stride * (oy * wp + ox));
    }
    real* plane(std::size_t i) const { return p + i * elems; }
    /// Plane i = the H×W plane xc inside a zero border.
    void load(std::size_t i, const real* xc, const conv_geometry& g) const {
      real* q = plane(i);
      std::fill(q, q + g.pad * wp, real(0));
      for (std::size_t y = 0; y < g.h; ++y) {
        real* r = q + (y + g.pad) * wp;
        std::fill(r, r + g.pad, real(0));
        std::memcpy(r + g.pad, xc + y * g.w, g.w * sizeof(real));
        std::fill(r + g.pad + g.w, r + wp, real(0));
      }
      std::fill(q + (g.h + g.pad) * wp, q + elems, real(0));
    }
    /// The H×W plane xc = the inside of plane i.
    void store(std::size_t i, real* xc, const conv_geometry& g) const {
      const real* q = plane(i);
      for (std::size_t y = 0; y < g.h; ++y) std::memcpy(xc + y * g.w, q + (y + g.pad) * wp + g.pad, g.w * sizeof(real));
    }
  };

  /// out[j] = src[off[j]] for j < m.
  static void gather(real* __restrict out, const real* __restrict src, const std::int32_t* off, std::size_t m) {
    std::size_t j = 0;
#if defined(__AVX2__)
    for (; j + 8 <= m; j += 8)
      _mm256_storeu_ps(out + j, _mm256_i32gather_ps(src, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(off + j)), 4));
#endif
    for (; j < m; ++j) out[j] = src[off[j]];
  }

  /// One image plane, zero-padded and split by column phase: for stride S, phase φ < S holds
  /// columns φ, φ + S, φ + 2S, ... of the padded plane, so that the input columns of one output row of
  /// a kernel offset (ky, kx) are contiguous: padded row S·oy + ky, phase kx % S, from kx / S on.
  struct phase_plane {
    std::size_t s, hp, wph;  // stride, padded height, columns per phase
    real* p;
    real* row(std::size_t phase, std::size_t y) const { return p + (phase * hp + y) * wph; }
    static std::size_t size(const conv_geometry& g) {
      return g.stride * (g.h + 2 * g.pad) * ((g.w + 2 * g.pad + g.stride - 1) / g.stride);
    }
    phase_plane(const conv_geometry& g, real* storage)
        : s(g.stride), hp(g.h + 2 * g.pad), wph((g.w + 2 * g.pad + g.stride - 1) / g.stride), p(storage) {}
    /// The columns [lo, hi) of phase φ that lie inside the image (padded column S·t + φ − P in [0, W)).
    std::pair<std::size_t, std::size_t> inside(std::size_t phase, const conv_geometry& g) const {
      const std::size_t lo = g.pad > phase ? (g.pad - phase + s - 1) / s : 0;
      const std::size_t hi = g.w + g.pad > phase ? (g.w + g.pad - phase + s - 1) / s : 0;
      return {lo, std::max(lo, hi)};
    }
    /// Fills from the H×W plane xc (zero outside).
    void load(const real* xc, const conv_geometry& g) const {
      std::fill(p, p + s * hp * wph, real(0));
      for (std::size_t phase = 0; phase < s; ++phase) {
        const auto [lo, hi] = inside(phase, g);
        if (lo == hi) continue;
        for (std::size_t y = 0; y < g.h; ++y) {
          real* r = row(phase, y + g.pad);
          const real* xr = xc + y * g.w + (s * lo + phase - g.pad);  // column of t = lo
          for (std::size_t t = 0; t < hi - lo; ++t) r[lo + t] = xr[s * t];
        }
      }
    }
    /// Writes back into the H×W plane xc.
    void store(real* xc, const conv_geometry& g) const {
      for (std::size_t phase = 0; phase < s; ++phase) {
        const auto [lo, hi] = inside(phase, g);
        if (lo == hi) continue;
        for (std::size_t y = 0; y < g.h; ++y) {
          const real* r = row(phase, y + g.pad);
          real* xr = xc + y * g.w + (s * lo + phase - g.pad);
          for (std::size_t t = 0; t < hi - lo; ++t) xr[s * t] = r[lo + t];
        }
      }
    }
  };

  /// Per-thread scratch for phase planes.
  static real* plane_scratch(std::size_t n) {
    auto& scratch = detail::cpu_kernels::thread_scratch::local().phases;
    if (scratch.size() < n) scratch.resize(n);
    return scratch.data();
  }
  /// Image planes (or groups of `per` planes) per task of a threaded im2col / col2im: about 32K
  /// column elements.
  static std::size_t plane_grain(const conv_geometry& g, std::size_t per) {
    const std::size_t elems = per * g.col_rows() / std::max<std::size_t>(g.c, 1) * g.col_cols();
    return std::max<std::size_t>(1, (std::size_t(1) << 15) / std::max<std::size_t>(elems, 1));
  }

  /// Images handled together by im2col_wide / col2im_wide: their columns are contiguous in each row
  /// of the batch-wide matrix, and their phase planes should stay in L1 (about 24 KiB).
  static std::size_t group_size(const conv_geometry& g) {
    const std::size_t bytes = phase_plane::size(g) * sizeof(real);
    return std::clamp<std::size_t>(bytes ? (24u << 10) / bytes : 1, 1, 16);
  }

  /// The K·K column rows of n image planes (plane i at xc + i·x_stride, H×W): row (ky, kx) at
  /// col + (ky·K + kx)·row_stride gets, for each plane in turn, out[oy·OW + ox] =
  /// xc[S·oy − P + ky][S·ox − P + kx] (0 outside the image).
  static void im2col_planes(const real* xc, std::size_t x_stride, std::size_t n, const conv_geometry& g, real* col,
                            std::size_t row_stride) {
    if (g.ow < 4) {  // rows too short for vector copies: gather each kernel offset's OH·OW pixels at once
      const padded_planes pp(g, n);
      const std::size_t m = g.oh * g.ow;
      for (std::size_t i = 0; i < n; ++i) pp.load(i, xc + i * x_stride, g);
      for (std::size_t ky = 0; ky < g.k; ++ky)
        for (std::size_t kx = 0; kx < g.k; ++kx) {
          real* out = col + (ky * g.k + kx) * row_stride;
          const std::size_t base = ky * pp.wp + kx;
          for (std::size_t i = 0; i < n; ++i, out += m) gather(out, pp.plane(i) + base, pp.off, m);
        }
      return;
    }
    const std::size_t ps = phase_plane::size(g);
    real* scratch = plane_scratch(n * ps);
    for (std::size_t i = 0; i < n; ++i) phase_plane(g, scratch + i * ps).load(xc + i * x_stride, g);
    for (std::size_t ky = 0; ky < g.k; ++ky)
      for (std::size_t kx = 0; kx < g.k; ++kx) {
        real* out = col + (ky * g.k + kx) * row_stride;
        const std::size_t phase = kx % g.stride, t0 = kx / g.stride;
        for (std::size_t i = 0; i < n; ++i) {
          const phase_plane pp(g, scratch + i * ps);
          for (std::size_t oy = 0; oy < g.oh; ++oy, out += g.ow)
            detail::cpu_kernels::copy_row(out, pp.row(phase, oy * g.stride + ky) + t0, g.ow);
        }
      }
  }

  /// Adds into n image planes (plane i at xc + i·x_stride) the K·K column rows of their channel, row
  /// (ky, kx) at col + (ky·K + kx)·row_stride holding the planes' columns one after another; each
  /// pixel adds its contributions onto its value in (ky, kx) order.
  static void col2im_planes(const real* col, std::size_t row_stride, std::size_t n, const conv_geometry& g, real* xc,
                            std::size_t x_stride) {
    const std::size_t ps = phase_plane::size(g);
    real* scratch = plane_scratch(n * ps);
    for (std::size_t i = 0; i < n; ++i) phase_plane(g, scratch + i * ps).load(xc + i * x_stride, g);
    for (std::size_t ky = 0; ky < g.k; ++ky)
      for (std::size_t kx = 0; kx < g.k; ++kx) {
        const real* in = col + (ky * g.k + kx) * row_stride;
        const std::size_t phase = kx % g.stride, t0 = kx / g.stride;
        for (std::size_t i = 0; i < n; ++i) {
          const phase_plane pp(g, scratch + i * ps);
          for (std::size_t oy = 0; oy < g.oh; ++oy, in += g.ow)
            detail::cpu_kernels::add_row(pp.row(phase, oy * g.stride + ky) + t0, in, g.ow);
        }
      }
    for (std::size_t i = 0; i < n; ++i) phase_plane(g, scratch + i * ps).store(xc + i * x_stride, g);
  }
};

}  // namespace cdgan
