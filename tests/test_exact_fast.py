"""The filtered exact evaluation (core/exactfast.py) gives exactly the generic formulas' values, and
certify gives identical verdicts and certificates on both paths (issue 15).

The oracle is the generic exact path (``forward`` / ``output_grad`` / ``linear_part`` on fmpq
object arrays), selected by raising ``exactfast.FAST_MIN_PAIRS``; the fast path by lowering it to 0."""
from __future__ import annotations

import random

import numpy as np
import pytest
from flint import fmpq

from relucert.core import exactfast
from relucert.core.formulas import ExactState, loss_half_mean
from relucert.core.problem import Point, Problem
from relucert.decide.certify import certify

ACTIVATIONS = ["relu", "abs", "leaky_relu", (1, 0.01), "2,1/3"]


def _both(monkeypatch, pb, pt):
    monkeypatch.setattr(exactfast, "FAST_MIN_PAIRS", 10 ** 12)
    monkeypatch.setattr(exactfast, "FAST_MIN_WORK", 10 ** 12)
    slow = ExactState(pb, pt)
    monkeypatch.setattr(exactfast, "FAST_MIN_PAIRS", 0)
    fast = ExactState(pb, pt)
    return slow, fast


def _random_instance(rng, trial):
    n, d, m, k = (int(rng.integers(1, 9)), int(rng.integers(1, 4)), int(rng.integers(1, 7)),
                  int(rng.integers(1, 4)))
    # small half-integers make exact kinks z_ij = 0 frequent; some trials use random floats
    X = rng.integers(-2, 3, (n, d)).astype(float) * 0.5 if trial % 3 else rng.standard_normal((n, d))
    if rng.random() < 0.3:
        X[0] = 0.0                                    # a zero data row
    W = rng.integers(-2, 3, (m, d)).astype(float)
    if rng.random() < 0.3:
        W[-1] = 0.0                                   # a zero neuron
    A = rng.standard_normal((m, k))
    if rng.random() < 0.3:
        A[0] = 0.0                                    # a zero output weight
    pb = Problem.make(X, rng.standard_normal((n, k)), ACTIVATIONS[trial % len(ACTIVATIONS)])
    if trial % 7 == 0:
        Xq = pb.X.copy()                              # (Problem.make's data is read-only)
        Xq[0, 0] = fmpq(1, 3)                         # non-dyadic data
        pb = Problem(Xq, pb.Y, pb.activation, pb.loss)
    c = rng.standard_normal(k) if trial % 2 == 0 else None
    return pb, Point.make(W, A, pb, c=c)


@pytest.mark.parametrize("route", [None, "objects", "limbs"])
def test_fast_first_order_equals_generic_formulas(monkeypatch, route):
    monkeypatch.setattr(exactfast, "X_ROUTE", route)
    rng = np.random.default_rng(1)
    for trial in range(150 if route is None else 60):
        pb, pt = _random_instance(rng, trial)
        slow, fast = _both(monkeypatch, pb, pt)
        assert slow.fast is None and fast.fast is not None and fast._fw is None
        assert (slow.E == fast.E).all() and (slow.G == fast.G).all() and (slow.Lin == fast.Lin).all()
        assert slow.Lin.shape == fast.Lin.shape and slow.G.shape == fast.G.shape
        assert slow.loss_half_mean == fast.loss_half_mean and slow.mean_residual == fast.mean_residual
        assert fast.loss_half_mean == loss_half_mean(pb, pt)
        for j in range(pt.m):
            assert slow.kinks(j) == fast.kinks(j)
            assert slow.status(j) == fast.status(j)
            assert (slow.z_column(j) == fast.z_column(j)).all()
            w, a = ([fmpq(1, 2)] * pb.d if j % 2 else pt.W[j].tolist()), [fmpq(-3)] * pb.k
            moved = pt.copy()
            moved.W[j], moved.A[j] = w, a
            assert slow.loss_half_mean_moved(j, w, a) == fast.loss_half_mean_moved(j, w, a) \
                == loss_half_mean(pb, moved)
            assert slow.neuron(j) == fast.neuron(j)
        # the lazily built forward pass is today's
        assert (fast.fw.Z == slow.fw.Z).all() and (fast.fw.H == slow.fw.H).all()


def test_filter_leaves_cancelling_sums_to_exact_arithmetic(monkeypatch):
    # z = 1 + 2^-60 - 1 = 2^-60 > 0 and z = 1 + 2^-60 - 1 - 2^-60 = 0: in floats both evaluate to 0
    # (or to +-2^-60 in another order); the filter cannot decide them, exact arithmetic does
    t = 2.0 ** -60
    X = np.array([[1.0, t, -1.0, 0.0], [1.0, t, -1.0, -t], [1.0, 0.0, 0.0, 0.0], [-2.0, 0.0, 0.0, 1.0]])
    W = np.array([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]])
    pb = Problem.make(X, [[1.0], [2.0], [0.5], [-1.0]], "relu")
    pt = Point.make(W, [[1.0], [2.0]], pb)
    slow, fast = _both(monkeypatch, pb, pt)
    assert fast.fast.undecided == 4                    # rows 0 and 1, both neurons
    assert fast.kinks(0) == [1] and fast.kinks(1) == [1]
    assert fast.fast.positive(0).tolist() == [True, False, True, False]
    assert fast.fast.positive(1).tolist() == [False, False, False, True]
    assert (slow.G == fast.G).all() and (slow.Lin == fast.Lin).all() and (slow.E == fast.E).all()


def test_out_of_range_numbers_fall_back_to_generic_formulas(monkeypatch):
    X = np.array([[2.0 ** -600, 1.0], [1.0, -1.0]])
    pb = Problem.make(X, [[1.0], [0.0]], "relu")
    pt = Point.make([[1.0, 2.0]], [[1.0]], pb)
    slow, fast = _both(monkeypatch, pb, pt)
    assert fast.fast is None and fast._fw is not None   # generic path
    assert (slow.G == fast.G).all() and slow.loss_half_mean == fast.loss_half_mean
    # a number that rounds to the float 0 although it is not 0 (the filter's bound would miss it)
    Xq = pb.X.copy()                                    # (Problem.make's data is read-only)
    Xq[0, 0] = fmpq(1, 2 ** 1100)
    assert exactfast.first_order(Xq, pb.Y, pt.W, pt.A, None, fmpq(1), fmpq(0)) is None
    Xq[0, 0] = fmpq(1, 3 ** 3000)                       # a common denominator beyond MAX_DEN_BITS
    assert exactfast.first_order(Xq, pb.Y, pt.W, pt.A, None, fmpq(1), fmpq(0)) is None


def test_limbs_round_trip_and_exact_products():
    rnd = random.Random(5)
    rng = np.random.default_rng(5)
    rows, cols, inner = 7, 3, 40
    P = np.empty((inner, cols), dtype=object)
    P[:] = [[rnd.randint(-2 ** 300, 2 ** 300) >> rnd.randint(0, 300) for _ in range(cols)] for _ in range(inner)]
    P[0, 0] = 0
    B = rng.integers(0, 2, (rows, inner))
    L = exactfast.limb_bits(inner)
    assert inner * 2 ** L <= 2 ** 52
    limbs = exactfast.split_limbs(P, L)
    assert np.abs(limbs).max() < 2 ** L
    assert (exactfast.join_limbs(limbs, L) == P).all()
    got = exactfast.join_limbs(np.stack([B.astype(float) @ limbs[t] for t in range(limbs.shape[0])]), L)
    want = [[sum(int(B[i, q]) * P[q, c] for q in range(inner)) for c in range(cols)] for i in range(rows)]
    assert got.tolist() == want


def _stationary_point(n, m, d, seed):
    """A float point that is an exact local minimum (the construction of benchmarks/bench_exact.py B):
    a far cluster no neuron reaches, a few strictly dead neurons with a = 0, the covered targets the
    network's own outputs."""
    rng = np.random.default_rng(seed)
    n_far = max(1, n // 5)
    X = rng.standard_normal((n, d))
    X[:, -1] = 1.0
    X[:n_far, 0] = -10.0 + 0.5 * rng.standard_normal(n_far)
    W = rng.standard_normal((m, d))
    W[:, 0] = 2.0 + np.abs(rng.standard_normal(m))
    A = rng.standard_normal((m, 1))
    W[-1, :-1] *= 0.01
    W[-1, -1] = -1000.0
    A[-1] = 0.0
    pb0 = Problem.make(X, np.zeros((n, 1)), "relu")
    F = ExactState(pb0, Point.make(W, A, pb0)).E
    Y = np.empty((n, 1), dtype=object)
    Y[:, 0] = [fmpq(*float(v).as_integer_ratio()) for v in rng.standard_normal(n)]
    Y[n_far:] = F[n_far:]
    pb = Problem.make(X, Y, "relu")
    return pb, Point.make(W, A, pb)


def _certify_both(monkeypatch, pb, pt):
    monkeypatch.setattr(exactfast, "FAST_MIN_PAIRS", 10 ** 12)
    monkeypatch.setattr(exactfast, "FAST_MIN_WORK", 10 ** 12)
    a = certify(pb, pt)
    monkeypatch.setattr(exactfast, "FAST_MIN_PAIRS", 0)
    b = certify(pb, pt)
    assert a.verdict == b.verdict and a.reason == b.reason and a.certificate == b.certificate
    assert [r.__dict__ for r in a.neurons] == [r.__dict__ for r in b.neurons]
    assert a.loss == b.loss and a.escape_path == b.escape_path and a.descent_derivative == b.descent_derivative
    return b


def test_certify_identical_on_both_paths(monkeypatch):
    rng = np.random.default_rng(3)
    seen = set()
    for trial in range(60):
        pb, pt = _random_instance(rng, trial)
        seen.add(_certify_both(monkeypatch, pb, pt).verdict)
    res = _certify_both(monkeypatch, *_stationary_point(30, 12, 3, 0))
    assert res.verdict == "local_min"
    seen.add(res.verdict)
    assert {"not_stationary", "local_min"} <= seen


def test_certify_escape_path_and_output_bias_descent_identical(monkeypatch):
    # a saddle with an escape neuron a_j = 0 (escape path evidence) ...
    X = [[1, 0], [0, 1], [-1, -1]]
    pb = Problem.make(X, [[1], [1], [0]], "relu")
    pt = Point.make([[1, 1], [1, -1]], [[0], [0]], pb)
    res = _certify_both(monkeypatch, pb, pt)
    # ... and an (S0) descent of a point with an output bias whose residuals do not sum to 0
    pt_c = Point.make([[1, 1], [1, -1]], [[1], [0]], pb, c=[fmpq(1, 3)])
    res_c = _certify_both(monkeypatch, pb, pt_c)
    assert res_c.verdict == "not_stationary" and res_c.certificate["evidence"]["not_stationary"]["reason"] == "S0"
    assert res.verdict in ("saddle", "not_stationary")


def test_certify_reports_progress_per_neuron(monkeypatch):
    monkeypatch.setattr(exactfast, "FAST_MIN_PAIRS", 0)
    pb, pt = _stationary_point(20, 6, 3, 1)
    calls = []
    res = certify(pb, pt, progress=lambda done, total, v: calls.append((done, total, v)))
    assert res.verdict == "local_min"
    assert calls[-1] == (12, 12, None) and [c[0] for c in calls] == list(range(13))


@pytest.mark.parametrize("block", [1, 3])
def test_row_blocks_do_not_change_results(monkeypatch, block):
    monkeypatch.setattr(exactfast, "BLOCK_ENTRIES", block)
    rng = np.random.default_rng(11)
    for trial in range(20):
        pb, pt = _random_instance(rng, trial)
        slow, fast = _both(monkeypatch, pb, pt)
        assert (slow.G == fast.G).all() and (slow.Lin == fast.Lin).all() and (slow.E == fast.E).all()
        assert all(slow.kinks(j) == fast.kinks(j) for j in range(pt.m))


# ------------------------------------------------------------------------------------------------
# the products with X as float limb products (few neurons, many inputs: the wide row of issue 15)
# ------------------------------------------------------------------------------------------------

def _spread_floats(rng, shape, dtype, subnormal=False):
    """Floats of both signs over a wide exponent range, with zeros and (float64, if asked) subnormals."""
    F = rng.standard_normal(shape) * np.ldexp(1.0, rng.integers(-40, 40, shape))
    F[rng.random(shape) < 0.1] = 0.0
    F = F.astype(dtype).astype(np.float64)
    if subnormal and dtype == np.float64 and F.size > 2:
        F.flat[1] = 5e-324                                  # the smallest subnormal
        F.flat[2] = -3 * 2.0 ** -1070
    return F


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_limbs_are_the_exact_integers(dtype):
    # oracle: N = F 2^s through fractions (float -> Fraction is exact), cut by Python integers
    from fractions import Fraction
    rng = np.random.default_rng(7 if dtype == np.float64 else 8)
    beyond = 0
    for trial in range(20):
        F = _spread_floats(rng, (int(rng.integers(1, 9)), int(rng.integers(1, 6))), dtype, subnormal=trial % 4 == 1)
        if dtype == np.float64 and trial % 5 == 0:
            F[0, 0] = 2.0 ** -1074 if trial % 2 else 2.0 ** 1000     # beyond the float range once scaled
        xi = exactfast.Ints.from_floats(F)
        fr = [[Fraction(float(v)) for v in row] for row in F.tolist()]
        den = 1
        for row in fr:
            for v in row:
                den = max(den, v.denominator)                      # powers of two: the lcm is the largest
        N = [[int(v * den) for v in row] for row in fr]
        top = max(abs(v) for row in N for v in row)
        if top.bit_length() > 1020:
            assert xi is None                                      # the caller takes the integers
            beyond += 1
            continue
        assert xi is not None and xi.D == den and xi.bits() == top.bit_length()
        assert xi.N.tolist() == N and [xi.row(i) for i in range(F.shape[0])] == N
        assert (xi.zero() == (F == 0)).all() and (xi.nearest() == F).all()
        for L in (1, 7, 21, 52):
            limbs = xi.limbs(L)
            assert np.abs(limbs).max() < 2 ** L
            back = [[sum(int(limbs[t, i, q]) << (L * t) for t in range(limbs.shape[0])) for q in range(F.shape[1])]
                    for i in range(F.shape[0])]
            assert back == N
    # the float route ran on most, the fallback on the far-spread ones (float64 only)
    assert (beyond >= 3) if dtype == np.float64 else beyond == 0
    assert 20 - beyond >= 10


@pytest.mark.parametrize("route", ["objects", "limbs"])
def test_wide_float32_data_both_routes_equal_generic(monkeypatch, route):
    # few neurons, many inputs, float32 data over a wide exponent range (the shape of the wide row)
    monkeypatch.setattr(exactfast, "X_ROUTE", route)
    rng = np.random.default_rng(12)
    for trial in range(6):
        n, d, m, k = int(rng.integers(20, 60)), int(rng.integers(30, 90)), int(rng.integers(1, 5)), 1 + trial % 3
        X = _spread_floats(rng, (n, d), np.float32).astype(np.float32)
        Y = rng.standard_normal((n, k)).astype(np.float32)
        pb = Problem.make(X, Y, ACTIVATIONS[trial % len(ACTIVATIONS)])
        pt = Point.make(rng.standard_normal((m, d)).astype(np.float32), rng.standard_normal((m, k)), pb,
                        c=rng.standard_normal(k) if trial % 2 else None)
        slow, fast = _both(monkeypatch, pb, pt)
        assert fast.fast is not None and slow.fast is None
        assert (slow.E == fast.E).all() and (slow.G == fast.G).all() and (slow.Lin == fast.Lin).all()
        assert all(slow.kinks(j) == fast.kinks(j) for j in range(m))


def test_problem_records_its_float_data_without_freezing_the_callers_array():
    X = np.array([[0.1, -2.5], [3.0, 2.0 ** -30]], dtype=np.float32)
    pb = Problem.make(X, np.ones((2, 1)), "relu")
    F = exactfast.derived(pb.X, "float64", lambda _: None)
    assert F is not None and F.dtype == np.float64 and not F.flags.writeable
    assert [[fmpq(*float(v).as_integer_ratio()) for v in row] for row in F.tolist()] == pb.X.tolist()
    assert X.flags.writeable                                     # the caller's array is untouched
    X64 = X.astype(np.float64)
    Problem.make(X64, np.ones((2, 1)), "relu")
    assert X64.flags.writeable


def test_use_fast_by_pairs_or_by_work():
    assert not exactfast.use_fast(5, 50, 2, 1)                  # the paper's 1-D point: generic formulas
    assert exactfast.use_fast(2000, 10, 200, 1)                 # the wide row: by its work n m d k
    assert exactfast.use_fast(300, 200, 1, 1)                   # by its pairs n m
