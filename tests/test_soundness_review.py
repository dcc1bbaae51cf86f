"""Regression tests from the adversarial soundness review.

Bug: ``problem.to_fmpq`` converts every ``np.floating`` through ``float(v)``.  For
``np.longdouble`` (80-bit x87 extended precision on x86-64 Linux, 64-bit mantissa) this silently
rounds the value to the nearest float64 -- and flushes values below ~5e-324 to 0 -- instead of
taking its exact binary value.  relucert then certifies a *different* point than the one it
was given (the certificate embeds the rounded point, so the independent checker accepts it), and
the verdict can be wrong for the given point:

* W = [[1 + 2**-60, 0]] (longdouble) is not stationary (G = dL/da = 2**-61 (1 + 2**-60) != 0), but
  is rounded to the kink local minimum W = [[1, 0]] and certified ``local_min``;
* the tiny neuron w = (-1e-400, 0), a = 1e-400 (longdouble) is a local minimum (tests/cases.py
  TINY_POS), but is flushed to the zero neuron and certified ``saddle`` -- exactly the silent
  rounding of small weights to zero that docs/theory.md §4 forbids.

The same path is taken by ``.npz`` files holding float128 arrays (io.load_npz) and by every
array API.  Fix: in ``to_fmpq`` use ``v.as_integer_ratio()`` for ``np.floating`` (exact for every
numpy float type) and test finiteness with ``np.isfinite``, not ``float(v)``.
"""
from fractions import Fraction

import numpy as np
import pytest

from relucert import certify
from relucert.check import require_valid
from relucert.core.problem import Point, Problem, to_fmpq

LD = np.longdouble
HAS_EXTENDED = np.finfo(LD).nmant > 52
needs_extended = pytest.mark.skipif(not HAS_EXTENDED, reason="np.longdouble is float64 on this platform")


@needs_extended
def test_longdouble_scalar_is_converted_exactly():
    v = LD(1) / LD(3)
    p, q = v.as_integer_ratio()
    assert to_fmpq(v) == to_fmpq(Fraction(p, q))


@needs_extended
def test_longdouble_point_not_rounded_into_a_false_local_min():
    # X, Y as in tests/cases.py KINK_MIN; w is 2**-60 off the kink local minimum w = (1, 0).
    pb = Problem.make([[1, 0], [0, 1]], [[1], [-1]], "relu")
    W = np.array([[LD(1) + LD(2) ** -60, 0]], dtype=LD)
    A = np.array([[1]], dtype=LD)
    pt = Point.make(W, A, pb)
    assert pt.W[0, 0] == to_fmpq(Fraction(2 ** 60 + 1, 2 ** 60)), "the given weight was rounded"
    # exact truth: f(x1) = 1 + 2**-60, e1 = 2**-60, G = e1 * (1 + 2**-60) / 2 != 0 -> not stationary
    exact = Point.make([[str(Fraction(2 ** 60 + 1, 2 ** 60)), 0]], [[1]], pb)
    assert certify(pb, exact).verdict == "not_stationary"
    res = certify(pb, pt)
    assert res.verdict == "not_stationary", f"got {res.verdict} for a non-stationary point"
    assert require_valid(res.certificate) == "not_stationary"


@needs_extended
@pytest.mark.skipif(not LD(10) ** -400 > 0, reason="longdouble cannot hold 1e-400")
def test_longdouble_tiny_neuron_not_flushed_to_zero():
    # tests/cases.py TINY_POS with eps = 1e-400: a local minimum (phi = a2 e2 relu(r2)/2 >= 0).
    pb = Problem.make([[1, 0], [0, 1]], [[1], [-1]], "relu")
    eps = LD(10) ** -400
    W = np.array([[1, 0], [-eps, 0]], dtype=LD)
    A = np.array([[1], [eps]], dtype=LD)
    pt = Point.make(W, A, pb)
    assert pt.W[1, 0] != 0 and pt.A[1, 0] != 0, "a tiny weight was silently rounded to zero"
    res = certify(pb, pt)
    assert res.verdict == "local_min", f"got {res.verdict}: the tiny neuron was read as the zero neuron"


@needs_extended
def test_npz_float128_arrays_are_exact(tmp_path):
    from relucert.io import load
    path = tmp_path / "p.npz"
    np.savez(path, X=np.array([[1, 0], [0, 1]], dtype=LD), Y=np.array([[1], [-1]], dtype=LD),
             W=np.array([[LD(1) + LD(2) ** -60, 0]], dtype=LD), A=np.array([[1]], dtype=LD))
    pb, pt = load(str(path))
    assert pt.W[0, 0] == to_fmpq(Fraction(2 ** 60 + 1, 2 ** 60))
    assert certify(pb, pt).verdict == "not_stationary"
