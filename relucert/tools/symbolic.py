"""Symbolic layer (sympy): the network of docs/theory.md §1 on one activation pattern, with an
optional output bias c (docs/biases.md: f(x) = sum_j a_j sigma(w_j . x) + c; dL/dc is the mean residual).

For a problem and a point — or for an explicit activation pattern (sign of every ``z_ij``, with the
sign of a direction on the kinks) — :class:`SymbolicModel` builds with sympy

- the loss as a polynomial in the parameters on that pattern (``loss``), its ``gradient`` and
  ``hessian``;
- ``G_j``, ``D_j(r)`` (piecewise in r) and ``phi_j(r)`` per neuron (docs/theory.md §3);
- ``L'(theta; Delta)`` as a piecewise expression in Delta (``directional_derivative``), and the same
  number derived from the definition, as the t-coefficient of the loss along the ray
  (``directional_derivative_limit``);
- the ray polynomial of §2 (``ray_coefficients``: Taylor coefficients of ``t -> L(theta + t Delta)``
  on the pattern, *derived* by substitution, not copied from the closed form) and its ``t_max``;
- the escape-path polynomial of §4 (``escape_path``).

Code generation: :func:`exact_function` prints expressions as Python source over exact rationals
(``flint.fmpq`` or ``fractions.Fraction``) — sympy's default ``lambdify`` would print
``Rational(1, 2)`` as the float ``1/2``; :func:`numpy_function` gives vectorised float code.

Nothing here calls the exact engine (``firstorder.py``); ``tests/test_symbolic.py`` compares the
two on random instances and requires exact equality.

Conventions: neurons and data points are numbered from 0, as in the engine and the reports.
Slopes on a kink follow the *branch* of the pattern: ``+1`` means the direction enters ``z > 0``
(``delta_ij > 0``, slope alpha_plus), ``-1`` means ``delta_ij <= 0`` (slope alpha_minus, also the
engine's convention ``sigma'(0) = alpha_minus``).  On a fixed pattern the loss is the polynomial
``(1/2n) sum_i ||sum_j a_j s_ij (w_j . x_i) - y_i||^2``; it equals the true loss on the closed
region of that pattern, and along ``theta + t Delta`` for ``0 < t < t_max`` when the branches are
those of Delta.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Sequence

import numpy as np
import sympy as sp
from flint import fmpq
from sympy.printing.pycode import PythonCodePrinter

from relucert.errors import InputError
from relucert.core.problem import Point, Problem, to_fmpq

__all__ = ["SignPattern", "SymbolicModel", "sigma", "sigma_prime", "rat", "exact_function",
           "exact_source", "numpy_function", "ExactFunction", "ExactnessError"]


# ---------------------------------------------------------------------------------------------
# numbers and the activation
# ---------------------------------------------------------------------------------------------

def rat(v: Any) -> sp.Rational:
    """Exact sympy Rational of an int / fmpq / Fraction / string / float (binary value)."""
    if isinstance(v, sp.Rational):
        return v
    if isinstance(v, sp.Basic):
        if v.is_Rational:
            return v
        raise InputError(f"not a rational number: {v}")
    q = to_fmpq(v)
    return sp.Rational(int(q.p), int(q.q))


def to_fmpq_exact(v: Any) -> fmpq:
    """fmpq of a sympy Rational (or anything ``to_fmpq`` reads)."""
    if isinstance(v, sp.Basic):
        if not v.is_Rational:
            raise ExactnessError(f"expected an exact rational, got {v}")
        return fmpq(int(v.p), int(v.q))
    return to_fmpq(v)


def sigma(u, ap, am):
    """sigma(u) = alpha_plus u (u > 0), alpha_minus u (u <= 0), as a sympy Piecewise."""
    u = sp.sympify(u)
    return sp.Piecewise((ap * u, u > 0), (am * u, True))


def sigma_prime(u, ap, am):
    """sigma'(u) with the engine's convention sigma'(0) = alpha_minus."""
    u = sp.sympify(u)
    return sp.Piecewise((ap, u > 0), (am, True))


# ---------------------------------------------------------------------------------------------
# activation pattern
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignPattern:
    """Sign of every pre-activation ``z_ij`` (n x m, entries -1/0/+1) and, on the kinks
    (``z_ij = 0``), the branch of a direction: +1 when ``delta_ij > 0``, -1 when ``delta_ij <= 0``."""

    signs: tuple
    branch: tuple

    @classmethod
    def make(cls, signs: Sequence[Sequence[int]], branch: Sequence[Sequence[int]] | None = None) -> "SignPattern":
        rows = [list(r) for r in signs]
        if not rows or not rows[0]:
            raise InputError("pattern: signs must be a non-empty n x m table")
        m = len(rows[0])
        for i, r in enumerate(rows):
            if len(r) != m:
                raise InputError(f"pattern: row {i} has {len(r)} entries, row 0 has {m}")
            for v in r:
                if v not in (-1, 0, 1):
                    raise InputError(f"pattern: sign entries must be -1, 0 or 1 (got {v!r})")
        if branch is None:
            br = [[-1] * m for _ in rows]
        else:
            br = [list(r) for r in branch]
            if len(br) != len(rows) or any(len(r) != m for r in br):
                raise InputError("pattern: branch table must have the shape of the sign table")
            for r in br:
                for v in r:
                    if v not in (-1, 1):
                        raise InputError(f"pattern: branch entries must be -1 or 1 (got {v!r})")
        return cls(tuple(tuple(int(v) for v in r) for r in rows), tuple(tuple(int(v) for v in r) for r in br))

    @classmethod
    def from_point(cls, problem: Problem, point: Point, dW: Any = None) -> "SignPattern":
        """SignPattern of the point; branches on the kinks from the direction dW (default: -1)."""
        point.validate(problem)
        n, m = problem.n, point.m
        X, W = problem.X, point.W
        signs = [[_sgn(_dotq(X[i], W[j])) for j in range(m)] for i in range(n)]
        branch = [[-1] * m for _ in range(n)]
        if dW is not None:
            dWq = _as_fmpq_matrix(dW, (m, problem.d), "dW")
            for i in range(n):
                for j in range(m):
                    if signs[i][j] == 0 and _dotq(X[i], dWq[j]) > 0:
                        branch[i][j] = 1
        return cls.make(signs, branch)

    @property
    def n(self) -> int:
        return len(self.signs)

    @property
    def m(self) -> int:
        return len(self.signs[0])

    def kinks(self, j: int) -> list[int]:
        return [i for i in range(self.n) if self.signs[i][j] == 0]

    def slope(self, i: int, j: int, ap, am):
        s = self.signs[i][j]
        if s > 0 or (s == 0 and self.branch[i][j] > 0):
            return ap
        return am

    def with_branch(self, branch: Sequence[Sequence[int]]) -> "SignPattern":
        return SignPattern.make(self.signs, branch)

    def branch_from_direction(self, X: sp.Matrix, dW: sp.Matrix) -> "SignPattern":
        """Branches given by the sign of delta_ij = dW_j . x_i on the kinks (numeric X, dW)."""
        br = [[-1] * self.m for _ in range(self.n)]
        for i in range(self.n):
            for j in range(self.m):
                if self.signs[i][j] == 0:
                    dl = sum((X[i, q] * dW[j, q] for q in range(X.shape[1])), sp.Integer(0))
                    if not dl.is_Number:
                        raise InputError("branch_from_direction needs numeric data and direction")
                    if dl > 0:
                        br[i][j] = 1
        return SignPattern.make(self.signs, br)

    def row(self, j: int) -> str:
        """One neuron's pattern over the data points, e.g. '+ - 0'."""
        ch = {1: "+", -1: "-", 0: "0"}
        return " ".join(ch[self.signs[i][j]] for i in range(self.n))


def _sgn(v) -> int:
    return 1 if v > 0 else (-1 if v < 0 else 0)


def _dotq(u, v) -> fmpq:
    s = fmpq(0)
    for a, b in zip(list(u), list(v)):
        s += to_fmpq(a) * to_fmpq(b)
    return s


def _as_fmpq_matrix(a: Any, shape: tuple, what: str) -> list:
    rows = a.tolist() if hasattr(a, "tolist") else [list(r) for r in a]
    if len(rows) != shape[0] or any(len(r) != shape[1] for r in rows):
        raise InputError(f"{what} must have shape {shape}")
    return [[to_fmpq_exact(v) for v in r] for r in rows]


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------

def _idx(base: str, j: int, q: int, count: int) -> str:
    return f"{base}_{j}" if count == 1 else f"{base}_{j},{q}"


def _bias_symbols(k: int) -> list:
    """The output bias c as symbols c_0, ..., c_{k-1}."""
    return [sp.Symbol(f"c_{c}", real=True) for c in range(k)]


def _symbol_matrix(base: str, rows: int, cols: int, real: bool = True) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda j, q: sp.Symbol(_idx(base, j, q, cols), real=real))


class SymbolicModel:
    """sympy model of f(x) = sum_j a_j sigma(w_j . x) (+ c) and L = (1/2n) sum_i ||e_i||^2 on one pattern.

    Parameters that are sympy Symbols are the variables; numeric entries of ``W``/``A`` are frozen
    neurons (see ``from_problem(..., neurons=[j])``).  ``values`` maps the variables to the point.
    ``C``: the output bias (k entries, symbols ``c_0, ...`` or numbers), or None for a network
    without one; its parameters come after W and A in ``params()``, its direction is ``dc``.
    """

    def __init__(self, X: sp.Matrix, Y: sp.Matrix, ap, am, *, pattern: SignPattern | None = None,
                 slopes: sp.Matrix | None = None, W: sp.Matrix, A: sp.Matrix, C: Sequence | None = None,
                 values: dict | None = None, loss: str = "half_mean", _offset: list | None = None):
        self.X, self.Y = sp.Matrix(X), sp.Matrix(Y)
        self.n, self.d = self.X.shape
        self.k = self.Y.shape[1]
        self.W, self.A = sp.Matrix(W), sp.Matrix(A)
        self.m = self.W.shape[0]
        if self.A.shape != (self.m, self.k) or self.W.shape[1] != self.d or self.Y.shape[0] != self.n:
            raise InputError("SymbolicModel: inconsistent shapes of X, Y, W, A")
        self.ap, self.am = sp.sympify(ap), sp.sympify(am)
        if pattern is None and slopes is None:
            raise InputError("SymbolicModel needs a pattern (or an explicit slope matrix)")
        if pattern is not None and (pattern.n, pattern.m) != (self.n, self.m):
            raise InputError(f"pattern is {pattern.n} x {pattern.m} but the model has n={self.n}, m={self.m}")
        self.pattern = pattern
        if slopes is None:
            slopes = sp.Matrix(self.n, self.m, lambda i, j: pattern.slope(i, j, self.ap, self.am))
        self.S = sp.Matrix(slopes)
        self.values = dict(values or {})
        self.loss_convention = loss
        # plain nested lists: sympy Matrix indexing is slow
        self._X = self.X.tolist()
        self._Y = self.Y.tolist()
        self._W = self.W.tolist()
        self._A = self.A.tolist()
        self._S = self.S.tolist()
        self._C = None if C is None else [sp.sympify(v) for v in C]
        if self._C is not None and len(self._C) != self.k:
            raise InputError(f"SymbolicModel: the output bias has {len(self._C)} entries but Y has {self.k} columns")
        self._active = [j for j in range(self.m)
                        if any(isinstance(v, sp.Symbol) for v in self._W[j] + self._A[j])]
        frozen = [j for j in range(self.m) if j not in set(self._active)]
        # output of the frozen neurons and the output bias: f_i = offset_i + sum over the active neurons
        if _offset is not None:
            self._offset = _offset
        else:
            cb = self._C if self._C is not None else [sp.Integer(0)] * self.k
            self._offset = [[sp.Add(*[self._A[j][c] * self._S[i][j] * self.z(i, j) for j in frozen]) + cb[c]
                             for c in range(self.k)] for i in range(self.n)]
        self.dW = _symbol_matrix("dw", self.m, self.d)
        self.dA = _symbol_matrix("da", self.m, self.k)
        self.dc = [sp.Symbol(f"dc_{c}", real=True) for c in range(self.k)]
        self.r = [sp.Symbol(f"r_{q}", real=True) for q in range(self.d)]
        self.t = sp.Symbol("t", positive=True)
        self._res: list | None = None
        self._res_at: list | None = None

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_problem(cls, problem: Problem, point: Point | None = None, *, pattern: SignPattern | None = None,
                     dW: Any = None, neurons: Iterable[int] | None = None) -> "SymbolicModel":
        """Numeric data; the point's pattern (branches from ``dW`` on the kinks) unless ``pattern``
        is given.  ``neurons``: keep only these neurons symbolic, freeze the others at the point."""
        n, d, k = problem.n, problem.d, problem.k
        X = sp.Matrix(n, d, lambda i, q: rat(problem.X[i, q]))
        Y = sp.Matrix(n, k, lambda i, c: rat(problem.Y[i, c]))
        ap, am = rat(problem.activation.alpha_plus), rat(problem.activation.alpha_minus)
        if point is None:
            if pattern is None:
                raise InputError("from_problem: give a point or an explicit pattern")
            if neurons is not None:
                raise InputError("from_problem: freezing neurons needs a point")
            m = pattern.m
            return cls(X, Y, ap, am, pattern=pattern, W=_symbol_matrix("w", m, d),
                       A=_symbol_matrix("a", m, k), loss=problem.loss)
        point.validate(problem)
        m = point.m
        if pattern is None:
            pattern = SignPattern.from_point(problem, point, dW)
        keep = set(range(m)) if neurons is None else set(neurons)
        bad = [j for j in keep if not 0 <= j < m]
        if bad:
            raise InputError(f"neuron {bad[0]} out of range: the point has {m} neurons (0..{m - 1})")
        Ws, As = _symbol_matrix("w", m, d), _symbol_matrix("a", m, k)
        W = sp.Matrix(m, d, lambda j, q: Ws[j, q] if j in keep else rat(point.W[j, q]))
        A = sp.Matrix(m, k, lambda j, c: As[j, c] if j in keep else rat(point.A[j, c]))
        values = {}
        for j in keep:
            for q in range(d):
                values[Ws[j, q]] = rat(point.W[j, q])
            for c in range(k):
                values[As[j, c]] = rat(point.A[j, c])
        C = None
        if point.c is not None:       # never dropped: c is a parameter like the others
            C = _bias_symbols(k)
            for c in range(k):
                values[C[c]] = rat(point.c[c])
            if neurons is not None:   # frozen with the neurons that are not kept
                C = [values.pop(C[c]) for c in range(k)]
        return cls(X, Y, ap, am, pattern=pattern, W=W, A=A, C=C, values=values, loss=problem.loss)

    @classmethod
    def generic(cls, n: int, d: int, k: int, m: int, pattern: SignPattern | None = None,
                alpha: tuple | None = None, output_bias: bool = False) -> "SymbolicModel":
        """Everything symbolic: data x_{i,q}, y_{i,c}, slopes alpha_+/alpha_- (unless given) and,
        without a pattern, one free slope symbol s_{i,j} per entry (all patterns at once); with
        ``output_bias`` an output bias c_0, ..., c_{k-1}."""
        X, Y = _symbol_matrix("x", n, d), _symbol_matrix("y", n, k)
        if alpha is None:
            ap, am = sp.Symbol("alpha_+", real=True), sp.Symbol("alpha_-", real=True)
        else:
            ap, am = rat(alpha[0]), rat(alpha[1])
        slopes = None
        if pattern is None:
            slopes = sp.Matrix(n, m, lambda i, j: sp.Symbol(f"s_{i},{j}", real=True))
        return cls(X, Y, ap, am, pattern=pattern, slopes=slopes, W=_symbol_matrix("w", m, d),
                   A=_symbol_matrix("a", m, k), C=_bias_symbols(k) if output_bias else None)

    def view(self, j: int) -> "SymbolicModel":
        """The same model with only neuron j symbolic (the others frozen at the point)."""
        if not self.values:
            raise InputError("view(j) needs a model built at a point")
        mine = set(self._W[j]) | set(self._A[j])
        sub = {s: v for s, v in self.values.items() if s not in mine}
        W = self.W.xreplace(sub)
        A = self.A.xreplace(sub)
        C = None if self._C is None else [v.xreplace(sub) for v in self._C]   # c frozen at its value
        vals = {s: self.values[s] for s in mine if s in self.values}
        offset = None
        if all(isinstance(v, sp.Basic) and v.is_Number for v in list(self.X) + list(self.Y)):
            # frozen output = f_i(point) - (neuron j's output at the point): no re-summation
            own = [[self.at_point(self._A[j][c] * self._S[i][j] * self.z(i, j)) for c in range(self.k)]
                   for i in range(self.n)]
            offset = [[self.residual_at_point(i)[c] + self._Y[i][c] - own[i][c] for c in range(self.k)]
                      for i in range(self.n)]
        return SymbolicModel(self.X, self.Y, self.ap, self.am, pattern=self.pattern, slopes=self.S,
                             W=W, A=A, C=C, values=vals, loss=self.loss_convention, _offset=offset)

    # -- bookkeeping ---------------------------------------------------------------------------

    @property
    def has_output_bias(self) -> bool:
        return self._C is not None

    @property
    def C(self) -> list | None:
        """The output bias entries (symbols or numbers), or None."""
        return None if self._C is None else list(self._C)

    def params(self, j: int | None = None) -> list:
        """The symbolic parameters (row-major W then A, then c; only neuron j's if given)."""
        rows = range(self.m) if j is None else [j]
        out = [self._W[jj][q] for jj in rows for q in range(self.d)]
        out += [self._A[jj][c] for jj in rows for c in range(self.k)]
        if j is None and self._C is not None:
            out += list(self._C)
        return [p for p in out if isinstance(p, sp.Symbol)]

    def bias_params(self) -> list:
        """The symbolic entries of c (empty without an output bias or with c frozen)."""
        return [v for v in (self._C or []) if isinstance(v, sp.Symbol)]

    def dparams(self, j: int | None = None) -> list:
        """Direction symbols matching ``params``."""
        rows = range(self.m) if j is None else [j]
        out = []
        for jj in rows:
            out += [self.dW[jj, q] for q in range(self.d) if isinstance(self._W[jj][q], sp.Symbol)]
        for jj in rows:
            out += [self.dA[jj, c] for c in range(self.k) if isinstance(self._A[jj][c], sp.Symbol)]
        if j is None and self._C is not None:
            out += [self.dc[c] for c in range(self.k) if isinstance(self._C[c], sp.Symbol)]
        return out

    def symbolic_neurons(self) -> list[int]:
        return list(self._active)

    def kinks(self, j: int) -> list[int]:
        if self.pattern is None:
            raise InputError("kink sets need an explicit pattern (this model has free slope symbols)")
        return self.pattern.kinks(j)

    def at_point(self, expr):
        """Substitute the point's values (exact)."""
        if isinstance(expr, (list, tuple)):
            return [self.at_point(e) for e in expr]
        if isinstance(expr, sp.MatrixBase):
            return expr.xreplace(self.values)
        return sp.sympify(expr).xreplace(self.values)

    def latex_names(self) -> dict:
        """symbol_names for sympy.latex: dw_{j,q} -> \\Delta w_{j,q} etc."""
        out = {}
        for M, base in ((self.dW, r"\Delta w"), (self.dA, r"\Delta a"), (self.dc, r"\Delta c")):
            for s in M:
                out[s] = base + "_{" + s.name.split("_", 1)[1] + "}"
        return out

    # -- forward quantities ----------------------------------------------------------------------

    def z(self, i: int, j: int):
        """z_ij = w_j . x_i."""
        return sp.Add(*[self._W[j][q] * self._X[i][q] for q in range(self.d)])

    def xr(self, i: int, r: Sequence) -> Any:
        """x_i . r."""
        return sp.Add(*[self._X[i][q] * sp.sympify(r[q]) for q in range(self.d)])

    def output(self, i: int) -> list:
        """f(x_i) on the pattern: sum_j a_j s_ij z_ij (+ c) (k entries; frozen neurons as constants)."""
        terms = [(self._S[i][j] * self.z(i, j), j) for j in self._active]
        return [self._offset[i][c] + sp.Add(*[self._A[j][c] * h for h, j in terms]) for c in range(self.k)]

    def residual(self, i: int) -> list:
        if self._res is None:
            self._res = [[o - self._Y[ii][c] for c, o in enumerate(self.output(ii))] for ii in range(self.n)]
        return self._res[i]

    def residual_at_point(self, i: int) -> list:
        if self._res_at is None:
            self._res_at = [[self.at_point(e) for e in self.residual(ii)] for ii in range(self.n)]
        return self._res_at[i]

    def loss(self, *, convention: str | None = None):
        """The loss on the pattern, unexpanded: (1/2n) sum_i ||e_i||^2 (or the mse convention)."""
        conv = convention or "half_mean"
        sq = sp.Add(*[e ** 2 for i in range(self.n) for e in self.residual(i)])
        if conv == "half_mean":
            return sq / (2 * self.n)
        if conv == "mse":
            return sq / (self.n * self.k)
        raise InputError(f"unknown loss convention {conv!r}")

    def local_loss(self):
        """The loss in a neighbourhood of the point: slopes of the pattern off the kinks, and
        sigma(z) = alpha_- z + (alpha_+ - alpha_-) max(0, z) on the kinks (needs a pattern)."""
        if self.pattern is None:
            raise InputError("local_loss needs an explicit pattern")
        sq = []
        for i in range(self.n):
            h = {}
            for j in self._active:   # frozen neurons are constants: their pattern value is exact
                z = self.z(i, j)
                if self.pattern.signs[i][j] == 0:
                    h[j] = self.am * z + (self.ap - self.am) * sp.Max(0, z)
                else:
                    h[j] = self._S[i][j] * z
            for c in range(self.k):
                e = self._offset[i][c] + sp.Add(*[self._A[j][c] * h[j] for j in self._active]) - self._Y[i][c]
                sq.append(e ** 2)
        return sp.Add(*sq) / (2 * self.n)

    def loss_poly(self) -> sp.Poly:
        """The loss on the pattern as an expanded polynomial in the symbolic parameters."""
        return sp.Poly(self.loss(), *self.params())

    def gradient(self, params: Sequence | None = None) -> list:
        """dL/dp for p in params (default: all symbolic parameters), on the pattern."""
        params = self.params() if params is None else list(params)
        # chain rule over the residuals keeps the expressions small (no expansion)
        out = []
        for p in params:
            acc = []
            for i in range(self.n):
                for e in self.residual(i):
                    de = sp.diff(e, p)
                    if de != 0:
                        acc.append(e * de)
            out.append(sp.Add(*acc) / self.n)
        return out

    def hessian(self, params: Sequence | None = None) -> sp.Matrix:
        """Hessian of the loss on the pattern in the given parameters."""
        params = self.params() if params is None else list(params)
        de = {}
        for i in range(self.n):
            for c, e in enumerate(self.residual(i)):
                de[i, c] = [sp.diff(e, p) for p in params]
        P = len(params)
        H = sp.zeros(P, P)
        for a in range(P):
            for b in range(a, P):
                acc = []
                for i in range(self.n):
                    for c, e in enumerate(self.residual(i)):
                        ga, gb = de[i, c][a], de[i, c][b]
                        if ga != 0 and gb != 0:
                            acc.append(ga * gb)
                        if ga != 0:
                            gab = sp.diff(ga, params[b])
                            if gab != 0:
                                acc.append(e * gab)
                H[a, b] = H[b, a] = sp.Add(*acc) / self.n
        return H

    # -- per-neuron objects of docs/theory.md §3 -----------------------------------------------------------

    def G(self, j: int, *, local: bool = False) -> list:
        """G_j = (1/n) sum_i e_i sigma(z_ij), with sigma(z_ij) = s_ij z_ij on the pattern.

        ``local``: the function near the point — sigma in max form on the kinks, and the
        residuals of ``local_loss``."""
        if not local:
            h = [self._S[i][j] * self.z(i, j) for i in range(self.n)]
            return [sp.Add(*[self.residual(i)[c] * h[i] for i in range(self.n)]) / self.n for c in range(self.k)]
        L = self.local_loss()
        if j not in self._active:
            raise InputError(f"G(local=True) needs neuron {j} symbolic")
        return [sp.diff(L, self._A[j][c]) for c in range(self.k)]

    def _res_for(self, at_point: bool) -> list:
        return [self.residual_at_point(i) if at_point else self.residual(i) for i in range(self.n)]

    def D(self, j: int, r: Sequence | None = None, *, at_point: bool = False, form: str = "piecewise") -> list:
        """D_j(r) = (1/n)[sum_{i not in K_j} e_i sigma'(z_ij)(x_i.r) + sum_{i in K_j} e_i sigma(x_i.r)].

        Piecewise in r on the kinks (form='max': sigma(u) written alpha_- u + (alpha_+ - alpha_-)
        max(0, u)).  ``at_point``: numeric residuals."""
        if form not in ("piecewise", "max"):
            raise InputError(f"D: unknown form {form!r}")
        r = self.r if r is None else list(r)
        K = set(self.kinks(j))
        E = self._res_for(at_point)
        out = []
        for c in range(self.k):
            terms = []
            for i in range(self.n):
                u = self.xr(i, r)
                if i in K:
                    if form == "max":
                        terms.append(E[i][c] * (self.am * u + (self.ap - self.am) * sp.Max(0, u)))
                    else:
                        terms.append(E[i][c] * sigma(u, self.ap, self.am))
                else:
                    terms.append(E[i][c] * self._S[i][j] * u)
            out.append(sp.Add(*terms) / self.n)
        return out

    def phi(self, j: int, r: Sequence | None = None, *, at_point: bool = False, form: str = "max"):
        """phi_j(r) = a_j . D_j(r).

        form='max':       b_j . r + (alpha_+ - alpha_-) sum_{i in K_j} c_ij max(0, x_i . r)
        form='piecewise': a_j . D_j(r) with sigma as a Piecewise."""
        r = self.r if r is None else list(r)
        a = [self._A[j][c] for c in range(self.k)]
        if at_point:
            a = [self.at_point(v) for v in a]
        if form == "piecewise":
            return sp.Add(*[ac * Dc for ac, Dc in zip(a, self.D(j, r, at_point=at_point))])
        if form != "max":
            raise InputError(f"phi: unknown form {form!r}")
        K = set(self.kinks(j))
        E = self._res_for(at_point)
        terms = []
        for i in range(self.n):
            cij = sp.Add(*[a[c] * E[i][c] for c in range(self.k)]) / self.n
            u = self.xr(i, r)
            if i in K:
                terms.append(cij * (self.am * u + (self.ap - self.am) * sp.Max(0, u)))
            else:
                terms.append(cij * self._S[i][j] * u)
        return sp.Add(*terms)

    def mean_residual(self, *, at_point: bool = False) -> list:
        """e_bar = (1/n) sum_i e_i over every data point: dL/dc (docs/biases.md §3.2), k entries."""
        E = self._res_for(at_point)
        return [sp.Add(*[E[i][c] for i in range(self.n)]) / self.n for c in range(self.k)]

    def directional_derivative(self, dW: Any = None, dA: Any = None, *, at_point: bool = False,
                               form: str = "piecewise", dc: Any = None):
        """L'(theta; Delta) = sum_j [Delta a_j . G_j + a_j . D_j(Delta w_j)] (+ e_bar . Delta c with an
        output bias; docs/theory.md §3, docs/biases.md §3.2), piecewise in Delta (form='max': sigma on
        the kinks written with max(0, .)); symbolic Delta unless numeric dW / dA / dc are given."""
        dWm = self.dW if dW is None else sp.Matrix(self.m, self.d, lambda j, q: rat(_entry(dW, j, q)))
        dAm = self.dA if dA is None else sp.Matrix(self.m, self.k, lambda j, c: rat(_entry(dA, j, c)))
        total = []
        if self.bias_params():
            dcv = self.dc if dc is None else [rat(v) for v in dc]
            eb = self.mean_residual(at_point=at_point)
            total += [dcv[c] * eb[c] for c in range(self.k) if isinstance(self._C[c], sp.Symbol)]
        elif dc is not None and any(rat(v) != 0 for v in dc):
            raise InputError("directional_derivative: dc given but the model has no free output bias")
        for j in self.symbolic_neurons():
            G = self.G(j)
            if at_point:
                G = [self.at_point(g) for g in G]
            total += [dAm[j, c] * G[c] for c in range(self.k)]
            total.append(self.phi(j, list(dWm[j, :]), at_point=at_point, form=form))
        return sp.Add(*total)

    # -- the ray of §2 -----------------------------------------------------------------------------

    def _direction(self, dW: Any, dA: Any, dc: Any = None) -> tuple[dict, "SymbolicModel"]:
        """Map param -> param + t * direction (c + t dc for a free output bias), and the model whose
        kink branches are those of the direction (when it is numeric)."""
        model = self
        if dW is not None:
            dWm = sp.Matrix(self.m, self.d, lambda j, q: rat(_entry(dW, j, q)))
            if self.pattern is not None and all(v.is_Number for v in self.X) and self.values:
                pat = self.pattern.branch_from_direction(self.X, dWm)
                if pat != self.pattern:
                    model = SymbolicModel(self.X, self.Y, self.ap, self.am, pattern=pat, W=self.W, A=self.A,
                                          C=self._C, values=self.values, loss=self.loss_convention)
        else:
            dWm = self.dW
        dAm = self.dA if dA is None else sp.Matrix(self.m, self.k, lambda j, c: rat(_entry(dA, j, c)))
        sub = {}
        for j in range(self.m):
            for q in range(self.d):
                if isinstance(self._W[j][q], sp.Symbol):
                    sub[self._W[j][q]] = self._W[j][q] + self.t * dWm[j, q]
            for c in range(self.k):
                if isinstance(self._A[j][c], sp.Symbol):
                    sub[self._A[j][c]] = self._A[j][c] + self.t * dAm[j, c]
        if self.bias_params():
            dcv = self.dc if dc is None else [rat(v) for v in dc]
            for c in range(self.k):
                if isinstance(self._C[c], sp.Symbol):
                    sub[self._C[c]] = self._C[c] + self.t * dcv[c]
        elif dc is not None and any(rat(v) != 0 for v in dc):
            raise InputError("dc given but the model has no free output bias")
        return sub, model

    def ray_coefficients(self, dW: Any = None, dA: Any = None, *, at_point: bool = True, dc: Any = None) -> list:
        """[c1, c2, c3, c4] with L(theta + t Delta) - L(theta) = c1 t + ... + c4 t^4 on the
        pattern, derived by substituting theta + t Delta into the pattern polynomial (Delta moves c
        by ``dc`` when the model has a free output bias; default: the symbols dc_c)."""
        sub, model = self._direction(dW, dA, dc)
        t = self.t
        at_point = at_point and bool(self.values)
        polys = []
        for i in range(self.n):
            for e in model.residual(i):
                et = e.xreplace(sub)
                if at_point:
                    et = et.xreplace(self.values)
                polys.append(sp.Poly(et, t))
        Lt = sum((p * p for p in polys), sp.Poly(0, t)) * sp.Rational(1, 2 * self.n)
        coeffs = [Lt.coeff_monomial(t ** p) for p in range(Lt.degree() + 1)] if not Lt.is_zero else [0]
        coeffs += [sp.Integer(0)] * (5 - len(coeffs))
        if len(coeffs) > 5:
            raise AssertionError("the loss along a ray on a fixed pattern has degree > 4")  # impossible
        return [sp.expand(c) for c in coeffs[1:5]]

    def directional_derivative_limit(self, dW: Any = None, dA: Any = None, *, at_point: bool = True,
                                     dc: Any = None):
        """lim_{t->0+} (L(theta + t Delta) - L(theta)) / t, from the definition (the t coefficient
        of the ray polynomial on the pattern the direction enters)."""
        return self.ray_coefficients(dW, dA, at_point=at_point, dc=dc)[0]

    def t_max(self, dW: Any) -> sp.Rational | None:
        """Largest t such that no z_ij != 0 changes sign on (0, t): min over z_ij delta_ij < 0 of
        -z_ij / delta_ij (None: unbounded).  Needs the point."""
        out = None
        for i in range(self.n):
            for j in range(self.m):
                z = self.at_point(self.z(i, j))
                dl = sp.Add(*[rat(_entry(dW, j, q)) * self._X[i][q] for q in range(self.d)])
                if z != 0 and z * dl < 0:
                    tt = -z / dl
                    out = tt if out is None or tt < out else out
        return out

    def escape_path(self, j: int, r: Sequence) -> list:
        """Coefficients c0..c6 of L(theta(t)) - L(theta) along w_j + t r, a_j - t^2 D_j(r) (docs/theory.md §4),
        on the pattern the direction r enters (numeric point and r); an output bias stays at its value
        (docs/biases.md §4.4)."""
        r = [rat(v) for v in r]
        dW = [[0] * self.d for _ in range(self.m)]
        dW[j] = list(r)
        _, model = self._direction(dW, None)
        Dr = model.D(j, r, at_point=True)
        t = self.t
        sub = {}
        for q in range(self.d):
            if isinstance(self._W[j][q], sp.Symbol):
                sub[self._W[j][q]] = self._W[j][q] + t * r[q]
        for c in range(self.k):
            if isinstance(self._A[j][c], sp.Symbol):
                sub[self._A[j][c]] = self._A[j][c] - t ** 2 * Dr[c]
        L0 = self.at_point(model.loss())
        Lt = sp.Poly(model.loss().xreplace(sub).xreplace(self.values) - L0, t)
        out = [Lt.coeff_monomial(t ** p) for p in range(7)]
        return out


def _entry(M: Any, j: int, q: int):
    if isinstance(M, sp.MatrixBase):
        return M[j, q]
    if isinstance(M, np.ndarray):
        return M[j, q]
    return M[j][q]


# ---------------------------------------------------------------------------------------------
# code generation
# ---------------------------------------------------------------------------------------------

class ExactnessError(InputError):
    """An expression that cannot be evaluated exactly over the rationals (floats, roots, ...)."""


class _ExactPrinter(PythonCodePrinter):
    """Python source over exact rationals: every number becomes ``_Q(p, q)``."""

    def _print_Integer(self, e):
        return f"_Q({int(e.p)})"

    def _print_Rational(self, e):
        return f"_Q({int(e.p)}, {int(e.q)})"

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer
    _print_Half = _print_Rational

    def _print_Float(self, e):
        raise ExactnessError(f"floating-point number {e} in an expression meant for exact evaluation")

    def _not_exact(self, e, *args, **kwargs):
        raise ExactnessError(f"{e} cannot be evaluated exactly over the rationals")

    _print_Infinity = _print_NegativeInfinity = _print_NaN = _print_ComplexInfinity = _not_exact
    _print_NumberSymbol = _print_Exp1 = _print_Pi = _print_ImaginaryUnit = _not_exact
    _print_not_supported = _not_exact

    def _print_Pow(self, e, rational=False):
        b, x = e.args
        if not x.is_Integer:
            raise ExactnessError(f"non-integer power {e} cannot be evaluated exactly")
        base = self.parenthesize(b, 1000)
        if x < 0:
            return f"(_Q(1)/({base})**{int(-x)})"
        return f"({base})**{int(x)}"

    def _print_Max(self, e):
        return "max(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_Min(self, e):
        return "min(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_Abs(self, e):
        return f"abs({self._print(e.args[0])})"

    def __init__(self, names: dict):
        super().__init__({"fully_qualified_modules": False})
        self._names = names          # argument Symbol -> Python identifier

    def _print_Symbol(self, e):
        name = self._names.get(e)
        if name is None:
            raise ExactnessError(f"internal: symbol {e.name!r} is not an argument")
        return name

    _print_Dummy = _print_Symbol

    def _print_Mul(self, e):
        # print every factor through this printer (no float division shortcuts)
        coeff, rest = e.as_coeff_Mul()
        factors = list(sp.Mul.make_args(rest))
        parts = [self.parenthesize(f, 50) for f in factors]
        if coeff != 1:
            parts.insert(0, self._print(coeff))
        return "*".join(parts) if parts else "_Q(1)"

    def _print_Add(self, e):
        return "(" + " + ".join(self._print(a) for a in e.args) + ")"

    def _print_Piecewise(self, e):
        out = []
        default = "None"
        for ex, cond in e.args:
            if cond == True:  # noqa: E712
                default = self._print(ex)
                break
            out.append((self._print(ex), self._print(cond)))
        s = default
        for ex, cond in reversed(out):
            s = f"(({ex}) if ({cond}) else ({s}))"
        return s


_EXACT_NODES = (sp.Symbol, sp.Rational, sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min, sp.Abs, sp.Piecewise,
                sp.logic.boolalg.BooleanAtom, sp.And, sp.Or, sp.Not, sp.core.relational.Relational)


def _check_exact(expr) -> None:
    """Only rational arithmetic, integer powers, max/min/abs and piecewise are allowed."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.functions.elementary.piecewise.ExprCondPair):
            continue
        if not isinstance(node, _EXACT_NODES):
            raise ExactnessError(f"{node} cannot be evaluated exactly over the rationals")
        if isinstance(node, sp.Pow) and not node.exp.is_Integer:
            raise ExactnessError(f"non-integer power {node} cannot be evaluated exactly")


def _flatten(exprs) -> tuple[list, Any]:
    """Flatten nested lists / Matrices into a list and a shape recipe."""
    if isinstance(exprs, sp.MatrixBase):
        rows = exprs.tolist()
        return [sp.sympify(v) for r in rows for v in r], ("matrix", exprs.shape)
    if isinstance(exprs, (list, tuple)):
        flat, recipe = [], []
        for e in exprs:
            f, r = _flatten(e)
            recipe.append((len(flat), len(f), r))
            flat += f
        return flat, ("list", recipe)
    return [sp.sympify(exprs)], ("scalar",)


def _rebuild(values: list, recipe):
    kind = recipe[0]
    if kind == "scalar":
        return values[0]
    if kind == "matrix":
        r, c = recipe[1]
        return [values[i * c:(i + 1) * c] for i in range(r)]
    return [_rebuild(values[s:s + l], sub) for s, l, sub in recipe[1]]


def _arg_names(flat: list, args: Sequence) -> tuple[dict, list[str]]:
    names = [f"x{i}" for i in range(len(args))]
    for a in args:
        if not isinstance(a, sp.Symbol):
            raise InputError(f"code generation: argument {a} is not a Symbol")
    if len(set(args)) != len(args):
        raise InputError("code generation: repeated argument symbol")
    mapping = dict(zip(args, names))
    free = set().union(*[e.free_symbols for e in flat]) if flat else set()
    extra = sorted(s.name for s in free if s not in mapping)
    if extra:
        raise InputError(f"code generation: expression has symbols not among the arguments: {', '.join(extra)}")
    return mapping, names


def exact_source(exprs, args: Sequence, *, cse: bool = False, name: str = "f") -> str:
    """Python source of ``name(x0, x1, ...)`` evaluating ``exprs`` over exact rationals ``_Q``."""
    flat, recipe = _flatten(exprs)
    for e in flat:
        _check_exact(e)
    mapping, names = _arg_names(flat, args)
    pr = _ExactPrinter(mapping)
    lines = [f"def {name}({', '.join(names)}):"]
    for nm in names:
        lines.append(f"    {nm} = _C({nm})")
    if cse and flat:
        reps, reduced = sp.cse(flat, symbols=sp.numbered_symbols("_t", cls=sp.Dummy), optimizations=None)
    else:
        reps, reduced = [], flat
    for sym, v in reps:
        mapping[sym] = f"_t{len(mapping)}"
        lines.append(f"    {mapping[sym]} = {pr.doprint(v)}")
    lines.append("    return [" + ", ".join(pr.doprint(v) for v in reduced) + "]")
    return "\n".join(lines) + "\n"


def _conv_fmpq(v):
    if isinstance(v, fmpq):
        return v
    if isinstance(v, sp.Basic):
        return to_fmpq_exact(v)
    if isinstance(v, float):
        raise ExactnessError(f"float argument {v!r}: pass an exact number (int, Fraction, fmpq, 'p/q')")
    return to_fmpq(v)


def _conv_fraction(v):
    q = _conv_fmpq(v)
    return Fraction(int(q.p), int(q.q))


@dataclass
class ExactFunction:
    """A compiled exact evaluator: ``f(*values)`` (one value per argument symbol) or ``f.at(mapping)``."""

    args: list
    source: str
    fn: Any
    recipe: Any
    backend: str

    def __call__(self, *values):
        if len(values) != len(self.args):
            raise InputError(f"expected {len(self.args)} values, got {len(values)}")
        return _rebuild(self.fn(*values), self.recipe)

    def at(self, mapping: dict):
        return self(*[mapping[a] for a in self.args])


def exact_function(exprs, args: Sequence, *, backend: str = "fmpq", cse: bool = False) -> ExactFunction:
    """Compile ``exprs`` (expression, nested list or Matrix) to exact Python code.

    backend 'fmpq' (python-flint) or 'fraction' (fractions.Fraction).  Arguments are converted
    exactly (floats are refused: pass their exact value explicitly if that is what you mean).
    ``cse``: extract common subexpressions first (faster repeated evaluation of big expressions,
    slower generation)."""
    if backend == "fmpq":
        ns = {"_Q": fmpq, "_C": _conv_fmpq}
    elif backend == "fraction":
        ns = {"_Q": Fraction, "_C": _conv_fraction}
    else:
        raise InputError(f"unknown exact backend {backend!r} (use 'fmpq' or 'fraction')")
    args = list(args)
    flat, recipe = _flatten(exprs)
    src = exact_source(exprs, args, cse=cse)
    code = compile(src, "<relucert.tools.symbolic exact>", "exec")
    exec(code, ns)  # noqa: S102 -- source generated above from sympy expressions only
    return ExactFunction(args, src, ns["f"], recipe, backend)


def numpy_function(exprs, args: Sequence, *, cse: bool = True):
    """Vectorised float64 code (sympy lambdify with numpy); ``.source`` holds the generated code."""
    flat, recipe = _flatten(exprs)
    fn = sp.lambdify(list(args), flat, modules="numpy", cse=cse)

    def call(*values):
        out = fn(*values)
        return _rebuild(list(out), recipe)

    call.source = inspect.getsource(fn)
    call.args = list(args)
    return call
