"""Screening throughput and memory: the vectorised pass versus per-checkpoint baselines, in one process.

    python benchmarks/bench_screen.py [--quick]

Small case m=50, n=7, d=3 (the paper's 3-D run); large case m=1000, n=1000, d=10. Baselines: a
per-checkpoint numpy loop (same formulas, one checkpoint at a time) and, when torch is installed,
a per-checkpoint PyTorch autograd loop (loss.backward() for the gradients). Memory: peak of
Python-tracked allocations (tracemalloc) while screening 10^6 small checkpoints read from a
memory-mapped file (the trajectory itself stays on disk).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from relucert.core.problem import Problem  # noqa: E402
from relucert.tools.screen import screen_arrays  # noqa: E402


def make(T, m, n, d, k=1, seed=0):
    rng = np.random.default_rng(seed)
    pb = Problem.make(rng.normal(size=(n, d)), rng.normal(size=(n, k)), "relu", "mse")
    return pb, rng.normal(size=(T, m, d)), rng.normal(size=(T, m, k))


def numpy_loop(pb, W, A):
    X, Y = pb.Xf, pb.Yf
    n = X.shape[0]
    out = []
    for t in range(W.shape[0]):
        Z = X @ W[t].T
        S = (Z > 0).astype(float)
        H = S * Z
        E = H @ A[t] - Y
        G = H.T @ E / n
        GW = ((S * E[:, :1]).T @ X / n) * A[t][:, :1]
        out.append(((E ** 2).sum() / (2 * n), np.linalg.norm(G), np.linalg.norm(GW)))
    return out


def torch_loop(pb, W, A):
    import torch
    X = torch.tensor(pb.Xf)
    Y = torch.tensor(pb.Yf)
    out = []
    for t in range(W.shape[0]):
        w = torch.tensor(W[t], requires_grad=True)
        a = torch.tensor(A[t], requires_grad=True)
        loss = 0.5 * ((torch.relu(X @ w.T) @ a - Y) ** 2).sum() / X.shape[0]
        loss.backward()
        out.append((loss.item(), a.grad.norm().item(), w.grad.norm().item()))
    return out


def rate(fn, T):
    t0 = time.perf_counter()
    fn()
    return T / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    try:
        import torch  # noqa: F401
        torch.set_num_threads(1)
        have_torch = True
    except ImportError:
        have_torch = False
    cases = [("small m=50 n=7 d=3", 50, 7, 3, 20000 if args.quick else 200000, 2000),
             ("large m=1000 n=1000 d=10", 1000, 1000, 10, 20 if args.quick else 200, 20)]
    print(f"{'case':<26} {'vectorised/s':>14} {'2 threads/s':>12} {'numpy loop/s':>14} {'ratio':>8} "
          f"{'autograd/s':>12} {'ratio':>8}")
    for name, m, n, d, T, Tb in cases:
        pb, W, A = make(T, m, n, d)
        screen_arrays(pb, W[:10], A[:10])
        v = rate(lambda: screen_arrays(pb, W, A, per_neuron=False), T)
        v2 = rate(lambda: screen_arrays(pb, W, A, per_neuron=False, workers=2), T)
        nl = rate(lambda: numpy_loop(pb, W[:Tb], A[:Tb]), Tb)
        tl = rate(lambda: torch_loop(pb, W[:Tb], A[:Tb]), Tb) if have_torch else float("nan")
        print(f"{name:<26} {v:>14,.0f} {v2:>12,.0f} {nl:>14,.0f} {v / nl:>8.1f} {tl:>12,.0f} {v / tl:>8.1f}")
    # memory for 10^6 small checkpoints (10^5 with --quick)
    T = 100000 if args.quick else 1000000
    with tempfile.TemporaryDirectory() as tmp:
        pb, _, _ = make(1, 50, 7, 3)
        Wm = np.lib.format.open_memmap(os.path.join(tmp, "W.npy"), mode="w+", dtype=np.float32, shape=(T, 50, 3))
        Am = np.lib.format.open_memmap(os.path.join(tmp, "A.npy"), mode="w+", dtype=np.float32, shape=(T, 50, 1))
        rng = np.random.default_rng(1)
        for s in range(0, T, 100000):
            e = min(T, s + 100000)
            Wm[s:e] = rng.normal(size=(e - s, 50, 3))
            Am[s:e] = rng.normal(size=(e - s, 50, 1))
        Wm.flush()
        Am.flush()
        tracemalloc.start()
        t0 = time.perf_counter()
        res = screen_arrays(pb, Wm, Am, per_neuron=False)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"memory: {T:,} checkpoints (m=50) screened in {dt:.1f} s ({T / dt:,.0f}/s); peak traced "
              f"allocation {peak / 2**20:.1f} MiB (outputs {6 * T * 8 / 2**20:.1f} MiB of it; input "
              f"{(Wm.nbytes + Am.nbytes) / 2**20:.0f} MiB stays memory-mapped)")
        assert np.isfinite(res.loss).all()


if __name__ == "__main__":
    main()
