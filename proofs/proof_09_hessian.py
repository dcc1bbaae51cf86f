"""Proof 9 (second-order verdicts, docs/theory.md §5/§8): the Hessian used for Morse-Bott minima and
second-order descent rays.

Statement.  At a smooth point (every pre-activation z_ij of a nonzero input is nonzero) the slopes
s_ij = sigma'(z_ij) are locally constant, f_c(x_i) = sum_j a_jc s_ij (w_j . x_i), and with
e_i = f(x_i) - y_i, L = (1/2n) sum_i |e_i|^2:

  (H1) the Hessian of L in theta = (W row-major, A row-major) is
           H = (1/n) sum_i [ J_i^T J_i + sum_c e_ic d^2 f_c(x_i) ],
       J_i = df(x_i)/dtheta (df_c/da_jc = s_ij z_ij, df_c/dw_jq = a_jc s_ij x_iq), and the only
       non-zero second derivatives of f are d^2 f_c / da_jc dw_jq = s_ij x_iq
       (the formula of the independent checker, relucert/check/kernel.py::_hessian);
  (H2) Delta^T H Delta / 2 is the t^2 coefficient c2 = (1/2n) sum_i |U_i|^2 + (1/n) sum_i e_i.Q_i of
       the ray expansion of docs/theory.md §2 (U_i = sum_j s_ij (dA_j z_ij + A_j dz_ij), Q_i = sum_j s_ij dA_j
       dz_ij), so a ray with L' = 0 and Delta^T H Delta < 0 is a second-order descent ray;
  (H3) for each neuron the rescaling direction v_j = (w_j, -a_j) satisfies H v_j = -M_j grad L with
       M_j = +1 on w_j's coordinates and -1 on a_j's: at a critical point v_j is in the kernel of H
       (the tangent of the rescaling orbit, part of the critical manifold of the Morse-Bott test).

Method.  Weights, inputs, targets, slopes s_ij and the direction are free symbols (so every strict
activation pattern and every alpha_+- at once); n <= 2, d <= 2, m <= 2, k <= 2.  sympy's exact
Hessian of the polynomial L is compared with (H1); (H2) and (H3) are checked as polynomial
identities.  Finally the checker's and the symmetry module's Hessians are evaluated on random
rational smooth points and compared with sympy's, entry by entry.
"""
import itertools
import random
import sys
from fractions import Fraction
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import main  # noqa: E402


def symbols(n, d, m, k):
    X = [[sp.Symbol(f"x_{i}{q}", real=True) for q in range(d)] for i in range(n)]
    Y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    W = [[sp.Symbol(f"w_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    A = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    S = [[sp.Symbol(f"s_{i}{j}", real=True) for j in range(m)] for i in range(n)]
    return X, Y, W, A, S


def check_shape(n, d, m, k) -> None:
    X, Y, W, A, S = symbols(n, d, m, k)
    theta = [v for row in W for v in row] + [v for row in A for v in row]
    P = len(theta)
    wi = lambda j, q: j * d + q            # noqa: E731
    ai = lambda j, c: m * d + j * k + c    # noqa: E731
    Z = [[sum(W[j][q] * X[i][q] for q in range(d)) for j in range(m)] for i in range(n)]
    F = [[sum(A[j][c] * S[i][j] * Z[i][j] for j in range(m)) for c in range(k)] for i in range(n)]
    E = [[F[i][c] - Y[i][c] for c in range(k)] for i in range(n)]
    L = sum(e ** 2 for row in E for e in row) / (2 * n)
    grad = [sp.diff(L, v) for v in theta]
    Hs = [[sp.expand(sp.diff(g, v)) for v in theta] for g in grad]
    # (H1) the checker's formula
    Hf = [[sp.Integer(0)] * P for _ in range(P)]
    for i in range(n):
        for c in range(k):
            J = [sp.Integer(0)] * P
            for j in range(m):
                J[ai(j, c)] = S[i][j] * Z[i][j]
                for q in range(d):
                    J[wi(j, q)] = A[j][c] * S[i][j] * X[i][q]
            for p1 in range(P):
                for p2 in range(P):
                    Hf[p1][p2] += J[p1] * J[p2] / n
            for j in range(m):
                for q in range(d):
                    Hf[ai(j, c)][wi(j, q)] += E[i][c] * S[i][j] * X[i][q] / n
                    Hf[wi(j, q)][ai(j, c)] += E[i][c] * S[i][j] * X[i][q] / n
    for p1 in range(P):
        for p2 in range(P):
            if sp.expand(Hs[p1][p2] - Hf[p1][p2]) != 0:
                raise AssertionError(f"(H1) Hessian entry ({p1},{p2}) differs for n={n} d={d} m={m} k={k}")
    # (H2) Delta^T H Delta / 2 = c2 of the ray expansion
    dW = [[sp.Symbol(f"dw_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    dA = [[sp.Symbol(f"da_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    delta = [v for row in dW for v in row] + [v for row in dA for v in row]
    dZ = [[sum(dW[j][q] * X[i][q] for q in range(d)) for j in range(m)] for i in range(n)]
    U = [[sum(S[i][j] * (dA[j][c] * Z[i][j] + A[j][c] * dZ[i][j]) for j in range(m)) for c in range(k)]
         for i in range(n)]
    Qv = [[sum(S[i][j] * dA[j][c] * dZ[i][j] for j in range(m)) for c in range(k)] for i in range(n)]
    c2 = (sum(u ** 2 for row in U for u in row) / (2 * n)
          + sum(E[i][c] * Qv[i][c] for i in range(n) for c in range(k)) / n)
    quad = sum(delta[p1] * Hf[p1][p2] * delta[p2] for p1 in range(P) for p2 in range(P)) / 2
    if sp.expand(quad - c2) != 0:
        raise AssertionError(f"(H2) Delta^T H Delta / 2 != c2 for n={n} d={d} m={m} k={k}")
    # (H3) H v_j = -M_j grad L
    for j in range(m):
        v = [sp.Integer(0)] * P
        M = [0] * P
        for q in range(d):
            v[wi(j, q)], M[wi(j, q)] = W[j][q], 1
        for c in range(k):
            v[ai(j, c)], M[ai(j, c)] = -A[j][c], -1
        for p1 in range(P):
            lhs = sum(Hs[p1][p2] * v[p2] for p2 in range(P)) + M[p1] * grad[p1]
            if sp.expand(lhs) != 0:
                raise AssertionError(f"(H3) H v_{j} + M grad L != 0 at coordinate {p1}, n={n} d={d} m={m} k={k}")


def check_implementations(trials: int = 12) -> int:
    """The checker's and the symmetry module's Hessians against sympy's at random smooth points."""
    from flint import fmpq

    from relucert.check.kernel import _hessian, _Instance
    from relucert.core.problem import Point, Problem
    from relucert.core.hessian import hessian
    rng = random.Random(9)
    done = 0
    while done < trials:
        n, d, m, k = rng.randint(1, 3), rng.randint(1, 2), rng.randint(1, 2), rng.randint(1, 2)
        ap, am = rng.choice([(1, 0), (1, Fraction(1, 10)), (1, -1), (Fraction(1, 2), 2)])
        q = lambda: Fraction(rng.randint(-9, 9), rng.randint(1, 4))   # noqa: E731
        X = [[q() for _ in range(d)] for _ in range(n)]
        W = [[q() for _ in range(d)] for _ in range(m)]
        if any(sum(w[t] * x[t] for t in range(d)) == 0 for w in W for x in X):
            continue                                         # not smooth: draw again
        A = [[q() for _ in range(k)] for _ in range(m)]
        Y = [[q() for _ in range(k)] for _ in range(n)]
        pj = {"activation": {"alpha_plus": str(ap), "alpha_minus": str(am)}, "loss": "half_mean",
              "X": [[str(v) for v in r] for r in X], "Y": [[str(v) for v in r] for r in Y]}
        inst = _Instance({"problem": pj, "point": {"W": [[str(v) for v in r] for r in W],
                                                  "A": [[str(v) for v in r] for r in A]}})
        Hc = _hessian(inst)
        pb = Problem.make(pj["X"], pj["Y"], pj["activation"])
        Hm = hessian(pb, Point.make([[str(v) for v in r] for r in W], [[str(v) for v in r] for r in A], pb))
        # sympy at the same point: slopes from the signs of z
        sl = lambda z: ap if z > 0 else am                     # noqa: E731
        Xs, Ys, Ws, As, Ss = symbols(n, d, m, k)
        subs = {}
        for i in range(n):
            for t in range(d):
                subs[Xs[i][t]] = sp.Rational(X[i][t])
            for c in range(k):
                subs[Ys[i][c]] = sp.Rational(Y[i][c])
            for j in range(m):
                subs[Ss[i][j]] = sp.Rational(sl(sum(W[j][t] * X[i][t] for t in range(d))))
        theta = [v for row in Ws for v in row] + [v for row in As for v in row]
        vals = [v for row in W for v in row] + [v for row in A for v in row]
        Z = [[sum(Ws[j][t] * Xs[i][t] for t in range(d)) for j in range(m)] for i in range(n)]
        L = sum((sum(As[j][c] * Ss[i][j] * Z[i][j] for j in range(m)) - Ys[i][c]) ** 2
                for i in range(n) for c in range(k)) / (2 * n)
        L = L.subs(subs)
        pt = dict(zip(theta, [sp.Rational(v) for v in vals]))
        for p1, v1 in enumerate(theta):
            for p2, v2 in enumerate(theta):
                ref = sp.diff(L, v1, v2).subs(pt)
                if Fraction(int(ref.p), int(ref.q)) != Hc[p1][p2] or fmpq(int(ref.p), int(ref.q)) != Hm[p1][p2]:
                    raise AssertionError(f"implementation Hessian entry ({p1},{p2}) differs from sympy")
        done += 1
    return done


def prove() -> str:
    shapes = [s for s in itertools.product((1, 2), (1, 2), (1, 2), (1, 2))]
    for n, d, m, k in shapes:
        check_shape(n, d, m, k)
    impl = check_implementations()
    return (f"smooth points: Hessian = (1/n) sum (J^T J + e . d^2 f) (the checker's formula), "
            f"Delta^T H Delta / 2 = c2 of the ray expansion, H (w_j, -a_j) = -M_j grad L (rescaling "
            f"directions in the kernel at critical points): {len(shapes)} shapes n,d,m,k <= 2 with free "
            f"slopes; checker and symmetry Hessians = sympy at {impl} random rational points")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
