"""Hypothesis strategies for small exact instances of docs/theory.md §1 (reusable by any test).

Everything here is exact (``fractions.Fraction``) and independent of the ``relucert`` package: the
instances are built with this module's own rational linear algebra, so a test can compare the
relucert's answers against quantities it did not compute.

Instances are deliberately degenerate: data points on kinks (w_j orthogonal to chosen x_i), zero
neurons (w = 0), zero-output neurons (a = 0), duplicated / positively / negatively parallel data
points, zero data points, and points that are stationary *by construction* (residuals chosen in the
null space of the linear conditions (S1) and "b_j in the span of the kink normals"), or with output
weights fitted by exact least squares (G = 0), or exact teachers (loss 0).  Together they reach
every verdict: not_stationary, global_min, local_min, saddle and inconclusive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction as Q
from typing import Sequence

from hypothesis import strategies as st

# ---------------------------------------------------------------------------------------------
# exact helpers (Fractions, no relucert code)
# ---------------------------------------------------------------------------------------------

Vec = list


def dot(u: Sequence[Q], v: Sequence[Q]) -> Q:
    return sum((a * b for a, b in zip(u, v)), Q(0))


def rref(rows: list[list[Q]], ncols: int) -> tuple[list[list[Q]], list[int]]:
    M = [list(map(Q, r)) for r in rows]
    piv: list[int] = []
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


def rank(rows: list[list[Q]], ncols: int) -> int:
    return len(rref(rows, ncols)[1]) if rows else 0


def nullspace(rows: list[list[Q]], ncols: int) -> list[list[Q]]:
    """Basis of {v : row . v = 0 for every row}."""
    R, piv = rref(rows, ncols) if rows else ([], [])
    out = []
    for f in [c for c in range(ncols) if c not in piv]:
        v = [Q(0)] * ncols
        v[f] = Q(1)
        for row, p in zip(R, piv):
            v[p] = -row[f]
        out.append(v)
    return out


def solve_any(Amat: list[list[Q]], rhs: list[Q], ncols: int) -> list[Q] | None:
    """One solution of Amat v = rhs (free variables 0), None if inconsistent."""
    aug = [list(r) + [b] for r, b in zip(Amat, rhs)]
    R, piv = rref(aug, ncols + 1)
    if ncols in piv:
        return None
    v = [Q(0)] * ncols
    for row, p in zip(R, piv):
        v[p] = row[ncols]
    return v


def canonical(x: Sequence[Q]):
    """x = lam * key with the first non-zero entry of key equal to 1 (None for x = 0)."""
    for v in x:
        if v != 0:
            return tuple(c / v for c in x), v
    return None


# ---------------------------------------------------------------------------------------------
# the network, exactly (reference implementation for the tests)
# ---------------------------------------------------------------------------------------------

@dataclass
class Instance:
    """A problem and a point, all exact.  ``kind`` says how it was built."""

    X: list          # n x d
    Y: list          # n x k
    W: list          # m x d
    A: list          # m x k
    ap: Q
    am: Q
    loss: str = "half_mean"
    kind: str = "random"
    notes: list = field(default_factory=list)

    @property
    def n(self):
        return len(self.X)

    @property
    def d(self):
        return len(self.X[0])

    @property
    def k(self):
        return len(self.Y[0])

    @property
    def m(self):
        return len(self.W)

    def sig(self, z: Q) -> Q:
        return self.ap * z if z > 0 else self.am * z

    def activation(self) -> dict:
        return {"alpha_plus": str(self.ap), "alpha_minus": str(self.am)}

    def to_json(self) -> dict:
        s = lambda M: [[str(v) for v in row] for row in M]   # noqa: E731
        return {"activation": self.activation(), "loss": self.loss,
                "X": s(self.X), "Y": s(self.Y), "W": s(self.W), "A": s(self.A)}

    def problem_point(self):
        from relucert import as_problem_point
        return as_problem_point(self.X, self.Y, self.W, self.A, self.activation(), self.loss)

    # --- brute force ------------------------------------------------------------------------
    def outputs(self, W=None, A=None) -> list[list[Q]]:
        W = self.W if W is None else W
        A = self.A if A is None else A
        out = []
        for x in self.X:
            h = [self.sig(dot(w, x)) for w in W]
            out.append([sum((h[j] * A[j][c] for j in range(len(W))), Q(0)) for c in range(self.k)])
        return out

    def residuals(self, W=None, A=None) -> list[list[Q]]:
        F = self.outputs(W, A)
        return [[f - y for f, y in zip(Fi, Yi)] for Fi, Yi in zip(F, self.Y)]

    def loss_hm(self, W=None, A=None) -> Q:
        """Half-mean loss (1/2n) sum ||e_i||^2, by brute force."""
        E = self.residuals(W, A)
        return sum((e * e for row in E for e in row), Q(0)) / (2 * self.n)

    def factor(self) -> Q:
        return Q(1) if self.loss == "half_mean" else Q(2, self.k)

    def moved(self, dW, dA, t: Q):
        W = [[w + t * v for w, v in zip(wr, dr)] for wr, dr in zip(self.W, dW)]
        A = [[a + t * v for a, v in zip(ar, dr)] for ar, dr in zip(self.A, dA)]
        return W, A


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------

def S_rank2(u, v) -> bool:
    """u, v linearly independent."""
    return rank([list(u), list(v)], len(u)) == 2


def small_rationals(max_num: int = 4, dens=(1, 1, 2, 3)) -> st.SearchStrategy[Q]:
    """Small-denominator rationals, biased to integers."""
    return st.builds(lambda p, q: Q(p, q), st.integers(-max_num, max_num), st.sampled_from(dens))


def nonzero_rationals(max_num: int = 4, dens=(1, 1, 2, 3)) -> st.SearchStrategy[Q]:
    return st.builds(lambda p, q, s: Q(p * s, q), st.integers(1, max_num), st.sampled_from(dens),
                     st.sampled_from((1, -1)))


ACTIVATIONS = {"relu": (Q(1), Q(0)), "leaky": (Q(1), Q(1, 10)), "abs": (Q(1), Q(-1))}


@st.composite
def activations(draw) -> tuple[Q, Q]:
    name = draw(st.sampled_from(("relu", "relu", "leaky", "abs", "random")))
    if name != "random":
        return ACTIVATIONS[name]
    ap = draw(small_rationals(3))
    am = draw(small_rationals(3).filter(lambda v: v != ap))
    return ap, am


def vectors(d: int, elems=None) -> st.SearchStrategy[list]:
    return st.lists(elems if elems is not None else small_rationals(), min_size=d, max_size=d)


@st.composite
def data_matrix(draw, n: int, d: int) -> list:
    """n x d inputs with duplicated, parallel, negatively parallel and zero rows mixed in."""
    X: list = []
    for i in range(n):
        mode = draw(st.sampled_from(("fresh", "fresh", "fresh", "dup", "pos", "neg", "zero", "sum")) if i
                    else st.just("fresh"))
        if mode == "fresh" or not X:
            x = draw(vectors(d, small_rationals(3, (1, 1, 2))))
            if all(v == 0 for v in x):
                x[draw(st.integers(0, d - 1))] = Q(1)
        elif mode == "zero":
            x = [Q(0)] * d
        elif mode == "sum":
            p, q = draw(st.integers(0, len(X) - 1)), draw(st.integers(0, len(X) - 1))
            x = [a + b for a, b in zip(X[p], X[q])]
        else:
            src = X[draw(st.integers(0, len(X) - 1))]
            lam = {"dup": Q(1), "pos": draw(st.sampled_from((Q(2), Q(1, 2), Q(3)))),
                   "neg": draw(st.sampled_from((Q(-1), Q(-2), Q(-1, 3))))}[mode]
            x = [lam * v for v in src]
        X.append(x)
    return X


@st.composite
def input_weights(draw, X: list, m: int, ap: Q, am: Q) -> tuple[list, list]:
    """m x d input weights: zero neurons, neurons with chosen data on their kink, duplicates, random."""
    n, d = len(X), len(X[0])
    W, notes = [], []
    for j in range(m):
        mode = draw(st.sampled_from(("random", "kink", "kink", "zero", "dup") if j else
                                    ("random", "kink", "kink", "zero")))
        if mode == "zero":
            w = [Q(0)] * d
        elif mode == "dup" and W:
            w = list(W[draw(st.integers(0, len(W) - 1))])
            if draw(st.booleans()):
                w = [Q(2) * v for v in w]
        elif mode == "kink":
            nk = draw(st.integers(1, max(1, min(n, d - 1))))
            idx = draw(st.lists(st.integers(0, n - 1), min_size=nk, max_size=nk, unique=True))
            basis = nullspace([X[i] for i in idx], d)
            if not basis:
                w = [Q(0)] * d
            else:
                coef = draw(st.lists(nonzero_rationals(3, (1,)), min_size=len(basis), max_size=len(basis)))
                w = [sum((c * b[q] for c, b in zip(coef, basis)), Q(0)) for q in range(d)]
        else:
            w = draw(vectors(d))
        notes.append(mode)
        W.append(w)
    return W, notes


@st.composite
def output_weights(draw, m: int, k: int) -> list:
    A = []
    for _ in range(m):
        if draw(st.integers(0, 3)) == 0:
            A.append([Q(0)] * k)
        else:
            A.append(draw(vectors(k, small_rationals(3, (1, 1, 2)))))
    return A


def stationary_residual_basis(inst: Instance, relaxed: bool) -> list[list[Q]]:
    """Basis of residual matrices R (flattened n*k) satisfying, for the point of ``inst``,
    (S1) sum_i r_i sigma(z_ij) = 0 for every neuron, and for every neuron with a_j != 0 the part of
    b_j = sum_i (a_j.r_i) s_ij x_i (s_ij = sigma'(z_ij), alpha_minus on kinks) orthogonal to the
    kink points (``relaxed``) or all of b_j (not relaxed) vanishing.  All linear in R."""
    n, d, k, m = inst.n, inst.d, inst.k, inst.m
    rows = []
    for j in range(m):
        z = [dot(inst.W[j], x) for x in inst.X]
        for c in range(k):
            row = [Q(0)] * (n * k)
            for i in range(n):
                row[i * k + c] = inst.sig(z[i])
            rows.append(row)
        a = inst.A[j]
        if all(v == 0 for v in a):
            continue
        s = [inst.ap if zi > 0 else inst.am for zi in z]
        kinks = [inst.X[i] for i in range(n) if z[i] == 0]
        dirs = nullspace(kinks, d) if relaxed else [[Q(int(q == p)) for q in range(d)] for p in range(d)]
        for p in dirs:
            row = [Q(0)] * (n * k)
            for i in range(n):
                xp = dot(inst.X[i], p)
                for c in range(k):
                    row[i * k + c] += a[c] * s[i] * xp
            rows.append(row)
    return nullspace(rows, n * k)


@st.composite
def vector_flat_instance(draw, ap, am, loss, max_n: int = 5, max_d: int = 3) -> Instance:
    """k = 2, one neuron with every data point strictly active (no kinks) and a != 0, residuals
    e_i = eps c_i b with b orthogonal to a and sum_i c_i sigma(w.x_i) = 0: stationary (G = 0 and
    a.e_i = 0), and D(r) = eps b sum_i c_i (x_i.r) / n != 0, so the neuron is an escape neuron with
    a != 0 (docs/theory.md §4, broad reading).  Along w + t r, a + t delta the t^2 coefficient is
    (|a|^2 sum (x_i.r)^2 - eps^2 |b|^2 (sum c_i x_i.r)^2 / sum h_i^2) / 2n at the best delta: small eps
    gives a local minimum that the first-order theorems cannot decide (inconclusive), large eps a
    second-order saddle."""
    if ap <= 0:
        ap, am = Q(1), Q(0)
    n = draw(st.integers(2, max(2, max_n)))
    d = draw(st.integers(1, max_d))
    w = draw(vectors(d, small_rationals(3)).filter(lambda v: any(v)))
    X = []
    for _ in range(n):
        x = draw(vectors(d, small_rationals(3)))
        z = dot(w, x)
        if z <= 0:                     # move x into the active side: x + (1 - z) w / |w|^2
            x = [u + (1 - z) * v / dot(w, w) for u, v in zip(x, w)]
        X.append(x)
    h = [ap * dot(w, x) for x in X]
    c = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    hh = dot(h, h)
    c = [Q(ci) - Q(dot([Q(v) for v in c], h)) / hh * hi for ci, hi in zip(c, h)]     # sum c_i h_i = 0
    a = draw(vectors(2, nonzero_rationals(2, (1,))))
    b = [-a[1], a[0]]
    eps = draw(st.sampled_from((Q(1, 100), Q(1, 10), Q(1), Q(3), Q(10))))
    E = [[eps * ci * v for v in b] for ci in c]
    Y = [[hi * av - ev for av, ev in zip(a, e)] for hi, e in zip(h, E)]
    notes = ["active on every point"]
    if d >= 2 and draw(st.booleans()):
        # a data point on the neuron's kink with residual along b: still stationary (sigma(0) = 0,
        # a.e = 0), no longer smooth (no Hessian / Morse-Bott argument)
        xk = [Q(0)] * d
        xk[0], xk[1] = -w[1], w[0]
        if not any(xk):
            xk[0] = Q(1)
            xk = [xk[0] - dot(xk, w) / dot(w, w) * w[0]] + [-dot(xk, w) / dot(w, w) * v for v in w[1:]]
        ck = draw(st.integers(1, 3))
        X.append(xk)
        Y.append([-eps * ck * v for v in b])
        notes = ["active on every point but one kink point"]
    return Instance(X, Y, [w], [a], ap, am, loss, "vector_flat", notes)


@st.composite
def instances(draw, max_n: int = 5, max_d: int = 3, max_m: int = 3, ks=(1, 2),
              kinds=("random", "stationary", "stationary", "degenerate", "dominated", "fitted", "teacher",
                     "vector_flat")) -> Instance:
    """A small exact instance; ``kind``: random / stationary / degenerate / dominated / fitted / teacher."""
    ap, am = draw(activations())
    n = draw(st.one_of(st.just(max_n), st.integers(1, max_n)))
    d = draw(st.integers(1, max_d))
    m = draw(st.integers(1, max_m))
    k = draw(st.sampled_from(ks))
    loss = draw(st.sampled_from(("half_mean", "half_mean", "mse")))
    kind = draw(st.sampled_from(kinds))
    if kind == "vector_flat" and max(ks) < 2:
        kind = "stationary"
    if kind == "vector_flat":
        return draw(vector_flat_instance(ap, am, loss, max_n, max_d))
    if kind in ("degenerate", "dominated"):
        # dependent kink normals on neuron 0: u, v, u + v (and more) on its kink, with w_0 = 0 or,
        # in R^3, w_0 orthogonal to span(u, v); a_0 != 0.  Then the point is made stationary-ish.
        d = draw(st.integers(2, max(2, max_d)))
        n = draw(st.integers(min(3, max_n), max_n))
        u = draw(vectors(d, small_rationals(2, (1,))).filter(lambda v: any(v)))
        v = draw(vectors(d, small_rationals(2, (1,))).filter(lambda w: S_rank2(u, w)))
        extra = [[a + b for a, b in zip(u, v)], [a - b for a, b in zip(u, v)], [2 * a + b for a, b in zip(u, v)]]
        X = [u, v] + extra[:n - 2]
        rest = draw(data_matrix(n, d))
        X = (X + rest)[:n]
        if kind == "degenerate":
            X = draw(st.permutations(X))
        w0 = [Q(0)] * d
        if d == 3 and draw(st.booleans()):
            w0 = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
        W, wnotes = draw(input_weights(X, m, ap, am))
        W[0], wnotes[0] = w0, "degenerate"
        A = draw(output_weights(m, k))
        A[0] = draw(vectors(k, nonzero_rationals(2, (1,))))
    else:
        X = draw(data_matrix(n, d))
        W, wnotes = draw(input_weights(X, m, ap, am))
        A = draw(output_weights(m, k))
    inst = Instance(X, [[Q(0)] * k for _ in range(n)], W, A, ap, am, loss, kind, list(wnotes))
    F = inst.outputs()
    if kind == "random":
        inst.Y = [draw(vectors(k, small_rationals(3))) for _ in range(n)]
    elif kind == "teacher":
        inst.Y = [list(r) for r in F]
    elif kind == "fitted":
        # targets random, A replaced by an exact least-squares fit: H^T H A = H^T Y, so G = 0
        inst.Y = [draw(vectors(k, small_rationals(3))) for _ in range(n)]
        H = [[inst.sig(dot(w, x)) for w in W] for x in X]
        HtH = [[dot([H[i][p] for i in range(n)], [H[i][q] for i in range(n)]) for q in range(m)]
               for p in range(m)]
        newA = [[Q(0)] * k for _ in range(m)]
        for c in range(k):
            rhs = [dot([H[i][p] for i in range(n)], [inst.Y[i][c] for i in range(n)]) for p in range(m)]
            sol = solve_any(HtH, rhs, m)
            assert sol is not None, "normal equations are always consistent"
            for p in range(m):
                newA[p][c] = sol[p]
        inst.A = newA
    elif kind == "dominated":
        # ReLU, neuron 0 at w = 0 with a_0 != 0 (every point on its kink), the other neurons copies
        # (w = 0, a_j = lam a_0, lam > 0); F = 0 and a_0.e_i = c_i with large c on u, v and a small
        # negative c on u + v (docs/theory.md §3: 5 relu(r1) + 5 relu(r2) - relu(r1 + r2) >= 0), others random.
        inst.ap, inst.am = Q(1), Q(0)
        inst.W = [[Q(0)] * d for _ in range(m)]
        a0 = inst.A[0]
        inst.A = [a0] + [[draw(st.sampled_from((Q(1), Q(2), Q(1, 2)))) * v for v in a0] for _ in range(m - 1)]
        aa = dot(a0, a0)
        E = []
        for i in range(n):
            role = ("u", "v", "sum")[i] if i < 3 else "other"
            c = {"u": draw(st.integers(1, 6)), "v": draw(st.integers(1, 6)), "sum": draw(st.integers(-3, 1)),
                 "other": draw(st.integers(-2, 4))}[role]
            e = [Q(c) * v / aa for v in a0]
            if k == 2 and draw(st.booleans()):
                t = Q(draw(st.integers(-2, 2)))
                e = [e[0] - t * a0[1], e[1] + t * a0[0]]
            E.append(e)
        inst.Y = [[-v for v in e] for e in E]
    else:  # stationary / degenerate: Y = F - R with R in the null space of the linear stationarity conditions
        relaxed = draw(st.booleans())
        basis = stationary_residual_basis(inst, relaxed)
        inst.notes.append(f"residual space dim {len(basis)} ({'relaxed' if relaxed else 'b=0'})")
        coef = draw(st.lists(st.integers(-3, 3), min_size=len(basis), max_size=len(basis)))
        R = [sum((c * b[t] for c, b in zip(coef, basis)), Q(0)) for t in range(n * k)]
        inst.Y = [[F[i][c] - R[i * k + c] for c in range(k)] for i in range(n)]
    return inst


# ---------------------------------------------------------------------------------------------
# directions
# ---------------------------------------------------------------------------------------------

@st.composite
def directions(draw, inst: Instance) -> tuple[list, list]:
    """A direction (dW, dA): random, supported on one neuron, a coordinate direction, or with dw_j
    orthogonal to / along +-x_i for kink points of neuron j (delta_ij = 0, > 0 or < 0)."""
    n, d, k, m = inst.n, inst.d, inst.k, inst.m
    mode = draw(st.sampled_from(("random", "neuron", "coord", "kinky", "kinky")))
    dW = [[Q(0)] * d for _ in range(m)]
    dA = [[Q(0)] * k for _ in range(m)]
    if mode == "coord":
        j = draw(st.integers(0, m - 1))
        sgn = Q(draw(st.sampled_from((1, -1))))
        if draw(st.booleans()):
            dW[j][draw(st.integers(0, d - 1))] = sgn
        else:
            dA[j][draw(st.integers(0, k - 1))] = sgn
        return dW, dA
    js = range(m) if mode != "neuron" else [draw(st.integers(0, m - 1))]
    for j in js:
        dA[j] = draw(vectors(k, small_rationals(3)))
        z = [dot(inst.W[j], x) for x in inst.X]
        kinks = [i for i in range(n) if z[i] == 0]
        if mode == "kinky" and kinks:
            sub = draw(st.lists(st.sampled_from(kinks), max_size=len(kinks), unique=True))
            basis = nullspace([inst.X[i] for i in sub], d)
            w = [Q(0)] * d
            for b in basis:
                c = draw(small_rationals(3))
                w = [u + c * v for u, v in zip(w, b)]
            if draw(st.booleans()):     # push along +-x_i of one kink point
                i = draw(st.sampled_from(kinks))
                c = draw(nonzero_rationals(2, (1, 2)))
                w = [u + c * v for u, v in zip(w, inst.X[i])]
            dW[j] = w
        else:
            dW[j] = draw(vectors(d, small_rationals(3)))
    return dW, dA


@st.composite
def hinge_sets(draw, d_min: int = 1, d_max: int = 3):
    """(b, gamma) for phi(r) = b.r + sum_p gamma_p max(0, nu_p.r): canonical pairwise
    non-parallel normals (independent or dependent: 3 normals in R^2, grids, sums), gamma of mixed
    signs, and b either random or built near stationarity (b = -sum s_p gamma_p nu_p, s in [0,1])."""
    d = draw(st.integers(d_min, d_max))
    style = draw(st.sampled_from(("random", "random", "grid", "sum")))
    cands: list = []
    if style == "grid":
        vals = (-1, 0, 1, 2) if d <= 2 else (-1, 0, 1)
        import itertools
        cands = [list(map(Q, v)) for v in itertools.product(vals, repeat=d)]
        cands = draw(st.lists(st.sampled_from(cands), min_size=1, max_size=6))
    else:
        cnt = draw(st.integers(0, 5))
        cands = [draw(vectors(d, small_rationals(3, (1, 1, 2)))) for _ in range(cnt)]
        if style == "sum" and len(cands) >= 2:
            cands.append([u + v for u, v in zip(cands[0], cands[1])])
    keys: list = []
    for v in cands:
        c = canonical(v)
        if c is not None and c[0] not in keys:
            keys.append(c[0])
    gamma = {}
    for key in keys:
        gamma[key] = draw(nonzero_rationals(5, (1, 1, 2)))
    if style == "sum" and len(cands) >= 3 and draw(st.booleans()):
        # docs/theory.md §3 pattern: big convex hinges on u, v, a small concave one on u + v
        ku, kv, ks = (canonical(c) for c in cands[:2] + cands[-1:])
        if None not in (ku, kv, ks) and len({ku[0], kv[0], ks[0]}) == 3:
            gamma[ku[0]] = Q(draw(st.integers(1, 6)))
            gamma[kv[0]] = Q(draw(st.integers(1, 6)))
            gamma[ks[0]] = -Q(draw(st.integers(1, 3)), draw(st.sampled_from((1, 2))))
    if draw(st.booleans()):
        b = draw(vectors(d, small_rationals(3)))
    else:
        b = [Q(0)] * d
        for key, g in gamma.items():
            s = draw(st.sampled_from((Q(0), Q(1), Q(1, 2), Q(1, 3))))
            b = [u - s * g * v for u, v in zip(b, key)]
        if draw(st.integers(0, 3)) == 0:
            i = draw(st.integers(0, d - 1))
            b[i] += draw(nonzero_rationals(1, (1, 4)))
    return b, gamma
