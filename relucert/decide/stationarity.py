"""Decision of (S2): phi(r) = b.r + sum_p gamma_p max(0, nu_p.r) >= 0 for all r (docs/theory.md §3).

Methods (all exact in the end):
- ``separable``: merged normals linearly independent — exact linear algebra, necessary and sufficient.
- ``cones``: split on the sign of nu_p.r for the concave hinges (gamma_p < 0); on each closed cone
  phi is convex and phi >= 0 there iff rational multipliers s in [0,1] (convex hinges), mu >= 0
  (concave hinges) solve  b_sigma + sum_P s_p gamma_p nu_p = sum_N mu_p sigma_p nu_p.  HiGHS
  proposes the multipliers, an exact re-solve on its support confirms, z3 is the fallback.
- ``rays``: b must lie in V = span(nu); on V every region is pointed, so phi >= 0 iff phi >= 0 on
  every candidate extreme ray (intersections of q-1 independent hinge hyperplanes within V).
- ``z3``: exact SMT query  exists r in [-1,1]^d with phi(r) < 0  (fallback and cross-check).

Every negative answer carries a descent vector r with phi(r) < 0, checked exactly.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from flint import fmpq

from relucert.core.formulas import phi_eval
from relucert.core.problem import qstr
from relucert.core.linalg import (dot, dual_vector, independent_subset, nullspace, project_out, rank,
                     rref_pivots, solve_in_span)

MAX_CONE_HINGES = 10          # at most 2**10 cones per neuron
MAX_RAY_CANDIDATES = 20000


@dataclass
class PhiDecision:
    ok: bool | None                       # True: phi >= 0 proven; False: descent found; None: unknown
    method: str
    witness: dict = field(default_factory=dict)   # certificate part (exact strings)
    descent: list | None = None           # r with phi(r) < 0
    value: Any = None                     # phi(descent)
    note: str = ""


def _s(v) -> str:
    return qstr(v)


def _vec(v) -> list[str]:
    return [qstr(x) for x in v]


def _descent(b, gamma, r, method, note="") -> PhiDecision:
    val = phi_eval(b, gamma, r)
    if val < 0:
        return PhiDecision(False, method, descent=list(r), value=val, note=note)
    return PhiDecision(None, method, note=f"candidate descent direction failed exact check ({note})")


def _hinge_list(gamma: dict) -> list[dict]:
    return [{"normal": _vec(k), "gamma": _s(g)} for k, g in gamma.items()]


# ---------------------------------------------------------------------------------------------

def decide_phi(b: list, gamma: dict, method: str = "auto") -> PhiDecision:
    """Decide phi >= 0 exactly. ``gamma`` maps canonical normals to non-zero coefficients."""
    keys = list(gamma)
    if method == "auto":
        if not keys or _one_nonzero(keys) or rank(keys) == len(keys):    # one non-zero normal: rank 1
            return separable(b, gamma)
        nconc = sum(1 for g in gamma.values() if g < 0)
        res = cones(b, gamma) if nconc <= MAX_CONE_HINGES else rays(b, gamma)
        if res.ok is None:
            alt = rays(b, gamma) if res.method == "cones" else cones(b, gamma)
            if alt.ok is not None:
                return alt
            z = z3_decide(b, gamma)
            if z.ok is False:
                return z
            res.note += "; z3: " + (z.note or ("phi >= 0 (no certificate)" if z.ok else "unknown"))
        return res
    if method == "separable" and keys and rank(keys) < len(keys):
        res = decide_phi(b, gamma, "auto")       # the separable test needs independent normals
        res.note = (res.note + "; " if res.note else "") + "separable test not applicable (dependent kink normals)"
        return res
    res = {"separable": separable, "cones": cones, "rays": rays, "z3": z3_decide}[method](b, gamma)
    if res.ok and not res.witness:
        # z3 decides but leaves nothing for the independent checker: certify with cones / rays
        for alt in (cones, rays):
            cert = alt(b, gamma)
            if cert.ok:
                cert.note = f"{res.note}; certificate by {cert.method}"
                return cert
        return PhiDecision(None, res.method, note=f"{res.note}; no checkable certificate found")
    return res


def _one_nonzero(keys: list) -> bool:
    return len(keys) == 1 and any(v != 0 for v in keys[0])


def _in_span_of_one(key, b: list) -> list | None:
    """``solve_in_span([key], b)`` for one non-zero row: [mu] with mu key = b, or None (exact)."""
    mu = dot(key, b) / dot(key, key)
    return [mu] if all(mu * k == v for k, v in zip(key, b)) else None


def separable(b: list, gamma: dict) -> PhiDecision:
    """Independent merged normals: phi >= 0 iff gamma >= 0 and b = -sum s_p gamma_p nu_p, s in [0,1]."""
    keys = list(gamma)
    d = len(b)
    if keys and not _one_nonzero(keys) and rank(keys) < len(keys):
        raise ValueError("separable test needs linearly independent normals")
    if not keys:
        if all(v == 0 for v in b):
            return PhiDecision(True, "cones", witness={"b": _vec(b), "hinges": [],
                                                       "patterns": [{"signs": [], "s": [], "mu": []}]})
        return _descent(b, gamma, [-v for v in b], "separable", "gradient b != 0")
    mu = _in_span_of_one(keys[0], b) if len(keys) == 1 else solve_in_span(keys, b)
    if mu is None:
        perp = project_out(keys, b)
        return _descent(b, gamma, [-v for v in perp], "separable", "b has a component orthogonal to the kink normals")
    s = []
    for p, key in enumerate(keys):
        g = gamma[key]
        # with t_p = nu_p.r free: phi = sum_p mu_p t_p + gamma_p max(0, t_p)
        if mu[p] > 0:
            return _descent(b, gamma, [-v for v in dual_vector(keys, p)], "separable",
                            f"hinge {p}: multiplier {mu[p]} > 0 (t_p = -1 decreases phi)")
        if mu[p] + g < 0:
            return _descent(b, gamma, dual_vector(keys, p), "separable",
                            f"hinge {p}: {mu[p]} + gamma {g} < 0 (t_p = +1 decreases phi)")
        s.append(-mu[p] / g)   # g > 0 here, since mu <= 0 <= mu + g and g != 0
    return PhiDecision(True, "cones", witness={
        "b": _vec(b), "hinges": _hinge_list(gamma),
        "patterns": [{"signs": [], "s": _vec(s), "mu": []}]}, note="separable")


# ---------------------------------------------------------------------------------------------
# per-cone certificates
# ---------------------------------------------------------------------------------------------

def _cone_system(b, gamma, signs):
    """Columns and right-hand side of  b_sigma + sum_P s_p gamma_p nu_p - sum_N mu_p sigma_p nu_p = 0."""
    keys = list(gamma)
    conv = [k for k in keys if gamma[k] > 0]
    conc = [k for k in keys if gamma[k] < 0]
    d = len(b)
    bs = list(b)
    for key, sg in zip(conc, signs):
        if sg > 0:
            bs = [u + gamma[key] * v for u, v in zip(bs, key)]
    cols = [[gamma[k] * v for v in k] for k in conv] + [[-sg * v for v in k] for k, sg in zip(conc, signs)]
    upper = [fmpq(1)] * len(conv) + [None] * len(conc)
    return conv, conc, bs, cols, upper


def _check_cone(bs, cols, upper, x) -> bool:
    d = len(bs)
    for xi, ub in zip(x, upper):
        if xi < 0 or (ub is not None and xi > ub):
            return False
    for c in range(d):
        if bs[c] + sum((xi * col[c] for xi, col in zip(x, cols)), fmpq(0)) != 0:
            return False
    return True


def _rationalise(bs, cols, upper, xf, tol=1e-9):
    """Turn a float solution into an exact one: fix variables at their bounds, re-solve the rest."""
    nv = len(cols)
    d = len(bs)
    fixed: dict[int, fmpq] = {}
    free = []
    for i, v in enumerate(xf):
        if abs(v) <= tol:
            fixed[i] = fmpq(0)
        elif upper[i] is not None and abs(v - 1) <= tol:
            fixed[i] = fmpq(1)
        else:
            free.append(i)
    rhs = [-bs[c] - sum((fixed[i] * cols[i][c] for i in fixed), fmpq(0)) for c in range(d)]
    if not free:
        x = [fixed[i] for i in range(nv)]
        return x if _check_cone(bs, cols, upper, x) else None
    # rows: equations (d) over free vars; choose independent free columns
    fcols = [cols[i] for i in free]
    basis = independent_subset(fcols)
    others = [free[t] for t in range(len(free)) if t not in basis]
    for i in others:
        fr = Fraction(float(xf[i])).limit_denominator(10 ** 9)
        fixed[i] = fmpq(fr.numerator, fr.denominator)
    rhs = [-bs[c] - sum((fixed[i] * cols[i][c] for i in fixed), fmpq(0)) for c in range(d)]
    bcols = [fcols[t] for t in basis]
    sol = solve_in_span(bcols, rhs)
    if sol is None:
        return None
    x = [None] * nv
    for i, v in fixed.items():
        x[i] = v
    for t, v in zip(basis, sol):
        x[free[t]] = v
    return x if _check_cone(bs, cols, upper, x) else None


def _highs_cone(bs, cols, upper):
    from scipy.optimize import linprog
    nv = len(cols)
    d = len(bs)
    if nv == 0:
        return [] if all(v == 0 for v in bs) else None
    Aeq = np.array([[float(cols[i][c]) for i in range(nv)] for c in range(d)])
    beq = np.array([-float(v) for v in bs])
    bounds = [(0, 1) if ub is not None else (0, None) for ub in upper]
    try:
        res = linprog(np.zeros(nv), A_eq=Aeq, b_eq=beq, bounds=bounds, method="highs")
    except Exception:
        return None
    if res.status != 0:
        return None
    return _rationalise(bs, cols, upper, res.x)


def _z3_cone(bs, cols, upper, timeout_ms=20000):
    import z3
    nv = len(cols)
    d = len(bs)
    xs = [z3.Real(f"x{i}") for i in range(nv)]
    s = z3.Solver()
    s.set("timeout", timeout_ms)
    for x, ub in zip(xs, upper):
        s.add(x >= 0)
        if ub is not None:
            s.add(x <= 1)
    for c in range(d):
        s.add(z3.Sum([_zq(bs[c])] + [_zq(cols[i][c]) * xs[i] for i in range(nv)]) == 0)
    if s.check() != z3.sat:
        return None
    m = s.model()
    x = [_fromz3(m.eval(v, model_completion=True)) for v in xs]
    return x if _check_cone(bs, cols, upper, x) else None


def _zq(v):
    import z3
    return z3.RealVal(f"{v.p}/{v.q}") if isinstance(v, fmpq) else z3.RealVal(str(v))


def _fromz3(val) -> fmpq:
    fr = val.as_fraction()
    return fmpq(int(fr.numerator), int(fr.denominator))


def _cone_descent(b, gamma, conc, signs):
    """Look for r in the cone with phi(r) < 0: HiGHS then z3, checked exactly."""
    keys = list(gamma)
    d = len(b)
    from scipy.optimize import linprog
    conv = [k for k in keys if gamma[k] > 0]
    bs = list(b)
    for key, sg in zip(conc, signs):
        if sg > 0:
            bs = [u + gamma[key] * v for u, v in zip(bs, key)]
    # variables r (d), u_p (convex hinges)
    nc = len(conv)
    c = np.array([float(v) for v in bs] + [float(gamma[k]) for k in conv])
    A_ub, b_ub = [], []
    for p, k in enumerate(conv):          # nu.r - u <= 0
        row = [float(v) for v in k] + [0.0] * nc
        row[d + p] = -1.0
        A_ub.append(row)
        b_ub.append(0.0)
    for k, sg in zip(conc, signs):        # -sg nu.r <= 0
        A_ub.append([-sg * float(v) for v in k] + [0.0] * nc)
        b_ub.append(0.0)
    bounds = [(-1, 1)] * d + [(0, None)] * nc
    try:
        res = linprog(c, A_ub=np.array(A_ub) if A_ub else None, b_ub=np.array(b_ub) if b_ub else None,
                      bounds=bounds, method="highs")
        if res.status == 0 and res.fun < -1e-12:
            r = [fmpq(*float(v).as_integer_ratio()) for v in res.x[:d]]
            if phi_eval(b, gamma, r) < 0:
                return r
    except Exception:
        pass
    z = z3_decide(b, gamma)
    return z.descent if z.ok is False else None


def cones(b: list, gamma: dict) -> PhiDecision:
    keys = list(gamma)
    conc = [k for k in keys if gamma[k] < 0]
    if len(conc) > 20:
        return PhiDecision(None, "cones", note=f"{len(conc)} concave hinges: too many cones")
    patterns = []
    for signs in itertools.product((1, -1), repeat=len(conc)):
        conv, conc_, bs, cols, upper = _cone_system(b, gamma, signs)
        x = _highs_cone(bs, cols, upper)
        if x is None:
            x = _z3_cone(bs, cols, upper)
        if x is None:
            r = _cone_descent(b, gamma, conc, signs)
            if r is not None:
                return _descent(b, gamma, r, "cones", f"cone {list(signs)} of the concave hinges")
            return PhiDecision(None, "cones", note=f"cone {list(signs)}: neither multipliers nor a descent direction found")
        nP = len(conv)
        patterns.append({"signs": list(signs), "s": _vec(x[:nP]), "mu": _vec(x[nP:])})
    return PhiDecision(True, "cones", witness={"b": _vec(b), "hinges": _hinge_list(gamma),
                                               "patterns": patterns})


# ---------------------------------------------------------------------------------------------
# extreme rays
# ---------------------------------------------------------------------------------------------

def candidate_rays(normals: list, d: int, limit: int = MAX_RAY_CANDIDATES):
    """Basis of V = span(normals), its orthogonal complement, and the candidate extreme rays (one
    direction per line; both signs are to be used). None if there are more than ``limit``."""
    if not normals:
        return [], nullspace([], d), []
    Vrows, _ = rref_pivots(normals)
    q = len(Vrows)
    perp = nullspace(Vrows, d)
    from math import comb
    if comb(len(normals), q - 1) > limit:
        return Vrows, perp, None
    rays_ = []
    seen = set()
    for sub in itertools.combinations(range(len(normals)), q - 1):
        rows = [normals[i] for i in sub]
        if q - 1 > 0 and rank(rows) < q - 1:
            continue
        ns = nullspace(rows + perp, d) if (rows or perp) else nullspace([], d)
        if len(ns) != 1:
            continue
        r = ns[0]
        from relucert.core.formulas import canonical_normal
        key = canonical_normal(r)[0]
        if key in seen:
            continue
        seen.add(key)
        rays_.append(list(key))
    return Vrows, perp, rays_


def rays(b: list, gamma: dict) -> PhiDecision:
    keys = list(gamma)
    d = len(b)
    Vrows, perp, cand = candidate_rays(keys, d)
    for r in perp:                         # phi = b.r on V-perp: must vanish
        if dot(b, r) != 0:
            sgn = -1 if dot(b, r) > 0 else 1
            return _descent(b, gamma, [sgn * v for v in r], "rays", "b has a component orthogonal to the kink normals")
    if cand is None:
        return PhiDecision(None, "rays", note="too many candidate extreme rays")
    for r in cand:
        for sgn in (1, -1):
            rr = [sgn * v for v in r]
            if phi_eval(b, gamma, rr) < 0:
                return _descent(b, gamma, rr, "rays", "negative on an extreme ray")
    return PhiDecision(True, "rays", witness={"b": _vec(b), "hinges": _hinge_list(gamma),
                                              "n_rays": len(cand)})


# ---------------------------------------------------------------------------------------------
# SMT
# ---------------------------------------------------------------------------------------------

def z3_decide(b: list, gamma: dict, timeout_ms: int = 60000) -> PhiDecision:
    import z3
    d = len(b)
    r = [z3.Real(f"r{i}") for i in range(d)]
    s = z3.Solver()
    s.set("timeout", timeout_ms)
    for v in r:
        s.add(v >= -1, v <= 1)
    terms = [_zq(b[i]) * r[i] for i in range(d) if b[i] != 0]
    for key, g in gamma.items():
        t = z3.Sum([_zq(key[i]) * r[i] for i in range(d) if key[i] != 0])
        terms.append(_zq(g) * z3.If(t > 0, t, 0))
    s.add((z3.Sum(terms) if terms else z3.RealVal(0)) < 0)
    res = s.check()
    if res == z3.unsat:
        return PhiDecision(True, "z3", note="z3: unsat (no certificate)")
    if res == z3.sat:
        m = s.model()
        rr = [_fromz3(m.eval(v, model_completion=True)) for v in r]
        return _descent(b, gamma, rr, "z3", "z3 model")
    return PhiDecision(None, "z3", note="z3: unknown/timeout")
