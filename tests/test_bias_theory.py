"""Brute-force cross-checks of docs/biases.md (hidden biases b_j, output bias c).

f(x) = sum_j a_j sigma(w_j . x + b_j) + c, e_i = f(x_i) - y_i, L = (1/2n) sum_i |e_i|^2.

(i)   Folding the hidden bias into a constant-1 column (x' = (x, 1), w' = (w, b)) gives the same
      outputs, loss, kink sets, ray polynomials and directional derivatives: the oracle on the
      biased network against the oracle on the folded one and against relucert on the folded problem.
(ii)  relucert's certifier on folded problems agrees with the oracle's own reasoning on cases the
      oracle can decide by itself (exact fit; every ReLU neuron strictly dead; dead neurons plus a
      zero neuron; a coordinate direction with negative one-sided derivative), and its descent and
      escape certificates, unfolded, lower the oracle's loss of the *biased* network.
(iii) With an output bias, the derived formula
          L'(theta; Delta) = sum_j [dA_j . G_j + a_j . D_j(dW_j, db_j)] + e_bar . dc
      equals the oracle's exact one-sided derivative, both from the definitions (here, in
      Fractions) and from relucert's bias-free formula on the folded problem with targets Y - c; the
      profile identity L = l + |c - c*|^2 / 2 and the (S0) descent polynomial hold exactly.
(iv)  The counterexamples of docs/biases.md §7.

The oracle (section below) is this file's own: Fractions only, no relucert code.  Everything is
deterministic (derandomized hypothesis, no example database).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as Q

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relucert.check import require_valid
from relucert.core.formulas import ExactState, ray_coefficients
from relucert.core.problem import Point, Problem
from relucert.decide.certify import certify

BASE = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])

RELU = (Q(1), Q(0))
ACTS = [RELU, (Q(1), Q(1, 10)), (Q(1), Q(-1)), (Q(1, 2), Q(2)), (Q(0), Q(1))]
VALS = [Q(v) for v in (-2, -1, 0, 1, 2)] + [Q(-3, 2), Q(-1, 2), Q(1, 3), Q(1, 2), Q(3, 2)]


# =============================================================================================
# the tests' brute-force oracle (Fractions only, independent of relucert's formulas)
# =============================================================================================

@dataclass
class Net:
    """Parameters of f(x) = sum_j a_j sigma(w_j . x + b_j) + c."""
    W: list      # m x d
    b: list      # m
    A: list      # m x k
    c: list      # k


def o_dot(u, v):
    return sum((p * q for p, q in zip(u, v)), Q(0))


def o_sigma(z, act):
    ap, am = act
    return ap * z if z > 0 else am * z


def o_pre(X, net):
    return [[o_dot(net.W[j], x) + net.b[j] for j in range(len(net.W))] for x in X]


def o_outputs(X, net, act):
    Z = o_pre(X, net)
    k = len(net.c)
    return [[sum((net.A[j][c] * o_sigma(Z[i][j], act) for j in range(len(net.W))), Q(0)) + net.c[c]
             for c in range(k)] for i in range(len(X))]


def o_residuals(X, Y, net, act):
    F = o_outputs(X, net, act)
    return [[F[i][c] - Y[i][c] for c in range(len(net.c))] for i in range(len(X))]


def o_loss(X, Y, net, act):
    E = o_residuals(X, Y, net, act)
    return sum((v * v for row in E for v in row), Q(0)) / (2 * len(X))


def o_ebar(X, Y, net, act):
    E = o_residuals(X, Y, net, act)
    return [sum((row[c] for row in E), Q(0)) / len(X) for c in range(len(net.c))]


def o_move(net, delta, t):
    return Net([[w + t * dw for w, dw in zip(rw, rd)] for rw, rd in zip(net.W, delta.W)],
               [v + t * dv for v, dv in zip(net.b, delta.b)],
               [[a + t * da for a, da in zip(ra, rd)] for ra, rd in zip(net.A, delta.A)],
               [v + t * dv for v, dv in zip(net.c, delta.c)])


def o_first_piece_end(X, net, delta):
    """End t1 of the first piece of t -> L(theta + t Delta): every pre-activation z + t*dz is affine
    in t and changes sign only at its root t = -z/dz, so on (0, t1), t1 the smallest positive root
    (None: no positive root), no pre-activation changes sign (a kink, z = 0, has its root at t = 0
    and keeps the sign of dz for all t > 0) and each output is a polynomial of degree <= 2 in t."""
    Z, dZ = o_pre(X, net), o_pre(X, delta)
    roots = [-z / dz for rz, rd in zip(Z, dZ) for z, dz in zip(rz, rd) if dz != 0 and -z / dz > 0]
    return min(roots) if roots else None


def o_solve(M, v):
    """Exact Gaussian elimination (M square, non-singular)."""
    n = len(M)
    aug = [list(r) + [x] for r, x in zip(M, v)]
    for col in range(n):
        p = next(r for r in range(col, n) if aug[r][col] != 0)
        aug[col], aug[p] = aug[p], aug[col]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                f = aug[r][col] / aug[col][col]
                aug[r] = [a - f * b for a, b in zip(aug[r], aug[col])]
    return [aug[r][n] / aug[r][r] for r in range(n)]


def o_ray_polynomial(X, Y, net, delta, act):
    """Exact [p0, p1, p2, p3, p4] with L(theta + t Delta) = sum p_a t^a on the first piece (0, t1).

    By continuity of L the piece's polynomial has p0 = L(theta), so q(t) = (L(theta + t Delta) -
    L(theta))/t is a polynomial of degree <= 3 on (0, t1).  It is found from exact evaluations at
    t = t1*1/8, ..., t1*4/8 (inside the piece; t1 := 1 when there is no root) and confirmed at two
    more points t1*5/8, t1*6/8 of the same piece.  p1 = q(0) is the exact one-sided derivative."""
    t1 = o_first_piece_end(X, net, delta)
    scale = Q(1) if t1 is None else t1
    ts = [scale * Q(s, 8) for s in range(1, 7)]
    L0 = o_loss(X, Y, net, act)
    qs = [(o_loss(X, Y, o_move(net, delta, t), act) - L0) / t for t in ts]
    coef = o_solve([[t ** p for p in range(4)] for t in ts[:4]], qs[:4])
    for t, qv in zip(ts[4:], qs[4:]):
        assert sum((cf * t ** p for p, cf in enumerate(coef)), Q(0)) == qv, "oracle: not one polynomial piece"
    return [L0] + coef


def o_one_sided(X, Y, net, delta, act):
    return o_ray_polynomial(X, Y, net, delta, act)[1]


def o_G(X, Y, net, act, j):
    E, Z = o_residuals(X, Y, net, act), o_pre(X, net)
    return [sum((E[i][c] * o_sigma(Z[i][j], act) for i in range(len(X))), Q(0)) / len(X) for c in range(len(net.c))]


def o_D(X, Y, net, act, j, r, beta):
    """D_j(r, beta) from its definition: residuals fixed, slopes sigma'(z) off the kinks,
    sigma(x.r + beta) on them (z_ij = w_j.x_i + b_j)."""
    E, Z = o_residuals(X, Y, net, act), o_pre(X, net)
    ap, am = act
    out = []
    for c in range(len(net.c)):
        tot = Q(0)
        for i, x in enumerate(X):
            arg = o_dot(x, r) + beta
            if Z[i][j] == 0:
                tot += E[i][c] * o_sigma(arg, act)
            else:
                tot += E[i][c] * (ap if Z[i][j] > 0 else am) * arg
        out.append(tot / len(X))
    return out


def o_formula(X, Y, net, delta, act):
    """The derived directional derivative sum_j [dA_j.G_j + a_j.D_j(dW_j, db_j)] + e_bar.dc."""
    tot = o_dot(o_ebar(X, Y, net, act), delta.c)
    for j in range(len(net.W)):
        tot += o_dot(delta.A[j], o_G(X, Y, net, act, j))
        tot += o_dot(net.A[j], o_D(X, Y, net, act, j, delta.W[j], delta.b[j]))
    return tot


def o_fold(X, net):
    """x' = (x, 1), w' = (w, b), no hidden bias left."""
    return ([list(x) + [Q(1)] for x in X],
            Net([list(w) + [bj] for w, bj in zip(net.W, net.b)], [Q(0)] * len(net.W), net.A, net.c))


def o_zero_dir(net):
    return Net([[Q(0)] * len(w) for w in net.W], [Q(0)] * len(net.b), [[Q(0)] * len(a) for a in net.A],
               [Q(0)] * len(net.c))


def o_unit_dirs(net, with_c=True):
    """+- every coordinate of (W, b, A) and, with an output bias, of c."""
    out = []
    blocks = ["W", "b", "A"] + (["c"] if with_c else [])
    for part in blocks:
        blk = getattr(o_zero_dir(net), part)
        idx = [(j, q) for j in range(len(blk)) for q in range(len(blk[j]))] if part in ("W", "A") else \
            [(j, None) for j in range(len(blk))]
        for j, q in idx:
            for sgn in (Q(1), Q(-1)):
                dv = o_zero_dir(net)
                tgt = getattr(dv, part)
                if q is None:
                    tgt[j] = sgn
                else:
                    tgt[j][q] = sgn
                out.append(dv)
    return out


# =============================================================================================
# relucert on the folded problem
# =============================================================================================

def s(v):
    return str(v)


def pkg_problem(X, Y, act):
    return Problem.make([[s(v) for v in x] for x in X], [[s(v) for v in y] for y in Y],
                        {"alpha_plus": s(act[0]), "alpha_minus": s(act[1])})


def pkg_folded(X, Y, net, act, shift_by_c=False):
    """relucert's (Problem, Point) of the folded network; with shift_by_c the targets are Y - c
    (the output bias held fixed: the bias-free network on targets y_i - c)."""
    Xf, nf = o_fold(X, net)
    Yt = [[y[c] - net.c[c] for c in range(len(y))] for y in Y] if shift_by_c else Y
    pb = pkg_problem(Xf, Yt, act)
    pt = Point.make([[s(v) for v in w] for w in nf.W], [[s(v) for v in a] for a in nf.A], pb)
    return pb, pt


def toq(v):
    return Q(int(v.p), int(v.q)) if hasattr(v, "p") else Q(str(v))


def obj(rows):
    import numpy as np
    from flint import fmpq
    out = np.empty((len(rows), len(rows[0])), dtype=object)
    for i, r in enumerate(rows):
        for c, v in enumerate(r):
            out[i, c] = fmpq(v.numerator, v.denominator)
    return out


# =============================================================================================
# instances
# =============================================================================================

@st.composite
def instances(draw, with_c=True, acts=ACTS):
    n = draw(st.integers(1, 4))
    d = draw(st.integers(1, 2))
    m = draw(st.integers(1, 2))
    k = draw(st.integers(1, 2))
    act = draw(st.sampled_from(acts))
    val = st.sampled_from(VALS)
    X = [[draw(val) for _ in range(d)] for _ in range(n)]
    if n > 1 and draw(st.booleans()):
        X[draw(st.integers(0, n - 1))] = [Q(0)] * d                 # a zero data point
    if n > 2 and draw(st.booleans()):
        X[1] = list(X[0])                                           # a duplicated data point
    W = [[draw(val) for _ in range(d)] for _ in range(m)]
    b = [draw(val) for _ in range(m)]
    A = [[draw(val) for _ in range(k)] for _ in range(m)]
    for j in range(m):
        kind = draw(st.sampled_from(["free", "free", "kink", "kink", "zero"]))
        if kind == "kink":                                          # x_i on the kink of neuron j
            b[j] = -o_dot(W[j], X[draw(st.integers(0, n - 1))])
        elif kind == "zero":
            W[j], b[j] = [Q(0)] * d, Q(0)
    c = [draw(val) for _ in range(k)] if with_c else [Q(0)] * k
    Y = [[draw(val) for _ in range(k)] for _ in range(n)]
    net = Net(W, b, A, c)
    # a direction; some blocks zero, so that kinks move up, down, or stay
    zero_blocks = draw(st.sets(st.sampled_from(["W", "b", "A", "c"]), max_size=2))
    dW = [[Q(0) if "W" in zero_blocks else draw(val) for _ in range(d)] for _ in range(m)]
    db = [Q(0) if "b" in zero_blocks else draw(val) for _ in range(m)]
    dA = [[Q(0) if "A" in zero_blocks else draw(val) for _ in range(k)] for _ in range(m)]
    dc = [Q(0) if ("c" in zero_blocks or not with_c) else draw(val) for _ in range(k)]
    return X, Y, net, act, Net(dW, db, dA, dc)


# =============================================================================================
# (i) the fold: same f, L, kinks, ray polynomials, directional derivatives
# =============================================================================================

@settings(BASE, max_examples=60)
@given(instances(with_c=False))
def test_fold_preserves_f_L_kinks_and_directional_derivatives(case):
    X, Y, net, act, delta = case
    Xf, nf = o_fold(X, net)
    _, df = o_fold(X, delta)
    assert o_outputs(X, net, act) == o_outputs(Xf, nf, act)
    assert o_loss(X, Y, net, act) == o_loss(Xf, Y, nf, act)
    poly = o_ray_polynomial(X, Y, net, delta, act)
    assert poly == o_ray_polynomial(Xf, Y, nf, df, act)
    assert o_first_piece_end(X, net, delta) == o_first_piece_end(Xf, nf, df)
    # relucert on the folded problem
    pb, pt = pkg_folded(X, Y, net, act)
    state = ExactState(pb, pt)
    assert [[toq(v) for v in row] for row in state.fw.F.tolist()] == o_outputs(X, net, act)
    assert toq(state.loss_half_mean) == poly[0]
    Z = o_pre(X, net)
    for j in range(len(net.W)):
        assert state.kinks(j) == [i for i in range(len(X)) if Z[i][j] == 0]      # w'.x' = 0 iff w.x + b = 0
    dWf = obj(df.W)
    dA = obj(delta.A)
    assert toq(state.directional_derivative(dWf, dA)) == poly[1]
    c1, c2, c3, c4, t_max = ray_coefficients(pb.X, state.fw.E, state.fw.Z, None, pt.W, pt.A, dWf, dA,
                                             pb.activation.alpha_plus, pb.activation.alpha_minus)
    assert [toq(v) for v in (c1, c2, c3, c4)] == poly[1:]
    t1 = o_first_piece_end(X, net, delta)
    assert (t_max is None and t1 is None) or toq(t_max) == t1
    # the biased directional derivative is the derived formula (D_j in the direction (dw_j, db_j))
    assert o_formula(X, Y, net, delta, act) == poly[1]


# =============================================================================================
# (ii) the certifier on folded problems, cases the oracle decides by itself
# =============================================================================================

def _kill(X, net):
    """Hidden biases making every pre-activation <= -1 (every ReLU neuron strictly dead)."""
    for j, w in enumerate(net.W):
        net.b[j] = -max([abs(o_dot(w, x)) for x in X]) - 1


def _unfold_dir(dw, d):
    return [Q(v) for v in dw[:d]], Q(dw[d])


@pytest.mark.parametrize("kind", ["fit", "dead", "dead_plus_zero", "generic"])
@settings(BASE, max_examples=25)
@given(case=instances(with_c=False))
def test_certifier_on_folded_problems_agrees_with_the_oracle(kind, case):
    X, Y, net, act, _ = case
    n, d, m, k = len(X), len(X[0]), len(net.W), len(net.c)
    L0 = None
    if kind == "fit":
        # oracle: the loss is exactly 0, the least value of L
        Y = o_outputs(X, net, act)
        expected = "global_min"
    elif kind in ("dead", "dead_plus_zero"):
        act = RELU
        _kill(X, net)
        if kind == "dead_plus_zero":
            net.W.append([Q(0)] * d)
            net.b.append(Q(0))
            net.A.append([Q(0)] * k)
            m += 1
        if all(v == 0 for y in Y for v in y):
            Y[0][0] = Q(1)
        ybar = [sum((y[c] for y in Y), Q(0)) / n for c in range(k)]
        if kind == "dead_plus_zero" and all(v == 0 for v in ybar):
            Y[0][0] += 1
            ybar = [sum((y[c] for y in Y), Q(0)) / n for c in range(k)]
        L0 = o_loss(X, Y, net, act)
        assert L0 > 0
        # oracle: near theta every dead pre-activation stays < 0, so f(x) is the zero neuron's
        # a sigma(w.x + b) alone, of second order in the perturbation: every one-sided derivative is 0
        for dv in o_unit_dirs(net, with_c=False):
            assert o_one_sided(X, Y, net, dv, act) == 0
        if kind == "dead":
            # ... and with no zero neuron f == 0 near theta: L is locally constant, a local minimum
            for dv in o_unit_dirs(net, with_c=False):
                t1 = o_first_piece_end(X, net, dv) or Q(1)
                assert o_loss(X, Y, o_move(net, dv, t1 / 2), act) == L0
            expected = "local_min"
        else:
            # ... and the zero neuron escapes along its bias: w' = t (0, 1), a = -t^2 D with
            # D = sigma(1) e_bar = -y_bar: L(t) - L = -t^3 |y_bar|^2 + t^6 |y_bar|^2 / 2 < 0
            D = [-v for v in ybar]
            for t in (Q(1, 2), Q(1, 10)):
                moved = Net([list(w) for w in net.W], list(net.b), [list(a) for a in net.A], list(net.c))
                moved.b[-1] = t
                moved.A[-1] = [-t * t * v for v in D]
                nb = o_dot(ybar, ybar)
                assert o_loss(X, Y, moved, act) - L0 == -t ** 3 * nb + t ** 6 * nb / 2 < 0
            expected = "saddle"
    else:
        # oracle: a coordinate direction with a negative exact one-sided derivative
        negative = [dv for dv in o_unit_dirs(net, with_c=False) if o_one_sided(X, Y, net, dv, act) < 0]
        if not negative:
            return                                  # not decidable by the oracle alone
        expected = "not_stationary"
    pb, pt = pkg_folded(X, Y, net, act)
    res = certify(pb, pt)
    assert res.verdict == expected, res.reason
    assert require_valid(res.certificate) == expected
    L0 = o_loss(X, Y, net, act)
    ev = res.certificate["evidence"]
    if expected == "not_stationary":
        # the certificate's direction, unfolded, is a descent direction of the biased network
        nsd = ev["not_stationary"]
        j = nsd["direction"]["neuron"]
        dw, db = _unfold_dir([Q(v) for v in nsd["direction"]["dw"]], d)
        delta = o_zero_dir(net)
        delta.W[j], delta.b[j], delta.A[j] = dw, db, [Q(v) for v in nsd["direction"]["da"]]
        assert o_one_sided(X, Y, net, delta, act) == Q(nsd["derivative"]) < 0
        low = o_loss(X, Y, o_move(net, delta, Q(nsd["step"])), act)
        assert low == Q(nsd["loss_at_step"]) < L0
    if expected == "saddle":
        ep = ev["escape_path"]
        j, t0 = ep["neuron"], Q(ep["t0"])
        r, beta = _unfold_dir([Q(v) for v in ep["r"]], d)
        moved = Net([list(w) for w in net.W], list(net.b), [list(a) for a in net.A], list(net.c))
        moved.W[j] = [w + t0 * v for w, v in zip(net.W[j], r)]
        moved.b[j] = net.b[j] + t0 * beta
        moved.A[j] = [-t0 * t0 * Q(v) for v in ep["D"]]
        assert o_loss(X, Y, moved, act) == Q(ep["loss_at_t0"]) < L0


# =============================================================================================
# (iii) the output bias: the derived directional derivative, the profile, (S0) descent
# =============================================================================================

@settings(BASE, max_examples=60)
@given(instances(with_c=True))
def test_output_bias_directional_derivative_formula(case):
    X, Y, net, act, delta = case
    n, k = len(X), len(net.c)
    poly = o_ray_polynomial(X, Y, net, delta, act)
    exact = poly[1]
    # the derived formula from the definitions (this file's Fractions)
    assert o_formula(X, Y, net, delta, act) == exact
    # relucert's bias-free formula on the folded problem with targets Y - c, plus e_bar . dc
    pb, pt = pkg_folded(X, Y, net, act, shift_by_c=True)
    state = ExactState(pb, pt)
    _, df = o_fold(X, delta)
    ebar = o_ebar(X, Y, net, act)
    assert [toq(v) for v in state.fw.E.sum(axis=0).tolist()] == [v * n for v in ebar]
    assert toq(state.directional_derivative(obj(df.W), obj(delta.A))) + o_dot(ebar, delta.c) == exact
    # the ray polynomial with dc: only c1, c2, c3 gain terms (u_i -> u_i + dc), t_max is unchanged
    no_c = Net(delta.W, delta.b, delta.A, [Q(0)] * k)
    p0 = o_ray_polynomial(X, Y, net, no_c, act)
    assert o_first_piece_end(X, net, delta) == o_first_piece_end(X, net, no_c)
    assert poly[4] == p0[4] and poly[1] - p0[1] == o_dot(ebar, delta.c)
    # the profile: L = l + |c - c*|^2 / 2, l = (1/2n) sum |e_i - e_bar|^2, c* = c - e_bar
    E = o_residuals(X, Y, net, act)
    ell = sum(((E[i][c] - ebar[c]) ** 2 for i in range(n) for c in range(k)), Q(0)) / (2 * n)
    assert poly[0] == ell + o_dot(ebar, ebar) / 2
    cstar = [net.c[c] - ebar[c] for c in range(k)]
    centred = Net(net.W, net.b, net.A, cstar)
    assert o_loss(X, Y, centred, act) == ell and all(v == 0 for v in o_ebar(X, Y, centred, act))
    # (S0) descent along dc = -e_bar: exactly -t |e_bar|^2 + t^2 |e_bar|^2 / 2 (no roots: t_max = oo)
    s0 = Net(o_zero_dir(net).W, o_zero_dir(net).b, o_zero_dir(net).A, [-v for v in ebar])
    nb = o_dot(ebar, ebar)
    assert o_ray_polynomial(X, Y, net, s0, act) == [poly[0], -nb, nb / 2, Q(0), Q(0)]


# =============================================================================================
# (iv) the counterexamples of docs/biases.md §7
# =============================================================================================

def _pkg(X, Y, W, A, act=RELU):
    pb = pkg_problem([[Q(v) for v in x] for x in X], [[Q(v) for v in y] for y in Y], act)
    res = certify(pb, Point.make(W, A, pb))
    assert require_valid(res.certificate) == res.verdict
    return res


def test_ce1_theorem_a_minimum_is_not_stationary_with_an_output_bias():
    X, Y = [[Q(1)], [Q(-1)]], [[Q(1)], [Q(1)]]
    res = _pkg(X, Y, [[1]], [[1]])
    assert res.verdict == "local_min" and "Theorem A" in res.reason and toq(res.loss) == Q(1, 4)
    net = Net([[Q(1)]], [Q(0)], [[Q(1)]], [Q(0)])
    assert o_ebar(X, Y, net, RELU) == [Q(-1, 2)]
    dc = Net([[Q(0)]], [Q(0)], [[Q(0)]], [Q(1, 2)])          # dc = -e_bar
    assert o_ray_polynomial(X, Y, net, dc, RELU) == [Q(1, 4), Q(-1, 4), Q(1, 8), 0, 0]
    assert o_loss(X, Y, o_move(net, dc, Q(1)), RELU) == Q(1, 8)
    assert o_loss(X, Y, Net([[Q(1)]], [Q(0)], [[Q(0)]], [Q(1)]), RELU) == 0   # with c: a zero-loss fit


def test_ce2_slice_morse_bott_minimum_with_zero_residual_sum_is_a_joint_saddle():
    X, Y = [[Q(1), Q(0)], [Q(0), Q(1)]], [[Q(2), Q(1)], [Q(2), Q(-1)]]
    res = _pkg(X, Y, [[1, 1]], [[2, 0]])                      # c = 0 held fixed: the bias-free problem
    assert res.verdict == "local_min" and "morse_bott" in res.certificate["evidence"]
    assert res.escape_neurons == [0]
    net = Net([[Q(1), Q(1)]], [Q(0)], [[Q(2), Q(0)]], [Q(0), Q(0)])
    assert o_ebar(X, Y, net, RELU) == [0, 0]                  # (S0) holds: stationary with c free
    for dv in o_unit_dirs(net):                               # smooth: every one-sided derivative 0
        assert o_one_sided(X, Y, net, dv, RELU) == 0
    joint = Net([[Q(-1), Q(1)]], [Q(0)], [[Q(0), Q(-3)]], [Q(0), Q(3)])
    assert o_first_piece_end(X, net, joint) == 1
    assert o_ray_polynomial(X, Y, net, joint, RELU) == [Q(1, 2), 0, -1, 0, Q(9, 2)]
    assert o_loss(X, Y, o_move(net, joint, Q(1, 4)), RELU) == Q(1, 2) - Q(23, 512)
    # without dc the same (dW, dA) curves upwards
    slice_ = Net(joint.W, joint.b, joint.A, [Q(0), Q(0)])
    assert o_ray_polynomial(X, Y, net, slice_, RELU)[1:3] == [0, Q(7, 2)]


def test_ce3_a_zero_data_point_sets_the_residual_sum():
    X, Y = [[Q(1)], [Q(0)]], [[Q(1)], [Q(1)]]
    res = _pkg(X, Y, [[1]], [[1]])
    assert res.verdict == "local_min"
    net = Net([[Q(1)]], [Q(0)], [[Q(1)]], [Q(0)])
    assert o_ebar(X, Y, net, RELU) == [Q(-1, 2)]
    assert o_ebar(X[:1], Y[:1], net, RELU) == [0]            # dropping x = 0 would hide it
    assert o_one_sided(X, Y, net, Net([[Q(0)]], [Q(0)], [[Q(0)]], [Q(1)]), RELU) == Q(-1, 2)


def test_hidden_bias_zero_neuron_is_an_escape_neuron_when_the_residual_sum_is_not_zero():
    # CE1's point with free hidden biases (b = 0) and a zero neuron: folded x' = (x, 1)
    X, Y = [[Q(1)], [Q(-1)]], [[Q(1)], [Q(1)]]
    net = Net([[Q(1)], [Q(0)]], [Q(0), Q(0)], [[Q(1)], [Q(0)]], [Q(0)])
    pb, pt = pkg_folded(X, Y, net, RELU)
    res = certify(pb, pt)
    assert res.verdict == "saddle" and res.escape_neurons == [1]
    assert require_valid(res.certificate) == "saddle"
    # D of the zero neuron along the bias coordinate is sigma(1) e_bar
    assert o_D(X, Y, net, RELU, 1, [Q(0)], Q(1)) == [Q(1) * v for v in o_ebar(X, Y, net, RELU)] == [Q(-1, 2)]
    assert [toq(v) for v in ExactState(pb, pt).neuron(1).D([0, 1])] == [Q(-1, 2)]


@pytest.mark.parametrize("act", ACTS)
def test_fold_of_the_zero_neuron_bias_direction_every_activation(act):
    X, Y = [[Q(2)], [Q(-1)], [Q(0)]], [[Q(1)], [Q(3)], [Q(-1)]]
    net = Net([[Q(0)]], [Q(0)], [[Q(0)]], [Q(0)])
    eb = o_ebar(X, Y, net, act)
    for beta in (Q(1), Q(-1), Q(2)):
        assert o_D(X, Y, net, act, 0, [Q(0)], beta) == [o_sigma(beta, act) * v for v in eb]
    assert any(o_sigma(beta, act) != 0 for beta in (Q(1), Q(-1)))
