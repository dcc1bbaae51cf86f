"""--converge end game (issue 12): the refinement of the converged point may go beyond max_move when
it evidently goes on downhill (refine.driver.downhill_evidence), never the given point's; and the
converged point's refinement gets what is left of the call's budget (pipeline.CONVERGE_TOTAL_BUDGET)."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from relucert import check, pipeline
from relucert.core.problem import as_problem_point
from relucert.pipeline import certify_checkpoint
from relucert.refine import Tolerances
from relucert.refine import driver
from relucert.refine import exact as rexact
from relucert.refine.converge import Converged
from relucert.refine.driver import DOWNHILL_FACTOR, distance_moved, refine_point, segment_evidence, segment_losses

converge_module = importlib.import_module("relucert.refine.converge")

# f(x) = sum_j a_j relu(w_j . x) fits these targets exactly at (W, A) (7 data points, 4 unknowns of
# v = |a| w, full rank): the fixed-pattern least squares of a point with A scaled by s leads back to
# v = |a| w of (W, A), split with the point's |a|/|w| ratios, i.e. a move that grows with s
X = [[1, 0], [0, 1], [1, 1], [2, 1], [1, 2], [1, -1], [-1, 2]]
W = [[1, 0.5], [-0.5, 1]]
A = [[1.0], [0.75]]


def _fit(scale=1.0):
    Y = np.maximum(np.array(X) @ np.array(W).T, 0) @ np.array(A)
    return as_problem_point(X, Y, W, (np.array(A) * scale).tolist(), "relu")


def _fake_converge(point):
    """A stand-in for refine.converge.converge that 'stops' at ``point`` (an early stop of L-BFGS in a
    flat valley, as in the seeded campaign)."""
    def fake(problem, start, method="lbfgs", progress=None, tolerances=None, **kw):
        move = distance_moved(problem, start, point).to_json()
        return Converged(point=point, start_loss=1.0, end_loss=1.0, steps=1, method=method, gradient_relative=1e-3,
                         distance=move, stopped="no further decrease", start_gradient_relative=1e-3)
    return fake


def test_the_given_points_refinement_keeps_the_cap():
    pb, pt = _fit(1.3)
    rf = refine_point(pb, pt)
    assert rf["distance"]["relative_to_scale"] > Tolerances().max_move
    assert rf["verdict"] == "inconclusive" and "too far" in rf["method"]
    assert rf["beyond_max_move"] is None and "continuation" not in rf["method"]
    rep = certify_checkpoint(pb, pt, refine_mode="always")           # no --converge: the 5 % cap
    assert rep.verdict == "inconclusive" and "too far" in rep.refined["method"]


def test_the_converged_points_refinement_beyond_the_cap_downhill_is_accepted(monkeypatch):
    pb, pt = _fit(1.3)
    monkeypatch.setattr(converge_module, "converge", _fake_converge(pt))
    rep = certify_checkpoint(pb, pt, converge="lbfgs", refine_mode="always")
    # the checkpoint as given: refined under the 5 % cap, too far
    assert "too far" in rep.refined["method"] and rep.refined["beyond_max_move"] is None
    # the same point as the end of the dynamics: accepted, certified exactly, the evidence kept
    rf = rep.at_converged.refined
    tol = Tolerances()
    assert rep.verdict == "global_min" and rf["verdict"] == "global_min"
    bm = rf["beyond_max_move"]
    assert bm["accepted"] and bm["cap"] == DOWNHILL_FACTOR * tol.max_move
    assert tol.max_move < rf["distance"]["relative_to_scale"] == bm["move_relative_to_scale"] <= bm["cap"]
    assert bm["loss_end"] <= bm["loss_start"] and bm["largest_rise"] <= bm["tolerance"]
    assert "went on downhill" in rf["method"] and "only for the end point of --converge" in rf["method"]
    text = rep.text()
    assert "beyond max move" in text and "accepted because it went on downhill" in text
    assert rep.to_json()["converged"]["refined"]["beyond_max_move"] == bm
    got = check.check_certificate(rep.certificate)
    assert got.ok and got.verdict == "global_min"
    assert all(": OK" in line for line in rep.independent_check)


def test_beyond_the_larger_cap_stays_too_far():
    pb, pt = _fit(2.0)
    rf = refine_point(pb, pt, downhill=True)
    assert rf["distance"]["relative_to_scale"] > DOWNHILL_FACTOR * Tolerances().max_move
    assert rf["verdict"] == "inconclusive" and "too far" in rf["method"] and "beyond even" in rf["method"]
    assert rf["beyond_max_move"] is None


def test_uphill_segment_stays_too_far(monkeypatch):
    pb, pt = _fit(1.3)
    real = driver.segment_losses

    def bump(problem, p0, p1, samples=driver.DOWNHILL_SAMPLES):
        L = real(problem, p0, p1, samples).copy()
        L[samples // 2] += 0.1 * abs(L[0])             # a hill in the middle of the segment
        return L

    monkeypatch.setattr(driver, "segment_losses", bump)
    rf = refine_point(pb, pt, downhill=True)
    assert rf["verdict"] == "inconclusive" and "too far" in rf["method"] and "rises by" in rf["method"]
    assert rf["beyond_max_move"] is None


def test_segment_evidence_on_real_segments():
    tol = Tolerances()
    pb, star = _fit(1.0)                       # the exact fit (loss 0 up to rounding)
    _, up = _fit(1.3)
    # the refined point has a higher loss than the point refined: rejected
    ev = segment_evidence(pb, star, up, distance_moved(pb, star, up), tol)
    assert not ev.accepted and ev.loss_end > ev.loss_start and "above the end point's" in ev.text()
    # the other way round: downhill all along, accepted
    ev = segment_evidence(pb, up, star, distance_moved(pb, up, star), tol)
    assert ev.accepted and ev.largest_rise <= ev.tolerance
    # the same function (neuron 0 rebalanced, a_0 w_0 unchanged), both ends at loss 0: the straight
    # segment between them leaves the fit (a_0(t) w_0(t) is not constant), so the loss rises on it
    _, reb = as_problem_point(X, pb.Yf, [[0.8, 0.4], W[1]], [[1.25], A[1]], "relu")
    ev = segment_evidence(pb, star, reb, distance_moved(pb, star, reb), tol)
    assert tol.max_move < ev.move <= ev.cap
    assert not ev.accepted and ev.largest_rise > ev.tolerance and "rises by" in ev.text()


def test_without_downhill_no_segment_is_evaluated(monkeypatch):
    pb, pt = _fit(1.3)

    def boom(*a, **k):
        raise AssertionError("segment evaluated outside --converge")

    monkeypatch.setattr(driver, "segment_losses", boom)
    assert "too far" in refine_point(pb, pt)["method"]


@pytest.mark.parametrize("total", [0.0, 1000.0])
def test_the_converged_refinement_gets_what_is_left(monkeypatch, total):
    """The given point's refinement runs under GIVEN_REFINE_BUDGET_WITH_CONVERGE; the converged
    point's under what is left of CONVERGE_TOTAL_BUDGET, at least CONVERGED_REFINE_MIN and at most
    refine.driver.REFINE_BUDGET (the budget in force inside the refinement, named in its reports)."""
    pb, pt = _fit(1.3)
    monkeypatch.setattr(converge_module, "converge", _fake_converge(pt))
    monkeypatch.setattr(pipeline, "CONVERGE_TOTAL_BUDGET", total)
    seen = []
    real = driver.refine

    def spy(*a, **k):
        seen.append((rexact.budget_seconds(), rexact.budget_text()))
        return real(*a, **k)

    monkeypatch.setattr(driver, "refine", spy)
    certify_checkpoint(pb, pt, converge="lbfgs", refine_mode="always")
    assert len(seen) == 2
    assert seen[0][0] == pipeline.GIVEN_REFINE_BUDGET_WITH_CONVERGE
    if total == 0.0:
        assert seen[1][0] == pipeline.CONVERGED_REFINE_MIN and "CONVERGE_TOTAL_BUDGET" in seen[1][1]
    else:
        assert seen[1][0] == driver.REFINE_BUDGET and "REFINE_BUDGET" in seen[1][1]


def test_segment_losses_with_an_output_bias():
    """The segment's ends are the two points' float losses (output bias included)."""
    from relucert.core.formulas import loss_half_mean
    from relucert.core.problem import fmpq_to_float
    pb, p0 = as_problem_point(X, [[1], [2], [0], [1], [3], [-1], [2]], W, A, "leaky_relu:1/10", c=[0.5])
    _, p1 = as_problem_point(X, pb.Yf, [[1.1, 0.4], W[1]], [[0.9], A[1]], "leaky_relu:1/10", c=[0.25])
    L = segment_losses(pb, p0, p1)
    assert L.shape == (driver.DOWNHILL_SAMPLES + 1,) and np.isfinite(L).all()
    for end, p in ((L[0], p0), (L[-1], p1)):
        assert end == pytest.approx(fmpq_to_float(loss_half_mean(pb, p)), rel=1e-12)
