"""Gradient descent, in floats (a small trainer) and exactly (rational steps).

The gradient uses the subgradient convention of the core, sigma'(0) = alpha_minus.  With it the
homogeneity identity w_j . dL/dw_j = a_j . dL/da_j holds at every point (kinks included, since
sigma'(z) z = sigma(z) for every z), so one GD step changes ||w_j||^2 - ||a_j||^2 by exactly
lr^2 (||dL/dw_j||^2 - ||dL/da_j||^2) (docs/theory.md §9).
"""
from __future__ import annotations

import numpy as np

from relucert.core.formulas import forward, half_mean_loss, linear_part, output_grad, weight_grad
from relucert.core.problem import Problem
from relucert.claims import exact as ex


def grads_float(X, Y, W, A, ap: float, am: float):
    """(loss, dL/dW, dL/dA) of the half-mean loss in float64, by the core's formulas."""
    fw = forward(X, Y, W, A, ap, am)
    gA = output_grad(fw.H, fw.E)
    gW = weight_grad(linear_part(fw.S, fw.E, X), A)
    return float(half_mean_loss(fw.E)), gW, gA


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
    """Exact (dL/dW, dL/dA) as lists of fmpq (same subgradient convention), by the checker's
    reference formulas."""
    return ex.gradient(problem, W, A)
