"""Second-order decisions at stationary points (docs/theory.md §5): exact Hessian analysis (rank, kernel
split, inertia, negative curvature), second-order descent rays, and Morse-Bott local minima.

For a point with an output bias c every route here is joint in (W, A, c) (docs/biases.md §5): the
Hessian has the c-blocks, the rays may move c, and the tangent vectors of the critical manifold have
a zero c-part.  A test on the (W, A)-block alone would be unsound (docs/biases.md CE2)."""
from __future__ import annotations

import numpy as np
from flint import fmpq

from relucert.core.formulas import (ExactState, forward_point, is_dead, loss_half_mean, ray_coefficients,
                                    smooth_point)
from relucert.core.hessian import (bias_index, gradient, hessian, inertia, param_index, parameter_count,
                                   second_order_obstructions)
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
    wi, ai, P = param_index(m, d, k, point.c is not None)
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


def split_direction(problem: Problem, point: Point, v: list) -> tuple[np.ndarray, np.ndarray, list | None]:
    """(dW, dA, dc) of a parameter vector v in the order of ``param_index`` (dc None without c)."""
    m, d, k = point.m, problem.d, problem.k
    wi, ai, P = param_index(m, d, k, point.c is not None)
    dW = np.empty((m, d), dtype=object)
    dA = np.empty((m, k), dtype=object)
    for j in range(m):
        for q in range(d):
            dW[j, q] = v[wi(j, q)]
        for c in range(k):
            dA[j, c] = v[ai(j, c)]
    ci = bias_index(m, d, k)
    return dW, dA, (None if point.c is None else [v[ci(c)] for c in range(k)])


def moved(point: Point, t: fmpq, dW: np.ndarray, dA: np.ndarray, dc: list | None) -> Point:
    """theta + t Delta (the output bias moves by t dc; dc None: it does not move)."""
    c = None if point.c is None else point.c.copy()
    if c is not None and dc is not None:
        c[:] = [a + t * b for a, b in zip(point.c.tolist(), dc)]
    return Point(point.W + t * dW, point.A + t * dA, c)


def second_order_certificate(problem: Problem, point: Point, v: list, qv: fmpq) -> dict:
    """Exact ray polynomial along theta + t v with c1 = 0, c2 = v^T H v / 2 < 0 and a step t with
    strictly lower loss (the point is not a local minimum)."""
    act = problem.activation
    dW, dA, dc = split_direction(problem, point, v)
    fw = forward_point(problem, point)
    c1, c2, c3, c4, tmax = ray_coefficients(problem.X, fw.E, fw.Z, None, point.W, point.A, dW, dA,
                                            act.alpha_plus, act.alpha_minus, dc=dc)
    require(c1 == 0 and c2 == qv / 2, "ray polynomial disagrees with the Hessian")
    poly = [fmpq(0), c1, c2, c3, c4]
    t = choose_step(poly, tmax)
    require(t is not None, "no step below t_max lowers the loss along the negative-curvature direction")
    new = moved(point, t, dW, dA, dc)
    L0, L1 = loss_half_mean(problem, point), loss_half_mean(problem, new)
    require(L1 < L0, "second-order step did not lower the loss")
    return {"direction": _vec_str(v), "polynomial": _vec_str(poly), "t_max": None if tmax is None else str(tmax),
            "t": str(t), "loss": str(L0 * problem.loss_factor()), "loss_at_t": str(L1 * problem.loss_factor()),
            "meaning": "gradient 0 and L(theta + t v) - L(theta) = c2 t^2 + c3 t^3 + c4 t^4 with c2 < 0 "
                       "exactly on 0 < t < t_max: a second-order descent direction, so not a local minimum"}


HESSIAN_MAX_PARAMS = 240     # exact Hessian candidates only up to this many parameters


def output_move(state: ExactState, j: int, r: list) -> tuple[list, list | None] | None:
    """The output move (delta, dc) minimising the t^2 coefficient of L along w_j + t r, a_j + t delta
    (and c + t dc for a point with an output bias; dc None without one).

    With u_i = s_i (x_i.r) a_j (s_i the slope on the side r moves to) and h_i = sigma(w_j.x_i), the
    coefficient is (1/2n) sum |u_i + h_i delta (+ dc)|^2 + delta.D_j(r), quadratic in delta (and dc).
    With an output bias the best dc = -(u_bar + h_bar delta) is taken first; it centres h and u
    (docs/biases.md §5.2).  The minimiser over delta is -g / H with g = (1/n) sum h_i u_i + D_j(r),
    H = (1/n) sum h_i^2, both centred with c (H = 0: far along -g)."""
    pb, pt = state.problem, state.point
    n, k = pb.n, pb.k
    ap, am = state.ap, state.am
    a = pt.A[j].tolist()
    g = [fmpq(0)] * k
    H = fmpq(0)
    uu = fmpq(0)
    hsum, usum = fmpq(0), [fmpq(0)] * k
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
        hsum += h
        usum = [x + y for x, y in zip(usum, u)]
    if pt.c is not None:
        hbar, ubar = hsum / n, [v / n for v in usum]
        H -= hbar * hbar
        g = [gc - hbar * ub for gc, ub in zip(g, ubar)]
        uu -= n * dot(ubar, ubar)
    gg = dot(g, g)
    if H > 0:
        delta = [-v / H for v in g]
    elif gg == 0:
        return None
    else:
        lam = uu / (2 * n) / gg + 1
        delta = [-lam * v for v in g]
    dc = None if pt.c is None else [-(ub + hbar * dl) for ub, dl in zip(ubar, delta)]
    return delta, dc


def second_order_ray(state: ExactState, decisions: dict, escape_neurons: list) -> dict | None:
    """A ray theta + t Delta with L'(theta;Delta) = 0 and negative t^2 coefficient, exactly: at a
    stationary point this proves that theta is not a local minimum (docs/theory.md §5, second-order descent
    direction).  Candidates: each escape neuron's flat direction r (phi_j(r) = 0, D_j(r) != 0) with
    the best output move; at a smooth point, the exact Hessian's negative-curvature direction.  With an
    output bias the ray may move c too (docs/biases.md §5.2), and the Hessian is the joint one."""
    pb, pt = state.problem, state.point
    m, d, k = pt.m, pb.d, pb.k
    cands = []
    for j in escape_neurons:
        esc = decisions[j][1]
        if esc is None or esc.r is None:
            continue
        mv = output_move(state, j, list(esc.r))
        if mv is not None:
            delta, dc = mv
            cands.append((f"neuron {j}: w_j + t r, a_j + t delta, phi_j(r) = 0, delta minimising the t^2 term"
                          + ("" if dc is None else " (with the output bias moving by t dc, its best move)"),
                          {j: (list(esc.r), delta)}, dc))
    if parameter_count(pt, k) <= HESSIAN_MAX_PARAMS and smooth_point(state.problem, state.point, state.fw.Z):
        nc = hessian_analysis(pb, pt, stationary=True).get("negative_curvature")
        if nc is not None:
            v = [fmpq(x) for x in nc["direction"]]
            dWv, dAv, dcv = split_direction(pb, pt, v)
            moves = {j: (dWv[j].tolist(), dAv[j].tolist()) for j in range(m)}
            cands.append((f"exact Hessian, negative curvature ({nc['how']})", moves, dcv))
    for how, moves, dc in cands:
        dW = np.empty((m, d), dtype=object)
        dA = np.empty((m, k), dtype=object)
        dW[...] = fmpq(0)
        dA[...] = fmpq(0)
        for j, (r, delta) in moves.items():
            dW[j, :] = r
            dA[j, :] = delta
        c1, c2, c3, c4, t_max = ray_coefficients(pb.X, state.fw.E, state.fw.Z, None, pt.W, pt.A, dW, dA,
                                                 state.ap, state.am, dc=dc)
        if c1 != 0 or not c2 < 0:
            continue
        poly = [fmpq(0), c1, c2, c3, c4]
        t = choose_step(poly, t_max)
        require(t is not None, "no step below t_max lowers the loss along the second-order ray")
        new_loss = loss_half_mean(pb, moved(pt, t, dW, dA, dc))
        require(new_loss < state.loss_half_mean, "second-order step did not lower the loss")
        out = {"how": how, "dW": [[str(v) for v in row] for row in dW.tolist()],
               "dA": [[str(v) for v in row] for row in dA.tolist()]}
        if dc is not None:
            out["dc"] = [str(v) for v in dc]
        out.update({"polynomial": [str(v) for v in poly], "t_max": None if t_max is None else str(t_max),
                    "t0": str(t), "loss_at_t0": str(new_loss * pb.loss_factor())})
        return out
    return None


MORSE_BOTT_MAX_PARAMS = 120   # exact Hessian inertia (and its independent re-check) up to this size


def morse_bott(state: ExactState) -> dict | None:
    """Local minimum by the Morse-Bott lemma at a smooth stationary point: the critical points near
    theta include the manifold M of positive rescalings of every non-dead neuron times an open set of
    each dead neuron's (w, a) (ReLU-like with alpha_minus = 0, every w_j.x_i < 0), all with the same
    loss; if the exact Hessian is positive semi-definite and its kernel is exactly T_theta M, L grows
    quadratically away from M, so theta is a local minimum.  None if any condition fails.

    With an output bias the Hessian is the joint one in (W, A, c) (size P + k) and the tangent vectors
    have a zero c-part (docs/biases.md §5.3); the constant-neuron flat lines of a folded hidden bias are
    left out (the test can then only fail)."""
    pb, pt = state.problem, state.point
    m, d, k = pt.m, pb.d, pb.k
    wi, ai, P = param_index(m, d, k, pt.c is not None)
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
            for t in [wi(j, q) for q in range(d)] + [ai(j, c) for c in range(k)]:
                v = [fmpq(0)] * P
                v[t] = fmpq(1)
                tangent.append(v)
        else:
            v = [fmpq(0)] * P
            for q in range(d):
                v[wi(j, q)] = pt.W[j, q]
            for c in range(k):
                v[ai(j, c)] = -pt.A[j, c]
            tangent.append(v)
    if any(dot(row, v) != 0 for v in tangent for row in H):
        return None
    if inn["zero"] != len(tangent):
        return None
    return {"parameters": P, "hessian_rank": inn["positive"], "tangent_dimension": len(tangent),
            "dead_neurons": dead}
