"""Vector output, rank-constrained groups (THEORY §6.3): the stationary point of the activation
pattern nearest the checkpoint, by damped least-norm Newton on the pattern-restricted gradient
(float64 first, with pattern updates, then at high precision: mpmath eigsy steps up to
EIGSY_UNKNOWNS unknowns, above that float64-Hessian steps against the exact gradient; no fixed cap,
a time budget REFINE_SECONDS instead), rational rounding and an exact refit of the output weights."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from flint import fmpq, fmpq_mat

from relucert.core.formulas import forward
from relucert.core.hessian import PatternLoss
from relucert.core.linalg import independent_subset, mat, nullspace
from relucert.core.problem import Point, Problem, exact_to_float, fmpq_to_float
from relucert.refine.classify import Pattern
import relucert.refine.exact as _exact
from relucert.refine.exact import (PatternUpdate, _pairs_text, apply_crossings, crossings,
                                   kink_releases, least_norm_solve, project_onto_kinks, settle_rounds,
                                   targets_without, updated_pattern, centring_bias, exact_vector)

EIGSY_UNKNOWNS = 20     # up to this many unknowns the high-precision steps come from mpmath's eigsy (one eigsy at 60
                        # unknowns and 60 digits takes 15-40 s: campaign timeouts at 56 unknowns);
                        # above, from a float64 eigendecomposition against the exact gradient (``_fast_newton``)
MAX_NEWTON_UNKNOWNS = math.inf   # no fixed cap on the unknowns any more (kept for scripts that read it)
REFINE_SECONDS = 60.0   # time budget of one ``refine_vector`` call (float and high-precision stages together)


def _budget_text() -> str:
    """Which time budget a stop names: this call's REFINE_SECONDS or the whole refinement's."""
    if _exact.budget_seconds() and _exact.budget_seconds() < REFINE_SECONDS:
        return _exact.budget_text()
    return f"the time budget of {REFINE_SECONDS:g} s (refine.vector.REFINE_SECONDS)"


FLOAT_ITERS = 3000      # float stage: damped Newton iterations at most, all rounds together
FLOAT_GTOL = 1e-13      # float stage: converged below this relative gradient (max |g| / (max|y| max|x|))
FLOAT_NEAR = 1e-8       # float stage: below this the high-precision stage may still finish the job
ROUND_ITERS = 500       # float stage: steps allowed after each pattern change
LIMIT_KINK = 1e-9       # float stage: a strict pair with |w.x| / (|w||x|) below this at a stationary point is a kink


def d_unknowns(problem: Problem, pat: Pattern, j: int) -> int:
    """Unknowns of neuron j in the Newton step: its input directions off its kinks, and a_j."""
    return problem.d - len(pat.kinks[j]) + problem.k if pat.status[j] == "alive" else 0


def bias_unknowns(problem: Problem, point: Point) -> int:
    """Unknowns the output bias adds to the Newton step: 0 without one, else the bias 'neuron' of
    ``refine_vector`` (one input direction and k output weights)."""
    return 0 if point.c is None else 1 + problem.k


def refine_vector(problem: Problem, start: Point, pat: Pattern, reading: str, dps: int = 60,
                  iters: int = 40, pattern_out: list | None = None) -> tuple[Point | None, str]:
    """The stationary point of the pattern nearest ``start``: damped least-norm Newton, then
    rational rounding and an exact refit of the output weights.

    The alive neuron t moves as w_t = N_t^T u_t, the rows of N_t spanning the inputs orthogonal to
    its kinks (so the kinks stay exact), with output weights a_t.  Newton is for the equations
    g(theta) = 0 of the pattern-restricted gradient, from the checkpoint, each step the
    Levenberg-Marquardt step  argmin |g + H s|^2 + mu^2 |s|^2  (least norm: near-null directions of H,
    such as the rescalings (u_t, a_t) -> (c u_t, a_t / c), hardly move), mu adapted by the gain ratio
    (a trust region), a step kept only when |g| decreases.  Two stages:

    1. float64 (``_float_stage``), from the checkpoint, until the relative gradient is below
       ``FLOAT_GTOL``.  With ``pattern_out`` (a list) the pattern is updated on the way: a step that
       would carry a strict pair across its kink is cut where the first pair reaches it, that pair
       becomes a kink (or flips sign when its neuron has no room for another kink) and Newton goes on
       on the new pattern; at a stationary point of the pattern, kinks whose float multiplier shows a
       descent are released to that side (``exact.kink_releases``); at most ``exact.PATTERN_ROUNDS``
       changes.  Each neuron is finally rescaled (c u_t, a_t / c), which changes nothing in the
       network, to the c nearest its checkpoint values.  Without ``pattern_out`` the pattern is never
       changed.
    2. high precision on the final pattern, from the float result, mu = |g| / |theta|, at most
       ``iters`` steps: up to ``EIGSY_UNKNOWNS`` unknowns mpmath at ``dps`` digits (core's
       ``PatternLoss`` with once-rounded sums, eigsy of its Hessian: ``_mp_newton``); above, the same
       steps from a float64 Hessian against the exact gradient (``_fast_newton``), to the same
       10^-(dps - 3) gradient floor and the same rounding.  Either only proposes: the rational
       rounding is decided by the exact engine.

    The whole call has a time budget of ``REFINE_SECONDS``: when it runs out before the float stage
    found a stationary point, or before the high-precision Newton converged, nothing is returned and
    the note says so (the caller reports ``inconclusive`` with that reason).

    The pattern of the returned point is appended to ``pattern_out`` as an ``exact.PatternUpdate``
    (the caller must check the point against it).  When the float stage does not come near a
    stationary point (relative gradient above ``FLOAT_NEAR``) nothing is returned, with the gradient
    and the move in the note."""
    import mpmath as mp
    n, d, k, m = problem.n, problem.d, problem.k, start.m
    act = problem.activation
    W, A = start.W.copy(), start.A.copy()
    movable = [j for j in range(m) if pat.status[j] == "alive"]
    X = [problem.X[i].tolist() for i in range(n)]
    for j in range(m):
        if not all(v == 0 for v in W[j]):
            W[j] = project_onto_kinks(W[j].tolist(), [X[i] for i in pat.kinks[j]])
    has_c = start.c is not None
    if not movable:
        if pattern_out is not None:
            pattern_out.append(PatternUpdate(pat))
        if has_c:
            return Point(W, A, centring_bias(problem, W, A)), "no alive neuron to refine; output bias centred exactly"
        return Point(W, A), "no alive neuron to refine"
    deadline = min(time.monotonic() + REFINE_SECONDS, _exact.deadline())   # and the whole refinement's budget
    fl = _float_stage(problem, W, A, start, pat, movable, update=pattern_out is not None, deadline=deadline)
    cur = fl.pattern
    upd = PatternUpdate(cur, fl.rounds)
    head = f"damped least-norm Newton from the checkpoint (float64: {fl.iters} steps, gradient {fl.grad:.1e}"
    head += f"{', ' + upd.describe(pat) if fl.rounds else ''}{'; ' + fl.stop if fl.stop else ''})"
    if fl.grad > FLOAT_NEAR:
        return None, (f"{head}: it found no stationary point (relative gradient still {fl.grad:.1e} > "
                      f"{FLOAT_NEAR:g}, after moving {fl.move:.2e} relative to |theta|)")
    Nbs = [nullspace([X[i] for i in cur.kinks[j]], d) for j in movable]        # p_t x d, exact
    blocks = [len(Nb) for Nb in Nbs]
    nunk = sum(blocks) + k * len(movable) + bias_unknowns(problem, start)
    if nunk > EIGSY_UNKNOWNS:
        return _refine_fast(problem, W, A, movable, Nbs, fl, head, upd, pattern_out, has_c, dps, iters, deadline)
    Hx = forward(problem.X, problem.Y, W, A, act.alpha_plus, act.alpha_minus).H   # sigma(z_ij), exact
    with mp.workdps(dps):
        mpq = lambda q: mp.mpf(int(q.p)) / int(q.q)
        # the fixed neurons' outputs, term by term
        base = [[mp.mpf(0)] * k for _ in range(n)]
        for j in range(m):
            if j in movable:
                continue
            for i in range(n):
                if Hx[i, j] != 0:
                    for c in range(k):
                        base[i][c] += mpq(Hx[i, j] * A[j][c])
        Xmp = [[mpq(v) for v in row] for row in X]
        Nmp = [[[mpq(v) for v in col] for col in Nb] for Nb in Nbs]
        slopes_mp = [[None if cur.signs[i, j] == 0 else
                      mpq(act.alpha_plus if cur.signs[i, j] > 0 else act.alpha_minus) for i in range(n)]
                     for j in movable]
        if has_c:
            # the output bias as one more moving 'neuron' on a constant input coordinate: every x_i
            # gets a last coordinate 1 that no real neuron uses (their N_t get a 0 there), and the
            # bias neuron moves along that coordinate only, with slope 1 on every data point, so its
            # output u * a is c.  Its rescaling (u, a) -> (s u, a / s) is one more near-null direction
            # of H, which the least-norm steps hardly move along, as for every neuron
            Xmp = [row + [mp.mpf(1)] for row in Xmp]
            Nmp = [[col + [mp.mpf(0)] for col in Nt] for Nt in Nmp] + [[[mp.mpf(0)] * d + [mp.mpf(1)]]]
            slopes_mp = slopes_mp + [[mp.mpf(1)] * n]
        loss = PatternLoss(
            X=Xmp, N=Nmp, slopes=slopes_mp,
            offset=[[base[i][c] - mpq(problem.Y[i][c]) for c in range(k)] for i in range(n)],
            fsum=mp.fsum)
        # unknowns, neuron by neuron: u_t (least squares N_t^T u = w_t, w_t the float result), a_t
        theta = []
        for t, j in enumerate(movable):
            Nm = loss.N[t]
            wj = [mp.mpf(float(v)) for v in fl.W[j]] + ([mp.mpf(0)] if has_c else [])
            if Nm:
                G = mp.matrix([[mp.fsum(a * b for a, b in zip(Nm[p], Nm[q])) for q in range(len(Nm))]
                               for p in range(len(Nm))])
                rhs = mp.matrix([mp.fsum(a * b for a, b in zip(Nm[p], wj)) for p in range(len(Nm))])
                u = mp.lu_solve(G, rhs)
                theta += [u[p] for p in range(len(Nm))]
            theta += [mp.mpf(float(v)) for v in fl.A[j]]
        if has_c:
            theta += [mp.mpf(1)] + [mp.mpf(float(v)) for v in fl.c]
        th, gnorm, steps, out_of_time = _mp_newton(mp, loss, theta, dps, iters, deadline)
        if out_of_time:
            return None, (f"{head}, then {dps} digits: {steps} steps, gradient {mp.nstr(gnorm, 3)}: inconclusive, "
                          f"{_budget_text()} ran out before "
                          "the high-precision Newton converged")
        pos = 0
        for t, j in enumerate(movable):
            # round to rationals with dps - 5 significant digits (a non-zero value stays non-zero);
            # kinks stay exact since w = N^T u with rational u
            uq = [_mp_to_fmpq(x, dps) for x in th[pos:pos + blocks[t]]]
            W[j] = [sum((uq[p] * Nbs[t][p][q] for p in range(blocks[t])), fmpq(0)) for q in range(d)]
            A[j] = [_mp_to_fmpq(x, dps) for x in th[pos + blocks[t]:pos + blocks[t] + k]]
            pos += blocks[t] + k
        cvec = None
        if has_c:
            cvec = exact_vector([_mp_to_fmpq(th[pos] * th[pos + 1 + q], dps) for q in range(k)])
        note = f"{head}, then {dps} digits: {steps} steps, gradient {mp.nstr(gnorm, 3)}; rational rounding"
    if _refit_output_weights(problem, W, A, movable, cvec):
        note += ", output weights re-fitted exactly" if cvec is None else \
            ", output weights and output bias re-fitted exactly"
    if pattern_out is not None:
        pattern_out.append(upd)
    return Point(W, A, cvec), note


def _mp_newton(mp, loss: PatternLoss, theta: list, dps: int, iters: int, deadline: float = math.inf):
    """Damped least-norm Newton in mpmath on loss.gradient_hessian: the step
    -sum_e lambda_e (q_e . g) / (lambda_e^2 + mu^2) q_e over the eigenpairs of H, mu = |g| / |theta|
    (Newton's step where |lambda_e| >> mu, hardly any move along near-null directions), mu^2 enlarged
    tenfold while |g| (Euclidean; the step is a descent direction for it) does not decrease; stops
    after 5 steps in a row that do not halve |g|; below 10^-(dps - 10) only undamped steps that still
    decrease |g|, down to 10^-(dps - 3).  Returns (theta, max |g|, steps taken, whether the time
    ``deadline`` (time.monotonic()) passed before it converged)."""
    th = list(theta)
    P = len(th)
    g, Hl = loss.gradient_hessian(th)
    norm2 = lambda v: mp.sqrt(mp.fsum(x * x for x in v))
    gnorm = norm2(g)
    steps = slow = 0
    tiny = mp.mpf(10) ** (-(dps - 10))       # converged; then steps only while they still help,
    floor = mp.mpf(10) ** (-(dps - 3))       # down to the working precision (a rational zero rounds exactly)
    out_of_time = False
    for _ in range(iters):
        gmax = max(abs(v) for v in g)
        if gmax < floor:
            break
        if time.monotonic() > deadline:
            out_of_time = gmax >= tiny
            break
        ev, Q = mp.eigsy(mp.matrix(Hl))
        lmax = max(abs(ev[i]) for i in range(P))
        if lmax == 0:
            break
        ge = [mp.fsum(Q[p, e] * g[p] for p in range(P)) for e in range(P)]
        mu2 = (gnorm / max(norm2(th), tiny)) ** 2
        for _try in range(1 if gmax < tiny else 16):
            step = [mp.mpf(0)] * P
            for e in range(P):
                coef = ev[e] * ge[e] / (ev[e] ** 2 + mu2)
                for p in range(P):
                    step[p] -= coef * Q[p, e]
            cand = [a + b for a, b in zip(th, step)]
            g2, H2 = loss.gradient_hessian(cand)
            gn2 = norm2(g2)
            if gn2 < gnorm:
                slow = slow + 1 if gn2 > gnorm / 2 else 0
                th, g, Hl, gnorm = cand, g2, H2, gn2
                steps += 1
                break
            mu2 *= 10
        else:
            break
        if slow >= 5:             # no longer converging (a flat, degenerate stationary set): stop here
            break
    return th, max(abs(v) for v in g), steps, out_of_time


# ------------------------------------------------------------------------------------------------
# float64 stage
# ------------------------------------------------------------------------------------------------

class _FloatLoss:
    """The half_mean loss on a fixed pattern in float64, numpy (the same formulas as core's
    ``PatternLoss``): neuron t of ``movable`` moves as w_t = N_t^T u_t with orthonormal rows N_t
    spanning the inputs orthogonal to its kinks (or the rows of ``bases``); theta = (u_0, a_0, u_1, a_1,
    ..., c), the output bias c (k entries, added to every output) last when ``has_c``."""

    def __init__(self, problem: Problem, Wf: np.ndarray, Af: np.ndarray, signs: np.ndarray, movable: list,
                 has_c: bool = False, bases: list | None = None):
        X = problem.Xf
        self.X, self.n, self.d, self.k = X, problem.n, problem.d, problem.k
        self.movable = movable
        self.has_c = has_c
        ap = fmpq_to_float(problem.activation.alpha_plus)
        am = fmpq_to_float(problem.activation.alpha_minus)
        fixed = [j for j in range(Wf.shape[0]) if j not in movable]
        sl_all = np.where(signs > 0, ap, np.where(signs < 0, am, 0.0))
        base = (sl_all[:, fixed] * (X @ Wf[fixed].T)) @ Af[fixed] if fixed else np.zeros((self.n, self.k))
        self.offset = base - problem.Yf
        self.S = sl_all[:, movable]
        self.N = []
        if bases is not None:           # the caller's bases N_t (p_t x d, any full-rank rows)
            self.N = [np.asarray(Nt, dtype=float).reshape(-1, self.d) for Nt in bases]
            return
        for j in movable:
            K = X[signs[:, j] == 0]
            if len(K):
                _, sv, vt = np.linalg.svd(K)
                r = int((sv > 1e-12 * max(sv[0], 1e-300)).sum())
                self.N.append(vt[r:])
            else:
                self.N.append(np.eye(self.d))

    def pack(self, Wf: np.ndarray, Af: np.ndarray, cf: np.ndarray | None = None) -> np.ndarray:
        parts = [np.concatenate([N @ Wf[j], Af[j]]) for N, j in zip(self.N, self.movable)]
        if self.has_c:
            parts.append(np.asarray(cf, dtype=float))
        return np.concatenate(parts)

    def bias(self, th: np.ndarray) -> np.ndarray | None:
        """The output bias of theta (a copy), None without one."""
        return th[len(th) - self.k:].copy() if self.has_c else None

    def unpack(self, th: np.ndarray, Wf: np.ndarray, Af: np.ndarray):
        """Copies of (Wf, Af) with the movable neurons set from theta (the output bias: ``bias``)."""
        W, A = Wf.copy(), Af.copy()
        pos = 0
        for N, j in zip(self.N, self.movable):
            p = len(N)
            W[j] = N.T @ th[pos:pos + p]
            A[j] = th[pos + p:pos + p + self.k]
            pos += p + self.k
        return W, A

    def gradient_hessian(self, th: np.ndarray):
        n, k, X = self.n, self.k, self.X
        parts, pos = [], 0
        for N in self.N:
            p = len(N)
            parts.append((N, th[pos:pos + p], th[pos + p:pos + p + k], pos))
            pos += p + k
        E = self.offset.copy()
        if self.has_c:
            E += th[pos:pos + k][None, :]
        for t, (N, u, a, _) in enumerate(parts):
            E += np.outer(self.S[:, t] * (X @ (N.T @ u)), a)
        P = len(th)
        J = np.zeros((n * k, P))
        H2 = np.zeros((P, P))
        if self.has_c:                # de_ic / dc_c = 1; the outputs are linear in c (no H2 term)
            for c in range(k):
                J[c::k, pos + c] = 1.0
        for t, (N, u, a, pos) in enumerate(parts):
            p = len(N)
            h = self.S[:, t] * (X @ (N.T @ u))
            dh = self.S[:, t][:, None] * (X @ N.T)
            for c in range(k):
                J[c::k, pos:pos + p] = a[c] * dh
                J[c::k, pos + p + c] = h
                H2[pos:pos + p, pos + p + c] += dh.T @ E[:, c] / n
        return J.T @ E.reshape(-1) / n, J.T @ J / n + H2 + H2.T


@dataclass
class _FloatResult:
    W: np.ndarray
    A: np.ndarray
    pattern: Pattern
    rounds: list = field(default_factory=list)
    grad: float = math.inf        # relative max |g| at the result
    iters: int = 0
    move: float = 0.0             # |theta - theta_0| / |theta_0|
    stop: str = ""
    c: np.ndarray | None = None   # the output bias (floats), None without one


def _float_stage(problem: Problem, W: np.ndarray, A: np.ndarray, start: Point, pat: Pattern, movable: list,
                 update: bool, deadline: float = math.inf) -> _FloatResult:
    """Damped least-norm Newton (Levenberg-Marquardt, gain-ratio update of mu) in float64 from the
    checkpoint, with the pattern updates of ``refine_vector`` when ``update``; it stops when the time
    ``deadline`` (time.monotonic()) passes, saying so in ``stop``."""
    Xf = problem.Xf
    scale = max(float(np.abs(problem.Yf).max()) * float(np.linalg.norm(Xf, axis=1).max()), 1e-300)
    W0, A0 = exact_to_float(start.W), exact_to_float(start.A)
    has_c = start.c is not None
    c0 = start.cf if has_c else None
    norm0 = max(math.sqrt(float((W0 ** 2).sum() + (A0 ** 2).sum()) + (float(c0 @ c0) if has_c else 0.0)), 1e-300)
    Wc, Ac = exact_to_float(W), exact_to_float(A)          # projected onto the kinks
    cc = None if c0 is None else c0.copy()
    cur, signs = pat, pat.signs.copy()
    rounds: list = []
    seen = {signs.tobytes()}
    best = None                       # (W, A, pattern, rounds used, grad, pending release) at the last stationary point
    stop = ""

    def grad_rel(g):
        return float(np.abs(g).max()) / scale if len(g) else 0.0

    def restart():
        f = _FloatLoss(problem, Wc, Ac, signs, movable, has_c=has_c)
        th = f.pack(Wc, Ac, cc)
        g, H = f.gradient_hessian(th)
        return f, th, g, H

    f, th, g, H = restart()
    ev, Q = np.linalg.eigh(H)
    mu, nu = 1e-3 * max(float(np.abs(ev).max()), 1e-300), 2.0
    it = 0
    since = 0                         # steps since the last pattern change
    hist = []                         # relative gradient after each step of the current round
    th_round = th.copy()              # theta at the start of the current round
    extra = 0                         # steps granted beyond ROUND_ITERS (the gradient still falls geometrically)
    while it < FLOAT_ITERS:
        gr = grad_rel(g)
        if gr < FLOAT_GTOL:
            Wc, Ac = f.unpack(th, Wc, Ac)
            cc = f.bias(th)
            # strict pairs that Newton brought onto their kinks in the limit (|z| / (|w||x|) below
            # LIMIT_KINK, not yet across) are kinks of the stationary point: make them kinks first
            limit = _limit_kinks(Xf, Wc, signs, movable) if update else []
            if limit:
                if len(rounds) >= _exact.PATTERN_ROUNDS:
                    stop = f"the {_exact.PATTERN_ROUNDS} pattern rounds are used up"
                    break
                done = apply_crossings([list(r) for r in problem.X.tolist()], signs, limit)
                rounds.append({"round": len(rounds) + 1, "what": "kink", "pairs": done, "at": 1.0,
                               "note": f"{_pairs_text(done)} (on the kink at the stationary point, up to "
                                       "float rounding)"})
            else:
                rel = kink_releases(problem, Wc, Ac, signs, movable, cc)[:1] if update else []
                best = (Wc.copy(), Ac.copy(), cur, len(rounds), gr, rel, None if cc is None else cc.copy())
                if not rel:
                    break
                if len(rounds) >= _exact.PATTERN_ROUNDS:
                    stop = (f"the {_exact.PATTERN_ROUNDS} pattern rounds are used up (kink {_pairs_text(rel)} would be "
                            "released)")
                    break
                for j, i, side in rel:
                    signs[i, j] = side
                rounds.append({"round": len(rounds) + 1, "what": "release", "pairs": rel, "at": None,
                               "note": f"kink released {_pairs_text(rel)} (its float multiplier shows a descent "
                                       "to that side)"})
        else:
            if since >= ROUND_ITERS + extra:
                if _falls_geometrically(hist, gr, FLOAT_ITERS - it):
                    extra += ROUND_ITERS
                else:
                    stop = (f"no stationary point within {ROUND_ITERS + extra} steps after round {len(rounds)}: "
                            + _stall_diagnosis(f, th_round, th, g, H, Wc, Ac, hist))
                    break
            if time.monotonic() > deadline:
                stop = (f"{_budget_text()} ran out after "
                        f"{it} float steps")
                break
            it += 1
            since += 1
            ge = Q.T @ g
            step = -Q @ (ev * ge / (ev ** 2 + mu ** 2))
            g2, H2 = f.gradient_hessian(th + step)
            pred = float(g @ g - np.sum((g + H @ step) ** 2))
            rho = float(g @ g - g2 @ g2) / pred if pred > 0 else -1.0
            if not rho > 0:
                mu, nu = mu * nu, nu * 2
                if not math.isfinite(mu) or mu > 1e30 * max(float(np.abs(ev).max()), 1e-300):
                    stop = "the damped steps stopped decreasing the gradient"
                    break
                continue
            if update:
                Wa, Aa = f.unpack(th, Wc, Ac)
                Wb, Ab = f.unpack(th + step, Wc, Ac)
                cross = crossings(Xf @ Wa.T, Xf @ Wb.T, signs, movable)
            else:
                cross = []
            if not cross:
                th, g, H = th + step, g2, H2
                hist.append(grad_rel(g))
                mu, nu = mu * max(1 / 3, 1 - (2 * rho - 1) ** 3), 2.0
                ev, Q = np.linalg.eigh(H)
                continue
            if len(rounds) >= _exact.PATTERN_ROUNDS:
                stop = f"the {_exact.PATTERN_ROUNDS} pattern rounds are used up"
                break
            t = cross[0][0]
            first = [(j, i) for tt, j, i in cross if tt <= t + 1e-12]
            Wc, Ac = Wa + t * (Wb - Wa), Aa + t * (Ab - Aa)
            if has_c:
                ca, cb = f.bias(th), f.bias(th + step)
                cc = ca + t * (cb - ca)
            done = apply_crossings([list(r) for r in problem.X.tolist()], signs, first)
            what = "kink" if all(s_ == 0 for _, _, s_ in done) else "flip"
            rounds.append({"round": len(rounds) + 1, "what": what, "pairs": done, "at": float(t),
                           "note": f"{_pairs_text(done)} (reached at {float(t):.3g} of a Newton step)"})
        since = 0
        key = signs.tobytes()
        if key in seen and rounds and rounds[-1]["what"] == "release":
            stop = f"round {len(rounds)} came back to a pattern already solved"
            break
        seen.add(key)
        cur = updated_pattern(cur, signs)
        f, th, g, H = restart()
        hist, th_round, extra = [], th.copy(), 0
        ev, Q = np.linalg.eigh(H)
        nu = 2.0
    else:
        stop = f"{FLOAT_ITERS} float steps used up"
    if best is not None:
        Wc, Ac, cur, r, gr, pending, cc = best
        rounds, stop = settle_rounds(rounds, r, pending, stop)
    else:
        Wc, Ac = f.unpack(th, Wc, Ac)
        cc = f.bias(th)
        gr = grad_rel(g)
    _rescale_toward(Wc, Ac, W0, A0, movable)
    move = math.sqrt(float(((Wc - W0) ** 2).sum() + ((Ac - A0) ** 2).sum())
                     + (float(((cc - c0) ** 2).sum()) if has_c else 0.0)) / norm0
    return _FloatResult(Wc, Ac, cur, rounds, gr, it, move, stop.lstrip("; "), c=cc)


STALL_GROWTH = 1.5       # float stage: a neuron whose |w||a| grew by this factor in a stalled round runs off
STALL_FLAT = 1e-5        # float stage: Hessian eigenvalues below this fraction of the largest are near-flat


def _falls_geometrically(hist: list, gr: float, left: int) -> bool:
    """Whether the relative gradient of the round still falls geometrically, fast enough that the
    ``left`` float steps reach FLOAT_GTOL at the rate of the last ROUND_ITERS // 5 steps (a slow,
    well-conditioned convergence that only needs more steps, not a stall)."""
    w = max(ROUND_ITERS // 5, 1)
    if len(hist) <= w or not gr > FLOAT_GTOL or left <= 0:
        return False
    before = hist[-w - 1]
    if not (before > 0 and gr < before / 2):
        return False
    per_step = math.log(gr / before) / w           # < 0
    return math.log(FLOAT_GTOL / gr) / per_step <= left


def _stall_diagnosis(f: _FloatLoss, th0: np.ndarray, th: np.ndarray, g: np.ndarray, H: np.ndarray,
                     Wc: np.ndarray, Ac: np.ndarray, hist: list) -> str:
    """Why a round of damped Newton stalled, in words: neurons running off (|w_t||a_t| grew by
    STALL_GROWTH or more in the round: the loss keeps decreasing towards infinity along the pattern,
    e.g. a near-parallel pair with opposite output weights approximating a derivative of sigma), or
    the gradient lying along near-flat directions of the Hessian (eigenvalues below STALL_FLAT of the
    largest, which the damped step hardly moves along and along which an undamped step leaves the
    quadratic model: a flat valley); either way there is no stationary point of the pattern within
    reach of Newton's method from the checkpoint.  Only words for the stop reason: nothing is decided."""
    W0, A0 = f.unpack(th0, Wc, Ac)
    W1, A1 = f.unpack(th, Wc, Ac)
    size = lambda W, A, j: float(np.linalg.norm(W[j]) * np.linalg.norm(A[j]))
    grow = [(size(W1, A1, j) / max(size(W0, A0, j), 1e-300), j) for j in f.movable]
    w = min(len(hist) - 1, max(ROUND_ITERS // 5, 1))
    fall = (f" (relative gradient {hist[-w - 1]:.2e} -> {hist[-1]:.2e} over the last {w} steps)"
            if w > 0 else "")
    runners = sorted([x for x in grow if x[0] >= STALL_GROWTH], reverse=True)
    if runners:
        js = sorted(j for _, j in runners)
        txt = ", ".join(f"{j}: {size(W0, A0, j):.3g} -> {size(W1, A1, j):.3g}" for j in js)
        out = f"neurons {js} run off to infinity (|w_j||a_j| {txt}){fall}"
        if len(runners) >= 2:
            j1, j2 = runners[0][1], runners[1][1]
            cw = float(W1[j1] @ W1[j2]) / max(float(np.linalg.norm(W1[j1]) * np.linalg.norm(W1[j2])), 1e-300)
            ca = float(A1[j1] @ A1[j2]) / max(float(np.linalg.norm(A1[j1]) * np.linalg.norm(A1[j2])), 1e-300)
            out += f", neurons {j1} and {j2} with cos(w) = {cw:.4f}, cos(a) = {ca:.4f}"
            if cw > 0.99 and ca < -0.99:
                out += " (a near-parallel pair with opposite output weights: a difference quotient of sigma)"
        return out + ": the loss decreases towards infinity along this pattern, no stationary point nearby"
    ev, Q = np.linalg.eigh(H)
    ge = Q.T @ g
    top = max(float(np.abs(ev).max()), 1e-300)
    flat = np.abs(ev) <= STALL_FLAT * top
    share = math.sqrt(float((ge[flat] ** 2).sum()) / max(float(ge @ ge), 1e-300))
    if share > 0.5:
        keep = np.abs(ev) > 1e-12 * top
        newton = float(np.linalg.norm(ge[keep] / ev[keep])) / max(float(np.linalg.norm(th)), 1e-300)
        small = float(np.abs(ev[flat]).max()) / top if flat.any() else 0.0
        return (f"{share:.0%} of the gradient lies along near-flat Hessian directions (eigenvalues up to "
                f"{small:.1e} of the largest), where an undamped Newton step would move theta by {newton:.2g} "
                f"relative to |theta|{fall}: a flat valley, no stationary point within Newton's reach")
    return f"the damped steps made slow progress{fall}"


# ------------------------------------------------------------------------------------------------
# high precision above EIGSY_UNKNOWNS: exact gradient, float64 Hessian steps
# ------------------------------------------------------------------------------------------------

class _ExactGradient:
    """The gradient of the half_mean loss on a fixed pattern, exactly (flint fmpq matrices), at
    theta = (u_0, a_0, ..., u_{M-1}, a_{M-1}[, c]) with w_t = N_t^T u_t for the exact bases N_t of
    ``refine_vector`` and the output bias c last.  The loss and its gradient g = (1/n) J^T e are those
    of core's ``PatternLoss`` (with c an additive output term), evaluated block-wise by matrix
    products instead of entry by entry: Z = X W^T (the moving neurons), h_it = s_it z_it,
    E = offset + H A (+ 1 c^T), g_{a_t} = (H^T E)_t / n, g_{w_t} = ((S o E A^T)^T X)_t / n,
    g_{u_t} = N_t g_{w_t}, g_c = (1/n) sum_i e_i; about n M (d + k) exact operations, not P^2 n k.
    (core/hessian.py's PatternLoss computes g only together with H; this is its gradient alone.)"""

    def __init__(self, problem: Problem, Nbs: list, signs: np.ndarray, movable: list, offset, has_c: bool):
        act = problem.activation
        self.n, self.d, self.k = problem.n, problem.d, problem.k
        self.X = fmpq_mat(self.n, self.d, problem.X.reshape(-1).tolist())
        self.Nb = [fmpq_mat(len(Nb), self.d, [v for r in Nb for v in r]) if Nb else None for Nb in Nbs]
        self.sizes = [len(Nb) for Nb in Nbs]
        # slopes on the pattern: 0 on a kink pair (sigma(0) = 0, x_i takes no part there)
        self.S = [[act.alpha_plus if signs[i, j] > 0 else act.alpha_minus if signs[i, j] < 0 else fmpq(0)
                   for j in movable] for i in range(self.n)]
        self.offset = offset              # fmpq_mat n x k: the fixed neurons' outputs - y
        self.has_c = has_c

    def gradient(self, th: list) -> list:
        n, d, k = self.n, self.d, self.k
        M = len(self.sizes)
        Wm, Am = fmpq_mat(M, d), fmpq_mat(M, k)
        pos = 0
        for t, p in enumerate(self.sizes):
            if p:
                w = fmpq_mat(1, p, th[pos:pos + p]) * self.Nb[t]
                for q in range(d):
                    Wm[t, q] = w[0, q]
            for c in range(k):
                Am[t, c] = th[pos + p + c]
            pos += p + k
        Z = self.X * Wm.transpose()
        S = self.S
        Hm = fmpq_mat(n, M, [S[i][t] * Z[i, t] for i in range(n) for t in range(M)])
        E = self.offset + Hm * Am
        if self.has_c:
            E = E + fmpq_mat(n, k, th[pos:pos + k] * n)
        gA = Hm.transpose() * E
        R = E * Am.transpose()
        Rs = fmpq_mat(n, M, [S[i][t] * R[i, t] for i in range(n) for t in range(M)])
        gW = Rs.transpose() * self.X
        out = []
        for t, p in enumerate(self.sizes):
            if p:
                gu = self.Nb[t] * fmpq_mat(d, 1, [gW[t, q] for q in range(d)])
                out += [gu[r, 0] / n for r in range(p)]
            out += [gA[t, c] / n for c in range(k)]
        if self.has_c:
            out += [sum((E[i, c] for i in range(n)), fmpq(0)) / n for c in range(k)]
        return out


def _fast_newton(grad: _ExactGradient, floss: _FloatLoss, theta: list, dps: int, iters: int,
                 deadline: float = math.inf):
    """The damped least-norm Newton of ``_mp_newton`` with the same steps, stops and damping, but each
    step from a float64 Hessian (numpy eigendecomposition at theta rounded to floats) against the
    EXACT gradient (``_ExactGradient``), theta exact (fmpq; a float step is added exactly), |g|
    compared exactly.  The float Hessian is within ~1e-16 |H| of the true one, so each step removes
    all but ~cond(H) 1e-16 of the gradient (linear convergence, many digits a step); a step that does
    not decrease |g| is retried with more damping, as there.  About n k P float and n M (d + k) exact
    operations a step instead of P^3 mpmath ones for eigsy.  Returns (theta, max |g| as a float, steps
    taken, whether the time ``deadline`` passed before it converged)."""
    th = list(theta)
    g = grad.gradient(th)
    gn2 = sum((v * v for v in g), fmpq(0))
    steps = slow = 0
    tiny = fmpq(1, 10 ** (dps - 10))
    floor = fmpq(1, 10 ** (dps - 3))
    out_of_time = False
    for _ in range(iters):
        gmax = max((abs(v) for v in g), default=fmpq(0))
        if gmax < floor:
            break
        if time.monotonic() > deadline:
            out_of_time = gmax >= tiny
            break
        thf = np.array([fmpq_to_float(v) for v in th])
        _, Hf = floss.gradient_hessian(thf)
        ev, Q = np.linalg.eigh(Hf)
        if not np.abs(ev).max() > 0:
            break
        gf = np.array([fmpq_to_float(v) for v in g])
        ge = Q.T @ gf
        mu2 = (math.sqrt(fmpq_to_float(gn2)) / max(float(np.linalg.norm(thf)), fmpq_to_float(tiny))) ** 2
        for _try in range(1 if gmax < tiny else 16):
            step = -Q @ (ev * ge / (ev ** 2 + mu2))
            cand = [a + fmpq(*float(b).as_integer_ratio()) for a, b in zip(th, step)]
            g2 = grad.gradient(cand)
            gn2b = sum((v * v for v in g2), fmpq(0))
            if gn2b < gn2:
                slow = slow + 1 if 4 * gn2b > gn2 else 0        # |g| not halved
                th, g, gn2 = cand, g2, gn2b
                steps += 1
                break
            mu2 *= 10
        else:
            break
        if slow >= 5:
            break
    return th, fmpq_to_float(max((abs(v) for v in g), default=fmpq(0))), steps, out_of_time


def _refine_fast(problem: Problem, W, A, movable: list, Nbs: list, fl: _FloatResult, head: str,
                 upd: PatternUpdate, pattern_out: list | None, has_c: bool, dps: int, iters: int,
                 deadline: float):
    """The high-precision stage of ``refine_vector`` above EIGSY_UNKNOWNS unknowns: ``_fast_newton``
    from the float result on the final pattern, in the unknowns (u_t, a_t) per moving neuron and c,
    then the same rational rounding (``dps`` - 5 significant digits) and exact refit as there."""
    import mpmath as mp
    n, d, k, m = problem.n, problem.d, problem.k, W.shape[0]
    act = problem.activation
    cur = fl.pattern
    Hx = forward(problem.X, problem.Y, W, A, act.alpha_plus, act.alpha_minus).H   # sigma(z_ij), exact
    fixed = [j for j in range(m) if j not in movable]
    off = [[sum((Hx[i, j] * A[j][c] for j in fixed), fmpq(0)) - problem.Y[i][c] for c in range(k)]
           for i in range(n)]
    grad = _ExactGradient(problem, Nbs, cur.signs, movable, fmpq_mat(n, k, [v for r in off for v in r]), has_c)
    floss = _FloatLoss(problem, exact_to_float(W), exact_to_float(A), cur.signs, movable, has_c=has_c,
                       bases=[exact_to_float(np.array(Nb, dtype=object)) if Nb else np.zeros((0, d)) for Nb in Nbs])
    exact_float = lambda v: fmpq(*float(v).as_integer_ratio())
    theta = []
    for t, j in enumerate(movable):
        Nf = floss.N[t]
        if len(Nf):
            u = np.linalg.lstsq(Nf.T, fl.W[j], rcond=None)[0]     # N_t^T u = w_t, least squares
            theta += [exact_float(v) for v in u]
        theta += [exact_float(v) for v in fl.A[j]]
    if has_c:
        theta += [exact_float(v) for v in fl.c]
    th, gmax, steps, out_of_time = _fast_newton(grad, floss, theta, dps, iters, deadline)
    what = f"{head}, then exact-gradient Newton with float64 Hessian steps to {dps} digits: {steps} steps, " \
           f"gradient {gmax:.3g}"
    if out_of_time:
        return None, (f"{what}: inconclusive, {_budget_text()} ran out before the high-precision Newton "
                      "converged")
    W, A = W.copy(), A.copy()
    with mp.workdps(dps):
        rnd = lambda q: _mp_to_fmpq(mp.mpf(int(q.p)) / int(q.q), dps)
        pos = 0
        for t, j in enumerate(movable):
            p = len(Nbs[t])
            uq = [rnd(x) for x in th[pos:pos + p]]
            W[j] = [sum((uq[r] * Nbs[t][r][q] for r in range(p)), fmpq(0)) for q in range(d)]
            A[j] = [rnd(x) for x in th[pos + p:pos + p + k]]
            pos += p + k
        cvec = exact_vector([rnd(x) for x in th[pos:pos + k]]) if has_c else None
    note = f"{what}; rational rounding"
    if _refit_output_weights(problem, W, A, movable, cvec):
        note += ", output weights re-fitted exactly" if cvec is None else \
            ", output weights and output bias re-fitted exactly"
    if pattern_out is not None:
        pattern_out.append(upd)
    return Point(W, A, cvec), note


def _limit_kinks(Xf: np.ndarray, Wf: np.ndarray, signs: np.ndarray, movable: list) -> list:
    """Strict pairs (j, i) of ``movable`` with |w_j . x_i| / (|w_j| |x_i|) < LIMIT_KINK."""
    xn = np.linalg.norm(Xf, axis=1)
    out = []
    for j in movable:
        wn = float(np.linalg.norm(Wf[j]))
        for i in range(Xf.shape[0]):
            if signs[i, j] != 0 and abs(float(Xf[i] @ Wf[j])) < LIMIT_KINK * wn * xn[i]:
                out.append((j, i))
    return out


def _rescale_toward(Wf: np.ndarray, Af: np.ndarray, W0: np.ndarray, A0: np.ndarray, movable: list) -> None:
    """Rescale each movable neuron (c w, a / c), c > 0 (the same network), to the c minimising
    |c w - w0|^2 + |a / c - a0|^2 (Newton on the 1-D problem; kept only when it is nearer)."""
    for j in movable:
        w, a, w0, a0 = Wf[j], Af[j], W0[j], A0[j]
        if not (w @ w > 0 and a @ a > 0):
            continue
        dist = lambda c: float(((c * w - w0) ** 2).sum() + ((a / c - a0) ** 2).sum())
        c = 1.0
        for _ in range(100):
            d1 = 2 * (c * w - w0) @ w - 2 * (a / c - a0) @ a / c ** 2
            d2 = 2 * (w @ w) + 6 * (a @ a) / c ** 4 - 4 * (a0 @ a) / c ** 3
            c2 = c - d1 / d2 if d2 > 0 else c * (0.5 if d1 > 0 else 2.0)
            c2 = min(max(c2, c / 4), 4 * c)
            if abs(c2 - c) <= 1e-15 * c:
                c = c2
                break
            c = c2
        if c > 0 and math.isfinite(c) and dist(c) < dist(1.0):
            Wf[j] = c * w
            Af[j] = a / c


def _refit_output_weights(problem: Problem, W, A, movable: list, cvec=None) -> bool:
    """Exact least-squares refit of the movable neurons' output weights for fixed rational W, with
    the least change: afterwards G_j = 0 exactly for them (S1).  With an output bias ``cvec`` (a 1-D
    object array, changed in place) c is refitted with them (a constant column of the design), so
    that the residuals also sum to zero exactly, (S0) of docs/biases.md §3.3."""
    n, k = problem.n, problem.k
    act = problem.activation
    # sigma(w_j . x_i) of the movable neurons (n x |movable|), and what is left for them to fit
    H = forward(problem.X, problem.Y, W[movable], A[movable], act.alpha_plus, act.alpha_minus).H.tolist()
    if cvec is not None:
        H = [row + [fmpq(1)] for row in H]
    ncol = len(movable) + (0 if cvec is None else 1)
    targets = targets_without(problem, W, A, movable)
    Ht = [[H[i][t] for i in range(n)] for t in range(ncol)]
    cols = independent_subset(Ht)
    if not cols:
        return False
    Hb = mat([[H[i][t] for t in cols] for i in range(n)])
    for c in range(k):
        y = targets[:, c].tolist()
        coef = (Hb.transpose() * Hb).solve(Hb.transpose() * fmpq_mat(n, 1, y))
        fstar = [sum((Hb[i, t] * coef[t, 0] for t in range(len(cols))), fmpq(0)) for i in range(n)]
        a0 = [A[j][c] for j in movable] + ([] if cvec is None else [cvec[c]])
        rhs = [fstar[i] - sum((H[i][t] * a0[t] for t in range(ncol)), fmpq(0)) for i in range(n)]
        da = least_norm_solve(H, rhs)
        if da is None:
            return False
        for t, j in enumerate(movable):
            A[j][c] = a0[t] + da[t]
        if cvec is not None:
            cvec[c] = a0[-1] + da[-1]
    return True


def _mp_to_fmpq(x, dps: int) -> fmpq:
    """x rounded to dps - 5 significant decimal digits, as an exact rational (0 only for x = 0)."""
    import mpmath as mp
    if x == 0:
        return fmpq(0)
    e = int(mp.floor(mp.log10(abs(x))))
    digits = dps - 5 - 1 - e                       # decimal places giving dps - 5 significant digits
    if digits >= 0:
        fr = Fraction(int(mp.nint(x * mp.mpf(10) ** digits)), 10 ** digits)
    else:
        fr = Fraction(int(mp.nint(x / mp.mpf(10) ** (-digits))) * 10 ** (-digits))
    return fmpq(fr.numerator, fr.denominator)
