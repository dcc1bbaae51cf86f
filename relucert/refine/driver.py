"""From a float candidate to a certified point (THEORY §6).

1. classify every pre-activation (positive / negative / kink) with a scale-free tolerance on
   |w_j.x_i| / (|w_j| |x_i|), and every neuron (alive / tiny / dead / zero / zero-output) against
   the problem's own scale |a_j| |w_j| max|x| versus max|y|; nothing is rounded silently
   (``refine.classify``);
2. scalar output: on the fixed pattern the output is linear in v_j = |a_j| w_j, so the nearest
   point with zero pattern-gradient and exact kinks is an exact rational linear problem (fit the
   projection of Y onto the pattern's column space, then the least-norm change of v); split back
   keeping each neuron's |a|/|w| ratio (``refine.scalar``);
3. vector output: exact grouped least squares when every activation-pattern group is wide enough
   (``refine.scalar``), else least-norm Newton on the pattern-restricted gradient in mpmath
   (60 digits), then exact certification of a rational rounding, else ``inconclusive`` with the
   residual (``refine.vector``); near-parallel neurons may be read as exact replicas
   (``refine.replicas``);
4. tiny neurons are read three ways (as given / output weight 0 / exactly zero) and the verdicts
   under each reading are reported when they differ.

This module runs the readings, certifies each refined point, and reports.
"""
from __future__ import annotations

import contextvars
import math
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
from flint import fmpq

from relucert.core.formulas import ExactState, forward, half_mean_loss
from relucert.core.problem import Point, Problem, fmpq_to_float
from relucert.decide.ball import ball_certificate, light_outputs
from relucert.decide.certify import NeuronMemo, Result, certify, escape_path_losses
from relucert.decide.escape import escape_test
import relucert.refine.exact as _exact
from relucert.refine.interpolate import interpolating_point
from relucert.refine.classify import (Pattern, SnapGap, Tolerances, classify, exact_signs, pattern_flips,
                                      snap_gap, snapped_dead_pattern)
from relucert.refine.replicas import refine_replicas
from relucert.refine.scalar import refine_grouped, refine_scalar
from relucert.refine.vector import refine_vector

READINGS = ("as_given", "tiny_output_zero", "tiny_zero")
DECISIVE = ("local_min", "saddle", "global_min")


def _ball_escape(ball: dict | None) -> list:
    return [e["neuron"] for e in ball["evidence"].get("escape", [])] if ball else []


@dataclass
class Refinement:
    reading: str
    result: Result | None
    point: Point | None
    distance: dict                # Move.to_json() ({} when nothing was refined)
    note: str
    left_pattern: list = field(default_factory=list)
    ball: dict | None = None      # a ball certificate (check.BALL_FORMAT): saddle or local_min at a nearby exact point
    read_as_dead: list = field(default_factory=list)   # neurons read as strictly dead (snapped_as_dead)
    downhill: dict | None = None  # Downhill.to_json(): accepted beyond max_move as the dynamics' end (see there)

    @property
    def verdict(self) -> str:
        if self.result is not None:
            return self.result.verdict
        return self.ball["verdict"] if self.ball is not None else "inconclusive"

    def to_json(self) -> dict:
        r = self.result
        return {"reading": self.reading, "verdict": self.verdict,
                "reason": (r.reason if r else self.note),
                "escape_neurons": r.escape_neurons if r else (_ball_escape(self.ball)),
                "distance": self.distance, "method": self.note, "left_pattern": self.left_pattern,
                "loss": r.loss_json() if r else None, "beyond_max_move": self.downhill}


@dataclass
class Move:
    """Distance moved: max-abs, relative to |theta|, and relative to the problem's own parameter
    scale sqrt(max|y| / max|x|) (the size of a balanced neuron whose output is of the targets' size;
    a refinement to the origin from a tiny point is a small move on that scale).  With an output
    bias, theta = (W, A, c): c counts in max_abs, |theta| and the move, and ``max_abs_c`` is its own
    part (None, and absent from the JSON, for a network without one)."""
    max_abs: float
    max_abs_W: float
    max_abs_A: float
    relative: float
    relative_to_scale: float
    max_abs_c: float | None = None

    def to_json(self) -> dict:
        out = {"max_abs": self.max_abs, "max_abs_W": self.max_abs_W, "max_abs_A": self.max_abs_A,
               "relative": self.relative, "relative_to_scale": self.relative_to_scale}
        if self.max_abs_c is not None:
            out["max_abs_c"] = self.max_abs_c
        return out


def distance_moved(problem: Problem, p0: Point, p1: Point) -> Move:
    """How far refinement (or the dynamics) moved theta from p0 to p1: the Move of this module, the
    one distance measure that refinement, --converge and the reports use.  Only the float views of
    the points are read (a ``_FloatView`` of p0 does as well)."""
    W0, A0, W1, A1 = p0.Wf, p0.Af, p1.Wf, p1.Af
    dW, dA = np.abs(W1 - W0), np.abs(A1 - A0)
    mx = float(max(dW.max(initial=0), dA.max(initial=0)))
    sq0 = float((W0 ** 2).sum() + (A0 ** 2).sum())
    sqd = float((dW ** 2).sum() + (dA ** 2).sum())
    mc = None
    if p0.c is not None or p1.c is not None:
        # a point without c is a point with c = 0 of the same function class only when the other has c;
        # refinement never adds or drops c, so both have it here
        c0 = p0.cf if p0.c is not None else np.zeros(problem.k)
        c1 = p1.cf if p1.c is not None else np.zeros(problem.k)
        dc = np.abs(c1 - c0)
        mc = float(dc.max(initial=0))
        mx = max(mx, mc)
        sq0 += float((c0 ** 2).sum())
        sqd += float((dc ** 2).sum())
    norm0 = math.sqrt(sq0)
    norm_d = math.sqrt(sqd)
    scale = math.sqrt(max(float(np.abs(problem.Yf).max()), 1e-300) /
                      max(float(np.linalg.norm(problem.Xf, axis=1).max()), 1e-300))
    return Move(mx, float(dW.max(initial=0)), float(dA.max(initial=0)),
                norm_d / norm0 if norm0 > 0 else norm_d, norm_d / max(norm0, scale * math.sqrt(p0.m)), mc)


class _FloatView:
    """The float views of a point that ``distance_moved`` reads (Wf, Af, c, cf, m), converted once:
    the given point is measured against every refined point of its readings."""

    def __init__(self, point: Point):
        self.Wf, self.Af, self.c, self.cf, self.m = point.Wf, point.Af, point.c, point.cf, point.m


# The end point of --converge: the user asked where the training dynamics lead, and a refinement of
# that point that goes on downhill is evidence of where they lead (THEORY §6).  There, and only there,
# a refined point beyond max_move is accepted when (i) its move is at most DOWNHILL_FACTOR * max_move,
# (ii) its float64 loss is not above the end point's, and (iii) the float64 loss does not rise along
# the straight segment between them (DOWNHILL_SAMPLES equal steps; a rise of up to DOWNHILL_ULPS ulps
# of the loss is rounding).  The refined point is then certified exactly as any other.
DOWNHILL_FACTOR = 5.0
DOWNHILL_SAMPLES = 64
DOWNHILL_ULPS = 8

_DOWNHILL: contextvars.ContextVar = contextvars.ContextVar("relucert_refine_downhill", default=False)


@dataclass
class Downhill:
    """The evidence for (or against) accepting a refined point beyond max_move as the continuation of
    the dynamics' descent from the point refined."""
    move: float                # Move.relative_to_scale
    max_move: float
    cap: float                 # DOWNHILL_FACTOR * max_move
    loss_start: float | None   # float64 loss (the problem's convention) at the point refined ...
    loss_end: float | None     # ... and at the refined point (None: the segment was not evaluated)
    largest_rise: float | None  # largest increase between consecutive samples of the segment
    rise_at: float | None      # the segment parameter t where that increase ends
    tolerance: float | None    # DOWNHILL_ULPS ulps of the largest loss on the segment
    samples: int = DOWNHILL_SAMPLES

    @property
    def accepted(self) -> bool:
        return bool(self.move <= self.cap and self.loss_end is not None
                    and self.loss_end <= self.loss_start + self.tolerance and self.largest_rise <= self.tolerance)

    def to_json(self) -> dict:
        return {"accepted": self.accepted, "move_relative_to_scale": self.move, "max_move": self.max_move,
                "cap": self.cap, "loss_start": self.loss_start, "loss_end": self.loss_end,
                "largest_rise": self.largest_rise, "rise_at": self.rise_at, "tolerance": self.tolerance,
                "samples": self.samples}

    def text(self) -> str:
        if self.accepted:
            return (f"accepted beyond max move {self.max_move:g} as the continuation of the training dynamics "
                    f"(allowed only for the end point of --converge): the move {self.move:.2e} is within "
                    f"{self.cap:g} = {DOWNHILL_FACTOR:g} x max move, the refined point's float64 loss "
                    f"{self.loss_end:.17g} is not above the end point's {self.loss_start:.17g}, and the loss "
                    f"does not rise along the straight segment between them ({self.samples} equal steps, "
                    f"largest rise {max(self.largest_rise, 0.0):.1e} <= {self.tolerance:.1e} = "
                    f"{DOWNHILL_ULPS} ulps): the refinement went on downhill")
        if self.move > self.cap:
            why = f"the move is beyond even {self.cap:g} = {DOWNHILL_FACTOR:g} x max move"
        elif self.loss_end > self.loss_start + self.tolerance:
            why = (f"the refined point's float64 loss {self.loss_end:.17g} is above the end point's "
                   f"{self.loss_start:.17g}")
        else:
            why = (f"the float64 loss rises by {self.largest_rise:.2e} (> {DOWNHILL_ULPS} ulps, "
                   f"{self.tolerance:.1e}) along the straight segment from the end point, at t = "
                   f"{self.rise_at:.3g}")
        return f"not accepted as the continuation of the training dynamics: {why}"


def segment_losses(problem: Problem, p0, p1, samples: int = DOWNHILL_SAMPLES) -> np.ndarray:
    """float64 losses (the problem's convention) at theta_0 + t (theta_1 - theta_0), t = 0, 1/samples,
    ..., 1, all evaluated in one batch (the ends are p0's and p1's float views exactly)."""
    t = np.linspace(0.0, 1.0, samples + 1)
    mix = lambda a, b, extra: (1.0 - t).reshape((-1,) + (1,) * extra) * a + t.reshape((-1,) + (1,) * extra) * b
    W, A = mix(p0.Wf, p1.Wf, 2), mix(p0.Af, p1.Af, 2)
    c = None
    if p0.c is not None or p1.c is not None:
        c0 = p0.cf if p0.c is not None else np.zeros(problem.k)
        c1 = p1.cf if p1.c is not None else np.zeros(problem.k)
        c = mix(c0, c1, 1)
    act = problem.activation
    with np.errstate(over="ignore", invalid="ignore"):
        fw = forward(problem.Xf, problem.Yf, W, A, fmpq_to_float(act.alpha_plus), fmpq_to_float(act.alpha_minus), c)
        return np.asarray(half_mean_loss(fw.E), dtype=float) * fmpq_to_float(problem.loss_factor())


def downhill_evidence(problem: Problem, given, new: Point, move: "Move", tol: Tolerances) -> Downhill | None:
    """None unless refining the end point of --converge (``refine(..., downhill=True)``) and ``new`` is
    beyond max_move; else ``segment_evidence`` (``accepted`` says whether it suffices)."""
    if not _DOWNHILL.get() or not move.relative_to_scale > tol.max_move:
        return None
    return segment_evidence(problem, given, new, move, tol)


def segment_evidence(problem: Problem, given, new: Point, move: "Move", tol: Tolerances) -> Downhill:
    """The Downhill evidence for ``new`` as the continuation of the descent from ``given`` (its float
    views; ``move`` = distance_moved(problem, given, new)): the segment is evaluated only when the move
    is within DOWNHILL_FACTOR * tol.max_move."""
    cap = DOWNHILL_FACTOR * tol.max_move
    if move.relative_to_scale > cap:
        return Downhill(move.relative_to_scale, tol.max_move, cap, None, None, None, None, None)
    L = segment_losses(problem, given, new)
    if not np.isfinite(L).all():
        return Downhill(move.relative_to_scale, tol.max_move, cap, float(L[0]), math.inf, math.inf, 1.0, 0.0)
    rises = np.diff(L)
    i = int(np.argmax(rises))
    tolerance = float(DOWNHILL_ULPS * np.finfo(float).eps * float(np.abs(L).max()))
    return Downhill(move.relative_to_scale, tol.max_move, cap, float(L[0]), float(L[-1]), float(rises[i]),
                    (i + 1) / DOWNHILL_SAMPLES, tolerance)


def _beyond_max_move(problem: Problem, given, new: Point, tol: Tolerances) -> tuple["Move", Downhill | None, bool]:
    """(the move from ``given``, the Downhill evidence or None, whether ``new`` is too far)."""
    move = distance_moved(problem, given, new)
    down = downhill_evidence(problem, given, new, move, tol)
    return move, down, move.relative_to_scale > tol.max_move and not (down is not None and down.accepted)


def _apply_reading(problem: Problem, point: Point, pat: Pattern, reading: str):
    """Starting point and the set of neurons that refinement may move, for one reading."""
    W, A = point.W.copy(), point.A.copy()
    notes = []
    for j, st in enumerate(pat.status):
        if st == "tiny" and reading == "tiny_output_zero":
            A[j] = [fmpq(0)] * problem.k
            notes.append(j)
        elif st == "tiny" and reading == "tiny_zero":
            A[j] = [fmpq(0)] * problem.k
            W[j] = [fmpq(0)] * problem.d
            notes.append(j)
    return Point(W, A, None if point.c is None else point.c.copy()), notes


def _refine_one(problem: Problem, point: Point, pat: Pattern, reading: str, tol: Tolerances,
                least_squares: str | None = None, memo: NeuronMemo | None = None,
                given: _FloatView | None = None) -> Refinement:
    """Refine with pattern updates (``refine.exact.PATTERN_ROUNDS``); when that gives no certified
    point (none found, it left its pattern, or it moved too far), refine on the checkpoint's own
    pattern as well and keep that when it is certified: a nearby exact point on the checkpoint's
    pattern (e.g. a certified not_stationary on a kink) says more than no point."""
    first = _refine_one_pass(problem, point, pat, reading, tol, least_squares, rounds=True, memo=memo, given=given)
    if first.result is not None or first.ball is not None or "pattern updated" not in first.note \
            or _exact.out_of_time():
        return first
    fixed = _refine_one_pass(problem, point, pat, reading, tol, least_squares, rounds=False, memo=memo,
                             given=given)
    if fixed.result is None and fixed.ball is None:
        return first
    fixed.note = f"with pattern updates: {first.note}; on the checkpoint's own pattern instead: {fixed.note}"
    return fixed


def _refine_one_pass(problem: Problem, point: Point, pat: Pattern, reading: str, tol: Tolerances,
                     least_squares: str | None = None, rounds: bool = True,
                     memo: NeuronMemo | None = None, given: _FloatView | None = None) -> Refinement:
    given = _FloatView(point) if given is None else given
    ref = _refine_pattern_pass(problem, point, pat, reading, tol, least_squares, rounds, memo, given)
    if ref.ball is not None and ref.ball["verdict"] != "local_min" or ref.ball is None and ref.verdict in DECISIVE:
        return ref
    # the network fits the data up to rounding: an exact zero-loss point nearby is a global minimum
    # (refine.interpolate), from the refined point and else from the reading's start -- also when a
    # ball proves a local minimum there (a zero-loss point is the stronger answer)
    start, _ = _apply_reading(problem, point, pat, reading)
    for base in ([ref.point] if ref.point is not None else []) + [start]:
        new, why = interpolating_point(problem, base)
        if new is None:
            continue
        move, down, far = _beyond_max_move(problem, given, new, tol)
        if far:
            continue
        res = certify(problem, new, memo=memo)
        if res.verdict in DECISIVE and (ref.ball is None or res.verdict == "global_min"):
            return Refinement(reading, res, new, move.to_json(), f"{ref.note}; instead: {why}"
                              + (f"; {down.text()}" if down is not None else ""),
                              downhill=down.to_json() if down is not None else None)
    return ref


def _refine_pattern_pass(problem: Problem, point: Point, pat: Pattern, reading: str, tol: Tolerances,
                         least_squares: str | None, rounds: bool, memo: NeuronMemo | None,
                         given: _FloatView) -> Refinement:
    start, changed = _apply_reading(problem, point, pat, reading)
    updates: list | None = [] if rounds else None   # refine.exact.PatternUpdate: the pattern solved on
    try:
        if problem.k == 1:
            new, note = refine_scalar(problem, start, pat, reading, least_squares=least_squares,
                                      pattern_out=updates)
        else:
            new, note = refine_grouped(problem, start, pat, reading, least_squares=least_squares)
            if new is None:
                new, note2 = refine_vector(problem, start, pat, reading, pattern_out=updates)
                note = f"{note}; {note2}"
    except (ZeroDivisionError, ValueError, ArithmeticError) as e:
        new, note = None, f"refinement failed: {e}"
    ignore = changed if reading == "tiny_zero" else []
    final = updates[-1].pattern if updates else pat
    merged_updates: list | None = [] if rounds else None
    if problem.k > 1 and (new is None or pattern_flips(problem, new, final, ignore)
                          or _beyond_max_move(problem, given, new, tol)[2]):
        merged = refine_replicas(problem, start, pat, reading, tol, pattern_out=merged_updates)
        if merged is not None and merged[0] is not None:
            new, note = merged[0], f"{note}; then {merged[1]}"
            final = merged_updates[-1].pattern if merged_updates else pat
        elif merged is not None:
            note = f"{note}; then {merged[1]}"
    if new is None:
        return Refinement(reading, None, None, {}, note)
    flips = pattern_flips(problem, new, final, ignore)
    move = distance_moved(problem, given, new)
    dist = move.to_json()
    if flips:
        return Refinement(reading, None, new, dist,
                          f"{note}; the refined point leaves the pattern ({len(flips)} sign changes); stopped", flips)
    down = downhill_evidence(problem, given, new, move, tol)
    if move.relative_to_scale > tol.max_move and not (down is not None and down.accepted):
        return Refinement(reading, None, new, dist,
                          f"{note}; the refined point is too far from the given one (move "
                          f"{move.relative_to_scale:.2e} relative to max(|theta|, the problem's "
                          f"parameter scale) > {tol.max_move:g}{_far_neurons(given, new)}): the nearest "
                          "stationary point found is not near the checkpoint"
                          + (f" ({down.text()})" if down is not None else "") + "; stopped")
    downj = None
    if down is not None:            # accepted: say so in the note and keep the evidence
        note, downj = f"{note}; {down.text()}", down.to_json()
    res = certify(problem, new, memo=memo)
    if problem.k > 1 and res.verdict == "not_stationary":
        # vector output: the pattern-restricted stationary point is in general irrational (rank-
        # constrained least squares), and its rational rounding is not exactly stationary; that is
        # a failure to certify, not a verdict about a stationary point (THEORY §6)
        ns = res.certificate["evidence"]["not_stationary"]
        resid = fmpq_to_float(res.descent_derivative)
        cert, bnote = ball_certificate(problem, new)
        if cert is not None:
            if cert["verdict"] == "local_min" or "negative_curvature" in cert["evidence"]:
                new = light_outputs(new)        # the box centre (built on the light rounding): the certificate's point
            return Refinement(reading, None, new, dist,
                              f"{note}; the rational rounding is stationary only up to {resid:.1e}, but a "
                              f"ball certificate proves an exact stationary point nearby that is a "
                              f"{'local minimum' if cert['verdict'] == 'local_min' else 'saddle'}: "
                              f"{bnote}", ball=cert, downhill=downj)
        hint = _numerical_hint(problem, new, resid)
        return Refinement(reading, None, new, dist,
                          f"{note}; inconclusive: the rational rounding is not exactly stationary (residual: "
                          f"L'(theta; Delta) = {resid:.3e} along the recorded descent direction, "
                          f"{ns['reason']} on neuron {ns['direction']['neuron']}){hint}; {bnote}", downhill=downj)
    return Refinement(reading, res, new, dist, note, downhill=downj)


def _far_neurons(given, new: Point) -> str:
    """Which neurons make up most of a move (those with at least a fifth of |theta_1 - theta_0|^2),
    with their output size |w_j||a_j| before and after: a too-far refinement said precisely."""
    dW, dA = new.Wf - given.Wf, new.Af - given.Af
    part = (dW ** 2).sum(axis=1) + (dA ** 2).sum(axis=1)
    total = float(part.sum())
    if not total > 0:
        return ""
    js = [j for j in np.argsort(-part) if part[j] >= 0.2 * total][:4]
    size = lambda W, A, j: float(np.linalg.norm(W[j]) * np.linalg.norm(A[j]))
    txt = ", ".join(f"{int(j)} ({part[j] / total:.0%}; |w||a| {size(given.Wf, given.Af, j):.3g} -> "
                    f"{size(new.Wf, new.Af, j):.3g})" for j in sorted(js))
    return f"; mostly neurons {txt}" if js else ""


def _numerical_hint(problem: Problem, point: Point, resid: float) -> str:
    """Unproven indication at an almost-stationary rounding: neurons with a_j = 0 whose D_j is far
    from zero would make an exactly stationary point nearby a saddle (escape path of §4)."""
    st = ExactState(problem, point)
    big = []
    for j in range(point.m):
        if any(v != 0 for v in point.A[j]):
            continue
        esc = escape_test(st.neuron(j))
        if esc.escape and esc.D is not None:
            size = math.sqrt(sum(fmpq_to_float(v) ** 2 for v in esc.D))
            if size > 1e6 * abs(resid):
                big.append((j, size))
    if not big:
        return ""
    j, size = max(big, key=lambda x: x[1])
    return (f"; numerically (not proven): a saddle, since neuron{'s' if len(big) > 1 else ''} "
            f"{[b[0] for b in big]} with a_j = 0 {'have' if len(big) > 1 else 'has'} |D_j(r)| up to {size:.2e} "
            f">> the residual")


def choose(refs: list) -> Refinement:
    """The primary refinement: the first reading (in READINGS order) with a decisive verdict."""
    for r in refs:
        if r.verdict in DECISIVE and r.reading != "dead_read_as_zero":
            return r
    return refs[0]


def _dead_reading_label(js: list) -> str:
    return f"neurons {js} read as strictly dead instead of on their kinks"


@contextmanager
def _least_squares_default(choice: str | None):
    """Make ``choice`` the module default for the duration (the replica reading calls the grouped
    solve itself); nothing changes when ``choice`` is None or already the default."""
    if choice is None or choice == _exact.LEAST_SQUARES:
        yield
        return
    _exact.least_squares_choice(choice)
    old = _exact.LEAST_SQUARES
    _exact.LEAST_SQUARES = choice
    try:
        yield
    finally:
        _exact.LEAST_SQUARES = old


def refine(problem: Problem, point: Point, tol: Tolerances | None = None,
           readings: tuple = READINGS, least_squares: str | None = None, progress=None,
           memo: NeuronMemo | None = None, downhill: bool = False) -> dict:
    """Refine under each reading of the tiny neurons, certify each refined point exactly.

    Returns {"pattern": Pattern, "refinements": [Refinement], "tolerances": Tolerances,
    "tiny": [neuron]} (the input of ``refined_report``).

    ``least_squares`` picks the solution of the exact fixed-pattern solves among all exact
    solutions: "nearest" (the checkpoint's nearest, default) or "legacy" (the earlier diagonal
    weighting); None means ``refine.exact.LEAST_SQUARES``.  ``progress(done, total, None)`` after each
    reading (the library prints nothing).  The refined points of the readings differ in a few
    neurons: their certifications share the per-neuron analyses of the neurons they have in common
    (``decide.certify.NeuronMemo``, by exact content; ``memo``: one to share further, else a new one).

    ``downhill``: ``point`` is the end point of the training dynamics (--converge); a refined point
    beyond ``tol.max_move`` is then accepted when the evidence says the descent continues there
    (``downhill_evidence``: DOWNHILL_FACTOR x max_move at most, loss not higher, no rise along the
    segment); never for a checkpoint as given."""
    token = _DOWNHILL.set(bool(downhill))
    try:
        return _refine(problem, point, tol, readings, least_squares, progress, memo)
    finally:
        _DOWNHILL.reset(token)


def _refine(problem: Problem, point: Point, tol: Tolerances | None, readings: tuple, least_squares: str | None,
            progress, memo: NeuronMemo | None) -> dict:
    tol = tol or Tolerances()
    memo = NeuronMemo() if memo is None else memo
    given = _FloatView(point)
    pat = classify(problem, point, tol)
    tiny = [j for j, s in enumerate(pat.status) if s == "tiny"]
    if not tiny:
        readings = ("as_given",)
    dead_alt = snapped_dead_pattern(problem, point, pat)
    total = len(readings) + (dead_alt is not None)
    with _exact.time_budget(REFINE_BUDGET):
        out = []
        for reading in readings:
            if out and _exact.out_of_time():
                out.append(Refinement(reading, None, None, {}, _not_tried()))
            else:
                with _least_squares_default(least_squares):
                    out.append(_refine_one(problem, point, pat, reading, tol, least_squares, memo, given))
            if progress is not None:
                progress(len(out), total, None)
        # a neuron snapped onto kinks that is otherwise strictly negative could as well be read as dead
        # (its w.x_i < 0 only by a hair): certify that reading too and report it when the verdict differs
        if dead_alt is not None:
            pat2, js = dead_alt
            r = _pattern_reading(problem, point, pat2, "snapped_as_dead", _dead_reading_label(js), tol,
                                 least_squares, memo, given)
            r.read_as_dead = js
            out.append(r)
            if progress is not None:
                progress(total, total, None)
        # no reading decisive: the tiny neurons that act on the data may be small but real neurons of a
        # stationary point nearby (kept as given they are not moved and violate (S1) by themselves;
        # zeroed, the move can be too far when only a_j is small): refine them with the alive ones
        if tiny and not any(r.verdict in DECISIVE for r in out):
            alt = _tiny_as_alive(pat, point, tiny)
            if alt is not None:
                pat3, js = alt
                out.append(_pattern_reading(problem, point, pat3, "tiny_refined",
                                            f"tiny neurons {js} refined with the alive ones", tol, least_squares,
                                            memo, given))
                if progress is not None:
                    progress(len(out), len(out), None)
        fragile = _dead_read_as_zero(problem, point, choose(out), memo, given)
        if fragile is not None:
            out.append(fragile)
    return {"pattern": pat, "refinements": out, "tolerances": tol, "tiny": tiny}


# one time budget for the whole refinement (every reading, both passes, every stage; the vector
# Newton's own REFINE_SECONDS applies within it): readings not reached are reported as not tried
REFINE_BUDGET = 40.0


def _pattern_reading(problem: Problem, point: Point, pat: Pattern, name: str, what: str, tol: Tolerances,
                     least_squares: str | None, memo: NeuronMemo, given: _FloatView) -> Refinement:
    """The point as given refined on another reading of its pattern (``what`` heads the note), or not
    tried when the time budget is spent."""
    if _exact.out_of_time():
        return Refinement(name, None, None, {}, _not_tried())
    with _least_squares_default(least_squares):
        r = _refine_one(problem, point, pat, "as_given", tol, least_squares, memo, given)
    r.reading = name
    r.note = f"{what}; " + r.note
    return r


def _tiny_as_alive(pat: Pattern, point: Point, tiny: list):
    """(the pattern with the tiny neurons that have w_j != 0, a_j != 0 and a pre-activation >= 0 on
    some data point read as alive, those neurons), or None when there is none."""
    js = [j for j in tiny if any(point.W[j].tolist()) and any(point.A[j].tolist())
          and bool(np.any(np.asarray(pat.signs)[:, j] >= 0))]
    if not js:
        return None
    status = ["alive" if j in js else s for j, s in enumerate(pat.status)]
    return Pattern(status, [list(k) for k in pat.kinks], list(pat.snapped), pat.signs.copy(), pat.sizes,
                   pat.kink_tol), js


def _not_tried() -> str:
    return f"not tried: {_exact.budget_text()} ran out before this reading"


FRAGILE = 1e-3   # a dead neuron this close to reviving (relative to |theta|) is also read as exactly zero


def fragile_dead(problem: Problem, point: Point) -> list[int]:
    """Dead neurons within FRAGILE of reviving: min_i |w_j . x_i| / |x_i| < FRAGILE |theta|."""
    if problem.activation.alpha_minus != 0:
        return []                   # nothing is dead (core.formulas.neuron_status)
    Wf = point.Wf
    theta = math.sqrt(float((Wf ** 2).sum() + (point.Af ** 2).sum()))
    xn = np.linalg.norm(problem.Xf, axis=1)
    # dead (core.formulas.is_dead): w_j != 0 and w_j . x_i < 0 on every non-zero data point; the
    # signs exact (classify.exact_signs: a float filter, exact dot products where it cannot decide)
    rows = [problem.X[i].tolist() for i in range(problem.n)]
    nonzero_x = np.array([any(v != 0 for v in r) for r in rows], dtype=bool)
    sg = exact_signs(rows, [point.W[j].tolist() for j in range(point.m)])
    out = []
    for j in range(point.m):
        if all(v == 0 for v in point.W[j]) or not np.all(sg[nonzero_x, j] < 0):
            continue
        z = np.abs(problem.Xf @ Wf[j])
        margin = min((z[i] / xn[i] for i in range(problem.n) if xn[i] > 0), default=math.inf)
        if margin < FRAGILE * theta:
            out.append(j)
    return out


def _dead_read_as_zero(problem: Problem, point: Point, best: Refinement,
                       memo: NeuronMemo | None = None, given: _FloatView | None = None) -> Refinement | None:
    """The decided refined point with its nearly-reviving dead neurons set exactly to zero (the
    network's outputs on the data are unchanged), certified: a local minimum that holds only while
    those neurons stay dead shows here as a saddle of the zero reading."""
    if best.point is None or best.verdict != "local_min" or (best.result is None and best.ball is None):
        return None
    js = fragile_dead(problem, best.point)
    if not js:
        return None
    W, A = best.point.W.copy(), best.point.A.copy()
    for j in js:
        W[j] = [fmpq(0)] * problem.d
        A[j] = [fmpq(0)] * problem.k
    zero = Point(W, A, None if best.point.c is None else best.point.c.copy())
    dist = distance_moved(problem, point if given is None else given, zero).to_json()
    note = (f"the {best.reading} refined point with dead neurons {js} (within {FRAGILE:g} |theta| of "
            "reviving) set to exactly zero")
    res = certify(problem, zero, memo=memo)
    if best.result is None and res.verdict == "not_stationary":
        # a ball local_min: its centre is a rounding, not exactly stationary, and so is the zero
        # reading of it; only a ball certificate can say what the exact point read as zero is
        cert, bnote = ball_certificate(problem, zero)
        if cert is not None:
            if cert["verdict"] == "local_min" or "negative_curvature" in cert["evidence"]:
                zero = light_outputs(zero)      # the box centre: the certificate's point
            return Refinement("dead_read_as_zero", None, zero, dist, f"{note}; {bnote}", ball=cert, read_as_dead=js)
        return Refinement("dead_read_as_zero", None, zero, dist,
                          f"{note}; inconclusive: its rounding is not exactly stationary and {bnote}", read_as_dead=js)
    return Refinement("dead_read_as_zero", res, zero, dist, note, read_as_dead=js)


@dataclass
class Ambiguity:
    what: str
    verdicts: dict | None = None

    def to_json(self) -> dict:
        return {"what": self.what} if self.verdicts is None else {"what": self.what, "verdicts": self.verdicts}


@dataclass
class RefinedReport:
    """The refinement of one point, typed; ``to_json`` is what ``refined_report`` returns."""
    best: Refinement                 # choose(refinements)
    refinements: list                # [Refinement], every reading tried
    pattern: Pattern
    tiny: list                       # tiny neurons
    tolerances: Tolerances
    ambiguities: list                # [Ambiguity]
    gap: SnapGap | None

    def to_json(self) -> dict:
        best, pat, tiny = self.best, self.pattern, self.tiny
        r = best.result
        groups: dict = {}
        for j, i, rel in pat.snapped:
            groups.setdefault(i, []).append(j)
        return {
            "reading": best.reading,
            "verdict": best.verdict,
            "reason": r.reason if r else best.note,
            "escape_neurons": r.escape_neurons if r else _ball_escape(best.ball),
            "loss": r.loss_json() if r else None,
            "distance": best.distance,
            "method": best.note,
            "pattern_changes": {
                "snapped": [{"neuron": j, "data": i, "relative_z": rel} for j, i, rel in pat.snapped],
                "snapped_by_data_point": {str(i): js for i, js in sorted(groups.items())},
                "tiny": tiny,
                "treated_as_zero": tiny if best.reading == "tiny_zero" else [],
                "output_set_to_zero": tiny if best.reading == "tiny_output_zero" else [],
                "dead": [j for j, s in enumerate(pat.status) if s == "dead"],
                "status": pat.status,
            },
            "ambiguities": [a.to_json() for a in self.ambiguities],
            "snap_gap": self.gap.to_json() if self.gap is not None else None,
            "readings": [x.to_json() for x in self.refinements],
            "tolerances": dict(self.tolerances.to_json(), kink_used=pat.kink_tol),
            "certificate": r.certificate if r else best.ball,
            "escape_path_losses": escape_path_losses(r) if r else [],
            "left_pattern": best.left_pattern,
            # the refined point beyond max_move, accepted as the dynamics' continuation (Downhill), or None
            "beyond_max_move": best.downhill,
            # the refined point itself (exact rationals as strings); for a ball certificate its centre
            "point": best.point.to_json() if best.point is not None else None,
        }


def refined_report_typed(problem: Problem, point: Point, info: dict) -> RefinedReport:
    """The typed report of ``refine(problem, point, ...)``: the chosen reading and the ambiguities."""
    pat, refs, tol, tiny = info["pattern"], info["refinements"], info["tolerances"], info["tiny"]
    best = choose(refs)
    verdicts = {x.reading: x.verdict for x in refs if x.reading in READINGS + ("tiny_refined",)}
    ambiguities = []
    alt = [x for x in refs if x.reading == "snapped_as_dead"]
    if alt:
        v_alt = alt[0].verdict
        v_base = next((x.verdict for x in refs if x.reading == "as_given"), "inconclusive")
        if v_alt != v_base:
            ambiguities.append(Ambiguity(_dead_reading_label(alt[0].read_as_dead) + " (they are strictly "
                                         "negative, by less than the kink tolerance)",
                                         {"on the kink (as_given)": v_base, "strictly dead": v_alt}))
    if len(set(verdicts.values())) > 1:
        ambiguities.append(Ambiguity(f"tiny neurons {tiny} (size |a||w|max|x|/max|y| < {tol.tiny:g}, or < "
                                     f"{tol.alive:g} without an alive neuron of the same activation pattern): "
                                     "as given, with output weight 0, or exactly zero"
                                     + (", or refined with the alive neurons" if "tiny_refined" in verdicts else ""),
                                     verdicts))
    zero = [x for x in refs if x.reading == "dead_read_as_zero"]
    if zero and zero[0].verdict != best.verdict:
        ambiguities.append(Ambiguity(f"dead neurons {zero[0].read_as_dead} are within {FRAGILE:g} |theta| of "
                                     "reviving (see the pattern margin): as given they stay dead, read as exactly "
                                     "zero they do not", {"as given": best.verdict, "read as zero": zero[0].verdict}))
    gap = snap_gap(problem, point, pat)
    if gap is not None and gap.ratio < CLEAR_GAP:
        ambiguities.append(Ambiguity(f"kink snapping is not clear-cut: largest snapped |w.x|/(|w||x|) = "
                                     f"{gap.largest_snapped:.2e}, smallest kept = {gap.smallest_kept:.2e} "
                                     f"(ratio {gap.ratio:.1f} < {CLEAR_GAP}); a --tol-kink below "
                                     f"{gap.largest_snapped:.2e} snaps fewer pairs, one above {gap.smallest_kept:.2e} "
                                     "snaps more"))
    return RefinedReport(best, refs, pat, tiny, tol, ambiguities, gap)


CLEAR_GAP = 100     # snapped and kept relative |w.x| values this far apart: the snapping is clear-cut


def _relative_values(problem: Problem, point: Point, pat: Pattern) -> tuple[list, list]:
    """Relative |w_j.x_i|/(|w_j||x_i|) of the snapped pairs and of the kept (strict) pairs."""
    snapped = sorted(r for _, _, r in pat.snapped if r > 0)
    X, W = problem.Xf, point.Wf
    den = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(W, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(X @ W.T) / den
    kept = sorted(float(rel[i, j]) for i in range(problem.n) for j in range(point.m)
                  if pat.signs[i, j] != 0 and den[i, j] > 0
                  and pat.status[j] not in ("zero", "zero_output"))
    return snapped, kept


def kink_neighbours(problem: Problem, point: Point, pat: Pattern) -> list[tuple[str, float]]:
    """When the kink snapping is not clear-cut, the two neighbouring kink tolerances: one just below
    the largest snapped value (it keeps that pair, and any equal to it, off the kink) and one just
    above the smallest kept value (it snaps that pair too); each the geometric midpoint to the next
    value on its side, so that exactly one step of the sorted values changes side."""
    gap = snap_gap(problem, point, pat)
    if gap is None or gap.ratio >= CLEAR_GAP:
        return []
    snapped, kept = _relative_values(problem, point, pat)
    out = []
    if snapped:
        big = snapped[-1]
        below = [v for v in snapped if v < big]
        out.append(("fewer snapped", math.sqrt(big * below[-1]) if below else big / 10))
    if kept and math.isfinite(kept[0]):
        small = kept[0]
        above = [v for v in kept if v > small and math.isfinite(v)]
        out.append(("more snapped", math.sqrt(small * above[0]) if above else small * 10))
    return out


def refine_point(problem: Problem, point: Point, tol: Tolerances | None = None,
                 least_squares: str | None = None, progress=None, downhill: bool = False,
                 budget: float | None = None, budget_name: str | None = None) -> dict:
    """``refined_report(problem, point, refine(...))``, and when the kink snapping is not clear-cut
    (snapped and kept relative |w.x| within a factor ``CLEAR_GAP``) the same at the two neighbouring
    kink tolerances (``kink_neighbours``, used as fixed tolerances).  The report is the base
    tolerance's when its verdict is decisive, else the decisive neighbour's with the smallest move;
    ``kink_alternatives`` lists every tolerance tried with its verdict, and an ambiguity records
    differing verdicts.  Every refined point is certified exactly on its own.  One time budget,
    REFINE_BUDGET, covers all of it: neighbours not reached are listed as not tried.
    ``progress(done, total, None)``: as ``refine``'s, for each tolerance in turn; ``downhill``: as
    ``refine``'s (the end point of --converge); ``budget``: seconds instead of REFINE_BUDGET when
    shorter (``budget_name``: the setting a report names when it runs out)."""
    tol = tol or Tolerances()
    memo = NeuronMemo()          # every tolerance refines the same problem near the same point
    short = budget is not None and budget < REFINE_BUDGET
    with _exact.time_budget(budget if short else REFINE_BUDGET,
                            (budget_name or "the caller's budget") if short else "refine.driver.REFINE_BUDGET"):
        info = refine(problem, point, tol, least_squares=least_squares, progress=progress, memo=memo,
                      downhill=downhill)
        base = refined_report(problem, point, info)
        tries = kink_neighbours(problem, point, info["pattern"])
        if not tries:
            return base
        rows = [{"kink_tol": info["pattern"].kink_tol, "direction": "as chosen", "verdict": base["verdict"],
                 "snapped": len(base["pattern_changes"]["snapped"]), "distance": base["distance"]}]
        reports = [base]
        skipped = []
        for direction, t in tries:
            if _exact.out_of_time():
                skipped.append({"kink_tol": t, "direction": direction,
                                "verdict": "not tried (the refinement time budget ran out)", "snapped": "-",
                                "distance": {}, "used": False})
                continue
            alt_tol = replace(tol, kink=t, kink_auto=False)
            rep = refined_report(problem, point, refine(problem, point, alt_tol, least_squares=least_squares,
                                                        progress=progress, memo=memo, downhill=downhill))
            reports.append(rep)
            rows.append({"kink_tol": t, "direction": direction, "verdict": rep["verdict"],
                         "snapped": len(rep["pattern_changes"]["snapped"]), "distance": rep["distance"]})
    chosen = 0
    if base["verdict"] not in DECISIVE:
        decisive = [i for i in range(1, len(reports)) if reports[i]["verdict"] in DECISIVE]
        if decisive:
            chosen = min(decisive, key=lambda i: reports[i]["distance"].get("relative", math.inf))
    out = reports[chosen]
    for i, row in enumerate(rows):
        row["used"] = i == chosen
    out["kink_alternatives"] = rows + skipped
    verdicts = {f"kink tol {row['kink_tol']:.2e} ({row['direction']})": row["verdict"] for row in rows}
    if chosen:      # the chosen tolerance's own report does not say why others were tried
        out["ambiguities"] = [a for a in base["ambiguities"] if "not clear-cut" in a["what"]] + list(out["ambiguities"])
    if len(set(verdicts.values())) > 1:
        used = rows[chosen]
        out["ambiguities"] = list(out["ambiguities"]) + [
            {"what": f"the verdict depends on the kink tolerance (the snapping is not clear-cut); the answer "
                     f"uses {used['kink_tol']:.2e} ({used['direction']})"
                     + ("" if chosen == 0 else ", the nearest refinement that decides"),
             "verdicts": verdicts}]
    return out


def refined_report(problem: Problem, point: Point, info: dict) -> dict:
    """The JSON-able report of ``refine(problem, point, ...)`` (``RefinedReport.to_json``)."""
    return refined_report_typed(problem, point, info).to_json()
