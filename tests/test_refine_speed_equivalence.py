"""Issue 15 (certify faster than the 5000-perturbation check): the shortcuts change no answer.

- ``decide.certify.NeuronMemo``: certifications sharing per-neuron analyses give the same
  certificate, byte for byte, as certifications without (in any order);
- ``refine.exact.rounded_nearest``: an exact solution of the fixed-pattern system, the nearest one
  to working precision, with short rationals (the exact nearest when it is the only solution);
- on the paper's 1-D end point (benchmarks/bench_perturbation.py) the refined points are exactly
  stationary on the same pattern, short (< 200 bits instead of ~3700), move the same distance as
  the exact nearest solution to ~1e-12, and every reading's verdict and escape neurons are those of
  the exact nearest solution;
- the vectorised / subset rewrites (``kink_releases``, ``fragile_dead``, ``targets_without``, the
  block null space of ``_ScalarSystem.build``) agree with brute-force oracles written out here
  (labelled: independent copies of the formulas, for the test only)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from flint import fmpq

import relucert.refine.exact as exact
from relucert.core.formulas import forward, is_dead
from relucert.core.linalg import mat, nullspace
from relucert.core.problem import Point, Problem
from relucert.decide.certify import NeuronMemo, certify
from relucert.io import load
from relucert.refine import Tolerances, refine
from relucert.refine.classify import classify, pattern_flips
from relucert.refine.driver import fragile_dead
from relucert.refine.exact import kink_releases, nearest_solve, rounded_nearest, split_metric_block, targets_without

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAPER = os.path.join(ROOT, "examples", "paper", "1d_input_with_bias.json")
SHOWCASE = os.path.join(ROOT, "examples", "showcase", "final.json")
Q = fmpq


def _bits(point: Point) -> int:
    return max(max(int(v.p).bit_length(), int(v.q).bit_length()) for v in list(point.W.ravel()) + list(point.A.ravel()))


@pytest.fixture(scope="module")
def paper():
    pb, pt = load(PAPER)
    exact._SOLVED.clear()
    info = refine(pb, pt, Tolerances())
    return pb, pt, info


# ------------------------------------------------------------------------------------------------
# NeuronMemo: the same certificates
# ------------------------------------------------------------------------------------------------

def _cert_text(res) -> str:
    return json.dumps(res.certificate, sort_keys=True)


@pytest.mark.parametrize("path", [PAPER, SHOWCASE])
def test_memo_gives_byte_identical_certificates(path, paper):
    if path == PAPER:
        pb, _, info = paper
    else:
        pb, pt = load(path)
        info = refine(pb, pt, Tolerances())
    points = [r.point for r in info["refinements"] if r.point is not None]
    assert len(points) >= 3
    plain = [certify(pb, p) for p in points]
    for order in (points, points[::-1]):
        memo = NeuronMemo()
        shared = {id(p): certify(pb, p, memo=memo) for p in order}
        for p, ref in zip(points, plain):
            got = shared[id(p)]
            assert _cert_text(got) == _cert_text(ref)
            assert got.verdict == ref.verdict and got.escape_neurons == ref.escape_neurons
            assert [n.__dict__ for n in got.neurons] == [n.__dict__ for n in ref.neurons]
            assert got.reason == ref.reason
        assert memo.hits > 0                        # the readings do share neurons


def test_memo_keys_on_content_not_on_index():
    # two problems with different residuals and a point whose neurons repeat: the memo never
    # answers for a neuron whose data, residuals or weights differ
    pb1 = Problem.make([[1, 0], [0, 1], [1, 1]], [[1], [-1], [2]], "relu")
    pb2 = Problem.make([[1, 0], [0, 1], [1, 1]], [[1], [-1], [3]], "relu")
    pt = Point.make([[1, 0], [1, 0], [0, 1]], [[1], [1], ["-1/2"]], pb1)
    memo = NeuronMemo()
    for pb in (pb1, pb2, pb1):
        assert _cert_text(certify(pb, pt, memo=memo)) == _cert_text(certify(pb, pt))
    # a vector-output saddle with an escape neuron of a_j = 0 (the escape path is rebuilt)
    pb3 = Problem.make([[1, 0], [0, 1]], [[1, 2], [-1, -1]], "relu")
    pt3 = Point.make([[1, 0], [0, 0]], [[1, 2], [0, 0]], pb3)
    memo = NeuronMemo()
    first, second = certify(pb3, pt3, memo=memo), certify(pb3, pt3, memo=memo)
    assert _cert_text(first) == _cert_text(second) == _cert_text(certify(pb3, pt3))


# ------------------------------------------------------------------------------------------------
# rounded_nearest: exact, short, nearest to working precision
# ------------------------------------------------------------------------------------------------

def _check_rounded(K, rhs, P, base):
    x = rounded_nearest(K, rhs, P, base)
    assert x is not None
    # exactly a solution: K x = K base + rhs
    for row, r in zip(K, rhs):
        assert sum((a * (xv - bv) for a, xv, bv in zip(row, x, base)), Q(0)) == r
    near = nearest_solve(K, rhs, P)
    gap = max(abs(float(xv - bv - nv)) for xv, bv, nv in zip(x, base, near))
    scale = max(max(abs(float(v)) for v in near), 2.0 ** -30 * max(abs(float(v)) for v in base))
    assert gap <= 1e-9 * scale
    return x, near


def test_rounded_nearest_hand():
    # one equation x_1 + x_2 = -2 from base (1, 4), metric diag(2, 8): nearest change (-2/5, -8/5)
    base = [Q(1), Q(4)]
    x, near = _check_rounded([[Q(1), Q(1)]], [Q(-2)], [[[Q(2)]], [[Q(8)]]], base)
    assert near == [Q(-2, 5), Q(-8, 5)]
    assert sum(x, Q(0)) == 3
    # nothing to change: base itself
    assert rounded_nearest([[Q(1), Q(1)]], [Q(0)], [[[Q(2)]], [[Q(8)]]], base) == base
    # a square system has one solution: the exact one
    x = rounded_nearest([[Q(1), Q(0)], [Q(0), Q(2)]], [Q(1, 3), Q(1)], [[[Q(1)]], [[Q(1)]]], [Q(0), Q(0)])
    assert x == [Q(1, 3), Q(1, 2)]
    # inconsistent: None (the caller falls back to the exact solve, which says inconsistent)
    assert rounded_nearest([[Q(1), Q(1)], [Q(2), Q(2)]], [Q(1), Q(3)], [[[Q(1)]], [[Q(1)]]], base) is None
    # inconsistent by 1e-30 only: floats cannot see it, the exact check proves it
    with pytest.raises(exact.Inconsistent):
        rounded_nearest([[Q(1), Q(0)], [Q(0), Q(1)], [Q(1), Q(1)]], [Q(1), Q(1), Q(2) + Q(1, 10 ** 30)],
                        [[[Q(1)]], [[Q(1)]]], [Q(0), Q(0)])
    assert nearest_solve([[Q(1), Q(0)], [Q(0), Q(1)], [Q(1), Q(1)]], [Q(1), Q(1), Q(2) + Q(1, 10 ** 30)]) is None
    # a neuron block no row touches keeps its value exactly
    x = rounded_nearest([[Q(1), Q(0), Q(0)]], [Q(1, 7)], [[[Q(1)]], [[Q(2), Q(1)], [Q(1), Q(2)]]],
                        [Q(1), Q(5, 3), Q(-2, 9)])
    assert x == [Q(8, 7), Q(5, 3), Q(-2, 9)]


def test_rounded_nearest_random_systems():
    rng = np.random.default_rng(3)
    for _ in range(25):
        blocks = [int(s) for s in rng.integers(1, 3, size=rng.integers(2, 6))]
        nvar = sum(blocks)
        r = int(rng.integers(1, nvar))
        K = [[Q(int(v)) for v in rng.integers(-3, 4, size=nvar)] for _ in range(r)]
        K.append([a + b for a, b in zip(K[0], K[-1])])                  # a dependent row
        truth = [Q(int(v), int(q)) for v, q in zip(rng.integers(-9, 10, size=nvar), rng.integers(1, 6, size=nvar))]
        base = [Q(*float(v).as_integer_ratio()) for v in rng.normal(size=nvar)]
        rhs = [sum((a * (t - b) for a, t, b in zip(row, truth, base)), Q(0)) for row in K]
        P = [split_metric_block([Q(*float(v).as_integer_ratio()) for v in rng.normal(size=s)],
                                Q(*float(abs(rng.normal()) + 0.1).as_integer_ratio())) for s in blocks]
        if all(v == 0 for v in rhs):
            continue
        _check_rounded(K, rhs, P, base)


# ------------------------------------------------------------------------------------------------
# the paper's 1-D end point: short refined points, same answers as the exact nearest solution
# ------------------------------------------------------------------------------------------------

def test_paper_point_short_and_same_as_exact_nearest(paper, monkeypatch):
    pb, pt, info = paper
    refs = info["refinements"]
    monkeypatch.setattr(exact, "NEAREST_EXACT_MAX_BITS", 10 ** 9)        # always the exact nearest
    exact._SOLVED.clear()
    ref_info = refine(pb, pt, Tolerances())
    exact._SOLVED.clear()
    old = ref_info["refinements"]
    assert [r.reading for r in refs] == [r.reading for r in old]
    assert [r.verdict for r in refs] == [r.verdict for r in old] == \
        ["local_min", "saddle", "saddle", "local_min", "saddle"]
    for new, ref in zip(refs, old):
        assert new.result.escape_neurons == ref.result.escape_neurons
        assert new.left_pattern == ref.left_pattern == []
        assert _bits(new.point) < 200 < 3000 < _bits(ref.point)
        for key in ("max_abs", "relative", "relative_to_scale"):
            assert abs(new.distance[key] - ref.distance[key]) <= 1e-12 * ref.distance[key]
        assert new.distance["relative_to_scale"] < Tolerances().max_move
    # the refined point is on the checkpoint's pattern and exactly stationary there: its certificate
    # says local_min (a stationary point), the independent checker agrees
    pat = classify(pb, pt, Tolerances())
    assert pattern_flips(pb, refs[0].point, pat, []) == []
    from relucert.check import require_valid
    assert require_valid(refs[0].result.certificate) == "local_min"


# ------------------------------------------------------------------------------------------------
# brute-force oracles (independent copies of the formulas, for this test only)
# ------------------------------------------------------------------------------------------------

def _oracle_kink_releases(problem, Wf, Af, signs, neurons):
    """The per-neuron loop of kink_releases with numpy least squares for every neuron (oracle)."""
    X, n = problem.Xf, problem.n
    ap, am = float(problem.activation.alpha_plus), float(problem.activation.alpha_minus)
    slopes = np.where(signs > 0, ap, np.where(signs < 0, am, 0.0))
    E = (slopes * (X @ Wf.T)) @ Af - problem.Yf
    out = []
    for j in neurons:
        K = [i for i in range(n) if signs[i, j] == 0 and np.any(X[i] != 0)]
        if not K or not np.any(Af[j] != 0) or np.linalg.matrix_rank(X[K]) < len(K):
            continue
        c = E @ Af[j] / n
        b = (np.where(signs[:, j] > 0, ap, am) * c) @ X
        mu = np.linalg.lstsq(X[K].T, b, rcond=None)[0]
        scale = float(np.abs(c) @ np.linalg.norm(X, axis=1))
        if np.linalg.norm(X[K].T @ mu - b) > 1e-6 * max(scale, 1e-300):
            continue
        for q, i in enumerate(K):
            xn = float(np.linalg.norm(X[i]))
            down, up = mu[q], -(mu[q] + (ap - am) * c[i])
            if max(down, up) > exact.RELEASE_TOL * scale / xn:
                out.append((max(down, up) * xn / scale, [j, i, -1 if down >= up else 1]))
    return out


def test_kink_releases_matches_oracle():
    rng = np.random.default_rng(0)
    nonempty = 0
    for trial in range(150):
        n, d, m, k = (int(v) for v in (rng.integers(3, 8), rng.integers(1, 4), rng.integers(1, 6), rng.integers(1, 3)))
        pb = Problem.make(rng.integers(-3, 4, size=(n, d)).tolist(), rng.normal(size=(n, k)).tolist(),
                          ["relu", "leaky_relu:0.1"][trial % 2])
        W, A = rng.normal(size=(m, d)), rng.normal(size=(m, k))
        signs = rng.choice([-1, 0, 1], size=(n, m), p=[0.4, 0.2, 0.4])
        got = kink_releases(pb, W, A, signs, list(range(m)))
        want = _oracle_kink_releases(pb, W, A, signs, list(range(m)))
        # the same releases; the order is by rate (steepest first), ties between equal rates aside
        assert sorted(got) == sorted(p for _, p in want)
        rates = {tuple(p): r for r, p in want}
        assert all(rates[tuple(a)] >= rates[tuple(b)] * (1 - 1e-9) for a, b in zip(got, got[1:]))
        nonempty += bool(got)
    assert nonempty > 20


def test_fragile_dead_matches_oracle(paper):
    pb, pt, info = paper
    for point in [pt] + [r.point for r in info["refinements"]]:
        theta = float(np.sqrt((point.Wf ** 2).sum() + (point.Af ** 2).sum()))
        xn = np.linalg.norm(pb.Xf, axis=1)
        want = [j for j in range(point.m) if is_dead(pb.X, point.W[j].tolist(), pb.activation.alpha_minus)
                and min(abs(float(pb.Xf[i] @ point.Wf[j])) / xn[i] for i in range(pb.n) if xn[i] > 0) < 1e-3 * theta]
        assert fragile_dead(pb, point) == want
    assert fragile_dead(pb, info["refinements"][0].point)        # the paper point has such neurons


def test_targets_without_matches_full_forward(paper):
    pb, pt, _ = paper
    act = pb.activation
    for js in ([], [0, 2, 3], list(range(pt.m))):
        A0 = pt.A.copy()
        for j in js:
            A0[j] = [Q(0)]
        want = pb.Y - forward(pb.X, pb.Y, pt.W, A0, act.alpha_plus, act.alpha_minus).F
        assert targets_without(pb, pt.W, pt.A, js).tolist() == want.tolist()


def test_build_block_nullspace_matches_full_nullspace(paper):
    # f* = projection of y onto the column space of M N^T, N = null space of the kink rows C: the
    # block-by-block null space of build gives the same right-hand side as the full one (oracle)
    pb, pt, _ = paper
    from relucert.refine import scalar
    pat = classify(pb, pt, Tolerances())
    seen = {}
    orig = scalar._ScalarSystem.build

    def spy(self, p, v):
        out = orig(self, p, v)
        seen["sys"], seen["out"], seen["pat"], seen["v"] = self, out, p, v
        return out
    scalar._ScalarSystem.build = spy
    try:
        exact._SOLVED.clear()
        scalar.refine_scalar(pb, pt, pat, "as_given", pattern_out=[])
    finally:
        scalar._ScalarSystem.build = orig
        exact._SOLVED.clear()
    K, rhs, _ = seen["out"]
    sys_, v = seen["sys"], seen["v"]
    nC = len(K) - pb.n
    C, M = K[:nC], K[nC:]
    N = nullspace(C, sys_.nv)
    B = mat(M) * mat(N).transpose()
    from relucert.core.linalg import independent_subset
    Bl = [[B[i, c] for c in range(B.ncols())] for i in range(pb.n)]
    cols = independent_subset([[Bl[i][c] for i in range(pb.n)] for c in range(B.ncols())])
    Bb = mat([[Bl[i][c] for c in cols] for i in range(pb.n)])
    from flint import fmpq_mat
    coef = (Bb.transpose() * Bb).solve(Bb.transpose() * fmpq_mat(pb.n, 1, sys_.y))
    fstar = [(Bb * coef)[i, 0] for i in range(pb.n)]
    Kv = mat(K) * fmpq_mat(sys_.nv, 1, v)
    want = [-Kv[i, 0] for i in range(nC)] + [fstar[i] - Kv[nC + i, 0] for i in range(pb.n)]
    assert rhs == want
