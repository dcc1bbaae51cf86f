"""The exact Hessian and gradient of the half_mean loss in theta = (W row-major, A row-major) -- and, for
a point with an output bias, theta = (W, A, c) (docs/biases.md §5.1) -- where L has a second-order
expansion (docs/theory.md §2, §5); its exact inertia by symmetric elimination; and the gradient and
Hessian on a fixed activation pattern, generic over the number type (the Newton step of refinement)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from flint import fmpq, fmpq_mat

from relucert.core.formulas import derivative_form, forward_point, mean_residual
from relucert.core.linalg import dot, is_zero, rows
from relucert.core.problem import Point, Problem
from relucert.errors import require


def param_index(m: int, d: int, k: int, output_bias: bool = False):
    """(index of w_jq, index of a_jc, number of parameters P) in theta = (W row-major, A row-major) and,
    with ``output_bias``, c last: P = m (d + k), or m (d + k) + k (the c_c at ``bias_index``)."""
    def wi(j, q):
        return j * d + q

    def ai(j, c):
        return m * d + j * k + c
    return wi, ai, m * (d + k) + (k if output_bias else 0)


def bias_index(m: int, d: int, k: int):
    """The index of c_c in theta = (W, A, c): m (d + k) + c."""
    def ci(c):
        return m * (d + k) + c
    return ci


def parameter_count(point: Point, k: int) -> int:
    """Number of parameters of the point: m (d + k), plus k for an output bias."""
    return param_index(point.m, point.W.shape[1], k, point.c is not None)[2]


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


def kink_pairs(problem: Problem, point: Point, Z=None) -> list[tuple[int, int]]:
    """The kink pairs (i, j): x_i != 0 and w_j . x_i = 0 exactly (zero neurons included)."""
    if Z is None:
        Z = forward_point(problem, point).Z
    X = rows(problem.X)
    return [(i, j) for j in range(point.m) for i in range(problem.n) if Z[i, j] == 0 and not is_zero(X[i])]


def jacobian(problem: Problem, point: Point, kink_slopes: dict | None = None) -> list[list[fmpq]]:
    """J (n k rows, row i k + c; P columns in the order of ``param_index``): df_c(x_i)/dtheta on the
    piece of ``kink_slopes`` (see ``hessian``; None: sigma'(z_ij), for smooth points)."""
    n, d, k, m = problem.n, problem.d, problem.k, point.m
    fw = forward_point(problem, point)
    Z, S, Hs = fw.Z, fw.S, fw.H
    X = rows(problem.X)
    A = rows(point.A)
    wi, ai, P = param_index(m, d, k, point.c is not None)
    ci = bias_index(m, d, k)
    J = [[fmpq(0)] * P for _ in range(n * k)]
    for i in range(n):
        for c in range(k):
            row = J[i * k + c]
            if point.c is not None:
                row[ci(c)] = fmpq(1)
            for j in range(m):
                h = Hs[i, j]
                if h != 0:
                    row[ai(j, c)] = h
                slope = S[i, j] if kink_slopes is None or Z[i, j] != 0 else kink_slopes.get((i, j))
                if (Z[i, j] != 0 or (kink_slopes is not None and slope is not None)) and A[j][c] != 0:
                    f = A[j][c] * slope
                    for q in range(d):
                        if X[i][q] != 0:
                            row[wi(j, q)] = f * X[i][q]
    return J


def hessian(problem: Problem, point: Point, kink_slopes: dict | None = None) -> list[list[fmpq]]:
    """Exact Hessian of the half_mean loss in theta = (W row-major, A row-major[, c]).

    H = (1/n) J^T J + C, with J_i = df(x_i)/dtheta (df_c/da_jc' = sigma(z_ij) [c = c'],
    df_c/dw_jq = a_jc sigma'(z_ij) x_iq and, with an output bias, df_c/dc_c' = [c = c']) and C the
    symmetric coupling of a_j and w_j given by the linear map r -> D_j(r) (C[a_jc, w_jq] = (D_j)_{cq});
    from the ray expansion of docs/theory.md §2 (docs/biases.md §3.1 with dc),
    c2 = (1/2n) sum |u_i (+ dc)|^2 + sum_j Delta a_j . D_j(Delta w_j) = Delta^T H Delta / 2.
    With an output bias the J^T J part holds the blocks of docs/biases.md §5.1: d^2L/dc^2 = I_k,
    d^2L/dc da_j = (1/n) sum_i sigma(z_ij) I_k, d^2L/dc dw_j = (1/n) sum_i sigma'(z_ij) a_j x_i^T
    (the half_mean convention; the mse loss is 2/k times it).
    Only valid where second_order_obstructions() is empty -- unless ``kink_slopes`` is given: a dict
    {(i, j): slope} with one slope (alpha_plus or alpha_minus) for EVERY kink pair (``kink_pairs``).
    Then this is the Hessian at 0 of the polynomial piece L_s(Delta) of the loss on the closed cone
    where each kink pair moves to the side of its slope (sigma((w_j + dw_j).x_i) = s_ij dw_j.x_i
    there): the same formula with sigma'(z_ij) replaced by s_ij on the kink pairs, and the coupling
    C[a_jc, w_jq] = (1/n) sum_i s_ij e_ic x_iq (docs/second_order_kinks.md §2)."""
    if kink_slopes is None:
        obs = second_order_obstructions(problem, point)
        if obs:
            raise ValueError("no second-order expansion: " + "; ".join(obs))
    else:
        pairs = kink_pairs(problem, point)
        require(set(kink_slopes) == set(pairs), "kink_slopes must give a slope for every kink pair")
        act = problem.activation
        require(all(v in (act.alpha_plus, act.alpha_minus) for v in kink_slopes.values()),
                "a kink slope must be alpha_plus or alpha_minus")
    n, d, k, m = problem.n, problem.d, problem.k, point.m
    fw = forward_point(problem, point)
    Z, S = fw.Z, fw.S
    X = rows(problem.X)
    W = rows(point.W)
    wi, ai, P = param_index(m, d, k, point.c is not None)
    J = jacobian(problem, point, kink_slopes)
    Jm = fmpq_mat(n * k, P, [v for r in J for v in r]) if n * k and P else fmpq_mat(n * k, P)
    GN = Jm.transpose() * Jm
    H = [[GN[r, c] / n for c in range(P)] for r in range(P)]
    E = rows(fw.E)
    for j in range(m):
        if kink_slopes is not None:
            Lin = [[fmpq(0)] * d for _ in range(k)]
            for i in range(n):
                s = kink_slopes.get((i, j), S[i, j]) if Z[i, j] == 0 else S[i, j]
                if s == 0:
                    continue
                for c in range(k):
                    if E[i][c] != 0:
                        for q in range(d):
                            if X[i][q] != 0:
                                Lin[c][q] += s * E[i][c] * X[i][q] / n
        else:
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
    """Exact gradient where L is differentiable: (D_j^T a_j for w_j, G_j for a_j[, e_bar for c])."""
    n, d, k, m = problem.n, problem.d, problem.k, point.m
    fw = forward_point(problem, point)
    E = rows(fw.E)
    W, A = rows(point.W), rows(point.A)
    wi, ai, P = param_index(m, d, k, point.c is not None)
    g = [fmpq(0)] * P
    for j in range(m):
        Lin, _ = derivative_form(problem, E, W[j])
        for q in range(d):
            g[wi(j, q)] = sum((A[j][c] * Lin[c][q] for c in range(k)), fmpq(0))
        for c in range(k):
            g[ai(j, c)] = sum((fw.H[i, j] * E[i][c] for i in range(n)), fmpq(0)) / n
    if point.c is not None:
        ci = bias_index(m, d, k)
        for c, v in enumerate(mean_residual(fw.E).tolist()):
            g[ci(c)] = v
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



# ---------------------------------------------------------------------------------------------
# generic over the number type: the loss on a fixed activation pattern
# ---------------------------------------------------------------------------------------------

@dataclass
class PatternLoss:
    """The half_mean loss on a fixed activation pattern, in reduced coordinates, generic over the
    number type (fmpq, Fraction, float, mpmath.mpf; every product and sum is done in that type).

    Neuron t moves as w_t = N_t^T u_t (the rows of N_t span the input directions it may move in,
    e.g. those orthogonal to its kinks) with output weights a_t; ``slopes[t][i]`` is sigma'(z_it) on
    the pattern, or None where the pair is held on its kink (sigma(z_it) = 0 there, so x_i takes no
    part); ``offset[i]`` = outputs of the neurons that do not move - y_i.  Then, with
    theta = (u_0, a_0, u_1, a_1, ...),

        e_i(theta) = offset_i + sum_t a_t s_it (w_t . x_i),      L(theta) = (1/2n) sum_i ||e_i||^2,

    a polynomial: ``gradient_hessian`` returns its exact derivatives (for exact types)
    g = (1/n) J^T e and H = (1/n) J^T J + sum_(i,c) e_ic d^2 e_ic / dtheta^2 / n, where
    J = de/dtheta (de_ic/du_tp = a_tc s_it (N_t x_i)_p, de_ic/da_tc = s_it (w_t . x_i)) and the only
    second derivatives are d^2 e_ic / du_tp da_tc = s_it (N_t x_i)_p.

    ``fsum`` adds the terms of every dot product and of every entry of J^T e, J^T J (Python's sum by
    default; ``mpmath.fsum``, which rounds once, for the high-precision Newton of refinement, whose
    certified roundings depend on these exact roundings)."""

    X: list                       # n x d
    N: list                       # per moving neuron: p_t x d
    slopes: list                  # per moving neuron: n slopes, None on a kink
    offset: list                  # n x k
    fsum: Callable = sum

    @property
    def sizes(self) -> list:
        return [len(Nt) for Nt in self.N]

    def unpack(self, theta: Sequence) -> list:
        """[(w_t, a_t)] of a parameter vector."""
        d, k = len(self.X[0]), len(self.offset[0])
        out, pos = [], 0
        for Nt in self.N:
            nb = len(Nt)
            u = theta[pos:pos + nb]
            a = theta[pos + nb:pos + nb + k]
            pos += nb + k
            out.append(([self.fsum(u[p] * Nt[p][q] for p in range(nb)) for q in range(d)], a))
        return out

    def _h(self, t: int, w: Sequence, i: int):
        """s_it (w_t . x_i)."""
        return self.slopes[t][i] * self.fsum(wq * xq for wq, xq in zip(w, self.X[i]))

    def residuals(self, theta: Sequence) -> list:
        """e (n x k) at theta."""
        n, k = len(self.X), len(self.offset[0])
        E = [list(row) for row in self.offset]
        for t, (w, a) in enumerate(self.unpack(theta)):
            for i in range(n):
                if self.slopes[t][i] is not None:
                    h = self._h(t, w, i)
                    for c in range(k):
                        E[i][c] += a[c] * h
        return E

    def gradient_hessian(self, theta: Sequence) -> tuple[list, list]:
        """(g, H) at theta: dL/dtheta (length P) and d^2L/dtheta^2 (P x P lists)."""
        X, fsum = self.X, self.fsum
        n, d, k = len(X), len(X[0]), len(self.offset[0])
        E = self.residuals(theta)
        P = len(theta)
        zero = self.offset[0][0] * 0
        J = [[zero] * P for _ in range(n * k)]
        second = []                  # (row of e, index of u_tp, index of a_tc, d^2 e_row / du_tp da_tc)
        pos = 0
        for t, (w, a) in enumerate(self.unpack(theta)):
            Nt, nb = self.N[t], len(self.N[t])
            for i in range(n):
                s = self.slopes[t][i]
                if s is None:
                    continue
                h = self._h(t, w, i)
                dh = [s * fsum(Nt[p][q] * X[i][q] for q in range(d)) for p in range(nb)]
                for c in range(k):
                    row = i * k + c
                    for p in range(nb):
                        J[row][pos + p] = a[c] * dh[p]
                    J[row][pos + nb + c] = h
                    second += [(row, pos + p, pos + nb + c, dh[p]) for p in range(nb)]
            pos += nb + k
        Ef = [E[i][c] for i in range(n) for c in range(k)]
        g = [fsum(J[r][p] * Ef[r] for r in range(n * k)) / n for p in range(P)]
        H = [[zero] * P for _ in range(P)]
        for p in range(P):
            for q in range(p, P):
                H[p][q] = fsum(J[r][p] * J[r][q] for r in range(n * k)) / n
        for r, p, q, v in second:
            H[p][q] += Ef[r] * v / n
        for p in range(P):
            for q in range(p):
                H[p][q] = H[q][p]
        return g, H
