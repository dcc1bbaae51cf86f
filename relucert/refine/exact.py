"""Exact rational helpers shared by the refinements: least-norm solves, projection onto kinks,
rational square roots, and the targets left to the neurons being refined."""
from __future__ import annotations

import math

import numpy as np
from flint import fmpq, fmpq_mat

from relucert.core.formulas import forward
from relucert.core.linalg import independent_subset, mat, project_out
from relucert.core.problem import Problem


def rational_sqrt(x: float) -> fmpq:
    """The float sqrt(x), as an exact rational."""
    p, q = math.sqrt(x).as_integer_ratio()
    return fmpq(p, q)


def project_onto_kinks(w: list, xs: list) -> list:
    """Least-norm change of w making w.x = 0 for every x in xs (exact)."""
    if not xs:
        return list(w)
    return project_out([xs[i] for i in independent_subset(xs)], w)


def least_norm_solve(K_rows: list, rhs: list, weights: list | None = None) -> list | None:
    """x with K x = rhs minimising sum (x_q / weights_q)^2 (exact); None if inconsistent.

    Weights proportional to each parameter's size make small neurons move little (relative change)."""
    if weights is not None:
        K_rows = [[r[q] * weights[q] for q in range(len(r))] for r in K_rows]
        y = least_norm_solve(K_rows, rhs)
        return None if y is None else [a * b for a, b in zip(y, weights)]
    nvar = len(K_rows[0])
    idx = independent_subset(K_rows)
    rows = [K_rows[i] for i in idx]
    b = [rhs[i] for i in idx]
    Km = mat(rows)
    y = (Km * Km.transpose()).solve(fmpq_mat(len(rows), 1, b))
    x = [sum((y[p, 0] * rows[p][q] for p in range(len(rows))), fmpq(0)) for q in range(nvar)]
    for r, v in zip(K_rows, rhs):
        if sum((a * c for a, c in zip(r, x)), fmpq(0)) != v:
            return None
    return x


# How the exact fixed-pattern solves pick one solution among all exact solutions of their
# (under-determined) stationarity system:
#   "nearest" (default): the solution nearest the checkpoint in the parameters theta = (W, A), to
#       first order: scalar output, sum_j dv_j^T P_j^{-1} dv_j with P_j = ``split_metric_block``
#       (the Euclidean theta-norm pulled back through the split-back that is actually applied);
#       grouped (vector) output, sum |dA|^2 over the re-solved output weights (W is only projected
#       onto its kinks, so this is the Euclidean theta-distance of that step exactly);
#   "legacy": the earlier choice, least change in the diagonal norm sum_q (x_q / w_q)^2 with
#       float-rounded weights w_q = |v_j| (scalar: relative change of each v_j; grouped: relative
#       change of each group's coefficients, then of each output weight, 1e-12 for a zero one).
# Both are exact and every refined point is certified by the same engine; the switch only decides
# which exact solution is handed to it.  ``refine(..., least_squares=...)`` overrides it per call.
LEAST_SQUARES_CHOICES = ("nearest", "legacy")
LEAST_SQUARES = "nearest"


def least_squares_choice(choice: str | None) -> str:
    """The choice in force: ``choice`` if given, else the module default ``LEAST_SQUARES``."""
    c = LEAST_SQUARES if choice is None else choice
    if c not in LEAST_SQUARES_CHOICES:
        raise ValueError(f"least_squares must be one of {LEAST_SQUARES_CHOICES}, got {c!r}")
    return c


def nearest_solve(K_rows: list, rhs: list, P_blocks: list | None = None) -> list | None:
    """The x with K x = rhs minimising x^T P^{-1} x, exactly; None if the system is inconsistent.

    P is block diagonal and positive definite, given as a list of square fmpq matrices (lists of
    rows) along the unknowns in order (None: the identity, i.e. the Euclidean least-norm x).  The
    minimiser lies in P times the row space of K: x = P K_b^T lam with (K_b P K_b^T) lam = rhs_b,
    K_b a maximal independent subset of the rows (x is unique whatever subset is taken); every
    row of K is then checked exactly, so an inconsistent system returns None, never a wrong x."""
    if not K_rows:
        return None
    nvar = len(K_rows[0])
    idx = independent_subset(K_rows)
    if not idx:
        return [fmpq(0)] * nvar if all(v == 0 for v in rhs) else None
    rows = [K_rows[i] for i in idx]
    b = [rhs[i] for i in idx]
    Kb = mat(rows)                                   # r x nvar
    if P_blocks is None:
        PKt = Kb.transpose()
    else:
        # P K_b^T block by block (P is block diagonal)
        pos = 0
        KbT = Kb.transpose()
        parts = []
        for blk in P_blocks:
            s = len(blk)
            sub = fmpq_mat(s, len(rows), [KbT[pos + q, c] for q in range(s) for c in range(len(rows))])
            parts.append(mat(blk) * sub)
            pos += s
        if pos != nvar:
            raise ValueError(f"metric blocks cover {pos} unknowns, the system has {nvar}")
        PKt = fmpq_mat(nvar, len(rows), [p[q, c] for p in parts for q in range(p.nrows()) for c in range(len(rows))])
    lam = (Kb * PKt).solve(fmpq_mat(len(rows), 1, b))
    xm = PKt * lam
    x = [xm[q, 0] for q in range(nvar)]
    back = mat(K_rows) * xm                          # every row, not only the independent ones
    if any(back[i, 0] != v for i, v in enumerate(rhs)):
        return None
    return x


def split_metric_block(w: list, amag: fmpq) -> list:
    """Inverse metric block P_j (exact, d x d) for v = |a| w under the split-back that keeps
    kappa = |a|/|w| (``refine_scalar`` step 4: |a'| = sqrt(kappa |v'|), w' = v'/|a'|).

    To first order that split maps delta v to delta theta with ||delta theta||^2 = delta v^T P^{-1} delta v,
    P = |a|^2 I + |a|^2 (3|w|^2 - |a|^2) / ((|w|^2 + |a|^2) |w|^2) w w^T: along w the change is
    shared by w and a, across w only w moves.  P is positive definite (eigenvalues |a|^2 and
    4 |a|^2 |w|^2 / (|w|^2 + |a|^2)) when a != 0 and w != 0; for a degenerate neuron (a = 0 or w = 0,
    never an alive one) the identity times |a|^2 + |w|^2 (or 1) is returned instead."""
    d = len(w)
    a2 = amag * amag
    w2 = sum((x * x for x in w), fmpq(0))
    if a2 == 0 or w2 == 0:
        s = a2 + w2 if a2 + w2 != 0 else fmpq(1)
        return [[s if p == q else fmpq(0) for q in range(d)] for p in range(d)]
    c = a2 * (3 * w2 - a2) / ((w2 + a2) * w2)
    return [[(a2 if p == q else fmpq(0)) + c * w[p] * w[q] for q in range(d)] for p in range(d)]


def targets_without(problem: Problem, W: np.ndarray, A: np.ndarray, js: list) -> np.ndarray:
    """y_i - sum_{j not in js} a_j sigma(w_j . x_i): what is left for the neurons js to fit (exact,
    n x k), i.e. minus the residuals of the network with the output weights of js set to 0."""
    A0 = A.copy()
    for j in js:
        A0[j] = [fmpq(0)] * problem.k
    act = problem.activation
    return problem.Y - forward(problem.X, problem.Y, W, A0, act.alpha_plus, act.alpha_minus).F
