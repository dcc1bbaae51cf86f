"""Nearest stationary point with pattern updates (issue 12, "Nearest stationary point, with pattern
updates"; docs/theory.md §6.2, §6.3).

When the nearest stationary point of the checkpoint's activation pattern lies outside that pattern,
the refinement walks towards it, makes the first strict pair that reaches its kink a kink (or flips
it when its neuron has no room for another kink), solves again on the updated pattern, and releases
kinks whose multiplier shows a descent; ``pattern_out`` receives the pattern the point was solved on.
Hand-made rounds (exact), the helpers, and small seeded runs of an ordinary Adam training (numpy,
the idea of examples/own_model/train.py) on which the fixed-pattern refinement leaves the pattern
and the rounds certify."""

import numpy as np
import pytest
from flint import fmpq

import relucert.refine.driver as driver
from relucert.check import require_valid
from relucert.core.problem import Point, Problem
from relucert.decide.certify import certify
from relucert.pipeline import certify_checkpoint
from relucert.refine import Tolerances, classify
from relucert.refine.classify import pattern_flips
from relucert.refine.exact import PatternUpdate, apply_crossings, crossings, kink_allowed, kink_releases
from relucert.refine.scalar import refine_scalar
from relucert.refine.vector import _float_stage, refine_vector

Q = fmpq


def _setup(X, Y, W, A, act="relu"):
    pb = Problem.make(X, Y, act)
    pt = Point.make(W, A, pb)
    return pb, pt, classify(pb, pt, Tolerances())


# ------------------------------------------------------------------------------------------------
# hand-made rounds, exact
# ------------------------------------------------------------------------------------------------

def test_scalar_round_makes_the_crossing_pair_a_kink():
    # x1 = (1, 0), x2 = (0, 1), y = (1, -1); w = (1, 1/20), a = 1: x2 is strictly active (relative
    # 0.05, no kink tolerance snaps it).  On that pattern the fit is v = (1, -1), so v.x2 goes from
    # 1/20 to -1 and reaches 0 at t = (1/20) / (1/20 + 1) = 1/21 of the step, at v = (1, 0): x2
    # becomes a kink.  There v fits x1 exactly, and the kink multiplier is right (e_2 = +1, a > 0:
    # moving into x2 > 0 raises the loss, the other side is flat): a local minimum.
    pb, pt, pat = _setup([[1, 0], [0, 1]], [[1], [-1]], [[1, "1/20"]], [[1]])
    assert pat.kinks == [[]] and pat.signs[1, 0] == 1
    fixed, _ = refine_scalar(pb, pt, pat, "as_given")                  # no pattern_out: the given pattern only
    assert pattern_flips(pb, fixed, pat, []) == [[0, 1]]
    out = []
    new, note = refine_scalar(pb, pt, pat, "as_given", pattern_out=out)
    upd = out[-1]
    assert isinstance(upd, PatternUpdate)
    assert [(r["what"], r["pairs"]) for r in upd.rounds] == [("kink", [[0, 1, 0]])]
    assert upd.rounds[0]["at"] == pytest.approx(1 / 21, rel=1e-15)
    assert upd.pattern.kinks == [[1]] and upd.pattern.signs[1, 0] == 0
    assert upd.changed_pairs(pat) == [[0, 1, 1, 0]]
    assert "round 1: [(0, 1) -> kink]" in note
    # exactly on the kink, |a| w = (1, 0) exactly, |a|/|w| kept from the checkpoint
    assert new.W[0][1] == 0 and abs(new.A[0][0]) * new.W[0][0] == 1
    assert pattern_flips(pb, new, upd.pattern, []) == []
    res = certify(pb, new)
    assert res.verdict == "local_min"
    assert require_valid(res.certificate) == "local_min"


def test_scalar_round_releases_a_wrong_signed_kink():
    # y = (1, 1) with w = (1, 1e-7): x2 is snapped onto the kink.  On that pattern v = (1, 0) and
    # e_2 = -1 with a > 0: mu_2 = 0, gamma_2 = -1/2 < 0, so moving x2 to the positive side descends:
    # the kink is released to +, and on that pattern v = (1, 1) fits both points: loss 0.
    pb, pt, pat = _setup([[1, 0], [0, 1]], [[1], [1]], [[1, 1e-7]], [[1]])
    assert pat.kinks == [[1]]
    Wf = np.array([[1.0, 0.0]])
    assert kink_releases(pb, Wf, np.array([[1.0]]), pat.signs, [0]) == [[0, 1, 1]]
    out = []
    new, note = refine_scalar(pb, pt, pat, "as_given", pattern_out=out)
    assert [(r["what"], r["pairs"]) for r in out[-1].rounds] == [("release", [[0, 1, 1]])]
    assert "kink released [(0, 1) -> +]" in note
    assert abs(new.A[0][0]) * new.W[0][0] == 1 and abs(new.A[0][0]) * new.W[0][1] == 1
    assert pattern_flips(pb, new, out[-1].pattern, []) == []
    assert certify(pb, new).verdict == "global_min"


def test_crossings_and_kink_room():
    # exact fractions of the step, ties kept together, pairs already on the wrong side at t = 0
    signs = np.array([[1, -1], [1, 1], [-1, 0]])
    Z0 = np.array([[Q(1), Q(-1)], [Q(2), Q(1)], [Q(-1), Q(0)]], dtype=object)
    Z1 = np.array([[Q(-1), Q(-2)], [Q(-2), Q(-1)], [Q(0), Q(5)]], dtype=object)
    got = crossings(Z0, Z1, signs, [0, 1])
    assert got == [(Q(1, 2), 0, 0), (Q(1, 2), 0, 1), (Q(1, 2), 1, 1), (Q(1), 0, 2)]
    assert crossings(Z0, Z0, signs, [0, 1]) == []
    # d = 2: a neuron takes one kink, a second independent one would force w = 0 -> flip instead
    X = [[Q(1), Q(0)], [Q(0), Q(1)], [Q(2), Q(0)]]
    s = np.array([[0], [1], [1]])
    assert not kink_allowed(X, s, 0, 1)
    assert kink_allowed(X, s, 0, 2)                      # parallel to the kink it has
    assert apply_crossings(X, s, [(0, 1), (0, 2)]) == [[0, 1, -1], [0, 2, 0]]
    assert s[:, 0].tolist() == [0, -1, 0]


def test_vector_float_stage_rounds_hand_case():
    # one neuron, k = 2, rank-constrained (Newton): y = ((1, 2), (-1, -2), (1, 1)) on x = e1, e2, e1 + e2.
    # From w = (1, 1/20) Newton carries w.x2 across 0: x2 becomes a kink, whose multiplier then shows a
    # descent to the negative side, so it is released there; the result is stationary on that pattern
    pb, pt, pat = _setup([[1, 0], [0, 1], [1, 1]], [[1, 2], [-1, -2], [1, 1]], [[1, "1/20"]], [[1, 2]])
    fl = _float_stage(pb, pt.W, pt.A, pt, pat, [0], update=True)
    assert [(r["what"], r["pairs"]) for r in fl.rounds] == [("kink", [[0, 1, 0]]), ("release", [[0, 1, -1]])]
    assert fl.grad < 1e-12 and fl.pattern.signs[:, 0].tolist() == [1, -1, 1]
    out = []
    new, note = refine_vector(pb, pt, pat, "as_given", pattern_out=out)
    assert "round 1: [(0, 1) -> kink]" in note and "round 2: kink released [(0, 1) -> -]" in note
    assert pattern_flips(pb, new, out[-1].pattern, []) == []
    # the same without pattern updates stays on the given pattern, at another stationary point of it
    fl0 = _float_stage(pb, pt.W, pt.A, pt, pat, [0], update=False)
    assert fl0.rounds == [] and fl0.pattern is pat


# ------------------------------------------------------------------------------------------------
# seeded runs of an ordinary training (numpy Adam, ReLU with a folded bias, squared loss)
# ------------------------------------------------------------------------------------------------

def _train(seed: int, k: int, n: int = 10, m: int = 3, steps: int = 1500, lr: float = 0.05):
    """An Adam run as in examples/own_model/train.py, scaled down: 1-D inputs with a constant
    column (the hidden bias), a 2-neuron teacher plus noise, m ReLU neurons, mean squared loss."""
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.standard_normal((n, 1)), np.ones((n, 1))])
    Wt, At = rng.standard_normal((2, 2)), rng.standard_normal((2, k))
    Y = np.maximum(X @ Wt.T, 0) @ At + 0.1 * rng.standard_normal((n, k))
    W, A = rng.standard_normal((m, 2)) * 0.7, rng.standard_normal((m, k)) * 0.7
    mom = [np.zeros_like(W), np.zeros_like(A)]
    sq = [np.zeros_like(W), np.zeros_like(A)]
    for t in range(1, steps + 1):
        Z = X @ W.T
        H = np.maximum(Z, 0)
        E = H @ A - Y
        grads = [(((E @ A.T) * (Z > 0)).T @ X) / n, H.T @ E / n]
        for p, g, mm, vv in zip((W, A), grads, mom, sq):
            mm *= 0.9
            mm += 0.1 * g
            vv *= 0.999
            vv += 0.001 * g * g
            p -= lr * (mm / (1 - 0.9 ** t)) / (np.sqrt(vv / (1 - 0.999 ** t)) + 1e-8)
    pb = Problem.make(X.tolist(), Y.tolist(), "relu")
    return pb, Point.make(W.tolist(), A.tolist(), pb)


SEEDED = [(10, 2, "local_min"), (23, 2, "local_min"), (2, 1, "local_min")]


@pytest.mark.parametrize("seed, k, verdict", SEEDED)
def test_seeded_run_fixed_pattern_leaves_rounds_certify(seed, k, verdict):
    pb, pt = _train(seed, k)
    pat = classify(pb, pt, Tolerances())
    refine = refine_scalar if k == 1 else refine_vector
    # on the checkpoint's own pattern the nearest stationary point is outside it
    fixed, _ = refine(pb, pt, pat, "as_given")
    assert fixed is None or pattern_flips(pb, fixed, pat, [])
    out = []
    new, note = refine(pb, pt, pat, "as_given", pattern_out=out)
    assert new is not None, note
    upd = out[-1]
    assert upd.rounds and upd.changed_pairs(pat) and "pattern updated" in note
    assert pattern_flips(pb, new, upd.pattern, []) == []
    assert driver.distance_moved(pb, pt, new).relative_to_scale < Tolerances().max_move
    res = certify(pb, new)
    assert res.verdict == verdict, note
    assert require_valid(res.certificate) == verdict


@pytest.mark.parametrize("seed, k, verdict", SEEDED)
def test_seeded_run_end_to_end(seed, k, verdict):
    pb, pt = _train(seed, k)
    rep = certify_checkpoint(pb, pt, refine_mode="always")     # seed 23 stops at a float gradient 3.9e-3
    rf = rep.refined
    assert rep.verdict == verdict, rf["reason"]
    assert not rf["left_pattern"] and "pattern updated" in rf["method"]
    assert require_valid(rf["certificate"]) == verdict
    assert rf["distance"]["relative_to_scale"] < Tolerances().max_move
