"""GL(r) gauge for local_min ball certificates (docs/theory.md §10.6): r >= 2 kink-free neurons with
one strict sign vector are invariant under (W_g, A_g) -> (G W_g, G^-T A_g), G in GL(r); the group fixes
an invertible r x r block of W_g (evidence gl_groups).  Vector-output instances whose stationary point
is a rank-constrained fit (irrational) are found by an mpmath oracle of this file (closed-form
reduced-rank least squares on the shared pattern, independent of relucert), then certified; the old
single-gauge structure of the same point is singular; forged group evidence is rejected; a saddle with
a shared pattern is refused; an old certificate is accepted byte for byte and re-emitted identically."""
import copy
import json
import random
from fractions import Fraction as Q

import mpmath as mp
import pytest

from relucert import certify, check
from relucert.check import check_certificate
from relucert.core.problem import Point, Problem
from relucert.decide import ball as ballmod
from relucert.decide.ball import ball_certificate, min_structure
from relucert.decide.certify import fingerprint

# --- the instance: d = 3, k = 3, two neurons (ReLU or leaky) sharing one strict sign vector --------
X = [(2, 1, 0), (3, 0, 1), (2, -1, 1), (3, 1, -1), (2, 1, 1), (-2, 1, 0), (-3, 0, 1)]
W_TEACHER = [(1, Q(3, 10), Q(-1, 5)), (1, Q(-1, 4), Q(7, 20))]     # both: + on x_0 > 0, - on x_0 < 0
A_TEACHER = [(1, 2, -1), (2, -1, 1)]
NOISE = [(1, -2, 1), (-1, 1, 2), (2, 0, -1), (0, 1, -2), (-2, -1, 0), (1, 2, 1), (-1, 0, 2)]
GAUGE0 = ([[1, Q(3, 10)], [1, Q(-1, 4)]], [0, 1])     # the factorisation used to build the rounding


def _targets(am):
    """Teacher outputs plus a full-rank rational perturbation: the rank-2 fit is not exact."""
    out = []
    for x, e in zip(X, NOISE):
        hs = [z if z > 0 else Q(am) * z for z in (sum(Q(a) * b for a, b in zip(w, x)) for w in W_TEACHER)]
        out.append(tuple(sum(h * a[c] for h, a in zip(hs, A_TEACHER)) + Q(e[c], 10) for c in range(3)))
    return out


def _mpq(v):
    v = Q(v)
    return mp.mpf(v.numerator) / v.denominator


def _oracle_M(Y, am, which=(0, 1), tilt=0, Xd=X):
    """Brute-force oracle: on the teacher's sign vector (slope s_i), f(x_i) = s_i M x_i with M = A^T W of
    rank 2; with x~_i = s_i x_i the loss is a plain reduced-rank least squares, whose critical points are
    B_ols V V^T (V: eigenvectors of the fitted values' Gram matrix); which = (0, 1): the top two (the
    minimum), (0, 2): a saddle, whose second vector ``tilt`` rotates towards eigenvector 1.  Returns M
    (k x d)."""
    n, r, k = len(Xd), len(which), len(Y[0])
    s = [mp.mpf(1) if x[0] > 0 else _mpq(am) for x in Xd]
    Xt = mp.matrix([[s[i] * _mpq(v) for v in Xd[i]] for i in range(n)])
    Ym = mp.matrix([[_mpq(v) for v in Y[i]] for i in range(n)])
    Bols = (Xt.T * Xt) ** -1 * (Xt.T * Ym)
    Fv = Xt * Bols
    E, V = mp.eigsy(Fv.T * Fv)
    order = sorted(range(k), key=lambda t: -E[t])
    Vr = mp.matrix(k, r)
    for c, t in enumerate(which):
        for q in range(k):
            Vr[q, c] = V[q, order[t]]
    if tilt:
        for q in range(k):
            Vr[q, 1] = mp.cos(tilt) * Vr[q, 1] + mp.sin(tilt) * V[q, order[1]]
    return (Bols * Vr * Vr.T).T


def _factor(M, C, S):
    """The factorisation A^T W = M on the slice W[:, S] = C: A^T = M[:, S] C^-1, W = (A A^T)^-1 A M."""
    Cm = mp.matrix([[_mpq(v) for v in row] for row in C])
    At = mp.matrix([[M[a, t] for t in S] for a in range(M.rows)]) * Cm ** -1
    Wm = (At.T * At) ** -1 * At.T * M
    return ([[Wm[l, q] for q in range(M.cols)] for l in range(len(S))],
            [[At[c, l] for c in range(M.rows)] for l in range(len(S))])


def _mp_loss(Y, am, W, A, Xd=X):
    """Brute-force oracle: (1/2n) sum_i |sum_j a_j sigma(w_j . x_i) - y_i|^2 in mpmath."""
    tot, k = mp.mpf(0), len(Y[0])
    for x, y in zip(Xd, Y):
        f = [mp.mpf(0)] * k
        for w, a in zip(W, A):
            z = sum(wq * xq for wq, xq in zip(w, x))
            h = z if z > 0 else _mpq(am) * z
            f = [f[c] + a[c] * h for c in range(k)]
        tot += sum((f[c] - _mpq(y[c])) ** 2 for c in range(k))
    return tot / (2 * len(Xd))


def _rnd(x):
    return str(Q(mp.nstr(x, 40)))


def _instance(am, which=(0, 1)):
    Y = _targets(am)
    with mp.workdps(80):
        W, A = _factor(_oracle_M(Y, am, which), *GAUGE0)
        pb = Problem.make([[str(v) for v in r] for r in X], [[str(v) for v in r] for r in Y],
                          {"alpha_plus": "1", "alpha_minus": am})
        pt = Point.make([[_rnd(v) for v in w] for w in W], [[_rnd(v) for v in a] for a in A], pb)
    return pb, pt, Y


@pytest.fixture(scope="module", params=["0", "1/4"], ids=["relu", "leaky"])
def minimum(request):
    am = request.param
    pb, pt, Y = _instance(am)
    cert, note = ball_certificate(pb, pt)
    return am, pb, pt, Y, cert, note


def test_gl_group_gives_a_checked_local_min(minimum):
    am, pb, pt, Y, cert, note = minimum
    assert cert is not None and cert["verdict"] == "local_min", note
    assert check_certificate(cert).ok and check.require_valid(cert) == "local_min"
    ev = cert["evidence"]
    assert ev["gl_groups"] == [{"clusters": [0, 1], "columns": ev["clusters"][0]["gauge"]}]
    S = ev["gl_groups"][0]["columns"]
    assert len(S) == 2 and S == sorted(set(S))
    for cl, w in zip(ev["clusters"], pt.W.tolist()):
        assert cl["gauge_value"] == [str(Q(int(w[t].p), int(w[t].q))) for t in S]
    assert len(ev["center"]) == 2 * (3 - 2 + 3) and "GL(2) group" in note
    # the rounding is not exactly stationary: the centre is only ~1e-40 from theta*
    assert certify(pb, pt).verdict == "not_stationary"


def test_the_oracle_minimiser_is_in_the_box(minimum):
    """The oracle's minimiser, factored on the certificate's slice (W[:, S] = C, C the rounding's
    block), lies within the radius of the centre in every slice coordinate."""
    am, pb, pt, Y, cert, _ = minimum
    ev = cert["evidence"]
    S = ev["gl_groups"][0]["columns"]
    C = [[Q(v) for v in cl["gauge_value"]] for cl in ev["clusters"]]
    rho = _mpq(ev["radius"])
    with mp.workdps(80):
        W, A = _factor(_oracle_M(Y, am), C, S)
        coords = []
        for w, a in zip(W, A):
            coords += [w[t] for t in range(3) if t not in S] + a
        assert len(coords) == len(ev["center"])
        assert max(abs(x - _mpq(c)) for x, c in zip(coords, ev["center"])) < rho
        # and it is stationary on the real (piecewise) network: the loss gradient is ~0
        assert _mp_loss(Y, am, W, A) > 0


def test_random_perturbations_of_all_parameters_do_not_lower_the_loss(minimum):
    """2000 random perturbations of all 12 parameters of the oracle's minimiser (radii 1e-9 .. 1e-3)
    never lower the mpmath loss, and most raise it."""
    am, pb, pt, Y, cert, _ = minimum
    rng = random.Random(14)
    with mp.workdps(50):
        W0, A0 = _factor(_oracle_M(Y, am), *GAUGE0)
        L0 = _mp_loss(Y, am, W0, A0)
        raised = 0
        for _ in range(2000):
            s = mp.mpf(10) ** rng.uniform(-9, -3)
            W = [[v + s * rng.gauss(0, 1) for v in w] for w in W0]
            A = [[v + s * rng.gauss(0, 1) for v in a] for a in A0]
            dl = _mp_loss(Y, am, W, A) - L0
            assert dl > -mp.mpf(10) ** -40, dl
            raised += dl > 0
        assert raised > 1900
        # along the GL orbit the loss is constant: G = [[1, t], [0, 1]] mixes the two neurons
        t = mp.mpf("0.01")
        W = [[W0[0][q] + t * W0[1][q] for q in range(3)], W0[1]]
        A = [A0[0], [A0[1][c] - t * A0[0][c] for c in range(3)]]
        assert abs(_mp_loss(Y, am, W, A) - L0) < mp.mpf(10) ** -40


def _single_gauge(cert, pt):
    """The structure the proposer built before the GL gauge: one gauge coordinate per neuron."""
    ev = copy.deepcopy(cert["evidence"])
    ev.pop("gl_groups")
    center = []
    for cl, w, a in zip(ev["clusters"], pt.W.tolist(), pt.A.tolist()):
        t0 = max(range(3), key=lambda t: abs(w[t]))
        cl["gauge"], cl["gauge_value"] = t0, str(Q(int(w[t0].p), int(w[t0].q)))
        center += [w[t] for t in range(3) if t != t0] + a
    ev["center"] = [str(Q(int(v.p), int(v.q))) for v in center]
    for key in ("preconditioner", "radius", "curvature"):
        ev.pop(key)
    return ev


def test_the_single_gauge_structure_of_the_same_point_is_singular(minimum):
    am, pb, pt, Y, cert, _ = minimum
    ev = _single_gauge(cert, pt)
    c2 = dict(copy.deepcopy(cert), evidence=ev)
    J = check.ball_jacobian_at_center(c2)
    N = len(J)
    assert N == 2 * (3 - 1 + 3)
    # the two off-diagonal directions of gl(2) are (nearly: the rounding is ~1e-40 from stationary)
    # in the kernel of the slice Hessian; every other eigenvalue is of order 1e-2 or larger
    with mp.workdps(120):
        ev_ = sorted(abs(v) for v in mp.eigsy(mp.matrix([[_mpq(v) for v in row] for row in J]))[0])
    assert ev_[1] < mp.mpf(10) ** -30 and ev_[2] > mp.mpf(10) ** -3, ev_[:3]
    out, why = ballmod._certificate(pb, pt, "local_min", ev, "single gauge")
    assert out is None and ("singular" in why or "not positive definite" in why), why
    # an attempt with the GL certificate's box and an identity preconditioner is rejected too
    ev2 = copy.deepcopy(ev)
    ev2.update(radius=cert["evidence"]["radius"], curvature=cert["evidence"]["curvature"],
               preconditioner=[["1" if a == b else "0" for b in range(N)] for a in range(N)])
    assert not check_certificate(dict(copy.deepcopy(cert), evidence=ev2)).ok


def test_a_saddle_with_a_shared_pattern_is_refused():
    """The critical point of the reduced-rank fit on eigenvectors 1 and 3 has negative curvature on the
    slice: no local_min ball, but a saddle ball through that negative curvature (docs/theory.md §10.7),
    with the GL group; the oracle confirms a lower loss nearby."""
    for am in ("0", "1/4"):
        pb, pt, Y = _instance(am, which=(0, 2))
        ev, note = min_structure(pb, pt)
        assert ev is not None and "gl_groups" in ev, note
        cert, why = ball_certificate(pb, pt)
        assert cert is not None and cert["verdict"] == "saddle", why
        assert "negative_curvature" in cert["evidence"] and "gl_groups" in cert["evidence"]
        assert check_certificate(cert).ok
        with mp.workdps(50):
            W0, A0 = _factor(_oracle_M(Y, am, (0, 2)), *GAUGE0)
            L0 = _mp_loss(Y, am, W0, A0)
            for t in ("1e-3", "1e-6"):     # rotating the third eigenvector towards the second lowers it
                W, A = _factor(_oracle_M(Y, am, (0, 2), mp.mpf(t)), *GAUGE0)
                assert _mp_loss(Y, am, W, A) < L0


def test_three_leaky_neurons_in_one_group():
    """r = 3 leaky neurons with one sign vector, d = k = 4: a rank-3 fit of 4-D targets; certified
    local_min with a GL(3) group, the oracle's minimiser (on the certificate's slice) in the box, and
    500 perturbations of all 24 parameters never lower the loss."""
    X4 = [(2, 1, 0, 1), (3, 0, 1, -1), (2, -1, 1, 0), (3, 1, -1, 1), (2, 1, 1, -1), (-2, 1, 0, 1),
          (-3, 0, 1, 0), (2, 0, -1, 1), (-2, -1, 1, 1)]
    WT = [(1, Q(3, 10), Q(-1, 5), Q(1, 10)), (1, Q(-1, 4), Q(7, 20), 0), (1, 0, Q(1, 5), Q(-3, 10))]
    AT = [(1, 2, -1, 0), (2, -1, 1, 1), (0, 1, 2, -1)]
    am = "1/5"
    Y = []
    for i, x in enumerate(X4):
        hs = [z if z > 0 else Q(am) * z for z in (sum(Q(a) * b for a, b in zip(w, x)) for w in WT)]
        Y.append(tuple(sum(h * a[c] for h, a in zip(hs, AT)) + Q((i * 7 + c * 3) % 5 - 2, 10) for c in range(4)))
    with mp.workdps(80):
        W, A = _factor(_oracle_M(Y, am, (0, 1, 2), Xd=X4), [[1, Q(3, 10), Q(-1, 5)], [1, Q(-1, 4), Q(7, 20)],
                                                           [1, 0, Q(1, 5)]], [0, 1, 2])
        pb = Problem.make([[str(v) for v in r] for r in X4], [[str(v) for v in r] for r in Y],
                          {"alpha_plus": "1", "alpha_minus": am})
        pt = Point.make([[_rnd(v) for v in w] for w in W], [[_rnd(v) for v in a] for a in A], pb)
    cert, note = ball_certificate(pb, pt)
    assert cert is not None and check.require_valid(cert) == "local_min", note
    ev = cert["evidence"]
    S = ev["gl_groups"][0]["columns"]
    assert ev["gl_groups"][0]["clusters"] == [0, 1, 2] and len(S) == 3 and "GL(3) group" in note
    assert len(ev["center"]) == 3 * (4 - 3 + 4)
    C = [[Q(v) for v in cl["gauge_value"]] for cl in ev["clusters"]]
    with mp.workdps(80):
        Ws, As = _factor(_oracle_M(Y, am, (0, 1, 2), Xd=X4), C, S)
        coords = []
        for w, a in zip(Ws, As):
            coords += [w[t] for t in range(4) if t not in S] + a
        assert max(abs(x - _mpq(c)) for x, c in zip(coords, ev["center"])) < _mpq(ev["radius"])
    rng = random.Random(33)
    with mp.workdps(50):
        L0 = _mp_loss(Y, am, W, A, X4)
        for _ in range(500):
            sc = mp.mpf(10) ** rng.uniform(-9, -3)
            dl = _mp_loss(Y, am, [[v + sc * rng.gauss(0, 1) for v in w] for w in W],
                          [[v + sc * rng.gauss(0, 1) for v in a] for a in A], X4) - L0
            assert dl > -mp.mpf(10) ** -40, dl


# --- forgeries -------------------------------------------------------------------------------
def _rejected(cert, *words):
    res = check_certificate(cert)
    assert not res.ok, "forgery accepted"
    text = "; ".join(res.reasons)
    assert any(w in text for w in words), text
    return text


def _regroup(pb, pt, members, S, verdict="local_min"):
    """A certificate built by hand: min_structure's clusters for (pb, pt), then the given clusters
    declared a GL group on columns S (gauges, values and centre rewritten to match)."""
    ev, _ = min_structure(pb, pt)
    ev = copy.deepcopy(ev)
    ev.pop("gl_groups", None)
    W, A = pt.W.tolist(), pt.A.tolist()
    center = []
    for g, cl in enumerate(ev["clusters"]):
        j = cl["neurons"][0]
        if g in members:
            cl["gauge"], cl["gauge_value"] = list(S), [str(Q(int(W[j][t].p), int(W[j][t].q))) for t in S]
        fx = set(cl["gauge"]) if isinstance(cl["gauge"], list) else {cl["gauge"]}
        if cl["basis"] == [["1" if a == b else "0" for b in range(pb.d)] for a in range(pb.d)]:
            center += [W[j][t] for t in range(pb.d) if t not in fx] + A[j]
        else:
            return None
    ev["center"] = [str(Q(int(v.p), int(v.q))) for v in center]
    ev["gl_groups"] = [{"clusters": list(members), "columns": list(S)}]
    N = len(center)
    ev.update(radius="1/1000000", curvature="1/1000", preconditioner=[["0"] * N for _ in range(N)])
    pj, ptj = pb.to_json(), pt.to_json()
    return {"format": check.BALL_FORMAT, "problem": pj, "point": ptj, "fingerprint": fingerprint(pj, ptj),
            "verdict": verdict, "evidence": ev}


@pytest.fixture(scope="module")
def valid():
    pb, pt, Y = _instance("0")
    cert, note = ball_certificate(pb, pt)
    assert cert is not None, note
    return pb, pt, cert


def _mut(cert, f):
    c = copy.deepcopy(cert)
    f(c["evidence"])
    return c


def test_forged_group_structure_is_rejected(valid):
    pb, pt, cert = valid
    S = cert["evidence"]["gl_groups"][0]["columns"]
    other = [t for t in range(3) if t not in S]
    wrong = sorted([S[0], other[0]])
    # wrong columns (members still fix S)
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(columns=wrong)), "must fix exactly the columns")
    # wrong columns consistently everywhere: the centre no longer gives the point
    _rejected(_regroup(pb, pt, [0, 1], wrong) | {"evidence": dict(_regroup(pb, pt, [0, 1], wrong)["evidence"],
              center=cert["evidence"]["center"])}, "not copy", "ball center")
    # C does not match the centre weights
    def bad_value(e):
        e["clusters"][1]["gauge_value"][0] = str(Q(e["clusters"][1]["gauge_value"][0]) + Q(1, 10 ** 50))
    _rejected(_mut(cert, bad_value), "gauge values differ")
    # duplicate members, a cluster in two groups, r = 1, bools, an empty list, extra keys
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(clusters=[0, 0])), "distinct cluster indices")
    _rejected(_mut(cert, lambda e: e["gl_groups"].append({"clusters": [1, 0], "columns": S})), "in two gl_groups")
    def r1(e):
        e["gl_groups"] = [{"clusters": [0], "columns": [S[0]]}]
        e["clusters"][0]["gauge"], e["clusters"][0]["gauge_value"] = [S[0]], e["clusters"][0]["gauge_value"][:1]
    _rejected(_mut(cert, r1), "r = |columns| >= 2")
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(columns=[bool(S[0]), S[1]] if S[0] in (0, 1) else
                                                            [S[0], True])), "columns must be distinct", "exactly the columns")
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(clusters=[False, True])), "distinct cluster indices")
    def bool_gauge(e):
        e["clusters"][0]["gauge"] = [False if t == 0 else (True if t == 1 else t) for t in S]
    _rejected(_mut(cert, bool_gauge), "must fix exactly the columns")
    _rejected(_mut(cert, lambda e: e.update(gl_groups=[])), "non-empty list")
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(extra=1)), "exactly the keys")
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(columns=[S[0], 3])), "coordinate indices < d")
    # a group member with a single t0, and a list gauge outside any group
    def single(e):
        e["clusters"][1]["gauge"], e["clusters"][1]["gauge_value"] = S[0], e["clusters"][1]["gauge_value"][0]
    _rejected(_mut(cert, single), "must fix exactly the columns")
    _rejected(_mut(cert, lambda e: e.pop("gl_groups")), "list gauge is allowed only")
    # copies (gamma != 1) cannot be group members
    _rejected(_mut(cert, lambda e: e["clusters"][0].update(gamma=["2"])), "gamma = beta = 1")
    # relabelled a saddle: groups are allowed there (§10.6 (e) does not depend on the verdict), but a
    # saddle needs a zero escape neuron, and this point has none
    c = copy.deepcopy(cert)
    c["verdict"] = "saddle"
    c["evidence"].pop("curvature")
    c["evidence"]["escape"] = [{"neuron": 0, "r": ["1", "0", "0"]}]
    _rejected(c, "escape must name a zero neuron")


def test_forged_groups_on_other_points_are_rejected(valid):
    pb, _, _ = valid
    # singular C: the second neuron's weights on S = [0, 1] are twice the first's
    pt = Point.make([["1", "3/10", "-7/20"], ["2", "3/5", "1/10"]], [["1", "1", "1"], ["1", "0", "1"]], pb)
    _rejected(_regroup(pb, pt, [0, 1], [0, 1]), "block C is singular")
    # different sign vectors: the second neuron is positive on the points with x_0 < 0
    pt = Point.make([["1", "3/10", "-7/20"], ["-1", "1/4", "3/10"]], [["1", "1", "1"], ["1", "0", "1"]], pb)
    _rejected(_regroup(pb, pt, [0, 1], [0, 1]), "share one sign vector")
    # a member with a data point on its kink: w . x_0 = 2 - 2 + 0 = 0
    pt = Point.make([["1", "3/10", "-7/20"], ["1", "-2", "5"]], [["1", "1", "1"], ["1", "0", "1"]], pb)
    ev, note = min_structure(pb, pt)
    assert ev is not None and "gl_groups" not in ev and ev["clusters"][1]["kinks"] == [0], note
    c = copy.deepcopy(_regroup(pb, Point.make([["1", "3/10", "-7/20"], ["1", "-1/4", "3/10"]],
                                              [["1", "1", "1"], ["1", "0", "1"]], pb), [0, 1], [0, 1]))
    pj = pt.to_json()
    c.update(point=pj, fingerprint=fingerprint(pb.to_json(), pj))
    c["evidence"]["clusters"][1].update(basis=ev["clusters"][1]["basis"], kinks=[0])
    _rejected(c, "no kinks and the identity basis")


def test_more_members_than_inputs_form_a_linear_block():
    """Three neurons with one pattern in d = 2: GL(3) has no 3 x 3 gauge block; since rank W_g = 2 they
    form a linear block (all weights fixed, outputs fixed for one member, §10.6 (f))."""
    Xs = [["2", "1"], ["3", "-1"], ["1", "1"], ["2", "0"]]
    Ys = [["1", "2", "0"], ["2", "1", "1"], ["0", "1", "2"], ["1", "1", "1"]]
    pb = Problem.make(Xs, Ys, {"alpha_plus": "1", "alpha_minus": "0"})
    pt = Point.make([["1", "0"], ["1", "1/5"], ["1", "-1/5"]], [["1", "0", "0"], ["0", "1", "0"], ["0", "0", "1"]], pb)
    ev, why = min_structure(pb, pt)
    assert ev is not None and "linear block (r = 3 > d = 2)" in why, why
    gr = ev["gl_groups"][0]
    assert gr["clusters"] == [0, 1, 2] and gr["columns"] == [0, 1] and len(gr["fixed_outputs"]) == 1
    # greedy row pivoting: |(1, 1/5)| = |(1, -1/5)| > |(1, 0)|, the first of the tie (row 1) is chosen, then
    # (1, -1/5) has the larger residual orthogonal to it: free rows 1, 2, member 0's outputs fixed
    assert gr["fixed_outputs"] == [0]
    assert len(ev["center"]) == 2 * 3


# --- old certificates ----------------------------------------------------------------------------
# emitted by the proposer before the GL gauge (one alive neuron, a rank-1 fit of 2-D targets, one dead)
OLD_CERT = r'''{"evidence":{"center":["-1203055286954834870853393914797357892751/5000000000000000000000000000000000000000","1064180893751349976418708542254737873109/1000000000000000000000000000000000000000","433198495546509623486415006538245064011/200000000000000000000000000000000000000"],"clusters":[{"basis":[["1","0"],["0","1"]],"beta":["1"],"gamma":["1"],"gauge":0,"gauge_value":"4853108073856383833931601314445795569821/5000000000000000000000000000000000000000","neurons":[0]}],"curvature":"47/100","dead":[1],"preconditioner":[["401786890902292512583313851539066100307/1000000000000000000000000000000000000000","-207524301667248902388698901788354291009/1000000000000000000000000000000000000000","-420789984582659272557625198332669116059/1000000000000000000000000000000000000000"],["-207524301667248902388698901788354291009/1000000000000000000000000000000000000000","142103392086026446536706362155037565231/500000000000000000000000000000000000000","10866973223415157489211441262085214123/50000000000000000000000000000000000000"],["-420789984582659272557625198332669116059/1000000000000000000000000000000000000000","10866973223415157489211441262085214123/50000000000000000000000000000000000000","617711630588710183443833673832299493189/1000000000000000000000000000000000000000"]],"radius":"1/1000000000000000000000000000000","zero":[]},"fingerprint":"04bd2b241ede19b2ce10066bb35c6e7e51deb54304ffcb0e1dc3490a0cea5268","format":"verifier-ball-certificate/1","point":{"A":[["1064180893751349976418708542254737873109/1000000000000000000000000000000000000000","433198495546509623486415006538245064011/200000000000000000000000000000000000000"],["1","1"]],"W":[["4853108073856383833931601314445795569821/5000000000000000000000000000000000000000","-1203055286954834870853393914797357892751/5000000000000000000000000000000000000000"],["0","-1"]]},"problem":{"X":[["2","1"],["3","2"],["1","1"],["4","1"]],"Y":[["41/20","41/10"],["13/5","99/20"],["11/20","37/20"],["19/5","157/20"]],"activation":{"alpha_minus":"0","alpha_plus":"1"},"loss":"half_mean"},"verdict":"local_min"}'''


def test_old_certificate_is_accepted_byte_for_byte_and_reemitted():
    cert = json.loads(OLD_CERT)
    assert check_certificate(cert).ok and check.require_valid(cert) == "local_min"
    pb = Problem.make(cert["problem"]["X"], cert["problem"]["Y"], cert["problem"]["activation"])
    pt = Point.make(cert["point"]["W"], cert["point"]["A"], pb)
    new, note = ball_certificate(pb, pt)
    assert new is not None, note
    assert json.dumps(new, sort_keys=True, separators=(",", ":")) == OLD_CERT


# --- the refinement driver -------------------------------------------------------------------------
def test_a_trained_vector_output_checkpoint_becomes_a_local_min():
    """A float checkpoint from plain gradient descent on the ReLU instance (a training-like run, not
    the oracle): the refinement driver's ball route now returns a checked local_min with a GL group
    (before the GL gauge: inconclusive, "singular Jacobian of the narrow stationarity equations")."""
    import numpy as np
    from relucert.refine import Tolerances, classify
    import relucert.refine.driver as R
    pb = Problem.make([[str(v) for v in r] for r in X], [[str(v) for v in r] for r in _targets("0")],
                      {"alpha_plus": "1", "alpha_minus": "0"})
    Xf = np.array(X, float)
    Yf = np.array([[float(v) for v in r] for r in _targets("0")])
    rng = np.random.default_rng(0)
    W = np.array(W_TEACHER, float) + 0.05 * rng.standard_normal((2, 3))
    A = np.array(A_TEACHER, float) + 0.05 * rng.standard_normal((2, 3))
    for _ in range(20000):
        Z = Xf @ W.T
        H = np.maximum(Z, 0)
        E = H @ A - Yf
        gW = ((E @ A.T) * (Z > 0)).T @ Xf / len(Xf)
        gA = H.T @ E / len(Xf)
        W, A = W - 0.01 * gW, A - 0.01 * gA
    assert max(np.abs(gW).max(), np.abs(gA).max()) < 1e-5
    pt = Point.make(W.tolist(), A.tolist(), pb)
    tol = Tolerances()
    ref = R._refine_one(pb, pt, classify(pb, pt, tol), "as_given", tol)
    assert ref.verdict == "local_min" and ref.ball is not None, ref.note
    assert check.require_valid(ref.ball) == "local_min" and "gl_groups" in ref.ball["evidence"]
    assert certify(pb, ref.point).verdict == "not_stationary"


# --- linear blocks: r = 3 > d = 2 neurons on one pattern (docs/theory.md §10.6 (f)) ------------------
# 1-D inputs with a bias column; the block's three kinks all lie in the gap (1/2, 1) of the data, the
# outside neuron (-1, c) has its kink in the gap (2, 5/2).  Rank 1 for the outside neuron (a single
# neuron) makes the fit a reduced-rank problem: the stationary point is irrational.
X2 = [(-1, 1), (Q(-1, 2), 1), (0, 1), (Q(1, 2), 1), (1, 1), (Q(3, 2), 1), (2, 1), (Q(5, 2), 1), (3, 1)]
W2_BLOCK = [(1, Q(-3, 5)), (Q(3, 2), Q(-9, 8)), (Q(1, 2), Q(-7, 20))]       # kinks 3/5, 3/4, 7/10
W2_OUT = (-1, Q(9, 4))                                                   # kink 9/4
A2_BLOCK_K3 = [(1, -1, Q(1, 2)), (Q(1, 2), 1, -1), (-1, Q(1, 2), 1)]
A2_OUT_K3 = (Q(3, 2), -1, Q(1, 2))


def _sig2(x, w):
    return (sum(Q(a) * b for a, b in zip(w, x)) > 0) - (sum(Q(a) * b for a, b in zip(w, x)) < 0)


def _targets2(am, k):
    out = []
    for i, x in enumerate(X2):
        hs = [z if z > 0 else Q(am) * z for z in (sum(Q(a) * b for a, b in zip(w, x)) for w in W2_BLOCK + [W2_OUT])]
        A = [a[:k] for a in A2_BLOCK_K3] + [A2_OUT_K3[:k]]
        out.append(tuple(sum(h * a[c] for h, a in zip(hs, A)) + Q((3 * i + 2 * c) % 7 - 3, 10) for c in range(k)))
    return out


def _oracle_block(Y, am, block_rows=W2_BLOCK):
    """Brute-force oracle of the linear-block instance: on the teacher's pattern the outputs are
    s_i M x_i (M = A_g^T W_g, k x 2, unconstrained since rank W_g = 2) plus t_i a w^T x_i (the outside
    neuron, rank 1).  Eliminating M (least squares) leaves a reduced-rank regression for N = a w^T:
    N^T = B V V^T, B the OLS solution, V the top eigenvector of the fitted values' Gram matrix.
    Returns (M, N) as mpmath matrices (k x 2)."""
    n, k = len(X2), len(Y[0])
    s = [mp.mpf(1) if _sig2(x, block_rows[0]) > 0 else _mpq(am) for x in X2]
    t = [mp.mpf(1) if _sig2(x, W2_OUT) > 0 else _mpq(am) for x in X2]
    Pg = mp.matrix([[s[i] * _mpq(v) for v in X2[i]] for i in range(n)])
    Po = mp.matrix([[t[i] * _mpq(v) for v in X2[i]] for i in range(n)])
    Ym = mp.matrix([[_mpq(v) for v in Y[i]] for i in range(n)])
    Proj = mp.eye(n) - Pg * (Pg.T * Pg) ** -1 * Pg.T
    Z, PY = Proj * Po, Proj * Ym
    B = (Z.T * Z) ** -1 * (Z.T * PY)
    Fv = Z * B
    E, V = mp.eigsy(Fv.T * Fv)
    top = max(range(k), key=lambda c: E[c])
    v = mp.matrix([[V[q, top]] for q in range(k)])
    NT = B * v * v.T
    MT = (Pg.T * Pg) ** -1 * Pg.T * (Ym - Po * NT)
    return MT.T, NT.T


def _block_params(M, N, A_rest, free=(0, 1), rest=(2,), block_rows=W2_BLOCK):
    """(W, A) with the block's input weights block_rows, the outputs A_rest of the members ``rest`` and
    A_F = W_F^-T (M - A_rest^T W_rest)^T for the members ``free``; the outside neuron w = (-1, w_1),
    a = -N[:, 0] (so that a w^T = N)."""
    k = M.rows
    Wb = [[_mpq(v) for v in w] for w in block_rows]
    R = M.copy()
    for l, a in zip(rest, A_rest):
        for c in range(k):
            for q in range(2):
                R[c, q] -= _mpq(a[c]) * Wb[l][q]
    WF = mp.matrix([Wb[l] for l in free])
    AF = (WF.T) ** -1 * R.T          # rows: A_F (d x k)
    A = [None] * len(block_rows)
    for i, l in enumerate(free):
        A[l] = [AF[i, c] for c in range(k)]
    for l, a in zip(rest, A_rest):
        A[l] = [_mpq(v) for v in a]
    a_o = [-N[c, 0] for c in range(k)]
    w_o = [mp.mpf(-1), N[0, 1] / a_o[0]]
    return Wb + [w_o], A + [a_o]


def _block_instance(am, k):
    Y = _targets2(am, k)
    with mp.workdps(80):
        M, N = _oracle_block(Y, am)
        W, A = _block_params(M, N, [A2_BLOCK_K3[2][:k]])
        pb = Problem.make([[str(v) for v in r] for r in X2], [[str(v) for v in r] for r in Y],
                          {"alpha_plus": "1", "alpha_minus": am})
        pt = Point.make([[_rnd(v) for v in w] for w in W], [[_rnd(v) for v in a] for a in A], pb)
    return pb, pt, Y


@pytest.fixture(scope="module", params=[("0", 2), ("0", 3), ("1/5", 2), ("1/5", 3)],
                ids=["relu-k2", "relu-k3", "leaky-k2", "leaky-k3"])
def block_min(request):
    am, k = request.param
    pb, pt, Y = _block_instance(am, k)
    cert, note = ball_certificate(pb, pt)
    return am, k, pb, pt, Y, cert, note


def test_a_linear_block_gives_a_checked_local_min(block_min):
    am, k, pb, pt, Y, cert, note = block_min
    assert cert is not None and cert["verdict"] == "local_min", note
    assert check_certificate(cert).ok and check.require_valid(cert) == "local_min"
    ev = cert["evidence"]
    gr = ev["gl_groups"]
    assert len(gr) == 1 and gr[0]["clusters"] == [0, 1, 2] and gr[0]["columns"] == [0, 1]
    fo = gr[0]["fixed_outputs"]
    assert len(fo) == 1 and fo[0] in (0, 1, 2) and "linear block" in note
    for cl, w in zip(ev["clusters"][:3], pt.W.tolist()):
        assert cl["gauge"] == [0, 1] and cl["gauge_value"] == [str(Q(int(v.p), int(v.q))) for v in w]
    # unknowns: two free members' outputs (2 k) and the outside neuron's (1 + k)
    assert len(ev["center"]) == 2 * k + 1 + k
    assert certify(pb, pt).verdict == "not_stationary"


def test_the_block_oracle_minimiser_is_in_the_box(block_min):
    """The oracle's minimiser on the certificate's slice (all block weights and the fixed member's
    outputs at the rounding's values, the outside neuron's gauge coordinate too) lies in the box."""
    am, k, pb, pt, Y, cert, _ = block_min
    ev = cert["evidence"]
    fo = ev["gl_groups"][0]["fixed_outputs"]
    free = [l for l in range(3) if l not in fo]
    Wr = [[Q(int(v.p), int(v.q)) for v in w] for w in pt.W.tolist()]
    Ar = [[Q(int(v.p), int(v.q)) for v in a] for a in pt.A.tolist()]
    rho = _mpq(ev["radius"])
    with mp.workdps(80):
        M, N = _oracle_block(Y, am)
        W, A = _block_params(M, N, [Ar[l] for l in fo], free, fo, [tuple(w) for w in Wr[:3]])
        # the outside neuron on its slice: gauge coordinate t0 at the rounding's value
        t0 = ev["clusters"][3]["gauge"]
        scale = _mpq(Wr[3][t0]) / W[3][t0]
        W[3] = [v * scale for v in W[3]]
        A[3] = [v / scale for v in A[3]]
        coords = []
        for l in free:
            coords += A[l]
        coords += [W[3][t] for t in range(2) if t != t0] + A[3]
        assert len(coords) == len(ev["center"])
        assert max(abs(x - _mpq(c)) for x, c in zip(coords, ev["center"])) < rho
        # the minimiser keeps the teacher's strict pattern
        for x in X2:
            for l in range(3):
                z = sum(W[l][q] * _mpq(x[q]) for q in range(2))
                assert z != 0 and (z > 0) == (_sig2(x, W2_BLOCK[0]) > 0)


def test_block_perturbations_of_all_parameters_do_not_lower_the_loss(block_min):
    """2000 random perturbations (one ReLU and one leaky instance; 300 for the other two, for time) of
    all 4 (2 + k) parameters of the oracle's minimiser never lower the mpmath loss; moving along the
    fibre of M (another split of the outputs) keeps it."""
    am, k, pb, pt, Y, cert, _ = block_min
    rng = random.Random(22)
    trials = 2000 if (am, k) in (("0", 3), ("1/5", 2)) else 300
    with mp.workdps(50):
        M, N = _oracle_block(Y, am)
        W0, A0 = _block_params(M, N, [A2_BLOCK_K3[2][:k]])
        L0 = _mp_loss(Y, am, W0, A0, X2)
        raised = 0
        for _ in range(trials):
            s = mp.mpf(10) ** rng.uniform(-9, -3)
            W = [[v + s * rng.gauss(0, 1) for v in w] for w in W0]
            A = [[v + s * rng.gauss(0, 1) for v in a] for a in A0]
            dl = _mp_loss(Y, am, W, A, X2) - L0
            assert dl > -mp.mpf(10) ** -40, dl
            raised += dl > 0
        assert raised > 0.95 * trials
        W1, A1 = _block_params(M, N, [(Q(1, 3),) * k], (1, 2), (0,))      # another member's outputs fixed
        assert abs(_mp_loss(Y, am, W1, A1, X2) - L0) < mp.mpf(10) ** -40


def _recentre(cert, pt):
    """The centre the evidence's (possibly forged) structure implies for the point: per cluster its
    weights off the gauge, then its outputs unless it is a fixed-output member."""
    ev = cert["evidence"]
    fo = {g for gr in ev.get("gl_groups", []) for g in gr.get("fixed_outputs", [])}
    W, A, center = pt.W.tolist(), pt.A.tolist(), []
    for g, cl in enumerate(ev["clusters"]):
        j = cl["neurons"][0]
        fx = set(cl["gauge"]) if isinstance(cl["gauge"], list) else {cl["gauge"]}
        center += [W[j][t] for t in range(len(W[j])) if t not in fx] + ([] if g in fo else A[j])
    ev["center"] = [str(Q(int(v.p), int(v.q))) for v in center]
    N = len(center)
    ev["preconditioner"] = [["1" if a == b else "0" for b in range(N)] for a in range(N)]
    return cert


@pytest.fixture(scope="module")
def block_valid():
    pb, pt, Y = _block_instance("0", 3)
    cert, note = ball_certificate(pb, pt)
    assert cert is not None, note
    return pb, pt, cert


def test_forged_linear_blocks_are_rejected(block_valid):
    pb, pt, cert = block_valid
    fo = cert["evidence"]["gl_groups"][0]["fixed_outputs"]
    free = [g for g in (0, 1, 2) if g not in fo]
    other = free[0]
    gr = lambda c: c["evidence"]["gl_groups"][0]        # noqa: E731
    # fixed_outputs in a group with r <= d (two of the members, the third back to a single gauge)
    def r_le_d(e):
        g3 = fo[0]
        e["gl_groups"][0].update(clusters=free, fixed_outputs=[free[0]])
        e["clusters"][g3].update(gauge=0, gauge_value=e["clusters"][g3]["gauge_value"][0])
    _rejected(_recentre(_mut(cert, r_le_d), pt), "only in a group of r > d")
    # wrong counts, duplicates, non-members, bools, missing key
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(fixed_outputs=[])), "exactly r - d")
    _rejected(_recentre(_mut(cert, lambda e: e["gl_groups"][0].update(fixed_outputs=[0, 1])), pt), "exactly r - d")
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(fixed_outputs=[fo[0], fo[0]])), "exactly r - d")
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(fixed_outputs=[3])), "exactly r - d")
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(fixed_outputs=[True] if fo[0] == 1 else [False])),
              "exactly r - d")
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(fixed_outputs=fo[0])), "exactly r - d")
    _rejected(_recentre(_mut(cert, lambda e: e["gl_groups"][0].pop("fixed_outputs")), pt), "exactly r")
    # columns not all, or not in order (the members' gauges follow)
    for cols in ([1, 0], [0]):
        def bad_cols(e, cols=cols):
            e["gl_groups"][0]["columns"] = cols
            for g in (0, 1, 2):
                w = e["clusters"][g]["gauge_value"]
                e["clusters"][g].update(gauge=cols, gauge_value=[w[t] for t in cols])
        _rejected(_recentre(_mut(cert, bad_cols), pt), "columns must be all")
    # another member's outputs fixed, but the centre of the true structure: the point is not the centre
    _rejected(_mut(cert, lambda e: e["gl_groups"][0].update(fixed_outputs=[other])), "not copy")
    # the fixed-output member's outputs listed in the centre as well: wrong length
    def extra_c(e):
        e["center"] = e["center"] + [str(Q(int(v.p), int(v.q))) for v in pt.A.tolist()[fo[0]]]
    _rejected(_mut(cert, extra_c), "ball center")
    # the fixed member's outputs moved (a new point, new fingerprint): the rest no longer fits
    A2 = [[str(Q(int(v.p), int(v.q)) + (Q(1, 1000) if l == fo[0] else 0)) for v in a] for l, a in enumerate(pt.A.tolist())]
    p2 = Point.make(pt.to_json()["W"], A2, pb)
    c2 = copy.deepcopy(cert)
    c2.update(point=p2.to_json(), fingerprint=fingerprint(pb.to_json(), p2.to_json()))
    _rejected(c2, "Krawczyk")
    # gauge values of a fixed-output member not its weights
    def bad_gv(e):
        e["clusters"][fo[0]]["gauge_value"][1] = str(Q(e["clusters"][fo[0]]["gauge_value"][1]) + Q(1, 10 ** 45))
    _rejected(_mut(cert, bad_gv), "gauge values differ")
    # relabelled a saddle: a linear block is allowed there, but a saddle names a zero escape neuron
    c = copy.deepcopy(cert)
    c["verdict"] = "saddle"
    c["evidence"].pop("curvature")
    _rejected(c, "escape neurons missing")


def test_a_singular_free_block_is_rejected(block_valid):
    """Members 0 and 1 parallel: the proposer picks an invertible pair; naming the other member as
    fixed leaves the singular pair free, which the checker rejects."""
    pb, _, _ = block_valid
    W = [["1", "-3/5"], ["2", "-6/5"], ["1/2", "-7/20"], ["-1", "9/4"]]
    A = [["1", "0", "1"], ["0", "1", "1"], ["1", "1", "0"], ["1", "-1", "1"]]
    pt = Point.make(W, A, pb)
    ev, note = min_structure(pb, pt)
    assert ev is not None and ev["gl_groups"][0]["fixed_outputs"] in ([0], [1]), note
    pj, ptj = pb.to_json(), pt.to_json()
    cert = {"format": check.BALL_FORMAT, "problem": pj, "point": ptj, "fingerprint": fingerprint(pj, ptj),
            "verdict": "local_min", "evidence": dict(ev, radius="1/1000000", curvature="1/1000")}
    cert = _recentre(cert, pt)
    assert "singular" not in "; ".join(check_certificate(cert).reasons)
    cert["evidence"]["gl_groups"][0]["fixed_outputs"] = [2]
    _rejected(_recentre(cert, pt), "block C is singular")


def test_proposer_refuses_a_block_of_rank_below_d():
    """Three parallel neurons (rank 1 < d = 2) on one pattern: no invertible free block."""
    Xs = [["2", "1"], ["3", "-1"], ["1", "1"], ["2", "0"]]
    Ys = [["1", "2", "0"], ["2", "1", "1"], ["0", "1", "2"], ["1", "1", "1"]]
    pb = Problem.make(Xs, Ys, {"alpha_plus": "1", "alpha_minus": "0"})
    pt = Point.make([["1", "0"], ["2", "0"], ["1/3", "0"]], [["1", "0", "0"], ["0", "1", "0"], ["0", "0", "1"]], pb)
    ev, why = min_structure(pb, pt)
    assert ev is None and "rank < 2" in why, why


def _square_group_instance(am="1/5", k=3):
    """r = d = 2: the first two block neurons and the outside neuron (an ordinary GL(2) group)."""
    Y = _targets2(am, k)
    with mp.workdps(80):
        M, N = _oracle_block(Y, am)
        W, A = _block_params(M, N, [], (0, 1), (), W2_BLOCK[:2])
        pb = Problem.make([[str(v) for v in r] for r in X2], [[str(v) for v in r] for r in Y],
                          {"alpha_plus": "1", "alpha_minus": am})
        pt = Point.make([[_rnd(v) for v in w] for w in W], [[_rnd(v) for v in a] for a in A], pb)
    return pb, pt


# sha256 of the r = d = 2 certificates below as the proposer emitted them before linear blocks existed
SQUARE_SHA = {("1/5", 3): "cd88ad26b03a9600c17093ce7b0675aed7f09820403fdb19ad3390bcc2a90efd",
              ("0", 2): "670e13d0e3537e70445c87a971e67aed6ac9b6851d81f1839dd17f2c3ee7b076"}


def test_square_groups_are_byte_identical():
    """r = d: the ordinary GL gauge with S = all columns, no fixed_outputs; the certificate is the one
    emitted before linear blocks (byte for byte)."""
    import hashlib
    for (am, k), sha in SQUARE_SHA.items():
        pb, pt = _square_group_instance(am, k)
        cert, note = ball_certificate(pb, pt)
        assert cert is not None and check.require_valid(cert) == "local_min", note
        assert cert["evidence"]["gl_groups"] == [{"clusters": [0, 1], "columns": [0, 1]}]
        blob = json.dumps(cert, sort_keys=True, separators=(",", ":"))
        assert hashlib.sha256(blob.encode()).hexdigest() == sha
