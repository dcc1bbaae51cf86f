"""Shared vocabulary of the proofs under proofs/ (pytest does not collect this file).

Everything is symbolic: the activation slopes alpha_+ and alpha_- are symbols (so every proof
covers ReLU, leaky ReLU, absolute value and every other ReLU-like activation at once), and so are
weights, data values and direction components.

The reduction to pre-activations.  f(x_i; theta) = sum_j a_j sigma(w_j . x_i) depends on (W, X)
only through z_ij = w_j . x_i; along theta + t Delta only through z_ij + t delta_ij with
delta_ij = Delta w_j . x_i; and D_j(Delta w_j) uses x_i . Delta w_j = delta_ij.  An identity
proved with z_ij and delta_ij as *independent* symbols therefore holds for every input dimension d
and every data set (the actual z, delta are a specialisation).  Where the weights themselves
appear (gradients in w_j), the proofs use genuine symbols for W and X.

Sign cases of one entry (i, j): the sign of z_ij, and on a kink (z_ij = 0) the sign of delta_ij:

    pos        z = p > 0,        delta real        slope s = alpha_+
    neg        z = -p < 0,       delta real        slope s = alpha_-
    kink_up    z = 0,            delta = p > 0     slope s = alpha_+
    kink_down  z = 0,            delta = -q <= 0   slope s = alpha_-

``entry_lemma`` proves, for every case, the facts the other proofs use to replace sigma by the
slope s: sigma(z) = s z, sigma'(z) = s off the kinks, sigma(delta) = s delta on the kinks, and
sigma(z + t delta) = s (z + t delta) for every 0 < t < t_max (t_max = -z/delta when z delta < 0,
unbounded otherwise).  sigma is sympy's Piecewise, decided by sympy's assumption system on symbols
declared positive / nonnegative — nothing is decided by hand.
"""
from __future__ import annotations

import time
from functools import lru_cache

import sympy as sp

AP = sp.Symbol("alpha_+", real=True)
AM = sp.Symbol("alpha_-", real=True)

ENTRY_CASES = ("pos", "neg", "kink_up", "kink_down")
Z_CASES = ("pos", "neg", "kink")


def sigma(u):
    """sigma(u) = alpha_+ u for u > 0, alpha_- u for u <= 0 (docs/theory.md §1)."""
    return _sigma(sp.sympify(u))


def dsigma(u):
    """sigma'(u) off the kink (the value at 0 is never used off the kinks)."""
    return _dsigma(sp.sympify(u))


@lru_cache(maxsize=None)
def _sigma(u):
    return sp.Piecewise((AP * u, u > 0), (AM * u, True))


@lru_cache(maxsize=None)
def _dsigma(u):
    return sp.Piecewise((AP, u > 0), (AM, True))


def resolved(expr, what: str):
    """Fail loudly if a case split was not decided by the assumptions."""
    expr = sp.sympify(expr)
    if expr.has(sp.Piecewise):
        raise AssertionError(f"{what}: a Piecewise was not resolved by the sign assumptions: {expr}")
    return expr


def assert_zero(expr, what: str, rational: bool = False) -> None:
    """expr == 0 identically (polynomial: expand; rational function: cancel)."""
    expr = resolved(expr, what)
    e = sp.cancel(sp.together(expr)) if rational else sp.expand(expr)
    if e != 0:
        raise AssertionError(f"{what}: not identically zero; remainder = {e}")


def assert_true(cond: bool | None, what: str) -> None:
    if cond is not True:
        raise AssertionError(f"{what}: not established (sympy says {cond})")


class Entry:
    """Symbols of one (data point, neuron) entry in one sign case."""

    def __init__(self, case: str, tag: str):
        self.case = case
        self.kink = case.startswith("kink")
        if case == "pos":
            self.z = sp.Symbol(f"p_{tag}", positive=True)
            self.delta = sp.Symbol(f"delta_{tag}", real=True)
            self.s = AP
        elif case == "neg":
            self.z = -sp.Symbol(f"p_{tag}", positive=True)
            self.delta = sp.Symbol(f"delta_{tag}", real=True)
            self.s = AM
        elif case == "kink_up":
            self.z = sp.Integer(0)
            self.delta = sp.Symbol(f"p_{tag}", positive=True)
            self.s = AP
        elif case == "kink_down":
            self.z = sp.Integer(0)
            self.delta = -sp.Symbol(f"q_{tag}", nonnegative=True)
            self.s = AM
        elif case == "kink":          # no direction involved
            self.z = sp.Integer(0)
            self.delta = sp.Symbol(f"delta_{tag}", real=True)
            self.s = None
        else:
            raise ValueError(case)


def entry_lemma() -> int:
    """Prove the per-entry facts (see the module docstring); return the number of cases checked."""
    t = sp.Symbol("t", positive=True)
    v = sp.Symbol("v", positive=True)
    p = sp.Symbol("p", positive=True)
    qp = sp.Symbol("q", positive=True)
    qn = sp.Symbol("r", nonnegative=True)
    checked = 0
    for case in ENTRY_CASES:
        e = Entry(case, "0")
        assert_zero(sigma(e.z) - e.s * e.z, f"sigma(z) = s z [{case}]")
        if e.kink:
            assert_zero(sigma(e.delta) - e.s * e.delta, f"sigma(delta) = s delta on a kink [{case}]")
        else:
            assert_zero(dsigma(e.z) - e.s, f"sigma'(z) = s off the kinks [{case}]")
        checked += 1
    # the ray: sigma(z + t delta) = s (z + t delta) for every t in (0, t_max)
    # t in (0, p/q) is written t = (p/q) v/(1+v) with v > 0 (a bijection (0, oo) -> (0, p/q))
    tv = (p / qp) * v / (1 + v)
    # inverse map v = t q / (p - t q)
    assert_zero(tv * qp / (p - tv * qp) - v, "the parametrisation t = (p/q) v/(1+v) is invertible",
                rational=True)
    rays = [
        ("pos, delta >= 0 (never flips)", p, qn, t, AP),
        ("pos, delta < 0, t < -z/delta", p, -qp, tv, AP),
        ("neg, delta <= 0 (never flips)", -p, -qn, t, AM),
        ("neg, delta > 0, t < -z/delta", -p, qp, tv, AM),
        ("kink, delta > 0", sp.Integer(0), qp, t, AP),
        ("kink, delta <= 0", sp.Integer(0), -qn, t, AM),
    ]
    for what, z, dl, tt, s in rays:
        u = sp.factor(sp.together(z + tt * dl))
        assert_zero(sigma(u) - s * u, f"sigma(z + t delta) = s (z + t delta) [{what}]", rational=True)
        checked += 1
    return checked


def homogeneity_lemma() -> int:
    """sigma(c z) = c sigma(z) and sigma'(c z) = sigma'(z) for c > 0, every sign of z."""
    c = sp.Symbol("c", positive=True)
    checked = 0
    for case in Z_CASES:
        e = Entry(case, "h")
        assert_zero(sigma(c * e.z) - c * sigma(e.z), f"sigma(c z) = c sigma(z) [{case}]")
        if case != "kink":
            assert_zero(dsigma(c * e.z) - dsigma(e.z), f"sigma'(c z) = sigma'(z) [{case}]")
        checked += 1
    return checked


def ring_of(symbols):
    """Exact polynomial arithmetic over QQ in the given symbols (sympy's sparse polynomial ring).

    Returns (R, P): P(expr) converts a sympy expression whose case splits are resolved into a ring
    element, and fails loudly on any symbol that is not a generator.  Identities are then checked
    as equality of ring elements: exact, and much faster than expanding big expression trees."""
    syms = []
    for s in symbols:
        if s not in syms:
            syms.append(s)
    R = sp.ring(syms, sp.QQ)[0]

    def P(expr, what="expression"):
        return R(resolved(expr, what))

    return R, P


def field_of(symbols):
    """Like ring_of, for rational functions (the field of fractions QQ(symbols))."""
    syms = []
    for s in symbols:
        if s not in syms:
            syms.append(s)
    K = sp.field(syms, sp.QQ)[0]

    def P(expr, what="expression"):
        return K(resolved(expr, what))

    return K, P


def assert_ring_zero(x, what: str) -> None:
    if x != 0:
        raise AssertionError(f"{what}: not identically zero; remainder = {x.as_expr()}")


def free(*exprs):
    """Free symbols of the expressions, in a deterministic order."""
    out = set()
    for e in exprs:
        out |= sp.sympify(e).free_symbols
    return sorted(out, key=lambda s: s.name)


def dot(u, v):
    return sp.Add(*[a * b for a, b in zip(u, v)])


def vec(base: str, k: int, **assumptions):
    return [sp.Symbol(f"{base}_{c}", real=True, **assumptions) for c in range(k)]


def mat(base: str, rows: int, cols: int):
    return [[sp.Symbol(f"{base}_{i}{c}", real=True) for c in range(cols)] for i in range(rows)]


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __str__(self):
        return f"{time.perf_counter() - self.t0:.2f}s"


def main(prove, doc: str) -> None:
    """``python proofs/proof_NN_*.py``: print what is proved, run it, print the result."""
    print(doc.strip())
    print()
    t0 = time.perf_counter()
    summary = prove()
    print(f"PASS ({time.perf_counter() - t0:.2f}s): {summary}")
