"""Proof 4 (docs/theory.md §9): |w_j|^2 - |a_j|^2 is conserved by gradient flow.

Statement.  Wherever L is differentiable, along d/dt theta = -grad L:
    d/dt (|w_j|^2 - |a_j|^2) = 0,
and one gradient-descent step theta -> theta - lr grad L changes it by exactly
    lr^2 (|grad_{w_j} L|^2 - |grad_{a_j} L|^2)   (so by O(lr^2) per step).

Method.  On an open region of a fixed activation pattern L is the polynomial
P = (1/2n) sum_i |sum_j a_j s_ij (w_j . x_i) - y_i|^2; the flow derivative is
-2 w_j . grad_{w_j} P + 2 a_j . grad_{a_j} P, which is checked to vanish identically in genuine
symbols W, A, X, Y and free slopes s_ij for every n <= 3, d <= 3, m <= 2, k <= 2; the step identity
likewise.  (It is homogeneity, proof 3, in another guise.)
"""
import sys
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import assert_ring_zero, main, ring_of  # noqa: E402

SHAPES = [(n, d, m, k) for n in (1, 2, 3) for d in (1, 2, 3) for m in (1, 2) for k in (1, 2)]


def check(n, d, m, k):
    lr = sp.Symbol("lr", positive=True)
    w = [[sp.Symbol(f"w_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    x = [[sp.Symbol(f"x_{i}{q}", real=True) for q in range(d)] for i in range(n)]
    a = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    s = [[sp.Symbol(f"s_{i}{j}", real=True) for j in range(m)] for i in range(n)]
    R, _ = ring_of([lr] + [v for M in (w, x, a, y, s) for row in M for v in row])
    W, X, A, Y, S = ([[R(v) for v in row] for row in M] for M in (w, x, a, y, s))
    LR = R(lr)
    z = [[sum((W[j][q] * X[i][q] for q in range(d)), R(0)) for j in range(m)] for i in range(n)]
    e = [[sum((A[j][c] * S[i][j] * z[i][j] for j in range(m)), R(0)) - Y[i][c] for c in range(k)] for i in range(n)]
    L = sum((v ** 2 for row in e for v in row), R(0)) * sp.Rational(1, 2 * n)
    for j in range(m):
        gw = [L.diff(W[j][q]) for q in range(d)]
        ga = [L.diff(A[j][c]) for c in range(k)]
        flow = sum((2 * W[j][q] * (-gw[q]) for q in range(d)), R(0)) - sum((2 * A[j][c] * (-ga[c]) for c in range(k)), R(0))
        assert_ring_zero(flow, f"d/dt(|w_j|^2 - |a_j|^2) = 0 (n={n} d={d} m={m} k={k}, j={j})")
        before = sum((v ** 2 for v in W[j]), R(0)) - sum((v ** 2 for v in A[j]), R(0))
        after = (sum(((W[j][q] - LR * gw[q]) ** 2 for q in range(d)), R(0))
                 - sum(((A[j][c] - LR * ga[c]) ** 2 for c in range(k)), R(0)))
        expected = LR ** 2 * (sum((g ** 2 for g in gw), R(0)) - sum((g ** 2 for g in ga), R(0)))
        assert_ring_zero(after - before - expected, f"GD step changes the balance by lr^2(...) (j={j})")


def prove() -> str:
    for shape in SHAPES:
        check(*shape)
    return (f"d/dt(|w_j|^2-|a_j|^2) = 0 under gradient flow and = lr^2(|g_w|^2-|g_a|^2) per GD step: "
            f"{len(SHAPES)} shapes (n<=3, d<=3, m<=2, k<=2), genuine W, A, X, Y symbols, free slopes")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
