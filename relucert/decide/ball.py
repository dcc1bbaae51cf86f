"""Saddles at exact stationary points that are not rational (vector output with replica groups).

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

The solver part here only proposes (structure, center, preconditioner, radius); the decision is
the independent checker's (relucert.check), which re-derives everything.
"""
from __future__ import annotations

from fractions import Fraction

from flint import fmpq, fmpq_mat

from relucert import check
from relucert.decide.certify import fingerprint
from relucert.decide.escape import escape_test
from relucert.core.formulas import ExactState, neuron_status
from relucert.core.linalg import dot, nullspace, rank
from relucert.core.problem import Point, Problem

RADII = (Fraction(1, 10 ** 30), Fraction(1, 10 ** 20), Fraction(1, 10 ** 40), Fraction(1, 10 ** 12),
         Fraction(1, 10 ** 50))


def _s(v) -> str:
    return str(v)


def _round(q: fmpq, digits: int = 40) -> Fraction:
    f = Fraction(int(q.p), int(q.q))
    if f == 0:
        return f
    scale = Fraction(10) ** (digits - len(str(abs(f.numerator) // f.denominator or 1)))
    return Fraction(round(f * scale)) / scale


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
    clusters = []
    center: list = []
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
        K = [i for i in nz if dot(u, X[i]) == 0]
        if rank([X[i] for i in K]) != len(K):
            return None, f"cluster {gl}: dependent kink points"
        B = nullspace([X[i] for i in K], d) if K else [[fmpq(1) if q == t else fmpq(0) for q in range(d)]
                                                          for t in range(d)]
        Bm = fmpq_mat(len(B), d, [v for row in B for v in row])
        th = (Bm * Bm.transpose()).solve(Bm * fmpq_mat(d, 1, u))
        theta = [th[t, 0] for t in range(len(B))]
        if [sum((theta[t] * B[t][q] for t in range(len(B))), fmpq(0)) for q in range(d)] != u:
            return None, f"cluster {gl}: input weight outside its kinks' null space"
        t0 = max(range(len(B)), key=lambda t: abs(theta[t]))
        clusters.append({"neurons": gl, "gamma": [_s(g) for g in gam], "beta": [_s(b) for b in beta],
                         "basis": [[_s(v) for v in row] for row in B], "gauge": t0, "gauge_value": _s(theta[t0])})
        center += [theta[t] for t in range(len(B)) if t != t0] + c
    st = ExactState(problem, point)
    esc = []
    for j in zero:
        e = escape_test(st.neuron(j))
        if e.escape:
            esc.append({"neuron": j, "r": [_s(v) for v in e.r]})
    if not esc:
        return None, "no zero neuron is an escape neuron"
    return {"clusters": clusters, "zero": zero, "dead": dead, "center": [_s(v) for v in center],
            "escape": esc}, f"{len(clusters)} clusters, {len(center)} unknowns"


def ball_certificate(problem: Problem, point: Point) -> tuple[dict | None, str]:
    """A checked ball certificate proving a saddle near ``point``, or (None, why not)."""
    ev, note = structure(problem, point)
    if ev is None:
        return None, note
    pj, ptj = problem.to_json(), point.to_json()
    cert = {"format": check.BALL_FORMAT, "problem": pj, "point": ptj, "fingerprint": fingerprint(pj, ptj),
            "verdict": "saddle", "evidence": ev}
    try:
        Jc = check.ball_jacobian_at_center(cert)
    except check.Rejected as e:
        return None, f"ball structure rejected: {e}"
    N = len(Jc)
    Jm = fmpq_mat(N, N, [fmpq(v.numerator, v.denominator) for row in Jc for v in row])
    try:
        Yinv = Jm.inv()
    except ZeroDivisionError:
        return None, "singular Jacobian of the narrow stationarity equations"
    ev["preconditioner"] = [[_s(_round(Yinv[a, b])) for b in range(N)] for a in range(N)]
    last = ""
    for rho in RADII:
        ev["radius"] = _s(rho)
        res = check.check_certificate(cert)
        if res.ok:
            return cert, f"Krawczyk box of radius {rho} around the rounding ({note})"
        last = "; ".join(res.reasons)
    ev.pop("radius", None)
    return None, f"no ball certificate: {last}"
