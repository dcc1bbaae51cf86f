"""Network embeddings of docs/theory.md §7 for the claims library: thin wrappers over relucert.tools.embedding
(one implementation), returning the wider Point directly."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from flint import fmpq

from relucert.tools import embedding as E
from relucert.errors import InputError
from relucert.core.problem import Point, Problem


def add_neuron(problem: Problem, point: Point, w: Sequence[fmpq]) -> Point:
    """E1: append neuron (w, a = 0); the function is verified unchanged."""
    return E.add_neuron(problem, point, list(w)).after


def replicate(problem: Problem, point: Point, j: int, betas: Sequence[fmpq],
              gammas: Sequence[fmpq] | None = None) -> Point:
    """E2: neuron j becomes copies (gamma_l w, beta_l a / gamma_l); copy 0 stays at position j, the
    others are appended (sum of betas = 1)."""
    return E.split(problem, point, j, list(betas), None if gammas is None else list(gammas)).after


def dead_direction(X: np.ndarray) -> list | None:
    """A rational w with w . x_i < 0 for every data point (a dead ReLU direction), or None."""
    try:
        return E.dead_direction_of(X)
    except InputError:
        return None
