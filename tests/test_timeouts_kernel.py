"""The ball checker's interval arithmetic and its point evaluation (issue 12: checkpoints within a minute).

_Iv's products read the end signs and point intervals take one operation: every result must equal
the plain definition (min and max of the four end products, sums of the ends).  The ball's point
evaluation (sums over the data taken once) must give exactly what the interval formulas give at a
degenerate box."""
import random
from fractions import Fraction as Q

import pytest

from relucert.check import kernel as K


def _ref_mul(a, b):
    p = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
    return min(p), max(p)


def _rand_iv(rng):
    kind = rng.randrange(6)
    x = Q(rng.randint(-9, 9), rng.randint(1, 7))
    if kind == 0:
        return K._Iv(x)                         # a point
    if kind == 1:
        return K._Iv(Q(0), abs(x))              # an end at 0
    if kind == 2:
        return K._Iv(-abs(x), Q(0))
    if kind == 3:
        return K._Iv(x, x)                      # a point held as two objects
    y = Q(rng.randint(-9, 9), rng.randint(1, 7))
    return K._Iv(min(x, y), max(x, y))


def test_interval_operations_match_their_definitions():
    rng = random.Random(12)
    for _ in range(4000):
        a, b = _rand_iv(rng), _rand_iv(rng)
        p = a * b
        assert (p.lo, p.hi) == _ref_mul(a, b) and p.lo <= p.hi
        s = Q(rng.randint(-9, 9), rng.randint(1, 5))
        for q in (a * s, s * a):
            assert (q.lo, q.hi) == _ref_mul(a, K._Iv(s))
        assert ((a + b).lo, (a + b).hi) == (a.lo + b.lo, a.hi + b.hi)
        assert ((a - b).lo, (a - b).hi) == (a.lo - b.hi, a.hi - b.lo)
        assert ((s - a).lo, (s - a).hi) == (s - a.hi, s - a.lo)
        assert ((-a).lo, (-a).hi) == (-a.hi, -a.lo)
        for v in (p, a + b, -a):
            assert isinstance(v.lo, Q) and isinstance(v.hi, Q)


def test_isum_is_the_sum_of_the_ends():
    rng = random.Random(3)
    for _ in range(300):
        items = [_rand_iv(rng) if rng.random() < 0.7 else Q(rng.randint(-5, 5), rng.choice([1, 2, 3, 1024]))
                 for _ in range(rng.randrange(0, 9))]
        got = K._isum(iter(items))
        lo = sum((v.lo if isinstance(v, K._Iv) else v for v in items), Q(0))
        hi = sum((v.hi if isinstance(v, K._Iv) else v for v in items), Q(0))
        assert (got.lo, got.hi) == (lo, hi)
        assert isinstance(got.lo, Q) and isinstance(got.hi, Q)


def _flat(x):
    out = []
    for v in x:
        if isinstance(v, (list, tuple)):
            out += _flat(v)
        else:
            out.append((v.lo, v.hi))
    return out


def _ball_of(cert):
    inst = K._Instance(cert)
    return K._Ball(inst, cert["evidence"])


@pytest.fixture(scope="module")
def certs():
    import os
    from relucert.io import load
    from relucert.refine import Tolerances, classify
    from relucert.decide.ball import ball_certificate
    import relucert.refine.driver as R
    out = []
    paper = os.path.join(os.path.dirname(__file__), "..", "examples", "paper")
    for p in (2, 3):
        pb, pt = load(os.path.join(paper, f"2d_input_2d_output_plateau{p}.json"))
        ref = R._refine_one(pb, pt, classify(pb, pt, Tolerances()), "tiny_zero", Tolerances())
        assert ref.ball is not None
        out.append(ref.ball)
    import tests.test_ball_gl_min as gl
    pb, pt, _ = gl._instance("1/4")
    cert, note = ball_certificate(pb, pt)
    assert cert is not None, note
    out.append(cert)
    return out


def test_point_evaluation_equals_the_interval_formulas(certs):
    rng = random.Random(5)
    for cert in certs:
        ball = _ball_of(cert)
        for shift in range(3):
            xi = [v + (Q(rng.randint(-5, 5), 7) if shift else 0) for v in ball.center]
            pt = [K._Iv(v) for v in xi]
            a = ball._evaluate_point(pt)
            b = ball._evaluate_box(pt)
            assert _flat(a) == _flat(b)
            assert _flat(ball.evaluate(pt)) == _flat(a)
        # a proper box still takes the interval formulas
        rho = Q(1, 10 ** 6)
        box = [K._Iv(v - rho, v + rho) for v in ball.center]
        assert _flat(ball.evaluate(box)) == _flat(ball._evaluate_box(box))


def test_checker_verdicts_unchanged(certs):
    for cert in certs:
        assert K.derive_verdict(cert) == cert["verdict"]
