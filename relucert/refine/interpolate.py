"""Exact zero-loss points near an interpolating point (docs/theory.md §6.8).

When the network fits the data up to rounding (the float residuals are a tiny fraction of the
targets), the stationary point a refinement is after is a global minimum with loss 0, and such
points form a whole manifold: with the output weights A and the sign pattern held fixed, the outputs
f_ic = sum_j s_ij a_jc (x_i . w_j) (+ c_c) are linear in (W, c), so the exact solution of
f(W + dW, c + dc) = Y nearest the point (least Euclidean change of (W, c)) is one linear solve. Where
the pattern does not change, that point has loss exactly 0; whatever the solve proposes, only the
exact loss of the new point, evaluated afterwards, decides."""
from __future__ import annotations

import numpy as np
from flint import fmpq

from relucert.core.formulas import ExactState, forward, preactivations, slopes
from relucert.core.problem import Point, Problem, to_exact_matrix
from relucert.refine.exact import exact_vector, least_norm_solve

# the float residuals must be at most this fraction of the targets (root mean square) to try
NEAR_ZERO_LOSS = 1e-9
MAX_UNKNOWNS = 2000       # m d (or m k) + k unknowns ...
MAX_EQUATIONS = 800       # ... and n k equations (+ kink rows): one exact solve of at most this size


def interpolating_point(problem: Problem, point: Point, rel: float = NEAR_ZERO_LOSS) -> tuple[Point | None, str]:
    """(an exact point with loss exactly 0, note) near ``point``, or (None, why not)."""
    n, d, k, m = problem.n, problem.d, problem.k, point.m
    Xf, Yf = problem.Xf, problem.Yf
    has_c = point.c is not None
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    E = forward(Xf, Yf, point.Wf, point.Af, ap, am, point.cf if has_c else None).E
    scale = float(np.sqrt(np.mean(Yf ** 2)))
    resid = float(np.sqrt(np.mean(E ** 2)))
    if not np.isfinite(resid) or scale == 0 or resid > rel * scale:
        return None, f"not near zero loss (float residual {resid:.1e} vs targets {scale:.1e})"
    if n * k > MAX_EQUATIONS:
        return None, f"interpolation system too large ({n * k} equations)"
    # base: the float point, read exactly (short numbers); A (or W) is held there
    W0, A0 = to_exact_matrix(point.Wf, "W"), to_exact_matrix(point.Af, "A")
    c0 = exact_vector([fmpq(*float(v).as_integer_ratio()) for v in point.cf]) if has_c else None
    Z0 = preactivations(problem.X, W0)
    sg = [[(1 if Z0[i, j] > 0 else (-1 if Z0[i, j] < 0 else 0)) for j in range(m)] for i in range(n)]
    why = ""
    for moving in ("W", "A"):
        new, why = _solve(problem, W0, A0, c0, Z0, sg, moving)
        if new is not None:
            return new, why
    return None, why


def _solve(problem: Problem, W0, A0, c0, Z0, sg: list, moving: str) -> tuple[Point | None, str]:
    """Hold A (moving = "W") or W (moving = "A") at the base and solve f = Y for the rest, exactly."""
    n, d, k, m = problem.n, problem.d, problem.k, W0.shape[0]
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    has_c = c0 is not None
    X = [problem.X[i].tolist() for i in range(n)]
    Ar = A0.tolist()
    zero = fmpq(0)
    S0 = slopes(Z0, ap, am)
    H = (S0 * Z0).tolist()                          # sigma(z_ij) at the base
    S0 = S0.tolist()
    nmov = m * d if moving == "W" else m * k
    nvar = nmov + (k if has_c else 0)
    if nvar > MAX_UNKNOWNS:
        return None, f"interpolation system too large ({n * k} equations, {nvar} unknowns)"
    rows, rhs = [], []
    for i in range(n):
        for c in range(k):
            row = [zero] * nvar
            f = c0[c] if has_c else zero
            for j in range(m):
                f += H[i][j] * Ar[j][c]
                if moving == "A":
                    row[j * k + c] = H[i][j]
                    continue
                if sg[i][j] == 0:
                    continue             # on its kink: held there by a row below, contributes 0
                coef = S0[i][j] * Ar[j][c]
                if coef != 0:
                    for q in range(d):
                        row[j * d + q] = coef * X[i][q]
            if has_c:
                row[nmov + c] = fmpq(1)
            rows.append(row)
            rhs.append(problem.Y[i, c] - f)
    if moving == "W":
        for i in range(n):                  # pairs on a kink stay on it
            for j in range(m):
                if sg[i][j] == 0 and any(X[i]):
                    row = [zero] * nvar
                    row[j * d:(j + 1) * d] = X[i]
                    rows.append(row)
                    rhs.append(zero)
    dx = least_norm_solve(rows, rhs)
    if dx is None:
        return None, f"the interpolation system on the pattern is inconsistent (moving {moving})"
    W1, A1 = W0.copy(), A0.copy()
    if moving == "W":
        for j in range(m):
            W1[j] = [W0[j, q] + dx[j * d + q] for q in range(d)]
    else:
        for j in range(m):
            A1[j] = [A0[j, c] + dx[j * k + c] for c in range(k)]
    c1 = exact_vector([c0[c] + dx[nmov + c] for c in range(k)]) if has_c else None
    new = Point(W1, A1, c1)
    if ExactState(problem, new).loss_half_mean != 0:
        return None, "the zero-loss solution of the pattern's linear system changes the pattern"
    held = "A" if moving == "W" else "W"
    lin = moving + (", c" if has_c else "")
    return new, (f"zero-loss point: with {held} held, the outputs are linear in ({lin}) on the pattern, "
                 f"the nearest exact solution of f = Y ({n * k} equations, {nvar} unknowns) has loss exactly 0")
