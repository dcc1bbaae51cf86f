"""A local_min ball's centre with short output weights (relucert.decide.ball.light_outputs).

The vector refinement re-fits the output weights of its rounding exactly, which gives rationals of
thousands of bits; the checker's interval arithmetic on such a centre took minutes (campaign run 80
mid@738: a timeout).  The ball route now rounds them to 320-bit dyadics first -- the centre of a box
need not be exactly anything -- and leaves every input weight (pattern, kink points, groups) alone."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
from flint import fmpq

from relucert.check import check_certificate
from relucert.core.problem import Point, Problem
from relucert.decide import ball
from relucert.io import load_json

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _f(v) -> Fraction:
    return Fraction(int(v.p), int(v.q))


def test_short_outputs_are_left_alone():
    pt = Point.make([["1/3", 2], [-1, "1/7"]], [["2/3"], ["-5/11"]])
    assert ball.light_outputs(pt) is pt


def test_long_outputs_are_rounded_to_320_bits_and_inputs_kept():
    big = fmpq(3 ** 700 + 1, 2 ** 1200 + 7)           # a ~1200-bit denominator, value ~ 2^-90
    W = [["1/3", 2], [-1, "1/7"]]
    pt = Point.make(W, [[big, fmpq(-5, 11)], [fmpq(1, 3), big * 2]])
    lt = ball.light_outputs(pt)
    assert lt is not pt
    assert lt.W.tolist() == pt.W.tolist() and lt.c is None
    top = max(abs(_f(v)) for v in pt.A.flat)                        # 2/3 here
    for a, b in zip(pt.A.flat, lt.A.flat):
        fa, fb = _f(a), _f(b)
        assert abs(fa - fb) <= top * Fraction(1, 2 ** 319)          # nearest multiple of 2^-e, e ~ 320 + log2 top
        assert (fb.denominator & (fb.denominator - 1)) == 0         # dyadic
        assert fb.denominator.bit_length() <= 330
    assert pt.A[0, 0] == big                                        # the original is not written


def test_campaign_case_with_long_outputs_certifies():
    pb, pt = load_json(os.path.join(DATA, "ball_light_run80.json"))
    assert max(int(v.q).bit_length() for v in pt.A.flat) > 2000
    cert, note = ball.ball_certificate(pb, pt)
    assert cert is not None, note
    assert cert["verdict"] == "local_min" and "output weights rounded to 320 bits" in note
    res = check_certificate(cert)
    assert res.ok and res.verdict == "local_min", res.reasons
    # the box centre is the light point: same input weights, outputs within 2^-300 relative
    cpt = Point.make(cert["point"]["W"], cert["point"]["A"], pb)
    assert cpt.W.tolist() == pt.W.tolist()
    top = max(abs(_f(v)) for v in pt.A.flat)
    assert max(abs(_f(a) - _f(b)) for a, b in zip(pt.A.flat, cpt.A.flat)) < top * Fraction(1, 2 ** 300)
    # the radius is far larger than the move, so the exact zero is also near the exact re-fit
    assert Fraction(cert["evidence"]["radius"]) > top * Fraction(1, 2 ** 200)


def test_refinement_reports_the_box_centre():
    # refining the campaign rounding again ends at a ball local_min; the refined point the report
    # shows is the certificate's point (the light centre), not the exact re-fit next to it
    from relucert.refine import Tolerances, refine
    pb, pt = load_json(os.path.join(DATA, "ball_light_run80.json"))
    refs = refine(pb, pt, Tolerances())["refinements"]
    balls = [r for r in refs if r.ball is not None and r.ball["verdict"] == "local_min"]
    assert balls, [(r.reading, r.note[-200:]) for r in refs]
    for r in balls:
        assert r.point.to_json() == r.ball["point"]
        assert check_certificate(r.ball).ok
