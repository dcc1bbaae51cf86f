"""Property tests of issue 2 (docs/theory.md §2–§5) on small exact random instances.

(i)   L'(theta; Delta) of the engine = c1 of the §2 ray polynomial = the limit of exact difference
      quotients of a brute-force loss (the polynomial identity is checked at 5 points of (0, t_max)).
(ii)  every not_stationary certificate's step and every escape path lowers the brute-force loss.
(iii) the separable test, the cone LPs, the extreme-ray test and z3 agree on phi >= 0, every descent
      vector has phi < 0, and no integer direction in [-4, 4]^d has phi < 0 when phi >= 0 is claimed.
(iv)  at a local_min no sampled ray decreases the loss (first non-zero coefficient of the exact ray
      polynomial positive, or all zero); at a saddle the escape curve decreases it.
(v)   every certificate passes the independent checker and every single-leaf mutation fails it
      (mutations of problem / point are also tried with a *recomputed* fingerprint, so that the
      checker's recomputation, not the hash, has to catch them).

Everything here is deterministic (``derandomize=True``, no example database).  Reference
quantities are recomputed with ``fractions.Fraction`` in ``tests/strategies.py`` and below, without
relucert's own code.  Set ``RELUCERT_PROPERTY_SCALE`` (default 1) to multiply the example counts.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import random
from fractions import Fraction as Q

import numpy as np
import pytest
from flint import fmpq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as S
from relucert import certify
from relucert.check import Rejected, require_valid
from relucert.core.formulas import ExactState, ray_coefficients
from relucert.decide.stationarity import decide_phi

SCALE = float(os.environ.get("RELUCERT_PROPERTY_SCALE", "1"))
BASE = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])


def prop(n: int):
    return settings(BASE, max_examples=max(1, int(n * SCALE)))


VERDICTS = ("not_stationary", "global_min", "local_min", "saddle", "inconclusive")


# ---------------------------------------------------------------------------------------------
# independent reference formulas (Fractions)
# ---------------------------------------------------------------------------------------------

def fq(M) -> np.ndarray:
    """Nested lists of Fractions -> numpy object array of fmpq."""
    rows = [[fmpq(v.numerator, v.denominator) if isinstance(v, Q) else fmpq(v) for v in r] for r in M]
    out = np.empty((len(rows), len(rows[0])), dtype=object)
    for i, r in enumerate(rows):
        for c, v in enumerate(r):
            out[i, c] = v
    return out


def toq(v) -> Q:
    if isinstance(v, fmpq):
        return Q(int(v.p), int(v.q))
    return Q(v)


def ref_G(inst: S.Instance, j: int) -> list:
    E = inst.residuals()
    return [sum((E[i][c] * inst.sig(S.dot(inst.W[j], inst.X[i])) for i in range(inst.n)), Q(0)) / inst.n
            for c in range(inst.k)]


def ref_D(inst: S.Instance, j: int, r) -> list:
    """D_j(r) straight from its docs/theory.md §3 definition (no merging)."""
    E = inst.residuals()
    out = [Q(0)] * inst.k
    for i, x in enumerate(inst.X):
        z = S.dot(inst.W[j], x)
        xr = S.dot(x, r)
        f = (inst.ap if z > 0 else inst.am) * xr if z != 0 else inst.sig(xr)
        out = [o + f * e for o, e in zip(out, E[i])]
    return [o / inst.n for o in out]


def ref_directional_derivative(inst: S.Instance, dW, dA) -> Q:
    return sum((S.dot(dA[j], ref_G(inst, j)) + S.dot(inst.A[j], ref_D(inst, j, dW[j]))
                for j in range(inst.m)), Q(0))


def ref_ray_poly(inst: S.Instance, dW, dA):
    """(c1, c2, c3, c4, t_max) of docs/theory.md §2, half_mean convention, from scratch."""
    E = inst.residuals()
    n, k = inst.n, inst.k
    U, Qv = [], []
    t_max = None
    for i, x in enumerate(inst.X):
        u = [Q(0)] * k
        q = [Q(0)] * k
        for j in range(inst.m):
            z, dl = S.dot(inst.W[j], x), S.dot(dW[j], x)
            s = inst.ap if (z > 0 or (z == 0 and dl > 0)) else inst.am
            for c in range(k):
                u[c] += dA[j][c] * s * z + inst.A[j][c] * s * dl
                q[c] += dA[j][c] * s * dl
            if z != 0 and z * dl < 0 and (t_max is None or -z / dl < t_max):
                t_max = -z / dl
        U.append(u)
        Qv.append(q)
    c1 = sum((S.dot(e, u) for e, u in zip(E, U)), Q(0)) / n
    c2 = sum((S.dot(u, u) + 2 * S.dot(e, q) for e, u, q in zip(E, U, Qv)), Q(0)) / (2 * n)
    c3 = sum((S.dot(u, q) for u, q in zip(U, Qv)), Q(0)) / n
    c4 = sum((S.dot(q, q) for q in Qv), Q(0)) / (2 * n)
    return c1, c2, c3, c4, t_max


def ref_phi(b, gamma, r) -> Q:
    v = S.dot([toq(x) for x in b], r)
    for key, g in gamma.items():
        t = S.dot([toq(x) for x in key], r)
        if t > 0:
            v += toq(g) * t
    return v


def sample_ts(t_max, count=5):
    """count distinct rational points of (0, t_max) (t_max None = unbounded)."""
    top = Q(1) if t_max is None else Q(t_max)
    fr = [Q(1, 2), Q(1, 3), Q(1, 7), Q(999, 1000), Q(1, 10 ** 6), Q(2, 5), Q(3, 4)]
    return [top * f for f in fr[:count]]


def small_enough(coefs) -> Q:
    """For p(t) = c_a t^a + higher terms with c_a the first non-zero coefficient: a t in (0, 1] at
    which the sign of p(t) is that of c_a (|c_a| > sum of the others' |c| * t)."""
    nz = [i for i, c in enumerate(coefs) if c != 0]
    if not nz:
        return Q(1)
    lead = abs(coefs[nz[0]])
    rest = sum((abs(c) for c in coefs[nz[0] + 1:]), Q(0))
    return min(Q(1), lead / (2 * rest)) if rest else Q(1)


def fresh_fingerprint(cert: dict) -> None:
    blob = json.dumps({"problem": cert["problem"], "point": cert["point"]}, sort_keys=True, separators=(",", ":"))
    cert["fingerprint"] = hashlib.sha256(blob.encode()).hexdigest()


def check_second_order_evidence(inst: S.Instance, so: dict) -> None:
    """A second-order saddle ray, re-derived from scratch: L' = 0, c2 < 0 and the loss (brute force)
    strictly lower at t0 and at small t inside (0, t_max)."""
    dW = [[Q(v) for v in row] for row in so["dW"]]
    dA = [[Q(v) for v in row] for row in so["dA"]]
    c1, c2, c3, c4, tm = ref_ray_poly(inst, dW, dA)
    assert [Q(v) for v in so["polynomial"]] == [0, c1, c2, c3, c4]
    assert c1 == 0 and c2 < 0
    assert ref_directional_derivative(inst, dW, dA) == 0
    L0 = inst.loss_hm()
    t0 = Q(so["t0"])
    assert t0 > 0 and (tm is None or t0 < tm)
    assert inst.loss_hm(*inst.moved(dW, dA, t0)) < L0
    t = small_enough([c2, c3, c4])
    if tm is not None:
        t = min(t, tm / 2)
    for tt in (t, t / 10, t / 1000):
        new = inst.loss_hm(*inst.moved(dW, dA, tt))
        assert new < L0 and new - L0 == c2 * tt ** 2 + c3 * tt ** 3 + c4 * tt ** 4


def instance_from_cert(cert: dict) -> S.Instance:
    pb, pt = cert["problem"], cert["point"]
    m = lambda rows: [[Q(v) for v in r] for r in rows]   # noqa: E731
    return S.Instance(m(pb["X"]), m(pb["Y"]), m(pt["W"]), m(pt["A"]), Q(pb["activation"]["alpha_plus"]),
                      Q(pb["activation"]["alpha_minus"]), pb["loss"], "from-certificate")


# ---------------------------------------------------------------------------------------------
# (i) directional derivative = c1 of the ray polynomial = limit of exact difference quotients
# ---------------------------------------------------------------------------------------------

@prop(150)
@given(st.data())
def test_directional_derivative_is_the_ray_polynomial(data):
    inst = data.draw(S.instances(), label="instance")
    dW, dA = data.draw(S.directions(inst), label="direction")
    pb, pt = inst.problem_point()
    state = ExactState(pb, pt)
    dd = toq(state.directional_derivative(fq(dW), fq(dA)))
    c1, c2, c3, c4, tm = ray_coefficients(pb.X, state.fw.E, state.fw.Z, None, pt.W, pt.A, fq(dW), fq(dA),
                                          pb.activation.alpha_plus, pb.activation.alpha_minus)
    eng = [toq(c) for c in (c1, c2, c3, c4)]
    ref = ref_ray_poly(inst, dW, dA)
    assert eng == list(ref[:4]), "engine ray polynomial differs from the reference §2 formulas"
    assert (tm is None and ref[4] is None) or toq(tm) == ref[4], "t_max differs"
    assert dd == ref[0] == ref_directional_derivative(inst, dW, dA), "L'(theta;Delta) != c1"
    # brute force: (L(theta + t Delta) - L(theta))/t - c1 = c2 t + c3 t^2 + c4 t^3 exactly on (0, t_max)
    L0 = inst.loss_hm()
    for t in sample_ts(ref[4]):
        quot = (inst.loss_hm(*inst.moved(dW, dA, t)) - L0) / t
        assert quot - ref[0] == ref[1] * t + ref[2] * t ** 2 + ref[3] * t ** 3, f"identity fails at t = {t}"


# ---------------------------------------------------------------------------------------------
# (ii) descent steps and escape paths lower the loss (brute force)
# ---------------------------------------------------------------------------------------------

def check_descent_evidence(inst: S.Instance, ns: dict) -> None:
    dr = ns["direction"]
    j = dr["neuron"]
    dW = [[Q(0)] * inst.d for _ in range(inst.m)]
    dA = [[Q(0)] * inst.k for _ in range(inst.m)]
    dW[j] = [Q(v) for v in dr["dw"]]
    dA[j] = [Q(v) for v in dr["da"]]
    c1, c2, c3, c4, tm = ref_ray_poly(inst, dW, dA)
    assert c1 == ref_directional_derivative(inst, dW, dA) == Q(ns["derivative"]) < 0
    assert [Q(v) for v in ns["ray_polynomial"]] == [0, c1, c2, c3, c4]
    L0 = inst.loss_hm()
    t = Q(ns["step"])
    assert t > 0 and (tm is None or t < tm)
    Lt = inst.loss_hm(*inst.moved(dW, dA, t))
    assert Lt < L0, "the certified step does not lower the loss"
    assert Lt * inst.factor() == Q(ns["loss_at_step"])
    # every small enough step lowers it too
    ts = small_enough([c1, c2, c3, c4])
    ts = min(ts, t)
    assert inst.loss_hm(*inst.moved(dW, dA, ts)) < L0


def check_escape_curve(inst: S.Instance, j: int, r, D, t0=None, poly=None, tmax_rec="absent") -> None:
    """w_j(t) = w_j + t r, a_j(t) = -t^2 D: brute-force losses agree with the degree-6 polynomial
    (recorded or interpolated) at 7 points, whose lowest term is -t^3 ||D||^2 < 0."""
    assert all(v == 0 for v in inst.A[j]), "escape paths start from a_j = 0"
    r = [Q(v) for v in r]
    D = [Q(v) for v in D]
    assert D == ref_D(inst, j, r) and any(v != 0 for v in D)
    tmax = None
    for x in inst.X:
        z, dl = S.dot(inst.W[j], x), S.dot(r, x)
        if z != 0 and z * dl < 0 and (tmax is None or -z / dl < tmax):
            tmax = -z / dl
    if tmax_rec != "absent":
        assert (tmax_rec is None and tmax is None) or Q(tmax_rec) == tmax
    L0 = inst.loss_hm()

    def curve_loss(t):
        W = [list(w) for w in inst.W]
        A = [list(a) for a in inst.A]
        W[j] = [w + t * v for w, v in zip(W[j], r)]
        A[j] = [-t * t * v for v in D]
        return inst.loss_hm(W, A)

    ts = sample_ts(tmax, 7)
    vals = [curve_loss(t) - L0 for t in ts]
    if poly is None:   # interpolate the degree-6 polynomial through (0, 0) and 6 points (exact)
        rows = [[t ** p for p in range(1, 7)] for t in ts[:6]]
        sol = S.solve_any(rows, vals[:6], 6)
        poly = [Q(0)] + sol
    poly = [Q(v) for v in poly]
    for t, v in zip(ts, vals):
        assert v == sum((c * t ** p for p, c in enumerate(poly)), Q(0)), "curve loss is not the polynomial"
    assert poly[0] == poly[1] == poly[2] == 0 and poly[3] == -S.dot(D, D) < 0
    if t0 is not None:
        t0 = Q(t0)
        assert t0 > 0 and (tmax is None or t0 < tmax) and curve_loss(t0) < L0
    tsm = min(small_enough(poly), (tmax or Q(1)) / 2)
    assert curve_loss(tsm) < L0


@prop(150)
@given(S.instances())
def test_descent_steps_and_escape_paths_lower_the_loss(inst):
    pb, pt = inst.problem_point()
    res = certify(pb, pt)
    ev = res.certificate["evidence"]
    assert Q(ev["loss"]["value"]) == inst.loss_hm() * inst.factor()
    if res.verdict == "not_stationary":
        check_descent_evidence(inst, ev["not_stationary"])
    if res.verdict == "saddle" and "escape_path" in ev:
        ep = ev["escape_path"]
        check_escape_curve(inst, ep["neuron"], ep["r"], ep["D"], ep["t0"], ep["polynomial"], ep["t_max"])
    if res.verdict == "saddle" and "second_order" in ev:
        assert inst.k > 1 and "escape_path" not in ev
        check_second_order_evidence(inst, ev["second_order"])
    # every escape neuron with a_j = 0 gives an escape curve, not just the one in the certificate
    for item in ev.get("neurons", []):
        es = item.get("escape") or {}
        j = item["neuron"]
        if es.get("escape") and all(v == 0 for v in inst.A[j]):
            check_escape_curve(inst, j, es["r"], es["D"])


# ---------------------------------------------------------------------------------------------
# (iii) the phi >= 0 deciders agree with each other and with brute force
# ---------------------------------------------------------------------------------------------

GRIDS = {d: [list(map(Q, v)) for v in itertools.product(range(-4, 5), repeat=d) if any(v)] for d in (1, 2, 3)}


def _fmpq_phi_input(b, gamma):
    return ([fmpq(v.numerator, v.denominator) for v in b],
            {tuple(fmpq(v.numerator, v.denominator) for v in k): fmpq(g.numerator, g.denominator)
             for k, g in gamma.items()})


def check_cone_witness(b, gamma, wit) -> None:
    """Re-check a 'cones' witness with Fractions: for every sign pattern sigma of the concave hinges,
    b_sigma + sum_P s_p gamma_p nu_p = sum_N mu_p sigma_p nu_p with s in [0,1], mu >= 0."""
    keys = list(gamma)
    conv = [k for k in keys if gamma[k] > 0]
    conc = [k for k in keys if gamma[k] < 0]
    seen = set()
    for pat in wit["patterns"]:
        signs, s, mu = pat["signs"], [Q(v) for v in pat["s"]], [Q(v) for v in pat["mu"]]
        assert len(signs) == len(conc) and len(s) == len(conv) and len(mu) == len(conc)
        assert all(0 <= v <= 1 for v in s) and all(v >= 0 for v in mu)
        lhs = list(b)
        for key, sg in zip(conc, signs):
            if sg > 0:
                lhs = [u + gamma[key] * v for u, v in zip(lhs, key)]
        for key, sv in zip(conv, s):
            lhs = [u + sv * gamma[key] * v for u, v in zip(lhs, key)]
        for key, sg, mv in zip(conc, signs, mu):
            lhs = [u - mv * sg * v for u, v in zip(lhs, key)]
        assert all(v == 0 for v in lhs), "cone multiplier identity fails"
        seen.add(tuple(signs))
    assert seen == set(itertools.product((1, -1), repeat=len(conc)))


def decide_all(b, gamma) -> dict:
    """Run every applicable method; check each answer's own evidence; return {method: ok}."""
    bq, gq = _fmpq_phi_input(b, gamma)
    keys = list(gamma)
    methods = ["auto", "cones", "rays", "z3"]
    if S.rank([list(k) for k in keys], len(b)) == len(keys):
        methods.append("separable")
    out = {}
    for meth in methods:
        res = decide_phi(bq, gq, meth)
        assert res.ok is not None, f"{meth}: undecided ({res.note})"
        if res.ok is False:
            r = [toq(v) for v in res.descent]
            assert ref_phi(b, gamma, r) < 0, f"{meth}: descent vector has phi >= 0"
            assert toq(res.value) == ref_phi(b, gamma, r)
        elif res.method == "cones":
            assert [Q(v) for v in res.witness["b"]] == list(b)
            check_cone_witness(b, gamma, res.witness)
        out[meth] = res.ok
    assert len(set(out.values())) == 1, f"methods disagree: {out}"
    return out


@prop(200)
@given(S.hinge_sets())
def test_phi_deciders_agree_with_each_other_and_brute_force(bg):
    b, gamma = bg
    out = decide_all(b, gamma)
    ok = next(iter(out.values()))
    neg = next((r for r in GRIDS[len(b)] if ref_phi(b, gamma, r) < 0), None)
    if neg is not None:
        assert ok is False, f"phi({neg}) < 0 but the deciders claim phi >= 0"


@prop(60)
@given(S.instances(kinds=("stationary", "degenerate", "dominated", "fitted")))
def test_phi_deciders_agree_on_real_neurons(inst):
    """On the merged (b_j, gamma_j) of real neurons; also checks the merging against D_j's definition."""
    pb, pt = inst.problem_point()
    state = ExactState(pb, pt)
    rng = random.Random(repr(inst.to_json()))
    for j in range(inst.m):
        nr = state.neuron(j)
        probes = GRIDS[inst.d][:: max(1, len(GRIDS[inst.d]) // 40)] + [list(map(toq, k)) for k in nr.hinges]
        for r in probes + [[Q(rng.randint(-5, 5), rng.randint(1, 4)) for _ in range(inst.d)]]:
            D = ref_D(inst, j, r)
            rf = [fmpq(v.numerator, v.denominator) for v in r]
            assert [toq(v) for v in nr.D(rf)] == D, "merged D_j differs from its definition"
            assert toq(nr.phi(rf)) == S.dot(inst.A[j], D)
        if nr.a_zero:
            continue
        b = [toq(v) for v in nr.b]
        gamma = {tuple(toq(v) for v in k): toq(g) for k, g in nr.gamma.items()}
        decide_all(b, gamma)


def test_theory_example_phi_nonnegative_with_concave_kink():
    """docs/theory.md §3: 5 max(0,r1) + 5 max(0,r2) - max(0,r1+r2) >= 0, and its twin with 1/2 is not."""
    e1, e2, e12 = (Q(1), Q(0)), (Q(0), Q(1)), (Q(1), Q(1))
    b = [Q(0), Q(0)]
    out = decide_all(b, {e1: Q(5), e2: Q(5), e12: Q(-1)})
    assert set(out.values()) == {True} and "separable" not in out
    assert all(ref_phi(b, {e1: Q(5), e2: Q(5), e12: Q(-1)}, r) >= 0 for r in GRIDS[2])
    twin = {e1: Q(1, 2), e2: Q(1, 2), e12: Q(-1)}
    out = decide_all(b, twin)
    assert set(out.values()) == {False}
    assert ref_phi(b, twin, [Q(1), Q(1)]) == -1
    # and as a network (zero-input neuron, e = (15, 15, -3) resp. (3/2, 3/2, -3)), end to end
    for ys, verdict in (([-15, -15, 3], "local_min"), ([Q(-3, 2), Q(-3, 2), 3], "not_stationary")):
        inst = S.Instance([[1, 0], [0, 1], [1, 1]], [[Q(y)] for y in ys], [[Q(0), Q(0)]], [[Q(1)]], Q(1), Q(0))
        res = certify(*inst.problem_point())
        assert res.verdict == verdict and require_valid(res.certificate) == verdict


# ---------------------------------------------------------------------------------------------
# (iv) local minima: no sampled ray decreases the loss; saddles: the escape curve does
# ---------------------------------------------------------------------------------------------

def dense_directions(inst: S.Instance, n_random: int = 30):
    d, k, m = inst.d, inst.k, inst.m
    zW = lambda: [[Q(0)] * d for _ in range(m)]   # noqa: E731
    zA = lambda: [[Q(0)] * k for _ in range(m)]   # noqa: E731
    out = []
    for j in range(m):                            # coordinate directions, both signs
        for sgn in (1, -1):
            for q in range(d):
                dW = zW()
                dW[j][q] = Q(sgn)
                out.append((dW, zA()))
            for c in range(k):
                dA = zA()
                dA[j][c] = Q(sgn)
                out.append((zW(), dA))
    for j in range(m):                            # along +-x_i, +-w_j, +-G-like and kink-tangent moves
        z = [S.dot(inst.W[j], x) for x in inst.X]
        kinks = [inst.X[i] for i in range(inst.n) if z[i] == 0]
        cands = [x for x in inst.X] + [[-v for v in x] for x in inst.X] + [inst.W[j], [-v for v in inst.W[j]]]
        cands += S.nullspace(kinks, d) if kinks else []
        for w in cands:
            for da in ([Q(0)] * k, [-v for v in inst.A[j]]):
                dW, dA = zW(), zA()
                dW[j] = list(w)
                dA[j] = list(da)
                out.append((dW, dA))
    rng = random.Random(repr(inst.to_json()))
    rq = lambda: Q(rng.randint(-6, 6), rng.choice((1, 1, 2, 3, 5)))   # noqa: E731
    for it in range(n_random):                    # random, on all neurons or on one
        js = range(m) if it % 2 == 0 else [rng.randrange(m)]
        dW, dA = zW(), zA()
        for j in js:
            dW[j] = [rq() for _ in range(d)]
            dA[j] = [rq() for _ in range(k)]
        out.append((dW, dA))
    return out


@prop(120)
@given(S.instances(kinds=("stationary", "stationary", "degenerate", "dominated", "dominated", "fitted",
                          "vector_flat")))
def test_local_min_has_no_descending_ray_and_saddle_escapes(inst):
    pb, pt = inst.problem_point()
    res = certify(pb, pt)
    if res.verdict == "saddle":
        ev = res.certificate["evidence"]
        if "second_order" in ev:
            check_second_order_evidence(inst, ev["second_order"])
            return
        ep = ev["escape_path"]
        check_escape_curve(inst, ep["neuron"], ep["r"], ep["D"], ep["t0"], ep["polynomial"], ep["t_max"])
        return
    if res.verdict not in ("local_min", "global_min"):
        return
    L0 = inst.loss_hm()
    for dW, dA in dense_directions(inst):
        *coefs, tm = ref_ray_poly(inst, dW, dA)
        nz = next((c for c in coefs if c != 0), Q(0))
        assert nz >= 0, (f"{res.verdict} certified, but the ray {dW}, {dA} has first non-zero "
                         f"coefficient {nz} in {coefs}")
        # and the brute-force loss agrees at a small step
        t = small_enough(coefs)
        if tm is not None:
            t = min(t, tm / 2)
        assert inst.loss_hm(*inst.moved(dW, dA, t)) >= L0


# ---------------------------------------------------------------------------------------------
# (v) certificates pass the checker; single-leaf mutations fail it
# ---------------------------------------------------------------------------------------------

METHOD_NAMES = ("cones", "rays", "zero_output", "undecided", "zero_derivative", "scalar_nonzero_a", "direction",
                "z3", "separable")


def leaves(obj, path=()):
    if isinstance(obj, dict):
        for key, v in obj.items():
            yield from leaves(v, path + (key,))
    elif isinstance(obj, list):
        if not obj:
            yield path, obj
        for i, v in enumerate(obj):
            yield from leaves(v, path + (i,))
    else:
        yield path, obj


def evidence_lists(obj, path=()):
    """Paths of the non-empty lists under evidence (for element-deletion mutations)."""
    if isinstance(obj, dict):
        for key, v in obj.items():
            yield from evidence_lists(v, path + (key,))
    elif isinstance(obj, list):
        if obj and path and path[0] == "evidence":
            yield path
        for i, v in enumerate(obj):
            yield from evidence_lists(v, path + (i,))


def mutations(path, value):
    """Type-preserving single-leaf mutations (plus garbage of the wrong type)."""
    key = path[-1] if path else None
    if isinstance(value, bool):
        out = [not value, None]
    elif value is None:
        out = ["0", "1"]
    elif isinstance(value, int):
        out = [value + 1, value - 1]
    elif isinstance(value, list):
        out = [["0"]]
    elif key == "verdict":
        out = [v for v in VERDICTS if v != value]
    elif key == "method":
        out = [v for v in METHOD_NAMES if v != value]
    elif key == "reason":
        out = ["S1" if value == "S2" else "S2"]
    elif key in ("loss", "convention", "derivative_convention"):
        out = [v for v in ("half_mean", "mse") if v != value]
    elif key == "fingerprint":
        out = [("0" if value[0] != "0" else "1") + value[1:]]
    else:
        try:
            q = Q(value)
            # a number string: shift it (by 1 and by 1/7), and once a value of the wrong kind
            return [str(q + 1), str(q + Q(1, 7)), "not-a-number"]
        except (ValueError, ZeroDivisionError):
            out = [value + "x"]
    return [v for v in out + ["not-a-number", []] if v != value or type(v) is not type(value)]


def set_leaf(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def ref_merged(inst: S.Instance, j: int):
    """b_j and {canonical normal: gamma_p} of docs/theory.md §3 after merging parallel kink points."""
    E = inst.residuals()
    n, d, k = inst.n, inst.d, inst.k
    a = inst.A[j]
    b = [Q(0)] * d
    hinges: dict = {}
    for i, x in enumerate(inst.X):
        z = S.dot(inst.W[j], x)
        cij = S.dot(a, E[i]) / n
        s = inst.ap if z > 0 else inst.am
        b = [u + cij * s * v for u, v in zip(b, x)]
        if z == 0 and S.canonical(x) is not None:
            key, lam = S.canonical(x)
            g = (inst.ap - inst.am) * cij * abs(lam)
            hinges[key] = hinges.get(key, Q(0)) + g
            if lam < 0:
                b = [u - g * v for u, v in zip(b, key)]
    return b, {key: g for key, g in hinges.items() if g != 0}


def ref_line_count(normals, d) -> int:
    """Number of distinct candidate extreme-ray lines (intersections of q-1 independent hinge
    hyperplanes within V = span(normals))."""
    if not normals:
        return 0
    q = S.rank(normals, d)
    perp = S.nullspace(normals, d)
    lines = set()
    for sub in itertools.combinations(normals, q - 1):
        ns = S.nullspace(list(sub) + perp, d)
        if len(ns) == 1:
            lines.add(S.canonical(ns[0])[0])
    return len(lines)


def witness_is_valid(inst: S.Instance, cert: dict, path) -> bool:
    """Independent re-check (reference formulas only) of the evidence item holding ``path``."""
    ev = cert["evidence"]
    try:
        if path[1] == "not_stationary":
            check_descent_evidence(inst, ev["not_stationary"])
            return True
        if path[1] == "second_order":
            check_second_order_evidence(inst, ev["second_order"])
            return True
        if path[1] == "escape_path":
            ep = ev["escape_path"]
            check_escape_curve(inst, ep["neuron"], ep["r"], ep["D"], ep["t0"], ep["polynomial"], ep["t_max"])
            return True
        if path[1] == "neurons" and path[3] == "escape":
            es, j = ev["neurons"][path[2]]["escape"], path[2]
            if es.get("method") == "direction" and es.get("escape") is True:
                r = [Q(v) for v in es["r"]]
                D = ref_D(inst, j, r)
                return [Q(v) for v in es["D"]] == D and any(D) and S.dot(inst.A[j], D) == 0
            return False
        if path[1] == "neurons" and path[3] == "stationarity":
            st_, j = ev["neurons"][path[2]]["stationarity"], path[2]
            b, gamma = ref_merged(inst, j)
            if [Q(v) for v in st_["b"]] != b:
                return False
            rec = {tuple(Q(v) for v in h["normal"]): Q(h["gamma"]) for h in st_["hinges"]}
            if rec != gamma or len(st_["hinges"]) != len(gamma):
                return False
            if st_["method"] == "cones":
                # the recorded hinge order defines which s / mu belongs to which hinge
                order = {tuple(Q(v) for v in h["normal"]): None for h in st_["hinges"]}
                check_cone_witness(b, {key: gamma[key] for key in order}, st_)
                return True
            if st_["method"] == "rays":
                keys = [list(key) for key in gamma]
                return st_["n_rays"] == ref_line_count(keys, inst.d) and all(
                    ref_phi(b, gamma, r) >= 0 for r in GRIDS[inst.d])
            return False
    except (AssertionError, KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return False
    return False


def benign_evidence_mutation(inst: S.Instance, cert: dict, mut: dict, path, old, new) -> str | None:
    """Why an accepted evidence mutation is harmless, or None.  The verdict and the instance are
    unchanged by an evidence mutation, so acceptance cannot prove a false verdict as such; we still
    require that the mutated evidence item is itself a valid witness by the reference formulas
    (else the checker accepted a bad witness), and name the reason for the report."""
    if cert["verdict"] == "inconclusive" and new in ("undecided", None):
        return "weakening the evidence of an inconclusive verdict (which claims nothing)"
    if not witness_is_valid(inst, mut, path):
        return None
    if len(path) >= 2 and path[-2] in ("r", "dw") and isinstance(path[-1], int) and \
            all(x[path[-1]] == 0 for x in inst.X):
        return "coordinate of a direction that every data point ignores (x_iq = 0 for all i)"
    if path[-1] == "neuron":
        return "index of another neuron for which the same witness is valid (e.g. an identical twin)"
    return "the mutated witness is another valid witness (checked with the reference formulas)"


def mutate_and_check(inst: S.Instance, cert: dict) -> list:
    """Every mutation must raise Rejected; returns the list of accepted-but-benign mutations."""
    verdict = cert["verdict"]
    benign = []
    tried_plain = set()
    for path, value in list(leaves(cert)):
        for new in mutations(path, value):
            mut = copy.deepcopy(cert)
            set_leaf(mut, path, new)
            on_instance = path[0] in ("problem", "point")
            if on_instance and path[0] not in tried_plain:
                tried_plain.add(path[0])
                with pytest.raises(Rejected, match="fingerprint"):
                    require_valid(copy.deepcopy(mut))
            if on_instance:
                fresh_fingerprint(mut)
            try:
                got = require_valid(mut)
            except Rejected:
                continue
            # accepted: never for a changed verdict, ...
            assert path != ("verdict",), f"SOUNDNESS: verdict {verdict} -> {new} accepted"
            if on_instance:
                # ... and for a changed instance only if the verdict is still true there
                minst = instance_from_cert(mut)
                mres = certify(*minst.problem_point())
                assert mres.verdict == got, (f"SOUNDNESS: {path} {value!r} -> {new!r} accepted as {got}, but "
                                             f"the mutated instance is {mres.verdict}")
                if got == "not_stationary":
                    check_descent_evidence(minst, mut["evidence"]["not_stationary"])
                if got == "global_min":
                    assert minst.loss_hm() == 0
                if got == "saddle" and "second_order" in mut["evidence"]:
                    check_second_order_evidence(minst, mut["evidence"]["second_order"])
                elif got == "saddle":
                    ep = mut["evidence"]["escape_path"]
                    check_escape_curve(minst, ep["neuron"], ep["r"], ep["D"], ep["t0"], ep["polynomial"],
                                       ep["t_max"])
                benign.append((path, "instance change that leaves the certified verdict true"))
                continue
            why = benign_evidence_mutation(inst, cert, mut, path, value, new)
            assert why is not None, (f"checker accepted an unexplained mutation of {path}: {value!r} -> {new!r} "
                                     f"(verdict {verdict}); review whether this leaf carries a claim")
            benign.append((path, why))
    # structural: drop one element of any evidence list (a pattern, a hinge, a neuron, a coordinate)
    for path in list(evidence_lists(cert)):
        target = cert
        for p in path:
            target = target[p]
        for drop in sorted({0, len(target) - 1}):
            mut = copy.deepcopy(cert)
            lst = mut
            for p in path:
                lst = lst[p]
            del lst[drop]
            with pytest.raises(Rejected):
                require_valid(mut)
    return benign


BENIGN_SEEN: dict = {}


@prop(50)
@given(S.instances(max_n=4))
def test_certificates_pass_checker_and_every_mutation_fails(inst):
    pb, pt = inst.problem_point()
    res = certify(pb, pt)
    cert = res.certificate
    assert require_valid(copy.deepcopy(cert)) == res.verdict
    assert json.loads(json.dumps(cert)) == cert, "certificate is not plain JSON"
    for path, why in mutate_and_check(inst, cert):
        BENIGN_SEEN.setdefault(why, tuple(p if isinstance(p, str) else "#" for p in path))


# ---------------------------------------------------------------------------------------------
# coverage of the strategies: every verdict and every decision branch is reached
# ---------------------------------------------------------------------------------------------

def test_strategies_reach_every_verdict_and_branch():
    verdicts, stat_methods, esc_methods, saddle_kinds = set(), set(), set(), set()

    @prop(150)
    @given(S.instances())
    def run(inst):
        res = certify(*inst.problem_point())
        verdicts.add(res.verdict)
        if res.verdict == "saddle":
            saddle_kinds.update(k for k in ("escape_path", "second_order") if k in res.certificate["evidence"])
        for item in res.certificate["evidence"].get("neurons", []):
            stat_methods.add(item["stationarity"]["method"])
            if item.get("escape"):
                esc_methods.add(item["escape"]["method"])

    run()
    # the kink second-order route (issue 13) now decides the vector-output points these strategies
    # used to leave inconclusive; the class it leaves open is pinned by a hand case instead
    assert verdicts >= set(VERDICTS) - {"inconclusive"}, verdicts
    from cases import CASES
    from relucert.io import problem_point_from_dict
    assert certify(*problem_point_from_dict(CASES["vec_inconclusive"][0])).verdict == "inconclusive"
    assert {"cones", "zero_output"} <= stat_methods, stat_methods
    assert {"zero_derivative", "direction", "scalar_nonzero_a", "rays"} <= esc_methods, esc_methods
    assert saddle_kinds == {"escape_path", "second_order"}, saddle_kinds


# ---------------------------------------------------------------------------------------------
# certificates from every (S2) method, and the reproducers of the bugs found
# ---------------------------------------------------------------------------------------------

@prop(60)
@given(S.instances(kinds=("stationary", "degenerate", "dominated", "fitted")))
def test_auto_cones_rays_certificates_agree_and_check(inst):
    pb, pt = inst.problem_point()
    verdicts = {}
    for meth in ("auto", "cones", "rays"):
        res = certify(pb, pt, method=meth)
        assert require_valid(res.certificate) == res.verdict
        verdicts[meth] = res.verdict
    assert len(set(verdicts.values())) == 1, verdicts


# X = e1, e2, e1+e2, e3 in R^3 with a zero-input neuron (w = 0): four kink normals spanning V = R^3,
# three of them coplanar, so the intersection line e3 of (e1, e2), (e1, e1+e2), (e2, e1+e2) is found
# three times.  phi = (1/4) sum_i relu(x_i.r) >= 0: local_min.
COPLANAR_X = [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]]


def _coplanar(k: int):
    Y = [[-1] + [0] * (k - 1) for _ in COPLANAR_X]
    return S.Instance([[Q(v) for v in x] for x in COPLANAR_X], [[Q(v) for v in y] for y in Y],
                      [[Q(0)] * 3], [[Q(1)] + [Q(0)] * (k - 1)], Q(1), Q(0))


# regression: the checker used to count a line found by several hinge pairs several times (the
# decision code counts it once), rejecting valid 'rays' witnesses; fixed in the checker (8026b05).
def test_rays_stationarity_certificate_with_repeated_ray_is_accepted():
    pb, pt = _coplanar(1).problem_point()
    res = certify(pb, pt, method="rays")
    assert res.verdict == "local_min"
    assert require_valid(res.certificate) == "local_min"


def test_rays_escape_witness_with_repeated_ray_is_accepted():
    pb, pt = _coplanar(2).problem_point()
    res = certify(pb, pt)
    assert res.verdict == "local_min"
    assert require_valid(res.certificate) == "local_min"


# regression: certify(method='z3') used to record {'method': 'z3'} with no witness, which the checker
# rejects ('unknown stationarity method'); fixed in decide_phi (b2c8488).
def test_z3_method_certificate_is_accepted():
    pb, pt = _coplanar(1).problem_point()
    res = certify(pb, pt, method="z3")
    assert res.verdict == "local_min"
    assert require_valid(res.certificate) == "local_min"


# regression: certify(method='separable') raised ValueError on dependent kink normals (a traceback
# from `relucert certify --method separable`); fixed in decide_phi (b2c8488).
def test_separable_method_on_dependent_normals_does_not_crash():
    pb, pt = _coplanar(1).problem_point()
    res = certify(pb, pt, method="separable")
    assert res.verdict in VERDICTS
