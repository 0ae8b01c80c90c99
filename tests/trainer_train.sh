#!/usr/bin/env bash
# trainer_train.sh CDGAN_TRAIN DATA_DIR WORK — CI's training smoke run: the mnist preset (paper
# settings, E batch lowered to 64 to fit CI's time) for 300 iterations on one thread, evaluated at
# 150 and 300. Checks that the outputs exist, that every logged loss is finite, and that training
# moved: the critic separates real from fake (its loss turns negative) and the generator's
# contrastive loss falls well below its starting value ln(63) ≈ 4.14 (the batch-64 value with
# uninformative features). It does not check clustering scores: 300 iterations are far too few.
source "$(dirname "${BASH_SOURCE[0]}")/trainer_common.sh"
start=$(date +%s)
"$bin" train --preset mnist --data-dir "$data" --threads 1 --batch-e 64 --iterations 300 --eval-every 150 \
  --log-every 10 --eval-samples 1000 --kmeans-restarts 2 --quality-samples 0 --out "$work/run" > "$work/train.log"
echo "300 iterations in $(($(date +%s) - start)) s"
for f in samples.png samples_0000150.png samples_0000300.png metrics.jsonl checkpoint.safetensors; do
  [[ -s "$work/run/$f" ]] || { echo "missing output $f"; exit 1; }
done
python3 - "$work/train.log" "$work/run/metrics.jsonl" <<'PY'
import json, math, re, sys
log, metrics = sys.argv[1], sys.argv[2]
pat = re.compile(r'^\[ *(\d+)/300\].*\| D ([-+\d.einfa]+) gp ([-+\d.einfa]+) \| G ([-+\d.einfa]+) Lc ([-+\d.einfa]+) '
                 r'Lz ([-+\d.einfa]+) \| E Lc ([-+\d.einfa]+) Lz ([-+\d.einfa]+)')
rows = [[float(v) for v in m.groups()] for m in map(pat.match, open(log)) if m]
assert len(rows) == 30, f'expected 30 log lines, found {len(rows)}'
for r in rows:
    assert all(math.isfinite(v) for v in r), f'non-finite loss in {r}'
steps, d, g_lc = [r[0] for r in rows], [r[1] for r in rows], [r[4] for r in rows]
assert steps[-1] == 300
print(f'G L_c {g_lc[0]:.3f} (it 10) -> {g_lc[-1]:.3f} (it 300); D loss {d[0]:+.3f} -> {d[-1]:+.3f}')
assert g_lc[-1] < 0.75 * math.log(63), f'the contrastive loss did not fall: {g_lc[0]} -> {g_lc[-1]}'
assert max(d[-5:]) < 0, f'the critic does not separate real from fake: D loss {d[-5:]}'
ev = [json.loads(l) for l in open(metrics) if l.strip()]
assert [e['step'] for e in ev] == [150, 300], [e['step'] for e in ev]
for e in ev:
    for k in ('acc', 'purity', 'nmi', 'ari', 'code_acc', 'code_nmi', 'd_loss', 'g_lc', 'e_lc', 'e_lz'):
        assert math.isfinite(e[k]), (k, e[k])
    assert 0 < e['acc'] <= 1 and 0 <= e['nmi'] <= 1 and 0 < e['code_acc'] <= 1, e
    print(f"step {e['step']}: ACC {e['acc']:.3f} purity {e['purity']:.3f} NMI {e['nmi']:.3f} ARI {e['ari']:.3f}")
PY
echo "trainer training smoke test passed"
