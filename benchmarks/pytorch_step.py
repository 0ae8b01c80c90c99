#!/usr/bin/env python3
"""The MNIST CD-GAN training step of cdgan, in PyTorch, timed (the PyTorch side of benchmarks/compare.sh).

What this is: the same networks as include/cdgan/gan/presets.hpp `mnist_nets<30, 10, 40>` and the same
step as include/cdgan/gan/model.hpp `model::step()` with objective::wgan_gp and the "mnist" preset
(n_critic 1, batch D/G 64, batch E 512 or given, beta1 = 50, beta2 = 5e-4, tau = 0.07, sigma = 1,
lambda = 10, the all-positives contrastive loss, Adam lr 1e-4, betas (0.5, 0.9), eps 1e-8):

  D step: z, c ~ p(z) p(c); fake = G(z, c) (no graph); D on [real; fake];
          L_D = mean D(fake) - mean D(real) + lambda * mean_b (||grad_x D(x_hat_b)|| - 1)^2,
          x_hat = eps * real + (1 - eps) * fake, eps ~ U(0, 1) per sample; the penalty's gradient is
          exact (autograd.grad with create_graph=True, then double backward); Adam on D.
  G step: D and E fixed (their parameters do not require grad): x = G(z, c) on batch_g codes;
          L = -mean D(x) + beta1 * L_c(E_f(x), c) + beta2 * mean ||z - E_e(x)||^2; Adam on G.
  E step: G fixed: x = G(z, c) on batch_e codes (no graph, train-mode batch norm as cdgan);
          L = beta1 * L_c + beta2 * L_z; Adam on E.

L_c is SupCon's L_out over the generated rows (every other row with the same c is a positive; the
denominator runs over all j != i), on L2-normalised E_f features with s_ij = f_i . f_j / tau, the
mean over anchors that have a positive (as include/cdgan/losses/contrastive.hpp, positives::all).

Real images are uniform random (as benchmarks/bench_step.cpp). The script times `--steps` steps after
`--warmup` ones and prints one JSON object: median / mean / min step time, GFLOP per step from the
layer shapes with the convention of benchmarks/flops.hpp, the achieved GFLOP/s, a large fp32 GEMM's
GFLOP/s measured in the same process at the same thread count (the machine's practical peak), the
peak resident memory, and the BLAS / allocator environment it ran under.

Usage: python3 benchmarks/pytorch_step.py --threads 2 --batch-e 512 [--steps 10 --warmup 3 --gemm-n 4096]
       python3 benchmarks/pytorch_step.py --device cuda --batch-e 512 [--tf32]   (on the GPU, see below)
       python3 benchmarks/pytorch_step.py --self-test     (checks the loss code against plain loops)

On the GPU (--device cuda; scripts/gpu-check.sh runs it): networks, optimiser state, real images and
every sampled tensor live on the device; the device is synchronised before each step's timer starts and
after the step (torch.cuda.synchronize), so a step time is the whole step. TF32 is off for both cuBLAS
matmuls and cuDNN convolutions unless --tf32 is given (cdgan's default is exact FP32 as well; PyTorch's
own default allows TF32 in cuDNN convolutions). The peak GEMM is a torch.mm on the device, and the JSON
gains the GPU's name and the peak device memory allocated.
Needs Debian's python3-torch (run it with /usr/bin/python3 where another python3 comes first in PATH).
"""
import argparse
import ctypes
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

Z, C, FEAT = 30, 10, 40
DEVICE = torch.device("cpu")  # set by --device; every tensor the step creates is made here


# ----------------------------------------------------------------------------------------------
# Networks: presets::mnist_nets<30, 10, 40>
# ----------------------------------------------------------------------------------------------

def generator():
    return nn.Sequential(
        nn.Linear(Z + C, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, 128 * 7 * 7), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Sigmoid())


def critic():
    return nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(128 * 7 * 7, 1024), nn.LeakyReLU(0.2),
        nn.Linear(1024, 1))


class Encoder(nn.Module):
    """heads<trunk, dense<F>, dense<Z>>: E_f (class feature) and E_e (content estimate)."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 256, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(256 * 3 * 3, 1024), nn.LeakyReLU(0.2))
        self.f = nn.Linear(1024, FEAT)
        self.e = nn.Linear(1024, Z)

    def forward(self, x):
        h = self.trunk(x)
        return self.f(h), self.e(h)


# ----------------------------------------------------------------------------------------------
# FLOP count, same convention as benchmarks/flops.hpp
# ----------------------------------------------------------------------------------------------

def macs_per_sample(net, in_shape):
    """Forward multiply-accumulates per sample of the weight-bearing layers: dense In*Out,
    conv out_size * C*K*K, conv_transpose in_size * F*K*K (flops.hpp's convention)."""
    total = [0.0]

    def hook(m, inp, out):
        x = inp[0]
        if isinstance(m, nn.Linear):
            total[0] += m.in_features * m.out_features
        elif isinstance(m, nn.Conv2d):
            kk = m.kernel_size[0] * m.kernel_size[1]
            total[0] += out[0].numel() * m.in_channels * kk
        elif isinstance(m, nn.ConvTranspose2d):
            kk = m.kernel_size[0] * m.kernel_size[1]
            total[0] += x[0].numel() * m.out_channels * kk

    hs = [m.register_forward_hook(hook) for m in net.modules()
          if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros((1,) + tuple(in_shape), device=next(net.parameters()).device))
    net.train(was_training)
    for h in hs:
        h.remove()
    return total[0]


def cdgan_step_flops(g, d, e, bd, bg, be):
    """flops.hpp cdgan_step_flops: 2 FLOP per MAC; backward = 2 forwards, double backward = 2."""
    d_step = g * bd + 3 * d * 2 * bd + 4 * d * bd
    g_step = 3 * g * bg + 2 * d * bg + 2 * e * bg
    e_step = g * be + 3 * e * be
    return 2 * (d_step + g_step + e_step)


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

def contrastive_all(f, labels, tau):
    """SupCon L_out over all rows (losses::contrastive, positives::all, no labelled rows)."""
    u = F.normalize(f, dim=1, eps=1e-12)
    s = u @ u.t() / tau
    n = s.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=f.device)
    s = s.masked_fill(eye, float("-inf"))  # the anchor itself is in no denominator
    log_prob = s - torch.logsumexp(s, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    cnt = pos.sum(1)
    valid = cnt > 0
    row = -(log_prob.masked_fill(~pos, 0.0)).sum(1) / cnt.clamp(min=1)
    return row[valid].sum() / valid.sum().clamp(min=1)


def contrastive_loops(f, labels, tau):
    """The same loss with plain Python loops (for --self-test)."""
    import math
    n = f.shape[0]
    u = [[float(v) for v in row] for row in F.normalize(f, dim=1)]
    s = [[sum(a * b for a, b in zip(u[i], u[j])) / tau for j in range(n)] for i in range(n)]
    total, k = 0.0, 0
    for i in range(n):
        den = sum(math.exp(s[i][j]) for j in range(n) if j != i)
        ps = [j for j in range(n) if j != i and labels[j] == labels[i]]
        if not ps:
            continue
        total += -sum(math.log(math.exp(s[i][p]) / den) for p in ps) / len(ps)
        k += 1
    return total / k if k else 0.0


def content(e, z):
    return ((e - z) ** 2).sum(1).mean()


# ----------------------------------------------------------------------------------------------
# The model and its step
# ----------------------------------------------------------------------------------------------

class CDGAN:
    def __init__(self, batch_d=64, batch_g=64, batch_e=512, beta1=50.0, beta2=5e-4, tau=0.07, sigma=1.0,
                 gp_lambda=10.0, lr=1e-4, betas=(0.5, 0.9), foreach=None):
        self.bd, self.bg, self.be = batch_d, batch_g, batch_e
        self.beta1, self.beta2, self.tau, self.sigma, self.lam = beta1, beta2, tau, sigma, gp_lambda
        self.G, self.D, self.E = generator().to(DEVICE), critic().to(DEVICE), Encoder().to(DEVICE)
        kw = dict(lr=lr, betas=betas, eps=1e-8)
        if foreach is not None:
            kw["foreach"] = foreach
        self.g_opt = torch.optim.Adam(self.G.parameters(), **kw)
        self.d_opt = torch.optim.Adam(self.D.parameters(), **kw)
        self.e_opt = torch.optim.Adam(self.E.parameters(), **kw)

    def latent(self, b):
        z = torch.randn(b, Z, device=DEVICE) * self.sigma
        c = torch.randint(0, C, (b,), device=DEVICE)
        return z, c, torch.cat([z, F.one_hot(c, C).to(z.dtype)], 1)

    @staticmethod
    def _requires_grad(net, flag):
        for p in net.parameters():
            p.requires_grad_(flag)

    def d_step(self, real):
        b = real.shape[0]
        _, _, zc = self.latent(b)
        with torch.no_grad():
            fake = self.G(zc)
        out = self.D(torch.cat([real, fake], 0))
        d_loss = out[b:].mean() - out[:b].mean()
        eps = torch.rand(b, 1, 1, 1, device=real.device)
        xhat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.D(xhat).sum(), xhat, create_graph=True)
        gp = self.lam * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        self.d_opt.zero_grad(set_to_none=True)
        (d_loss + gp).backward()
        self.d_opt.step()
        return float(d_loss + gp), float(gp)

    def code_losses(self, x, z, c):
        """L_c and L_z of generated images x with codes (z, c) (a subclass may add views)."""
        f, e = self.E(x)
        return contrastive_all(f, c, self.tau), content(e, z)

    def g_step(self):
        z, c, zc = self.latent(self.bg)
        x = self.G(zc)
        g_gan = -self.D(x).mean()
        lc, lz = self.code_losses(x, z, c)
        self.g_opt.zero_grad(set_to_none=True)
        (g_gan + self.beta1 * lc + self.beta2 * lz).backward()
        self.g_opt.step()
        return float(g_gan), float(lc), float(lz)

    def e_step(self):
        z, c, zc = self.latent(self.be)
        with torch.no_grad():
            x = self.G(zc)
        lc, lz = self.code_losses(x, z, c)
        self.e_opt.zero_grad(set_to_none=True)
        (self.beta1 * lc + self.beta2 * lz).backward()
        self.e_opt.step()
        return float(lc), float(lz)

    def step(self, real):
        d_loss, gp = self.d_step(real)
        # G step with D and E fixed: no parameter gradients are computed for them
        self._requires_grad(self.D, False)
        self._requires_grad(self.E, False)
        g_gan, g_lc, g_lz = self.g_step()
        self._requires_grad(self.D, True)
        self._requires_grad(self.E, True)
        self._requires_grad(self.G, False)
        e_lc, e_lz = self.e_step()
        self._requires_grad(self.G, True)
        return dict(d_loss=d_loss, gp=gp, g_gan=g_gan, g_lc=g_lc, g_lz=g_lz, e_lc=e_lc, e_lz=e_lz)


# ----------------------------------------------------------------------------------------------
# Environment and peak
# ----------------------------------------------------------------------------------------------

def blas_info():
    """Which BLAS torch's libblas.so.3 is, and OpenBLAS's kernel choice where it is OpenBLAS."""
    info = {"torch_blas": "unknown"}
    try:
        maps = open("/proc/self/maps").read()
        libs = sorted({line.split()[-1] for line in maps.splitlines()
                       if "blas" in line.lower() and line.split()[-1].startswith("/")})
        info["blas_libraries"] = libs
    except OSError:
        pass
    try:
        lib = ctypes.CDLL("libblas.so.3")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        info["torch_blas"] = "openblas"
        info["openblas_core"] = lib.openblas_get_corename().decode()
        info["openblas_config"] = lib.openblas_get_config().decode()
    except (OSError, AttributeError):
        info["torch_blas"] = "reference (libblas3) or other"
    return info


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def gemm_gflops(n, threads, min_time=1.0, max_reps=5):
    """Best GFLOP/s of an n x n x n fp32 torch.mm (one warm-up, then repeats until min_time)."""
    torch.set_num_threads(threads)
    a, b = torch.rand(n, n, device=DEVICE) - 0.5, torch.rand(n, n, device=DEVICE) - 0.5
    c = torch.empty(n, n, device=DEVICE)
    torch.mm(a, b, out=c)
    sync()
    best, spent, reps = float("inf"), 0.0, 0
    while reps < max_reps and (spent < min_time or reps < 2):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        sync()
        dt = time.perf_counter() - t
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return 2.0 * n ** 3 / best / 1e9


def max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def self_test():
    torch.manual_seed(0)
    f = torch.randn(12, 5)
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 0, 2, 1, 1, 4, 5])  # classes 3, 4, 5 have one row
    a, b = float(contrastive_all(f, labels, 0.07)), contrastive_loops(f, labels, 0.07)
    assert abs(a - b) <= 1e-4 * max(1.0, abs(b)), (a, b)
    # the exact penalty: its gradient by double backprop matches finite differences
    torch.manual_seed(1)
    d = critic().double()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)

    def penalty():
        xr = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(d(xr).sum(), xr, create_graph=True)
        return 10 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()

    w = d[5].weight  # the Linear(6272, 1024)
    d.zero_grad()
    penalty().backward()
    analytic = float(w.grad[3, 17])
    h = 1e-6
    with torch.no_grad():
        w[3, 17] += h
    up = float(penalty())
    with torch.no_grad():
        w[3, 17] -= 2 * h
    down = float(penalty())
    with torch.no_grad():
        w[3, 17] += h
    numeric = (up - down) / (2 * h)
    assert abs(analytic - numeric) <= 1e-4 * abs(numeric) + 1e-12, (analytic, numeric)
    # one step runs and gives finite losses
    torch.set_num_threads(1)
    m = CDGAN(batch_e=64)
    r = m.step(torch.rand(64, 1, 28, 28))
    assert all(v == v and abs(v) < float("inf") for v in r.values()), r
    macs = [macs_per_sample(m.G, (Z + C,)), macs_per_sample(m.D, (1, 28, 28)), macs_per_sample(m.E, (1, 28, 28))]
    print(json.dumps({"self_test": "ok", "contrastive": [a, b], "penalty_grad": [analytic, numeric],
                      "losses": r, "macs_per_sample": {"G": macs[0], "D": macs[1], "E": macs[2]}}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-e", type=int, default=512)
    ap.add_argument("--batch-d", type=int, default=64)
    ap.add_argument("--batch-g", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--gemm-n", type=int, default=4096, help="size of the peak GEMM (0: skip)")
    ap.add_argument("--foreach", choices=["default", "on", "off"], default="default",
                    help="Adam's multi-tensor (foreach) implementation")
    ap.add_argument("--mkldnn", choices=["on", "off"], default="on", help="torch.backends.mkldnn (oneDNN convs)")
    ap.add_argument("--label", default="", help="free text copied into the JSON (e.g. installed / tuned)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where the step runs (cuda: the first GPU; synchronised around each timed step)")
    ap.add_argument("--tf32", action="store_true",
                    help="with --device cuda: allow TF32 in cuBLAS matmuls and cuDNN convolutions (default: off)")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        self_test()
        return

    global DEVICE
    if a.device == "cuda":
        if not torch.cuda.is_available():
            print(json.dumps({"impl": "pytorch", "device": "cuda", "error": "torch.cuda.is_available() is False",
                              "torch": torch.__version__}))
            return 3
        DEVICE = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32

    torch.backends.mkldnn.enabled = a.mkldnn == "on"
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    foreach = {"default": None, "on": True, "off": False}[a.foreach]
    m = CDGAN(batch_d=a.batch_d, batch_g=a.batch_g, batch_e=a.batch_e, foreach=foreach)
    real = torch.rand(a.batch_d, 1, 28, 28, device=DEVICE)

    times, losses = [], {}
    for i in range(a.warmup + a.steps):
        sync()
        t = time.perf_counter()
        losses = m.step(real)
        sync()
        dt = time.perf_counter() - t
        if i >= a.warmup:
            times.append(dt)
    rss_train = max_rss_mib()

    macs = [macs_per_sample(m.G, (Z + C,)), macs_per_sample(m.D, (1, 28, 28)), macs_per_sample(m.E, (1, 28, 28))]
    flop = cdgan_step_flops(*macs, a.batch_d, a.batch_g, a.batch_e)
    med = statistics.median(times)
    peak = gemm_gflops(a.gemm_n, a.threads) if a.gemm_n > 0 else None
    gflops = flop / med / 1e9
    env_keys = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"]
    out = {
        "impl": "pytorch",
        "label": a.label,
        "device": a.device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "batch_d": a.batch_d, "batch_g": a.batch_g, "batch_e": a.batch_e,
        "warmup": a.warmup, "steps": a.steps,
        "median_ms": med * 1e3, "mean_ms": statistics.mean(times) * 1e3, "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
        "macs_per_sample": {"G": macs[0], "D": macs[1], "E": macs[2]},
        "gflop_per_step": flop / 1e9,
        "gflops": gflops,
        "gemm_n": a.gemm_n,
        "gemm_gflops": peak,
        "pct_of_gemm_peak": 100.0 * gflops / peak if peak else None,
        "peak_rss_mib_training": rss_train,
        "peak_rss_mib_final": max_rss_mib(),
        "mkldnn": torch.backends.mkldnn.enabled,
        "adam_foreach": a.foreach,
        "env": {k: os.environ.get(k) for k in env_keys},
        "last_losses": losses,
    }
    if DEVICE.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(DEVICE)
        out["cuda"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version()
        out["tf32"] = a.tf32
        out["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(DEVICE) / 2 ** 20
    else:
        out.update(blas_info())
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
