"""Exact linear algebra over the rationals (python-flint ``fmpq_mat``) and the matmul dispatcher.

``matmul`` is the one place that decides how a product is computed for a number type: numpy for
floats, ``fmpq_mat`` for exact rationals, numpy's object loop for anything else (mpmath, Fraction).
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Sequence

import numpy as np
from flint import fmpq, fmpq_mat


def _is_fmpq_array(a: np.ndarray) -> bool:
    return a.dtype == object and a.size > 0 and isinstance(a.flat[0], (fmpq, int))


# ---------------------------------------------------------------------------------------------
# frozen exact arrays: values derived from them are computed once
# ---------------------------------------------------------------------------------------------
# A *frozen* array is a read-only numpy array that owns its memory (``freeze``): the problem's data X
# and Y.  Its entries cannot change (numpy refuses the assignment), so a value derived from it -- its
# fmpq_mat, its exact strings -- may be kept for as long as the array lives.  Any other array (a view,
# a writable array) is never cached: ``derived`` just computes.

_DERIVED: dict[int, tuple[weakref.ref, dict]] = {}


def freeze(a: np.ndarray) -> np.ndarray:
    """Make ``a`` read-only (in place) and return it; derived values of it are cached from then on."""
    a.flags.writeable = False
    return a


def is_frozen(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.base is None and not a.flags.writeable


def _forget(key: int) -> Callable:
    def drop(ref):
        ent = _DERIVED.get(key)
        if ent is not None and ent[0] is ref:
            del _DERIVED[key]
    return drop


def _slot(a: np.ndarray) -> dict:
    key = id(a)
    ent = _DERIVED.get(key)
    if ent is None or ent[0]() is not a:
        ent = (weakref.ref(a, _forget(key)), {})
        _DERIVED[key] = ent
    return ent[1]


def derived(a: np.ndarray, name: str, make: Callable[[np.ndarray], Any]) -> Any:
    """``make(a)``, computed once per frozen array ``a`` (every call for any other array)."""
    if not is_frozen(a):
        return make(a)
    slot = _slot(a)
    if name not in slot:
        slot[name] = make(a)
    return slot[name]


def seed_derived(a: np.ndarray, name: str, value: Any) -> None:
    """Record a value of ``derived(a, name, ...)`` computed another way (e.g. the exact strings of
    float data, from the floats); a no-op unless ``a`` is frozen."""
    if is_frozen(a):
        _slot(a)[name] = value


def _to_fmpq_mat(a: np.ndarray) -> fmpq_mat:
    r, c = a.shape
    # fmpq_mat takes fmpq, fmpz and int entries itself (and refuses floats)
    return fmpq_mat(r, c, a.ravel().tolist())


def to_fmpq_mat(a: np.ndarray) -> fmpq_mat:
    """The fmpq_mat of a 2-D exact array (converted once for a frozen array; callers never mutate it)."""
    return derived(a, "fmpq_mat", _to_fmpq_mat)


def from_fmpq_mat(M: fmpq_mat) -> np.ndarray:
    out = np.empty(M.nrows() * M.ncols(), dtype=object)
    out[:] = M.entries()
    return out.reshape(M.nrows(), M.ncols())


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Matrix product for every number type the engine uses (float, fmpq, Fraction, mpf)."""
    if a.dtype == object or b.dtype == object:
        if a.ndim == 2 and b.ndim == 2 and _is_fmpq_array(a) and _is_fmpq_array(b):
            if a.shape[1] == 0:
                out = np.empty((a.shape[0], b.shape[1]), dtype=object)
                out[...] = fmpq(0)
                return out
            return from_fmpq_mat(to_fmpq_mat(a) * to_fmpq_mat(b))
        return np.matmul(a.astype(object), b.astype(object))
    if a.ndim == 2 and b.ndim > 2:
        # shared left factor (X @ W_t^T for a batch of checkpoints): one GEMM over the stacked
        # columns instead of a loop of tiny products; returns a view in the batch's memory order
        bt = np.swapaxes(b, -1, -2)
        if bt.flags.c_contiguous:
            out = bt.reshape(-1, bt.shape[-1]) @ a.T
            return np.swapaxes(out.reshape(bt.shape[:-1] + (a.shape[0],)), -1, -2)
    if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[1],))
    return np.matmul(a, b)


# ---------------------------------------------------------------------------------------------
# small exact helpers on lists of fmpq vectors
# ---------------------------------------------------------------------------------------------

Vec = Sequence[fmpq]


def dot(u: Vec, v: Vec) -> fmpq:
    s = fmpq(0)
    for a, b in zip(u, v):
        if a and b:
            s += a * b
    return s


def mat(rows: Sequence[Vec], ncols: int | None = None) -> fmpq_mat:
    rows = list(rows)
    if not rows:
        return fmpq_mat(0, ncols or 0)
    c = len(rows[0])
    return fmpq_mat(len(rows), c, [fmpq(v) if not isinstance(v, fmpq) else v for r in rows for v in r])


def rank(rows: Sequence[Vec]) -> int:
    rows = list(rows)
    if not rows:
        return 0
    return mat(rows).rank()


def rref_pivots(rows: Sequence[Vec]) -> tuple[list[list[fmpq]], list[int]]:
    """Reduced row echelon form (non-zero rows) and pivot columns."""
    rows = list(rows)
    if not rows:
        return [], []
    R, rk = mat(rows).rref()
    out, piv = [], []
    ncols = R.ncols()
    for i in range(rk):
        row = [R[i, c] for c in range(ncols)]
        out.append(row)
        piv.append(next(c for c in range(ncols) if row[c] != 0))
    return out, piv


def nullspace(rows: Sequence[Vec], ncols: int) -> list[list[fmpq]]:
    """Basis of {r : row . r = 0 for every row} (exact)."""
    rows = list(rows)
    if not rows:
        return [[fmpq(1) if c == i else fmpq(0) for c in range(ncols)] for i in range(ncols)]
    R, piv = rref_pivots(rows)
    free = [c for c in range(ncols) if c not in piv]
    basis = []
    for f in free:
        v = [fmpq(0)] * ncols
        v[f] = fmpq(1)
        for row, p in zip(R, piv):
            v[p] = -row[f]
        basis.append(v)
    return basis


def independent_subset(rows: Sequence[Vec]) -> list[int]:
    """Indices of a maximal linearly independent subset of rows (greedy, exact)."""
    rows = list(rows)
    if not rows:
        return []
    # columns of the transpose: pivots of rref(rows^T) are independent rows
    T = [[rows[i][c] for i in range(len(rows))] for c in range(len(rows[0]))]
    _, piv = rref_pivots(T)
    return piv


def solve_in_span(rows: Sequence[Vec], b: Vec) -> list[fmpq] | None:
    """Coefficients mu with sum_p mu_p rows[p] = b, or None if b is not in the span.

    The rows must be linearly independent (then mu is unique)."""
    rows = list(rows)
    d = len(b)
    if not rows:
        return [] if all(v == 0 for v in b) else None
    N = mat(rows)                      # p x d
    Nt = N.transpose()                 # d x p
    gram = N * Nt                      # p x p, invertible
    mu_m = gram.solve(N * mat([[v] for v in b]))
    mu = [mu_m[i, 0] for i in range(len(rows))]
    back = [sum((mu[p] * rows[p][c] for p in range(len(rows))), fmpq(0)) for c in range(d)]
    return mu if all(x == y for x, y in zip(back, b)) else None


def project_out(rows: Sequence[Vec], b: Vec) -> list[fmpq]:
    """Component of b orthogonal to span(rows) (rows independent)."""
    rows = list(rows)
    if not rows:
        return list(b)
    N = mat(rows)
    gram = N * N.transpose()
    mu_m = gram.solve(N * mat([[v] for v in b]))
    mu = [mu_m[i, 0] for i in range(len(rows))]
    return [b[c] - sum((mu[p] * rows[p][c] for p in range(len(rows))), fmpq(0)) for c in range(len(b))]


def dual_vector(rows: Sequence[Vec], p: int) -> list[fmpq]:
    """r with rows[q].r = [q == p] for independent rows (r in their span)."""
    rows = list(rows)
    N = mat(rows)
    gram = N * N.transpose()
    e = fmpq_mat(len(rows), 1, [fmpq(1) if q == p else fmpq(0) for q in range(len(rows))])
    c = gram.solve(e)
    d = len(rows[0])
    return [sum((c[q, 0] * rows[q][i] for q in range(len(rows))), fmpq(0)) for i in range(d)]


def rows(a: np.ndarray) -> list[list]:
    """A 2-D array as a list of row lists (entries unchanged)."""
    return [list(r) for r in a.tolist()]


def is_zero(v: Vec) -> bool:
    return all(x == 0 for x in v)


def parallel_factor(w_base: Vec, w: Vec) -> fmpq | None:
    """c > 0 with w = c w_base (both non-zero), 1 if both are zero, else None."""
    if is_zero(w_base) and is_zero(w):
        return fmpq(1)
    if is_zero(w_base) or is_zero(w):
        return None
    p = next(q for q, v in enumerate(w_base) if v != 0)
    c = w[p] / w_base[p]
    if c <= 0 or any(u != c * v for u, v in zip(w, w_base)):
        return None
    return c


def matvec(H: Sequence[Vec], v: Vec) -> list[fmpq]:
    return [dot(row, v) for row in H]


def quad(H: Sequence[Vec], v: Vec) -> fmpq:
    """v^T H v."""
    return dot(v, matvec(H, v))


def mat_rank(rows_: Sequence[Vec], ncols: int) -> int:
    if not rows_:
        return 0
    return fmpq_mat(len(rows_), ncols, [v for r in rows_ for v in r]).rank()
