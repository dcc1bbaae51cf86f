"""Proof 2 (docs/theory.md §2): the loss along a ray is an exact polynomial on 0 < t < t_max.

Statement.  With delta_ij = dW_j . x_i, s_ij = sigma'(z_ij) off the kinks and, on a kink,
s_ij = alpha_+ if delta_ij > 0 else alpha_-;  u_i = sum_j [da_j sigma(z_ij) + a_j s_ij delta_ij],
q_i = sum_j da_j s_ij delta_ij:

    L(theta + t Delta) - L(theta) = t (1/n) sum e_i.u_i + t^2 (1/2n) sum (|u_i|^2 + 2 e_i.q_i)
                                   + t^3 (1/n) sum u_i.q_i + t^4 (1/2n) sum |q_i|^2

for every 0 < t < t_max, t_max = min over {z_ij delta_ij < 0} of -z_ij / delta_ij (the engine's
t_max; docs/theory.md's min over all z_ij != 0 of |z_ij| / |delta_ij| is smaller or equal, so the statement
holds a fortiori on its interval).

Method.  (1) The entry lemma (proofs/_lemmas.py) proves, case by case with the interval written
t = (p/q) v/(1+v), v > 0, that sigma(z + t delta) = s (z + t delta) on the whole interval, and
sigma(z) = s z.  (2) Hence on the interval L(theta + t Delta) is the pattern polynomial, and the
displayed expansion is an identity of polynomials in free slope symbols s_ij, z_ij, delta_ij,
a, da, y, checked exactly for every n <= 3, m <= 2, k <= 2.  (3) The same identity is also checked
pattern by pattern (every sign/kink pattern of n*m <= 4, k = 1, 2), building L(theta) with the
Piecewise sigma.
"""
import itertools
import sys
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import (AP, AM, ENTRY_CASES, Entry, assert_ring_zero, entry_lemma, free, main,  # noqa: E402
                     ring_of, sigma)

SHAPES_FREE = [(n, m, k) for n in (1, 2, 3) for m in (1, 2) for k in (1, 2)]
SHAPES_EXHAUSTIVE = [(1, 1), (2, 1), (1, 2), (2, 2)]


def expansion_identity(R, T, n, m, k, S, Z, SZ, Dl, A, dA, Y, what):
    """P(t) - L(theta) == c1 t + c2 t^2 + c3 t^3 + c4 t^4 with the §2 coefficients.

    S: slopes, Z: z, SZ: sigma(z) (= s z by the lemma, or Piecewise-resolved), Dl: delta."""
    half_n = sp.Rational(1, 2 * n)
    e = [[sum((A[j][c] * SZ[i][j] for j in range(m)), R(0)) - Y[i][c] for c in range(k)] for i in range(n)]
    L0 = sum((v ** 2 for row in e for v in row), R(0)) * half_n
    et = [[sum(((A[j][c] + T * dA[j][c]) * S[i][j] * (Z[i][j] + T * Dl[i][j]) for j in range(m)), R(0)) - Y[i][c]
           for c in range(k)] for i in range(n)]
    Pt = sum((v ** 2 for row in et for v in row), R(0)) * half_n
    u = [[sum((dA[j][c] * SZ[i][j] + A[j][c] * S[i][j] * Dl[i][j] for j in range(m)), R(0)) for c in range(k)]
         for i in range(n)]
    q = [[sum((dA[j][c] * S[i][j] * Dl[i][j] for j in range(m)), R(0)) for c in range(k)] for i in range(n)]

    def sdot(U, V):
        return sum((U[i][c] * V[i][c] for i in range(n) for c in range(k)), R(0))

    c1 = sdot(e, u) * sp.Rational(1, n)
    c2 = (sdot(u, u) + 2 * sdot(e, q)) * half_n
    c3 = sdot(u, q) * sp.Rational(1, n)
    c4 = sdot(q, q) * half_n
    assert_ring_zero(Pt - L0 - (c1 * T + c2 * T ** 2 + c3 * T ** 3 + c4 * T ** 4), what)


def symbols(n, m, k):
    a = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    da = [[sp.Symbol(f"da_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    return a, da, y


def prove() -> str:
    lem = entry_lemma()
    t = sp.Symbol("t", positive=True)
    for n, m, k in SHAPES_FREE:
        s = [[sp.Symbol(f"s_{i}{j}", real=True) for j in range(m)] for i in range(n)]
        z = [[sp.Symbol(f"z_{i}{j}", real=True) for j in range(m)] for i in range(n)]
        dl = [[sp.Symbol(f"delta_{i}{j}", real=True) for j in range(m)] for i in range(n)]
        a, da, y = symbols(n, m, k)
        R, _ = ring_of([t] + [v for M in (s, z, dl, a, da, y) for row in M for v in row])
        S, Z, Dl, A, dA, Y = ([[R(v) for v in row] for row in M] for M in (s, z, dl, a, da, y))
        SZ = [[S[i][j] * Z[i][j] for j in range(m)] for i in range(n)]
        expansion_identity(R, R(t), n, m, k, S, Z, SZ, Dl, A, dA, Y, f"free slopes n={n} m={m} k={k}")
    count = 0
    for n, m in SHAPES_EXHAUSTIVE:
        for k in (1, 2):
            for flat in itertools.product(ENTRY_CASES, repeat=n * m):
                cases = [list(flat[i * m:(i + 1) * m]) for i in range(n)]
                ent = [[Entry(cases[i][j], f"{i}{j}") for j in range(m)] for i in range(n)]
                a, da, y = symbols(n, m, k)
                R, P = ring_of([AP, AM, t] + free(*[x for row in ent for en in row for x in (en.z, en.delta)])
                               + [v for M in (a, da, y) for row in M for v in row])
                A, dA, Y = ([[R(v) for v in row] for row in M] for M in (a, da, y))
                S = [[P(en.s) for en in row] for row in ent]
                Z = [[P(en.z) for en in row] for row in ent]
                Dl = [[P(en.delta) for en in row] for row in ent]
                SZ = [[P(sigma(en.z), f"sigma(z) {cases}") for en in row] for row in ent]
                expansion_identity(R, R(t), n, m, k, S, Z, SZ, Dl, A, dA, Y, f"pattern {cases}, k={k}")
                count += 1
    return (f"L(theta+tDelta)-L(theta) = c1 t+c2 t^2+c3 t^3+c4 t^4 on 0<t<t_max: entry lemma {lem} cases "
            f"(incl. the t-interval), identity with free slopes for n<=3, m<=2, k<=2, and {count} "
            f"explicit sign patterns (n*m<=4, k=1,2); alpha+- symbolic")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
