"""Review of the vector-output second-order routes (second-order descent rays, Morse-Bott minima).

Regression test for a confirmed bug: when the exact second-order ray has a tiny negative t^2
coefficient (|c2| << c4), ``choose_step`` (at most 400 halvings from t = 1) finds no step, and
``certify`` raises ConsistencyError ("no step below t_max lowers the loss along the negative-curvature
direction") instead of returning the saddle that c1 = 0, c2 < 0 already proves.  The point is a valid
stationary vector-output point (one neuron, every data point strictly active, residuals orthogonal
to a), just with 1000-bit rationals.
"""
from fractions import Fraction as Q
from math import isqrt

from relucert.decide.certify import certify
from relucert.check import require_valid
from relucert.core.problem import as_problem_point


def _near_threshold_instance(bits: int):
    # vector_flat construction: w = (1, 0), a = (1, 0), b = (0, 1), residuals e_i = eps c_i b with
    # sum_i c_i h_i = 0; the best t^2 coefficient along w + t r, a + t delta is (2 - 4 eps^2 / 3) / 6,
    # negative but tiny for eps just above sqrt(3/2).
    N = 2 ** bits
    eps = Q(isqrt(3 * N * N // 2) + 1, N)
    X = [[1, 0], [1, 1], [1, -1]]
    c = [0, 1, -1]
    E = [[Q(0), eps * ci] for ci in c]
    Y = [[str(1 - e[0]), str(-e[1])] for e in E]
    return as_problem_point(X, Y, [[1, 0]], [[1, 0]], "relu")


def test_tiny_negative_curvature_is_still_a_certified_saddle():
    pb, pt = _near_threshold_instance(1000)
    res = certify(pb, pt)            # currently raises ConsistencyError (choose_step gives up)
    assert res.verdict == "saddle"
    assert require_valid(res.certificate) == "saddle"


def test_moderate_negative_curvature_saddle():
    # control: same construction, 200 bits, works today
    pb, pt = _near_threshold_instance(200)
    res = certify(pb, pt)
    assert res.verdict == "saddle" and "second_order" in res.certificate["evidence"]
    assert require_valid(res.certificate) == "saddle"
