"""Trainable activations built from ReLUs, as wider ReLU networks (issue 16, related literature).

Paper: A. Apicella, F. Isgrò, R. Prevete, "A simple and efficient architecture for trainable
activation functions" (Neurocomputing 2019, arXiv:1902.03306).  What the paper says, as far as we
could read it: the activation function of a neuron is learned by adding a small local sub-network
(a few neurons, trained with the rest of the network by the same gradient method) in place of the
fixed activation; the companion survey by the same group (Apicella, Donnarumma, Isgrò, Prevete, "A
survey on modern trainable activation functions") observes that many trainable activations are
equivalent to extra layers with fixed activations and a simple constraint tying their weights.  We
could not read the exact parametrisation of the sub-network, so the claims check this reading:

Narrow view (trainable activation, shared by all hidden neurons, ReLU sub-network of width L):

    sigma(z) = sum_l beta_l relu(alpha_l z + gamma_l) + lam z + mu       (lam, mu optional)
    f(x)     = sum_j a_j sigma(w_j . x)                                  (no output bias)

with x including relucert's constant-1 column (its entry of w_j is the hidden bias).  Parameters
theta_N = (W, A, alpha, gamma, beta[, lam][, mu]).

Expanded view (a plain ReLU network in relucert's format, one neuron per sub-neuron and narrow
neuron, the linear part as relu(z) - relu(-z), the constant part as relu(1) of the constant column):

    neuron (j, l):   w = alpha_l w_j + gamma_l e_1,   a = beta_l a_j
    neuron (j, +):   w =  w_j,                       a =  lam a_j
    neuron (j, -):   w = -w_j,                       a = -lam a_j
    neuron (j, 1):   w = e_1,                        a =  mu a_j

(e_1: the constant column).  theta_E = Phi(theta_N) is a polynomial map; f_N(theta_N) = f_E(Phi(theta_N))
as functions of x, and at smooth points (no data point on any kink) the chain rule gives
grad L_N = DPhi^T grad L_E.  Hence (i) an expanded stationary point is narrow-stationary, (ii) a
narrow-stationary point is expanded-stationary iff grad L_E = 0, i.e. iff the residual is also
orthogonal to the expanded network's own gradient features (J_E^T e = 0); this is automatic when DPhi
has full row rank (e.g. L = 1, no linear part, alpha_1 beta_1 != 0), and fails in general: the
expanded network can move each sub-neuron of each neuron on its own.

Claims: ``trainable-expansion-exact`` (the two views are the same function: values, kinks, slopes),
``trainable-stationary-pullback`` (DPhi, the chain rule, (i) and the full-rank case of (ii)),
``trainable-stationary-transfer`` (expected to fail: narrow-stationary => expanded-stationary).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from flint import fmpq

from relucert.check import Rejected, require_valid
from relucert.claims import exact as ex
from relucert.claims.api import claim, counterexample, held, skipped
from relucert.claims.exact import obj_array
from relucert.claims.instance import Instance, q, qvec
from relucert.core.formulas import network_outputs, smooth_point
from relucert.core.linalg import dot, mat_rank, nullspace
from relucert.core.problem import Activation, Point, Problem
from relucert.decide.certify import certify

ZERO = fmpq(0)
RELU = Activation(fmpq(1), fmpq(0))


def relu(z: fmpq) -> fmpq:
    return z if z > 0 else ZERO


# ---------------------------------------------------------------------------------------------
# the narrow view
# ---------------------------------------------------------------------------------------------

@dataclass
class TrainableNet:
    W: list                 # m x d (fmpq), the last input column is the constant 1
    A: list                 # m x k
    alpha: list             # L
    gamma: list             # L
    beta: list              # L
    lam: fmpq | None = None  # linear part (None: absent, not a parameter)
    mu: fmpq | None = None   # constant part (None: absent)
    const: int = -1          # index of the constant-1 input column

    @property
    def m(self) -> int:
        return len(self.W)

    @property
    def d(self) -> int:
        return len(self.W[0])

    @property
    def k(self) -> int:
        return len(self.A[0])

    @property
    def L(self) -> int:
        return len(self.alpha)

    @property
    def ci(self) -> int:
        return self.const % self.d

    @property
    def P(self) -> int:
        """Number of narrow parameters."""
        return self.m * (self.d + self.k) + 3 * self.L + (self.lam is not None) + (self.mu is not None)

    def sigma(self, z: fmpq) -> fmpq:
        """The trainable activation, evaluated as the sub-network."""
        out = sum((b * relu(a * z + g) for a, g, b in zip(self.alpha, self.gamma, self.beta)), ZERO)
        if self.lam is not None:
            out += self.lam * z
        if self.mu is not None:
            out += self.mu
        return out

    def sigma_slope(self, z: fmpq) -> fmpq:
        """sigma'(z) (relu'(0) = 0)."""
        out = sum((b * a for a, g, b in zip(self.alpha, self.gamma, self.beta) if a * z + g > 0), ZERO)
        return out + (self.lam if self.lam is not None else ZERO)

    def kinks(self) -> list:
        """The kinks of sigma as a function of z (sub-neurons with alpha_l != 0), as candidates."""
        return sorted({-g / a for a, g in zip(self.alpha, self.gamma) if a != 0})

    def pre(self, x: Sequence[fmpq]) -> list:
        return [dot(w, x) for w in self.W]

    def __call__(self, x: Sequence[fmpq]) -> list:
        s = [self.sigma(z) for z in self.pre(x)]
        return [sum((a[c] * v for a, v in zip(self.A, s)), ZERO) for c in range(self.k)]

    def flat(self) -> list:
        """theta_N in the order W, A, alpha, gamma, beta, [lam], [mu]."""
        out = [v for r in self.W for v in r] + [v for r in self.A for v in r] + list(self.alpha) + \
            list(self.gamma) + list(self.beta)
        return out + ([self.lam] if self.lam is not None else []) + ([self.mu] if self.mu is not None else [])

    def with_flat(self, v: Sequence[fmpq]) -> "TrainableNet":
        """The same architecture with parameters theta_N = v (the order of :meth:`flat`)."""
        o, m, d, k, L = self.index(), self.m, self.d, self.k, self.L
        W = [list(v[o["W"] + j * d:o["W"] + (j + 1) * d]) for j in range(m)]
        A = [list(v[o["A"] + j * k:o["A"] + (j + 1) * k]) for j in range(m)]
        return TrainableNet(W, A, list(v[o["alpha"]:o["alpha"] + L]), list(v[o["gamma"]:o["gamma"] + L]),
                            list(v[o["beta"]:o["beta"] + L]), v[o["lam"]] if "lam" in o else None,
                            v[o["mu"]] if "mu" in o else None, self.const)

    def index(self) -> dict:
        """Offsets of the parameter groups in theta_N."""
        m, d, k, L = self.m, self.d, self.k, self.L
        o = {"W": 0, "A": m * d, "alpha": m * d + m * k}
        o["gamma"] = o["alpha"] + L
        o["beta"] = o["gamma"] + L
        nxt = o["beta"] + L
        if self.lam is not None:
            o["lam"] = nxt
            nxt += 1
        if self.mu is not None:
            o["mu"] = nxt
        return o

    def to_json(self) -> dict:
        s = lambda v: None if v is None else str(v)     # noqa: E731
        return {"W": [[str(v) for v in r] for r in self.W], "A": [[str(v) for v in r] for r in self.A],
                "alpha": [str(v) for v in self.alpha], "gamma": [str(v) for v in self.gamma],
                "beta": [str(v) for v in self.beta], "lam": s(self.lam), "mu": s(self.mu), "const": self.const}

    @classmethod
    def from_json(cls, obj: dict) -> "TrainableNet":
        opt = lambda v: None if v is None else q(v)     # noqa: E731
        return cls([qvec(r) for r in obj["W"]], [qvec(r) for r in obj["A"]], qvec(obj["alpha"]),
                   qvec(obj["gamma"]), qvec(obj["beta"]), opt(obj.get("lam")), opt(obj.get("mu")),
                   int(obj.get("const", -1)))


# ---------------------------------------------------------------------------------------------
# the expansion and its Jacobian
# ---------------------------------------------------------------------------------------------

def expand(net: TrainableNet) -> tuple[list, list, list]:
    """(W_E, A_E, labels) of the expanded ReLU network (see the module doc)."""
    d, ci = net.d, net.ci
    e1 = [fmpq(1) if i == ci else ZERO for i in range(d)]
    WE, AE, labels = [], [], []
    for j in range(net.m):
        w, a = net.W[j], net.A[j]
        for l_ in range(net.L):
            WE.append([net.alpha[l_] * w[i] + net.gamma[l_] * e1[i] for i in range(d)])
            AE.append([net.beta[l_] * v for v in a])
            labels.append(f"sub(neuron {j}, sub-neuron {l_})")
        if net.lam is not None:
            WE.append(list(w))
            AE.append([net.lam * v for v in a])
            labels.append(f"lin+(neuron {j})")
            WE.append([-v for v in w])
            AE.append([-net.lam * v for v in a])
            labels.append(f"lin-(neuron {j})")
        if net.mu is not None:
            WE.append(list(e1))
            AE.append([net.mu * v for v in a])
            labels.append(f"const(neuron {j})")
    return WE, AE, labels


def expanded_width(net: TrainableNet) -> int:
    return net.m * (net.L + 2 * (net.lam is not None) + (net.mu is not None))


def phi_jacobian(net: TrainableNet) -> list:
    """DPhi (P_E x P_N): rows theta_E = (W_E row-major, A_E row-major), columns theta_N."""
    m, d, k, L = net.m, net.d, net.k, net.L
    o = net.index()
    M = expanded_width(net)
    PE = M * (d + k)
    D = [[ZERO] * net.P for _ in range(PE)]
    ci = net.ci
    J = 0

    def wrow(J, i):
        return D[J * d + i]

    def arow(J, c):
        return D[M * d + J * k + c]

    for j in range(m):
        w, a = net.W[j], net.A[j]
        for l_ in range(L):
            for i in range(d):
                r = wrow(J, i)
                r[o["W"] + j * d + i] = net.alpha[l_]
                r[o["alpha"] + l_] = w[i]
                if i == ci:
                    r[o["gamma"] + l_] = fmpq(1)
            for c in range(k):
                r = arow(J, c)
                r[o["A"] + j * k + c] = net.beta[l_]
                r[o["beta"] + l_] = a[c]
            J += 1
        if net.lam is not None:
            for sgn in (1, -1):
                for i in range(d):
                    wrow(J, i)[o["W"] + j * d + i] = fmpq(sgn)
                for c in range(k):
                    r = arow(J, c)
                    r[o["A"] + j * k + c] = sgn * net.lam
                    r[o["lam"]] = sgn * a[c]
                J += 1
        if net.mu is not None:
            for c in range(k):
                r = arow(J, c)
                r[o["A"] + j * k + c] = net.mu
                r[o["mu"]] = a[c]
            J += 1
    return D


def phi_flat(net: TrainableNet) -> list:
    """theta_E = Phi(theta_N), flattened as (W_E row-major, A_E row-major)."""
    WE, AE, _ = expand(net)
    return [v for r in WE for v in r] + [v for r in AE for v in r]


def phi_jacobian_by_differences(net: TrainableNet) -> list:
    """DPhi by exact central differences (Phi(theta + e_p) - Phi(theta - e_p)) / 2: exact because every
    entry of Phi is a polynomial of degree <= 2 (a central difference differentiates quadratics exactly)."""
    th = net.flat()
    cols = []
    for p in range(net.P):
        up = [v + (1 if i == p else 0) for i, v in enumerate(th)]
        dn = [v - (1 if i == p else 0) for i, v in enumerate(th)]
        cols.append([(a - b) / 2 for a, b in zip(phi_flat(net.with_flat(up)), phi_flat(net.with_flat(dn)))])
    return [[cols[p][r] for p in range(net.P)] for r in range(len(cols[0]))]


# ---------------------------------------------------------------------------------------------
# exact gradients (smooth points)
# ---------------------------------------------------------------------------------------------

def narrow_features(net: TrainableNet, x: Sequence[fmpq]) -> list:
    """d f_c / d theta_N at x, computed directly on the narrow view (k lists of P_N numbers)."""
    o = net.index()
    m, d, k, L = net.m, net.d, net.k, net.L
    zs = net.pre(x)
    out = [[ZERO] * net.P for _ in range(k)]
    for c in range(k):
        g = out[c]
        for j in range(m):
            z, a = zs[j], net.A[j][c]
            s = net.sigma_slope(z)
            for i in range(d):
                g[o["W"] + j * d + i] = a * s * x[i]
            g[o["A"] + j * k + c] = net.sigma(z)
            for l_ in range(L):
                u = net.alpha[l_] * z + net.gamma[l_]
                if u > 0:
                    g[o["alpha"] + l_] += a * net.beta[l_] * z
                    g[o["gamma"] + l_] += a * net.beta[l_]
                    g[o["beta"] + l_] += a * u
            if net.lam is not None:
                g[o["lam"]] += a * z
            if net.mu is not None:
                g[o["mu"]] += a
    return out


def narrow_grad(net: TrainableNet, X: list, Y: list) -> list:
    """grad of the half_mean loss (1/2n) sum_i ||f(x_i) - y_i||^2 in theta_N."""
    n = len(X)
    g = [ZERO] * net.P
    for x, y in zip(X, Y):
        e = [fv - yv for fv, yv in zip(net(x), y)]
        for c, row in enumerate(narrow_features(net, x)):
            if e[c] != 0:
                g = [u + e[c] * v for u, v in zip(g, row)]
    return [v / n for v in g]


def expanded_feature_rows(WE: list, AE: list, X: list) -> list:
    """J_E^T as rows: for every expanded parameter, its feature d f_c(x_i) / d theta_E over (i, c)."""
    M, d, k = len(WE), len(WE[0]), len(AE[0])
    zs = [[dot(w, x) for w in WE] for x in X]
    rows_ = []
    for J in range(M):
        for i in range(d):
            rows_.append([AE[J][c] * (x[i] if zs[t][J] > 0 else ZERO) for t, x in enumerate(X) for c in range(k)])
    for J in range(M):
        for c0 in range(k):
            rows_.append([relu(zs[t][J]) if c == c0 else ZERO for t in range(len(X)) for c in range(k)])
    return rows_


def narrow_feature_rows(net: TrainableNet, X: list) -> list:
    """J_N^T as rows (P_N rows over (i, c))."""
    feats = [narrow_features(net, x) for x in X]
    return [[feats[t][c][p] for t in range(len(X)) for c in range(net.k)] for p in range(net.P)]


def matT_vec(D: list, v: list) -> list:
    """D^T v."""
    ncol = len(D[0]) if D else 0
    out = [ZERO] * ncol
    for row, x in zip(D, v):
        if x != 0:
            out = [u + x * r for u, r in zip(out, row)]
    return out


# ---------------------------------------------------------------------------------------------
# piecewise-linear comparison along lines
# ---------------------------------------------------------------------------------------------

def pl_profile(F, cands: list) -> tuple:
    """Exact profile of a continuous piecewise-linear F: R -> R^k that is affine between the sorted
    candidates: (knots where the slope really changes, slopes of the merged pieces, F(0)).  Raises
    ValueError if F is not affine on a piece (the candidate list is incomplete)."""
    cs = sorted(set(cands))
    if not cs:
        ends = [(fmpq(-1), fmpq(1))]
    else:
        ends = [(cs[0] - 2, cs[0])] + list(zip(cs, cs[1:])) + [(cs[-1], cs[-1] + 2)]
    slopes = []
    for a, b in ends:
        pts = [a, (2 * a + b) / 3, (a + 2 * b) / 3, b]
        vals = [F(t) for t in pts]
        s = [(vb - va) / (b - a) for va, vb in zip(vals[0], vals[-1])]
        for t, v in zip(pts, vals):
            if any(vv != va + sv * (t - a) for vv, va, sv in zip(v, vals[0], s)):
                raise ValueError(f"not affine on ({a}, {b})")
        slopes.append(s)
    knots, merged = [], [slopes[0]]
    for c, s in zip(cs, slopes[1:]):
        if s != merged[-1]:
            knots.append(c)
            merged.append(s)
    return knots, merged, F(ZERO)


def line_profiles(net: TrainableNet, WE: list, AE: list, p: list, u: list) -> tuple:
    """(narrow profile, expanded profile) of t -> f(p + t u) (p, u full input vectors; u has 0 in the
    constant column, p has 1)."""
    # narrow: the kinks of sigma pulled back through z_j(t) = s_j t + r_j
    cand_n = []
    for w in net.W:
        s, r = dot(w, u), dot(w, p)
        if s != 0:
            cand_n += [(zk - r) / s for zk in net.kinks()]
    # expanded: where a ReLU neuron's pre-activation crosses 0
    cand_e = []
    for w in WE:
        s, r = dot(w, u), dot(w, p)
        if s != 0:
            cand_e.append(-r / s)
    pb = Problem(obj_array([p]), obj_array([[0] * net.k]), RELU)
    pt = Point(obj_array(WE), obj_array(AE))
    at = lambda t: [pv + t * uv for pv, uv in zip(p, u)]   # noqa: E731
    narrow = pl_profile(lambda t: net(at(t)), cand_n)
    expanded = pl_profile(lambda t: network_outputs(pb, pt, [at(t)])[0], cand_e)
    return narrow, expanded


# ---------------------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------------------

LINEAR_PARTS = ("none", "lam", "lam+mu")
NONZERO = tuple(fmpq(p, q_) * sg for p, q_ in ((1, 1), (2, 1), (1, 2), (3, 1), (1, 3), (3, 2), (2, 3)) for sg in (1, -1))
VALUES = (fmpq(0),) + NONZERO


def trainable_net(src, max_draw: int = 2, max_m: int = 2, max_k: int = 2, max_L: int = 2,
                  linear: Sequence[str] = LINEAR_PARTS, min_L: int = 1) -> TrainableNet:
    """A narrow network with a trainable ReLU-sub-network activation; inputs of raw dimension 1..max_draw
    plus the constant column (last)."""
    draw = src.integer(1, max_draw)
    m, k, L = src.integer(1, max_m), src.integer(1, max_k), src.integer(min_L, max_L)
    lin = src.choice(tuple(linear))
    nz = lambda: src.choice(NONZERO)         # noqa: E731 - one draw per number: quick to shrink
    any_ = lambda: src.choice(VALUES)        # noqa: E731

    def nzvec(r):
        v = [any_() for _ in range(r)]
        if all(x == 0 for x in v):
            v[0] = fmpq(1)
        return v

    W = [nzvec(draw) + [any_()] for _ in range(m)]
    A = [nzvec(k) for _ in range(m)]
    alpha = [nz() for _ in range(L)]
    gamma = [any_() for _ in range(L)]
    beta = [nz() for _ in range(L)]
    lam = nz() if lin in ("lam", "lam+mu") else None
    mu = any_() if lin == "lam+mu" else None
    return TrainableNet(W, A, alpha, gamma, beta, lam, mu, -1)


def _point(src, d: int) -> list:
    return src.vector(d - 1, 3, (1, 1, 2, 3)) + [fmpq(1)]


def _near_kink(src, WE: list, d: int) -> list:
    """A data point close to (not on) the kink of a random expanded neuron, so that the data straddle
    the kinks (richer gradient features)."""
    x = _point(src, d)
    w = WE[src.integer(0, len(WE) - 1)]
    piv = next((i for i in range(d - 1) if w[i] != 0), None)
    if piv is None:
        return x
    rest = sum((w[i] * x[i] for i in range(d) if i != piv), ZERO)
    x[piv] = -rest / w[piv] + src.choice((fmpq(1, 2), fmpq(-1, 2), fmpq(1, 3), fmpq(-1, 3), fmpq(1), fmpq(-1)))
    return x


GRID_STEPS = (fmpq(1, 2), fmpq(1, 3), fmpq(2, 3), fmpq(3, 4), fmpq(1))
GRID_SHIFTS = (fmpq(0), fmpq(1, 7), fmpq(-1, 11), fmpq(2, 13), fmpq(-3, 17), fmpq(1, 19), fmpq(5, 23))


def _grid(src, n: int, d: int, smooth) -> list:
    """n points of an arithmetic progression along a random direction, centred near 0 (a few draws
    only), shifted by the first of a fixed list of small offsets that keeps every point off the kinks."""
    step = src.choice(GRID_STEPS)
    u = [src.choice((fmpq(1), fmpq(-1), fmpq(1, 2), fmpq(2))) for _ in range(d - 1)]
    u[0] = abs(u[0])
    p0 = [ZERO] + [src.rational(2, (1,)) for _ in range(d - 2)]
    for sh in GRID_SHIFTS:
        X = [[(step * (i - fmpq(n - 1, 2)) + sh) * v + c for v, c in zip(u, p0)] + [fmpq(1)] for i in range(n)]
        if all(smooth(x) for x in X):
            return X
    src.reject("grid points on a kink")


def _combo(src, basis: list, size: int) -> list:
    """A non-zero integer combination of the basis (zero if the basis is empty); the coefficients come
    from one draw (a seed), so that hypothesis shrinks it in one step."""
    if not basis:
        return [ZERO] * size
    rng = random.Random(src.integer(0, 999))
    coef = [rng.randint(-2, 2) for _ in basis]
    if all(c == 0 for c in coef):
        coef[0] = 1
    return [sum((c * b[t] for c, b in zip(coef, basis) if c), ZERO) for t in range(size)]


def trainable_instance(src, modes: Sequence[str] = ("narrow", "expanded", "random"), extra: tuple = (1, 3),
                       data: str = "random", **kw) -> Instance:
    """A smooth point: narrow network, data X (constant column last), targets Y = f(X) - e with the
    residual e chosen in the null space of J_N^T ('narrow': narrow-stationary by construction), of
    J_E^T ('expanded': expanded-stationary by construction) or random ('random').  ``data``: 'random'
    points (half of them close to a kink) or a 'grid' (few draws: quick to shrink).  problem/point are
    the EXPANDED ReLU network (a `relucert certify` input); meta holds the narrow view."""
    net = trainable_net(src, **kw)
    mode = src.choice(tuple(modes))
    d, k = net.d, net.k
    n = -(-(net.P + src.integer(*extra)) // k)     # n k > P_N: room for a non-zero residual
    WE, AE, labels = expand(net)
    smooth = lambda x: all(dot(w, x) != 0 for w in WE) and all(dot(w, x) != 0 for w in net.W)  # noqa: E731
    if data == "grid":
        X = _grid(src, n, d, smooth)
    else:
        X = []
        for _ in range(n):
            for _try in range(6):
                x = _near_kink(src, WE, d) if src.integer(0, 1) else _point(src, d)
                if smooth(x):
                    break
            else:
                src.reject("data point on a kink")
            X.append(x)
    F = [net(x) for x in X]
    nk = n * k
    if mode == "narrow":
        e = _combo(src, nullspace(narrow_feature_rows(net, X), nk), nk)
    elif mode == "expanded":
        e = _combo(src, nullspace(expanded_feature_rows(WE, AE, X), nk), nk)
    else:
        e = [src.rational() for _ in range(nk)]
    Y = [[F[t][c] - e[t * k + c] for c in range(k)] for t in range(n)]
    pb = Problem(obj_array(X), obj_array(Y), RELU, "half_mean")
    pt = Point(obj_array(WE), obj_array(AE))
    return Instance(pb, pt, f"trainable:{mode}", {"narrow": net.to_json(), "labels": labels, "mode": mode})


def function_instance(src, **kw) -> Instance:
    """A narrow network, data points (some on kinks of the sub-network or of the linear part), extra
    random probe inputs and random lines for the piecewise-linear comparison."""
    net = trainable_net(src, **kw)
    d = net.d
    X = []
    for _ in range(src.integer(2, 6)):
        x = _point(src, d)
        if src.integer(0, 2) == 0:      # put x on a kink: alpha_l (w_j . x) + gamma_l = 0, or w_j . x = 0
            j = src.integer(0, net.m - 1)
            ks = net.kinks() + ([ZERO] if net.lam is not None else [])
            piv = next((i for i in range(d - 1) if net.W[j][i] != 0), None)
            if ks and piv is not None:
                target = src.choice(tuple(ks))
                rest = sum((net.W[j][i] * x[i] for i in range(d) if i != piv), ZERO)
                x[piv] = (target - rest) / net.W[j][piv]
        X.append(x)
    probes = [_point(src, d) for _ in range(4)]
    lines = []
    if d == 2:
        lines.append([[ZERO, fmpq(1)], [fmpq(1), ZERO]])       # the whole scalar input line
    for _ in range(src.integer(1, 2)):
        p = _point(src, d)
        u = src.nonzero_vector(d - 1) + [ZERO]
        lines.append([p, u])
    Y = [[src.rational() for _ in range(net.k)] for _ in X]
    WE, AE, labels = expand(net)
    pb = Problem(obj_array(X), obj_array(Y), RELU, "half_mean")
    pt = Point(obj_array(WE), obj_array(AE))
    return Instance(pb, pt, "trainable:function", {"narrow": net.to_json(), "labels": labels, "probes": probes,
                                                   "lines": lines})


def _load(inst: Instance):
    net = TrainableNet.from_json(inst.meta["narrow"])
    pb, pt = inst.problem, inst.point
    WE, AE, _ = expand(net)
    if [list(r) for r in pt.W.tolist()] != WE or [list(r) for r in pt.A.tolist()] != AE:
        raise ValueError("the instance's expanded point is not the expansion of its narrow network")
    X = [list(r) for r in pb.X.tolist()]
    Y = [list(r) for r in pb.Y.tolist()]
    return net, pb, pt, X, Y


def _checked(res) -> str | None:
    try:
        require_valid(res.certificate)
    except Rejected as e:
        return f"the independent checker rejects the certificate ({res.verdict}): {e}"
    return None


def _neuron_of(res, labels: list) -> str:
    ev = res.certificate.get("evidence", {}).get("not_stationary", {})
    j = (ev.get("direction") or {}).get("neuron")
    return labels[j] if isinstance(j, int) and 0 <= j < len(labels) else "?"


# ---------------------------------------------------------------------------------------------
# claims
# ---------------------------------------------------------------------------------------------

PAPER = ("Apicella, Isgrò, Prevete, A simple and efficient architecture for trainable activation functions "
         "(Neurocomputing 2019, arXiv:1902.03306)")


@claim("a one-hidden-layer net whose shared trainable activation is a ReLU sub-network, sigma(z) = "
       "sum_l beta_l relu(alpha_l z + gamma_l) [+ lam z] [+ mu], IS a wider ReLU network: the expansion "
       "(neurons (alpha_l w_j + gamma_l e_1, beta_l a_j), (+-w_j, +-lam a_j), (e_1, mu a_j)) has width "
       "m (L + 2[lam] + [mu]) and equals the narrow view exactly at the data (kinks included) and at random "
       "rational inputs, and along random lines (the whole input line when the input is scalar) both have "
       "exactly the same kinks, slopes and values (each computed from its own breakpoints). Paper: the "
       "activation is learned as a small local sub-network trained with the network; read here with a "
       "shared ReLU sub-network plus an optional linear part",
       function_instance, name="trainable-expansion-exact", budget=400, theory=PAPER + " [our reading]",
       tags=("related", "trainable-activation"))
def trainable_expansion_exact(inst: Instance):
    net, pb, pt, X, _ = _load(inst)
    if pt.m != expanded_width(net):
        return counterexample(f"expanded width {pt.m} != m (L + 2[lam] + [mu]) = {expanded_width(net)}")
    probes = [qvec(x) for x in inst.meta.get("probes", [])]
    pts = X + probes
    got = network_outputs(pb, pt, pts)
    for x, fe in zip(pts, got):
        if net(x) != fe:
            return counterexample(f"at x = {[str(v) for v in x]}: narrow f = {net(x)} != expanded f = {fe}")
    nk = 0
    for p, u in inst.meta.get("lines", []):
        p, u = qvec(p), qvec(u)
        try:
            a, b = line_profiles(net, [list(r) for r in pt.W.tolist()], [list(r) for r in pt.A.tolist()], p, u)
        except ValueError as e:
            return counterexample(f"line {[str(v) for v in p]} + t {[str(v) for v in u]}: {e}")
        if a != b:
            return counterexample(f"line {[str(v) for v in p]} + t {[str(v) for v in u]}: narrow profile "
                                  f"(knots {[str(v) for v in a[0]]}) != expanded (knots {[str(v) for v in b[0]]})")
        nk += len(a[0])
    return held(f"{len(pts)} inputs and {len(inst.meta.get('lines', []))} lines ({nk} kinks) agree exactly")


@claim("chain rule through the expansion, at smooth points: DPhi (closed form) equals the exact central "
       "differences of the expansion map, and grad L_narrow (computed directly on the "
       "trainable-activation net) = DPhi^T grad L_expanded (relucert's reference gradient of the ReLU "
       "network) exactly; hence whenever certify finds the expanded point stationary the narrow view is "
       "stationary (grad = 0), certify's verdict matches grad L_expanded = 0, and a narrow-stationary "
       "point IS expanded-stationary whenever DPhi has full row rank (rank = number of expanded "
       "parameters, e.g. L = 1, no linear part). What holds in general: narrow-stationary => expanded-"
       "stationary iff the residual is orthogonal to the expanded gradient features",
       trainable_instance, name="trainable-stationary-pullback", budget=200, theory=PAPER + " [derived]",
       tags=("related", "trainable-activation"))
def trainable_stationary_pullback(inst: Instance):
    net, pb, pt, X, Y = _load(inst)
    if not smooth_point(pb, pt):
        return skipped("not a smooth point (a data point on a kink)")
    gN = narrow_grad(net, X, Y)
    gW, gA = ex.gradient(pb, pt.W, pt.A)
    gE = [v for r in gW for v in r] + [v for r in gA for v in r]
    D = phi_jacobian(net)
    if D != phi_jacobian_by_differences(net):
        return counterexample("DPhi differs from the exact central differences of the expansion map")
    pull = matT_vec(D, gE)
    if gN != pull:
        bad = [i for i, (u, v) in enumerate(zip(gN, pull)) if u != v]
        return counterexample(f"chain rule fails: grad L_N != DPhi^T grad L_E at narrow parameters {bad[:6]}")
    res = certify(pb, pt)
    bad = _checked(res)
    if bad:
        return counterexample(bad)
    if res.verdict == "inconclusive" and "could not be decided" in res.reason:
        return skipped(f"expanded stationarity undecided: {res.reason}")
    stat_e = res.verdict != "not_stationary"
    zero_e = all(v == 0 for v in gE)
    if stat_e != zero_e:
        return counterexample(f"smooth point: certify says {res.verdict} but grad L_E == 0 is {zero_e}")
    zero_n = all(v == 0 for v in gN)
    if stat_e and not zero_n:
        return counterexample(f"expanded point {res.verdict} but the narrow gradient is not 0")
    rk, PE = mat_rank(D, net.P), len(D)
    if zero_n and rk == PE and not stat_e:
        return counterexample(f"DPhi has full row rank {rk} and the narrow view is stationary, but certify says "
                              f"{res.verdict} ({res.reason})")
    return held(f"{inst.meta.get('mode')}: narrow stationary {zero_n}, expanded {res.verdict}, rank DPhi {rk}/{PE}")


def transfer_instance(src) -> Instance:
    return trainable_instance(src, modes=("narrow",), extra=(2, 6), data="grid")


@claim("(a conjecture expected to FAIL) every stationary point of the narrow view (trainable ReLU-sub-network "
       "activation; exact, smooth, narrow gradient exactly 0 by construction) maps to a stationary point of "
       "the expanded ReLU network (decided by certify). False: the expanded network has more parameters "
       "(each sub-neuron of each neuron moves on its own), and certify finds an exact descent direction; "
       "the converse (expanded stationary => narrow stationary) holds, see trainable-stationary-pullback",
       transfer_instance, name="trainable-stationary-transfer", budget=60, expect="counterexample",
       theory=PAPER + " [derived]", tags=("related", "trainable-activation"))
def trainable_stationary_transfer(inst: Instance):
    net, pb, pt, X, Y = _load(inst)
    if not smooth_point(pb, pt):
        return skipped("not a smooth point (a data point on a kink)")
    if any(v != 0 for v in narrow_grad(net, X, Y)):
        return skipped("the narrow view is not stationary")
    res = certify(pb, pt)
    bad = _checked(res)
    if bad:
        return skipped(f"certificate rejected: {bad}")
    D = phi_jacobian(net)
    rk, PE = mat_rank(D, net.P), len(D)
    if res.verdict == "not_stationary":
        ev = res.certificate["evidence"]["not_stationary"]
        return counterexample(
            f"narrow view stationary (L = {net.L}, linear part {net.lam is not None}/{net.mu is not None}, "
            f"rank DPhi {rk} < {PE} expanded parameters) but the expanded ReLU network is not: {res.reason}; "
            f"expanded neuron {_neuron_of(res, inst.meta.get('labels', []))}, directional derivative "
            f"{ev.get('derivative')}, loss {res.loss} -> {ev.get('loss_at_step')} at step {ev.get('step')}",
            reason=res.reason, derivative=ev.get("derivative"), rank=rk, expanded_parameters=PE)
    if res.verdict == "inconclusive" and "could not be decided" in res.reason:
        return skipped(f"expanded stationarity undecided: {res.reason}")
    return held(f"expanded point also stationary ({res.verdict}; rank DPhi {rk}/{PE})")
