"""Brute-force evidence about local minimality, independent of the certifier's reasoning.

The searches are brute force; the network's exact quantities they evaluate (loss, residuals, D_j,
the Hessian) come from the checker's reference formulas (:mod:`relucert.check.reference`, through
:mod:`relucert.claims.exact`), not from a copy of their own.

- exact ray polynomials (docs/theory.md §2, ``relucert.core.formulas.ray_coefficients``) over many
  directions, each cross-checked against the reference loss at a point on the ray;
- an exact second-order test on the subspace of directions that keep every kink pair on its
  kink (there the loss is a polynomial and c1 = 0 at a stationary point, so a negative
  eigen-direction of the exact quadratic form is a descent direction; it is rationalised and
  checked exactly);
- the "flat family" of second-order paths (w_j + t r, a_j - t mu D_j(r)) for a neuron with
  a_j != 0 and a direction r with a_j . D_j(r) = 0, D_j(r) != 0;
- the zero-output escape path (w_j + t r, a_j = -t^2 D) with D_j(r) from the reference formula;
- float local optimisation (scipy) in a small box around the point: evidence, not proof (the
  loss at what it finds is evaluated exactly).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from flint import fmpq

from relucert.decide.escape import choose_step, poly_eval
from relucert.core.formulas import ExactState, ray_coefficients
from relucert.core.linalg import nullspace
from relucert.core.problem import Point, Problem
from relucert.claims import exact as ex
from relucert.claims.exact import dot, obj_array, rows, to_float
from relucert.claims.source import RandomSource


def fingerprint(problem: Problem, point: Point) -> str:
    blob = json.dumps({"p": problem.to_json(), "t": point.to_json()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def moved(point: Point, dW: np.ndarray, dA: np.ndarray, t: fmpq) -> Point:
    return Point(point.W + dW * t, point.A + dA * t)


# ---------------------------------------------------------------------------------------------
# rays
# ---------------------------------------------------------------------------------------------

@dataclass
class Ray:
    dW: np.ndarray
    dA: np.ndarray
    coeffs: list                 # [c1, c2, c3, c4] of L(theta + t Delta) - L(theta), half_mean
    t_max: Any                   # fmpq or None
    label: str = ""

    def leading(self) -> tuple[int, fmpq] | None:
        """(order, coefficient) of the first non-zero coefficient, None if the loss is constant."""
        for p, c in enumerate(self.coeffs, start=1):
            if c != 0:
                return p, c
        return None

    def to_json(self) -> dict:
        return {"label": self.label, "dW": [[str(v) for v in r] for r in rows(self.dW)],
                "dA": [[str(v) for v in r] for r in rows(self.dA)],
                "polynomial": ["0"] + [str(c) for c in self.coeffs],
                "t_max": None if self.t_max is None else str(self.t_max)}


def ray(problem: Problem, point: Point, state: ExactState, dW: np.ndarray, dA: np.ndarray, label: str = "") -> Ray:
    c1, c2, c3, c4, t_max = ray_coefficients(problem.X, state.fw.E, state.fw.Z, None, point.W, point.A,
                                             dW, dA, state.ap, state.am)
    return Ray(dW, dA, [c1, c2, c3, c4], t_max, label)


def sample_t(t_max) -> fmpq:
    """A rational t inside (0, t_max) (t_max None: unbounded)."""
    if t_max is None:
        return fmpq(1, 3)
    return min(fmpq(1, 3), t_max / 3)


def ray_mismatch(problem: Problem, point: Point, base_loss: fmpq, r: Ray) -> str | None:
    """Cross-check the ray polynomial against the reference loss at one t in (0, t_max)."""
    t = sample_t(r.t_max)
    pt = moved(point, r.dW, r.dA, t)
    direct = ex.point_loss(problem, pt) - base_loss
    poly = poly_eval([fmpq(0)] + r.coeffs, t)
    if direct != poly:
        return (f"ray polynomial disagrees with the loss at t = {t}: polynomial {poly}, loss difference "
                f"{direct} (direction {r.label})")
    return None


def descent_step(problem: Problem, point: Point, base_loss: fmpq, coeffs: list, t_max, dW, dA):
    """(t, new_loss) with t in (0, t_max) and an exactly lower loss along the ray, or None."""
    t = choose_step([fmpq(0)] + list(coeffs), t_max)
    if t is None:
        return None
    new = ex.point_loss(problem, moved(point, dW, dA, t))
    if new < base_loss:
        return t, new
    return None


def random_directions(problem: Problem, point: Point, state: ExactState, count: int, seed: Any) -> list:
    """(dW, dA, label): random, one neuron, coordinate, kink-aware (dw orthogonal to chosen kink
    points, optionally pushed along +-x_i), and rescaling directions."""
    src = RandomSource(seed)
    m, d, k = point.m, problem.d, problem.k
    X = rows(problem.X)
    out = []

    def zeros():
        return obj_array([[0] * d for _ in range(m)]), obj_array([[0] * k for _ in range(m)])

    for j in range(m):                                     # rescaling: (w_j, -a_j)
        dW, dA = zeros()
        dW[j, :] = point.W[j, :]
        dA[j, :] = -point.A[j, :]
        out.append((dW, dA, f"rescale {j}"))
    kinds = ("random", "neuron", "coord", "kinky", "kinky")
    while len(out) < count:
        kind = src.choice(kinds)
        dW, dA = zeros()
        if kind == "coord":
            j = src.integer(0, m - 1)
            if src.boolean():
                dW[j, src.integer(0, d - 1)] = fmpq(src.choice((1, -1)))
            else:
                dA[j, src.integer(0, k - 1)] = fmpq(src.choice((1, -1)))
        else:
            js = range(m) if kind != "neuron" else [src.integer(0, m - 1)]
            for j in js:
                dA[j, :] = src.vector(k, 3, (1, 2))
                kinks = state.kinks(j)
                if kind == "kinky" and kinks:
                    sub = src.subset(kinks)
                    basis = nullspace([X[i] for i in sub], d)
                    w = [fmpq(0)] * d
                    for b in basis:
                        c = src.rational(3, (1, 2))
                        w = [u + c * v for u, v in zip(w, b)]
                    if src.boolean():
                        i = src.choice(kinks)
                        c = src.nonzero_rational(2, (1, 2))
                        w = [u + c * v for u, v in zip(w, X[i])]
                    dW[j, :] = w
                else:
                    dW[j, :] = src.vector(d, 3, (1, 2))
        out.append((dW, dA, kind))
    return out


# ---------------------------------------------------------------------------------------------
# escape neurons, by brute-force search over candidate directions
# ---------------------------------------------------------------------------------------------

def D_plain(problem: Problem, point: Point, j: int, r: list, rp: ex.Reference | None = None) -> list:
    """D_j(r) = (1/n)[sum_{i not in K_j} e_i sigma'(z_ij)(x_i.r) + sum_{i in K_j} e_i sigma(x_i.r)]
    by the checker's reference formula (rp: the point's reference quantities, if already computed)."""
    rp = ex.Reference(problem, point.W, point.A) if rp is None else rp
    return rp.D(j, r)


def candidate_rs(problem: Problem, point: Point, j: int, seed: Any, count: int = 40) -> list:
    X = rows(problem.X)
    d = problem.d
    w = list(point.W[j])
    cands = []
    for q in range(d):
        e = [fmpq(int(q == c)) for c in range(d)]
        cands += [e, [-v for v in e]]
    for x in X:
        if any(v != 0 for v in x):
            cands += [list(x), [-v for v in x]]
    kinks = [X[i] for i in range(len(X)) if dot(w, X[i]) == 0]
    for b in nullspace(kinks, d) if kinks else []:
        cands += [b, [-v for v in b]]
    src = RandomSource(seed)
    for _ in range(count):
        cands.append(src.nonzero_vector(d, 5, (1, 2, 3)))
    return cands


def plain_escape_direction(problem: Problem, point: Point, j: int, seed: Any = 0) -> tuple[list, list] | None:
    """(r, D_j(r)) with D_j(r) != 0 found among candidate directions, None if none."""
    rp = ex.Reference(problem, point.W, point.A)
    if all(v == 0 for row in rp.E for v in row):
        return None
    for r in candidate_rs(problem, point, j, seed):
        D = D_plain(problem, point, j, r, rp)
        if any(v != 0 for v in D):
            return r, D
    return None


def escape_path_loss(problem: Problem, point: Point, j: int, r: list, D: list, t: fmpq) -> fmpq:
    """Loss (half_mean) at w_j + t r, a_j = -t^2 D (a_j = 0 at the point)."""
    W, A = point.W.copy(), point.A.copy()
    W[j, :] = [a + t * b for a, b in zip(point.W[j].tolist(), r)]
    A[j, :] = [-t * t * v for v in D]
    return ex.loss(problem, W, A)


# ---------------------------------------------------------------------------------------------
# second order
# ---------------------------------------------------------------------------------------------

@dataclass
class Descent:
    how: str
    ray: Ray
    t: fmpq
    loss: fmpq                 # half_mean at the step
    base: fmpq
    notes: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"how": self.how, **self.ray.to_json(), "t": str(self.t), "loss_at_t_half_mean": str(self.loss),
                "loss_half_mean": str(self.base), **{k: str(v) for k, v in self.notes.items()}}


def kink_preserving_basis(problem: Problem, point: Point) -> list:
    """Per neuron: a basis of the input-weight directions orthogonal to its kink points."""
    X = rows(problem.X)
    out = []
    for j in range(point.m):
        w = list(point.W[j])
        kinks = [X[i] for i in range(problem.n) if dot(w, X[i]) == 0]
        out.append(nullspace(kinks, problem.d) if kinks else nullspace([], problem.d))
    return out


def quadratic_form(problem: Problem, point: Point) -> tuple[list, list]:
    """Exact matrix H (list of rows, fmpq) with c2(Delta) = Delta^T H Delta / 2 on the
    kink-preserving subspace, in coordinates (per neuron: da_j (k), then w-basis coefficients),
    and the coordinate map [(j, 'a', c) | (j, 'w', basis vector)].

    H = T^T H_ref T with H_ref the checker's reference Hessian in (W row-major, A row-major) and
    T the coordinate map (on these directions every kink pair stays on its kink, so the loss is a
    polynomial along them and H_ref gives its second-order part)."""
    d, k, m = problem.d, problem.k, point.m
    bases = kink_preserving_basis(problem, point)
    coords = []
    for j in range(m):
        coords += [(j, "a", c) for c in range(k)]
        coords += [(j, "w", b) for b in bases[j]]
    Href = ex.hessian(problem, point)
    cols = []                                  # the columns of T, sparse: [(parameter index, value)]
    for (j, kind, v) in coords:
        if kind == "a":
            cols.append([(m * d + j * k + v, Fraction(1))])
        else:
            cols.append([(j * d + q, ex.to_fraction(v[q])) for q in range(d) if v[q] != 0])
    HT = [[sum((row[b] * t for b, t in col), Fraction(0)) for col in cols] for row in Href]
    H = [[ex.from_fraction(sum((t * HT[a][q] for a, t in cols[p]), Fraction(0))) for q in range(len(coords))]
         for p in range(len(coords))]
    return H, coords


def _delta_from_coords(problem: Problem, point: Point, coords: list, vec: list) -> tuple[np.ndarray, np.ndarray]:
    m, d, k = point.m, problem.d, problem.k
    dW = obj_array([[0] * d for _ in range(m)])
    dA = obj_array([[0] * k for _ in range(m)])
    for (j, kind, v), x in zip(coords, vec):
        if x == 0:
            continue
        if kind == "a":
            dA[j, v] += x
        else:
            for q in range(d):
                dW[j, q] += x * v[q]
    return dW, dA


def second_order_descent(problem: Problem, point: Point, state: ExactState | None = None) -> Descent | None:
    """A direction keeping every kink pair on its kink with c1 = 0 and c2 < 0 (exact), and a step
    with exactly lower loss; None if the exact quadratic form has no (found) negative direction."""
    state = state or ExactState(problem, point)
    H, coords = quadratic_form(problem, point)
    if not coords:
        return None
    Hf = np.array([[to_float(v) for v in r] for r in H])
    vals, vecs = np.linalg.eigh(Hf)
    base = state.loss_half_mean
    order = np.argsort(vals)
    for idx in order[:3]:
        if vals[idx] >= -1e-13 * max(1.0, np.abs(vals).max()):
            break
        v = vecs[:, idx]
        v = v / np.abs(v).max()
        for den in (10, 100, 1000, 10 ** 5):
            vec = [ex.rationalise(x, den) for x in v]
            quad = sum((vec[p] * H[p][q] * vec[q] for p in range(len(vec)) for q in range(len(vec))), fmpq(0)) / 2
            if quad >= 0:
                continue
            dW, dA = _delta_from_coords(problem, point, coords, vec)
            r = ray(problem, point, state, dW, dA, "second order (kink-preserving)")
            if r.coeffs[0] != 0 or r.coeffs[1] != quad:
                # c1 must vanish here at a stationary point, and c2 must equal the quadratic form
                return Descent("inconsistent", r, fmpq(0), base, base,
                               {"quadratic_form": quad, "note": "c1 != 0 or c2 != quadratic form"})
            st = descent_step(problem, point, base, r.coeffs, r.t_max, dW, dA)
            if st is not None:
                return Descent("second order", r, st[0], st[1], base, {"eigenvalue": repr(float(vals[idx]))})
    return None


def flat_family_descent(problem: Problem, point: Point, j: int, r: list,
                        state: ExactState | None = None) -> Descent | None:
    """Along (w_j + t r, a_j - t mu D_j(r)) with a_j . D_j(r) = 0: c1 = 0 and c2 is quadratic in mu;
    try the minimising mu (exactly) and a few others."""
    state = state or ExactState(problem, point)
    D = D_plain(problem, point, j, r)
    if all(v == 0 for v in D):
        return None
    m, d, k = point.m, problem.d, problem.k
    base = state.loss_half_mean

    def direction(mu):
        dW = obj_array([[0] * d for _ in range(m)])
        dA = obj_array([[0] * k for _ in range(m)])
        dW[j, :] = r
        dA[j, :] = [-mu * v for v in D]
        return dW, dA

    vals = {}
    for mu in (fmpq(0), fmpq(1), fmpq(-1)):
        dW, dA = direction(mu)
        vals[mu] = ray(problem, point, state, dW, dA).coeffs
    if any(vals[mu][0] != 0 for mu in vals):
        return None        # r is not flat
    # c2(mu) = alpha mu^2 + beta mu + gamma
    g0, g1, gm = vals[fmpq(0)][1], vals[fmpq(1)][1], vals[fmpq(-1)][1]
    alpha = (g1 + gm) / 2 - g0
    beta = (g1 - gm) / 2
    mus = [fmpq(1), fmpq(1, 2), fmpq(2), fmpq(-1)]
    if alpha > 0:
        mus.insert(0, -beta / (2 * alpha))
    for mu in mus:
        dW, dA = direction(mu)
        rr = ray(problem, point, state, dW, dA, f"flat family neuron {j}, mu = {mu}")
        lead = rr.leading()
        if lead is None or lead[1] > 0:
            continue
        st = descent_step(problem, point, base, rr.coeffs, rr.t_max, dW, dA)
        if st is not None:
            return Descent("flat family", rr, st[0], st[1], base, {"neuron": j, "mu": mu})
    return None


def flat_directions(problem: Problem, point: Point, state: ExactState, j: int, seed: Any) -> list:
    """Directions r with phi_j(r) = a_j . D_j(r) = 0 and D_j(r) != 0 among candidates."""
    nr = state.neuron(j)
    out = []
    rp = ex.Reference(problem, point.W, point.A)
    for r in candidate_rs(problem, point, j, seed):
        if nr.phi(r) == 0:
            D = D_plain(problem, point, j, r, rp)
            if any(v != 0 for v in D):
                out.append(r)
    return out


# ---------------------------------------------------------------------------------------------
# float local search (evidence only)
# ---------------------------------------------------------------------------------------------

def local_search(problem: Problem, point: Point, radius: float, starts: int = 3, seed: int = 0):
    """Minimise the loss over the box |theta' - theta|_inf <= radius (scaled by max(1, |theta|_inf))
    from perturbed starts (L-BFGS-B); returns (exact half_mean loss at the best point found minus
    the exact loss at theta, best point)."""
    from scipy.optimize import minimize

    from relucert.claims.gd import grads_float
    X, Y = problem.Xf, problem.Yf
    ap, am = float(problem.activation.alpha_plus), float(problem.activation.alpha_minus)
    W0, A0 = point.Wf, point.Af
    m, d, k = point.m, problem.d, problem.k
    th0 = np.concatenate([W0.ravel(), A0.ravel()])
    rad = radius * max(1.0, float(np.abs(th0).max(initial=0)))
    rng = np.random.default_rng(seed)

    def f(th):
        W = th[:m * d].reshape(m, d)
        A = th[m * d:].reshape(m, k)
        L, gW, gA = grads_float(X, Y, W, A, ap, am)
        return L, np.concatenate([gW.ravel(), gA.ravel()])

    bounds = [(v - rad, v + rad) for v in th0]
    best = None
    for s in range(starts):
        x0 = th0 + rng.uniform(-rad / 2, rad / 2, size=th0.shape)
        try:
            res = minimize(f, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 200})
        except Exception:
            continue
        if best is None or res.fun < best.fun:
            best = res
    base = ex.point_loss(problem, point)
    if best is None:
        return fmpq(0), point
    th = best.x
    cand = Point(obj_array([[ex.from_float(v) for v in th[q * d:(q + 1) * d]] for q in range(m)]),
                 obj_array([[ex.from_float(v) for v in th[m * d + q * k: m * d + (q + 1) * k]] for q in range(m)]))
    return ex.point_loss(problem, cand) - base, cand
