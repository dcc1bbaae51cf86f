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


def targets_without(problem: Problem, W: np.ndarray, A: np.ndarray, js: list) -> np.ndarray:
    """y_i - sum_{j not in js} a_j sigma(w_j . x_i): what is left for the neurons js to fit (exact,
    n x k), i.e. minus the residuals of the network with the output weights of js set to 0."""
    A0 = A.copy()
    for j in js:
        A0[j] = [fmpq(0)] * problem.k
    act = problem.activation
    return problem.Y - forward(problem.X, problem.Y, W, A0, act.alpha_plus, act.alpha_minus).F
