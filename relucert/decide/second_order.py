"""Second-order decisions at stationary points (docs/theory.md §5): exact Hessian analysis (rank, kernel
split, inertia, negative curvature), second-order descent rays, and Morse-Bott local minima."""
from __future__ import annotations

import numpy as np
from flint import fmpq

from relucert.core.formulas import (ExactState, forward, half_mean_loss, is_dead, loss_half_mean,
                                    ray_coefficients, smooth_point)
from relucert.core.hessian import gradient, hessian, inertia, param_index, second_order_obstructions
from relucert.core.linalg import dot, is_zero, mat_rank, matvec, quad, rows
from relucert.core.problem import Point, Problem
from relucert.decide.escape import choose_step
from relucert.errors import require

INERTIA_MAX = 160          # exact symmetric elimination in Python above this size is too slow


def _vec_str(v):
    return [str(x) for x in v]


def hessian_analysis(problem: Problem, point: Point, stationary: bool | None = None) -> dict:
    """Rank, kernel split and (small sizes) inertia of the exact Hessian; negative curvature."""
    obs = second_order_obstructions(problem, point)
    if obs:
        return {"available": False, "reasons": obs}
    m, d, k = point.m, problem.d, problem.k
    wi, ai, P = param_index(m, d, k)
    H = hessian(problem, point)
    g = gradient(problem, point)
    rk = mat_rank(H, P)
    nullity = P - rk
    W, A = rows(point.W), rows(point.A)

    def in_kernel(v):
        return all(x == 0 for x in matvec(H, v))

    resc, flat, dead = [], [], []
    dead_j = [is_dead(problem.X, W[j], problem.activation.alpha_minus) for j in range(m)]
    for j in range(m):
        if (is_zero(W[j]) and is_zero(A[j])) or dead_j[j]:
            continue                      # dead neurons: counted with their whole block below
        v = [fmpq(0)] * P
        for q in range(d):
            v[wi(j, q)] = W[j][q]
        for c in range(k):
            v[ai(j, c)] = -A[j][c]
        resc.append((j, v))
    groups: dict = {}
    for j, w in enumerate(W):
        groups.setdefault(tuple(w), []).append(j)
    for idx in groups.values():
        for i, j in zip(idx, idx[1:]):
            for c in range(k):
                v = [fmpq(0)] * P
                v[ai(i, c)] = fmpq(1)
                v[ai(j, c)] = fmpq(-1)
                flat.append(((i, j, c), v))
    for j in range(m):
        if dead_j[j]:
            for t in [wi(j, q) for q in range(d)] + [ai(j, c) for c in range(k)]:
                v = [fmpq(0)] * P
                v[t] = fmpq(1)
                dead.append((j, v))
    resc_k = [v for _, v in resc if in_kernel(v)]
    flat_k = [v for _, v in flat if in_kernel(v)]
    flat_out = [(lab, v) for lab, v in flat if not in_kernel(v)]
    dead_k = [v for _, v in dead if in_kernel(v)]
    r1 = mat_rank(resc_k, P)
    r12 = mat_rank(resc_k + flat_k, P)
    r123 = mat_rank(resc_k + flat_k + dead_k, P)
    out = {"available": True, "size": P, "rank": rk, "zero_eigenvalues": nullity,
           "gradient_zero": all(x == 0 for x in g),
           "kernel_split": {"rescaling": r1, "flat_lines": r12 - r1, "dead_neurons": r123 - r12,
                            "rest": nullity - r123},
           "expected": {"rescaling_one_per_non_dead_neuron": len(resc), "flat_lines_k_per_equal_w_pair": len(flat),
                        "dead_neurons_(d+k)_each": len(dead)},
           "not_in_kernel": {"rescaling": [j for j, v in resc if not in_kernel(v)],
                             "flat_lines": [list(lab) for lab, _ in flat_out]},
           "note": "zero eigenvalues = size - rank (exact); categories counted as dimensions of exact spans "
                   "in this order; a flat-line direction outside the kernel means negative curvature"}
    if P <= INERTIA_MAX:
        inn = inertia(H)
        out["inertia"] = {"positive": inn["positive"], "negative": inn["negative"], "zero": inn["zero"]}
        require(inn["zero"] == nullity, "inertia and exact rank disagree")
    smooth = smooth_point(problem, point)
    if (smooth and out["gradient_zero"] and "inertia" in out and out["inertia"]["negative"] == 0
            and not out["not_in_kernel"]["rescaling"] and r1 == nullity):
        out["morse_bott_local_min"] = (
            "LOCAL MINIMUM (Morse-Bott): no data point on any kink, so L is polynomial near theta; the "
            "gradient is 0, the Hessian is positive semi-definite and its kernel is exactly the tangent "
            "space of the rescaling orbit, a manifold of critical points with equal loss")
    # exact negative-curvature direction: from a flat line outside the kernel, or from the inertia
    cand = None
    if flat_out:
        (i, j, c), v = flat_out[0]
        Hv = matvec(H, v)
        nn = dot(Hv, Hv)
        qq = quad(H, Hv)
        s = fmpq(1) if qq <= 0 else nn / qq
        cand = ([x - s * y for x, y in zip(v, Hv)], f"flat line of pair ({i},{j}), output {c}: v - s H v, s = {s}")
    elif P <= INERTIA_MAX and out["inertia"]["negative"]:
        cand = (inn["negative_direction"], "symmetric elimination (Sylvester)")
    if cand is not None:
        v, how = cand
        qv = quad(H, v)
        require(qv < 0, "negative-curvature direction has v^T H v >= 0")
        out["negative_curvature"] = {"direction": _vec_str(v), "vHv": str(qv), "how": how}
        if out["gradient_zero"] and stationary is not False:
            out["second_order_saddle"] = second_order_certificate(problem, point, v, qv)
    return out


def second_order_certificate(problem: Problem, point: Point, v: list, qv: fmpq) -> dict:
    """Exact ray polynomial along theta + t v with c1 = 0, c2 = v^T H v / 2 < 0 and a step t with
    strictly lower loss (the point is not a local minimum)."""
    act = problem.activation
    m, d, k = point.m, problem.d, problem.k
    wi, ai, P = param_index(m, d, k)
    dW = np.empty((m, d), dtype=object)
    dA = np.empty((m, k), dtype=object)
    for j in range(m):
        for q in range(d):
            dW[j, q] = v[wi(j, q)]
        for c in range(k):
            dA[j, c] = v[ai(j, c)]
    fw = forward(problem.X, problem.Y, point.W, point.A, act.alpha_plus, act.alpha_minus)
    c1, c2, c3, c4, tmax = ray_coefficients(problem.X, fw.E, fw.Z, None, point.W, point.A, dW, dA,
                                            act.alpha_plus, act.alpha_minus)
    require(c1 == 0 and c2 == qv / 2, "ray polynomial disagrees with the Hessian")
    poly = [fmpq(0), c1, c2, c3, c4]
    t = choose_step(poly, tmax)
    require(t is not None, "no step below t_max lowers the loss along the negative-curvature direction")
    new = Point(point.W + t * dW, point.A + t * dA)
    L0, L1 = loss_half_mean(problem, point), loss_half_mean(problem, new)
    require(L1 < L0, "second-order step did not lower the loss")
    return {"direction": _vec_str(v), "polynomial": _vec_str(poly), "t_max": None if tmax is None else str(tmax),
            "t": str(t), "loss": str(L0 * problem.loss_factor()), "loss_at_t": str(L1 * problem.loss_factor()),
            "meaning": "gradient 0 and L(theta + t v) - L(theta) = c2 t^2 + c3 t^3 + c4 t^4 with c2 < 0 "
                       "exactly on 0 < t < t_max: a second-order descent direction, so not a local minimum"}


HESSIAN_MAX_PARAMS = 240     # exact Hessian candidates only up to this many parameters


def output_move(state: ExactState, j: int, r: list) -> list | None:
    """The output move delta minimising the t^2 coefficient of L along w_j + t r, a_j + t delta.

    With u_i = s_i (x_i.r) a_j (s_i the slope on the side r moves to) and h_i = sigma(w_j.x_i), the
    coefficient is (1/2n) sum |u_i + h_i delta|^2 + delta.D_j(r), quadratic in delta: its minimiser is
    -g / H with g = (1/n) sum h_i u_i + D_j(r), H = (1/n) sum h_i^2 (H = 0: far along -g)."""
    pb, pt = state.problem, state.point
    n, k = pb.n, pb.k
    ap, am = state.ap, state.am
    a = pt.A[j].tolist()
    g = [fmpq(0)] * k
    H = fmpq(0)
    uu = fmpq(0)
    for i in range(n):
        z = state.fw.Z[i, j]
        xr = dot(pb.X[i].tolist(), r)
        s = ap if (z > 0 or (z == 0 and xr > 0)) else am
        h = ap * z if z > 0 else am * z
        u = [s * xr * v for v in a]
        e = state.fw.E[i].tolist()
        g = [gc + (h * uc + s * xr * ec) / n for gc, uc, ec in zip(g, u, e)]
        H += h * h / n
        uu += dot(u, u)
    gg = dot(g, g)
    if H > 0:
        return [-v / H for v in g]
    if gg == 0:
        return None
    lam = uu / (2 * n) / gg + 1
    return [-lam * v for v in g]


def second_order_ray(state: ExactState, decisions: dict, escape_neurons: list) -> dict | None:
    """A ray theta + t Delta with L'(theta;Delta) = 0 and negative t^2 coefficient, exactly: at a
    stationary point this proves that theta is not a local minimum (docs/theory.md §5, second-order descent
    direction).  Candidates: each escape neuron's flat direction r (phi_j(r) = 0, D_j(r) != 0) with
    the best output move; at a smooth point, the exact Hessian's negative-curvature direction."""
    pb, pt = state.problem, state.point
    m, d, k = pt.m, pb.d, pb.k
    cands = []
    for j in escape_neurons:
        esc = decisions[j][1]
        if esc is None or esc.r is None:
            continue
        delta = output_move(state, j, list(esc.r))
        if delta is not None:
            cands.append((f"neuron {j}: w_j + t r, a_j + t delta, phi_j(r) = 0, delta minimising the t^2 term",
                          {j: (list(esc.r), delta)}))
    if m * (d + k) <= HESSIAN_MAX_PARAMS and smooth_point(state.problem, state.point, state.fw.Z):
        nc = hessian_analysis(pb, pt, stationary=True).get("negative_curvature")
        if nc is not None:
            v = [fmpq(x) for x in nc["direction"]]
            # symmetry's parameter order: all of W row by row, then all of A
            moves = {j: (v[j * d:(j + 1) * d], v[m * d + j * k:m * d + (j + 1) * k]) for j in range(m)}
            cands.append((f"exact Hessian, negative curvature ({nc['how']})", moves))
    for how, moves in cands:
        dW = np.empty((m, d), dtype=object)
        dA = np.empty((m, k), dtype=object)
        dW[...] = fmpq(0)
        dA[...] = fmpq(0)
        for j, (r, delta) in moves.items():
            dW[j, :] = r
            dA[j, :] = delta
        c1, c2, c3, c4, t_max = ray_coefficients(pb.X, state.fw.E, state.fw.Z, None, pt.W, pt.A, dW, dA,
                                                 state.ap, state.am)
        if c1 != 0 or not c2 < 0:
            continue
        poly = [fmpq(0), c1, c2, c3, c4]
        t = choose_step(poly, t_max)
        require(t is not None, "no step below t_max lowers the loss along the second-order ray")
        new = Point(pt.W + t * dW, pt.A + t * dA)
        fw = forward(pb.X, pb.Y, new.W, new.A, state.ap, state.am)
        new_loss = half_mean_loss(fw.E)
        require(new_loss < state.loss_half_mean, "second-order step did not lower the loss")
        return {"how": how, "dW": [[str(v) for v in row] for row in dW.tolist()],
                "dA": [[str(v) for v in row] for row in dA.tolist()],
                "polynomial": [str(v) for v in poly], "t_max": None if t_max is None else str(t_max),
                "t0": str(t), "loss_at_t0": str(new_loss * pb.loss_factor())}
    return None


MORSE_BOTT_MAX_PARAMS = 120   # exact Hessian inertia (and its independent re-check) up to this size


def morse_bott(state: ExactState) -> dict | None:
    """Local minimum by the Morse-Bott lemma at a smooth stationary point: the critical points near
    theta include the manifold M of positive rescalings of every non-dead neuron times an open set of
    each dead neuron's (w, a) (ReLU-like with alpha_minus = 0, every w_j.x_i < 0), all with the same
    loss; if the exact Hessian is positive semi-definite and its kernel is exactly T_theta M, L grows
    quadratically away from M, so theta is a local minimum.  None if any condition fails."""
    pb, pt = state.problem, state.point
    m, d, k = pt.m, pb.d, pb.k
    P = m * (d + k)
    if P > MORSE_BOTT_MAX_PARAMS or not smooth_point(state.problem, state.point, state.fw.Z):
        return None
    try:
        H = hessian(pb, pt)
    except ValueError:
        return None
    inn = inertia(H)
    if inn["negative"] != 0:
        return None
    dead = [j for j in range(m) if state.status(j) == "dead"]
    tangent = []
    for j in range(m):
        if j in dead:
            for t in [j * d + q for q in range(d)] + [m * d + j * k + c for c in range(k)]:
                v = [fmpq(0)] * P
                v[t] = fmpq(1)
                tangent.append(v)
        else:
            v = [fmpq(0)] * P
            for q in range(d):
                v[j * d + q] = pt.W[j, q]
            for c in range(k):
                v[m * d + j * k + c] = -pt.A[j, c]
            tangent.append(v)
    if any(dot(row, v) != 0 for v in tangent for row in H):
        return None
    if inn["zero"] != len(tangent):
        return None
    return {"parameters": P, "hessian_rank": inn["positive"], "tangent_dimension": len(tangent),
            "dead_neurons": dead}
