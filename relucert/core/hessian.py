"""The exact Hessian and gradient of the half_mean loss in theta = (W row-major, A row-major), where L
has a second-order expansion (THEORY §2, §5); its exact inertia by symmetric elimination."""
from __future__ import annotations

from flint import fmpq, fmpq_mat

from relucert.core.formulas import derivative_form, forward_point
from relucert.core.linalg import dot, is_zero, rows
from relucert.core.problem import Point, Problem
from relucert.errors import require


def param_index(m: int, d: int, k: int):
    """(index of w_jq, index of a_jc, number of parameters P = m (d + k)) in theta."""
    def wi(j, q):
        return j * d + q

    def ai(j, c):
        return m * d + j * k + c
    return wi, ai, m * (d + k)


def second_order_obstructions(problem: Problem, point: Point) -> list[str]:
    """Why L has no second-order expansion at the point ([] if it has one).

    A data point x_i != 0 on the kink of neuron j (z_ij = 0) breaks it unless a_j = 0 and
    r -> sum_{i in K_j} e_i sigma(x_i . r) is linear (all merged hinge coefficients vanish): then the
    only non-smooth second-order term Delta a_j . D_j(Delta w_j) is a quadratic form."""
    E = rows(forward_point(problem, point).E)
    X = rows(problem.X)
    W, A = rows(point.W), rows(point.A)
    out = []
    for j, (w, a) in enumerate(zip(W, A)):
        kinks = [i for i, x in enumerate(X) if not is_zero(x) and dot(w, x) == 0]
        if not kinks:
            continue
        if not is_zero(a):
            out.append(f"neuron {j} has a_j != 0 and data points {kinks} on its kink")
            continue
        Lin, hinges = derivative_form(problem, E, w)
        if hinges:
            out.append(f"neuron {j} (a_j = 0) has data points {kinks} on its kink with non-zero merged hinge "
                       "coefficients of D_j (D_j is not linear)")
    return out


def hessian(problem: Problem, point: Point) -> list[list[fmpq]]:
    """Exact Hessian of the half_mean loss in theta = (W row-major, A row-major).

    H = (1/n) J^T J + C, with J_i = df(x_i)/dtheta (df_c/da_jc' = sigma(z_ij) [c = c'],
    df_c/dw_jq = a_jc sigma'(z_ij) x_iq) and C the symmetric coupling of a_j and w_j given by the
    linear map r -> D_j(r) (C[a_jc, w_jq] = (D_j)_{cq}); from the ray expansion of THEORY §2,
    c2 = (1/2n) sum |u_i|^2 + sum_j Delta a_j . D_j(Delta w_j) = Delta^T H Delta / 2.
    Only valid where second_order_obstructions() is empty."""
    obs = second_order_obstructions(problem, point)
    if obs:
        raise ValueError("no second-order expansion: " + "; ".join(obs))
    n, d, k, m = problem.n, problem.d, problem.k, point.m
    fw = forward_point(problem, point)
    Z, S, Hs = fw.Z, fw.S, fw.H
    X = rows(problem.X)
    A = rows(point.A)
    W = rows(point.W)
    wi, ai, P = param_index(m, d, k)
    J = [[fmpq(0)] * P for _ in range(n * k)]
    for i in range(n):
        for c in range(k):
            row = J[i * k + c]
            for j in range(m):
                h = Hs[i, j]
                if h != 0:
                    row[ai(j, c)] = h
                if Z[i, j] != 0 and A[j][c] != 0:
                    f = A[j][c] * S[i, j]
                    for q in range(d):
                        if X[i][q] != 0:
                            row[wi(j, q)] = f * X[i][q]
    Jm = fmpq_mat(n * k, P, [v for r in J for v in r]) if n * k and P else fmpq_mat(n * k, P)
    GN = Jm.transpose() * Jm
    H = [[GN[r, c] / n for c in range(P)] for r in range(P)]
    E = rows(fw.E)
    for j in range(m):
        Lin, hinges = derivative_form(problem, E, W[j])
        require(not hinges, "the Hessian is only defined off the kinks")
        for c in range(k):
            for q in range(d):
                v = Lin[c][q]
                if v != 0:
                    H[ai(j, c)][wi(j, q)] += v
                    H[wi(j, q)][ai(j, c)] += v
    return H


def gradient(problem: Problem, point: Point) -> list[fmpq]:
    """Exact gradient where L is differentiable: (D_j^T a_j for w_j, G_j for a_j)."""
    n, d, k, m = problem.n, problem.d, problem.k, point.m
    fw = forward_point(problem, point)
    E = rows(fw.E)
    W, A = rows(point.W), rows(point.A)
    wi, ai, P = param_index(m, d, k)
    g = [fmpq(0)] * P
    for j in range(m):
        Lin, _ = derivative_form(problem, E, W[j])
        for q in range(d):
            g[wi(j, q)] = sum((A[j][c] * Lin[c][q] for c in range(k)), fmpq(0))
        for c in range(k):
            g[ai(j, c)] = sum((fw.H[i, j] * E[i][c] for i in range(n)), fmpq(0)) / n
    return g


def inertia(H: list[list[fmpq]]) -> dict:
    """Exact inertia (n_plus, n_minus, n_zero) by symmetric (Lagrange) elimination, with a vector
    v and v^T H v for the first negative pivot (Sylvester's law of inertia)."""
    P = len(H)
    Q = [list(r) for r in H]
    B = [[fmpq(1) if a == b else fmpq(0) for b in range(P)] for a in range(P)]   # basis vectors (rows)
    alive = list(range(P))
    pos = neg = 0
    neg_vec = None
    while alive:
        piv = next((i for i in alive if Q[i][i] != 0), None)
        if piv is None:
            pair = next(((i, l) for i in alive for l in alive if l != i and Q[i][l] != 0), None)
            if pair is None:
                break
            i, l = pair
            # e_i <- e_i + e_l: Q_ii becomes 2 Q_il != 0
            for t in range(P):
                Q[i][t] += Q[l][t]
            for t in range(P):
                Q[t][i] += Q[t][l]
            B[i] = [x + y for x, y in zip(B[i], B[l])]
            piv = i
        p = Q[piv][piv]
        if p > 0:
            pos += 1
        else:
            neg += 1
            if neg_vec is None:
                neg_vec = (list(B[piv]), p)
        alive.remove(piv)
        for l in alive:
            f = Q[l][piv] / p
            if f != 0:
                Q[l] = [x - f * y for x, y in zip(Q[l], Q[piv])]
                B[l] = [x - f * y for x, y in zip(B[l], B[piv])]
        for l in alive:
            Q[l][piv] = fmpq(0)
    return {"positive": pos, "negative": neg, "zero": P - pos - neg,
            "negative_direction": None if neg_vec is None else neg_vec[0],
            "negative_value": None if neg_vec is None else neg_vec[1]}
