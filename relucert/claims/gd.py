"""Gradient descent, in floats (a small trainer) and exactly (rational steps).

The gradient uses the subgradient convention of the core, sigma'(0) = alpha_minus.  With it the
homogeneity identity w_j . dL/dw_j = a_j . dL/da_j holds at every point (kinks included, since
sigma'(z) z = sigma(z) for every z), so one GD step changes ||w_j||^2 - ||a_j||^2 by exactly
lr^2 (||dL/dw_j||^2 - ||dL/da_j||^2) (THEORY §9).
"""
from __future__ import annotations

import numpy as np
from flint import fmpq

from relucert.core.problem import Problem
from relucert.claims.exact import dot, rows, sigma


def grads_float(X, Y, W, A, ap: float, am: float):
    """(loss, dL/dW, dL/dA) of the half-mean loss in float64."""
    n = X.shape[0]
    Z = X @ W.T
    S = np.where(Z > 0, ap, am)
    H = S * Z
    E = H @ A - Y
    gA = H.T @ E / n
    C = (E @ A.T) * S                       # n x m: (a_j . e_i) s_ij
    gW = C.T @ X / n
    return float((E * E).sum() / (2 * n)), gW, gA


def train_float(problem: Problem, W0, A0, lr: float, steps: int, record: int = 0):
    """Plain full-batch GD; returns (W, A, trajectory) where the trajectory holds every
    ``record``-th iterate (empty if record = 0)."""
    X, Y = problem.Xf, problem.Yf
    ap, am = float(problem.activation.alpha_plus), float(problem.activation.alpha_minus)
    W, A = np.array(W0, dtype=float), np.array(A0, dtype=float)
    traj = []
    for t in range(steps):
        if record and t % record == 0:
            traj.append((W.copy(), A.copy()))
        _, gW, gA = grads_float(X, Y, W, A, ap, am)
        W, A = W - lr * gW, A - lr * gA
    if record:
        traj.append((W.copy(), A.copy()))
    return W, A, traj


def imbalance_float(W, A) -> np.ndarray:
    """||w_j||^2 - ||a_j||^2 per neuron."""
    return (W * W).sum(axis=1) - (A * A).sum(axis=1)


def grads_exact(problem: Problem, W: list, A: list):
    """Exact (dL/dW, dL/dA) as lists of fmpq (same subgradient convention)."""
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    X, Y = rows(problem.X), rows(problem.Y)
    n, d, k, m = len(X), len(X[0]), len(Y[0]), len(W)
    Z = [[dot(w, x) for w in W] for x in X]
    S = [[ap if z > 0 else am for z in zr] for zr in Z]
    H = [[sigma(ap, am, z) for z in zr] for zr in Z]
    E = [[sum((H[i][j] * A[j][c] for j in range(m)), fmpq(0)) - Y[i][c] for c in range(k)] for i in range(n)]
    gA = [[sum((H[i][j] * E[i][c] for i in range(n)), fmpq(0)) / n for c in range(k)] for j in range(m)]
    gW = []
    for j in range(m):
        coef = [dot(A[j], E[i]) * S[i][j] for i in range(n)]
        gW.append([sum((coef[i] * X[i][q] for i in range(n)), fmpq(0)) / n for q in range(d)])
    return gW, gA
