"""Exact analysis at scale, and the flint engine against a pure-Fraction baseline, in one process.

    python benchmarks/bench_exact.py [--quick] [--fit-size N] [--check-big] [--seed S]

Large case (issue 2 target: under a minute): m = n = 1000, d = 10, k = 1, ReLU, float64 data and
weights, three points:

  A  "float checkpoint": W random, A the float64 least-squares fit of the output weights (what a
     trained checkpoint looks like: S1 holds only approximately, so the verdict is not_stationary).
  B  "stationary float point": a float64 point that is an exact local minimum by construction:
     a bias column, every neuron's hyperplane leaves a far cluster of data points (10 %) strictly
     inactive, 10 % of the neurons strictly dead with a = 0, and the targets of the covered points
     are the network's own outputs (exact rationals), those of the cluster random.  Then G_j = 0
     and b_j = 0 exactly for every neuron, so certify must run (S1), (S2) and the escape test on all
     1000 neurons; the verdict must be local_min.
  C  "exact least-squares fit": as asked in the issue, A fitted EXACTLY in rationals (normal
     equations H^T H A = H^T Y over the alive neurons, python-flint fmpq_mat Dixon solve), half of
     the neurons strictly dead so that rank H < n and the loss stays > 0.  G = 0 exactly; the
     rationals of A have tens of thousands of digits, so this point is slow to analyse (reported
     at --fit-size, default 200; set it to 1000 for the full size).

Small case m = n = 100, d = 10 (same constructions): the flint engine (``ExactState``: residuals,
loss, G_j, per-neuron linear part Lin_j) against the same formulas with element-wise
``fractions.Fraction`` loops, and the ratio; plus certify and the independent checker (pure
Fractions by design) on the small points.

--quick: large case m = n = 150, small case m = n = 40, fit size 40 (a few seconds).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from fractions import Fraction

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from flint import fmpq  # noqa: E402

from relucert import certify
from relucert.check import require_valid  # noqa: E402
from relucert.core.formulas import ExactState  # noqa: E402
from relucert.core.linalg import from_fmpq_mat, to_fmpq_mat  # noqa: E402
from relucert.core.problem import Point, Problem  # noqa: E402


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


# ---------------------------------------------------------------------------------------------
# points
# ---------------------------------------------------------------------------------------------

def float_checkpoint(m, n, d, seed):
    """A: random data and W, float64 least-squares A (S1 only approximately)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((n, 1))
    W = rng.standard_normal((m, d))
    H = np.maximum(X @ W.T, 0.0)
    A = np.linalg.lstsq(H, Y, rcond=None)[0]
    return X, Y, W, A


def stationary_float_point(m, n, d, seed):
    """B: float64 W, A that are an exact local minimum (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_far = max(1, n // 10)
    X = rng.standard_normal((n, d))
    X[:, -1] = 1.0                                  # bias column
    X[:n_far, 0] = -10.0 + 0.5 * rng.standard_normal(n_far)   # the far cluster
    W = rng.standard_normal((m, d))
    W[:, 0] = 2.0 + np.abs(rng.standard_normal(m))  # every hyperplane leaves the cluster inactive
    A = rng.standard_normal((m, 1))
    n_dead = max(1, m // 10)
    W[m - n_dead:, :-1] *= 0.01                     # strictly dead neurons with a = 0
    W[m - n_dead:, -1] = -1000.0
    A[m - n_dead:] = 0.0
    Z = X @ W.T
    assert (Z[:n_far] < -1).all() and (Z[:, m - n_dead:] < -1).all(), "construction margin"
    pb = Problem.make(X, np.zeros((n, 1)), "relu")
    pt = Point.make(W, A, pb)
    F = ExactState(pb, pt).fw.F                     # exact network outputs
    Y = np.empty((n, 1), dtype=object)
    Y[:, 0] = [fmpq(*float(v).as_integer_ratio()) for v in rng.standard_normal(n)]
    Y[n_far:] = F[n_far:]                           # covered points are fitted exactly
    return X, Y, W, A


def exact_fit_point(m, n, d, seed):
    """C: half the neurons strictly dead, A fitted exactly (normal equations over the alive ones)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[:, -1] = 1.0
    W = rng.standard_normal((m, d))
    dead = np.arange(m) % 2 == 1
    W[dead, -1] = -1000.0
    assert (X @ W[dead].T < 0).all()
    Y = rng.standard_normal((n, 1))
    pb = Problem.make(X, Y, "relu")
    pt = Point.make(W, np.zeros((m, 1)), pb)
    t = time.perf_counter()
    H = to_fmpq_mat(ExactState(pb, pt).fw.H[:, ~dead])
    Ht = H.transpose()
    sol = (Ht * H).solve(Ht * to_fmpq_mat(pb.Y), algorithm="dixon")
    A = np.empty((m, 1), dtype=object)
    A[:] = fmpq(0)
    A[~dead] = from_fmpq_mat(sol)
    fit_s = time.perf_counter() - t
    digits = max(len(str(v)) for v in A[~dead, 0])
    return pb, Point(pt.W, A), fit_s, digits


# ---------------------------------------------------------------------------------------------
# pure-Fraction baseline: residuals, loss, G_j, Lin_j with element-wise Fraction loops
# ---------------------------------------------------------------------------------------------

def to_fraction(M):
    return [[Fraction(v) if not isinstance(v, fmpq) else Fraction(int(v.p), int(v.q)) for v in row]
            for row in (M.tolist() if hasattr(M, "tolist") else M)]


def fraction_baseline(X, Y, W, A):
    """Same quantities as ExactState (ReLU): loss, G (m x k), Lin (m x k x d)."""
    n, d, m, k = len(X), len(X[0]), len(W), len(Y[0])
    Z = [[sum((W[j][q] * X[i][q] for q in range(d)), Fraction(0)) for j in range(m)] for i in range(n)]
    S = [[1 if z > 0 else 0 for z in row] for row in Z]
    H = [[z if z > 0 else Fraction(0) for z in row] for row in Z]
    E = [[sum((H[i][j] * A[j][c] for j in range(m)), Fraction(0)) - Y[i][c] for c in range(k)] for i in range(n)]
    loss = sum((e * e for row in E for e in row), Fraction(0)) / (2 * n)
    G = [[sum((E[i][c] * H[i][j] for i in range(n)), Fraction(0)) / n for c in range(k)] for j in range(m)]
    Lin = [[[sum((E[i][c] * X[i][q] for i in range(n) if S[i][j]), Fraction(0)) / n for q in range(d)]
            for c in range(k)] for j in range(m)]
    return loss, G, Lin


# ---------------------------------------------------------------------------------------------

def analyse(label, X, Y, W, A, *, check=False):
    (pb, pt), t_conv = timed(lambda: (lambda p: (p, Point.make(W, A, p)))(Problem.make(X, Y, "relu")))
    res, t_cert = timed(certify, pb, pt)
    row = {"case": label, "m": pt.m, "n": pb.n, "d": pb.d, "verdict": res.verdict,
           "to_exact_s": t_conv, "certify_s": t_cert}
    if check:
        v, t_chk = timed(require_valid, res.certificate)
        assert v == res.verdict
        row["check_s"] = t_chk
    return row, res


def print_row(r):
    extra = "".join(f"  {k}={r[k]:.2f}s" for k in ("to_exact_s", "fit_s", "certify_s", "check_s") if k in r)
    print(f"  {r['case']:<34} m={r['m']:<5} n={r['n']:<5} d={r['d']:<3} verdict={r['verdict']:<15}{extra}"
          + (f"  (A: up to {r['digits']} digits)" if "digits" in r else ""), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="CI-size run (seconds)")
    ap.add_argument("--fit-size", type=int, default=None, help="m = n of the exact least-squares case C")
    ap.add_argument("--check-big", action="store_true", help="also run the pure-Fraction checker on the large B")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    big, small = (150, 40) if args.quick else (1000, 100)
    fit = args.fit_size or (40 if args.quick else 200)
    d = 10
    import flint
    print(f"bench_exact: python {platform.python_version()}, python-flint {flint.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} cpu(s){'  [quick]' if args.quick else ''}", flush=True)

    print(f"\nlarge case (m = n = {big}, d = {d}):")
    rA, resA = analyse("A float checkpoint (float LSQ A)", *float_checkpoint(big, big, d, args.seed))
    print_row(rA)
    rB, resB = analyse("B stationary float point", *stationary_float_point(big, big, d, args.seed),
                       check=args.check_big)
    print_row(rB)
    assert rB["verdict"] == "local_min", resB.report()
    pb, pt, fit_s, digits = exact_fit_point(fit, fit, d, args.seed)
    resC, t = timed(certify, pb, pt)
    rC = {"case": "C exact LSQ fit (half dead)", "m": fit, "n": fit, "d": d, "verdict": resC.verdict,
          "fit_s": fit_s, "certify_s": t, "digits": digits}
    print_row(rC)

    print(f"\nsmall case (m = n = {small}, d = {d}): flint engine vs element-wise Fractions")
    for label, maker in (("A float checkpoint", float_checkpoint), ("B stationary float point", stationary_float_point)):
        X, Y, W, A = maker(small, small, d, args.seed)
        (pb, pt), t_conv = timed(lambda: (lambda p: (p, Point.make(W, A, p)))(Problem.make(X, Y, "relu")))
        st, t_flint = timed(ExactState, pb, pt)
        Xf, Yf, Wf, Af = (to_fraction(M) for M in (pb.X, pb.Y, pt.W, pt.A))
        (loss, G, Lin), t_frac = timed(fraction_baseline, Xf, Yf, Wf, Af)
        # same numbers
        assert Fraction(int(st.loss_half_mean.p), int(st.loss_half_mean.q)) == loss
        assert all(Fraction(int(st.G[j, 0].p), int(st.G[j, 0].q)) == G[j][0] for j in range(pt.m))
        assert all(Fraction(int(st.Lin[j, 0, q].p), int(st.Lin[j, 0, q].q)) == Lin[j][0][q]
                   for j in range(pt.m) for q in range(pb.d))
        row, res = analyse(label, X, Y, W, A, check=True)
        print(f"  {label:<26} loss+G+Lin: flint {t_flint:.3f}s, Fraction {t_frac:.3f}s, "
              f"ratio {t_frac / t_flint:.1f}x;  certify {row['certify_s']:.3f}s ({res.verdict}), "
              f"checker {row['check_s']:.3f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
