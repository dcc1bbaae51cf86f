"""Cross-checks: sympy-generated functions (relucert.tools.symbolic) against the exact engine.

Every comparison is EXACT equality of rationals.  Instances are random small rational problems
(seeded), built to contain data on kinks (z_ij = 0 exactly), zero neurons (w_j = 0), zero output
weights, zero data rows, parallel and anti-parallel data, and directions that hit kinks
(delta_ij = 0, > 0 and < 0 on a kink).
"""
import random
import time
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from flint import fmpq
from hypothesis import given, settings
from hypothesis import strategies as st

from relucert.errors import InputError
from relucert.decide.escape import escape_path_polynomial
from relucert.core.formulas import ExactState, forward, half_mean_loss, ray_coefficients, weight_grad
from relucert.core.problem import Point, Problem, to_exact_matrix
from relucert.tools.symbolic import (ExactnessError, SignPattern, SymbolicModel, exact_function, numpy_function,
                               rat)

ACTS = ["relu", "leaky_relu:1/10", "abs", {"alpha_plus": 2, "alpha_minus": "-1/3"}]


# ---------------------------------------------------------------------------------------------
# random instances
# ---------------------------------------------------------------------------------------------

def q(rng, lo=-4, hi=4, den=3):
    return fmpq(rng.randint(lo, hi), rng.randint(1, den))


def perp(rng, vecs, d):
    """A rational vector orthogonal to every vector in vecs (exact), or 0 if none exists."""
    from relucert.core.linalg import nullspace
    basis = nullspace([list(v) for v in vecs], d)
    if not basis:
        return [fmpq(0)] * d
    out = [fmpq(0)] * d
    for b in basis:
        c = q(rng, -3, 3)
        out = [o + c * x for o, x in zip(out, b)]
    if all(v == 0 for v in out):
        out = list(basis[0])
    return out


def make_instance(rng, n, d, k, m, act):
    X = [[q(rng) for _ in range(d)] for _ in range(n)]
    roll = rng.random()
    if n >= 2 and roll < 0.2:
        X[1] = [fmpq(2) * v for v in X[0]]          # parallel
    elif n >= 2 and roll < 0.4:
        X[1] = [fmpq(-1, 2) * v for v in X[0]]      # anti-parallel
    if n >= 3 and rng.random() < 0.15:
        X[2] = [fmpq(0)] * d                        # a zero data row: a kink of every neuron
    Y = [[q(rng) for _ in range(k)] for _ in range(n)]
    W, A = [], []
    for j in range(m):
        kind = rng.choice(["generic", "kink", "kink", "zero", "kink2"])
        if kind == "generic":
            w = [q(rng) for _ in range(d)]
        elif kind == "zero":
            w = [fmpq(0)] * d
        else:
            idx = rng.sample(range(n), min(n, 2 if kind == "kink2" else 1))
            w = perp(rng, [X[i] for i in idx], d)
        W.append(w)
        A.append([fmpq(0)] * k if rng.random() < 0.25 else [q(rng) for _ in range(k)])
    pb = Problem.make(X, Y, act)
    return pb, Point.make(W, A, pb)


def make_direction(rng, pb, pt):
    """A direction; on kinks it is chosen to give delta = 0, > 0 or < 0."""
    n, d, k, m = pb.n, pb.d, pb.k, pt.m
    dW, dA = [], []
    Z = pb.X.dot(pt.W.T)
    for j in range(m):
        K = [i for i in range(n) if Z[i, j] == 0]
        mode = rng.choice(["random", "tangent", "along", "zero"]) if K else "random"
        if mode == "tangent":                      # delta_ij = 0 on every kink
            dw = perp(rng, [pb.X[i] for i in K], d)
        elif mode == "along":                      # +- x_i: delta > 0 or < 0 on that kink
            i = rng.choice(K)
            dw = [rng.choice([1, -1]) * v for v in pb.X[i]]
        elif mode == "zero":
            dw = [fmpq(0)] * d
        else:
            dw = [q(rng) for _ in range(d)]
        dW.append(dw)
        dA.append([q(rng) for _ in range(k)])
    return to_exact_matrix(dW, "dW"), to_exact_matrix(dA, "dA")


def instances(count, seed, shapes=((2, 1, 1, 1), (3, 2, 1, 2), (3, 2, 2, 2), (4, 3, 1, 2), (3, 3, 2, 3),
                                   (2, 1, 2, 2), (4, 2, 1, 3))):
    rng = random.Random(seed)
    for c in range(count):
        n, d, k, m = shapes[c % len(shapes)]
        act = ACTS[c % len(ACTS)]
        yield rng, make_instance(rng, n, d, k, m, act)


def F(v):
    """fmpq of a sympy Rational (or pass-through)."""
    if isinstance(v, sp.Basic):
        assert v.is_Rational, v
        return fmpq(int(v.p), int(v.q))
    return v


def qvec(v):
    return [F(x) for x in v]


def point_args(M):
    return [M.values[p] for p in M.params()]


# ---------------------------------------------------------------------------------------------
# loss, gradient, G_j
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_loss_gradient_G_match_engine(seed):
    for rng, (pb, pt) in instances(8, seed):
        stt = ExactState(pb, pt)
        M = SymbolicModel.from_problem(pb, pt)
        P = M.params()
        m, d, k = pt.m, pb.d, pb.k
        f_loss = exact_function(M.loss(), P)
        assert f_loss(*point_args(M)) == stt.loss_half_mean
        f_grad = exact_function(M.gradient(), P, cse=True)
        g = f_grad(*point_args(M))
        gW = np.array(g[:m * d], dtype=object).reshape(m, d)
        gA = np.array(g[m * d:], dtype=object).reshape(m, k)
        # dL/da_j = G_j everywhere (L is differentiable in A)
        assert (gA == stt.G).all()
        # on the pattern (branch alpha_- on the kinks) dL/dw_j = Lin_j^T a_j, the engine's gradient
        # wherever L is differentiable in w_j (no kinks)
        assert (gW == weight_grad(stt.Lin, pt.A)).all()
        f_G = exact_function([M.G(j) for j in range(m)], P)
        assert f_G(*point_args(M)) == stt.G.tolist()
        # the mse convention
        assert exact_function(M.loss(convention="mse"), P)(*point_args(M)) == stt.loss_half_mean * fmpq(2, k)


def test_neuron_views_match_full_model():
    rng = random.Random(7)
    pb, pt = make_instance(rng, 4, 3, 2, 4, "leaky_relu:1/10")
    stt = ExactState(pb, pt)
    M = SymbolicModel.from_problem(pb, pt)
    for j in range(pt.m):
        v = M.view(j)
        assert v.params() == M.params(j)
        assert v.at_point(v.loss()) == M.at_point(M.loss())
        assert [F(x) for x in v.at_point(v.G(j))] == stt.G[j].tolist()
        assert [F(x) for x in v.at_point(v.gradient())] == [F(x) for x in M.at_point(M.gradient(M.params(j)))]


# ---------------------------------------------------------------------------------------------
# D_j, phi_j
# ---------------------------------------------------------------------------------------------

def probe_directions(rng, pb, nr, d):
    rs = [[q(rng) for _ in range(d)] for _ in range(4)]
    for i in nr.kinks:
        x = list(pb.X[i])
        rs += [x, [-v for v in x]]
        others = [pb.X[l] for l in nr.kinks if l != i]
        rs.append(perp(rng, [x], d))              # on the kink hyperplane of x_i
        if others:
            rs.append(perp(rng, [x] + others[:1], d))
    rs.append([fmpq(0)] * d)
    return rs


@pytest.mark.parametrize("seed", range(6))
def test_D_phi_match_engine(seed):
    for rng, (pb, pt) in instances(8, 100 + seed):
        stt = ExactState(pb, pt)
        M = SymbolicModel.from_problem(pb, pt)
        for j in range(pt.m):
            nr = stt.neuron(j)
            fD = exact_function(M.D(j, at_point=True), M.r)
            fDmax = exact_function(M.D(j, at_point=True, form="max"), M.r)
            fphi = exact_function(M.phi(j, at_point=True), M.r)
            fphi_pw = exact_function(M.phi(j, at_point=True, form="piecewise"), M.r)
            for r in probe_directions(rng, pb, nr, pb.d):
                D = nr.D(r)
                assert fD(*r) == D, (j, r)
                assert fDmax(*r) == D
                assert fphi(*r) == nr.phi(r) == fphi_pw(*r)
            # D_j(w_j) = G_j (docs/theory.md §3)
            assert fD(*nr.w) == stt.G[j].tolist()


# ---------------------------------------------------------------------------------------------
# directional derivative, ray polynomial, Hessian, escape path
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_directional_derivative_and_ray_match_engine(seed):
    for rng, (pb, pt) in instances(7, 200 + seed):
        stt = ExactState(pb, pt)
        M = SymbolicModel.from_problem(pb, pt)
        P, dP = M.params(), M.dparams()
        f_dd = exact_function(M.directional_derivative(), P + dP)
        for _ in range(3):
            dW, dA = make_direction(rng, pb, pt)
            dvals = [dW[j, q] for j in range(pt.m) for q in range(pb.d)] + \
                    [dA[j, c] for j in range(pt.m) for c in range(pb.k)]
            want = stt.directional_derivative(dW, dA)
            # the §3 formula, compiled
            assert f_dd(*(point_args(M) + dvals)) == want
            # the same with numeric Delta substituted symbolically
            assert F(M.directional_derivative(dW, dA, at_point=True)) == want
            # the definition: the t-coefficient of the loss along the ray
            assert F(M.directional_derivative_limit(dW, dA)) == want
            # ray polynomial: derived by substitution vs the engine's closed form
            c_eng = ray_coefficients(pb.X, stt.fw.E, stt.fw.Z, None, pt.W, pt.A, dW, dA, stt.ap, stt.am)
            c_sym = M.ray_coefficients(dW, dA)
            assert qvec(c_sym) == list(c_eng[:4])
            tm = M.t_max(dW)
            assert (tm is None and c_eng[4] is None) or F(tm) == c_eng[4]
            # symbolic Delta on the direction's kink branches, compiled, evaluated at Delta
            Md = SymbolicModel.from_problem(pb, pt, dW=dW)
            f_ray = exact_function(Md.ray_coefficients(), P + dP)
            assert f_ray(*(point_args(M) + dvals)) == list(c_eng[:4])
            # the polynomial is the true loss at a t inside the interval
            t = fmpq(1) if c_eng[4] is None else c_eng[4] / 2
            fw = forward(pb.X, pb.Y, pt.W + t * dW, pt.A + t * dA, stt.ap, stt.am)
            poly = sum((c * t ** (p + 1) for p, c in enumerate(c_eng[:4])), fmpq(0))
            assert half_mean_loss(fw.E) - stt.loss_half_mean == poly
            # Hessian on the direction's pattern: Delta^T H Delta / 2 = c2
            if len(P) <= 12:
                H = Md.at_point(Md.hessian())
                dv = sp.Matrix([rat(v) for v in dvals])
                assert F((dv.T * H * dv)[0, 0] / 2) == c_eng[1]


@pytest.mark.parametrize("seed", range(4))
def test_escape_path_matches_engine(seed):
    checked = 0
    for rng, (pb, pt) in instances(10, 300 + seed):
        stt = ExactState(pb, pt)
        M = SymbolicModel.from_problem(pb, pt)
        for j in range(pt.m):
            if any(v != 0 for v in pt.A[j]):
                continue
            nr = stt.neuron(j)
            for r in probe_directions(rng, pb, nr, pb.d)[:5]:
                D = nr.D(r)
                c_eng, _ = escape_path_polynomial(pb.X, stt.fw.E, stt.fw.Z[:, j], r, D, stt.ap, stt.am)
                assert qvec(M.escape_path(j, r)) == c_eng
                # the t^2 coefficient is -D.G_j, the t^3 coefficient -|D|^2 (docs/theory.md §4)
                DD = sum((v * v for v in D), fmpq(0))
                DG = sum((a * b for a, b in zip(D, stt.G[j].tolist())), fmpq(0))
                assert c_eng[1] == 0 and c_eng[2] == -DG and c_eng[3] == -DD
                checked += 1
    assert checked > 0


# ---------------------------------------------------------------------------------------------
# the engine's decision of phi_j >= 0 against z3 on the symbolic phi_j (max form, unmerged)
# ---------------------------------------------------------------------------------------------

def _z3(e, env):
    import z3
    if e.is_Symbol:
        return env[e]
    if e.is_Rational:
        return z3.RealVal(f"{e.p}/{e.q}")
    if e.is_Add:
        return z3.Sum([_z3(a, env) for a in e.args])
    if e.is_Mul:
        out = _z3(e.args[0], env)
        for a in e.args[1:]:
            out = out * _z3(a, env)
        return out
    if isinstance(e, sp.Max):
        out = _z3(e.args[0], env)
        for a in e.args[1:]:
            b = _z3(a, env)
            out = z3.If(out >= b, out, b)
        return out
    raise TypeError(f"unexpected node {e}")


def test_phi_decisions_match_z3_on_symbolic_phi():
    """Zero-input neurons (w = 0, a = 1) on small integer grids (parallel, anti-parallel and
    dependent kink normals): phi_j >= 0 decided by z3 on the symbolic phi_j vs every engine method."""
    import z3
    from relucert.core.linalg import rank
    from relucert.decide.stationarity import decide_phi
    rng = random.Random(4)
    seen = {True: 0, False: 0}
    for _ in range(70):
        d = rng.choice([2, 2, 3])
        n = rng.randint(2, 5)
        X = [[rng.randint(-2, 2) for _ in range(d)] for _ in range(n)]
        Y = [[Fraction(rng.randint(-6, 3), rng.randint(1, 2))] for _ in range(n)]
        act = rng.choice(ACTS)
        pb = Problem.make(X, Y, act)
        pt = Point.make([[0] * d], [[1]], pb)
        nr = ExactState(pb, pt).neuron(0)
        M = SymbolicModel.from_problem(pb, pt)
        phi = M.phi(0, at_point=True)
        env = {r: z3.Real(r.name) for r in M.r}
        sol = z3.Solver()
        sol.add(_z3(phi, env) < 0)
        truth = sol.check() == z3.unsat
        seen[truth] += 1
        methods = ["auto", "cones", "rays", "z3"]
        keys = list(nr.gamma)
        if not keys or rank(keys) == len(keys):
            methods.append("separable")
        for meth in methods:
            dec = decide_phi(nr.b, nr.gamma, meth)
            assert dec.ok in (truth, None), (meth, X, Y, act)
            if dec.ok is False:
                assert F(M.phi(0, dec.descent, at_point=True)) < 0
    assert seen[True] > 5 and seen[False] > 5


# ---------------------------------------------------------------------------------------------
# explicit patterns, generic (all-symbolic) models
# ---------------------------------------------------------------------------------------------

def test_explicit_pattern_without_point():
    pat = SignPattern.make([[1, 0], [-1, 1], [0, 0]], branch=[[-1, 1], [-1, -1], [1, -1]])
    assert pat.kinks(0) == [2] and pat.kinks(1) == [0, 2]
    pb = Problem.make([[1, 2], [3, -1], [0, 1]], [[1], [2], [3]], "leaky_relu:1/5")
    M = SymbolicModel.from_problem(pb, pattern=pat)
    # slopes: kink branch +1 -> alpha_plus, -1 -> alpha_minus
    assert M.S[0, 1] == 1 and M.S[2, 0] == 1 and M.S[2, 1] == sp.Rational(1, 5) and M.S[1, 0] == sp.Rational(1, 5)
    for j in range(2):
        ga = M.gradient(M.params(j)[2:])
        assert all(sp.expand(a - b) == 0 for a, b in zip(ga, M.G(j)))


@pytest.mark.parametrize("n,d,k,m", [(2, 2, 1, 2), (3, 1, 2, 1), (2, 2, 2, 2)])
def test_generic_identities(n, d, k, m):
    """All-symbolic data and free slopes: dL/da_j = G_j and w_j . grad_w_j L = a_j . G_j."""
    M = SymbolicModel.generic(n, d, k, m)
    for j in range(m):
        g = M.gradient(M.params(j))
        gw, ga = g[:d], g[d:]
        G = M.G(j)
        assert all(sp.expand(a - b) == 0 for a, b in zip(ga, G))
        lhs = sum(M.W[j, q] * gw[q] for q in range(d))
        rhs = sum(M.A[j, c] * G[c] for c in range(k))
        assert sp.expand(lhs - rhs) == 0


def test_pattern_validation():
    with pytest.raises(InputError):
        SignPattern.make([[1, 2]])
    with pytest.raises(InputError):
        SignPattern.make([[1, 0], [1]])
    with pytest.raises(InputError):
        SignPattern.make([[0]], branch=[[0]])
    pb = Problem.make([[1, 0]], [[1]], "relu")
    with pytest.raises(InputError):
        SymbolicModel.from_problem(pb, pattern=SignPattern.make([[1, 1], [1, 1]]))
    with pytest.raises(InputError):
        SymbolicModel.from_problem(pb, Point.make([[1, 0]], [[1]], pb), neurons=[3])


# ---------------------------------------------------------------------------------------------
# code generation
# ---------------------------------------------------------------------------------------------

def test_exact_codegen_keeps_rationals():
    x, y = sp.symbols("x y", real=True)
    e = sp.Rational(1, 3) * x + x / 7 - sp.Rational(2, 5) * sp.Max(0, x - y) + \
        sp.Piecewise((x / 2, x > 0), (x / 10, True)) + 1 / (x + 3) + x ** 2 / 11
    want = lambda xv, yv: (Fraction(1, 3) * xv + xv / 7 - Fraction(2, 5) * max(0, xv - yv)
                           + (xv / 2 if xv > 0 else xv / 10) + 1 / (xv + 3) + xv ** 2 / 11)
    f = exact_function(e, [x, y])
    g = exact_function(e, [x, y], backend="fraction")
    assert "1/3" not in f.source.replace("_Q(1, 3)", "")
    for xv, yv in [(1, 0), (-1, 2), (Fraction(1, 3), Fraction(-2, 7)), (0, 0), (5, 9)]:
        w = want(Fraction(xv), Fraction(yv))
        assert f(xv, yv) == fmpq(w.numerator, w.denominator)
        assert g(xv, yv) == w and isinstance(g(xv, yv), Fraction)
    # what the generator avoids: sympy's default lambdify evaluates Rational(1, 3) as a float
    lam = sp.lambdify([x], sp.Rational(1, 3) * x)
    assert isinstance(lam(1), float)
    with pytest.raises(ExactnessError):
        f(0.5, 0)
    with pytest.raises(ExactnessError):
        exact_function(sp.sqrt(x), [x])
    with pytest.raises(ExactnessError):
        exact_function(sp.Float(0.1) * x, [x])
    for bad in (sp.sin(x), sp.pi * x, sp.exp(x), sp.oo * x):
        with pytest.raises(ExactnessError):
            exact_function(bad, [x])
    with pytest.raises(InputError):
        exact_function(x + y, [x])


def test_numpy_codegen_agrees_with_exact():
    rng = random.Random(11)
    pb, pt = make_instance(rng, 4, 2, 2, 3, "leaky_relu:1/10")
    M = SymbolicModel.from_problem(pb, pt)
    exprs = [M.loss(), M.gradient()]
    P = M.params()
    fe = exact_function(exprs, P)
    fn = numpy_function(exprs, P)
    assert "def " in fn.source
    ex = fe(*point_args(M))
    nu = fn(*[float(v) for v in point_args(M)])
    assert np.isclose(float(ex[0].p) / float(ex[0].q), nu[0], rtol=1e-12, atol=1e-14)
    assert np.allclose([int(v.p) / int(v.q) for v in ex[1]], nu[1], rtol=1e-12, atol=1e-14)
    # vectorised over a batch of points
    batch = [np.array([float(v)] * 5) for v in point_args(M)]
    out = fn(*batch)
    assert np.allclose(out[0], nu[0])
    # D_j piecewise -> numpy select
    r = M.r
    fD = numpy_function(M.D(0, at_point=True), r)
    fDx = exact_function(M.D(0, at_point=True), r)
    for rv in ([1, 2], [-1, 0], [0, -3]):
        assert np.allclose(fD(*rv), [int(v.p) / int(v.q) for v in fDx(*rv)])


# ---------------------------------------------------------------------------------------------
# the paper's size: m = 50, n = 7, d = 3, per-neuron views
# ---------------------------------------------------------------------------------------------

def test_width_50_per_neuron_fast():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (7, 3)).astype(np.float32)
    Y = rng.uniform(-1, 1, (7, 1)).astype(np.float32)
    W = (rng.normal(size=(50, 3)) * 0.3).astype(np.float32)
    A = (rng.normal(size=(50, 1)) * 0.3).astype(np.float32)
    W[4] = 0
    A[4] = 0
    W[9] = np.array([X[0, 1], -X[0, 0], 0], dtype=np.float32)   # x_0 on the kink of neuron 9
    pb = Problem.make(X, Y, "relu")
    pt = Point.make(W, A, pb)
    stt = ExactState(pb, pt)
    t0 = time.perf_counter()
    M = SymbolicModel.from_problem(pb, pt)
    assert M.pattern.kinks(9) == [0] and M.pattern.kinks(4) == list(range(7))
    for j in range(50):
        v = M.view(j)
        g = v.at_point(v.gradient())
        assert qvec(g[3:]) == stt.G[j].tolist()
        assert qvec(g[:3]) == weight_grad(stt.Lin, pt.A)[j].tolist()
        nr = stt.neuron(j)
        r = [fmpq(1), fmpq(-2), fmpq(1, 3)]
        assert qvec(v.D(j, r, at_point=True)) == nr.D(r)
    assert time.perf_counter() - t0 < 60


# ---------------------------------------------------------------------------------------------
# docs/theory.md §3, parenthetical remark: "D_j(r) ... (the one-sided derivative of G_j as a function
# of w_j, in direction r)".  Refuted as written: G_j depends on w_j also through the residuals
# e_i.  True statement: D_j(r) is the one-sided derivative of w -> (1/n) sum_i e_i sigma(w . x_i)
# with the residuals e_i held fixed (equivalently a_j . D_j(r) = L'(theta; (r on w_j, 0))).
# ---------------------------------------------------------------------------------------------

def test_theory_D_is_not_the_derivative_of_G_in_w():
    pb = Problem.make([[1]], [[0]], "relu")
    pt = Point.make([[1]], [[1]], pb)
    stt = ExactState(pb, pt)
    r = [fmpq(1)]
    D = stt.neuron(0).D(r)                        # e sigma'(z) x.r = 1
    assert D == [fmpq(1)]
    # G_0(w) = e(w) sigma(w) = w * w  ->  one-sided derivative at w = 1 in direction 1 is 2
    M = SymbolicModel.from_problem(pb, pt)
    w = M.W[0, 0]
    Gw = M.G(0)[0]
    dG = sp.diff(Gw, w).xreplace(M.values)
    assert dG == 2 and dG != rat(D[0])
    # with the residuals held fixed the derivative is D
    e_fixed = M.residual_at_point(0)[0]
    assert sp.diff(e_fixed * M.S[0, 0] * M.z(0, 0), w).xreplace(M.values) == rat(D[0])


# ---------------------------------------------------------------------------------------------
# hypothesis: D_j / phi_j on one zero neuron with random data
# ---------------------------------------------------------------------------------------------

rationals = st.fractions(min_value=-3, max_value=3, max_denominator=4)


@settings(max_examples=30, deadline=None)
@given(X=st.lists(st.tuples(rationals, rationals), min_size=1, max_size=3),
       ys=st.lists(rationals, min_size=3, max_size=3),
       r=st.tuples(rationals, rationals), a=rationals, act=st.sampled_from(ACTS))
def test_zero_neuron_D_phi_hypothesis(X, ys, r, a, act):
    n = len(X)
    pb = Problem.make([list(x) for x in X], [[y] for y in ys[:n]], act)
    pt = Point.make([[0, 0]], [[a]], pb)
    stt = ExactState(pb, pt)
    M = SymbolicModel.from_problem(pb, pt)
    rq = [fmpq(v.numerator, v.denominator) for v in r]
    nr = stt.neuron(0)
    assert qvec(M.D(0, rq, at_point=True)) == nr.D(rq)
    assert F(M.phi(0, rq, at_point=True)) == nr.phi(rq)
    dW = to_exact_matrix([list(rq)], "dW")
    dA = to_exact_matrix([[1]], "dA")
    assert F(M.directional_derivative_limit(dW, dA)) == stt.directional_derivative(dW, dA)


# ---------------------------------------------------------------------------------------------
# the paper's end points (examples/paper/*_final.npz, when present): per-neuron cross-check
# ---------------------------------------------------------------------------------------------

PAPER = sorted((__import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "paper")
               .glob("*_final.npz"))


@pytest.mark.skipif(not PAPER, reason="examples/paper/*_final.npz not present")
@pytest.mark.parametrize("path", PAPER[:3], ids=lambda p: p.stem)
def test_paper_end_points_per_neuron(path):
    from relucert.io import load
    pb, pt = load(str(path))
    stt = ExactState(pb, pt)
    M = SymbolicModel.from_problem(pb, pt)
    assert F(M.at_point(M.loss())) == stt.loss_half_mean
    rng = random.Random(0)
    d, k = pb.d, pb.k
    for j in rng.sample(range(pt.m), 8):
        v = M.view(j)
        g = v.at_point(v.gradient())
        assert qvec(g[d:]) == stt.G[j].tolist()
        assert qvec(g[:d]) == weight_grad(stt.Lin, pt.A)[j].tolist()
        r = [q(rng) for _ in range(d)]
        assert qvec(v.D(j, r, at_point=True)) == stt.neuron(j).D(r)
