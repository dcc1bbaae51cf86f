"""Second-order decision at vector-output kinks (issue 13): before / after on the hard class.

    python benchmarks/bench_second_order.py [--target N] [--seed S] [--rays R] [--curves C]

The hard class: vector-output (k = 2, 3) stationary points, built stationary by construction by
``relucert.claims.generators.stationary_point`` (kinks, replicas, zero / dead / zero-output neurons;
half of the seeds with the default neuron modes, half with kink-heavy modes and every a_j != 0), on
which today's route (``certify`` without the kink test: Theorems A/B, the escape neurons' flat
rays, the smooth Hessian, Morse-Bott) ends ``inconclusive`` because escape neurons have a_j != 0.
For each of the first N such points (seeded, reproducible) it prints

* before / after: the fraction left inconclusive (before it is 100 % by definition of the class);
* disagreements with a brute-force exact descent search written here (independent of relucert:
  Fractions, the network written out): every ``local_min`` is searched along R random rays (half of
  them on the kink faces) and C quadratic curves, the loss change near 0+ interpolated exactly; every
  ``saddle`` path is re-evaluated at t0 / 2^h, h = 0..5; plus the independent checker on every
  certificate.  Must be 0;
* time per instance of the kink test, and the cost against the number of kink pairs.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import defaultdict
from fractions import Fraction as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import relucert.decide.certify as certify_mod                       # noqa: E402
from relucert.check import require_valid                            # noqa: E402
from relucert.claims.generators import stationary_point             # noqa: E402
from relucert.claims.source import RandomSource, Reject             # noqa: E402

TODAY_REASON = "Theorems A/B decide nothing here"


# ---------------------------------------------------------------------------------------------
# brute-force oracle (independent of relucert)
# ---------------------------------------------------------------------------------------------

def _sig(z, ap, am):
    return ap * z if z > 0 else am * z


def _dot(u, v):
    return sum((p * q for p, q in zip(u, v)), F(0))


class Net:
    def __init__(self, pb, pt):
        self.X = [[F(str(v)) for v in r] for r in pb.X.tolist()]
        self.Y = [[F(str(v)) for v in r] for r in pb.Y.tolist()]
        self.W = [[F(str(v)) for v in r] for r in pt.W.tolist()]
        self.A = [[F(str(v)) for v in r] for r in pt.A.tolist()]
        self.c = None if pt.c is None else [F(str(v)) for v in pt.c.tolist()]
        self.ap, self.am = F(str(pb.activation.alpha_plus)), F(str(pb.activation.alpha_minus))

    def loss(self, W, A, c):
        tot = F(0)
        for x, y in zip(self.X, self.Y):
            h = [_sig(_dot(w, x), self.ap, self.am) for w in W]
            for col in range(len(y)):
                f = sum((a[col] * hj for a, hj in zip(A, h)), F(0)) + (c[col] if c is not None else 0)
                tot += (f - y[col]) ** 2
        return tot / (2 * len(self.X))

    def at(self, t, d1, d2):
        def mv(base, a, b):
            return [[u + t * v + (t * t * w if b is not None else 0)
                     for u, v, w in zip(r0, r1, (r2 if b is not None else r1))]
                    for r0, r1, r2 in zip(base, a, (b if b is not None else a))]
        W = mv(self.W, d1[0], None if d2 is None else d2[0])
        A = mv(self.A, d1[1], None if d2 is None else d2[1])
        c = None if self.c is None else [u + t * v + (t * t * w if d2 is not None else 0)
                                         for u, v, w in zip(self.c, d1[2], (d2[2] if d2 is not None else d1[2]))]
        return W, A, c


def _interp(ts, vals):
    n = len(ts)
    coef = list(vals)
    for j in range(1, n):
        for i in range(n - 1, j - 1, -1):
            coef[i] = (coef[i] - coef[i - 1]) / (ts[i] - ts[i - j])
    poly = [F(0)] * n
    for i in range(n - 1, -1, -1):
        new = [F(0)] * n
        for p in range(n - 1):
            new[p + 1] += poly[p]
            new[p] -= ts[i] * poly[p]
        new[0] += coef[i]
        poly = new
    return poly


def _lex(vals):
    for v in vals:
        if v != 0:
            return 1 if v > 0 else -1
    return 0


def curve_poly(net, d1, d2, degree):
    L0 = net.loss(net.W, net.A, net.c)
    want = []
    for x in net.X:
        for j in range(len(net.W)):
            ez = F(0) if d2 is None else _dot(d2[0][j], x)
            want.append((x, j, _lex([_dot(net.W[j], x), _dot(d1[0][j], x), ez])))
    t = F(1, 16)
    while True:
        ts = [t * (i + 1) / (degree + 1) for i in range(degree + 1)]
        if all(_lex([_dot(net.at(tt, d1, d2)[0][j], x)]) == sg for tt in ts for x, j, sg in want):
            break
        t /= 8
    return _interp(ts, [net.loss(*net.at(tt, d1, d2)) - L0 for tt in ts])


def descent_found(pb, pt, rng, rays, curves) -> bool:
    net = Net(pb, pt)
    m, d, k = len(net.W), len(net.X[0]), len(net.Y[0])
    kinks = [(i, j) for j in range(m) for i, x in enumerate(net.X) if any(x) and _dot(net.W[j], x) == 0]

    def rnd(face):
        dW = [[F(rng.randint(-3, 3), rng.choice((1, 2, 3))) if rng.random() < 0.7 else F(0) for _ in range(d)]
              for _ in range(m)]
        dA = [[F(rng.randint(-3, 3), rng.choice((1, 2, 3))) if rng.random() < 0.7 else F(0) for _ in range(k)]
              for _ in range(m)]
        if face:
            for i, j in kinks:
                if rng.random() < 0.8:
                    x = net.X[i]
                    f = _dot(dW[j], x) / _dot(x, x)
                    dW[j] = [p - f * q for p, q in zip(dW[j], x)]
        dc = None if net.c is None else [F(rng.randint(-2, 2)) for _ in range(k)]
        return dW, dA, dc
    tests = [(rnd(r % 2 == 1), None, 4) for r in range(rays)] + \
            [(rnd(True), rnd(False), 8) for _ in range(curves)]
    for d1, d2, deg in tests:
        poly = curve_poly(net, d1, d2, deg)
        lead = next((v for v in poly[1:] if v != 0), F(0))
        if lead < 0:
            return True
    return False


def saddle_ok(pb, pt, so) -> bool:
    net = Net(pb, pt)
    L0 = net.loss(net.W, net.A, net.c)
    d1 = ([[F(v) for v in r] for r in so["dW"]], [[F(v) for v in r] for r in so["dA"]],
          None if "dc" not in so else [F(v) for v in so["dc"]])
    t0 = F(so["t0"])
    return all(net.loss(*net.at(t0 / 2 ** h, d1, None)) < L0 for h in range(6))


# ---------------------------------------------------------------------------------------------

def instances(seed: int):
    for s in range(10 ** 7):
        src = RandomSource(f"{seed}:{s}")
        try:
            if s % 2 == 0:
                inst = stationary_point(src, ks=(2, 3), max_n=6, max_d=3, max_m=3)
            else:
                inst = stationary_point(src, ks=(2, 3), max_n=5, max_d=3, max_m=3,
                                        modes=("kink", "random", "kink", "dup", "zero", "dead"), zero_prob=0)
        except Reject:
            continue
        yield s, inst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--rays", type=int, default=12)
    ap.add_argument("--curves", type=int, default=3)
    args = ap.parse_args(argv)
    real = certify_mod.decide_kinks
    none = lambda state: {"verdict": None, "reason": "disabled (today's route)"}   # noqa: E731
    rows = []
    scanned = 0
    t_start = time.perf_counter()
    for s, inst in instances(args.seed):
        scanned += 1
        pb, pt = inst.problem, inst.point
        certify_mod.decide_kinks = none
        before = certify_mod.certify(pb, pt)
        certify_mod.decide_kinks = real
        if before.verdict != "inconclusive" or TODAY_REASON not in before.reason:
            continue
        t0 = time.perf_counter()
        after = certify_mod.certify(pb, pt)
        dt = time.perf_counter() - t0
        from relucert.core.hessian import kink_pairs
        npairs = len(kink_pairs(pb, pt))
        bad, why = False, ""
        try:
            if require_valid(after.certificate) != after.verdict:
                bad, why = True, "checker verdict differs"
        except Exception as e:                      # a rejected certificate is a disagreement
            bad, why = True, f"checker: {e}"
        rng = random.Random(s)
        if after.verdict == "local_min" and descent_found(pb, pt, rng, args.rays, args.curves):
            bad, why = True, "brute force found a descent at a local_min"
        if after.verdict == "saddle" and not saddle_ok(pb, pt, after.certificate["evidence"]["second_order"]):
            bad, why = True, "the saddle path does not lower the loss"
        if bad:
            print(f"DISAGREEMENT seed {args.seed}:{s}: {why}", flush=True)
        rows.append({"verdict": after.verdict, "seconds": dt, "pairs": npairs, "bad": bad,
                     "before_seconds": before.seconds})
        if len(rows) >= args.target:
            break
    total = time.perf_counter() - t_start
    n = len(rows)
    inc = sum(r["verdict"] == "inconclusive" for r in rows)
    print(f"\nhard class: {n} vector-output stationary points left inconclusive by today's route "
          f"(scanned {scanned} generated instances, seed {args.seed}; {total:.0f} s in all)\n")
    print("| | before | after |")
    print("|---|---|---|")
    print(f"| inconclusive | {n} (100 %) | {inc} ({100 * inc / max(n, 1):.1f} %) |")
    for v in ("local_min", "saddle"):
        c = sum(r["verdict"] == v for r in rows)
        print(f"| {v} | 0 | {c} ({100 * c / max(n, 1):.1f} %) |")
    print(f"| disagreements with brute force / checker | - | {sum(r['bad'] for r in rows)} |")
    ts = sorted(r["seconds"] for r in rows)
    bs = sorted(r["before_seconds"] for r in rows)
    print(f"| time per instance, median (max) | {1000 * bs[n // 2]:.1f} ms ({1000 * bs[-1]:.0f} ms) | "
          f"{1000 * ts[n // 2]:.1f} ms ({1000 * ts[-1]:.0f} ms) |")
    print("\ncost against the number of kink pairs (after):\n")
    print("| kink pairs | instances | median ms | max ms | inconclusive |")
    print("|---|---|---|---|---|")
    by = defaultdict(list)
    for r in rows:
        by[min(r["pairs"], 6)].append(r)
    for p in sorted(by):
        g = by[p]
        tt = sorted(r["seconds"] for r in g)
        print(f"| {p if p < 6 else '6+'} | {len(g)} | {1000 * tt[len(g) // 2]:.1f} | {1000 * tt[-1]:.0f} | "
              f"{sum(r['verdict'] == 'inconclusive' for r in g)} |")
    return 1 if any(r["bad"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
