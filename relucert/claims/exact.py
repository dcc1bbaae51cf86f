"""Small exact helpers for the claims: the network's exact quantities, taken from the checker's
reference formulas (:mod:`relucert.check.reference`, on ``Fraction``) through fmpq <-> Fraction
conversions, and exact linear solves."""
from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

import numpy as np
from flint import fmpq, fmpq_mat

from relucert.check import reference as ref
from relucert.core.linalg import dot
from relucert.core.problem import Point, Problem

ZERO = fmpq(0)

__all__ = ["ZERO", "Q", "dot", "obj_array", "rows", "to_fraction", "from_fraction", "as_fractions", "as_fmpqs",
           "sigma", "preactivations", "outputs", "residuals", "loss", "point_loss", "output_grad",
           "Reference", "gradient", "hessian", "solve_any", "lstsq", "to_float", "from_float", "rationalise"]


def Q(p: Any, q: int = 1) -> fmpq:
    return fmpq(p, q) if not isinstance(p, fmpq) else p / q


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


# ---------------------------------------------------------------------------------------------
# fmpq <-> Fraction, and the reference formulas on the claims' exact types
# ---------------------------------------------------------------------------------------------

def to_fraction(x: Any) -> Fraction:
    if isinstance(x, fmpq):
        return Fraction(int(x.p), int(x.q))
    return Fraction(x)


def from_fraction(x: Fraction) -> fmpq:
    return fmpq(x.numerator, x.denominator)


def as_fractions(M: Any) -> list:
    """A vector or matrix (list or numpy object array of fmpq) as (nested) lists of Fraction."""
    if isinstance(M, np.ndarray):
        M = M.tolist()
    return [as_fractions(v) if isinstance(v, (list, tuple)) else to_fraction(v) for v in M]


def as_fmpqs(M: Any) -> list:
    """(Nested) lists of Fraction back to lists of fmpq."""
    return [as_fmpqs(v) if isinstance(v, (list, tuple)) else from_fraction(v) for v in M]


def _data(problem: Problem) -> tuple:
    act = problem.activation
    return (as_fractions(problem.X), as_fractions(problem.Y), to_fraction(act.alpha_plus),
            to_fraction(act.alpha_minus))


def sigma(ap: fmpq, am: fmpq, z: fmpq) -> fmpq:
    return from_fraction(ref.sigma(to_fraction(z), to_fraction(ap), to_fraction(am)))


def preactivations(X, W) -> list:
    """Z[i][j] = w_j . x_i (n x m, fmpq), by the checker's reference formula."""
    return as_fmpqs(ref.preactivations(as_fractions(X), as_fractions(W)))


def outputs(problem: Problem, W, A) -> list:
    """f(x_i) = sum_j a_j sigma(w_j . x_i), by the checker's reference formula."""
    X, _, ap, am = _data(problem)
    return as_fmpqs(ref.outputs(X, as_fractions(W), as_fractions(A), ap, am, problem.k))


def residuals(problem: Problem, W, A) -> list:
    X, Y, ap, am = _data(problem)
    return as_fmpqs(ref.residuals(X, Y, as_fractions(W), as_fractions(A), ap, am))


def loss(problem: Problem, W, A) -> fmpq:
    """Half-mean loss (1/2n) sum ||e_i||^2, exactly, by the checker's reference formula."""
    X, Y, ap, am = _data(problem)
    return from_fraction(ref.loss(X, Y, as_fractions(W), as_fractions(A), ap, am))


def point_loss(problem: Problem, point: Point) -> fmpq:
    return loss(problem, point.W, point.A)


class Reference:
    """The checker's reference quantities of a point (W, A) of a problem, in Fractions, computed
    once: for loops that evaluate D_j at many directions."""

    def __init__(self, problem: Problem, W, A):
        self.X, self.Y, self.ap, self.am = _data(problem)
        self.W, self.A = as_fractions(W), as_fractions(A)
        self.Z = ref.preactivations(self.X, self.W)
        self.E = ref.residuals(self.X, self.Y, self.W, self.A, self.ap, self.am)

    def D(self, j: int, r: Sequence[Any]) -> list:
        """D_j(r) (fmpq) by the checker's reference formula."""
        return as_fmpqs(ref.D(self.X, [row[j] for row in self.Z], self.E, as_fractions(r), self.ap, self.am))


def output_grad(problem: Problem, W, A) -> list:
    """G_j = (1/n) sum_i e_i sigma(z_ij) = dL/da_j (m x k), by the checker's reference formula."""
    rp = Reference(problem, W, A)
    return as_fmpqs(ref.output_grad(rp.Z, rp.E, rp.ap, rp.am))


def gradient(problem: Problem, W, A) -> tuple[list, list]:
    """(dL/dW, dL/dA) of the half_mean loss (sigma'(0) = alpha_minus), by the checker's reference."""
    X, Y, ap, am = _data(problem)
    gW, gA = ref.gradient(X, Y, as_fractions(W), as_fractions(A), ap, am)
    return as_fmpqs(gW), as_fmpqs(gA)


def hessian(problem: Problem, point: Point) -> list:
    """The checker's exact Hessian in (W row-major, A row-major), as lists of Fraction (valid where
    the loss is smooth, or on directions that keep every kink pair on its kink)."""
    rp = Reference(problem, point.W, point.A)
    return ref.hessian(rp.X, rp.Z, rp.E, rp.A, rp.ap, rp.am)


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
    f = Fraction(float(x)).limit_denominator(max_den)
    return fmpq(f.numerator, f.denominator)
