#!/usr/bin/env python3
"""Find the loss plateaus of a training run and save the mid-plateau checkpoints (numpy only).

    python examples/paper/plateaus.py 1d_input_with_bias     # or 3d_input, 2d_input_2d_output, all

Reads <name>_traj.npz (from train_torch.py; --traj-suffix _numpy for train_numpy.py --traj).
A plateau is a stretch of at least --min-len steps on which the loss curve (sampled every 100
steps) falls by less than --rate per step in relative terms, the rate being the centred
difference of log(loss) over +-1000 steps.  For each plateau, the trajectory checkpoint nearest
to its middle is written as <name>_plateau<i>.npz (same keys as <name>_final.npz, plus step,
loss_value, plateau_start, plateau_end, grad_norm) and <name>_plateau<i>.json (problem file).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, NAMES, SPEC, load_spec, mse, save_point  # noqa: E402


def find_plateaus(step, loss, rate=1e-6, half_window=1000, min_len=5000):
    """[(start, end)] of maximal stretches where |d log(loss)/d step| < rate."""
    step = np.asarray(step, dtype=np.int64)
    lg = np.log(np.asarray(loss, dtype=np.float64))
    dt = int(np.median(np.diff(step)))
    w = max(1, half_window // dt)
    r = np.empty(len(step))
    r[w:-w] = (lg[:-2 * w] - lg[2 * w:]) / (step[2 * w:] - step[:-2 * w])
    r[:w] = (lg[0] - lg[w]) / (step[w] - step[0])
    r[-w:] = (lg[-w - 1] - lg[-1]) / (step[-1] - step[-w - 1])
    flat = np.abs(r) < rate
    out, i = [], 0
    while i < len(step):
        if flat[i]:
            j = i
            while j + 1 < len(step) and flat[j + 1]:
                j += 1
            if step[j] - step[i] >= min_len:
                out.append((int(step[i]), int(step[j])))
            i = j + 1
        else:
            i += 1
    return out


def grad_norm(W, A, X, Y) -> float:
    """Euclidean norm of the mse gradient (float64, ReLU' = 1[Wx > 0])."""
    W, A, X, Y = (np.asarray(v, dtype=np.float64) for v in (W, A, X, Y))
    H = X @ W.T
    Z = np.maximum(H, 0.0)
    G = 2.0 * (Z @ A - Y) / Y.size
    gA = Z.T @ G
    gW = ((G @ A.T) * (H > 0)).T @ X
    return float(np.sqrt(np.sum(gA ** 2) + np.sum(gW ** 2)))


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=NAMES + ("all",))
    p.add_argument("--outdir", default=HERE)
    p.add_argument("--traj-suffix", default="", help="'_numpy' to use <name>_numpy_traj.npz")
    p.add_argument("--rate", type=float, default=1e-6)
    p.add_argument("--min-len", type=int, default=5000)
    p.add_argument("--spec", default=SPEC)
    a = p.parse_args(argv)
    rows = []
    for name in (NAMES if a.name == "all" else (a.name,)):
        e = load_spec(name, a.spec)
        z = np.load(os.path.join(a.outdir, f"{name}{a.traj_suffix}_traj.npz"))
        X, Y = z["X_float32"], z["Y_float32"]
        segs = find_plateaus(z["curve_step"], z["curve_loss"], a.rate, min_len=a.min_len)
        print(f"{name}: {len(segs)} plateaus")
        for i, (s0, s1) in enumerate(segs, 1):
            j = int(np.argmin(np.abs(z["step"] - (s0 + s1) / 2)))
            W, A, st = z["W"][j], z["A"][j], int(z["step"][j])
            lv = float(z["loss"][j])
            g = grad_norm(W, A, X, Y)
            prefix = os.path.join(a.outdir, f"{name}{a.traj_suffix}_plateau{i}")
            save_point(prefix, e, W, A, step=np.int64(st), loss_value=np.float64(lv),
                       plateau_start=np.int64(s0), plateau_end=np.int64(s1), grad_norm=np.float64(g))
            print(f"  plateau {i}: steps {s0}-{s1}, checkpoint {st}, mse {lv!r} "
                  f"(float64 eval {mse(W, A, X, Y):.10g}), |grad| {g:.3e} -> {os.path.basename(prefix)}.npz/.json")
            rows.append(dict(name=name, plateau=i, start=s0, end=s1, step=st, loss=lv, grad_norm=g))
    return rows


if __name__ == "__main__":
    main()
