"""Proof 5 (docs/theory.md §9): rescaling and permutation invariance of f and L.

Statements.
  (a) Positive rescaling (w_j, a_j) -> (c_j w_j, a_j / c_j), c_j > 0 (each neuron its own c_j):
      f(x) is unchanged for every x, hence the residuals and L are unchanged.  Moreover the kink
      sets are unchanged, G_j -> c_j G_j, D_j -> D_j and phi_j -> phi_j / c_j.
  (b) Permuting the neurons leaves f and L unchanged, and permutes G_j, D_j (with the kink sets).

Method.
  (a) sigma(c z) = c sigma(z) and sigma'(c z) = sigma'(z) for c > 0 on every sign of z (lemma,
      Piecewise sigma decided by assumptions); then, by the reduction to pre-activations, on every
      entry pattern (z > 0, z < 0, kink with delta > 0 or <= 0) of n*m <= 4, k = 1, 2 the
      rescaled quantities are built from the definitions and compared exactly in QQ(symbols).
  (b) sigma is an undefined sympy Function (no property of it is used), kink membership a free
      indicator kappa_ij; for every permutation of m <= 3 neurons, n <= 2, d <= 2, k <= 2.
"""
import itertools
import sys
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import (AP, AM, ENTRY_CASES, Entry, assert_ring_zero, dsigma, free, homogeneity_lemma,  # noqa: E402
                     main, ring_of, sigma)

SHAPES_A = [(1, 1), (2, 1), (1, 2), (2, 2)]
SHAPES_B = [(n, d, m, k) for n in (1, 2) for d in (1, 2) for m in (2, 3) for k in (1, 2)]


def rescaling(n, m, k) -> int:
    count = 0
    cs = [sp.Symbol(f"c_{j}", positive=True) for j in range(m)]
    # the output weights are written a_j = c_j b_j (a bijection since c_j > 0): the rescaled
    # neuron has output weight b_j and every identity below is polynomial
    b = [[sp.Symbol(f"b_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    for flat in itertools.product(ENTRY_CASES, repeat=n * m):
        ent = [[Entry(flat[i * m + j], f"{i}{j}") for j in range(m)] for i in range(n)]
        K_, P = ring_of([AP, AM] + cs + free(*[x for row in ent for en in row for x in (en.z, en.delta)])
                        + [v for M in (b, y) for row in M for v in row])
        C = [K_(c) for c in cs]
        B = [[K_(v) for v in row] for row in b]
        A = [[C[j] * B[j][c] for c in range(k)] for j in range(m)]
        Y = [[K_(v) for v in row] for row in y]
        # per entry, every case split decided once by the assumptions
        sz = [[P(sigma(en.z)) for en in row] for row in ent]
        scz = [[P(sigma(cs[j] * en.z)) for j, en in enumerate(row)] for row in ent]
        dsz = [[None if en.kink else P(dsigma(en.z)) for en in row] for row in ent]
        dscz = [[None if en.kink else P(dsigma(cs[j] * en.z)) for j, en in enumerate(row)] for row in ent]
        sd = [[P(sigma(en.delta)) if en.kink else None for en in row] for row in ent]
        dl = [[P(en.delta) for en in row] for row in ent]
        f = [[sum((A[j][c] * sz[i][j] for j in range(m)), K_(0)) for c in range(k)] for i in range(n)]
        f2 = [[sum((B[j][c] * scz[i][j] for j in range(m)), K_(0)) for c in range(k)] for i in range(n)]
        for i in range(n):
            for c in range(k):
                assert_ring_zero(f2[i][c] - f[i][c], f"f preserved by rescaling on {flat}")
        e = [[f[i][c] - Y[i][c] for c in range(k)] for i in range(n)]
        e2 = [[f2[i][c] - Y[i][c] for c in range(k)] for i in range(n)]
        L = sum((v ** 2 for row in e for v in row), K_(0))
        L2 = sum((v ** 2 for row in e2 for v in row), K_(0))
        assert_ring_zero(L2 - L, "L preserved")
        for j in range(m):
            K = [i for i in range(n) if sp.sympify(ent[i][j].z).is_zero]
            K2 = [i for i in range(n) if sp.sympify(cs[j] * ent[i][j].z).is_zero]
            if K != K2 or any(sp.sympify(cs[j] * ent[i][j].z).is_zero is None for i in range(n)):
                raise AssertionError(f"kink sets changed by rescaling on {flat}")
            phi, phi2 = K_(0), K_(0)
            for c in range(k):
                G = sum((e[i][c] * sz[i][j] for i in range(n)), K_(0))
                G2 = sum((e2[i][c] * scz[i][j] for i in range(n)), K_(0))
                assert_ring_zero(G2 - C[j] * G, "G_j -> c_j G_j")
                D = (sum((e[i][c] * dsz[i][j] * dl[i][j] for i in range(n) if i not in K), K_(0))
                     + sum((e[i][c] * sd[i][j] for i in K), K_(0)))
                D2 = (sum((e2[i][c] * dscz[i][j] * dl[i][j] for i in range(n) if i not in K2), K_(0))
                      + sum((e2[i][c] * sd[i][j] for i in K2), K_(0)))
                assert_ring_zero(D2 - D, "D_j unchanged")
                phi += A[j][c] * D
                phi2 += B[j][c] * D2
            assert_ring_zero(C[j] * phi2 - phi, "phi_j -> phi_j / c_j")
        count += 1
    return count


def permutation(n, d, m, k) -> int:
    sig = sp.Function("sigma")
    dsig = sp.Function("dsigma")
    w = [[sp.Symbol(f"w_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    r = [[sp.Symbol(f"r_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    a = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    x = [[sp.Symbol(f"x_{i}{q}", real=True) for q in range(d)] for i in range(n)]
    y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    kap = [[sp.Symbol(f"kappa_{i}{j}", real=True) for j in range(m)] for i in range(n)]

    def dotv(u, v):
        return sp.Add(*[p * q for p, q in zip(u, v)])

    def quantities(W, A, Kap, Rr):
        e = [[sp.Add(*[A[j][c] * sig(dotv(W[j], x[i])) for j in range(m)]) - y[i][c] for c in range(k)]
             for i in range(n)]
        L = sp.Add(*[v ** 2 for row in e for v in row]) / (2 * n)
        G = [[sp.Add(*[e[i][c] * sig(dotv(W[j], x[i])) for i in range(n)]) / n for c in range(k)] for j in range(m)]
        D = [[sp.Add(*[e[i][c] * ((1 - Kap[i][j]) * dsig(dotv(W[j], x[i])) * dotv(x[i], Rr[j])
                                  + Kap[i][j] * sig(dotv(x[i], Rr[j]))) for i in range(n)]) / n
              for c in range(k)] for j in range(m)]
        return e, L, G, D

    e, L, G, D = quantities(w, a, kap, r)
    count = 0
    for pi in itertools.permutations(range(m)):
        Wp = [w[pi[j]] for j in range(m)]
        Ap = [a[pi[j]] for j in range(m)]
        Kp = [[kap[i][pi[j]] for j in range(m)] for i in range(n)]
        Rp = [r[pi[j]] for j in range(m)]
        e2, L2, G2, D2 = quantities(Wp, Ap, Kp, Rp)
        for i in range(n):
            for c in range(k):
                if sp.expand(e2[i][c] - e[i][c]) != 0:
                    raise AssertionError(f"f changed by the permutation {pi}")
        if sp.expand(L2 - L) != 0:
            raise AssertionError(f"L changed by the permutation {pi}")
        for j in range(m):
            for c in range(k):
                if sp.expand(G2[j][c] - G[pi[j]][c]) != 0 or sp.expand(D2[j][c] - D[pi[j]][c]) != 0:
                    raise AssertionError(f"G/D not permuted along with {pi}")
        count += 1
    return count


def prove() -> str:
    hl = homogeneity_lemma()
    na = sum(rescaling(n, m, k) for n, m in SHAPES_A for k in (1, 2))
    nb = sum(permutation(*s) for s in SHAPES_B)
    return (f"rescaling (c_j w_j, a_j/c_j), c_j>0: f, L, kink sets, D_j invariant, G_j -> c_j G_j, "
            f"phi_j -> phi_j/c_j on {na} entry patterns (n*m<=4, k=1,2; lemma {hl} cases); "
            f"permutations: f, L invariant, G, D permuted ({nb} permutations, m<=3, n,d,k<=2)")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
