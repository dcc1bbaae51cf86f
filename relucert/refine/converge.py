"""Follow the training dynamics from a float checkpoint to the stationary point they lead to.

``converge`` only PROPOSES a point: it runs a float64 first-order method on the empirical loss
(in the problem's own convention) and returns where it stopped, converted exactly to rationals.
It claims nothing; the refinement (``refine.driver.refine``) and the exact certification decide
the proposed point afterwards (issue 12, ``--converge``).

Methods:

- ``"lbfgs"``: scipy's L-BFGS-B with the analytic gradient (fast; the iterates need not stay on
  the training trajectory);
- ``"flow"``: full-batch gradient descent with an adaptive step, a discretised gradient flow: a
  step is accepted only when it decreases the loss by at least half of what the first-order model
  predicts (Armijo with c = 1/2, which keeps the step below the local curvature's inverse, so the
  iterates follow the flow instead of oscillating across a valley), halved otherwise, and grown by
  a small factor after every accepted step.  At the kinks it does what the flow does (Filippov):
  where both sides of a kink push w_j . x_i towards 0, it slides along the kink (the W-gradient
  projected off x_i); where they do not, it crosses; a step that would cross a kink farther away is
  shortened to end on it.  Once the predicted decrease is below the loss's float resolution (a few
  ulps), a step is accepted when the gradient shrinks and the loss does not grow by more than that.

The loss is piecewise smooth; the gradient is the core's (``core.formulas``: sigma'(0) =
alpha_minus), the same subgradient as every other float formula of the package.  Small weights
are never rounded.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from relucert.core.formulas import forward, half_mean_loss, linear_part, mean_residual, output_grad, weight_grad
from relucert.core.problem import Point, Problem, exact_to_float, fmpq_to_float
from relucert.errors import InputError
from relucert.refine.classify import Tolerances, effective_kink_tol, float_gradient_norm
from relucert.refine.driver import distance_moved

METHODS = ("lbfgs", "flow")
STOP_REASONS = ("gradient below gtol", "no further decrease", "max_steps", "time limit")
HISTORY_POINTS = 48            # the history keeps about this many (step, loss) pairs, log-spaced
PROGRESS_INTERVAL = 0.05       # seconds between two progress calls (at most ~20 per second)
FLOW_ARMIJO = 0.5              # accept a step when it achieves this fraction of the predicted decrease
FLOW_GROW = 1.25               # step growth after an accepted step
FLOW_NEAR_KINK = 1e-2          # flow: a kink reached within this fraction of a failed step is 'near'
FLOW_ROUNDING = 1e-12          # flow: |w.x| <= this * |w||x| is on the kink up to rounding
FLOW_KEEP = 1e-6               # flow: a kink both sides push towards slides from |w.x| <= this * |w||x| on
FLOW_ROUNDING_LOSS = 8         # flow: a predicted decrease below this many ulps of the loss is unresolvable
FLOW_STALL_WINDOW = 500        # flow: stop when this many accepted steps gained nothing in float64
LBFGS_FLOW_SECONDS = 5.0       # lbfgs: at most this long for the flow that continues past a stopped line search


@dataclass
class Converged:
    """Where the dynamics led: the end point (exact rationals equal to the float64 end values)."""

    point: Point
    start_loss: float             # float64 loss of the start point, in the problem's convention
    end_loss: float               # float64 loss of ``point``, in the problem's convention
    steps: int                    # accepted steps (flow) / iterations (lbfgs)
    method: str
    gradient_relative: float      # refine.classify.float_gradient_norm at the end point
    distance: dict                # the move from the start (refine.driver Move: max_abs, relative, ...)
    stopped: str                  # one of STOP_REASONS
    history: list = field(default_factory=list)   # [(step, loss)], at most ~50 entries
    loss_convention: str = "half_mean"
    start_gradient_relative: float = float("nan")
    seconds: float = 0.0
    continued: str = ""           # lbfgs: how the kink-aware flow continued after L-BFGS stopped above gtol

    def to_json(self) -> dict:
        return {"method": self.method, "stopped": self.stopped, "steps": self.steps,
                "loss_convention": self.loss_convention, "start_loss": self.start_loss,
                "end_loss": self.end_loss, "start_gradient_relative": self.start_gradient_relative,
                "gradient_relative": self.gradient_relative, "distance": self.distance,
                "history": [[int(s), float(v)] for s, v in self.history], "seconds": self.seconds,
                "continued": self.continued, "point": self.point.to_json()}


class _Stop(Exception):
    """Raised inside the optimiser's callbacks to end it (time limit)."""


def _float_view(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype.kind in "fiu":
        out = np.asarray(a, dtype=float)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            out = exact_to_float(a)
    if not np.isfinite(out).all():
        raise InputError(f"converge: {what} has entries beyond the float64 range (or not finite); "
                         "the float dynamics cannot start there")
    return out


class _Loss:
    """Loss and gradient in the problem's convention on the flat theta = (W, A), or (W, A, c) with an
    output bias c (``has_c``; dL/dc = mean residual, docs/biases.md §3.2), by the core's formulas;
    remembers the best point evaluated."""

    def __init__(self, problem: Problem, m: int, has_c: bool = False):
        self.has_c = has_c
        self.X, self.Y = problem.Xf, problem.Yf
        act = problem.activation
        self.ap, self.am = fmpq_to_float(act.alpha_plus), fmpq_to_float(act.alpha_minus)
        self.factor = fmpq_to_float(problem.loss_factor())
        self.m, self.d, self.k = m, problem.d, problem.k
        # the normalisation of float_gradient_norm (half_mean gradient / (max|y| max|x|))
        self.scale = max(float(np.abs(self.Y).max()) * float(np.linalg.norm(self.X, axis=1).max()), 1e-300)
        self.best = (math.inf, None)

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        md, mk = self.m * self.d, self.m * self.k
        return theta[:md].reshape(self.m, self.d), theta[md:md + mk].reshape(self.m, self.k)

    def bias(self, theta: np.ndarray) -> np.ndarray | None:
        """The output bias part of theta (a view), None without one."""
        return theta[self.m * (self.d + self.k):] if self.has_c else None

    def value(self, theta: np.ndarray) -> float:
        W, A = self.split(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            fw = forward(self.X, self.Y, W, A, self.ap, self.am, self.bias(theta))
            v = float(half_mean_loss(fw.E)) * self.factor
        v = v if math.isfinite(v) else math.inf
        if v < self.best[0]:
            self.best = (v, theta.copy())
        return v

    def value_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, A = self.split(theta)
        with np.errstate(over="ignore", invalid="ignore"):
            fw = forward(self.X, self.Y, W, A, self.ap, self.am, self.bias(theta))
            v = float(half_mean_loss(fw.E)) * self.factor
            gA = output_grad(fw.H, fw.E)
            gW = weight_grad(linear_part(fw.S, fw.E, self.X), A)
            parts = [gW.ravel(), gA.ravel()] + ([mean_residual(fw.E)] if self.has_c else [])
            g = np.concatenate(parts) * self.factor
        if not (math.isfinite(v) and np.isfinite(g).all()):
            return math.inf, np.zeros_like(theta)
        if v < self.best[0]:
            self.best = (v, theta.copy())
        self.E = fw.E                 # the residuals of the latest finite evaluation
        return v, g

    def kink_velocities(self, theta: np.ndarray, g: np.ndarray, E: np.ndarray, Z: np.ndarray):
        """dz_ij/dt = -x_i . dL/dw_j under the flow on this side of each kink (z > 0 or z <= 0) and on
        the far side: across the kink of (i, j) only the slope s_ij changes (sigma(0) = 0 keeps e_i),
        so dL/dw_j jumps by factor (s_far - s_here) (a_j . e_i) x_i / n."""
        W, A = self.split(theta)
        here = -(self.X @ self.split(g)[0].T)
        pos = Z > 0
        jump = np.where(pos, self.am - self.ap, self.ap - self.am)
        ae = E @ A.T                                          # (a_j . e_i), n x m
        xx = (self.X * self.X).sum(axis=1)[:, None]
        far = here - self.factor * jump * ae * xx / self.X.shape[0]
        return here, far

    def relative(self, g: np.ndarray) -> float:
        """max |gradient| of the half_mean loss relative to max|y| max|x| (convention-free)."""
        return float(np.abs(g).max(initial=0.0)) / self.factor / self.scale


class _Recorder:
    """History (log-spaced in the step) and throttled progress calls.  ``offset`` is added to the
    step numbers a method reports (a second method continuing the first's count)."""

    def __init__(self, max_steps: int, progress, t0: float, time_limit: float):
        marks = np.unique(np.geomspace(1, max_steps, HISTORY_POINTS).astype(int))
        self.marks = set(int(v) for v in marks) | {0}
        self.history: list = []
        self.max_steps, self.progress = max_steps, progress
        self.t0, self.deadline = t0, t0 + time_limit
        self.last_call = -math.inf
        self.offset = 0

    def step(self, step: int, loss: float) -> None:
        step += self.offset
        if step in self.marks and (not self.history or self.history[-1][0] != step):
            self.history.append((step, loss))
        if self.progress is not None:
            now = time.perf_counter()
            if now - self.last_call >= PROGRESS_INTERVAL:
                self.last_call = now
                self.progress(step, self.max_steps, loss)

    def out_of_time(self) -> bool:
        return time.perf_counter() > self.deadline

    def finish(self, step: int, loss: float) -> None:
        if len(self.history) > 1 and self.history[-1][0] >= step:
            self.history.pop()            # the end's own loss (the optimiser's value may differ by rounding)
        if self.history[-1] != (step, loss):
            self.history.append((step, loss))
        if self.progress is not None:
            self.progress(step, self.max_steps, loss)


def _lbfgs(f: _Loss, theta0: np.ndarray, max_steps: int, gtol: float, rec: _Recorder):
    from scipy.optimize import OptimizeResult, minimize

    state = {"nit": 0, "x": theta0.copy()}

    def fun(theta):
        if rec.out_of_time():
            raise _Stop()
        return f.value_grad(theta)

    def callback(intermediate_result):
        if isinstance(intermediate_result, OptimizeResult):
            x, v = intermediate_result.x, float(intermediate_result.fun)
        else:                                  # scipy < 1.11 passes xk
            x = np.asarray(intermediate_result)
            v = f.value(x)
        state["nit"] += 1
        state["x"] = np.array(x, dtype=float)
        rec.step(state["nit"], v)
        if rec.out_of_time():
            raise _Stop()

    timed_out = False
    # scipy's gtol is absolute (max |projected gradient|, in the convention's scaling); ftol 0 lets the
    # iteration run until the gradient test, the step limit or a line search that cannot decrease
    opts = {"maxiter": max_steps, "maxfun": max(15000, 20 * max_steps), "gtol": gtol * f.scale * f.factor,
            "ftol": 0.0, "maxcor": 20}
    try:
        res = minimize(fun, theta0, method="L-BFGS-B", jac=True, callback=callback, options=opts)
        x, nit = np.array(res.x, dtype=float), int(res.nit)
    except _Stop:
        x, nit, timed_out = state["x"], state["nit"], True
    v = f.value(x)
    if f.best[1] is not None and f.best[0] < v:       # never return worse than the best point seen
        x, v = f.best[1], f.best[0]
    return x, v, nit, timed_out


def _slide(f: _Loss, g: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """g with the W-block of each neuron j projected off span{x_i : pairs[i, j]}: the direction that
    keeps those w_j . x_i fixed (the flow sliding along the kinks, Filippov)."""
    gW, gA = f.split(g)
    gW = gW.copy()
    for j in np.nonzero(pairs.any(axis=0))[0]:
        Nj = f.X[pairs[:, j]]
        coef, *_ = np.linalg.lstsq(Nj.T, gW[j], rcond=None)
        gW[j] = gW[j] - Nj.T @ coef
    gc = f.bias(g)
    return np.concatenate([gW.ravel(), gA.ravel()] + ([gc] if gc is not None else []))


def _flow(f: _Loss, theta0: np.ndarray, max_steps: int, gtol: float, rec: _Recorder):
    """Gradient descent with an adaptive step (see the module docstring), kink-aware.

    The flow slides along a kink of (i, j) where both sides push w_j . x_i towards 0 (Filippov): such
    pairs within FLOW_KEEP |w_j||x_i| of the kink, and the ones a failed step shows to be very close
    (the kink reached within FLOW_NEAR_KINK of the step), get the W-gradient projected off x_i, which
    keeps their w_j . x_i fixed.  A near kink whose far side does not push back is crossed (accepted
    when the loss decreases).  A failed step that crosses kinks farther away is shortened to end on the
    first of them (halving would approach that kink geometrically, one failed step after another)."""
    theta = theta0.copy()
    loss, g = f.value_grad(theta)
    E = f.E
    xn = np.linalg.norm(f.X, axis=1)
    # first step: the step length that moves theta by about 1e-3 of its size (or of the data scale)
    size = max(float(np.abs(theta).max(initial=0.0)), 1.0 / math.sqrt(max(f.scale, 1e-300)))
    lr = 1e-3 * size / max(float(np.abs(g).max(initial=0.0)), 1e-300)
    step, window_loss, window_grad = 0, loss, f.relative(g)
    reason = None
    while True:
        if f.relative(g) <= gtol:
            reason = "gradient below gtol"
            break
        if step >= max_steps:
            reason = "max_steps"
            break
        if rec.out_of_time():
            reason = "time limit"
            break
        gg = float(g @ g)
        rounding = FLOW_ROUNDING_LOSS * np.finfo(float).eps * abs(loss)
        W0 = f.split(theta)[0]
        Z0 = f.X @ W0.T
        side = np.where(Z0 > 0, 1.0, -1.0)                  # z = 0 is on the z <= 0 side
        scale = np.outer(xn, np.linalg.norm(W0, axis=1))
        here, far_v = f.kink_velocities(theta, g, E, Z0)
        slides = (here * side < 0) & (far_v * side > 0)      # both sides push towards the kink
        sliding = slides & (np.abs(Z0) <= FLOW_KEEP * scale)
        tiny = np.abs(Z0) <= FLOW_ROUNDING * scale
        if sliding.any():
            p = _slide(f, g, sliding)
            gp = float(g @ p)
        else:
            p, gp = g, float(g @ g)
        while True:
            trial = theta - lr * p
            if gp <= 0 or np.array_equal(trial, theta):
                reason = "no further decrease"
                break
            v, gt = f.value_grad(trial)
            if v <= loss - FLOW_ARMIJO * lr * gp:
                break
            if v <= loss + rounding and lr * gp <= rounding and float(gt @ gt) < gg:
                break                     # below the loss's float resolution: the gradient decides
            Zt = f.X @ f.split(trial)[0].T
            flips = ((Z0 > 0) != (Zt > 0)) & ~sliding
            with np.errstate(divide="ignore", invalid="ignore"):
                near = flips & (tiny | (np.abs(Z0) < FLOW_NEAR_KINK * np.abs(Z0 - Zt)))
            if near.any():
                back = near & slides
                if not back.any():
                    if not (flips & ~near).any() and v < loss:
                        break             # genuine crossings only: the flow goes through
                    # the crossing does not pay: the far side pushes back after all (several kinks
                    # of one neuron interact, which the per-pair test above does not see)
                    back = near
                sliding |= back
                p = _slide(f, g, sliding)
                gp = float(g @ p)
                continue                  # the same step length along the sliding direction
            far = flips & ~near
            if far.any():
                with np.errstate(divide="ignore", invalid="ignore"):
                    t_cross = float((Z0[far] / (Z0[far] - Zt[far])).min())
                lr *= min(0.5, t_cross) if t_cross > 0 else 0.5
            else:
                lr *= 0.5
        if reason is not None:
            break
        theta, loss, g, E = trial, v, gt, f.E
        step += 1
        lr *= FLOW_GROW
        rec.step(step, loss)
        if step % FLOW_STALL_WINDOW == 0:
            gnorm = f.relative(g)
            if not (window_loss - loss > 4 * np.finfo(float).eps * abs(window_loss) or gnorm < 0.5 * window_grad):
                reason = "no further decrease"
                break
            window_loss, window_grad = loss, gnorm
    return theta, loss, step, reason


def converge(problem: Problem, point: Point, *, method: str = "lbfgs", max_steps: int = 20000,
             gtol: float = 1e-12, progress: Callable[[int, int, float], None] | None = None,
             time_limit: float = 120.0, tolerances: Tolerances | None = None) -> Converged:
    """Run ``method`` from ``point`` on the float64 loss (the problem's convention) until the relative
    gradient (half_mean gradient / (max|y| max|x|), as in ``float_gradient_norm``) is <= ``gtol``, the
    loss stops decreasing, ``max_steps`` steps or ``time_limit`` seconds.  The end point is returned
    as exact rationals equal to its float64 values; the start point is not changed.

    ``gradient_relative`` is ``float_gradient_norm`` at the end point with the kink tolerance the
    refinement would use under ``tolerances`` (default ``Tolerances()``), so it can be compared with
    ``tolerances.stationary`` as ``certify_checkpoint`` does.  ``progress(step, max_steps, loss)`` is
    called at most about 20 times per second.  Nothing here is a verdict."""
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"converge: unknown method {method!r} (use one of {', '.join(METHODS)})")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise InputError(f"converge: max_steps must be an integer >= 1, got {max_steps!r}")
    if isinstance(gtol, bool) or not isinstance(gtol, (int, float)) or not (0 <= gtol < math.inf):
        raise InputError(f"converge: gtol must be a finite number >= 0, got {gtol!r}")
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise InputError(f"converge: time_limit must be a number of seconds > 0, got {time_limit!r}")
    if progress is not None and not callable(progress):
        raise InputError("converge: progress must be callable (step, max_steps, loss) or None")
    if not isinstance(problem, Problem) or not isinstance(point, Point):
        raise InputError("converge: expected a relucert Problem and Point")
    point.validate(problem)
    max_steps = int(max_steps)
    tol = tolerances if tolerances is not None else Tolerances()
    t0 = time.perf_counter()
    for what, view in (("X", problem.Xf), ("Y", problem.Yf)):
        if not np.isfinite(view).all():
            raise InputError(f"converge: {what} has entries beyond the float64 range; the float dynamics "
                             "cannot run on it")
    W0, A0 = _float_view(point.W, "W"), _float_view(point.A, "A")
    has_c = point.c is not None
    c0 = _float_view(point.c.reshape(1, -1), "c")[0] if has_c else None
    f = _Loss(problem, point.m, has_c)
    theta0 = np.concatenate([W0.ravel(), A0.ravel()] + ([c0] if has_c else []))
    start_loss = f.value(theta0)
    if not math.isfinite(start_loss):
        raise InputError("converge: the float64 loss of the start point is not finite")
    start_point = Point.make(W0, A0, problem, c=c0)  # the start's float values, exactly
    start_grad = float_gradient_norm(problem, start_point, effective_kink_tol(problem, start_point, tol))
    rec = _Recorder(max_steps, progress, t0, float(time_limit))
    rec.step(0, start_loss)
    continued = ""
    if method == "lbfgs":
        theta, end_loss, steps, timed_out = _lbfgs(f, theta0, max_steps, gtol, rec)
        _, g = f.value_grad(theta)
        if timed_out:
            reason = "time limit"
        elif f.relative(g) <= gtol:
            reason = "gradient below gtol"
        elif steps >= max_steps:
            reason = "max_steps"
        else:
            reason = "no further decrease"
        if reason == "no further decrease":
            theta, end_loss, steps, reason, continued = _continue_with_flow(f, theta, end_loss, steps, max_steps,
                                                                            gtol, rec)
    else:
        theta, end_loss, steps, reason = _flow(f, theta0, max_steps, gtol, rec)
    if not end_loss <= start_loss:
        # only below the loss's float resolution (the flow may then accept a few ulps of increase):
        # never report an end above the start
        theta, end_loss = theta0, start_loss
    W1, A1 = f.split(theta)
    c1 = f.bias(theta)
    new = Point.make(W1.copy(), A1.copy(), problem,   # exact dyadic conversion of the float64 values
                     c=None if c1 is None else c1.copy())
    grad = float_gradient_norm(problem, new, effective_kink_tol(problem, new, tol))
    rec.finish(steps, end_loss)
    return Converged(point=new, start_loss=start_loss, end_loss=end_loss, steps=steps, method=method,
                     gradient_relative=grad, distance=distance_moved(problem, start_point, new).to_json(),
                     stopped=reason, history=rec.history, loss_convention=problem.loss,
                     start_gradient_relative=start_grad, seconds=time.perf_counter() - t0, continued=continued)


def _continue_with_flow(f: _Loss, theta: np.ndarray, loss: float, steps: int, max_steps: int, gtol: float,
                        rec: _Recorder):
    """L-BFGS stopped with its line search unable to decrease the loss while the gradient is still above
    ``gtol``: on this piecewise-smooth loss that is in general a kink (the quasi-Newton model is
    built across it), not a stationary point.  The kink-aware flow (``_flow``: it slides along kinks
    both sides push towards, crosses the others) continues from there, for at most
    LBFGS_FLOW_SECONDS and the steps left; its end is kept when its loss is below L-BFGS's (the flow
    only accepts decreasing steps, up to the loss's float resolution).  Returns (theta, loss, steps,
    stop reason, a note for ``Converged.continued``)."""
    if steps >= max_steps or rec.out_of_time():
        return theta, loss, steps, "no further decrease", ""
    deadline = rec.deadline
    rec.deadline = min(deadline, time.perf_counter() + LBFGS_FLOW_SECONDS)
    rec.offset = steps
    try:
        th2, loss2, steps2, reason2 = _flow(f, theta, max_steps - steps, gtol, rec)
    finally:
        rec.offset, budget_hit, rec.deadline = 0, rec.out_of_time(), deadline
    if steps2 == 0 or not loss2 < loss:
        rec.history = [h for h in rec.history if h[0] <= steps]
        return theta, loss, steps, "no further decrease", ("L-BFGS's line search found no decrease; the "
                                                           "kink-aware flow from its end found none either")
    note = (f"L-BFGS's line search found no decrease (in general at a kink) at loss {loss:.17g}; the "
            f"kink-aware flow continued for {steps2} steps to {loss2:.17g}"
            + (f" (stopped after its {LBFGS_FLOW_SECONDS:g} s, converge.LBFGS_FLOW_SECONDS)"
               if budget_hit and reason2 == "time limit" else f" ({reason2})"))
    return th2, loss2, steps + steps2, reason2, note
