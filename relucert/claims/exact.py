"""Small exact helpers for the claims: an independent forward pass, exact linear solves."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from flint import fmpq, fmpq_mat

from relucert.core.problem import Point, Problem

ZERO = fmpq(0)


def Q(p: Any, q: int = 1) -> fmpq:
    return fmpq(p, q) if not isinstance(p, fmpq) else p / q


def dot(u: Sequence[fmpq], v: Sequence[fmpq]) -> fmpq:
    s = fmpq(0)
    for a, b in zip(u, v):
        s += a * b
    return s


def obj_array(rows: Sequence[Sequence[Any]], ncols: int | None = None) -> np.ndarray:
    """2-D numpy object array of fmpq."""
    rows = [list(r) for r in rows]
    c = len(rows[0]) if rows else (ncols or 0)
    out = np.empty((len(rows), c), dtype=object)
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            out[i, j] = v if isinstance(v, fmpq) else fmpq(v)
    return out


def rows(a: np.ndarray) -> list:
    return [list(r) for r in a.tolist()]


def sigma(ap: fmpq, am: fmpq, z: fmpq) -> fmpq:
    return ap * z if z > 0 else am * z


def outputs(problem: Problem, W, A) -> list:
    """f(x_i) = sum_j a_j sigma(w_j . x_i), computed with plain loops (independent of the core)."""
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    X = rows(problem.X)
    W = rows(W) if isinstance(W, np.ndarray) else W
    A = rows(A) if isinstance(A, np.ndarray) else A
    k = problem.k
    out = []
    for x in X:
        h = [sigma(ap, am, dot(w, x)) for w in W]
        out.append([sum((h[j] * A[j][c] for j in range(len(W))), fmpq(0)) for c in range(k)])
    return out


def residuals(problem: Problem, W, A) -> list:
    F = outputs(problem, W, A)
    Y = rows(problem.Y)
    return [[f - y for f, y in zip(Fi, Yi)] for Fi, Yi in zip(F, Y)]


def loss(problem: Problem, W, A) -> fmpq:
    """Half-mean loss (1/2n) sum ||e_i||^2, exactly, by plain loops."""
    E = residuals(problem, W, A)
    return sum((e * e for r in E for e in r), fmpq(0)) / (2 * problem.n)


def point_loss(problem: Problem, point: Point) -> fmpq:
    return loss(problem, point.W, point.A)


def solve_any(M: Sequence[Sequence[fmpq]], rhs: Sequence[fmpq], ncols: int) -> list | None:
    """One exact solution of M v = rhs (free variables 0), None if inconsistent."""
    if not M:
        return [fmpq(0)] * ncols if all(v == 0 for v in rhs) else None
    aug = fmpq_mat(len(M), ncols + 1, [v for r, b in zip(M, rhs) for v in list(r) + [b]])
    R, rk = aug.rref()
    v = [fmpq(0)] * ncols
    for i in range(rk):
        row = [R[i, c] for c in range(ncols + 1)]
        p = next(c for c in range(ncols + 1) if row[c] != 0)
        if p == ncols:
            return None
        v[p] = row[ncols]
    return v


def lstsq(H: Sequence[Sequence[fmpq]], Y: Sequence[Sequence[fmpq]]) -> list:
    """An exact least-squares solution A (m x k) of H A ~ Y via the normal equations."""
    n = len(H)
    m = len(H[0]) if n else 0
    k = len(Y[0]) if n else 0
    HtH = [[sum((H[i][p] * H[i][r] for i in range(n)), fmpq(0)) for r in range(m)] for p in range(m)]
    A = [[fmpq(0)] * k for _ in range(m)]
    for c in range(k):
        rhs = [sum((H[i][p] * Y[i][c] for i in range(n)), fmpq(0)) for p in range(m)]
        sol = solve_any(HtH, rhs, m)
        assert sol is not None, "normal equations are consistent"
        for p in range(m):
            A[p][c] = sol[p]
    return A


def to_float(v: fmpq) -> float:
    return int(v.p) / int(v.q)


def from_float(x: float) -> fmpq:
    p, qq = float(x).as_integer_ratio()
    return fmpq(p, qq)


def rationalise(x: float, max_den: int = 10 ** 6) -> fmpq:
    from fractions import Fraction
    f = Fraction(float(x)).limit_denominator(max_den)
    return fmpq(f.numerator, f.denominator)
