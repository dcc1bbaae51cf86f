"""Symmetries of one-hidden-layer ReLU-like networks (docs/theory.md §7, §9), exactly.

- rescaling orbits ``(w_j, a_j) -> (c w_j, a_j / c)``, c > 0, and the invariant ``|w|^2 - |a|^2``;
- permutation orbits and neurons sharing a direction (replicated groups, zero-output groups);
- pairs with equal input weights: the exactly flat line ``(a_i + delta, a_j - delta)`` (permutation
  points when also ``a_i = a_j``), checked as a polynomial in delta and at rational deltas;
- the exact Hessian of L in (W, A) where L has a second-order expansion, its rank and inertia, and
  the split of its kernel into rescaling / flat-line / dead-neuron directions and the rest; a flat
  direction outside the kernel gives an exact negative-curvature (second-order saddle) certificate;
- counting of symmetry-induced critical sets: brute-force enumeration of groupings versus the
  closed forms T(r*, m) and G(r, m) of docs/theory.md §7, with realisations checked exactly.

With an output bias c (``Point.c``; docs/biases.md §6, §9): rescalings and permutations leave c
unchanged and the invariants |w_j|^2 - |a_j|^2 are still conserved (with a folded hidden bias b_j the
last column of W, this is |w_j|^2 + b_j^2 - |a_j|^2); the Hessian is the joint one in (W, A, c).  A
*constant neuron* -- sigma(w_j . x_i) = h_j != 0 the same on every data point, e.g. w_j = (0, b_j)
with a folded hidden bias -- gives the exactly flat lines (a_j + delta e_c, c - h_j delta e_c) of
docs/biases.md §5.3, listed with their exact checks (``constant_neuron_lines``).
"""
from __future__ import annotations

import itertools
import math
import random
from typing import Sequence

import numpy as np
from flint import fmpq

from relucert.core.formulas import (derivative_form, forward, forward_point, half_mean_loss, loss_half_mean,
                                    ray_coefficients, residuals)
from relucert.core.formulas import neuron_status as core_neuron_status
from relucert.core.hessian import hessian, param_index, second_order_obstructions
from relucert.core.linalg import dot, is_zero, mat_rank, matvec, parallel_factor, quad, rows
from relucert.decide.second_order import hessian_analysis
from relucert.core.problem import Point, Problem

FLAT_DELTAS = (fmpq(-2), fmpq(-1, 3), fmpq(1, 2), fmpq(3), fmpq(7, 5))


# ---------------------------------------------------------------------------------------------
# directions, groups, orbits
# ---------------------------------------------------------------------------------------------

def direction_key(w: Sequence[fmpq]) -> tuple[tuple, fmpq] | None:
    """w = scale * key with scale > 0 and the first non-zero entry of key equal to +-1; None for 0."""
    for v in w:
        if v != 0:
            s = abs(v)
            return tuple(c / s for c in w), s
    return None


def neuron_status(problem: Problem, point: Point, j: int) -> str:
    """The neuron's status in the one vocabulary of core.formulas.NEURON_STATUSES."""
    return core_neuron_status(problem.X, point.W[j].tolist(), point.A[j].tolist(), problem.activation.alpha_minus)


def direction_groups(problem: Problem, point: Point) -> list[dict]:
    """Neurons grouped by positive direction of w (w = 0 forms its own group)."""
    W, A = rows(point.W), rows(point.A)
    k = problem.k
    groups: dict = {}
    order = []
    for j, w in enumerate(W):
        dk = direction_key(w)
        key = None if dk is None else dk[0]
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((j, fmpq(0) if dk is None else dk[1]))
    out = []
    for key in order:
        mem = groups[key]
        idx = [j for j, _ in mem]
        if key is None:
            eff = [sum((A[j][c] for j in idx), fmpq(0)) for c in range(k)]
            kind = "zero-input (w = 0: contributes nothing, any a)"
            out.append({"neurons": idx, "direction": None, "scales": ["0"] * len(idx),
                        "effective_a": [str(v) for v in eff], "kind": kind})
            continue
        eff = [sum((s * A[j][c] for j, s in mem), fmpq(0)) for c in range(k)]
        if is_zero(eff):
            kind = "zero-output group" if len(idx) > 1 else "zero-output neuron (a = 0)"
        else:
            kind = "replicated" if len(idx) > 1 else "single"
        out.append({"neurons": idx, "direction": [str(v) for v in key], "scales": [str(s) for _, s in mem],
                    "effective_a": [str(v) for v in eff], "kind": kind})
    return out


def antiparallel_pairs(point: Point) -> list[list[int]]:
    W = rows(point.W)
    out = []
    for i, j in itertools.combinations(range(len(W)), 2):
        if not is_zero(W[i]) and parallel_factor(W[i], [-v for v in W[j]]) is not None:
            out.append([i, j])
    return out


def _multiplicities(items: list) -> list[int]:
    seen: dict = {}
    for it in items:
        seen[it] = seen.get(it, 0) + 1
    return list(seen.values())


def orbits(problem: Problem, point: Point) -> dict:
    W, A = rows(point.W), rows(point.A)
    m = len(W)
    ident = [(tuple(w), tuple(a)) for w, a in zip(W, A)]
    # rescaling-equivalence class of (w, a): (direction key, scale * a) for w != 0
    resc = []
    for w, a in zip(W, A):
        dk = direction_key(w)
        resc.append(("0", tuple(a)) if dk is None else (dk[0], tuple(dk[1] * v for v in a)))
    mult = _multiplicities(ident)
    mult_r = _multiplicities(resc)
    orbit = math.factorial(m)
    for c in mult:
        orbit //= math.factorial(c)
    orbit_r = math.factorial(m)
    for c in mult_r:
        orbit_r //= math.factorial(c)
    identical = [[i, j] for i, j in itertools.combinations(range(m), 2) if ident[i] == ident[j]]
    equiv = [[i, j] for i, j in itertools.combinations(range(m), 2) if resc[i] == resc[j] and ident[i] != ident[j]]
    with_orbit = [j for j in range(m) if not (is_zero(W[j]) and is_zero(A[j]))]
    return {
        "rescaling": {"neurons_with_orbit": with_orbit, "dimension": len(with_orbit),
                      "invariants": [str(dot(w, w) - dot(a, a)) for w, a in zip(W, A)],
                      "note": "(w_j, a_j) -> (c w_j, a_j / c), c > 0, leaves f unchanged; "
                              "|w_j|^2 - |a_j|^2 is conserved by gradient flow"
                              + (BIAS_INVARIANT_NOTE if point.c is not None else "")},
        "permutation": {"orbit_size": orbit, "orbit_size_modulo_rescaling": orbit_r,
                        "identical_pairs": identical, "rescaling_equivalent_pairs": equiv,
                        "note": "orbit = m! / prod(multiplicity of identical neurons)!"
                                + ("; the output bias c is shared by all neurons and not permuted"
                                   if point.c is not None else "")},
    }


BIAS_INVARIANT_NOTE = ("; the output bias c is not rescaled, and the law still holds with it "
                       "(w_j . dL/dw_j = a_j . dL/da_j; docs/biases.md §6, §9); with a hidden bias b_j folded "
                       "into the last column of W the invariant reads |w_j|^2 + b_j^2 - |a_j|^2")


# ---------------------------------------------------------------------------------------------
# flat lines (a_i + delta, a_j - delta) for w_i = w_j
# ---------------------------------------------------------------------------------------------

def equal_w_pairs(point: Point) -> list[tuple[int, int]]:
    W = rows(point.W)
    return [(i, j) for i, j in itertools.combinations(range(len(W)), 2) if W[i] == W[j]]


def flat_line(problem: Problem, point: Point, i: int, j: int) -> dict:
    """Exact check that the loss is constant along (a_i + delta e_c, a_j - delta e_c), every c."""
    act = problem.activation
    fw = forward_point(problem, point)          # residuals with the output bias, if any (c does not move)
    L0 = half_mean_loss(fw.E)
    m, d, k = point.m, problem.d, problem.k
    per = []
    flat = True
    for c in range(k):
        polys = []
        for sgn in (1, -1):
            dW = np.empty((m, d), dtype=object)
            dW[...] = fmpq(0)
            dA = np.empty((m, k), dtype=object)
            dA[...] = fmpq(0)
            dA[i, c] = fmpq(sgn)
            dA[j, c] = fmpq(-sgn)
            c1, c2, c3, c4, tmax = ray_coefficients(problem.X, fw.E, fw.Z, None, point.W, point.A, dW, dA,
                                                    act.alpha_plus, act.alpha_minus)
            polys.append({"coefficients": [str(v) for v in (L0, c1, c2, c3, c4)],
                          "valid_for_all_t": tmax is None})
            flat &= (c1 == 0 and c2 == 0 and c3 == 0 and c4 == 0 and tmax is None)
        losses = {}
        for delta in FLAT_DELTAS:
            p = point.copy()
            p.A[i, c] = p.A[i, c] + delta
            p.A[j, c] = p.A[j, c] - delta
            Ld = loss_half_mean(problem, p)
            losses[str(delta)] = str(Ld * problem.loss_factor())
            flat &= (Ld == L0)
        per.append({"output": c, "polynomial_delta_positive": polys[0], "polynomial_delta_negative": polys[1],
                    "loss_at_delta": losses})
    return {"pair": [i, j], "permutation_point": bool(point.A[i].tolist() == point.A[j].tolist()),
            "flat": flat, "loss": str(L0 * problem.loss_factor()), "loss_convention": problem.loss,
            "directions": per,
            "meaning": "w_i = w_j: f depends on a_i + a_j only, so L(delta) = L(0) + 0 delta + 0 delta^2 + ... "
                       "exactly (loss as a polynomial in delta, both signs)"}


# ---------------------------------------------------------------------------------------------
# constant neurons with an output bias: flat lines (a_j + delta, c - h_j delta) (docs/biases.md §5.3)
# ---------------------------------------------------------------------------------------------

def constant_neurons(problem: Problem, point: Point) -> list[tuple[int, fmpq]]:
    """(j, h_j) for the neurons whose activation sigma(w_j . x_i) = h_j != 0 is the same on every data
    point (with a folded hidden bias: w_j = (0, b_j), h_j = sigma(b_j)); only meaningful with an
    output bias c, which can absorb such a neuron's output."""
    if point.c is None:
        return []
    H = forward_point(problem, point).H
    out = []
    for j in range(point.m):
        col = H[:, j].tolist()
        if col and col[0] != 0 and all(v == col[0] for v in col):
            out.append((j, col[0]))
    return out


def constant_neuron_line(problem: Problem, point: Point, j: int, h: fmpq, *, H=None, stationary=None) -> dict:
    """Exact check that L is constant along (a_j + delta e_c, c - h delta e_c), every output c: the
    outputs on the data do not change (h delta - h delta), so neither do the residuals or L.  Also:
    whether the line lies in the kernel of the Hessian ``H`` (joint, in (W, A, c); None: not
    available), an exact negative-curvature direction when it does not, and whether every point of
    the line is critical (then it belongs to the critical manifold, docs/biases.md §5.3)."""
    act = problem.activation
    fw = forward_point(problem, point)
    L0 = half_mean_loss(fw.E)
    m, d, k = point.m, problem.d, problem.k
    Dlin, Dh = derivative_form(problem, residuals(problem, point), point.W[j].tolist())
    wi, ai, P = param_index(m, d, k, True)
    flat = True
    per = []
    for c in range(k):
        polys = []
        for sgn in (1, -1):
            dW = np.empty((m, d), dtype=object)
            dW[...] = fmpq(0)
            dA = np.empty((m, k), dtype=object)
            dA[...] = fmpq(0)
            dA[j, c] = fmpq(sgn)
            dc = np.empty(k, dtype=object)
            dc[...] = fmpq(0)
            dc[c] = -sgn * h
            c1, c2, c3, c4, tmax = ray_coefficients(problem.X, fw.E, fw.Z, None, point.W, point.A, dW, dA,
                                                    act.alpha_plus, act.alpha_minus, dc)
            polys.append({"coefficients": [str(v) for v in (L0, c1, c2, c3, c4)], "valid_for_all_t": tmax is None})
            flat &= (c1 == 0 and c2 == 0 and c3 == 0 and c4 == 0 and tmax is None)
        losses = {}
        for delta in FLAT_DELTAS:
            p = point.copy()
            p.A[j, c] = p.A[j, c] + delta
            p.c[c] = p.c[c] - h * delta
            Ld = loss_half_mean(problem, p)
            losses[str(delta)] = str(Ld * problem.loss_factor())
            flat &= (Ld == L0)
        # D_j's output-c component: along the line phi_j(r) moves by delta D_jc(r), dL/dw_j by delta x that
        D_c_zero = all(v == 0 for v in Dlin[c]) and all(Hp[c] == 0 for Hp in Dh.values())
        entry = {"output": c, "direction": {"da": {"neuron": j, "output": c, "value": "1"},
                                            "dc": {"output": c, "value": str(-h)}},
                 "polynomial_delta_positive": polys[0], "polynomial_delta_negative": polys[1],
                 "loss_at_delta": losses, "D_j_component_zero": D_c_zero,
                 "every_point_critical": None if stationary is None else bool(stationary and D_c_zero)}
        if H is not None:
            v = [fmpq(0)] * P
            v[ai(j, c)] = fmpq(1)
            v[m * (d + k) + c] = -h
            Hv = matvec(H, v)
            entry["in_hessian_kernel"] = all(x == 0 for x in Hv)
            if not entry["in_hessian_kernel"]:
                # L is constant along v, so v^T H v = 0 and H v != 0: v - s H v has negative curvature
                nn, qq = dot(Hv, Hv), quad(H, Hv)
                s_ = fmpq(1) if qq <= 0 else nn / qq
                u = [x - s_ * y for x, y in zip(v, Hv)]
                curv = quad(H, u)
                entry["negative_curvature"] = {"direction": [str(x) for x in u], "s": str(s_),
                                               "u_H_u": str(curv), "negative": bool(curv < 0)}
        per.append(entry)
    return {"neuron": j, "h": str(h), "flat": flat, "loss": str(L0 * problem.loss_factor()),
            "loss_convention": problem.loss, "directions": per,
            "meaning": "sigma(w_j . x_i) = h on every data point: moving a_j by delta and c by -h delta leaves every "
                       "output on the data, hence L, unchanged (loss as a polynomial in delta, both signs; "
                       "docs/biases.md §5.3). Such a line is in ker H or gives negative curvature; it belongs to "
                       "the critical manifold only when every point of it is critical (the point stationary and "
                       "D_j's output-c component identically 0)"}


# ---------------------------------------------------------------------------------------------
# full analysis of a point
# ---------------------------------------------------------------------------------------------

def analyze(problem: Problem, point: Point, *, do_certify: bool = True, do_hessian: bool = True) -> dict:
    point.validate(problem)
    out: dict = {"m": point.m, "n": problem.n, "d": problem.d, "k": problem.k,
                 "activation": problem.activation.name}
    out["neurons"] = [{"j": j, "status": neuron_status(problem, point, j)} for j in range(point.m)]
    out["direction_groups"] = direction_groups(problem, point)
    out["antiparallel_pairs"] = antiparallel_pairs(point)
    act = problem.activation
    if act.alpha_plus + act.alpha_minus == 0:
        out["sign_symmetry"] = ("alpha_plus + alpha_minus = 0: sigma is even, so (w_j, a_j) -> (-w_j, a_j) "
                                "leaves f unchanged as well")
    out.update(orbits(problem, point))
    stationary = None
    if do_certify:
        from relucert.decide.certify import certify
        res = certify(problem, point)
        stationary = res.verdict in ("global_min", "local_min", "saddle") or (
            res.verdict == "inconclusive" and all(nr.s1 and nr.s2 is True for nr in res.neurons))
        if res.verdict == "not_stationary":
            stationary = False
        out["certify"] = {"verdict": res.verdict, "reason": res.reason, "escape_neurons": res.escape_neurons,
                          "stationary": stationary, "loss": str(res.loss), "loss_convention": problem.loss}
    out["flat_lines"] = [flat_line(problem, point, i, j) for i, j in equal_w_pairs(point)]
    out["permutation_points"] = [fl["pair"] for fl in out["flat_lines"] if fl["permutation_point"]]
    if point.c is not None:
        out["output_bias"] = {"c": [str(v) for v in point.c.tolist()],
                              "note": "c is unchanged by rescalings and permutations; the Hessian is the joint one "
                                      "in (W, A, c) (size m (d + k) + k)"}
    if do_hessian:
        out["hessian"] = hessian_analysis(problem, point, stationary)
    if point.c is not None:
        H = None
        if do_hessian and out["hessian"].get("available") and not second_order_obstructions(problem, point):
            H = hessian(problem, point)
        consts = constant_neurons(problem, point)
        lines = [constant_neuron_line(problem, point, j, h, H=H, stationary=stationary) for j, h in consts]
        out["constant_neuron_lines"] = lines
        if H is not None and lines:
            m, d, k = point.m, problem.d, problem.k
            P = m * (d + k) + k
            vecs = []
            for ln, (j, h) in zip(lines, consts):
                for e in ln["directions"]:
                    if e["in_hessian_kernel"]:
                        v = [fmpq(0)] * P
                        v[m * d + j * k + e["output"]] = fmpq(1)
                        v[m * (d + k) + e["output"]] = -h
                        vecs.append(v)
            out["hessian"]["constant_neuron_lines_in_kernel"] = mat_rank(vecs, P) if vecs else 0
            out["hessian"]["constant_neuron_lines_note"] = (
                "kernel dimension spanned by the constant-neuron lines alone; the kernel split above does not "
                "count them (they fall under 'rest' unless they are also dead-neuron or flat-line directions)")
    return out


# ---------------------------------------------------------------------------------------------
# counting (docs/theory.md §7)
# ---------------------------------------------------------------------------------------------

def stirling2(n: int, k: int) -> int:
    if n == k:
        return 1
    if k == 0 or k > n:
        return 0
    return k * stirling2(n - 1, k) + stirling2(n - 1, k - 1)


def T_formula(r: int, m: int) -> int:
    """T(r*, m) = sum_{k=0}^{m-r*} S(m, r*+k) (r*+k)! / k!."""
    return sum(stirling2(m, r + k) * math.factorial(r + k) // math.factorial(k) for k in range(m - r + 1))


def G_formula(r: int, m: int) -> int:
    return math.factorial(r) * stirling2(m, r)


def enumerate_groupings(r: int, m: int, zero_groups: bool = True) -> list[tuple]:
    """Brute force: every map slot -> {0..r-1 (labelled groups)} u {zero-group ids}, onto the r
    labels, zero-group ids canonicalised by first occurrence (they are unlabelled); deduplicated.
    An entry is a tuple of length m: label l < r, or ("z", t) for the t-th zero-output group."""
    nlab = r + (m if zero_groups else 0)
    seen = set()
    for f in itertools.product(range(nlab), repeat=m):
        if len(set(v for v in f if v < r)) != r:
            continue
        ren: dict = {}
        canon = []
        for v in f:
            if v < r:
                canon.append(v)
            else:
                if v not in ren:
                    ren[v] = len(ren)
                canon.append(("z", ren[v]))
        seen.add(tuple(canon))
    return sorted(seen, key=str)


def _rand_q(rng, lo=-999, hi=999, den=97, nonzero=True):
    while True:
        v = fmpq(rng.randint(lo, hi), rng.randint(1, den))
        if v != 0 or not nonzero:
            return v


def _random_sum_to(rng, total: fmpq, count: int, positive: bool) -> list[fmpq]:
    """count generic non-zero rationals summing to total (positive ones if asked and total > 0)."""
    while True:
        if positive:
            parts = [fmpq(rng.randint(1, 999), rng.randint(1, 97)) for _ in range(count)]
            s = sum(parts, fmpq(0))
            vals = [p * total / s for p in parts]
        else:
            vals = [_rand_q(rng) for _ in range(count - 1)]
            vals.append(total - sum(vals, fmpq(0)))
        if all(v != 0 for v in vals) and len(set(vals)) == len(vals):
            return vals


def realise(assignment: tuple, W0: list, A0: list, d: int, k: int, rng, *, positive: bool,
            zero_dir: list | None = None) -> Point:
    """A generic point of the critical set of ``assignment`` built on the width-r point (W0, A0):
    labelled group g replicates neuron g ((gamma w_g, beta a_g / gamma), sum beta = 1); a zero-output
    group shares a random direction u (gamma_l u, c_l) with sum gamma_l c_l = 0 (``zero_dir``: use
    that direction for every zero group, e.g. 0)."""
    m = len(assignment)
    W = [None] * m
    A = [None] * m
    labels = sorted(set(assignment), key=str)
    for lab in labels:
        slots = [s for s, v in enumerate(assignment) if v == lab]
        gam = [fmpq(rng.randint(1, 99), rng.randint(1, 37)) for _ in slots]
        if isinstance(lab, int):
            betas = _random_sum_to(rng, fmpq(1), len(slots), positive) if len(slots) > 1 else [fmpq(1)]
            for s, b, g in zip(slots, betas, gam):
                W[s] = [g * v for v in W0[lab]]
                A[s] = [b * v / g for v in A0[lab]]
        else:
            u = list(zero_dir) if zero_dir is not None else [_rand_q(rng) for _ in range(d)]
            cs = [[fmpq(0)] * k for _ in slots]
            if len(slots) > 1:
                for c in range(k):
                    vals = _random_sum_to(rng, fmpq(0), len(slots), False)
                    for t, (val, g) in enumerate(zip(vals, gam)):
                        cs[t][c] = val / g          # sum gamma_l c_l = 0
            for s, g, cv in zip(slots, gam, cs):
                W[s] = [g * v for v in u]
                A[s] = cv
    return Point.from_rows(W, A, d, k)


def in_grouping(point: Point, assignment: tuple, W0: list, A0: list) -> bool:
    """Does the point lie in the (cone-)set of ``assignment``? Members of a group share a positive
    direction (labelled group g: that of w_g) and their effective output sum_l c_l a_l is a_g (0 for
    a zero-output group)."""
    W, A = rows(point.W), rows(point.A)
    k = len(A[0])
    for lab in set(assignment):
        slots = [s for s, v in enumerate(assignment) if v == lab]
        base = W0[lab] if isinstance(lab, int) else W[slots[0]]
        target = A0[lab] if isinstance(lab, int) else [fmpq(0)] * k
        eff = [fmpq(0)] * k
        for s in slots:
            c = parallel_factor(base, W[s])
            if c is None:
                return False
            eff = [e + c * a for e, a in zip(eff, A[s])]
        if eff != list(target):
            return False
    return True


def teacher_problem(r: int, seed: int = 1) -> tuple[Problem, Point]:
    """Zero-loss data for a width-r teacher with distinct directions (d = 2, ReLU)."""
    rng = random.Random(seed)
    dirs = [[fmpq(1), fmpq(0)], [fmpq(0), fmpq(1)], [fmpq(1), fmpq(-1)], [fmpq(-1), fmpq(2)],
            [fmpq(-2), fmpq(-1)], [fmpq(3), fmpq(1)]]
    W0 = dirs[:r]
    A0 = [[fmpq(1 + (g % 3))] if g % 2 == 0 else [fmpq(-1 - g % 2)] for g in range(r)]
    X = [[_rand_q(rng, -9, 9, 3), _rand_q(rng, -9, 9, 3)] for _ in range(6)]
    pb = Problem.make(X, [[0]] * 6, "relu")
    pt = Point.from_rows(W0, A0, 2, 1)
    act = pb.activation
    F = forward(pb.X, pb.Y, pt.W, pt.A, act.alpha_plus, act.alpha_minus).F
    pb = Problem.make(X, F.tolist(), "relu")
    return pb, pt


def local_min_problem(r: int) -> tuple[Problem, Point]:
    """A non-global, differentiable local minimum of width r with distinct neurons (ReLU, d = r):
    w_j = e_j, a_j = 1; data x_j = 2 e_j - sum_{l != j} e_l (target 2, fitted exactly, only neuron j
    active) and x_0 = -(1, ..., 1) (target 1, every neuron inactive, residual -1)."""
    X, Y = [], []
    for j in range(r):
        X.append([2 if q == j else -1 for q in range(r)])
        Y.append([2])
    X.append([-1] * r)
    Y.append([1])
    W = [[1 if q == j else 0 for q in range(r)] for j in range(r)]
    A = [[1] for _ in range(r)]
    pb = Problem.make(X, Y, "relu")
    return pb, Point.make(W, A, pb)


def count_table(max_width: int, *, realise_up_to: int = 4, seed: int = 0) -> dict:
    """Enumerated versus closed-form counts; realisations checked exactly for m <= realise_up_to."""
    from relucert.decide.certify import certify
    if max_width > 6:
        raise ValueError("brute-force enumeration is limited to widths <= 6")
    rng = random.Random(seed)
    table = []
    findings = []
    for r in range(1, max_width + 1):
        tpb, tpt = teacher_problem(r) if r <= 6 else (None, None)
        lpb, lpt = local_min_problem(r)
        base_verdict = certify(lpb, lpt).verdict
        for m in range(r, max_width + 1):
            T_groups = enumerate_groupings(r, m, True)
            G_groups = [g for g in T_groups if all(isinstance(v, int) for v in g)]
            row = {"r": r, "m": m, "T_enumerated": len(T_groups), "T_formula": T_formula(r, m),
                   "G_enumerated": len(G_groups), "G_formula": G_formula(r, m)}
            row["T_match"] = row["T_enumerated"] == row["T_formula"]
            row["G_match"] = row["G_enumerated"] == row["G_formula"]
            # ReLU: slots can also be inactive zero neurons (w = 0, a = 0), critical at any point
            row["G_with_zero_neurons"] = sum(math.comb(m, j) * G_formula(r, m - j) for j in range(0, m - r + 1))
            if m <= realise_up_to:
                W0, A0 = rows(tpt.W), rows(tpt.A)
                pts = [realise(g, W0, A0, 2, 1, rng, positive=False) for g in T_groups]
                zero_loss = sum(1 for p in pts if loss_half_mean(tpb, p) == 0)
                # distinct: the generic point lies in its own set and in no other one
                distinct = sum(1 for a, p in zip(T_groups, pts)
                               if [b for b in T_groups if in_grouping(p, b, W0, A0)] == [a])
                row["T_realised_zero_loss"] = zero_loss
                row["T_realised_distinct"] = distinct
                LW, LA = rows(lpt.W), rows(lpt.A)
                stat = 0
                for g in G_groups:
                    v = certify(lpb, realise(g, LW, LA, r, 1, rng, positive=True)).verdict
                    stat += v in ("local_min", "saddle", "global_min")
                row["G_realised_stationary"] = stat
                zstat = 0
                zg = [g for g in T_groups if not all(isinstance(v, int) for v in g)]
                for g in zg:
                    v = certify(lpb, realise(g, LW, LA, r, 1, rng, positive=True)).verdict
                    zstat += v in ("local_min", "saddle", "global_min")
                row["zero_output_groups_generic_direction_stationary"] = f"{zstat}/{len(zg)}"
                # zero neurons (w = 0, a = 0) on top of a G grouping: stationary?
                extra, extra_stat = 0, 0
                for j in range(1, m - r + 1):
                    for zs in itertools.combinations(range(m), j):
                        rest = [s for s in range(m) if s not in zs]
                        for g in enumerate_groupings(r, m - j, False):
                            extra += 1
                            if extra > 60:
                                continue
                            sub = realise(g, LW, LA, r, 1, rng, positive=True)
                            Wn = [[fmpq(0)] * r for _ in range(m)]
                            An = [[fmpq(0)] for _ in range(m)]
                            for s, (w, a) in zip(rest, zip(rows(sub.W), rows(sub.A))):
                                Wn[s], An[s] = w, a
                            v = certify(lpb, Point.from_rows(Wn, An, r, 1)).verdict
                            extra_stat += v in ("local_min", "saddle", "global_min")
                checked = min(extra, 60)
                row["zero_neuron_families_stationary"] = f"{extra_stat}/{checked}" + (
                    f" (first 60 of {extra})" if extra > 60 else "")
            table.append(row)
            if not (row["T_match"] and row["G_match"]):
                findings.append(f"mismatch at r={r}, m={m}: {row}")
    checks = [{"r": r, "T(r,r+1)": T_formula(r, r + 1), "(r+2)!/2": math.factorial(r + 2) // 2,
               "match": T_formula(r, r + 1) == math.factorial(r + 2) // 2} for r in range(1, max_width + 1)]
    return {"rows": table, "T_r_r_plus_1": checks, "findings": findings,
            "base_points": {"teacher": "zero-loss width-r teacher, d = 2, ReLU (teacher_problem)",
                            "local_min": "non-global differentiable local minimum of width r (local_min_problem)"},
            "notes": [
                "T counts maps of the m neurons onto r labelled replicated groups plus unlabelled zero-output "
                "groups (set partitions with an ordered choice of r blocks); G the labelled groupings only.",
                "realised: a generic point of each grouping built on the width-r point and checked exactly "
                "(zero loss for T, certify() for G); 'distinct' = lies in its own set and in no other.",
                "With a smooth activation a zero-output group at a generic direction u is not critical at a "
                "non-global point (its dL/da = (1/n) sum_i e_i sigma(u.x_i) != 0), which is why G has no "
                "zero-output groups. ReLU-like finding: that sum depends on u only through its activation "
                "pattern, so it vanishes on whole cones of directions (patterns whose active points have zero "
                "residual, or the pattern of an existing fitted neuron); '0-out grp stat.' counts realisations "
                "at random directions that are stationary (the base point has a non-zero residual only at "
                "x_0 = -(1,..,1), so every u with u.x_0 <= 0 qualifies).",
                "ReLU-like specific: neurons with w = 0, a = 0 (and dead neurons for ReLU) are critical at "
                "any point, so the stationary sets induced by a width-r point also include G(r, m - j) "
                "groupings with j zero neurons: G_with_zero_neurons = sum_j C(m, j) G(r, m - j) "
                "(not in G(r, m), which counts smooth-activation critical subspaces)."]}
