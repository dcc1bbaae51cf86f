"""Escape neurons and the explicit escape path (docs/theory.md §4)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from flint import fmpq

from relucert.core.formulas import Neuron
from relucert.core.linalg import dot
from relucert.core.problem import qstr
from relucert.decide.stationarity import MAX_RAY_CANDIDATES, candidate_rays


@dataclass
class EscapeDecision:
    escape: bool | None          # None: undecided
    method: str
    witness: dict = field(default_factory=dict)
    r: list | None = None        # direction with phi(r) = 0 and D(r) != 0
    D: list | None = None
    note: str = ""


def _vec(v):
    return [qstr(x) for x in v]


def _nonzero(v) -> bool:
    return any(x != 0 for x in v)


def _candidate_directions(nr: Neuron, seed: int):
    """The candidates of ``find_nonzero_direction``, in order: +-e_i, +-each hinge normal, then 200
    seeded random rationals (drawn only when reached: the first candidates usually suffice)."""
    d = len(nr.w)
    for i in range(d):
        e = [fmpq(0)] * d
        e[i] = fmpq(1)
        yield e
        yield [-v for v in e]
    for key in nr.hinges:
        yield list(key)
        yield [-v for v in key]
    rng = random.Random(seed)
    for _ in range(200):
        yield [fmpq(rng.randint(-7, 7), rng.randint(1, 5)) for _ in range(d)]


def find_nonzero_direction(nr: Neuron, seed: int = 0) -> list | None:
    """A rational r with D_j(r) != 0 (exists iff D_j is not identically 0)."""
    for r in _candidate_directions(nr, seed):
        if _nonzero(nr.D(r)):
            return r
    return None


def escape_test(nr: Neuron) -> EscapeDecision:
    """Is neuron j an escape neuron (assuming the point is stationary)?"""
    k = len(nr.a)
    d = len(nr.w)
    if nr.a_zero:
        if not _nonzero([v for row in nr.Lin for v in row]) and not nr.hinges:
            return EscapeDecision(False, "zero_derivative", witness={"method": "zero_derivative"},
                                  note="a_j = 0 and D_j is identically 0")
        r = find_nonzero_direction(nr)
        if r is None:
            return EscapeDecision(None, "zero_derivative", note="D_j not identically 0 but no direction found")
        D = nr.D(r)
        return EscapeDecision(True, "zero_output", r=r, D=D,
                              witness={"method": "direction", "r": _vec(r), "D": _vec(D)},
                              note="a_j = 0 and D_j(r) != 0")
    if k == 1:
        return EscapeDecision(False, "scalar_nonzero_a", witness={"method": "scalar_nonzero_a"},
                              note="scalar output with a_j != 0: a_j.D_j(r) = 0 forces D_j(r) = 0")
    # vector output, a_j != 0: search the flat set of phi over V-perp and the candidate rays
    keys = list(nr.hinges)
    Vrows, perp, cand = candidate_rays(keys, d, MAX_RAY_CANDIDATES)
    for r in perp:
        Dr = nr.D(r)
        if _nonzero(Dr) and nr.phi(r) == 0:
            return EscapeDecision(True, "rays", r=list(r), D=Dr,
                                  witness={"method": "direction", "r": _vec(r), "D": _vec(Dr)},
                                  note="D_j != 0 on a flat direction orthogonal to every kink normal")
    if cand is None:
        return EscapeDecision(None, "rays", note="too many candidate extreme rays to decide escape")
    for ray in cand:
        for sgn in (1, -1):
            rr = [sgn * v for v in ray]
            if nr.phi(rr) == 0:
                Dr = nr.D(rr)
                if _nonzero(Dr):
                    return EscapeDecision(True, "rays", r=rr, D=Dr,
                                          witness={"method": "direction", "r": _vec(rr), "D": _vec(Dr)},
                                          note="D_j != 0 on a flat extreme ray")
    return EscapeDecision(False, "rays", witness={"method": "rays", "n_rays": len(cand)},
                          note="D_j = 0 on every flat extreme ray and on V-perp")


# ---------------------------------------------------------------------------------------------
# escape path
# ---------------------------------------------------------------------------------------------

def escape_path_polynomial(X, E, zcol, r, D, ap, am):
    """Coefficients c[0..6] of L(theta(t)) - L(theta) (half_mean) along w_j + t r, a_j = -t^2 D,
    valid on 0 < t < t_max (returned; None = unbounded). Requires a_j = 0 at theta."""
    n = len(zcol)
    c = [fmpq(0)] * 7
    DD = dot(D, D)
    t_max = None
    for i in range(n):
        xi = X[i].tolist() if hasattr(X[i], "tolist") else list(X[i])
        z = zcol[i]
        delta = dot(xi, r)
        if z > 0 or (z == 0 and delta > 0):
            s = ap
        else:
            s = am
        al, be = s * z, s * delta
        eD = dot(E[i].tolist() if hasattr(E[i], "tolist") else list(E[i]), D)
        c[2] += -al * eD / n
        c[3] += -be * eD / n
        c[4] += al * al * DD / (2 * n)
        c[5] += al * be * DD / n
        c[6] += be * be * DD / (2 * n)
        if z != 0 and z * delta < 0:
            t = -z / delta
            if t_max is None or t < t_max:
                t_max = t
    return c, t_max


def poly_eval(c, t):
    v = fmpq(0)
    for p in reversed(c):
        v = v * t + p
    return v


def choose_step(c, t_max, start=fmpq(1), max_halvings=64):
    """A rational t in (0, t_max) with poly(t) = sum_i c_i t^i < 0, or None.

    First the largest start/2^h (a short number) among a few halvings; else, when the lowest
    non-zero coefficient c_a is negative, the explicit bound t = min(1, t_max/2, |c_a| / (2 S)) with
    S = sum_{b > a} |c_b|: then poly(t) / t^a <= c_a + t S <= c_a / 2 < 0 (for t <= 1), however tiny
    |c_a| is.  None only if the lowest non-zero coefficient is not negative."""
    t = start
    if t_max is not None:
        while t >= t_max:
            t = t / 2
    for _ in range(max_halvings):
        if poly_eval(c, t) < 0:
            return t
        t = t / 2
    nz = [i for i, v in enumerate(c) if v != 0]
    if not nz or not c[nz[0]] < 0:
        return None
    lead = -c[nz[0]]
    rest = sum((abs(v) for v in c[nz[0] + 1:]), fmpq(0))
    t = fmpq(1) if t_max is None else min(fmpq(1), t_max / 2)
    if rest > 0:
        t = min(t, lead / (2 * rest))
    return t if poly_eval(c, t) < 0 else None
