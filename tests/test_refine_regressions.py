"""Refinement regressions and its time budget.

1. The replica reading hands the narrow network a pattern whose snapped kink pairs name the NARROW
   neurons (found by the coverage campaign: a snapped pair of a neuron after a dropped replica kept
   its wide index, and the pattern update of the vector Newton raised IndexError).
2. One time budget (refine.driver.REFINE_BUDGET) covers a whole refinement; readings and kink
   tolerances not reached are reported as not tried; progress is reported per reading."""
from __future__ import annotations

import numpy as np

import relucert.refine.replicas as replicas
from relucert.core.problem import Point, Problem
from relucert.refine.classify import Tolerances, classify


def _instance():
    # d = 2, k = 2; neurons 0 and 1 are near-parallel replicas (angle 1e-3), neuron 2 sits on the
    # kink of data point 3 up to a relative 1e-8 (snapped), neuron 3 is an ordinary alive neuron
    X = np.array([[1.0, 0.5], [0.3, 1.0], [-1.0, 0.2], [1.0, -1.0], [0.7, 0.7], [-0.4, -1.0]])
    Y = np.array([[0.5, -0.2], [0.1, 0.9], [-0.3, 0.4], [0.2, 0.2], [1.0, -0.5], [0.0, 0.3]])
    W = np.array([[1.0, 0.2], [1.0, 0.201], [1.0, 1.0 + 1e-8], [-0.5, 1.0]])
    A = np.array([[0.4, 0.1], [0.3, 0.08], [0.5, -0.6], [0.7, 0.2]])
    pb = Problem.make(X, Y, "relu")
    return pb, Point.make(W, A, pb)


def test_snapped_pairs_are_reindexed_for_the_narrow_network(monkeypatch):
    pb, pt = _instance()
    tol = Tolerances()
    pat = classify(pb, pt, tol)
    assert [(j, i) for j, i, _ in pat.snapped] == [(2, 3)]          # hand check: w_2 . x_3 = -1e-8
    assert replicas.replica_clusters(pt, pat, tol.replica_angle) == [[0, 1]]
    seen = {}

    def capture(problem, narrow, npat, reading, **kw):
        seen["npat"] = npat
        return None, "captured"

    monkeypatch.setattr(replicas, "refine_grouped", capture)
    monkeypatch.setattr(replicas, "refine_vector", capture)
    replicas.refine_replicas(pb, pt, pat, "as_given", tol)
    npat = seen["npat"]
    # neurons kept: 0 (the merged cluster), 2, 3 -> narrow indices 0, 1, 2; wide neuron 2 is narrow 1
    assert [(t, i) for t, i, _ in npat.snapped] == [(1, 3)]
    assert npat.signs.shape == (pb.n, 3)
    for t, i, _ in npat.snapped:
        assert npat.signs[i, t] == 0 and i in npat.kinks[t]


# ------------------------------------------------------------------------------------------------
# one time budget for the whole refinement (refine.driver.REFINE_BUDGET)
# ------------------------------------------------------------------------------------------------

def test_time_budget_nests_and_the_earlier_deadline_wins():
    import math
    import time

    from relucert.refine import exact as E
    assert E.deadline() == math.inf and E.budget_seconds() == 0 and not E.out_of_time()
    with E.time_budget(100.0):
        outer = E.deadline()
        assert E.budget_seconds() == 100.0 and outer > time.monotonic()
        with E.time_budget(1000.0):              # a later deadline does not extend the outer one
            assert E.deadline() == outer
        with E.time_budget(0.0):
            time.sleep(0.01)
            assert E.out_of_time() and E.budget_seconds() == 0.0
        assert E.deadline() == outer and not E.out_of_time()
    assert E.deadline() == math.inf
    # a stop names the budget in force: the setting of the earlier deadline
    with E.time_budget(15.0, "pipeline.GIVEN"):
        with E.time_budget(40.0):
            assert E.budget_text() == "the refinement time budget of 15 s (pipeline.GIVEN)"
    with E.time_budget(40.0):
        assert E.budget_text() == "the refinement time budget of 40 s (refine.driver.REFINE_BUDGET)"


def test_readings_after_the_budget_are_reported_as_not_tried(monkeypatch):
    import relucert.refine.driver as D
    from relucert.core.problem import Point, Problem

    # scalar output, one tiny neuron (size 1e-8): three readings of it are refined in turn
    X = np.array([[1.0, 0.2], [0.3, 1.0], [-1.0, 0.4], [0.5, -1.0], [0.9, 0.9]])
    Y = np.array([[0.7], [0.2], [-0.1], [0.4], [1.1]])
    W = np.array([[1.0, 0.3], [-0.4, 1.0], [1e-4, 1e-4]])
    A = np.array([[0.6], [0.3], [1e-4]])
    pb = Problem.make(X, Y, "relu")
    pt = Point.make(W, A, pb)
    full = D.refine(pb, pt)
    assert len(full["refinements"]) >= 2 and not any("not tried" in r.note for r in full["refinements"])
    monkeypatch.setattr(D, "REFINE_BUDGET", 0.0)
    cut = D.refine(pb, pt)["refinements"]
    assert [r.reading for r in cut[:len(full["refinements"])]] == [r.reading for r in full["refinements"]][:len(cut)]
    assert cut[0].note == full["refinements"][0].note or "time budget" in cut[0].note
    later = [r for r in cut[1:] if r.reading != "read_as_zero"]
    assert later and all(r.note.startswith("not tried: the refinement time budget of 0 s") and r.result is None
                         for r in later)


def test_refinement_progress_is_reported_per_reading():
    import relucert.refine.driver as D
    from relucert.core.problem import Point, Problem
    X = np.array([[1.0, 0.2], [0.3, 1.0], [-1.0, 0.4], [0.5, -1.0], [0.9, 0.9]])
    Y = np.array([[0.7], [0.2], [-0.1], [0.4], [1.1]])
    pb = Problem.make(X, Y, "relu")
    pt = Point.make(np.array([[1.0, 0.3], [-0.4, 1.0], [1e-4, 1e-4]]), np.array([[0.6], [0.3], [1e-4]]), pb)
    calls = []
    info = D.refine(pb, pt, progress=lambda done, total, v: calls.append((done, total, v)))
    n_read = len([r for r in info["refinements"] if r.reading != "dead_read_as_zero"])
    assert [c[0] for c in calls] == list(range(1, len(calls) + 1)) and calls[-1][0] == calls[-1][1]
    assert all(v is None for _, _, v in calls) and len(calls) == n_read
    rep = D.refine_point(pb, pt, progress=lambda *a: calls.append(a))
    assert rep["verdict"] == D.choose(info["refinements"]).verdict


# 3. A tiny neuron with a tiny output weight but an ordinary input weight (found by the coverage
#    campaign, run 75: a converged L-BFGS point): kept as given it is not refined and violates (S1) by
#    itself, a_j := 0 leaves G_j != 0, and w_j := 0 moves theta by |w_j|. No reading was decisive;
#    the fallback reading "tiny_refined" refines the tiny neurons with the alive ones.

def _tiny_output_instance(noise: float = 1e-7):
    # neuron 0 (w = (1, 0), a = 2) fits x > 0, neuron 1 (w = (-1, 0), a = 1e-8) the tiny targets at x < 0;
    # size of neuron 1: |a||w| max|x| / max|y| = 1e-8 * 1 * sqrt(2) / 2 < 1e-6 (tiny)
    X = np.array([[-1.0, 1], [-0.75, 1], [-0.5, 1], [0.5, 1], [0.75, 1], [1.0, 1]])
    W0, A0 = np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([[2.0], [1e-8]])
    Y = np.maximum(X @ W0.T, 0) @ A0
    rng = np.random.default_rng(0)
    W = W0 * (1 + noise * rng.standard_normal(W0.shape))
    A = A0 * (1 + noise * rng.standard_normal(A0.shape))
    pb = Problem.make(X, Y, "relu")
    return pb, Point.make(W, A, pb)


def test_tiny_neurons_refined_with_the_alive_ones_when_no_reading_is_decisive():
    from relucert.check import check_certificate
    from relucert.refine import refine
    from relucert.refine.driver import refined_report_typed
    pb, pt = _tiny_output_instance()
    info = refine(pb, pt, Tolerances())
    assert info["pattern"].status == ["alive", "tiny"]
    by = {r.reading: r for r in info["refinements"]}
    assert [r.reading for r in info["refinements"]][:4] == ["as_given", "tiny_output_zero", "tiny_zero",
                                                            "tiny_refined"]
    assert by["as_given"].verdict == "not_stationary" and by["tiny_output_zero"].verdict == "not_stationary"
    assert "too far" in by["tiny_zero"].note
    alt = by["tiny_refined"]
    assert alt.verdict in ("local_min", "global_min") and alt.note.startswith("tiny neurons [1] refined")
    assert check_certificate(alt.result.certificate).ok
    assert alt.distance["relative"] < 1e-5                       # a nearby point, not a far one
    # the refined tiny neuron is still a small neuron with its own sign: refined, not zeroed
    assert 0 < float(alt.point.A[1][0]) < 1e-7
    rep = refined_report_typed(pb, pt, info)
    assert rep.best.reading == "tiny_refined"
    amb = [a for a in rep.ambiguities if "tiny neurons" in a.what]
    assert amb and amb[0].verdicts["tiny_refined"] == alt.verdict and "refined with the alive" in amb[0].what


def test_tiny_refined_is_not_tried_when_a_reading_is_decisive():
    from relucert.io import load
    from relucert.refine import refine
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "paper",
                        "1d_input_with_bias.json")
    pb, pt = load(path)
    info = refine(pb, pt, Tolerances())
    assert info["tiny"] and "tiny_refined" not in [r.reading for r in info["refinements"]]
