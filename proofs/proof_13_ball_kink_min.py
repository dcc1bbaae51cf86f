"""Proof 13 (local_min ball certificates with data on kinks, docs/theory.md §10.5): the kink pieces.

Statement.  Let alive neuron j of a plain narrow network have independent kink points K_j
(x_p . u_j = 0 at the centre) and basis B_j of their null space.  Complete the parametrisation of
u_j = w_j / gamma_j by kink coordinates zeta_j: u_j = B_j^T theta_j + X_K^T G_K^{-1} zeta_j
(G_K = X_K X_K^T), so that u_j . x_p = zeta_jp for p in K_j.  The full gauge slice S_full fixes
theta_j,t0 = g_j and leaves (free theta, zeta, c) free; the certificate's slice is zeta = 0.  For a
sign vector s over the kink pairs, L_s is the polynomial loss with slope alpha_{s_p} at pair p.

  (K1) at every point of the certificate's slice (zeta = 0, not only at the zero), the checker's
       multipliers (relucert/check/kernel.py::_ball_kink_multipliers) are the one-sided
       derivatives: dL_s/dzeta_p = lambda_p + [s_p = +] gamma_p, for every s;
  (K2) all pieces agree on the slice to second order in the slice directions: L_s - L_s' and its
       first and second derivatives in the slice coordinates xi vanish at zeta = 0 (so the
       checker's J is the xi-Hessian of every piece), and L_s - L_s' lies in the ideal (zeta);
  (K3) S_full is transversal to the rescaling orbits: the map (free theta, zeta, c, lambda) ->
       (lambda gamma u, c / (lambda gamma)) has Jacobian determinant +- g gamma^(d-k)
       det[B; G_K^{-1} X_K] at lambda = 1, a non-zero constant times g (free of the coordinates);
  (K4) the first-order lemma the theorem rests on, on samples: where s_p dL_s/dzeta_p > 0 for all
       p, L_s(xi, zeta) >= L_s(xi, 0) on the piece's region {s_p zeta_p >= 0} near zeta = 0.

Method.  (K1)-(K3) with sympy on random rational instances (d = 3, one or two alive neurons, one or
two kink points, k = 1 or 2, ReLU and leaky slopes, gamma != 1) through the checker's own code;
(K4) by exact rational evaluation of L_s on random points of each region at random xi of instances
whose multipliers are strict.  With (K1)-(K4) and §10.5's argument, a zero xi* of F in the box
with J positive definite on the box and lambda_p < 0 < lambda_p + gamma_p strictly is a local
minimum of L in all of (W, A).
"""
import itertools
import random
import sys
from fractions import Fraction
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import main  # noqa: E402


def _instance(rng):
    """A random instance with kinks: (problem json, point json, evidence, data) or None."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from relucert.check.kernel import _nullspace
    n, d, k, m = rng.randint(5, 7), 3, rng.randint(1, 2), rng.randint(1, 2)
    am = rng.choice((Fraction(0), Fraction(1, 5)))
    X = [[Fraction(rng.randint(-3, 3)) for _ in range(d)] for _ in range(n)]
    if any(not any(x) for x in X):
        return None
    q = lambda: Fraction(rng.randint(-5, 5), rng.randint(1, 3))   # noqa: E731
    Y = [[q() for _ in range(k)] for _ in range(n)]
    clusters, center, W, A, kinks = [], [], [], [], []
    for j in range(m):
        K = sorted(rng.sample(range(n), rng.randint(1, 2)))
        XK = [X[i] for i in K]
        B = _nullspace(XK, d)
        if len(B) != d - len(K):
            return None
        t0 = rng.randrange(len(B))
        th = [q() for _ in B]
        if th[t0] == 0:
            return None
        u = [sum(th[t] * B[t][c] for t in range(len(B))) for c in range(d)]
        zs = [sum(a * b for a, b in zip(u, x)) for x in X]
        if [i for i in range(n) if zs[i] == 0] != K:
            return None
        gam = rng.choice((Fraction(1), Fraction(2), Fraction(1, 3)))
        c = [q() for _ in range(k)]
        W.append([gam * v for v in u])
        A.append([v / gam for v in c])
        clusters.append({"neurons": [j], "gamma": [str(gam)], "beta": ["1"], "basis": [[str(v) for v in r] for r in B],
                         "gauge": t0, "gauge_value": str(th[t0]), "kinks": K})
        center += [th[t] for t in range(len(B)) if t != t0] + c
        kinks.append((K, B, th, t0, gam, c))
    pj = {"activation": {"alpha_plus": "1", "alpha_minus": str(am)}, "loss": "half_mean",
          "X": [[str(v) for v in r] for r in X], "Y": [[str(v) for v in r] for r in Y]}
    ptj = {"W": [[str(v) for v in r] for r in W], "A": [[str(v) for v in r] for r in A]}
    ev = {"clusters": clusters, "zero": [], "dead": [], "center": [str(v) for v in center]}
    return pj, ptj, ev, (n, d, k, m, am, X, Y, kinks)


def _piece_loss(data, TH, ZE, C, signs):
    """L_s in the full slice coordinates: u_j = B_j^T theta_j + X_K^T G^{-1} zeta_j, a_j sigma = c_j s u_j.x."""
    n, d, k, m, am, X, Y, kinks = data
    U = []
    for j, (K, B, _, _, _, _) in enumerate(kinks):
        XK = sp.Matrix([[sp.Rational(v) for v in X[i]] for i in K])
        N = (XK * XK.T).inv() * XK              # rows: u . x_p = zeta_p
        U.append([sum(TH[j][t] * sp.Rational(B[t][q]) for t in range(len(B))) +
                  sum(ZE[j][p] * N[p, q] for p in range(len(K))) for q in range(d)])
    loss = 0
    for i in range(n):
        for cc in range(k):
            f = 0
            for j, (K, _, th0, _, _, _) in enumerate(kinks):
                z = sum(U[j][q] * sp.Rational(X[i][q]) for q in range(d))
                if i in K:
                    slope = 1 if signs[j][K.index(i)] > 0 else sp.Rational(am)
                else:
                    zc = sum(sum(th0[t] * kinks[j][1][t][q] for t in range(len(th0))) * X[i][q] for q in range(d))
                    slope = 1 if zc > 0 else sp.Rational(am)
                f += C[j][cc] * slope * z
            loss += (f - sp.Rational(Y[i][cc])) ** 2
    return loss / (2 * n)


def check_pieces(trials=6) -> tuple:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from relucert.check.kernel import _Ball, _ball_kink_multipliers, _Instance, _Iv
    rng = random.Random(13)
    done = strict_samples = 0
    shapes = set()
    while done < trials:
        got = _instance(rng)
        if got is None:
            continue
        pj, ptj, ev, data = got
        n, d, k, m, am, X, Y, kinks = data
        ball = _Ball(_Instance({"problem": pj, "point": ptj}), ev)
        shapes.add((m, max(len(K) for K, *_ in kinks), k, am != 0))
        # symbolic slice coordinates theta (gauge fixed), zeta, c
        TH, ZE, C, xi_syms, zeta_syms = [], [], [], [], []
        for j, (K, B, th, t0, gam, c) in enumerate(kinks):
            row = []
            for t in range(len(B)):
                if t == t0:
                    row.append(sp.Rational(th[t0]))
                else:
                    s = sp.Symbol(f"th_{j}{t}", real=True)
                    row.append(s)
                    xi_syms.append(s)
            TH.append(row)
            cs = [sp.Symbol(f"c_{j}{cc}", real=True) for cc in range(k)]
            C.append(cs)
            xi_syms += cs
            zs = [sp.Symbol(f"zeta_{j}{p}", real=True) for p in range(len(K))]
            ZE.append(zs)
            zeta_syms += zs
        # a random slice point (not a zero of F): xi in the checker's order
        xi_val = [Fraction(rng.randint(-9, 9), rng.randint(1, 4)) for _ in range(ball.N)]
        sub_xi = dict(zip(xi_syms, [sp.Rational(v) for v in xi_val]))
        sub_0 = {z: 0 for z in zeta_syms}
        _, Cv, _, Ev, _, Jv = ball.evaluate([_Iv(v) for v in xi_val])
        mult = [_ball_kink_multipliers(ball, g, Cv, Ev) for g in range(len(kinks))]
        pieces = {}
        for signs in itertools.product(*[list(itertools.product((1, -1), repeat=len(K))) for K, *_ in kinks]):
            Ls = sp.expand(_piece_loss(data, TH, ZE, C, signs))
            pieces[signs] = Ls
            # (K1)
            for g, (K, *_rest) in enumerate(kinks):
                lam, gm = mult[g]
                for p in range(len(K)):
                    dz = sp.diff(Ls, ZE[g][p]).subs(sub_0).subs(sub_xi)
                    want = lam[p].lo + (gm[p].lo if signs[g][p] > 0 else 0)
                    if lam[p].lo != lam[p].hi or sp.Rational(want) != dz:
                        raise AssertionError("(K1) checker multipliers differ from the one-sided derivative")
            # (K2) through the checker's J: the xi-Hessian of the piece at zeta = 0
            H = sp.hessian(Ls.subs(sub_0), xi_syms).subs(sub_xi)
            for a in range(ball.N):
                for b in range(ball.N):
                    if sp.Rational(Jv[a][b].lo) != H[a, b]:
                        raise AssertionError("(K2) checker J differs from the piece's Hessian on the slice")
        base = next(iter(pieces.values()))
        for Ls in pieces.values():
            diff = sp.expand(Ls - base)
            if diff.subs(sub_0) != 0:
                raise AssertionError("(K2) pieces differ on the slice")
            for x in xi_syms:
                if sp.expand(sp.diff(diff, x).subs(sub_0)) != 0:
                    raise AssertionError("(K2) pieces' slice gradients differ")
            # in the ideal (zeta): every monomial of the difference contains some zeta
            if any(all(sp.degree(mon, z) == 0 for z in zeta_syms) for mon in sp.Add.make_args(diff)):
                raise AssertionError("(K2) difference of pieces not in the ideal (zeta)")
        # (K3) transversality of the full slice (one neuron at a time: the map is block diagonal)
        for j, (K, B, th, t0, gam, c) in enumerate(kinks):
            lam_s = sp.Symbol("lam", positive=True)
            XK = sp.Matrix([[sp.Rational(v) for v in X[i]] for i in K])
            N = (XK * XK.T).inv() * XK
            u = [sum(TH[j][t] * sp.Rational(B[t][q]) for t in range(len(B))) +
                 sum(ZE[j][p] * N[p, q] for p in range(len(K))) for q in range(d)]
            outs = [lam_s * sp.Rational(gam) * v for v in u] + [cc / (lam_s * sp.Rational(gam)) for cc in C[j]]
            ins = [s for s in TH[j] if isinstance(s, sp.Symbol)] + list(ZE[j]) + list(C[j]) + [lam_s]
            Jm = sp.Matrix([[sp.diff(o, v) for v in ins] for o in outs]).subs(lam_s, 1)
            det = sp.simplify(Jm.det())
            Mb = sp.Matrix([[sp.Rational(v) for v in r] for r in B]).col_join(N)
            expect = sp.Rational(th[t0]) * sp.Rational(gam) ** (d - k) * Mb.det()
            if sp.simplify(det - expect) != 0 and sp.simplify(det + expect) != 0:
                raise AssertionError(f"(K3) det = {det}, not +- g gamma^(d-k) det[B; N] = {expect}")
            if expect == 0:
                raise AssertionError("(K3) degenerate full slice")
        # (K4) sampled first-order lemma on the regions where every multiplier is strict at xi
        for signs, Ls in pieces.items():
            ok = all((mult[g][0][p].lo + (mult[g][1][p].lo if signs[g][p] > 0 else 0)) * signs[g][p] > Fraction(1, 100)
                     for g, (K, *_r) in enumerate(kinks) for p in range(len(K)))
            if not ok:
                continue
            f = sp.lambdify(zeta_syms, Ls.subs(sub_xi), "sympy")
            L0 = f(*[0] * len(zeta_syms))
            flat = [signs[g][p] for g, (K, *_r) in enumerate(kinks) for p in range(len(K))]
            for _ in range(20):
                z = [sp.Rational(sg * rng.randint(0, 50), 10 ** rng.randint(7, 11)) for sg in flat]
                if f(*z) < L0:
                    raise AssertionError("(K4) a piece drops below the slice off the kink with strict multipliers")
                strict_samples += 1
        done += 1
    # the sample must contain two alive neurons, two kink points on one neuron, ReLU and leaky slopes
    if not any(a == 2 for a, _, _, _ in shapes) or not any(b == 2 for _, b, _, _ in shapes) \
            or not any(lk for *_, lk in shapes) or not any(not lk for *_, lk in shapes):
        raise AssertionError(f"(K1)-(K4): the random sample misses a shape it should cover: {sorted(shapes)}")
    return done, strict_samples


def prove() -> str:
    done, samples = check_pieces()
    return (f"kink pieces on {done} random instances through the checker's code: multipliers = one-sided "
            f"derivatives of every piece, pieces agree on the slice to second order (checker J = each piece's "
            f"Hessian, difference in the ideal (zeta)), full-slice transversality det = +- g gamma^(d-k) det[B; N]; "
            f"first-order lemma on {samples} sampled region points")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
