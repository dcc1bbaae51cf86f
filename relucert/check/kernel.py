# Deliberate independent copy of the network formulas (independent of relucert.core): see reference.py.
"""Independent certificate checker: the trusted kernel.

Imports nothing from the decision code (only the standard library).  It re-derives, with
``fractions.Fraction``, every quantity a certificate records from the problem and the point, checks
every witness identity, and checks that the verdict follows.  Solvers never enter here.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from fractions import Fraction as Q
from math import lcm
from typing import Any

from .limits import LimitError, active_limits, load_json, parse_exact, read_text
from .reference import (D, _int_preactivations, _over_common, dot as _dot, dsigma, half_mean_loss, hessian, jacobian,
                        mean_residual, output_grad, output_grad_from_ints, preactivations, residuals, sigma)

FORMAT = "verifier-certificate/1"
MORSE_BOTT_MAX_PARAMS = 400     # the O(P^3) Fraction re-check of a Morse-Bott proof stays bounded


class Rejected(Exception):
    """The certificate is not valid; the message says what failed."""


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise Rejected(msg)


def _short(x: Any) -> str:
    """A number for a message: whole when short, else its leading digits and its size."""
    t = x if isinstance(x, str) else repr(x) if not isinstance(x, (int, Q)) else None
    if t is None:
        num, den = (x.numerator, x.denominator) if isinstance(x, Q) else (x, 1)
        if max(num.bit_length(), den.bit_length()) < 200:
            return str(x)
        return f"~{float(x) if abs(num.bit_length() - den.bit_length()) < 1000 else 'huge'} (exact, " \
               f"{int(max(num.bit_length(), den.bit_length()) * 0.30103) + 1} digits)"
    return t if len(t) <= 60 else f"{t[:40]}... ({len(t)} characters)"


def _q(s: Any, what: str, lim=None) -> Q:
    """An exact number of the certificate: the instance's own numbers (``lim``: the input limits)
    or a derived one (default: the certificate limits, which allow longer numbers)."""
    if isinstance(s, bool) or not isinstance(s, (str, int)):
        raise Rejected(f"{what}: expected an exact number string, got {_short(s)}")
    try:
        return parse_exact(s, what, lim or active_limits().for_certificates())
    except LimitError as e:
        raise Rejected(str(e)) from None


def _vec(v: Any, what: str, length: int | None = None, lim=None) -> list[Q]:
    _need(isinstance(v, list), f"{what}: expected a list")
    if length is not None:
        _need(len(v) == length, f"{what}: expected {length} entries, got {len(v)}")
    return [_q(x, f"{what}[{i}]", lim) for i, x in enumerate(v)]


def _mat(v: Any, what: str, ncols: int | None = None, lim=None) -> list[list[Q]]:
    _need(isinstance(v, list) and len(v) > 0, f"{what}: expected a non-empty list of rows")
    rows = [_vec(r, f"{what}[{i}]", lim=lim) for i, r in enumerate(v)]
    c = len(rows[0]) if ncols is None else ncols
    _need(all(len(r) == c for r in rows), f"{what}: rows must all have {c} entries")
    return rows


# ---------------------------------------------------------------------------------------------
# exact linear algebra (Gaussian elimination over Q)
# ---------------------------------------------------------------------------------------------

def _rref(rows: list[list[Q]], ncols: int):
    M = [list(r) for r in rows]
    piv = []
    r = 0
    for c in range(ncols):
        p = next((i for i in range(r, len(M)) if M[i][c] != 0), None)
        if p is None:
            continue
        M[r], M[p] = M[p], M[r]
        inv = 1 / M[r][c]
        M[r] = [x * inv for x in M[r]]
        for i in range(len(M)):
            if i != r and M[i][c] != 0:
                f = M[i][c]
                M[i] = [x - f * y for x, y in zip(M[i], M[r])]
        piv.append(c)
        r += 1
    return M[:r], piv


def _rank(rows, ncols) -> int:
    return len(_rref(rows, ncols)[1]) if rows else 0


def _nullspace(rows, ncols) -> list[list[Q]]:
    R, piv = _rref(rows, ncols) if rows else ([], [])
    out = []
    for f in [c for c in range(ncols) if c not in piv]:
        v = [Q(0)] * ncols
        v[f] = Q(1)
        for row, p in zip(R, piv):
            v[p] = -row[f]
        out.append(v)
    return out


def _canon(x):
    for v in x:
        if v != 0:
            return tuple(c / v for c in x), v
    return None


# ---------------------------------------------------------------------------------------------
# the instance
# ---------------------------------------------------------------------------------------------

class _Instance:
    def __init__(self, cert: dict):
        pb, pt = cert.get("problem"), cert.get("point")
        _need(isinstance(pb, dict) and isinstance(pt, dict), "certificate lacks problem or point")
        act = pb.get("activation")
        _need(isinstance(act, dict), "problem.activation must be {alpha_plus, alpha_minus}")
        inp = active_limits()            # the problem and point are inputs: the input limits apply
        self.ap, self.am = _q(act.get("alpha_plus"), "alpha_plus", inp), _q(act.get("alpha_minus"), "alpha_minus", inp)
        _need(self.ap != self.am, "alpha_plus = alpha_minus")
        self.conv = pb.get("loss")
        _need(self.conv in ("half_mean", "mse"), f"unknown loss convention {_short(self.conv)}")
        self.X = _mat(pb.get("X"), "X", lim=inp)
        self.n, self.d = len(self.X), len(self.X[0])
        self.Y = _mat(pb.get("Y"), "Y", lim=inp)
        _need(len(self.Y) == self.n, "X and Y differ in rows")
        self.k = len(self.Y[0])
        self.W = _mat(pt.get("W"), "W", self.d, lim=inp)
        self.m = len(self.W)
        self.A = _mat(pt.get("A"), "A", self.k, lim=inp)
        _need(len(self.A) == self.m, "W and A differ in rows")
        # the output bias: absent = the network has none; present (even 0) = a free parameter
        self.c = _vec(pt["c"], "c", self.k, lim=inp) if "c" in pt else None
        self.factor = Q(1) if self.conv == "half_mean" else Q(2, self.k)
        # the pre-activations once, as integers over one denominator (None: hostile denominators);
        # the Fraction matrix Z only when a check reads all of it, single columns by zcol(j)
        self._xc = _over_common(self.X)
        self._zi = None if self._xc is None else _int_preactivations(self.X, self.W, self._xc)
        self._Z: list | None = None
        self._cols: dict = {}
        self.E = residuals(self.X, self.Y, self.W, self.A, self.ap, self.am, self.c, zi=self._zi)
        self.loss_hm = self._loss_hm(self.E)
        G = None if self._zi is None else output_grad_from_ints(self._zi, self.E, self.ap, self.am)
        self.G = output_grad(self.Z, self.E, self.ap, self.am) if G is None else G
        self.ebar = mean_residual(self.E)       # dL/dc; (S0) requires it to vanish when c is present

    @property
    def Z(self) -> list[list[Q]]:
        """Z[i][j] = w_j . x_i (n x m Fractions), built on first use."""
        if self._Z is None:
            if self._zi is None:
                self._Z = preactivations(self.X, self.W)
            else:
                Zi, Dz = self._zi
                self._Z = [[Q(z, Dz) for z in row] for row in Zi]
        return self._Z

    def zcol(self, j: int) -> list[Q]:
        """Column j of Z (w_j . x_i for every i), without building the others."""
        if self._Z is not None:
            return [row[j] for row in self._Z]
        if j not in self._cols:
            if self._zi is None:
                self._cols[j] = [row[j] for row in self.Z]
            else:
                Zi, Dz = self._zi
                self._cols[j] = [Q(row[j], Dz) for row in Zi]
        return self._cols[j]

    def sig(self, z: Q) -> Q:
        return sigma(z, self.ap, self.am)

    def dsig(self, z: Q) -> Q:
        return dsigma(z, self.ap, self.am)

    def _residuals(self, W, A, c=None):
        return residuals(self.X, self.Y, W, A, self.ap, self.am, self.c if c is None else c)

    def _loss_hm(self, E) -> Q:
        return half_mean_loss(E)

    def loss_after(self, W, A, c=None) -> Q:
        """Loss (problem's convention) at (W, A) with the output bias c (None: the point's own).
        When few neurons differ from the point's, the residuals are the point's plus their change:
        e_i + sum over those j of (a'_j sigma(w'_j . x_i) - a_j sigma(w_j . x_i)) + (c' - c)."""
        moved = [j for j in range(self.m) if W[j] != self.W[j] or A[j] != self.A[j]] \
            if len(W) == self.m and len(A) == self.m else None
        if moved is None or 2 * len(moved) > self.m or (c is not None and self.c is None):
            return self._loss_hm(self._residuals(W, A, c)) * self.factor
        dc = [Q(0)] * self.k if c is None else [a - b for a, b in zip(c, self.c)]
        E = [list(row) for row in self.E]
        for j in moved:
            zj = self.zcol(j)
            if W[j] == self.W[j]:
                zn = zj
            else:
                zi = None if self._xc is None else _int_preactivations(self.X, [W[j]], self._xc)
                zn = [_dot(W[j], x) for x in self.X] if zi is None else [Q(row[0], zi[1]) for row in zi[0]]
            for i in range(self.n):
                new_h, old_h = self.sig(zn[i]), self.sig(zj[i])
                for o in range(self.k):
                    E[i][o] += A[j][o] * new_h - self.A[j][o] * old_h
        if any(v != 0 for v in dc):
            E = [[e + v for e, v in zip(row, dc)] for row in E]
        return self._loss_hm(E) * self.factor

    def dc(self, v: Any, what: str) -> list[Q] | None:
        """A recorded move of the output bias (k numbers), or None when not recorded; only a point with
        an output bias may have one."""
        if v is None:
            return None
        _need(self.c is not None, f"{what}: the direction moves an output bias, but the point has none")
        return _vec(v, what, self.k)

    def D(self, j: int, r: list[Q]) -> list[Q]:
        """D_j(r) straight from its definition (no merging)."""
        return D(self.X, self.zcol(j), self.E, r, self.ap, self.am)

    def phi(self, j: int, r) -> Q:
        return _dot(self.A[j], self.D(j, r))

    def merged(self, j: int):
        """Linear part (k x d) and hinges {normal: Gamma} of D_j after merging parallel kinks."""
        Lin = [[Q(0)] * self.d for _ in range(self.k)]
        hinges: dict = {}
        zj = self.zcol(j)
        for i, x in enumerate(self.X):
            z = zj[i]
            s = self.dsig(z)  # alpha_minus on the kink: the linear part of sigma(x.r)
            for c in range(self.k):
                if self.E[i][c] != 0:
                    for q in range(self.d):
                        Lin[c][q] += s * self.E[i][c] * x[q] / self.n
            if z == 0:
                cn = _canon(x)
                if cn is None:
                    continue
                key, lam = cn
                coef = [(self.ap - self.am) * e / self.n * abs(lam) for e in self.E[i]]
                cur = hinges.get(key, [Q(0)] * self.k)
                hinges[key] = [u + v for u, v in zip(cur, coef)]
                if lam < 0:
                    for c in range(self.k):
                        for q in range(self.d):
                            Lin[c][q] -= coef[c] * key[q]
        hinges = {key: g for key, g in hinges.items() if any(v != 0 for v in g)}
        return Lin, hinges


def _candidate_rays(normals, d):
    if not normals:
        return _nullspace([], d), []
    R, _ = _rref(normals, d)
    q = len(R)
    perp = _nullspace(R, d)
    rays, seen = [], set()
    for sub in itertools.combinations(range(len(normals)), q - 1):
        rows = [normals[i] for i in sub]
        if rows and _rank(rows, d) < q - 1:
            continue
        ns = _nullspace(rows + perp, d)
        if len(ns) == 1:
            key = _canon(ns[0])[0]      # one representative per line; both signs are tested
            if key not in seen:
                seen.add(key)
                rays.append(list(key))
    return perp, rays


# ---------------------------------------------------------------------------------------------
# witness checks
# ---------------------------------------------------------------------------------------------

def _check_stationarity(inst: _Instance, j: int, st: dict) -> bool:
    """True if (S2) is certified for neuron j; False if recorded as undecided."""
    method = st.get("method")
    a = inst.A[j]
    if method == "zero_output":
        _need(all(v == 0 for v in a), f"neuron {j}: stationarity 'zero_output' but a_j != 0")
        return True
    if method == "undecided":
        return False
    _need(method in ("cones", "rays"), f"neuron {j}: unknown stationarity method {_short(method)}")
    Lin, hinges = inst.merged(j)
    b = [sum((a[c] * Lin[c][q] for c in range(inst.k)), Q(0)) for q in range(inst.d)]
    gamma = {key: _dot(a, G) for key, G in hinges.items()}
    gamma = {key: g for key, g in gamma.items() if g != 0}
    _need(_vec(st.get("b"), f"neuron {j} b", inst.d) == b, f"neuron {j}: recorded b differs from b_j")
    rec = st.get("hinges")
    _need(isinstance(rec, list), f"neuron {j}: hinges must be a list")
    rec_keys = []
    for h in rec:
        _need(isinstance(h, dict), f"neuron {j}: malformed hinge")
        key = tuple(_vec(h.get("normal"), f"neuron {j} hinge normal", inst.d))
        _need(key in gamma, f"neuron {j}: recorded hinge normal {h.get('normal')} is not a merged kink normal")
        _need(_q(h.get("gamma"), "gamma") == gamma[key], f"neuron {j}: recorded gamma differs at {h.get('normal')}")
        rec_keys.append(key)
    _need(len(rec_keys) == len(gamma) and set(rec_keys) == set(gamma), f"neuron {j}: recorded hinges are not all the merged kinks")

    def phi(r):
        v = _dot(b, r)
        for key, g in gamma.items():
            t = _dot(key, r)
            if t > 0:
                v += g * t
        return v

    if method == "rays":
        perp, rays = _candidate_rays(rec_keys, inst.d)
        for r in perp:
            _need(_dot(b, r) == 0, f"neuron {j}: b has a component orthogonal to the kink normals")
        _need(st.get("n_rays") == len(rays), f"neuron {j}: recorded number of rays differs")
        for r in rays:
            for sg in (1, -1):
                _need(phi([sg * v for v in r]) >= 0, f"neuron {j}: phi < 0 on an extreme ray")
        return True
    conv = [key for key in rec_keys if gamma[key] > 0]
    conc = [key for key in rec_keys if gamma[key] < 0]
    pats = st.get("patterns")
    _need(isinstance(pats, list), f"neuron {j}: patterns must be a list")
    seen = set()
    for p in pats:
        _need(isinstance(p, dict), f"neuron {j}: malformed pattern")
        signs = p.get("signs")
        _need(isinstance(signs, list) and len(signs) == len(conc) and all(s in (1, -1) for s in signs),
              f"neuron {j}: pattern signs must be +-1 for each of the {len(conc)} concave hinges")
        s = _vec(p.get("s"), f"neuron {j} s", len(conv))
        mu = _vec(p.get("mu"), f"neuron {j} mu", len(conc))
        _need(all(0 <= v <= 1 for v in s), f"neuron {j}: a multiplier s is outside [0, 1]")
        _need(all(v >= 0 for v in mu), f"neuron {j}: a multiplier mu is negative")
        lhs = list(b)
        for key, sg in zip(conc, signs):
            if sg > 0:
                lhs = [u + gamma[key] * v for u, v in zip(lhs, key)]
        for key, sv in zip(conv, s):
            lhs = [u + sv * gamma[key] * v for u, v in zip(lhs, key)]
        for key, sg, mv in zip(conc, signs, mu):
            lhs = [u - mv * sg * v for u, v in zip(lhs, key)]
        _need(all(v == 0 for v in lhs), f"neuron {j}: cone {signs}: multiplier identity fails")
        seen.add(tuple(signs))
    _need(seen == set(itertools.product((1, -1), repeat=len(conc))),
          f"neuron {j}: the patterns do not cover every sign choice of the concave hinges")
    return True


def _check_escape(inst: _Instance, j: int, es: dict) -> bool | None:
    """Recorded escape status of neuron j, verified."""
    method = es.get("method")
    flag = es.get("escape")
    a = inst.A[j]
    if method == "zero_derivative":
        _need(flag is False, f"neuron {j}: 'zero_derivative' must say escape false")
        _need(all(v == 0 for v in a), f"neuron {j}: zero_derivative needs a_j = 0")
        Lin, hinges = inst.merged(j)
        _need(all(v == 0 for row in Lin for v in row) and not hinges, f"neuron {j}: D_j is not identically 0")
        return False
    if method == "scalar_nonzero_a":
        _need(flag is False, f"neuron {j}: 'scalar_nonzero_a' must say escape false")
        _need(inst.k == 1 and any(v != 0 for v in a), f"neuron {j}: scalar_nonzero_a needs k = 1 and a_j != 0")
        return False
    if method == "direction":
        _need(flag is True, f"neuron {j}: an escape direction must say escape true")
        r = _vec(es.get("r"), f"neuron {j} r", inst.d)
        D = inst.D(j, r)
        _need(_vec(es.get("D"), f"neuron {j} D", inst.k) == D, f"neuron {j}: recorded D_j(r) differs")
        _need(any(v != 0 for v in D), f"neuron {j}: D_j(r) = 0")
        _need(_dot(a, D) == 0, f"neuron {j}: phi_j(r) != 0 on the escape direction")
        return True
    if method == "rays":
        _need(flag is False, f"neuron {j}: 'rays' must say escape false")
        _need(any(v != 0 for v in a), f"neuron {j}: rays escape test needs a_j != 0")
        Lin, hinges = inst.merged(j)
        perp, rays = _candidate_rays(list(hinges), inst.d)
        _need(es.get("n_rays") == len(rays), f"neuron {j}: recorded number of rays differs")
        for r in perp:
            _need(all(v == 0 for v in inst.D(j, r)), f"neuron {j}: D_j != 0 orthogonal to the kinks")
        for r in rays:
            for sg in (1, -1):
                rr = [sg * v for v in r]
                if inst.phi(j, rr) == 0:
                    _need(all(v == 0 for v in inst.D(j, rr)), f"neuron {j}: D_j != 0 on a flat extreme ray")
        return False
    raise Rejected(f"neuron {j}: unknown escape method {_short(method)}")


def _ray_polynomial(inst: _Instance, moves: dict, dc: list | None = None):
    """L(theta + t Delta) - L(theta) = c1 t + c2 t^2 + c3 t^3 + c4 t^4 (half_mean) for 0 < t < t_max,
    straight from f along the ray: Delta moves neuron j by (dw, da) for each j in ``moves`` and the
    output bias by dc (None: it stays); on a kink the slope is the one of the side dw moves to.
    t_max is None when no sign can change (c moves no pre-activation)."""
    n, k = inst.n, inst.k
    u = [list(dc) if dc is not None else [Q(0)] * k for _ in range(n)]
    qv = [[Q(0)] * k for _ in range(n)]
    tmax = None
    for j, (dw, da) in moves.items():
        zj = inst.zcol(j)
        for i, x in enumerate(inst.X):
            z, dl = zj[i], _dot(dw, x)
            s = inst.ap if (z > 0 or (z == 0 and dl > 0)) else inst.am
            for c in range(k):
                u[i][c] += da[c] * s * z + inst.A[j][c] * s * dl
                qv[i][c] += da[c] * s * dl
            if z != 0 and z * dl < 0 and (tmax is None or -z / dl < tmax):
                tmax = -z / dl
    c1 = sum((_dot(e, ui) for e, ui in zip(inst.E, u)), Q(0)) / n
    c2 = sum((_dot(ui, ui) + 2 * _dot(e, qi) for e, ui, qi in zip(inst.E, u, qv)), Q(0)) / (2 * n)
    c3 = sum((_dot(ui, qi) for ui, qi in zip(u, qv)), Q(0)) / n
    c4 = sum((_dot(qi, qi) for qi in qv), Q(0)) / (2 * n)
    return c1, c2, c3, c4, tmax


def _check_second_order(inst: _Instance, so: dict) -> None:
    """A ray with L'(theta;Delta) = 0 and a negative t^2 coefficient: the loss is lower at every
    small t > 0, so a stationary theta is not a local minimum."""
    dW = _mat(so.get("dW"), "second_order dW", inst.d)
    dA = _mat(so.get("dA"), "second_order dA", inst.k)
    _need(len(dW) == inst.m and len(dA) == inst.m, "second_order: the direction must have a row per neuron")
    dc = inst.dc(so.get("dc"), "second_order dc")
    c1, c2, c3, c4, tmax = _ray_polynomial(inst, {j: (dW[j], dA[j]) for j in range(inst.m)}, dc)
    _need(_vec(so.get("polynomial"), "second_order polynomial", 5) == [Q(0), c1, c2, c3, c4],
          "second_order: recorded ray polynomial differs")
    _need(c1 == 0, "second_order: L'(theta;Delta) != 0")
    lead = next((v for v in (c2, c3, c4) if v != 0), Q(0))
    _need(lead < 0, "second_order: the first non-zero coefficient of t^2, t^3, t^4 is not negative")
    _need((so.get("t_max") is None and tmax is None) or
          (so.get("t_max") is not None and tmax is not None and _q(so["t_max"], "t_max") == tmax),
          "second_order: recorded t_max differs")
    t0 = _q(so.get("t0"), "t0")
    _need(t0 > 0 and (tmax is None or t0 < tmax), "second_order: t0 outside (0, t_max)")
    W = [[w + t0 * v for w, v in zip(inst.W[j], dW[j])] for j in range(inst.m)]
    A = [[a + t0 * v for a, v in zip(inst.A[j], dA[j])] for j in range(inst.m)]
    c = None if dc is None else [a + t0 * v for a, v in zip(inst.c, dc)]
    new = inst.loss_after(W, A, c)
    _need(_q(so.get("loss_at_t0"), "loss_at_t0") == new, "second_order: recorded loss at t0 differs")
    _need(new < inst.loss_hm * inst.factor, "second_order: loss at t0 is not lower")


def _hessian(inst: _Instance) -> list[list[Q]]:
    """Exact Hessian of the half_mean loss in (W row-major, A row-major) at a smooth point; for a point
    with an output bias the joint one in (W, A, c) (a test on the (W, A)-block alone is unsound:
    docs/biases.md CE2)."""
    return hessian(inst.X, inst.Z, inst.E, inst.A, inst.ap, inst.am, output_bias=inst.c is not None)


def _psd_rank(H: list[list[Q]]) -> int | None:
    """Rank of a symmetric matrix if it is positive semi-definite, else None (symmetric elimination
    with diagonal pivots: a negative pivot, or a zero diagonal entry with a non-zero row, refutes it)."""
    M = [list(r) for r in H]
    idx = list(range(len(M)))
    rank = 0
    while idx:
        piv = next((i for i in idx if M[i][i] != 0), None)
        if piv is None:
            return rank if all(M[i][l] == 0 for i in idx for l in idx) else None
        p = M[piv][piv]
        if p < 0:
            return None
        rank += 1
        idx.remove(piv)
        for l in idx:
            f = M[l][piv] / p
            if f != 0:
                M[l] = [x - f * y for x, y in zip(M[l], M[piv])]
    return rank


def _check_morse_bott(inst: _Instance, mb: dict) -> None:
    """Local minimum by the Morse-Bott lemma: smooth point, Hessian PSD, kernel = tangent space of
    the manifold of critical points with equal loss (rescalings of each non-dead neuron, open sets of
    the dead neurons' parameters)."""
    m, d, k = inst.m, inst.d, inst.k
    nc = 0 if inst.c is None else k          # the output bias's coordinates come last, tangent part 0
    P = m * (d + k) + nc
    _need(P <= MORSE_BOTT_MAX_PARAMS, f"morse_bott: {P} parameters, more than this checker re-derives "
                                      f"({MORSE_BOTT_MAX_PARAMS})")
    nonzero_x = [i for i in range(inst.n) if any(v != 0 for v in inst.X[i])]
    _need(all(any(v != 0 for v in w) for w in inst.W), "morse_bott: a neuron has w = 0 (not smooth)")
    _need(all(inst.Z[i][j] != 0 for i in nonzero_x for j in range(m)),
          "morse_bott: a data point lies on a kink (not smooth)")
    H = _hessian(inst)
    rank = _psd_rank(H)
    _need(rank is not None, "morse_bott: the Hessian is not positive semi-definite")
    dead = [j for j in range(m) if inst.am == 0 and all(inst.Z[i][j] < 0 for i in nonzero_x)]
    tangent = []
    for j in range(m):
        if j in dead:
            for t in [j * d + q for q in range(d)] + [m * d + j * k + c for c in range(k)]:
                tangent.append([Q(1) if u == t else Q(0) for u in range(P)])
        else:
            tangent.append([inst.W[jj][q] if jj == j else Q(0) for jj in range(m) for q in range(d)] +
                           [-inst.A[jj][c] if jj == j else Q(0) for jj in range(m) for c in range(k)] +
                           [Q(0)] * nc)
    _need(all(_dot(row, v) == 0 for v in tangent for row in H),
          "morse_bott: a tangent direction of the critical manifold is not in the Hessian's kernel")
    _need(P - rank == len(tangent), f"morse_bott: the Hessian's kernel has dimension {P - rank}, the critical "
                                    f"manifold's tangent space {len(tangent)}")
    _need(mb.get("hessian_rank") == rank and mb.get("tangent_dimension") == len(tangent)
          and mb.get("parameters") == P and mb.get("dead_neurons") == dead,
          "morse_bott: recorded rank / tangent dimension / dead neurons differ")


KINK_MAX_PIECES = 4096          # 2^12 sign vectors over the kink groups
KINK_MAX_PARAMS = 400


def _kink_groups(inst: _Instance, frozen=()) -> list:
    """[(j, nu, [(i, lam)])]: the data x_i = lam nu != 0 on neuron j's kink, grouped by line (the
    frozen neurons left out)."""
    out = []
    for j in range(inst.m):
        if j in frozen:
            continue
        by: dict = {}
        for i, x in enumerate(inst.X):
            if inst.Z[i][j] == 0 and any(v != 0 for v in x):
                key, lam = _canon(x)
                by.setdefault(key, []).append((i, lam))
        out += [(j, list(key), mem) for key, mem in by.items()]
    return out


def _pos_def(M: list[list[Q]]) -> bool:
    """Positive definite: symmetric elimination without pivoting has every pivot > 0."""
    M = [list(r) for r in M]
    for p in range(len(M)):
        if not M[p][p] > 0:
            return False
        for l in range(p + 1, len(M)):
            f = M[l][p] / M[p][p]
            if f != 0:
                M[l] = [x - f * y for x, y in zip(M[l], M[p])]
    return True


def _check_kink_second_order(inst: _Instance, ks: dict) -> None:
    """Local minimum by second-order sufficiency on every polynomial piece (docs/second_order_kinks.md):
    for every sign vector s over the kink groups, exact multipliers mu >= 0 with
    b_{s,j} = sum_g mu_g s_g nu_g (so L'(theta; Delta) >= 0 on the piece's cone, = 0 only on V_s), and
    the piece's Hessian, re-derived here, positive definite on V_s ∩ slice ∩ (the data each neuron
    sees on the piece; neurons seeing nothing fixed; the input weights of the frozen neurons -- a_j = 0,
    D_j identically 0 -- fixed, their kinks not enumerated)."""
    m, d, k, n = inst.m, inst.d, inst.k, inst.n
    nc = 0 if inst.c is None else k
    P = m * (d + k) + nc
    _need(P <= KINK_MAX_PARAMS, f"kink_second_order: {P} parameters, more than this checker re-derives "
                                f"({KINK_MAX_PARAMS})")
    frozen = ks.get("frozen")
    _need(isinstance(frozen, list) and all(isinstance(j, int) and not isinstance(j, bool) and 0 <= j < m
                                           for j in frozen) and len(set(frozen)) == len(frozen),
          "kink_second_order: frozen must list distinct neuron indices")
    for j in frozen:
        Lin, hinges = inst.merged(j)
        _need(all(v == 0 for v in inst.A[j]) and not hinges and all(v == 0 for row in Lin for v in row),
              f"kink_second_order: frozen neuron {j} needs a_j = 0 and D_j identically 0")
    lifted = ks.get("lifted")
    _need(isinstance(lifted, list) and all(isinstance(j, int) and not isinstance(j, bool) and 0 <= j < m
                                           for j in lifted) and len(set(lifted)) == len(lifted)
          and not set(lifted) & set(frozen), "kink_second_order: lifted must list distinct neurons, none frozen")
    for j in lifted:
        Lin, hinges = inst.merged(j)
        _need(all(v == 0 for v in inst.A[j]) and not hinges and all(v == 0 for row in Lin for v in row)
              and all(inst.sig(inst.Z[i][j]) == 0 for i in range(n)),
              f"kink_second_order: lifted neuron {j} needs a_j = 0, D_j identically 0 and sigma(z_ij) = 0")
    groups = _kink_groups(inst, frozen)
    rec = ks.get("groups")
    _need(isinstance(rec, list) and len(rec) == len(groups), "kink_second_order: the kink groups differ")
    for g, ((j, nu, mem), r) in enumerate(zip(groups, rec)):
        _need(isinstance(r, dict) and r.get("neuron") == j and _vec(r.get("normal"), "normal", d) == nu
              and r.get("data") == [i for i, _ in mem], f"kink_second_order: kink group {g} differs")
    G = len(groups)
    _need(2 ** G <= KINK_MAX_PIECES, f"kink_second_order: {2 ** G} pieces, more than the cap {KINK_MAX_PIECES}")
    pieces = ks.get("pieces")
    _need(isinstance(pieces, list), "kink_second_order: pieces must be a list")
    by_signs = {}
    for p in pieces:
        _need(isinstance(p, dict) and isinstance(p.get("signs"), list) and len(p["signs"]) == G
              and all(v in (1, -1) and not isinstance(v, bool) for v in p["signs"]),
              "kink_second_order: a piece needs one sign +-1 per kink group")
        _need(tuple(p["signs"]) not in by_signs, "kink_second_order: a piece is listed twice")
        by_signs[tuple(p["signs"])] = p
    _need(set(by_signs) == set(itertools.product((1, -1), repeat=G)),
          "kink_second_order: the pieces do not cover every sign vector of the kink groups")

    def wi(j, q):
        return j * d + q

    def ai(j, c):
        return m * d + j * k + c

    def unit(t):
        return [Q(1) if u == t else Q(0) for u in range(P)]
    for signs, p in by_signs.items():
        mu = _vec(p.get("mu"), "kink_second_order mu", G)
        _need(all(v >= 0 for v in mu), f"kink_second_order: piece {list(signs)}: a multiplier is negative")
        slope = {(i, j): inst.am for j in range(m) for i, x in enumerate(inst.X)
                 if inst.Z[i][j] == 0 and any(v != 0 for v in x)}
        for (j, nu, mem), sg in zip(groups, signs):
            for i, lam in mem:
                slope[(i, j)] = inst.ap if (lam > 0) == (sg > 0) else inst.am

        def s_of(i, j):
            return slope[(i, j)] if (i, j) in slope else inst.dsig(inst.Z[i][j])
        rows = []
        beta = []                   # the lifted neurons' columns d f / d beta (docs/second_order_kinks.md §3)
        for j in range(m):
            b = [Q(0)] * d
            seen_rows = []
            for i, x in enumerate(inst.X):
                if all(v == 0 for v in x):
                    continue
                s = s_of(i, j)
                f = s * _dot(inst.A[j], inst.E[i]) / n
                b = [u + f * v for u, v in zip(b, x)]
                if s != 0:
                    seen_rows.append(x)
            rhs = [Q(0)] * d
            for g, ((jj, nu, _), sg) in enumerate(zip(groups, signs)):
                if jj == j:
                    rhs = [u + mu[g] * sg * v for u, v in zip(rhs, nu)]
            _need(j in frozen or b == rhs, f"kink_second_order: piece {list(signs)}, neuron {j}: the multiplier "
                                           f"identity b = sum mu_g s_g nu_g fails")
            U, _ = _rref(seen_rows, d) if seen_rows else ([], [])
            if j in frozen:          # w_j fixed, a_j free; never dropped (its kinks are not enumerated)
                rows += [unit(wi(j, q)) for q in range(d)]
                continue
            if not U or j in lifted:
                rows += [unit(wi(j, q)) for q in range(d)] + [unit(ai(j, c)) for c in range(k)]
                for u in (U if j in lifted else []):
                    for c in range(k):
                        col = [Q(0)] * (n * k)
                        for i, x in enumerate(inst.X):
                            if any(v != 0 for v in x):
                                col[i * k + c] = s_of(i, j) * _dot(u, x)
                        beta.append(col)
                continue
            for r in _nullspace(U, d):
                rows.append([r[q] if jj == j else Q(0) for jj in range(m) for q in range(d)] + [Q(0)] * (m * k + nc))
            sl = ([inst.W[j][q] if jj == j else Q(0) for jj in range(m) for q in range(d)] +
                  [-inst.A[j][c] if jj == j else Q(0) for jj in range(m) for c in range(k)] + [Q(0)] * nc)
            rows.append(sl)
            for g, (jj, nu, _) in enumerate(groups):
                if jj == j and mu[g] > 0 and _rank(U + [nu], d) == len(U):
                    rows.append([nu[q] if j2 == j else Q(0) for j2 in range(m) for q in range(d)] +
                                [Q(0)] * (m * k + nc))
        B = _nullspace(rows, P)
        _need(p.get("dimension") == len(B) + len(beta),
              f"kink_second_order: piece {list(signs)}: recorded dimension differs")
        H = hessian(inst.X, inst.Z, inst.E, inst.A, inst.ap, inst.am, output_bias=inst.c is not None,
                    kink_slopes=slope)
        HB = [[_dot(row, v) for row in H] for v in B]
        M = [[_dot(u, hv) for hv in HB] for u in B]
        if beta:                    # [[M, (1/n) (J B^T)^T J_beta], [., (1/n) J_beta^T J_beta]]
            J = jacobian(inst.X, inst.Z, inst.A, inst.ap, inst.am, output_bias=inst.c is not None, kink_slopes=slope)
            JB = [[_dot(row, v) for v in B] for row in J]
            M12 = [[sum((JB[r][a] * col[r] for r in range(len(J))), Q(0)) / n for col in beta] for a in range(len(B))]
            M22 = [[_dot(c1, c2) / n for c2 in beta] for c1 in beta]
            M = [M[a] + M12[a] for a in range(len(B))] + \
                [[M12[a][l] for a in range(len(B))] + M22[l] for l in range(len(beta))]
        _need(_pos_def(M), f"kink_second_order: piece {list(signs)}: the Hessian is not positive definite on "
                           f"V_s ∩ slice")


def _check_descent(inst: _Instance, ns: dict) -> None:
    dr = ns.get("direction")
    _need(isinstance(dr, dict), "not_stationary: no direction")
    reason = ns.get("reason")
    _need(reason in ("S0", "S1", "S2"), "not_stationary: reason must be S0, S1 or S2")
    if reason == "S0":
        _check_output_bias_descent(inst, ns, dr)
        return
    _need("dc" not in dr, f"not_stationary: an {reason} direction moves one neuron and not the output bias")
    j = dr.get("neuron")
    _need(type(j) is int and 0 <= j < inst.m, "not_stationary: bad neuron index")
    dw = _vec(dr.get("dw"), "dw", inst.d)
    da = _vec(dr.get("da"), "da", inst.k)
    if reason == "S1":
        _need(all(v == 0 for v in dw) and da == [-g for g in inst.G[j]], "S1 direction must be (0, -G_j)")
    else:
        _need(all(v == 0 for v in da), "S2 direction must move w_j only")
    deriv = _dot(da, inst.G[j]) + _dot(inst.A[j], inst.D(j, dw))
    _need(_q(ns.get("derivative"), "derivative") == deriv, "not_stationary: recorded L'(theta;Delta) differs")
    _need(deriv < 0, "not_stationary: L'(theta;Delta) is not negative")
    # the ray polynomial of §2 (only neuron j moves)
    c1, c2, c3, c4, tmax = _ray_polynomial(inst, {j: (dw, da)})
    _need(_vec(ns.get("ray_polynomial"), "ray_polynomial", 5) == [Q(0), c1, c2, c3, c4],
          "not_stationary: recorded ray polynomial differs")
    _need(c1 == deriv, "not_stationary: linear coefficient differs from L'")
    _need((ns.get("t_max") is None and tmax is None) or
          (ns.get("t_max") is not None and tmax is not None and _q(ns["t_max"], "t_max") == tmax),
          "not_stationary: recorded t_max differs")
    t = _q(ns.get("step"), "step")
    _need(t > 0 and (tmax is None or t < tmax), "not_stationary: step outside (0, t_max)")
    W = [list(w) for w in inst.W]
    A = [list(a) for a in inst.A]
    W[j] = [w + t * v for w, v in zip(W[j], dw)]
    A[j] = [a + t * v for a, v in zip(A[j], da)]
    new = inst.loss_after(W, A)
    _need(_q(ns.get("loss_at_step"), "loss_at_step") == new, "not_stationary: recorded loss at step differs")
    _need(new < inst.loss_hm * inst.factor, "not_stationary: the step does not lower the loss")


def _check_output_bias_descent(inst: _Instance, ns: dict, dr: dict) -> None:
    """(S0) fails: the residuals of a point with an output bias do not sum to 0, and dc = -e_bar lowers
    the loss: exactly L(theta + t Delta) - L(theta) = -t |e_bar|^2 + t^2 |e_bar|^2 / 2 for every t."""
    _need(inst.c is not None, "not_stationary: reason S0 needs an output bias c, and the point has none")
    _need(set(dr) == {"neuron", "dc"} and dr.get("neuron") is None,
          "not_stationary: an S0 direction moves only the output bias: {neuron: null, dc}")
    dc = inst.dc(dr.get("dc"), "dc")
    _need(any(v != 0 for v in inst.ebar), "not_stationary: reason S0, but the residuals sum to 0")
    _need(dc == [-v for v in inst.ebar], "S0 direction must be dc = -e_bar (minus the mean residual)")
    deriv = _dot(inst.ebar, dc)
    _need(_q(ns.get("derivative"), "derivative") == deriv, "not_stationary: recorded L'(theta;Delta) differs")
    _need(deriv < 0, "not_stationary: L'(theta;Delta) is not negative")
    c1, c2, c3, c4, tmax = _ray_polynomial(inst, {}, dc)
    _need(_vec(ns.get("ray_polynomial"), "ray_polynomial", 5) == [Q(0), c1, c2, c3, c4],
          "not_stationary: recorded ray polynomial differs")
    _need(c1 == deriv and tmax is None, "not_stationary: linear coefficient differs from L'")
    _need(ns.get("t_max") is None, "not_stationary: recorded t_max differs (moving c changes no pre-activation)")
    t = _q(ns.get("step"), "step")
    _need(t > 0, "not_stationary: step must be > 0")
    new = inst.loss_after(inst.W, inst.A, [a + t * v for a, v in zip(inst.c, dc)])
    _need(_q(ns.get("loss_at_step"), "loss_at_step") == new, "not_stationary: recorded loss at step differs")
    _need(new < inst.loss_hm * inst.factor, "not_stationary: the step does not lower the loss")


def _check_escape_path(inst: _Instance, ep: dict) -> None:
    j = ep.get("neuron")
    _need(type(j) is int and 0 <= j < inst.m, "escape_path: bad neuron index")
    _need(all(v == 0 for v in inst.A[j]), "escape_path: needs a_j = 0")
    r = _vec(ep.get("r"), "escape_path r", inst.d)
    D = inst.D(j, r)
    _need(_vec(ep.get("D"), "escape_path D", inst.k) == D, "escape_path: recorded D_j(r) differs")
    DD = _dot(D, D)
    _need(DD > 0, "escape_path: D_j(r) = 0")
    c = [Q(0)] * 7
    tmax = None
    n = inst.n
    for i, x in enumerate(inst.X):
        z, dl = inst.Z[i][j], _dot(r, x)
        s = inst.ap if (z > 0 or (z == 0 and dl > 0)) else inst.am
        al, be = s * z, s * dl
        eD = _dot(inst.E[i], D)
        c[2] -= al * eD / n
        c[3] -= be * eD / n
        c[4] += al * al * DD / (2 * n)
        c[5] += al * be * DD / n
        c[6] += be * be * DD / (2 * n)
        if z != 0 and z * dl < 0 and (tmax is None or -z / dl < tmax):
            tmax = -z / dl
    _need(_vec(ep.get("polynomial"), "escape_path polynomial", 7) == c, "escape_path: recorded polynomial differs")
    _need(c[1] == 0 and c[2] == 0 and c[3] < 0, "escape_path: the lowest-order term is not -t^3 ||D||^2")
    _need((ep.get("t_max") is None and tmax is None) or
          (ep.get("t_max") is not None and tmax is not None and _q(ep["t_max"], "t_max") == tmax),
          "escape_path: recorded t_max differs")
    t0 = _q(ep.get("t0"), "t0")
    _need(t0 > 0 and (tmax is None or t0 < tmax), "escape_path: t0 outside (0, t_max)")
    W = [list(w) for w in inst.W]
    A = [list(a) for a in inst.A]
    W[j] = [w + t0 * v for w, v in zip(W[j], r)]
    A[j] = [-t0 * t0 * v for v in D]
    new = inst.loss_after(W, A)
    _need(_q(ep.get("loss_at_t0"), "loss_at_t0") == new, "escape_path: recorded loss at t0 differs")
    _need(new < inst.loss_hm * inst.factor, "escape_path: loss at t0 is not lower")


# ---------------------------------------------------------------------------------------------
# ball certificates: an exact stationary point proven to exist near a rational point
# ---------------------------------------------------------------------------------------------

BALL_FORMAT = "verifier-ball-certificate/1"


class _Iv:
    """A closed interval [lo, hi] with Fraction endpoints (exact interval arithmetic).  A point
    (degenerate) interval holds one object in both ends (``lo is hi``): its products and sums take
    one exact operation instead of two or four; the values are the same either way."""
    __slots__ = ("lo", "hi")

    def __init__(self, lo, hi=None):
        self.lo = lo
        self.hi = lo if hi is None else hi

    @staticmethod
    def of(v):
        return v if isinstance(v, _Iv) else _Iv(Q(v))

    def __add__(self, o):
        o = _Iv.of(o)
        if self.lo is self.hi and o.lo is o.hi:
            return _Iv(self.lo + o.lo)
        return _Iv(self.lo + o.lo, self.hi + o.hi)

    __radd__ = __add__

    def __sub__(self, o):
        o = _Iv.of(o)
        if self.lo is self.hi and o.lo is o.hi:
            return _Iv(self.lo - o.lo)
        return _Iv(self.lo - o.hi, self.hi - o.lo)

    def __rsub__(self, o):
        return _Iv.of(o) - self

    def __neg__(self):
        if self.lo is self.hi:
            return _Iv(-self.lo)
        return _Iv(-self.hi, -self.lo)

    def __mul__(self, o):
        # min and max of the four end products, read off the end signs (the same two numbers)
        o = _Iv.of(o)
        a, b, c, e = self.lo, self.hi, o.lo, o.hi
        if c is e:
            if a is b:
                return _Iv(a * c)
            return _Iv(a * c, b * c) if c.numerator >= 0 else _Iv(b * c, a * c)
        if a is b:
            return _Iv(a * c, a * e) if a.numerator >= 0 else _Iv(a * e, a * c)
        if a.numerator >= 0:
            if c.numerator >= 0:
                return _Iv(a * c, b * e)
            if e.numerator <= 0:
                return _Iv(b * c, a * e)
            return _Iv(b * c, b * e)
        if b.numerator <= 0:
            if c.numerator >= 0:
                return _Iv(a * e, b * c)
            if e.numerator <= 0:
                return _Iv(b * e, a * c)
            return _Iv(a * e, a * c)
        if c.numerator >= 0:
            return _Iv(a * e, b * e)
        if e.numerator <= 0:
            return _Iv(b * c, a * c)
        return _Iv(min(a * e, b * c), max(a * c, b * e))

    __rmul__ = __mul__

    def mag(self) -> Q:
        return max(abs(self.lo), abs(self.hi))


def _qsum(vals) -> Q:
    """The exact sum of Fractions (and ints), terms with one denominator added as integers first."""
    by: dict = {}
    for v in vals:
        dn = v.denominator
        by[dn] = by.get(dn, 0) + v.numerator
    if len(by) == 1:
        (dn, num), = by.items()
        return Q(num, dn)
    return sum((Q(num, dn) for dn, num in by.items()), Q(0))


def _isum(items) -> _Iv:
    """The sum of intervals and exact numbers: [sum of the lower ends, sum of the upper ends]."""
    los, his = [], []
    point = True
    for v in items:
        if isinstance(v, _Iv):
            los.append(v.lo)
            his.append(v.hi)
            point = point and v.lo is v.hi
        else:
            v = Q(v)
            los.append(v)
            his.append(v)
    lo = _qsum(los)
    return _Iv(lo) if point else _Iv(lo, _qsum(his))


class _Ball:
    """The narrow parametrisation of a ball certificate: cluster g has input weight
    u_g = sum_t theta_gt B_gt (B_g a basis of its kinks' null space, theta_g fixed at its gauge
    indices) and output c_g; its copies are (gamma_l u_g, beta_l c_g / gamma_l).  On the activation
    pattern, h_ig = s_ig (u_g . x_i) is linear in theta_g, so F = grad L in the unknowns
    xi = (free theta_g, c_g)_g and its Jacobian have closed forms.

    A cluster's gauge is one index t0 (the rescaling gauge) or, for a member of a GL group
    (evidence ``gl_groups``, docs/theory.md §10.6), the group's column list S: r = |S| >= 2
    single-neuron, kink-free clusters with one strict sign vector, each fixing its weights on S to
    its centre values, which form an invertible r x r block C.  A group with r > d members (a
    "linear block", evidence ``fixed_outputs``) fixes all d columns of every member and, for the
    r - d members named there, also their outputs c (the point's A rows): its unknowns are the
    outputs of the d free members, whose d x d block of input weights is invertible."""

    def __init__(self, inst: _Instance, ev: dict):
        self.inst = inst
        n, d, k, m = inst.n, inst.d, inst.k, inst.m
        cl = ev.get("clusters")
        _need(isinstance(cl, list) and cl, "ball: clusters missing")
        zero, dead = ev.get("zero"), ev.get("dead")
        _need(isinstance(zero, list) and isinstance(dead, list), "ball: zero / dead lists missing")
        seen = []
        self.clusters = []
        for g, c in enumerate(cl):
            _need(isinstance(c, dict), f"ball: cluster {g} malformed")
            ns = c.get("neurons")
            _need(isinstance(ns, list) and ns and all(isinstance(j, int) and not isinstance(j, bool)
                                                      and 0 <= j < m for j in ns), f"ball: cluster {g} neurons")
            gam = _vec(c.get("gamma"), f"cluster {g} gamma", len(ns))
            beta = _vec(c.get("beta"), f"cluster {g} beta", len(ns))
            _need(all(v > 0 for v in gam) and all(v > 0 for v in beta) and sum(beta, Q(0)) == 1,
                  f"ball: cluster {g} needs gamma > 0, beta > 0, sum beta = 1")
            B = _mat(c.get("basis"), f"cluster {g} basis", d)
            p = len(B)
            t0 = c.get("gauge")
            if type(t0) is int:
                _need(0 <= t0 < p, f"ball: cluster {g} gauge")
                gv = _q(c.get("gauge_value"), f"cluster {g} gauge_value")
                _need(gv != 0, f"ball: cluster {g} gauge value is 0")
                fixed = {t0: gv}
            else:      # a set gauge: only as a member of a GL group, validated with the groups below
                _need(isinstance(t0, list), f"ball: cluster {g} gauge must be an index (or a GL group's column list)")
                fixed = None
            K = [i for i, x in enumerate(inst.X) if any(x) and all(_dot(b, x) == 0 for b in B)]
            _need(_rank(B, d) == p and p == d - len(K) and _rank([inst.X[i] for i in K], d) == len(K),
                  f"ball: cluster {g}: the basis must span exactly the null space of independent kink points")
            if "kinks" in c:      # optional record of the kink points; when given it must be K exactly
                _need(isinstance(c["kinks"], list) and all(type(i) is int for i in c["kinks"]) and c["kinks"] == K,
                      f"ball: cluster {g}: recorded kinks {_short(repr(c['kinks']))} differ from the kink points "
                      f"{K} of its basis")
            self.clusters.append({"neurons": ns, "gamma": gam, "beta": beta, "B": B, "fixed": fixed, "K": K,
                                  "cfix": None})
            if fixed is not None:        # a single gauge index: also under its own names (t0, value)
                self.clusters[-1].update(t0=t0, gv=gv)
            seen += ns
        self.gl_groups = self._gl_groups(ev, cl)
        self._trades(ev)
        self.rank_blocks = self._constant_rank(ev)
        for j in zero:
            _need(type(j) is int and 0 <= j < m and all(v == 0 for v in inst.W[j]) and
                  all(v == 0 for v in inst.A[j]), f"ball: zero neuron {j} is not w = 0, a = 0")
        for j in dead:
            _need(type(j) is int and 0 <= j < m and inst.am == 0 and any(inst.W[j]) and
                  all(inst.Z[i][j] < 0 for i in range(n) if any(inst.X[i])), f"ball: neuron {j} is not dead")
        _need(sorted(seen + zero + dead) == list(range(m)), "ball: every neuron must be in exactly one of "
                                                            "the clusters, the zero or the dead neurons")
        self.N = sum(len(ft) + len(fc) for ft, fc in map(self.unknowns, range(len(self.clusters))))
        center = _vec(ev.get("center"), "ball center", self.N)
        self.center = center
        # the certificate's point is the wide point at the center
        for g, c in enumerate(self.clusters):
            th, cg = self.unpack(center, g)
            u = [sum((t * b[q] for t, b in zip(th, c["B"])), Q(0)) for q in range(d)]
            for j, gl, bl in zip(c["neurons"], c["gamma"], c["beta"]):
                _need(inst.W[j] == [gl * v for v in u] and inst.A[j] == [bl * v / gl for v in cg],
                      f"ball: neuron {j} is not copy (gamma u_g, beta c_g / gamma) of cluster {g} at the center")
            # strict activation pattern at the center
            c["s"], c["sign"] = [], []
            for i, x in enumerate(inst.X):
                z = _dot(u, x)
                _need(i in c["K"] or z != 0 or not any(x), f"ball: cluster {g} has an unexpected kink at point {i}")
                c["s"].append(inst.dsig(z) if z != 0 else Q(0))
                c["sign"].append(1 if z > 0 else (-1 if z < 0 else 0))
            c["y"] = [[c["s"][i] * _dot(b, x) for b in c["B"]] for i, x in enumerate(inst.X)]
        for q, (members, _) in enumerate(self.gl_groups):
            _need(all(self.clusters[h]["sign"] == self.clusters[members[0]]["sign"] for h in members),
                  f"ball: gl_groups[{q}]: its clusters do not share one sign vector at the center")
        if self.rank_blocks is not None:
            R = self.rank_bound(self.rank_blocks)
            _need(R == self.N, f"ball: constant_rank: the slice has {self.N} unknowns but the blocks bound the "
                               f"rank of the output map by {R}; they must be equal")

    def rank_bound(self, blocks) -> int:
        """sum over the blocks b of k alpha + beta (gamma - alpha), gamma = rank [y_g]_{g in b} (the n x
        sum p_g matrix of the members' pattern columns), alpha = min(|b|, gamma), beta = min(|b|, k): an
        upper bound on the rank of the derivative of the outputs on the data, at every point of the
        pattern piece (docs/theory.md §10.8, Lemma R)."""
        k, total = self.inst.k, 0
        for b in blocks:
            rows = [[v for g in b for v in self.clusters[g]["y"][i]] for i in range(self.inst.n)]
            gam = _rank(rows, len(rows[0]) if rows else 0)
            al, be = min(len(b), gam), min(len(b), k)
            total += k * al + be * (gam - al)
        return total

    def _constant_rank(self, ev: dict):
        """Validate evidence ``constant_rank`` (docs/theory.md §10.8) and fix the coordinates it names:
        the slice keeps exactly as many unknowns as the blocks' rank bound, and the certificate then
        proves the output map's derivative on the slice of full rank on the box (``gram``).  Returns the
        blocks, or None without the evidence."""
        if "constant_rank" not in ev:
            return None
        inst = self.inst
        cr = ev["constant_rank"]
        _need(isinstance(cr, dict) and set(cr) == {"blocks", "fixed_inputs", "fixed_outputs", "gram"},
              "ball: constant_rank must be an object with exactly the keys blocks, fixed_inputs, fixed_outputs, gram")
        _need("gl_groups" not in ev and "trades" not in ev,
              "ball: constant_rank replaces gl_groups and trades; a certificate names one or the other")
        G = len(self.clusters)
        for g, c in enumerate(self.clusters):
            _need(len(c["neurons"]) == 1 and c["gamma"] == [1] and c["beta"] == [1] and "t0" in c,
                  f"ball: constant_rank: cluster {g} must be one neuron with gamma = beta = 1 and a single gauge")
        blocks = cr["blocks"]
        _need(isinstance(blocks, list) and all(isinstance(b, list) and b and all(type(g) is int for g in b)
                                               for b in blocks)
              and sorted(g for b in blocks for g in b) == list(range(G)),
              "ball: constant_rank: blocks must partition the clusters (every cluster index in exactly one block)")
        fi, fo = cr["fixed_inputs"], cr["fixed_outputs"]
        _need(isinstance(fi, list) and isinstance(fo, list), "ball: constant_rank: fixed_inputs / fixed_outputs lists")
        seen = set()
        for a, it in enumerate(fi):
            _need(isinstance(it, list) and len(it) == 3 and type(it[0]) is int and 0 <= it[0] < G
                  and type(it[1]) is int and 0 <= it[1] < len(self.clusters[it[0]]["B"])
                  and it[1] not in self.clusters[it[0]]["fixed"] and ("w", it[0], it[1]) not in seen,
                  f"ball: constant_rank: fixed_inputs[{a}] must be [cluster, free basis index, value], once")
            seen.add(("w", it[0], it[1]))
        for a, it in enumerate(fo):
            _need(isinstance(it, list) and len(it) == 3 and type(it[0]) is int and 0 <= it[0] < G
                  and type(it[1]) is int and 0 <= it[1] < inst.k and ("a", it[0], it[1]) not in seen,
                  f"ball: constant_rank: fixed_outputs[{a}] must be [cluster, output index, value], once")
            seen.add(("a", it[0], it[1]))
        for a, (g, t, v) in enumerate(fi):
            self.clusters[g]["fixed"][t] = _q(v, f"constant_rank fixed_inputs[{a}] value")
        for a, (g, cc, v) in enumerate(fo):
            c = self.clusters[g]
            c["cfix"] = dict(c["cfix"] or {})
            c["cfix"][cc] = _q(v, f"constant_rank fixed_outputs[{a}] value")
        self.gram_bound = _q(cr["gram"], "constant_rank gram")
        _need(self.gram_bound > 0, "ball: constant_rank: gram must be > 0")
        return [list(b) for b in blocks]

    def _gl_groups(self, ev: dict, cl: list) -> list:
        """Validate evidence ``gl_groups`` (docs/theory.md §10.6) and set each member's fixed
        coordinates; every other cluster must have a single gauge index.  Returns [(members, S)]."""
        inst, d = self.inst, self.inst.d
        out, owner = [], {}
        if "gl_groups" in ev:
            grs = ev["gl_groups"]
            _need(isinstance(grs, list) and grs, "ball: gl_groups, when present, must be a non-empty list")
            for q, gr in enumerate(grs):
                _need(isinstance(gr, dict) and set(gr) in ({"clusters", "columns"}, {"clusters", "columns", "fixed_outputs"}),
                      f"ball: gl_groups[{q}] must be an object with exactly the keys clusters and columns "
                      f"(and fixed_outputs for a group of more than d clusters)")
                mem, S = gr["clusters"], gr["columns"]
                _need(isinstance(mem, list) and all(type(h) is int and 0 <= h < len(self.clusters) for h in mem)
                      and len(set(mem)) == len(mem), f"ball: gl_groups[{q}]: clusters must be distinct cluster indices")
                _need(isinstance(S, list) and all(type(t) is int and 0 <= t < d for t in S) and len(set(S)) == len(S),
                      f"ball: gl_groups[{q}]: columns must be distinct coordinate indices < d")
                fo = gr.get("fixed_outputs")
                if "fixed_outputs" in gr:      # a linear block (docs/theory.md §10.6 (f)): r > d members
                    _need(len(mem) > d, f"ball: gl_groups[{q}]: fixed_outputs only in a group of r > d = {d} clusters")
                    _need(S == list(range(d)), f"ball: gl_groups[{q}]: with fixed_outputs the columns must be all "
                                               f"of 0 .. {d - 1}, in order")
                    _need(isinstance(fo, list) and all(type(h) is int and h in mem for h in fo) and len(set(fo)) == len(fo)
                          and len(fo) == len(mem) - d, f"ball: gl_groups[{q}]: fixed_outputs must be exactly "
                                                       f"r - d = {len(mem) - d} distinct members of the group")
                    free_mem = [h for h in mem if h not in fo]
                else:
                    fo, free_mem = [], mem
                r = len(S)
                _need(r >= 2 or fo, f"ball: gl_groups[{q}]: needs r = |columns| >= 2 clusters, exactly r")
                _need(len(free_mem) == r, f"ball: gl_groups[{q}]: needs r = |columns| >= 2 clusters, exactly r")
                for h in mem:
                    _need(h not in owner, f"ball: cluster {h} is in two gl_groups")
                    owner[h] = q
                    c = self.clusters[h]
                    _need(len(c["neurons"]) == 1 and c["gamma"] == [1] and c["beta"] == [1],
                          f"ball: gl_groups[{q}]: cluster {h} must be one neuron with gamma = beta = 1")
                    _need(not c["K"] and c["B"] == [[Q(int(a == b)) for b in range(d)] for a in range(d)],
                          f"ball: gl_groups[{q}]: cluster {h} must have no kinks and the identity basis")
                    gs = cl[h]["gauge"]
                    _need(type(gs) is list and all(type(t) is int for t in gs) and gs == S,
                          f"ball: gl_groups[{q}]: cluster {h} must fix exactly the columns {S} (gauge = columns)")
                    vals = _vec(cl[h].get("gauge_value"), f"cluster {h} gauge_value", r)
                    j = c["neurons"][0]
                    _need(vals == [inst.W[j][t] for t in S],
                          f"ball: gl_groups[{q}]: cluster {h} gauge values differ from neuron {j}'s weights on {S}")
                    c["fixed"] = dict(zip(S, vals))
                    if h in fo:        # no output unknowns: c_g is the point's A row
                        c["cfix"] = dict(enumerate(inst.A[j]))
                Cb = [[inst.W[self.clusters[h]["neurons"][0]][t] for t in S] for h in free_mem]
                _need(_rank(Cb, r) == r, f"ball: gl_groups[{q}]: the fixed block C is singular")
                out.append((list(mem), list(S)))
        for h, c in enumerate(self.clusters):
            _need(h in owner or c["fixed"] is not None,
                  f"ball: cluster {h}: a list gauge is allowed only for a member of a gl group")
        return out

    def _trades(self, ev: dict) -> None:
        """Validate evidence ``trades`` (docs/theory.md §10.6 (g)) and fix the coordinates it names.

        An *input trade* moves the free input weight of a kink-free single-gauge cluster g along v
        (basis coordinates, v_t0 arbitrary) while the outputs of the *absorbers* -- the trade clusters
        whose input weights their group fixes -- take up the change: s_gi (v . x_i) = sum_h zeta_h h_hi
        at every data point exactly, with h_hi = s_hi (u_h . x_i); the 2 x 2 block [u_g; v] on the
        gauge column t0 and the newly ``fixed`` column t1 must be invertible, and u_g's coordinate t1
        is then fixed at its centre value.  The trade ``clusters`` T have no kinks and, once the input
        trades are applied, every input coordinate fixed (by their group, by the single gauge when
        d = 1, or by the gauge and their own input trade when d = 2), so on the whole slice their
        contributions h_g are the centre's constants and the outputs are linear in their c_g; zeta is
        0 on the members of T that are input-trade clusters.  An *output trade* z (one coefficient
        per cluster of T) has sum_g z_g h_gi = 0 at every data point exactly; the block of the vectors
        on the ``fixed`` clusters must be invertible, and those clusters' outputs are then fixed at
        the point's A rows."""
        if "trades" not in ev:
            return
        inst, d = self.inst, self.inst.d
        tr = ev["trades"]
        _need(isinstance(tr, dict) and set(tr) == {"clusters", "fixed", "vectors", "inputs"},
              "ball: trades must be an object with exactly the keys clusters, fixed, vectors and inputs")
        mem, fx, vecs, ins = tr["clusters"], tr["fixed"], tr["vectors"], tr["inputs"]
        _need(isinstance(mem, list) and mem and all(type(h) is int and 0 <= h < len(self.clusters) for h in mem)
              and len(set(mem)) == len(mem), "ball: trades: clusters must be distinct cluster indices")
        _need(isinstance(fx, list) and all(type(h) is int and h in mem for h in fx) and len(set(fx)) == len(fx),
              "ball: trades: fixed must be distinct clusters of its cluster list")
        _need(isinstance(vecs, list) and len(vecs) == len(fx), "ball: trades: one vector per fixed cluster")
        _need(isinstance(ins, list) and (fx or ins), "ball: trades: inputs must be a list; no trade is named")
        Z = [_vec(v, f"trades vector {a}", len(mem)) for a, v in enumerate(vecs)]
        T = len(mem)

        def h_row(j):
            out = []
            for x in inst.X:
                z = _dot(inst.W[j], x)
                out.append(inst.dsig(z) * z if z != 0 else Q(0))
            return out
        hs = []
        for h in mem:
            c = self.clusters[h]
            _need(len(c["neurons"]) == 1 and c["gamma"] == [1] and c["beta"] == [1] and not c["K"]
                  and c["cfix"] is None,
                  f"ball: trades: cluster {h} must be one kink-free neuron with gamma = beta = 1 and free outputs")
            j = c["neurons"][0]
            _need(all(_dot(inst.W[j], x) != 0 for x in inst.X if any(x)),
                  f"ball: trades: cluster {h} has a data point on its kink")
            hs.append(h_row(j))
        seen = set()
        absorbers = [b for b, h in enumerate(mem) if len(self.clusters[h]["fixed"]) == len(self.clusters[h]["B"])]
        for a, it in enumerate(ins):
            _need(isinstance(it, dict) and set(it) == {"cluster", "direction", "fixed", "combination"},
                  f"ball: trades: inputs[{a}] must have exactly the keys cluster, direction, fixed, combination")
            g = it["cluster"]
            _need(type(g) is int and 0 <= g < len(self.clusters) and g not in seen,
                  f"ball: trades: inputs[{a}]: cluster must be a cluster index, once")
            seen.add(g)
            c = self.clusters[g]
            _need(len(c["neurons"]) == 1 and c["gamma"] == [1] and c["beta"] == [1] and not c["K"]
                  and "t0" in c and len(c["fixed"]) == 1 and c["cfix"] is None
                  and c["B"] == [[Q(int(a_ == b_)) for b_ in range(d)] for a_ in range(d)],
                  f"ball: trades: inputs[{a}]: cluster {g} must be one kink-free neuron with gamma = beta = 1, "
                  f"the identity basis, a single gauge index and free outputs")
            p = len(c["B"])
            v = _vec(it["direction"], f"trades inputs[{a}] direction", p)
            t1, t0 = it["fixed"], c["t0"]
            _need(type(t1) is int and 0 <= t1 < p and t1 != t0,
                  f"ball: trades: inputs[{a}]: fixed must be a free basis index of cluster {g}")
            zeta = _vec(it["combination"], f"trades inputs[{a}] combination", T)
            _need(all(zeta[b] == 0 for b in range(T) if b not in absorbers),
                  f"ball: trades: inputs[{a}]: only clusters whose group fixes their input weights absorb a move")
            j = c["neurons"][0]
            u = inst.W[j]
            for i, x in enumerate(inst.X):
                z = _dot(u, x)
                lhs = inst.dsig(z) * _dot(v, x) if z != 0 else Q(0)
                _need(lhs == sum((zeta[b] * hs[b][i] for b in absorbers), Q(0)),
                      f"ball: trades: inputs[{a}]: the move of cluster {g} along its direction is not absorbed "
                      f"by the trade clusters at data point {i}")
            _need(u[t0] * v[t1] - u[t1] * v[t0] != 0,
                  f"ball: trades: inputs[{a}]: the direction and cluster {g}'s input weight are dependent on the "
                  f"columns {t0}, {t1} (no rescaling and move reach every nearby weight there)")
        for it in ins:                      # all validated: fix the coordinates t1
            c = self.clusters[it["cluster"]]
            c["fixed"][it["fixed"]] = inst.W[c["neurons"][0]][it["fixed"]]
        for h in mem:
            c = self.clusters[h]
            _need(len(c["fixed"]) == len(c["B"]),
                  f"ball: trades: cluster {h} must have every input coordinate fixed (by its group, its gauge or "
                  f"its input trade)")
        for a, z in enumerate(Z):
            _need(all(sum((z[b] * hs[b][i] for b in range(T)), Q(0)) == 0 for i in range(inst.n)),
                  f"ball: trades: vector {a} changes the outputs (sum_g z_g h_gi != 0 at some data point)")
        pos = [mem.index(h) for h in fx]
        _need(_rank([[z[p] for p in pos] for z in Z], len(fx)) == len(fx),
              "ball: trades: the vectors' block on the fixed clusters is singular")
        for h in fx:
            self.clusters[h]["cfix"] = dict(enumerate(inst.A[self.clusters[h]["neurons"][0]]))

    def unknowns(self, g):
        """(free basis indices, free output indices) of cluster g: its share of xi, in order.  ``cfix``
        is None (every output free) or {output index: the point's value} for the fixed ones."""
        c = self.clusters[g]
        fx = c["cfix"] or {}
        return ([t for t in range(len(c["B"])) if t not in c["fixed"]],
                [cc for cc in range(self.inst.k) if cc not in fx])

    def unpack(self, xi, g):
        pos = 0
        iv = bool(xi) and isinstance(xi[0], _Iv)
        const = (lambda v: _Iv(v)) if iv else (lambda v: v)
        for h, c in enumerate(self.clusters):
            ft, fc = self.unknowns(h)
            nf, nc = len(ft), len(fc)
            if h == g:
                fx, free = c["fixed"], iter(xi[pos:pos + nf])
                th = [const(fx[t]) if t in fx else next(free) for t in range(len(c["B"]))]
                cf, freec = c["cfix"] or {}, iter(xi[pos + nf:pos + nf + nc])
                cg = [const(cf[cc]) if cc in cf else next(freec) for cc in range(self.inst.k)]
                return th, cg
            pos += nf + nc
        raise IndexError(g)

    def evaluate(self, xi):
        """h, residuals, F and J at an interval vector xi (degenerate intervals: exact values)."""
        if all(isinstance(v, _Iv) and v.lo is v.hi for v in xi):
            return self._evaluate_point(xi)
        return self._evaluate_box(xi)

    def _ints(self, g):
        """Cluster g's y (n x p) as integers over one denominator: (rows, denominator), kept."""
        c = self.clusters[g]
        if "yi" not in c:
            D = lcm(*[v.denominator for row in c["y"] for v in row]) if c["y"] and c["y"][0] else 1
            c["yi"] = ([[v.numerator * (D // v.denominator) for v in row] for row in c["y"]], D)
        return c["yi"]

    def _evaluate_point(self, xi):
        """``evaluate`` at a point, in exact numbers: the same h, E, F and J as the interval formulas
        give at degenerate intervals, with the sums over the data taken once where a factor does not
        depend on the data point (sum_i c h_i y_i = c sum_i h_i y_i, and h_i = sum_t theta_t y_it)."""
        inst = self.inst
        n, k = inst.n, inst.k
        G = len(self.clusters)
        TH, C = zip(*[self.unpack(xi, g) for g in range(G)])
        th = [[v.lo for v in TH[g]] for g in range(G)]
        cv = [[v.lo for v in C[g]] for g in range(G)]
        ys = [c["y"] for c in self.clusters]
        yi = [self._ints(g) for g in range(G)]
        hq = [[_qsum([t * y for t, y in zip(th[g], ys[g][i])]) for i in range(n)] for g in range(G)]
        Eq = [[_qsum([cv[g][c] * hq[g][i] for g in range(G)]) - inst.Y[i][c] for c in range(k)] for i in range(n)]
        inv = Q(1, n)
        idx, layout = 0, []
        for g in range(G):
            ft, fc = self.unknowns(g)
            th_idx = {t: idx + a for a, t in enumerate(ft)}
            idx += len(ft)
            c_idx = {cc: idx + a for a, cc in enumerate(fc)}
            idx += len(fc)
            layout.append((th_idx, c_idx))
        # h of each cluster over one denominator (for the sums h_g . h_g2)
        hi = []
        for g in range(G):
            D = lcm(*[v.denominator for v in hq[g]]) if n else 1
            hi.append(([v.numerator * (D // v.denominator) for v in hq[g]], D))

        def syy(g, t, g2, t2):          # sum_i y_g[i][t] y_g2[i][t2], exactly
            (A1, D1), (A2, D2) = yi[g], yi[g2]
            return Q(sum(A1[i][t] * A2[i][t2] for i in range(n)), D1 * D2)
        F = [None] * self.N
        J = [[None] * self.N for _ in range(self.N)]
        ec = [[_qsum([Eq[i][c] * cv[g][c] for c in range(k)]) for i in range(n)] for g in range(G)]
        for g, (th_idx, c_idx) in enumerate(layout):
            y = ys[g]
            for t, a in th_idx.items():
                F[a] = _Iv(_qsum([ec[g][i] * y[i][t] for i in range(n)]) * inv)
            for c, a in c_idx.items():
                F[a] = _Iv(_qsum([Eq[i][c] * hq[g][i] for i in range(n)]) * inv)
        for g, (th_g, c_g) in enumerate(layout):
            yg = ys[g]
            pg = len(self.clusters[g]["B"])
            # sum_i E_ic y_g[i][t], for the diagonal blocks
            ey = {(t, c): _qsum([Eq[i][c] * yg[i][t] for i in range(n)]) for t in th_g for c in range(k)}
            for g2, (th_2, c_2) in enumerate(layout):
                p2 = len(self.clusters[g2]["B"])
                cc = _qsum([cv[g][c] * cv[g2][c] for c in range(k)])
                S = {(t, t2): syy(g, t, g2, t2) for t in th_g for t2 in range(p2)}
                for t, a in th_g.items():
                    for t2, b in th_2.items():
                        J[a][b] = _Iv(cc * S[t, t2] * inv)
                    if c_2:
                        hy = _qsum([th[g2][t2] * S[t, t2] for t2 in range(p2)])    # sum_i h_g2[i] y_g[i][t]
                    for c, b in c_2.items():
                        v = cv[g][c] * hy
                        if g == g2:
                            v = v + ey[t, c]
                        J[a][b] = _Iv(v * inv)
                        J[b][a] = J[a][b]
                if c_g and c_2:
                    (H1, D1), (H2, D2) = hi[g], hi[g2]
                    hh = Q(sum(u * w for u, w in zip(H1, H2)), D1 * D2) * inv
                    zero = _Iv(Q(0))
                    for c, a in c_g.items():
                        for c2, b in c_2.items():
                            J[a][b] = _Iv(hh) if c == c2 else zero
        TH = [list(v) for v in TH]
        C = [list(v) for v in C]
        h = [[_Iv(v) for v in row] for row in hq]
        E = [[_Iv(v) for v in row] for row in Eq]
        return TH, C, h, E, F, J

    def _evaluate_box(self, xi, gram=None):
        """``evaluate`` over an interval vector: every term an interval, as the formulas read.  With a
        list ``gram``, it also receives the rows of the Gauss-Newton part of J (J without the residual
        term sum_i E_ic y_g[i][t] of a cluster's own theta-c entries): (1/n) (DF V)^T (DF V), DF the
        derivative of the outputs on the data and V the slice's linear part (docs/theory.md §10.8)."""
        inst = self.inst
        n, k = inst.n, inst.k
        G = len(self.clusters)
        TH, C = zip(*[self.unpack(xi, g) for g in range(G)])
        h = [[_isum(t * y for t, y in zip(TH[g], self.clusters[g]["y"][i])) for i in range(n)] for g in range(G)]
        E = [[_isum(C[g][c] * h[g][i] for g in range(G)) - inst.Y[i][c] for c in range(k)] for i in range(n)]
        inv = Q(1, n)
        idx, layout = 0, []
        for g in range(G):
            ft, fc = self.unknowns(g)        # fixed outputs have no c unknowns (not in c_idx)
            th_idx = {t: idx + a for a, t in enumerate(ft)}
            idx += len(ft)
            c_idx = {cc: idx + a for a, cc in enumerate(fc)}
            idx += len(fc)
            layout.append((th_idx, c_idx))
        F = [None] * self.N
        J = [[None] * self.N for _ in range(self.N)]
        Gm = [[None] * self.N for _ in range(self.N)] if gram is not None else None
        ec = [[_isum(E[i][c] * C[g][c] for c in range(k)) for i in range(n)] for g in range(G)]
        for g, (th_idx, c_idx) in enumerate(layout):
            y = self.clusters[g]["y"]
            for t, a in th_idx.items():
                F[a] = _isum(ec[g][i] * y[i][t] for i in range(n)) * inv
            for c, a in c_idx.items():
                F[a] = _isum(E[i][c] * h[g][i] for i in range(n)) * inv
        for g, (th_g, c_g) in enumerate(layout):
            yg = self.clusters[g]["y"]
            for g2, (th_2, c_2) in enumerate(layout):
                y2 = self.clusters[g2]["y"]
                cc = _isum(C[g][c] * C[g2][c] for c in range(k))
                for t, a in th_g.items():
                    for t2, b in th_2.items():
                        J[a][b] = cc * _isum(yg[i][t] * y2[i][t2] for i in range(n)) * inv
                    for c, b in c_2.items():
                        v = _isum(C[g][c] * h[g2][i] * yg[i][t] for i in range(n))
                        if gram is not None:
                            Gm[a][b] = Gm[b][a] = v * inv
                        if g == g2:
                            v = v + _isum(E[i][c] * yg[i][t] for i in range(n))
                        J[a][b] = v * inv
                        J[b][a] = J[a][b]
                for c, a in c_g.items():
                    for c2, b in c_2.items():
                        J[a][b] = (_isum(h[g][i] * h[g2][i] for i in range(n)) * inv if c == c2 else _Iv(Q(0)))
        if gram is not None:        # every entry but the theta-c ones (set above) is J's
            gram.extend([Gm[a][b] if Gm[a][b] is not None else J[a][b] for b in range(self.N)] for a in range(self.N))
        return TH, C, h, E, F, J


def ball_jacobian_at_center(cert: dict) -> list[list[Q]]:
    """Lower ends of the interval Jacobian of the narrow stationarity equations at the box center
    (exact there): what a proposer needs to build the preconditioner of a ball certificate.  Raises
    Rejected when the structure of the certificate is invalid."""
    _need(isinstance(cert, dict), "certificate must be a JSON object")
    inst = _Instance(cert)
    _need(inst.c is None, "ball: the point has an output bias c, which ball certificates do not cover yet")
    ev = cert.get("evidence")
    _need(isinstance(ev, dict), "evidence missing")
    ball = _Ball(inst, ev)
    J = ball.evaluate([_Iv(v) for v in ball.center])[5]
    return [[v.lo for v in row] for row in J]


def _ball_min_structure(ball: _Ball, ev: dict) -> Q:
    """The extra structure of a local_min ball certificate (docs/theory.md §10.5): a plain narrow
    network (every cluster one neuron, no zero neuron, no escape neuron claimed) and the curvature
    bound mu > 0 it claims.  Data points on a cluster's kink are allowed (the basis spans the null
    space of those independent points); check_ball_certificate then proves (S2) strictly across them."""
    _need("escape" not in ev, "ball: a local_min ball certificate names no escape neurons (they prove saddles only)")
    _need(ev["zero"] == [], "ball: a local_min ball certificate has no zero neurons (w = 0 lies on every kink)")
    for g, c in enumerate(ball.clusters):
        _need(len(c["neurons"]) == 1, f"ball: local_min needs one neuron per cluster (cluster {g} has copies)")
    mu = _q(ev.get("curvature"), "curvature")
    _need(mu > 0, "ball: curvature must be > 0")
    return mu


def _ball_kink_multipliers(ball: _Ball, g: int, C, E) -> tuple[list, list]:
    """(lambda, gamma) of cluster g's kink points, as intervals over the box whose c_g and residuals
    are C[g] and E: b_g = (1/n) sum_i (c_g . e_i) s_i x_i (slope alpha_- on the kink points) is the
    one-sided gradient in u_g, lambda = G_K^{-1} X_K b_g (G_K the Gram matrix of the kink points) and
    gamma_i = (alpha_+ - alpha_-)(c_g . e_i)/n.  lambda_p (+ gamma_p) is the derivative of the loss
    along the direction of u_g that moves z_p = u_g . x_p off the kink downwards (upwards) and keeps
    the other kink points on theirs (docs/theory.md §10.4 item 4, §10.5)."""
    inst, c = ball.inst, ball.clusters[g]
    n, d, k = inst.n, inst.d, inst.k
    XK = [inst.X[i] for i in c["K"]]
    bvec = []
    for q in range(d):
        acc = _Iv(Q(0))
        for i, x in enumerate(inst.X):
            if x[q] == 0:
                continue
            ce = _isum(C[g][cc] * E[i][cc] for cc in range(k))
            slope = inst.am if i in c["K"] else c["s"][i]
            acc = acc + ce * (slope * x[q])
        bvec.append(acc * Q(1, n))
    Gm = [[_dot(u, v) for v in XK] for u in XK]
    Ginv = _inverse(Gm)
    proj = [_isum(bvec[q] * XK[p][q] for q in range(d)) for p in range(len(XK))]
    lam = [_isum(proj[p2] * Ginv[p][p2] for p2 in range(len(XK))) for p in range(len(XK))]
    gam = [_isum(C[g][cc] * E[i][cc] for cc in range(k)) * ((inst.ap - inst.am) * Q(1, n)) for i in c["K"]]
    return lam, gam


def _int_pos_def(K: list) -> bool:
    """An integer symmetric matrix is positive definite iff every leading principal minor is > 0
    (Sylvester); fraction-free (Bareiss) elimination without pivoting produces them as its pivots."""
    M = [list(r) for r in K]
    n, prev = len(M), 1
    for p in range(n):
        piv = M[p][p]
        if piv <= 0:
            return False
        Mp = M[p]
        for i in range(p + 1, n):
            Mi, f = M[i], Mp[i]                 # the Schur complements stay symmetric: upper triangle only
            for j in range(i, n):
                Mi[j] = (Mi[j] * piv - f * Mp[j]) // prev
        prev = piv
    return True


def _ball_positive_definite(J: list, mu: Q) -> bool:
    """Every real symmetric matrix H with H_ab in J_ab (and in J_ba) for all a, b has lambda_min(H) > mu.

    With the hull [lo_ab, hi_ab] of J_ab and J_ba, a centre M on the grid 2^-b Z (symmetric by
    construction; any grid is sound, b only trades the rounding error against the size of the
    integers) and R_ab = max(hi_ab - M_ab, M_ab - lo_ab): H = M + E with |E_ab| <= R_ab, so
    ||E||_2 <= ||E||_inf <= delta = max_a sum_b R_ab (E symmetric).  Weyl: lambda_min(H) >=
    lambda_min(M) - delta.  With s >= delta + mu on the grid, 2^b (M - s I) is an integer matrix;
    if it is positive definite, lambda_min(M) > s >= delta + mu."""
    N = len(J)
    bits = max(32, (N * mu.denominator // max(mu.numerator, 1)).bit_length() + 24)
    S = 1 << bits
    K = [[0] * N for _ in range(N)]
    delta = [Q(0)] * N
    for a in range(N):
        for b in range(a, N):
            lo, hi = min(J[a][b].lo, J[b][a].lo), max(J[a][b].hi, J[b][a].hi)
            k = round((lo + hi) / 2 * S)
            K[a][b] = K[b][a] = k
            r = max(hi - Q(k, S), Q(k, S) - lo)
            delta[a] += r
            if b != a:
                delta[b] += r
    up = (max(delta) + mu) * S
    shift = -(-up.numerator // up.denominator)          # ceil: s = shift / 2^b >= delta + mu
    for a in range(N):
        K[a][a] -= shift
    return _int_pos_def(K)


def check_ball_certificate(cert: dict) -> str:
    """An exact stationary point theta* within the certificate's box (Krawczyk) that is a saddle (a
    zero escape neuron) or a local minimum (Morse-Bott on the gauge slice, docs/theory.md §10.5); in
    both, GL groups, linear blocks and trades (§10.6) may replace single gauges: their stationarity
    arguments (§10.6 (e)-(g)) do not depend on the verdict."""
    pb, pt = cert.get("problem"), cert.get("point")
    blob = json.dumps({"problem": pb, "point": pt}, sort_keys=True, separators=(",", ":"))
    _need(cert.get("fingerprint") == hashlib.sha256(blob.encode()).hexdigest(),
          "fingerprint does not match problem and point (data or weights changed)")
    verdict = cert.get("verdict")
    _need(verdict in ("saddle", "local_min"), "ball certificates prove saddles or local minima only")
    inst = _Instance(cert)
    _need(inst.c is None, "ball: the point has an output bias c, which ball certificates do not cover yet")
    ev = cert.get("evidence")
    _need(isinstance(ev, dict), "evidence missing")
    ball = _Ball(inst, ev)
    if verdict == "local_min":
        _need("negative_curvature" not in ev, "ball: a local_min ball certificate names no negative-curvature direction")
        mu = _ball_min_structure(ball, ev)
    else:
        _need("curvature" not in ev, "ball: a saddle ball certificate claims no curvature bound")
        _need(ball.rank_blocks is None, "ball: constant_rank proves local minima only")
    N, n, d, k = ball.N, inst.n, inst.d, inst.k
    rho = _q(ev.get("radius"), "radius")
    _need(rho > 0, "ball: radius must be > 0")
    Y = _mat(ev.get("preconditioner"), "preconditioner", N)
    _need(len(Y) == N, "ball: preconditioner must be N x N")
    # F at the center, exactly
    F0 = [v.lo for v in ball.evaluate([_Iv(v) for v in ball.center])[4]]
    box = [_Iv(v - rho, v + rho) for v in ball.center]
    gram = [] if ball.rank_blocks is not None else None
    TH, C, h, E, F, J = ball._evaluate_box(box, gram=gram) if gram is not None else ball.evaluate(box)
    # Krawczyk: K = x - Y F(x) + (I - Y J(B)) (B - x) inside the open box => a unique zero of F in B
    YF = [sum((Y[a][b] * F0[b] for b in range(N)), Q(0)) for a in range(N)]
    for a in range(N):
        row = [_isum(J[c][b] * Y[a][c] for c in range(N)) for b in range(N)]
        M = [(_Iv(Q(1)) if a == b else _Iv(Q(0))) - row[b] for b in range(N)]
        spread = rho * sum((v.mag() for v in M), Q(0))
        _need(abs(YF[a]) + spread < rho, f"ball: Krawczyk inclusion fails in coordinate {a}")
    # the activation pattern is strict on the whole box
    for g, c in enumerate(ball.clusters):
        for i, x in enumerate(inst.X):
            if i in c["K"] or not any(x):
                continue
            z = _isum(t * _dot(b, x) for t, b in zip(TH[g], c["B"]))
            _need(z.lo > 0 if c["sign"][i] > 0 else z.hi < 0,
                  f"ball: cluster {g} may cross the kink of point {i} inside the box")
    # (S2) across the kinks at the zero: b_g = sum_{i in K} lambda_i x_i with lambda_i <= 0 <= lambda_i + gamma_i;
    # for local_min strictly, lambda_i < 0 < lambda_i + gamma_i (strict complementarity on every kink piece, §10.5)
    for g, c in enumerate(ball.clusters):
        if not c["K"]:
            continue
        lam, gams = _ball_kink_multipliers(ball, g, C, E)
        active = [i for i, x in enumerate(inst.X) if any(x) and i not in c["K"] and c["s"][i] != 0]
        if verdict == "saddle" and inst.am == 0 and len(active) == 1:
            # ReLU, one active point i: F_c = (1/n) e_i h_ig = 0 with h_ig != 0 on the box forces
            # e_i = 0 at the zero, so b_g = (1/n) (c_g.e_i) s_i x_i = 0 and lambda = 0 exactly there
            lam = [_Iv(Q(0)) for _ in lam]
        for p, i in enumerate(c["K"]):
            lo_side, hi_side = lam[p], lam[p] + gams[p]
            if verdict == "local_min":
                _need(lo_side.hi < 0 and hi_side.lo > 0,
                      f"ball: cluster {g}: (S2) across the kink of point {i} is not proven strict on the box "
                      f"(local_min needs lambda < 0 < lambda + gamma)")
            else:
                _need(lo_side.hi <= 0 and hi_side.lo >= 0,
                      f"ball: cluster {g}: phi >= 0 across the kink of point {i} is not robust on the box")
    if verdict == "local_min":
        # Morse-Bott on the gauge slice: J(box) encloses the Hessian of L restricted to the affine
        # slice S = {theta(xi)}, which is transversal to every rescaling orbit (§10.5)
        _need(_ball_positive_definite(J, mu),
              f"ball: the Hessian on the gauge slice is not proven to exceed curvature {mu} on the box")
        if ball.rank_blocks is not None:
            # §10.8: the outputs' derivative along the slice has full rank N on the box, so at the zero
            # the output map has rank N = the blocks' bound, constant nearby, and the slice meets its fibres
            _need(_ball_positive_definite(gram, ball.gram_bound),
                  f"ball: constant_rank: the output map's Gram matrix on the slice is not proven to exceed "
                  f"{ball.gram_bound} on the box")
        return "local_min"
    if "negative_curvature" in ev:
        # §10.7: v^T H v < 0 for every H in J(box), so at the zero xi* the loss along the affine slice
        # line xi* + t v falls like t^2 on both sides: a stationary point that is not a local minimum
        _need("escape" not in ev, "ball: a saddle names escape neurons or a negative-curvature direction, not both")
        nc = ev["negative_curvature"]
        _need(isinstance(nc, dict) and set(nc) == {"direction"}, "ball: negative_curvature must be {direction}")
        v = _vec(nc.get("direction"), "negative_curvature direction", N)
        _need(any(v), "ball: negative_curvature direction is 0")
        q = _isum(J[a][b] * (v[a] * v[b]) for a in range(N) for b in range(N) if v[a] and v[b])
        _need(q.hi < 0, "ball: v^T J v < 0 is not proven on the box (negative_curvature)")
        return "saddle"
    # the escape neuron: a zero neuron with D_j(r) != 0 at every point of the box
    escs = ev.get("escape")
    _need(isinstance(escs, list) and escs, "ball: escape neurons missing")
    for es in escs:
        _need(isinstance(es, dict) and es.get("neuron") in ev["zero"], "ball: escape must name a zero neuron")
        r = _vec(es.get("r"), "escape r", d)
        D = [_isum(E[i][c] * inst.sig(_dot(x, r)) for i, x in enumerate(inst.X)) * Q(1, n) for c in range(k)]
        _need(any(v.lo > 0 or v.hi < 0 for v in D),
              f"ball: D_j(r) of escape neuron {es.get('neuron')} may vanish on the box")
    return "saddle"


def _inverse(M: list[list[Q]]) -> list[list[Q]]:
    n = len(M)
    A = [list(r) + [Q(1) if i == j else Q(0) for j in range(n)] for i, r in enumerate(M)]
    R, piv = _rref(A, 2 * n)
    _need(piv[:n] == list(range(n)), "ball: singular Gram matrix of kink points")
    return [row[n:] for row in R[:n]]


def derive_verdict(cert: dict) -> str:
    """Return the verdict if the certificate is valid; raise Rejected saying what failed."""
    _need(isinstance(cert, dict), "certificate must be a JSON object")
    if cert.get("format") == BALL_FORMAT:
        return check_ball_certificate(cert)
    _need(cert.get("format") == FORMAT, f"format must be {FORMAT!r}")
    pb, pt = cert.get("problem"), cert.get("point")
    blob = json.dumps({"problem": pb, "point": pt}, sort_keys=True, separators=(",", ":"))
    _need(cert.get("fingerprint") == hashlib.sha256(blob.encode()).hexdigest(),
          "fingerprint does not match problem and point (data or weights changed)")
    inst = _Instance(cert)
    verdict = cert.get("verdict")
    ev = cert.get("evidence")
    _need(isinstance(ev, dict), "evidence missing")
    lo = ev.get("loss")
    _need(isinstance(lo, dict) and lo.get("convention") == inst.conv, "evidence.loss.convention differs from the problem's")
    loss = inst.loss_hm * inst.factor
    _need(_q(lo.get("value"), "loss") == loss, f"recorded loss differs from the exact loss {_short(loss)}")
    _need(ev.get("derivative_convention") == "half_mean", "derivative_convention must be half_mean")
    if verdict == "global_min":
        _need(loss == 0, "global_min needs loss exactly 0")
        return verdict
    if verdict == "not_stationary":
        _check_descent(inst, ev.get("not_stationary") or {})
        return verdict
    _need(verdict in ("local_min", "saddle", "inconclusive"), f"unknown verdict {_short(verdict)}")
    _need(loss != 0 or verdict == "inconclusive", "loss is 0: the verdict should be global_min")
    if inst.c is not None:
        # (S0): with an output bias a stationary point has residuals summing to 0 (zero inputs included);
        # otherwise dc = -e_bar descends, and neither a minimum, a saddle nor "undecided" is right
        _need(all(v == 0 for v in inst.ebar), f"{verdict}, but the residuals do not sum to 0 ((S0) fails: "
                                              f"dL/dc = {[_short(v) for v in inst.ebar]}): the point is not stationary")
    neurons = ev.get("neurons")
    _need(isinstance(neurons, list) and len(neurons) == inst.m, "evidence.neurons must list every neuron")
    all_stat, undecided_escape, esc_zero, esc_nonzero = True, False, [], []
    for j, item in enumerate(neurons):
        _need(isinstance(item, dict) and item.get("neuron") == j, f"evidence.neurons[{j}] is not neuron {j}")
        _need(_vec(item.get("G"), f"neuron {j} G", inst.k) == inst.G[j], f"neuron {j}: recorded G_j differs")
        _need(all(v == 0 for v in inst.G[j]), f"neuron {j}: G_j != 0, (S1) fails")
        st = item.get("stationarity")
        _need(isinstance(st, dict), f"neuron {j}: stationarity evidence missing")
        ok = _check_stationarity(inst, j, st)
        all_stat = all_stat and ok
        es = item.get("escape")
        if es is None:
            undecided_escape = True
            continue
        _need(isinstance(es, dict), f"neuron {j}: malformed escape evidence")
        if es.get("method") == "undecided":
            _need(es.get("escape") is None, f"neuron {j}: undecided escape must say null")
            undecided_escape = True
            continue
        if _check_escape(inst, j, es):
            (esc_zero if all(v == 0 for v in inst.A[j]) else esc_nonzero).append(j)
    if verdict == "local_min":
        mb, kso = ev.get("morse_bott"), ev.get("kink_second_order")
        _need(mb is None or kso is None, "local_min: give one of morse_bott, kink_second_order")
        if kso is not None:
            _need(isinstance(kso, dict), "local_min: malformed kink_second_order evidence")
            _need(all_stat, "local_min needs every neuron certified stationary")
            _need(not esc_zero, "local_min but an escape neuron with a_j = 0 is recorded")
            _check_kink_second_order(inst, kso)
            return verdict
        if mb is not None:
            _need(isinstance(mb, dict), "local_min: malformed morse_bott evidence")
            _need(all_stat, "local_min needs every neuron certified stationary")
            _need(not esc_zero, "local_min but an escape neuron with a_j = 0 is recorded")
            _check_morse_bott(inst, mb)
            return verdict
        _need(all_stat and not undecided_escape, "local_min needs every neuron certified stationary and escape-free")
        _need(not esc_zero and not esc_nonzero, "local_min but an escape neuron is recorded")
        return verdict
    if verdict == "saddle":
        _need(all_stat, "saddle needs every neuron certified stationary")
        _need("kink_second_order" not in ev and "morse_bott" not in ev, "saddle, but the evidence holds a local-minimum proof")
        ep, so = ev.get("escape_path"), ev.get("second_order")
        _need((ep is None) != (so is None), "saddle needs exactly one of: an escape path, a second-order ray")
        if ep is not None:
            _need(isinstance(ep, dict), "saddle: malformed escape path")
            _check_escape_path(inst, ep)
        else:
            _need(isinstance(so, dict), "saddle: malformed second-order ray")
            _check_second_order(inst, so)
        return verdict
    # inconclusive: allowed only when the evidence does not decide
    _need("escape_path" not in ev and "second_order" not in ev,
          "inconclusive, but the evidence holds a saddle proof (escape path or second-order ray)")
    _need("morse_bott" not in ev, "inconclusive, but the evidence holds a Morse-Bott proof")
    _need("kink_second_order" not in ev, "inconclusive, but the evidence holds a kink second-order proof")
    decided = all_stat and not undecided_escape
    _need(not (decided and esc_zero), "inconclusive, but an escape neuron with a_j = 0 makes it a saddle")
    _need(not (decided and not esc_nonzero), "inconclusive, but the evidence proves a local minimum")
    return verdict


def main(argv: list[str] | None = None) -> int:
    import sys
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m relucert.check CERTIFICATE.json", file=sys.stderr)
        return 2
    sys.set_int_max_str_digits(0)     # sizes are bounded by the limits policy (limits.py)
    try:
        cert = load_json(read_text(args[0]), args[0], exact_numbers=False)
        print(f"certificate OK: {derive_verdict(cert)}")
        return 0
    except Rejected as e:
        print(f"certificate REJECTED: {e}")
        return 1
    except LimitError as e:
        print(f"certificate unreadable: {e}")
        return 1
    except OSError as e:
        print(f"certificate unreadable: {args[0]}: {e.strerror}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
