"""Tangent sensitivity of one-hidden-layer ReLU-like networks, exactly (issue 16, related literature).

Paper: B. Daróczy, "Tangent space sensitivity and distribution of linear regions in ReLU networks"
(arXiv:2006.06780; journal version "Gaussian perturbations in ReLU networks and the arrangement of
activation regions", Mathematics 10(7):1123, 2022).  What the paper says, as far as we could read it:
it defines the *tangent sensitivity* of a network at an input x as the sensitivity of the parameter
gradient (the tangent vector d f / d theta that an unlabelled example x induces) to changes of x; it
derives "easily computable" upper bounds for fully connected ReLU networks, among them a layer-wise
norm bound that does not depend on the input (built from the layer-wise l_inf norms of the
parameters) and a bound that depends on the input through the number of active nodes; and it ties
the sensitivity to the input-output paths of the network and to the distribution of the activation
regions hit by the data.  We could not read the exact formulas of those bounds, so the claims below
check our own one-hidden-layer specialisation of the two kinds of bound (stated in full below).

The network.  f(x) = sum_j a_j sigma(w_j . x + b_j), x in R^d, a_j in R^k, sigma ReLU-like
(sigma(z) = alpha_plus z for z > 0, alpha_minus z for z <= 0).  Parameters theta, in this order,
neuron by neuron: w_j (d entries), b_j, a_j (k entries): P = m (d + 1 + k).

Tangent sensitivity.  T(x) = d/dx (d f / d theta)(x): for each output c a P x d matrix T_c(x); we
stack the k outputs (a k P x d matrix).  Off the kinks (w_j . x + b_j != 0 whenever w_j != 0), with
s_j = sigma'(w_j . x + b_j) in {alpha_plus, alpha_minus}:

    rows of a_{j c'} in T_c:   [c = c'] s_j w_j^T
    rows of w_j in T_c:        a_{j c} s_j I_d
    row of b_j:                0

so T is constant on each activation region and depends on x only through the activation pattern
(the sign vector of the pre-activations).  Its squared Frobenius norm is

    ||T(x)||_F^2 = sum_j s_j^2 (k ||w_j||^2 + d ||a_j||^2)                          (exact)
                 <= (N_+ ap^2 + N_- am^2) k d (||W||_max^2 + ||A||_max^2)    (active-node bound)
                 <= m max(ap^2, am^2) k d (||W||_max^2 + ||A||_max^2)        (layer-wise l_inf bound)

with N_+ / N_- the number of neurons with positive / non-positive pre-activation at x and ||.||_max
the largest absolute entry.  Everything is exact (squared norms, no square roots).

The independent computation: :func:`fd_tangent` differentiates the exact parameter gradient
:func:`param_grad` by an exact finite difference with a step small enough to stay inside the
activation region (the gradient is affine there), without using the closed form.

Claims: ``tangent-bounds`` (closed form = finite differences, and the two bounds), ``tangent-regions``
(distinct tangent matrices = distinct activation patterns hit), ``tangent-linear-regions`` (expected to
fail: distinct tangent matrices = distinct linear pieces of f).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from flint import fmpq

from relucert.claims import generators as gen
from relucert.claims.api import claim, counterexample, held, skipped
from relucert.claims.instance import Instance, q, qvec

ZERO = fmpq(0)


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------

@dataclass
class ShallowNet:
    W: list            # m x d (fmpq)
    b: list            # m
    A: list            # m x k
    ap: fmpq = fmpq(1)
    am: fmpq = fmpq(0)

    @property
    def m(self) -> int:
        return len(self.W)

    @property
    def d(self) -> int:
        return len(self.W[0]) if self.W else 0

    @property
    def k(self) -> int:
        return len(self.A[0]) if self.A else 0

    @property
    def P(self) -> int:
        return self.m * (self.d + 1 + self.k)

    def pre(self, x: Sequence[fmpq]) -> list:
        return [sum((w * v for w, v in zip(row, x)), ZERO) + bb for row, bb in zip(self.W, self.b)]

    def slope(self, z: fmpq) -> fmpq:
        return self.ap if z > 0 else self.am

    def __call__(self, x: Sequence[fmpq]) -> list:
        zs = self.pre(x)
        return [sum((a[c] * self.slope(z) * z for a, z in zip(self.A, zs)), ZERO) for c in range(self.k)]

    def pattern(self, x: Sequence[fmpq]) -> tuple:
        """The activation pattern: (z_j > 0) per neuron."""
        return tuple(z > 0 for z in self.pre(x))

    def on_kink(self, x: Sequence[fmpq]) -> bool:
        """x lies on the kink hyperplane of a neuron with w_j != 0 (T(x) is not defined there)."""
        return any(z == 0 and any(v != 0 for v in row) for z, row in zip(self.pre(x), self.W))

    def to_json(self) -> dict:
        return {"W": [[str(v) for v in r] for r in self.W], "b": [str(v) for v in self.b],
                "A": [[str(v) for v in r] for r in self.A],
                "activation": {"alpha_plus": str(self.ap), "alpha_minus": str(self.am)}}

    @classmethod
    def from_json(cls, obj: dict) -> "ShallowNet":
        act = obj.get("activation", {"alpha_plus": "1", "alpha_minus": "0"})
        return cls([qvec(r) for r in obj["W"]], qvec(obj["b"]), [qvec(r) for r in obj["A"]],
                   q(act["alpha_plus"]), q(act["alpha_minus"]))


def param_index(net: ShallowNet, j: int, what: str, i: int = 0) -> int:
    """Index of parameter w_j[i] ('w'), b_j ('b') or a_j[i] ('a') in theta."""
    base = j * (net.d + 1 + net.k)
    return base + {"w": i, "b": net.d, "a": net.d + 1 + i}[what]


def param_grad(net: ShallowNet, x: Sequence[fmpq]) -> list:
    """d f_c / d theta at x, for each output c (k lists of P numbers); sigma'(0) = alpha_minus."""
    zs = net.pre(x)
    out = [[ZERO] * net.P for _ in range(net.k)]
    for j, z in enumerate(zs):
        s = net.slope(z)
        h = s * z
        for c in range(net.k):
            g = out[c]
            for i in range(net.d):
                g[param_index(net, j, "w", i)] = net.A[j][c] * s * x[i]
            g[param_index(net, j, "b")] = net.A[j][c] * s
            g[param_index(net, j, "a", c)] = h
    return out


# ---------------------------------------------------------------------------------------------
# tangent sensitivity
# ---------------------------------------------------------------------------------------------

def tangent_of_pattern(net: ShallowNet, pattern: Sequence[bool]) -> tuple:
    """The closed form: k matrices (P x d, tuples of tuples) of the activation region ``pattern``."""
    out = []
    for c in range(net.k):
        M = [[ZERO] * net.d for _ in range(net.P)]
        for j in range(net.m):
            s = net.ap if pattern[j] else net.am
            for i in range(net.d):
                M[param_index(net, j, "a", c)][i] = s * net.W[j][i]
                M[param_index(net, j, "w", i)][i] = net.A[j][c] * s
        out.append(tuple(tuple(r) for r in M))
    return tuple(out)


def tangent(net: ShallowNet, x: Sequence[fmpq]) -> tuple:
    """T(x) by the closed form (x off the kinks; on a kink, the z <= 0 side's matrix)."""
    return tangent_of_pattern(net, net.pattern(x))


def region_step(net: ShallowNet, x: Sequence[fmpq]) -> fmpq:
    """A step h > 0 such that x + t e_i keeps every pre-activation's sign for |t| <= h, every i."""
    h = fmpq(1)
    for z, row in zip(net.pre(x), net.W):
        for v in row:
            if v != 0 and z != 0:
                h = min(h, abs(z) / abs(v) / 2)
    return h


def fd_tangent(net: ShallowNet, x: Sequence[fmpq]) -> tuple:
    """T(x) by exact finite differences of :func:`param_grad` (x off the kinks): column i is
    (g(x + h e_i) - g(x)) / h with h inside the activation region, exact because g is affine there."""
    h = region_step(net, x)
    g0 = param_grad(net, x)
    cols = []
    for i in range(net.d):
        xi = list(x)
        xi[i] = xi[i] + h
        g1 = param_grad(net, xi)
        cols.append([[(u - v) / h for u, v in zip(r1, r0)] for r1, r0 in zip(g1, g0)])
    return tuple(tuple(tuple(cols[i][c][p] for i in range(net.d)) for p in range(net.P)) for c in range(net.k))


def frob2(T: tuple) -> fmpq:
    return sum((v * v for M in T for r in M for v in r), ZERO)


def frob2_formula(net: ShallowNet, pattern: Sequence[bool]) -> fmpq:
    """sum_j s_j^2 (k ||w_j||^2 + d ||a_j||^2)."""
    tot = ZERO
    for j in range(net.m):
        s = net.ap if pattern[j] else net.am
        tot += s * s * (net.k * sum((v * v for v in net.W[j]), ZERO) + net.d * sum((v * v for v in net.A[j]), ZERO))
    return tot


def _maxsq(rows_) -> fmpq:
    return max((v * v for r in rows_ for v in r), default=ZERO)


def bound_active(net: ShallowNet, pattern: Sequence[bool]) -> fmpq:
    """(N_+ ap^2 + N_- am^2) k d (||W||_max^2 + ||A||_max^2): depends on x through the active nodes."""
    npos = sum(1 for p in pattern if p)
    nneg = net.m - npos
    return (npos * net.ap ** 2 + nneg * net.am ** 2) * net.k * net.d * (_maxsq(net.W) + _maxsq(net.A))


def bound_layerwise(net: ShallowNet) -> fmpq:
    """m max(ap^2, am^2) k d (||W||_max^2 + ||A||_max^2): input-free, layer-wise l_inf norms."""
    return net.m * max(net.ap ** 2, net.am ** 2) * net.k * net.d * (_maxsq(net.W) + _maxsq(net.A))


def input_jacobian(net: ShallowNet, x: Sequence[fmpq]) -> tuple:
    """d f / d x (k x d) at x off the kinks: the slope of the linear piece of f."""
    zs = net.pre(x)
    return tuple(tuple(sum((net.A[j][c] * net.slope(zs[j]) * net.W[j][i] for j in range(net.m)), ZERO)
                       for i in range(net.d)) for c in range(net.k))


def affine_piece(net: ShallowNet, x: Sequence[fmpq]) -> tuple:
    """(slope, intercept) of the affine map f coincides with around x (x off the kinks)."""
    J = input_jacobian(net, x)
    fx = net(x)
    return J, tuple(fx[c] - sum((J[c][i] * x[i] for i in range(net.d)), ZERO) for c in range(net.k))


# ---------------------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------------------

NEURON_KINDS = ("random", "random", "zero_output", "cancel", "constant")
NONZERO = tuple(fmpq(p, q_) * sg for p, q_ in ((1, 1), (2, 1), (1, 2), (3, 1), (1, 3), (3, 2), (2, 3)) for sg in (1, -1))
VALUES = (fmpq(0),) + NONZERO


def _value(src, nonzero: bool = False) -> fmpq:
    """One small rational from one draw (quick to shrink; 0 first, then 1, -1, 2, ...)."""
    return src.choice(NONZERO if nonzero else VALUES)


def _vec(src, r: int, nonzero: bool = False) -> list:
    v = [_value(src) for _ in range(r)]
    if nonzero and all(x == 0 for x in v):
        v[0] = fmpq(1)
    return v


DATA_KINDS = ("random", "random", "near", "kink", "straddle")


def _straddle(src, net: ShallowNet, x: list) -> list:
    """Two points x +- h e_i on both sides of the kink hyperplane of a random neuron j (x is moved onto
    it), with h so small that no other hyperplane is crossed: their patterns differ exactly in j and
    the neurons whose hyperplane also passes through the moved x (e.g. a cancelling twin)."""
    j = src.integer(0, net.m - 1)
    piv = next((i for i, v in enumerate(net.W[j]) if v != 0), None)
    if piv is None:
        return [x]
    rest = sum((net.W[j][i] * x[i] for i in range(net.d) if i != piv), ZERO) + net.b[j]
    x = list(x)
    x[piv] = -rest / net.W[j][piv]
    h = fmpq(1)
    for z, row in zip(net.pre(x), net.W):
        if z != 0 and row[piv] != 0:
            h = min(h, abs(z) / abs(row[piv]) / 2)
    return [[v + (h if i == piv else 0) for i, v in enumerate(x)], [v - (h if i == piv else 0) for i, v in enumerate(x)]]


def tangent_instance(src, max_d: int = 3, max_m: int = 4, max_k: int = 2, min_n: int = 3, max_n: int = 8,
                     kinds: Sequence[str] = NEURON_KINDS, data: Sequence[str] = DATA_KINDS) -> Instance:
    """A one-hidden-layer network with rational weights (random neurons, zero-output neurons a_j = 0,
    a neuron cancelling an earlier one (same w, b and -a), constant neurons w_j = 0) and a data set:
    random points, neighbours inside the same activation region, points on a kink hyperplane, and
    pairs straddling one hyperplane (``data``: the kinds of points drawn)."""
    act = gen.activation(src, ("relu", "relu", "leaky", "abs", "random"))
    d, m, k = src.integer(1, max_d), src.integer(1, max_m), src.integer(1, max_k)
    W, b, A, used = [], [], [], []
    for j in range(m):
        kind = src.choice(tuple(kinds))
        if kind == "cancel" and j == 0:
            kind = "random"
        if kind == "cancel":
            p = src.integer(0, j - 1)
            W.append(list(W[p]))
            b.append(b[p])
            A.append([-v for v in A[p]])
        elif kind == "constant":
            W.append([ZERO] * d)
            b.append(_value(src, True))
            A.append(_vec(src, k, True))
        else:
            W.append(_vec(src, d, True))
            b.append(_value(src))
            A.append([ZERO] * k if kind == "zero_output" else _vec(src, k, True))
        used.append(kind)
    net = ShallowNet(W, b, A, act.alpha_plus, act.alpha_minus)
    n = src.integer(min_n, max_n)
    X: list = []
    for _ in range(n):
        how = src.choice(tuple(data))
        if how == "near" and X:
            base = X[src.integer(0, len(X) - 1)]
            if net.on_kink(base):
                how = "random"
            else:
                h = region_step(net, base)
                i = src.integer(0, d - 1)
                x = list(base)
                x[i] = x[i] + h * src.choice((fmpq(1), fmpq(-1), fmpq(1, 2)))
                X.append(x)
                continue
        x = _vec(src, d)
        if how == "straddle":
            X += _straddle(src, net, x)
            continue
        if how == "kink":
            j = src.integer(0, m - 1)
            piv = next((i for i, v in enumerate(W[j]) if v != 0), None)
            if piv is not None:     # move coordinate piv so that w_j . x + b_j = 0
                rest = sum((W[j][i] * x[i] for i in range(d) if i != piv), ZERO) + b[j]
                x[piv] = -rest / W[j][piv]
        X.append(x)
    return Instance(None, None, "tangent", {"network": net.to_json(), "X": X, "neurons": used})


def _load(inst: Instance) -> tuple[ShallowNet, list]:
    return ShallowNet.from_json(inst.meta["network"]), [qvec(x) for x in inst.meta["X"]]


def _show(T: tuple) -> list:
    return [[[str(v) for v in r] for r in M] for M in T]


# ---------------------------------------------------------------------------------------------
# claims
# ---------------------------------------------------------------------------------------------

PAPER = ("Daróczy, Tangent space sensitivity and distribution of linear regions in ReLU networks "
         "(arXiv:2006.06780; Mathematics 10(7):1123, 2022)")


@claim("tangent sensitivity T(x) = d/dx (df/dtheta) of a one-hidden-layer ReLU-like network "
       "f(x) = sum_j a_j sigma(w_j.x + b_j), computed EXACTLY: at every data point off the kinks the "
       "closed form of its activation region (a-rows s_j w_j^T, w-rows a_jc s_j I_d, b-rows 0) equals the "
       "exact finite difference of the exact parameter gradient inside the region, and "
       "||T||_F^2 = sum_j s_j^2 (k||w_j||^2 + d||a_j||^2) <= (N_+ ap^2 + N_- am^2) k d (||W||_max^2 + ||A||_max^2) "
       "[active-node bound] <= m max(ap^2, am^2) k d (||W||_max^2 + ||A||_max^2) [input-free layer-wise l_inf "
       "bound]. Paper: the tangent sensitivity has easily computable upper bounds, one input-free from the "
       "layer-wise l_inf norms of the parameters and one through the number of active nodes; we could not "
       "read its formulas, so this checks our one-hidden-layer specialisation of both (exact rationals)",
       tangent_instance, name="tangent-bounds", budget=300, theory=PAPER + " [derived specialisation]",
       tags=("related", "tangent"))
def tangent_bounds(inst: Instance):
    net, X = _load(inst)
    S1 = bound_layerwise(net)
    used = 0
    for x in X:
        if net.on_kink(x):
            continue
        used += 1
        pat = net.pattern(x)
        T = tangent_of_pattern(net, pat)
        Tfd = fd_tangent(net, x)
        if T != Tfd:
            return counterexample(f"x = {[str(v) for v in x]}: closed form != exact finite difference",
                                  closed=_show(T), finite_difference=_show(Tfd))
        f2 = frob2(Tfd)
        if f2 != frob2_formula(net, pat):
            return counterexample(f"x = {[str(v) for v in x]}: ||T||_F^2 = {f2} != formula {frob2_formula(net, pat)}")
        S2 = bound_active(net, pat)
        if not f2 <= S2:
            return counterexample(f"x = {[str(v) for v in x]}: ||T||_F^2 = {f2} > active-node bound {S2}")
        if not S2 <= S1:
            return counterexample(f"active-node bound {S2} > layer-wise bound {S1}")
    if not used:
        return skipped("every data point is on a kink")
    return held(f"{used} points: closed form = finite difference, bounds hold (layer-wise {S1})")


def _distinct(net: ShallowNet, X: list) -> dict:
    off = [x for x in X if not net.on_kink(x)]
    return {"points": len(off),
            "tangents": len({fd_tangent(net, x) for x in off}),
            "patterns": len({net.pattern(x) for x in off}),
            "jacobians": len({input_jacobian(net, x) for x in off}),
            "affine_pieces": len({affine_piece(net, x) for x in off})}


@claim("one hidden layer: over a data set (points on kinks left out), the number of distinct tangent-"
       "sensitivity matrices T(x) (each computed by exact finite differences, without the activation "
       "pattern) EQUALS the number of distinct activation patterns hit, and is >= the number of distinct "
       "linear pieces of f hit (distinct affine maps, hence distinct input Jacobians). Equality holds "
       "because a neuron whose pattern differs between two data points has w_j != 0, and its a-rows "
       "s_j w_j^T then differ (alpha_plus != alpha_minus). Paper: tangent sensitivity is connected to the "
       "distribution of the activation regions realised by the data; this is our exact reading of it",
       tangent_instance, name="tangent-regions", budget=300, theory=PAPER + " [derived]",
       tags=("related", "tangent"))
def tangent_regions(inst: Instance):
    net, X = _load(inst)
    c = _distinct(net, X)
    if not c["points"]:
        return skipped("every data point is on a kink")
    if c["tangents"] != c["patterns"]:
        return counterexample(f"{c['tangents']} distinct tangent sensitivities but {c['patterns']} activation "
                              f"patterns over {c['points']} points", **c)
    if not c["tangents"] >= c["affine_pieces"] >= c["jacobians"]:
        return counterexample(f"counts out of order: {c}", **c)
    return held(f"{c['patterns']} patterns = {c['tangents']} tangents >= {c['affine_pieces']} affine pieces", **c)


@claim("(a conjecture expected to FAIL) one hidden layer: the number of distinct tangent-sensitivity "
       "matrices over a data set equals the number of distinct LINEAR pieces of f hit (distinct affine maps "
       "x -> f(x)). False: T sees the activation region of a neuron that does not change f there (a_j = 0, "
       "or two neurons with the same hyperplane and opposite a): more tangent matrices than linear pieces. "
       "The paper's 'distribution of linear regions' must be read as activation regions",
       (tangent_instance, {"kinds": ("random", "zero_output", "cancel"), "data": ("random", "straddle"),
                         "max_m": 3, "max_d": 2, "max_n": 6}), name="tangent-linear-regions",
       budget=100, expect="counterexample",
       theory=PAPER + " [derived: activation regions vs linear regions]", tags=("related", "tangent"))
def tangent_linear_regions(inst: Instance):
    net, X = _load(inst)
    c = _distinct(net, X)
    if not c["points"]:
        return skipped("every data point is on a kink")
    if c["tangents"] != c["affine_pieces"]:
        return counterexample(f"{c['tangents']} distinct tangent sensitivities (= {c['patterns']} activation "
                              f"patterns) but f has only {c['affine_pieces']} distinct linear pieces on the "
                              f"{c['points']} points (neurons: {inst.meta.get('neurons')})", **c)
    return held(f"{c['tangents']} tangents = {c['affine_pieces']} linear pieces", **c)
