"""The exact fixed-pattern solves pick the solution nearest the checkpoint (issue 12, item 1).

Hand-computed under-determined cases (scalar: two neurons on one pattern fix only the sum of their
v_j = |a_j| w_j; vector: two neurons of one group fix only sum_j a_j w_j), a property test on small
random exact instances, and two instances from benchmarks/campaign_refine.py on which the legacy
choice leaves the activation pattern and the nearest one certifies."""
import json
import os

import numpy as np
import pytest
from flint import fmpq, fmpq_mat
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import relucert.refine.exact as exact
import relucert.refine.scalar as scalar
from relucert.check import require_valid
from relucert.core.linalg import mat, nullspace
from relucert.core.problem import Point, Problem
from relucert.io import load
from relucert.pipeline import certify_checkpoint
from relucert.refine import Tolerances, classify, refine, refined_report
from relucert.refine.exact import least_norm_solve, nearest_solve, split_metric_block
from relucert.refine.scalar import refine_grouped, refine_scalar

DATA = os.path.join(os.path.dirname(__file__), "data")
Q = fmpq


def _v(point: Point, j: int) -> list:
    return [abs(point.A[j][0]) * w for w in point.W[j].tolist()]


def _quad_inv(P_blocks: list, x: list) -> fmpq:
    """x^T P^{-1} x for block-diagonal P (exact)."""
    out, pos = Q(0), 0
    for blk in P_blocks:
        s = len(blk)
        xs = fmpq_mat(s, 1, x[pos:pos + s])
        out += (xs.transpose() * mat(blk).inv() * xs)[0, 0]
        pos += s
    return out


# ------------------------------------------------------------------------------------------------
# hand-computed cases
# ------------------------------------------------------------------------------------------------

def test_split_metric_block_closed_form():
    # d = 1: P = |a|^2 * 4 |w|^2 / (|w|^2 + |a|^2); balanced |a| = |w|: P = 2 |a|^2 = 2 |v|
    assert split_metric_block([Q(1)], Q(1)) == [[Q(2)]]
    assert split_metric_block([Q(2)], Q(2)) == [[Q(8)]]
    assert split_metric_block([Q(1)], Q(2)) == [[Q(16, 5)]]
    # d = 2, balanced: P = |a|^2 I + w w^T
    assert split_metric_block([Q(3), Q(4)], Q(5)) == [[Q(25 + 9), Q(12)], [Q(12), Q(25 + 16)]]


def test_split_metric_block_is_the_first_order_theta_metric():
    # the split-back keeping kappa = |a|/|w|: w' = v/s, |a'| = s, s = sqrt(kappa |v|); its Jacobian J
    # at v0 = |a| w satisfies (J^T J)^{-1} = P (checked in floats, central differences)
    w, a = np.array([0.3, -1.2, 0.7]), 1.9
    kap, v0 = a / np.linalg.norm(w), a * w

    def split(v):
        s = np.sqrt(kap * np.linalg.norm(v))
        return np.concatenate([v / s, [s]])

    h = 1e-6
    J = np.stack([(split(v0 + h * e) - split(v0 - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
    P = np.array([[float(x) for x in row] for row in split_metric_block([Q(*x.as_integer_ratio()) for x in w],
                                                                         Q(*a.as_integer_ratio()))])
    assert np.allclose(np.linalg.inv(J.T @ J), P, rtol=1e-7)


def test_scalar_two_neurons_on_one_pattern():
    # relu, d = 1, both neurons active on both points: f_i = (v_1 + v_2) x_i, and y = 3 x, so the
    # system fixes only v_1 + v_2 = 3.  Checkpoint v = (1, 4) (balanced neurons w = a = 1 and 2).
    # Nearest in theta: dv_j proportional to P_j = 2 |v_j| -> (2, 8)/10 of the correction -2:
    # v = (1 - 2/5, 4 - 8/5) = (3/5, 12/5).  Legacy (weights |v_j|^2 = 1, 16): (1 - 2/17, 4 - 32/17).
    pb = Problem.make([[1], [2]], [[3], [6]], "relu")
    pt = Point.make([[1], [2]], [[1], [2]], pb)
    pat = classify(pb, pt, Tolerances())
    assert pat.status == ["alive", "alive"] and not any(pat.kinks)
    new, _ = refine_scalar(pb, pt, pat, "as_given")
    assert (_v(new, 0), _v(new, 1)) == ([Q(3, 5)], [Q(12, 5)])
    old, _ = refine_scalar(pb, pt, pat, "as_given", least_squares="legacy")
    assert (_v(old, 0), _v(old, 1)) == ([Q(15, 17)], [Q(36, 17)])
    # each neuron keeps |a|/|w| (= 1) up to the rational rounding of the square root
    for j in range(2):
        assert abs(float(new.A[j][0] / new.W[j][0]) - 1) < 1e-15
    # and the new point is nearer the checkpoint in theta
    d_new = np.linalg.norm(np.r_[(new.Wf - pt.Wf).ravel(), (new.Af - pt.Af).ravel()])
    d_old = np.linalg.norm(np.r_[(old.Wf - pt.Wf).ravel(), (old.Af - pt.Af).ravel()])
    assert d_new < d_old


def test_scalar_equal_cost_splits_equally():
    # unbalanced neurons (w, a) = (1, 2) and (2, 1): |v| = 2 each and P_j = 16/5 each -> the
    # correction 3 - 4 = -1 is split equally: v = (3/2, 3/2)
    pb = Problem.make([[1], [2]], [[3], [6]], "relu")
    pt = Point.make([[1], [2]], [[2], [1]], pb)
    new, _ = refine_scalar(pb, pt, classify(pb, pt, Tolerances()), "as_given")
    assert (_v(new, 0), _v(new, 1)) == ([Q(3, 2)], [Q(3, 2)])


def test_grouped_two_neurons_one_group():
    # k = 2, d = 1, w = (1, 2) both active on x = 1, 2: the group product is C = a_1 + 2 a_2 per
    # output.  Output 0 already fits (C = 3 for y = 3x); output 1 needs C = 0 from C = 1.
    # Nearest A: da = -(1, 2)/5 (the least-norm da with da_1 + 2 da_2 = -1).  Legacy weights the
    # zero output weight a_2[1] by 1e-12, so it moves a_1[1] alone (to ~0).
    pb = Problem.make([[1], [2]], [[3, 0], [6, 0]], "relu")
    pt = Point.make([[1], [2]], [[1, 1], [1, 0]], pb)
    pat = classify(pb, pt, Tolerances())
    new, note = refine_grouped(pb, pt, pat, "as_given")
    assert new is not None, note
    assert new.A.tolist() == [[Q(1), Q(4, 5)], [Q(1), Q(-2, 5)]]
    assert new.W.tolist() == pt.W.tolist()
    old, _ = refine_grouped(pb, pt, pat, "as_given", least_squares="legacy")
    assert old.A[0][0] == 1 and old.A[1][0] == 1
    assert abs(float(old.A[0][1])) < 1e-20 and abs(float(old.A[1][1])) < 1e-12


def test_nearest_solve_hand():
    # one equation x_1 + x_2 = -2 with P = diag(2, 8): x = P 1 lam, lam = -2 / 10
    assert nearest_solve([[Q(1), Q(1)]], [Q(-2)], [[[Q(2)]], [[Q(8)]]]) == [Q(-2, 5), Q(-8, 5)]
    # identity metric: the Euclidean least-norm solution; inconsistent systems give None
    assert nearest_solve([[Q(1), Q(2)]], [Q(-1)]) == [Q(-1, 5), Q(-2, 5)]
    assert nearest_solve([[Q(1), Q(1)], [Q(2), Q(2)]], [Q(1), Q(3)]) is None


def test_option_threads_through_refine():
    # v = (1.0000001, 2): the sum must drop by 1e-7; legacy splits it 1 : 4 (|v|^2), nearest
    # 2 : 16/5 (P_j), so the certified points differ
    pb = Problem.make([[1], [2]], [[3], [6]], "relu")
    pt = Point.make([[1.0000001], [1]], [[1], [2]], pb)
    got = {}
    for choice in ("nearest", "legacy"):
        rf = refined_report(pb, pt, refine(pb, pt, least_squares=choice))
        W = rf["certificate"]["point"]["W"]
        got[choice] = W
    assert got["nearest"] != got["legacy"]
    assert exact.LEAST_SQUARES == "nearest"          # the override did not leak
    with pytest.raises(ValueError):
        refine(pb, pt, least_squares="other")


# ------------------------------------------------------------------------------------------------
# property: nearest among all exact solutions
# ------------------------------------------------------------------------------------------------

small = st.integers(-4, 4)
nonzero = st.integers(1, 4).flatmap(lambda v: st.sampled_from([v, -v]))


@st.composite
def systems(draw):
    nvar_blocks = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    nvar = sum(nvar_blocks)
    r = draw(st.integers(1, nvar))
    K = [[Q(draw(small)) for _ in range(nvar)] for _ in range(r)]
    xs = [Q(draw(small), draw(st.integers(1, 4))) for _ in range(nvar)]
    rhs = [sum((a * b for a, b in zip(row, xs)), Q(0)) for row in K]       # consistent
    P = []
    for s in nvar_blocks:
        w = [Q(draw(small), 2) for _ in range(s)]
        assume(any(x != 0 for x in w))
        P.append(split_metric_block(w, Q(draw(nonzero), draw(st.integers(1, 3)))))
    wts = [Q(draw(st.integers(1, 5)), draw(st.integers(1, 5))) for _ in range(nvar)]
    z = [Q(draw(small)) for _ in range(nvar)]
    return K, rhs, P, wts, z


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(systems())
def test_nearest_solve_is_nearest(case):
    K, rhs, P, wts, z = case
    x = nearest_solve(K, rhs, P)
    assert x is not None
    assert all(sum((a * b for a, b in zip(row, x)), Q(0)) == v for row, v in zip(K, rhs))
    dist = _quad_inv(P, x)
    old = least_norm_solve(K, rhs, wts)                       # the legacy kind of choice
    assert _quad_inv(P, old) >= dist
    for nv in nullspace(K, len(K[0])):                       # any other solution: x + null vector
        c = sum(z[: len(nv)], Q(1))
        other = [a + c * b for a, b in zip(x, nv)]
        assert _quad_inv(P, other) >= dist


@st.composite
def scalar_problems(draw):
    n, d, m = draw(st.integers(2, 5)), draw(st.integers(1, 2)), draw(st.integers(2, 3))
    X = [[draw(small) for _ in range(d)] for _ in range(n)]
    Y = [[draw(small)] for _ in range(n)]
    W = [[draw(nonzero) / 4 for _ in range(d)] for _ in range(m)]
    A = [[draw(nonzero) / 4] for _ in range(m)]
    act = draw(st.sampled_from(["relu", "leaky_relu:0.1", "abs"]))
    return X, Y, W, A, act


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.filter_too_much])
@given(scalar_problems())
def test_refine_scalar_nearest_property(case):
    X, Y, W, A, act = case
    pb = Problem.make(X, Y, act)
    pt = Point.make(W, A, pb)
    pat = classify(pb, pt, Tolerances())
    assume(all(s == "alive" for s in pat.status) and not any(pat.kinks))
    saved = scalar.PIN_ROUNDS
    scalar.PIN_ROUNDS = 0           # the plain nearest solution (no pinning rounds)
    try:
        new, note = refine_scalar(pb, pt, pat, "as_given")
    finally:
        scalar.PIN_ROUNDS = saved
    old, _ = refine_scalar(pb, pt, pat, "as_given", least_squares="legacy")
    assume(new is not None and old is not None)
    n, d, m = pb.n, pb.d, pt.m
    ap, am = pb.activation.alpha_plus, pb.activation.alpha_minus
    # the design on the fixed pattern: f_i = sum_j eps_j s_ij v_j . x_i
    M = [[Q(0)] * (m * d) for _ in range(n)]
    for j in range(m):
        e = 1 if pt.A[j][0] > 0 else -1
        for i in range(n):
            s = ap if pat.signs[i, j] > 0 else am
            for q in range(d):
                M[i][j * d + q] = e * s * pb.X[i][q]
    Mm = mat(M)
    y = fmpq_mat(n, 1, [pb.Y[i][0] for i in range(n)])
    v0 = sum((_v(pt, j) for j in range(m)), [])
    P = [split_metric_block(pt.W[j].tolist(), abs(pt.A[j][0])) for j in range(m)]
    dists = {}
    for name, p in (("new", new), ("old", old)):
        # signs of a kept (eps_j), or the neuron refined to exactly zero (v_j = 0)
        assert all(p.A[j][0] * pt.A[j][0] > 0 or (p.A[j][0] == 0 and all(x == 0 for x in p.W[j]))
                   for j in range(m))
        v = sum((_v(p, j) for j in range(m)), [])
        grad = Mm.transpose() * (Mm * fmpq_mat(m * d, 1, v) - y)
        assert all(grad[q, 0] == 0 for q in range(m * d)), name        # normal equations, exactly
        dists[name] = _quad_inv(P, [a - b for a, b in zip(v, v0)])
    assert dists["new"] <= dists["old"]
    vnew = sum((_v(new, j) for j in range(m)), [])
    for nv in nullspace(M, m * d):                      # every other exact solution: v + null vector
        other = [a + b for a, b in zip(vnew, nv)]
        assert _quad_inv(P, [a - b for a, b in zip(other, v0)]) >= dists["new"]


# ------------------------------------------------------------------------------------------------
# end to end: instances of benchmarks/campaign_refine.py
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, verdict", [("refine_nearest_scalar.json", "local_min"),
                                           ("refine_nearest_vector.json", "local_min")])
def test_campaign_case_old_leaves_pattern_new_certifies(name, verdict):
    pb, pt = load(os.path.join(DATA, name))
    saved = exact.LEAST_SQUARES
    try:
        exact.LEAST_SQUARES = "legacy"
        old = certify_checkpoint(pb, pt)
    finally:
        exact.LEAST_SQUARES = saved
    # legacy: the refined point leaves the pattern, or (vector output, after the replica reading) is too far
    assert old.verdict == "inconclusive" and (old.refined["left_pattern"] or "too far" in old.refined["reason"])
    new = certify_checkpoint(pb, pt)
    rf = new.refined
    assert new.verdict == verdict, rf["reason"]
    assert not rf["left_pattern"]
    assert require_valid(rf["certificate"]) == verdict
    assert rf["distance"]["relative_to_scale"] < Tolerances().max_move
    assert any("OK" in line for line in new.independent_check)
    # the refined point keeps the given pattern exactly (strict signs and kinks)
    from relucert.refine.classify import pattern_flips
    cert_pt = Point.make(rf["certificate"]["point"]["W"], rf["certificate"]["point"]["A"], pb)
    assert pattern_flips(pb, cert_pt, classify(pb, pt, Tolerances()), []) == []
