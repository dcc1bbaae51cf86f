"""Proof 8 (docs/theory.md §7): network-embedding identities.

Statements.
  E1  Adding a neuron (w, a = 0) preserves the network function; the new neuron has
      G = (1/n) sum_i e_i sigma(w . x_i) (so stationarity is kept iff that sum vanishes) and
      phi = a . D = 0.
  E2  Replacing neuron (w, a) by copies (gamma_l w, beta_l a / gamma_l), gamma_l > 0,
      sum_l beta_l = 1, preserves the network function (hence the residuals and the loss); copy l
      has the same kink set, G_l = gamma_l G, D_l = D and phi_l = (beta_l / gamma_l) phi.
      (So (S1) holds for every copy of a stationary neuron, a copy with beta_l = 0 is an escape
      neuron iff D is not identically 0, and beta_l > 0 keeps (S2).)
  P   Two neurons with equal (w, a): the function is constant along (a + delta, a - delta), for each
      of the k output coordinates.

Method.  The other neurons contribute a fixed output o_i (free symbols).  Writing
beta_l = lam_l gamma_l (lam_l real: a bijection), the copies' output weights are lam_l a and every
identity is polynomial; we show f_embedded - f = (sum_l beta_l - 1) a sigma(z) identically, which is
0 under sum_l beta_l = 1, and the other identities at the preserved residuals.  For every entry pattern of the data points (z > 0, z < 0, kink with delta > 0 or
<= 0), n <= 3, k = 1, 2, with 2 or 3 copies, the quantities
are built from their definitions with the Piecewise sigma / sigma' decided by the assumptions
(gamma_l positive symbols); alpha_+- symbolic.
"""
import itertools
import sys
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import (AP, AM, ENTRY_CASES, Entry, assert_ring_zero, dsigma, free, homogeneity_lemma,  # noqa: E402
                     main, ring_of, sigma)


def check(cases, k, ncopies) -> None:
    n = len(cases)
    ent = [Entry(cs, f"{i}") for i, cs in enumerate(cases)]
    gam = [sp.Symbol(f"g_{l}", positive=True) for l in range(ncopies)]
    # beta_l = lam_l gamma_l (lam_l = beta_l / gamma_l is any real: a bijection since gamma_l > 0);
    # the copies' output weights lam_l a are then polynomial
    lam = [sp.Symbol(f"lam_{l}", real=True) for l in range(ncopies)]
    a = [sp.Symbol(f"a_{c}", real=True) for c in range(k)]
    o = [[sp.Symbol(f"o_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    # a new neuron for E1: its own entry pattern (any), here the same cases shifted
    new = [Entry(cs, f"n{i}") for i, cs in enumerate(cases[1:] + cases[:1])]
    F, P = ring_of([AP, AM] + gam + lam + a + free(*[x for en in ent + new for x in (en.z, en.delta)])
                    + [v for M in (o, y) for row in M for v in row])
    Gm = [F(g) for g in gam]
    Lm = [F(v) for v in lam]
    B = [Lm[l] * Gm[l] for l in range(ncopies)]
    A = [F(v) for v in a]
    O = [[F(v) for v in row] for row in o]
    Y = [[F(v) for v in row] for row in y]
    Dl = [P(en.delta) for en in ent]
    K = [i for i in range(n) if ent[i].kink]
    inv_n = sp.Rational(1, n)
    # every case split decided once, by the assumptions
    sz = [P(sigma(en.z)) for en in ent]
    dsz = [None if en.kink else P(dsigma(en.z)) for en in ent]
    sd = [P(sigma(en.delta)) if en.kink else None for en in ent]
    zl = [[sp.sympify(gam[l] * en.z) for en in ent] for l in range(ncopies)]
    szl = [[P(sigma(z)) for z in zl[l]] for l in range(ncopies)]
    dszl = [[None if ent[i].kink else P(dsigma(zl[l][i])) for i in range(n)] for l in range(ncopies)]
    f = [[O[i][c] + A[c] * sz[i] for c in range(k)] for i in range(n)]
    f2 = [[O[i][c] + sum((Lm[l] * A[c] * szl[l][i] for l in range(ncopies)), F(0))
           for c in range(k)] for i in range(n)]
    excess = sum(B, F(0)) - 1                        # = 0 when sum_l beta_l = 1
    for i in range(n):
        for c in range(k):
            assert_ring_zero(f2[i][c] - f[i][c] - excess * A[c] * sz[i],
                             f"E2: f2 - f = (sum beta - 1) a sigma(z), so f is preserved, on {cases}")
    e = [[f[i][c] - Y[i][c] for c in range(k)] for i in range(n)]
    G = [sum((e[i][c] * sz[i] for i in range(n)), F(0)) * inv_n for c in range(k)]
    D = [(sum((e[i][c] * dsz[i] * Dl[i] for i in range(n) if i not in K), F(0))
          + sum((e[i][c] * sd[i] for i in K), F(0))) * inv_n for c in range(k)]
    phi = sum((A[c] * D[c] for c in range(k)), F(0))
    for l in range(ncopies):
        Kl = [i for i in range(n) if zl[l][i].is_zero]
        if Kl != K or any(z.is_zero is None for z in zl[l]):
            raise AssertionError(f"copy {l} has a different kink set on {cases}")
        al = [Lm[l] * A[c] for c in range(k)]
        Gl = [sum((e[i][c] * szl[l][i] for i in range(n)), F(0)) * inv_n for c in range(k)]
        Dl_ = [(sum((e[i][c] * dszl[l][i] * Dl[i] for i in range(n) if i not in Kl), F(0))
                + sum((e[i][c] * sd[i] for i in Kl), F(0))) * inv_n for c in range(k)]
        for c in range(k):
            assert_ring_zero(Gl[c] - Gm[l] * G[c], f"G_l = gamma_l G on {cases}")
            assert_ring_zero(Dl_[c] - D[c], f"D_l = D on {cases}")
        phil = sum((al[c] * Dl_[c] for c in range(k)), F(0))
        assert_ring_zero(phil - Lm[l] * phi, f"phi_l = (beta_l/gamma_l) phi on {cases}")
    # E1: a neuron (w, 0) added
    f1 = [[f[i][c] + 0 * P(sigma(new[i].z)) for c in range(k)] for i in range(n)]
    for i in range(n):
        for c in range(k):
            assert_ring_zero(f1[i][c] - f[i][c], "E1 preserves f")


def permutation_point(k) -> None:
    """Two neurons with equal (w, a), output weights a + shift and a - shift: f does not move."""
    a = [sp.Symbol(f"a_{c}", real=True) for c in range(k)]
    dl = [sp.Symbol(f"shift_{c}", real=True) for c in range(k)]
    for case in ("pos", "neg", "kink"):
        en = Entry(case, "pp")
        for c in range(k):
            two = (a[c] + dl[c]) * sigma(en.z) + (a[c] - dl[c]) * sigma(en.z)
            if sp.expand(two - 2 * a[c] * sigma(en.z)) != 0:
                raise AssertionError("permutation point: not flat")


def prove() -> str:
    homogeneity_lemma()
    count = 0
    for n in (1, 2, 3):
        for k in (1, 2):
            for ncopies in (2, 3):
                for cases in itertools.product(ENTRY_CASES, repeat=n):
                    check(list(cases), k, ncopies)
                    count += 1
    for k in (1, 2):
        permutation_point(k)
    return (f"E1 (w, 0) and E2 copies (gamma_l w, beta_l a/gamma_l), sum beta = 1: f preserved, same kinks, "
            f"G_l = gamma_l G, D_l = D, phi_l = (beta_l/gamma_l) phi; permutation points flat: {count} "
            f"(pattern, k, #copies) cases, n<=3, k<=2, 2-3 copies, alpha+- symbolic")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
