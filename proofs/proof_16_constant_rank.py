"""Proof 16 (constant-rank local_min ball certificates, docs/theory.md §10.8).

Statement.  On a fixed activation pattern the outputs on the data are
F(W, A) = sum_j a_j (x) (s_j * X w_j) (s_ij the slope of neuron j at point i, 0 at a kink).

  (R1) the tensor-subspace count behind Lemma R: for subspaces A' of C' of R^n and B' of R^k,
       dim(R^k (x) A' + B' (x) C') = k alpha + beta gamma - beta alpha (alpha, beta, gamma their
       dimensions), exactly, on random rational subspaces of every shape up to n = 5, k = 3;
  (R2) Lemma R: the exact rank of the derivative of F -- differentiated by sympy from the polynomial of
       the pattern piece, in all of (W, A) -- never exceeds sum_b (k alpha_b + beta_b (gamma_b - alpha_b))
       for ANY partition of the neurons into blocks, at random points and at degenerate ones (a repeated
       neuron, parallel output weights, a zero input weight), for ReLU and leaky slopes; and the bound
       is attained by the right partition on the shapes the certifier meets: single neurons (k + d - 1),
       two neurons sharing a sign vector (a GL(2) block: 2 (k + d - 2)), blocks whose pattern columns
       overlap (gamma_b < sum p_g);
  (R3) the checker (relucert/check/kernel.py::_Ball with evidence constant_rank): its rank_bound is the
       count of (R2); its slice's F and J are sympy's gradient and Hessian of the loss on the slice (with
       fixed input and output coordinates besides the gauges); its Gram rows are sympy's
       (1/n) (DF V)^T (DF V) on the slice, J without the residual term.

Method.  Exact arithmetic (sympy's QQ, DomainMatrix ranks, Fractions) on seeded random instances,
n = 3 .. 7 points, d = 1 .. 3, m = 1 .. 3, k = 1 .. 3.  With the constant rank theorem (§10.8) these
give: a zero of F in the box with J and the Gram matrix positive definite on it is a local minimum.
"""
import itertools
import random
import sys
from fractions import Fraction
from pathlib import Path

import sympy as sp
from sympy.polys.matrices import DomainMatrix

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import main  # noqa: E402

QQ = sp.QQ


def _qq(v):
    v = Fraction(v)
    return QQ(v.numerator, v.denominator)


def _rank(rows, ncols) -> int:
    if not rows or not ncols:
        return 0
    return DomainMatrix([[_qq(v) for v in r] for r in rows], (len(rows), ncols), QQ).rank()


def _partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for p in _partitions(rest):
        yield [[first]] + p
        for i in range(len(p)):
            yield p[:i] + [[first] + p[i]] + p[i + 1:]


# --- (R1) ------------------------------------------------------------------------------------------

def check_tensor_count(rng) -> int:
    done = 0
    for n in range(1, 6):
        for k in range(1, 4):
            for gam in range(0, n + 1):
                for al in range(0, gam + 1):
                    for be in range(0, k + 1):
                        Cb = [[Fraction(rng.randint(-3, 3)) for _ in range(n)] for _ in range(gam)]
                        while _rank(Cb, n) < gam:
                            Cb = [[Fraction(rng.randint(-3, 3)) for _ in range(n)] for _ in range(gam)]
                        mix = [[Fraction(rng.randint(-2, 2)) for _ in range(gam)] for _ in range(al)]
                        Ab = [[sum((m[t] * Cb[t][i] for t in range(gam)), Fraction(0)) for i in range(n)] for m in mix]
                        if _rank(Ab, n) < al:
                            continue
                        Bb = [[Fraction(rng.randint(-3, 3)) for _ in range(k)] for _ in range(be)]
                        if _rank(Bb, k) < be:
                            continue
                        # spanning vectors of R^k (x) A' and B' (x) C' in R^{k n} (index c n + i)
                        vecs = [[Fraction(int(c == e)) * a[i] for e in range(k) for i in range(n)]
                                for c in range(k) for a in Ab]
                        vecs += [[b[e] * cc[i] for e in range(k) for i in range(n)] for b in Bb for cc in Cb]
                        assert _rank(vecs, k * n) == k * al + be * gam - be * al, (n, k, gam, al, be)
                        done += 1
    return done


# --- (R2) ------------------------------------------------------------------------------------------

def _slopes(X, W, ap, am):
    out = []
    for x in X:
        row = []
        for w in W:
            z = sum((a * b for a, b in zip(w, x)), Fraction(0))
            row.append(ap if z > 0 else (am if z < 0 else Fraction(0)))
        out.append(row)
    return out


def _sym_derivative(X, S, k):
    """sympy's Jacobian of the stacked outputs F_ic (rows i k + c) in (w_j, a_j) neuron by neuron, as a
    function of symbols; returns (jacobian, the symbols in column order)."""
    n, d, m = len(X), len(X[0]), len(S[0])
    w = [[sp.Symbol(f"w{j}_{q}") for q in range(d)] for j in range(m)]
    a = [[sp.Symbol(f"a{j}_{c}") for c in range(k)] for j in range(m)]
    F = [sum(a[j][c] * sp.Rational(S[i][j].numerator, S[i][j].denominator)
             * sum(w[j][q] * sp.Rational(X[i][q].numerator, X[i][q].denominator) for q in range(d))
             for j in range(m)) for i in range(n) for c in range(k)]
    syms = [v for j in range(m) for v in w[j] + a[j]]
    return sp.Matrix(F).jacobian(syms), syms


def _bound(X, S, blocks, k):
    n, d = len(X), len(X[0])
    tot = 0
    for b in blocks:
        gam = _rank([[S[i][j] * X[i][q] for j in b for q in range(d)] for i in range(n)], len(b) * d)
        al, be = min(len(b), gam), min(len(b), k)
        tot += k * al + be * (gam - al)
    return tot


def _exact_rank_at(Jsym, syms, W, A):
    vals = {s: sp.Rational(v.numerator, v.denominator) for s, v in zip(syms, [v for j in range(len(W)) for v in W[j] + A[j]])}
    M = Jsym.subs(vals)
    return _rank([[_frac(v) for v in M.row(r)] for r in range(M.rows)], M.cols)


def check_lemma_R(rng) -> tuple:
    points = attained = 0
    for case in range(40):
        n, d, m, k = rng.randint(3, 7), rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 3)
        ap, am = Fraction(1), rng.choice([Fraction(0), Fraction(1, 10), Fraction(-1)])
        X = [[Fraction(rng.randint(-3, 3)) for _ in range(d)] for _ in range(n)]
        X = [x if any(x) else [Fraction(1)] * d for x in X]
        W0 = [[Fraction(rng.randint(-3, 3)) + Fraction(1, 7) for _ in range(d)] for _ in range(m)]
        S = _slopes(X, W0, ap, am)
        Jsym, syms = _sym_derivative(X, S, k)
        parts = list(_partitions(list(range(m))))
        for kind in ("generic", "repeat", "parallel", "zero"):
            W = [[Fraction(rng.randint(-3, 3)) for _ in range(d)] for _ in range(m)]
            A = [[Fraction(rng.randint(-3, 3)) for _ in range(k)] for _ in range(m)]
            if kind == "repeat" and m >= 2:
                W[1], A[1] = list(W[0]), [2 * v for v in A[0]]
            elif kind == "parallel" and m >= 2:
                A[1] = [3 * v for v in A[0]]
            elif kind == "zero":
                W[0] = [Fraction(0)] * d
            r = _exact_rank_at(Jsym, syms, W, A)
            bounds = [_bound(X, S, p, k) for p in parts]
            assert r <= min(bounds), (case, kind, r, bounds)
            points += 1
            if kind == "generic":
                attained += r == min(bounds)
    # the shapes the certifier meets, attained at generic points
    for k in (1, 2, 3):
        for d in (2, 3):
            n = 7
            X = [[Fraction(1)] + [Fraction(rng.randint(-3, 3)) for _ in range(d - 1)] for _ in range(n)]
            # two neurons active on every point (one sign vector): GL(2) block, 2 (k + d - 2) when k >= 2
            W = [[Fraction(20)] + [Fraction(rng.randint(-2, 2)) for _ in range(d - 1)] for _ in range(2)]
            A = [[Fraction(rng.randint(1, 4)) for _ in range(k)] for _ in range(2)]
            S = _slopes(X, W, Fraction(1), Fraction(0))
            Jsym, syms = _sym_derivative(X, S, k)
            r = _exact_rank_at(Jsym, syms, W, A)
            assert r == _bound(X, S, [[0, 1]], k) == (2 * (k + d - 2) if k >= 2 else k + d - 1), (k, d, r)
            assert r <= _bound(X, S, [[0], [1]], k)
            attained += 1
    return points, attained


# --- (R3) ------------------------------------------------------------------------------------------

def _skeleton(X, Y, W, A, ap, am, blocks, fixed_inputs, fixed_outputs):
    n, d, m, k = len(X), len(X[0]), len(W), len(A[0])
    s = lambda v: str(Fraction(v))
    cl, center = [], []
    fin = {(g, t) for g, t, _ in fixed_inputs}
    fout = {(g, c) for g, c, _ in fixed_outputs}
    for j in range(m):
        t0 = max(range(d), key=lambda t: abs(W[j][t]))
        cl.append({"neurons": [j], "gamma": ["1"], "beta": ["1"],
                   "basis": [[s(int(a == b)) for b in range(d)] for a in range(d)], "gauge": t0, "gauge_value": s(W[j][t0])})
        center += [s(W[j][t]) for t in range(d) if t != t0 and (j, t) not in fin]
        center += [s(A[j][c]) for c in range(k) if (j, c) not in fout]
    cert = {"problem": {"X": [[s(v) for v in x] for x in X], "Y": [[s(v) for v in y] for y in Y],
                        "activation": {"alpha_plus": s(ap), "alpha_minus": s(am)}, "loss": "half_mean"},
            "point": {"W": [[s(v) for v in w] for w in W], "A": [[s(v) for v in a] for a in A]}}
    ev = {"clusters": cl, "zero": [], "dead": [], "center": center,
          "constant_rank": {"blocks": blocks, "fixed_inputs": [[g, t, s(v)] for g, t, v in fixed_inputs],
                            "fixed_outputs": [[g, c, s(v)] for g, c, v in fixed_outputs], "gram": "1"}}
    return cert, ev


def check_checker(rng) -> int:
    from relucert.check.kernel import _Ball, _Instance, _Iv
    done = 0
    for case in range(12):
        k = rng.choice([2, 3])
        d = rng.choice([2, 3])
        n = rng.randint(5, 7)
        am = rng.choice([Fraction(0), Fraction(1, 10)])
        X = [[Fraction(1)] + [Fraction(rng.randint(-3, 3)) for _ in range(d - 1)] for _ in range(n)]
        Y = [[Fraction(rng.randint(-3, 3)) for _ in range(k)] for _ in range(n)]
        # neurons 0, 1 share a sign vector (all active): one block, two coordinates fixed besides the
        # gauges; neuron 2 is generic, alone
        W = [[Fraction(20) + Fraction(rng.randint(0, 3), 7)] + [Fraction(rng.randint(-2, 2)) + Fraction(1, 3)
                                                                 for _ in range(d - 1)] for _ in range(2)]
        W.append([Fraction(rng.randint(-3, 3)) + Fraction(1, 5) for _ in range(d)])
        A = [[Fraction(rng.randint(-3, 3)) + Fraction(1, 11) for _ in range(k)] for _ in range(3)]
        S = _slopes(X, W, Fraction(1), am)
        blocks = [[0, 1], [2]]
        if _bound(X, S, blocks, k) != 3 * (d - 1 + k) - 2:      # the slice's unknowns (neuron 2 may see few points)
            continue
        t1 = 1 if max(range(d), key=lambda t: abs(W[1][t])) != 1 else 0
        fin = [(1, t1, W[1][t1])]
        fout = [(1, 0, A[1][0])]
        cert, ev = _skeleton(X, Y, W, A, Fraction(1), am, blocks, fin, fout)
        ball = _Ball(_Instance(cert), ev)
        assert ball.rank_bound(blocks) == _bound(X, S, blocks, k) == ball.N
        # sympy: the slice (free coordinates as symbols), loss and outputs on the pattern
        free = [sp.Symbol(f"x{a}") for a in range(ball.N)]
        it = iter(free)
        Ws, As = [], []
        for j in range(3):
            t0 = ev["clusters"][j]["gauge"]
            Ws.append([_rat(W[j][t]) if t == t0 or (j, t) in {(g, q) for g, q, _ in fin} else next(it) for t in range(d)])
            As.append([_rat(A[j][c]) if (j, c) in {(g, q) for g, q, _ in fout} else next(it) for c in range(k)])
        F = [sum(As[j][c] * _rat(S[i][j]) * sum(Ws[j][q] * _rat(X[i][q]) for q in range(d)) for j in range(3))
             for i in range(n) for c in range(k)]
        L = sum((F[i * k + c] - _rat(Y[i][c])) ** 2 for i in range(n) for c in range(k)) / (2 * n)
        grad = [sp.diff(L, v) for v in free]
        hess = sp.hessian(L, free)
        DF = sp.Matrix(F).jacobian(free)
        Gsym = (DF.T * DF) / n
        for trial in range(2):
            xi = [Fraction(v) + Fraction(rng.randint(-5, 5), 1000) for v in ev["center"]]
            sub = {v: _rat(x) for v, x in zip(free, xi)}
            gram = []
            _, _, _, _, Fi, Ji = ball._evaluate_box([_Iv(v) for v in xi], gram=gram)
            for a in range(ball.N):
                assert Fi[a].lo == Fi[a].hi == _frac(grad[a].subs(sub)), (case, a)
                for b in range(ball.N):
                    assert Ji[a][b].lo == Ji[a][b].hi == _frac(hess[a, b].subs(sub)), (case, a, b)
                    assert gram[a][b].lo == gram[a][b].hi == _frac(Gsym[a, b].subs(sub)), (case, a, b)
            done += 1
    assert done >= 12, done
    return done


def _rat(v):
    v = Fraction(v)
    return sp.Rational(v.numerator, v.denominator)


def _frac(e):
    e = sp.expand(e)
    assert e.is_Rational, e
    return Fraction(int(e.p), int(e.q))


def prove() -> str:
    rng = random.Random(16)
    t = check_tensor_count(rng)
    pts, att = check_lemma_R(rng)
    ch = check_checker(rng)
    return (f"constant rank (§10.8): the tensor-subspace count on {t} random subspace triples; Lemma R's "
            f"bound over every partition >= the exact rank of sympy's derivative at {pts} points (generic and "
            f"degenerate), attained at {att} of them; the checker's rank bound, F, J and Gram rows equal "
            f"sympy's count, gradient, Hessian and (1/n)(DF V)^T (DF V) on slices with fixed inputs and "
            f"outputs at {ch} points")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
