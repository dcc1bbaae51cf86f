"""The activation pattern of a float candidate (THEORY §6.1): every pre-activation is
positive, negative or on a kink (scale-free tolerance on |w_j.x_i| / (|w_j| |x_i|)), every neuron
alive / tiny / dead / zero / zero_output (size |a_j| |w_j| max|x| versus max|y|); the kink
tolerance, snapping diagnostics, and the float gradient used to decide whether to refine at all."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relucert.core.formulas import forward, linear_part, mean_residual, output_grad, preactivations, weight_grad
from relucert.core.linalg import derived, dot, freeze, is_frozen
from relucert.core.problem import Point, Problem, fmpq_to_float


@dataclass
class Tolerances:
    kink: float = 1e-4          # |w.x| / (|w||x|) below this: the pair is on the kink
    tiny: float = 1e-6          # size |a||w| max|x| / max|y| below this: the neuron is tiny, always
    stationary: float = 1e-3    # float gradient / scale above this: not near-stationary, no refinement
    alive: float = 1e-3         # size above this: alive; between tiny and alive: alive only if it shares
                                # its activation pattern with an alive neuron (a replica), else tiny
    max_move: float = 0.05      # a refinement moving theta by more than this (relative) is rejected
    kink_auto: bool = True      # raise the kink tolerance (up to kink_max) to a clear gap (>= 100x) in
    kink_max: float = 1e-2      # the relative |w.x| values just above it (neurons zig-zagging on a kink)
    replica_angle: float = 2e-2  # vector output: alive neurons of one activation pattern whose directions
                                 # differ by less than this (radians) may be read as exact replicas

    def to_json(self) -> dict:
        return {"kink_relative": self.kink, "kink_auto": self.kink_auto, "kink_max": self.kink_max,
                "tiny_relative": self.tiny, "alive_relative": self.alive,
                "near_stationary": self.stationary, "max_move_relative": self.max_move,
                "replica_angle": self.replica_angle}


@dataclass
class Pattern:
    status: list            # per neuron: alive / tiny / dead / zero / zero_output
    kinks: list             # per neuron: data indices treated as kinks (exact or snapped)
    snapped: list           # (neuron, data index, relative |z|) pairs that were not exactly 0
    signs: np.ndarray       # n x m in {+1, -1, 0} (0 = kink)
    sizes: list             # per neuron relative size |a||w| max|x| / max|y|
    kink_tol: float = 0.0   # the kink tolerance actually used

    def alive_groups(self) -> dict:
        """{activation pattern (signs over the data): [alive neurons with it]}, in neuron order."""
        groups: dict = {}
        for j, st in enumerate(self.status):
            if st == "alive":
                groups.setdefault(tuple(int(v) for v in self.signs[:, j]), []).append(j)
        return groups


def _relative_preactivations(problem: Problem, point: Point) -> np.ndarray:
    """|w_j.x_i| / (|w_j| |x_i|) in floats (n x m); 0/0 entries are nan, x/0 entries inf."""
    X, W = problem.Xf, point.Wf
    den = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(W, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(preactivations(X, W)) / den


def effective_kink_tol(problem: Problem, point: Point, tol: Tolerances) -> float:
    """The kink tolerance: tol.kink, raised to the middle of a clear gap (ratio >= 100) when relative
    |w.x| values lie between tol.kink and tol.kink_max just below that gap."""
    if not tol.kink_auto:
        return tol.kink
    X, W = problem.Xf, point.Wf
    den = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(W, axis=1))
    rel = _relative_preactivations(problem, point)
    v = np.sort(rel[(den > 0) & (rel > 0)])
    above = v[v >= tol.kink]
    if len(above) == 0 or above[0] > tol.kink_max:
        return tol.kink
    eff = tol.kink
    for a, b in zip(above[:-1], above[1:]):
        if a > tol.kink_max:
            break
        if b / a >= 100:
            eff = float(np.sqrt(a * b))
            break
    return min(eff, tol.kink_max)


def classify(problem: Problem, point: Point, tol: Tolerances) -> Pattern:
    X, W, A = problem.Xf, point.Wf, point.Af
    kink_tol = effective_kink_tol(problem, point, tol)
    xn = np.linalg.norm(X, axis=1)
    wn = np.linalg.norm(W, axis=1)
    an = np.linalg.norm(A, axis=1)
    yscale = max(float(np.abs(problem.Yf).max()), 1e-300)
    xscale = max(float(xn.max()), 1e-300)
    n, m = problem.n, point.m
    Zc = preactivations(problem.X, point.W).T.tolist()          # exact, by neuron
    signs = np.zeros((n, m), dtype=int)
    kinks, snapped, status, sizes = [], [], [], []
    am0 = problem.activation.alpha_minus == 0
    Wr, Ar = point.W.tolist(), point.A.tolist()
    for j in range(m):
        wz = not any(Wr[j])
        az = not any(Ar[j])
        size = an[j] * wn[j] * xscale / yscale
        sizes.append(size)
        K = []
        for i, z in enumerate(Zc[j]):
            if not z:                         # z == 0 exactly
                K.append(i)
                continue
            zf = fmpq_to_float(z)
            rel = abs(zf) / max(wn[j] * xn[i], 1e-300)
            if rel < kink_tol:
                K.append(i)
                snapped.append((j, i, rel))
            else:
                # rounding keeps the sign of z unless it underflows to 0 (then compared exactly)
                signs[i, j] = 1 if (zf > 0 if zf != 0 else z > 0) else -1
        kinks.append(K)
        if wz and az:
            st = "zero"
        elif az:
            st = "zero_output"
        elif am0 and not K and all(signs[i, j] < 0 for i in range(n)):
            st = "dead"
        elif size < tol.tiny:
            st = "tiny"
        else:
            st = "alive" if size >= tol.alive else "small"
        status.append(st)
    # a small neuron is a replica of an alive group (same activation pattern) or a tiny one
    anchors = {tuple(signs[:, j]) for j in range(m) if status[j] == "alive"}
    status = [("alive" if tuple(signs[:, j]) in anchors else "tiny") if st == "small" else st
              for j, st in enumerate(status)]
    return Pattern(status, kinks, snapped, signs, sizes, kink_tol)


# ------------------------------------------------------------------------------------------------
# filtered signs of exact pre-activations: float arithmetic with a rigorous error bound decides
# every sign it can, exact rational arithmetic decides the rest (the refined points carry rationals
# of thousands of digits, where one exact product costs tens of microseconds)
# ------------------------------------------------------------------------------------------------

_UNIT = 2.0 ** -53              # unit roundoff of float64 (round to nearest)
_RANGE = (2.0 ** -500, 2.0 ** 500)   # nonzero inputs in this range: every product is a normal float


def _floats_in_range(a) -> np.ndarray | None:
    """Correctly rounded float64 of an exact 2-D array (``fmpq_to_float``), or None when a nonzero
    entry is outside ``_RANGE`` (then the filter's error model does not hold)."""
    if isinstance(a, np.ndarray) and is_frozen(a):
        return derived(a, "floats_in_range", _frozen_floats_in_range)
    return _floats_in_range_of(a)


def _frozen_floats_in_range(a: np.ndarray) -> np.ndarray | None:
    f = _floats_in_range_of(a)
    return None if f is None else freeze(f)      # computed once for the frozen data, shared read-only


def _floats_in_range_of(a) -> np.ndarray | None:
    if isinstance(a, np.ndarray):
        shape, flat = a.shape, a.ravel().tolist()
    elif len(a) and all(isinstance(r, (list, tuple)) and len(r) == len(a[0]) for r in a):
        shape, flat = (len(a), len(a[0])), [v for r in a for v in r]
    else:
        shape = flat = None
    if flat is None:
        f = np.array([[fmpq_to_float(v) for v in row] for row in a], dtype=float).reshape(np.shape(a))
    else:
        f = np.fromiter(map(fmpq_to_float, flat), dtype=float, count=len(flat)).reshape(shape)
    mag = np.abs(f)
    nz = mag != 0
    if not np.all(np.isfinite(f)) or np.any(nz & ((mag < _RANGE[0]) | (mag > _RANGE[1]))):
        return None
    for idx in zip(*np.nonzero(f == 0)):
        v = a[idx[0]][idx[1]] if f.ndim == 2 else a[idx[0]]
        if v != 0:
            return None             # a nonzero rational that underflows to 0: outside the model
    return f


def filtered_signs(X, W, Xf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Signs of the exact z_ij = w_j . x_i (X: n x d, W: m x d, exact rationals) where a float
    evaluation proves them: (signs n x m in {-1, 0, +1}, decided n x m bool); where ``decided`` is
    False the sign is unknown and must be computed exactly.

    Error bound: inputs correctly rounded (relative error <= u) and, inside ``_RANGE``, every
    product a normal float, so |fl(z) - z| <= (d + 3) u sum_q |x_q w_q| (1 + O(u)) whatever the
    summation order or fused multiply-adds; the float sum S of |x_q||w_q| is within a factor
    (1 - d u) of the exact one.  A sign is decided when |fl(z)| > 2 (d + 3) u S, and an exact 0 when
    S = 0 (every product is exactly 0: nonzero inputs stay nonzero in the range).  Inputs outside
    the range: nothing is decided."""
    n, d, m = len(X), (len(X[0]) if len(X) else 0), len(W)
    Xf = _floats_in_range(X) if Xf is None else Xf
    Wf = _floats_in_range(W)
    if Xf is None or Wf is None or n == 0 or m == 0:
        return np.zeros((n, m), dtype=int), np.zeros((n, m), dtype=bool)
    Z = Xf @ Wf.T
    S = np.abs(Xf) @ np.abs(Wf).T
    bound = 2.0 * (d + 3) * _UNIT * S
    decided = (np.abs(Z) > bound) | (S == 0)
    return np.where(S == 0, 0, np.sign(Z)).astype(int), decided


def exact_signs(X, W) -> np.ndarray:
    """Signs of z_ij = w_j . x_i (n x m in {-1, 0, +1}), exact: ``filtered_signs`` where it
    decides, an exact rational dot product (``core.linalg.dot``) where it does not."""
    sg, ok = filtered_signs(X, W)
    for i, j in zip(*np.nonzero(~ok)):
        z = dot(X[i], W[j])
        sg[i, j] = 1 if z > 0 else (-1 if z < 0 else 0)
    return sg


def pattern_flips(problem: Problem, point: Point, pat: Pattern, ignore: list) -> list:
    """(neuron, data) pairs of ``point`` whose strict sign flipped, or whose kink was not made exact
    (signs exact, ``exact_signs``)."""
    sg = exact_signs(problem.X, point.W)
    s = np.asarray(pat.signs)
    bad = ((s == 0) & (sg != 0)) | ((s > 0) & (sg <= 0)) | ((s < 0) & (sg >= 0))
    skip = set(ignore) | {j for j in range(point.m) if all(v == 0 for v in point.W[j])}
    return [[int(j), int(i)] for j, i in zip(*np.nonzero(bad.T)) if j not in skip]


def snapped_dead_pattern(problem: Problem, point: Point, pat: Pattern):
    """(the pattern with every 'snapped but otherwise dead' neuron read as dead, those neurons),
    or None."""
    if problem.activation.alpha_minus != 0:
        return None
    snapped = {}
    for j, i, _ in pat.snapped:
        snapped.setdefault(j, []).append(i)
    js = []
    signs = pat.signs.copy()
    kinks = [list(k) for k in pat.kinks]
    status = list(pat.status)
    Z = preactivations(problem.X, point.W)          # exact
    for j, idx in snapped.items():
        if status[j] not in ("alive", "tiny") or set(pat.kinks[j]) != set(idx):
            continue
        others_neg = all(pat.signs[i, j] < 0 for i in range(problem.n) if i not in idx)
        z_neg = all(Z[i, j] < 0 for i in idx)
        if others_neg and z_neg:
            js.append(j)
            for i in idx:
                signs[i, j] = -1
            kinks[j] = []
            status[j] = "dead"
    if not js:
        return None
    return Pattern(status, kinks, [x for x in pat.snapped if x[0] not in js], signs, pat.sizes, pat.kink_tol), js


@dataclass
class SnapGap:
    """How well separated the snapped pairs are from the kept ones (relative |w.x|/(|w||x|))."""
    largest_snapped: float
    smallest_kept: float

    @property
    def ratio(self) -> float:
        return self.smallest_kept / self.largest_snapped if self.largest_snapped > 0 else float("inf")

    def to_json(self) -> dict:
        return {"largest_snapped": self.largest_snapped, "smallest_kept": self.smallest_kept,
                "ratio": self.ratio}


def snap_gap(problem: Problem, point: Point, pat: Pattern) -> SnapGap | None:
    """The gap between the snapped pairs and the kept ones, or None when nothing was snapped."""
    if not pat.snapped:
        return None
    X, W = problem.Xf, point.Wf
    rel = np.abs(preactivations(X, W)) / np.maximum(np.outer(np.linalg.norm(X, axis=1),
                                                             np.linalg.norm(W, axis=1)), 1e-300)
    snapped = {(i, j) for j, i, _ in pat.snapped}
    kept = [rel[i, j] for i in range(rel.shape[0]) for j in range(rel.shape[1])
            if pat.signs[i, j] != 0 and (i, j) not in snapped and pat.status[j] not in ("zero", "zero_output")]
    big = max(r for _, _, r in pat.snapped)
    small = min(kept) if kept else float("inf")
    return SnapGap(big, small)


def float_gradient_norm(problem: Problem, point: Point, kink_tol: float = Tolerances.kink) -> float:
    """max |dL/dtheta| (half_mean, float) relative to max|y| max|x|.  Pairs within ``kink_tol`` of a
    kink are left out of the W-gradient and its component along their x_i is projected out: on a
    kink the multiplier of x_i is free, so only the rest must vanish near a stationary point.
    With an output bias c the residuals include it and its gradient, the mean residual (docs/biases.md
    §3.2), counts too."""
    X, Y, W, A = problem.Xf, problem.Yf, point.Wf, point.Af
    ap, am = fmpq_to_float(problem.activation.alpha_plus), fmpq_to_float(problem.activation.alpha_minus)
    fw = forward(X, Y, W, A, ap, am, point.cf)
    G = output_grad(fw.H, fw.E)
    scale = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(W, axis=1))
    near = np.abs(fw.Z) <= kink_tol * scale
    GW = weight_grad(linear_part(fw.S * ~near, fw.E, X), A)
    counts = near.sum(axis=0)
    for j in np.nonzero(counts)[0]:   # the kink rows carry a free multiplier: project them out
        Nj = X[near[:, j]]
        if counts[j] == 1 and np.any(Nj[0] != 0):     # one row: its least-squares multiplier in closed form
            GW[j] = GW[j] - Nj[0] * (float(Nj[0] @ GW[j]) / float(Nj[0] @ Nj[0]))
        else:
            coef, *_ = np.linalg.lstsq(Nj.T, GW[j], rcond=None)
            GW[j] = GW[j] - Nj.T @ coef
    g = max(float(np.abs(G).max()), float(np.abs(GW).max()))
    if point.c is not None:
        g = max(g, float(np.abs(mean_residual(fw.E)).max()))
    return g / max(float(np.abs(Y).max()) * float(np.linalg.norm(X, axis=1).max()), 1e-300)
