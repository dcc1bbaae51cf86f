"""Refinement campaign: the nearest exact solution versus the legacy least-squares choice (issue 12, item 1).

    python benchmarks/campaign_refine.py [--quick] [--runs N] [--jobs J] [--json FILE]

Trains its own seeded runs in this process (numpy float32 full-batch gradient descent, bias-free
one-hidden-layer networks f(x) = sum_j a_j sigma(w_j . x), half-mean squared loss; none of them the
paper's data): random and teacher-network targets, n = 6..30, d = 1..4, m = 3..20, k = 1 and some
k = 2, ReLU / leaky ReLU 0.1 / abs, small (1e-3) and standard initialisation; half of the runs are
then polished with L-BFGS (scipy.optimize.minimize on the float64 loss) so that they end
near-stationary.  It certifies the GD end point, a mid-plateau point (the smallest float gradient
in the middle of the run) and the polished point with ``relucert.certify_checkpoint`` in this
process: with the legacy least-squares choice (``refine.exact.LEAST_SQUARES = "legacy"``), with the
nearest choice without its pinning rounds (``refine.scalar.PIN_ROUNDS = 0``; scalar output only,
the pins do not exist for vector output) and with the new default ("nearest").  Every certificate
is re-checked by the independent checker inside ``certify_checkpoint`` each time.

Prints, per slice (all / near-stationary / scalar / vector): definite verdicts (local_min, saddle,
global_min) / total, "left the pattern" failures, the median relative move of the refined points
and the wall-time ratio (nearest / legacy); then every checkpoint whose verdict or pattern outcome
differs.  ``--jobs 2`` runs the runs in two worker processes (each certifies its checkpoints every
way).  Seeds are fixed: the verdicts and moves are reproducible, the times are not.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import relucert.refine.exact as exact  # noqa: E402
import relucert.refine.scalar as scalar  # noqa: E402
from relucert.core.problem import Point, Problem  # noqa: E402
from relucert.pipeline import certify_checkpoint  # noqa: E402

DEFINITE = ("local_min", "saddle", "global_min")
ACTS = {"relu": (1.0, 0.0, "relu"), "leaky": (1.0, 0.1, "leaky_relu:0.1"), "abs": (1.0, -1.0, "abs")}
SEED = 20261124


# ------------------------------------------------------------------------------------------------
# training (float32 full-batch GD, float64 L-BFGS polish)
# ------------------------------------------------------------------------------------------------

def _sigma(Z, ap, am):
    return np.where(Z > 0, ap * Z, am * Z)


def loss_grad(X, Y, W, A, ap, am):
    n = X.shape[0]
    Z = X @ W.T
    H = _sigma(Z, ap, am)
    E = H @ A - Y
    L = 0.5 * (E * E).sum() / n
    gA = H.T @ E / n
    gW = ((np.where(Z > 0, ap, am) * (E @ A.T)).T @ X) / n
    return L, gW, gA


def gd(X, Y, W, A, act, lr, steps, every=20):
    ap, am, _ = ACTS[act]
    ap, am, lr = np.float32(ap), np.float32(am), np.float32(lr)
    W, A = W.astype(np.float32), A.astype(np.float32)
    hist = []
    for t in range(steps + 1):
        L, gW, gA = loss_grad(X, Y, W, A, ap, am)
        if t % every == 0 or t == steps:
            hist.append((t, float(L), float(max(np.abs(gW).max(), np.abs(gA).max())), W.copy(), A.copy()))
        if t == steps or not np.isfinite(L):
            break
        W = W - lr * gW
        A = A - lr * gA
    return hist


def lbfgs(X, Y, W, A, act):
    from scipy.optimize import minimize
    ap, am, _ = ACTS[act]
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    m, d = W.shape
    k = A.shape[1]

    def f(th):
        L, gW, gA = loss_grad(X, Y, th[:m * d].reshape(m, d), th[m * d:].reshape(m, k), ap, am)
        return L, np.concatenate([gW.ravel(), gA.ravel()])

    th0 = np.concatenate([W.astype(np.float64).ravel(), A.astype(np.float64).ravel()])
    r = minimize(f, th0, jac=True, method="L-BFGS-B",
                 options={"maxiter": 3000, "gtol": 1e-14, "ftol": 1e-300, "maxcor": 30})
    return r.x[:m * d].reshape(m, d), r.x[m * d:].reshape(m, k)


def run_spec(r: int) -> dict:
    """The r-th run of the campaign (deterministic in r)."""
    rng = np.random.default_rng([SEED, r])
    k = 2 if r % 5 == 4 else 1
    if k == 1:
        n, d, m = int(rng.integers(6, 31)), int(rng.integers(1, 5)), int(rng.integers(3, 21))
    else:       # vector output: small sizes (the high-precision Newton of rank-constrained groups is slow)
        n, d, m = int(rng.integers(6, 13)), int(rng.integers(1, 3)), int(rng.integers(3, 6))
    return {"run": r, "n": n, "d": d, "m": m, "k": k, "act": ("relu", "leaky", "abs")[r % 3],
            "data": ("random", "teacher")[(r // 3) % 2], "init": ("small", "standard")[(r // 2) % 2],
            "polish": (r // 4) % 2 == 1, "rng": rng}


def train(spec: dict) -> tuple[np.ndarray, np.ndarray, list]:
    """Data and the checkpoints [(name, W, A)] of one run."""
    rng = spec.pop("rng")
    n, d, m, k, act = spec["n"], spec["d"], spec["m"], spec["k"], spec["act"]
    X = rng.normal(size=(n, d))
    if spec["data"] == "teacher":
        mt = int(rng.integers(2, 5))
        Wt, At = rng.normal(size=(mt, d)), rng.normal(size=(mt, k))
        Y = np.maximum(X @ Wt.T, 0) @ At
    else:
        Y = rng.normal(size=(n, k))
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    s = 1e-3 if spec["init"] == "small" else 1.0
    W0 = rng.normal(size=(m, d)) * s / np.sqrt(d)
    A0 = rng.normal(size=(m, k)) * s / np.sqrt(m)
    steps = 4000
    lr = 0.1
    for _ in range(4):                               # halve the step until GD stays finite
        hist = gd(X, Y, W0, A0, act, lr, steps)
        if np.isfinite(hist[-1][1]) and hist[-1][0] == steps:
            break
        lr /= 2
    spec["lr"] = lr
    end = hist[-1]
    L0 = hist[0][1]
    mids = [h for h in hist if 0.05 * steps <= h[0] <= 0.75 * steps and h[1] < 0.9 * L0] or \
           [h for h in hist if 0.05 * steps <= h[0] <= 0.75 * steps]
    mid = min(mids, key=lambda h: h[2])
    cps = [("end", end[3], end[4]), (f"mid@{mid[0]}", mid[3], mid[4])]
    if spec["polish"]:
        Wl, Al = lbfgs(X, Y, end[3], end[4], act)
        cps.append(("lbfgs", Wl, Al))
    return X, Y, cps


# ------------------------------------------------------------------------------------------------
# certification, both ways
# ------------------------------------------------------------------------------------------------

def _summary(rep, seconds: float) -> dict:
    rf = rep.refined
    dist = (rf or {}).get("distance") or {}
    return {"verdict": rep.verdict, "refined": rf is not None, "seconds": seconds,
            "left_pattern": bool(rf and rf["left_pattern"]),
            "move": dist.get("relative"), "move_scale": dist.get("relative_to_scale"),
            "method": (rf or {}).get("method", ""), "reason": (rf or {}).get("reason", "")}


CHOICES = ("legacy", "nearest_unpinned", "nearest")


def certify_both(problem: Problem, point: Point) -> dict:
    """certify_checkpoint under the legacy choice, the nearest one without pins (scalar output
    only: ``scalar.PIN_ROUNDS = 0``; for vector output the pins do not apply and it equals
    "nearest"), and the default nearest one."""
    out = {}
    saved, pins = exact.LEAST_SQUARES, scalar.PIN_ROUNDS
    try:
        for choice in CHOICES:
            if choice == "nearest_unpinned" and problem.k > 1:
                continue
            exact.LEAST_SQUARES = "legacy" if choice == "legacy" else "nearest"
            scalar.PIN_ROUNDS = 0 if choice == "nearest_unpinned" else pins
            t0 = time.perf_counter()
            rep = certify_checkpoint(problem, point)
            out[choice] = _summary(rep, time.perf_counter() - t0)
            out["float_gradient"] = rep.float_gradient_relative
    finally:
        exact.LEAST_SQUARES, scalar.PIN_ROUNDS = saved, pins
    if "nearest_unpinned" not in out:
        out["nearest_unpinned"] = out["nearest"]
    return out


def do_run(r: int) -> list:
    spec = run_spec(r)
    X, Y, cps = train(spec)
    pb = Problem.make(X.astype(np.float64), Y.astype(np.float64), ACTS[spec["act"]][2])
    rows = []
    for name, W, A in cps:
        pt = Point.make(np.asarray(W, np.float64), np.asarray(A, np.float64), pb)
        row = {k_: v for k_, v in spec.items() if k_ != "rng"}
        row["checkpoint"] = name
        row.update(certify_both(pb, pt))
        row["case"] = {"activation": ACTS[spec["act"]][2], "X": X.astype(np.float64).tolist(),
                       "Y": Y.astype(np.float64).tolist(), "W": np.asarray(W, np.float64).tolist(),
                       "A": np.asarray(A, np.float64).tolist()}
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------

def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def table(rows: list) -> str:
    slices = [("all", lambda r: True),
              ("near-stationary (float grad <= 1e-3)", lambda r: (r["float_gradient"] or 0) <= 1e-3),
              ("scalar (k = 1)", lambda r: r["k"] == 1),
              ("vector (k = 2)", lambda r: r["k"] > 1),
              ("L-BFGS polished", lambda r: r["checkpoint"] == "lbfgs")]
    lines = ["columns: legacy / nearest without pins / nearest (default)",
             "| slice | checkpoints | definite | left the pattern | median relative move | time nearest / legacy |",
             "|---|---|---|---|---|---|"]
    for name, keep in slices:
        rs = [r for r in rows if keep(r)]
        if not rs:
            continue
        definite = [sum(r[c]["verdict"] in DEFINITE for r in rs) for c in CHOICES]
        left = [sum(r[c]["left_pattern"] for r in rs) for c in CHOICES]
        both = [r for r in rs if all(r[c]["move"] is not None for c in CHOICES)]
        mv = [_median([r[c]["move"] for r in both]) for c in CHOICES]
        tl, tn = (sum(r[c]["seconds"] for r in rs) for c in ("legacy", "nearest"))
        lines.append(f"| {name} | {len(rs)} | {' / '.join(map(str, definite))} | {' / '.join(map(str, left))} | "
                     f"{' / '.join(f'{x:.2e}' for x in mv)} (over {len(both)}) | {tn / tl:.2f} ({tn:.1f} s / {tl:.1f} s) |")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def _outcome(c: dict) -> str:
    return c["verdict"] + (" (left pattern)" if c["left_pattern"] else "")


def differences(rows: list) -> str:
    out = []
    for r in rows:
        a, u, b = r["legacy"], r["nearest_unpinned"], r["nearest"]
        if len({(c["verdict"], c["left_pattern"]) for c in (a, u, b)}) > 1:
            vs = {c["verdict"] for c in (a, u, b) if c["verdict"] in DEFINITE}
            flag = "  <-- DEFINITE VERDICT CHANGED TO ANOTHER DEFINITE ONE" if len(vs) > 1 else ""
            out.append(f"run {r['run']:>3} {r['checkpoint']:<9} k={r['k']} {r['act']:<5} {r['init']:<8} "
                       f"{_outcome(a)} / {_outcome(u)} / {_outcome(b)}; move {_fmt(a['move'])} / "
                       f"{_fmt(u['move'])} / {_fmt(b['move'])}{flag}")
    return "\n".join(out) if out else "(none)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="8 runs")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--json", help="write every row (with its instance) to this file")
    args = ap.parse_args(argv)
    runs = 8 if args.quick else args.runs
    t0 = time.perf_counter()
    rows = []
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            for rs in ex.map(do_run, range(runs)):
                rows += rs
    else:
        for r in range(runs):
            rows += do_run(r)
    wall = time.perf_counter() - t0
    print(f"{runs} runs, {len(rows)} checkpoints (seed {SEED}), wall time {wall:.0f} s\n")
    print(table(rows))
    print("\ncheckpoints whose verdict or pattern outcome differs (legacy / nearest without pins / nearest):")
    print(differences(rows))
    refined = [r for r in rows if r["legacy"]["refined"]]
    closer = sum(1 for r in refined if r["legacy"]["move"] is not None and r["nearest"]["move"] is not None
                 and r["nearest"]["move"] < r["legacy"]["move"])
    farther = sum(1 for r in refined if r["legacy"]["move"] is not None and r["nearest"]["move"] is not None
                  and r["nearest"]["move"] > r["legacy"]["move"])
    ratios = [r["nearest"]["move"] / r["legacy"]["move"] for r in refined
              if r["legacy"]["move"] and r["nearest"]["move"] is not None]
    print(f"\nrefined checkpoints: {len(refined)}; the nearest choice moved less on {closer}, more on {farther} "
          f"(relative Euclidean move in theta); move nearest / legacy: median {_median(ratios):.3f}, "
          f"range {min(ratios, default=float('nan')):.3f} .. {max(ratios, default=float('nan')):.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{k_: v for k_, v in r.items()} for r in rows], fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
