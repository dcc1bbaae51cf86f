"""Vector-output refinement without a fixed cap on the high-precision Newton unknowns (issue 12,
"vector output at real sizes"; ``refine.vector``).

Up to ``EIGSY_UNKNOWNS`` unknowns the high-precision stage is the committed one (mpmath eigsy steps):
its output on two recorded checkpoints is compared with the output of the committed code, recorded
once (the note, and a SHA-256 of the note and the exact rational point; both runs start from the
same float64 checkpoint, embedded below, with the same numpy/LAPACK build).  Above it, the steps come
from a float64 Hessian against the exact gradient (``_ExactGradient``, cross-checked here against
core's ``PatternLoss`` in exact arithmetic); a case above the former cap of 60 is refined and decided
(or gets a precise reason); the time budget ``REFINE_SECONDS`` gives an ``inconclusive`` reason."""

import hashlib

import numpy as np
import pytest
from flint import fmpq, fmpq_mat
from scipy.optimize import minimize

import relucert.refine.vector as V
from relucert.check import require_valid
from relucert.core.hessian import PatternLoss
from relucert.core.linalg import nullspace
from relucert.core.problem import Point, Problem, qstr
from relucert.decide.certify import certify
from relucert.refine import Tolerances, classify
from relucert.refine.classify import pattern_flips
from relucert.refine.driver import choose, refine

# two float64 checkpoints (L-BFGS end points of seeded teacher-student runs, d = 2 with the hidden
# bias as a constant input, k = 2): 4 and 7 high-precision unknowns, the second with an output bias
CASE_1 = dict(X=[[0.345584192064786, 1.0], [0.8216181435011584, 1.0], [0.33043707618338714, 1.0], [-1.303157231604361, 1.0], [0.9053558666731177, 1.0], [0.4463745723640113, 1.0], [-0.5369532353602852, 1.0], [0.5811181041963531, 1.0], [0.36457239618607573, 1.0], [0.294132496655526, 1.0], [0.02842224131579679, 1.0], [0.5467129866124469, 1.0], [-0.7364540870016669, 1.0], [-0.16290994799305278, 1.0], [-0.48211931267997826, 1.0], [0.5988462126346276, 1.0]],
 Y=[[-0.600412758613333, 2.805244131299865], [-0.7648772457298246, 4.2393377725304635], [-0.6643457647948501, 2.8616879325102484], [1.2187568413332563, 1.1611859050868891], [-0.8323687346551389, 4.459343396520558], [-0.5947042106871345, 3.185859516386258], [-0.023639510828145437, 0.7615498373721712], [-0.6320197537953475, 3.510857062298158], [-0.48512538361048874, 2.970102523955184], [-0.43595444715464493, 2.726861542619228], [-0.3025858073646941, 2.129635038460742], [-0.7721675854342445, 3.4703410070753273], [0.12281433942756351, 0.27760454564055864], [-0.39875782714586927, 1.5151218721663746], [-0.09901015217345055, 0.7613926824199109], [-0.649216774198821, 3.7154958809745495]],
 W=[[-0.4780495201965495, -0.6914033151485196], [0.4761777079970044, -0.8069830260710937], [1.2495099995841816, 0.9890117757881425], [-0.055576566718497714, -0.47969538819744506]],
 A=[[-0.01856800995369797, -0.2896270713382162], [-0.14221265010853432, 0.2634994245173464], [-0.3881788303833364, 2.069151036706134], [-1.1022209494353052, -0.011276136248321203]],
 c=None)

CASE_5 = dict(X=[[-0.8019314252534474, 1.0], [-1.324358995628145, 1.0], [-0.24836162209524854, 1.0], [0.4204452380655215, 1.0], [1.1360465324896427, 1.0], [0.10970639932180819, 1.0], [-0.5526473205362324, 1.0], [-0.7847803553442784, 1.0], [0.7487457707345911, 1.0], [1.6347830429585775, 1.0], [0.27276877584472176, 1.0], [-1.2333286640307717, 1.0]],
 Y=[[-1.8148846992396372, 1.289079454474773], [-2.743009921926615, 1.5010967082415796], [-1.3148695289279042, 0.9866843698078035], [-0.9587151004925272, 0.6228419805311212], [-0.473910809329915, 0.1474686990387148], [-1.043847354298389, 0.716305647070157], [-1.4020438209056694, 1.2501345450201278], [-1.887135040251248, 1.3272838164121556], [-0.7396864554695521, 0.4916744347153972], [-0.01950667751014182, -0.18032506451195215], [-0.9782079711703437, 0.7151923771157954], [-2.3615253630273543, 1.347317726918122]],
 W=[[0.028544132729850284, -0.43425054858190226], [-0.2319036248899417, -0.5883312178955478], [0.5138442268174027, 0.9046749250066156]],
 A=[[1.4235991898742166, -0.1707629084420159], [0.5914949136034228, 0.588478013385738], [1.5837054202129726, -1.079169642821384]],
 c=[-2.7019411011171814, 1.798742217078918])

# the committed code's output on them (relucert/refine/vector.py before the fast path), recorded once
RECORDED = [
    (CASE_1, 'damped least-norm Newton from the checkpoint (float64: 1 steps, gradient 1.1e-16), then 60 digits: 2 steps, gradient 1.16e-61; rational rounding, output weights re-fitted exactly',
     "c7d6fbd6944a6254b685159d0ca9a7b930ac87752818341c9d9dfe8f13f39ff0", "not_stationary"),
    (CASE_5, 'damped least-norm Newton from the checkpoint (float64: 1 steps, gradient 3.4e-14), then 60 digits: 5 steps, gradient 3.49e-51; rational rounding, output weights and output bias re-fitted exactly',
     "56464548c4ec7d85e5efd39a3da9313246631b8740ce1717a61d1455ef1d4e98", "local_min"),
]


def _fingerprint(note, new) -> str:
    s = note + "|" + ",".join(qstr(v) for v in new.W.ravel()) + "|" + ",".join(qstr(v) for v in new.A.ravel())
    s += "|" + ("" if new.c is None else ",".join(qstr(v) for v in new.c))
    return hashlib.sha256(s.encode()).hexdigest()


def _setup(case):
    pb = Problem.make(case["X"], case["Y"], "relu")
    pt = Point.make(case["W"], case["A"], pb, c=case["c"])
    return pb, pt, classify(pb, pt, Tolerances())


@pytest.mark.parametrize("case, note, digest, verdict", RECORDED, ids=["case1", "case5"])
def test_below_the_cap_the_report_is_the_committed_one(case, note, digest, verdict):
    pb, pt, pat = _setup(case)
    nunk = sum(V.d_unknowns(pb, pat, j) for j in range(pt.m)) + V.bias_unknowns(pb, pt)
    assert nunk <= V.EIGSY_UNKNOWNS
    new, got = V.refine_vector(pb, pt, pat, "as_given", pattern_out=[])
    assert got == note
    assert _fingerprint(got, new) == digest
    assert certify(pb, new).verdict == verdict


@pytest.mark.parametrize("case, note, digest, verdict", RECORDED, ids=["case1", "case5"])
def test_fast_path_forced_below_the_cap_gives_the_same_verdict(case, note, digest, verdict, monkeypatch):
    pb, pt, pat = _setup(case)
    monkeypatch.setattr(V, "EIGSY_UNKNOWNS", -1)
    out = []
    new, got = V.refine_vector(pb, pt, pat, "as_given", pattern_out=out)
    assert "exact-gradient Newton with float64 Hessian steps" in got
    assert pattern_flips(pb, new, out[-1].pattern, []) == []
    res = certify(pb, new)
    assert res.verdict == verdict
    assert require_valid(res.certificate) == verdict


# ------------------------------------------------------------------------------------------------
# the exact gradient of the fast path against core's PatternLoss (exact arithmetic, equal)
# ------------------------------------------------------------------------------------------------

def _pattern_loss_gradient(pb, Nbs, signs, movable, W, A, theta, c=None):
    """core's PatternLoss gradient in fmpq at the same theta; an output bias c enters as one more
    moving neuron on a constant input coordinate with u = 1 (its a-gradient is then dL/dc)."""
    act = pb.activation
    n, d, k = pb.n, pb.d, pb.k
    fixed = [j for j in range(W.shape[0]) if j not in movable]
    X = [list(r) + ([fmpq(1)] if c is not None else []) for r in pb.X.tolist()]
    N = [[list(col) + ([fmpq(0)] if c is not None else []) for col in Nb] for Nb in Nbs]
    slopes = [[None if signs[i, j] == 0 else (act.alpha_plus if signs[i, j] > 0 else act.alpha_minus)
               for i in range(n)] for j in movable]
    th = list(theta)
    if c is not None:
        N.append([[fmpq(0)] * d + [fmpq(1)]])
        slopes.append([fmpq(1)] * n)
        th = th[:len(th) - k] + [fmpq(1)] + list(c)
    off = []
    for i in range(n):
        row = []
        for q in range(k):
            v = -pb.Y[i][q]
            for j in fixed:
                z = sum((W[j][p] * pb.X[i][p] for p in range(d)), fmpq(0))
                if z != 0:
                    v += A[j][q] * (z if z > 0 else act.alpha_minus * z)
            row.append(v)
        off.append(row)
    g, _ = PatternLoss(X=X, N=N, slopes=slopes, offset=off).gradient_hessian(th)
    if c is not None:            # drop the bias neuron's u-entry: (.., g_u, g_c)
        g = g[:len(g) - k - 1] + g[len(g) - k:]
    return g


@pytest.mark.parametrize("seed, with_c", [(0, False), (1, True), (2, False), (3, True)])
def test_exact_gradient_equals_pattern_loss(seed, with_c):
    rng = np.random.default_rng(seed)
    n, d, k, m = 7, 3, 2, 4
    Xi = rng.integers(-3, 4, size=(n, d)).tolist()
    Xi[0] = [1, 2, 0]
    pb = Problem.make(Xi, rng.integers(-3, 4, size=(n, k)).tolist(), "leaky_relu:1/10")
    W = np.array([[fmpq(int(v), 3) for v in r] for r in rng.integers(-4, 5, size=(m, d))], dtype=object)
    A = np.array([[fmpq(int(v), 2) for v in r] for r in rng.integers(-4, 5, size=(m, k))], dtype=object)
    W[1] = [fmpq(2), fmpq(-1), fmpq(5)]                       # x_0 = (1, 2, 0) is on the kink of neuron 1
    signs = np.array([[int(np.sign(sum(W[j][p] * pb.X[i][p] for p in range(d)))) for j in range(m)]
                      for i in range(n)])
    movable = [0, 1, 3]                                        # neuron 2 is held fixed
    Nbs = [nullspace([pb.X[i].tolist() for i in range(n) if signs[i, j] == 0], d) for j in movable]
    assert len(Nbs[1]) == 2 and all(len(Nb) >= 1 for Nb in Nbs)   # neuron 1 moves off its kink only
    theta = []
    for t, j in enumerate(movable):
        theta += [fmpq(int(v), 7) for v in rng.integers(-5, 6, size=len(Nbs[t]))] + list(A[j])
    c = [fmpq(1, 3), fmpq(-2)] if with_c else None
    if with_c:
        theta += c
    off = [[sum((W[2][p] * pb.X[i][p] for p in range(d)), fmpq(0)) for _ in range(k)] for i in range(n)]
    act = pb.activation
    off = [[(v if v > 0 else act.alpha_minus * v) * A[2][q] - pb.Y[i][q] for q, v in enumerate(r)]
           for i, r in enumerate(off)]
    grad = V._ExactGradient(pb, Nbs, signs, movable, fmpq_mat(n, k, [v for r in off for v in r]), with_c)
    assert grad.gradient(theta) == _pattern_loss_gradient(pb, Nbs, signs, movable, W, A, theta, c)


# ------------------------------------------------------------------------------------------------
# above the former cap of 60 unknowns, and the time budget
# ------------------------------------------------------------------------------------------------

def _teacher_case(seed, d, m, k, noise=0.01):
    """A well-converged checkpoint (labelled test generator, the idea of
    benchmarks/bench_vector_newton.py): a random ReLU teacher, inputs away from its hyperplanes, targets
    with small noise, the student fitted on the teacher's pattern by scipy least squares from the
    teacher (kept only when no pre-activation changes sign)."""
    from scipy.optimize import least_squares
    rng = np.random.default_rng(seed)
    n = 4 * m
    Wt, At = rng.standard_normal((m, d)), rng.standard_normal((m, k))
    rows = []
    while len(rows) < n:
        x = np.concatenate([rng.standard_normal(d - 1), [1.0]])
        if np.all(np.abs(Wt @ x) >= 0.1 * np.linalg.norm(Wt, axis=1) * np.linalg.norm(x)):
            rows.append(x)
    X = np.array(rows)
    Y = np.maximum(X @ Wt.T, 0) @ At + noise * rng.standard_normal((n, k))
    D = (X @ Wt.T > 0).astype(float)

    def res(t):
        W, A = t[:m * d].reshape(m, d), t[m * d:].reshape(m, k)
        return ((D * (X @ W.T)) @ A - Y).ravel()

    def jac(t):
        W, A = t[:m * d].reshape(m, d), t[m * d:].reshape(m, k)
        J = np.zeros((n, k, len(t)))
        for j in range(m):
            J[:, :, j * d:(j + 1) * d] = (D[:, j][:, None, None] * A[j][None, :, None]) * X[:, None, :]
            J[:, :, m * d + j * k:m * d + (j + 1) * k] = (D[:, j] * (X @ W[j]))[:, None, None] * np.eye(k)
        return J.reshape(n * k, len(t))

    r = least_squares(res, np.concatenate([Wt.ravel(), At.ravel()]), jac=jac, method="trf", xtol=1e-15,
                      ftol=1e-15, gtol=1e-15, max_nfev=2000)
    W, A = r.x[:m * d].reshape(m, d), r.x[m * d:].reshape(m, k)
    assert np.array_equal(X @ W.T > 0, D > 0)
    pb = Problem.make(X.tolist(), Y.tolist(), "relu")
    return pb, Point.make(W.tolist(), A.tolist(), pb)


def test_above_the_former_cap_is_refined_and_decided():
    pb, pt = _teacher_case(0, 3, 11, 3)
    pat = classify(pb, pt, Tolerances())
    nunk = sum(V.d_unknowns(pb, pat, j) for j in range(pt.m)) + V.bias_unknowns(pb, pt)
    assert nunk == 66 > 60 and nunk > V.EIGSY_UNKNOWNS
    out = []
    new, note = V.refine_vector(pb, pt, pat, "as_given", pattern_out=out)
    assert new is not None, note
    assert "exact-gradient Newton with float64 Hessian steps to 60 digits" in note
    gmax = float(note.split("gradient ")[-1].split(";")[0])
    assert gmax < 1e-57                                      # the 10^-(dps - 3) floor of the Newton
    assert pattern_flips(pb, new, out[-1].pattern, []) == []
    # the pipeline's decision: an irrational stationary point whose rounding is not exactly
    # stationary; neurons sharing an active set have flat directions the gauge slice does not fix, so
    # either a ball certificate decides it (the constant-rank route, docs/theory.md §10.8) or the reason
    # says why not
    ref = choose(refine(pb, pt)["refinements"])
    reason = ref.to_json()["reason"]
    assert "skipped" not in reason
    if ref.verdict == "inconclusive":
        assert "the rational rounding is not exactly stationary" in reason
    else:
        cert = ref.result.certificate if ref.result is not None else ref.ball
        assert cert is not None and require_valid(cert) == ref.verdict


@pytest.mark.parametrize("eigsy", [True, False])
def test_time_budget_gives_an_inconclusive_reason(eigsy, monkeypatch):
    pb, pt, pat = _setup(CASE_5)
    monkeypatch.setattr(V, "REFINE_SECONDS", 0.0)
    monkeypatch.setattr(V, "EIGSY_UNKNOWNS", 60 if eigsy else -1)
    new, note = V.refine_vector(pb, pt, pat, "as_given", pattern_out=[])
    assert new is None
    assert "inconclusive, the time budget of 0 s (refine.vector.REFINE_SECONDS) ran out before the " \
           "high-precision Newton converged" in note

