"""Proof 11 (second-order decision at kinks, docs/second_order_kinks.md): the identities the piece-wise
test relies on.

Statement.  Let theta be a point, the kink pairs (i, j) those with x_i != 0 and z_ij = w_j . x_i = 0,
and s a choice of slope s_ij in {alpha_+, alpha_-} for every kink pair (the other pairs keep
s_ij = sigma'(z_ij)).  On the closed cone where each kink pair moves to the side of its slope, and near
0, the loss is the polynomial
        L_s(Delta) = (1/2n) sum_i | sum_j (a_j + da_j) s_ij (z_ij + dw_j . x_i) (+ c + dc) - y_i |^2
(z_ij = 0 on the kink pairs).  Then

  (K1) the Hessian of L_s at 0 is (1/n) sum_i [J_i^T J_i + sum_c e_ic d^2 f_c] with df_c/da_jc = s_ij z_ij,
       df_c/dw_jq = a_jc s_ij x_iq (df_c/dc_c = 1) and d^2 f_c / da_jc dw_jq = s_ij x_iq: the formula of
       core/hessian.py::hessian(kink_slopes=...) and check/reference.py::hessian(kink_slopes=...);
  (K2) its gradient at 0 is (b_{s,j} = (1/n) sum_i s_ij (a_j . e_i) x_i for w_j, G_j for a_j, e_bar for c),
       so with G_j = 0, e_bar = 0 and b_{s,j} = sum_g mu_g s_g nu_g:  grad L_s . Delta =
       sum_j sum_g mu_g (s_g nu_g . dw_j) (>= 0 on the cone when mu >= 0);
  (K3) L_s depends on dw_j only through the numbers s_ij (x_i . dw_j): its derivative along any dw_j
       orthogonal to every x_i with s_ij != 0 vanishes identically (the "seen" reduction);
  (K4) rescaling: L_s is invariant under (w_j, a_j) -> (lambda w_j, a_j / lambda), lambda > 0, and the
       slice function phi(lambda) = <lambda w' - w, w> - <a'/lambda - a, a> has phi'(1) = |w|^2 + |a|^2 at
       (w', a') = (w, a): the implicit-function step of the slice argument;
  (K5) the ray polynomial of docs/theory.md §2 along a Delta in the piece has c1 = grad L_s . Delta and
       c2 = Delta^T H_s Delta / 2;
  (K6) a lifted neuron (a_j = 0, sigma(z_ij) = 0) whose output is written r_i = s_ij beta x_i: the
       Hessian of the loss in (Delta, beta) has the beta-blocks (1/n) J^T J_beta and (1/n) J_beta^T J_beta
       (kinks.augmented, the checker's augmented matrix), and the beta-gradient is (1/n) sum_i s_ij e_i x_i^T.

Method.  (K1)-(K5) as polynomial identities with free symbols (inputs, weights, targets, slopes, the
direction; z_ij replaced by 0 on the chosen kink pairs) for small shapes; then the two Hessian
implementations are compared with sympy's Hessian of L_s, and the engine's ray polynomial with
(K5), at random rational points that really have data on kinks.
"""
import random
import sys
from fractions import Fraction
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import main  # noqa: E402


def piece_loss(n, d, m, k, kinks, bias):
    X = [[sp.Symbol(f"x_{i}{q}", real=True) for q in range(d)] for i in range(n)]
    Y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    W = [[sp.Symbol(f"w_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    A = [[sp.Symbol(f"a_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    S = [[sp.Symbol(f"s_{i}{j}", real=True) for j in range(m)] for i in range(n)]
    C = [sp.Symbol(f"c_{c}", real=True) for c in range(k)] if bias else None
    dW = [[sp.Symbol(f"dw_{j}{q}", real=True) for q in range(d)] for j in range(m)]
    dA = [[sp.Symbol(f"da_{j}{c}", real=True) for c in range(k)] for j in range(m)]
    dC = [sp.Symbol(f"dc_{c}", real=True) for c in range(k)] if bias else None
    Z = [[(0 if (i, j) in kinks else sum(W[j][q] * X[i][q] for q in range(d))) for j in range(m)] for i in range(n)]

    def residuals(tau):
        E = []
        for i in range(n):
            row = []
            for c in range(k):
                f = sum((A[j][c] + tau * dA[j][c]) * S[i][j] *
                        (Z[i][j] + tau * sum(dW[j][q] * X[i][q] for q in range(d))) for j in range(m))
                if bias:
                    f += C[c] + tau * dC[c]
                row.append(f - Y[i][c])
            E.append(row)
        return E
    return X, Y, W, A, S, C, dW, dA, dC, Z, residuals


def _taylor(poly, delta):
    """(Hessian, gradient) at delta = 0 of a polynomial in delta, from its coefficients."""
    P = len(delta)
    hess = [[sp.Integer(0)] * P for _ in range(P)]
    grad = [sp.Integer(0)] * P
    for mon, coef in poly.terms():
        deg = sum(mon)
        idx = [p for p, e in enumerate(mon) for _ in range(e)]
        if deg == 1:
            grad[idx[0]] += coef
        elif deg == 2:
            p1, p2 = idx
            if p1 == p2:
                hess[p1][p1] += 2 * coef
            else:
                hess[p1][p2] += coef
                hess[p2][p1] += coef
    return hess, grad


def check_shape(n, d, m, k, kinks, bias) -> None:
    X, Y, W, A, S, C, dW, dA, dC, Z, residuals = piece_loss(n, d, m, k, kinks, bias)
    tau = sp.Symbol("tau")
    delta = [v for r in dW for v in r] + [v for r in dA for v in r] + (list(dC) if bias else [])
    P = len(delta)
    E0 = residuals(0)
    Lt = sp.expand(sum(e ** 2 for r in residuals(tau) for e in r) / (2 * n))
    # L_s as a polynomial in the direction: substitute tau = 1 and differentiate at delta = 0
    L1 = Lt.subs(tau, 1)
    wi = lambda j, q: j * d + q            # noqa: E731
    ai = lambda j, c: m * d + j * k + c    # noqa: E731
    ci = lambda c: m * (d + k) + c         # noqa: E731
    # (K1)
    Hf = [[sp.Integer(0)] * P for _ in range(P)]
    for i in range(n):
        for c in range(k):
            J = [sp.Integer(0)] * P
            if bias:
                J[ci(c)] = sp.Integer(1)
            for j in range(m):
                J[ai(j, c)] = S[i][j] * Z[i][j]
                for q in range(d):
                    J[wi(j, q)] = A[j][c] * S[i][j] * X[i][q]
            for p1 in range(P):
                for p2 in range(P):
                    Hf[p1][p2] += J[p1] * J[p2] / n
            for j in range(m):
                for q in range(d):
                    Hf[ai(j, c)][wi(j, q)] += E0[i][c] * S[i][j] * X[i][q] / n
                    Hf[wi(j, q)][ai(j, c)] += E0[i][c] * S[i][j] * X[i][q] / n
    poly = sp.Poly(L1, *delta)
    hess, grad = _taylor(poly, delta)
    for p1 in range(P):
        for p2 in range(P):
            if sp.expand(hess[p1][p2] - Hf[p1][p2]) != 0:
                raise AssertionError(f"(K1) entry ({p1},{p2}) differs, shape {(n, d, m, k)} kinks {kinks}")
    # (K2)
    for j in range(m):
        for q in range(d):
            b = sum(S[i][j] * sum(A[j][c] * E0[i][c] for c in range(k)) * X[i][q] for i in range(n)) / n
            if sp.expand(grad[wi(j, q)] - b) != 0:
                raise AssertionError("(K2) w-gradient")
        for c in range(k):
            G = sum(E0[i][c] * S[i][j] * Z[i][j] for i in range(n)) / n
            if sp.expand(grad[ai(j, c)] - G) != 0:
                raise AssertionError("(K2) a-gradient")
    if bias:
        for c in range(k):
            if sp.expand(grad[ci(c)] - sum(E0[i][c] for i in range(n)) / n) != 0:
                raise AssertionError("(K2) c-gradient")
    # (K3): a direction r with s_ij (x_i . r) = 0 for all i does not change L_s (here: s_ij = 0 for
    # every i except a chosen i0, r orthogonal to x_i0 -- the derivative along r vanishes)
    if d >= 2:
        i0, j0 = 0, 0
        sub0 = {S[i][j0]: 0 for i in range(n) if i != i0}
        r = [X[i0][1], -X[i0][0]] + [0] * (d - 2)
        deriv = sum(sp.diff(L1, dW[j0][q]) * r[q] for q in range(d))
        if sp.expand(deriv.subs(sub0)) != 0:
            raise AssertionError("(K3) unseen direction changes L_s")
    # (K5): c1, c2 of the ray tau -> L_s(tau Delta)
    c1 = sp.expand(sp.diff(Lt, tau).subs(tau, 0))
    c2 = sp.expand(sp.diff(Lt, tau, 2).subs(tau, 0) / 2)
    g = grad
    if sp.expand(c1 - sum(gv * v for gv, v in zip(g, delta))) != 0:
        raise AssertionError("(K5) c1")
    quad = sum(Hf[p1][p2] * delta[p1] * delta[p2] for p1 in range(P) for p2 in range(P)) / 2
    if sp.expand(c2 - quad) != 0:
        raise AssertionError("(K5) c2")


def check_lift(n=2, d=2, k=2) -> None:
    """(K6) a lifted neuron: with r_i = s_i beta x_i (beta a k x d matrix, s_i its slopes on the piece)
    added to the residuals of one other neuron moving by (dw, da), the Hessian at 0 in (dw, da, beta)
    is [[H, (1/n) J^T J_beta], [., (1/n) J_beta^T J_beta]] with J_beta[(i,c), (c',q)] = [c = c'] s_i x_iq,
    and the beta-gradient is (1/n) sum_i s_i e_i x_i^T (zero when D_j = 0 on the piece)."""
    X = [[sp.Symbol(f"x_{i}{q}", real=True) for q in range(d)] for i in range(n)]
    Y = [[sp.Symbol(f"y_{i}{c}", real=True) for c in range(k)] for i in range(n)]
    w = [sp.Symbol(f"w_{q}", real=True) for q in range(d)]
    a = [sp.Symbol(f"a_{c}", real=True) for c in range(k)]
    S = [sp.Symbol(f"s_{i}", real=True) for i in range(n)]          # the other neuron's slopes
    T = [sp.Symbol(f"t_{i}", real=True) for i in range(n)]          # the lifted neuron's slopes
    dw = [sp.Symbol(f"dw_{q}", real=True) for q in range(d)]
    da = [sp.Symbol(f"da_{c}", real=True) for c in range(k)]
    beta = [[sp.Symbol(f"b_{c}{q}", real=True) for q in range(d)] for c in range(k)]
    var = dw + da + [v for r in beta for v in r]
    P = len(var)
    E0 = [[a[c] * S[i] * sum(w[q] * X[i][q] for q in range(d)) - Y[i][c] for c in range(k)] for i in range(n)]
    L = 0
    for i in range(n):
        for c in range(k):
            f = (a[c] + da[c]) * S[i] * sum((w[q] + dw[q]) * X[i][q] for q in range(d))
            f += T[i] * sum(beta[c][q] * X[i][q] for q in range(d))
            L += (f - Y[i][c]) ** 2
    hess, grad = _taylor(sp.Poly(sp.expand(L / (2 * n)), *var), var)
    J = [[sp.Integer(0)] * P for _ in range(n * k)]
    for i in range(n):
        for c in range(k):
            row = J[i * k + c]
            for q in range(d):
                row[q] = a[c] * S[i] * X[i][q]
                row[d + k + c * d + q] = T[i] * X[i][q]
            row[d + c] = S[i] * sum(w[q] * X[i][q] for q in range(d))
    for p1 in range(d + k, P):
        for p2 in range(P):
            want = sum(J[r][p1] * J[r][p2] for r in range(n * k)) / n
            if sp.expand(hess[p1][p2] - want) != 0:
                raise AssertionError(f"(K6) augmented Hessian entry ({p1},{p2})")
    for c in range(k):
        for q in range(d):
            want = sum(T[i] * E0[i][c] * X[i][q] for i in range(n)) / n
            if sp.expand(grad[d + k + c * d + q] - want) != 0:
                raise AssertionError("(K6) beta-gradient")


def check_rescaling() -> None:
    """(K4) for one neuron: sigma is positively homogeneous on each side, so each term
    (a/lambda) s (lambda z) = a s z; and the slice derivative."""
    lam = sp.Symbol("lam", positive=True)
    a, s, z = sp.symbols("a s z", real=True)
    if sp.simplify((a / lam) * s * (lam * z) - a * s * z) != 0:
        raise AssertionError("(K4) invariance")
    w = sp.symbols("w0:3", real=True)
    av = sp.symbols("b0:2", real=True)
    phi = sum((lam * wq - wq) * wq for wq in w) - sum((ac / lam - ac) * ac for ac in av)
    if sp.simplify(sp.diff(phi, lam).subs(lam, 1) - (sum(v ** 2 for v in w) + sum(v ** 2 for v in av))) != 0:
        raise AssertionError("(K4) slice derivative")


def check_implementations(trials=12) -> int:
    """core/hessian.py and check/reference.py with kink slopes = sympy's Hessian of L_s; the engine's
    ray polynomial c2 = Delta^T H_s Delta / 2 for Delta inside the piece."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np
    from flint import fmpq
    from relucert.check.reference import hessian as ref_hessian, preactivations, residuals
    from relucert.core.formulas import ExactState, ray_coefficients
    from relucert.core.hessian import hessian, kink_pairs
    from relucert.core.problem import Point, Problem
    rng = random.Random(11)
    done = 0
    while done < trials:
        n, d, m, k = rng.randint(2, 4), 2, rng.randint(1, 2), rng.randint(1, 2)
        ap, am = rng.choice([(1, 0), (1, Fraction(1, 10)), (1, -1), (Fraction(1, 2), 2)])
        q = lambda: Fraction(rng.randint(-4, 4), rng.randint(1, 3))   # noqa: E731
        W = [[q() for _ in range(d)] for _ in range(m)]
        if any(all(v == 0 for v in w) for w in W):
            continue
        X = []
        for i in range(n):
            if i < 2:                        # on the kink of a neuron: x orthogonal to w_j
                w = W[rng.randrange(m)]
                t = q() or Fraction(1)
                X.append([-t * w[1], t * w[0]])
            else:
                X.append([q(), q()])
        A = [[q() for _ in range(k)] for _ in range(m)]
        Y = [[q() for _ in range(k)] for _ in range(n)]
        bias = rng.random() < 0.3
        cvec = [q() for _ in range(k)] if bias else None
        pb = Problem.make([[str(v) for v in r] for r in X], [[str(v) for v in r] for r in Y],
                          {"alpha_plus": str(ap), "alpha_minus": str(am)})
        pt = Point.make([[str(v) for v in r] for r in W], [[str(v) for v in r] for r in A], pb,
                        c=None if cvec is None else [str(v) for v in cvec])
        pairs = kink_pairs(pb, pt)
        if not pairs:
            continue
        fq = lambda v: fmpq(Fraction(v).numerator, Fraction(v).denominator)   # noqa: E731
        slopes = {p: (fq(ap) if rng.random() < 0.5 else fq(am)) for p in pairs}
        Hm = hessian(pb, pt, kink_slopes=slopes)
        Z = preactivations(X, W)
        E = residuals(X, Y, W, A, Fraction(ap), Fraction(am), cvec)
        Hr = ref_hessian(X, Z, E, A, Fraction(ap), Fraction(am), output_bias=bias,
                         kink_slopes={p: Fraction(int(v.p), int(v.q)) for p, v in slopes.items()})
        # sympy: L_s at the point, in the direction symbols
        Ssl = [[(slopes[(i, j)] if (i, j) in slopes else (ap if Z[i][j] > 0 else am)) for j in range(m)]
               for i in range(n)]
        dW = [[sp.Symbol(f"dw_{j}{t}") for t in range(d)] for j in range(m)]
        dA = [[sp.Symbol(f"da_{j}{c}") for c in range(k)] for j in range(m)]
        dC = [sp.Symbol(f"dc_{c}") for c in range(k)] if bias else []
        delta = [v for r in dW for v in r] + [v for r in dA for v in r] + dC
        R = sp.Rational
        L = 0
        for i in range(n):
            for c in range(k):
                f = sum((R(A[j][c]) + dA[j][c]) * R(Ssl[i][j]) *
                        (R(Z[i][j]) + sum(dW[j][t] * R(X[i][t]) for t in range(d))) for j in range(m))
                if bias:
                    f += R(cvec[c]) + dC[c]
                L += (f - R(Y[i][c])) ** 2
        hess, _ = _taylor(sp.Poly(sp.expand(L / (2 * n)), *delta), delta)
        for p1 in range(len(delta)):
            for p2 in range(len(delta)):
                ref = sp.Rational(hess[p1][p2])
                if Fraction(int(ref.p), int(ref.q)) != Hr[p1][p2] or fmpq(int(ref.p), int(ref.q)) != Hm[p1][p2]:
                    raise AssertionError(f"implementation piece Hessian entry ({p1},{p2}) differs from sympy")
        # (K5) for a direction inside the piece: kink pairs move to their slope's side strictly
        for _ in range(5):
            v = [Fraction(rng.randint(-3, 3), rng.randint(1, 2)) for _ in delta]
            inside = True
            for (i, j), s in slopes.items():
                dz = sum(v[j * d + t] * X[i][t] for t in range(d))
                side = s == fq(ap)
                if not ((dz > 0) == side and dz != 0):
                    inside = False
            if not inside:
                continue
            st = ExactState(pb, pt)
            dWn = np.array([[fq(v[j * d + t]) for t in range(d)] for j in range(m)], dtype=object)
            dAn = np.array([[fq(v[m * d + j * k + c]) for c in range(k)] for j in range(m)], dtype=object)
            dc = [fq(v[m * (d + k) + c]) for c in range(k)] if bias else None
            c1, c2, c3, c4, _ = ray_coefficients(pb.X, st.fw.E, st.fw.Z, None, pt.W, pt.A, dWn, dAn,
                                                 st.ap, st.am, dc=dc)
            vq = [fq(x) for x in v]
            qf = sum((vq[a] * Hm[a][b] * vq[b] for a in range(len(v)) for b in range(len(v))), fmpq(0))
            if c2 != qf / 2:
                raise AssertionError("(K5) engine ray polynomial c2 != Delta^T H_s Delta / 2 inside the piece")
        done += 1
    return done


def prove() -> str:
    cases = []
    for n, d, m, k, bias in [(1, 1, 1, 1, False), (2, 1, 1, 2, True), (1, 2, 2, 1, False), (2, 2, 1, 1, True),
                             (2, 2, 2, 1, False), (1, 2, 1, 2, True), (2, 1, 2, 2, False)]:
        kinks = {(0, 0)} if n * m > 1 else set()
        cases.append((n, d, m, k, kinks, bias))
    for case in cases:
        check_shape(*case)
    check_rescaling()
    check_lift()
    impl = check_implementations()
    return (f"kink pieces: Hessian of L_s = (1/n) sum (J^T J + e . d^2 f) with the kink slopes, gradient "
            f"(b_s, G, e_bar), unseen directions flat, rescaling invariance and slice derivative |w|^2+|a|^2, "
            f"c1 = grad . Delta and c2 = Delta^T H_s Delta / 2, the lifted beta-blocks: {len(cases)} shapes n,d,m,k <= 2 (some with an output bias) with free "
            f"slopes (one data point on a kink); core and reference piece Hessians = sympy at {impl} random rational kink points")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
