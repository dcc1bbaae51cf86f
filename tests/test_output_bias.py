"""The output bias c everywhere on the exact path (issue 14, docs/biases.md §8).

f(x) = sum_j a_j sigma(w_j . x) + c and e_i = f(x_i) - y_i (c included).  ``Point.c is None``: the network has no
output bias, and every result is today's, byte for byte; ``Point.c`` a vector (even zeros): c is a free
parameter, and a point needs (S0) sum_i e_i = 0 as well.

(a) the counterexamples CE1-CE3 of docs/biases.md §7, hand-computed, with c free and with c = None;
(b) hypothesis properties on small exact instances with c: every local_min survives the tests'
    brute-force descent search (random rational directions, dc included, small rational steps), every
    not_stationary direction, escape path and second-order ray lowers the loss exactly (by the tests'
    own oracle), the joint verdict follows the slice verdict as docs/biases.md §4.6 says, and the
    independent checker accepts every certificate;
(c) mutations of c and forged dc are rejected by the checker;
(d) bias-free points: certificates identical to the code before the output bias existed;
(e) loaders: JSON, certificates, .npz and torch checkpoints carry c exactly;
(f) the pipeline with c: never a verdict about a point without c (refinement and --converge are
    skipped, with the reason, until they carry c).

The oracle below is this file's own (Fractions only, no relucert code).  Everything is deterministic
(derandomized hypothesis, no example database).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import random
from fractions import Fraction as Q

import numpy as np
import pytest
from flint import fmpq, fmpq_mat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies as S
from cases import CASES
from relucert.check import Rejected, check_certificate, require_valid
from relucert.core.formulas import ExactState, ray_coefficients
from relucert.core.hessian import hessian, inertia, param_index
from relucert.core.problem import Point
from relucert.decide.ball import ball_certificate
from relucert.decide.certify import certify
from relucert.decide.second_order import morse_bott
from relucert.io import load, load_npz, problem_point_from_dict, write_point

BASE = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


# =============================================================================================
# the tests' brute-force oracle (Fractions only, independent of relucert's formulas)
# =============================================================================================

def o_dot(u, v):
    return sum((p * q for p, q in zip(u, v)), Q(0))


class Net:
    """X, Y, (W, A, c) and the activation, as Fractions; c None = no output bias."""

    def __init__(self, X, Y, W, A, c, ap=Q(1), am=Q(0), loss="half_mean"):
        self.X = [[Q(v) for v in r] for r in X]
        self.Y = [[Q(v) for v in r] for r in Y]
        self.W = [[Q(v) for v in r] for r in W]
        self.A = [[Q(v) for v in r] for r in A]
        self.c = None if c is None else [Q(v) for v in c]
        self.ap, self.am, self.loss = Q(ap), Q(am), loss

    n = property(lambda self: len(self.X))
    d = property(lambda self: len(self.X[0]))
    k = property(lambda self: len(self.Y[0]))
    m = property(lambda self: len(self.W))

    def sig(self, z):
        return self.ap * z if z > 0 else self.am * z

    def residuals(self, W=None, A=None, c=None):
        W = self.W if W is None else W
        A = self.A if A is None else A
        c = self.c if c is None else c
        out = []
        for x, y in zip(self.X, self.Y):
            h = [self.sig(o_dot(w, x)) for w in W]
            out.append([sum((h[j] * A[j][o] for j in range(len(W))), Q(0)) + (c[o] if c is not None else 0) - y[o]
                        for o in range(self.k)])
        return out

    def loss_hm(self, W=None, A=None, c=None):
        E = self.residuals(W, A, c)
        return sum((v * v for r in E for v in r), Q(0)) / (2 * self.n)

    def factor(self):
        return Q(1) if self.loss == "half_mean" else Q(2, self.k)

    def ebar(self):
        E = self.residuals()
        return [sum((r[o] for r in E), Q(0)) / self.n for o in range(self.k)]

    def move(self, t, dW=None, dA=None, dc=None):
        W = [[w + t * v for w, v in zip(rw, rd)] for rw, rd in zip(self.W, dW)] if dW is not None else self.W
        A = [[a + t * v for a, v in zip(ra, rd)] for ra, rd in zip(self.A, dA)] if dA is not None else self.A
        c = None if self.c is None else ([a + t * v for a, v in zip(self.c, dc)] if dc is not None else self.c)
        return W, A, c

    def to_json(self, with_c=True):
        s = lambda M: [[str(v) for v in r] for r in M]      # noqa: E731
        out = {"activation": {"alpha_plus": str(self.ap), "alpha_minus": str(self.am)}, "loss": self.loss,
               "X": s(self.X), "Y": s(self.Y), "W": s(self.W), "A": s(self.A)}
        if with_c and self.c is not None:
            out["c"] = [str(v) for v in self.c]
        return out

    def pkg(self, with_c=True):
        return problem_point_from_dict(self.to_json(with_c))

    def slice_pkg(self):
        """The bias-free problem with targets y_i - c, c held fixed (docs/biases.md §3.4)."""
        sl = Net(self.X, [[y - cc for y, cc in zip(r, self.c)] for r in self.Y], self.W, self.A, None,
                 self.ap, self.am, self.loss)
        return sl.pkg()


def brute_force_descent(net: Net, seed: int, n_random: int = 24, steps=(Q(1, 10 ** 4), Q(1, 10 ** 7))):
    """The tests' brute-force oracle for a claimed local minimum: a direction (dW, dA, dc) and a small
    rational step with strictly lower loss, or None.  Directions: +- every coordinate of (W, A, c),
    dc = -e_bar alone, and random rational directions moving everything (c included)."""
    d, k, m = net.d, net.k, net.m
    L0 = net.loss_hm()
    zW = [[Q(0)] * d for _ in range(m)]
    zA = [[Q(0)] * k for _ in range(m)]
    zc = [Q(0)] * k
    dirs = []
    for part, shape in (("W", (m, d)), ("A", (m, k)), ("c", (1, k))):
        if part == "c" and net.c is None:
            continue
        for j in range(shape[0]):
            for q in range(shape[1]):
                for sgn in (1, -1):
                    dW, dA, dc = copy.deepcopy(zW), copy.deepcopy(zA), list(zc)
                    {"W": lambda: dW[j].__setitem__(q, Q(sgn)), "A": lambda: dA[j].__setitem__(q, Q(sgn)),
                     "c": lambda: dc.__setitem__(q, Q(sgn))}[part]()
                    dirs.append((dW, dA, dc))
    if net.c is not None:
        dirs.append((zW, zA, [-v for v in net.ebar()]))
    rng = random.Random(seed)
    val = lambda: Q(rng.randint(-4, 4), rng.choice((1, 2, 3)))     # noqa: E731
    for _ in range(n_random):
        dirs.append(([[val() for _ in range(d)] for _ in range(m)], [[val() for _ in range(k)] for _ in range(m)],
                     [val() for _ in range(k)]))
    for dW, dA, dc in dirs:
        for t in steps:
            if net.loss_hm(*net.move(t, dW, dA, dc)) < L0:
                return dW, dA, dc, t
    return None


def o_check_descent(net: Net, ns: dict):
    """The recorded not_stationary step lowers the oracle's loss to exactly loss_at_step."""
    L0 = net.loss_hm() * net.factor()
    t = Q(ns["step"])
    dr = ns["direction"]
    if ns["reason"] == "S0":
        dc = [Q(v) for v in dr["dc"]]
        assert dc == [-v for v in net.ebar()]
        new = net.loss_hm(*net.move(t, dc=dc)) * net.factor()
    else:
        j = dr["neuron"]
        dW = [[Q(0)] * net.d for _ in range(net.m)]
        dA = [[Q(0)] * net.k for _ in range(net.m)]
        dW[j], dA[j] = [Q(v) for v in dr["dw"]], [Q(v) for v in dr["da"]]
        new = net.loss_hm(*net.move(t, dW, dA)) * net.factor()
    assert new == Q(ns["loss_at_step"]) < L0


def o_check_saddle(net: Net, ev: dict):
    """The recorded escape path / second-order ray lowers the oracle's loss (c held fixed on the path)."""
    L0 = net.loss_hm() * net.factor()
    if "escape_path" in ev:
        ep = ev["escape_path"]
        j, r, D = ep["neuron"], [Q(v) for v in ep["r"]], [Q(v) for v in ep["D"]]
        t0 = Q(ep["t0"])
        for t in (t0, t0 / 8):
            W = [list(w) for w in net.W]
            A = [list(a) for a in net.A]
            W[j] = [w + t * v for w, v in zip(W[j], r)]
            A[j] = [-t * t * v for v in D]
            new = net.loss_hm(W, A) * net.factor()
            assert new < L0
            if t == t0:
                assert new == Q(ep["loss_at_t0"])
    else:
        so = ev["second_order"]
        dW = [[Q(v) for v in r] for r in so["dW"]]
        dA = [[Q(v) for v in r] for r in so["dA"]]
        dc = [Q(v) for v in so["dc"]] if "dc" in so else None
        t0 = Q(so["t0"])
        for t in (t0, t0 / 8):
            new = net.loss_hm(*net.move(t, dW, dA, dc)) * net.factor()
            assert new < L0
            if t == t0:
                assert new == Q(so["loss_at_t0"])


def refingerprint(cert):
    blob = json.dumps({"problem": cert["problem"], "point": cert["point"]}, sort_keys=True, separators=(",", ":"))
    cert["fingerprint"] = hashlib.sha256(blob.encode()).hexdigest()
    return cert


def rejected(cert, match=None) -> str:
    with pytest.raises(Rejected) as exc:
        require_valid(cert)
    if match is not None:
        assert match in str(exc.value), str(exc.value)
    return str(exc.value)


# =============================================================================================
# (a) the counterexamples of docs/biases.md §7
# =============================================================================================

CE = {"CE1": ([[1], [-1]], [[1], [1]], [[1]], [[1]]),
      "CE2": ([[1, 0], [0, 1]], [[2, 1], [2, -1]], [[1, 1]], [[2, 0]]),
      "CE3": ([[1], [0]], [[1], [1]], [[1]], [[1]])}


def ce(name, c="zero"):
    X, Y, W, A = CE[name]
    net = Net(X, Y, W, A, None if c is None else [0] * len(Y[0]))
    pb, pt = net.pkg()
    return net, pb, pt, certify(pb, pt)


@pytest.mark.parametrize("name", sorted(CE))
def test_counterexamples_without_c_keep_todays_verdicts(name):
    net, pb, pt, res = ce(name, c=None)
    assert pt.c is None and "c" not in res.certificate["point"]
    assert res.verdict == "local_min" and require_valid(res.certificate) == "local_min"
    if name == "CE2":
        assert "morse_bott" in res.certificate["evidence"] and res.escape_neurons == [0]
        assert inertia(hessian(pb, pt))["negative"] == 0
    else:
        assert "Theorem A" in res.reason and res.loss == fmpq(1, 4)


def test_ce1_with_c_is_not_stationary_along_dc():
    net, pb, pt, res = ce("CE1")
    # e = (0, -1), e_bar = -1/2: along dc = 1/2 the loss is exactly 1/4 - t/4 + t^2/8
    assert ExactState(pb, pt).mean_residual == [fmpq(-1, 2)] and net.ebar() == [Q(-1, 2)]
    assert res.verdict == "not_stationary" and "(S0)" in res.reason
    ns = res.certificate["evidence"]["not_stationary"]
    assert ns == {"reason": "S0", "direction": {"neuron": None, "dc": ["1/2"]}, "derivative": "-1/4",
                  "ray_polynomial": ["0", "-1/4", "1/8", "0", "0"], "t_max": None, "step": "1",
                  "loss_at_step": "1/8"}
    assert res.descent_derivative == fmpq(-1, 4)
    assert require_valid(res.certificate) == "not_stationary"
    o_check_descent(net, ns)
    # (w, a, c) = (1, 0, 1) fits exactly: global_min
    pb1, pt1 = Net(*CE["CE1"][:2], [[1]], [[0]], [1]).pkg()
    assert certify(pb1, pt1).verdict == "global_min"


def test_ce2_with_c_is_a_saddle_and_never_a_morse_bott_minimum():
    net, pb, pt, res = ce("CE2")
    st_ = ExactState(pb, pt)
    assert st_.mean_residual == [0, 0]                       # (S0) holds: stationary with c free
    # the joint Hessian in (W, A, c), 6 x 6, has the characteristic polynomial l^2 (l - 4)(2l^3 - 8l^2 + 7l + 1)/2
    H = hessian(pb, pt)
    assert len(H) == 6 and param_index(1, 2, 2, True)[2] == 6
    cp = fmpq_mat(6, 6, [v for r in H for v in r]).charpoly()
    lam = [fmpq(0), fmpq(1), fmpq(-1), fmpq(1, 2), fmpq(3)]
    for x in lam:
        assert cp(x) == x ** 2 * (x - 4) * (2 * x ** 3 - 8 * x ** 2 + 7 * x + 1) / 2
    assert inertia(H)["negative"] == 1
    # the slice's (W, A)-block alone is positive semi-definite: the unsound test would say local_min
    assert inertia([r[:4] for r in H[:4]])["negative"] == 0
    assert morse_bott(st_) is None
    assert res.verdict == "saddle" and require_valid(res.certificate) == "saddle"
    so = res.certificate["evidence"]["second_order"]
    assert "dc" in so and Q(so["polynomial"][2]) < 0
    o_check_saddle(net, res.certificate["evidence"])
    # the hand-computed joint ray of docs/biases.md §7: dw = (-1, 1), da = (0, -3), dc = (0, 3)
    dW = np.array([[fmpq(-1), fmpq(1)]], dtype=object)
    dA = np.array([[fmpq(0), fmpq(-3)]], dtype=object)
    c1, c2, c3, c4, t_max = ray_coefficients(pb.X, st_.fw.E, st_.fw.Z, None, pt.W, pt.A, dW, dA, fmpq(1), fmpq(0),
                                             dc=[fmpq(0), fmpq(3)])
    assert (c1, c2, c3, c4, t_max) == (0, -1, 0, fmpq(9, 2), 1)
    assert net.loss_hm(*net.move(Q(1, 4), [[-1, 1]], [[0, -3]], [0, 3])) == Q(1, 2) - Q(23, 512)
    # without dc the same (dW, dA) curves upwards
    c1, c2 = ray_coefficients(pb.X, st_.fw.E, st_.fw.Z, None, pt.W, pt.A, dW, dA, fmpq(1), fmpq(0))[:2]
    assert (c1, c2) == (0, fmpq(7, 2))


def test_ce2_a_morse_bott_proof_on_the_wa_block_alone_is_rejected():
    """The regression test of docs/biases.md §8.7: the slice's Morse-Bott certificate, moved to the
    point with c free (c = 0, same residuals), must not be accepted."""
    _, _, _, res = ce("CE2", c=None)
    cert = copy.deepcopy(res.certificate)
    assert cert["verdict"] == "local_min" and "morse_bott" in cert["evidence"]
    cert["point"]["c"] = ["0", "0"]
    rejected(copy.deepcopy(cert), "fingerprint")
    refingerprint(cert)
    rejected(copy.deepcopy(cert), "morse_bott")
    cert["evidence"]["morse_bott"]["parameters"] = 6            # even when it names the joint size
    rejected(cert, "not positive semi-definite")


def test_ce3_a_zero_data_point_decides_s0():
    net, pb, pt, res = ce("CE3")
    assert net.ebar() == [Q(-1, 2)] and Net(*[v[:1] for v in CE["CE3"][:2]], *CE["CE3"][2:], [0]).ebar() == [0]
    assert res.verdict == "not_stationary"
    ns = res.certificate["evidence"]["not_stationary"]
    assert ns["reason"] == "S0" and ns["direction"]["dc"] == ["1/2"]
    # L' along dc = 1 is -1/2
    st_ = ExactState(pb, pt)
    zW = np.array([[fmpq(0)]], dtype=object)
    assert st_.directional_derivative(zW, zW, [fmpq(1)]) == fmpq(-1, 2)
    assert require_valid(res.certificate) == "not_stationary"
    o_check_descent(net, ns)


def test_theorem_a_and_the_escape_path_hold_with_c_fixed():
    X = [[1, 0], [0, 1]]
    # tests/cases.py's dead_a0 (a Theorem-A local_min without c) with c = 0: e = (0, 1), e_bar = 1/2
    net = Net(X, [[1], [-1]], [[1, 0], [-1, -1]], [[1], [0]], [0])
    pb, pt = net.pkg()
    assert certify(pb, pt).verdict == "not_stationary"
    # a dead ReLU neuron (w.x_i = -1 < 0) and c = mean(y) = 1/2: e = (-1/2, 1/2) sums to 0, G = 0, D = 0
    net = Net(X, [[1], [0]], [[-1, -1]], [[1]], [Q(1, 2)])
    pb, pt = net.pkg()
    res = certify(pb, pt)
    assert res.verdict == "local_min" and "Theorem A" in res.reason and require_valid(res.certificate) == "local_min"
    assert brute_force_descent(net, 0) is None
    # plus a zero neuron: D(r) = (-relu(r_1) + relu(r_2))/4 != 0 -> escape path with c held fixed
    net = Net(X, [[1], [0]], [[-1, -1], [0, 0]], [[1], [0]], [Q(1, 2)])
    pb, pt = net.pkg()
    res = certify(pb, pt)
    assert res.verdict == "saddle" and "escape_path" in res.certificate["evidence"]
    assert require_valid(res.certificate) == "saddle"
    o_check_saddle(net, res.certificate["evidence"])


def test_ball_certificates_refuse_a_point_with_c():
    _, pb, pt, _ = ce("CE2")
    cert, note = ball_certificate(pb, pt)
    assert cert is None and "output bias" in note


# =============================================================================================
# (b) properties on small exact instances with c
# =============================================================================================

@st.composite
def flat_vector(draw):
    """k = 2, d = 2, one ReLU neuron active on every data point with a != 0 and residuals
    e_i = eps c_i b, b orthogonal to a, c orthogonal to h = (w.x_i) and to (1, ..., 1): stationary with c
    free ((S0), G = 0, a.e_i = 0) and an escape neuron with a != 0 (D(r) = eps b sum_i c_i x_i.r / n):
    the joint second-order tests decide it (a saddle by a ray moving c, or a joint Morse-Bott minimum)."""
    n = draw(st.integers(3, 5))
    w = draw(S.vectors(2, S.small_rationals(3)).filter(any))
    X = []
    for _ in range(n):
        x = draw(S.vectors(2, S.small_rationals(3)))
        z = o_dot(w, x)
        if z <= 0:
            x = [u + (1 - z) * v / o_dot(w, w) for u, v in zip(x, w)]
        X.append(x)
    h = [o_dot(w, x) for x in X]
    cs = [Q(v) for v in draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))]
    hbar = sum(h, Q(0)) / n
    for u in ([Q(1)] * n, [v - hbar for v in h]):     # orthogonal: project cs off span(1, h), exactly
        uu = o_dot(u, u)
        if uu:
            cs = [ci - o_dot(cs, u) / uu * ui for ci, ui in zip(cs, u)]
    a = draw(S.vectors(2, S.nonzero_rationals(2, (1,))))
    b = [-a[1], a[0]]
    eps = draw(st.sampled_from((Q(1, 100), Q(1, 10), Q(1), Q(3), Q(10))))
    c = draw(S.vectors(2, S.small_rationals(3)))
    Y = [[hi * av + cv - eps * ci * bv for av, cv, bv in zip(a, c, b)] for hi, ci in zip(h, cs)]
    return Net(X, Y, [w], [a], c, 1, 0, draw(st.sampled_from(("half_mean", "mse"))))


@st.composite
def biased(draw):
    """A small instance with an output bias: random targets, targets making the point stationary by
    construction (residuals in the null space of (S0), (S1) and the linear part of (S2)), an exact fit,
    random targets with c centred (e_bar = 0), or a vector-output flat instance (``flat_vector``)."""
    if draw(st.integers(0, 5)) == 0:
        return draw(flat_vector()), "flat_vector"
    ap, am = draw(S.activations())
    n = draw(st.integers(2, 5))
    d = draw(st.integers(1, 2))
    m = draw(st.integers(1, 2))
    k = draw(st.sampled_from((1, 2)))
    X = draw(S.data_matrix(n, d))
    W, _ = draw(S.input_weights(X, m, ap, am))
    A = draw(S.output_weights(m, k))
    c = [Q(0)] * k if draw(st.integers(0, 3)) == 0 else draw(S.vectors(k, S.small_rationals(3)))
    loss = draw(st.sampled_from(("half_mean", "half_mean", "mse")))
    kind = draw(st.sampled_from(("random", "stationary", "stationary", "stationary", "teacher", "centred")))
    inst = S.Instance(X, [[Q(0)] * k for _ in range(n)], W, A, ap, am, loss, kind)
    F = [[f + cc for f, cc in zip(row, c)] for row in inst.outputs()]       # with c
    if kind in ("random", "centred"):
        Y = [draw(S.vectors(k, S.small_rationals(3))) for _ in range(n)]
        if kind == "centred":
            eb = [sum((F[i][o] - Y[i][o] for i in range(n)), Q(0)) / n for o in range(k)]
            c = [cc - e for cc, e in zip(c, eb)]
    elif kind == "teacher":
        Y = [list(r) for r in F]
    else:
        basis = S.stationary_residual_basis(inst, draw(st.booleans()))
        # ... intersected with (S0): sum_i r_i = 0
        M = [[sum((b[i * k + o] for i in range(n)), Q(0)) for b in basis] for o in range(k)]
        comb = S.nullspace(M, len(basis)) if basis else []
        coef = draw(st.lists(st.integers(-3, 3), min_size=len(comb), max_size=len(comb)))
        R = [sum((cf * sum((g * b[t] for g, b in zip(cb, basis)), Q(0)) for cf, cb in zip(coef, comb)), Q(0))
             for t in range(n * k)]
        Y = [[F[i][o] - R[i * k + o] for o in range(k)] for i in range(n)]
    return Net(X, Y, W, A, c, ap, am, loss), kind


SEEN: dict = {}


@settings(BASE, max_examples=200)
@given(biased(), st.integers(0, 10 ** 6))
def test_verdicts_with_c_are_right_by_the_oracle(case, seed):
    net, kind = case
    pb, pt = net.pkg()
    assert pt.c is not None
    res = certify(pb, pt)
    cert = res.certificate
    for key in [res.verdict] + (["second_order_with_dc"] if "dc" in cert["evidence"].get("second_order", {}) else []) \
            + (["morse_bott_joint"] if "morse_bott" in cert["evidence"] else []):
        SEEN[key] = SEEN.get(key, 0) + 1
    # the checker accepts, and the certificate is about the point with c (the fingerprint covers it)
    assert require_valid(cert) == res.verdict
    assert cert["point"]["c"] == [str(v) for v in net.c]
    ev = cert["evidence"]
    eb = net.ebar()
    assert [Q(int(v.p), int(v.q)) for v in ExactState(pb, pt).mean_residual] == eb
    if any(eb) and res.verdict != "global_min":
        assert res.verdict == "not_stationary" and ev["not_stationary"]["reason"] == "S0"
    if res.verdict == "not_stationary":
        o_check_descent(net, ev["not_stationary"])
    elif res.verdict == "global_min":
        assert net.loss_hm() == 0
    else:
        assert not any(eb)
        if res.verdict == "saddle":
            o_check_saddle(net, ev)
        if res.verdict == "local_min":
            found = brute_force_descent(net, seed)
            assert found is None, f"a local_min with c descends along {found}"
    # the slice (targets y - c, c held fixed): docs/biases.md §4.6
    spb, spt = net.slice_pkg()
    sres = certify(spb, spt)
    if not any(eb):
        if sres.verdict in ("not_stationary", "global_min") or "escape_path" in sres.certificate["evidence"]:
            assert res.verdict == sres.verdict
        if sres.verdict == "saddle":
            assert res.verdict == "saddle"
        if sres.verdict == "local_min" and "morse_bott" not in sres.certificate["evidence"]:
            assert res.verdict == "local_min"
        for part in ("neurons", "not_stationary", "escape_path"):       # per-neuron evidence: the slice's
            if part in ev and part in sres.certificate["evidence"]:
                assert ev[part] == sres.certificate["evidence"][part]
    else:
        assert sres.verdict != "global_min"


def test_the_property_test_reaches_every_verdict():
    if not SEEN:
        pytest.skip("runs after test_verdicts_with_c_are_right_by_the_oracle")
    assert {"not_stationary", "local_min", "saddle", "global_min"} <= set(SEEN), SEEN
    assert SEEN.get("second_order_with_dc") and SEEN.get("morse_bott_joint"), SEEN


# =============================================================================================
# (c) mutations of c and forged dc
# =============================================================================================

def _mutations_are_rejected(net: Net, cert: dict):
    # changing c: rejected without a new fingerprint, and with one (the loss or e_bar differ)
    mut = copy.deepcopy(cert)
    mut["point"]["c"][0] = str(Q(mut["point"]["c"][0]) + 1)
    rejected(copy.deepcopy(mut), "fingerprint")
    rejected(refingerprint(mut))
    # dropping c: rejected without a new fingerprint; with one only when the certificate is not about
    # the bias-free point
    mut = copy.deepcopy(cert)
    del mut["point"]["c"]
    rejected(copy.deepcopy(mut), "fingerprint")
    got = check_certificate(refingerprint(mut))
    if got.ok:
        # then it is a true certificate about the bias-free point (c = 0 there, and no move of c)
        assert not any(net.c) and "dc" not in json.dumps(cert["evidence"])
        bpb, bpt = net.pkg(with_c=False)
        assert certify(bpb, bpt).verdict == got.verdict == cert["verdict"]
    ev = cert["evidence"]
    # forging dc
    if "not_stationary" in ev and ev["not_stationary"]["reason"] == "S0":
        p = next(o for o, v in enumerate(ev["not_stationary"]["direction"]["dc"]) if Q(v) != 0)
        for forge in (lambda n: n["direction"]["dc"].__setitem__(p, str(Q(n["direction"]["dc"][p]) + 1)),
                      lambda n: n["direction"]["dc"].__setitem__(p, str(-Q(n["direction"]["dc"][p]))),
                      lambda n: n["direction"]["dc"].__setitem__(p, str(2 * Q(n["direction"]["dc"][p]))),
                      lambda n: n.__setitem__("reason", "S1"),
                      lambda n: n["direction"].__setitem__("neuron", 0),
                      lambda n: n["direction"].pop("dc")):
            mut = copy.deepcopy(cert)
            forge(mut["evidence"]["not_stationary"])
            rejected(mut)
    if "not_stationary" in ev and ev["not_stationary"]["reason"] != "S0":
        mut = copy.deepcopy(cert)
        mut["evidence"]["not_stationary"]["direction"]["dc"] = ["1"] * net.k
        rejected(mut, "output bias")
    if "second_order" in ev:
        # a forged, changed or dropped dc: rejected, unless the forged ray is itself a valid second-order
        # descent ray (then its recorded numbers are all still right: checked by the oracle)
        dc = ev["second_order"].get("dc")
        forged = [lambda so: so.__setitem__("dc", ["1"] * net.k)]
        if dc is not None:
            forged = [lambda so: so["dc"].__setitem__(0, str(Q(so["dc"][0]) + 1))]
            if any(Q(v) for v in dc):
                forged.append(lambda so: so.pop("dc"))
        for forge in forged:
            mut = copy.deepcopy(cert)
            forge(mut["evidence"]["second_order"])
            if check_certificate(mut).ok:
                o_check_saddle(Net(net.X, net.Y, net.W, net.A, net.c, net.ap, net.am, net.loss), mut["evidence"])
    if cert["verdict"] in ("local_min", "saddle", "inconclusive"):
        # the same point with targets making e_bar != 0 (and the loss recorded right): (S0) rejects it
        mut = copy.deepcopy(cert)
        mut["problem"]["Y"][0][0] = str(Q(mut["problem"]["Y"][0][0]) + 1)
        Y = [[Q(v) for v in r] for r in mut["problem"]["Y"]]
        moved = Net(net.X, Y, net.W, net.A, net.c, net.ap, net.am, net.loss)
        mut["evidence"]["loss"]["value"] = str(moved.loss_hm() * moved.factor())
        rejected(refingerprint(mut), "(S0) fails")


@pytest.mark.parametrize("name", sorted(CE))
def test_mutations_of_the_counterexample_certificates_are_rejected(name):
    net, pb, pt, res = ce(name)
    cert = json.loads(json.dumps(res.certificate))
    _mutations_are_rejected(net, cert)
    # dropping c of these certificates is always rejected (they are about the joint problem)
    mut = copy.deepcopy(cert)
    del mut["point"]["c"]
    rejected(refingerprint(mut))
    # an S0 reason, or a dc, on a point without c
    _, _, _, plain = ce(name, c=None)
    mut = copy.deepcopy(plain.certificate)
    if name == "CE2":
        assert "second_order" in cert["evidence"]
        mut["verdict"] = "saddle"
        del mut["evidence"]["morse_bott"]
        mut["evidence"]["second_order"] = copy.deepcopy(cert["evidence"]["second_order"])
        rejected(mut, "output bias")
    else:
        mut["verdict"] = "not_stationary"
        mut["evidence"] = {k: v for k, v in mut["evidence"].items() if k in ("loss", "derivative_convention")}
        mut["evidence"]["not_stationary"] = copy.deepcopy(cert["evidence"]["not_stationary"])
        rejected(mut, "needs an output bias")


@settings(BASE, max_examples=40)
@given(biased())
def test_mutations_of_c_and_dc_are_rejected(case):
    net, _ = case
    pb, pt = net.pkg()
    cert = json.loads(json.dumps(certify(pb, pt).certificate))
    _mutations_are_rejected(net, cert)


def test_inconclusive_with_a_nonzero_residual_sum_is_rejected():
    # the vec_inconclusive case with c = 0: e_bar != 0 -> not_stationary; its bias-free inconclusive
    # certificate moved to the point with c is rejected by (S0)
    pb, pt = problem_point_from_dict(CASES["vec_inconclusive"][0])
    res = certify(pb, pt)
    assert res.verdict == "inconclusive"
    cert = copy.deepcopy(res.certificate)
    cert["point"]["c"] = ["0"] * pb.k
    assert any(ExactState(pb, Point(pt.W, pt.A, np.array([fmpq(0)] * pb.k, dtype=object))).mean_residual)
    rejected(refingerprint(cert), "(S0) fails")


# =============================================================================================
# (d) bias-free points: today's certificates, byte for byte
# =============================================================================================

# sha256 (first 16 hex digits) of json.dumps(certificate) of each tests/cases.py case and of the three
# counterexamples without c, as the code wrote them before the output bias existed
BEFORE = {"abs_min": "1cc5b5922961c661", "abs_not": "c776a9281cddbc5c", "dead_a0": "cda6ab02daa9f71f",
          "degenerate_min": "238b3895b0616a7f", "degenerate_not": "0c33a3c4cf786c2e",
          "global": "e9501262e13b310d", "gradient": "eb84eebb9717d368", "kink_min": "6f8f767e21439600",
          "kink_min_mse": "3dc275904991b9d1", "kink_not_stationary": "a32a11c308b61661",
          "leaky_min": "48a4163b6d6e8677", "leaky_not": "7761c88e3958aa71", "origin": "ba1b235a64375a67",
          "tiny_neg": "31c18457898095bd", "tiny_pos": "7738cb7b4999b610", "tiny_zero": "906e91dc87a53072",
          "vec_inconclusive": "c3604e44b27574b5", "vec_min": "6219b63c13218d53",
          "vec_saddle": "e75b6ab61ca5f006", "zero_a0": "8958ec39ac4cf09e",
          "CE1": "22fcc7d2acad270d", "CE2": "a7dad926dc824da3", "CE3": "5c693b855826ea05"}


def _digest(cert) -> str:
    return hashlib.sha256(json.dumps(cert).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_bias_free_certificates_are_byte_for_byte_as_before(name):
    if name in CE:
        cert = ce(name, c=None)[3].certificate
    else:
        cert = certify(*problem_point_from_dict(CASES[name][0])).certificate
    assert _digest(cert) == BEFORE[name]


def test_the_committed_showcase_certificate_is_reproduced():
    with open(os.path.join(ROOT, "examples", "showcase", "certificate.json")) as fh:
        committed = json.load(fh)
    pb, pt = problem_point_from_dict(committed)
    assert pt.c is None
    assert json.dumps(certify(pb, pt).certificate, sort_keys=True) == json.dumps(committed, sort_keys=True)


@settings(BASE, max_examples=40)
@given(S.instances(max_n=4, max_d=2, max_m=2))
def test_bias_free_points_built_every_way_give_one_certificate(inst):
    obj = inst.to_json()
    pb, pt = problem_point_from_dict(obj)
    pb2, pt2 = inst.problem_point()
    pt3 = Point(pt.W.copy(), pt.A.copy())
    pt4 = Point.make(obj["W"], obj["A"], pb, c=None)
    certs = [certify(pb, pt).certificate, certify(pb2, pt2).certificate, certify(pb, pt3).certificate,
             certify(pb, pt4).certificate, certify(pb, pt.copy()).certificate]
    text = json.dumps(certs[0])
    assert all(json.dumps(c) == text for c in certs)
    assert set(certs[0]["point"]) == {"W", "A"} and '"dc"' not in text and '"S0"' not in text
    blob = json.dumps({"problem": pb.to_json(), "point": {"W": obj["W"], "A": obj["A"]}}, sort_keys=True,
                      separators=(",", ":"))
    assert certs[0]["fingerprint"] == hashlib.sha256(blob.encode()).hexdigest()
    # the certificate read back as an input is the same bias-free point
    pb5, pt5 = problem_point_from_dict(certs[0])
    assert pt5.c is None and json.dumps(certify(pb5, pt5).certificate) == text


def test_c_zero_and_c_none_are_different_networks():
    # CE1 at c = 0 and without c: the same residuals, different verdicts and different fingerprints
    a, b = ce("CE1", c=None)[3], ce("CE1")[3]
    assert a.certificate["fingerprint"] != b.certificate["fingerprint"]
    assert (a.verdict, b.verdict) == ("local_min", "not_stationary")
    assert b.certificate["point"]["c"] == ["0"] and "c" not in a.certificate["point"]


# =============================================================================================
# (e) loaders
# =============================================================================================

def test_json_problem_files_and_certificates_carry_c(tmp_path):
    net = Net(*CE["CE2"], [Q(1, 3), Q(-1, 7)])
    obj = net.to_json()
    obj["c"] = ["1/3", -0.125]                          # a JSON number is read exactly as written
    f = tmp_path / "p.json"
    f.write_text(json.dumps(obj))
    pb, pt = load(str(f))
    assert pt.c.tolist() == [fmpq(1, 3), fmpq(-1, 8)]
    assert pt.to_json()["c"] == ["1/3", "-1/8"] and pt.copy().c.tolist() == pt.c.tolist()
    # written back and read again: the same point
    out = tmp_path / "q.json"
    write_point(str(out), pb, pt)
    assert load(str(out))[1].c.tolist() == pt.c.tolist()
    # a certificate is read as its exact problem and point, c included
    cert = certify(pb, pt).certificate
    assert problem_point_from_dict(cert)[1].c.tolist() == pt.c.tolist()
    # "c": null means no output bias; a wrong length is refused
    obj["c"] = None
    assert problem_point_from_dict(obj)[1].c is None
    obj["c"] = ["1", "2", "3"]
    with pytest.raises(Exception, match="output bias c has 3 entries but Y has 2"):
        problem_point_from_dict(obj)


def test_npz_point_and_trajectory_carry_c(tmp_path):
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    Y = np.array([[2.0, 1.0], [2.0, -1.0]])
    W = np.array([[1.0, 1.0]])
    A = np.array([[2.0, 0.0]])
    c = np.array([0.1, -0.5], dtype=np.float32)          # float32: its exact binary value
    np.savez(tmp_path / "p.npz", X=X, Y=Y, W=W, A=A, c=c)
    pb, pt = load_npz(str(tmp_path / "p.npz"))
    assert pt.c.tolist() == [fmpq(*np.float32(0.1).as_integer_ratio()), fmpq(-1, 2)]
    np.savez(tmp_path / "n.npz", X=X, Y=Y, W=W, A=A)
    assert load_npz(str(tmp_path / "n.npz"))[1].c is None
    T = 3
    np.savez(tmp_path / "t.npz", X=X, Y=Y, W=np.stack([W] * T), A=np.stack([A] * T),
             c=np.array([[0.0, 0.0], [0.5, 0.25], [1.0, 2.0]]))
    assert load_npz(str(tmp_path / "t.npz"), 1)[1].c.tolist() == [fmpq(1, 2), fmpq(1, 4)]
    assert load_npz(str(tmp_path / "t.npz"))[1].c.tolist() == [fmpq(1), fmpq(2)]
    np.savez(tmp_path / "bad.npz", X=X, Y=Y, W=np.stack([W] * T), A=np.stack([A] * T), c=np.zeros(2))
    with pytest.raises(Exception, match="output bias c must be 3 x 2"):
        load_npz(str(tmp_path / "bad.npz"))


def test_torch_sequential_with_biases_loads_c_exactly(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from relucert.cli import main
    from relucert.io import load_problem, load_torch_info, torch_weights
    from relucert.errors import InputError
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    ck = tmp_path / "ckpt.pt"
    torch.save(net.state_dict(), ck)
    X = [["0.5", "-1"], ["1", "0.25"], ["-0.75", "2"], ["0", "0"], ["2", "1"]]
    Y = [["1"], ["-0.5"], ["0.25"], ["2"], ["0"]]
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"activation": "relu", "loss": "mse", "X": X, "Y": Y}))
    pb, pt, info = load_torch_info(str(ck), str(data))
    cb = float(net[2].bias.detach().double()[0])
    assert info.output_bias == "2.bias" and info.hidden_bias == "0.bias" and pb.d == 3
    assert pt.c.tolist() == [fmpq(*cb.as_integer_ratio())]             # the float32 value, exactly
    assert info.c == (str(fmpq(*cb.as_integer_ratio())),)
    assert info.to_json()["output_bias"] == "2.bias" and info.to_json()["c"] == list(info.c)
    assert any("output bias 2.bias read exactly as the output bias c" in ln for ln in info.lines())
    # the exact network (folded hidden bias, c) computes what torch computes
    Xq = [[Q(v) for v in r] for r in X]
    with torch.no_grad():
        ref = net.double()(torch.tensor([[float(v) for v in r] for r in Xq], dtype=torch.float64)).numpy()
    F = ExactState(pb, pt).fw.F
    assert np.allclose(np.array([[float(v.p) / float(v.q) for v in r] for r in F.tolist()]), ref, rtol=1e-13,
                       atol=1e-13)
    res = certify(pb, pt)
    assert require_valid(res.certificate) == res.verdict and res.certificate["point"]["c"] == list(info.c)
    # the command line, exactly as given: the certificate is about the point with c
    cf = tmp_path / "cert.json"
    code = main(["certify", "--torch", str(ck), "--data", str(data), "--json", "--exact-only",
                 "--certificate", str(cf)])
    out, err = capsys.readouterr()
    assert code == 0, err
    rep = json.loads(out)
    assert rep["torch_mapping"]["output_bias"] == "2.bias" and rep["given"]["output_bias"] == list(info.c)
    assert json.loads(cf.read_text())["point"]["c"] == list(info.c)
    # a reader that does not carry c (screen's) still refuses it, never dropping it
    with pytest.raises(InputError, match=r"output bias '2.bias'.*never dropped"):
        torch_weights(str(ck), load_problem(str(data)))


# =============================================================================================
# (f) the pipeline: never a verdict about a point without c
# =============================================================================================

def test_certify_checkpoint_with_c_exact_only():
    import relucert
    for name in sorted(CE):
        _, pb, pt, res = ce(name)
        rep = relucert.certify_checkpoint(pb, pt, refine_mode="never")
        assert rep.verdict == res.verdict and rep.certificate["point"]["c"] == rep.given.certificate["point"]["c"]
        assert check_certificate(rep.certificate).ok


def test_certify_checkpoint_with_c_never_refines_c_away():
    # refinement carries c (issue 14): the given point's certificate keeps its c, a refined point has
    # one too (refinement never drops it), and every certificate is accepted by the checker
    import relucert
    for name in sorted(CE):
        _, pb, pt, res = ce(name)
        for mode in ("auto", "always"):
            rep = relucert.certify_checkpoint(pb, pt, refine_mode=mode)
            assert rep.given.verdict == res.verdict, (name, mode, rep.given.verdict)
            assert rep.given.certificate["point"]["c"] == res.certificate["point"]["c"]
            if mode == "auto":              # CE2 is decided as given, CE1 and CE3 are far from stationary
                assert rep.refined is None and rep.verdict == res.verdict, (name, rep.verdict)
            else:
                assert rep.refined is not None and "c" in rep.refined["point"], name
            for _, cert in rep.certificates():
                assert "c" in cert["point"]
                assert check_certificate(cert).ok


def test_converge_and_other_commands_never_drop_c(tmp_path):
    import json as _json
    import subprocess
    import sys
    import relucert
    _, pb, pt, res = ce(sorted(CE)[0])
    rep = relucert.certify_checkpoint(pb, pt, converge="lbfgs")
    # CE1 with c free is not stationary; the dynamics (with c among the parameters) lead to a fit:
    # f = 0 * relu(w x) + c with c -> 1 reaches loss 0 (up to float rounding, then refined exactly)
    assert res.verdict == "not_stationary" and rep.converged is not None
    assert rep.converged.point.c is not None and rep.converged.end_loss < 1e-20
    assert rep.verdict == "global_min"
    for _, cert in rep.certificates():
        assert "c" in cert["point"] and check_certificate(cert).ok
    f = tmp_path / "withc.json"
    f.write_text(_json.dumps(dict(pb.to_json(), **pt.to_json())))
    assert "c" in _json.loads(f.read_text())
    for cmd in (["symmetry", "--json"], ["derive"], ["embed", "--add-neuron", "zero", "--json"]):
        r = subprocess.run([sys.executable, "-m", "relucert.cli", cmd[0], str(f)] + cmd[1:],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (cmd, r.stderr)
        if cmd[0] == "symmetry":
            assert _json.loads(r.stdout)["output_bias"]["c"] == res.certificate["point"]["c"]
        elif cmd[0] == "derive":
            assert "dL/dc (at the point) = -1/2" in r.stdout
        else:
            assert _json.loads(r.stdout)["point"]["c"] == res.certificate["point"]["c"]
    import numpy as np
    traj = tmp_path / "t.npz"
    np.savez(traj, W=np.zeros((2, 1, 1)), A=np.ones((2, 1, 1)), X=np.ones((2, 1)), Y=np.ones((2, 1)),
             c=np.zeros((2, 1)))
    r = subprocess.run([sys.executable, "-m", "relucert.cli", "screen", str(traj), "--json", "--no-certify"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and _json.loads(r.stdout)["final"]["grad_c"] == 1.0   # e = (-1, -1): |e_bar| = 1
