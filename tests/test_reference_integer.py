"""The checker's reference formulas evaluate their n x m sums on integers over a common denominator
(relucert/check/reference.py); here they are compared with the plain Fraction definitions, written out
again below as a brute-force oracle (deliberately independent of both the checker and relucert.core)."""
from __future__ import annotations

import random
from fractions import Fraction as Q

import pytest

import relucert.check.reference as R


# ---- brute-force oracle: the definitions, one Fraction operation at a time ----------------------
def _sig(z, ap, am):
    return ap * z if z > 0 else am * z


def oracle_Z(X, W):
    return [[sum((a * b for a, b in zip(w, x)), Q(0)) for w in W] for x in X]


def oracle_F(X, W, A, ap, am, k, c):
    Z = oracle_Z(X, W)
    return [[sum((_sig(Z[i][j], ap, am) * A[j][o] for j in range(len(W))), Q(0)) + (0 if c is None else c[o])
             for o in range(k)] for i in range(len(X))]


def oracle_G(Z, E, ap, am):
    n = len(E)
    return [[sum((E[i][c] * _sig(Z[i][j], ap, am) for i in range(n)), Q(0)) / n for c in range(len(E[0]))]
            for j in range(len(Z[0]))]


def _rq(rng):
    t = rng.random()
    if t < 0.15:
        return Q(0)
    if t < 0.45:
        return Q(rng.randint(-9, 9), rng.randint(1, 7))
    return Q(rng.getrandbits(30) - 2 ** 29, 2 ** rng.randint(0, 40))


def _instance(rng):
    n, m, d, k = rng.randint(1, 6), rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 3)
    X = [[_rq(rng) for _ in range(d)] for _ in range(n)]
    W = [[_rq(rng) for _ in range(d)] for _ in range(m)]
    x = X[0]
    if rng.random() < 0.5 and any(v != 0 for v in x):          # a kink: w_0 . x_0 = 0 exactly
        q = next(i for i, v in enumerate(x) if v != 0)
        W[0][q] = -sum((x[t] * W[0][t] for t in range(d) if t != q), Q(0)) / x[q]
    A = [[_rq(rng) for _ in range(k)] for _ in range(m)]
    Y = [[_rq(rng) for _ in range(k)] for _ in range(n)]
    c = [_rq(rng) for _ in range(k)] if rng.random() < 0.5 else None
    ap, am = rng.choice([(Q(1), Q(0)), (Q(1), Q(1, 100)), (Q(1), Q(-1)), (Q(2), Q(1, 3)), (Q(0), Q(1))])
    return X, Y, W, A, c, ap, am, k


@pytest.mark.parametrize("den_bits", [None, 8])
def test_integer_evaluation_equals_the_fraction_definitions(den_bits, monkeypatch):
    if den_bits is not None:          # tiny limit: the Fraction fallback runs on most instances
        monkeypatch.setattr(R, "COMMON_DEN_BITS", den_bits)
    rng = random.Random(5 if den_bits is None else 6)
    kinks = 0
    for _ in range(300):
        X, Y, W, A, c, ap, am, k = _instance(rng)
        Z = R.preactivations(X, W)
        assert Z == oracle_Z(X, W)
        kinks += sum(z == 0 for row in Z for z in row)
        F = R.outputs(X, W, A, ap, am, k, c)
        assert F == oracle_F(X, W, A, ap, am, k, c)
        assert all(isinstance(v, Q) for row in F for v in row)
        E = R.residuals(X, Y, W, A, ap, am, c)
        G = R.output_grad(Z, E, ap, am)
        assert G == oracle_G(Z, E, ap, am)
        assert all(isinstance(v, Q) for row in G for v in row)
    assert kinks > 50                 # the kink case (z = 0, slope alpha_minus) is well exercised


def test_common_denominator_limit():
    assert R._over_common([[Q(1, 2), Q(3, 4)], [Q(5)]]) == ([[2, 3], [20]], 4)
    primes = [p for p in range(3, 4000) if all(p % q for q in range(2, int(p ** 0.5) + 1))]
    hostile = [[Q(1, p) for p in primes]]               # lcm of 549 primes: about 5,500 bits > 4096
    assert R._over_common(hostile) is None
    # ... and the formulas still answer (plain Fractions)
    W = [[Q(1)] * len(primes)]
    assert R.preactivations(hostile, W) == [[sum((Q(1, p) for p in primes), Q(0))]]
