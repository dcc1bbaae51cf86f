"""Ball certificates: saddles at exact (irrational) stationary points near a rational rounding."""
import copy
import json
import os
import random
from fractions import Fraction as Q

import pytest
import sympy as sp

from relucert.check import kernel as check
from relucert.decide.ball import ball_certificate, structure
from relucert.check import Rejected, require_valid
from relucert.io import load
from relucert.refine import Tolerances, classify, refine, refined_report
import relucert.refine.driver as R

PAPER = os.path.join(os.path.dirname(__file__), "..", "examples", "paper")


def _plateau(p):
    pb, pt = load(os.path.join(PAPER, f"2d_input_2d_output_plateau{p}.json"))
    tol = Tolerances()
    pat = classify(pb, pt, tol)
    return pb, R._refine_one(pb, pt, pat, "tiny_zero", tol)


@pytest.mark.parametrize("p", [2, 3])
def test_paper_middle_plateaus_are_proven_saddles(p):
    pb, ref = _plateau(p)
    assert ref.ball is not None and ref.verdict == "saddle", ref.note
    assert require_valid(ref.ball) == "saddle"
    # the rounding itself is not exactly stationary: the exact certificate alone could not say this
    from relucert import certify
    assert certify(pb, ref.point).verdict == "not_stationary"


def test_ball_formulas_are_the_derivatives_of_the_loss():
    """F and J of the checker's narrow parametrisation equal sympy's gradient and Hessian of L(xi)
    (the Krawczyk test is only as good as this enclosure)."""
    pb, ref = _plateau(3)
    ev, _ = structure(pb, ref.point)
    cert = {"format": check.BALL_FORMAT, "problem": pb.to_json(), "point": ref.point.to_json(), "evidence": ev}
    inst = check._Instance(cert)
    ball = check._Ball(inst, ev)
    xs = sp.symbols(f"xi0:{ball.N}")
    # L(xi) from scratch: outputs of the clusters' copies with the recorded pattern slopes
    k, n = inst.k, inst.n
    pos = 0
    f = [[0] * k for _ in range(n)]
    for c in ball.clusters:
        p_ = len(c["B"])
        free = list(xs[pos:pos + p_ - 1])
        th = free[:c["t0"]] + [sp.Rational(c["gv"])] + free[c["t0"]:]
        cg = list(xs[pos + p_ - 1:pos + p_ - 1 + k])
        pos += p_ - 1 + k
        for i, x in enumerate(inst.X):
            z = sum(t * sum(sp.Rational(b[q]) * sp.Rational(x[q]) for q in range(inst.d)) for t, b in zip(th, c["B"]))
            for cc in range(k):
                f[i][cc] += cg[cc] * sp.Rational(c["s"][i]) * z
    L = sum((f[i][cc] - sp.Rational(inst.Y[i][cc])) ** 2 for i in range(n) for cc in range(k)) / (2 * n)
    rng = random.Random(1)
    for _ in range(3):
        pt_ = [v + Q(rng.randint(-5, 5), 7) for v in ball.center]
        _, _, _, _, F, J = ball.evaluate([check._Iv(v) for v in pt_])
        sub = {x: sp.Rational(v) for x, v in zip(xs, pt_)}
        for a in range(ball.N):
            assert sp.Rational(F[a].lo) == sp.diff(L, xs[a]).subs(sub)
            for b in range(ball.N):
                assert sp.Rational(J[a][b].lo) == sp.diff(L, xs[a], xs[b]).subs(sub)


def test_ball_certificate_tampering_is_rejected():
    pb, ref = _plateau(3)
    cert = ref.ball
    for mutate, msg in [
        (lambda c: c["evidence"].__setitem__("radius", "1/10"), "Krawczyk|kink|robust|vanish"),
        (lambda c: c["evidence"].__setitem__("radius", "0"), "radius"),
        (lambda c: c.__setitem__("verdict", "local_min"), "saddles only"),
        (lambda c: c["evidence"]["escape"][0].__setitem__("neuron", 0), "zero neuron"),
        (lambda c: c["evidence"]["clusters"][0]["beta"].__setitem__(0, "0"), "beta"),
        (lambda c: c["evidence"]["center"].__setitem__(0, "7"), "copy"),
        (lambda c: c["evidence"]["preconditioner"][0].__setitem__(0, "0"), "Krawczyk"),
        (lambda c: c["point"]["A"][0].__setitem__(0, "1"), "fingerprint"),
    ]:
        c = copy.deepcopy(cert)
        mutate(c)
        with pytest.raises(Rejected, match=msg):
            require_valid(c)


def test_no_ball_without_a_zero_escape_neuron():
    pb, ref = _plateau(3)
    # as given (tiny neurons kept with a != 0): no zero neuron, no ball claim
    pb2, pt2 = load(os.path.join(PAPER, "2d_input_2d_output_plateau3.json"))
    rf = refined_report(pb2, pt2, refine(pb2, pt2))
    by = {r["reading"]: r["verdict"] for r in rf["readings"]}
    assert by["tiny_zero"] == "saddle" and by["as_given"] == "inconclusive"
    assert rf["verdict"] == "saddle" and rf["reading"] == "tiny_zero"
    assert rf["certificate"]["format"] == check.BALL_FORMAT
    json.dumps(rf["certificate"])
