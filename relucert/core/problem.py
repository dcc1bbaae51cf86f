"""Problem (data, activation, loss convention) and Point (W, A, optional output bias c), with exact and
float views.

Every number is stored exactly as a ``flint.fmpq`` rational.  Floats are converted through their
exact binary value (a float *is* a dyadic rational); decimal strings through their decimal value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
from flint import fmpq

from relucert.check.limits import LimitError, Limits, active_limits, parse_exact
from relucert.core.linalg import derived, freeze, seed_derived
from relucert.errors import InputError

LOSS_CONVENTIONS = ("half_mean", "mse")


# ---------------------------------------------------------------------------------------------
# exact numbers
# ---------------------------------------------------------------------------------------------

def to_fmpq(v: Any, what: str = "value", limits: Limits | None = None) -> fmpq:
    """Convert one number exactly: ints, floats (binary value), Fractions, decimal/fraction strings.
    Strings and Decimals are size-checked against the input limits before conversion."""
    if type(v) is str:                # the common case first (checkpoint files): no other branch applies
        return _str_to_fmpq(v, what, limits or active_limits())
    if isinstance(v, fmpq):
        return v
    limits = limits or active_limits()
    if isinstance(v, (bool, np.bool_)):
        raise InputError(f"{what}: expected a number, got a boolean")
    if isinstance(v, (int, np.integer)):
        return fmpq(int(v))
    if isinstance(v, (float, np.floating)):
        # as_integer_ratio on the value's own type: exact for float16/32/64 and for longdouble,
        # which float() would round to float64 (and flush values below 5e-324 to 0)
        if not np.isfinite(v):
            raise InputError(f"{what} is {'NaN' if np.isnan(v) else 'infinite'}")
        p, q = v.as_integer_ratio()
        return fmpq(int(p), int(q))
    if isinstance(v, Fraction):
        return fmpq(v.numerator, v.denominator)
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise InputError(f"{what} is not finite: {v}")
        sign, digits, exp = v.as_tuple()
        if len(digits) > limits.max_digits or abs(exp) > limits.max_exponent:
            raise InputError(f"{what}: decimal with {len(digits)} digits and exponent {exp} exceeds the input "
                             f"limits (max_digits {limits.max_digits}, max_exponent {limits.max_exponent})")
        p, q = v.as_integer_ratio()
        return fmpq(p, q)
    if isinstance(v, str):
        return _str_to_fmpq(v, what, limits)
    raise InputError(f"{what}: expected a number, got {type(v).__name__}")


def _str_to_fmpq(v: str, what: str, limits: Limits) -> fmpq:
    low = v.strip().lower()
    if "nan" in low or "inf" in low:
        raise InputError(f"{what} is not finite: {v[:40]!r}")
    if len(v) <= _SHORT <= limits.max_digits:
        q = _short_number(v)
        if q is not None:
            return q
    try:
        fr = parse_exact(v, what, limits)
    except LimitError as e:
        raise InputError(str(e)) from None
    return fmpq(fr.numerator, fr.denominator)


_SHORT = 40       # number strings up to this length are read by _short_number (within any digit limit >= it)
_SHORT_RE = re.compile(r"\s*([+-]?)(\d*)(?:(\.)(\d*))?(?:/(\d+))?\s*")


def _short_number(v: str) -> fmpq | None:
    """The exact value of a short integer, plain decimal or fraction p/q string (the forms checkpoints
    are written in), or None for any other form (parse_exact reads those, with its messages)."""
    m = _SHORT_RE.fullmatch(v)
    if m is None:
        return None
    sign, ip, dot, fp, den = m.groups()
    fp = fp or ""
    if not (ip or fp) or (dot and den is not None):
        return None
    q = int(den) if den is not None else 1
    if q == 0:
        return None
    p = int(ip + fp) if ip or fp else 0
    return fmpq(-p if sign == "-" else p, q * 10 ** len(fp))


def _nearest_float_slow(q: fmpq) -> float:
    """Nearest float64 of an exact rational through Python integers (int / int is correctly rounded)."""
    return int(q.p) / int(q.q)


# Hard cases for a conversion to float64: ties between two floats (round half to even), values
# that are not dyadic (truncation and rounding differ), subnormals and their ties, long integers.
_ROUNDING_PROBES = ((2 ** 53 + 1, 1), (2 ** 53 + 3, 1), (-(2 ** 53 + 3), 1), (2 ** 54 + 6, 1), (1, 3), (2, 3),
                    (-2, 3), (1, 10), (7, 10), (-7, 10), (10 ** 30 + 1, 3 * 10 ** 29), (2 ** 200 - 1, 2 ** 147),
                    (1, 3 * 2 ** 1070), (3, 2 ** 1076), (-3, 2 ** 1076), (5, 2 ** 1076), (1, 2 ** 1075),
                    (3 ** 700, 2 ** 1100 + 1), ((2 ** 53 - 1) * 2 ** 970, 1))


def _flint_float_is_nearest() -> bool:
    """Whether python-flint's float(fmpq) is the correctly rounded quotient on the probes (then it is
    used: several times faster than converting numerator and denominator to Python integers)."""
    try:
        return all(float(fmpq(p, q)) == _nearest_float_slow(fmpq(p, q)) for p, q in _ROUNDING_PROBES)
    except Exception:          # noqa: BLE001 -- any failure: keep the Python-integer route
        return False


# the nearest float64 of an fmpq (raises OverflowError beyond the float range): float() when
# python-flint rounds correctly (checked above), else through Python integers
nearest_float = _nearest_float = float if _flint_float_is_nearest() else _nearest_float_slow


def fmpq_to_float(q: fmpq) -> float:
    """Nearest float64 of an exact rational (correctly rounded); +-inf beyond the float range."""
    try:
        return _nearest_float(q)
    except OverflowError:
        return float("inf") if q > 0 else float("-inf")


def fmpq_to_fraction(q: fmpq) -> Fraction:
    return Fraction(int(q.p), int(q.q))


def qstr(q: fmpq) -> str:
    """Exact string 'p/q' (or 'p'): str(q), through ``_qs`` for an fmpq (the same text, faster)."""
    return _qs(q) if type(q) is fmpq else str(q)


def to_exact_matrix(rows: Any, what: str, *, flat_ok: bool = False) -> np.ndarray:
    """Convert nested lists / arrays into a 2-D numpy object array of fmpq (exact)."""
    if isinstance(rows, np.ndarray):
        if rows.dtype.kind not in "fiub" and rows.dtype != object:
            raise InputError(f"{what} has non-numeric dtype {rows.dtype}")
        arr = rows
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                kind = "NaN" if np.isnan(arr[idx]) else "inf"
                raise InputError(f"{what} contains {kind} at index {list(idx)}")
        if arr.dtype.kind == "f" and arr.dtype.itemsize <= 8 and arr.ndim == 2 and arr.size:
            # binary floats up to float64: every value is exactly p * 2^e (p, e integers, read off
            # the float's bits), the same value as_integer_ratio / to_fmpq give one by one
            out = np.empty(arr.shape, dtype=object)
            out.ravel()[:] = [fmpq(q, _POW2[-x]) if x < 0 else fmpq(q << x) for q, x in zip(*_dyadic_parts(arr))]
            return out
        lst = arr.tolist()
    else:
        lst = rows
    if not isinstance(lst, (list, tuple)):
        raise InputError(f"{what} must be a list of rows (got {type(lst).__name__})")
    if len(lst) == 0:
        raise InputError(f"{what} is empty")
    if all(not isinstance(r, (list, tuple)) for r in lst):
        if not flat_ok:
            raise InputError(f"{what} must be a 2-D array (list of rows)")
        lst = [[v] for v in lst]
    if any(not isinstance(r, (list, tuple)) for r in lst):
        raise InputError(f"{what} mixes numbers and rows")
    ncol = len(lst[0])
    if ncol == 0:
        raise InputError(f"{what} has rows of length 0")
    for i, r in enumerate(lst):
        if len(r) != ncol:
            raise InputError(f"{what} is ragged: row 0 has {ncol} entries but row {i} has {len(r)}")
    out = np.empty((len(lst), ncol), dtype=object)
    for i, r in enumerate(lst):
        try:
            out[i, :] = [to_fmpq(v, what) for v in r]
        except InputError:
            for c, v in enumerate(r):           # again, entry by entry: the error names the entry
                to_fmpq(v, f"{what}[{i}][{c}]")
            raise
    return out


def exact_matrix(rows: Sequence[Sequence[Any]], ncols: int) -> np.ndarray:
    """2-D object array of fmpq from row lists of ints / fmpq (trusted, exact values: no parsing)."""
    out = np.empty((len(rows), ncols), dtype=object)
    for i, r in enumerate(rows):
        out[i, :] = [v if isinstance(v, fmpq) else fmpq(v) for v in r]
    return out


def exact_to_float(a: np.ndarray) -> np.ndarray:
    """Nearest float64 of every exact entry (``fmpq_to_float``)."""
    flat = a.ravel().tolist()
    try:
        vals = [_nearest_float(v) for v in flat]
    except OverflowError:
        vals = [fmpq_to_float(v) for v in flat]
    return np.array(vals, dtype=float).reshape(a.shape)


_QS_BITS = 8192      # beyond this, flint's own str (Python's int -> str has a digit limit, ~4300)


def _qs(q: fmpq) -> str:
    """str(q) ('p/q', or 'p' for an integer), about twice as fast through Python integers for the
    numbers of float checkpoints; very long numbers go through flint, which has no digit limit."""
    p, d = int(q.p), int(q.q)
    if p.bit_length() > _QS_BITS or d.bit_length() > _QS_BITS:
        return str(q)
    return f"{p}/{d}" if d != 1 else f"{p}"


def _exact_strings(a: np.ndarray) -> list:
    return [[_qs(v) for v in row] for row in a.tolist()]


def exact_to_strings(a: np.ndarray) -> list:
    """Row lists of the exact strings of a 2-D exact array (computed once for frozen problem data;
    the lists returned are fresh, a caller may change them)."""
    return [list(row) for row in derived(a, "strings", _exact_strings)]


def _point_strings(name: str, a: np.ndarray, recent: dict | None) -> list:
    """``exact_to_strings(a)`` for a point's array; with ``recent`` (a dict the caller keeps), the
    strings of the previous call with the same name and shape are reused wherever the entry at the
    same position is equal (exactly) to the one the string was made from."""
    if recent is None:
        return exact_to_strings(a)
    flat = a.ravel().tolist()
    key = (name, a.shape)
    prev = recent.get(key)
    if prev is None:
        out = [_qs(v) for v in flat]
    else:
        out = [s if (u is v or (type(v) is fmpq and type(u) is fmpq and u == v)) else _qs(v)
               for u, v, s in zip(prev[0], flat, prev[1])]
    recent[key] = (flat, out)
    cols = a.shape[1]
    return [out[i * cols:(i + 1) * cols] for i in range(a.shape[0])]


_POW2 = [1 << k for k in range(1130)]      # 2^k up to past float64's smallest subnormal 2^-1074


def _dyadic_parts(a: np.ndarray) -> tuple[list, list]:
    """Integers (p, e), flattened, with a = p * 2^e and p odd (p = e = 0 for zero), for an array of
    binary floats up to float64 (finite), read off the floats with numpy."""
    f = np.asarray(a, dtype=np.float64)          # a widening conversion: every value is kept exactly
    mant, ex = np.frexp(f)                        # f = mant * 2^ex, 1/2 <= |mant| < 1 (subnormals too)
    p = np.ldexp(mant, 53).astype(np.int64)       # exact: |p| < 2^53
    e = ex.astype(np.int64) - 53
    nz = p != 0
    low = (p & -p)[nz]                            # lowest set bit: a power of two <= 2^52, exact in float
    tz = np.frexp(low.astype(np.float64))[1].astype(np.int64) - 1
    p[nz] >>= tz
    e[nz] += tz
    e[~nz] = 0
    return p.ravel().tolist(), e.ravel().tolist()


def dyadic_strings(a: np.ndarray) -> list:
    """The exact strings (as ``exact_to_strings`` writes them: 'p/q' or 'p', lowest terms) of a 2-D
    array of binary floats up to float64, from the floats themselves (a = p * 2^e with p odd: the
    fraction p / 2^-e, or the integer p * 2^e)."""
    out = [f"{q}/{_POW2[-x]}" if x < 0 else f"{q << x}" for q, x in zip(*_dyadic_parts(a))]
    cols = a.shape[1]
    return [out[i * cols:(i + 1) * cols] for i in range(a.shape[0])]


# ---------------------------------------------------------------------------------------------
# activation
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Activation:
    """ReLU-like activation sigma(z) = alpha_plus*z (z>0), alpha_minus*z (z<=0); exact slopes."""

    alpha_plus: fmpq
    alpha_minus: fmpq

    def __post_init__(self):
        if self.alpha_plus == self.alpha_minus:
            raise InputError(f"activation is linear: alpha_plus = alpha_minus = {self.alpha_plus}; "
                             "a ReLU-like activation needs alpha_plus != alpha_minus")

    @property
    def name(self) -> str:
        ap, am = self.alpha_plus, self.alpha_minus
        if ap == 1 and am == 0:
            return "relu"
        if ap == 1 and am == -1:
            return "abs"
        if ap == 1:
            return f"leaky_relu:{am}"
        return f"alpha_plus={ap}, alpha_minus={am}"

    def to_json(self) -> dict:
        return {"alpha_plus": str(self.alpha_plus), "alpha_minus": str(self.alpha_minus)}

    @classmethod
    def parse(cls, spec: Any) -> "Activation":
        if isinstance(spec, Activation):
            return spec
        if isinstance(spec, dict):
            missing = {"alpha_plus", "alpha_minus"} - set(spec)
            if missing:
                raise InputError(f"activation object lacks {sorted(missing)}")
            return cls(to_fmpq(spec["alpha_plus"], "alpha_plus"), to_fmpq(spec["alpha_minus"], "alpha_minus"))
        if isinstance(spec, (tuple, list)) and len(spec) == 2:
            return cls(to_fmpq(spec[0], "alpha_plus"), to_fmpq(spec[1], "alpha_minus"))
        if not isinstance(spec, str):
            raise InputError(f"activation: expected a name or {{alpha_plus, alpha_minus}}, got {spec!r}")
        s = spec.strip().lower()
        if "," in s:                              # "alpha_plus,alpha_minus", each read exactly as written
            parts = [p.strip() for p in s.split(",")]
            if len(parts) != 2 or not all(parts):
                raise InputError(f"activation {spec!r}: expected ALPHA_PLUS,ALPHA_MINUS (two numbers)")
            return cls(to_fmpq(parts[0], "alpha_plus"), to_fmpq(parts[1], "alpha_minus"))
        if s == "relu":
            return cls(fmpq(1), fmpq(0))
        if s == "abs":
            return cls(fmpq(1), fmpq(-1))
        if s.startswith("leaky_relu"):
            rest = s[len("leaky_relu"):]
            slope = fmpq(1, 100) if rest == "" else to_fmpq(rest.lstrip(":="), "leaky_relu slope")
            return cls(fmpq(1), slope)
        if s == "linear":
            raise InputError("activation 'linear' has alpha_plus = alpha_minus; not ReLU-like")
        raise InputError(f"unknown activation {spec!r} (use relu, leaky_relu:SLOPE, abs, ALPHA_PLUS,ALPHA_MINUS "
                         "or {'alpha_plus': .., 'alpha_minus': ..})")


# ---------------------------------------------------------------------------------------------
# problem and point
# ---------------------------------------------------------------------------------------------

@dataclass
class Problem:
    """Data X (n x d), targets Y (n x k), activation and loss convention, all exact."""

    X: np.ndarray
    Y: np.ndarray
    activation: Activation
    loss: str = "half_mean"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    defaulted: tuple = field(default=(), compare=False)   # names of settings the input did not give

    def defaults_note(self) -> str:
        """A loud line for reports when the input left the activation or the loss convention out."""
        parts = []
        if "activation" in self.defaulted:
            parts.append(f"activation {self.activation.name} (the input names none; a model trained with another "
                         "activation gets a wrong verdict: add \"activation\")")
        if "loss" in self.defaulted:
            parts.append(f"loss convention {self.loss} (the input names none; PyTorch's mse_loss is \"mse\")")
        return ("DEFAULTS USED: " + "; ".join(parts)) if parts else ""

    @classmethod
    def make(cls, X: Any, Y: Any, activation: Any = "relu", loss: str = "half_mean") -> "Problem":
        act = Activation.parse(activation)
        if loss not in LOSS_CONVENTIONS:
            raise InputError(f"unknown loss convention {loss!r} (use 'half_mean' or 'mse')")
        Xe = to_exact_matrix(X, "X", flat_ok=True)
        Ye = to_exact_matrix(Y, "Y", flat_ok=True)
        if Ye.shape[0] != Xe.shape[0]:
            raise InputError(f"X has {Xe.shape[0]} rows but Y has {Ye.shape[0]}")
        for src, ex in ((X, Xe), (Y, Ye)):
            # the data never changes: frozen, so its fmpq_mat and strings are computed once; for float
            # data the exact strings come from the floats (much faster than from the rationals)
            freeze(ex)
            if (isinstance(src, np.ndarray) and src.dtype.kind == "f" and src.dtype.itemsize <= 8
                    and src.size == ex.size and ex.size):
                seed_derived(ex, "strings", dyadic_strings(src.reshape(ex.shape)))
                # the same values as float64 (a widening conversion, exact): exactfast reads the
                # data's integers off them
                seed_derived(ex, "float64", freeze(np.array(src, dtype=np.float64).reshape(ex.shape).copy()))
        return cls(Xe, Ye, act, loss)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def k(self) -> int:
        return self.Y.shape[1]

    @property
    def Xf(self) -> np.ndarray:
        if "Xf" not in self._cache:
            self._cache["Xf"] = exact_to_float(self.X)
        return self._cache["Xf"]

    @property
    def Yf(self) -> np.ndarray:
        if "Yf" not in self._cache:
            self._cache["Yf"] = exact_to_float(self.Y)
        return self._cache["Yf"]

    def loss_factor(self) -> fmpq:
        """Factor turning the half_mean loss into this problem's convention."""
        return fmpq(1) if self.loss == "half_mean" else fmpq(2, self.k)

    def to_json(self) -> dict:
        return {"activation": self.activation.to_json(), "loss": self.loss,
                "X": exact_to_strings(self.X), "Y": exact_to_strings(self.Y)}


def to_exact_vector(v: Any, length: int | None, what: str) -> np.ndarray:
    """A 1-D numpy object array of fmpq from a flat list / array of numbers (exact), optionally of a
    given length; a single number is a vector of length 1, a 1 x k or k x 1 array is flattened."""
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            v = v.reshape(1)
        if v.ndim == 2 and 1 in v.shape:
            v = v.reshape(-1)
        if v.ndim != 1:
            raise InputError(f"{what} must be a vector (got an array of shape {v.shape})")
        rows = v.reshape(-1, 1)
    else:
        if not isinstance(v, (list, tuple)):
            v = [v]
        if len(v) == 1 and isinstance(v[0], (list, tuple)):
            v = v[0]                        # [[c_1, ..., c_k]]
        if len(v) and all(isinstance(x, (list, tuple)) and len(x) == 1 for x in v):
            v = [x[0] for x in v]           # [[c_1], ..., [c_k]]
        if any(isinstance(x, (list, tuple)) for x in v):
            raise InputError(f"{what} must be a flat list of numbers")
        rows = [[x] for x in v]
    if len(rows) == 0:
        raise InputError(f"{what} is empty")
    out = to_exact_matrix(rows, what, flat_ok=True)[:, 0].copy()
    if length is not None and out.shape[0] != length:
        raise InputError(f"{what} has {out.shape[0]} entries but Y has {length} columns")
    return out


@dataclass
class Point:
    """Parameters: W (m x d) input weights, A (m x k) output weights and, optionally, an output bias
    c (k), all exact.  ``c is None`` means the network has no output bias (f(x) = sum_j a_j sigma(w_j.x));
    a vector c, even all zeros, means f(x) = sum_j a_j sigma(w_j.x) + c with c a free parameter
    (docs/biases.md: the two cases have different verdicts and must stay distinguishable)."""

    W: np.ndarray
    A: np.ndarray
    c: np.ndarray | None = None       # 1-D object array of k fmpq, or None (no output bias)
    # float views (``Wf``, ``Af``, ``cf``), each kept with the exact entries it was computed from and
    # recomputed whenever those differ: points are written in place (new.W[j] = ...), so a view is
    # reused only while the exact content it came from is still there (never by object identity)
    _views: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def make(cls, W: Any, A: Any, problem: Problem | None = None, c: Any = None) -> "Point":
        """Exact point from nested lists / arrays; with ``problem``, shapes are checked against it
        (and a scalar-output A given as one row of length m is read as a column).  ``c``: the
        output bias (k numbers), or None for a network without one."""
        We = to_exact_matrix(W, "W")
        Ae = to_exact_matrix(A, "A", flat_ok=True)  # a flat A is scalar output (m x 1)
        if problem is not None and Ae.shape != (We.shape[0], problem.k) and Ae.shape == (1, We.shape[0]) \
                and problem.k == 1:
            Ae = Ae.T.copy()
        ce = None if c is None else to_exact_vector(c, None, "c")
        pt = cls(We, Ae, ce)
        if problem is not None:
            pt.validate(problem)
        return pt

    @classmethod
    def from_rows(cls, W_rows: Sequence[Sequence[Any]], A_rows: Sequence[Sequence[Any]], d: int, k: int,
                  c: Sequence[Any] | None = None) -> "Point":
        """Point from row lists of exact numbers (ints and fmpq), with the shapes given (m may be 0)."""
        ce = None
        if c is not None:
            ce = np.empty(len(c), dtype=object)
            ce[:] = [v if isinstance(v, fmpq) else fmpq(v) for v in c]
        return cls(exact_matrix(W_rows, d), exact_matrix(A_rows, k), ce)

    @property
    def m(self) -> int:
        return self.W.shape[0]

    @property
    def has_output_bias(self) -> bool:
        """True when c is a free parameter of the network (even if it is 0)."""
        return self.c is not None

    def validate(self, problem: Problem) -> None:
        """Check the shapes against the problem (never changes the point)."""
        if self.W.shape[1] != problem.d:
            raise InputError(f"W has {self.W.shape[1]} columns but X has {problem.d}")
        if self.A.shape[0] != self.W.shape[0]:
            raise InputError(f"W has {self.W.shape[0]} rows (neurons) but A has {self.A.shape[0]}")
        if self.A.shape[1] != problem.k:
            raise InputError(f"A has {self.A.shape[1]} columns but Y has {problem.k}")
        if self.c is not None and (getattr(self.c, "ndim", 0) != 1 or self.c.shape[0] != problem.k):
            raise InputError(f"the output bias c has {len(self.c)} entries but Y has {problem.k} columns")

    def _float_view(self, name: str, a: np.ndarray) -> np.ndarray:
        """``exact_to_float(a)`` (a fresh array: callers may change it), reusing the one computed
        before when ``a`` still has the same shape and exactly the same entries (compared with ==;
        entries that are the very same objects compare at once)."""
        content = (a.shape, a.ravel().tolist())
        got = self._views.get(name)
        if got is None or got[0] != content:
            got = (content, exact_to_float(a))
            self._views[name] = got
        return got[1].copy()

    @property
    def Wf(self) -> np.ndarray:
        return self._float_view("W", self.W)

    @property
    def Af(self) -> np.ndarray:
        return self._float_view("A", self.A)

    @property
    def cf(self) -> np.ndarray | None:
        """Nearest float64 of the output bias, or None."""
        if self.c is None:
            return None
        if not isinstance(self.c, np.ndarray):
            return np.array([fmpq_to_float(v) for v in self.c], dtype=float)
        return self._float_view("c", self.c)

    def c_list(self) -> list | None:
        """The output bias as a list of fmpq, or None."""
        return None if self.c is None else list(self.c.tolist())

    def to_json(self, recent: dict | None = None) -> dict:
        """W, A (and c) as exact strings.  ``recent``: a dict kept by the caller across the points it
        writes (nearby points: most entries are the same), whose strings are reused where the entries
        are equal; the text is the same with or without it."""
        # the strings of the latest call are kept with the exact entries they were written from
        # (compared with ==, as the float views are): a point written twice is converted once
        content = (self.W.shape, self.A.shape, self.W.ravel().tolist(), self.A.ravel().tolist())
        got = self._views.get("json")
        if got is None or got[0] != content:
            got = (content, (_point_strings("W", self.W, recent), _point_strings("A", self.A, recent)))
            self._views["json"] = got
        out = {"W": [list(r) for r in got[1][0]], "A": [list(r) for r in got[1][1]]}
        if self.c is not None:
            out["c"] = [str(v) for v in self.c.tolist()]
        return out

    def copy(self) -> "Point":
        return Point(self.W.copy(), self.A.copy(), None if self.c is None else self.c.copy())


def as_problem_point(X, Y, W, A, activation="relu", loss="half_mean", c=None) -> tuple[Problem, Point]:
    """Exact (Problem, Point); ``c`` is the output bias (k numbers), None for a network without one."""
    pb = Problem.make(X, Y, activation, loss)
    return pb, Point.make(W, A, pb, c=c)
