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

Issue 15 (filtered exact arithmetic, core/exactfast.py), each measurement in a fresh process (time and
peak resident memory from getrusage; ``--generic`` forces the generic exact formulas, today's path
before issue 15, for the before/after comparison):

    python benchmarks/bench_exact.py --issue15 [--largest] [--generic]
    python benchmarks/bench_exact.py --scaling [--largest] [--generic]

--issue15: the issue's rows next to their targets (library ``certify``, i.e. ``certify --exact-only``
without file loading and without the independent checker): n = m = 3000, d = 20, a plainly
non-stationary float64 point; n = 2000, d = 200, m = 10, float32, not stationary; the exactly
stationary point B with n = m = 1000, d = 10; with --largest B at n = m = 10^4, d = 50.
--scaling: certify on a non-stationary float64 point against a pure-float evaluation of the same
quantities (float64 forward, residuals, G, Lin) for n = m from 100 to 3000 (n m = 10^4 .. 10^7; with
--largest also 10^4, n m = 10^8), d = 20, and the fitted exponent t ~ (n m)^p of each.
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
    X[:n_far, 0] = -10.0 * max(1.0, (d / 10) ** 0.5) + 0.5 * rng.standard_normal(n_far)   # the far cluster
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
    F = ExactState(pb, pt).E                        # exact network outputs (Y = 0 here)
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


# ---------------------------------------------------------------------------------------------
# issue 15: one measurement per fresh process
# ---------------------------------------------------------------------------------------------

def random_point(n, d, m, dtype, seed):
    """Random data, targets and weights: a plainly non-stationary point (G_j != 0)."""
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s).astype(dtype) for s in ((n, d), (n, 1), (m, d), (m, 1)))


ISSUE_ROWS = {   # name: (maker, target seconds, target MB, description)
    "square3000": (lambda s: random_point(3000, 20, 3000, np.float64, s), 5, 500,
                   "n = m = 3000, d = 20, float64, non-stationary"),
    "wide": (lambda s: random_point(2000, 200, 10, np.float32, s), 2, None,
             "n = 2000, d = 200, m = 10, float32, non-stationary"),
    "stationary1000": (lambda s: stationary_float_point(1000, 1000, 10, s), 3, None,
                       "stationary B, n = m = 1000, d = 10"),
    "stationary10k": (lambda s: stationary_float_point(10000, 10000, 50, s), 60, 4000,
                      "stationary B, n = m = 10^4, d = 50"),
}


def worker(spec: list, generic: bool, seed: int) -> dict:
    """Run one measurement in this (fresh) process and return its figures."""
    import resource
    from relucert.decide.certify import certify as certify_
    if generic:
        from relucert.core import exactfast
        exactfast.FAST_MIN_PAIRS = exactfast.FAST_MIN_WORK = 10 ** 18
    kind = spec[0]
    if kind == "float":                       # the pure-float evaluation of the same quantities
        n, d = int(spec[1]), int(spec[2])
        X, Y, W, A = random_point(n, d, n, np.float64, seed)
        t = time.perf_counter()
        Z = X @ W.T
        S = (Z > 0).astype(np.float64)
        H = S * Z
        E = H @ A - Y
        G = H.T @ E / n
        Lin = (S * E).T @ X / n
        loss = float((E * E).sum() / (2 * n))
        secs = time.perf_counter() - t
        assert np.isfinite(loss) and G.shape == (n, 1) and Lin.shape == (n, d)
        verdict = "-"
    else:
        if kind == "scale":
            n, d = int(spec[1]), int(spec[2])
            X, Y, W, A = random_point(n, d, n, np.float64, seed)
        else:
            X, Y, W, A = ISSUE_ROWS[kind][0](seed)
        pb = Problem.make(X, Y, "relu")
        pt = Point.make(W, A, pb)
        t = time.perf_counter()
        res = certify_(pb, pt)
        secs = time.perf_counter() - t
        verdict = res.verdict
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"spec": spec, "seconds": secs, "peak_mb": rss, "verdict": verdict}


def run_fresh(spec: list, generic: bool, seed: int) -> dict:
    import json
    import subprocess
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", *map(str, spec), "--seed", str(seed)]
    if generic:
        cmd.append("--generic")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"spec": spec, "seconds": float("nan"), "peak_mb": float("nan"),
                "verdict": "error: " + (out.stderr.strip().splitlines() or ["?"])[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_mb() -> float:
    """Peak memory of a fresh process that only imports the package (the floor of every row)."""
    import subprocess
    out = subprocess.run([sys.executable, "-c", "import resource, relucert.decide.certify; "
                          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                         capture_output=True, text=True, cwd=os.path.join(os.path.dirname(__file__), ".."))
    return float(out.stdout.strip() or "nan")


def issue15(args) -> int:
    path = "generic exact formulas (before issue 15)" if args.generic else "filtered exact evaluation"
    print(f"issue 15 rows, library certify (no file loading, no independent checker), {path}; "
          f"a bare import peaks at {baseline_mb():.0f} MB", flush=True)
    names = ["square3000", "wide", "stationary1000"] + (["stationary10k"] if args.largest else [])
    for name in names:
        _, t_s, t_mb, desc = ISSUE_ROWS[name]
        r = run_fresh([name], args.generic, args.seed)
        target = f"< {t_s} s" + (f", < {t_mb} MB" if t_mb else "")
        print(f"  {desc:<48} {r['seconds']:8.2f} s {r['peak_mb']:8.0f} MB   target {target:<18} "
              f"{r['verdict']}", flush=True)
    if not args.generic:
        print("the command line, end to end (a fresh `relucert certify --exact-only FILE.npz --certificate C.json "
              "--quiet`: imports, loading, analysis, report and certificate; best of 3, after one run that "
              "compiles the package's bytecode):", flush=True)
        for name in ["square3000", "wide"]:
            _, t_s, t_mb, desc = ISSUE_ROWS[name]
            r = cli_fresh(name, args.seed)
            target = f"< {t_s} s" + (f", < {t_mb} MB" if t_mb else "")
            print(f"  {desc:<48} {r['wall']:8.2f} s wall ({r['cpu']:.2f} s CPU) {r['peak_mb']:8.0f} MB   "
                  f"target {target:<18} {'met' if r['wall'] < t_s else 'not met'}; independent checker "
                  f"{r['check']:.1f} s ({'accepts' if r['check_ok'] else 'REJECTS'})", flush=True)
    return 0


def cli_fresh(name: str, seed: int, repeat: int = 3) -> dict:
    """Wall time, CPU time and peak memory of the command line on one issue row, in fresh processes."""
    import resource
    import subprocess
    import tempfile
    X, Y, W, A = ISSUE_ROWS[name][0](seed)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)        # as on a user's machine: bytecode is cached
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, f"{name}.npz")
        np.savez(f, X=X, Y=Y, W=W, A=A)
        cmd = [sys.executable, "-c", "import resource, sys; from relucert.cli import main; rc = main(); "
               "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)",
               "certify", "--exact-only", f, "--certificate", os.path.join(tmp, "c.json"), "--quiet"]
        best = None
        for i in range(repeat + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if out.returncode != 0:
                raise SystemExit(f"the command line failed on {name}: {out.stderr.strip()[-300:]}")
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            peak = [ln for ln in out.stderr.splitlines() if ln.startswith("peak ")]
            if i and (best is None or wall < best["wall"]):
                best = {"wall": wall, "cpu": cpu, "peak_mb": int(peak[-1].split()[1]) / 1024 if peak else float("nan")}
        # the independent checker on the certificate written (once: it is the slow, stdlib-only side)
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "relucert.check", os.path.join(tmp, "c.json")],
                             capture_output=True, text=True, env=env)
        best["check"] = time.perf_counter() - t
        best["check_ok"] = out.returncode == 0
    return best


def scaling(args) -> int:
    sizes = [100, 300, 1000, 3000] + ([10000] if args.largest else [])
    d = 20
    path = "generic exact formulas" if args.generic else "filtered exact evaluation"
    print(f"scaling (n = m, d = {d}, non-stationary float64 point): certify ({path}) vs a pure-float "
          "evaluation of loss, residuals, G, Lin; each in a fresh process", flush=True)
    print(f"  {'n*m':>10} {'certify s':>10} {'peak MB':>8} {'float s':>9} {'peak MB':>8} {'ratio':>8}", flush=True)
    rows = []
    for n in sizes:
        ex = run_fresh(["scale", n, d], args.generic, args.seed)
        fl = run_fresh(["float", n, d], False, args.seed)
        rows.append((n * n, ex["seconds"], fl["seconds"]))
        print(f"  {n * n:>10.0e} {ex['seconds']:>10.3f} {ex['peak_mb']:>8.0f} {fl['seconds']:>9.4f} "
              f"{fl['peak_mb']:>8.0f} {ex['seconds'] / fl['seconds']:>8.0f}x  {ex['verdict']}", flush=True)
    ok = [r for r in rows if np.isfinite(r[1])]
    if len(ok) >= 2:
        lx = np.log([r[0] for r in ok])
        pe = np.polyfit(lx, np.log([r[1] for r in ok]), 1)[0]
        pf = np.polyfit(lx, np.log([max(r[2], 1e-6) for r in ok]), 1)[0]
        print(f"  fitted exponent t ~ (n m)^p: certify p = {pe:.2f}, float p = {pf:.2f}", flush=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--issue15", action="store_true", help="the issue-15 rows next to their targets")
    ap.add_argument("--scaling", action="store_true", help="the n*m scaling table against a float evaluation")
    ap.add_argument("--largest", action="store_true", help="with --issue15/--scaling: also n = m = 10^4")
    ap.add_argument("--generic", action="store_true", help="force the generic exact formulas (the old path)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="CI-size run (seconds)")
    ap.add_argument("--fit-size", type=int, default=None, help="m = n of the exact least-squares case C")
    ap.add_argument("--check-big", action="store_true", help="also run the pure-Fraction checker on the large B")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.worker:
        import json
        print(json.dumps(worker(args.worker, args.generic, args.seed)))
        return 0
    if args.issue15:
        return issue15(args)
    if args.scaling:
        return scaling(args)
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
