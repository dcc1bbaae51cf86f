"""Issue 15: what one certification leaves for the next (``NeuronMemo.recent``) changes no value.

- ``core.formulas.forward_recent`` gives exactly the arrays of ``forward`` (Z, S, H, F, E, signs)
  along a chain of nearby points: unchanged, a few input weights moved, a few output weights
  moved, most neurons moved, an output bias, a point mutated in place after its call, another
  problem;
- ``Point.to_json(recent)`` writes the text of ``Point.to_json()`` along the same chain;
- ``ExactState(problem, point, recent)``: the same E, Lin, G, loss, statuses and kinks, also
  along points with the very same residuals (only neurons with a_j = 0 move);
- certifying the refined points of the paper's end point with one memo (in both orders) gives
  the certificates, byte for byte, of certifying each alone;
- the smaller rewrites agree with what they replace: canonical normals hash as plain tuples,
  ``refine.exact.rows_mat`` (sparse fill) and ``bit_size`` (fmpz bit lengths), and the split-back
  kept with the rounds in ``refine.exact._SOLVED`` is the computed one."""
from __future__ import annotations

import json
import os
import random

import pytest
from flint import fmpq

import relucert.refine.exact as exact
from relucert.core.formulas import ExactState, forward, forward_recent
from relucert.core.problem import Point, Problem, exact_to_strings
from relucert.decide.certify import NeuronMemo, certify
from relucert.io import load
from relucert.refine import Tolerances, refine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = os.path.join(ROOT, "examples", "paper", "1d_input_with_bias.json")


def _rand_q(rng: random.Random) -> fmpq:
    return fmpq(rng.randint(-40, 40), rng.randint(1, 12))


def _problem(rng, n, d, k, act="relu"):
    X = [[_rand_q(rng) for _ in range(d)] for _ in range(n)]
    X[0] = [fmpq(0)] * d                               # a zero data point
    Y = [[_rand_q(rng) for _ in range(k)] for _ in range(n)]
    return Problem.make([[str(v) for v in r] for r in X], [[str(v) for v in r] for r in Y], act)


def _point(rng, m, d, k, c=False):
    W = [[_rand_q(rng) for _ in range(d)] for _ in range(m)]
    W[1] = [fmpq(0)] * d                               # a zero neuron
    A = [[_rand_q(rng) for _ in range(k)] for _ in range(m)]
    return Point.from_rows(W, A, d, k, [_rand_q(rng) for _ in range(k)] if c else None)


def _moved(rng, pt: Point, what: str, count: int) -> Point:
    new = pt.copy()
    for j in rng.sample(range(pt.m), count):
        if what in ("w", "both"):
            new.W[j] = [_rand_q(rng) for _ in range(pt.W.shape[1])]
        if what in ("a", "both"):
            new.A[j] = [_rand_q(rng) for _ in range(pt.A.shape[1])]
    return new


def _written(p: Point) -> dict:
    """Point.to_json's text computed afresh (no reuse)."""
    out = {"W": exact_to_strings(p.W), "A": exact_to_strings(p.A)}
    if p.c is not None:
        out["c"] = [str(v) for v in p.c.tolist()]
    return out


def _same_forward(a, b) -> None:
    for name in ("Z", "S", "H", "F", "E", "pos"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.tolist() == y.tolist(), name
        if x.dtype == object:
            assert all(type(u) is type(v) for u, v in zip(x.ravel().tolist(), y.ravel().tolist())), name


@pytest.mark.parametrize("seed,act,c", [(0, "relu", False), (1, "leaky_relu:1/7", True), (2, "abs", False)])
def test_forward_recent_is_forward(seed, act, c):
    rng = random.Random(seed)
    n, d, k, m = 7, 3, 2, 12
    pb = _problem(rng, n, d, k, act)
    ap, am = pb.activation.alpha_plus, pb.activation.alpha_minus
    recent: dict = {}
    strings: dict = {}
    pt = _point(rng, m, d, k, c)
    chain = [pt, pt.copy()]
    for what, count in (("w", 2), ("a", 3), ("both", 1), ("both", 10), ("w", 12), ("a", 0)):
        chain.append(_moved(rng, chain[-1], what, count))
    for p in chain:
        got = forward_recent(pb.X, pb.Y, p.W, p.A, ap, am, p.c, recent)
        _same_forward(got, forward(pb.X, pb.Y, p.W, p.A, ap, am, p.c))
        assert p.to_json(strings) == _written(p) == p.to_json()
    # a point changed in place after its call: the next call compares against what was used
    last = chain[-1]
    forward_recent(pb.X, pb.Y, last.W, last.A, ap, am, last.c, recent)
    last.to_json(strings)
    last.W[3] = [_rand_q(rng) for _ in range(d)]
    last.A[4] = [_rand_q(rng) for _ in range(k)]
    _same_forward(forward_recent(pb.X, pb.Y, last.W, last.A, ap, am, last.c, recent),
                  forward(pb.X, pb.Y, last.W, last.A, ap, am, last.c))
    assert last.to_json(strings) == _written(last) == last.to_json()
    js = last.to_json()
    js["W"][0][0] = "changed by a caller"            # the lists handed out are fresh
    assert last.to_json() == _written(last)
    # another problem (other data, same shapes): nothing is taken over
    pb2 = _problem(rng, n, d, k, act)
    _same_forward(forward_recent(pb2.X, pb2.Y, last.W, last.A, ap, am, last.c, recent),
                  forward(pb2.X, pb2.Y, last.W, last.A, ap, am, last.c))
    # and the exact states agree (E, G, Lin, loss)
    st0, st1 = ExactState(pb2, last), ExactState(pb2, last, recent)
    assert st0.E.tolist() == st1.E.tolist() and st0.G.tolist() == st1.G.tolist()
    assert st0.Lin.tolist() == st1.Lin.tolist() and st0.loss_half_mean == st1.loss_half_mean


def test_paper_certificates_with_recent():
    pb, pt = load(PAPER)
    exact._SOLVED.clear()
    refs = [r for r in refine(pb, pt, Tolerances())["refinements"] if r.result is not None]
    assert len(refs) >= 3
    alone = [json.dumps(certify(pb, r.point).certificate, sort_keys=True) for r in refs]
    for order in (refs, refs[::-1]):
        memo = NeuronMemo()
        got = [json.dumps(certify(pb, r.point, memo=memo).certificate, sort_keys=True) for r in order]
        want = alone if order is refs else alone[::-1]
        assert got == want


def test_canonical_normal_key_is_a_plain_tuple_for_dicts():
    from relucert.core.formulas import canonical_normal
    key, lam = canonical_normal([fmpq(0), fmpq(-4, 3), fmpq(2)])
    plain = (fmpq(0), fmpq(1), fmpq(-3, 2))
    assert lam == fmpq(-4, 3) and key == plain and isinstance(key, tuple)
    assert hash(key) == hash(plain) == hash(key)          # cached: still the tuple's hash
    assert {plain: 1}[key] == 1 and {key: 2}[plain] == 2 and str(key) == str(plain)


def test_refine_scalar_kept_split_back_is_the_computed_one():
    # the readings' rounds (and their split-back) come from refine.exact._SOLVED when kept: the same
    # refined points, entry by entry, as computed from a cleared cache
    from relucert.refine.classify import classify
    from relucert.refine.driver import READINGS, _apply_reading
    from relucert.refine.scalar import refine_scalar
    pb, pt = load(PAPER)
    pat = classify(pb, pt, Tolerances())
    for reading in READINGS:
        start, _ = _apply_reading(pb, pt, pat, reading)
        exact._SOLVED.clear()
        cold, note_cold = refine_scalar(pb, start, pat, reading, pattern_out=[])
        for _ in range(2):
            warm, note_warm = refine_scalar(pb, start, pat, reading, pattern_out=[])
            assert note_warm == note_cold
            assert warm.W.tolist() == cold.W.tolist() and warm.A.tolist() == cold.A.tolist()
            assert warm.to_json() == cold.to_json()


@pytest.mark.parametrize("seed,act", [(3, "relu"), (4, "leaky_relu:1/3")])
def test_exact_state_recent_same_residuals(seed, act):
    # neurons with a_j = 0 add nothing to the outputs: moving their w_j keeps the residuals E exactly
    # and changes their signs and G_j, which the kept first-order values must not hide
    rng = random.Random(seed)
    n, d, k, m = 6, 2, 1, 9
    pb = _problem(rng, n, d, k, act)
    pt = _point(rng, m, d, k)
    for j in (2, 5, 7):
        pt.A[j] = [fmpq(0)] * k
    recent: dict = {}
    chain = [pt]
    for step in range(6):
        new = chain[-1].copy()
        j = (2, 5, 7)[step % 3]
        new.W[j] = [_rand_q(rng) for _ in range(d)] if step != 3 else [-v for v in new.W[j]]
        if step == 4:
            new.A[0] = [_rand_q(rng) for _ in range(k)]       # and once the residuals change too
        chain.append(new)
    for p in chain:
        want, got = ExactState(pb, p), ExactState(pb, p, recent)
        assert got.E.tolist() == want.E.tolist() and got.loss_half_mean == want.loss_half_mean
        assert got.Lin.tolist() == want.Lin.tolist() and got.G.tolist() == want.G.tolist()
        assert [got.status(j) for j in range(m)] == [want.status(j) for j in range(m)]
        assert [got.kinks(j) for j in range(m)] == [want.kinks(j) for j in range(m)]


def test_rows_mat_sparse_and_dense():
    from flint import fmpq_mat
    from relucert.refine.exact import rows_mat
    rng = random.Random(7)
    for _ in range(300):
        r, c = rng.randint(1, 7), rng.randint(1, 7)
        dens = rng.random()
        rows = [[_rand_q(rng) if rng.random() < dens else rng.choice([0, fmpq(0)]) for _ in range(c)]
                for _ in range(r)]
        assert rows_mat(rows, c) == fmpq_mat(r, c, [v for row in rows for v in row])


def test_bit_size_is_that_of_the_python_integers():
    from relucert.refine.exact import bit_size
    rng = random.Random(11)
    vals = [0, 1, -1, fmpq(-3, 8), fmpq(2 ** 64 - 1, 3), -fmpq(3 ** 100, 2 ** 70)]
    vals += [fmpq(rng.randint(-10 ** 40, 10 ** 40), rng.randint(1, 10 ** 30)) for _ in range(300)]
    for v in vals:
        q = fmpq(v)
        assert bit_size(v) == max(int(q.p).bit_length(), int(q.q).bit_length())
