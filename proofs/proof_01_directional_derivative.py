"""Proof 1 (docs/theory.md §3): the directional-derivative formula.

Statement.  For every theta = (W, A) and direction Delta = (dW, dA),

    lim_{t -> 0+} (L(theta + t Delta) - L(theta)) / t  =  sum_j [ dA_j . G_j + a_j . D_j(dW_j) ]

with G_j = (1/n) sum_i e_i sigma(z_ij) and
D_j(r) = (1/n)[ sum_{i not in K_j} e_i sigma'(z_ij)(x_i . r) + sum_{i in K_j} e_i sigma(x_i . r) ].

Method.  By the reduction to pre-activations (proofs/_lemmas.py) both sides are functions of
z_ij, delta_ij = dW_j . x_i, A, dA and Y.  For every sign pattern of the entries (z_ij > 0, < 0,
or a kink with delta_ij > 0 or <= 0) the entry lemma gives sigma(z_ij + t delta_ij) =
s_ij (z_ij + t delta_ij) for 0 < t < t_max, so on that interval L(theta + t Delta) is the
polynomial P(t) = (1/2n) sum_i ||sum_j (a_j + t da_j) s_ij (z_ij + t delta_ij) - y_i||^2.
We check P(0) = L(theta) (L(theta) built with the Piecewise sigma), hence (P(t) - L(theta))/t is a
polynomial and its limit at 0+ is its value at 0; that value must equal the right-hand side built
from the definitions of G_j and D_j with the Piecewise sigma and sigma'.

(a) exhaustively over every pattern of the shapes n*m <= 4 (n <= 3, m <= 2) for k = 1, 2, with
    alpha_+ and alpha_- symbolic;
(b) all patterns at once with free slope symbols s_ij for every n <= 3, m <= 2, k <= 2 (uses
    only the entry lemma's sigma(z) = s z, sigma'(z) = s off the kinks, sigma(delta) = s delta on
    the kinks).
"""
import itertools
import sys
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import (AP, AM, ENTRY_CASES, Entry, assert_ring_zero, assert_zero, dsigma, entry_lemma,  # noqa: E402
                     free, main, ring_of, sigma)

SHAPES_EXHAUSTIVE = [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2)]
SHAPES_FREE = [(n, m, k) for n in (1, 2, 3) for m in (1, 2) for k in (1, 2)]


def check_pattern(cases, n, m, k, t):
    ent = [[Entry(cases[i][j], f"{i}{j}") for j in range(m)] for i in range(n)]
    a = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    da = [[sp.Symbol(f"da_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    R, P = ring_of([AP, AM, t] + free(*[x for row in ent for en in row for x in (en.z, en.delta)])
                   + [v for row in a + da + y for v in row])
    A = [[R(v) for v in row] for row in a]
    dA = [[R(v) for v in row] for row in da]
    Y = [[R(v) for v in row] for row in y]
    T = R(t)
    # per entry, every case split decided by sympy's assumptions (Piecewise sigma, sigma')
    sig_z = [[P(sigma(en.z), f"sigma(z) {cases}") for en in row] for row in ent]
    Z = [[P(en.z) for en in row] for row in ent]
    Dl = [[P(en.delta) for en in row] for row in ent]
    S = [[P(en.s) for en in row] for row in ent]
    dsig = [[None if en.kink else P(dsigma(en.z), "sigma'(z)") for en in row] for row in ent]
    sig_d = [[P(sigma(en.delta), "sigma(delta)") if en.kink else None for en in row] for row in ent]
    # L(theta) from the definition
    e = [[sum((A[j][c] * sig_z[i][j] for j in range(m)), R(0)) - Y[i][c] for c in range(k)] for i in range(n)]
    L0 = sum((v ** 2 for row in e for v in row), R(0)) * sp.Rational(1, 2 * n)
    # L(theta + t Delta) for 0 < t < t_max (entry lemma)
    et = [[sum(((A[j][c] + T * dA[j][c]) * S[i][j] * (Z[i][j] + T * Dl[i][j]) for j in range(m)), R(0)) - Y[i][c]
           for c in range(k)] for i in range(n)]
    Pt = sum((v ** 2 for row in et for v in row), R(0)) * sp.Rational(1, 2 * n)
    diff = Pt - L0
    assert_ring_zero(diff.subs(T, 0), f"P(0) = L(theta) on pattern {cases}")
    quotient, rem = diff.div([T])
    quotient = quotient[0]
    assert_ring_zero(rem, f"(P(t) - L(theta)) divisible by t on pattern {cases}")
    limit = quotient.subs(T, 0)      # a polynomial is continuous: lim_{t->0+} = value at 0
    # right-hand side: the §3 formula from the definitions
    rhs = R(0)
    for j in range(m):
        K = [i for i in range(n) if ent[i][j].kink]
        for c in range(k):
            G = sum((e[i][c] * sig_z[i][j] for i in range(n)), R(0)) * sp.Rational(1, n)
            D = (sum((e[i][c] * dsig[i][j] * Dl[i][j] for i in range(n) if i not in K), R(0))
                 + sum((e[i][c] * sig_d[i][j] for i in K), R(0))) * sp.Rational(1, n)
            rhs += dA[j][c] * G + A[j][c] * D
    assert_ring_zero(limit - rhs, f"limit = formula on pattern {cases}, k={k}")


def check_free(n, m, k, t):
    s = [[sp.Symbol(f"s_{i}{j}", real=True) for j in range(m)] for i in range(n)]
    z = [[sp.Symbol(f"z_{i}{j}", real=True) for j in range(m)] for i in range(n)]
    dl = [[sp.Symbol(f"delta_{i}{j}", real=True) for j in range(m)] for i in range(n)]
    a = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    da = [[sp.Symbol(f"da_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    R, P = ring_of([t] + [v for M in (s, z, dl, a, da, y) for row in M for v in row])
    s, z, dl, a, da, y = ([[R(v) for v in row] for row in M] for M in (s, z, dl, a, da, y))
    T = R(t)
    e = [[sum((a[j][c] * s[i][j] * z[i][j] for j in range(m)), R(0)) - y[i][c] for c in range(k)] for i in range(n)]
    et = [[sum(((a[j][c] + T * da[j][c]) * s[i][j] * (z[i][j] + T * dl[i][j]) for j in range(m)), R(0)) - y[i][c]
           for c in range(k)] for i in range(n)]
    Pt = sum((v ** 2 for row in et for v in row), R(0)) * sp.Rational(1, 2 * n)
    slope_at_0 = Pt.diff(T).subs(T, 0)
    rhs = R(0)
    for j in range(m):
        for c in range(k):
            rhs += da[j][c] * sum((e[i][c] * s[i][j] * z[i][j] for i in range(n)), R(0)) * sp.Rational(1, n)
            rhs += a[j][c] * sum((e[i][c] * s[i][j] * dl[i][j] for i in range(n)), R(0)) * sp.Rational(1, n)
    assert_ring_zero(slope_at_0 - rhs, f"free-slope identity n={n} m={m} k={k}")


def prove() -> str:
    lem = entry_lemma()
    t = sp.Symbol("t", positive=True)
    count = 0
    for n, m in SHAPES_EXHAUSTIVE:
        for k in (1, 2):
            for flat in itertools.product(ENTRY_CASES, repeat=n * m):
                cases = [list(flat[i * m:(i + 1) * m]) for i in range(n)]
                check_pattern(cases, n, m, k, t)
                count += 1
    # one literal sympy limit as a sanity check of the polynomial argument
    ent = Entry("kink_up", "x")
    a, da, y = sp.symbols("a da y", real=True)
    L0 = (a * sigma(ent.z) - y) ** 2 / 2
    Lt = ((a + t * da) * AP * (ent.z + t * ent.delta) - y) ** 2 / 2
    lim = sp.limit((Lt - L0) / t, t, 0, "+")
    assert_zero(lim - a * (-y) * sigma(ent.delta), "sympy.limit on one kink")
    for n, m, k in SHAPES_FREE:
        check_free(n, m, k, t)
    return (f"L'(theta;Delta) = sum_j [dA_j.G_j + a_j.D_j(dW_j)] = lim (L(theta+tDelta)-L(theta))/t: "
            f"{count} sign patterns (n*m<=4, k=1,2) exhaustively + free slopes for n<=3, m<=2, k<=2; "
            f"entry lemma {lem} cases; alpha+- symbolic")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
