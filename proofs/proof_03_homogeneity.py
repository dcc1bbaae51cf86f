"""Proof 3 (docs/theory.md §3, facts the code relies on): homogeneity.

Statements.
  (a) dL/da_j = G_j (L is differentiable in A), and w_j . grad_{w_j} L = a_j . G_j wherever L is
      differentiable in w_j.
  (b) D_j(w_j) = G_j at every point (kinks, zero neurons included), so under (S1) the radial
      direction is flat.
  (c) D_j(r) is the one-sided derivative of w -> (1/n) sum_i e_i sigma(w . x_i) at w_j in
      direction r with the residuals e_i held fixed.

Method.
  (a) Genuine symbols for W (m x d), A, X (n x d), Y and free slope symbols s_ij: on an open region
      of a fixed pattern L is the polynomial P = (1/2n) sum_i |sum_j a_j s_ij (w_j . x_i) - y_i|^2,
      whose formal derivatives are compared with G_j = (1/n) sum_i e_i s_ij z_ij, for every
      n <= 3, d <= 3, m <= 2, k <= 2.  At a differentiable point with kinks, grad_{w_j} L . r =
      L'(theta; (r on w_j, 0)) = a_j . D_j(r) (proof 1), so w_j . grad_{w_j} L = a_j . D_j(w_j) =
      a_j . G_j by (b).
  (b) The other neurons enter G_j and D_j only through the residuals, which are free symbols here;
      x_i . w_j = z_ij, so with the Piecewise sigma / sigma' on every sign pattern of z_ij
      (>0, <0, kink) for n <= 3, k = 1, 2, exhaustively.
  (c) Every entry case of proofs/_lemmas.py, n <= 3, k = 1, 2, exhaustively.

Remark (docs/theory.md §3 wording).  docs/theory.md calls D_j "the one-sided derivative of G_j as a function of
w_j".  Read literally (the residuals moving with w_j) this is false: the derivative of G_j has the
extra term (1/n) sum_i sigma(z_ij) (a_j s_ij delta_ij); e.g. n = 1, x = 1, y = 0, w = 1, a = 1:
G(w) = w^2 has derivative 2 while D(1) = 1.  (c) is the correct statement; this proof checks the
counterexample too.
"""
import itertools
import sys
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import (AP, AM, ENTRY_CASES, Z_CASES, Entry, assert_ring_zero, dsigma, entry_lemma,  # noqa: E402
                     free, main, ring_of, sigma)

SHAPES_A = [(n, d, m, k) for n in (1, 2, 3) for d in (1, 2, 3) for m in (1, 2) for k in (1, 2)]


def part_a(n, d, m, k):
    w = [[sp.Symbol(f"w_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    x = [[sp.Symbol(f"x_{i}{q}", real=True) for q in range(d)] for i in range(n)]
    a = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    s = [[sp.Symbol(f"s_{i}{j}", real=True) for j in range(m)] for i in range(n)]
    R, _ = ring_of([v for M in (w, x, a, y, s) for row in M for v in row])
    W, X, A, Y, S = ([[R(v) for v in row] for row in M] for M in (w, x, a, y, s))
    z = [[sum((W[j][q] * X[i][q] for q in range(d)), R(0)) for j in range(m)] for i in range(n)]
    e = [[sum((A[j][c] * S[i][j] * z[i][j] for j in range(m)), R(0)) - Y[i][c] for c in range(k)] for i in range(n)]
    L = sum((v ** 2 for row in e for v in row), R(0)) * sp.Rational(1, 2 * n)
    for j in range(m):
        G = [sum((e[i][c] * S[i][j] * z[i][j] for i in range(n)), R(0)) * sp.Rational(1, n) for c in range(k)]
        for c in range(k):
            assert_ring_zero(L.diff(A[j][c]) - G[c], f"dL/da_{j}{c} = G_{j}{c} (n={n} d={d} m={m} k={k})")
        radial = sum((W[j][q] * L.diff(W[j][q]) for q in range(d)), R(0))
        assert_ring_zero(radial - sum((A[j][c] * G[c] for c in range(k)), R(0)),
                         f"w_j . grad_w_j L = a_j . G_j (n={n} d={d} m={m} k={k})")


def part_b(n, k) -> int:
    count = 0
    e_sym = [[sp.Symbol(f"e_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    for cases in itertools.product(Z_CASES, repeat=n):
        ent = [Entry(cs, f"{i}") for i, cs in enumerate(cases)]
        R, P = ring_of([AP, AM] + free(*[en.z for en in ent]) + [v for row in e_sym for v in row])
        E = [[R(v) for v in row] for row in e_sym]
        K = [i for i in range(n) if ent[i].kink]
        for c in range(k):
            G = sum((E[i][c] * P(sigma(ent[i].z)) for i in range(n)), R(0))
            # D_j(r) at r = w_j: x_i . w_j = z_ij
            D = (sum((E[i][c] * P(dsigma(ent[i].z)) * P(ent[i].z) for i in range(n) if i not in K), R(0))
                 + sum((E[i][c] * P(sigma(ent[i].z)) for i in K), R(0)))
            assert_ring_zero(D - G, f"D_j(w_j) = G_j on pattern {cases}")
        count += 1
    return count


def part_c(n, k) -> int:
    count = 0
    t = sp.Symbol("t", positive=True)
    e_sym = [[sp.Symbol(f"e_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    for cases in itertools.product(ENTRY_CASES, repeat=n):
        ent = [Entry(cs, f"{i}") for i, cs in enumerate(cases)]
        R, P = ring_of([AP, AM, t] + free(*[x for en in ent for x in (en.z, en.delta)])
                       + [v for row in e_sym for v in row])
        E = [[R(v) for v in row] for row in e_sym]
        T = R(t)
        K = [i for i in range(n) if ent[i].kink]
        for c in range(k):
            # g(t) = (1/n) sum_i e_i sigma(z_i + t delta_i), e fixed; entry lemma on (0, t_max)
            g = sum((E[i][c] * P(ent[i].s) * (P(ent[i].z) + T * P(ent[i].delta)) for i in range(n)), R(0))
            g0 = sum((E[i][c] * P(sigma(ent[i].z)) for i in range(n)), R(0))
            assert_ring_zero(g.subs(T, 0) - g0, f"g(0) = G_j on {cases}")
            quotient, rem = (g - g0).div([T])
            assert_ring_zero(rem, "divisible by t")
            D = (sum((E[i][c] * P(dsigma(ent[i].z)) * P(ent[i].delta) for i in range(n) if i not in K), R(0))
                 + sum((E[i][c] * P(sigma(ent[i].delta)) for i in K), R(0)))
            assert_ring_zero(quotient[0].subs(T, 0) - D, f"D_j = d/dt+ G_j at fixed residuals on {cases}")
        count += 1
    return count


def counterexample_literal_reading() -> None:
    """G_0(w) = e(w) sigma(w x) / n with n = 1, x = 1, y = 0, a = 1, ReLU: G(w) = w^2 near w = 1."""
    w = sp.Symbol("w", positive=True)
    e_w = 1 * w - 0                       # f(x) = a sigma(w x) = w for w > 0
    G = e_w * w
    dG = sp.diff(G, w).subs(w, 1)
    D = (e_w * 1 * 1).subs(w, 1)          # e sigma'(z) (x . r), r = 1
    if not (dG == 2 and D == 1):
        raise AssertionError("counterexample to the literal reading did not evaluate as expected")


def prove() -> str:
    entry_lemma()
    for shape in SHAPES_A:
        part_a(*shape)
    nb = sum(part_b(n, k) for n in (1, 2, 3) for k in (1, 2))
    nc = sum(part_c(n, k) for n in (1, 2, 3) for k in (1, 2))
    counterexample_literal_reading()
    return (f"dL/da_j = G_j, w_j.grad_w_j L = a_j.G_j ({len(SHAPES_A)} shapes n,d<=3, m,k<=2, free slopes); "
            f"D_j(w_j) = G_j ({nb} patterns); D_j = one-sided derivative of G_j at FIXED residuals ({nc} "
            f"patterns; the literal reading 'derivative of G_j' is false: counterexample checked)")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
