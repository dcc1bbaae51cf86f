"""Float arrays are converted to exact rationals in one vectorised pass (core/problem.py::
to_exact_matrix); the values must be those of the one-by-one conversion (to_fmpq), for every float
width, sign of zero, subnormal and extreme value."""
from __future__ import annotations

import numpy as np
import pytest
from flint import fmpq
from hypothesis import given, settings, strategies as st

from relucert.check.limits import LimitError, parse_exact
from relucert.core.problem import _short_number, to_exact_matrix, to_fmpq
from relucert.errors import InputError


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_vectorised_float_conversion_is_the_elementwise_one(dtype):
    rng = np.random.default_rng(3)
    info = np.finfo(dtype)
    vals = np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-3, 4, 200),
                           [0.0, -0.0, float(info.tiny), -float(info.tiny), float(info.max), -float(info.max),
                            float(info.tiny) / 4, float(info.eps), 1.0, -1.0]]).astype(dtype)
    M = vals.reshape(-1, 5)
    got = to_exact_matrix(M, "X")
    assert got.shape == M.shape and got.dtype == object
    for (i, c), v in np.ndenumerate(M):
        ref = to_fmpq(v)                                   # the one-by-one path on the value's own type
        assert isinstance(got[i, c], fmpq) and got[i, c] == ref
        p, q = float(v).as_integer_ratio()
        assert got[i, c] == fmpq(p, q)                     # hand check: the dyadic value itself
    assert to_exact_matrix(np.array([[0.1]]), "X")[0, 0] == fmpq(3602879701896397, 2 ** 55)


def test_vectorised_path_keeps_the_one_line_errors():
    with pytest.raises(InputError, match=r"X contains NaN at index \[1, 0\]"):
        to_exact_matrix(np.array([[1.0], [np.nan]]), "X")
    with pytest.raises(InputError, match="X is empty"):
        to_exact_matrix(np.zeros((0, 2)), "X")
    with pytest.raises(InputError, match="must be a 2-D array"):
        to_exact_matrix(np.array([1.0, 2.0]), "X")
    assert to_exact_matrix(np.array([1.0, 2.0]), "Y", flat_ok=True).tolist() == [[fmpq(1)], [fmpq(2)]]


def test_exact_strings_are_flints_own():
    from relucert.core.problem import exact_to_strings
    rng = np.random.default_rng(4)
    vals = [fmpq(0), fmpq(-3), fmpq(7), fmpq(-5, 3), fmpq(2 ** 200 + 1, 3 ** 90), fmpq(-1, 2 ** 1074),
            # beyond Python's int -> str digit limit (4300 digits): found by the coverage campaign,
            # where refined points carry rationals of tens of thousands of digits
            fmpq(10 ** 6000 + 1, 3), fmpq(-7, 10 ** 9000 + 3), fmpq(2 ** 8192 - 1, 2 ** 8193 + 1)]
    vals += [fmpq(*float(v).as_integer_ratio()) for v in rng.standard_normal(300) * 10.0 ** rng.integers(-30, 30, 300)]
    M = np.empty((len(vals) // 2, 2), dtype=object)
    M.ravel()[:] = vals[:M.size]
    got = exact_to_strings(M)
    assert got == [[str(v) for v in row] for row in M]
    assert got[0] == ["0", "-3"] and got[1] == ["7", "-5/3"]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_strings_from_floats_are_the_exact_strings(dtype):
    """Problem data given as floats gets its certificate strings from the floats (dyadic_strings);
    they must be flint's own str of each value's exact binary value (independent: as_integer_ratio)."""
    from relucert.core.problem import dyadic_strings
    rng = np.random.default_rng(5)
    info = np.finfo(dtype)
    lim = float(np.log(float(info.max))) * 0.9
    vals = np.concatenate([np.clip(rng.standard_normal(300) * np.exp(rng.uniform(-lim, lim, 300)),
                                   -float(info.max), float(info.max)),
                           [0.0, -0.0, float(info.smallest_subnormal), -float(info.tiny), float(info.max),
                            -float(info.max), 3.0, -1.0, 0.5, 2.0 ** 10]]).astype(dtype)
    M = vals.reshape(-1, 2)
    want = [[str(fmpq(*float(v).as_integer_ratio())) for v in row] for row in M]
    assert dyadic_strings(M) == want
    assert dyadic_strings(np.array([[0.75, -0.0, 6.0]])) == [["3/4", "0", "6"]]     # by hand


def test_problem_data_is_frozen_and_its_strings_are_cached():
    from relucert.core.linalg import derived, is_frozen, to_fmpq_mat
    from relucert.core.problem import Problem, exact_to_strings
    X = np.array([[0.5, -1.25], [3.0, 0.1]], dtype=np.float32)
    pb = Problem.make(X, np.array([1.0, -2.0]))
    assert is_frozen(pb.X) and is_frozen(pb.Y)
    with pytest.raises(ValueError):
        pb.X[0, 0] = fmpq(7)                    # the data cannot change under a cached value
    js = pb.to_json()
    assert js["X"] == [[str(v) for v in row] for row in pb.X] and js["X"][0] == ["1/2", "-5/4"]
    js["X"][0][0] = "changed"                   # the lists handed out are fresh copies
    assert pb.to_json()["X"][0][0] == "1/2"
    assert to_fmpq_mat(pb.X) is to_fmpq_mat(pb.X)           # converted once
    assert to_fmpq_mat(pb.X).entries() == list(pb.X.ravel())
    W = np.array([[fmpq(1), fmpq(2)]], dtype=object)        # a writable array: never cached
    calls = []
    derived(W, "n", lambda a: calls.append(1))
    derived(W, "n", lambda a: calls.append(1))
    assert len(calls) == 2
    view = pb.X[:, :1]                                      # a view of frozen data is not cached either
    assert not is_frozen(view)


# short number strings take core/problem.py::_short_number; the value must be parse_exact's (the
# general reader, an independent implementation) for every string either of them accepts
_CHARS = st.sampled_from(list("0123456789") * 3 + list("+-./ e"))


@settings(max_examples=400, deadline=None)
@given(st.lists(_CHARS, min_size=1, max_size=14).map("".join))
def test_short_number_strings_read_as_parse_exact_reads_them(text):
    got = _short_number(text)
    try:
        ref = parse_exact(text)
    except LimitError:
        ref = None
    if got is not None:
        assert ref is not None and got == fmpq(ref.numerator, ref.denominator), text
    # every string the short reader declines still goes through parse_exact in to_fmpq
    if ref is not None:
        assert to_fmpq(text) == fmpq(ref.numerator, ref.denominator)
    else:
        with pytest.raises(InputError):
            to_fmpq(text)


@pytest.mark.parametrize("text, value", [("-11185117/268435456", fmpq(-11185117, 268435456)), ("0.28", fmpq(7, 25)),
                                         ("-.25", fmpq(-1, 4)), ("+7/3", fmpq(7, 3)), (" 12/5 ", fmpq(12, 5)),
                                         ("5.", fmpq(5)), ("-0", fmpq(0)), ("0012/0004", fmpq(3))])
def test_short_number_hand_values(text, value):
    assert _short_number(text) == value and to_fmpq(text) == value


def test_short_number_declines_what_it_does_not_read():
    for text in ("1/0", "1e3", "0.1/3", ".", "-", "/3", "abc", "nan"):
        assert _short_number(text) is None
