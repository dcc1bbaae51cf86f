"""Exact rational refinement on a fixed activation pattern (THEORY §6.2, §6.3): on the pattern the output
is linear in the alive neurons' parameters (scalar output: in v_j = |a_j| w_j; any output: in the
group products C_g = sum_j a_j u_j^T of an activation-pattern group), so the nearest point with zero
pattern-gradient and exact kinks is an exact linear least-squares problem."""
from __future__ import annotations

import math
import time

import numpy as np
from flint import fmpq, fmpq_mat

from relucert.core.formulas import preactivations
from relucert.core.linalg import derived, dot, independent_subset, mat, nullspace, to_fmpq_mat
from relucert.core.problem import Point, Problem, fmpq_to_float, nearest_float, qstr
from relucert.refine.classify import Pattern, _floats_in_range, exact_signs, filtered_signs
import relucert.refine.exact as _exact
from relucert.refine.exact import (PatternUpdate, _pairs_text, apply_crossings, crossings,
                                   kink_releases, least_norm_solve, least_squares_choice, nearest_solve,
                                   nearest_exact_bits, rounded_nearest, rows_mat, Inconsistent,
                                   project_onto_kinks, rational_sqrt, settle_rounds, split_metric_block,
                                   targets_without, updated_pattern, centring_bias, exact_vector)


def refine_scalar(problem: Problem, start: Point, pat: Pattern, reading: str,
                  least_squares: str | None = None, pattern_out: list | None = None) -> tuple[Point | None, str]:
    """Exact rational refinement for k = 1 (THEORY §6.2).

    Among all exact solutions v of the fixed-pattern system (kink equalities C v = 0 and M v = f*,
    i.e. the normal equations on the pattern), ``least_squares="nearest"`` (the default, see
    ``refine.exact.LEAST_SQUARES``) takes the one nearest the checkpoint's v0 = |a| w in the metric
    sum_j dv_j^T P_j^{-1} dv_j (``split_metric_block``: the theta-distance, to first order, after the
    split-back of step 4): dv = P K_b^T lam, (K_b P K_b^T) lam = r, exactly; when that solution would
    carry long rationals (``exact.NEAREST_EXACT_MAX_BITS``), the exact solution nearest to working
    precision, with short rationals (``exact.rounded_nearest``).  If that solution flips
    strict pairs (i, j) of the pattern, the rows x_i . dv_j = 0 are added for them (the pre-activation
    keeps its current value, of the right sign) and the nearest solution of the enlarged system is
    taken, up to ``PIN_ROUNDS`` rounds, as long as it stays consistent: the nearest solution of the
    fixed-pattern system among those that keep the flipped pairs where they were.  "legacy" is the
    earlier diagonal relative weighting, never pinned, never pattern-updated.

    Pattern updates (only with ``pattern_out``, a list; "nearest" only): when the solution still
    leaves the pattern, v moves from its current value towards it, exactly, up to the first strict
    pair that reaches its kink (the fraction t of the step is exact); that pair becomes a kink (or
    flips sign when its neuron has no room for one more kink, ``exact.kink_allowed``) and the nearest
    solution on the updated pattern is solved from there.  At a solution inside its pattern, kinks
    whose float multiplier shows a descent to one side are released to that side
    (``exact.kink_releases``) and the solve is repeated.  At most ``exact.PATTERN_ROUNDS`` rounds; a
    pattern seen before ends them.  The pattern the returned point was solved on is appended to
    ``pattern_out`` as an ``exact.PatternUpdate`` (the caller must check the point against it)."""
    n, d, m = problem.n, problem.d, start.m
    X = problem.X.tolist()
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    W, A = start.W.copy(), start.A.copy()
    movable = [j for j in range(m) if pat.status[j] == "alive"]
    movable_set = set(movable)
    Wl = W.tolist()                   # rows as lists (the same entries), read instead of numpy rows
    # fixed neurons: project their input weights onto their kinks; the rest of y is left to fit
    for j in range(m):
        if j in movable_set:
            continue
        if all(v == 0 for v in Wl[j]):
            continue
        kx = [X[i] for i in pat.kinks[j]]
        if kx:                        # (no kink: the projection is w_j itself)
            W[j] = Wl[j] = project_onto_kinks(Wl[j], kx)
    has_c = start.c is not None       # the output bias c is one more unknown, the last one of v
    if not movable:
        if pattern_out is not None:
            pattern_out.append(PatternUpdate(pat))
        if has_c:
            return Point(W, A, centring_bias(problem, W, A)), "no alive neuron to refine; output bias centred exactly"
        return Point(W, A), "no alive neuron to refine"
    y = targets_without(problem, W, A, movable)[:, 0].tolist()
    Al = A.tolist()
    eps = [1 if Al[j][0] > 0 else -1 for j in movable]
    v0 = []
    for j in movable:
        aj = abs(Al[j][0])
        v0 += [aj * w for w in Wl[j]]
    if has_c:
        v0.append(start.c[0])
    sys_ = _ScalarSystem(X, y, movable, eps, ap, am, d, W, A, has_c=has_c, X_array=problem.X)
    rounds: list = []
    cur, stop = pat, ""
    split = None                      # the kept split-back of these rounds (below), if any
    if least_squares_choice(least_squares) == "legacy":
        K, rhs, why = sys_.build(pat, v0)
        if K is None:
            return None, why
        wts = []
        for t in range(len(movable)):
            vn = math.sqrt(sum(fmpq_to_float(x) ** 2 for x in v0[t * d:(t + 1) * d]))
            wts += [rational_sqrt(vn * vn) if vn > 0 else fmpq(1)] * d
        if has_c:
            wts.append(abs(v0[-1]) if v0[-1] != 0 else fmpq(1))
        dv = least_norm_solve(K, rhs, wts)
        if dv is None:
            return None, "inconsistent refinement system"
        v = [a + b for a, b in zip(v0, dv)]
    else:
        P = _Metric(Wl, Al, movable, has_c)
        # the rounds are a function of their inputs (``_ScalarSystem.rounds_key``): a reading that
        # changes only neurons contributing nothing on the data poses the same rounds again
        key = sys_.rounds_key(pat, v0, P, pattern_out is not None, problem.Yf)
        hit = _exact._SOLVED.get(key)
        if hit is not None:
            _exact._SOLVED.move_to_end(key)
            v, cur, rounds, stop, split = hit
            v, rounds = (None if v is None else list(v)), [dict(r) for r in rounds]
        else:
            v, cur, rounds, stop = _scalar_rounds(problem, X, sys_, pat, v0, P, movable, pattern_out is not None)
            if "time budget" not in stop:       # a result cut short by the clock is not kept
                # the split-back below is a function of the key too (v; the movable neurons' w_j,
                # |a_j| and signs are in it): it is kept with the rounds once computed
                split = {}
                _exact.remember(key, (None if v is None else list(v), cur, [dict(r) for r in rounds], stop, split))
        if v is None:
            return None, stop if not rounds else ("exact rational least squares on the pattern; "
                                                  + PatternUpdate(cur, rounds).describe(pat) + "; " + stop)
    # split back, neuron by neuron (the floats as before: nearest float64 of each entry, summed in order)
    done = None if split is None else split.get("rows")
    if done is not None:
        for j, (wr, ar) in zip(movable, done):
            Wl[j], Al[j] = list(wr), list(ar)
    vf = _floats(v) if done is None else []
    sW, sA = start.W.tolist(), start.A.tolist()
    for t, (j, e) in enumerate(zip(movable, eps) if done is None else ()):
        vj = v[t * d:(t + 1) * d]
        vn = math.sqrt(sum(x ** 2 for x in vf[t * d:(t + 1) * d]))
        if vn == 0:
            Wl[j] = [fmpq(0)] * d
            Al[j] = [fmpq(0)]
            continue
        wn0 = math.sqrt(sum(x ** 2 for x in _floats(sW[j])))
        kappa = fmpq_to_float(abs(sA[j][0])) / max(wn0, 1e-300)
        amag = rational_sqrt(kappa * vn)
        inv = 1 / amag                         # x * (1/amag) = x / amag exactly, one division per neuron
        Wl[j] = [x * inv for x in vj]
        Al[j] = [e * amag]
    if done is None and split is not None:
        split["rows"] = [(tuple(Wl[j]), tuple(Al[j])) for j in movable]
    W, A = _object_rows(Wl, m, d), _object_rows(Al, m, start.A.shape[1])
    note = "exact rational least squares on the pattern"
    cnew = exact_vector([v[-1]]) if has_c else None
    if has_c:
        note += " (output bias c among the unknowns)"
    if pattern_out is not None:
        upd = PatternUpdate(cur, rounds)
        pattern_out.append(upd)
        if rounds:
            note += "; " + upd.describe(pat)
        if stop:
            note += "; " + stop
        elif rounds:
            note += "; the refined point solves the normal equations of the updated pattern exactly"
    return Point(W, A, cnew), note


def _floats(vals) -> list:
    """fmpq_to_float of each entry (one pass; the same floats)."""
    try:
        return [nearest_float(x) for x in vals]
    except OverflowError:
        return [fmpq_to_float(x) for x in vals]


def _object_rows(rows: list, nrows: int, ncols: int) -> np.ndarray:
    """An nrows x ncols object array holding the entries of the row lists (the same objects)."""
    out = np.empty(nrows * ncols, dtype=object)
    out[:] = [v for r in rows for v in r]
    return out.reshape(nrows, ncols)


def _scalar_rounds(problem: Problem, X: list, sys_: "_ScalarSystem", pat: Pattern, v0: list, P: "_Metric",
                   movable: list, update: bool):
    """The nearest solution, with pattern rounds when ``update`` (``refine_scalar``).

    Returns (v or None, the pattern v was solved on, the rounds that led to it, a note on why the
    rounds stopped early or "").  The returned v is the last solution that lies inside its pattern;
    when there is none, the last solution found (it leaves its pattern; the caller reports that);
    None when the very first system is inconsistent."""
    v, cur, rounds = list(v0), pat, []
    best = last_out = None            # (v, pattern, number of rounds) inside / outside its pattern
    seen, stop = {pat.signs.tobytes()}, ""
    while True:
        t_round = time.monotonic()
        vnew, why = sys_.nearest(cur, v, P)
        if vnew is None:
            if not rounds:
                return None, cur, [], why
            stop = f"after round {len(rounds)}: {why} on the updated pattern"
            break
        if not update:
            return vnew, cur, [], ""
        signs = cur.signs.copy()
        cross = sys_.crossings(v, vnew, signs)
        if not cross:
            Wf, Af = sys_.float_point(problem, vnew)
            rel = kink_releases(problem, Wf, Af, signs, movable, sys_.float_c(vnew))[:1]
            best = (vnew, cur, len(rounds), rel)
            if not rel:
                break
            if len(rounds) >= _exact.PATTERN_ROUNDS:
                stop = (f"the {_exact.PATTERN_ROUNDS} pattern rounds are used up (kink {_pairs_text(rel)} would be "
                        "released)")
                break
            for j, i, side in rel:
                signs[i, j] = side
            v = vnew
            rounds.append({"round": len(rounds) + 1, "what": "release", "pairs": rel, "at": None,
                           "note": f"kink released {_pairs_text(rel)} (its float multiplier shows a descent "
                                   "to that side)"})
        else:
            last_out = (vnew, cur, len(rounds))
            if len(rounds) >= _exact.PATTERN_ROUNDS:
                stop = f"the {_exact.PATTERN_ROUNDS} pattern rounds are used up"
                break
            t = cross[0][0]
            first = [(j, i) for tt, j, i in cross if tt == t]
            v = [a + t * (b - a) for a, b in zip(v, vnew)]        # exact: those pairs are now exactly 0
            done = apply_crossings(X, signs, first)
            what = "kink" if all(s_ == 0 for _, _, s_ in done) else "flip"
            rounds.append({"round": len(rounds) + 1, "what": what, "pairs": done, "at": fmpq_to_float(t),
                           "note": f"{_pairs_text(done)} (reached at {fmpq_to_float(t):.3g} of the step to the "
                                   "pattern's nearest stationary point)"})
        key = signs.tobytes()
        if key in seen:
            stop = f"round {len(rounds)} came back to a pattern already solved"
            break
        seen.add(key)
        cur = updated_pattern(cur, signs)
        if _exact.out_of_time():
            stop = f"{_exact.budget_text()} ran out after round {len(rounds)}"
            break
        # the rounds only get longer (longer numbers, more rows): one that would not end within the
        # budget is not started
        took = time.monotonic() - t_round
        if time.monotonic() + took > _exact.deadline():
            stop = (f"{_exact.budget_text()} would run out during round {len(rounds) + 1} (round "
                    f"{len(rounds)} took {took:.1f} s)")
            break
    if best is not None:
        v, bpat, r, pending = best
        kept, note = settle_rounds(rounds, r, pending, stop)
        return v, bpat, kept, note
    if last_out is not None:
        v, lpat, r = last_out
        return v, lpat, rounds[:r], (stop + "; " if stop else "") + "no solution inside its pattern was found"
    return None, cur, rounds, stop


# "nearest" choice, scalar output: when the nearest exact solution flips strict pairs of the pattern,
# pin those pre-activations to their current values and take the nearest solution again, at most
# this many rounds (0: the plain nearest solution).  Pinned or not, it is an exact solution of the
# same fixed-pattern system, and the driver re-checks the whole pattern exactly.
PIN_ROUNDS = 8


def _exact_ints(vals) -> tuple:
    """Exact rationals as a flat tuple of integers, their numerators then their denominators (a cache key part)."""
    vals = list(vals)
    return tuple([x.p for x in vals] + [x.q for x in vals])      # numerators, then denominators


class _Metric:
    """The inverse metric blocks P_j = ``split_metric_block(w_j, |a_j|)`` of the movable neurons (and
    [[1]] for an output bias), built on first use; ``key``: their exact source (w_j, |a_j|) as integers."""

    def __init__(self, W, A, movable: list, has_c: bool):
        # W, A: arrays or row lists
        W = W.tolist() if isinstance(W, np.ndarray) else W
        A = A.tolist() if isinstance(A, np.ndarray) else A
        self._src = [(list(W[j]), abs(A[j][0])) for j in movable]
        self._has_c = has_c
        self._blocks: list | None = None
        # exact content as integers (numerators, denominators): compared exactly, faster than text
        self.key = (_exact_ints(v for w, a in self._src for v in list(w) + [a]), len(movable), has_c)

    @property
    def blocks(self) -> list:
        if self._blocks is None:
            self._blocks = [split_metric_block(w, a) for w, a in self._src]
            if self._has_c:
                self._blocks.append([[fmpq(1)]])     # c moves as itself: the Euclidean distance in c
        return self._blocks


class _ScalarSystem:
    """The fixed-pattern system of ``refine_scalar`` in v = (|a_j| w_j) of the movable neurons:
    design M (f_i = sum_t eps_t s_it v_t . x_i), kink rows C, the pattern-optimal outputs f*."""

    def __init__(self, X: list, y: list, movable: list, eps: list, ap, am, d: int, W=None, A=None,
                 has_c: bool = False, X_array: np.ndarray | None = None):
        # X_array: the problem's X as an array (X is its rows), so that what depends on X alone is
        # computed once for the frozen data (``core.linalg.derived``)
        self.X, self.y, self.movable, self.eps, self.ap, self.am, self.d = X, y, movable, eps, ap, am, d
        # with an output bias, v ends with c: f_i = sum_t eps_t s_it v_t . x_i + c (a constant column)
        self.has_c = has_c
        self.n, self.nv = len(X), len(movable) * d + (1 if has_c else 0)
        self.Xf = np.array([[fmpq_to_float(x) for x in row] for row in X], dtype=float).reshape(len(X), d)
        # the largest bit size of an entry of K (kink rows x_i, design rows eps s x_i; 1 for c)
        def k_bits(_):
            return max([_exact.bit_size(s * x) for row in X for x in row if x != 0 for s in (1, ap, am) if s != 0]
                       + [1])
        self.k_bits = k_bits(None) if X_array is None else derived(X_array, f"scalar k_bits {ap} {am}", k_bits)
        self.X_array = X_array
        self._base_key = None
        self._movable_set = set(movable)
        # X for classify.filtered_signs (None: outside its range)
        self.X_filter = _floats_in_range(X if X_array is None else X_array)
        if W is not None:          # the whole network in floats (only the fixed neurons' rows are used)
            self.fixed_W = np.zeros((W.shape[0], d))
            self.fixed_A = np.zeros((A.shape[0], A.shape[1]))
            fixed = sorted(set(range(W.shape[0])) - set(movable))
            if fixed:
                Wr, Ar = W.tolist(), A.tolist()
                self.fixed_W[fixed] = np.array([_floats(Wr[j]) for j in fixed], dtype=float).reshape(len(fixed), d)
                self.fixed_A[fixed] = np.array([_floats(Ar[j]) for j in fixed],
                                               dtype=float).reshape(len(fixed), A.shape[1])

    def build(self, pat: Pattern, v: list):
        """(K = C + M rows, rhs of K dv = rhs at v, None) or (None, None, why)."""
        n, d, nv, X = self.n, self.d, self.nv, self.X
        M = [[fmpq(0)] * nv for _ in range(n)]
        C = []
        # K v row by row as the rows are built (the same exact values as the product of K with v):
        # a kink row is x_i . v_t, a design row sum_t eps_t s_it x_i . v_t (+ c)
        Cv, Mv = [], [fmpq(0)] * n
        signs = np.asarray(pat.signs)
        T = len(self.movable)
        # every x_i . v_t at once (one exact product; the same values as the dot products)
        if d and T:
            Xm = to_fmpq_mat(self.X_array) if self.X_array is not None else mat(X, d)
            Zv = (Xm * fmpq_mat(T, d, v[:T * d]).transpose()).tolist()
        else:
            Zv = [[fmpq(0)] * T for _ in range(n)]
        for t, (j, e) in enumerate(zip(self.movable, self.eps)):
            for i, sg in enumerate(signs[:, j].tolist()):
                if sg == 0:
                    row = [fmpq(0)] * nv
                    row[t * d:(t + 1) * d] = X[i]
                    C.append(row)
                    Cv.append(Zv[i][t])
                    continue
                s = self.ap if sg > 0 else self.am
                es = e * s
                for q in range(d):
                    M[i][t * d + q] = es * X[i][q]
                Mv[i] += es * Zv[i][t]
        if self.has_c:
            for i in range(n):
                M[i][nv - 1] = fmpq(1)
                Mv[i] += v[nv - 1]
        # column space of M restricted to {C v = 0}: C is block diagonal (a kink row x_i . v_t = 0
        # involves neuron t only), so its null space is spanned by each neuron's own null vectors u
        # (of its kink points) and, with an output bias, e_c; the column of M for u is
        # eps_t s_it (x_i . u).  f* (below) depends on the column space only, not on the basis
        if C:
            B = [[] for _ in range(n)]
            # x_i . u for the null vectors u of a kink set: the same for every neuron with that set
            by_kinks: dict = {}
            for t, (j, e) in enumerate(zip(self.movable, self.eps)):
                col = signs[:, j].tolist()
                ks = tuple(i for i in range(n) if col[i] == 0)
                zs = by_kinks.get(ks)
                if zs is None:
                    kx = [X[i] for i in ks]
                    zs = [[dot(X[i], u) for i in range(n)]
                          for u in (nullspace(kx, d) if kx else [[fmpq(1) if q == p else fmpq(0) for q in range(d)]
                                                                 for p in range(d)])]
                    by_kinks[ks] = zs
                for zu in zs:
                    for i in range(n):
                        sg = col[i]
                        B[i].append(fmpq(0) if sg == 0 else e * (self.ap if sg > 0 else self.am) * zu[i])
            if self.has_c:
                for i in range(n):
                    B[i].append(fmpq(1))
            if not B[0]:
                return None, None, "the kink constraints leave no freedom"
        else:
            B = M
        Bt = [[B[i][c] for i in range(n)] for c in range(len(B[0]))]
        cols = independent_subset(Bt)
        if cols:
            Bb = mat([[B[i][c] for c in cols] for i in range(n)])
            coef = (Bb.transpose() * Bb).solve(Bb.transpose() * fmpq_mat(n, 1, self.y))
            fstar = [sum((Bb[i, c] * coef[c, 0] for c in range(len(cols))), fmpq(0)) for i in range(n)]
        else:
            fstar = [fmpq(0)] * n
        # change dv of v: C (v + dv) = 0, M (v + dv) = fstar
        K = C + M
        rhs = [-x for x in Cv] + [fstar[i] - Mv[i] for i in range(n)]
        return K, rhs, None

    def nearest(self, pat: Pattern, v: list, P: "_Metric"):
        """(the solution nearest v in the metric P, pinned as in ``refine_scalar``, None) or (None, why).

        A function of its exact inputs only (the data, the targets y, the signs of the movable
        neurons, v, P and the module's choices): the readings of one checkpoint often pose the very
        same system, so the answer is kept in ``exact._SOLVED`` under those inputs (text, bytes and
        exact integers: compared exactly, never by object identity)."""
        key = self._nearest_key(pat, v, P)
        if key in _exact._SOLVED:
            _exact._SOLVED.move_to_end(key)
            hit = _exact._SOLVED[key]
            return (list(hit[0]) if hit[0] is not None else None), hit[1]
        out = self._nearest(pat, v, P)
        _exact.remember(key, (None if out[0] is None else list(out[0]), out[1]))
        return out

    def rounds_key(self, pat: Pattern, v0: list, P: "_Metric", update: bool, Yf: np.ndarray) -> tuple:
        """The inputs of ``_scalar_rounds`` (exactly; text, bytes, integers): those of ``nearest`` (the data, y, v0, P, the
        choices), the whole pattern (its rounds change signs, kinks and snapped pairs of it), the
        rounds' own limits, the float targets, and what the fixed neurons contribute to the float residuals of
        ``kink_releases``: a fixed neuron whose float slope column, input or output weights vanish
        contributes exact zeros (a marker); any other, its float weights and slope column."""
        apf, amf = fmpq_to_float(self.ap), fmpq_to_float(self.am)
        S = np.where(pat.signs > 0, apf, np.where(pat.signs < 0, amf, 0.0))
        fixed = []
        live = S.any(axis=0) & self.fixed_W.any(axis=1) & self.fixed_A.any(axis=1)
        for j in range(self.fixed_W.shape[0]):
            if j in self._movable_set:
                continue
            if not live[j]:
                fixed.append("0")
            else:
                fixed.append(np.concatenate([self.fixed_W[j], self.fixed_A[j], S[:, j]]).tobytes().hex())
        # the floats of the pattern (sizes, snapped |z|, the tolerance) as their exact float64 bytes
        # (repr of numpy floats is slow; the bytes identify each float exactly as repr does)
        snapped = [(int(j), int(i)) for j, i, _ in pat.snapped]
        floats = np.array([float(r) for _, _, r in pat.snapped] + [float(x) for x in pat.sizes] + [float(pat.kink_tol)])
        pattern = repr((np.asarray(pat.signs, dtype=np.int64).tobytes().hex(), pat.status, pat.kinks,
                        snapped, len(pat.sizes), floats.tobytes().hex()))
        return ("scalar-rounds", self._nearest_key(pat, v0, P), pattern, ";".join(fixed),
                np.ascontiguousarray(Yf, dtype=float).tobytes(), update, _exact.PATTERN_ROUNDS, _exact.RELEASE_TOL)

    def _nearest_key(self, pat: Pattern, v: list, P: "_Metric") -> tuple:
        if self._base_key is None:
            self._base_key = "|".join([
                "scalar-nearest", ";".join(",".join(map(qstr, r)) for r in self.X), ",".join(map(qstr, self.y)),
                ",".join(map(str, self.movable)), ",".join(map(str, self.eps)), str(self.ap), str(self.am),
                str(self.d), str(self.has_c)])
        signs = np.asarray(pat.signs)[:, self.movable] if self.movable else np.zeros((self.n, 0), dtype=int)
        return (self._base_key, np.ascontiguousarray(signs, dtype=np.int64).tobytes(), _exact_ints(v), P.key,
                PIN_ROUNDS, _exact.NEAREST_EXACT_MAX_BITS, _exact.ROUNDING_CORRECTION)

    def _nearest(self, pat: Pattern, v: list, metric: "_Metric"):
        K, rhs, why = self.build(pat, v)
        P = metric.blocks
        if K is None:
            return None, why
        d, nv, X = self.d, self.nv, self.X
        Kf = self.float_rows(pat)
        dv = self._solve(K, rhs, P, v, Kf)
        if dv is None:
            return None, "inconsistent refinement system"
        pins: list = []
        for _ in range(PIN_ROUNDS):
            # the nearest solution flips strict pairs of the pattern: pin each flipped pre-activation
            # to its current value (same solution set, one more affine restriction) and take the
            # nearest solution again; keep the unpinned one if that is inconsistent
            flipped = _flipped_pairs(X, pat, self.movable, [a + b for a, b in zip(v, dv)], d)
            new = [(t, i) for t, i in flipped if (t, i) not in pins]
            if not new:
                break
            pins += new
            rows_, vals = [], []
            rows_f = np.zeros((len(pins), nv))
            for q, (t, i) in enumerate(pins):
                row = [fmpq(0)] * nv
                row[t * d:(t + 1) * d] = X[i]
                rows_.append(row)
                rows_f[q, t * d:(t + 1) * d] = self.Xf[i]
                vals.append(fmpq(0))     # the change of v_t . x_i is 0: it keeps its current value
            dv2 = self._solve(K + rows_, rhs + vals, P, v, np.vstack([Kf, rows_f]), required=False)
            if dv2 is None:
                break
            dv = dv2
        return [a + b for a, b in zip(v, dv)], None

    def _solve(self, K: list, rhs: list, P: list, v: list, Kf: np.ndarray, required: bool = True) -> list | None:
        """The change dv of v to the solution of K dv = rhs nearest v in the metric P: exactly
        (``nearest_solve``) when that solution is small (``exact.nearest_exact_bits`` at most
        ``exact.NEAREST_EXACT_MAX_BITS``), else to working precision with short rationals
        (``exact.rounded_nearest``; the exact one when that fails).  Either is an exact solution.
        ``required=False`` (the pinned re-solves, which are optional: the caller keeps its unpinned
        exact solution on None): when the short-rational solve fails, None at once, without the
        exact solve or the exact proof of inconsistency."""
        if nearest_exact_bits(K, rhs, P, self.k_bits) <= _exact.NEAREST_EXACT_MAX_BITS:
            return nearest_solve(K, rhs, P)
        try:
            x = rounded_nearest(K, rhs, P, v, Kf, prove=required)
        except Inconsistent:
            return None                 # proved inconsistent: the exact solve would say so too
        if x is None:
            if not required:
                return None
            return nearest_solve(K, rhs, P)
        return [a - b for a, b in zip(x, v)]

    def float_rows(self, pat: Pattern) -> np.ndarray:
        """The rows of ``build``'s K (kink rows C, then the design M) in floats."""
        n, d, nv = self.n, self.d, self.nv
        Xf, apf, amf = self.Xf, fmpq_to_float(self.ap), fmpq_to_float(self.am)
        C = []
        M = np.zeros((n, nv))
        for t, (j, e) in enumerate(zip(self.movable, self.eps)):
            for i in range(n):
                sg = pat.signs[i, j]
                if sg == 0:
                    row = np.zeros(nv)
                    row[t * d:(t + 1) * d] = Xf[i]
                    C.append(row)
                    continue
                M[i, t * d:(t + 1) * d] = e * (apf if sg > 0 else amf) * Xf[i]
        if self.has_c:
            M[:, nv - 1] = 1.0
        return np.vstack(C + [M]) if C else M

    def crossings(self, v: list, vnew: list, signs: np.ndarray) -> list:
        """``exact.crossings`` of the straight step from v to vnew (pre-activations v_t . x_i of the
        movable neurons), with exact values only where needed: a pair whose sign at vnew is proved
        by ``classify.filtered_signs`` to be its pattern's sign is not crossed, and is passed to
        ``crossings`` as that sign (it only tests s z > 0 there); every other strict pair gets its
        exact values at v and at vnew."""
        d, n = self.d, self.n
        m = max(self.movable) + 1
        old = [v[t * d:(t + 1) * d] for t in range(len(self.movable))]
        new = [vnew[t * d:(t + 1) * d] for t in range(len(self.movable))]
        sg, ok = filtered_signs(self.X, new, self.X_filter)
        S = np.asarray(signs, dtype=int)[:, self.movable]
        proved = (S != 0) & ok & (S * sg > 0)
        Z0 = np.empty((n, m), dtype=object)
        Z1 = np.empty((n, m), dtype=object)
        for i, t in zip(*np.nonzero(proved)):
            Z1[i, self.movable[t]] = int(S[i, t])
        for i, t in zip(*np.nonzero((S != 0) & ~proved)):
            j = self.movable[t]
            Z0[i, j], Z1[i, j] = dot(self.X[i], old[t]), dot(self.X[i], new[t])
        return crossings(Z0, Z1, signs, self.movable)

    def float_point(self, problem: Problem, v: list):
        """Float (W, A) of the whole network with the movable neurons at (v_t, eps_t) and the fixed
        ones as they are (the kink multipliers' signs do not change under the positive rescaling of
        the split-back)."""
        Wf, Af = self.fixed_W.copy(), self.fixed_A.copy()
        d, T = self.d, len(self.movable)
        if T:
            Wf[self.movable] = np.array(_floats(v[:T * d]), dtype=float).reshape(T, d)
            Af[self.movable] = np.array([[float(e)] * Af.shape[1] for e in self.eps], dtype=float)
        return Wf, Af

    def float_c(self, v: list):
        """The output bias of v in floats (k = 1), or None without one."""
        return np.array([fmpq_to_float(v[-1])]) if self.has_c else None


def _flipped_pairs(X: list, pat: Pattern, movable: list, v: list, d: int) -> list:
    """(position t in movable, data i) whose strict sign in the pattern is not the sign of v_t . x_i
    (signs exact, ``classify.exact_signs``)."""
    out = []
    sg = exact_signs(X, [v[t * d:(t + 1) * d] for t in range(len(movable))])
    for t, j in enumerate(movable):
        for i in range(len(X)):
            s = pat.signs[i, j]
            z = sg[i, t]
            if (s > 0 and not z > 0) or (s < 0 and not z < 0):
                out.append((t, i))
    return out


def _offsets(blocks: list):
    """(column offset of the block in Phi, block) for each activation-pattern block."""
    pos = 0
    for b in blocks:
        yield pos, b
        pos += len(b[2])


def _no_output_weights(blocks: list) -> str:
    """Why no output weights reach the pattern-optimal outputs: a group whose input weights do not
    span its input space (the legacy factor-back's message), else an inconsistent system."""
    for sg, js, Bs, U in blocks:
        if mat(U).rank() < len(Bs):
            return f"group {js}: input weights do not span the group's input space"
    return "inconsistent least-squares system"


def refine_grouped(problem: Problem, start: Point, pat: Pattern, reading: str,
                   least_squares: str | None = None) -> tuple[Point | None, str]:
    """Exact rational refinement for any output dimension, by activation-pattern groups.

    Alive neurons with the same sign pattern form a group g; on the pattern their joint contribution
    is s_ig (M_g x_i) with M_g = sum_j a_j w_j^T = C_g B_g^T, where B_g spans the inputs orthogonal
    to the group's kinks.  When a group has at least min(k, dim B_g) neurons, C_g is unconstrained,
    so the pattern-optimal C_g solve an exact linear least-squares problem (least change from the
    current point).  The input weights are only projected onto their kinks; the output weights are
    re-solved exactly so that sum_j a_j u_j^T = C_g.  Returns None when a group is too small.

    Choice among the exact solutions (``least_squares``, default ``refine.exact.LEAST_SQUARES``):
    "nearest" takes, for each output c, the output weights nearest the checkpoint's: min |dA_c|^2
    over all A_c with Phi (U^T A_c) = f*_c, solved directly in A (least-norm correction in the row
    space of Phi U^T).  W is fixed after its projection, so that is the exact Euclidean
    theta-distance of this step; it needs no separate factor-back, and it exists whenever any
    output weights reach f*.  "legacy" is the earlier two-step choice: the diagonal relative
    weighting of the group coefficients, then of the output weights (1e-12 for a zero one)."""
    choice = least_squares_choice(least_squares)
    n, d, k, m = problem.n, problem.d, problem.k, start.m
    X = [problem.X[i].tolist() for i in range(n)]
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    W, A = start.W.copy(), start.A.copy()
    groups = pat.alive_groups()
    has_c = start.c is not None       # the output bias: one more unknown per output, a constant column
    cvec = start.c.copy() if has_c else None
    for j in range(m):
        if pat.status[j] == "alive" or all(v == 0 for v in W[j]):
            continue
        W[j] = project_onto_kinks(W[j].tolist(), [X[i] for i in pat.kinks[j]])
    if not groups:
        if has_c:
            return Point(W, A, centring_bias(problem, W, A)), "no alive neuron to refine; output bias centred exactly"
        return Point(W, A), "no alive neuron to refine"
    targets = targets_without(problem, W, A, [j for js in groups.values() for j in js])
    blocks = []   # (signs, neurons, basis B (p x d rows), U (|g| x p))
    for sg, js in groups.items():
        kx = [X[i] for i in range(n) if sg[i] == 0]
        Bs = nullspace(kx, d)
        p = len(Bs)
        if p == 0:
            return None, "a group's kink constraints leave no input direction"
        if len(js) < min(k, p):
            return None, f"group {js} has fewer neurons than min(k, dim) = {min(k, p)}: rank-constrained"
        Bm = mat(Bs)                               # p x d
        gram = Bm * Bm.transpose()
        U = []
        for j in js:
            u = gram.solve(Bm * fmpq_mat(d, 1, W[j].tolist()))
            uj = [u[q, 0] for q in range(p)]
            U.append(uj)
            W[j] = [sum((uj[q] * Bs[q][t] for q in range(p)), fmpq(0)) for t in range(d)]
        blocks.append((sg, js, Bs, U))
    # design: column (g, q) at row i is s_ig (B_g x_i)_q
    cols = []
    for sg, js, Bs, U in blocks:
        Zb = preactivations(problem.X, np.array(Bs, dtype=object))      # n x p: x_i . b_q
        for q in range(len(Bs)):
            col = []
            for i in range(n):
                s_ = ap if sg[i] > 0 else (am if sg[i] < 0 else fmpq(0))
                col.append(s_ * Zb[i, q])
            cols.append(col)
    if has_c:
        cols.append([fmpq(1)] * n)    # the output bias: last column of the design, last unknown
    Phi = [[cols[c][i] for c in range(len(cols))] for i in range(n)]
    basis = independent_subset(cols)
    if choice == "nearest":
        # unknowns: the alive output weights, neuron by neuron (block order); column (g, t) of the
        # design is Phi_g u_t, so Phi (U^T A) = f* is linear in A and its least-norm correction is
        # the solution nearest the checkpoint's A
        KA = [[sum((Phi[i][pos_ + q] * U[t][q] for q in range(len(Bs))), fmpq(0))
               for pos_, (sg, js, Bs, U) in _offsets(blocks) for t in range(len(js))]
              + ([fmpq(1)] if has_c else []) for i in range(n)]
        alive = [j for sg, js, Bs, U in blocks for j in js]
    newC = []
    for c in range(k):
        y = targets[:, c].tolist()
        theta0 = []
        for sg, js, Bs, U in blocks:
            for q in range(len(Bs)):
                theta0.append(sum((A[j][c] * U[t][q] for t, j in enumerate(js)), fmpq(0)))
        if has_c:
            theta0.append(cvec[c])
        if basis:
            Pb = mat([[cols[b][i] for b in basis] for i in range(n)])
            coef = (Pb.transpose() * Pb).solve(Pb.transpose() * fmpq_mat(n, 1, y))
            fstar = [sum((Pb[i, t] * coef[t, 0] for t in range(len(basis))), fmpq(0)) for i in range(n)]
        else:
            fstar = [fmpq(0)] * n
        rhs = [fstar[i] - sum((Phi[i][q] * theta0[q] for q in range(len(theta0))), fmpq(0)) for i in range(n)]
        if choice == "legacy":
            wts = []
            pos_ = 0
            for sg, js, Bs, U in blocks:
                p_ = len(Bs)
                nrm = math.sqrt(sum(fmpq_to_float(v) ** 2 for v in theta0[pos_:pos_ + p_]))
                wts += [rational_sqrt(nrm * nrm) if nrm > 0 else fmpq(1)] * p_
                pos_ += p_
            if has_c:
                wts.append(abs(theta0[-1]) if theta0[-1] != 0 else fmpq(1))
            dth = least_norm_solve(Phi, rhs, wts)
        else:
            da = nearest_solve(KA, rhs)
            if da is None:
                return None, _no_output_weights(blocks)
            for t, j in enumerate(alive):
                A[j][c] = A[j][c] + da[t]
            if has_c:
                cvec[c] = cvec[c] + da[-1]
            continue
        if dth is None:
            return None, "inconsistent least-squares system"
        newC.append([a + b for a, b in zip(theta0, dth)])
        if has_c:
            cvec[c] = newC[-1][-1]
    # factor back (legacy): for each group and output c, sum_j a_j[c] u_j = C_g[c]
    pos = 0
    for sg, js, Bs, U in (blocks if choice == "legacy" else []):
        p = len(Bs)
        Ut = [[U[t][q] for t in range(len(js))] for q in range(p)]        # p x |g|
        for c in range(k):
            target = newC[c][pos:pos + p]
            a0 = [A[j][c] for j in js]
            res = [target[q] - sum((Ut[q][t] * a0[t] for t in range(len(js))), fmpq(0)) for q in range(p)]
            aw = [rational_sqrt(fmpq_to_float(A[j][c]) ** 2) if A[j][c] != 0 else fmpq(1, 10 ** 12) for j in js]
            da = least_norm_solve(Ut, res, aw)
            if da is None:
                return None, f"group {js}: input weights do not span the group's input space"
            for t, j in enumerate(js):
                A[j][c] = a0[t] + da[t]
        pos += p
    return Point(W, A, cvec), (f"exact rational least squares over {len(blocks)} activation-pattern groups "
                               f"(input weights projected onto their kinks, output weights "
                               f"{'and output bias ' if has_c else ''}re-solved)")
