"""Proof 14 (the GL(r) gauge of local_min ball certificates, docs/theory.md §10.6).

Statement.  Let r >= 2 single-neuron clusters (rows of W_g, r x d, and A_g, r x k) have one strict
sign vector, so at data point i every member has the same slope s_i and the group's output is
s_i A_g^T W_g x_i.  Fix distinct columns S (|S| = r) with C = W_g[:, S] invertible.

  (G1) invariance: L(G W_g, G^-T A_g) = L(W_g, A_g) identically in G (symbolic, det G != 0), the data,
       the targets, the shared slopes and a further neuron outside the group; with different slopes
       for two members at one point (different sign vectors, or a kink piece) it fails;
  (G2) transversality: the differential at (I, s) of (G, s) -> G.s, s on the slice W_g[:, S] = C, is
       square (r^2 + r(d - r) + rk = r(d + k) unknowns) with determinant +- det(C)^r, free of the
       slice's free coordinates: invertible wherever det C != 0 (every S for d = 3, r = 2);
  (G3) the slice Jacobian: the checker's J (relucert/check/kernel.py::_Ball.evaluate with a GL group)
       equals V^T H V -- the sympy Hessian of the loss restricted to the slice -- and its F the
       restricted gradient, on random rational instances through the checker's own code; and at a
       zero of F the fixed coordinates' gradient vanishes (the identity grad_{w_l} L . w_l' =
       a_l . grad_{a_l'} L holds identically, so (grad_W L)[:, S] C^T = 0 forces it).

  (G4) linear blocks (r > d, §10.6 (f)): with all of W_g and the outputs A_R of r - d members fixed,
       the checker's F and J (relucert/check/kernel.py::_Ball.evaluate with fixed_outputs) equal the
       sympy gradient and Hessian of the loss in A_F, which is V^T H V; the exact zero of F (a linear
       system) has a zero gradient in ALL of (W_g, A_g); the local inverse
       s = (W_g*, A_R*, W_F^-T (M_g(theta) - A_R*^T W_R*)^T) has L(s) = L(theta) exactly at random
       nearby theta (slopes from the actual signs); and the Jacobian of A_F -> M_g has determinant
       +- det(W_F)^k (symbolic W_F).

Method.  sympy, r = 2, d = 3, k = 2 (G1, G2) and random rational instances with d = 3, k = 2 or 3, r = 2
or 3 with ReLU and leaky slopes (G3).  With (G1)-(G3) and §10.5's argument the local inverse
G(theta) = W_g[:, S] C^-1 reduces every nearby theta to a point of the slice with the same loss.
"""
import itertools
import random
import sys
from fractions import Fraction
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import main  # noqa: E402


def _loss(X, Y, slopes, W, A):
    """(1/2n) sum_i |sum_l a_l s_il (w_l . x_i) - y_i|^2 with explicit slopes s_il."""
    n, k = len(X), len(Y[0])
    F = [[sum(A[l][c] * slopes[i][l] * sum(W[l][q] * X[i][q] for q in range(len(X[i]))) for l in range(len(W)))
          for c in range(k)] for i in range(n)]
    return sum((F[i][c] - Y[i][c]) ** 2 for i in range(n) for c in range(k)) / (2 * n)


def _slice_and_full_loss(X, Y, am, r, d, k, Wx, Ax, xs):
    """The group's loss on one strict pattern (the sign of x[0], every member alike) twice: on the
    slice (weights Wx, outputs Ax in the unknowns xs), with its gradient and Hessian, and in the full
    symbols W_lt, A_lc.  Returns (L, grad, Hessian, Wf, Af, full symbols, full L)."""
    slopes = [[sp.Integer(1) if x[0] > 0 else sp.Rational(am)] * r for x in X]
    Xs = [[sp.Rational(v) for v in x] for x in X]
    Ys = [[sp.Rational(v) for v in y] for y in Y]
    L = sp.Poly(_loss(Xs, Ys, slopes, Wx, Ax), *xs)
    gs = [L.diff(v) for v in xs]
    Hs = [[gv.diff(v) for v in xs] for gv in gs]
    Wf = [[sp.Symbol(f"W_{l}{t}") for t in range(d)] for l in range(r)]
    Af = [[sp.Symbol(f"A_{l}{c}") for c in range(k)] for l in range(r)]
    full = [v for row in Wf for v in row] + [v for row in Af for v in row]
    Lf = sp.Poly(_loss(Xs, Ys, slopes, Wf, Af), *full)
    return L, gs, Hs, Wf, Af, full, Lf


def check_invariance(r=2, d=3, k=2, n=2) -> None:
    X = [[sp.Symbol(f"x_{i}{q}", real=True) for q in range(d)] for i in range(n)]
    Y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    s = [sp.Symbol(f"s_{i}", real=True) for i in range(n)]
    so = [sp.Symbol(f"o_{i}", real=True) for i in range(n)]          # the outside neuron's slopes
    W = sp.Matrix(r, d, lambda l, q: sp.Symbol(f"w_{l}{q}", real=True))
    A = sp.Matrix(r, k, lambda l, c: sp.Symbol(f"a_{l}{c}", real=True))
    wo = [sp.Symbol(f"v_{q}", real=True) for q in range(d)]
    ao = [sp.Symbol(f"b_{c}", real=True) for c in range(k)]
    G = sp.Matrix(r, r, lambda a, b: sp.Symbol(f"g_{a}{b}", real=True))
    GW, GA = G * W, G.inv().T * A
    slopes = [[s[i]] * r + [so[i]] for i in range(n)]
    L0 = _loss(X, Y, slopes, [list(W.row(l)) for l in range(r)] + [wo], [list(A.row(l)) for l in range(r)] + [ao])
    L1 = _loss(X, Y, slopes, [list(GW.row(l)) for l in range(r)] + [wo], [list(GA.row(l)) for l in range(r)] + [ao])
    if sp.simplify(sp.together(L1 - L0)) != 0:
        raise AssertionError("(G1) the loss is not invariant under (G W, G^-T A) on one strict pattern")
    # different slopes for the members at point 0: the identity fails (a numeric G exhibits it)
    t = sp.Symbol("t_0", real=True)
    bad = [[t if (i == 0 and l == 1) else s[i] for l in range(r)] + [so[i]] for i in range(n)]
    Lb0 = _loss(X, Y, bad, [list(W.row(l)) for l in range(r)] + [wo], [list(A.row(l)) for l in range(r)] + [ao])
    Lb1 = _loss(X, Y, bad, [list(GW.row(l)) for l in range(r)] + [wo], [list(GA.row(l)) for l in range(r)] + [ao])
    rng = random.Random(1)
    # symbols in name order (a set's order follows the process's string hashing) and non-zero values: a
    # zero data entry or output weight could make the difference vanish by accident
    sub = {v: sp.Rational(rng.choice((-1, 1)) * rng.randint(1, 5), rng.randint(1, 3))
           for v in sorted((Lb1 - Lb0).free_symbols, key=str)}
    sub.update({G[0, 0]: 1, G[0, 1]: sp.Rational(1, 3), G[1, 0]: 0, G[1, 1]: 1})
    sub.update({s[0]: 1, t: sp.Rational(1, 4)})
    if (Lb1 - Lb0).subs(sub) == 0:
        raise AssertionError("(G1) mixing neurons with different slopes unexpectedly kept the loss")


def check_transversality(r=2, d=3, k=2) -> str:
    """(G2): the differential of (Gamma, free W, A) -> ((I + Gamma) W_s, (I + Gamma)^-T A) at Gamma = 0,
    W_s the slice point (C on the columns S), for every choice of S."""
    out = []
    for S in itertools.combinations(range(d), r):
        Cs = sp.Matrix(r, r, lambda a, b: sp.Symbol(f"C_{a}{b}", real=True))
        free = {}
        W = sp.zeros(r, d)
        for l in range(r):
            for q in range(d):
                if q in S:
                    W[l, q] = Cs[l, S.index(q)]
                else:
                    free[(l, q)] = W[l, q] = sp.Symbol(f"w_{l}{q}", real=True)
        A = sp.Matrix(r, k, lambda l, c: sp.Symbol(f"a_{l}{c}", real=True))
        Gam = sp.Matrix(r, r, lambda a, b: sp.Symbol(f"G_{a}{b}", real=True))
        Wt = (sp.eye(r) + Gam) * W
        At = (sp.eye(r) + Gam).inv().T * A
        outs = list(Wt) + list(At)
        ins = list(Gam) + list(free.values()) + list(A)
        if len(outs) != len(ins) or len(ins) != r * (d + k):
            raise AssertionError("(G2) dimension count")
        Jac = sp.Matrix([[sp.diff(o, v) for v in ins] for o in outs]).subs({g: 0 for g in Gam})
        det = sp.factor(Jac.det())
        # block-triangular: the columns S see only Gamma (Gamma -> Gamma C, determinant det(C)^r), the
        # free W and A entries enter with identity blocks
        if sp.simplify(det - Cs.det() ** r) != 0 and sp.simplify(det + Cs.det() ** r) != 0:
            raise AssertionError(f"(G2) determinant {det} is not +- det(C)^r for S = {S}")
        out.append(S)
    return f"{len(out)} column sets"


def check_checker_J(trials=8) -> int:
    """(G3) through the checker's code, and the stationarity identity."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from relucert.check.kernel import _Ball, _Instance, _Iv
    rng = random.Random(14)
    done = 0
    while done < trials:
        d, k, r = 3, rng.choice((2, 3)), rng.choice((2, 3))
        n = rng.randint(4, 6)
        am = rng.choice((Fraction(0), Fraction(1, 4)))
        q = lambda: Fraction(rng.randint(-5, 5), rng.randint(1, 3))   # noqa: E731
        # x_0 carries the sign: every member has w_0 = 3 +- small and |other weights| <= 1/2
        X = [[Fraction(rng.choice((-1, 1)) * rng.randint(2, 3))] + [Fraction(rng.randint(-1, 1)) for _ in range(d - 1)]
             for _ in range(n)]
        W = [[Fraction(3) + Fraction(rng.randint(-3, 3), 7)] + [Fraction(rng.randint(-3, 3), 7) for _ in range(d - 1)]
             for _ in range(r)]
        A = [[q() for _ in range(k)] for _ in range(r)]
        Y = [[q() for _ in range(k)] for _ in range(n)]
        S = sorted(rng.sample(range(d), r))
        Cm = sp.Matrix([[sp.Rational(W[l][t]) for t in S] for l in range(r)])
        if Cm.det() == 0:
            continue
        clusters, center = [], []
        for l in range(r):
            clusters.append({"neurons": [l], "gamma": ["1"], "beta": ["1"],
                             "basis": [[str(Fraction(int(a == b))) for a in range(d)] for b in range(d)],
                             "gauge": list(S), "gauge_value": [str(W[l][t]) for t in S]})
            center += [W[l][t] for t in range(d) if t not in S] + A[l]
        pj = {"activation": {"alpha_plus": "1", "alpha_minus": str(am)}, "loss": "half_mean",
              "X": [[str(v) for v in row] for row in X], "Y": [[str(v) for v in row] for row in Y]}
        ptj = {"W": [[str(v) for v in row] for row in W], "A": [[str(v) for v in row] for row in A]}
        ev = {"clusters": clusters, "zero": [], "dead": [], "center": [str(v) for v in center],
              "gl_groups": [{"clusters": list(range(r)), "columns": list(S)}]}
        ball = _Ball(_Instance({"problem": pj, "point": ptj}), ev)
        N = ball.N
        if N != r * (d - r) + r * k:
            raise AssertionError("(G3) unknown count")
        xs = sp.symbols(f"xi0:{N}")
        Wx, Ax, pos = [], [], 0
        for l in range(r):
            it = iter(xs[pos:pos + d - r])
            Wx.append([sp.Rational(W[l][t]) if t in S else next(it) for t in range(d)])
            Ax.append(list(xs[pos + d - r:pos + d - r + k]))
            pos += d - r + k
        # V^T H V: the full Hessian in (W, A) composed with the slice's (selection) linear part
        L, gs, Hs, Wf, Af, full, Lf = _slice_and_full_loss(X, Y, am, r, d, k, Wx, Ax, xs)
        sel = []
        for l in range(r):
            sel += [full.index(Wf[l][t]) for t in range(d) if t not in S] + [full.index(Af[l][c]) for c in range(k)]
        pt_ = [v + Fraction(rng.randint(-3, 3), 97) for v in ball.center]
        vals = [sp.Rational(v) for v in pt_]
        valf = []
        for l in range(r):
            it = iter(vals[l * (d - r + k):(l + 1) * (d - r + k)])
            valf.append([sp.Rational(W[l][t]) if t in S else next(it) for t in range(d)] + [next(it) for _ in range(k)])
        valf = [v for row in valf for v in row[:d]] + [v for row in valf for v in row[d:]]   # W, then A
        gf = [Lf.diff(v) for v in full]
        _, _, _, _, F, J = ball.evaluate([_Iv(v) for v in pt_])
        for a in range(N):
            if sp.Rational(F[a].lo) != gs[a](*vals) or F[a].lo != F[a].hi:
                raise AssertionError("(G3) checker F differs from sympy's gradient on the slice")
            for b in range(N):
                h = Hs[a][b](*vals)
                if sp.Rational(J[a][b].lo) != h or J[a][b].lo != J[a][b].hi or gf[sel[a]].diff(full[sel[b]])(*valf) != h:
                    raise AssertionError("(G3) checker J, the slice Hessian and V^T H V differ")
        # the GL identity behind stationarity: grad_{w_l} L . w_l' = a_l . grad_{a_l'} L everywhere
        gW = [[gf[full.index(Wf[l][t])].as_expr() for t in range(d)] for l in range(r)]
        gA = [[gf[full.index(Af[l][c])].as_expr() for c in range(k)] for l in range(r)]
        for l in range(r):
            for l2 in range(r):
                e = sum(gW[l][t] * Wf[l2][t] for t in range(d)) - sum(Af[l][c] * gA[l2][c] for c in range(k))
                if not sp.Poly(e, *full).is_zero:
                    raise AssertionError("(G3) the GL stationarity identity fails")
        done += 1
    return done


def check_linear_block(trials=6) -> int:
    """(G4): r = 3 > d = 2 members, random rational instances through the checker's own code."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from relucert.check.kernel import _Ball, _Instance, _Iv
    rng = random.Random(41)
    d, r = 2, 3
    for k in (2, 3):        # the free block's map A_F -> M_g: determinant +- det(W_F)^k, symbolically
        WF = sp.Matrix(d, d, lambda a, b: sp.Symbol(f"u_{a}{b}", real=True))
        AF = sp.Matrix(d, k, lambda a, b: sp.Symbol(f"c_{a}{b}", real=True))
        Mg = AF.T * WF
        Jac = sp.Matrix([[sp.diff(mv, av) for av in AF] for mv in Mg])
        det = sp.factor(Jac.det())
        if sp.expand(det - WF.det() ** k) != 0 and sp.expand(det + WF.det() ** k) != 0:
            raise AssertionError(f"(G4) det of A_F -> M_g is {det}, not +- det(W_F)^{k}")
    done = 0
    while done < trials:
        k = rng.choice((2, 3))
        n = rng.randint(4, 6)
        am = rng.choice((Fraction(0), Fraction(1, 4)))
        q = lambda: Fraction(rng.randint(-5, 5), rng.randint(1, 3))   # noqa: E731
        X = [[Fraction(rng.choice((-1, 1)) * rng.randint(2, 3)), Fraction(rng.randint(-1, 1))] for _ in range(n)]
        W = [[Fraction(3) + Fraction(rng.randint(-3, 3), 7), Fraction(rng.randint(-3, 3), 7)] for _ in range(r)]
        A = [[q() for _ in range(k)] for _ in range(r)]
        Y = [[q() for _ in range(k)] for _ in range(n)]
        fo = rng.randrange(r)
        free = [l for l in range(r) if l != fo]
        if sp.Matrix([[sp.Rational(v) for v in W[l]] for l in free]).det() == 0:
            continue
        if sp.Matrix([[sp.Rational(v) for v in x] for x in X]).rank() < d:
            continue
        clusters = [{"neurons": [l], "gamma": ["1"], "beta": ["1"],
                     "basis": [[str(Fraction(int(a == b))) for a in range(d)] for b in range(d)],
                     "gauge": list(range(d)), "gauge_value": [str(v) for v in W[l]]} for l in range(r)]
        center = [v for l in free for v in A[l]]
        pj = {"activation": {"alpha_plus": "1", "alpha_minus": str(am)}, "loss": "half_mean",
              "X": [[str(v) for v in row] for row in X], "Y": [[str(v) for v in row] for row in Y]}
        ptj = {"W": [[str(v) for v in row] for row in W], "A": [[str(v) for v in row] for row in A]}
        ev = {"clusters": clusters, "zero": [], "dead": [], "center": [str(v) for v in center],
              "gl_groups": [{"clusters": list(range(r)), "columns": list(range(d)), "fixed_outputs": [fo]}]}
        ball = _Ball(_Instance({"problem": pj, "point": ptj}), ev)
        N = ball.N
        if N != d * k:
            raise AssertionError("(G4) unknown count")
        xs = sp.symbols(f"xi0:{N}")
        Ws = [[sp.Rational(v) for v in w] for w in W]
        Ax = [None] * r
        for i, l in enumerate(free):
            Ax[l] = list(xs[i * k:(i + 1) * k])
        Ax[fo] = [sp.Rational(v) for v in A[fo]]
        L, gs, Hs, Wf, Af, full, Lf = _slice_and_full_loss(X, Y, am, r, d, k, Ws, Ax, xs)
        Xs = [[sp.Rational(v) for v in x] for x in X]
        Ys = [[sp.Rational(v) for v in y] for y in Y]
        gf = [Lf.diff(v) for v in full]
        sel = [full.index(Af[l][c]) for l in free for c in range(k)]
        pt_ = [v + Fraction(rng.randint(-3, 3), 97) for v in ball.center]
        vals = [sp.Rational(v) for v in pt_]

        def fullpoint(xv):
            Av = [None] * r
            for i, l in enumerate(free):
                Av[l] = list(xv[i * k:(i + 1) * k])
            Av[fo] = [sp.Rational(v) for v in A[fo]]
            return [v for w in Ws for v in w] + [v for a in Av for v in a]

        valf = fullpoint(vals)
        _, _, _, _, F, J = ball.evaluate([_Iv(v) for v in pt_])
        for a in range(N):
            if sp.Rational(F[a].lo) != gs[a](*vals) or F[a].lo != F[a].hi:
                raise AssertionError("(G4) checker F differs from sympy's gradient on the block slice")
            for b in range(N):
                h = Hs[a][b](*vals)
                if sp.Rational(J[a][b].lo) != h or J[a][b].lo != J[a][b].hi or gf[sel[a]].diff(full[sel[b]])(*valf) != h:
                    raise AssertionError("(G4) checker J, the slice Hessian and V^T H V differ")
        # the exact zero of F: every gradient of the group vanishes, fixed coordinates included
        Hm = sp.Matrix([[Hs[a][b](*([0] * N)) for b in range(N)] for a in range(N)])
        if Hm.det() == 0:
            continue
        g0 = sp.Matrix([gs[a](*([0] * N)) for a in range(N)])
        zero = list(-(Hm.inv() * g0))
        if any(gs[a](*zero) != 0 for a in range(N)):
            raise AssertionError("(G4) the linear system's solution is not a zero of F")
        fz = fullpoint(zero)
        if any(gv(*fz) != 0 for gv in gf):
            raise AssertionError("(G4) a zero of F on the block slice is not stationary in all of (W_g, A_g)")
        # the local inverse keeps the loss exactly (slopes from the actual signs of each neuron)
        def real_loss(Wv, Av):
            sl = [[sp.Integer(1) if sum(a * b for a, b in zip(w, x)) > 0 else sp.Rational(am) for w in Wv] for x in Xs]
            return _loss(Xs, Ys, sl, Wv, Av)
        Wst = Ws
        Ast = [fz[r * d + l * k:r * d + (l + 1) * k] for l in range(r)]
        WFm = sp.Matrix([Wst[l] for l in free])
        for _ in range(3):
            Wt = [[v + sp.Rational(rng.randint(-9, 9), 400) for v in w] for w in Wst]
            At = [[v + sp.Rational(rng.randint(-9, 9), 400) for v in a] for a in Ast]
            Mt = sum((sp.Matrix(At[l]) * sp.Matrix([Wt[l]]) for l in range(r)), sp.zeros(k, d))
            Rm = Mt - sp.Matrix(Ast[fo]) * sp.Matrix([Wst[fo]])
            AF = WFm.T.inv() * Rm.T
            As = [None] * r
            for i, l in enumerate(free):
                As[l] = list(AF.row(i))
            As[fo] = list(Ast[fo])
            Ms = sum((sp.Matrix(As[l]) * sp.Matrix([Wst[l]]) for l in range(r)), sp.zeros(k, d))
            if Ms != Mt or real_loss(Wt, At) != real_loss(Wst, As):
                raise AssertionError("(G4) the local inverse changes M_g or the loss")
        done += 1
    return done


def prove() -> str:
    check_invariance()
    ts = check_transversality()
    impl = check_checker_J()
    blk = check_linear_block()
    return (f"GL gauge: L(G W, G^-T A) = L on one strict pattern (symbolic G, r = 2, d = 3, k = 2; fails with "
            f"different slopes); differential of (G, slice) -> theta has determinant +- det(C)^r ({ts}); "
            f"checker F, J = sympy gradient, Hessian and V^T H V on the GL slice, and the GL identity "
            f"grad_w L . w' = a . grad_a' L, at {impl} random instances; linear blocks (r = 3 > d = 2): checker F, J = "
            f"gradient and V^T H V on the slice, the zero of F stationary in all of (W_g, A_g), L(s) = L(theta) for "
            f"the local inverse, det(A_F -> M_g) = +- det(W_F)^k, at {blk} random instances")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
