"""Ball certificates with verdict local_min (docs/theory.md §10.5): an irrational stationary point of a
vector-output network at a smooth point, proven to exist in a box and to be a local minimum by a
positive definite interval Hessian on the gauge slice; cross-checked against an independent mpmath
solution, random perturbations, and the exact Hessian at a 200-digit rounding."""
import copy
import random
from fractions import Fraction as Q

import mpmath as mp
import pytest

from relucert import certify
from relucert.check import BALL_FORMAT, Rejected, check_certificate, require_valid
from relucert.core.hessian import hessian, inertia, param_index
from relucert.core.problem import Point, Problem
from relucert.decide.ball import ball_certificate, min_structure
from relucert.refine import Tolerances, classify, refine, refined_report
import relucert.refine.driver as R

RELU = {"alpha_plus": "1", "alpha_minus": "0"}

# --- the minimum instance: two neurons with disjoint active sets, one dead neuron ----------------
# Y = teacher + noise; on its strict pattern the loss splits into two rank-1 least-squares fits
# (k = d = 2 > 1 neuron per group), whose minimisers are irrational.
X_MIN = [(2, 1), (3, 2), (1, 1), (4, 1), (-2, 1), (-3, 2), (-1, 2)]
Y_MIN = [(Q(41, 20), Q(41, 10)), (Q(13, 5), Q(99, 20)), (Q(11, 20), Q(37, 20)), (Q(19, 5), Q(157, 20)),
         (Q(77, 20), Q(-31, 20)), (Q(99, 20), Q(-13, 5)), (Q(6, 5), Q(-7, 20))]
GROUPS = ([0, 1, 2, 3], [4, 5, 6])
DEAD = ((0, -1), (1, 1))          # w . x < 0 on every data point (x_2 > 0)

# --- a saddle with negative curvature on the gauge slice (found by a float critical-point search) -
X_SAD = [[-2, 3], [1, -3], [3, 4], [4, 1], [4, 1], [0, 4], [1, 3]]
Y_SAD = [[-1, 3], [4, -4], [0, -1], [-4, -4], [-2, -3], [2, -3], [1, 3]]
P_SAD = [[-0.5640878317792839, -0.25253533723663235], [-0.2984875793860096, 0.5643895511573384],
         [1.5042080470979438, 1.3115249235580715], [0.1656862096553424, 0.12775410015265537]]


def _problem(X, Y):
    return Problem.make([[str(v) for v in r] for r in X], [[str(v) for v in r] for r in Y], RELU)


def _oracle(dps=80):
    """Brute-force oracle, independent of relucert: the best rank-1 fit w a^T of each group (top
    generalised eigenvector of (X^T Y Y^T X, X^T X), a = Y^T X w / |X w|^2), in mpmath."""
    with mp.workdps(dps):
        out = []
        for S in GROUPS:
            Xm = mp.matrix([[mp.mpf(v) for v in X_MIN[i]] for i in S])
            Ym = mp.matrix([[mp.mpf(v.numerator) / v.denominator for v in Y_MIN[i]] for i in S])
            G, B = Xm.T * Xm, Xm.T * Ym * Ym.T * Xm
            E, V = mp.eig(G ** -1 * B)
            t = max(range(len(E)), key=lambda s: mp.re(E[s]))
            w = mp.matrix([mp.re(V[q, t]) for q in range(2)])
            a = (Ym.T * Xm * w) / (w.T * G * w)[0]
            if sum(w[0] * X_MIN[i][0] + w[1] * X_MIN[i][1] for i in S) < 0:
                w, a = -w, -a
            out.append(([w[0], w[1]], [a[0], a[1]]))
        return out


def _mp_loss(W, A):
    """Brute-force oracle: (1/2n) sum |sum_j a_j relu(w_j . x_i) - y_i|^2 in mpmath."""
    tot = mp.mpf(0)
    for x, y in zip(X_MIN, Y_MIN):
        f = [mp.mpf(0), mp.mpf(0)]
        for w, a in zip(W, A):
            z = w[0] * x[0] + w[1] * x[1]
            if z > 0:
                f = [f[c] + a[c] * z for c in range(2)]
        tot += sum((f[c] - mp.mpf(y[c].numerator) / y[c].denominator) ** 2 for c in range(2))
    return tot / (2 * len(X_MIN))


@pytest.fixture(scope="module")
def minimum():
    pb = _problem(X_MIN, Y_MIN)
    sol = _oracle()
    W = [[float(v) for v in w] for w, _ in sol] + [list(map(float, DEAD[0]))]
    A = [[float(v) for v in a] for _, a in sol] + [list(map(float, DEAD[1]))]
    pt = Point.make(W, A, pb)
    tol = Tolerances()
    ref = R._refine_one(pb, pt, classify(pb, pt, tol), "as_given", tol)
    return pb, pt, ref, sol


def test_refinement_gives_a_local_min_ball(minimum):
    pb, pt, ref, _ = minimum
    assert ref.ball is not None and ref.verdict == "local_min", ref.note
    assert ref.ball["format"] == BALL_FORMAT and require_valid(ref.ball) == "local_min"
    ev = ref.ball["evidence"]
    assert ev["dead"] == [2] and ev["zero"] == [] and "escape" not in ev and Q(ev["curvature"]) > 0
    # the rounding itself is not exactly stationary: the exact certificate alone could not say this
    assert certify(pb, ref.point).verdict == "not_stationary"
    rf = refined_report(pb, pt, refine(pb, pt))
    assert rf["verdict"] == "local_min" and rf["certificate"]["format"] == BALL_FORMAT
    assert rf["escape_neurons"] == []


def test_the_independent_solution_is_in_the_box(minimum):
    """Krawczyk's unique zero is the oracle's minimiser: in the gauge of each cluster (w scaled to
    the gauge value, a inversely) every coordinate is within the radius of the centre."""
    _, _, ref, sol = minimum
    ev = ref.ball["evidence"]
    rho = Q(ev["radius"])
    center = [Q(v) for v in ev["center"]]
    with mp.workdps(80):
        coords = []
        for cl, (w, a) in zip(ev["clusters"], sol):
            t0 = cl["gauge"]
            q = Q(cl["gauge_value"])
            lam = (mp.mpf(q.numerator) / q.denominator) / w[t0]
            coords += [lam * w[s] for s in range(2) if s != t0] + [v / lam for v in a]
        for x, c in zip(coords, center):
            assert abs(x - mp.mpf(c.numerator) / c.denominator) < mp.mpf(rho.numerator) / rho.denominator


def test_random_perturbations_do_not_lower_the_loss(minimum):
    """2000 random perturbations of the oracle's minimiser (all 12 parameters, dead neuron included,
    relative sizes 1e-8 .. 1e-3) never lower the mpmath loss; most raise it."""
    _, _, _, sol = minimum
    rng = random.Random(12)
    with mp.workdps(60):
        W0 = [list(w) for w, _ in sol] + [[mp.mpf(v) for v in DEAD[0]]]
        A0 = [list(a) for _, a in sol] + [[mp.mpf(v) for v in DEAD[1]]]
        L0 = _mp_loss(W0, A0)
        raised = 0
        for _ in range(2000):
            s = mp.mpf(10) ** rng.uniform(-8, -3)
            W = [[v + s * rng.gauss(0, 1) for v in w] for w in W0]
            A = [[v + s * rng.gauss(0, 1) for v in a] for a in A0]
            d = _mp_loss(W, A) - L0
            assert d > -mp.mpf(10) ** -45, d
            raised += d > 0
        assert raised > 1900


def test_exact_hessian_at_a_200_digit_rounding(minimum):
    """The exact Morse-Bott picture at an exact rational point 1e-200 from theta*: the exact Hessian
    (relucert.core.hessian, not the checker's J) restricted to the certificate's gauge slice is
    positive definite; the dead neuron's block is exactly 0; the full Hessian has at most one
    non-positive eigenvalue per alive neuron (the near-kernel of the rescaling orbits) besides the
    dead block."""
    pb, _, ref, _ = minimum
    sol = _oracle(dps=230)
    with mp.workdps(230):
        rnd = lambda v: Q(int(mp.nint(v * mp.mpf(10) ** 200)), 10 ** 200)   # noqa: E731
        W = [[str(rnd(v)) for v in w] for w, _ in sol] + [[str(v) for v in DEAD[0]]]
        A = [[str(rnd(v)) for v in a] for _, a in sol] + [[str(v) for v in DEAD[1]]]
    pt = Point.make(W, A, pb)
    H = hessian(pb, pt)
    wi, ai, P = param_index(3, 2, 2, False)
    dead = [wi(2, q) for q in range(2)] + [ai(2, c) for c in range(2)]
    assert all(H[r][s] == 0 for r in dead for s in range(P))
    keep = []
    for j, cl in enumerate(ref.ball["evidence"]["clusters"]):
        assert cl["neurons"] == [j]
        keep += [wi(j, q) for q in range(2) if q != cl["gauge"]] + [ai(j, c) for c in range(2)]
    Hs = [[H[r][s] for s in keep] for r in keep]
    assert inertia(Hs)["positive"] == len(keep)
    inn = inertia(H)
    assert inn["positive"] >= P - len(dead) - 2 and inn["negative"] <= 2


def test_a_saddle_gets_no_local_min_ball_and_a_forged_one_is_rejected():
    pb = _problem(X_SAD, Y_SAD)
    pt = Point.make(P_SAD[:2], P_SAD[2:], pb)
    tol = Tolerances()
    ref = R._refine_one(pb, pt, classify(pb, pt, tol), "as_given", tol)
    # no local_min ball; a saddle ball through negative curvature on the slice instead (§10.7)
    assert ref.point is not None and ref.verdict == "saddle", ref.note
    assert "negative_curvature" in ref.ball["evidence"] and "escape" not in ref.ball["evidence"]
    assert check_certificate(ref.ball).ok and ref.ball["point"] == ref.point.to_json()   # the box centre
    _oracle_negative_curvature(ref.ball)
    # the exact Hessian at the refined rounding has negative curvature on the gauge slice (a saddle)
    ev, _ = min_structure(pb, ref.point)
    wi, ai, _ = param_index(2, 2, 2, False)
    keep = []
    for j, cl in enumerate(ev["clusters"]):
        keep += [wi(j, q) for q in range(2) if q != cl["gauge"]] + [ai(j, c) for c in range(2)]
    H = hessian(pb, ref.point)
    assert inertia([[H[r][s] for s in keep] for r in keep])["negative"] >= 1
    cert, note = ball_certificate(pb, ref.point)
    assert cert is not None and cert["verdict"] == "saddle", note
    # forge one: the structure, preconditioner and radius of a valid box, and a tiny curvature claim
    from flint import fmpq, fmpq_mat
    from relucert.check.kernel import ball_jacobian_at_center
    from relucert.decide.certify import fingerprint
    pj, ptj = pb.to_json(), ref.point.to_json()
    forged = {"format": BALL_FORMAT, "problem": pj, "point": ptj, "fingerprint": fingerprint(pj, ptj),
              "verdict": "local_min", "evidence": ev}
    J = ball_jacobian_at_center(forged)
    N = len(J)
    Yi = fmpq_mat(N, N, [fmpq(v.numerator, v.denominator) for row in J for v in row]).inv()
    ev["preconditioner"] = [[str(Yi[a, b]) for b in range(N)] for a in range(N)]
    ev["radius"] = "1/1000000000000000000000000000000"
    for mu in ("1/1000000000000", "1/10"):
        ev["curvature"] = mu
        res = check_certificate(forged)
        assert not res.ok and "Hessian on the gauge slice is not proven" in res.reasons[0], res.reasons


def _oracle_negative_curvature(cert):
    """This file's own check of a negative-curvature saddle ball: from the certificate's JSON only, the
    recorded slice direction (identity bases, single gauges) mapped to (W, A) lowers the mpmath loss on
    both sides of the centre, by about t^2 |v^T H v| / 2 (the centre's gradient is ~1e-60)."""
    mp.mp.dps = 80
    pbj, ptj, ev = cert["problem"], cert["point"], cert["evidence"]
    X = [[mp.mpf(Q(v).numerator) / Q(v).denominator for v in r] for r in pbj["X"]]
    Y = [[mp.mpf(Q(v).numerator) / Q(v).denominator for v in r] for r in pbj["Y"]]
    W = [[mp.mpf(Q(v).numerator) / Q(v).denominator for v in r] for r in ptj["W"]]
    A = [[mp.mpf(Q(v).numerator) / Q(v).denominator for v in r] for r in ptj["A"]]
    d, k = len(X[0]), len(Y[0])
    v = [mp.mpf(Q(x).numerator) / Q(x).denominator for x in ev["negative_curvature"]["direction"]]
    dW, dA = [[mp.mpf(0)] * d for _ in W], [[mp.mpf(0)] * k for _ in A]
    pos = 0
    for cl in ev["clusters"]:
        (j,) = cl["neurons"]
        assert cl["basis"] == [[str(int(a == b)) for b in range(d)] for a in range(d)] and type(cl["gauge"]) is int
        for q in range(d):
            if q != cl["gauge"]:
                dW[j][q] = v[pos]
                pos += 1
        for c in range(k):
            dA[j][c] = v[pos]
            pos += 1
    assert pos == len(v)

    def loss(t):
        tot = mp.mpf(0)
        for x, y in zip(X, Y):
            hs = [max(mp.fdot([w[q] + t * dw[q] for q in range(d)], x), 0) for w, dw in zip(W, dW)]
            tot += mp.fsum((mp.fsum((a[c] + t * da[c]) * h for a, da, h in zip(A, dA, hs)) - y[c]) ** 2
                           for c in range(k))
        return tot / (2 * len(X))
    L0 = loss(0)
    for t in (mp.mpf(10) ** -4, -mp.mpf(10) ** -4, mp.mpf(10) ** -6, -mp.mpf(10) ** -6):
        assert loss(t) < L0 - t * t * mp.mpf(10) ** -6


def _set(path, value):
    def mutate(c):
        obj = c
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return mutate


def _pop(path):
    def mutate(c):
        obj = c
        for key in path[:-1]:
            obj = obj[key]
        obj.pop(path[-1])
    return mutate


def test_every_single_field_change_is_rejected(minimum):
    cert = minimum[2].ball
    ev = cert["evidence"]
    c0 = ev["clusters"][0]
    off = lambda s: str(Q(s) + Q(1, 10 ** 45))   # noqa: E731
    cases = [
        (_set(["format"], "verifier-certificate/1"), "."),
        (_set(["problem", "X", 0, 0], "5"), "fingerprint"),
        (_set(["problem", "Y", 6, 1], "0"), "fingerprint"),
        (_set(["problem", "activation", "alpha_minus"], "1/10"), "fingerprint"),
        (_set(["problem", "loss"], "mse"), "fingerprint"),
        (_set(["point", "W", 0, 1], off(cert["point"]["W"][0][1])), "fingerprint"),
        (_set(["point", "A", 2, 0], "2"), "fingerprint"),
        (_set(["fingerprint"], "0" * 64), "fingerprint"),
        (_set(["verdict"], "saddle"), "curvature|escape"),
        (_set(["verdict"], "global_min"), "saddles or local minima"),
        (_set(["evidence", "clusters", 0, "neurons"], [1]), "every neuron"),
        (_set(["evidence", "clusters", 0, "neurons"], [0, 2]), "gamma"),
        (_set(["evidence", "clusters", 0, "gamma"], ["2"]), "copy"),
        (_set(["evidence", "clusters", 0, "beta"], ["1/2"]), "beta"),
        (_set(["evidence", "clusters", 0, "basis"], [["1", "1"], ["0", "1"]]), "copy"),
        (_set(["evidence", "clusters", 0, "basis"], [["1", "0"]]), "null space"),
        (_set(["evidence", "clusters", 0, "gauge"], 1 - c0["gauge"]), "copy"),
        (_set(["evidence", "clusters", 0, "gauge_value"], off(c0["gauge_value"])), "copy"),
        (_pop(["evidence", "clusters", 1]), "every neuron"),
        (_set(["evidence", "zero"], [2]), "zero neuron"),
        (_set(["evidence", "dead"], []), "every neuron"),
        (_set(["evidence", "dead"], [2, 0]), "dead"),
        (_set(["evidence", "center", 0], off(ev["center"][0])), "copy"),
        (_set(["evidence", "preconditioner", 0, 0], "0"), "Krawczyk"),
        (_set(["evidence", "radius"], "1/10"), "Krawczyk|kink"),
        (_set(["evidence", "radius"], "0"), "radius"),
        (_set(["evidence", "curvature"], "100"), "not proven to exceed"),
        (_set(["evidence", "curvature"], "0"), "curvature"),
        (_pop(["evidence", "curvature"]), "curvature"),
        (_set(["evidence", "escape"], [{"neuron": 2, "r": ["1", "0"]}]), "escape"),
    ]
    for mutate, msg in cases:
        c = copy.deepcopy(cert)
        mutate(c)
        res = check_certificate(c)
        assert not res.ok, mutate
        assert __import__("re").search(msg, res.reasons[0]), (msg, res.reasons)
    assert require_valid(copy.deepcopy(cert)) == "local_min"
    with pytest.raises(Rejected):
        c = copy.deepcopy(cert)
        c["evidence"]["curvature"] = "100"
        require_valid(c)


def test_negative_curvature_saddle_mutations_are_rejected():
    pb = _problem(X_SAD, Y_SAD)
    pt = Point.make(P_SAD[:2], P_SAD[2:], pb)
    tol = Tolerances()
    cert = R._refine_one(pb, pt, classify(pb, pt, tol), "as_given", tol).ball
    assert cert is not None and check_certificate(cert).ok
    N = len(cert["evidence"]["center"])

    def rejected(mutate, words):
        c = copy.deepcopy(cert)
        mutate(c)
        res = check_certificate(c)
        assert not res.ok and any(words in r for r in res.reasons), res.reasons

    # a direction of positive curvature: the gauge slice's first unknown alone (an input weight)
    rejected(_set(["evidence", "negative_curvature", "direction"], ["1"] + ["0"] * (N - 1)), "not proven on the box")
    rejected(_set(["evidence", "negative_curvature", "direction"], ["0"] * N), "direction is 0")
    rejected(_set(["evidence", "negative_curvature", "direction"], ["1"] * (N + 1)), "direction")
    rejected(_set(["evidence", "negative_curvature", "extra"], 1), "must be {direction}")
    rejected(_set(["evidence", "escape"], [{"neuron": 0, "r": ["1", "0"]}]), "not both")
    rejected(_set(["verdict"], "local_min"), "names no negative-curvature direction")
