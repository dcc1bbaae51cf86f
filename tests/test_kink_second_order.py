"""The exact second-order decision at vector-output stationary points with data on kinks
(relucert/decide/kinks.py, docs/second_order_kinks.md): hand-computed cases, the independent
checker and its mutations, and a property test against a brute-force descent oracle."""
import copy
import itertools
import json
import random
from fractions import Fraction as F

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relucert import certify
from relucert.check import require_valid
from relucert.check.kernel import Rejected, derive_verdict
from relucert.claims.generators import stationary_point
from relucert.claims.source import RandomSource, Reject
from relucert.core.formulas import ExactState
from relucert.core.problem import Point, Problem
from relucert.decide.kinks import decide_kinks


def _pp(X, Y, W, A, act="relu"):
    pb = Problem.make(X, Y, act)
    return pb, Point.make(W, A, pb)


# instance A: neuron w = (1, 0), a = (1, 0); x_1 = x_2 = (1, 0) fitted, x_3 = (0, 1) on the kink with
# residual e_3 = (0, -1) orthogonal to a: phi = 0 everywhere, D(r) = (0, -1/3) max(0, r_2) != 0, so an
# escape neuron with a != 0 (k = 2: Theorems A/B decide nothing).  On the piece dw_2 >= 0 the loss is
# (1/6)[2 |e_1|^2 + |e_3|^2] with e_1 = (da1 + dw1 + da1 dw1, da2 (1 + dw1)),
# e_3 = ((1 + da1) dw2, da2 dw2 - 1); on the slice dw1 = da1 its quadratic part is
# (1/6)[8 da1^2 + (da2 - dw2)^2 + da2^2] > 0 (dimension 3); on the piece dw_2 <= 0 x_3 is not seen,
# dw2 = 0 and the quadratic part is (1/6)[8 da1^2 + 2 da2^2] (dimension 2).  A local minimum.
A_CASE = dict(X=[[1, 0], [1, 0], [0, 1]], Y=[[1, 0], [1, 0], [0, 1]], W=[[1, 0]], A=[[1, 0]])


def test_local_min_modulo_rescaling_with_a_point_on_a_kink():
    pb, pt = _pp(**A_CASE)
    r = certify(pb, pt)
    assert r.verdict == "local_min" and r.escape_neurons == [0]
    ks = r.certificate["evidence"]["kink_second_order"]
    assert ks["groups"] == [{"neuron": 0, "normal": ["0", "1"], "data": [2]}]
    dims = {tuple(p["signs"]): p["dimension"] for p in ks["pieces"]}
    assert dims == {(1,): 3, (-1,): 2}
    assert all(p["mu"] == ["0"] for p in ks["pieces"])        # b_{s,0} = (1/3)(a.e_3) x_3 s = 0
    assert require_valid(r.certificate) == "local_min"
    # the hand-computed quadratic part along the slice direction (da1 = dw1 = 0, da2 = 1, dw2 = 1):
    # (1/6)[0 + 0 + 1] = 1/6 > 0, and along da2 = 1 only: 2/6 -- the exact ray polynomial agrees
    from relucert.core.formulas import ray_coefficients
    import numpy as np
    from flint import fmpq
    st_ = ExactState(pb, pt)
    for (dw, da), c2 in [(([0, 1], [0, 1]), fmpq(1, 6)), (([0, 0], [0, 1]), fmpq(2, 6))]:
        dW = np.array([[fmpq(v) for v in dw]], dtype=object)
        dA = np.array([[fmpq(v) for v in da]], dtype=object)
        co = ray_coefficients(pb.X, st_.fw.E, st_.fw.Z, None, pt.W, pt.A, dW, dA, st_.ap, st_.am)
        assert co[0] == 0 and co[1] == c2


# instance B: the same neuron, one fitted point x_1 = (1, 0) and x_2 = x_3 = (0, 1) on the kink with
# e = (0, -2) (orthogonal to a).  On the piece dw2 >= 0, along dw2 = t, da2 = 2t:
# e_1 = (0, 2t), e_2 = e_3 = (t, 2t^2 - 2), so L(theta + t Delta) - L(theta) = (1/6)[4t^2 + 2(-7t^2 + 4t^4)]
# = -5/3 t^2 + 4/3 t^4: negative curvature on that piece only (on dw2 <= 0 the kink data are not seen).
B_CASE = dict(X=[[1, 0], [0, 1], [0, 1]], Y=[[1, 0], [0, 2], [0, 2]], W=[[1, 0]], A=[[1, 0]])


def test_saddle_through_the_negative_curvature_of_a_piece():
    pb, pt = _pp(**B_CASE)
    st_ = ExactState(pb, pt)
    kd = decide_kinks(st_)
    assert kd["verdict"] == "saddle"
    so = kd["evidence"]
    poly = [F(v) for v in so["polynomial"]]
    assert poly[1] == 0 and poly[2] < 0
    # the direction moves x_2, x_3 to the active side (dw2 > 0): it lies in the piece s = +1
    assert F(so["dW"][0][1]) != 0
    r = certify(pb, pt)
    assert r.verdict == "saddle" and require_valid(r.certificate) == "saddle"
    _assert_saddle_path_lowers(pb, pt, r.certificate["evidence"]["second_order"])


def test_saddle_from_a_piece_when_the_escape_ray_fails():
    """A campaign instance (seeded) where the escape neurons' flat rays and the smooth Hessian find
    nothing: only the kink route decides (and the checker agrees)."""
    found = 0
    for s in range(400):
        try:
            inst = stationary_point(RandomSource(s), ks=(2, 3), max_n=5, max_d=3, max_m=3, modes=("kink", "random"),
                                    zero_prob=0)
        except Reject:
            continue
        r = certify(inst.problem, inst.point)
        if r.verdict == "saddle" and "kink piece" in r.reason:
            assert require_valid(r.certificate) == "saddle"
            _assert_saddle_path_lowers(inst.problem, inst.point, r.certificate["evidence"]["second_order"])
            found += 1
            if found == 2:
                break
    assert found == 2


# instance C: sigma(z) = -z (z > 0), 0 (z <= 0); w = (-1, -1, 1), a = (1, -1), k = 2; x_3 = (0, 1, 1) on
# the kink with e_3 = (-2, -2), x_4 = (0, -1, 1) fitted, x_1, x_2 inactive.  On the piece where x_3 is
# seen (dw . x_3 >= 0) the direction dw = (0, 1, 1), da = (-1, -1) lies on the slice and is flat at
# second order: by hand, |e_3|^2 = (2 + 2t - 2t^2)^2 + (2 - 2t - 2t^2)^2 = 8 - 8t^2 + 8t^4 and
# |e_4|^2 = 8t^2, so L(theta + t Delta) - L(theta) = 8t^4 / 8 = t^4 (t < 1/2).  The second-order
# test is only sufficient: inconclusive, naming the semi-definite piece.
C_CASE = dict(X=[[1, 1, 1], [1, 2, 1], [0, 1, 1], [0, -1, 1]], Y=[[0, 2], [-2, 2], [2, 2], [-2, 2]],
              W=[[-1, -1, 1]], A=[[1, -1]], act={"alpha_plus": -1, "alpha_minus": 0})


def test_inconclusive_with_a_flat_direction_of_one_piece():
    pb, pt = _pp(**C_CASE)
    r = certify(pb, pt)
    assert r.verdict == "inconclusive" and r.escape_neurons == [0]
    assert "1 of 2 kink piece(s) are only positive semi-definite" in r.reason
    assert require_valid(r.certificate) == "inconclusive"
    from relucert.core.formulas import ray_coefficients
    import numpy as np
    from flint import fmpq
    st_ = ExactState(pb, pt)
    dW = np.array([[fmpq(0), fmpq(1), fmpq(1)]], dtype=object)
    dA = np.array([[fmpq(-1), fmpq(-1)]], dtype=object)
    assert ray_coefficients(pb.X, st_.fw.E, st_.fw.Z, None, pt.W, pt.A, dW, dA, st_.ap, st_.am) == \
        (0, 0, 0, 1, fmpq(1, 2))


# ---------------------------------------------------------------------------------------------
# the checker: mutations of a kink_second_order certificate
# ---------------------------------------------------------------------------------------------

def _rejected(cert) -> bool:
    try:
        derive_verdict(cert)
        return False
    except Rejected:
        return True


def test_checker_rejects_every_single_field_change_of_the_proof():
    pb, pt = _pp(**A_CASE)
    cert = json.loads(json.dumps(certify(pb, pt).certificate))
    assert derive_verdict(cert) == "local_min"
    ks = cert["evidence"]["kink_second_order"]
    muts = []

    def mut(f):
        c = copy.deepcopy(cert)
        f(c["evidence"]["kink_second_order"])
        muts.append(c)
    mut(lambda k: k["groups"].pop())
    mut(lambda k: k["groups"][0].update(neuron=1))
    mut(lambda k: k["groups"][0].update(normal=["1", "0"]))
    mut(lambda k: k["groups"][0].update(data=[1]))
    mut(lambda k: k["pieces"].pop())
    mut(lambda k: k["pieces"].append(copy.deepcopy(k["pieces"][0])))
    mut(lambda k: k["pieces"][0].update(signs=[1, 1]))
    mut(lambda k: k["pieces"][1].update(signs=[1]))
    mut(lambda k: k["pieces"][0].update(mu=["1"]))
    mut(lambda k: k["pieces"][0].update(mu=["-1"]))
    mut(lambda k: k["pieces"][0].update(mu=[]))
    mut(lambda k: k["pieces"][0].update(dimension=ks["pieces"][0]["dimension"] + 1))
    mut(lambda k: k.pop("pieces"))
    for c in muts:
        assert _rejected(c), c["evidence"]["kink_second_order"]
    # the free text is harmless
    c = copy.deepcopy(cert)
    c["evidence"]["kink_second_order"]["meaning"] = "anything"
    assert derive_verdict(c) == "local_min"
    # a proof attached to another verdict, or a changed point / target, is rejected
    c = copy.deepcopy(cert)
    c["verdict"] = "inconclusive"
    assert _rejected(c)
    c = copy.deepcopy(cert)
    c["verdict"] = "saddle"
    assert _rejected(c)


def test_checker_rejects_the_proof_at_a_point_where_it_fails():
    """Transplant the local-min proof of A onto B (same groups and pieces, other targets): the
    checker recomputes the multipliers' identity and the Hessian and refuses."""
    pa, qa = _pp(**A_CASE)
    cert = json.loads(json.dumps(certify(pa, qa).certificate))
    pb, qb = _pp(X=[[1, 0], [1, 0], [0, 1]], Y=[[1, 0], [1, 0], [0, 3]], W=[[1, 0]], A=[[1, 0]])
    other = json.loads(json.dumps(certify(pb, qb).certificate))
    assert other["verdict"] == "saddle"
    other["verdict"] = "local_min"
    other["evidence"].pop("second_order")
    other["evidence"]["kink_second_order"] = cert["evidence"]["kink_second_order"]
    assert _rejected(other)


def test_second_order_ray_with_a_non_negative_leading_coefficient_is_rejected():
    pb, pt = _pp(**B_CASE)
    cert = json.loads(json.dumps(certify(pb, pt).certificate))
    so = cert["evidence"]["second_order"]
    so["dW"] = [["0", "0"]]
    so["dA"] = [["0", "1"]]           # c2 = 1/6 > 0 along da_2 alone
    assert _rejected(cert)


# ---------------------------------------------------------------------------------------------
# brute-force oracle (independent of relucert: Fractions, the network written out here)
# ---------------------------------------------------------------------------------------------

def _sig(z, ap, am):
    return ap * z if z > 0 else am * z


class Net:
    def __init__(self, pb, pt):
        self.X = [[F(str(v)) for v in r] for r in pb.X.tolist()]
        self.Y = [[F(str(v)) for v in r] for r in pb.Y.tolist()]
        self.W = [[F(str(v)) for v in r] for r in pt.W.tolist()]
        self.A = [[F(str(v)) for v in r] for r in pt.A.tolist()]
        self.c = None if pt.c is None else [F(str(v)) for v in pt.c.tolist()]
        self.ap, self.am = F(str(pb.activation.alpha_plus)), F(str(pb.activation.alpha_minus))

    def loss(self, W, A, c=None):
        tot = F(0)
        for x, y in zip(self.X, self.Y):
            for col in range(len(y)):
                f = sum((a[col] * _sig(sum((p * q for p, q in zip(w, x)), F(0)), self.ap, self.am)
                         for w, a in zip(W, A)), F(0))
                if c is not None:
                    f += c[col]
                tot += (f - y[col]) ** 2
        return tot / (2 * len(self.X))

    def at(self, t, d1, d2=None):
        """theta + t d1 + t^2 d2 (d = (dW, dA, dc))."""
        def mv(base, a, b):
            return [[u + t * v + (t * t * w if b is not None else 0) for u, v, w in
                     zip(r0, r1, r2 if b is not None else r1)] for r0, r1, r2 in zip(base, a, b if b is not None else a)]
        W = mv(self.W, d1[0], None if d2 is None else d2[0])
        A = mv(self.A, d1[1], None if d2 is None else d2[1])
        c = None
        if self.c is not None:
            c = [u + t * v + (t * t * w if d2 is not None else 0) for u, v, w in
                 zip(self.c, d1[2], d2[2] if d2 is not None else d1[2])]
        return W, A, c


def _interp_coeffs(ts, vals):
    """Exact coefficients of the polynomial through (ts, vals) (Newton -> monomial)."""
    n = len(ts)
    coef = list(vals)
    for j in range(1, n):
        for i in range(n - 1, j - 1, -1):
            coef[i] = (coef[i] - coef[i - 1]) / (ts[i] - ts[i - j])
    poly = [F(0)] * n
    for i in range(n - 1, -1, -1):
        # poly = poly * (t - ts[i]) + coef[i]
        new = [F(0)] * n
        for p in range(n - 1):
            new[p + 1] += poly[p]
            new[p] -= ts[i] * poly[p]
        new[0] += coef[i]
        poly = new
    return poly


def _lex_sign(vals):
    for v in vals:
        if v != 0:
            return 1 if v > 0 else -1
    return 0


def _curve_poly(net, d1, d2, degree):
    """L(theta(t)) - L(theta) near 0+, exact, as coefficients (interpolated on a t-range where every
    pre-activation has its limiting sign)."""
    L0 = net.loss(net.W, net.A, net.c)
    want = []
    for x in net.X:
        for j in range(len(net.W)):
            z = sum((p * q for p, q in zip(net.W[j], x)), F(0))
            dz = sum((p * q for p, q in zip(d1[0][j], x)), F(0))
            ez = F(0) if d2 is None else sum((p * q for p, q in zip(d2[0][j], x)), F(0))
            want.append((x, j, _lex_sign([z, dz, ez])))
    t = F(1, 16)
    while True:
        ts = [t * (i + 1) / (degree + 1) for i in range(degree + 1)]
        ok = True
        for tt in ts:
            W, _, _ = net.at(tt, d1, d2)
            for x, j, sg in want:
                z = sum((p * q for p, q in zip(W[j], x)), F(0))
                if _lex_sign([z]) != sg and not (sg == 0 and z == 0):
                    ok = False
                    break
            if not ok:
                break
        if ok:
            break
        t /= 8
    vals = [net.loss(*net.at(tt, d1, d2)) - L0 for tt in ts]
    return _interp_coeffs(ts, vals)


def _assert_no_descent(pb, pt, rng, n_rays=40, n_curves=10):
    """Dense exact descent search: random rays (some restricted to the kink faces), and quadratic
    curves; every leading coefficient of the loss change must be >= 0."""
    net = Net(pb, pt)
    m, d, k = len(net.W), len(net.X[0]), len(net.Y[0])
    kinks = [(i, j) for j in range(m) for i, x in enumerate(net.X)
             if any(v != 0 for v in x) and sum((p * q for p, q in zip(net.W[j], x)), F(0)) == 0]

    def rand_dir(face):
        dW = [[F(rng.randint(-3, 3), rng.choice((1, 2, 3))) if rng.random() < 0.7 else F(0) for _ in range(d)]
              for _ in range(m)]
        dA = [[F(rng.randint(-3, 3), rng.choice((1, 2, 3))) if rng.random() < 0.7 else F(0) for _ in range(k)]
              for _ in range(m)]
        if face:       # project dw_j onto {x_i . dw_j = 0 for a random subset of its kink pairs}
            for i, j in kinks:
                if rng.random() < 0.8:
                    x = net.X[i]
                    f = sum((p * q for p, q in zip(dW[j], x)), F(0)) / sum((v * v for v in x), F(0))
                    dW[j] = [p - f * q for p, q in zip(dW[j], x)]
        dc = None if net.c is None else [F(rng.randint(-2, 2)) for _ in range(k)]
        return dW, dA, dc
    for r in range(n_rays):
        d1 = rand_dir(face=r % 2 == 1)
        poly = _curve_poly(net, d1, None, 4)
        lead = next((v for v in poly[1:] if v != 0), F(0))
        assert poly[0] == 0 and lead >= 0, (poly, d1)
    for r in range(n_curves):
        d1, d2 = rand_dir(face=True), rand_dir(face=False)
        poly = _curve_poly(net, d1, d2, 8)
        lead = next((v for v in poly[1:] if v != 0), F(0))
        assert lead >= 0, (poly, d1, d2)


def _assert_saddle_path_lowers(pb, pt, so):
    net = Net(pb, pt)
    L0 = net.loss(net.W, net.A, net.c)
    dW = [[F(v) for v in r] for r in so["dW"]]
    dA = [[F(v) for v in r] for r in so["dA"]]
    dc = None if "dc" not in so else [F(v) for v in so["dc"]]
    t0 = F(so["t0"])
    for h in range(6):
        t = t0 / 2 ** h
        assert net.loss(*net.at(t, (dW, dA, dc))) < L0


def test_oracle_finds_the_descent_of_a_saddle():
    """The oracle is not vacuous: at B (a saddle) some ray or curve has a negative leading term."""
    pb, pt = _pp(**B_CASE)
    net = Net(pb, pt)
    d1 = ([[F(0), F(1)]], [[F(0), F(2)]], None)
    poly = _curve_poly(net, d1, None, 4)
    assert poly == [0, 0, F(-5, 3), 0, F(4, 3)]


HARD = settings(derandomize=True, database=None, deadline=None, max_examples=20,
                suppress_health_check=list(HealthCheck))


@HARD
@given(st.integers(0, 10 ** 6))
def test_property_verdicts_against_brute_force(seed):
    """Random hard vector-output instances (kinks, replicas, zero and dead neurons, a_j != 0 escape
    neurons): every local_min survives the dense descent search, every saddle path lowers the loss
    exactly, and the checker accepts every certificate."""
    for s in itertools.count(seed):
        try:
            inst = stationary_point(RandomSource(s), ks=(2, 3), max_n=5, max_d=3, max_m=3,
                                    modes=("kink", "random", "kink", "dup", "zero", "dead"), zero_prob=0)
        except Reject:
            continue
        r = certify(inst.problem, inst.point)
        if r.escape_neurons and "kink" in r.reason:
            break
    assert require_valid(r.certificate) == r.verdict
    rng = random.Random(seed)
    if r.verdict == "local_min":
        _assert_no_descent(inst.problem, inst.point, rng, n_rays=16, n_curves=4)
    elif r.verdict == "saddle":
        _assert_saddle_path_lowers(inst.problem, inst.point, r.certificate["evidence"]["second_order"])


def test_output_bias_is_a_variable_of_every_piece():
    """With an output bias c (docs/biases.md) dc is a variable of every piece: a kink local minimum
    with c, searched by the oracle with c moving too; and a saddle whose descent ray needs dc."""
    pb = Problem.make([[1, 0], [1, 1], [0, 1], [0, -1]], [[1, 0], [1, 0], [0, "1/4"], [0, "-1/4"]], "relu")
    pt = Point.make([[1, 0]], [[1, 0]], pb, c=[0, 0])
    r = certify(pb, pt)
    assert r.verdict == "local_min" and "kink_second_order" in r.certificate["evidence"]
    assert require_valid(r.certificate) == "local_min"
    _assert_no_descent(pb, pt, random.Random(3), n_rays=16, n_curves=3)
    # the same data with residuals (0, +-1) on the kink line: c and a_2 together descend -> saddle
    pb2 = Problem.make([[1, 0], [1, 0], [0, 1], [0, -1]], [[1, 0], [1, 0], [0, 1], [0, -1]], "relu")
    r2 = certify(pb2, Point.make([[1, 0]], [[1, 0]], pb2, c=[0, 0]))
    assert r2.verdict == "saddle" and "dc" in r2.certificate["evidence"]["second_order"]
    _assert_saddle_path_lowers(pb2, Point.make([[1, 0]], [[1, 0]], pb2, c=[0, 0]),
                               r2.certificate["evidence"]["second_order"])


def test_lifted_and_frozen_neuron_lists_are_checked():
    """A seeded campaign point with a dead neuron whose a_j = 0 (lifted: sigma(z_ij) = 0 for every i):
    the checker verifies the lifted / frozen lists; changing them is rejected or harmless."""
    inst = stationary_point(RandomSource(1808), ks=(2, 3), max_n=6, max_d=3, max_m=3)
    cert = json.loads(json.dumps(certify(inst.problem, inst.point).certificate))
    ks = cert["evidence"]["kink_second_order"]
    assert ks["lifted"] == [1] and ks["frozen"] == [] and derive_verdict(cert) == "local_min"

    def variant(**kw):
        c = copy.deepcopy(cert)
        c["evidence"]["kink_second_order"].update(kw)
        return c
    assert _rejected(variant(lifted=[0]))             # a_0 != 0
    assert _rejected(variant(lifted=[1, 1]))
    assert _rejected(variant(lifted=[1], frozen=[1]))
    assert _rejected(variant(lifted=[], frozen=[1]))  # frozen: a_1 free with a zero Hessian row
    assert _rejected(variant(lifted=[True]))
    # harmless: a dead neuron sees nothing on any piece, so as an ordinary neuron it is fixed anyway
    assert derive_verdict(variant(lifted=[])) == "local_min"
