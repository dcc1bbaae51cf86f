"""Saddle ball certificates with GL groups (docs/theory.md §10.4, §10.6).

The campaign case tests/data/ball_saddle_gl_run87.json (leaky ReLU 0.01, d = 3, k = 2, m = 5; the
tiny_zero reading of run 87's mid checkpoint after --converge) has two zero neurons, a rank-constrained
single neuron and two neurons with one strict sign vector.  Without a GL(2) gauge for that pair the
narrow stationarity equations have a singular Jacobian (the pair's orbit directions stay in the slice),
so no ball could be proposed; with it the checker accepts a saddle.  An mpmath oracle of this file
(reading only the certificate's JSON) confirms that the box centre is stationary in all of (W, A) up to
the box's size and that the named escape neuron lowers the loss.
"""
import copy
from fractions import Fraction as Q
from pathlib import Path

import mpmath as mp
import pytest

from relucert.check import ball_jacobian_at_center, check_certificate
from relucert.decide import ball as ballmod
from relucert.decide.ball import ball_certificate
from relucert.io import load_json

DATA = Path(__file__).resolve().parent / "data" / "ball_saddle_gl_run87.json"


def _mpq(v):
    v = Q(v)
    return mp.mpf(v.numerator) / v.denominator


def _oracle(cert):
    """(X, Y, alpha_minus, W, A) as mpmath numbers, from the certificate's JSON only."""
    pb, pt = cert["problem"], cert["point"]
    assert Q(pb["activation"]["alpha_plus"]) == 1 and pb["loss"] == "half_mean"
    X = [[_mpq(v) for v in row] for row in pb["X"]]
    Y = [[_mpq(v) for v in row] for row in pb["Y"]]
    W = [[_mpq(v) for v in row] for row in pt["W"]]
    A = [[_mpq(v) for v in row] for row in pt["A"]]
    return X, Y, _mpq(pb["activation"]["alpha_minus"]), W, A


def _loss_grad(X, Y, am, W, A):
    """Half-mean loss and its gradient in (W, A), on the smooth pieces (no point is on a kink here)."""
    n, k = len(X), len(Y[0])
    gW = [[mp.mpf(0)] * len(w) for w in W]
    gA = [[mp.mpf(0)] * k for _ in A]
    tot = mp.mpf(0)
    for x, y in zip(X, Y):
        z = [mp.fdot(w, x) for w in W]
        s = [1 if v > 0 else am for v in z]
        e = [mp.fsum(A[j][c] * s[j] * z[j] for j in range(len(W))) - y[c] for c in range(k)]
        tot += mp.fsum(v * v for v in e)
        for j in range(len(W)):
            for c in range(k):
                gA[j][c] += e[c] * s[j] * z[j] / n
            ae = mp.fdot(A[j], e) * s[j] / n
            for q in range(len(x)):
                gW[j][q] += ae * x[q]
    return tot / (2 * n), gW, gA


@pytest.fixture(scope="module")
def run87():
    pb, pt = load_json(str(DATA))
    cert, note = ball_certificate(pb, pt)
    return pb, pt, cert, note


def test_saddle_with_a_gl_group_is_certified(run87):
    pb, pt, cert, note = run87
    assert cert is not None, note
    assert cert["verdict"] == "saddle"
    ev = cert["evidence"]
    assert ev["zero"] == [2, 4]
    groups = [[ev["clusters"][g]["neurons"][0] for g in gr["clusters"]] for gr in ev["gl_groups"]]
    assert groups == [[0, 3]]
    assert check_certificate(cert).ok


def test_without_the_group_the_jacobian_is_singular(run87, monkeypatch):
    """The same structure with every cluster on its single gauge: J at the centre loses rank (the
    GL(2) orbit of the pair, minus its two rescalings, stays in the slice), so no ball exists."""
    pb, pt, cert, _ = run87
    orig = ballmod._group_symmetries
    monkeypatch.setattr(ballmod, "_group_symmetries",
                        lambda p, q, cl, parts: orig(p, q, cl, [(t, c, None) for t, c, _ in parts]))
    ev, _ = ballmod.structure(pb, pt)
    assert "gl_groups" not in ev
    plain = copy.deepcopy(cert)
    plain["evidence"] = {**ev, "radius": cert["evidence"]["radius"], "preconditioner": [[]]}
    J = ball_jacobian_at_center(plain)
    N = len(J)
    assert N == len(cert["evidence"]["center"]) + 2        # two more unknowns than with the group
    # the centre is stationary only up to ~1e-60, so the orbit directions are null only up to that:
    # two singular values of J are that small, the others are of the data's order
    mp.mp.dps = 100
    sv = sorted(mp.svd_r(mp.matrix([[_mpq(v) for v in row] for row in J]), compute_uv=False))
    assert sv[1] < mp.mpf(10) ** -40 * sv[-1] and sv[2] > mp.mpf(10) ** -8 * sv[-1]
    cert2, why = ball_certificate(pb, pt)
    assert cert2 is None and "singular Jacobian" in why


def test_oracle_centre_is_stationary_and_the_escape_lowers_the_loss(run87):
    _, _, cert, _ = run87
    mp.mp.dps = 80
    X, Y, am, W, A = _oracle(cert)
    L0, gW, gA = _loss_grad(X, Y, am, W, A)
    gmax = max(abs(v) for row in gW + gA for v in row)
    assert gmax < mp.mpf(10) ** -25                   # the box has radius 1e-30 around the centre
    esc = cert["evidence"]["escape"][0]
    j, r = esc["neuron"], [_mpq(v) for v in esc["r"]]
    n, k = len(X), len(Y[0])
    # D_j(r) = (1/n) sum_i e_i sigma(x_i . r) at the centre, from the oracle's own residuals
    E = [[mp.fsum(A[l][c] * (1 if mp.fdot(W[l], x) > 0 else am) * mp.fdot(W[l], x) for l in range(len(W))) - y[c]
          for c in range(k)] for x, y in zip(X, Y)]
    D = [mp.fsum(E[i][c] * (mp.fdot(X[i], r) if mp.fdot(X[i], r) > 0 else am * mp.fdot(X[i], r))
                 for i in range(n)) / n for c in range(k)]
    assert max(abs(v) for v in D) > mp.mpf(10) ** -15
    # the escape path w_j = t r, a_j = -t D lowers the loss by about t^2 |D|^2 (first order: zero)
    for t in (mp.mpf(10) ** -3, mp.mpf(10) ** -5):
        W2, A2 = [list(w) for w in W], [list(a) for a in A]
        W2[j] = [t * v for v in r]
        A2[j] = [-t * v for v in D]
        L1, _, _ = _loss_grad(X, Y, am, W2, A2)
        assert L1 < L0 - t * t * mp.fsum(v * v for v in D) / 2


def test_mutated_saddle_certificates_are_rejected(run87):
    _, _, cert, _ = run87

    def rejected(c, *words):
        res = check_certificate(c)
        assert not res.ok, "forgery accepted"
        text = "; ".join(res.reasons)
        assert any(w in text for w in words), text

    c = copy.deepcopy(cert)
    c["evidence"]["escape"][0]["neuron"] = 0
    rejected(c, "escape must name a zero neuron")
    c = copy.deepcopy(cert)
    c["evidence"]["escape"][0]["r"] = ["0", "0", "0"]
    rejected(c, "may vanish on the box")
    c = copy.deepcopy(cert)
    c["evidence"].pop("gl_groups")
    rejected(c, "list gauge is allowed only")
    c = copy.deepcopy(cert)
    c["verdict"] = "local_min"
    rejected(c, "names no escape neurons", "curvature")
