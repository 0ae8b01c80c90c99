#!/usr/bin/env python3
"""The "mnist" preset trained in PyTorch, to compare cdgan's training dynamics with an independent
implementation (docs/results.md, "Against PyTorch").

What this is: the step of benchmarks/pytorch_step.py (the same networks mnist_nets<30, 10, 40>, WGAN-GP
with the exact penalty, the all-positives contrastive loss, L_z, Adam lr 1e-4 betas (0.5, 0.9), batch
sizes D/G 64, E 512), with N(0, 0.02) weights and zero biases as cdgan's presets (--init-std 0.02),
trained on real MNIST (the IDX files of scripts/setup-data.sh) in shuffled batches. With --two-views the
contrast also sees one random resized crop of the batch (torchvision's RandomResizedCrop(28, scale=(0.7,
1)) on the whole batch, detached, as the authors' code and cdgan's --two-views).

Every 50 iterations it appends the mean losses of those iterations to OUT/metrics.jsonl (cdgan's trainer
prints the same means); every --every iterations also a sample grid OUT/grid_NNNNN.png (row = c, column =
one of 10 fixed z, batch-norm running statistics) and the k-means (5 restarts, L2-normalised features) Hungarian ACC of E_f on
the 10,000 test images.

Usage: /usr/bin/python3 benchmarks/pytorch_train.py --iters 2100 --every 300 --threads 2 --out DIR
Needs Debian's python3-torch, python3-sklearn and python3-pil.
"""
import argparse, json, math, os, random, sys, time
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_step as ps
import sklearn_kmeans
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument("--iters", type=int, default=2100)
ap.add_argument("--every", type=int, default=300)
ap.add_argument("--out", required=True)
ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist"))
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--init-std", type=float, default=0.02)
ap.add_argument("--two-views", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
random.seed(a.seed)
os.makedirs(a.out, exist_ok=True)

def idx(path):
    raw = open(path, "rb").read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)

d = a.data_dir + "/"
xtr = torch.from_numpy(idx(d + "train-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
xte = torch.from_numpy(idx(d + "t10k-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
yte = idx(d + "t10k-labels-idx1-ubyte").astype(np.int64)

F = torch.nn.functional

def crop(x, min_scale=0.7):
    """torchvision RandomResizedCrop(28, scale=(min_scale, 1)) on the whole batch (one crop)."""
    H = W = 28
    for _ in range(10):
        area = H * W * random.uniform(min_scale, 1.0)
        ratio = math.exp(random.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < w <= W and 0 < h <= H:
            i, j = random.randint(0, H - h), random.randint(0, W - w)
            break
    else:
        i, j, h, w = 0, 0, H, W
    return F.interpolate(x[:, :, i:i + h, j:j + w], size=(H, W), mode="bilinear", align_corners=False).detach()

class TwoViews(ps.CDGAN):
    """The contrast over [x; crop(x)], L_z on x (cdgan's model_options::two_views)."""
    def code_losses(self, x, z, c):
        f, e = self.E(torch.cat([x, crop(x)]))
        return ps.contrastive_all(f, torch.cat([c, c]), self.tau), ps.content(e[:x.shape[0]], z)

m = TwoViews() if a.two_views else ps.CDGAN()
if a.init_std > 0:
    for net in (m.G, m.D, m.E):
        for mod in net.modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                mod.weight.data.normal_(0, a.init_std)
                mod.bias.data.zero_()

zfix = torch.randn(10, ps.Z)
def grid(step):
    m.G.eval()
    with torch.no_grad():
        zc = torch.cat([torch.cat([zfix, F.one_hot(torch.full((10,), c), 10).float()], 1) for c in range(10)])
        x = m.G(zc).reshape(10, 10, 28, 28).permute(0, 2, 1, 3).reshape(280, 280)
    m.G.train()
    Image.fromarray((x.numpy() * 255).astype(np.uint8)).save(f"{a.out}/grid_{step:05d}.png")

def acc():
    """Hungarian ACC of k-means on E_f of the test images (benchmarks/sklearn_kmeans.py)."""
    with torch.no_grad():
        f = torch.cat([m.E(xte[i:i + 1000])[0] for i in range(0, 10000, 1000)])
        f = F.normalize(f, dim=1).numpy()
    return sklearn_kmeans.cluster_and_score(f, yte, seed=0, n_init=5)["acc"]

perm = torch.randperm(len(xtr)); pos = 0
t0 = time.time(); hist = []
for it in range(1, a.iters + 1):
    if pos + 64 > len(xtr):
        perm = torch.randperm(len(xtr)); pos = 0
    real = xtr[perm[pos:pos + 64]]; pos += 64
    r = m.step(real)
    hist.append(r)
    if it % 50 == 0 or it == a.iters:
        avg = {k: float(np.mean([h[k] for h in hist])) for k in hist[0]}
        hist = []
        line = dict(step=it, seconds=time.time() - t0, **avg)
        if it % a.every == 0 or it == a.iters:
            grid(it); line["acc"] = acc()
        print(json.dumps(line), flush=True)
        open(f"{a.out}/metrics.jsonl", "a").write(json.dumps(line) + "\n")
