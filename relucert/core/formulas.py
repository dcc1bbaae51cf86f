"""The network's formulas (docs/theory.md §1–§3), each written once, for every caller.

The array formulas (``forward``, ``output_grad``, ``linear_part``, ``ray_coefficients``) are
generic over the number type: numpy float64 (also batched over leading axes), numpy object arrays
of ``flint.fmpq`` (exact; products go through ``fmpq_mat``), of ``mpmath.mpf`` or of ``Fraction``.
The per-neuron objects (kink sets, merged hinges, b_j, gamma_p) are exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import math
import numpy as np
from flint import fmpq

from relucert.core import exactfast
from relucert.core.linalg import dot, from_fmpq_mat, is_frozen, is_zero, matmul, rows, to_fmpq_mat
from relucert.core.problem import Point, Problem, fmpq_to_float, nearest_float


_ZERO = fmpq(0)
_FMPQ_TYPE = {fmpq}


def T(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


# ---------------------------------------------------------------------------------------------
# generic array formulas
# ---------------------------------------------------------------------------------------------

def preactivations(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """z_ij = w_j . x_i, shape (..., n, m)."""
    return matmul(X, T(W))


def _fmpq_entries(a: np.ndarray) -> list | None:
    """The entries of an object array as a flat list when they are all ``fmpq`` (else None)."""
    if a.dtype != object or a.size == 0:
        return None
    flat = a.ravel().tolist()
    return flat if set(map(type, flat)) == _FMPQ_TYPE else None


def positive(Z: np.ndarray) -> np.ndarray:
    """[z > 0] as a bool array, exactly.  For exact rationals the sign is read off the nearest float
    (``fmpq_to_float``: rounding keeps the sign of every non-zero number that does not underflow to 0;
    the entries whose float is 0 or out of range are compared exactly), several times faster than
    comparing each fmpq with 0."""
    flat = _fmpq_entries(Z)
    if flat is None:
        return np.asarray(Z > 0, dtype=bool)
    try:
        f = np.fromiter(map(nearest_float, flat), dtype=float, count=len(flat))
    except OverflowError:
        f = np.fromiter(map(fmpq_to_float, flat), dtype=float, count=len(flat))
    pos = f > 0
    for i in np.nonzero((f == 0) | ~np.isfinite(f))[0].tolist():
        pos[i] = flat[i] > 0
    return pos.reshape(Z.shape)


def _negative(z: fmpq) -> bool:
    """z < 0 exactly, read off the nearest float when it is not 0 (rounding keeps the sign)."""
    f = fmpq_to_float(z)
    return f < 0 if f != 0 else z < 0


def slopes(Z: np.ndarray, ap: Any, am: Any) -> np.ndarray:
    """s_ij = sigma'(z_ij), with the convention sigma'(0) = alpha_minus (z <= 0 branch)."""
    return _slopes_from(positive(Z), Z, ap, am)


def _slopes_from(pos: np.ndarray, Z: np.ndarray, ap: Any, am: Any) -> np.ndarray:
    """``slopes`` given pos = [Z > 0]."""
    if Z.dtype == object:
        out = np.empty(Z.shape, dtype=object)
        out[pos] = ap
        out[~pos] = am
        return out
    if am == 0:
        return pos * float(ap)          # much faster than np.where on large float batches
    return float(am) + (float(ap) - float(am)) * pos


@dataclass
class Forward:
    Z: np.ndarray   # pre-activations (..., n, m)
    S: np.ndarray   # slopes sigma'(z) (alpha_minus at 0)
    H: np.ndarray   # sigma(z)
    F: np.ndarray   # outputs (..., n, k), the output bias c included
    E: np.ndarray   # residuals F - Y
    pos: np.ndarray | None = field(default=None, repr=False)   # [Z > 0] (bool), as forward computed it


def forward(X, Y, W, A, ap, am, c=None) -> Forward:
    """Network outputs and residuals: f(x_i) = sum_j a_j sigma(w_j . x_i) + c, e_i = f(x_i) - y_i.

    ``c`` is the output bias (shape (..., k), broadcast over the data), None for a network without
    one (docs/biases.md §1)."""
    Z = preactivations(X, W)
    pos = positive(Z)
    S = _slopes_from(pos, Z, ap, am)
    H = _sigma_exact(pos, Z, ap, am) if _fmpq_entries(Z) is not None else S * Z
    F = matmul(H, A)
    if c is not None:
        F = F + _vector(c)[..., None, :]
    return Forward(Z, S, H, F, F - Y, pos)


def forward_recent(X, Y, W, A, ap, am, c, recent: dict) -> Forward:
    """``forward`` for exact 2-D X, W, A (the same values), reusing what ``recent`` (a dict the caller
    keeps across nearby points, e.g. the readings of one refinement) holds from the latest call on
    the same frozen data: the pre-activations and signs of every neuron whose w_j is equal, entry by
    entry, to the one then, and the outputs H A updated by the neurons that changed only (exact
    rationals: the sum does not depend on how it is grouped)."""
    n, d = X.shape
    m, k = W.shape[0], A.shape[1]
    if not (is_frozen(X) and n and d and m and _fmpq_entries(W) is not None and _fmpq_entries(A) is not None):
        return forward(X, Y, W, A, ap, am, c)
    Wr, Ar = W.tolist(), A.tolist()
    prev = recent.get("forward")
    if prev is None or prev["X"] is not X or prev["shape"] != (m, d, k) or prev["ap"] != ap or prev["am"] != am:
        fw = forward(X, Y, W, A, ap, am, None)
        Z, pos, H, HA = fw.Z, fw.pos, fw.H, fw.F
    else:
        pW, pA = prev["W"], prev["A"]
        cw = [j for j in range(m) if Wr[j] != pW[j]]
        ch = sorted(set(cw).union(j for j in range(m) if Ar[j] != pA[j]))
        Z, pos, H = prev["Z"].copy(), prev["pos"].copy(), prev["H"].copy()
        if cw:
            Zc = preactivations(X, W[cw])
            pc = positive(Zc)
            Z[:, cw], pos[:, cw] = Zc, pc
            H[:, cw] = _sigma_exact(pc, Zc, ap, am)
        if 2 * len(ch) > m:
            HA = matmul(H, A)
        elif ch:
            HA = prev["HA"] + matmul(H[:, ch], A[ch]) - matmul(prev["H"][:, ch], prev["Aarr"][ch])
        else:
            HA = prev["HA"].copy()
    recent["forward"] = {"X": X, "shape": (m, d, k), "ap": ap, "am": am, "W": Wr, "A": Ar, "Aarr": A.copy(),
                         "Z": Z.copy(), "pos": pos.copy(), "H": H.copy(), "HA": HA.copy()}
    F = HA + _vector(c)[None, :] if c is not None else HA
    return Forward(Z, _slopes_from(pos, Z, ap, am), H, F, F - Y, pos)


def _sigma_exact(pos: np.ndarray, Z: np.ndarray, ap: fmpq, am: fmpq) -> np.ndarray:
    """H = S * Z for exact Z (the same values): alpha_plus z where z > 0, alpha_minus z elsewhere,
    with the products by 1 and by 0 (ReLU) not evaluated."""
    one, zero = ap == 1, am == 0
    hp = Z if one else Z * ap
    hm = np.full(Z.shape, _ZERO, dtype=object) if zero else Z * am
    return np.where(pos, hp, hm)


def _vector(v) -> np.ndarray:
    """An array view of a vector of numbers (object dtype for exact entries, never converted)."""
    if isinstance(v, np.ndarray):
        return v
    vals = list(v)
    if vals and not isinstance(vals[0], (float, np.floating)):
        out = np.empty(len(vals), dtype=object)
        out[:] = vals
        return out
    return np.asarray(vals)


def sigma(z: Any, ap: Any, am: Any) -> Any:
    """sigma(z) = alpha_plus z for z > 0, alpha_minus z otherwise (one number)."""
    return ap * z if z > 0 else am * z


def forward_point(problem: Problem, point: Point) -> "Forward":
    """``forward`` on a problem and an exact point (its output bias included)."""
    act = problem.activation
    return forward(problem.X, problem.Y, point.W, point.A, act.alpha_plus, act.alpha_minus, point.c)


def residuals(problem: Problem, point: Point) -> list[list[fmpq]]:
    """e_i = f(x_i) - y_i as row lists (exact)."""
    return rows(forward_point(problem, point).E)


def loss_half_mean(problem: Problem, point: Point) -> fmpq:
    """The half_mean loss (1/2n) sum_i ||e_i||^2 of a point, exactly."""
    return half_mean_loss(forward_point(problem, point).E)


def network_outputs(problem: Problem, point: Point, inputs: Sequence[Sequence[fmpq]]) -> list[list[fmpq]]:
    """f(x) = sum_j a_j sigma(w_j . x) (+ c) at arbitrary exact inputs (row lists)."""
    if not inputs:
        return []
    Xin = np.empty((len(inputs), problem.d), dtype=object)
    for i, x in enumerate(inputs):
        Xin[i, :] = list(x)
    act = problem.activation
    Z = preactivations(Xin, point.W)
    H = slopes(Z, act.alpha_plus, act.alpha_minus) * Z
    F = matmul(H, point.A)
    if point.c is not None:
        F = F + point.c[None, :]
    return rows(F)


def half_mean_loss(E: np.ndarray) -> Any:
    """L = (1/2n) sum_i ||e_i||^2 (batched over leading axes)."""
    n = E.shape[-2]
    return (E * E).sum(axis=(-1, -2)) / (2 * n)


def mean_residual(E: np.ndarray) -> np.ndarray:
    """e_bar = (1/n) sum_i e_i over ALL data points (zero inputs included: docs/biases.md CE3), shape
    (..., k).  It is dL/dc, the gradient of the half_mean loss in the output bias c, at every point."""
    n = E.shape[-2]
    return E.sum(axis=-2) / n


def output_grad(H: np.ndarray, E: np.ndarray) -> np.ndarray:
    """G_j = (1/n) sum_i e_i sigma(z_ij) = dL/da_j, shape (..., m, k)."""
    n = E.shape[-2]
    return _over_n(matmul(T(H), E), n)


def _over_n(a: np.ndarray, n: int) -> np.ndarray:
    """a / n; for exact rationals as the product with 1/n (the same values, one fmpq product each
    instead of a division by a Python integer)."""
    if _fmpq_entries(a) is not None:
        return a * fmpq(1, n)
    return a / n


def linear_part(S: np.ndarray, E: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Lin_j = (1/n) sum_i s_ij e_i x_i^T with s_ij = alpha_minus on kinks, shape (..., m, k, d).

    Off the kink set this is the Jacobian of G_j in w_j; on a kink it is the alpha_minus part of
    sigma(x_i . r) = alpha_minus x_i . r + (alpha_plus - alpha_minus) max(0, x_i . r)."""
    n = E.shape[-2]
    k = E.shape[-1]
    parts = [_over_n(matmul(T(S * E[..., :, c:c + 1]), X), n) for c in range(k)]
    return np.stack(parts, axis=-2)


def linear_part_exact(pos: np.ndarray, E: np.ndarray, X: np.ndarray, ap: fmpq, am: fmpq) -> np.ndarray:
    """``linear_part`` for exact rationals (2-D E, X), from the sign pattern pos = [z_ij > 0] (n x m):
    the same values, as Lin_jc = (am/n) sum_i e_ic x_i + ((ap - am)/n) sum_{i: z_ij > 0} e_ic x_i
    (s_ij = am + (ap - am) [z_ij > 0]); no n x m exact product is formed.  Shape (m, k, d)."""
    n, k = E.shape
    d = X.shape[1]
    m = pos.shape[1]
    Xr, Er = X.tolist(), E.tolist()
    Q = [[[Er[i][c] * x for x in Xr[i]] for i in range(n)] for c in range(k)]     # e_ic x_i
    up, base = (ap - am) / n, am / n
    flat = []
    by_set: dict = {}           # neurons with the same positive set share its sums (same values)
    for row in np.asarray(pos, dtype=bool).T.tolist():
        key = tuple(row)
        part = by_set.get(key)
        if part is None:
            P = [i for i, b in enumerate(row) if b]
            part = []
            for c in range(k):
                Qc = Q[c]
                for q in range(d):
                    sp = _ZERO
                    for i in P:
                        sp = sp + Qc[i][q]
                    part.append(sp * up)
            by_set[key] = part
        flat.extend(part)
    Lin = np.fromiter(flat, dtype=object, count=m * k * d).reshape(m, k, d)
    if am != 0:
        tot = np.fromiter([sum((Q[c][i][q] for i in range(n)), _ZERO) * base for c in range(k) for q in range(d)],
                          dtype=object, count=k * d).reshape(1, k, d)
        Lin = Lin + tot
    return Lin


def output_grad_from_linear(Lin: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``output_grad`` from ``linear_part``, exactly: G_jc = Lin_jc . w_j, since sigma(z_ij) =
    s_ij z_ij = s_ij x_i . w_j for every pair, kinks included (z_ij = 0 there); shape (m, k)."""
    m, k = Lin.shape[0], Lin.shape[1]
    d = Lin.shape[2] if Lin.ndim == 3 else 0
    out = np.empty((m, k), dtype=object)
    Wr, Lr = W.tolist(), Lin.tolist()
    for j in range(m):
        w = Wr[j]
        for c in range(k):
            row = Lr[j][c]
            g = row[0] * w[0] if d else _ZERO
            for q in range(1, d):
                g += row[q] * w[q]
            out[j, c] = g
    return out


def weight_grad(Lin: np.ndarray, A: np.ndarray) -> np.ndarray:
    """dL/dw_j = Lin_j^T a_j where L is differentiable in w_j (no kinks), shape (..., m, d)."""
    return (Lin * A[..., :, :, None]).sum(axis=-2)


def ray_coefficients(X, E, Z, S_unused, W, A, dW, dA, ap, am, dc=None):
    """Exact expansion of §2: L(theta + t Delta) - L(theta) = c1 t + c2 t^2 + c3 t^3 + c4 t^4.

    Valid for 0 < t < t_max (returned; None means no sign can change). Works on any subset of
    neurons (columns of Z / rows of W, A, dW, dA) because the other neurons do not move.
    ``dc`` moves the output bias (docs/biases.md §3.1: u_i -> u_i + dc; t_max does not change);
    None: it does not move.  Returns (c1, c2, c3, c4, t_max)."""
    n = X.shape[0]
    delta = preactivations(X, dW)                      # n x m
    pos_z = np.asarray(Z > 0, dtype=bool)
    zero_z = np.asarray(Z == 0, dtype=bool)
    pos_d = np.asarray(delta > 0, dtype=bool)
    s = np.where(zero_z, np.where(pos_d, 1, 0), np.where(pos_z, 1, 0)).astype(bool)
    if Z.dtype == object:
        Sr = np.empty(Z.shape, dtype=object)
        Sr[s] = ap
        Sr[~s] = am
    else:
        Sr = np.where(s, ap, am)
    Hz = Sr * Z
    Hd = Sr * delta
    U = matmul(Hz, dA) + matmul(Hd, A)
    if dc is not None:
        U = U + _vector(dc)[None, :]
    Q = matmul(Hd, dA)
    c1 = (E * U).sum() / n
    c2 = ((U * U).sum() + 2 * (E * Q).sum()) / (2 * n)
    c3 = (U * Q).sum() / n
    c4 = (Q * Q).sum() / (2 * n)
    # only strictly signed z whose delta has the opposite sign can flip
    t_max = None
    flip = (~zero_z) & (np.asarray(Z * delta < 0, dtype=bool))
    for i, j in zip(*np.nonzero(flip)):
        t = -Z[i, j] / delta[i, j]
        if t_max is None or t < t_max:
            t_max = t
    return c1, c2, c3, c4, t_max


# ---------------------------------------------------------------------------------------------
# exact per-neuron structure
# ---------------------------------------------------------------------------------------------

class _Normal(tuple):
    """A canonical normal (a tuple of exact rationals) that computes its hash once: the hash of the
    plain tuple (so it finds and is found by equal plain tuples), which for fmpq entries is slow and
    is asked for several times per key (merging, gamma, the stationarity tests)."""

    def __hash__(self):
        h = self.__dict__.get("_h")
        if h is None:
            h = self.__dict__["_h"] = tuple.__hash__(self)
        return h


def canonical_normal(x: Sequence[fmpq]) -> tuple[tuple[fmpq, ...], fmpq] | None:
    """x = lam * key with the first non-zero entry of key equal to 1; None for x = 0."""
    for v in x:
        if v != 0:
            lam = v
            return _Normal(c / lam for c in x), lam
    return None


@dataclass
class Neuron:
    """Exact first-order data of one neuron at a point (docs/theory.md §3–4)."""

    j: int
    w: list
    a: list
    G: list                                   # k
    kinks: list                               # data indices with z_ij = 0
    Lin: list                                 # k x d, after merging negatively parallel kinks
    hinges: dict = field(default_factory=dict)  # key (canonical normal) -> Gamma (k-vector), all != 0
    b: list = field(default_factory=list)     # d: a^T Lin
    gamma: dict = field(default_factory=dict)  # key -> a . Gamma, only the non-zero ones

    @property
    def a_zero(self) -> bool:
        return not any(self.a)

    @property
    def w_zero(self) -> bool:
        return not any(self.w)

    def D(self, r: Sequence[fmpq]) -> list:
        """D_j(r) = Lin r + sum_p Gamma_p max(0, nu_p . r)."""
        out = [dot(row, r) for row in self.Lin]
        for key, Gam in self.hinges.items():
            t = dot(key, r)
            if t > 0:
                out = [o + g * t for o, g in zip(out, Gam)]
        return out

    def phi(self, r: Sequence[fmpq]) -> fmpq:
        """phi_j(r) = a_j . D_j(r) = b . r + sum_p gamma_p max(0, nu_p . r)."""
        return phi_eval(self.b, self.gamma, r)


def phi_eval(b: Sequence[fmpq], gamma: dict, r: Sequence[fmpq]) -> fmpq:
    v = dot(b, r)
    for key, g in gamma.items():
        t = dot(key, r)
        if t > 0:
            v += g * t
    return v


def merge_hinges(Lin: list, points: list, coefs: list) -> tuple[list, dict]:
    """Merge hinge terms coef_i max(0, x_i . r) over parallel x_i (docs/theory.md §3).

    Lin (k x d) absorbs the linear part created by negatively parallel points. Returns the new
    Lin and {canonical normal: summed coefficient (k-vector)} with zero coefficients dropped."""
    Lin = [list(row) for row in Lin]
    acc: dict = {}
    for x, coef in zip(points, coefs):
        cn = canonical_normal(x)
        if cn is None:            # x = 0: max(0, 0 . r) = 0
            continue
        key, lam = cn
        mag = lam if lam > 0 else -lam
        cur = acc.get(key)
        scaled = [mag * c for c in coef]
        acc[key] = scaled if cur is None else [u + v for u, v in zip(cur, scaled)]
        if lam < 0:
            for c in range(len(Lin)):
                if coef[c] != 0:
                    for q in range(len(key)):
                        Lin[c][q] -= mag * coef[c] * key[q]
    hinges = {key: g for key, g in acc.items() if any(v != 0 for v in g)}
    return Lin, hinges


def kink_form(Lin0: list, X: np.ndarray, E: np.ndarray, kinks: Sequence[int], n: int, ap: Any, am: Any
              ) -> tuple[list, dict]:
    """D(r) = Lin0 r + (1/n) sum_{i in kinks} (alpha_plus - alpha_minus) e_i max(0, x_i . r), merged
    over parallel x_i (docs/theory.md §3): (Lin k x d, {canonical normal: k-vector})."""
    scale = (ap - am) / n
    coefs = [[scale * e for e in E[i].tolist()] for i in kinks]
    points = [X[i].tolist() for i in kinks]
    return merge_hinges(Lin0, points, coefs)


def derivative_form(problem: Problem, E: Sequence[Sequence[fmpq]], w: Sequence[fmpq]) -> tuple[list, dict]:
    """D_w(r) = (1/n)[sum_{z_i != 0} e_i sigma'(z_i) x_i.r + sum_{z_i = 0} e_i sigma(x_i.r)] as
    (Lin k x d, merged hinges {normal: k-vector}) for residuals E and an input weight w (docs/theory.md §3-4).
    D depends on w only through the signs of z_i = w.x_i (so it is invariant under w -> c w, c > 0)."""
    act = problem.activation
    ap, am = act.alpha_plus, act.alpha_minus
    n, d, k = problem.n, problem.d, problem.k
    Wrow = np.empty((1, d), dtype=object)
    Wrow[0, :] = list(w)
    Ea = np.empty((n, k), dtype=object)
    for i in range(n):
        Ea[i, :] = list(E[i])
    Z = preactivations(problem.X, Wrow)
    Lin0 = linear_part(slopes(Z, ap, am), Ea, problem.X)[0]
    kinks = [i for i in range(n) if Z[i, 0] == 0]
    return kink_form([list(Lin0[c]) for c in range(k)], problem.X, Ea, kinks, n, ap, am)


def output_gradient(problem: Problem, E: Sequence[Sequence[fmpq]], w: Sequence[fmpq]) -> list[fmpq]:
    """G_w = (1/n) sum_i e_i sigma(w.x_i) (= dL/da for a neuron with input weight w)."""
    act = problem.activation
    n, k = problem.n, problem.k
    G = [fmpq(0)] * k
    for i, x in enumerate(problem.X.tolist()):
        s = sigma(dot(w, x), act.alpha_plus, act.alpha_minus)
        if s != 0:
            G = [g + s * e / n for g, e in zip(G, E[i])]
    return G


# ---------------------------------------------------------------------------------------------
# neuron status: the one vocabulary
# ---------------------------------------------------------------------------------------------

NEURON_STATUSES = ("zero", "zero-input", "dead", "zero-output", "alive")


def neuron_status(X: np.ndarray, w: Sequence[fmpq], a: Sequence[fmpq], am: Any) -> str:
    """One of NEURON_STATUSES, in this order of precedence:

    - ``zero``: w = 0 and a = 0;  ``zero-input``: w = 0, a != 0 (the neuron outputs nothing);
    - ``dead``: alpha_minus = 0, w != 0 and w . x_i < 0 for every data point x_i != 0.  Data rows
      equal to 0 are ignored: sigma(w . 0) = 0 for every w, so they never revive a neuron;
    - ``zero-output``: a = 0 (and not the above);  ``alive``: everything else."""
    if is_zero(w):
        return "zero" if is_zero(a) else "zero-input"
    if am == 0 and all(dot(w, x) < 0 for x in X.tolist() if not is_zero(x)):
        return "dead"
    return "zero-output" if is_zero(a) else "alive"


def is_dead(X: np.ndarray, w: Sequence[fmpq], am: Any) -> bool:
    """ReLU-like with alpha_minus = 0, w != 0, and w . x_i < 0 on every non-zero data point."""
    return neuron_status(X, w, [fmpq(1)], am) == "dead"


def smooth_point(problem: Problem, point: Point, Z: np.ndarray | None = None) -> bool:
    """No zero neuron and no non-zero data point on any neuron's kink: L is a polynomial near theta."""
    if Z is None:
        Z = preactivations(problem.X, point.W)
    nonzero_x = [i for i in range(problem.n) if not is_zero(problem.X[i].tolist())]
    return all(not is_zero(point.W[j].tolist()) for j in range(point.m)) and all(
        Z[i, j] != 0 for i in nonzero_x for j in range(point.m))


def pattern_margin(problem: Problem, point: Point) -> dict | None:
    """How far the point is from changing its activation pattern: the smallest change of one input
    weight vector w_j (Euclidean) that moves a strict pre-activation w_j . x_i != 0 onto its kink,
    min |w_j . x_i| / |x_i| over those pairs, also relative to |theta|; with the pair attaining it.
    Beyond this the pattern can change (a dead neuron revives, a sign flips), so a local minimum
    certified at the point need not extend further.  A float figure for the report (exact signs:
    pairs that are near 0 in floats are recomputed exactly); None when no pair is strict."""
    X, W = problem.Xf, point.Wf
    xn = np.linalg.norm(X, axis=1)
    wn = np.linalg.norm(W, axis=1)
    Z = X @ W.T
    with np.errstate(divide="ignore", invalid="ignore"):
        D = np.abs(Z) / xn[:, None]
    D[xn == 0, :] = np.inf
    D[:, wn == 0] = np.inf
    close = np.argwhere(np.abs(Z) <= 1e-6 * np.outer(xn, wn))
    for i, j in close:
        if wn[j] == 0 or xn[i] == 0:
            continue
        z = dot(point.W[j].tolist(), problem.X[i].tolist())
        D[i, j] = np.inf if z == 0 else abs(fmpq_to_float(z)) / xn[i]
    if not np.isfinite(D).any():
        return None
    i, j = np.unravel_index(int(np.argmin(D)), D.shape)
    theta = math.sqrt(float((W ** 2).sum() + (point.Af ** 2).sum()))
    am = problem.activation.alpha_minus
    return {"absolute": float(D[i, j]), "relative": float(D[i, j]) / theta if theta > 0 else math.inf,
            "neuron": int(j), "data": int(i),
            "neuron_status": neuron_status(problem.X, point.W[j].tolist(), point.A[j].tolist(), am)}


def _first_order_recent(X, pos, E, W, ap, am, recent: dict) -> tuple[np.ndarray, np.ndarray]:
    """(Lin, G) of ``linear_part_exact`` / ``output_grad_from_linear`` (the same values), reusing the
    latest call's (kept in ``recent``) when the residuals E are exactly those of then: Lin_j depends on
    E, X and neuron j's sign column only, G_j on Lin_j and w_j; only the neurons whose sign column or
    w_j changed are computed (the nearby points of one refinement often have the very same residuals)."""
    m, d = W.shape
    El, Wr = E.tolist(), W.tolist()
    prev = recent.get("first_order")
    if (prev is not None and m and d and prev["X"] is X and prev["ap"] == ap and prev["am"] == am
            and prev["pos"].shape == pos.shape and prev["E"] == El):
        same = np.all(pos == prev["pos"], axis=0)
        ch = [j for j in range(m) if not same[j] or Wr[j] != prev["W"][j]]
        Lin, G = prev["Lin"].copy(), prev["G"].copy()
        if ch:
            Lc = linear_part_exact(pos[:, ch], E, X, ap, am)
            Lin[ch] = Lc
            G[ch] = output_grad_from_linear(Lc, W[ch])
    else:
        Lin = linear_part_exact(pos, E, X, ap, am)
        G = output_grad_from_linear(Lin, W)
    if is_frozen(X):
        recent["first_order"] = {"X": X, "ap": ap, "am": am, "pos": np.array(pos, dtype=bool), "E": El, "W": Wr,
                                 "Lin": Lin.copy(), "G": G.copy()}
    return Lin, G


class ExactState:
    """All exact first-order quantities of (problem, point), computed once.

    Small problems (``exactfast.use_fast``: n * m and n * m * d * k below its thresholds) evaluate the
    generic formulas and keep the whole exact forward pass ``fw``.  Larger ones use
    ``exactfast.first_order`` (the same exact values without any n x m exact array) when it applies; ``fw`` is then built only on first access,
    by the routes that truly need every z_ij (second order).  Callers that need one neuron's column,
    the residuals or the sign pattern read ``z_column(j)``, ``E``, ``kinks(j)`` and ``status(j)``."""

    def __init__(self, problem: Problem, point: Point, recent: dict | None = None):
        """``recent``: a dict kept by the caller across the states of nearby points (``forward_recent``)."""
        point.validate(problem)
        self.problem, self.point = problem, point
        act = problem.activation
        self.ap, self.am = act.alpha_plus, act.alpha_minus
        self._fw: Forward | None = None
        self.fast = None
        if exactfast.use_fast(problem.n, point.m, problem.d, problem.k):
            self.fast = exactfast.first_order(problem.X, problem.Y, point.W, point.A, point.c, self.ap, self.am)
        if self.fast is None and recent is not None:
            self._fw = forward_recent(problem.X, problem.Y, point.W, point.A, self.ap, self.am, point.c, recent)
            self.E = self._fw.E
            self.Lin, self.G = _first_order_recent(problem.X, self._fw.pos, self.E, point.W, self.ap, self.am,
                                                   recent)
        elif self.fast is None:
            self._fw = forward(problem.X, problem.Y, point.W, point.A, self.ap, self.am, point.c)
            self.E = self._fw.E
            self.Lin = linear_part_exact(self._fw.pos, self.E, problem.X, self.ap, self.am)
            self.G = output_grad_from_linear(self.Lin, point.W)
        else:
            self.E, self.G, self.Lin = self.fast.E, self.fast.G, self.fast.Lin
        self.loss_half_mean = half_mean_loss(self.E)
        self._neurons: dict[int, Neuron] = {}

    @property
    def fw(self) -> Forward:
        """The whole exact forward pass (Z, S, H, F, E: n x m object arrays), built on first access."""
        if self._fw is None:
            pb, pt = self.problem, self.point
            self._fw = forward(pb.X, pb.Y, pt.W, pt.A, self.ap, self.am, pt.c)
        return self._fw

    def z_column(self, j: int) -> np.ndarray:
        """z_ij = w_j . x_i for every data point, exactly: an n x 1 object array (column j of fw.Z)."""
        if self._fw is not None:
            return self._fw.Z[:, j:j + 1]
        return self._one_neuron_z(self.point.W[j].tolist())

    def _one_neuron_z(self, w: Sequence[fmpq]) -> np.ndarray:
        """preactivations(X, [w]) (n x 1) with X converted to an fmpq_mat once per state."""
        if "_Xmat" not in self.__dict__:
            self._Xmat = to_fmpq_mat(self.problem.X)
        return from_fmpq_mat(self._Xmat * to_fmpq_mat(_vector([fmpq(v) for v in w])[:, None]))

    def loss_half_mean_moved(self, j: int, w: Sequence[fmpq], a: Sequence[fmpq], dc: Sequence[fmpq] | None = None
                             ) -> fmpq:
        """The exact half_mean loss after replacing neuron j's (w_j, a_j) by (w, a) and adding dc to the
        output bias: e_i + a sigma(w . x_i) - a_j sigma(w_j . x_i) + dc (the network is a sum over
        neurons: ``forward`` of the one neuron, old and new); equal to ``loss_half_mean`` of the new point."""
        pt = self.point
        An = np.empty((1, self.problem.k), dtype=object)
        An[0, :] = [fmpq(v) for v in a]

        def outputs(z, arow):             # forward's H = S Z and F = H A, for the one neuron
            return matmul(slopes(z, self.ap, self.am) * z, arow)
        z_old = self.z_column(j)
        same_w = all(u == v for u, v in zip(w, pt.W[j].tolist()))     # e.g. a descent in a_j only
        old = outputs(z_old, pt.A[j:j + 1])
        new = outputs(z_old if same_w else self._one_neuron_z(w), An)
        E = self.E - old + new
        if dc is not None:
            E = E + _vector([fmpq(v) for v in dc])[None, :]
        return half_mean_loss(E)

    @property
    def loss(self) -> fmpq:
        """Loss in the problem's own convention."""
        return self.loss_half_mean * self.problem.loss_factor()

    @property
    def mean_residual(self) -> list[fmpq]:
        """e_bar = (1/n) sum_i e_i over all data points (k entries): dL/dc (half_mean).  Defined with
        or without an output bias; only with one is it a first-order condition, (S0) e_bar = 0."""
        if "_ebar" not in self.__dict__:
            self._ebar = mean_residual(self.E).tolist()
        return list(self._ebar)

    def status(self, j: int) -> str:
        """The neuron's status (NEURON_STATUSES); from the exact sign pattern on the fast path (the
        same precedence as ``neuron_status``)."""
        if self.fast is not None:
            w, a = self.point.W[j].tolist(), self.point.A[j].tolist()
            if is_zero(w):
                return "zero" if is_zero(a) else "zero-input"
            if self.am == 0 and self.fast.dead_signs(j):
                return "dead"
            return "zero-output" if is_zero(a) else "alive"
        w, a = self.point.W[j].tolist(), self.point.A[j].tolist()
        if not any(w):
            return "zero" if not any(a) else "zero-input"
        # dead: w . x_i = z_ij < 0 on every non-zero data point, read off the exact forward pass
        if self.am == 0:
            col = self._fw.Z[:, j].tolist()
            if all(_negative(col[i]) for i in self._nonzero_rows):
                return "dead"
        return "zero-output" if not any(a) else "alive"

    @property
    def _nonzero_rows(self) -> list[int]:
        """Indices of the data points x_i != 0 (a row equal to 0 never revives a neuron)."""
        if "_nzr" not in self.__dict__:
            self._nzr = [i for i, x in enumerate(self.problem.X.tolist()) if any(x)]
        return self._nzr

    def kinks(self, j: int) -> list[int]:
        """Data indices with z_ij = 0, increasing."""
        if self._fw is None:
            return self.fast.kinks(j)
        col = self._fw.Z[:, j]
        return [i for i in range(len(col)) if col[i] == 0]

    def neuron(self, j: int) -> Neuron:
        if j in self._neurons:
            return self._neurons[j]
        pb, pt = self.problem, self.point
        n, k, d = pb.n, pb.k, pb.d
        K = self.kinks(j)
        Lin0 = [list(self.Lin[j, c]) for c in range(k)]
        Lin, hinges = kink_form(Lin0, pb.X, self.E, K, n, self.ap, self.am)
        a = pt.A[j].tolist()
        b = [sum((a[c] * Lin[c][q] for c in range(k)), _ZERO) for q in range(d)]
        gamma = {}
        for key, Gam in hinges.items():
            g = dot(a, Gam)
            if g != 0:
                gamma[key] = g
        nr = Neuron(j=j, w=pt.W[j].tolist(), a=a, G=self.G[j].tolist(), kinks=K, Lin=Lin,
                    hinges=hinges, b=b, gamma=gamma)
        self._neurons[j] = nr
        return nr

    def directional_derivative(self, dW: np.ndarray, dA: np.ndarray, dc: Sequence[fmpq] | None = None) -> fmpq:
        """L'(theta; Delta) = sum_j [dA_j . G_j + a_j . D_j(dW_j)] + e_bar . dc (half_mean convention;
        ``dc`` only for a point with an output bias, docs/biases.md §3.2)."""
        total = fmpq(0)
        if dc is not None:
            if self.point.c is None:
                raise ValueError("dc given for a point without an output bias")
            total += dot(self.mean_residual, list(dc))
        for j in range(self.point.m):
            da = dA[j].tolist()
            dw = dW[j].tolist()
            total += dot(da, self.G[j].tolist())
            if any(v != 0 for v in dw) and any(v != 0 for v in self.point.A[j].tolist()):
                total += self.neuron(j).phi(dw)
        return total
