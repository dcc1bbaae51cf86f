"""From a float candidate to a certified point (THEORY §6).

1. classify every pre-activation (positive / negative / kink) with a scale-free tolerance on
   |w_j.x_i| / (|w_j| |x_i|), and every neuron (alive / tiny / dead / zero / zero-output) against
   the problem's own scale |a_j| |w_j| max|x| versus max|y|; nothing is rounded silently;
2. scalar output: on the fixed pattern the output is linear in v_j = |a_j| w_j, so the nearest
   point with zero pattern-gradient and exact kinks is an exact rational linear problem (fit the
   projection of Y onto the pattern's column space, then the least-norm change of v); split back
   keeping each neuron's |a|/|w| ratio;
3. vector output: least-norm Newton on the pattern-restricted gradient in mpmath (60 digits),
   then exact certification of a rational rounding, else ``inconclusive`` with the residual;
4. tiny neurons are read three ways (as given / output weight 0 / exactly zero) and the verdicts
   under each reading are reported when they differ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from flint import fmpq, fmpq_mat

from relucert.decide.certify import Result, certify, escape_path_losses
from relucert.errors import RelucertError
from relucert.core.formulas import forward, output_grad, linear_part, weight_grad
from relucert.core.linalg import independent_subset, mat, nullspace
from relucert.core.problem import Point, Problem

READINGS = ("as_given", "tiny_output_zero", "tiny_zero")
MAX_NEWTON_UNKNOWNS = 60


def d_unknowns(problem: Problem, pat: "Pattern", j: int) -> int:
    return problem.d - len(pat.kinks[j]) + problem.k if pat.status[j] == "alive" else 0


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


def _fl(q) -> float:
    return int(q.p) / int(q.q)


def effective_kink_tol(problem: Problem, point: Point, tol: Tolerances) -> float:
    """The kink tolerance: tol.kink, raised to the middle of a clear gap (ratio >= 100) when relative
    |w.x| values lie between tol.kink and tol.kink_max just below that gap."""
    if not tol.kink_auto:
        return tol.kink
    X, W = problem.Xf, point.Wf
    den = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(W, axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(X @ W.T) / den
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
    signs = np.zeros((n, m), dtype=int)
    kinks, snapped, status, sizes = [], [], [], []
    am0 = problem.activation.alpha_minus == 0
    for j in range(m):
        wz = all(v == 0 for v in point.W[j])
        az = all(v == 0 for v in point.A[j])
        size = an[j] * wn[j] * xscale / yscale
        sizes.append(size)
        K = []
        for i in range(n):
            z = sum((a * b for a, b in zip(point.W[j].tolist(), problem.X[i].tolist())), fmpq(0))
            if z == 0:
                K.append(i)
                continue
            rel = abs(_fl(z)) / max(wn[j] * xn[i], 1e-300)
            if rel < kink_tol:
                K.append(i)
                snapped.append((j, i, rel))
            else:
                signs[i, j] = 1 if z > 0 else -1
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


def float_gradient_norm(problem: Problem, point: Point, kink_tol: float = Tolerances.kink) -> float:
    """max |dL/dtheta| (half_mean, float) relative to max|y| max|x|.  Pairs within ``kink_tol`` of a
    kink are left out of the W-gradient and its component along their x_i is projected out: on a
    kink the multiplier of x_i is free, so only the rest must vanish near a stationary point."""
    X, Y, W, A = problem.Xf, problem.Yf, point.Wf, point.Af
    ap, am = _fl(problem.activation.alpha_plus), _fl(problem.activation.alpha_minus)
    fw = forward(X, Y, W, A, ap, am)
    G = output_grad(fw.H, fw.E)
    scale = np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(W, axis=1))
    near = np.abs(fw.Z) <= kink_tol * scale
    GW = weight_grad(linear_part(fw.S * ~near, fw.E, X), A)
    for j in range(W.shape[0]):       # the kink rows carry a free multiplier: project them out
        Nj = X[near[:, j]]
        if len(Nj):
            coef, *_ = np.linalg.lstsq(Nj.T, GW[j], rcond=None)
            GW[j] = GW[j] - Nj.T @ coef
    g = max(float(np.abs(G).max()), float(np.abs(GW).max()))
    return g / max(float(np.abs(Y).max()) * float(np.linalg.norm(X, axis=1).max()), 1e-300)


# ---------------------------------------------------------------------------------------------
# exact helpers
# ---------------------------------------------------------------------------------------------

def _project_onto_kinks(w: list, xs: list) -> list:
    """Least-norm change of w making w.x = 0 for every x in xs (exact)."""
    if not xs:
        return list(w)
    idx = independent_subset(xs)
    rows = [xs[i] for i in idx]
    Nm = mat(rows)
    gram = Nm * Nm.transpose()
    rhs = fmpq_mat(len(rows), 1, [sum((a * b for a, b in zip(w, r)), fmpq(0)) for r in rows])
    c = gram.solve(rhs)
    return [w[q] - sum((c[p, 0] * rows[p][q] for p in range(len(rows))), fmpq(0)) for q in range(len(w))]


def _least_norm_solve(K_rows: list, rhs: list, weights: list | None = None) -> list | None:
    """x with K x = rhs minimising sum (x_q / weights_q)^2 (exact); None if inconsistent.

    Weights proportional to each parameter's size make small neurons move little (relative change)."""
    if weights is not None:
        K_rows = [[r[q] * weights[q] for q in range(len(r))] for r in K_rows]
        y = _least_norm_solve(K_rows, rhs)
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


def _rational_sqrt(x: float) -> fmpq:
    p, q = math.sqrt(x).as_integer_ratio()
    return fmpq(p, q)


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
    return Point(W, A), notes


def refine_scalar(problem: Problem, start: Point, pat: Pattern, reading: str) -> tuple[Point | None, str]:
    """Exact rational refinement for k = 1 (THEORY §6.2)."""
    n, d, m = problem.n, problem.d, start.m
    X = [problem.X[i].tolist() for i in range(n)]
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    W, A = start.W.copy(), start.A.copy()
    movable = [j for j in range(m) if pat.status[j] == "alive"]
    # fixed neurons: project their input weights onto their kinks; exact contribution to f
    fixed_out = [fmpq(0)] * n
    for j in range(m):
        if j in movable:
            continue
        if all(v == 0 for v in W[j]):
            continue
        kx = [X[i] for i in pat.kinks[j]]
        W[j] = _project_onto_kinks(W[j].tolist(), kx)
        a = A[j][0]
        if a != 0:
            for i in range(n):
                z = sum((u * v for u, v in zip(W[j].tolist(), X[i])), fmpq(0))
                fixed_out[i] += a * (ap * z if z > 0 else am * z)
    if not movable:
        return Point(W, A), "no alive neuron to refine"
    eps = [1 if A[j][0] > 0 else -1 for j in movable]
    v0 = []
    for j, e in zip(movable, eps):
        v0 += [abs(A[j][0]) * w for w in W[j].tolist()]
    nv = len(movable) * d
    # design M (n x nv): f_i = sum_j eps_j s_ij v_j.x_i on the pattern; kink rows C
    M = [[fmpq(0)] * nv for _ in range(n)]
    C = []
    for t, (j, e) in enumerate(zip(movable, eps)):
        for i in range(n):
            sg = pat.signs[i, j]
            if sg == 0:
                row = [fmpq(0)] * nv
                row[t * d:(t + 1) * d] = X[i]
                C.append(row)
                continue
            s = ap if sg > 0 else am
            for q in range(d):
                M[i][t * d + q] = e * s * X[i][q]
    y = [problem.Y[i][0] - fixed_out[i] for i in range(n)]
    # column space of M restricted to {C v = 0}
    N = nullspace(C, nv) if C else None
    if N is not None and not N:
        return None, "the kink constraints leave no freedom"
    B = [[sum((M[i][q] * N[c][q] for q in range(nv)), fmpq(0)) for c in range(len(N))] for i in range(n)] \
        if N is not None else M
    Bt = [[B[i][c] for i in range(n)] for c in range(len(B[0]))]
    cols = independent_subset(Bt)
    if cols:
        Bb = mat([[B[i][c] for c in cols] for i in range(n)])
        coef = (Bb.transpose() * Bb).solve(Bb.transpose() * fmpq_mat(n, 1, y))
        fstar = [sum((Bb[i, c] * coef[c, 0] for c in range(len(cols))), fmpq(0)) for i in range(n)]
    else:
        fstar = [fmpq(0)] * n
    # least-norm change of v: C (v0 + dv) = 0, M (v0 + dv) = fstar
    K = C + M
    Mv0 = [sum((r[q] * v0[q] for q in range(nv)), fmpq(0)) for r in K]
    rhs = [-Mv0[i] for i in range(len(C))] + [fstar[i] - Mv0[len(C) + i] for i in range(n)]
    wts = []
    for t in range(len(movable)):
        vn = math.sqrt(sum(_fl(x) ** 2 for x in v0[t * d:(t + 1) * d]))
        wts += [_rational_sqrt(vn * vn) if vn > 0 else fmpq(1)] * d
    dv = _least_norm_solve(K, rhs, wts)
    if dv is None:
        return None, "inconsistent refinement system"
    v = [a + b for a, b in zip(v0, dv)]
    for t, (j, e) in enumerate(zip(movable, eps)):
        vj = v[t * d:(t + 1) * d]
        vn = math.sqrt(sum(_fl(x) ** 2 for x in vj))
        if vn == 0:
            W[j] = [fmpq(0)] * d
            A[j] = [fmpq(0)]
            continue
        kappa = _fl(abs(start.A[j][0])) / max(math.sqrt(sum(_fl(x) ** 2 for x in start.W[j])), 1e-300)
        amag = _rational_sqrt(kappa * vn)
        W[j] = [x / amag for x in vj]
        A[j] = [e * amag]
    return Point(W, A), "exact rational least squares on the pattern"


def refine_grouped(problem: Problem, start: Point, pat: Pattern, reading: str) -> tuple[Point | None, str]:
    """Exact rational refinement for any output dimension, by activation-pattern groups.

    Alive neurons with the same sign pattern form a group g; on the pattern their joint contribution
    is s_ig (M_g x_i) with M_g = sum_j a_j w_j^T = C_g B_g^T, where B_g spans the inputs orthogonal
    to the group's kinks.  When a group has at least min(k, dim B_g) neurons, C_g is unconstrained,
    so the pattern-optimal C_g solve an exact linear least-squares problem (least change from the
    current point).  The input weights are only projected onto their kinks; the output weights are
    re-solved exactly so that sum_j a_j u_j^T = C_g.  Returns None when a group is too small."""
    n, d, k, m = problem.n, problem.d, problem.k, start.m
    X = [problem.X[i].tolist() for i in range(n)]
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    W, A = start.W.copy(), start.A.copy()
    groups: dict = {}
    for j in range(m):
        if pat.status[j] == "alive":
            groups.setdefault(tuple(int(v) for v in pat.signs[:, j]), []).append(j)
    fixed_out = [[fmpq(0)] * k for _ in range(n)]
    for j in range(m):
        if pat.status[j] == "alive" or all(v == 0 for v in W[j]):
            continue
        W[j] = _project_onto_kinks(W[j].tolist(), [X[i] for i in pat.kinks[j]])
        if any(v != 0 for v in A[j]):
            for i in range(n):
                z = sum((u * v for u, v in zip(W[j].tolist(), X[i])), fmpq(0))
                h = ap * z if z > 0 else am * z
                for c in range(k):
                    fixed_out[i][c] += h * A[j][c]
    if not groups:
        return Point(W, A), "no alive neuron to refine"
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
        for q in range(len(Bs)):
            col = []
            for i in range(n):
                s_ = ap if sg[i] > 0 else (am if sg[i] < 0 else fmpq(0))
                col.append(s_ * sum((a * b for a, b in zip(Bs[q], X[i])), fmpq(0)))
            cols.append(col)
    Phi = [[cols[c][i] for c in range(len(cols))] for i in range(n)]
    basis = independent_subset(cols)
    newC = []
    for c in range(k):
        y = [problem.Y[i][c] - fixed_out[i][c] for i in range(n)]
        theta0 = []
        for sg, js, Bs, U in blocks:
            for q in range(len(Bs)):
                theta0.append(sum((A[j][c] * U[t][q] for t, j in enumerate(js)), fmpq(0)))
        if basis:
            Pb = mat([[cols[b][i] for b in basis] for i in range(n)])
            coef = (Pb.transpose() * Pb).solve(Pb.transpose() * fmpq_mat(n, 1, y))
            fstar = [sum((Pb[i, t] * coef[t, 0] for t in range(len(basis))), fmpq(0)) for i in range(n)]
        else:
            fstar = [fmpq(0)] * n
        rhs = [fstar[i] - sum((Phi[i][q] * theta0[q] for q in range(len(theta0))), fmpq(0)) for i in range(n)]
        wts = []
        pos_ = 0
        for sg, js, Bs, U in blocks:
            p_ = len(Bs)
            nrm = math.sqrt(sum(_fl(v) ** 2 for v in theta0[pos_:pos_ + p_]))
            wts += [_rational_sqrt(nrm * nrm) if nrm > 0 else fmpq(1)] * p_
            pos_ += p_
        dth = _least_norm_solve(Phi, rhs, wts)
        if dth is None:
            return None, "inconsistent least-squares system"
        newC.append([a + b for a, b in zip(theta0, dth)])
    # factor back: for each group and output c, sum_j a_j[c] u_j = C_g[c]
    pos = 0
    for sg, js, Bs, U in blocks:
        p = len(Bs)
        Ut = [[U[t][q] for t in range(len(js))] for q in range(p)]        # p x |g|
        for c in range(k):
            target = newC[c][pos:pos + p]
            a0 = [A[j][c] for j in js]
            res = [target[q] - sum((Ut[q][t] * a0[t] for t in range(len(js))), fmpq(0)) for q in range(p)]
            aw = [_rational_sqrt(_fl(A[j][c]) ** 2) if A[j][c] != 0 else fmpq(1, 10 ** 12) for j in js]
            da = _least_norm_solve(Ut, res, aw)
            if da is None:
                return None, f"group {js}: input weights do not span the group's input space"
            for t, j in enumerate(js):
                A[j][c] = a0[t] + da[t]
        pos += p
    return Point(W, A), (f"exact rational least squares over {len(blocks)} activation-pattern groups "
                         f"(input weights projected onto their kinks, output weights re-solved)")


def refine_vector(problem: Problem, start: Point, pat: Pattern, reading: str, dps: int = 60,
                  iters: int = 40) -> tuple[Point | None, str]:
    """Least-norm Newton in mpmath on the pattern-restricted gradient, then rational rounding."""
    import mpmath as mp
    n, d, k, m = problem.n, problem.d, problem.k, start.m
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    W, A = start.W.copy(), start.A.copy()
    movable = [j for j in range(m) if pat.status[j] == "alive"]
    X = [problem.X[i].tolist() for i in range(n)]
    for j in range(m):
        if j not in movable and not all(v == 0 for v in W[j]):
            W[j] = _project_onto_kinks(W[j].tolist(), [X[i] for i in pat.kinks[j]])
    if not movable:
        return Point(W, A), "no alive neuron to refine"
    with mp.workdps(dps):
        mpq = lambda q: mp.mpf(int(q.p)) / int(q.q)
        Xm = [[mpq(v) for v in row] for row in X]
        Ym = [[mpq(v) for v in problem.Y[i].tolist()] for i in range(n)]
        # fixed neurons' exact contribution
        base = [[mp.mpf(0)] * k for _ in range(n)]
        for j in range(m):
            if j in movable:
                continue
            for i in range(n):
                z = sum((u * v for u, v in zip(W[j].tolist(), X[i])), fmpq(0))
                s = ap * z if z > 0 else am * z
                if s != 0:
                    for c in range(k):
                        base[i][c] += mpq(s * A[j][c])
        # parametrise w_j = N_j u_j (kink constraints exact), unknowns u_j, a_j
        Ns, blocks = [], []
        theta = []
        for j in movable:
            kx = [X[i] for i in pat.kinks[j]]
            Nb = nullspace(kx, d) if kx else nullspace([], d)
            Nm = [[mpq(v) for v in col] for col in Nb]
            Ns.append(Nm)
            # initial u: least squares N u = w
            wj = [mpq(v) for v in W[j].tolist()]
            if Nm:
                G = mp.matrix([[mp.fsum(a * b for a, b in zip(Nm[p], Nm[q])) for q in range(len(Nm))] for p in range(len(Nm))])
                rhs = mp.matrix([mp.fsum(a * b for a, b in zip(Nm[p], wj)) for p in range(len(Nm))])
                u = mp.lu_solve(G, rhs)
                theta += [u[p] for p in range(len(Nm))]
            blocks.append(len(Nm))
            theta += [mpq(v) for v in A[j].tolist()]
        slopes = [[(ap if pat.signs[i, j] > 0 else am) for i in range(n)] for j in movable]
        sl = [[mpq(s) for s in row] for row in slopes]
        active = [[pat.signs[i, j] != 0 for i in range(n)] for j in movable]

        def unpack(th):
            out, pos = [], 0
            for t, j in enumerate(movable):
                u = th[pos:pos + blocks[t]]
                pos += blocks[t]
                a = th[pos:pos + k]
                pos += k
                w = [mp.fsum(u[p] * Ns[t][p][q] for p in range(blocks[t])) for q in range(d)]
                out.append((w, a))
            return out

        def residuals(th):
            nw = unpack(th)
            E = [[base[i][c] - Ym[i][c] for c in range(k)] for i in range(n)]
            for t, (w, a) in enumerate(nw):
                for i in range(n):
                    if active[t][i]:
                        h = sl[t][i] * mp.fsum(wq * xq for wq, xq in zip(w, Xm[i]))
                        for c in range(k):
                            E[i][c] += a[c] * h
            return E

        def grad_hess(th):
            # L = (1/2n) sum ||E||^2 ; derivatives by forward-mode on the exact pattern
            nw = unpack(th)
            E = residuals(th)
            P = len(th)
            J = [[mp.mpf(0)] * P for _ in range(n * k)]
            pos = 0
            second = {}  # cross terms d^2 E_ic / du_p da_c'
            for t, (w, a) in enumerate(nw):
                nb = blocks[t]
                for i in range(n):
                    if not active[t][i]:
                        continue
                    h = sl[t][i] * mp.fsum(wq * xq for wq, xq in zip(w, Xm[i]))
                    dh = [sl[t][i] * mp.fsum(Ns[t][p][q] * Xm[i][q] for q in range(d)) for p in range(nb)]
                    for c in range(k):
                        row = i * k + c
                        for p in range(nb):
                            J[row][pos + p] += a[c] * dh[p]
                        J[row][pos + nb + c] += h
                        for p in range(nb):
                            second[(row, pos + p, pos + nb + c)] = second.get((row, pos + p, pos + nb + c), 0) + dh[p]
                pos += nb + k
            Ef = [E[i][c] for i in range(n) for c in range(k)]
            g = [mp.fsum(J[r][p] * Ef[r] for r in range(n * k)) / n for p in range(P)]
            H = mp.matrix(P, P)
            for p in range(P):
                for q in range(p, P):
                    H[p, q] = mp.fsum(J[r][p] * J[r][q] for r in range(n * k)) / n
            for (r, p, q), v in second.items():
                H[p, q] += Ef[r] * v / n
            for p in range(P):
                for q in range(p):
                    H[p, q] = H[q, p]
            return g, H

        th = list(theta)
        gnorm = None
        for _ in range(iters):
            g, H = grad_hess(th)
            gnorm = max(abs(v) for v in g)
            if gnorm < mp.mpf(10) ** (-(dps - 10)):
                break
            ev, Q = mp.eigsy(H)
            lmax = max(abs(ev[i]) for i in range(len(th)))
            cut = lmax * mp.mpf(10) ** (-(dps // 3))
            step = [mp.mpf(0)] * len(th)
            for e_i in range(len(th)):
                if abs(ev[e_i]) > cut:
                    coef = mp.fsum(Q[p, e_i] * g[p] for p in range(len(th))) / ev[e_i]
                    for p in range(len(th)):
                        step[p] -= coef * Q[p, e_i]
            th = [a + b for a, b in zip(th, step)]
        nw = unpack(th)
        for t, j in enumerate(movable):
            w, a = nw[t]
            # round to rationals with ~dps-5 digits; kinks stay exact since w = N u with rational u
            u = th[sum(blocks[:t]) + t * k: sum(blocks[:t]) + t * k + blocks[t]]
            uq = [_mp_to_fmpq(x, dps) for x in u]
            Nb = nullspace([X[i] for i in pat.kinks[j]], d)
            W[j] = [sum((uq[p] * Nb[p][q] for p in range(blocks[t])), fmpq(0)) for q in range(d)]
            A[j] = [_mp_to_fmpq(x, dps) for x in a]
        note = f"least-norm Newton ({dps} digits, gradient {mp.nstr(gnorm, 3)}), rational rounding"
    if _refit_output_weights(problem, W, A, movable):
        note += ", output weights re-fitted exactly"
    return Point(W, A), note


def _refit_output_weights(problem: Problem, W, A, movable: list) -> bool:
    """Exact least-squares refit of the movable neurons' output weights for fixed rational W, with
    the least change: afterwards G_j = 0 exactly for them (S1)."""
    n, k = problem.n, problem.k
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    X = [problem.X[i].tolist() for i in range(n)]

    def sig(w, x):
        z = sum((a * b for a, b in zip(w, x)), fmpq(0))
        return ap * z if z > 0 else am * z

    H = [[sig(W[j].tolist(), X[i]) for j in movable] for i in range(n)]
    others = [j for j in range(W.shape[0]) if j not in movable]
    Ht = [[H[i][t] for i in range(n)] for t in range(len(movable))]
    cols = independent_subset(Ht)
    if not cols:
        return False
    Hb = mat([[H[i][t] for t in cols] for i in range(n)])
    for c in range(k):
        y = [problem.Y[i][c] - sum((sig(W[j].tolist(), X[i]) * A[j][c] for j in others), fmpq(0)) for i in range(n)]
        coef = (Hb.transpose() * Hb).solve(Hb.transpose() * fmpq_mat(n, 1, y))
        fstar = [sum((Hb[i, t] * coef[t, 0] for t in range(len(cols))), fmpq(0)) for i in range(n)]
        a0 = [A[j][c] for j in movable]
        rhs = [fstar[i] - sum((H[i][t] * a0[t] for t in range(len(movable))), fmpq(0)) for i in range(n)]
        da = _least_norm_solve(H, rhs)
        if da is None:
            return False
        for t, j in enumerate(movable):
            A[j][c] = a0[t] + da[t]
    return True


def _mp_to_fmpq(x, dps: int) -> fmpq:
    import mpmath as mp
    fr = Fraction(int(mp.nint(x * mp.mpf(10) ** (dps - 5))), 10 ** (dps - 5))
    return fmpq(fr.numerator, fr.denominator)


# ---------------------------------------------------------------------------------------------

@dataclass
class Refinement:
    reading: str
    result: Result | None
    point: Point | None
    distance: dict
    note: str
    left_pattern: list = field(default_factory=list)
    ball: dict | None = None      # a ball certificate (check.BALL_FORMAT): saddle at a nearby exact point

    @property
    def verdict(self) -> str:
        if self.result is not None:
            return self.result.verdict
        return "saddle" if self.ball is not None else "inconclusive"

    def to_json(self) -> dict:
        r = self.result
        return {"reading": self.reading, "verdict": self.verdict,
                "reason": (r.reason if r else self.note),
                "escape_neurons": r.escape_neurons if r else (_ball_escape(self.ball)),
                "distance": self.distance, "method": self.note, "left_pattern": self.left_pattern,
                "loss": r.loss_json() if r else None}


def _distance(problem: Problem, p0: Point, p1: Point) -> dict:
    """Distance moved: max-abs, relative to |theta|, and relative to the problem's own parameter
    scale sqrt(max|y| / max|x|) (the size of a balanced neuron whose output is of the targets' size;
    a refinement to the origin from a tiny point is a small move on that scale)."""
    W0, A0, W1, A1 = p0.Wf, p0.Af, p1.Wf, p1.Af
    dW, dA = np.abs(W1 - W0), np.abs(A1 - A0)
    mx = float(max(dW.max(initial=0), dA.max(initial=0)))
    norm0 = math.sqrt(float((W0 ** 2).sum() + (A0 ** 2).sum()))
    norm_d = math.sqrt(float((dW ** 2).sum() + (dA ** 2).sum()))
    scale = math.sqrt(max(float(np.abs(problem.Yf).max()), 1e-300) /
                      max(float(np.linalg.norm(problem.Xf, axis=1).max()), 1e-300))
    return {"max_abs": mx, "max_abs_W": float(dW.max(initial=0)), "max_abs_A": float(dA.max(initial=0)),
            "relative": norm_d / norm0 if norm0 > 0 else norm_d,
            "relative_to_scale": norm_d / max(norm0, scale * math.sqrt(p0.m))}


def _pattern_kept(problem: Problem, point: Point, pat: Pattern, ignore: list) -> list:
    """(neuron, data) pairs whose strict sign flipped, or whose kink was not made exact."""
    bad = []
    for j in range(point.m):
        if j in ignore or all(v == 0 for v in point.W[j]):
            continue
        for i in range(problem.n):
            z = sum((a * b for a, b in zip(point.W[j].tolist(), problem.X[i].tolist())), fmpq(0))
            s = pat.signs[i, j]
            if (s == 0 and z != 0) or (s > 0 and not z > 0) or (s < 0 and not z < 0):
                bad.append([j, i])
    return bad


def refine(problem: Problem, point: Point, tol: Tolerances | None = None,
           readings: tuple = READINGS) -> dict:
    """Refine under each reading of the tiny neurons, certify each refined point exactly."""
    tol = tol or Tolerances()
    pat = classify(problem, point, tol)
    tiny = [j for j, s in enumerate(pat.status) if s == "tiny"]
    if not tiny:
        readings = ("as_given",)
    out = [_refine_one(problem, point, pat, reading, tol) for reading in readings]
    # a neuron snapped onto kinks that is otherwise strictly negative could as well be read as dead
    # (its w.x_i < 0 only by a hair): certify that reading too and report it when the verdict differs
    dead_alt = _snapped_dead_pattern(problem, point, pat)
    if dead_alt is not None:
        pat2, js = dead_alt
        r = _refine_one(problem, point, pat2, "as_given", tol)
        r.reading = "snapped_as_dead"
        r.note = f"neurons {js} read as strictly dead instead of on their kinks; " + r.note
        out.append(r)
    return {"pattern": pat, "refinements": out, "tolerances": tol, "tiny": tiny}


def _snapped_dead_pattern(problem: Problem, point: Point, pat: Pattern):
    """The pattern with every 'snapped but otherwise dead' neuron read as dead, or None."""
    if problem.activation.alpha_minus != 0:
        return None
    snapped = {}
    for j, i, _ in pat.snapped:
        snapped.setdefault(j, []).append(i)
    js = []
    signs = pat.signs.copy()
    kinks = [list(k) for k in pat.kinks]
    status = list(pat.status)
    for j, idx in snapped.items():
        if status[j] not in ("alive", "tiny") or set(pat.kinks[j]) != set(idx):
            continue
        others_neg = all(pat.signs[i, j] < 0 for i in range(problem.n) if i not in idx)
        z_neg = all(sum((a * b for a, b in zip(point.W[j].tolist(), problem.X[i].tolist())), fmpq(0)) < 0
                    for i in idx)
        if others_neg and z_neg:
            js.append(j)
            for i in idx:
                signs[i, j] = -1
            kinks[j] = []
            status[j] = "dead"
    if not js:
        return None
    return Pattern(status, kinks, [x for x in pat.snapped if x[0] not in js], signs, pat.sizes, pat.kink_tol), js


def replica_clusters(point: Point, pat: Pattern, angle: float) -> list:
    """Clusters (>= 2 neurons) of alive neurons with the same activation pattern whose input
    directions are chained by angles below ``angle`` (single linkage)."""
    groups: dict = {}
    for j in range(point.m):
        if pat.status[j] == "alive":
            groups.setdefault(tuple(int(v) for v in pat.signs[:, j]), []).append(j)
    Wf = point.Wf
    out = []
    for js in groups.values():
        dirs = {j: Wf[j] / np.linalg.norm(Wf[j]) for j in js}
        left = list(js)
        while left:
            cl, todo = [left.pop(0)], None
            todo = [cl[0]]
            while todo:
                i = todo.pop()
                near = [j for j in left if math.acos(max(-1.0, min(1.0, float(dirs[i] @ dirs[j])))) < angle]
                for j in near:
                    left.remove(j)
                cl += near
                todo += near
            if len(cl) > 1:
                out.append(sorted(cl))
    return out


def refine_replicas(problem: Problem, start: Point, pat: Pattern, reading: str, tol: Tolerances):
    """Vector output: read near-parallel neurons of one activation pattern as exact replicas.

    Each cluster C is merged into one neuron (u, c) with the cluster's function when its members are
    exactly parallel: u along the contribution-weighted mean direction, c = sum_l |w_l| a_l
    (positive homogeneity); the narrower point is refined exactly (grouped least squares, else
    high-precision Newton); then the cluster is split back into copies (gamma_l u*, beta_l c* / gamma_l)
    with gamma_l = |w_l| / |u*| and beta_l from the projections of the original a_l on c* (sum 1),
    which reproduces the refined narrow network exactly (THEORY §7, replication).
    Returns (point or None, note), or None when there is nothing to merge."""
    clusters = replica_clusters(start, pat, tol.replica_angle)
    if not clusters:
        return None
    rep = {cl[0]: cl for cl in clusters}
    drop = {j for cl in clusters for j in cl[1:]}
    keep = [j for j in range(start.m) if j not in drop]
    Wf, Af = start.Wf, start.Af
    Wn = np.empty((len(keep), problem.d), dtype=object)
    An = np.empty((len(keep), problem.k), dtype=object)
    for t, j in enumerate(keep):
        if j in rep:
            cl = rep[j]
            wn = [float(np.linalg.norm(Wf[l])) for l in cl]
            om = [wn[i] * float(np.linalg.norm(Af[l])) for i, l in enumerate(cl)]
            if sum(om) <= 0:
                om = [1.0] * len(cl)
            u = sum(om[i] * Wf[l] / wn[i] for i, l in enumerate(cl))
            u = u / np.linalg.norm(u)
            c = sum(wn[i] * Af[l] for i, l in enumerate(cl))
            sc = math.sqrt(max(float(np.linalg.norm(c)), 1e-300))
            Wn[t] = [fmpq(*float(v * sc).as_integer_ratio()) for v in u]
            An[t] = [fmpq(*float(v / sc).as_integer_ratio()) for v in c]
        else:
            Wn[t], An[t] = start.W[j], start.A[j]
    narrow = Point(Wn, An)
    npat = Pattern([pat.status[j] for j in keep], [pat.kinks[j] for j in keep],
                   [x for x in pat.snapped if x[0] not in drop], pat.signs[:, keep],
                   [pat.sizes[j] for j in keep], pat.kink_tol)
    names = ", ".join("{" + ",".join(map(str, cl)) + "}" for cl in clusters)
    label = f"{len(clusters)} replica clusters merged ({names}; angle < {tol.replica_angle:g} rad)"
    try:
        new, note = refine_grouped(problem, narrow, npat, reading)
        if new is None:
            nunk = sum(d_unknowns(problem, npat, j) for j in range(narrow.m))
            if nunk > MAX_NEWTON_UNKNOWNS:
                return None, f"{label}: {note}; high-precision Newton skipped ({nunk} unknowns)"
            new, note2 = refine_vector(problem, narrow, npat, reading)
            note = f"{note}; {note2}"
    except (ZeroDivisionError, ValueError, ArithmeticError) as e:
        return None, f"{label}: refinement failed: {e}"
    if new is None:
        return None, f"{label}: {note}"
    W, A = start.W.copy(), start.A.copy()
    for t, j in enumerate(keep):
        if j not in rep:
            W[j], A[j] = new.W[t], new.A[t]
            continue
        u, c = new.W[t].tolist(), new.A[t].tolist()
        un = math.sqrt(sum(_fl(v) ** 2 for v in u))
        cc = sum((v * v for v in c), fmpq(0))
        if un == 0 or cc == 0:
            return None, f"{label}: a merged neuron refined to zero"
        gam, raw = {}, {}
        for l in rep[j]:
            g = float(np.linalg.norm(Wf[l])) / un
            gam[l] = fmpq(*g.as_integer_ratio())
            raw[l] = gam[l] * sum((a * b for a, b in zip(start.A[l].tolist(), c)), fmpq(0)) / cc
        if any(v <= 0 for v in raw.values()):
            raw = {l: gam[l] * fmpq(*float(np.linalg.norm(Af[l]) + 1e-300).as_integer_ratio()) for l in rep[j]}
        tot = sum(raw.values(), fmpq(0))
        for l in rep[j]:
            beta = raw[l] / tot
            W[l] = [gam[l] * v for v in u]
            A[l] = [beta * v / gam[l] for v in c]
    return Point(W, A), f"{label}, the narrower point refined ({note}), and split back exactly"


def _refine_one(problem: Problem, point: Point, pat: Pattern, reading: str, tol: Tolerances) -> Refinement:
    start, changed = _apply_reading(problem, point, pat, reading)
    try:
        if problem.k == 1:
            new, note = refine_scalar(problem, start, pat, reading)
        else:
            new, note = refine_grouped(problem, start, pat, reading)
            if new is None:
                nunk = sum(d_unknowns(problem, pat, j) for j in range(start.m))
                if nunk <= MAX_NEWTON_UNKNOWNS:
                    new, note2 = refine_vector(problem, start, pat, reading)
                    note = f"{note}; {note2}"
                else:
                    note += f"; high-precision Newton skipped ({nunk} unknowns > {MAX_NEWTON_UNKNOWNS})"
    except (ZeroDivisionError, ValueError, ArithmeticError) as e:
        new, note = None, f"refinement failed: {e}"
    ignore = changed if reading == "tiny_zero" else []
    if problem.k > 1 and (new is None or _pattern_kept(problem, new, pat, ignore)
                          or _distance(problem, point, new)["relative_to_scale"] > tol.max_move):
        merged = refine_replicas(problem, start, pat, reading, tol)
        if merged is not None and merged[0] is not None:
            new, note = merged[0], f"{note}; then {merged[1]}"
        elif merged is not None:
            note = f"{note}; then {merged[1]}"
    if new is None:
        return Refinement(reading, None, None, {}, note)
    flips = _pattern_kept(problem, new, pat, ignore)
    dist = _distance(problem, point, new)
    if flips:
        return Refinement(reading, None, new, dist,
                          f"the refined point leaves the pattern ({len(flips)} sign changes); stopped", flips)
    if dist["relative_to_scale"] > tol.max_move:
        return Refinement(reading, None, new, dist,
                          f"{note}; the refined point is too far from the given one (move "
                          f"{dist['relative_to_scale']:.2e} relative to max(|theta|, the problem's "
                          f"parameter scale) > {tol.max_move:g}); stopped")
    res = certify(problem, new)
    if problem.k > 1 and res.verdict == "not_stationary":
        # vector output: the pattern-restricted stationary point is in general irrational (rank-
        # constrained least squares), and its rational rounding is not exactly stationary; that is
        # a failure to certify, not a verdict about a stationary point (THEORY §6)
        ns = res.certificate["evidence"]["not_stationary"]
        resid = float(Fraction(ns["derivative"]))
        from relucert.decide.ball import ball_certificate
        cert, bnote = ball_certificate(problem, new)
        if cert is not None:
            return Refinement(reading, None, new, dist,
                              f"{note}; the rational rounding is stationary only up to {resid:.1e}, but a "
                              f"ball certificate proves an exact stationary point nearby that is a saddle: "
                              f"{bnote}", ball=cert)
        return Refinement(reading, None, new, dist,
                          f"{note}; inconclusive: the rational rounding is not exactly stationary (residual: "
                          f"L'(theta; Delta) = {resid:.3e} along the recorded descent direction, "
                          f"{ns['reason']} on neuron {ns['direction']['neuron']}){_numerical_hint(problem, new, resid)}")
    return Refinement(reading, res, new, dist, note)


def _numerical_hint(problem: Problem, point: Point, resid: float) -> str:
    """Unproven indication at an almost-stationary rounding: neurons with a_j = 0 whose D_j is far
    from zero would make an exactly stationary point nearby a saddle (escape path of §4)."""
    from relucert.decide.escape import escape_test
    from relucert.core.formulas import ExactState
    st = ExactState(problem, point)
    big = []
    for j in range(point.m):
        if any(v != 0 for v in point.A[j]):
            continue
        esc = escape_test(st.neuron(j))
        if esc.escape and esc.D is not None:
            size = math.sqrt(sum(_fl(v) ** 2 for v in esc.D))
            if size > 1e6 * abs(resid):
                big.append((j, size))
    if not big:
        return ""
    j, size = max(big, key=lambda x: x[1])
    return (f"; numerically (not proven): a saddle, since neuron{'s' if len(big) > 1 else ''} "
            f"{[b[0] for b in big]} with a_j = 0 {'have' if len(big) > 1 else 'has'} |D_j(r)| up to {size:.2e} "
            f">> the residual")


DECISIVE = ("local_min", "saddle", "global_min")


def _ball_escape(ball: dict | None) -> list:
    return [e["neuron"] for e in ball["evidence"]["escape"]] if ball else []


def choose(refs: list) -> Refinement:
    """The primary refinement: the first reading (in READINGS order) with a decisive verdict."""
    for r in refs:
        if r.verdict in DECISIVE:
            return r
    return refs[0]


def snap_gap(problem: Problem, point: Point, pat: Pattern) -> dict | None:
    """How well separated the snapped pairs are from the kept ones (relative |w.x|/(|w||x|))."""
    if not pat.snapped:
        return None
    X, W = problem.Xf, point.Wf
    rel = np.abs(X @ W.T) / np.maximum(np.outer(np.linalg.norm(X, axis=1), np.linalg.norm(W, axis=1)), 1e-300)
    snapped = {(i, j) for j, i, _ in pat.snapped}
    kept = [rel[i, j] for i in range(rel.shape[0]) for j in range(rel.shape[1])
            if pat.signs[i, j] != 0 and (i, j) not in snapped and pat.status[j] not in ("zero", "zero_output")]
    big = max(r for _, _, r in pat.snapped)
    small = min(kept) if kept else float("inf")
    return {"largest_snapped": big, "smallest_kept": small, "ratio": small / big if big > 0 else float("inf")}


def refined_report(problem: Problem, point: Point, info: dict) -> dict:
    pat, refs = info["pattern"], info["refinements"]
    best = choose(refs)
    r = best.result
    verdicts = {x.reading: x.verdict for x in refs
                if x.reading in READINGS}
    ambiguities = []
    alt = [x for x in refs if x.reading == "snapped_as_dead"]
    if alt:
        v_alt = alt[0].verdict
        v_base = next((x.verdict for x in refs if x.reading == "as_given"),
                      "inconclusive")
        if v_alt != v_base:
            ambiguities.append({"what": alt[0].note.split(";")[0] + " (they are strictly negative, by less than "
                                        "the kink tolerance)",
                                "verdicts": {"on the kink (as_given)": v_base, "strictly dead": v_alt}})
    if len(set(verdicts.values())) > 1:
        t = info["tolerances"]
        ambiguities.append({"what": f"tiny neurons {info['tiny']} (size |a||w|max|x|/max|y| < {t.tiny:g}, or < "
                                    f"{t.alive:g} without an alive neuron of the same activation pattern): "
                                    "as given, with output weight 0, or exactly zero",
                            "verdicts": verdicts})
    gap = snap_gap(problem, point, pat)
    if gap is not None and gap["ratio"] < 100:
        ambiguities.append({"what": f"kink snapping is not clear-cut: largest snapped |w.x|/(|w||x|) = "
                                    f"{gap['largest_snapped']:.2e}, smallest kept = {gap['smallest_kept']:.2e} "
                                    f"(ratio {gap['ratio']:.1f} < 100); try another --tol-kink"})
    groups: dict = {}
    for j, i, rel in pat.snapped:
        groups.setdefault(i, []).append(j)
    out = {
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
            "tiny": info["tiny"],
            "treated_as_zero": info["tiny"] if best.reading == "tiny_zero" else [],
            "output_set_to_zero": info["tiny"] if best.reading == "tiny_output_zero" else [],
            "dead": [j for j, s in enumerate(pat.status) if s == "dead"],
            "status": pat.status,
        },
        "ambiguities": ambiguities,
        "snap_gap": gap,
        "readings": [x.to_json() for x in refs],
        "tolerances": dict(info["tolerances"].to_json(), kink_used=pat.kink_tol),
        "certificate": r.certificate if r else best.ball,
        "escape_path_losses": escape_path_losses(r) if r else [],
        "left_pattern": best.left_pattern,
    }
    return out
