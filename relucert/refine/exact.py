"""Helpers shared by the refinements: exact least-norm solves, projection onto kinks, rational
square roots, the targets left to the neurons being refined, and the pattern updates of the
refinement rounds (``PatternUpdate``, ``crossings``, ``kink_allowed``, ``kink_releases``)."""
from __future__ import annotations

import contextvars
import math
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from flint import fmpq, fmpq_mat

from relucert.core.formulas import forward
from relucert.core.linalg import independent_subset, mat, project_out
from relucert.core.problem import Problem, fmpq_to_float
from relucert.refine.classify import Pattern


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
# which exact solution is handed to it.  Scalar output, "nearest": when the exact nearest solution
# would carry long numbers (``NEAREST_EXACT_MAX_BITS``), the solve takes the exact solution nearest
# to working precision instead (``rounded_nearest``; its move differs from the exact nearest one's
# by ~1e-15 relative), whose rationals are short: every later exact step is cheaper.  ``refine(..., least_squares=...)`` overrides it per call.
LEAST_SQUARES_CHOICES = ("nearest", "legacy")
LEAST_SQUARES = "nearest"


def least_squares_choice(choice: str | None) -> str:
    """The choice in force: ``choice`` if given, else the module default ``LEAST_SQUARES``."""
    c = LEAST_SQUARES if choice is None else choice
    if c not in LEAST_SQUARES_CHOICES:
        raise ValueError(f"least_squares must be one of {LEAST_SQUARES_CHOICES}, got {c!r}")
    return c


# nearest_solve is a function of its exact inputs only, and the readings of one checkpoint (as given,
# tiny output zero, tiny zero, snapped as dead) often hand it the very same system: the few latest
# systems and their solutions are kept (compared exactly, entry by entry)
_SOLVED: "OrderedDict[str, list | None]" = OrderedDict()
_SOLVED_KEEP = 8
_SOLVED_MAX_ENTRIES = 10 ** 6   # larger systems are not kept (the cache would hold them alive)


def nearest_solve(K_rows: list, rhs: list, P_blocks: list | None = None) -> list | None:
    """The x with K x = rhs minimising x^T P^{-1} x, exactly; None if the system is inconsistent
    (``_nearest_solve``; a system solved shortly before is answered from ``_SOLVED``)."""
    if not K_rows or len(K_rows) * len(K_rows[0]) > _SOLVED_MAX_ENTRIES:
        return _nearest_solve(K_rows, rhs, P_blocks)
    key = system_key(K_rows, rhs, P_blocks)
    if key in _SOLVED:
        _SOLVED.move_to_end(key)
        x = _SOLVED[key]
        return None if x is None else list(x)
    x = _nearest_solve(K_rows, rhs, P_blocks)
    remember(key, x)
    return x


def system_key(K_rows: list, rhs: list, P_blocks: list | None) -> str:
    """A system's exact content as text, the key of ``_SOLVED`` (canonical p/q; hashing fmpq
    entries is far slower)."""
    return "\n".join([";".join(",".join(map(str, r)) for r in K_rows), ",".join(map(str, rhs)),
                       "-" if P_blocks is None else "|".join(";".join(",".join(map(str, r)) for r in blk)
                                                           for blk in P_blocks)])


def remember(key: str, x: list | None) -> None:
    """Keep the answer x (None: inconsistent / failed) under ``key`` among the latest ``_SOLVED_KEEP``."""
    _SOLVED[key] = None if x is None else list(x)
    _SOLVED.move_to_end(key)
    while len(_SOLVED) > _SOLVED_KEEP:
        _SOLVED.popitem(last=False)


def _nearest_solve(K_rows: list, rhs: list, P_blocks: list | None = None) -> list | None:
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


# The exact nearest solution x = P K_b^T (K_b P K_b^T)^{-1} rhs carries the bits of a determinant of
# K_b P K_b^T: about rank x (bits of P + 2 bits of K) (thousands of bits for a float32 checkpoint with
# a few dozen constraints), and every later exact step (certification, certificate strings, the
# independent checker) pays for them.  Above this estimate the solves take the nearest solution to
# working precision instead (``rounded_nearest``: float proposal, rounded, then made exact on a
# square subsystem), whose numbers are those of the data and the float rounding.
NEAREST_EXACT_MAX_BITS = 1024
# rounded_nearest's exact correction of the rounded float proposal must stay below this fraction of
# the proposed change (or of 2^-30 |x|): else the subsystem is ill-conditioned and the exact nearest
# solution is taken instead
ROUNDING_CORRECTION = 1e-6


def bit_size(v: fmpq) -> int:
    """max(bits of the numerator, bits of the denominator) of an exact rational."""
    v = v if isinstance(v, fmpq) else fmpq(v)
    return max(v.p.bit_length(), v.q.bit_length())       # fmpz.bit_length: that of |p| as a Python int


def nearest_exact_bits(K_rows: list, rhs: list, P_blocks: list | None, k_bits: int | None = None) -> int:
    """The size estimate of the exact nearest solution compared with ``NEAREST_EXACT_MAX_BITS``:
    (number of rows) x (max bits of P + 2 max bits of K) + max bits of rhs (the rows bound the rank).
    ``k_bits``: the max bits of K's entries when the caller knows a bound (else they are read)."""
    kb = k_bits if k_bits is not None else max((bit_size(v) for r in K_rows for v in r if v != 0), default=1)
    pb = max((bit_size(v) for blk in P_blocks for r in blk for v in r if v != 0), default=1) if P_blocks else 1
    rb = max((bit_size(v) for v in rhs if v != 0), default=1)
    return len(K_rows) * (pb + 2 * kb) + rb


def rows_mat(rows: list, ncols: int) -> fmpq_mat:
    """The fmpq_mat of row lists whose entries are already fmpq or int (``core.linalg.mat`` without
    its per-entry conversion).  A mostly-zero matrix (the kink and design rows of the refinement
    systems) is filled entry by entry from a zero matrix, which converts only the non-zero entries."""
    nz = [(i, j, v) for i, r in enumerate(rows) for j, v in enumerate(r) if v]
    if 3 * len(nz) > len(rows) * ncols or any(len(r) != ncols for r in rows):
        return fmpq_mat(len(rows), ncols, [v for r in rows for v in r])
    M = fmpq_mat(len(rows), ncols)
    for i, j, v in nz:
        M[i, j] = v
    return M


def _to_float_rows(rows: list) -> np.ndarray:
    return np.array([[fmpq_to_float(v) for v in r] for r in rows], dtype=float).reshape(len(rows), -1)


class Inconsistent(ArithmeticError):
    """``rounded_nearest`` proved that K x = K base + rhs has no exact solution."""


def rounded_nearest(K_rows: list, rhs: list, P_blocks: list, base: list,
                    K_float: np.ndarray | None = None, prove: bool = True) -> list | None:
    """An exact x with K x = K base + rhs, the nearest solution to ``base`` in the metric P (as in
    ``nearest_solve``: x - base minimises (x - base)^T P^{-1} (x - base)) to working precision, with
    short rationals; None when that fails (the caller takes the exact nearest solution).

    Floats propose: the nearest change dx_f (minimum-norm least squares of (K L) u = rhs with
    P = L L^T block by block, dx_f = L u), x_f = base + dx_f, and a square subsystem (independent
    rows R and columns S of K, QR with column pivoting).  Exact arithmetic decides: every coordinate
    outside S is the float x_f exactly (a dyadic), the coordinates in S solve K_RS x_S = (K base +
    rhs)_R - K_R,notS x_notS exactly, and every row of K is then checked exactly (dependent rows too),
    so an inconsistent or singular proposal returns None, never a wrong x (and when the exact rank of
    K is that of the subsystem, an x that fails a row proves the system inconsistent: ``Inconsistent``
    is raised).  The exact correction
    x_S - x_f,S must be below ``ROUNDING_CORRECTION`` of the proposed change.  A neuron block whose
    columns of K are all zero does not move (its nearest change is exactly 0), and when rhs = 0,
    base itself is returned.  ``prove=False``: a failed proposal returns None without the exact rank
    test that would prove the system inconsistent (for a caller that treats both alike)."""
    nvar = len(base)
    if not K_rows or nvar == 0:
        return None
    if all(v == 0 for v in rhs):
        return list(base)                        # base solves the system: its nearest change is 0
    Kf = _to_float_rows(K_rows) if K_float is None else np.asarray(K_float, dtype=float)
    rf = np.array([fmpq_to_float(v) for v in rhs])
    bf = np.array([fmpq_to_float(v) for v in base])
    if Kf.shape != (len(K_rows), nvar) or not (np.all(np.isfinite(Kf)) and np.all(np.isfinite(rf))
                                               and np.all(np.isfinite(bf))):
        return None
    L = np.zeros((nvar, nvar))
    still = np.zeros(nvar, dtype=bool)            # coordinates that keep their base value exactly
    sizes = [len(blk) for blk in P_blocks]
    if sum(sizes) != nvar:
        raise ValueError(f"metric blocks cover {sum(sizes)} unknowns, the system has {nvar}")
    starts = np.cumsum([0] + sizes[:-1])
    col_any = np.any(Kf != 0, axis=0).tolist()      # columns of K with a non-zero entry
    for s in set(sizes):                          # P = L L^T block by block, blocks of one size at once
        idx = [b for b, sz in enumerate(sizes) if sz == s]
        Pf = np.array([[[fmpq_to_float(v) for v in r] for r in P_blocks[b]] for b in idx], dtype=float)
        try:
            Ls = np.linalg.cholesky(Pf)
        except np.linalg.LinAlgError:
            return None
        for q, b in enumerate(idx):
            pos = int(starts[b])
            L[pos:pos + s, pos:pos + s] = Ls[q]
            if not any(col_any[pos:pos + s]):
                still[pos:pos + s] = True
    from scipy.linalg import qr
    u, *_ = np.linalg.lstsq(Kf @ L, rf, rcond=None)
    dxf = L @ u
    xf = bf + dxf
    if not np.all(np.isfinite(xf)):
        return None
    # an inconsistent system (e.g. after pins, ``refine.scalar``) shows in floats: no exact work then
    resid = float(np.abs(Kf @ dxf - rf).max())
    if resid > 1e-6 * max(float(np.abs(rf).max()), float((np.abs(Kf) @ np.abs(dxf)).max()), 1e-300):
        return None
    # independent rows (QR with pivoting of K^T), then independent columns among them
    _, Rr, prow = qr(Kf.T, mode="economic", pivoting=True)
    diag = np.abs(np.diag(Rr))
    rank = int(np.sum(diag > diag[0] * 1e-10)) if diag.size and diag[0] > 0 else 0
    if rank == 0:
        return None
    R = sorted(int(i) for i in prow[:rank])
    _, _, pcol = qr(Kf[R], mode="economic", pivoting=True)
    S = sorted(int(c) for c in pcol[:rank])
    inS = np.zeros(nvar, dtype=bool)
    inS[S] = True
    if np.any(inS & still):
        return None
    x = [fmpq(0)] * nvar
    for c in range(nvar):
        if not inS[c]:
            x[c] = base[c] if still[c] else fmpq(*float(xf[c]).as_integer_ratio())
    Km = rows_mat(K_rows, nvar)
    # K base and K x in one product (columns 0 and 1); x is 0 on S here: the part of the fixed coordinates
    KbKx = Km * fmpq_mat(nvar, 2, [u for pair in zip(base, x) for u in pair])
    target = [KbKx[i, 0] + rhs[i] for i in range(len(K_rows))]
    rhs_S = [target[i] - KbKx[i, 1] for i in R]
    try:
        xs = fmpq_mat(rank, rank, [K_rows[i][c] for i in R for c in S]).solve(fmpq_mat(rank, 1, rhs_S))
    except ZeroDivisionError:                    # singular in exact arithmetic
        return None
    for q, c in enumerate(S):
        x[c] = xs[q, 0]
    back = Km * fmpq_mat(nvar, 1, x)
    if any(back[i, 0] != target[i] for i in range(len(K_rows))):
        if prove and len(independent_subset(K_rows)) == rank:
            # the rows R are independent (K_RS is invertible) and span every row: a consistent system
            # would be solved by x, so the system is inconsistent, exactly
            raise Inconsistent("the system has no exact solution")
        return None
    corr = max(abs(fmpq_to_float(x[c]) - xf[c]) for c in S)
    scale = max(float(np.abs(dxf).max()), 2.0 ** -30 * float(np.abs(xf).max()))
    if not corr <= ROUNDING_CORRECTION * scale:
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
    drop = set(js)
    # the neurons that contribute: not in js, a_j != 0 and w_j != 0 (the others add exactly 0)
    Wr, Ar = W.tolist(), A.tolist()
    keep = [j for j in range(W.shape[0]) if j not in drop and any(v != 0 for v in Ar[j]) and any(v != 0 for v in Wr[j])]
    if not keep:
        return problem.Y.copy()
    act = problem.activation
    return problem.Y - forward(problem.X, problem.Y, W[keep], A[keep], act.alpha_plus, act.alpha_minus).F


def exact_vector(vals) -> np.ndarray:
    """A 1-D object array of fmpq (an output bias c) from a list of exact numbers."""
    out = np.empty(len(vals), dtype=object)
    out[:] = [v if isinstance(v, fmpq) else fmpq(v) for v in vals]
    return out


def centring_bias(problem: Problem, W: np.ndarray, A: np.ndarray) -> np.ndarray:
    """The output bias c* that makes the residuals of (W, A, c*) sum to zero, (S0) of
    docs/biases.md §3.3, exactly: c* = (1/n) sum_i (y_i - sum_j a_j sigma(w_j . x_i)) over ALL data
    points (zero inputs included).  For fixed (W, A) the loss is (1/2n) sum |e_i - e_bar|^2 +
    |c - c*|^2 / 2 (§4.6), so c* is the least-squares output bias."""
    R = targets_without(problem, W, A, [])
    n = problem.n
    return exact_vector([sum(R[:, q].tolist(), fmpq(0)) / n for q in range(problem.k)])


# ------------------------------------------------------------------------------------------------
# pattern updates (THEORY §6.2, §6.3): when the nearest stationary point of the checkpoint's pattern
# lies outside that pattern, the refinement walks from the checkpoint towards it and stops where the
# first strict pair reaches its kink; that pair becomes a kink (or, when the neuron has no room for
# one more kink, flips sign) and the solve is repeated on the updated pattern.  At a stationary point
# of a pattern, a kink whose (float) multiplier shows a descent to one side is released to that side.
# Every change is one round; at most PATTERN_ROUNDS rounds.  The pattern only proposes the point: the
# driver checks the refined point against the pattern returned and certifies it exactly.
# ------------------------------------------------------------------------------------------------

PATTERN_ROUNDS = 16
# a kink multiplier counts as wrong-signed beyond this fraction of sum_l |c_l| |x_l| / |x_i| (float)
RELEASE_TOL = 1e-8


@dataclass
class PatternUpdate:
    """The activation pattern a refined point was solved on (the checkpoint's, or the one the
    rounds updated it to), and the rounds: one dict per round with "round" (1-based), "what"
    ("kink", "flip" or "release"), "pairs" ([neuron, data, new sign] with 0 = kink), "at" (the
    fraction of the step at which the pairs reached their kinks, for "kink"/"flip"), and "note"."""
    pattern: Pattern
    rounds: list = field(default_factory=list)

    def changed_pairs(self, original: Pattern) -> list:
        """[neuron, data, sign in ``original``, sign here] for every pair whose sign differs."""
        a, b = original.signs, self.pattern.signs
        return [[int(j), int(i), int(a[i, j]), int(b[i, j])] for i, j in zip(*np.nonzero(a != b))]

    def describe(self, original: Pattern) -> str:
        """One clause per round, and the net change, for the refinement's note ("" when none)."""
        if not self.rounds:
            return ""
        parts = [f"round {r['round']}: {r['note']}" for r in self.rounds]
        net = self.changed_pairs(original)
        rounds = f"{len(self.rounds)} round{'s' if len(self.rounds) > 1 else ''}"
        differ = f"{len(net)} pair{'s differ' if len(net) != 1 else ' differs'}"
        return (f"pattern updated in {rounds}, pairs (neuron, data) (" + "; ".join(parts) + f"); {differ} from "
                "the checkpoint's pattern: " + _pairs_text([[j, i, new] for j, i, _, new in net]))


def _sign_text(s: int) -> str:
    return "kink" if s == 0 else ("+" if s > 0 else "-")


def _pairs_text(pairs: list) -> str:
    """[[neuron, data, sign], ...] as "[(neuron, data) -> kink, ...]"."""
    return "[" + ", ".join(f"({j}, {i}) -> {_sign_text(s)}" for j, i, s in pairs) + "]"


def settle_rounds(rounds: list, r: int, pending: list, stop: str) -> tuple[list, str]:
    """The rounds that led to the returned point (the first ``r``) and a note on the rest: the later
    rounds tried and why they stopped (``stop``), and a kink of the returned point whose multiplier
    still shows a descent (``pending``)."""
    kept, rest = rounds[:r], rounds[r:]
    parts = []
    if rest:
        parts.append("then " + "; ".join(f"round {x['round']}: {x['note']}" for x in rest)
                     + (f"; {stop}" if stop else "")
                     + f"; the refined point is the stationary point after round {r}, the last one found")
    elif stop:
        parts.append(stop)
    if pending:
        parts.append(f"at the refined point the kink {_pairs_text(pending)} still has a float multiplier "
                     "showing a descent, so it is not expected to certify as stationary")
    return kept, "; ".join(parts)


def updated_pattern(pat: Pattern, signs: np.ndarray) -> Pattern:
    """``pat`` with new signs (n x m, 0 = kink): the kink lists follow the signs, snapped entries are
    kept while their pair is still a kink, statuses and sizes are unchanged."""
    signs = np.array(signs, dtype=int)
    kinks = [[i for i in range(signs.shape[0]) if signs[i, j] == 0] for j in range(signs.shape[1])]
    snapped = [x for x in pat.snapped if signs[x[1], x[0]] == 0]
    return Pattern(list(pat.status), kinks, snapped, signs, list(pat.sizes), pat.kink_tol)


def kink_allowed(X: list, signs: np.ndarray, j: int, i: int) -> bool:
    """Whether data point i can join neuron j's kinks: their points must keep rank < d (exact), else
    the kinks would force w_j = 0."""
    d = len(X[0])
    rows = [X[q] for q in range(len(X)) if signs[q, j] == 0 or q == i]
    return mat(rows).rank() < d if rows else True


def crossings(Z_from, Z_to, signs: np.ndarray, neurons: list) -> list:
    """Strict pairs whose sign is lost along the straight step from Z_from to Z_to (n x m arrays of
    pre-activations, exact or float, linear along the step): [(t, j, i)] sorted by the fraction t of
    the step at which z_ij reaches 0 (0 when it is not strictly on its side at the start)."""
    out = []
    for j in neurons:
        for i in range(signs.shape[0]):
            s = int(signs[i, j])
            if s == 0:
                continue
            a, b = Z_from[i, j], Z_to[i, j]
            if s * b > 0:
                continue
            t = a / (a - b) if s * a > 0 else a * 0
            out.append((t, j, i))
    out.sort(key=lambda x: (x[0], x[1], x[2]))
    return out


def apply_crossings(X: list, signs: np.ndarray, first: list) -> list:
    """Make the pairs of ``first`` ([(j, i)]) kinks where the neuron has room (``kink_allowed``),
    else flip their sign; updates ``signs`` in place and returns [[j, i, new sign]]."""
    done = []
    for j, i in first:
        if kink_allowed(X, signs, j, i):
            signs[i, j] = 0
        else:
            signs[i, j] = -signs[i, j]
        done.append([int(j), int(i), int(signs[i, j])])
    return done


def kink_releases(problem: Problem, Wf: np.ndarray, Af: np.ndarray, signs: np.ndarray, neurons: list,
                  cf: np.ndarray | None = None) -> list:
    """Kinks of ``neurons`` whose multiplier shows a descent to one side, at a point stationary on
    the pattern ``signs`` (floats; a proposal only): [[j, i, side]].

    With c_i = a_j . e_i / n, b_j = sum_{strict} c_i sigma'(z_ij) x_i + alpha_- sum_{kinks} c_i x_i =
    sum_{kinks} mu_i x_i and gamma_i = (alpha_+ - alpha_-) c_i, (S2) needs mu_i <= 0 <= mu_i + gamma_i
    (THEORY §3.5, the separable case): mu_i > 0 is a descent to the negative side, mu_i + gamma_i < 0
    to the positive one (when both, the steeper one).  Neurons whose kink points are dependent, or
    whose b_j is not in their span (not stationary on the pattern), are left alone.  Sorted by the
    descent rate (relative), steepest first; the rounds release one kink at a time.  ``cf``: the
    output bias (floats, k), None for a network without one; it enters the residuals only."""
    X = problem.Xf
    n = problem.n
    ap, am = fmpq_to_float(problem.activation.alpha_plus), fmpq_to_float(problem.activation.alpha_minus)
    # outputs on the pattern's branches (a kink pair contributes sigma(0) = 0)
    slopes = np.where(signs > 0, ap, np.where(signs < 0, am, 0.0))
    E = (slopes * (X @ Wf.T)) @ Af - problem.Yf
    if cf is not None:
        E = E + np.asarray(cf, dtype=float)[None, :]
    out = []
    xnorms = np.linalg.norm(X, axis=1)
    row_norms: dict = {}            # |x_i| as each row's own norm, once per kink point
    nonzero = np.any(X != 0, axis=1)
    live = np.any(Af != 0, axis=1)
    neurons = [j for j in neurons if live[j]]
    if not neurons:
        return []
    # every neuron at once: c_j = E a_j / n (n x |neurons|), b_j = sum_i c_ij sigma'(z_ij) x_i
    Cm = E @ Af[neurons].T / n
    Bm = (np.where(signs[:, neurons] > 0, ap, am) * Cm).T @ X
    scales = np.abs(Cm).T @ xnorms
    KZ = (signs[:, neurons] == 0) & nonzero[:, None]
    counts = KZ.sum(axis=0)

    def row_norm(i: int) -> float:
        if i not in row_norms:
            row_norms[i] = float(np.linalg.norm(X[i]))
        return max(row_norms[i], 1e-300)

    def offer(col: int, q: int, j: int, i: int, mu_q: float, scale: float) -> None:
        xn = row_norm(i)
        tol = RELEASE_TOL * scale / xn
        gam = (ap - am) * Cm[i, col]
        down, up = mu_q, -(mu_q + gam)          # descent rates to the negative / positive side
        if max(down, up) > tol:
            side = -1 if down >= up else 1
            out.append((max(down, up) * xn / max(scale, 1e-300), col, q, [int(j), int(i), side]))

    # one nonzero kink point of ordinary size has rank 1 (its one singular value is above
    # matrix_rank's cut): its least-squares multiplier in closed form, for all such neurons at once
    one = np.nonzero(counts == 1)[0]
    if one.size:
        i1 = np.argmax(KZ[:, one], axis=0)
        x1 = X[i1]
        ordinary = np.abs(x1).max(axis=1) > 1e-150
        one, i1, x1 = one[ordinary], i1[ordinary], x1[ordinary]
        b1 = Bm[one]
        mu1 = np.einsum("td,td->t", x1, b1) / np.einsum("td,td->t", x1, x1)
        fits = np.linalg.norm(x1 * mu1[:, None] - b1, axis=1) <= 1e-6 * np.maximum(scales[one], 1e-300)
        xn1 = np.maximum(np.linalg.norm(x1, axis=1), 1e-300)
        tol1 = RELEASE_TOL * scales[one] / xn1
        gam1 = (ap - am) * Cm[i1, one]
        candidates = fits & (np.maximum(mu1, -(mu1 + gam1)) > tol1 * (1 - 1e-9))
        for t in np.nonzero(candidates)[0]:   # decided one by one, as for the other neurons
            offer(int(one[t]), 0, neurons[int(one[t])], int(i1[t]), float(mu1[t]), float(scales[one[t]]))
        done = set(int(c) for c in one)
    else:
        done = set()
    for col, j in enumerate(neurons):
        if col in done or not counts[col]:
            continue
        K = [int(i) for i in np.nonzero(KZ[:, col])[0]]
        XK = X[K]
        if (len(K) > 1 or not np.abs(XK).max() > 1e-150) and np.linalg.matrix_rank(XK) < len(K):
            continue
        b, scale = Bm[col], float(scales[col])
        mu, *_ = np.linalg.lstsq(XK.T, b, rcond=None)
        if np.linalg.norm(XK.T @ mu - b) > 1e-6 * max(scale, 1e-300):
            continue
        for q, i in enumerate(K):
            offer(col, q, j, i, float(mu[q]), scale)
    out.sort(key=lambda x: (-x[0], x[1], x[2]))
    return [x[3] for x in out]


# ------------------------------------------------------------------------------------------------
# one time budget for a whole refinement (driver.refine): every stage of every reading shares it
# ------------------------------------------------------------------------------------------------

_DEADLINE: contextvars.ContextVar = contextvars.ContextVar("relucert_refine_deadline",
                                                           default=(math.inf, 0.0, ""))


@contextmanager
def time_budget(seconds: float, name: str = "refine.driver.REFINE_BUDGET"):
    """Within the block, ``deadline()`` is at most ``seconds`` from now (nested budgets: the earlier
    deadline wins); ``name`` is the setting a report names when the budget runs out."""
    end = time.monotonic() + seconds
    cur = _DEADLINE.get()
    token = _DEADLINE.set((end, seconds, name) if end < cur[0] else cur)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def deadline() -> float:
    """time.monotonic() by which the current refinement must stop (inf outside a budget)."""
    return _DEADLINE.get()[0]


def budget_seconds() -> float:
    """The length of the budget in force (0 outside one)."""
    return _DEADLINE.get()[1]


def budget_text() -> str:
    """'the refinement time budget of S s (SETTING)' for the budget in force."""
    _, secs, name = _DEADLINE.get()
    return f"the refinement time budget of {secs:g} s ({name})"


def out_of_time() -> bool:
    return time.monotonic() > _DEADLINE.get()[0]
