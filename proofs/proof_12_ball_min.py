"""Proof 12 (local_min ball certificates, docs/theory.md §10.5): the gauge slice and its Hessian.

Statement.  At a smooth point of a plain narrow network (each alive neuron its own cluster, no data
point on any kink, slopes s_ij locally constant, dead neurons with alpha_- = 0 outputting 0), the
ball certificate's unknowns xi = (free coordinates of u_j in the basis B_j, c_j)_j parametrise the
affine gauge slice S: w_j = gamma_j sum_t theta_jt B_jt with theta_j,t0 = g_j fixed, a_j = c_j / gamma_j.

  (M1) the checker's J(xi) (relucert/check/kernel.py::_Ball.evaluate) is the Hessian of L(theta(xi)),
       and equals V^T H V, H the Hessian of L in (W, A) and V the (constant) linear part of theta(xi):
       J is the wide Hessian restricted to the slice's direction space C;
  (M2) C is transversal to every rescaling orbit through a point of S: the matrix [V | T(theta)]
       (T the rescaling tangents (w_j, -a_j) of the alive neurons) is square with determinant
       +- prod_j g_j gamma_j^(d-k) det(B_j), non-zero and independent of the free coordinates (the
       gauge coordinate of w_j is gamma_j g_j on the whole slice);
  (M3) L is invariant along the orbits: L(.., lambda w_j, a_j / lambda, ..) = L for lambda > 0;
  (M4) the checker's interval test (_ball_positive_definite) is sound on samples: whenever it accepts
       (J, mu), random symmetric matrices with entries in the intervals have smallest eigenvalue > mu.

Method.  (M1)-(M3) with sympy on symbolic inputs, targets, slopes and slice coordinates for
n <= 2, d <= 2, m <= 2, k <= 2, and (M1) again on random rational smooth
instances through the checker's own code; (M4) on random interval matrices with mpmath eigenvalues.
With (M1)-(M3), a zero xi* of F in the box with J(xi*) positive definite makes theta(xi*) a strict
local minimum of L on S, and Phi(s, lambda) = (lambda_j w_j(s), a_j(s)/lambda_j) a local
diffeomorphism at (theta*, 1) (M2) along which L is constant (M3): theta* is a local minimum.
"""
import itertools
import random
import sys
from fractions import Fraction
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import main  # noqa: E402


def _loss(X, Y, S, W, A, n, k):
    F = [[sum(A[j][c] * S[i][j] * sum(W[j][q] * X[i][q] for q in range(len(X[i]))) for j in range(len(W)))
          for c in range(k)] for i in range(n)]
    return sum((F[i][c] - Y[i][c]) ** 2 for i in range(n) for c in range(k)) / (2 * n)


def check_shape(n, d, m, k) -> None:
    X = [[sp.Symbol(f"x_{i}{q}", real=True) for q in range(d)] for i in range(n)]
    Y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    S = [[sp.Symbol(f"s_{i}{j}", real=True) for j in range(m)] for i in range(n)]
    gam = [sp.Symbol(f"gamma_{j}", positive=True) for j in range(m)]
    g = [sp.Symbol(f"g_{j}", nonzero=True) for j in range(m)]
    B = [[[sp.Symbol(f"B_{j}{t}{q}", real=True) for q in range(d)] for t in range(d)] for j in range(m)]
    t0 = [j % d for j in range(m)]
    xi, W, A = [], [], []
    for j in range(m):
        free = [sp.Symbol(f"th_{j}{t}", real=True) for t in range(d) if t != t0[j]]
        cj = [sp.Symbol(f"c_{j}{c}", real=True) for c in range(k)]
        xi += free + cj
        th = free[:t0[j]] + [g[j]] + free[t0[j]:]
        W.append([gam[j] * sum(th[t] * B[j][t][q] for t in range(d)) for q in range(d)])
        A.append([v / gam[j] for v in cj])
    # (M1): the slice Hessian is V^T H V
    Ws = [[sp.Symbol(f"w_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    As = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    theta = [v for row in Ws for v in row] + [v for row in As for v in row]
    Lw = _loss(X, Y, S, Ws, As, n, k)
    sub = dict(zip(theta, [v for row in W for v in row] + [v for row in A for v in row]))
    Ls = _loss(X, Y, S, W, A, n, k)
    V = sp.Matrix([[sp.diff(e, x) for x in xi] for e in sub.values()])
    H = sp.hessian(Lw, theta).subs(sub)
    Jn = sp.hessian(Ls, xi)
    if sp.expand(Jn - V.T * H * V) != sp.zeros(len(xi), len(xi)):
        raise AssertionError("(M1) slice Hessian differs from V^T H V")
    # (M2): det [V | T] is a non-zero constant times prod g_j (no free coordinate appears)
    T = []
    for j in range(m):
        col = [0] * len(theta)
        for q in range(d):
            col[j * d + q] = sub[Ws[j][q]]
        for c in range(k):
            col[m * d + j * k + c] = -sub[As[j][c]]
        T.append(col)
    M = V.row_join(sp.Matrix(T).T)
    det = sp.factor(M.det())
    expect = sp.prod([g[j] * gam[j] ** (d - k) * sp.Matrix(B[j]).det() for j in range(m)])
    if sp.expand(det - expect) != 0 and sp.expand(det + expect) != 0:
        raise AssertionError(f"(M2) det [V | T] = {det} is not +- prod g_j gamma_j^(d-k) det B_j")
    # (M3): rescaling invariance of the wide loss
    lam = [sp.Symbol(f"lambda_{j}", positive=True) for j in range(m)]
    Lr = _loss(X, Y, S, [[lam[j] * v for v in Ws[j]] for j in range(m)],
               [[v / lam[j] for v in As[j]] for j in range(m)], n, k)
    if sp.simplify(Lr - Lw) != 0:
        raise AssertionError("(M3) loss not invariant under rescaling")


def check_checker_J(trials=8) -> int:
    """(M1) through the checker's code: J of _Ball.evaluate = sympy Hessian of L(theta(xi)) on random
    rational smooth instances of the local_min structure (a dead neuron included)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from relucert.check.kernel import _Ball, _Instance, _Iv
    rng = random.Random(12)
    done = 0
    while done < trials:
        n, d, m, k = rng.randint(2, 4), rng.randint(1, 3), rng.randint(1, 2), rng.randint(1, 3)
        q = lambda: Fraction(rng.randint(-5, 5), rng.randint(1, 3))   # noqa: E731
        X = [[Fraction(rng.randint(-4, 4)) for _ in range(d - 1)] + [Fraction(rng.randint(1, 3))] for _ in range(n)]
        W = [[q() for _ in range(d)] for _ in range(m)]
        if any(sum(a * b for a, b in zip(w, x)) == 0 for w in W for x in X) or any(not any(w) for w in W):
            continue
        A = [[q() for _ in range(k)] for _ in range(m)]
        Wd = [Fraction(0)] * (d - 1) + [Fraction(-1)]                 # dead: x_d > 0 on every point
        Y = [[q() for _ in range(k)] for _ in range(n)]
        clusters, center = [], []
        for j, w in enumerate(W):
            t0 = max(range(d), key=lambda t: abs(w[t]))
            clusters.append({"neurons": [j], "gamma": ["1"], "beta": ["1"],
                             "basis": [[str(Fraction(int(a == b))) for a in range(d)] for b in range(d)],
                             "gauge": t0, "gauge_value": str(w[t0])})
            center += [w[t] for t in range(d) if t != t0] + A[j]
        pj = {"activation": {"alpha_plus": "1", "alpha_minus": "0"}, "loss": "half_mean",
              "X": [[str(v) for v in r] for r in X], "Y": [[str(v) for v in r] for r in Y]}
        ptj = {"W": [[str(v) for v in r] for r in W + [Wd]], "A": [[str(v) for v in r] for r in A + [[q() for _ in range(k)]]]}
        ev = {"clusters": clusters, "zero": [], "dead": [m], "center": [str(v) for v in center]}
        inst = _Instance({"problem": pj, "point": ptj})
        ball = _Ball(inst, ev)
        xs = sp.symbols(f"xi0:{ball.N}")
        Wx, Ax, pos = [], [], 0
        for j, c in enumerate(ball.clusters):
            free = list(xs[pos:pos + d - 1])
            th = free[:c["t0"]] + [sp.Rational(c["gv"])] + free[c["t0"]:]
            Wx.append(th)
            Ax.append(list(xs[pos + d - 1:pos + d - 1 + k]))
            pos += d - 1 + k
        Sx = [[sp.Rational(c["s"][i]) for c in ball.clusters] for i in range(n)]
        L = _loss([[sp.Rational(v) for v in x] for x in X], [[sp.Rational(v) for v in y] for y in Y], Sx, Wx, Ax, n, k)
        Hs = sp.hessian(L, xs)
        pt_ = [v + Fraction(rng.randint(-3, 3), 97) for v in ball.center]
        J = ball.evaluate([_Iv(v) for v in pt_])[5]
        sub = {x: sp.Rational(v) for x, v in zip(xs, pt_)}
        for a in range(ball.N):
            for b in range(ball.N):
                if sp.Rational(J[a][b].lo) != Hs[a, b].subs(sub) or J[a][b].lo != J[a][b].hi:
                    raise AssertionError("(M1) checker J differs from sympy's Hessian")
        done += 1
    return done


def check_pd_test(trials=150) -> int:
    """(M4): accepted interval matrices contain only matrices with lambda_min > mu (sampled)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import mpmath as mp
    from relucert.check.kernel import _ball_positive_definite, _int_pos_def, _Iv, _pos_def
    rng = random.Random(4)
    for _ in range(300):            # the fraction-free test agrees with elimination in rationals
        N = rng.randint(1, 5)
        C = [[rng.randint(-3, 3) for _ in range(N)] for _ in range(N)]
        K = [[sum(C[r][t] * C[s][t] for t in range(N)) + rng.randint(-2, 2) * (r == s) for s in range(N)]
             for r in range(N)]
        if _int_pos_def(K) != _pos_def([[Fraction(v) for v in row] for row in K]):
            raise AssertionError("(M4) Bareiss positive-definiteness test disagrees with rational elimination")
    accepted = 0
    for _ in range(trials):
        N = rng.randint(1, 4)
        C = [[Fraction(rng.randint(-3, 3), 4) for _ in range(N)] for _ in range(N)]
        M = [[sum(C[r][t] * C[s][t] for t in range(N)) + (Fraction(1, 5) if r == s else 0) for s in range(N)]
             for r in range(N)]
        rad = Fraction(1, rng.choice([10, 100, 1000]))
        J = [[_Iv(M[r][s] - rad * Fraction(rng.randint(0, 4), 4), M[r][s] + rad * Fraction(rng.randint(0, 4), 4))
              for s in range(N)] for r in range(N)]
        mu = Fraction(rng.randint(1, 20), 100)
        if not _ball_positive_definite(J, mu):
            continue
        accepted += 1
        for _ in range(8):
            H = [[None] * N for _ in range(N)]
            for r in range(N):
                for s in range(r, N):
                    lo, hi = max(J[r][s].lo, J[s][r].lo), min(J[r][s].hi, J[s][r].hi)
                    H[r][s] = H[s][r] = lo + (hi - lo) * Fraction(rng.randint(0, 8), 8) if lo <= hi else None
            if any(v is None for row in H for v in row):
                continue
            ev = mp.eigsy(mp.matrix([[mp.mpf(v.numerator) / v.denominator for v in row] for row in H]))[0]
            if min(ev) <= mp.mpf(mu.numerator) / mu.denominator:
                raise AssertionError("(M4) accepted interval matrix contains lambda_min <= mu")
    if accepted < 50:
        raise AssertionError("(M4) too few accepted samples to say anything")
    return accepted


def prove() -> str:
    shapes = list(itertools.product((1, 2), (1, 2), (1, 2), (1, 2)))
    for n, d, m, k in shapes:
        check_shape(n, d, m, k)
    impl = check_checker_J()
    acc = check_pd_test()
    return (f"gauge slice: J = V^T H V, det [V | T] = +- prod g_j gamma_j^(d-k) det B_j, rescaling "
            f"invariance ({len(shapes)} symbolic shapes); checker J = sympy Hessian at {impl} random smooth "
            f"instances; interval PD test (Bareiss = rational elimination on 300 matrices) sound on {acc} accepted random interval matrices")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
