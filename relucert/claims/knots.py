"""Deep scalar-input ReLU networks R -> R^p with biases: an exact knot counter.

A network with hidden widths n_1..n_l is  h_0 = x,  h_i = relu(W_i h_{i-1} + b_i),  f = V h_l + c,
with rational weights.  f is piecewise linear; its *knots* are the points where the slope vector
of f actually changes.  :func:`knots` propagates the exact piecewise-affine pre-activations layer
by layer (splitting every piece where a pre-activation crosses 0 inside it) and then merges
adjacent pieces with equal output slopes, so only true slope changes are counted.

Upper bound (a piece of layer i-1 is split at most once by each neuron of layer i):
knots <= prod_i (n_i + 1) - 1.  Whether the bound is attained is the question studied by the
claims ``knots-*``; :func:`search_max_knots` is a hill-climbing search over small integer weights.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from math import prod
from typing import Any, Sequence

from flint import fmpq

from relucert.claims.instance import Instance, qvec


@dataclass
class DeepNet:
    Ws: list          # per hidden layer: n_i x n_{i-1} (fmpq)
    bs: list          # per hidden layer: n_i
    V: list           # p x n_l
    c: list           # p

    @property
    def widths(self) -> tuple:
        return tuple(len(b) for b in self.bs)

    @property
    def p(self) -> int:
        return len(self.c)

    def __call__(self, x: fmpq) -> list:
        h = [fmpq(x)]
        for W, b in zip(self.Ws, self.bs):
            h = [max(fmpq(0), sum((w * v for w, v in zip(row, h)), fmpq(0)) + bb) for row, bb in zip(W, b)]
        return [sum((v * u for v, u in zip(row, h)), fmpq(0)) + cc for row, cc in zip(self.V, self.c)]

    def to_json(self) -> dict:
        s = lambda M: [[str(v) for v in r] for r in M]      # noqa: E731
        return {"widths": list(self.widths), "p": self.p,
                "layers": [{"W": s(W), "b": [str(v) for v in b]} for W, b in zip(self.Ws, self.bs)],
                "output": {"W": s(self.V), "b": [str(v) for v in self.c]}}

    @classmethod
    def from_json(cls, obj: dict) -> "DeepNet":
        Ws = [[qvec(r) for r in L["W"]] for L in obj["layers"]]
        bs = [qvec(L["b"]) for L in obj["layers"]]
        return cls(Ws, bs, [qvec(r) for r in obj["output"]["W"]], qvec(obj["output"]["b"]))

    def copy(self) -> "DeepNet":
        return DeepNet([[list(r) for r in W] for W in self.Ws], [list(b) for b in self.bs],
                       [list(r) for r in self.V], list(self.c))


def bound(widths: Sequence[int]) -> int:
    return prod(n + 1 for n in widths) - 1


# ---------------------------------------------------------------------------------------------
# exact piecewise-affine propagation
# ---------------------------------------------------------------------------------------------

def _sample_in(lo, hi) -> fmpq:
    if lo is None and hi is None:
        return fmpq(0)
    if lo is None:
        return hi - 1
    if hi is None:
        return lo + 1
    return (lo + hi) / 2


def pieces(net: DeepNet) -> tuple[list, list]:
    """(breakpoints, per-piece (slopes, intercepts) of the output) before merging; piece i is
    (breaks[i-1], breaks[i]) with None for -inf / +inf."""
    breaks: list = []
    # per piece: affine pre-activations of the current layer as (slopes, intercepts)
    W1, b1 = net.Ws[0], net.bs[0]
    data = [([row[0] for row in W1], list(b1))]
    for layer in range(len(net.Ws)):
        new_breaks, new_data = [], []
        for p, (sl, ic) in enumerate(data):
            lo = breaks[p - 1] if p > 0 else None
            hi = breaks[p] if p < len(breaks) else None
            roots = set()
            for s, c in zip(sl, ic):
                if s != 0:
                    x = -c / s
                    if (lo is None or x > lo) and (hi is None or x < hi):
                        roots.add(x)
            cuts = sorted(roots)
            bounds_ = [lo] + cuts + [hi]
            for q in range(len(bounds_) - 1):
                xm = _sample_in(bounds_[q], bounds_[q + 1])
                act = [s * xm + c > 0 for s, c in zip(sl, ic)]
                hs = [s if a else fmpq(0) for s, a in zip(sl, act)]
                hc = [c if a else fmpq(0) for c, a in zip(ic, act)]
                if layer + 1 < len(net.Ws):
                    W, b = net.Ws[layer + 1], net.bs[layer + 1]
                else:
                    W, b = net.V, net.c
                ns = [sum((w * v for w, v in zip(row, hs)), fmpq(0)) for row in W]
                nc = [sum((w * v for w, v in zip(row, hc)), fmpq(0)) + bb for row, bb in zip(W, b)]
                new_data.append((ns, nc))
                if q + 1 < len(bounds_) - 1:
                    new_breaks.append(bounds_[q + 1])
            if p < len(breaks):
                new_breaks.append(breaks[p])
        breaks, data = new_breaks, new_data
    return breaks, data


def knots(net: DeepNet) -> list:
    """The exact knots of f (sorted rationals): breakpoints where the output slope vector changes."""
    breaks, data = pieces(net)
    out = []
    for i, x in enumerate(breaks):
        if data[i][0] != data[i + 1][0]:
            out.append(x)
    return out


def check_knots(net: DeepNet, ks: list, seed: Any = 0) -> str | None:
    """Independent check by exact evaluation: f equals the piecewise-linear interpolant through
    the knots at random points of every piece, and the slope really changes at every knot."""
    rng = random.Random(seed)
    if not ks:
        pts = [fmpq(rng.randint(-50, 50), rng.randint(1, 7)) for _ in range(6)]
        f0, f1 = net(fmpq(0)), net(fmpq(1))
        for x in pts:
            if net(x) != [a + (b - a) * x for a, b in zip(f0, f1)]:
                return f"f is not affine but no knot was reported (x = {x})"
        return None
    span = max(fmpq(1), ks[-1] - ks[0])
    ext = [ks[0] - span, *ks, ks[-1] + span]
    vals = [net(x) for x in ext]
    for a, b, fa, fb in zip(ext, ext[1:], vals, vals[1:]):
        for _ in range(3):
            u = fmpq(rng.randint(1, 999), 1000)
            x = a + (b - a) * u
            line = [p + (qq - p) * u for p, qq in zip(fa, fb)]
            if net(x) != line:
                return f"f is not affine on [{a}, {b}] (x = {x}): a knot is missing"
    # the outer rays: f affine beyond the extreme knots
    for x0, x1, ts in ((ks[0], ext[0], (fmpq(3), fmpq(7, 2))), (ks[-1], ext[-1], (fmpq(3), fmpq(7, 2)))):
        f0, f1 = net(x0), net(x1)
        for t in ts:
            if net(x0 + (x1 - x0) * t) != [p + (qq - p) * t for p, qq in zip(f0, f1)]:
                return f"f is not affine beyond the extreme knot {x0}"
    for i, kx in enumerate(ks):
        left = ext[i]
        right = ext[i + 2]
        sl = [(p - qq) / (kx - left) for p, qq in zip(vals[i + 1], vals[i])]
        sr = [(qq - p) / (right - kx) for p, qq in zip(vals[i + 1], vals[i + 2])]
        if sl == sr:
            return f"reported knot {kx} is not a slope change"
    return None


# ---------------------------------------------------------------------------------------------
# generators and search
# ---------------------------------------------------------------------------------------------

def random_net(src, widths: Sequence[int], p: int, max_num: int = 4, dens=(1, 1, 2)) -> DeepNet:
    Ws, bs = [], []
    prev = 1
    for n in widths:
        Ws.append([[src.rational(max_num, dens) for _ in range(prev)] for _ in range(n)])
        bs.append([src.rational(max_num, dens) for _ in range(n)])
        prev = n
    V = [[src.rational(max_num, dens) for _ in range(prev)] for _ in range(p)]
    c = [src.rational(max_num, dens) for _ in range(p)]
    return DeepNet(Ws, bs, V, c)


def deep_network(src, max_layers: int = 3, max_width: int = 3, ps: Sequence[int] = (1, 2, 3),
                 widths: Sequence[int] | None = None) -> Instance:
    """A random deep R -> R^p ReLU network with biases (small rational weights)."""
    if widths is None:
        L = src.integer(1, max_layers)
        widths = [src.integer(1, max_width) for _ in range(L)]
    p = src.choice(tuple(ps))
    net = random_net(src, widths, p)
    return Instance(kind="deep_relu_network", meta={"network": net.to_json()})


def _params(net: DeepNet) -> list:
    """Addresses (list, index) of every weight."""
    out = []
    for W in net.Ws:
        for r in W:
            out += [(r, i) for i in range(len(r))]
    for b in net.bs:
        out += [(b, i) for i in range(len(b))]
    for r in net.V:
        out += [(r, i) for i in range(len(r))]
    out += [(net.c, i) for i in range(len(net.c))]
    return out


VALUES = [fmpq(v) for v in range(-4, 5)] + [fmpq(v, 2) for v in (-3, -1, 1, 3)]
STEPS = [fmpq(s * v, q) for s in (1, -1) for v, q in ((1, 1), (1, 2), (1, 4), (1, 8))]


def search_max_knots(widths: Sequence[int], p: int = 1, iters: int = 3000, restarts: int = 4,
                     seed: Any = 0, target: int | None = None) -> tuple[int, DeepNet]:
    """Hill climbing (equal moves accepted; a move sets a weight to a value in {-4..4, +-1/2, +-3/2}
    or adds +-1, +-1/2, +-1/4, +-1/8 to it); returns the
    largest knot count found and a network reaching it (simplified: weights greedily replaced by
    0 / +-1 / smaller values while the count stays)."""
    rng = random.Random(f"knots:{tuple(widths)}:{p}:{seed}")
    target = bound(widths) if target is None else target
    best_n, best = -1, None
    for _ in range(restarts):
        net = DeepNet([[[rng.choice(VALUES) for _ in range(prev)] for _ in range(n)]
                       for prev, n in zip([1, *widths[:-1]], widths)],
                      [[rng.choice(VALUES) for _ in range(n)] for n in widths],
                      [[rng.choice(VALUES) for _ in range(widths[-1])] for _ in range(p)],
                      [rng.choice(VALUES) for _ in range(p)])
        cur = len(knots(net))
        for _ in range(iters // restarts):
            addr = _params(net)
            lst, i = rng.choice(addr)
            old = lst[i]
            if rng.random() < 0.5:
                lst[i] = rng.choice(VALUES)
            else:
                lst[i] = old + rng.choice(STEPS)
            new = len(knots(net))
            if new >= cur:
                cur = new
            else:
                lst[i] = old
            if cur >= target:
                break
        if cur > best_n:
            best_n, best = cur, net.copy()
        if best_n >= target:
            break
    return best_n, simplify(best, best_n)


def simplify(net: DeepNet, count: int) -> DeepNet:
    """Greedily replace weights by simpler values (0, +-1, +-2, ...) keeping the knot count."""
    net = net.copy()
    simple = [fmpq(0), fmpq(1), fmpq(-1), fmpq(2), fmpq(-2), fmpq(3), fmpq(-3)]
    for lst, i in _params(net):
        old = lst[i]
        for v in simple:
            if v == old:
                break
            if abs(v) >= abs(old) and v != 0:
                continue
            lst[i] = v
            if len(knots(net)) >= count:
                break
            lst[i] = old
    return net


# ---------------------------------------------------------------------------------------------
# two hidden layers: zero crossings of a second-layer pre-activation (exact, z3)
# ---------------------------------------------------------------------------------------------
#
# Knots of a two-layer network lie among the n_1 first-layer knots and the zero crossings of the
# second-layer pre-activations g = sum_j c_j relu(a_j (x - k_j)) + d.  g is affine on each of the
# n_1 + 1 pieces, so it crosses 0 at most once per piece, and the number of crossings is the
# number of sign changes of (sign g(-inf), g(k_1), ..., g(k_n), sign g(+inf)).  For fixed facings
# a_j = +-1 and knot positions these signs are linear in (c, d): each sign vector is decided by
# one exact linear feasibility query (z3, margins >= 1 by homogeneity).  With n_1 <= 2 the knot
# positions are 0, 1 without loss of generality (an increasing affine change of x), so the
# enumeration over facings is a proof of the maximum.

def _piece_slopes(facings, positions):
    """Per piece p (0..n): list of (j, a_j) of the neurons active on it."""
    ks = sorted(range(len(positions)), key=lambda j: positions[j])
    bounds_ = [positions[j] for j in ks]
    out = []
    for p in range(len(bounds_) + 1):
        lo = bounds_[p - 1] if p > 0 else None
        hi = bounds_[p] if p < len(bounds_) else None
        xm = _sample_in(lo, hi)
        out.append([(j, a) for j, (a, k) in enumerate(zip(facings, positions)) if a * (xm - k) > 0])
    return bounds_, out


def sign_vector_model(facings: Sequence[int], positions: Sequence[fmpq], signs: Sequence[int]):
    """Exact (c, d) realising the sign vector (g(-inf), g(k_(1)), .., g(k_(n)), g(+inf)), or None."""
    import z3
    n = len(facings)
    knots_sorted, active = _piece_slopes(facings, positions)
    c = [z3.Real(f"c{j}") for j in range(n)]
    d = z3.Real("d")
    s = z3.Solver()

    def val(x):
        terms = [c[j] * z3.RealVal(str(max(fmpq(0), a * (x - k))))
                 for j, (a, k) in enumerate(zip(facings, positions)) if a * (x - k) > 0]
        return z3.Sum(terms + [d]) if terms else d

    def slope(p):
        return z3.Sum([c[j] * a for j, a in active[p]]) if active[p] else z3.RealVal(0)

    # sign at -inf is -sign(slope of the first piece), at +inf sign(slope of the last piece); an
    # outer piece without an active neuron is constant: its sign is that of the nearest knot
    if active[0]:
        s.add(signs[0] * (-1) * slope(0) >= 1)
    elif signs[0] != signs[1]:
        return None
    for i, x in enumerate(knots_sorted):
        s.add(signs[i + 1] * val(x) >= 1)
    if active[-1]:
        s.add(signs[-1] * slope(len(knots_sorted)) >= 1)
    elif signs[-1] != signs[-2]:
        return None
    if s.check() != z3.sat:
        return None
    m = s.model()

    def fq(v):
        fr = m.eval(v, model_completion=True).as_fraction()
        return fmpq(int(fr.numerator), int(fr.denominator))

    return [fq(v) for v in c], fq(d)


_FEASIBLE_CACHE: dict = {}


def feasible_sign_vectors(facings, positions) -> list:
    """All realisable sign vectors with their number of sign changes, most changes first."""
    key = (tuple(facings), tuple(positions))
    if key not in _FEASIBLE_CACHE:
        _FEASIBLE_CACHE[key] = _feasible_sign_vectors(facings, positions)
    return _FEASIBLE_CACHE[key]


def _feasible_sign_vectors(facings, positions) -> list:
    import itertools
    n = len(facings)
    out = []
    for signs in itertools.product((1, -1), repeat=n + 2):
        mod = sign_vector_model(facings, positions, signs)
        if mod is not None:
            out.append((sum(1 for u, v in zip(signs, signs[1:]) if u != v), signs, mod))
    out.sort(key=lambda t: -t[0])
    return out


def max_crossings(n1: int, extra_positions: Sequence[fmpq] = (fmpq(2), fmpq(3, 2), fmpq(3), fmpq(1, 2))) -> dict:
    """Largest number of zero crossings of one second-layer pre-activation over all facings
    (positions 0, 1 for n1 <= 2: exhaustive; for n1 = 3: 0, 1, t over ``extra_positions``)."""
    import itertools
    if n1 == 1:
        pos_sets = [[fmpq(0)]]
    elif n1 == 2:
        pos_sets = [[fmpq(0), fmpq(1)]]
    else:
        pos_sets = [[fmpq(0), fmpq(1), t] + [fmpq(4 + i) for i in range(n1 - 3)] for t in extra_positions]
    best = (-1, None)
    for positions in pos_sets:
        for facings in itertools.product((1, -1), repeat=n1):
            fs = feasible_sign_vectors(facings, positions)
            if fs and fs[0][0] > best[0]:
                best = (fs[0][0], {"facings": list(facings), "positions": [str(p) for p in positions],
                                   "signs": list(fs[0][1])})
    return {"n1": n1, "max_crossings": best[0], "witness": best[1], "exhaustive": n1 <= 2}


POSITIONS = (fmpq(0), fmpq(1), fmpq(2), fmpq(3), fmpq(1, 2), fmpq(5, 2), fmpq(-1))
SHIFTS = (fmpq(0), fmpq(1, 3), fmpq(-1, 3), fmpq(1, 5), fmpq(-1, 5), fmpq(2, 7))


def two_layer_structured(src, widths: Sequence[int] = (2, 2), ps: Sequence[int] = (1, 2)) -> Instance:
    """A two-hidden-layer network aimed at many knots: random facings and distinct knot positions
    for layer 1; every layer-2 neuron realises a randomly chosen *realisable* sign vector (most
    sign changes first in the list, so shrinking prefers many crossings; different neurons prefer
    different sign vectors) with a random shift of
    its bias (margins >= 1 keep the signs); random non-zero output weights."""
    n1, n2 = widths
    p = src.choice(tuple(ps))
    facings = [src.choice((1, -1)) for _ in range(n1)]
    pool = list(POSITIONS)
    positions = []
    for _ in range(n1):
        positions.append(pool.pop(src.integer(0, len(pool) - 1)))
    W1 = [[fmpq(a)] for a in facings]
    b1 = [-a * k for a, k in zip(facings, positions)]
    fs = feasible_sign_vectors(facings, positions)
    W2, b2, used = [], [], []
    for _ in range(n2):
        top = src.integer(0, 3) != 3
        cands = [f for f in fs if f[0] == fs[0][0]] if top else list(fs)
        fresh = [f for f in cands if f[1] not in used]
        cnt, signs, (c, d) = src.choice(fresh or cands)
        used.append(signs)
        W2.append(list(c))
        b2.append(d + src.choice(SHIFTS))
    V = [[src.nonzero_rational(2, (1, 2)) for _ in range(n2)] for _ in range(p)]
    cc = [src.rational(2, (1,)) for _ in range(p)]
    net = DeepNet([W1, W2], [b1, b2], V, cc)
    return Instance(kind="deep_relu_network", meta={"network": net.to_json(), "facings": facings,
                                                    "positions": positions})


# the explicit network of widths (3, 2) with 11 = (3+1)(2+1) - 1 knots (derived in the report)
def eleven_knot_network() -> DeepNet:
    Q = fmpq
    return DeepNet([[[Q(1)], [Q(1)], [Q(-1)]], [[Q(-3), Q(5, 2), Q(-1)], [Q(3), Q(-5, 2), Q(1)]]],
                   [[Q(0), Q(-1), Q(2)], [Q(15, 4), Q(-29, 8)]], [[Q(1), Q(1)]], [Q(0)])
