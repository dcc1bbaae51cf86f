#!/usr/bin/env python3
"""Pure-numpy float32 re-implementation of train_torch.py (no torch needed).

    python examples/paper/train_numpy.py 1d_input_with_bias     # or 3d_input, 2d_input_2d_output, all

Same network, data, loss, learning rate and stopping rule as train_torch.py.  numpy cannot
reproduce torch's random numbers, so the initial weights are read from <name>_init.npz (written
by train_torch.py); if that file is missing, a seeded numpy init is used instead
(np.random.default_rng(seed).standard_normal * width**mu, input layer first) and the run is a
different, though statistically equivalent, experiment.

Arithmetic: every array is float32; each matrix product is accumulated in float64 and rounded
once to float32, and the SGD update p <- p - lr*g is rounded once (as torch's fused
multiply-add does).  torch's float32 sgemm sums in another order, so the two runs agree to
float32 rounding per step, not bit for bit; see README.md for the measured gap.

Writes <name>_numpy_final.npz (same keys as <name>_final.npz) and, with --traj,
<name>_numpy_traj.npz (same keys as <name>_traj.npz).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, NAMES, SPEC, load_spec, point_arrays, record_steps  # noqa: E402

f32, f64 = np.float32, np.float64


def initial_weights(e: dict, outdir: str) -> tuple[np.ndarray, np.ndarray, str]:
    path = os.path.join(outdir, f"{e['name']}_init.npz")
    if os.path.exists(path):
        z = np.load(path)
        return z["W"].astype(f32), z["A"].astype(f32), path
    n, d = np.shape(e["X"])
    k = np.shape(e["Y"])[1]
    m, beta = e["width"], e["width"] ** e["mu"]
    rng = np.random.default_rng(e["seed"])
    W = (rng.standard_normal((m, d)).astype(f32) * f32(beta)).astype(f32)
    A = (rng.standard_normal((k, m)).astype(f32) * f32(beta)).astype(f32).T.copy()
    return W, A, "numpy default_rng(seed) (no torch init file found)"


def train(name: str, outdir: str, every: int, curve_every: int, spec: str, traj: bool,
          max_iter: int | None = None) -> dict:
    e = load_spec(name, spec)
    X32 = np.asarray(e["X"], dtype=f32)
    Y32 = np.asarray(e["Y"], dtype=f32)
    X64 = X32.astype(f64)
    n, k = Y32.shape
    W, A, source = initial_weights(e, outdir)
    lr = f64(f32(e["lr"]))                    # torch casts alpha=-lr to float32
    norm = f32(2.0 / (n * k))                 # mse_loss backward: (2/N) * (out - y) * grad_out
    stop = e["stop_loss"]
    max_iter = int(e["max_iter"] if max_iter is None else max_iter)
    rec = set(record_steps(max_iter, every).tolist()) if traj else set()
    tW, tA, tstep, tloss, cstep, closs = [], [], [], [], [], []

    def loss_of(r32):
        return float(f32(np.mean(r32.astype(f64) ** 2)))

    it, loss = 0, 100.0
    t0 = time.perf_counter()
    while loss > stop and it < max_iter:
        W64, A64 = W.astype(f64), A.astype(f64)
        H = (X64 @ W64.T).astype(f32)                       # n x m
        Z64 = np.maximum(H, f32(0)).astype(f64)
        out = (Z64 @ A64).astype(f32)                       # n x k
        r = out - Y32
        loss = loss_of(r)
        if it in rec:
            tW.append(W.copy()); tA.append(A.copy()); tstep.append(it); tloss.append(loss)
        if it % curve_every == 0:
            cstep.append(it); closs.append(loss)
        g64 = (norm * r).astype(f64)                        # d loss / d out
        gA = (Z64.T @ g64).astype(f32)                      # m x k
        dZ = (g64 @ A64.T).astype(f32)                      # n x m
        dH64 = np.where(H > 0, dZ, f32(0)).astype(f64)
        gW = (dH64.T @ X64).astype(f32)                     # m x d
        W = (W64 - lr * gW.astype(f64)).astype(f32)
        A = (A64 - lr * gA.astype(f64)).astype(f32)
        it += 1
    seconds = time.perf_counter() - t0
    H = np.maximum((X64 @ W.astype(f64).T).astype(f32), f32(0))
    final_loss = loss_of((H.astype(f64) @ A.astype(f64)).astype(f32) - Y32)
    if cstep[-1] != it:
        cstep.append(it); closs.append(final_loss)
    base = os.path.join(outdir, f"{name}_numpy")
    np.savez(base + "_final.npz", **point_arrays(e, W, A, step=np.int64(it),
             final_loss=f64(final_loss), last_loop_loss=f64(loss)))
    files = [base + "_final.npz"]
    if traj:
        if tstep[-1] != it:
            tW.append(W); tA.append(A); tstep.append(it); tloss.append(final_loss)
        d = point_arrays(e, np.stack(tW), np.stack(tA))
        d.update(step=np.array(tstep, dtype=np.int64), loss=np.array(tloss, dtype=f64),
                 curve_step=np.array(cstep, dtype=np.int64), curve_loss=np.array(closs, dtype=f64))
        np.savez_compressed(base + "_traj.npz", **d)
        files.append(base + "_traj.npz")
    msg = (f"{name}: init from {source}; {it} steps in {seconds:.1f} s; "
           f"last loop loss {loss!r}; loss at final weights {final_loss!r}")
    ref = os.path.join(outdir, f"{name}_final.npz")
    if os.path.exists(ref):
        z = np.load(ref)
        tl = float(z["final_loss"])
        msg += (f"\n  torch final loss {tl!r}: difference {final_loss - tl:+.3e} "
                f"(relative {(final_loss - tl) / tl:+.2e}); "
                f"max|W-W_torch| {np.max(np.abs(W - z['W'])):.2e}, "
                f"max|A-A_torch| {np.max(np.abs(A - z['A'])):.2e}")
    print(msg)
    return dict(name=name, steps=it, seconds=seconds, final_loss=final_loss, files=files)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=NAMES + ("all",))
    p.add_argument("--outdir", default=HERE)
    p.add_argument("--traj", action="store_true", help="also write <name>_numpy_traj.npz")
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--curve-every", type=int, default=100)
    p.add_argument("--max-iter", type=int, default=None, help="override the paper's step budget")
    p.add_argument("--spec", default=SPEC)
    a = p.parse_args(argv)
    for name in (NAMES if a.name == "all" else (a.name,)):
        train(name, a.outdir, a.every, a.curve_every, a.spec, a.traj, a.max_iter)


if __name__ == "__main__":
    main()
