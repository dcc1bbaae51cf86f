"""Saddles and local minima at exact stationary points that are not rational (vector output).

After the replica reading of refinement (refine.refine_replicas), a vector-output plateau is often
a narrow network whose stationary point is irrational (a rank-constrained fit): its rational
rounding is stationary only up to ~1e-60, so the exact certificate says not_stationary.  This
module proposes a *ball certificate* (check.BALL_FORMAT) for such a rounding: Krawczyk's test in
rational interval arithmetic proves that the pattern-restricted stationarity equations of the
narrow network have a unique zero xi* in a box of radius rho around the rounding; on the whole box
the activation pattern is strict, (S2) holds robustly across every kink, and a zero neuron has
D_j(r) != 0.  The wide point theta* built from xi* (exact copies of each cluster neuron) is then a
stationary point with an escape neuron with a_j = 0: a saddle (docs/theory.md §4), within rho of the
rounding in the narrow parameters.

For a plain narrow network (one neuron per cluster, no zero neuron; dead neurons allowed; data points
on an alive neuron's kink allowed when independent) the certificate can instead say local_min
(docs/theory.md §10.5): the interval Hessian of the loss on the gauge slice is positive definite on
the whole box (above a recorded curvature bound), (S2) holds strictly across every kink on the box,
and the slice is transversal to the rescaling orbits.  Kink-free neurons sharing one strict sign
vector form GL groups (docs/theory.md §10.6): their slice fixes an invertible block of their input
weights, transversal to the GL(r) orbits that one coordinate per neuron leaves in the slice.  The
same groups, linear blocks and trades serve saddle certificates (single smooth neurons next to the
replica clusters and zero neurons): their stationarity arguments do not depend on the verdict.

The solver part here only proposes (structure, center, preconditioner, radius, curvature); the decision is
the independent checker's (relucert.check), which re-derives everything.
"""
from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations

import numpy as np

from flint import arb, arb_mat, ctx, fmpq, fmpq_mat

from relucert import check
from relucert.decide.certify import fingerprint
from relucert.decide.escape import escape_test
from relucert.core.formulas import ExactState, neuron_status
from relucert.core.hessian import hessian, kink_pairs, param_index
from relucert.core.linalg import dot, nullspace, rank
from relucert.core.problem import Point, Problem

RADII = (Fraction(1, 10 ** 30), Fraction(1, 10 ** 20), Fraction(1, 10 ** 40), Fraction(1, 10 ** 12),
         Fraction(1, 10 ** 50))


def _ratio(v: str) -> tuple[int, int]:
    f = Fraction(v)
    return f.numerator, f.denominator


def _s(v) -> str:
    return str(v)


def _round(q: fmpq, digits: int = 40) -> Fraction:
    f = Fraction(int(q.p), int(q.q))
    if f == 0:
        return f
    scale = Fraction(10) ** (digits - len(str(abs(f.numerator) // f.denominator or 1)))
    return Fraction(round(f * scale)) / scale


def _kink_basis(X: list, nz: list, u: list, d: int) -> tuple:
    """(K, B, theta, why not): the kink points K of input weight u (non-zero data points with
    u . x_i = 0), a basis B of their null space (all of R^d when K is empty) and the coordinates
    theta of u in it (u = sum_t theta_t B_t); why is '' or the reason there is no such
    parametrisation (dependent kink points)."""
    K = [i for i in nz if dot(u, X[i]) == 0]
    if rank([X[i] for i in K]) != len(K):
        return K, None, None, f"dependent kink points {K}"
    B = nullspace([X[i] for i in K], d) if K else [[fmpq(1) if q == t else fmpq(0) for q in range(d)]
                                                      for t in range(d)]
    Bm = fmpq_mat(len(B), d, [v for row in B for v in row])
    th = (Bm * Bm.transpose()).solve(Bm * fmpq_mat(d, 1, u))
    theta = [th[t, 0] for t in range(len(B))]
    if [sum((theta[t] * B[t][q] for t in range(len(B))), fmpq(0)) for q in range(d)] != u:
        return K, None, None, "input weight outside its kinks' null space"
    return K, B, theta, ""


def structure(problem: Problem, point: Point) -> tuple[dict, str]:
    """(evidence skeleton, note) for a ball certificate, or (None, why not)."""
    if point.c is not None:
        return None, ("the point has an output bias c: ball certificates do not cover it yet (the narrow unknowns "
                      "and equations would need c and e_bar = 0, docs/biases.md §8.10)")
    n, d, k, m = problem.n, problem.d, problem.k, point.m
    X = [problem.X[i].tolist() for i in range(n)]
    am = problem.activation.alpha_minus
    W = [point.W[j].tolist() for j in range(m)]
    A = [point.A[j].tolist() for j in range(m)]
    nz = [i for i in range(n) if any(v != 0 for v in X[i])]
    zero, dead, alive = [], [], []
    for j in range(m):
        st = neuron_status(problem.X, W[j], A[j], am)
        if st == "zero":
            zero.append(j)
        elif st == "dead":
            dead.append(j)
        elif st in ("zero-input", "zero-output"):
            return None, f"neuron {j} has w = 0 or a = 0 without being zero or dead"
        else:
            alive.append(j)
    if not zero:
        return None, "no zero neuron (only saddles via a zero escape neuron are proved with a ball)"
    # clusters: exactly positively parallel input weights with output weights along one c
    groups: list[list[int]] = []
    for j in alive:
        for gl in groups:
            w0 = W[gl[0]]
            lam = next((W[j][q] / w0[q] for q in range(d) if w0[q] != 0), None)
            if lam is not None and lam > 0 and all(W[j][q] == lam * w0[q] for q in range(d)):
                gl.append(j)
                break
        else:
            groups.append([j])
    clusters, parts = [], []
    for gl in groups:
        u = W[gl[0]]
        gam = [next(W[j][q] / u[q] for q in range(d) if u[q] != 0) for j in gl]
        c = [sum((g * A[j][cc] for g, j in zip(gam, gl)), fmpq(0)) for cc in range(k)]
        cc_ = dot(c, c)
        if cc_ == 0:
            return None, f"cluster {gl}: zero total output"
        beta = [g * dot(A[j], c) / cc_ for g, j in zip(gam, gl)]
        if any(b <= 0 for b in beta) or any(A[j] != [b * v / g for v in c] for j, g, b in zip(gl, gam, beta)):
            return None, f"cluster {gl}: output weights are not positive multiples of one vector"
        K, B, theta, why = _kink_basis(X, nz, u, d)
        if why:
            return None, f"cluster {gl}: {why}"
        t0 = max(range(len(B)), key=lambda t: abs(theta[t]))
        clusters.append({"neurons": gl, "gamma": [_s(g) for g in gam], "beta": [_s(b) for b in beta],
                         "basis": [[_s(v) for v in row] for row in B], "gauge": t0, "gauge_value": _s(theta[t0])})
        # copies and kink clusters keep their single gauge; single smooth neurons may form GL groups
        parts.append((theta, c, None if K or len(gl) > 1 else
                      tuple((dot(u, X[i]) > 0) - (dot(u, X[i]) < 0) for i in nz)))
    grouped, why = _group_symmetries(problem, point, clusters, parts)
    if grouped is None:
        return None, why
    extras, center, gnotes = grouped
    st = ExactState(problem, point)
    esc = []
    for j in zero:
        e = escape_test(st.neuron(j))
        if e.escape:
            esc.append({"neuron": j, "r": [_s(v) for v in e.r]})
    if not esc:
        return None, "no zero neuron is an escape neuron"
    gn = f"; {'; '.join(gnotes)}" if gnotes else ""
    return ({"clusters": clusters, "zero": zero, "dead": dead, "center": [_s(v) for v in center], "escape": esc,
             **extras}, f"{len(clusters)} clusters, {len(center)} unknowns{gn}")


def min_structure(problem: Problem, point: Point) -> tuple[dict | None, str]:
    """(evidence skeleton, note) of a local_min ball certificate (docs/theory.md §10.5), or (None, why
    not): a plain narrow network, one cluster per alive neuron, dead neurons (ReLU-like, strictly
    dead: no data point on their kink) allowed, no zero neuron.  An alive neuron with data points on
    its kink is parametrised in the null space of those (independent) points, as for saddles; its
    cluster lists them under ``kinks``, and the checker then proves (S2) strictly and robustly across
    each of them (the strict complementarity of §10.5).  Smooth neurons keep the identity basis; the
    gauge is the largest basis coordinate of w_j.  Kink-free alive neurons with one strict sign
    vector (r >= 2 of them) form a GL group (§10.6): each fixes its weights on the same r columns S,
    chosen so that the r x r block C of their input weights is well conditioned and exactly
    invertible."""
    built, why = _plain_clusters(problem, point)
    if built is None:
        return None, why
    clusters, parts, dead, nk = built
    grouped, why = _group_symmetries(problem, point, clusters, parts)
    if grouped is None:
        return None, why
    extras, center, gnotes = grouped
    ev = {"clusters": clusters, "zero": [], "dead": dead, "center": [_s(v) for v in center], **extras}
    kn = f", {nk} data points on kinks" if nk else ""
    gn = f"; {'; '.join(gnotes)}" if gnotes else ""
    return ev, f"{len(clusters)} alive neurons, {len(dead)} dead, {len(center)} unknowns{kn}{gn}"


def _plain_clusters(problem: Problem, point: Point) -> tuple:
    """((clusters, parts, dead, number of kink points), '') or (None, why not): one single-gauge
    cluster per alive neuron (the kink null-space basis when data lie on its kink), the strictly dead
    neurons, and per cluster (theta, a, strict sign vector or None with kinks) -- the skeleton shared by
    the local_min structures (§10.5, §10.6, §10.8)."""
    if point.c is not None:
        return None, "the point has an output bias c: ball certificates do not cover it yet"
    n, d, m = problem.n, problem.d, point.m
    X = [problem.X[i].tolist() for i in range(n)]
    am = problem.activation.alpha_minus
    nz = [i for i in range(n) if any(v != 0 for v in X[i])]
    clusters, parts, dead, nk = [], [], [], 0
    for j in range(m):
        w, a = point.W[j].tolist(), point.A[j].tolist()
        st = neuron_status(problem.X, w, a, am)
        if st == "dead":            # strictly dead: w . x_i < 0 on every non-zero data point
            dead.append(j)
            continue
        if st != "alive":
            return None, f"neuron {j} is {st} (a local_min ball needs alive or dead neurons only)"
        K, B, theta, why = _kink_basis(X, nz, w, d)
        if why:
            return None, f"neuron {j}: {why}"
        if am == 0 and not any(dot(w, X[i]) > 0 for i in nz):
            return None, (f"neuron {j} is silent on every data point with data point {K[0]} on its kink: "
                          f"not strictly dead (a dead neuron needs every w . x_i < 0), and not active")
        t0 = max(range(len(B)), key=lambda t: abs(theta[t]))
        cl = {"neurons": [j], "gamma": ["1"], "beta": ["1"], "basis": [[_s(v) for v in row] for row in B],
              "gauge": t0, "gauge_value": _s(theta[t0])}
        if K:
            cl["kinks"] = K
            nk += len(K)
        clusters.append(cl)
        parts.append((theta, a, None if K else tuple((dot(w, X[i]) > 0) - (dot(w, X[i]) < 0) for i in nz)))
    if not clusters:
        return None, "no alive neuron"
    return (clusters, parts, dead, nk), ""


def _group_symmetries(problem: Problem, point: Point, clusters: list, parts: list) -> tuple:
    """((extras, center, notes), '') or (None, why not): the GL groups and linear blocks of the clusters
    with one strict sign vector (``parts[g]`` = (theta_g, c_g, sign vector or None when the cluster is
    not eligible: kinks, or copies)), the trades between them (docs/theory.md §10.6), the clusters'
    gauges set accordingly (in place) and the box centre in the checker's unknown order.  Shared by the
    saddle and the local_min structures: the stationarity arguments of §10.6 (e)-(g) do not depend on
    the verdict."""
    d = problem.d
    # GL groups: kink-free clusters with one (strict) sign vector
    by_sign: dict = {}
    for g, (_, _, sig) in enumerate(parts):
        if sig is not None:
            by_sign.setdefault(sig, []).append(g)
    gl_groups, gnotes, fixed_out = [], [], set()
    for mem in by_sign.values():
        if len(mem) < 2:
            continue
        js = [clusters[g]["neurons"][0] for g in mem]
        r = len(mem)
        if r > d:      # a linear block (§10.6 (f)): all of W_g fixed, outputs free on d rows only
            F = _gl_rows([parts[g][0] for g in mem], d)
            if F is None:
                return None, (f"neurons {js} share one activation pattern (r = {r} > d = {d}) but their input "
                              f"weights have rank < {d}: no invertible {d} x {d} block of free outputs "
                              f"(docs/theory.md §10.6)")
            for g in mem:
                clusters[g]["gauge"] = list(range(d))
                clusters[g]["gauge_value"] = [_s(v) for v in parts[g][0]]
            fo = [g for a, g in enumerate(mem) if a not in F]
            gl_groups.append({"clusters": mem, "columns": list(range(d)), "fixed_outputs": fo})
            fixed_out.update(fo)
            gnotes.append(f"neurons {js} in a linear block (r = {r} > d = {d}), outputs fixed for neurons "
                          f"{[clusters[g]['neurons'][0] for g in fo]}")
            continue
        S = _gl_columns([parts[g][0] for g in mem], d)
        if S is None:
            return None, (f"neurons {js} share one activation pattern but their input weights have rank < {r}: "
                          f"no invertible GL gauge block (docs/theory.md §10.6)")
        for g in mem:
            clusters[g]["gauge"] = list(S)
            clusters[g]["gauge_value"] = [_s(parts[g][0][t]) for t in S]
        gl_groups.append({"clusters": mem, "columns": list(S)})
        gnotes.append(f"neurons {js} in a GL({r}) group on columns {list(S)}")
    trades, tnote = _trades(problem, point, clusters, gl_groups, fixed_out)
    extras = {}
    if gl_groups:
        extras["gl_groups"] = gl_groups
    if trades is not None:
        extras["trades"] = trades
        gnotes.append(tnote)
    return (extras, _center(clusters, parts, {"clusters": clusters, **extras}, problem.k), gnotes), ""


def _center(clusters: list, parts: list, ev: dict, k: int) -> list:
    """The box centre in the checker's unknown order: per cluster its free basis coordinates, then its
    free outputs."""
    fixed_in, fixed_out = _fixed_sets(ev, k)
    center: list = []
    for g, (theta, a, _) in enumerate(parts):
        fo = fixed_out.get(g, ())
        center += [theta[t] for t in range(len(theta)) if t not in fixed_in[g]] + [a[c] for c in range(k) if c not in fo]
    return center


RANK_GAP = 1e-11          # numerical rank of the outputs' derivative: singular values below this (relative) are 0
RANK_CUT = 1e-8           # ... and the ones kept must exceed this (relative): a clear gap, or no proposal
PARTITION_SECONDS = 1.0   # the partition search's budget


def rank_structure(problem: Problem, point: Point) -> tuple[dict | None, str]:
    """(evidence skeleton, note) of a constant-rank local_min ball certificate (docs/theory.md §10.8),
    or (None, why not).  The clusters are those of §10.5 (one per alive neuron, single gauges, kink
    null-space bases); instead of naming symmetries, the evidence partitions the clusters into blocks
    whose rank bound (Lemma R) equals the numerical rank r of the derivative of the outputs at the
    point, and fixes every coordinate but r of them (column-pivoted QR on that derivative, gauges
    fixed first): the slice is then a complement of the output map's fibres.  The checker re-derives
    the bound exactly and proves the slice's Gram matrix positive definite on the box."""
    import time
    from scipy.linalg import qr
    built, why = _plain_clusters(problem, point)
    if built is None:
        return None, why
    clusters, parts, dead, nk = built
    n, d, k = problem.n, problem.d, problem.k
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    Xf = np.array([[float(v) for v in problem.X[i].tolist()] for i in range(n)])
    Ys, Yq = [], []
    labels, cols = [], []
    for g, cl in enumerate(clusters):
        j = cl["neurons"][0]
        w = point.W[j].tolist()
        B = [[fmpq(*_ratio(v)) for v in row] for row in cl["basis"]]
        sl = []
        for i in range(n):
            z = dot(w, problem.X[i].tolist())
            sl.append(ap if z > 0 else (am if z < 0 else fmpq(0)))
        yq = [[sl[i] * dot(b, problem.X[i].tolist()) for b in B] for i in range(n)]
        Yq.append(yq)
        Y = np.array([[float(v) for v in row] for row in yq]).reshape(n, len(B))
        Ys.append(Y)
        theta, a = parts[g][0], parts[g][1]
        af = np.array([float(v) for v in a])
        h = Y @ np.array([float(v) for v in theta])
        for t in range(len(B)):
            labels.append((g, "w", t))
            cols.append(np.outer(Y[:, t], af).ravel())
        for c in range(k):
            e = np.zeros(k)
            e[c] = 1.0
            labels.append((g, "a", c))
            cols.append(np.outer(h, e).ravel())
    DF = np.array(cols).T
    if not np.all(np.isfinite(DF)) or not DF.any():
        return None, "the outputs' derivative is not finite (or 0) in float64"
    sv = np.linalg.svd(DF, compute_uv=False)
    r = int((sv > RANK_GAP * sv[0]).sum())
    if sv[r - 1] < RANK_CUT * sv[0]:
        return None, (f"no clear numerical rank of the outputs' derivative (singular values {sv[r - 1]:.1e} and "
                      f"{sv[r] if r < len(sv) else 0:.1e} relative to {sv[0]:.1e})")
    # the partition: the smallest bound found; it must reach r
    G = len(clusters)
    cache: dict = {}

    def fb(b):
        key = frozenset(b)
        if key not in cache:
            M = np.hstack([Ys[g] for g in key])
            s2 = np.linalg.svd(M, compute_uv=False) if M.size else np.zeros(0)
            gam = int((s2 > 1e-9 * s2[0]).sum()) if s2.size and s2[0] > 0 else 0
            al, be = min(len(key), gam), min(len(key), k)
            cache[key] = k * al + be * (gam - al)
        return cache[key]

    def tot(p):
        return sum(fb(b) for b in p)
    sig: dict = {}
    for g in range(G):
        sig.setdefault(parts[g][2] if parts[g][2] is not None else ("kink", g), []).append(g)
    starts = [list(map(list, sig.values())), [[g] for g in range(G)], [list(range(G))]]
    best = None
    t_end = time.perf_counter() + PARTITION_SECONDS
    rng = np.random.default_rng(0)
    tries = 0
    while True:
        for st in starts:
            for z in (False, True):
                q = _improve_partition(st, fb, z)
                if best is None or tot(q) < tot(best):
                    best = q
        if tot(best) <= r or time.perf_counter() > t_end:
            break
        tries += 1
        st = [list(b) for b in sig.values()]
        rng.shuffle(st)
        for _ in range(int(rng.integers(1, 4))):
            if len(st) < 2:
                break
            x, y = rng.choice(len(st), 2, replace=False)
            st[x] += st[y]
            del st[y]
        starts = [st]
    R = tot(best)
    if R != r:
        return None, (f"the output map has rank {r} at the point, but no partition of the {G} alive neurons "
                      f"found bounds its rank below {R} (Lemma R, docs/theory.md §10.8)")
    # the exact bound of that partition (the checker's): ranks over Q
    Rq = 0
    for b in best:
        rows = [[v for g in b for v in Yq[g][i]] for i in range(n)]
        gam = fmpq_mat(n, len(rows[0]), [v for row in rows for v in row]).rank() if rows and rows[0] else 0
        al, be = min(len(b), gam), min(len(b), k)
        Rq += k * al + be * (gam - al)
    if Rq != r:
        return None, f"the blocks' exact rank bound is {Rq}, not the numerical rank {r}"
    # the free coordinates: r columns of DF, gauges fixed first
    cand = [a for a, (g, kind, t) in enumerate(labels) if not (kind == "w" and t == clusters[g]["gauge"])]
    sub = DF[:, cand] / np.maximum(np.linalg.norm(DF[:, cand], axis=0), 1e-300)
    _, Rm, piv = qr(sub, mode="economic", pivoting=True)
    if len(cand) < r or abs(Rm[r - 1, r - 1]) < 1e-8 * abs(Rm[0, 0]):
        return None, f"no {r} well-conditioned free coordinates (the gauges fixed) for the output map"
    free = {cand[a] for a in piv[:r]}
    fixed_inputs, fixed_outputs = [], []
    for a, (g, kind, t) in enumerate(labels):
        if a in free or (kind == "w" and t == clusters[g]["gauge"]):
            continue
        if kind == "w":
            fixed_inputs.append([g, t, _s(parts[g][0][t])])
        else:
            fixed_outputs.append([g, t, _s(parts[g][1][t])])
    V = DF[:, sorted(free)]
    lam = float(np.linalg.eigvalsh(V.T @ V / n)[0])
    if not lam > 0:
        return None, "the output map's Gram matrix on the slice is not positive definite in float64"
    cr = {"blocks": [sorted(b) for b in best], "fixed_inputs": fixed_inputs, "fixed_outputs": fixed_outputs,
          "gram": _s(_mu_candidates(lam / 2)[0])}
    ev = {"clusters": clusters, "zero": [], "dead": dead, "constant_rank": cr}
    ev["center"] = [_s(v) for v in _center(clusters, parts, ev, k)]
    big = [b for b in best if len(b) > 1]
    kn = f", {nk} data points on kinks" if nk else ""
    return ev, (f"{G} alive neurons, {len(dead)} dead{kn}; the output map has rank {r} of {len(labels)} "
                f"coordinates, bounded by blocks {[[clusters[g]['neurons'][0] for g in b] for b in big]} "
                f"(the rest single neurons): a slice of {r} unknowns")


def _improve_partition(p: list, fb, allow_zero: bool) -> list:
    """Local search on a partition of the clusters for a smaller rank bound sum_b fb(b): merge the two
    blocks with the largest gain (with ``allow_zero``, also a merge that gains nothing), else move one
    cluster to another block or a block of its own, until nothing gains."""
    p = [list(b) for b in p]
    while True:
        best = None
        for x, y in combinations(range(len(p)), 2):
            gain = fb(p[x]) + fb(p[y]) - fb(p[x] + p[y])
            if (gain > 0 or (allow_zero and gain == 0)) and (best is None or gain > best[0]):
                best = (gain, x, y)
        if best is not None:
            _, x, y = best
            p[x] = p[x] + p[y]
            del p[y]
            continue
        moved = False
        for x in range(len(p)):
            if len(p[x]) == 1:
                continue
            for g in p[x]:
                rest = [h for h in p[x] if h != g]
                for y in [*range(len(p)), None]:
                    if y == x:
                        continue
                    after = fb(rest) + (fb([g]) if y is None else fb(p[y] + [g]))
                    if fb(p[x]) + (0 if y is None else fb(p[y])) - after > 0:
                        p[x] = rest
                        if y is None:
                            p.append([g])
                        else:
                            p[y] = p[y] + [g]
                        moved = True
                        break
                if moved:
                    break
            if moved:
                break
        if not moved:
            return p


def _fixed_sets(ev: dict, k: int) -> tuple[list, dict]:
    """(per cluster the set of its fixed basis indices, {cluster: set of its fixed output indices}) of a
    local_min evidence: the gauge (an index, or a group's columns), an input trade's t1; a linear
    block's fixed_outputs and the output trades' fixed clusters (all k outputs); the coordinates a
    constant_rank slice fixes (§10.8)."""
    tr = ev.get("trades", {})
    extra = {it["cluster"]: it["fixed"] for it in tr.get("inputs", [])}
    fixed_in = []
    for g, cl in enumerate(ev["clusters"]):
        fx = set(cl["gauge"]) if isinstance(cl["gauge"], list) else {cl["gauge"]}
        if g in extra:
            fx.add(extra[g])
        fixed_in.append(fx)
    whole = {g for gr in ev.get("gl_groups", []) for g in gr.get("fixed_outputs", [])}
    whole.update(tr.get("fixed", []))
    fixed_out = {g: set(range(k)) for g in whole}
    cr = ev.get("constant_rank")
    if cr is not None:
        for g, t, _ in cr["fixed_inputs"]:
            fixed_in[g].add(t)
        for g, c, _ in cr["fixed_outputs"]:
            fixed_out.setdefault(g, set()).add(c)
    return fixed_in, fixed_out


def _trades(problem: Problem, point: Point, clusters: list, gl_groups: list,
            fixed_out: set) -> tuple[dict | None, str]:
    """Evidence ``trades`` (docs/theory.md §10.6 (g)), or (None, '') when there are none.

    The trade clusters T are those whose input weights the slice fixes entirely (members of a group on
    all d columns) and whose outputs are free: they enter the outputs linearly, through the constant
    vectors h_g = (s_gi (w_g . x_i))_i.  Output trades: every z with sum_g z_g h_g = 0 moves their
    outputs along (z_g v)_g, v in R^k, without changing any output; one cluster per kernel vector gets
    its outputs fixed (greedy pivoting, an exactly invertible block).  Input trades: a kink-free
    single-gauge neuron g outside the groups whose input weight can move along v (not parallel to
    w_g) with s_gi (v . x_i) in the span of the group members' h_h: their outputs absorb the move, and
    one more coordinate t1 of w_g is fixed (the one with the largest |w_t0 v_t1 - w_t1 v_t0|/|v|).
    For d = 2 that fixes all of w_g, and g joins T (zeta = 0 on it) when some output trade uses it."""
    d = problem.d
    T = [g for gr in gl_groups if gr["columns"] == list(range(d)) for g in gr["clusters"] if g not in fixed_out]
    if not T:
        return None, ""
    ap, am = problem.activation.alpha_plus, problem.activation.alpha_minus
    X = [problem.X[i].tolist() for i in range(problem.n)]
    n = problem.n

    def h_of(g):
        w = point.W[clusters[g]["neurons"][0]].tolist()
        return [(ap if z > 0 else am) * z for z in (dot(w, x) for x in X)]
    cols = [h_of(g) for g in T]
    t = len(T)
    notes = []
    in_groups = {g for gr in gl_groups for g in gr["clusters"]}
    inputs = []
    for g, cl in enumerate(clusters):
        if g in in_groups or "kinks" in cl or not isinstance(cl["gauge"], int) or len(cl["neurons"]) != 1:
            continue
        w = point.W[cl["neurons"][0]].tolist()
        zs = [dot(w, x) for x in X]
        rows = [[(ap if z > 0 else am) * x[q] for q in range(d)] + [-cols[b][i] for b in range(t)]
                for i, (z, x) in enumerate(zip(zs, X))]
        best = None
        t0 = cl["gauge"]
        for sol in nullspace(rows, d + t):
            v, zeta = sol[:d], sol[d:]
            for t1 in range(d):
                if t1 == t0:
                    continue
                det = w[t0] * v[t1] - w[t1] * v[t0]
                if det != 0:
                    sc = abs(float(det)) / max(max(abs(float(x_)) for x_ in v), 1e-300)
                    if best is None or sc > best[0]:
                        best = (sc, v, zeta, t1)
        if best is not None:
            _, v, zeta, t1 = best
            inputs.append({"cluster": g, "direction": [_s(x_) for x_ in v], "fixed": t1, "combination": zeta})
    if inputs:
        notes.append(f"{len(inputs)} input trade(s): one more input coordinate fixed for neurons "
                     f"{[clusters[it['cluster']]['neurons'][0] for it in inputs]}")
    # a neuron whose input trade fixes its last free coordinate (d = 2: the gauge and t1) enters the
    # outputs linearly too: it joins the clusters of the output trades (not the absorbers: zeta = 0 on it)
    full = [it["cluster"] for it in inputs if d == 2]
    T2 = T + full
    cols2 = cols + [h_of(g) for g in full]
    for it in inputs:
        it["combination"] = [_s(x_) for x_ in it["combination"]] + ["0"] * len(full)
    t2 = len(T2)
    Z = nullspace([[cols2[b][i] for b in range(t2)] for i in range(n)], t2) if t2 >= 2 else []
    used = [b for b in range(t, t2) if any(z[b] != 0 for z in Z)]      # keep the joiners some trade uses
    if len(used) < t2 - t:
        keep = list(range(t)) + used
        T2, Z = [T2[b] for b in keep], [[z[b] for b in keep] for z in Z]
        for it in inputs:
            it["combination"] = it["combination"][:t] + ["0"] * len(used)
        t2 = len(T2)
    fixed = []
    if Z:
        P = _invertible_block(Z, len(Z), t2, scale=False, limit=5000)
        if P is None:            # cannot happen for a basis (rank = len(Z)); refuse rather than guess
            return None, ""
        fixed = [T2[p] for p in P]
        notes.insert(0, f"{len(Z)} output trade(s) between linear blocks: outputs fixed for neurons "
                        f"{[clusters[g]['neurons'][0] for g in fixed]}")
    if not fixed and not inputs:
        return None, ""
    return ({"clusters": T2, "fixed": fixed, "vectors": [[_s(v) for v in z] for z in Z], "inputs": inputs},
            "; ".join(notes))


def _gl_columns(rows: list, d: int) -> list | None:
    """Columns S (|S| = r = len(rows)) with an exactly invertible block rows[:, S], or None if the
    rank is < r (``_invertible_block``, columns scaled to unit maximum first)."""
    return _invertible_block(rows, len(rows), d, scale=True)


def _gl_rows(rows: list, d: int) -> list | None:
    """Indices F of d rows (of r > d) with an exactly invertible d x d block rows[F], or None if the
    rank is < d (``_invertible_block`` on the transpose, without scaling; at most 5000 subsets)."""
    r = len(rows)
    return _invertible_block([[rows[a][t] for a in range(r)] for t in range(d)], d, r, scale=False, limit=5000)


def _invertible_block(rows: list, p: int, q: int, scale: bool, limit: int | None = None) -> list | None:
    """Column indices S (|S| = p) of the exact p x q matrix ``rows`` with rows[:, S] exactly invertible:
    greedy column pivoting in floats (the column with the largest residual after projecting out the
    chosen ones: a large |det|), confirmed by an exact determinant; otherwise the p-subsets are tried
    in order (at most ``limit`` of them).  None if the rank is < p or no subset was found."""
    if fmpq_mat(p, q, [v for row in rows for v in row]).rank() < p:
        return None

    def exact_ok(S):
        return fmpq_mat(p, p, [rows[a][t] for a in range(p) for t in S]).det() != 0

    try:
        R = np.array([[float(Fraction(int(v.p), int(v.q))) for v in row] for row in rows])
        ok = bool(np.all(np.isfinite(R)))
    except OverflowError:
        ok = False
    if ok:
        if scale:
            mx = np.max(np.abs(R), axis=0)
            R = R / np.where(mx > 0, mx, 1.0)     # column scaling does not change which blocks are invertible
        S = []
        for _ in range(p):
            res = R
            if S:
                Qm, _r = np.linalg.qr(R[:, S])
                res = R - Qm @ (Qm.T @ R)
            norms = [np.linalg.norm(res[:, t]) if t not in S else -1.0 for t in range(q)]
            S.append(int(np.argmax(norms)))
        S = sorted(S)
        if exact_ok(S):
            return S
    for i, S in enumerate(combinations(range(q), p)):
        if limit is not None and i >= limit:
            break
        if exact_ok(S):
            return list(S)
    return None


INVERSE_PRECISION = (512, 2048)      # bits of the ball-arithmetic inverse that proposes the preconditioner


def _approximate_inverse(Jq: list) -> list | None:
    """The inverse of the exact centre Jacobian to about 45 significant digits per entry, as fmpq
    (the midpoints of an arb_mat inverse), or None if arb cannot prove J invertible at the highest
    precision.  Only a proposal: Krawczyk accepts any preconditioner, the checker decides.  (The exact
    fmpq inverse took minutes at N = 66 with the rounding's 60-digit entries.)"""
    N = len(Jq)
    Jm = fmpq_mat(N, N, [v for row in Jq for v in row])
    old = ctx.prec
    try:
        for prec in INVERSE_PRECISION:
            ctx.prec = prec
            try:
                inv = arb_mat(Jm).inv()
            except ZeroDivisionError:
                continue
            out, ok = [], True
            tol = arb(2) ** -150
            for a in range(N):
                ents = [inv[a, b] for b in range(N)]
                if not all(e.is_finite() for e in ents):
                    ok = False
                    break
                big = max(abs(e.mid()) for e in ents)
                row = []
                for e in ents:
                    mid, rad = e.mid(), e.rad()
                    if rad > big * tol:          # 150 bits (45 digits) relative to the row's scale
                        ok = False
                        break
                    if abs(mid) <= rad:          # an entry that may be 0 (0 in the exact inverse, say)
                        row.append(fmpq(0))
                        continue
                    m, x = mid.man_exp()
                    row.append(fmpq(int(m) * 2 ** int(x)) if x >= 0 else fmpq(int(m), 2 ** int(-x)))
                if not ok:
                    break
                out.append(row)
            if ok:
                return out
        return None
    finally:
        ctx.prec = old


def _curvature_estimate(J: list) -> float:
    """Float estimate of the smallest eigenvalue of the (symmetric) slice Hessian at the centre; it
    only chooses the bound mu the checker then proves."""
    try:
        Jf = np.array([[float(v) for v in row] for row in J])
    except OverflowError:             # entries beyond float64 (e.g. a neuron rescaled by 1e170)
        return float("nan")
    if not np.all(np.isfinite(Jf)):
        return float("nan")
    return float(np.linalg.eigvalsh((Jf + Jf.T) / 2)[0])


def _negative_curvature_certificate(cert: dict, Jq: list, Y: list) -> tuple[dict | None, str]:
    """A saddle ball (docs/theory.md §10.7) from a local_min skeleton whose slice Hessian has a negative
    float eigenvalue at the centre: the eigenvector, rounded to 15 digits, as the direction v the
    checker proves v^T J v < 0 for on the whole box; (None, why not) otherwise."""
    Jf = np.array([[float(v) for v in row] for row in Jq])
    lam, vec = np.linalg.eigh((Jf + Jf.T) / 2)
    v = vec[:, 0] / np.max(np.abs(vec[:, 0]))
    sad = {**cert, "verdict": "saddle",
           "evidence": {**{a: b for a, b in cert["evidence"].items() if a != "curvature"},
                        "negative_curvature": {"direction": [_s(Fraction(round(float(x) * 10 ** 15), 10 ** 15))
                                                                      for x in v]}}}
    ev = sad["evidence"]
    ev["preconditioner"] = [[_s(_round(Y[a][b])) for b in range(len(Y))] for a in range(len(Y))]
    last = ""
    for rho in RADII:
        ev["radius"] = _s(rho)
        res = check.check_certificate(sad)
        if res.ok:
            return sad, (f"Krawczyk box of radius {rho} around the rounding, and the slice Hessian has negative "
                         f"curvature along a recorded direction on the whole box (float estimate {lam[0]:.3e}): "
                         f"a saddle")
        last = "; ".join(res.reasons)
    return None, f"no negative-curvature saddle ball: {last}"


def _mu_candidates(lam: float) -> list:
    out = []
    for f in (2, 100):
        x = lam / f
        e = math.floor(math.log10(x))
        out.append(Fraction(math.floor(x / 10 ** e * 10), 10) * Fraction(10) ** e)
    return out


LIGHT_BITS = 600      # output weights with longer denominators are rounded for a local_min ball's centre
LIGHT_PRECISION = 320  # bits kept (relative to the largest output weight)


def light_outputs(point: Point) -> Point:
    """``point`` with every output weight rounded to a dyadic of LIGHT_PRECISION bits relative to the
    largest one, when some output weight has a denominator longer than LIGHT_BITS bits (the exact
    output re-fit of a rounding gives thousands of bits, which made the checker's interval arithmetic
    take minutes at N = 39); otherwise ``point`` itself.  Input weights -- the pattern, the kink
    points, the groups -- are untouched.  A ball's centre need not be exactly anything: the rounding
    moves it by ~2^-320 relative, far inside every radius tried, and the checker proves the zero."""
    A = point.A
    if max((int(v.q).bit_length() for v in A.flat), default=0) <= LIGHT_BITS:
        return point
    top = max((abs(Fraction(int(v.p), int(v.q))) for v in A.flat), default=Fraction(0))
    if top == 0:
        return point
    e = LIGHT_PRECISION - (top.numerator.bit_length() - top.denominator.bit_length())
    S = 1 << max(e, 0)

    def rnd(v):
        p, q = int(v.p), int(v.q)
        return fmpq((2 * p * S + q) // (2 * q), S)    # the nearest multiple of 1/S
    A2 = A.copy()
    for j in range(A.shape[0]):
        for c in range(A.shape[1]):
            A2[j, c] = rnd(A[j, c])
    return Point(point.W.copy(), A2, None if point.c is None else point.c.copy())


def ball_certificate(problem: Problem, point: Point) -> tuple[dict | None, str]:
    """A checked ball certificate near ``point``: a saddle (a zero escape neuron) or, for a plain
    narrow network, a local minimum (Morse-Bott on the gauge slice, strict (S2) across any kinks); or
    (None, why not).  A local_min certificate's point (the box centre) is ``light_outputs(point)``."""
    ev, note = structure(problem, point)
    if ev is not None:
        return _certificate(problem, point, "saddle", ev, note)
    light = light_outputs(point)
    lnote = "; output weights rounded to 320 bits for the box centre" if light is not point else ""
    ev, note2 = min_structure(problem, light)
    if ev is not None:
        cert, why = _certificate(problem, light, "local_min", ev, note2 + lnote)
        if cert is not None:
            return cert, why
    else:
        why = f"no saddle ball ({note}); no local_min ball ({note2})"
    # flat directions beyond the modelled symmetries: the constant-rank slice (§10.8)
    ev3, note3 = rank_structure(problem, light)
    if ev3 is None:
        return None, f"{why}; no constant-rank ball ({note3})"
    cert, why3 = _certificate(problem, light, "local_min", ev3, note3 + lnote)
    if cert is not None:
        return cert, why3
    return None, f"{why}; {why3}"


def _certificate(problem: Problem, point: Point, verdict: str, ev: dict, note: str) -> tuple[dict | None, str]:
    pj, ptj = problem.to_json(), point.to_json()
    cert = {"format": check.BALL_FORMAT, "problem": pj, "point": ptj, "fingerprint": fingerprint(pj, ptj),
            "verdict": verdict, "evidence": ev}
    if verdict == "local_min" and all(cl["gamma"] == ["1"] for cl in ev["clusters"]):
        # the slice Hessian at the centre from relucert.core: J = V^T H V with V the linear part of
        # xi -> theta (w_j = sum_t theta_t B_t, gamma = 1; proof 12 (M1)) and H the Hessian of the piece
        # with every kink pair on the alpha_minus side -- on the kink manifold every piece is that
        # polynomial (proof 13 (K2)).  Cheap, and independent of the checker's own J (which re-derives it).
        d, k = problem.d, problem.k
        wi, ai, _ = param_index(point.m, d, k, False)
        am = problem.activation.alpha_minus
        H = hessian(problem, point, kink_slopes={p: am for p in kink_pairs(problem, point)})
        cols = []
        fixed_in, fixed_out = _fixed_sets(ev, k)
        for g, cl in enumerate(ev["clusters"]):
            j = cl["neurons"][0]
            B = [[fmpq(*_ratio(v)) for v in row] for row in cl["basis"]]
            fx = fixed_in[g]
            cols += [[(wi(j, q), B[t][q]) for q in range(d) if B[t][q] != 0]
                     for t in range(len(B)) if t not in fx]
            fo = fixed_out.get(g, ())     # a linear block's fixed-output member has no A columns
            cols += [[(ai(j, c), fmpq(1))] for c in range(k) if c not in fo]
        Jq = [[sum((x * y * H[r][t] for r, x in ca for t, y in cb), fmpq(0)) for cb in cols] for ca in cols]
    else:
        try:
            Jc = check.ball_jacobian_at_center(cert)
        except check.Rejected as e:
            return None, f"ball structure rejected: {e}"
        Jq = [[fmpq(v.numerator, v.denominator) for v in row] for row in Jc]
    N = len(Jq)
    Y = _approximate_inverse(Jq)
    if Y is None:
        return None, (f"singular Jacobian of the narrow stationarity equations (not invertible in "
                      f"{INVERSE_PRECISION[-1]}-bit ball arithmetic)")
    ev["preconditioner"] = [[_s(_round(Y[a][b])) for b in range(N)] for a in range(N)]
    mus = [None]
    if verdict == "local_min":
        lam = _curvature_estimate(Jq)
        if math.isnan(lam):
            return None, (f"no local_min ball: the Hessian on the gauge slice has entries beyond the float64 range "
                          f"at the centre, so no curvature bound can be proposed ({note})")
        if lam < 0 and math.isfinite(lam) and "constant_rank" not in ev:
            # negative curvature on the slice: perhaps a saddle without a zero neuron (§10.7)
            sad, snote = _negative_curvature_certificate(cert, Jq, Y)
            if sad is not None:
                return sad, f"{snote} ({note})"
            note = f"{note}; {snote}"
        if not (lam > 0 and math.isfinite(lam)):
            return None, (f"no local_min ball: the Hessian on the gauge slice is not positive definite at the "
                          f"centre (float estimate of its smallest eigenvalue {lam:.3e}; {note})")
        mus = _mu_candidates(lam)
    # the radius only matters for Krawczyk and the box checks, mu only for the curvature check: a
    # curvature failure moves on to the next mu at the same radius
    last, mi, past_krawczyk = "", 0, None
    shrunk: dict = {}        # a failure past Krawczyk -> the radii it happened at
    for rho in RADII:
        ev["radius"] = _s(rho)
        while True:
            if mus[mi] is not None:
                ev["curvature"] = _s(mus[mi])
            res = check.check_certificate(cert)
            if res.ok:
                extra = "" if mus[mi] is None else f", slice Hessian > {float(mus[mi]):.3e} on the box"
                return cert, f"Krawczyk box of radius {rho} around the rounding ({note}{extra})"
            last = "; ".join(res.reasons)
            if past_krawczyk is None and "Krawczyk" not in last:
                past_krawczyk = last      # a box that has its unique zero: what failed there says more
            if "Hessian on the gauge slice" in last and mi + 1 < len(mus):
                mi += 1
                continue
            break
        if "Krawczyk" not in last:
            if any(r > rho for r in shrunk.get(last, ())):
                break       # the same failure in a box with its zero and again in a smaller one: the
                            # centre itself fails it (e.g. a kink multiplier that is 0), no radius helps
            shrunk.setdefault(last, []).append(rho)
    ev.pop("radius", None)
    ev.pop("curvature", None)
    return None, f"no ball certificate ({verdict}): {past_krawczyk or last}"
