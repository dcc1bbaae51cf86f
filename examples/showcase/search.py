#!/usr/bin/env python3
"""Search for a showcase run: a final plateau that the authors' perturbation check calls a local
minimum while `relucert certify` proves the refined point is a saddle.

    python examples/showcase/search.py --data-seeds 0-29 --n 4,5,6,7 --seeds 1-4 --width 10,30 --mu=-3,-5 \
        --max-iter 40000          # the search that found the showcase (~4 min on 2 cores)
    python examples/showcase/search.py --data-seeds 24 --n 5 --seeds 3 --width 10 --mu=-5 --max-iter 40000
                                  # just the showcase configuration (a few seconds)

Stage 1 trains every (dataset, seed) pair at once with a batched float32 numpy SGD (the torch
init for each seed, the same update rule; not bit-identical to torch, good enough to locate
candidates), keeps the runs whose loss is flat over the last `--flat` fraction of training and
still above zero, and runs the perturbation check and the certifier on each.  A HIT is a run whose
perturbation check says "local minimum" while the refined point (as `relucert certify` refines it
by default: relative float gradient <= 1e-3) is a certified saddle; "max snap" is the largest
|w.x|/(|w||x|) that refinement snapped onto a kink (the tolerance is 1e-4, raised automatically up
to 1e-2 to a clear gap; far below 1e-4 = clear-cut).  Stage 2 (--confirm)
re-trains the candidates with torch, exactly as run_showcase.py does, and re-checks.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _showcase import (as_float, make_dataset, perturbation_check, torch_init,  # noqa: E402
                       train_torch, write_problem_json)

f32 = np.float32


def rng_list(s: str) -> list:
    out = []
    for part in s.split(","):
        if "-" in part[1:]:
            a, b = part.split("-") if not part.startswith("-") else (part, part)
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def batched_sgd(Xs, Ys, W, A, lr, max_iter, curve_every):
    """Xs (B,n,d), Ys (B,n,1), W (B,m,d), A (B,m,1) float32; plain SGD on mse_loss."""
    B, n, _ = Xs.shape
    lr32, norm = f32(lr), f32(2.0 / n)
    curve = []
    XsT = np.transpose(Xs, (0, 2, 1))
    for it in range(max_iter):
        Z = np.matmul(W, XsT)                           # B,m,n
        H = np.maximum(Z, f32(0))
        R = np.matmul(np.transpose(H, (0, 2, 1)), A) - Ys   # B,n,1
        if it % curve_every == 0:
            curve.append(np.mean(R[..., 0].astype(np.float64) ** 2, axis=1))
        G = norm * R
        gA = np.matmul(H, G)                            # B,m,1
        gZ = np.matmul(A, np.transpose(G, (0, 2, 1))) * (Z > 0)   # B,m,n
        gW = np.matmul(gZ, Xs)                          # B,m,d
        W = W - lr32 * gW
        A = A - lr32 * gA
    R = np.matmul(np.transpose(np.maximum(np.matmul(W, XsT), 0), (0, 2, 1)), A) - Ys
    curve.append(np.mean(R[..., 0].astype(np.float64) ** 2, axis=1))
    return W, A, np.array(curve).T                      # curve: B x T


def certify_point(path):
    """What `relucert certify PATH` does (default tolerances, automatic kink-tolerance raise), with
    refinement forced so that far-from-stationary runs get a refined report too (`grad` tells them
    apart: a HIT needs grad <= 1e-3, where `relucert certify` refines by itself)."""
    import relucert
    pb, pt = relucert.load(path)
    rep = relucert.certify_checkpoint(pb, pt, refine_mode="always", check_mode=False)
    return rep.given.verdict, rep.float_gradient_relative, rep.refined


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-seeds", default="0-9")
    p.add_argument("--n", default="5,6")
    p.add_argument("--seeds", default="1-4")
    p.add_argument("--width", default="20", help="comma list of widths")
    p.add_argument("--mu", default="-4", help="comma list of init exponents (width**mu)")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--max-iter", type=int, default=100000)
    p.add_argument("--flat", type=float, default=0.5, help="fraction of training that must be flat")
    p.add_argument("--flat-tol", type=float, default=1e-6, help="relative loss drop allowed over it")
    p.add_argument("--confirm", action="store_true", help="re-train the candidates with torch")
    p.add_argument("--outdir", default="/tmp/showcase_search")
    a = p.parse_args(argv)
    os.makedirs(a.outdir, exist_ok=True)
    widths = [int(w) for w in a.width.split(",")]
    mus = [float(u) for u in a.mu.split(",")]
    configs = [(ds, n, s, w, mu) for ds in rng_list(a.data_seeds) for n in rng_list(a.n)
               for s in rng_list(a.seeds) for w in widths for mu in mus]
    by_n: dict = {}
    for c in configs:
        by_n.setdefault((c[1], c[3]), []).append(c)
    cands = []
    for (n, width), cs in by_n.items():
        data = [make_dataset(c[0], n) for c in cs]
        Xs = np.stack([as_float(X) for X, _ in data]).astype(f32)
        Ys = np.stack([as_float(Y) for _, Y in data]).astype(f32)
        inits = [torch_init(3, width, 1, c[4], c[2]) for c in cs]
        W = np.stack([w for w, _ in inits]); A = np.stack([x for _, x in inits])
        t0 = time.perf_counter()
        W, A, curve = batched_sgd(Xs, Ys, W, A, a.lr, a.max_iter, 1000)
        print(f"n={n} width={width}: {len(cs)} runs x {a.max_iter} steps in {time.perf_counter() - t0:.1f} s", flush=True)
        T = curve.shape[1]
        t_flat = int(T * (1 - a.flat))
        for b, (ds, _, s, w, mu) in enumerate(cs):
            c = curve[b]
            drop = (c[t_flat] - c[-1]) / max(c[-1], 1e-30)
            if c[-1] < 1e-4 or drop > a.flat_tol:
                continue
            cands.append(((ds, n, s, w, mu), float(c[-1]), float(drop), W[b], A[b], data[b]))
    print(f"{len(cands)} runs end on a flat plateau with loss > 1e-4", flush=True)
    hits = []
    for cfg, loss, drop, W, A, (X, Y) in cands:
        ds, n, s, w, mu = cfg
        path = os.path.join(a.outdir, f"d{ds}_n{n}_s{s}_w{w}_mu{mu:g}.json")
        write_problem_json(path, X, Y, W, A)
        pc = perturbation_check(X, Y, W, A)
        try:
            given, grad, rf = certify_point(path)
        except Exception as e:                        # report, keep searching
            print(f"  {cfg}: certifier error {type(e).__name__}: {e}")
            continue
        readings = {r["reading"]: r["verdict"] for r in rf["readings"]}
        hit = pc["min_change"] > 0 and rf["verdict"] == "saddle" and grad <= 1e-3
        tag = "HIT" if hit else "   "
        snaps = [x["relative_z"] for x in rf["pattern_changes"]["snapped"]]
        print(f"{tag} data {ds:3d} n {n} seed {s:3d} width {w} mu {mu:g}: max snap {max(snaps, default=0):.1e} loss {loss:.6g} drop {drop:.1e} | check min "
              f"{pc['min_change']:+.2e} amp {pc['amplitude']:.1e} dead {len(pc['dead'])} | given {given} "
              f"grad {grad:.1e} | refined {rf['verdict']} ({rf['reading']}) {readings} "
              f"esc {rf['escape_neurons']} tiny {rf['pattern_changes']['tiny']}", flush=True)
        if hit:
            hits.append(cfg)
    print("hits:", hits)
    if a.confirm:
        for ds, n, s, w, mu in hits:
            X, Y = make_dataset(ds, n)
            r = train_torch(X, Y, w, mu, a.lr, s, a.max_iter)
            path = os.path.join(a.outdir, f"torch_d{ds}_n{n}_s{s}_w{w}_mu{mu:g}.json")
            write_problem_json(path, X, Y, r["W"], r["A"])
            pc = perturbation_check(X, Y, r["W"], r["A"])
            given, grad, rf = certify_point(path)
            c = r["curve_loss"]
            drop = (c[len(c) // 2] - c[-1]) / c[-1]
            print(f"torch data {ds} n {n} seed {s} width {w} mu {mu:g}: loss {r['final_loss']:.6g} drop {drop:.1e} "
                  f"({r['seconds']:.0f} s) | check min {pc['min_change']:+.2e} | given {given} | "
                  f"refined {rf['verdict']} ({rf['reading']}) esc {rf['escape_neurons']}", flush=True)


if __name__ == "__main__":
    main()
