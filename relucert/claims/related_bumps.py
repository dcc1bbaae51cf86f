"""Related literature (issue 16): Lapedes-Farber bumps ("How neural nets work", NIPS 1987, published
1988), built exactly for ReLU-like activations.

What the paper says (as we read it; it gives a construction, not an error bound).  A network with two
hidden layers approximates a function R^d -> R by a sum of localised bumps: in one dimension, two
shifted steep sigmoids of opposite sign make a bump; in d dimensions the first hidden layer builds
ridges (pairs of sigmoids along each coordinate), a second-layer neuron adds the ridges and
thresholds the sum, so it is on only where all ridges are on: a bump over a box; the output layer adds
the bumps weighted by function values, like a look-up table.

Here the activation is ReLU-like, rho(z) = alpha_plus z (z >= 0), alpha_minus z (z < 0), rational,
alpha_plus != alpha_minus, and the steep sigmoid is replaced by an exact ramp:

* 1-D trapezoid on [a, b] with margin e:  T(x) = c1 (rho(x-a) - rho(x-a-e) - rho(x-b+e) + rho(x-b)),
  c1 = 1 / ((alpha_plus - alpha_minus) e): 0 outside [a, b], 1 on [a+e, b-e], linear in between.
* d-D bump:  S(x) = sum_j T_j(x_j) - (d - 1) (the same as thresholding the 2d one-sided ramps
  ramp(x_j - a_j) + ramp(b_j - x_j), since T_j is their sum minus 1) and
  B(x) = c2 (rho(S) - rho(S - 1)) - alpha_minus c2,  c2 = 1 / (alpha_plus - alpha_minus), i.e. B is
  S clamped to [0, 1]: two second-layer neurons, an output weight and an output bias.
* the sum of bumps on the grid of M^d cells of width h = 1/M on [0,1]^d (margin e < h/2):
  F(x) = sum_c g(x_c) B_c(x) and D(x) = sum_c B_c(x), both outputs of one exact network.

Claims:

* ``bumps-indicator`` — B is exactly the indicator of the box away from the margins, on all of R^d:
  decided cell by cell on the grid of the first-layer breakpoints (on each cell the network is
  piecewise affine with pieces cut by the straddling second-layer hyperplanes; its exact minimum and
  maximum are taken at the vertices of the pieces, which are enumerated), plus exact evaluation against
  the closed form at the breakpoint grid and random rational points.
* ``bumps-sum-naive-bound`` — |F - g| <= Lip h sqrt(d) on [0,1]^d for a target g with Lipschitz
  constant Lip: expected to FAIL: the bumps vanish on the cell boundaries (and D < 1 in the margins),
  so F = 0 there whatever g is.
* ``bumps-sum-corrected-bound`` — the bound we derive: |F(x) - g(x)| <= Lip (h/2) sqrt(d) + (1 - D(x)) |g(x)|
  for all x in [0,1]^d (so <= Lip (h/2) sqrt(d) on the cores, where D = 1), since at most one bump is
  positive at x, B_c in [0, 1] and |x - x_c| <= (h/2) sqrt(d) on cell c.

The bounds are checked exactly at rational points (the breakpoint grid, cell centres, random points;
sqrt(d) by squaring) and rigorously between them: [0,1]^d is covered by the boxes of the breakpoint
grid, bisected where needed, and on each box F, D and g are enclosed by first-order affine forms with
exact rational coefficients and an exact rational remainder (interval arithmetic without rounding).
A neuron (or |.| in the target) whose argument changes sign on a box is handled by branching: each of
its two linear pieces gives one enclosure, and at every x of the box the true value is the branch with
the true signs, so the bound holds on the box if it holds for every branch (past a few branches, the
chord enclosure with a remainder is used).  The box maximum of an affine form is exact, so only the
products in (1 - D)|g| and the quadratic targets leave a remainder.

Where we could not read the paper's exact statement: Lapedes and Farber give the construction (with
sigmoids) and no error bound; the indicator property, both bounds and their proofs are ours.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Sequence

from flint import fmpq

from relucert.claims.api import claim, counterexample, held, skipped
from relucert.claims.instance import Instance, q, qvec

THEORY = "Lapedes & Farber 1988, How neural nets work (two hidden layers build bumps)"
Q = fmpq
ZERO, ONE = fmpq(0), fmpq(1)


# ---------------------------------------------------------------------------------------------
# ReLU-like networks with exact evaluation
# ---------------------------------------------------------------------------------------------

@dataclass
class PLNet:
    """h_0 = x, h_l = rho(W_l h_{l-1} + b_l), out = V h_L + c; rho(z) = ap z (z >= 0), am z (z < 0).
    Rows are stored sparse: a list of (column, weight) pairs."""
    Ws: list
    bs: list
    V: list
    c: list
    ap: fmpq
    am: fmpq
    d: int

    def rho(self, z):
        return self.ap * z if z >= 0 else self.am * z

    def __call__(self, x: Sequence) -> list:
        h = list(x)
        for W, b in zip(self.Ws, self.bs):
            h = [self.rho(sum((w * h[j] for j, w in row), ZERO) + bb) for row, bb in zip(W, b)]
        return [sum((w * h[j] for j, w in row), ZERO) + cc for row, cc in zip(self.V, self.c)]

    def preacts(self, x: Sequence) -> list:
        """Pre-activations of every hidden layer at x."""
        out, h = [], list(x)
        for W, b in zip(self.Ws, self.bs):
            z = [sum((w * h[j] for j, w in row), ZERO) + bb for row, bb in zip(W, b)]
            out.append(z)
            h = [self.rho(v) for v in z]
        return out

    def to_json(self) -> dict:
        s = lambda W: [[[j, str(w)] for j, w in row] for row in W]     # noqa: E731
        return {"alpha_plus": str(self.ap), "alpha_minus": str(self.am), "d": self.d,
                "layers": [{"W": s(W), "b": [str(v) for v in b]} for W, b in zip(self.Ws, self.bs)],
                "output": {"W": s(self.V), "b": [str(v) for v in self.c]}}

    @classmethod
    def from_json(cls, obj: dict) -> "PLNet":
        r = lambda W: [[(int(j), q(w)) for j, w in row] for row in W]  # noqa: E731
        return cls([r(L["W"]) for L in obj["layers"]], [qvec(L["b"]) for L in obj["layers"]],
                   r(obj["output"]["W"]), qvec(obj["output"]["b"]), q(obj["alpha_plus"]), q(obj["alpha_minus"]),
                   int(obj["d"]))


def _ridge_neurons(j: int, a: fmpq, b: fmpq, e: fmpq, c1: fmpq) -> tuple[list, list, list]:
    """The 4 first-layer neurons of the trapezoid on [a, b] in coordinate j: rows, biases, and the
    weights (c1, -c1, -c1, c1) with which they enter T_j."""
    rows = [[(j, ONE)] for _ in range(4)]
    biases = [-a, -a - e, -b + e, -b]
    return rows, biases, [c1, -c1, -c1, c1]


def bump_net(lo: Sequence, hi: Sequence, e: fmpq, ap: fmpq, am: fmpq) -> PLNet:
    """The Lapedes-Farber bump of the box prod [lo_j, hi_j] with margin e (output: B)."""
    d = len(lo)
    c1 = 1 / ((ap - am) * e)
    c2 = 1 / (ap - am)
    W1, b1, row2 = [], [], []
    for j in range(d):
        rows, biases, wts = _ridge_neurons(j, lo[j], hi[j], e, c1)
        for r, bb, w in zip(rows, biases, wts):
            row2.append((len(W1), w))
            W1.append(r)
            b1.append(bb)
    W2 = [list(row2), list(row2)]
    b2 = [-Q(d - 1), -Q(d)]
    return PLNet([W1, W2], [b1, b2], [[(0, c2), (1, -c2)]], [-am * c2], ap, am, d)


def bump_sum_net(M: int, d: int, e: fmpq, values: dict, ap: fmpq, am: fmpq) -> PLNet:
    """Outputs (F, D): F = sum_c values[c] B_c, D = sum_c B_c over the M^d cells of width 1/M."""
    h = Q(1, M)
    c1 = 1 / ((ap - am) * e)
    c2 = 1 / (ap - am)
    W1, b1 = [], []
    ridge = {}              # (j, i) -> list of (neuron, weight)
    for j in range(d):
        for i in range(M):
            rows, biases, wts = _ridge_neurons(j, i * h, (i + 1) * h, e, c1)
            ridge[j, i] = []
            for r, bb, w in zip(rows, biases, wts):
                ridge[j, i].append((len(W1), w))
                W1.append(r)
                b1.append(bb)
    W2, b2, vF, vD = [], [], [], []
    sF = sD = ZERO
    for cell in itertools.product(range(M), repeat=d):
        row = [t for j, i in enumerate(cell) for t in ridge[j, i]]
        g = values[cell]
        for shift in (0, 1):
            W2.append(list(row))
            b2.append(-Q(d - 1) - shift)
        n = len(W2)
        vF += [(n - 2, g * c2), (n - 1, -g * c2)]
        vD += [(n - 2, c2), (n - 1, -c2)]
        sF += -am * c2 * g
        sD += -am * c2
    return PLNet([W1, W2], [b1, b2], [vF, vD], [sF, sD], ap, am, d)


def trapezoid(x: fmpq, a: fmpq, b: fmpq, e: fmpq) -> fmpq:
    """Closed form: max(0, min(1, (x - a)/e, (b - x)/e))."""
    return max(ZERO, min(ONE, (x - a) / e, (b - x) / e))


def bump_formula(x: Sequence, lo: Sequence, hi: Sequence, e: fmpq) -> fmpq:
    s = sum((trapezoid(v, a, b, e) for v, a, b in zip(x, lo, hi)), ZERO) - (len(x) - 1)
    return max(ZERO, min(ONE, s))


# ---------------------------------------------------------------------------------------------
# first-order affine forms with exact rational remainders, on a box
# ---------------------------------------------------------------------------------------------

@dataclass
class Box:
    lo: list
    hi: list

    @property
    def mid(self) -> list:
        return [(a + b) / 2 for a, b in zip(self.lo, self.hi)]

    @property
    def hw(self) -> list:
        return [(b - a) / 2 for a, b in zip(self.lo, self.hi)]

    def corners(self):
        return [list(v) for v in itertools.product(*zip(self.lo, self.hi))]

    def halves(self) -> tuple["Box", "Box"]:
        i = max(range(len(self.lo)), key=lambda t: self.hi[t] - self.lo[t])
        m = (self.lo[i] + self.hi[i]) / 2
        a = Box(list(self.lo), list(self.hi))
        b = Box(list(self.lo), list(self.hi))
        a.hi[i] = m
        b.lo[i] = m
        return a, b


class AF:
    """c0 + sum_i g_i (x_i - mid_i) + [-rad, rad] on a box with half-widths hw."""
    __slots__ = ("c0", "g", "rad", "hw")

    def __init__(self, c0, g, rad, hw):
        self.c0, self.g, self.rad, self.hw = c0, g, rad, hw

    @classmethod
    def const(cls, v, hw):
        return cls(Q(v), [ZERO] * len(hw), ZERO, hw)

    @classmethod
    def coord(cls, i, box: Box):
        hw = box.hw
        g = [ZERO] * len(hw)
        g[i] = ONE
        return cls(box.mid[i], g, ZERO, hw)

    def dev(self):
        return sum((abs(gi) * h for gi, h in zip(self.g, self.hw)), ZERO) + self.rad

    def range(self):
        dv = self.dev()
        return self.c0 - dv, self.c0 + dv

    @property
    def exact(self) -> bool:
        return self.rad == 0

    def scale(self, s):
        return AF(s * self.c0, [s * gi for gi in self.g], abs(s) * self.rad, self.hw)

    def __add__(self, o):
        if not isinstance(o, AF):
            return AF(self.c0 + o, self.g, self.rad, self.hw)
        return AF(self.c0 + o.c0, [a + b for a, b in zip(self.g, o.g)], self.rad + o.rad, self.hw)

    def __sub__(self, o):
        return self + (o.scale(-1) if isinstance(o, AF) else -o)

    def __mul__(self, o):
        if not isinstance(o, AF):
            return self.scale(o)
        la = sum((abs(gi) * h for gi, h in zip(self.g, self.hw)), ZERO)
        lb = sum((abs(gi) * h for gi, h in zip(o.g, o.hw)), ZERO)
        rad = la * lb + self.rad * (abs(o.c0) + lb) + o.rad * (abs(self.c0) + la) + self.rad * o.rad
        return AF(self.c0 * o.c0, [self.c0 * b + o.c0 * a for a, b in zip(self.g, o.g)], rad, self.hw)

    def pl(self, ap, am):
        """rho(self) for rho(z) = ap z (z >= 0), am z (z < 0): exact where the sign is constant, else the
        chord shifted by half the gap at 0, with that half gap as remainder."""
        lo, hi = self.range()
        if lo >= 0:
            return self.scale(ap)
        if hi <= 0:
            return self.scale(am)
        rl, rh = am * lo, ap * hi
        s = (rh - rl) / (hi - lo)
        d0 = -(rl - s * lo)                     # rho(0) - chord(0)
        out = self.scale(s) + (rl - s * lo + d0 / 2)
        out.rad += abs(d0) / 2
        return out

    def abs(self):
        return self.pl(ONE, -ONE)

    def upper(self):
        return self.range()[1]


def net_af(net: PLNet, box: Box, max_branches: int = 16) -> list:
    """Enclosures of the outputs on the box, one list per *branch*: a neuron whose pre-activation
    changes sign on the box is replaced by each of its two linear pieces in turn (at every x of the box
    the network equals the outputs of the branch that matches the true signs at x), so the branches are
    exact affine forms; past ``max_branches`` the chord enclosure (with a remainder) is used instead."""
    states = [[AF.coord(i, box) for i in range(net.d)]]
    for W, b in zip(net.Ws, net.bs):
        new_states = []
        for h in states:
            outs = [[]]
            for row, bb in zip(W, b):
                acc = AF.const(bb, box.hw)
                for j, w in row:
                    acc = acc + h[j].scale(w)
                lo, hi = acc.range()
                if lo < 0 < hi and len(outs) * 2 * len(states) <= max_branches:
                    outs = [o + [acc.scale(s)] for o in outs for s in (net.ap, net.am)]
                else:
                    v = acc.pl(net.ap, net.am)
                    for o in outs:
                        o.append(v)
            new_states += outs
        states = new_states
    res = []
    for h in states:
        out = []
        for row, cc in zip(net.V, net.c):
            acc = AF.const(cc, box.hw)
            for j, w in row:
                acc = acc + h[j].scale(w)
            out.append(acc)
        res.append(out)
    return res


def _signs(f: AF) -> tuple:
    lo, hi = f.range()
    return (1,) if lo >= 0 else (-1,) if hi <= 0 else (1, -1)


# ---------------------------------------------------------------------------------------------
# exact extremes of a two-hidden-layer network on a box (vertex enumeration of its linear pieces)
# ---------------------------------------------------------------------------------------------

def _solve(A: list, rhs: list):
    """Exact solution of a small square system, or None if singular."""
    n = len(A)
    M = [list(r) + [v] for r, v in zip(A, rhs)]
    for c in range(n):
        p = next((r for r in range(c, n) if M[r][c] != 0), None)
        if p is None:
            return None
        M[c], M[p] = M[p], M[c]
        for r in range(n):
            if r != c and M[r][c] != 0:
                f = M[r][c] / M[c][c]
                M[r] = [x - f * y for x, y in zip(M[r], M[c])]
    return [M[r][n] / M[r][r] for r in range(n)]


def piece_vertices(net: PLNet, box: Box) -> tuple[list, list] | None:
    """For a box on which no first-layer pre-activation changes sign: the candidate points (box
    corners and the vertices created by the straddling second-layer hyperplanes) and the exact affine
    second-layer pre-activations (gradient, value at 0).  None if a first-layer neuron straddles."""
    assert len(net.Ws) == 2
    d = net.d
    z1 = []
    for row, bb in zip(net.Ws[0], net.bs[0]):
        g = [ZERO] * d
        for j, w in row:
            g[j] += w
        z1.append((g, bb))
    h1 = []
    for g, c0 in z1:
        vals = [sum((gi * xi for gi, xi in zip(g, x)), ZERO) + c0 for x in box.corners()]
        if min(vals) >= 0:
            s = net.ap
        elif max(vals) <= 0:
            s = net.am
        else:
            return None
        h1.append(([s * gi for gi in g], s * c0))
    z2 = []
    for row, bb in zip(net.Ws[1], net.bs[1]):
        g, c0 = [ZERO] * d, bb
        for j, w in row:
            g = [a + w * b for a, b in zip(g, h1[j][0])]
            c0 += w * h1[j][1]
        z2.append((g, c0))
    straddle = []
    for g, c0 in z2:
        vals = [sum((gi * xi for gi, xi in zip(g, x)), ZERO) + c0 for x in box.corners()]
        if min(vals) < 0 < max(vals):
            straddle.append((g, -c0))
    pts = box.corners()
    for jn in range(1, min(d, len(straddle)) + 1):
        for T in itertools.combinations(straddle, jn):
            for free in itertools.combinations(range(d), jn):
                fixed = [i for i in range(d) if i not in free]
                for vals in itertools.product(*((box.lo[i], box.hi[i]) for i in fixed)):
                    A = [[g[i] for i in free] for g, _ in T]
                    rhs = [beta - sum((g[i] * v for i, v in zip(fixed, vals)), ZERO) for g, beta in T]
                    y = _solve(A, rhs)
                    if y is None:
                        continue
                    x = [ZERO] * d
                    for i, v in zip(fixed, vals):
                        x[i] = v
                    for i, v in zip(free, y):
                        x[i] = v
                    if all(box.lo[i] <= x[i] <= box.hi[i] for i in range(d)):
                        pts.append(x)
    return pts, z2


def breakpoints(net: PLNet) -> list:
    """Per coordinate, the sorted zeros of the first-layer neurons (which must be axis-aligned)."""
    out = [set() for _ in range(net.d)]
    for row, bb in zip(net.Ws[0], net.bs[0]):
        nz = [(j, w) for j, w in row if w != 0]
        if len(nz) != 1:
            raise ValueError("first-layer neuron is not a ridge along one coordinate")
        j, w = nz[0]
        out[j].add(-bb / w)
    return [sorted(s) for s in out]


# ---------------------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------------------

ALPHAS = ((Q(1), Q(0)), (Q(1), Q(1, 4)), (Q(1), Q(-1)), (Q(2), Q(1, 2)), (Q(1, 2), Q(-1, 3)), (Q(1), Q(3, 2)),
          (Q(-1), Q(1, 2)))


def _alpha(src):
    return src.choice(ALPHAS)


def bump_instance(src, dims: Sequence[int] = (1, 2, 3)) -> Instance:
    """A random box in [0, 3]^d with margin e <= half its shortest side, a ReLU-like activation."""
    ap, am = _alpha(src)
    d = src.choice(tuple(dims))
    e = Q(1, src.choice((2, 4, 3, 5)))
    lo, hi = [], []
    for _ in range(d):
        a = Q(src.integer(0, 8), 4)
        lo.append(a)
        hi.append(a + 2 * e + Q(src.integer(0, 6), 4))
    net = bump_net(lo, hi, e, ap, am)
    return Instance(kind="lapedes_farber_bump", meta={"lo": lo, "hi": hi, "e": e, "network": net.to_json()})


@dataclass
class Target:
    kind: str
    c0: fmpq
    w: list
    quad: dict             # (i, j) with i <= j -> coefficient
    beta: fmpq
    u: list
    t: fmpq

    def __call__(self, x):
        v = self.c0 + sum((a * b for a, b in zip(self.w, x)), ZERO)
        for (i, j), cq in self.quad.items():
            v += cq * x[i] * x[j]
        if self.beta != 0:
            v += self.beta * abs(sum((a * b for a, b in zip(self.u, x)), ZERO) - self.t)
        return v

    def af(self, box: Box) -> list:
        """Enclosures of g on the box: one exact-branch form per sign of u.x - t where it changes sign."""
        xs = [AF.coord(i, box) for i in range(len(self.w))]
        v = AF.const(self.c0, box.hw)
        for a, xi in zip(self.w, xs):
            v = v + xi.scale(a)
        for (i, j), cq in self.quad.items():
            v = v + (xs[i] * xs[j]).scale(cq)
        if self.beta == 0:
            return [v]
        r = AF.const(-self.t, box.hw)
        for a, xi in zip(self.u, xs):
            r = r + xi.scale(a)
        return [v + r.scale(s * self.beta) for s in _signs(r)]

    def lip_squared(self) -> fmpq:
        """An exact upper bound of sup ||grad g||_2^2 over [0,1]^d."""
        d = len(self.w)
        if self.quad:
            tot = ZERO
            for i in range(d):
                best = ZERO
                for x in itertools.product((ZERO, ONE), repeat=d):
                    v = self.w[i]
                    for (a, b), cq in self.quad.items():
                        if a == i and b == i:
                            v += 2 * cq * x[i]
                        elif a == i:
                            v += cq * x[b]
                        elif b == i:
                            v += cq * x[a]
                    best = max(best, abs(v))
                tot += best * best
            return tot
        if self.beta != 0:
            return max(sum(((a + s * self.beta * b) ** 2 for a, b in zip(self.w, self.u)), ZERO) for s in (1, -1))
        return sum((a * a for a in self.w), ZERO)

    def to_json(self) -> dict:
        return {"kind": self.kind, "c0": str(self.c0), "w": [str(v) for v in self.w],
                "quad": [[i, j, str(v)] for (i, j), v in sorted(self.quad.items())], "beta": str(self.beta),
                "u": [str(v) for v in self.u], "t": str(self.t)}

    @classmethod
    def from_json(cls, o: dict) -> "Target":
        return cls(o["kind"], q(o["c0"]), qvec(o["w"]), {(int(i), int(j)): q(v) for i, j, v in o["quad"]},
                   q(o["beta"]), qvec(o["u"]), q(o["t"]))


def upper_sqrt(s: fmpq, den: int = 16) -> fmpq:
    """The smallest k/den with (k/den)^2 >= s."""
    from math import isqrt
    t = s * den * den
    n = int(t.p) // int(t.q) + (1 if int(t.p) % int(t.q) else 0)
    k = isqrt(n)
    if k * k < n:
        k += 1
    return Q(k, den)


def random_target(src, d: int) -> Target:
    kind = src.choice(("affine", "quadratic", "ridge"))
    c0 = src.rational(3, (1, 2))
    w = [src.rational(2, (1, 2)) for _ in range(d)]
    quad, beta, u, t = {}, ZERO, [ZERO] * d, ZERO
    if kind == "quadratic":
        for i in range(d):
            for j in range(i, d):
                quad[i, j] = src.rational(2, (1, 2))
    elif kind == "ridge":
        beta = src.nonzero_rational(2, (1, 2))
        u = [src.rational(2, (1,)) for _ in range(d)]
        t = Q(src.integer(0, 4), 4)
    return Target(kind, c0, w, quad, beta, u, t)


def bump_sum_instance(src, dims: Sequence[int] = (1, 2, 3)) -> Instance:
    """A target g on [0,1]^d (affine, quadratic or affine + beta |u.x - t|) with a rational Lipschitz
    bound Lip >= 1/4, the grid of M^d cells of width h = 1/M, the margin e = h/r, and the bump-sum network."""
    ap, am = _alpha(src)
    d = src.choice(tuple(dims))
    M = src.integer(1, {1: 5, 2: 3}.get(d, 2))
    h = Q(1, M)
    e = h / src.choice((4, 6, 3, 8))
    g = random_target(src, d)
    lip = max(upper_sqrt(g.lip_squared()), Q(1, 4))
    values = {cell: g([(Q(2 * i + 1, 2 * M)) for i in cell]) for cell in itertools.product(range(M), repeat=d)}
    net = bump_sum_net(M, d, e, values, ap, am)
    return Instance(kind="lapedes_farber_bump_sum",
                    meta={"d": d, "M": M, "h": h, "e": e, "lip": lip, "target": g.to_json(), "network": net.to_json()})


# ---------------------------------------------------------------------------------------------
# claim (a): the bump is the indicator of the box away from the margins
# ---------------------------------------------------------------------------------------------

def _cells(bps: list, pad: fmpq = ONE) -> list:
    """The boxes of the grid of breakpoints, padded by one cell of width pad at both ends."""
    axes = [[b[0] - pad] + list(b) + [b[-1] + pad] for b in bps]
    out = []
    for idx in itertools.product(*(range(len(a) - 1) for a in axes)):
        out.append((Box([axes[j][i] for j, i in enumerate(idx)], [axes[j][i + 1] for j, i in enumerate(idx)]),
                    [i == 0 or i == len(axes[j]) - 2 for j, i in enumerate(idx)]))
    return out


@claim("Lapedes-Farber bumps, exact: for rho(z) = alpha_plus z / alpha_minus z (rational, alpha_plus != "
       "alpha_minus) the two-hidden-layer network B = c2 (rho(S) - rho(S-1)) - alpha_minus c2 with "
       "S = sum_j T_j(x_j) - (d-1) and the 1-D trapezoids T_j = c1 (rho(x-a) - rho(x-a-e) - rho(x-b+e) + rho(x-b)) "
       "equals 1 on the core prod [a_j+e, b_j-e], 0 outside the box prod [a_j, b_j], and lies in [0, 1] on "
       "the margins, everywhere on R^d (exact extremes on every cell of the breakpoint grid by vertex "
       "enumeration of the linear pieces; unbounded cells by exact independence of the far coordinates), "
       "and B equals the closed form clamp(sum_j T_j - (d-1), 0, 1) at the breakpoint grid and random points",
       bump_instance, name="bumps-indicator", budget=80, theory=THEORY, tags=("related", "bumps"))
def bumps_indicator(inst):
    mt = inst.meta
    net = PLNet.from_json(mt["network"])
    lo, hi, e = qvec(mt["lo"]), qvec(mt["hi"]), q(mt["e"])
    d = net.d
    core_lo, core_hi = [a + e for a in lo], [b - e for b in hi]
    bps = breakpoints(net)
    for box, outer in _cells(bps):
        pv = piece_vertices(net, box)
        if pv is None:
            return counterexample(f"a first-layer neuron changes sign inside the grid cell {box}")
        pts, z2 = pv
        vals = [net(x)[0] for x in pts]
        mn, mx = min(vals), max(vals)
        if all(core_lo[j] <= box.lo[j] and box.hi[j] <= core_hi[j] for j in range(d)):
            want, what = (ONE, ONE), "core"
        elif any(box.hi[j] <= lo[j] or box.lo[j] >= hi[j] for j in range(d)):
            want, what = (ZERO, ZERO), "outside"
        else:
            want, what = None, "margin"
        if want is not None and (mn, mx) != want:
            x = pts[vals.index(mx if mx != want[1] else mn)]
            return counterexample(f"{what} cell [{[str(v) for v in box.lo]}, {[str(v) for v in box.hi]}]: "
                                  f"B ranges over [{mn}, {mx}], expected {want[0]}", point=[str(v) for v in x])
        if want is None and (mn < 0 or mx > 1):
            x = pts[vals.index(mx if mx > 1 else mn)]
            return counterexample(f"margin cell: B = {net(x)[0]} outside [0, 1]", point=[str(v) for v in x])
        for j, far in enumerate(outer):
            if far and any(g[j] != 0 for g, _ in z2):
                return counterexample(f"an unbounded cell in coordinate {j}: the second layer still depends on x_{j}")
    # exact evaluation against the closed form
    rng = random.Random(str(mt["lo"]) + str(mt["hi"]))
    axes = []
    for b in bps:
        ext = [b[0] - 1] + b + [b[-1] + 1]
        axes.append(sorted(set(ext + [(u + v) / 2 for u, v in zip(ext, ext[1:])])))
    grid = itertools.product(*axes) if len(axes) <= 2 or all(len(a) <= 11 for a in axes) else []
    pts = [list(x) for x in grid]
    pts += [[Q(rng.randint(-20, 140), rng.randint(1, 40)) for _ in range(d)] for _ in range(40)]
    for x in pts:
        v, want = net(x)[0], bump_formula(x, lo, hi, e)
        if v != want:
            return counterexample(f"B({[str(t) for t in x]}) = {v} != clamp(sum T_j - (d-1)) = {want}")
        inside = all(a + e <= t <= b - e for t, a, b in zip(x, lo, hi))
        outside = any(t <= a or t >= b for t, a, b in zip(x, lo, hi))
        if (inside and v != 1) or (outside and v != 0):
            return counterexample(f"B({[str(t) for t in x]}) = {v}: not the indicator away from the margins")
    return held(f"d = {d}: {len(_cells(bps))} cells decided exactly, {len(pts)} points")


# ---------------------------------------------------------------------------------------------
# claims (b): approximation by a sum of bumps
# ---------------------------------------------------------------------------------------------

def _le_sqrt(x: fmpq, c: fmpq, n: int) -> bool:
    """x <= c sqrt(n) (c >= 0), exactly."""
    return x <= 0 or x * x <= c * c * n


def _setup_sum(inst):
    mt = inst.meta
    net = PLNet.from_json(mt["network"])
    g = Target.from_json(mt["target"])
    return net, g, int(mt["d"]), int(mt["M"]), q(mt["h"]), q(mt["e"]), q(mt["lip"])


def _point_ok(kind: str, net, g, x, lip, h, d) -> tuple[bool, str]:
    F, D = net(x)
    gx = g(x)
    err = abs(F - gx)
    if kind == "naive":
        return _le_sqrt(err, lip * h, d), f"|F - g| = {err} > Lip h sqrt(d) = {lip}*{h}*sqrt({d}) (F = {F}, D = {D})"
    return (_le_sqrt(err - (1 - D) * abs(gx), lip * h / 2, d),
            f"|F - g| = {err} > Lip (h/2) sqrt(d) + (1 - D)|g| (D = {D}, g = {gx})")


def _box_ok(kind: str, net, g, box: Box, lip, h, d) -> bool:
    """The bound on the whole box from the branch enclosures: |E| and |g| are replaced by s E and s' g
    for every sign s, s' admissible on the box (the sign of E, g where it is constant, both signs where
    it changes); at every x the true expression equals the branch with the true signs at x."""
    one = AF.const(ONE, box.hw)
    for F, D in net_af(net, box):
        for G in g.af(box):
            E = F - G
            for sE in _signs(E):
                if kind == "naive":
                    if not _le_sqrt(E.scale(sE).upper(), lip * h, d):
                        return False
                    continue
                for sG in _signs(G):
                    X = E.scale(sE) - (one - D) * G.scale(sG)
                    if not _le_sqrt(X.upper(), lip * h / 2, d):
                        return False
    return True


def verify_bound(kind: str, net, g, d, M, h, e, lip, max_boxes: int = 6000, seed: str = "") -> tuple[str, str, list]:
    """('held' | 'violated' | 'undecided', message, point): exact checks at rational points, then a
    rigorous cover of [0,1]^d by boxes on which the affine-form enclosure proves the bound."""
    axes = []
    for j in range(d):
        pts = {ZERO, ONE}
        for i in range(M):
            a, b = i * h, (i + 1) * h
            pts |= {a, a + e, b - e, b}
        axes.append(sorted(pts))
    # the breakpoint grid, with the midpoints between breakpoints when d <= 2
    fine = [sorted(set(a + [(u + v) / 2 for u, v in zip(a, a[1:])])) for a in axes] if d <= 2 else axes
    rng = random.Random(seed)
    pts = [list(x) for x in itertools.product(*fine)]
    pts += [[Q(2 * i + 1, 2 * M) for i in cell] for cell in itertools.product(range(M), repeat=d)]
    pts += [[Q(rng.randint(0, 997), 997) for _ in range(d)] for _ in range(30)]
    for x in pts:
        ok, msg = _point_ok(kind, net, g, x, lip, h, d)
        if not ok:
            return "violated", msg, x
    stack = [Box([axes[j][i] for j, i in enumerate(idx)], [axes[j][i + 1] for j, i in enumerate(idx)])
             for idx in itertools.product(*(range(len(a) - 1) for a in axes))]
    n = 0
    min_w = h / 2 ** 14
    while stack:
        box = stack.pop()
        n += 1
        if n > max_boxes:
            return "undecided", f"more than {max_boxes} boxes", []
        if _box_ok(kind, net, g, box, lip, h, d):
            continue
        x = box.mid
        ok, msg = _point_ok(kind, net, g, x, lip, h, d)
        if not ok:
            return "violated", msg, x
        if max(box.hi[j] - box.lo[j] for j in range(d)) < min_w:
            return "undecided", "box too small", []
        stack.extend(box.halves())
    return "held", f"{len(pts)} exact points, {n} boxes", []


@claim("Lapedes-Farber sum of bumps, naive bound: for a target g on [0,1]^d with Lipschitz constant Lip, "
       "F = sum_c g(x_c) B_c over the grid of cells of width h approximates g within Lip h sqrt(d) everywhere "
       "(a conjecture expected to FAIL: the bumps vanish on the cell boundaries, so F = 0 there; exact "
       "rational counterexample points)",
       (bump_sum_instance, {"dims": (1, 2)}), name="bumps-sum-naive-bound", budget=60, expect="counterexample",
       theory=THEORY, tags=("related", "bumps"))
def bumps_naive(inst):
    net, g, d, M, h, e, lip = _setup_sum(inst)
    st, msg, x = verify_bound("naive", net, g, d, M, h, e, lip, max_boxes=1500, seed=str(inst.meta["target"]))
    if st == "violated":
        return counterexample(f"at x = {[str(v) for v in x]}: {msg}", point=[str(v) for v in x])
    if st == "undecided":
        return skipped(f"undecided: {msg}")
    return held(msg)


@claim("Lapedes-Farber sum of bumps, corrected bound: with D = sum_c B_c (in [0, 1]), "
       "|F(x) - g(x)| <= Lip (h/2) sqrt(d) + (1 - D(x)) |g(x)| for every x in [0,1]^d, so |F - g| <= "
       "Lip (h/2) sqrt(d) on the cell cores (D = 1); exact at the breakpoint grid, cell centres and random "
       "rational points, rigorous between them (exact rational affine-form enclosures with bisection)",
       bump_sum_instance, name="bumps-sum-corrected-bound", budget=60, theory=THEORY, tags=("related", "bumps"))
def bumps_corrected(inst):
    net, g, d, M, h, e, lip = _setup_sum(inst)
    st, msg, x = verify_bound("corrected", net, g, d, M, h, e, lip, seed=str(inst.meta["target"]))
    if st == "violated":
        return counterexample(f"at x = {[str(v) for v in x]}: {msg}", point=[str(v) for v in x])
    if st == "undecided":
        return skipped(f"undecided: {msg}")
    return held(msg)
