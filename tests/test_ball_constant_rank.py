"""Constant-rank local_min ball certificates (docs/theory.md §10.8).

Lemma R bounds the rank of the derivative of the outputs on the data, at every point of a fixed
activation pattern, by a count over a partition of the neurons.  The property tests here cross-check
it by brute force: this file's own Fraction formula for the outputs' derivative (no relucert code),
its exact rank at random points -- including degenerate ones (repeated neurons, parallel output
weights, dependent pre-activations) -- never exceeds the bound, the checker's ``rank_bound`` equals
this file's count, and on every random instance some partition's bound is attained at a random point
(the one with every neuron in its own block or the sign-vector groups; the lemma is not vacuous).

The campaign cases (tests/data/ball_constant_rank_*.json: vector-output minima whose flat directions no
named symmetry accounts for) are certified, and an mpmath oracle reading only the certificate's JSON
confirms what the certificate claims: Newton on the slice converges inside the box to a point whose
gradient vanishes in all of (W, A); the full Hessian there is positive semi-definite with exactly
N_full - N zero eigenvalues (the fibre's dimension, as the constant rank says); random perturbations
of all parameters do not lower the loss.  Forged certificates are rejected.
"""
import copy
import itertools
import json
import re
import random as _random
from fractions import Fraction as Q
from pathlib import Path

import mpmath as mp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relucert.check import check_certificate
from relucert.check.kernel import _Ball, _Instance
from strategies import rank as oracle_rank           # the tests' own Fraction elimination

DATA = Path(__file__).resolve().parent / "data"


# ---------------------------------------------------------------------------------------------
# brute-force oracle: the outputs' derivative on a fixed pattern (independent of relucert)
# ---------------------------------------------------------------------------------------------

def _dot(u, v):
    return sum((a * b for a, b in zip(u, v)), Q(0))


def _slopes(X, W, ap, am):
    """s[i][j]: the slope of neuron j at data point i for the pattern of W (0 on a kink)."""
    return [[(ap if _dot(w, x) > 0 else am) if _dot(w, x) != 0 else Q(0) for w in W] for x in X]


def _output_derivative(X, S, W, A):
    """Rows: outputs f_ic = sum_j A_jc S_ij (w_j . x_i), flattened (i, c); columns: every w_jq, then every
    A_jc, neuron by neuron -- with the slopes S held fixed (the polynomial of the pattern piece)."""
    n, d, m, k = len(X), len(X[0]), len(W), len(A[0])
    cols = []
    for j in range(m):
        for q in range(d):
            cols.append([A[j][c] * S[i][j] * X[i][q] for i in range(n) for c in range(k)])
        h = [S[i][j] * _dot(W[j], X[i]) for i in range(n)]
        for c in range(k):
            cols.append([h[i] if cc == c else Q(0) for i in range(n) for cc in range(k)])
    return [list(r) for r in zip(*cols)]            # (n k) x (m (d + k))


def _bound(X, S, blocks, k):
    """Lemma R's count: sum_b k alpha + beta (gamma - alpha), gamma = rank of the blocks' pattern columns."""
    n, d = len(X), len(X[0])
    tot = 0
    for b in blocks:
        rows = [[S[i][j] * X[i][q] for j in b for q in range(d)] for i in range(n)]
        gam = oracle_rank(rows, len(rows[0]))
        al, be = min(len(b), gam), min(len(b), k)
        tot += k * al + be * (gam - al)
    return tot


def _partitions(items):
    """Every partition of items into blocks, by restricted growth strings (label of item q at most one
    more than the largest label before it)."""
    items = list(items)
    def grow(labels):
        if len(labels) == len(items):
            blocks = [[] for _ in range(max(labels) + 1 if labels else 0)]
            for it, lab in zip(items, labels):
                blocks[lab].append(it)
            yield blocks
            return
        for lab in range((max(labels) + 2) if labels else 1):
            yield from grow(labels + [lab])
    yield from grow([])


small = st.integers(-3, 3).map(Q)


@st.composite
def pattern_instances(draw):
    """Data, an activation, a pattern (from random input weights, kink-free) and a point to evaluate the
    derivative at -- sometimes degenerate: a repeated neuron, parallel output weights, or weights that
    make the pre-activations of two neurons proportional."""
    n = draw(st.integers(2, 6))
    d = draw(st.integers(1, 3))
    m = draw(st.integers(1, 4))
    k = draw(st.integers(1, 3))
    ap, am = draw(st.sampled_from([(Q(1), Q(0)), (Q(1), Q(1, 10)), (Q(1), Q(-1)), (Q(2), Q(1, 2))]))
    X = [[draw(small) for _ in range(d)] for _ in range(n)]
    W0 = []
    for _ in range(m):
        w = [draw(small) + Q(1, 7) for _ in range(d)]      # + 1/7: no pre-activation of integer data is 0
        W0.append(w)
    S = _slopes(X, W0, ap, am)
    # the evaluation point: any (W, A), the pattern's polynomial does not care about signs
    W = [[draw(small) for _ in range(d)] for _ in range(m)]
    A = [[draw(small) for _ in range(k)] for _ in range(m)]
    kind = draw(st.sampled_from(["generic", "repeat", "parallel", "zero"]))
    if kind == "repeat" and m >= 2:
        W[1], A[1] = list(W[0]), [2 * v for v in A[0]]
    elif kind == "parallel" and m >= 2:
        A[1] = [3 * v for v in A[0]]
    elif kind == "zero":
        W[0] = [Q(0)] * d
    return X, S, W, A, k


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern_instances(), st.randoms(use_true_random=False))
def test_lemma_R_bounds_the_rank_everywhere(inst, rnd):
    X, S, W, A, k = inst
    m = len(W)
    r = oracle_rank(_output_derivative(X, S, W, A), m * (len(X[0]) + k))
    parts = list(_partitions(list(range(m))))
    for blocks in (parts if len(parts) <= 60 else rnd.sample(parts, 60)):
        assert r <= _bound(X, S, blocks, k), (blocks, r)


def test_lemma_R_is_attained_on_random_instances():
    """The bound is not vacuous: at random points the best partition's bound equals the rank in most
    draws (it is an upper bound by the lemma; where it is not attained the point's flat directions are
    not of the lemma's kind and the proposer offers no certificate)."""
    rng = _random.Random(8)
    hit = total = 0
    for _ in range(60):
        n, d, m, k = rng.randint(3, 7), rng.randint(1, 3), rng.randint(2, 4), rng.randint(2, 3)
        X = [[Q(rng.randint(-3, 3)) for _ in range(d)] for _ in range(n)]
        W = [[Q(rng.randint(-3, 3)) + Q(1, 7) for _ in range(d)] for _ in range(m)]
        A = [[Q(rng.randint(-3, 3)) for _ in range(k)] for _ in range(m)]
        S = _slopes(X, W, Q(1), Q(0))
        r = oracle_rank(_output_derivative(X, S, W, A), m * (d + k))
        best = min(_bound(X, S, b, k) for b in _partitions(list(range(m))))
        assert r <= best
        total += 1
        hit += r == best
    assert hit >= total * 3 // 4, (hit, total)


def _skeleton(X, W, A, ap, am, blocks):
    """A minimal ball certificate skeleton (identity bases, gauge 0 where w_j0 != 0) for the checker's
    _Ball, with constant_rank blocks and no coordinate fixed besides the gauges."""
    n, d, m, k = len(X), len(X[0]), len(W), len(A[0])
    s = lambda v: str(Q(v))
    cl = []
    for j in range(m):
        t0 = max(range(d), key=lambda t: abs(W[j][t]))
        cl.append({"neurons": [j], "gamma": ["1"], "beta": ["1"], "basis": [[s(int(a == b)) for b in range(d)]
                                                                           for a in range(d)],
                   "gauge": t0, "gauge_value": s(W[j][t0])})
    center = []
    for j in range(m):
        t0 = cl[j]["gauge"]
        center += [s(W[j][t]) for t in range(d) if t != t0] + [s(v) for v in A[j]]
    cert = {"problem": {"X": [[s(v) for v in x] for x in X], "Y": [["0"] * k for _ in range(n)],
                        "activation": {"alpha_plus": s(ap), "alpha_minus": s(am)}, "loss": "half_mean"},
            "point": {"W": [[s(v) for v in w] for w in W], "A": [[s(v) for v in a] for a in A]}}
    ev = {"clusters": cl, "zero": [], "dead": [], "center": center,
          "constant_rank": {"blocks": blocks, "fixed_inputs": [], "fixed_outputs": [], "gram": "1"}}
    return cert, ev


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10 ** 6))
def test_checker_rank_bound_is_the_oracle_count(seed):
    """The checker's exact count (relucert/check/kernel.py::_Ball.rank_bound) equals this file's, and it
    rejects a slice whose number of unknowns differs from the bound."""
    rng = _random.Random(seed)
    n, d, m, k = rng.randint(3, 6), rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 3)
    ap, am = Q(1), rng.choice([Q(0), Q(1, 10), Q(-1)])
    X = [[Q(rng.randint(-3, 3)) for _ in range(d)] for _ in range(n)]
    X = [x if any(x) else [Q(1)] * d for x in X]          # no zero row (it is on every neuron's kink)
    W = [[Q(rng.randint(-3, 3)) + Q(1, 7) for _ in range(d)] for _ in range(m)]
    while any(_dot(w, x) == 0 for w in W for x in X):      # kink-free
        W = [[Q(rng.randint(-3, 3)) + Q(rng.randint(1, 9), 11) for _ in range(d)] for _ in range(m)]
    if am == 0:
        W = [w if any(_dot(w, x) > 0 for x in X) else [-v for v in w] for w in W]   # alive
    A = [[Q(rng.randint(1, 3)) for _ in range(k)] for _ in range(m)]
    blocks = rng.choice(list(_partitions(list(range(m)))))
    cert, ev = _skeleton(X, W, A, ap, am, blocks)
    expect = _bound(X, _slopes(X, W, ap, am), blocks, k)
    inst = _Instance(cert)
    N = m * (d - 1 + k)
    if expect == N:
        ball = _Ball(inst, ev)
        assert ball.rank_bound(blocks) == expect
    else:
        with pytest.raises(Exception, match="constant_rank"):
            _Ball(inst, ev)


# ---------------------------------------------------------------------------------------------
# campaign cases: certify, then an mpmath oracle reads the certificate's JSON and confirms it
# ---------------------------------------------------------------------------------------------

CASES = ["ball_constant_rank_run47.json", "ball_constant_rank_run46.json"]


@pytest.fixture(scope="module", params=CASES)
def case(request):
    from relucert.decide.ball import ball_certificate
    from relucert.io import load_json
    pb, pt = load_json(str(DATA / request.param))
    cert, note = ball_certificate(pb, pt)
    return request.param, cert, note


def test_campaign_cases_certify_as_constant_rank_minima(case):
    name, cert, note = case
    assert cert is not None, note
    assert cert["verdict"] == "local_min" and "constant_rank" in cert["evidence"], note
    assert "gl_groups" not in cert["evidence"] and "trades" not in cert["evidence"]
    res = check_certificate(cert)
    assert res.ok and res.verdict == "local_min", res.reasons


def _mq(v) -> mp.mpf:
    q = Q(v)
    return mp.mpf(q.numerator) / q.denominator


class _Slice:
    """The certificate's slice, read from its JSON as relucert/check/schema/README.md describes it (no
    relucert code): cluster g is one neuron j with w_j = sum_t theta_t B_t and a_j = c_g; theta is held at
    the gauge and at ``fixed_inputs``, c at ``fixed_outputs``; the unknowns xi are, cluster by cluster,
    the free basis coordinates in increasing order, then the free output coordinates."""

    def __init__(self, cert):
        ev, pj = cert["evidence"], cert["problem"]
        assert pj["loss"] == "half_mean"
        self.X = [[_mq(v) for v in x] for x in pj["X"]]
        self.Y = [[_mq(v) for v in y] for y in pj["Y"]]
        self.ap, self.am = _mq(pj["activation"]["alpha_plus"]), _mq(pj["activation"]["alpha_minus"])
        self.n, self.d, self.k = len(self.X), len(self.X[0]), len(self.Y[0])
        self.W0 = [[_mq(v) for v in w] for w in cert["point"]["W"]]
        self.A0 = [[_mq(v) for v in a] for a in cert["point"]["A"]]
        self.m = len(self.W0)
        cr = ev["constant_rank"]
        fin = {(g, t): v for g, t, v in cr["fixed_inputs"]}
        fout = {(g, c): v for g, c, v in cr["fixed_outputs"]}
        self.cl = []                      # (neuron, basis, theta template, output template): None = unknown
        for g, c in enumerate(ev["clusters"]):
            assert len(c["neurons"]) == 1 and c["gamma"] == ["1"] and c["beta"] == ["1"]
            B = [[_mq(v) for v in b] for b in c["basis"]]
            th = [fin.get((g, t)) for t in range(len(B))]
            th[c["gauge"]] = c["gauge_value"]
            out = [fout.get((g, cc)) for cc in range(self.k)]
            self.cl.append((c["neurons"][0], B, [None if v is None else _mq(v) for v in th],
                            [None if v is None else _mq(v) for v in out]))
        self.center = [_mq(v) for v in ev["center"]]
        self.radius = _mq(ev["radius"])
        self.N = len(self.center)
        assert self.N == sum(th.count(None) + out.count(None) for _, _, th, out in self.cl)

    def wide(self, xi):
        W = [list(w) for w in self.W0]
        A = [list(a) for a in self.A0]
        it = iter(xi)
        for j, B, th, out in self.cl:
            t = [next(it) if v is None else v for v in th]
            W[j] = [mp.fsum(t[s] * B[s][q] for s in range(len(B))) for q in range(self.d)]
            A[j] = [next(it) if v is None else v for v in out]
        return W, A

    def tangent(self):
        """d(W, A)/d xi, rows in the order W_j (d entries) then A_j (k entries), neuron by neuron."""
        P = self.m * (self.d + self.k)
        T = mp.zeros(P, self.N)
        col = 0
        for j, B, th, out in self.cl:
            base = j * (self.d + self.k)
            for s, v in enumerate(th):
                if v is None:
                    for q in range(self.d):
                        T[base + q, col] = B[s][q]
                    col += 1
            for cc, v in enumerate(out):
                if v is None:
                    T[base + self.d + cc, col] = 1
                    col += 1
        return T

    def loss(self, W, A):
        tot = mp.mpf(0)
        for x, y in zip(self.X, self.Y):
            h = []
            for w in W:
                z = mp.fdot(w, x)
                h.append(self.ap * z if z > 0 else self.am * z)
            tot += mp.fsum((mp.fsum(h[j] * A[j][c] for j in range(self.m)) - y[c]) ** 2 for c in range(self.k))
        return tot / (2 * self.n)

    def grad(self, W, A):
        """The gradient of the true loss in all of (W, A), in ``tangent``'s row order (off the kinks)."""
        n, d, k, m = self.n, self.d, self.k, self.m
        g = [mp.mpf(0)] * (m * (d + k))
        for x, y in zip(self.X, self.Y):
            z = [mp.fdot(w, x) for w in W]
            assert all(abs(v) > mp.mpf(10) ** -20 for v in z)          # the campaign cases have no kinks
            h = [self.ap * v if v > 0 else self.am * v for v in z]
            e = [mp.fsum(h[j] * A[j][c] for j in range(m)) - y[c] for c in range(k)]
            for j in range(m):
                base = j * (d + k)
                back = mp.fsum(e[c] * A[j][c] for c in range(k)) * (self.ap if z[j] > 0 else self.am)
                for q in range(d):
                    g[base + q] += back * x[q]
                for c in range(k):
                    g[base + d + c] += e[c] * h[j]
        return [v / n for v in g]

    def flat(self, W, A):
        return [v for j in range(self.m) for v in list(W[j]) + list(A[j])]

    def unflat(self, v):
        d, k = self.d, self.k
        W = [list(v[j * (d + k):j * (d + k) + d]) for j in range(self.m)]
        A = [list(v[j * (d + k) + d:(j + 1) * (d + k)]) for j in range(self.m)]
        return W, A

    def hessian(self, W, A, h):
        """Central differences of ``grad`` in all of (W, A) (error O(h^2))."""
        v0 = self.flat(W, A)
        P = len(v0)
        H = mp.zeros(P, P)
        for a in range(P):
            vp, vm = list(v0), list(v0)
            vp[a] += h
            vm[a] -= h
            gp, gm = self.grad(*self.unflat(vp)), self.grad(*self.unflat(vm))
            for b in range(P):
                H[b, a] = (gp[b] - gm[b]) / (2 * h)
        return (H + H.T) / 2


def test_the_oracle_confirms_the_certificate(case):
    """Newton on the certificate's slice (this file's gradient, chained through the slice's tangent)
    converges inside the box; there the gradient vanishes in ALL of (W, A) -- the fibre directions the
    slice leaves out are flat, which is what the constant rank buys; the full Hessian is positive
    semi-definite with exactly P - N zero eigenvalues (a fibre of dimension P - N, the rest strictly
    curved); random perturbations of every parameter never lower the loss."""
    name, cert, _ = case
    with mp.workdps(100):
        S = _Slice(cert)
        T = S.tangent()
        P = T.rows
        hstep = mp.mpf(10) ** -40
        xi = list(S.center)
        for _ in range(8):
            W, A = S.wide(xi)
            G = T.T * mp.matrix(S.grad(W, A))
            if mp.norm(G, mp.inf) < mp.mpf(10) ** -85:
                break
            JG = T.T * S.hessian(W, A, hstep) * T
            step = mp.lu_solve(JG, G)
            xi = [a - b for a, b in zip(xi, step)]
        W, A = S.wide(xi)
        assert max(abs(a - b) for a, b in zip(xi, S.center)) < S.radius, name
        full = S.grad(W, A)
        assert max(abs(v) for v in full) < mp.mpf(10) ** -70, name        # stationary in all of (W, A)
        H = S.hessian(W, A, hstep)
        ev = sorted(mp.eigsy(H, eigvals_only=True))
        zeros = [v for v in ev if abs(v) < mp.mpf(10) ** -40]
        assert len(zeros) == P - S.N, (name, len(zeros), P, S.N)
        assert all(v > mp.mpf(10) ** -12 for v in ev[len(zeros):]), (name, ev[len(zeros)])
        assert all(v > -mp.mpf(10) ** -40 for v in ev)
        L0 = S.loss(W, A)
        rng = _random.Random(12)
        v0 = S.flat(W, A)
        top = max(abs(v) for v in v0)
        for trial in range(300):
            scale = top * mp.mpf(10) ** -rng.uniform(6, 10)
            v = [a + scale * rng.gauss(0, 1) for a in v0]
            assert S.loss(*S.unflat(v)) >= L0, (name, trial)
        # along a fibre direction the loss is flat to second order: an eigenvector of a zero eigenvalue
        # (a direction the slice does not see) moves the loss by O(t^3) at most
        E, V = mp.eigsy(H)
        r0 = min(range(P), key=lambda r: abs(E[r]))
        vz = [V[r, r0] for r in range(P)]
        t = mp.mpf(10) ** -8
        assert abs(S.loss(*S.unflat([a + t * b for a, b in zip(v0, vz)])) - L0) < t ** 2 * mp.mpf(10) ** -10


def _rejected(cert, pattern):
    res = check_certificate(cert)
    assert not res.ok, pattern
    assert len(res.reasons) == 1 and "\n" not in res.reasons[0]
    assert re.search(pattern, res.reasons[0]), res.reasons
    return res.reasons[0]


def _position(cert, g, kind, index):
    """Where coordinate (cluster g, 'w' basis index or 'a' output index) sits in the unknowns xi when it
    is made free (the schema's order: cluster by cluster, basis coordinates then outputs, ascending)."""
    ev = cert["evidence"]
    cr = ev["constant_rank"]
    k = len(cert["problem"]["Y"][0])
    fin = {(h, t) for h, t, _ in cr["fixed_inputs"]}
    fout = {(h, c) for h, c, _ in cr["fixed_outputs"]}
    pos = 0
    for h, c in enumerate(ev["clusters"]):
        for t in range(len(c["basis"])):
            if h == g and kind == "w" and t == index:
                return pos
            pos += t != c["gauge"] and (h, t) not in fin
        for cc in range(k):
            if h == g and kind == "a" and cc == index:
                return pos
            pos += (h, cc) not in fout
    raise IndexError((g, kind, index))


def test_forged_constant_rank_certificates_are_rejected(case):
    name, cert, _ = case
    ev = cert["evidence"]
    cr = ev["constant_rank"]

    def mutate(f):
        c = copy.deepcopy(cert)
        f(c["evidence"])
        return c

    # one coordinate more: free a fixed output (its value goes into the centre at its place)
    if cr["fixed_outputs"]:
        g, cc, v = cr["fixed_outputs"][0]

        def free_one(e):
            e["constant_rank"]["fixed_outputs"].pop(0)
            pos = _position({**cert, "evidence": e}, g, "a", cc)
            e["center"].insert(pos, v)
            e["preconditioner"] = [r[:pos] + ["0"] + r[pos:] for r in e["preconditioner"]]
            e["preconditioner"].insert(pos, ["1" if q == pos else "0" for q in range(len(e["center"]))])
        _rejected(mutate(free_one), r"constant_rank: the slice has \d+ unknowns but the blocks bound")
    # one coordinate less: fix the first free output at its centre value
    k = len(cert["problem"]["Y"][0])
    fouts = {(h, c) for h, c, _ in cr["fixed_outputs"]}
    g0, cc0 = next((g, cc) for g in range(len(ev["clusters"])) for cc in range(k) if (g, cc) not in fouts)
    pos0 = _position(cert, g0, "a", cc0)

    def fix_one(e):
        v = e["center"].pop(pos0)
        e["constant_rank"]["fixed_outputs"].append([g0, cc0, v])
        e["preconditioner"] = [r[:pos0] + r[pos0 + 1:] for q, r in enumerate(e["preconditioner"]) if q != pos0]
    _rejected(mutate(fix_one), r"constant_rank: the slice has \d+ unknowns but the blocks bound")
    # a wrong value for a fixed coordinate: the centre is no longer the certificate's point
    if cr["fixed_outputs"]:
        _rejected(mutate(lambda e: e["constant_rank"]["fixed_outputs"][0].__setitem__(
            2, str(Q(e["constant_rank"]["fixed_outputs"][0][2]) + Q(1, 10 ** 40)))), r"is not copy")
        _rejected(mutate(lambda e: e["constant_rank"]["fixed_outputs"].append(
            list(e["constant_rank"]["fixed_outputs"][0]))), r"fixed_outputs\[\d+\] must be .*once")
    if cr["fixed_inputs"]:
        _rejected(mutate(lambda e: e["constant_rank"]["fixed_inputs"][0].__setitem__(
            2, str(Q(e["constant_rank"]["fixed_inputs"][0][2]) * Q(11, 10)))), r"is not copy")
    g = 0
    _rejected(mutate(lambda e: e["constant_rank"]["fixed_inputs"].append(
        [g, e["clusters"][g]["gauge"], e["clusters"][g]["gauge_value"]])), r"fixed_inputs\[\d+\] must be")
    # the Gram bound claimed too large
    _rejected(mutate(lambda e: e["constant_rank"].__setitem__("gram", str(Q(e["constant_rank"]["gram"]) * 10 ** 6))),
              r"Gram matrix on the slice is not proven to exceed")
    _rejected(mutate(lambda e: e["constant_rank"].__setitem__("gram", "0")), r"gram must be > 0")
    # blocks that are not a partition
    _rejected(mutate(lambda e: e["constant_rank"]["blocks"].pop()), r"blocks must partition")
    _rejected(mutate(lambda e: e["constant_rank"]["blocks"].append([0])), r"blocks must partition")
    # other evidence cannot be mixed in, and a saddle is not what constant rank proves
    _rejected(mutate(lambda e: e.__setitem__("gl_groups", [{"clusters": [0, 1], "columns": [0, 1]}])),
              r"gl_groups")
    c = copy.deepcopy(cert)
    c["verdict"] = "saddle"
    del c["evidence"]["curvature"]
    _rejected(c, r"constant_rank proves local minima only")


def test_other_partitions_are_accepted_exactly_when_their_bound_is_N(case):
    """Lemma R holds for every partition, so the checker must accept any partition whose exact bound is the
    slice's N and reject the others: merge two blocks, split a block, move a cluster -- the verdict is
    decided by this file's own count."""
    name, cert, _ = case
    ev = cert["evidence"]
    blocks = ev["constant_rank"]["blocks"]
    X = [[Q(v) for v in x] for x in cert["problem"]["X"]]
    W = [[Q(v) for v in w] for w in cert["point"]["W"]]
    act = cert["problem"]["activation"]
    S = _slopes(X, W, Q(act["alpha_plus"]), Q(act["alpha_minus"]))
    k = len(cert["problem"]["Y"][0])
    nb = lambda bl: [[ev["clusters"][g]["neurons"][0] for g in b] for b in bl]
    N = len(ev["center"])
    assert _bound(X, S, nb(blocks), k) == N
    rng = _random.Random(5)
    tries = []
    big = max(range(len(blocks)), key=lambda i: len(blocks[i]))
    b = blocks[big]
    tries.append(blocks[:big] + [b[:1], b[1:]] + blocks[big + 1:])                 # split off one cluster
    if len(blocks) >= 2:
        i, j = rng.sample(range(len(blocks)), 2)
        tries.append([blocks[i] + blocks[j]] + [x for q, x in enumerate(blocks) if q not in (i, j)])  # merge
    tries.append([[g] for g in range(len(ev["clusters"]))])                        # all single
    seen = {0: 0, 1: 0}
    for bl in tries:
        expect = _bound(X, S, nb(bl), k) == N
        c = copy.deepcopy(cert)
        c["evidence"]["constant_rank"]["blocks"] = bl
        res = check_certificate(c)
        assert res.ok == expect, (bl, res.reasons)
        if not expect:
            assert "blocks bound the rank" in res.reasons[0]
        seen[int(expect)] += 1
    assert seen[0] >= 1                     # at least one of the tries is a wrong partition


def test_the_refinement_reports_the_strongest_verdict():
    """Through the refinement pipeline: run 47's rounding ends at the constant-rank ball local_min (the
    reported point is the box centre); run 46's zero has loss 0 (the ball proves only local_min there), and
    the pipeline reports the stronger global_min of the exact zero-loss route."""
    from relucert.io import load_json
    from relucert.refine import Tolerances, refine
    from relucert.refine.driver import choose
    pb, pt = load_json(str(DATA / "ball_constant_rank_run47.json"))
    ref = choose(refine(pb, pt, Tolerances())["refinements"])
    assert ref.verdict == "local_min" and ref.ball is not None and "constant_rank" in ref.ball["evidence"]
    assert ref.point.to_json() == ref.ball["point"] and check_certificate(ref.ball).ok
    pb, pt = load_json(str(DATA / "ball_constant_rank_run46.json"))
    ref = choose(refine(pb, pt, Tolerances())["refinements"])
    assert ref.verdict == "global_min", ref.to_json()["reason"]
    assert ref.result is not None and check_certificate(ref.result.certificate).ok
