"""Proof 7 (docs/theory.md §4): the explicit escape path lowers the loss, leading term -t^3 |D|^2.

Statement.  Let neuron j have a_j = 0, let r be a direction and D = D_j(r).  Along
w_j(t) = w_j + t r, a_j(t) = -t^2 D (all other parameters fixed), for 0 < t < t_max:

    L(theta(t)) - L(theta) = -t^2 D.G_j - t^3 |D|^2 + t^4 (1/2n) sum_i s_i^2 z_i^2 |D|^2
                             + t^5 (1/n) sum_i s_i^2 z_i delta_i |D|^2 + t^6 (1/2n) sum_i s_i^2 delta_i^2 |D|^2

(z_i = z_ij, delta_i = r . x_i, s_i the slope of the entry lemma).  The t coefficient is 0, and
under (S1) G_j = 0 so the t^2 coefficient vanishes too: the change is -t^3 |D|^2 + O(t^4), < 0 for
small t when D != 0.  (These are exactly the coefficients the engine's escape_path_polynomial
returns: c2 = -sum s_i z_i (e_i.D)/n, c3 = -sum s_i delta_i (e_i.D)/n, ...; tests/test_symbolic.py
compares them numerically.)

Method.  The other neurons enter only through the residuals e_i (free symbols, any k).  For every
entry pattern of the n data points (z > 0, z < 0, kink with delta > 0 or <= 0), n <= 3, k = 1, 2,
D and G_j are built from their definitions with the Piecewise sigma / sigma', the path loss with
the entry lemma's slopes, and the displayed identity is checked exactly; alpha_+- symbolic.
"""
import itertools
import sys
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import (AP, AM, ENTRY_CASES, Entry, assert_ring_zero, dsigma, entry_lemma, free,  # noqa: E402
                     main, ring_of, sigma)


def check(cases, k, t) -> None:
    n = len(cases)
    ent = [Entry(cs, f"{i}") for i, cs in enumerate(cases)]
    e_sym = [[sp.Symbol(f"e_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    R, P = ring_of([AP, AM, t] + free(*[x for en in ent for x in (en.z, en.delta)])
                   + [v for row in e_sym for v in row])
    E = [[R(v) for v in row] for row in e_sym]
    T = R(t)
    Z = [P(en.z) for en in ent]
    Dl = [P(en.delta) for en in ent]
    S = [P(en.s) for en in ent]
    K = [i for i in range(n) if ent[i].kink]
    inv_n = sp.Rational(1, n)
    D = [(sum((E[i][c] * P(dsigma(ent[i].z)) * Dl[i] for i in range(n) if i not in K), R(0))
          + sum((E[i][c] * P(sigma(ent[i].delta)) for i in K), R(0))) * inv_n for c in range(k)]
    G = [sum((E[i][c] * P(sigma(ent[i].z)) for i in range(n)), R(0)) * inv_n for c in range(k)]
    # residuals along the path: a_j(t) sigma(z_i + t delta_i) replaces a_j sigma(z_i) = 0
    et = [[E[i][c] - T ** 2 * D[c] * S[i] * (Z[i] + T * Dl[i]) for c in range(k)] for i in range(n)]
    dL = (sum((v ** 2 for row in et for v in row), R(0)) - sum((v ** 2 for row in E for v in row), R(0))) \
        * sp.Rational(1, 2 * n)
    DD = sum((v ** 2 for v in D), R(0))
    DG = sum((x * y for x, y in zip(D, G)), R(0))
    expected = (-T ** 2 * DG - T ** 3 * DD
                + T ** 4 * sum((S[i] ** 2 * Z[i] ** 2 for i in range(n)), R(0)) * DD * sp.Rational(1, 2 * n)
                + T ** 5 * sum((S[i] ** 2 * Z[i] * Dl[i] for i in range(n)), R(0)) * DD * inv_n
                + T ** 6 * sum((S[i] ** 2 * Dl[i] ** 2 for i in range(n)), R(0)) * DD * sp.Rational(1, 2 * n))
    assert_ring_zero(dL - expected, f"escape path polynomial on pattern {cases}, k={k}")
    # the engine's c2, c3 (escape.py): -sum s z (e.D)/n and -sum s delta (e.D)/n
    eD = [sum((E[i][c] * D[c] for c in range(k)), R(0)) for i in range(n)]
    assert_ring_zero(-sum((S[i] * Z[i] * eD[i] for i in range(n)), R(0)) * inv_n + DG, "c2 = -D.G_j")
    assert_ring_zero(-sum((S[i] * Dl[i] * eD[i] for i in range(n)), R(0)) * inv_n + DD, "c3 = -|D|^2")


def prove() -> str:
    entry_lemma()
    t = sp.Symbol("t", positive=True)
    count = 0
    for n in (1, 2, 3):
        for k in (1, 2):
            for cases in itertools.product(ENTRY_CASES, repeat=n):
                check(list(cases), k, t)
                count += 1
    return (f"escape path w_j+tr, a_j=-t^2 D: dL = -t^2 D.G_j - t^3|D|^2 + O(t^4) exactly (t-coefficient 0; "
            f"t^2 vanishes under G_j=0): {count} entry patterns (n<=3, k=1,2), alpha+- symbolic")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
