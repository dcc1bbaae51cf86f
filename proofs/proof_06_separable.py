"""Proof 6 (docs/theory.md §3): the separable-case criterion for phi_j >= 0.

Statement.  Let phi(r) = b . r + sum_p gamma_p max(0, nu_p . r) with linearly independent normals
nu_1..nu_P in R^d.  Then phi(r) >= 0 for every r  iff  (i) gamma_p >= 0 for every p and
(ii) b = - sum_p s_p gamma_p nu_p for some s_p in [0, 1].

Method (symbolic in b, gamma and the normals, for (d, P) = (1,1), (2,1), (2,2), (3,1), (3,2), (3,3)
— one and two (and three) independent kinks; exact rational-function arithmetic in QQ(b, gamma, nu),
under the hypothesis det(N N^T) != 0, which is independence):
  Dual directions.  With N the P x d matrix of normals, M = N N^T, mu = M^{-1} N b,
  b_perp = b - N^T mu and rho_p = N^T M^{-1} e_p we verify the identities nu_q . rho_p = [p = q],
  nu_q . b_perp = 0, b . rho_p = mu_p and b . b_perp = |b_perp|^2.
  (=>)  Evaluating phi (sympy evaluates each max once its argument is a verified constant):
  phi(-b_perp) = -|b_perp|^2, phi(rho_p) = mu_p + gamma_p, phi(-rho_p) = -mu_p.  So phi >= 0 forces
  b_perp = 0 (b = N^T mu = sum mu_p nu_p), mu_p <= 0 and mu_p + gamma_p >= 0.  The general
  solution of those two inequalities is mu = -u, gamma = u + v with u, v >= 0: then gamma >= 0,
  and s = u/(u+v) (s = 0 if u + v = 0) lies in [0, 1] with mu = -s gamma — all decided by sympy's
  assumptions.  Hence (i) and (ii).
  (<=)  max(0, t) - max(0, -t) = t (checked for t > 0, < 0, = 0) turns
  phi(r) into sum_p gamma_p [(1 - s_p) max(0, t_p) + s_p max(0, -t_p)], t_p = nu_p . r — an
  identity checked exactly — a sum of products of nonnegative factors (sympy: nonnegative).
Also checked: the merging rules of docs/theory.md §3 for parallel kinks (max(0, lam u) = lam max(0, u) for
lam > 0, = |lam| (max(0, u) - u) for lam < 0), the 1-D equivalence once more with z3 (quantified,
exact), and that independence is needed: 5 max(0,r1) + 5 max(0,r2) - max(0,r1+r2) >= 0 (z3) although
gamma_3 = -1 < 0.
"""
import sys
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lemmas import assert_ring_zero, assert_true, field_of, main  # noqa: E402

SHAPES = [(1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3)]


def max_lemmas() -> None:
    p = sp.Symbol("p", positive=True)
    lam = sp.Symbol("lam", positive=True)
    for t in (p, -p, sp.Integer(0)):
        if sp.Max(0, t) - sp.Max(0, -t) - t != 0:
            raise AssertionError(f"max(0,t) - max(0,-t) = t fails for t = {t}")
        if sp.Max(0, lam * t) - lam * sp.Max(0, t) != 0:
            raise AssertionError("max(0, lam u) = lam max(0, u), lam > 0")
        if sp.expand(sp.Max(0, -lam * t) - lam * (sp.Max(0, t) - t)) != 0:
            raise AssertionError("max(0, -lam u) = lam (max(0, u) - u), lam > 0")
    x = sp.Symbol("x", real=True)
    assert_true(sp.Max(0, x).is_nonnegative, "max(0, x) >= 0")


def one_dim_lemma() -> None:
    """(mu <= 0 and mu + gamma >= 0)  <=>  (gamma >= 0 and mu = -s gamma for some s in [0, 1])."""
    u = sp.Symbol("u", nonnegative=True)
    v = sp.Symbol("v", nonnegative=True)
    mu, gamma = -u, u + v            # general solution of mu <= 0, mu + gamma >= 0
    assert_true(gamma.is_nonnegative, "gamma >= 0")
    up = sp.Symbol("u", positive=True)          # case u + v > 0 (take u > 0 or v > 0; both covered)
    for uu, vv in ((up, v), (u, sp.Symbol("v", positive=True))):
        s = uu / (uu + vv)
        assert_true(s.is_nonnegative, "s >= 0")
        assert_true(sp.together(1 - s).is_nonnegative, "s <= 1")
        if sp.cancel(-s * (uu + vv) - (-uu)) != 0:
            raise AssertionError("mu = -s gamma")
    # case u = v = 0: mu = gamma = 0 and s = 0 works
    # converse: gamma >= 0, s in [0, 1] (s and 1 - s nonnegative) -> mu <= 0 and mu + gamma >= 0
    g = sp.Symbol("g", nonnegative=True)
    s_, sbar = sp.Symbol("s", nonnegative=True), sp.Symbol("sbar", nonnegative=True)
    assert_true((-(-s_ * g)).is_nonnegative, "-mu >= 0")
    assert_true((sbar * g).is_nonnegative, "mu + gamma = (1 - s) gamma >= 0")
    # and once more with z3 (exact, quantified)
    try:
        import z3
    except ImportError:  # pragma: no cover - z3-solver is a dependency
        return
    m_, g_, s3 = z3.Reals("mu gamma s")
    lhs = z3.And(m_ <= 0, m_ + g_ >= 0)
    rhs = z3.And(g_ >= 0, z3.Exists([s3], z3.And(s3 >= 0, s3 <= 1, m_ == -s3 * g_)))
    sol = z3.Solver()
    sol.set("timeout", 20000)
    sol.add(z3.Not(lhs == rhs))
    res = sol.check()
    if res != z3.unsat:
        raise AssertionError(f"z3 could not confirm the 1-D lemma ({res})")


def dependent_example() -> None:
    import z3
    r1, r2 = z3.Reals("r1 r2")

    def mx(t):
        return z3.If(t > 0, t, 0)

    sol = z3.Solver()
    sol.add(5 * mx(r1) + 5 * mx(r2) - mx(r1 + r2) < 0)
    if sol.check() != z3.unsat:
        raise AssertionError("docs/theory.md example 5max(0,r1)+5max(0,r2)-max(0,r1+r2) >= 0 not confirmed")


def separable(d: int, P: int) -> None:
    nu = [[sp.Symbol(f"nu_{p}{q}", real=True) for q in range(d)] for p in range(P)]
    b = [sp.Symbol(f"b_{q}", real=True) for q in range(d)]
    gam = [sp.Symbol(f"gamma_{p}", real=True) for p in range(P)]
    F, conv = field_of([v for row in nu for v in row] + b + gam)
    N = [[F(v) for v in row] for row in nu]
    B = [F(v) for v in b]
    Gm = [F(v) for v in gam]

    def dot(u, v):
        return sum((x * y for x, y in zip(u, v)), F(0))

    # Gram matrix and its inverse (adjugate / det) in QQ(nu)
    Msym = sp.Matrix(P, P, lambda p, q: sp.Add(*[nu[p][c] * nu[q][c] for c in range(d)]))
    det = F(Msym.det())
    if det == 0:
        raise AssertionError("Gram determinant vanishes identically")
    adj = Msym.adjugate()
    Minv = [[F(adj[p, q]) / det for q in range(P)] for p in range(P)]
    Nb = [dot(N[p], B) for p in range(P)]
    mu = [sum((Minv[p][q] * Nb[q] for q in range(P)), F(0)) for p in range(P)]
    b_par = [sum((mu[p] * N[p][c] for p in range(P)), F(0)) for c in range(d)]
    b_perp = [B[c] - b_par[c] for c in range(d)]
    rho = [[sum((N[q][c] * Minv[q][p] for q in range(P)), F(0)) for c in range(d)] for p in range(P)]
    for q in range(P):
        assert_ring_zero(dot(N[q], b_perp), f"nu_{q} . b_perp = 0 (d={d}, P={P})")
        for p in range(P):
            assert_ring_zero(dot(N[q], rho[p]) - (1 if p == q else 0), f"nu_{q} . rho_{p} = [p=q]")
    for p in range(P):
        assert_ring_zero(dot(B, rho[p]) - mu[p], "b . rho_p = mu_p")
    assert_ring_zero(dot(B, b_perp) - dot(b_perp, b_perp), "b . b_perp = |b_perp|^2")

    def phi_at(r):
        """phi(r) with every max evaluated by sympy: its argument must be a verified constant."""
        val = dot(B, r)
        for p in range(P):
            t = dot(N[p], r)
            if not t.numer.is_ground or not t.denom.is_ground:
                raise AssertionError("a hinge argument at a witness direction is not constant")
            tc = sp.sympify(t.as_expr())
            val += Gm[p] * F(sp.Max(0, tc))
        return val

    # (=>): the witness directions
    assert_ring_zero(phi_at([-v for v in b_perp]) + dot(b_perp, b_perp), "phi(-b_perp) = -|b_perp|^2")
    for p in range(P):
        assert_ring_zero(phi_at(rho[p]) - (mu[p] + Gm[p]), "phi(rho_p) = mu_p + gamma_p")
        assert_ring_zero(phi_at([-v for v in rho[p]]) + mu[p], "phi(-rho_p) = -mu_p")

    # (<=): b = -sum s_p gamma_p nu_p  ->  phi = sum gamma_p [(1-s_p) M+_p + s_p M-_p] >= 0
    r = [sp.Symbol(f"r_{q}", real=True) for q in range(d)]
    s = [sp.Symbol(f"s_{p}", nonnegative=True) for p in range(P)]
    sbar = [sp.Symbol(f"sbar_{p}", nonnegative=True) for p in range(P)]   # sbar = 1 - s
    Mp = [sp.Symbol(f"Mplus_{p}", nonnegative=True) for p in range(P)]   # max(0, t_p)
    Mm = [sp.Symbol(f"Mminus_{p}", nonnegative=True) for p in range(P)]  # max(0, -t_p)
    g = [sp.Symbol(f"g_{p}", nonnegative=True) for p in range(P)]        # gamma_p >= 0
    t = [sp.Add(*[nu[p][c] * r[c] for c in range(d)]) for p in range(P)]
    bb = [-sp.Add(*[s[p] * g[p] * nu[p][c] for p in range(P)]) for c in range(d)]
    phi = sp.Add(*[bb[c] * r[c] for c in range(d)]) + sp.Add(*[g[p] * Mp[p] for p in range(P)])
    target = sp.Add(*[g[p] * (sbar[p] * Mp[p] + s[p] * Mm[p]) for p in range(P)])
    # use Mm = Mp - t (lemma) and sbar = 1 - s
    diff = (phi - target).subs({**{Mm[p]: Mp[p] - t[p] for p in range(P)}, **{sbar[p]: 1 - s[p] for p in range(P)}})
    if sp.expand(diff) != 0:
        raise AssertionError(f"phi = sum gamma_p[(1-s_p)max(0,t_p) + s_p max(0,-t_p)] fails (d={d}, P={P})")
    assert_true(target.is_nonnegative, "sum of products of nonnegative factors is nonnegative")


def prove() -> str:
    max_lemmas()
    one_dim_lemma()
    dependent_example()
    for d, P in SHAPES:
        separable(d, P)
    return ("phi >= 0 <=> gamma_p >= 0 and b = -sum s_p gamma_p nu_p, s_p in [0,1], for independent normals, "
            f"(d,P) in {SHAPES}, symbolic b, gamma, nu; merging rules; 1-D lemma (sympy + z3); the dependent "
            "example 5,5,-1 is >= 0 (z3), so independence is needed")


def test_proof():
    print(prove())


if __name__ == "__main__":
    main(prove, __doc__)
