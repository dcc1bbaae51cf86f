"""Network embeddings of THEORY §7 on Point arrays (kept local to the claims package)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from flint import fmpq

from ..problem import Point
from .exact import dot, obj_array, rationalise, rows


def add_neuron(point: Point, w: Sequence[fmpq], a: Sequence[fmpq]) -> Point:
    """E1: append neuron (w, a)."""
    W = rows(point.W) + [list(w)]
    A = rows(point.A) + [list(a)]
    return Point(obj_array(W), obj_array(A))


def replicate(point: Point, j: int, betas: Sequence[fmpq], gammas: Sequence[fmpq] | None = None) -> Point:
    """E2: neuron j becomes copies (gamma_l w, beta_l a / gamma_l); copy 0 stays at position j, the
    others are appended.  The network function is unchanged iff sum(betas) = 1."""
    gammas = list(gammas) if gammas is not None else [fmpq(1)] * len(betas)
    if len(gammas) != len(betas) or any(g <= 0 for g in gammas):
        raise ValueError("replicate needs one positive gamma per beta")
    W, A = rows(point.W), rows(point.A)
    w, a = W[j], A[j]
    copies = [([g * v for v in w], [b * v / g for v in a]) for b, g in zip(betas, gammas)]
    W[j], A[j] = copies[0]
    for cw, ca in copies[1:]:
        W.append(cw)
        A.append(ca)
    return Point(obj_array(W), obj_array(A))


def dead_direction(X: np.ndarray) -> list | None:
    """A rational w with w . x_i < 0 for every data point (a dead ReLU direction), or None."""
    Xr = rows(X)
    n, d = len(Xr), len(Xr[0])
    if any(all(v == 0 for v in x) for x in Xr):
        return None
    cands = []
    for c in range(d):                       # a constant (bias) column
        col = [x[c] for x in Xr]
        if all(v > 0 for v in col):
            cands.append([fmpq(-1) if q == c else fmpq(0) for q in range(d)])
        if all(v < 0 for v in col):
            cands.append([fmpq(1) if q == c else fmpq(0) for q in range(d)])
    cands.append([-sum((x[q] for x in Xr), fmpq(0)) for q in range(d)])
    for w in cands:
        if all(dot(w, x) < 0 for x in Xr):
            return w
    try:                                     # LP: w . x_i <= -1, then exact check
        from scipy.optimize import linprog
        Xf = np.array([[float(v) for v in x] for x in Xr])
        res = linprog(np.zeros(d), A_ub=Xf, b_ub=-np.ones(n), bounds=[(-100, 100)] * d, method="highs")
        if res.status == 0:
            w = [rationalise(v, 1000) for v in res.x]
            if all(dot(w, x) < 0 for x in Xr):
                return w
    except Exception:
        pass
    return None
