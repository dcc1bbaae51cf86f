"""Related literature (issue 16): permutation points of deep networks (Brea, Simsek, Illing, Gerstner 2019,
"Weight-space symmetry in deep networks gives rise to permutation saddles, connected by equal-loss
valleys across the loss landscape", arXiv:1907.02911).

What the paper states (abstract; the body was not available to us, so the claims below check the
reading written in each statement).  In a network with hidden layers of widths n_1..n_{d-1} (n_d
outputs), a *permutation point* is a point where the incoming and the outgoing weight vectors of two
neurons i, j of one hidden layer k coincide (so the two can be exchanged continuously).  The paper
says such points are critical points with at least n_{k+1} vanishing eigenvalues of the Hessian (a
local plateau), that the point continues into an n_{k+1}-dimensional flat region, and that the
number of K-th order permutation points (K disjoint colliding pairs) exceeds the number
prod_k n_k! of equivalent global minima by at least the factor sum_k binom(n_k - K, K) / 2^K.

Our instances.  Deep networks x in R^d -> R^p with two hidden layers, a smooth *polynomial* activation
and biases, squared loss L = 1/2 sum_x ||f(x) - y||^2 on rational data, everything exact
(``flint.fmpq``).  The exact gradient and Hessian come from forward-mode second-order propagation
(value, gradient row, Hessian matrix of every unit, as exact ``fmpq_mat``).  A reduced network (one
neuron fewer in layer k) is made exactly critical by choosing the targets: Y = f(X) - r with the
residual r in the left null space of the exact Jacobian (so J^T r = grad L = 0).  Splitting neuron m
(equal incoming weights and bias; outgoing vector a split into lambda a, (1 - lambda) a; lambda = 1/2 is
the paper's permutation point) gives the point checked.

Claims (``relucert claims list``):

* ``brea-permutation-critical`` — the split point is exactly critical, for lambda = 1/2 and a random
  lambda (the Fukumizu-Amari line), with the reduced loss.
* ``brea-permutation-plateau`` — the n_{k+1}-dimensional plane a_i = a/2 + u, a_j = a/2 - u keeps the
  network function (so the loss) exactly constant, the exact Hessian vanishes on it, and
  H (a, -a) = 0.
* ``brea-hessian-zero-eigenvalues`` — the literal reading "at least n_{k+1} zero eigenvalues";
  expected to FAIL: constancy on an n_{k+1}-plane only gives u^T H u = 0 there, not H u = 0.
* ``brea-hessian-kernel-corrected`` — the corrected statement: with C the exact block of H between
  the antisymmetric incoming directions (e_{w_i} - e_{w_j}, incl. bias) and the antisymmetric outgoing
  ones (e_{a_i} - e_{a_j}), ker H contains (0, u, -u) for u in ker C, so
  nullity(H) >= n_{k+1} - rank C >= 1, and C != 0 makes the point a strict saddle (an exact direction
  with v^T H v < 0): a "permutation saddle".
* ``brea-permutation-count`` — the count of K-th order permutation points by brute-force enumeration
  of all layer permutations, against prod n_l! * binom(n_k - K, K) / 2^K per layer.

Why the literal reading fails.  The swap of the two neurons is a symmetry fixing the point, so H is
block diagonal on the symmetric and antisymmetric subspaces; on the antisymmetric one (incoming
directions eta, outgoing directions u) it is [[B, C], [C^T, 0]]: the (u, u) block vanishes because the
loss is constant on the plateau, C u = sum_x (u . delta(x)) sigma'(z(x)) x~ (delta: the back-propagated
residual at layer k+1) vanishes for u = a by criticality of the narrower network but not for other u.
So the antisymmetric kernel is generically only {(0, u) : C u = 0}, of dimension n_{k+1} - rank C, and
the Hessian has fewer than n_{k+1} zero eigenvalues unless other flat directions make up for it
(they often do for polynomial activations: a layer whose neurons span a small polynomial space has
exactly flat fibres, and z + z^2/2 has a per-neuron rescaling symmetry; the generator of the
expected-to-fail claim uses shapes where this is rare).  At a zero-residual point C = 0 and the
paper's count holds.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from math import comb, factorial, prod
from typing import Sequence

from flint import fmpq, fmpq_mat

from relucert.claims.api import claim, counterexample, held, skipped
from relucert.claims.instance import Instance, q, qvec

THEORY = "Brea, Simsek, Illing, Gerstner 2019 (arXiv:1907.02911): permutation points"

# ---------------------------------------------------------------------------------------------
# polynomial activations: (sigma, sigma', sigma'')
# ---------------------------------------------------------------------------------------------

_H, _T, _S = fmpq(1, 2), fmpq(1, 3), fmpq(1, 6)

ACTIVATIONS = {
    # truncated exponential: no continuous symmetry of the neuron
    "exp3": (lambda z: z + _H * z * z + _S * z * z * z, lambda z: 1 + z + _H * z * z, lambda z: 1 + z),
    # odd cubic: only the discrete sign symmetry
    "odd3": (lambda z: z + _T * z * z * z, lambda z: 1 + z * z, lambda z: 2 * z),
    # z + z^2/2 = ((z + 1)^2 - 1)/2: a shifted square, so every neuron has an exact rescaling
    # symmetry ((w, b + 1) -> t (w, b + 1), next layer compensating), i.e. extra flat directions
    "quad": (lambda z: z + _H * z * z, lambda z: 1 + z, lambda z: fmpq(1)),
}
ACTIVATION_TEXT = {"exp3": "z + z^2/2 + z^3/6", "odd3": "z + z^3/3", "quad": "z + z^2/2"}


@dataclass
class PolyNet:
    """h_0 = x, h_l = sigma(W_l h_{l-1} + b_l) (l = 1..L), f = V h_L + c; exact rationals."""
    Ws: list
    bs: list
    V: list
    c: list
    act: str = "exp3"

    @property
    def widths(self) -> tuple:
        return tuple(len(b) for b in self.bs)

    @property
    def d(self) -> int:
        return len(self.Ws[0][0])

    @property
    def p(self) -> int:
        return len(self.c)

    def layers(self) -> tuple[list, list]:
        return self.Ws + [self.V], self.bs + [self.c]

    def nparams(self) -> int:
        Ws, bs = self.layers()
        return sum(len(W) * len(W[0]) + len(b) for W, b in zip(Ws, bs))

    def offsets(self) -> list:
        Ws, bs = self.layers()
        out, o = [], 0
        for W, b in zip(Ws, bs):
            out.append(o)
            o += len(W) * len(W[0]) + len(b)
        return out

    def widx(self, l: int, i: int, j: int) -> int:
        """Flat index of weight (i, j) of layer l (l = len(widths) is the output layer)."""
        Ws, _ = self.layers()
        return self.offsets()[l] + i * len(Ws[l][0]) + j

    def bidx(self, l: int, i: int) -> int:
        Ws, _ = self.layers()
        return self.offsets()[l] + len(Ws[l]) * len(Ws[l][0]) + i

    def flat(self) -> list:
        Ws, bs = self.layers()
        out = []
        for W, b in zip(Ws, bs):
            for r in W:
                out += list(r)
            out += list(b)
        return out

    def __call__(self, x: Sequence) -> list:
        sig = ACTIVATIONS[self.act][0]
        h = list(x)
        for W, b in zip(self.Ws, self.bs):
            h = [sig(sum((w * v for w, v in zip(row, h)), fmpq(0)) + bb) for row, bb in zip(W, b)]
        return [sum((w * v for w, v in zip(row, h)), fmpq(0)) + cc for row, cc in zip(self.V, self.c)]

    def copy(self) -> "PolyNet":
        return PolyNet([[list(r) for r in W] for W in self.Ws], [list(b) for b in self.bs],
                       [list(r) for r in self.V], list(self.c), self.act)

    def to_json(self) -> dict:
        s = lambda M: [[str(v) for v in r] for r in M]      # noqa: E731
        return {"activation": self.act, "widths": list(self.widths), "d": self.d, "p": self.p,
                "layers": [{"W": s(W), "b": [str(v) for v in b]} for W, b in zip(self.Ws, self.bs)],
                "output": {"W": s(self.V), "b": [str(v) for v in self.c]}}

    @classmethod
    def from_json(cls, obj: dict) -> "PolyNet":
        return cls([[qvec(r) for r in L["W"]] for L in obj["layers"]], [qvec(L["b"]) for L in obj["layers"]],
                   [qvec(r) for r in obj["output"]["W"]], qvec(obj["output"]["b"]), obj.get("activation", "exp3"))


# ---------------------------------------------------------------------------------------------
# exact derivatives: forward-mode second order with fmpq_mat
# ---------------------------------------------------------------------------------------------

def _row(M: fmpq_mat, i: int) -> fmpq_mat:
    sel = fmpq_mat(1, M.nrows())
    sel[0, i] = 1
    return sel * M


def _point(net: PolyNet, x: Sequence, order: int):
    """Outputs f(x), their gradient rows (p x P) and (order 2) Hessians (list of P x P) at one input."""
    sig, dsig, ddsig = ACTIVATIONS[net.act]
    P = net.nparams()
    Ws, bs = net.layers()
    L = len(Ws) - 1
    vals = list(x)
    G = None            # rows: gradients of the current layer's units (None: the inputs, constant)
    Hs = None
    for l, (W, b) in enumerate(zip(Ws, bs)):
        n_out, n_in = len(W), len(W[0])
        zv = [sum((W[i][j] * vals[j] for j in range(n_in)), fmpq(0)) + b[i] for i in range(n_out)]
        S = fmpq_mat(n_out, P)
        for i in range(n_out):
            for j in range(n_in):
                if vals[j] != 0:
                    S[i, net.widx(l, i, j)] = vals[j]
            S[i, net.bidx(l, i)] = 1
        ZG = S if G is None else fmpq_mat(W) * G + S
        ZH = None
        if order >= 2:
            ZH = []
            for i in range(n_out):
                Hi = fmpq_mat(P, P)
                if Hs is not None:
                    for j in range(n_in):
                        if W[i][j] != 0:
                            Hi = Hi + Hs[j] * W[i][j]
                if G is not None:
                    E = fmpq_mat(P, n_in)
                    for j in range(n_in):
                        E[net.widx(l, i, j), j] = 1
                    K = E * G
                    Hi = Hi + K + K.transpose()
                ZH.append(Hi)
        if l == L:
            return zv, ZG, ZH
        d1 = [dsig(z) for z in zv]
        Dm = fmpq_mat(n_out, n_out)
        for i in range(n_out):
            Dm[i, i] = d1[i]
        G = Dm * ZG
        if order >= 2:
            Hs = []
            for i in range(n_out):
                r = _row(ZG, i)
                Hs.append(ZH[i] * d1[i] + (r.transpose() * r) * ddsig(zv[i]))
        vals = [sig(z) for z in zv]
    raise AssertionError("unreachable")


def derivatives(net: PolyNet, X: Sequence, Y: Sequence, order: int = 2):
    """(L, grad, H) of L = 1/2 sum_x ||f(x) - y||^2: exact fmpq, grad a P x 1 and H a P x P fmpq_mat
    (H is None for order 1)."""
    P = net.nparams()
    loss = fmpq(0)
    grad = fmpq_mat(P, 1)
    H = fmpq_mat(P, P) if order >= 2 else None
    for x, y in zip(X, Y):
        f, G, Hs = _point(net, x, order)
        r = [fv - yv for fv, yv in zip(f, y)]
        loss += sum((v * v for v in r), fmpq(0)) / 2
        grad = grad + G.transpose() * fmpq_mat(len(r), 1, r)
        if order >= 2:
            H = H + G.transpose() * G
            for c, rc in enumerate(r):
                if rc != 0:
                    H = H + Hs[c] * rc
    return loss, grad, H


def jacobian(net: PolyNet, X: Sequence) -> fmpq_mat:
    """Exact Jacobian of the stacked outputs (N p x P)."""
    rows = []
    for x in X:
        _, G, _ = _point(net, x, 1)
        rows += G.tolist()
    return fmpq_mat(rows)


def kernel(M: fmpq_mat) -> list:
    """A basis (lists of fmpq) of {v : M v = 0}, from the exact reduced row echelon form."""
    R, rank = M.rref()
    n = M.ncols()
    pivots = []
    for r in range(rank):
        for cidx in range(n):
            if R[r, cidx] != 0:
                pivots.append(cidx)
                break
    out = []
    for f in (j for j in range(n) if j not in pivots):
        v = [fmpq(0)] * n
        v[f] = fmpq(1)
        for r, pc in enumerate(pivots):
            v[pc] = -R[r, f]
        out.append(v)
    return out


def _vec(v: Sequence) -> fmpq_mat:
    return fmpq_mat(len(v), 1, list(v))


def _is_zero(M: fmpq_mat) -> bool:
    return all(x == 0 for x in M.entries())


def quad(H: fmpq_mat, v: Sequence) -> fmpq:
    vv = _vec(v)
    return (vv.transpose() * H * vv)[0, 0]


# ---------------------------------------------------------------------------------------------
# the construction: reduced critical point, split neuron
# ---------------------------------------------------------------------------------------------

def split(red: PolyNet, k: int, m: int, lam: fmpq) -> PolyNet:
    """Duplicate neuron m of hidden layer k (1-based): the copy (index m + 1) gets the same incoming
    weights and bias; the outgoing vector a becomes lam a (neuron m) and (1 - lam) a (the copy)."""
    net = red.copy()
    l = k - 1
    net.Ws[l].insert(m + 1, list(net.Ws[l][m]))
    net.bs[l].insert(m + 1, net.bs[l][m])
    nxt = net.V if k == len(net.Ws) else net.Ws[k]
    for row in nxt:
        a = row[m]
        row[m] = lam * a
        row.insert(m + 1, (1 - lam) * a)
    return net


def directions(net: PolyNet, k: int, m: int) -> tuple[list, list]:
    """Antisymmetric directions of the pair (m, m + 1) of hidden layer k: incoming (weights, bias) and
    outgoing (one per neuron of the next layer), as flat vectors."""
    P = net.nparams()
    l = k - 1
    inc = []
    fan_in = len(net.Ws[l][0])
    for j in range(fan_in):
        v = [fmpq(0)] * P
        v[net.widx(l, m, j)], v[net.widx(l, m + 1, j)] = fmpq(1), fmpq(-1)
        inc.append(v)
    v = [fmpq(0)] * P
    v[net.bidx(l, m)], v[net.bidx(l, m + 1)] = fmpq(1), fmpq(-1)
    inc.append(v)
    out = []
    n_next = net.p if k == len(net.Ws) else net.widths[k]
    for c in range(n_next):
        v = [fmpq(0)] * P
        v[net.widx(k, c, m)], v[net.widx(k, c, m + 1)] = fmpq(1), fmpq(-1)
        out.append(v)
    return inc, out


def _random_net(src, d: int, widths: Sequence[int], p: int, act: str) -> PolyNet:
    rat = lambda: src.nonzero_rational(2, (1, 2))       # noqa: E731
    Ws, bs, prev = [], [], d
    for n in widths:
        Ws.append([[rat() for _ in range(prev)] for _ in range(n)])
        bs.append([rat() for _ in range(n)])
        prev = n
    return PolyNet(Ws, bs, [[rat() for _ in range(prev)] for _ in range(p)], [rat() for _ in range(p)], act)


def _data(src, N: int, d: int) -> list:
    """N distinct rational inputs: lattice points (spacing 1/2, in a centred box) each moved by at most
    3/14 per coordinate."""
    side = 1
    while side ** d < N:
        side += 1
    pts = []
    for n in range(N):
        idx = [(n // side ** t) % side for t in range(d)]
        pts.append([fmpq(2 * i - side + 1, 4) + fmpq(src.integer(-3, 3), 14) for i in idx])
    return pts


def permutation_point(src, widths: Sequence[int] | None = None, max_width: int = 4, dims: Sequence[int] = (2, 1),
                      outs: Sequence[int] = (2, 1), acts: Sequence[str] = ("exp3", "odd3", "quad"),
                      layer: int | None = None, max_params: int = 36, min_reduced: int = 1,
                      shapes: Sequence | None = None) -> Instance:
    """A reduced critical point (exact: residuals in the left null space of the Jacobian) and the
    split data (layer k, neuron m, a random lambda).  ``shapes``: a list of (widths, layer) to choose from."""
    act = src.choice(tuple(acts))
    d = src.choice(tuple(dims))
    p = src.choice(tuple(outs))
    if shapes is not None:
        widths, layer = src.choice(tuple(shapes))
    k = src.integer(1, 2 if widths is None else len(widths)) if layer is None else layer
    if widths is None:
        widths = [src.integer(2, max_width) for _ in range(2)]
        widths[k - 1] = src.integer(min_reduced + 1, max_width)
    widths = list(widths)
    red_w = list(widths)
    red_w[k - 1] -= 1
    if red_w[k - 1] < min_reduced:
        src.reject("layer too narrow to split")
    red = _random_net(src, d, red_w, p, act)
    fan_in = d if k == 1 else widths[k - 2]
    full_P = red.nparams() + fan_in + 1 + (p if k == len(widths) else widths[k])
    if full_P > max_params:
        src.reject("too many parameters")
    m = src.integer(0, red_w[k - 1] - 1)
    nxt = red.V if k == len(red.Ws) else red.Ws[k]
    if all(row[m] == 0 for row in nxt):
        src.reject("zero outgoing vector")
    l = k - 1
    if any(red.Ws[l][i] == red.Ws[l][m] and red.bs[l][i] == red.bs[l][m] for i in range(red_w[l]) if i != m):
        src.reject("the reduced network already has equal neurons")
    Pr = red.nparams()
    N = Pr // p + 1 + src.integer(0, 2)
    X = _data(src, N, d)
    J = jacobian(red, X)
    left = kernel(J.transpose())
    if not left:
        src.reject("no residual direction")
    coef = [src.integer(-2, 2) for _ in left]
    if all(c == 0 for c in coef):
        coef[src.integer(0, len(coef) - 1)] = 1
    r = [sum((c * v[t] for c, v in zip(coef, left)), fmpq(0)) for t in range(N * p)]
    F = [red(x) for x in X]
    Y = [[F[n][c] - r[n * p + c] for c in range(p)] for n in range(N)]
    lam = fmpq(src.integer(1, 6), 7)
    return Instance(kind="deep_poly_permutation_point",
                    meta={"activation": act, "activation_formula": ACTIVATION_TEXT[act], "widths": widths,
                          "layer": k, "neuron": m, "lambda": lam, "X": X, "Y": Y, "reduced": red.to_json(),
                          "permutation_point": split(red, k, m, fmpq(1, 2)).to_json()})


def _setup(inst):
    mt = inst.meta
    red = PolyNet.from_json(mt["reduced"])
    X = [qvec(x) for x in mt["X"]]
    Y = [qvec(y) for y in mt["Y"]]
    return red, int(mt["layer"]), int(mt["neuron"]), q(mt["lambda"]), X, Y


def _nonzero(M: fmpq_mat) -> list:
    return [str(v) for v in M.entries() if v != 0][:4]


# ---------------------------------------------------------------------------------------------
# claims
# ---------------------------------------------------------------------------------------------

@claim("Brea et al. 2019, permutation points are critical: duplicating a neuron of hidden layer k of an "
       "exactly critical narrower network (equal incoming weights and bias, outgoing vector split lambda a, "
       "(1 - lambda) a) gives an exactly critical point of the same loss, for lambda = 1/2 (the paper's "
       "permutation point, where incoming and outgoing vectors collide) and any lambda (deep networks, "
       "2 hidden layers, polynomial activation, squared loss, exact gradient)",
       permutation_point, name="brea-permutation-critical", budget=80, theory=THEORY,
       tags=("related", "permutation", "deep"))
def brea_critical(inst):
    red, k, m, lam, X, Y = _setup(inst)
    L0, g0, _ = derivatives(red, X, Y, order=1)
    if not _is_zero(g0):
        return counterexample(f"the reduced point is not critical (construction): {_nonzero(g0)}")
    for lm in (fmpq(1, 2), lam):
        net = split(red, k, m, lm)
        L1, g1, _ = derivatives(net, X, Y, order=1)
        if L1 != L0:
            return counterexample(f"lambda = {lm}: loss {L1} != reduced loss {L0}")
        if not _is_zero(g1):
            return counterexample(f"lambda = {lm}: the split point is not critical: gradient entries {_nonzero(g1)}")
    return held(f"critical at lambda = 1/2 and {lam}; loss {L0}")


@claim("Brea et al. 2019, the equal-loss plateau: at a permutation point of hidden layer k the "
       "n_{k+1}-dimensional plane (a_i, a_j) = (a/2 + u, a/2 - u) of outgoing weights keeps the network "
       "function, hence the loss, exactly constant (exact evaluation at random rational u); the exact "
       "Hessian vanishes on that plane (U^T H U = 0) and H (e_{a_i} - e_{a_j}) a = 0",
       permutation_point, name="brea-permutation-plateau", budget=80, theory=THEORY,
       tags=("related", "permutation", "deep"))
def brea_plateau(inst):
    red, k, m, lam, X, Y = _setup(inst)
    net = split(red, k, m, fmpq(1, 2))
    _, _, H = derivatives(net, X, Y)
    _, out = directions(net, k, m)
    base = [net(x) for x in X]
    th = net.flat()
    rng = random.Random(str(inst.meta["X"]))
    for _ in range(3):
        u = [fmpq(rng.randint(-5, 5), rng.randint(1, 4)) for _ in out]
        moved = [t + sum((uc * v[i] for uc, v in zip(u, out)), fmpq(0)) for i, t in enumerate(th)]
        nn = _unflat(net, moved)
        if [nn(x) for x in X] != base:
            return counterexample(f"the network function changes along the plateau (u = {[str(v) for v in u]})")
    U = fmpq_mat([list(col) for col in zip(*out)])
    UHU = U.transpose() * H * U
    if not _is_zero(UHU):
        return counterexample(f"the Hessian does not vanish on the plateau: U^T H U = {UHU.tolist()}")
    nxt = net.V if k == len(net.Ws) else net.Ws[k]
    a = [2 * row[m] for row in nxt]
    va = [sum((ac * v[i] for ac, v in zip(a, out)), fmpq(0)) for i in range(len(th))]
    if not _is_zero(H * _vec(va)):
        return counterexample("H (a, -a) != 0: the lambda-line direction is not in the kernel")
    return held(f"flat plane of dimension {len(out)}; U^T H U = 0")


def _unflat(net: PolyNet, v: Sequence) -> PolyNet:
    out = net.copy()
    Ws, bs = out.layers()
    t = 0
    for W, b in zip(Ws, bs):
        for r in W:
            for j in range(len(r)):
                r[j] = v[t]
                t += 1
        for j in range(len(b)):
            b[j] = v[t]
            t += 1
    return out


def _analysis(inst) -> dict:
    red, k, m, lam, X, Y = _setup(inst)
    net = split(red, k, m, fmpq(1, 2))
    _, g, H = derivatives(net, X, Y)
    inc, out = directions(net, k, m)
    A = fmpq_mat([list(col) for col in zip(*inc)])
    U = fmpq_mat([list(col) for col in zip(*out)])
    C = A.transpose() * H * U
    P = net.nparams()
    return {"net": net, "g": g, "H": H, "inc": inc, "out": out, "C": C, "rankC": C.rank(),
            "nullity": P - H.rank(), "P": P, "n_next": len(out), "k": k}


@claim("Brea et al. 2019 (abstract, literal reading): a permutation point of hidden layer k has at least "
       "n_{k+1} zero eigenvalues of the Hessian (a conjecture expected to FAIL: the loss is constant on an "
       "n_{k+1}-plane, which gives u^T H u = 0 there but not H u = 0; exact rational rank of the Hessian)",
       (permutation_point, {"dims": (2,), "outs": (2,), "acts": ("exp3", "odd3"),
                            "shapes": (((3, 2), 1), ((3, 3), 1), ((3, 4), 2))}),
       name="brea-hessian-zero-eigenvalues", budget=30,
       expect="counterexample", theory=THEORY, tags=("related", "permutation", "deep"))
def brea_zero_eigs(inst):
    an = _analysis(inst)
    if not _is_zero(an["g"]):
        return skipped("not a critical point (construction failed)")
    if an["nullity"] < an["n_next"]:
        return counterexample(f"layer {an['k']} of widths {inst.meta['widths']} (activation "
                              f"{inst.meta['activation_formula']}): the Hessian ({an['P']} x {an['P']}) has "
                              f"{an['nullity']} zero eigenvalues < n_(k+1) = {an['n_next']}; the cross block C "
                              f"between antisymmetric incoming and outgoing directions has rank {an['rankC']}",
                              nullity=an["nullity"], n_next=an["n_next"], rank_C=an["rankC"])
    return held(f"nullity {an['nullity']} >= {an['n_next']}")


@claim("Brea et al. 2019, corrected: at a permutation point of hidden layer k, let C be the exact Hessian "
       "block between the antisymmetric incoming directions e_{w_i} - e_{w_j} (weights and bias) and the "
       "antisymmetric outgoing ones e_{a_i} - e_{a_j}; then H (0, u, -u) = 0 for every u in ker C (which "
       "contains a), so nullity(H) >= n_{k+1} - rank C >= 1, and if C != 0 the point is a strict saddle "
       "(an exact direction with v^T H v < 0)",
       permutation_point, name="brea-hessian-kernel-corrected", budget=80, theory=THEORY,
       tags=("related", "permutation", "deep"))
def brea_corrected(inst):
    an = _analysis(inst)
    if not _is_zero(an["g"]):
        return counterexample("the permutation point is not critical")
    H, C, inc, out = an["H"], an["C"], an["inc"], an["out"]
    kerC = kernel(C)
    for u in kerC:
        v = [sum((uc * w[i] for uc, w in zip(u, out)), fmpq(0)) for i in range(an["P"])]
        if not _is_zero(H * _vec(v)):
            return counterexample(f"u = {[str(x) for x in u]} in ker C but H (0, u, -u) != 0")
    if an["nullity"] < an["n_next"] - an["rankC"] or an["nullity"] < 1:
        return counterexample(f"nullity {an['nullity']} < n_(k+1) - rank C = {an['n_next'] - an['rankC']}")
    note = f"nullity {an['nullity']} >= {an['n_next']} - {an['rankC']}"
    if an["rankC"]:
        v = saddle_direction(H, C, inc, out)
        if v is None or quad(H, v) >= 0:
            return counterexample("C != 0 but no exact descent direction of the Hessian was found")
        note += f"; strict saddle: v^T H v = {quad(H, v)}"
    return held(note)


def saddle_direction(H: fmpq_mat, C: fmpq_mat, inc: list, out: list) -> list | None:
    """v = s * (A eta) + U u with u a basis vector with C u != 0 and eta = C u: since U^T H U = 0,
    v^T H v = s^2 eta'A'HA eta + 2 s eta' C u, negative for the s chosen here."""
    P = H.nrows()
    for c in range(C.ncols()):
        eta = [C[r, c] for r in range(C.nrows())]
        if all(x == 0 for x in eta):
            continue
        va = [sum((e * w[i] for e, w in zip(eta, inc)), fmpq(0)) for i in range(P)]
        vu = out[c]
        a2 = quad(H, va)
        b = (_vec(va).transpose() * H * _vec(vu))[0, 0]
        if b == 0:
            continue
        s = -b / a2 if a2 > 0 else (fmpq(-1) if b > 0 else fmpq(1))
        return [s * x + y for x, y in zip(va, vu)]
    return None


# ---------------------------------------------------------------------------------------------
# counting permutation points by enumeration
# ---------------------------------------------------------------------------------------------

def count_instance(src, max_layers: int = 3, max_width: int = 5, max_group: int = 2880) -> Instance:
    """Hidden widths (1..max_width, 1..max_layers layers, prod n_l! <= max_group), an order K and a
    seed for the integer weights."""
    L = src.integer(1, max_layers)
    widths, group = [], 1
    for _ in range(L):
        top = max(n for n in range(1, max_width + 1) if group * factorial(n) <= max_group)
        widths.append(src.integer(1, top))
        group *= factorial(widths[-1])
    K = src.integer(1, 2)
    return Instance(kind="permutation_count", meta={"widths": widths, "K": K, "seed": src.seed()})


def _int_net(widths: Sequence[int], rng: random.Random, d: int = 1, p: int = 1):
    """Integer weights, outgoing weights even (so halving stays integral), distinct biases per layer."""
    Ws, bs, prev = [], [], d
    for n in widths:
        Ws.append([[2 * rng.randint(-3, 3) for _ in range(prev)] for _ in range(n)])
        bs.append(rng.sample(range(-20, 21), n))
        prev = n
    V = [[2 * rng.randint(-3, 3) for _ in range(prev)] for _ in range(p)]
    return Ws, bs, V, [rng.randint(-3, 3) for _ in range(p)]


def _permuted(Ws, bs, V, perms) -> tuple:
    """The parameter tuple after permuting the neurons of every hidden layer."""
    mats = Ws + [V]
    out = []
    for l, W in enumerate(mats):
        rows = [W[i] for i in perms[l]] if l < len(perms) else W
        cols = perms[l - 1] if l > 0 else None
        for r in rows:
            out += [r[j] for j in cols] if cols is not None else r
        if l < len(bs):
            out += [bs[l][i] for i in perms[l]]
    return tuple(out)


def _orbit(Ws, bs, V, c) -> set:
    widths = [len(b) for b in bs]
    pts = set()
    for perms in itertools.product(*(list(itertools.permutations(range(n))) for n in widths)):
        pts.add(_permuted(Ws, bs, V, perms) + tuple(c))
    return pts


def permutation_points(widths: Sequence[int], k: int, K: int, rng: random.Random) -> set:
    """All K-th order permutation points of layer k (1-based) from one generic reduced network with
    n_k - K neurons there: every choice of K neurons to duplicate (outgoing halved), every relabelling."""
    red = list(widths)
    red[k - 1] -= K
    Ws, bs, V, c = _int_net(red, rng)
    pts = set()
    for S in itertools.combinations(range(red[k - 1]), K):
        W2 = [[list(r) for r in W] for W in Ws]
        b2 = [list(b) for b in bs]
        V2 = [list(r) for r in V]
        l = k - 1
        for m in S:
            W2[l].append(list(W2[l][m]))
            b2[l].append(b2[l][m])
        nxt = V2 if k == len(widths) else W2[k]
        for row in nxt:
            for m in S:
                row[m] //= 2
            row += [row[m] for m in S]
        pts |= _orbit(W2, b2, V2, c)
    return pts


@claim("Brea et al. 2019, counting: for hidden widths n_1..n_L (<= 5) the K-th order permutation points "
       "(K disjoint colliding pairs in one layer k, from one generic narrower network) number, by "
       "brute-force enumeration of all layer permutations, prod_l n_l! * binom(n_k - K, K) / 2^K per layer, "
       "so their total exceeds the prod_l n_l! equivalent minima by exactly the paper's factor "
       "sum_k binom(n_k - K, K) / 2^K (the paper states 'at least')",
       count_instance, name="brea-permutation-count", budget=60, theory=THEORY,
       tags=("related", "permutation", "counting"))
def brea_count(inst):
    widths = [int(n) for n in inst.meta["widths"]]
    K = int(inst.meta["K"])
    rng = random.Random(inst.meta["seed"])
    G = prod(factorial(n) for n in widths)
    Ws, bs, V, c = _int_net(widths, rng)
    minima = len(_orbit(Ws, bs, V, c))
    if minima != G:
        return counterexample(f"a generic point has {minima} relabellings, not prod n_l! = {G}")
    total = 0
    factor = fmpq(0)
    for k in range(1, len(widths) + 1):
        expect = G * comb(widths[k - 1] - K, K) // 2 ** K if widths[k - 1] >= 2 * K else 0
        got = len(permutation_points(widths, k, K, rng)) if widths[k - 1] >= 2 * K else 0
        if got != expect:
            return counterexample(f"widths {widths}, layer {k}, K = {K}: {got} permutation points, formula {expect}")
        total += got
        factor += fmpq(comb(widths[k - 1] - K, K), 2 ** K) if widths[k - 1] >= 2 * K else 0
    if fmpq(total) < factor * minima:
        return counterexample(f"{total} K-th order points < factor {factor} x {minima} minima")
    return held(f"widths {widths}, K = {K}: {total} points = {factor} x {minima} minima")
