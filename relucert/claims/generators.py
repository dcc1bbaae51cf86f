"""Instance generators (exact rationals), usable as hypothesis strategies and as plain seeded
generators (see :mod:`relucert.claims.source`).

Building blocks: :func:`activation`, :func:`dataset`, :func:`targets`, :func:`input_weights`,
:func:`output_weights`.  Points with a known structure:

- :func:`stationary_point` — stationary *by construction*: choose X, W, A and Clarke multipliers
  s_p in [0, 1] for the kink hinges, then choose the residual matrix R in the null space of the
  linear conditions (S1) G_j = 0 and  b_j + sum_p s_p gamma_p nu_p = 0, and set Y = F - R.  The
  point is then stationary whenever every hinge coefficient gamma_p >= 0 (the sign of R is chosen
  to make that likely).  Neurons may be zero (w = 0, a = 0), dead, zero-output, on chosen kinks,
  or duplicates;
- :func:`fitted_point` — random W, output weights fitted by exact least squares (G = 0);
- :func:`teacher_point` — Y is produced by the point itself (loss 0), plus zero/dead neurons;
- :func:`random_point` — everything random;
- :func:`gd_start` / :func:`gd_refined_point` — a balanced small initialisation for a float
  gradient-descent run, and the exact stationary point that refinement finds next to where GD
  stops (the dyadic float end point, refined by :mod:`relucert.refine`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from flint import fmpq

from relucert.core.formulas import ExactState, canonical_normal
from relucert.core.linalg import nullspace
from relucert.core.problem import Activation, Point, Problem
from relucert.claims.embed import dead_direction
from relucert.claims import exact as ex
from relucert.claims.exact import dot, lstsq, obj_array, outputs, sigma, to_float
from relucert.claims.instance import Instance, q
from relucert.claims.source import Source

ACTIVATION_KINDS = ("relu", "leaky", "abs", "random")
DATA_STYLES = ("generic", "grid", "duplicated", "collinear", "symmetric")
NEURON_MODES = ("random", "kink", "zero", "dup", "dead")
MULTIPLIERS = (fmpq(1, 2), fmpq(0), fmpq(1), fmpq(1, 3))


# ---------------------------------------------------------------------------------------------
# activations and data
# ---------------------------------------------------------------------------------------------

def activation(src: Source, kinds: Sequence[str] = ACTIVATION_KINDS) -> Activation:
    """ReLU, leaky ReLU (slope 1/10), absolute value, or random alpha_plus != alpha_minus."""
    name = src.choice(tuple(kinds))
    if name == "relu":
        return Activation(fmpq(1), fmpq(0))
    if name == "leaky":
        return Activation(fmpq(1), fmpq(1, 10))
    if name == "abs":
        return Activation(fmpq(1), fmpq(-1))
    if name == "dead_ok":          # alpha_minus = 0, alpha_plus random (dead neurons exist)
        return Activation(src.choice((fmpq(1), fmpq(2), fmpq(1, 2), fmpq(3))), fmpq(0))
    ap = src.nonzero_rational(3, (1, 2))
    am = src.rational(3, (1, 2))
    if am == ap:
        am = ap - 1
    return Activation(ap, am)


def dataset(src: Source, n: int, d: int, style: str | None = None, bias: bool | None = None) -> list:
    """n x d inputs: generic, on a grid, with duplicated / collinear / symmetric (x, -x) points;
    with ``bias`` the last column is the constant 1 (and d - 1 columns are drawn)."""
    style = src.choice(DATA_STYLES) if style is None else style
    bias = src.boolean() if bias is None else bias
    r = d - 1 if bias else d
    X: list = []
    if r == 0:
        X = [[] for _ in range(n)]
    elif style == "grid":
        vals = (fmpq(0), fmpq(1), fmpq(-1), fmpq(2))
        for _ in range(n):
            x = [src.choice(vals) for _ in range(r)]
            if all(v == 0 for v in x) and not bias:
                x[src.integer(0, r - 1)] = fmpq(1)
            X.append(x)
    elif style == "collinear":
        lines = [src.nonzero_vector(r, 2, (1,)) for _ in range(src.integer(1, 2))]
        lams = (fmpq(1), fmpq(2), fmpq(-1), fmpq(1, 2), fmpq(-2), fmpq(3))
        for _ in range(n):
            v = src.choice(lines)
            lam = src.choice(lams)
            X.append([lam * c for c in v])
    elif style == "symmetric":
        half = []
        while 2 * len(half) < n:
            half.append(src.nonzero_vector(r, 3, (1, 1, 2)))
        for x in half:
            X.append(x)
            X.append([-c for c in x])
        X = X[:n]
    else:   # generic / duplicated
        for i in range(n):
            if style == "duplicated" and X and src.integer(0, 2) == 0:
                X.append(list(X[src.integer(0, len(X) - 1)]))
            else:
                X.append(src.nonzero_vector(r, 3, (1, 1, 2)))
    if bias:
        X = [x + [fmpq(1)] for x in X]
    return X


def targets(src: Source, n: int, k: int) -> list:
    return [src.vector(k, 3, (1, 1, 2)) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------

def kink_weight(src: Source, X: list, max_kinks: int | None = None) -> list:
    """A w with chosen data points on its kink (w . x_i = 0), zero if no such non-zero w exists."""
    n, d = len(X), len(X[0])
    cap = max(1, min(n, d - 1)) if max_kinks is None else max_kinks
    idx = src.subset(range(n), 1, cap)
    basis = nullspace([X[i] for i in idx], d)
    if not basis:
        return [fmpq(0)] * d
    w = [fmpq(0)] * d
    for b in basis:
        c = src.nonzero_rational(3, (1,))
        w = [u + c * v for u, v in zip(w, b)]
    if all(v == 0 for v in w):
        w = list(basis[0])
    return w


def input_weights(src: Source, X: list, m: int, modes: Sequence[str] = NEURON_MODES) -> tuple[list, list]:
    """m x d input weights and the mode of each neuron (random / kink / zero / dup / dead)."""
    d = len(X[0])
    W, used = [], []
    for j in range(m):
        mode = src.choice(tuple(modes))
        if mode == "dup" and not W:
            mode = "random"
        if mode == "zero":
            w = [fmpq(0)] * d
        elif mode == "dup":
            src_w = W[src.integer(0, len(W) - 1)]
            lam = src.choice((fmpq(1), fmpq(2), fmpq(1, 2)))
            w = [lam * v for v in src_w]
        elif mode == "kink":
            w = kink_weight(src, X)
        elif mode == "dead":
            w = dead_direction(obj_array(X))
            if w is None:
                mode, w = "random", src.nonzero_vector(d)
        else:
            w = src.nonzero_vector(d)
        W.append(w)
        used.append(mode)
    return W, used


def output_weights(src: Source, m: int, k: int, modes: Sequence[str] | None = None,
                   zero_prob: int = 4) -> list:
    """m x k output weights; zero / dead neurons get a = 0 most of the time, others with chance
    1/zero_prob (zero_prob = 0: no output weight is 0)."""
    A = []
    for j in range(m):
        mode = modes[j] if modes else "random"
        if mode in ("zero", "dead") and zero_prob and src.integer(0, 3) != 0:
            A.append([fmpq(0)] * k)
        elif zero_prob and src.integer(0, zero_prob - 1) == 0:
            A.append([fmpq(0)] * k)
        else:
            a = src.vector(k, 3, (1, 1, 2))
            if all(v == 0 for v in a):
                a[src.integer(0, k - 1)] = fmpq(1)
            A.append(a)
    return A


# ---------------------------------------------------------------------------------------------
# stationary by construction
# ---------------------------------------------------------------------------------------------

def _pre(X: list, w: list) -> list:
    """z_i = w . x_i (the checker's reference pre-activations)."""
    return [row[0] for row in ex.preactivations(X, [w])]


def stationarity_rows(X: list, W: list, A: list, act: Activation, mult: dict) -> list:
    """Rows (over the residual matrix R, flattened n*k, e = R) of the linear conditions
    (S1) sum_i r_i sigma(z_ij) = 0 and, for a_j != 0, the Clarke condition with fixed multipliers
    sum_{i not in K} c_i sigma'(z_ij) x_i + sum_{i in K} c_i (alpha_minus + (alpha_plus - alpha_minus) s_i) x_i = 0,
    c_i = a_j . r_i; ``mult[(j, key)]`` is s_p of the kink group with canonical normal key
    (s_i = s_p for x_i = lam nu_p with lam > 0, 1 - s_p for lam < 0)."""
    n, d, k = len(X), len(X[0]), len(A[0])
    ap, am = act.alpha_plus, act.alpha_minus
    out = []
    for j, (w, a) in enumerate(zip(W, A)):
        z = _pre(X, w)
        for c in range(k):
            row = [fmpq(0)] * (n * k)
            for i in range(n):
                row[i * k + c] = sigma(ap, am, z[i])
            out.append(row)
        if all(v == 0 for v in a):
            continue
        t = []
        for i in range(n):
            if z[i] > 0:
                t.append(ap)
            elif z[i] < 0:
                t.append(am)
            else:
                cn = canonical_normal(X[i])
                if cn is None:
                    t.append(am)
                    continue
                key, lam = cn
                s = mult.get((j, key), fmpq(1, 2))
                t.append(am + (ap - am) * (s if lam > 0 else 1 - s))
        for col in range(d):
            row = [fmpq(0)] * (n * k)
            for i in range(n):
                f = t[i] * X[i][col]
                if f != 0:
                    for c in range(k):
                        row[i * k + c] += a[c] * f
            out.append(row)
    return out


def _kink_groups(X: list, W: list) -> list:
    keys = []
    for j, w in enumerate(W):
        for i, z in enumerate(_pre(X, w)):
            if z == 0:
                cn = canonical_normal(X[i])
                if cn is not None and (j, cn[0]) not in keys:
                    keys.append((j, cn[0]))
    return keys


def _negative_hinges(problem: Problem, point: Point) -> int:
    st = ExactState(problem, point)
    return sum(1 for j in range(point.m) for g in st.neuron(j).gamma.values() if g < 0)


def design_stationary(src: Source, X: list, W: list, A: list, act: Activation, k: int,
                      loss: str = "half_mean") -> tuple[Problem, Point, dict]:
    """Targets that make (W, A) stationary (see the module doc); returns problem, point, notes."""
    n = len(X)
    mult = {key: src.choice(MULTIPLIERS) for key in _kink_groups(X, W)}
    basis = nullspace(stationarity_rows(X, W, A, act, mult), n * k)
    coef = [src.integer(-3, 3) for _ in basis]
    R = [sum((c * b[t] for c, b in zip(coef, basis) if c), fmpq(0)) for t in range(n * k)]
    F = outputs(Problem.make(X, [[0] * k for _ in range(n)], act), W, A)
    point = Point(obj_array(W), obj_array(A))
    best = None
    for sgn in (1, -1):
        Y = [[F[i][c] - sgn * R[i * k + c] for c in range(k)] for i in range(n)]
        pb = Problem(obj_array(X), obj_array(Y), act, loss)
        neg = _negative_hinges(pb, point) if mult else 0
        if best is None or neg < best[0]:
            best = (neg, pb)
        if neg == 0:
            break
    notes = {"residual_dim": len(basis), "multipliers": [[j, list(key), s] for (j, key), s in mult.items()]}
    return best[1], point, notes


def stationary_point(src: Source, ks: Sequence[int] = (1, 2), max_n: int = 6, max_d: int = 3, max_m: int = 3,
                     activations: Sequence[str] = ACTIVATION_KINDS, modes: Sequence[str] = NEURON_MODES,
                     zero_prob: int = 4, min_n: int = 1, zero_output: bool = False) -> Instance:
    """A point that is stationary by construction (whenever its hinge coefficients are >= 0);
    with ``zero_output`` the last neuron has a = 0 (and w zero, on a kink, or random)."""
    act = activation(src, activations)
    k = src.choice(tuple(ks))
    d = src.integer(1, max_d)
    n = src.integer(min_n, max_n)
    m = src.integer(1, max_m)
    X = dataset(src, n, d)
    W, used = input_weights(src, X, m, modes)
    A = output_weights(src, m, k, used, zero_prob)
    if zero_output:
        mode = src.choice(("zero", "kink", "random"))
        W.append([fmpq(0)] * d if mode == "zero" else kink_weight(src, X) if mode == "kink" else src.nonzero_vector(d))
        A.append([fmpq(0)] * k)
        used.append(f"{mode}, a = 0")
    loss = src.choice(("half_mean", "mse"))
    pb, pt, notes = design_stationary(src, X, W, A, act, k, loss)
    return Instance(pb, pt, "stationary", {"modes": used, **notes})


def fitted_point(src: Source, ks: Sequence[int] = (1, 2), max_n: int = 6, max_d: int = 3, max_m: int = 3,
                 activations: Sequence[str] = ACTIVATION_KINDS, modes: Sequence[str] = NEURON_MODES) -> Instance:
    """Random data and targets, W random/structured, A the exact least-squares fit (so G = 0)."""
    act = activation(src, activations)
    k = src.choice(tuple(ks))
    d, n, m = src.integer(1, max_d), src.integer(1, max_n), src.integer(1, max_m)
    X = dataset(src, n, d)
    Y = targets(src, n, k)
    W, used = input_weights(src, X, m, modes)
    H = [[sigma(act.alpha_plus, act.alpha_minus, z) for z in zr] for zr in ex.preactivations(X, W)]
    A = lstsq(H, Y)
    pb = Problem(obj_array(X), obj_array(Y), act)
    return Instance(pb, Point(obj_array(W), obj_array(A)), "fitted", {"modes": used})


def teacher_point(src: Source, ks: Sequence[int] = (1, 2), max_n: int = 6, max_d: int = 3, max_m: int = 3,
                  activations: Sequence[str] = ACTIVATION_KINDS, modes: Sequence[str] = NEURON_MODES) -> Instance:
    """Targets produced by the point itself: loss exactly 0."""
    act = activation(src, activations)
    k = src.choice(tuple(ks))
    d, n, m = src.integer(1, max_d), src.integer(1, max_n), src.integer(1, max_m)
    X = dataset(src, n, d)
    W, used = input_weights(src, X, m, modes)
    A = output_weights(src, m, k, used)
    F = outputs(Problem.make(X, [[0] * k for _ in range(n)], act), W, A)
    pb = Problem(obj_array(X), obj_array(F), act)
    return Instance(pb, Point(obj_array(W), obj_array(A)), "teacher", {"modes": used})


def random_point(src: Source, ks: Sequence[int] = (1, 2), max_n: int = 6, max_d: int = 3, max_m: int = 3,
                 activations: Sequence[str] = ACTIVATION_KINDS, modes: Sequence[str] = NEURON_MODES) -> Instance:
    act = activation(src, activations)
    k = src.choice(tuple(ks))
    d, n, m = src.integer(1, max_d), src.integer(1, max_n), src.integer(1, max_m)
    X = dataset(src, n, d)
    Y = targets(src, n, k)
    W, used = input_weights(src, X, m, modes)
    A = output_weights(src, m, k, used)
    pb = Problem(obj_array(X), obj_array(Y), act)
    return Instance(pb, Point(obj_array(W), obj_array(A)), "random", {"modes": used})


def structured_point(src: Source, kinds: Sequence[str] = ("stationary", "stationary", "fitted", "teacher", "random"),
                     **kw) -> Instance:
    """One of the point generators above."""
    kind = src.choice(tuple(kinds))
    return {"stationary": stationary_point, "fitted": fitted_point, "teacher": teacher_point,
            "random": random_point}[kind](src, **kw)


# ---------------------------------------------------------------------------------------------
# gradient descent from small initialisation
# ---------------------------------------------------------------------------------------------

INIT_SCALES = (fmpq(1, 100), fmpq(1, 1000), fmpq(1, 10))
LEARNING_RATES = (fmpq(1, 20), fmpq(1, 10), fmpq(1, 50))


def gd_start(src: Source, ks: Sequence[int] = (1,), max_n: int = 5, max_d: int = 3, max_m: int = 3,
             activations: Sequence[str] = ("relu", "leaky", "abs"), steps: Sequence[int] = (3000, 1500, 6000)) -> Instance:
    """Data, targets and a balanced small initialisation (|a_j| = |w_j| = scale) for float GD; the
    point is the initialisation, meta holds lr, steps, scale."""
    act = activation(src, activations)
    k = src.choice(tuple(ks))
    d, n, m = src.integer(1, max_d), src.integer(1, max_n), src.integer(1, max_m)
    X = dataset(src, n, d, style=src.choice(("generic", "grid", "symmetric")), bias=src.boolean())
    Y = targets(src, n, k)
    scale = src.choice(INIT_SCALES)
    rng = np.random.default_rng(src.seed())
    W0, A0 = [], []
    for _ in range(m):
        w = rng.standard_normal(d)
        w = w / max(np.linalg.norm(w), 1e-12)
        a = rng.standard_normal(k)
        a = a / max(np.linalg.norm(a), 1e-12)
        # exact dyadic entries, then exact balancing is not needed: the float trainer starts here
        W0.append([fmpq(*float(v * float(scale.p) / float(scale.q)).as_integer_ratio()) for v in w])
        A0.append([fmpq(*float(v * float(scale.p) / float(scale.q)).as_integer_ratio()) for v in a])
    pb = Problem(obj_array(X), obj_array(Y), act)
    meta = {"lr": src.choice(LEARNING_RATES), "steps": src.choice(tuple(steps)), "scale": scale}
    return Instance(pb, Point(obj_array(W0), obj_array(A0)), "gd_start", meta)


def gd_refined_point(src: Source, **kw) -> Instance:
    """Run float GD from :func:`gd_start`, take the (exact, dyadic) end point and refine it to an
    exact stationary point nearby (scalar output); rejects if refinement finds nothing decisive."""
    from relucert.refine import DECISIVE, refine
    from relucert.claims.gd import train_float
    start = gd_start(src, **kw)
    pb = start.problem
    Wf, Af, _ = train_float(pb, start.point.Wf, start.point.Af, to_float(q(start.meta["lr"])),
                            int(start.meta["steps"]))
    end = Point.make(Wf, Af, pb)
    info = refine(pb, end)
    for r in info["refinements"]:
        if r.result is not None and r.result.verdict in DECISIVE:
            meta = dict(start.meta, reading=r.reading, distance=r.distance.get("max_abs") if r.distance else None)
            return Instance(pb, r.point, "gd_refined", meta)
    src.reject("refinement of the GD end point found no decisive stationary point")
    return Instance(pb, end, "gd_end", start.meta)


def flat_escape_point(src: Source, max_n: int = 5, max_d: int = 3) -> Instance:
    """Vector output (k = 2), one neuron w active on every data point, a != 0, residuals
    e_i = eps c_i b with b orthogonal to a and sum_i c_i sigma(w.x_i) = 0: stationary, and D(r) =
    eps b sum_i c_i (x_i.r) / n, so the neuron is an escape neuron with a != 0 whenever
    sum_i c_i x_i != 0.  Small eps: a local minimum the first-order theorems cannot decide (Morse-Bott
    at second order); large eps: a second-order saddle.  Optionally one more data point on the kink."""
    d = src.integer(1, max_d)
    n = src.integer(2, max(2, max_n))
    w = src.nonzero_vector(d)
    ww = dot(w, w)
    X = []
    for _ in range(n):
        x = src.vector(d)
        z = dot(w, x)
        if z <= 0:
            x = [u + (1 - z) * v / ww for u, v in zip(x, w)]
        X.append(x)
    h = [dot(w, x) for x in X]
    c = [fmpq(src.integer(-3, 3)) for _ in range(n)]
    ch = dot(c, h) / dot(h, h)
    c = [ci - ch * hi for ci, hi in zip(c, h)]
    a = src.nonzero_vector(2, max_num=2, dens=(1,))
    b = [-a[1], a[0]]
    eps = src.choice((fmpq(1, 100), fmpq(1, 10), fmpq(1), fmpq(3), fmpq(10)))
    Y = [[hi * av - eps * ci * bv for av, bv in zip(a, b)] for hi, ci in zip(h, c)]
    kink = d >= 2 and src.boolean()
    if kink:
        xk = [-w[1], w[0]] + [fmpq(0)] * (d - 2)
        if all(v == 0 for v in xk):
            xk = [fmpq(1)] + [fmpq(0)] * (d - 1)
        X.append(xk)
        ck = fmpq(src.integer(1, 3))
        Y.append([-eps * ck * bv for bv in b])
    act = Activation(fmpq(1), fmpq(0))
    pb = Problem(obj_array(X), obj_array(Y), act, src.choice(("half_mean", "mse")))
    pt = Point(obj_array([w]), obj_array([a]))
    return Instance(pb, pt, "flat_escape", {"eps": str(eps), "kink_point": kink})
