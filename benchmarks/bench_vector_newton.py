"""High-precision Newton of vector-output refinement (``refine.vector``, issue 12 "vector output at
real sizes"): the mpmath ``eigsy`` steps (the only path up to 60 unknowns before; above 60 the
Newton was skipped) against the exact-gradient / float64-Hessian steps, in one process.

    python benchmarks/bench_vector_newton.py [--quick] [--eigsy-max P] [--sizes 40,80,...]

Cases (seeded, not the paper's data): ReLU, d = 3 (two random coordinates and a constant one, the
hidden bias), k = 3, n = 4 m data points away from the hyperplanes of a random m-neuron teacher,
targets = teacher + 0.01 noise, the student fitted on the teacher's activation pattern (``make_case``;
the first of up to 6 seeds per size whose fit keeps the pattern), m chosen so that m (d + k) is about
each size.  Every neuron has its own activation pattern, so the groups are narrower than min(k, d)
and the stationary point is irrational: refinement runs the Newton of ``refine_vector``.  Each case
is refined on the checkpoint's pattern with pattern updates by

  eigsy : refine.vector.EIGSY_UNKNOWNS set above the size (mpmath eigsy steps; the committed path),
          run only up to --eigsy-max unknowns (default 80; it grows like P^3 mp operations),
  fast  : refine.vector.EIGSY_UNKNOWNS = -1 (exact gradient, float64 Hessian steps),

and the result is decided as the pipeline does (``refine.driver.refine``: exact certify of the
rounding, then a ball certificate); the table gives the refine_vector time (float stage included),
the high-precision steps and final max |gradient| ("-" when the float stage found no stationary
point), the whole refine + decide time and the verdict of each.  One BLAS thread (see below).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

# one BLAS thread: on a shared 2-core machine threaded eigh is several times slower (set it to compare)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from relucert.core.problem import Point, Problem  # noqa: E402
import relucert.refine.vector as V  # noqa: E402
from relucert.refine import Tolerances, classify  # noqa: E402
from relucert.refine.driver import choose, refine  # noqa: E402


def make_case(seed: int, d: int, m: int, k: int, bias: bool = False, n: int | None = None, noise: float = 0.01):
    """A well-converged checkpoint of a teacher-student run: (problem, point, max |float gradient|,
    whether ``polish`` kept its fit).

    Teacher: m ReLU neurons (w_j random, a_j random) and, with ``bias``, an output bias; inputs
    x = (two random coordinates..., 1) drawn away from every teacher hyperplane (|w_j . x| >= 0.1
    |w_j| |x|); targets = teacher + ``noise`` Gaussian noise.  The student starts at the teacher and
    is fitted on the teacher's activation pattern (``polish``): an irrational stationary point strictly
    inside that pattern, every neuron with its own pattern (groups narrower than min(k, d))."""
    rng = np.random.default_rng(seed)
    n = n or max(4 * m, 12)
    Wt, At = rng.standard_normal((m, d)), rng.standard_normal((m, k))
    ct = rng.standard_normal(k) if bias else np.zeros(k)
    rows = []
    while len(rows) < n:
        x = np.concatenate([rng.standard_normal(d - 1), [1.0]])
        if np.all(np.abs(Wt @ x) >= 0.1 * np.linalg.norm(Wt, axis=1) * np.linalg.norm(x)):
            rows.append(x)
    X = np.array(rows)
    Y = np.maximum(X @ Wt.T, 0) @ At + ct + noise * rng.standard_normal((n, k))
    th0 = np.concatenate([Wt.ravel(), At.ravel()] + ([ct] if bias else []))
    th, kept = polish(X, Y, th0, m, k, bias)
    W, A = th[:m * d].reshape(m, d), th[m * d:m * (d + k)].reshape(m, k)
    Z = X @ W.T
    E = np.maximum(Z, 0) @ A + (th[m * (d + k):] if bias else 0) - Y
    g = np.concatenate([((((E @ A.T) * (Z > 0)).T @ X) / n).ravel(), (np.maximum(Z, 0).T @ E / n).ravel()])
    pb = Problem.make(X.tolist(), Y.tolist(), "relu")
    c = th[m * (d + k):].tolist() if bias else None
    return pb, Point.make(W.tolist(), A.tolist(), pb, c=c), float(np.abs(g).max()), kept


def polish(X, Y, th, m, k, bias):
    """theta fitted on its own activation pattern (the mask z_ij > 0 held fixed) by scipy's
    trust-region least squares with the analytic Jacobian; kept only when every strict pre-activation
    keeps its sign (else theta unchanged): (theta, kept)."""
    from scipy.optimize import least_squares
    n, d = X.shape
    D = (X @ th[:m * d].reshape(m, d).T > 0).astype(float)

    def split(t):
        return (t[:m * d].reshape(m, d), t[m * d:m * (d + k)].reshape(m, k),
                t[m * (d + k):] if bias else np.zeros(k))

    def res(t):
        W, A, c = split(t)
        return ((D * (X @ W.T)) @ A + c - Y).ravel()

    def jac(t):
        W, A, _ = split(t)
        J = np.zeros((n, k, len(t)))
        H = D * (X @ W.T)
        for j in range(m):
            J[:, :, j * d:(j + 1) * d] = (D[:, j][:, None, None] * A[j][None, :, None]) * X[:, None, :]
            for c in range(k):
                J[:, c, m * d + j * k + c] = H[:, j]
        if bias:
            for c in range(k):
                J[:, c, m * (d + k) + c] = 1.0
        return J.reshape(n * k, len(t))

    r = least_squares(res, th, jac=jac, method="trf", xtol=1e-15, ftol=1e-15, gtol=1e-15,
                      max_nfev=2000 if len(th) <= 400 else 30)   # dense trf is slow above; 30 gets near enough
    Z0, Z1 = X @ th[:m * d].reshape(m, d).T, X @ r.x[:m * d].reshape(m, d).T
    keep = np.all((Z1 > 0) == (Z0 > 0)) and np.all((Z1 < 0) == (Z0 < 0))
    return (r.x, True) if keep else (th, False)


def run(pb, pt, pat, eigsy_max):
    """refine_vector alone (time, note) and the pipeline's refine + decide (time, verdict, reason)."""
    old = V.EIGSY_UNKNOWNS
    V.EIGSY_UNKNOWNS = eigsy_max
    try:
        t = time.perf_counter()
        new, note = V.refine_vector(pb, pt, pat, "as_given", pattern_out=[])
        t_newton = time.perf_counter() - t
        t = time.perf_counter()
        ref = choose(refine(pb, pt)["refinements"])
        t_all = time.perf_counter() - t
    finally:
        V.EIGSY_UNKNOWNS = old
    steps = re.search(r"digits: (\d+) steps, gradient ([0-9.e+-]+)", note or "")   # the high-precision stage
    reason = ref.to_json()["reason"] or ""
    return {"t_newton": t_newton, "steps": steps.group(1) if steps else "-",
            "grad": steps.group(2) if steps else "-", "t_all": t_all, "verdict": ref.verdict,
            "reason": reason, "note": note}


def compare_small(count: int, seed0: int) -> None:
    """Can the fast steps replace eigsy below EIGSY_UNKNOWNS?  Verdicts and times of both paths."""
    rng = np.random.default_rng(seed0)
    same = tried = 0
    t_e = t_f = 0.0
    print(f"{'seed':>5} {'d':>2} {'k':>2} {'m':>2} {'c':>1} {'unknowns':>8} | {'eigsy s':>8} {'fast s':>7} | "
          f"verdict eigsy / fast")
    s = seed0
    while tried < count:
        s += 1
        d, k, m = int(rng.integers(2, 4)), int(rng.integers(2, 4)), int(rng.integers(2, 9))
        bias = bool(rng.integers(0, 2))
        pb, pt, gj, kept = make_case(s, d, m, k, bias=bias)
        pat = classify(pb, pt, Tolerances())
        nunk = sum(V.d_unknowns(pb, pat, j) for j in range(pt.m)) + V.bias_unknowns(pb, pt)
        if not kept or nunk == 0 or nunk > V.EIGSY_UNKNOWNS:
            continue
        tried += 1
        e, f = run(pb, pt, pat, 10 ** 9), run(pb, pt, pat, -1)
        t_e += e["t_all"]
        t_f += f["t_all"]
        same += e["verdict"] == f["verdict"]
        print(f"{s:>5} {d:>2} {k:>2} {m:>2} {int(bias):>1} {nunk:>8} | {e['t_all']:>8.2f} {f['t_all']:>7.2f} | "
              f"{e['verdict']} / {f['verdict']}{'' if e['verdict'] == f['verdict'] else '  DIFFER'}", flush=True)
    print(f"identical verdicts: {same}/{tried}; refine + decide total {t_e:.1f} s (eigsy) vs {t_f:.1f} s (fast), "
          f"{t_e / max(t_f, 1e-9):.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="sizes 40, 80, 160 only")
    ap.add_argument("--sizes", default=None, help="comma-separated target unknowns m (d + k)")
    ap.add_argument("--eigsy-max", type=int, default=80, help="run the eigsy path up to this many unknowns")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bias", action="store_true", help="networks with an output bias c")
    ap.add_argument("--compare-small", type=int, default=0, metavar="N",
                    help="instead: N seeded cases at or below the eigsy size (d = 2 or 3, k = 2 or 3, "
                         "m = 2..8, with and without an output bias), both paths, verdicts compared")
    args = ap.parse_args()
    if args.compare_small:
        compare_small(args.compare_small, args.seed)
        return
    d, k = 3, 3
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else \
        ([40, 80, 160] if args.quick else [40, 80, 160, 320, 640])
    print(f"d = {d}, k = {k}, ReLU, n = 4 m, output bias: {args.bias}; REFINE_SECONDS = {V.REFINE_SECONDS:g}")
    print(f"{'P target':>8} {'m':>4} {'unknowns':>8} | {'path':5} {'newton s':>9} {'steps':>5} {'gradient':>9} "
          f"{'refine+decide s':>15}  verdict")
    for i, P in enumerate(sizes):
        m = max(1, round(P / (d + k)))
        for attempt in range(6):            # the first seed whose fit stays on the teacher's pattern
            seed = args.seed + 100 * i + attempt
            pb, pt, gj, kept = make_case(seed, d, m, k, bias=args.bias)
            if kept:
                break
        pat = classify(pb, pt, Tolerances())
        nunk = sum(V.d_unknowns(pb, pat, j) for j in range(pt.m)) + V.bias_unknowns(pb, pt)
        rows = []
        if nunk <= args.eigsy_max:
            rows.append(("eigsy", run(pb, pt, pat, 10 ** 9)))
        rows.append(("fast", run(pb, pt, pat, -1)))
        for name, r in rows:
            print(f"{P:>8} {m:>4} {nunk:>8} | {name:5} {r['t_newton']:>9.2f} {r['steps']:>5} {r['grad']:>9} "
                  f"{r['t_all']:>15.2f}  {r['verdict']}", flush=True)
        if len(rows) == 2:
            a, b = rows[0][1], rows[1][1]
            same = "same verdict" if a["verdict"] == b["verdict"] else "VERDICTS DIFFER"
            print(f"{'':>24} newton speed-up {a['t_newton'] / max(b['t_newton'], 1e-9):.0f}x, "
                  f"refine+decide {a['t_all'] / max(b['t_all'], 1e-9):.1f}x; {same}")
        print(f"{'':>24} seed {seed}, float gradient of the checkpoint {gj:.1e}{'' if kept else ' (not polished)'}; "
              f"reason (fast): {rows[-1][1]['reason'][-200:]}")


if __name__ == "__main__":
    main()
