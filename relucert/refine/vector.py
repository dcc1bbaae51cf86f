"""Vector output, rank-constrained groups (THEORY §6.3): least-norm Newton at high precision
(mpmath) on the loss restricted to the activation pattern, then rational rounding and an exact
refit of the output weights."""
from __future__ import annotations

from fractions import Fraction

from flint import fmpq, fmpq_mat

from relucert.core.formulas import forward
from relucert.core.hessian import PatternLoss
from relucert.core.linalg import independent_subset, mat, nullspace
from relucert.core.problem import Point, Problem
from relucert.refine.classify import Pattern
from relucert.refine.exact import least_norm_solve, project_onto_kinks, targets_without

MAX_NEWTON_UNKNOWNS = 60


def d_unknowns(problem: Problem, pat: Pattern, j: int) -> int:
    """Unknowns of neuron j in the Newton step: its input directions off its kinks, and a_j."""
    return problem.d - len(pat.kinks[j]) + problem.k if pat.status[j] == "alive" else 0


def refine_vector(problem: Problem, start: Point, pat: Pattern, reading: str, dps: int = 60,
                  iters: int = 40) -> tuple[Point | None, str]:
    """Least-norm Newton in mpmath on the pattern-restricted gradient, then rational rounding.

    The alive neuron t moves as w_t = N_t^T u_t, the rows of N_t spanning the inputs orthogonal to
    its kinks (so the kinks stay exact); the loss on the pattern, its gradient and Hessian in
    (u_t, a_t) are core's ``PatternLoss`` with mpmath's once-rounded sums."""
    import mpmath as mp
    n, d, k, m = problem.n, problem.d, problem.k, start.m
    act = problem.activation
    W, A = start.W.copy(), start.A.copy()
    movable = [j for j in range(m) if pat.status[j] == "alive"]
    X = [problem.X[i].tolist() for i in range(n)]
    for j in range(m):
        if j not in movable and not all(v == 0 for v in W[j]):
            W[j] = project_onto_kinks(W[j].tolist(), [X[i] for i in pat.kinks[j]])
    if not movable:
        return Point(W, A), "no alive neuron to refine"
    Nbs = [nullspace([X[i] for i in pat.kinks[j]], d) for j in movable]        # p_t x d, exact
    blocks = [len(Nb) for Nb in Nbs]
    Hx = forward(problem.X, problem.Y, W, A, act.alpha_plus, act.alpha_minus).H   # sigma(z_ij), exact
    with mp.workdps(dps):
        mpq = lambda q: mp.mpf(int(q.p)) / int(q.q)
        # the fixed neurons' outputs, term by term
        base = [[mp.mpf(0)] * k for _ in range(n)]
        for j in range(m):
            if j in movable:
                continue
            for i in range(n):
                if Hx[i, j] != 0:
                    for c in range(k):
                        base[i][c] += mpq(Hx[i, j] * A[j][c])
        loss = PatternLoss(
            X=[[mpq(v) for v in row] for row in X],
            N=[[[mpq(v) for v in col] for col in Nb] for Nb in Nbs],
            slopes=[[None if pat.signs[i, j] == 0 else
                      mpq(act.alpha_plus if pat.signs[i, j] > 0 else act.alpha_minus) for i in range(n)]
                     for j in movable],
            offset=[[base[i][c] - mpq(problem.Y[i][c]) for c in range(k)] for i in range(n)],
            fsum=mp.fsum)
        # unknowns, neuron by neuron: u_t (least squares N_t^T u = w_t), a_t
        theta = []
        for t, j in enumerate(movable):
            Nm = loss.N[t]
            wj = [mpq(v) for v in W[j].tolist()]
            if Nm:
                G = mp.matrix([[mp.fsum(a * b for a, b in zip(Nm[p], Nm[q])) for q in range(len(Nm))]
                               for p in range(len(Nm))])
                rhs = mp.matrix([mp.fsum(a * b for a, b in zip(Nm[p], wj)) for p in range(len(Nm))])
                u = mp.lu_solve(G, rhs)
                theta += [u[p] for p in range(len(Nm))]
            theta += [mpq(v) for v in A[j].tolist()]
        th = list(theta)
        gnorm = None
        for _ in range(iters):
            g, Hl = loss.gradient_hessian(th)
            gnorm = max(abs(v) for v in g)
            if gnorm < mp.mpf(10) ** (-(dps - 10)):
                break
            ev, Q = mp.eigsy(mp.matrix(Hl))
            lmax = max(abs(ev[i]) for i in range(len(th)))
            cut = lmax * mp.mpf(10) ** (-(dps // 3))
            step = [mp.mpf(0)] * len(th)
            for e_i in range(len(th)):
                if abs(ev[e_i]) > cut:
                    coef = mp.fsum(Q[p, e_i] * g[p] for p in range(len(th))) / ev[e_i]
                    for p in range(len(th)):
                        step[p] -= coef * Q[p, e_i]
            th = [a + b for a, b in zip(th, step)]
        pos = 0
        for t, j in enumerate(movable):
            # round to rationals with ~dps-5 digits; kinks stay exact since w = N^T u with rational u
            uq = [_mp_to_fmpq(x, dps) for x in th[pos:pos + blocks[t]]]
            W[j] = [sum((uq[p] * Nbs[t][p][q] for p in range(blocks[t])), fmpq(0)) for q in range(d)]
            A[j] = [_mp_to_fmpq(x, dps) for x in th[pos + blocks[t]:pos + blocks[t] + k]]
            pos += blocks[t] + k
        note = f"least-norm Newton ({dps} digits, gradient {mp.nstr(gnorm, 3)}), rational rounding"
    if _refit_output_weights(problem, W, A, movable):
        note += ", output weights re-fitted exactly"
    return Point(W, A), note


def _refit_output_weights(problem: Problem, W, A, movable: list) -> bool:
    """Exact least-squares refit of the movable neurons' output weights for fixed rational W, with
    the least change: afterwards G_j = 0 exactly for them (S1)."""
    n, k = problem.n, problem.k
    act = problem.activation
    # sigma(w_j . x_i) of the movable neurons (n x |movable|), and what is left for them to fit
    H = forward(problem.X, problem.Y, W[movable], A[movable], act.alpha_plus, act.alpha_minus).H.tolist()
    targets = targets_without(problem, W, A, movable)
    Ht = [[H[i][t] for i in range(n)] for t in range(len(movable))]
    cols = independent_subset(Ht)
    if not cols:
        return False
    Hb = mat([[H[i][t] for t in cols] for i in range(n)])
    for c in range(k):
        y = targets[:, c].tolist()
        coef = (Hb.transpose() * Hb).solve(Hb.transpose() * fmpq_mat(n, 1, y))
        fstar = [sum((Hb[i, t] * coef[t, 0] for t in range(len(cols))), fmpq(0)) for i in range(n)]
        a0 = [A[j][c] for j in movable]
        rhs = [fstar[i] - sum((H[i][t] * a0[t] for t in range(len(movable))), fmpq(0)) for i in range(n)]
        da = least_norm_solve(H, rhs)
        if da is None:
            return False
        for t, j in enumerate(movable):
            A[j][c] = a0[t] + da[t]
    return True


def _mp_to_fmpq(x, dps: int) -> fmpq:
    import mpmath as mp
    fr = Fraction(int(mp.nint(x * mp.mpf(10) ** (dps - 5))), 10 ** (dps - 5))
    return fmpq(fr.numerator, fr.denominator)
