"""Screening, embedding, symmetry and derive with an output bias c (docs/biases.md §8 item 11).

Hand-computed cases for each tool, a hypothesis property test of screening's float stationarity
measure with c against this file's own numpy brute force (labelled: it shares no code with
relucert.tools.screen), and CLI tests of ``screen``, ``embed``, ``symmetry`` and ``derive`` on
points with c."""
import json

import numpy as np
import pytest
import sympy as sp
from flint import fmpq
from hypothesis import given, settings, HealthCheck, strategies as st

from relucert.cli import main
from relucert.core.hessian import hessian
from relucert.core.problem import Point, Problem
from relucert.decide.certify import certify
from relucert.errors import InputError
from relucert.tools import embedding as E
from relucert.tools import screen
from relucert.tools.screen import Trajectory, certify_plateaus, load_trajectory, screen_arrays
from relucert.tools.symbolic import SymbolicModel
from relucert.tools.symmetry import analyze, constant_neuron_line, constant_neurons

# CE1 of docs/biases.md §7: a Theorem-A local minimum without c, not stationary with c = 0
CE1 = dict(X=[[1], [-1]], Y=[[1], [1]], W=[[1]], A=[[1]])
# scalar output, stationary with c (e = (2, -1, -1): G = 0, D = 0, sum e = 0): Theorem-A local minimum, loss 1
LMC = dict(X=[[1], [-1], [2]], Y=[[-1], [1], [3]], W=[[1]], A=[[1]], c=[0])
# a constant neuron: X has a constant-1 column, w = (0, 1) (hidden bias 1), e = (1, 1, -2) orthogonal to X's columns
CONST = dict(X=[[1, 1], [-1, 1], [0, 1]], Y=[[0], [0], [3]], W=[[0, 1]], A=[[1]], c=[0])


def pp(d, c=None):
    pb = Problem.make(d["X"], d["Y"], "relu", "half_mean")
    return pb, Point.make(d["W"], d["A"], pb, c=d.get("c", c))


def write(tmp_path, d, name="p.json", c=None):
    out = dict(d, activation="relu", loss="half_mean")
    if c is not None:
        out["c"] = c
    f = tmp_path / name
    f.write_text(json.dumps(out))
    return str(f)


@pytest.fixture(params=["numba", "numpy"])
def path(request, monkeypatch):
    """Force one path of screen_arrays: the fused kernel at any size, or the numpy fallback."""
    if request.param == "numba":
        pytest.importorskip("numba")
        if screen._fused_kernel() is None:
            pytest.skip("the numba kernel did not build")
        monkeypatch.setattr(screen, "_NUMBA_MIN_WORK", 0)
    else:
        monkeypatch.setattr(screen, "_KERNEL", False)
    return request.param


# =============================================================================================
# screening
# =============================================================================================

def test_screen_hand_computed_ce1_with_c(path):
    """CE1, c = 0: e = (0, -1), L = 1/4, dL/dc = -1/2, G = 0, dL/dw = 0.  c = 1/2: e = (1/2, -1/2),
    L = 1/8, dL/dc = 0, G = (1/2)(1/2) = 1/4, dL/dw = (1/2)(1/2 * 1 * 1) = 1/4."""
    pb, _ = pp(CE1)
    W, A = np.ones((2, 1, 1)), np.ones((2, 1, 1))
    sc = screen_arrays(pb, W, A, c=np.array([[0.0], [0.5]]), per_neuron=True)
    assert sc.loss.tolist() == [0.25, 0.125]
    assert sc.grad_c.tolist() == [0.5, 0.0]
    assert sc.grad_A.tolist() == [0.0, 0.25] and sc.grad_W.tolist() == [0.0, 0.25]
    assert sc.row(0)["grad_c"] == 0.5
    # without c: the bias-free network, no grad_c (and no such key in the row)
    sc0 = screen_arrays(pb, W, A)
    assert sc0.grad_c is None and "grad_c" not in sc0.row(0) and sc0.loss.tolist() == [0.25, 0.25]


def test_c_zero_gives_the_bias_free_numbers_bit_for_bit(path):
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(13, 4)), rng.normal(size=(13, 2))
    X[3] = 0.0
    W, A = rng.normal(size=(17, 6, 4)), rng.normal(size=(17, 6, 2))
    pb = Problem.make(X, Y, "leaky_relu:0.1", "mse")
    a = screen_arrays(pb, W, A, per_neuron=True)
    b = screen_arrays(pb, W, A, c=np.zeros((17, 2)), per_neuron=True)
    for name in ("loss", "grad_A", "grad_W", "near_kink", "tiny", "dead", "min_rel_z", "balance", "norms"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    E = np.stack([np.where(X @ w.T > 0, 1.0, 0.1) * (X @ w.T) @ aa - Y for w, aa in zip(W, A)])
    assert np.allclose(b.grad_c, np.linalg.norm(E.mean(axis=1), axis=1), rtol=1e-12, atol=1e-15)


def test_kernel_and_numpy_fallback_agree_with_c():
    pytest.importorskip("numba")
    if screen._fused_kernel() is None:
        pytest.skip("the numba kernel did not build")
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(11, 5)), rng.normal(size=(11, 3))   # n = 11: padding rows in the kernel
    X[:, -1] = 1.0
    X[4] = 0.0
    W, A, C = rng.normal(size=(30, 9, 5)), rng.normal(size=(30, 9, 3)), 3 * rng.normal(size=(30, 3))
    pb = Problem.make(X, Y, "relu", "half_mean")
    saved = screen._KERNEL, screen._NUMBA_MIN_WORK, screen.THREAD_MIN_WORK, screen._idle_cpus
    try:
        screen._NUMBA_MIN_WORK = 0
        screen.THREAD_MIN_WORK, screen._idle_cpus = 0, lambda: 2      # two threads really run
        fast = screen_arrays(pb, W, A, c=C, per_neuron=True, chunk=7, workers=2)
        screen._KERNEL = False
        slow = screen_arrays(pb, W, A, c=C, per_neuron=True)
    finally:
        screen._KERNEL, screen._NUMBA_MIN_WORK, screen.THREAD_MIN_WORK, screen._idle_cpus = saved
    for name in ("near_kink", "tiny", "dead", "min_rel_z", "balance", "norms"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    for name in ("loss", "grad_A", "grad_W", "grad_c"):
        assert np.allclose(getattr(fast, name), getattr(slow, name), rtol=1e-13, atol=1e-15), name


def brute_force(X, Y, ap, am, W, A, C):
    """This test's oracle (independent of relucert.tools.screen): loss (half_mean), ||dL/dA||,
    ||dL/dc|| = ||mean residual|| per checkpoint, straight from f = sum_j a_j sigma(w_j.x) + c."""
    out = []
    n = X.shape[0]
    for w, a, c in zip(W, A, C):
        Z = X @ w.T
        Hs = np.where(Z > 0, ap * Z, am * Z)
        E = Hs @ a + c[None, :] - Y
        out.append(((E ** 2).sum() / (2 * n), np.sqrt(((Hs.T @ E / n) ** 2).sum()),
                    np.sqrt(((E.sum(axis=0) / n) ** 2).sum())))
    return np.array(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 9), m=st.integers(1, 5), d=st.integers(1, 4), k=st.integers(1, 3), T=st.integers(1, 6),
       act=st.sampled_from([("relu", 1.0, 0.0), ("leaky_relu:0.1", 1.0, 0.1), ("abs", 1.0, -1.0)]),
       seed=st.integers(0, 10 ** 6), zero_row=st.booleans())
def test_property_screen_stationarity_with_c_matches_brute_force(path, n, m, d, k, T, act, seed, zero_row):
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(n, d)), rng.normal(size=(n, k))
    if zero_row:
        X[0] = 0.0                       # a zero data point still counts in the mean residual (CE3)
    W, A, C = rng.normal(size=(T, m, d)), rng.normal(size=(T, m, k)), rng.normal(size=(T, k))
    pb = Problem.make(X, Y, act[0], "half_mean")
    sc = screen_arrays(pb, W, A, c=C)
    ref = brute_force(pb.Xf, pb.Yf, act[1], act[2], W, A, C)
    for got, want in ((sc.loss, ref[:, 0]), (sc.grad_A, ref[:, 1]), (sc.grad_c, ref[:, 2])):
        assert np.allclose(got, want, rtol=1e-11, atol=1e-13)


def test_trajectory_npz_carries_c(tmp_path, path):
    pb, _ = pp(CE1)
    f = tmp_path / "t.npz"
    np.savez(f, X=pb.Xf, Y=pb.Yf, W=np.ones((2, 1, 1)), A=np.ones((2, 1, 1)), c=np.array([0.0, 0.5]))
    traj = load_trajectory(str(f))
    assert traj.c.shape == (2, 1) and traj.c[:, 0].tolist() == [0.0, 0.5]
    assert traj.point(1).c.tolist() == [fmpq(1, 2)]
    # the trajectory's W carries its c into a screen that is not given c; a slice of it is refused
    assert screen_arrays(traj.problem, traj.W, traj.A).grad_c.tolist() == [0.5, 0.0]
    with pytest.raises(InputError, match="output bias"):
        screen_arrays(traj.problem, traj.W[:1], traj.A[:1])
    np.savez(f, X=pb.Xf, Y=pb.Yf, W=np.ones((2, 1, 1)), A=np.ones((2, 1, 1)), c=np.zeros((3, 1)))
    with pytest.raises(InputError, match=r"t.npz: field 'c'.*\(3, 1\).*expected \(2, 1\)"):
        load_trajectory(str(f))
    np.savez(f, X=pb.Xf, Y=pb.Yf, W=np.ones((2, 1, 1)), A=np.ones((2, 1, 1)), c=np.array([[0.0], [np.nan]]))
    with pytest.raises(InputError, match="c contains NaN"):
        load_trajectory(str(f))


def test_plateau_certification_passes_c_on():
    """CE1's checkpoint: local_min without c (Theorem A), not_stationary with c = 0 ((S0) fails)."""
    pb, _ = pp(CE1)
    W, A = np.ones((3, 1, 1)), np.ones((3, 1, 1))
    without = certify_plateaus(Trajectory(pb, W, A, np.arange(3), None, "t"), [(0, 2)])
    with_c = certify_plateaus(Trajectory(pb, W, A, np.arange(3), None, "t", c=np.zeros((3, 1))), [(0, 2)])
    assert without[0].verdict == "local_min"
    assert with_c[0].verdict == "not_stationary" and with_c[0].reading == "exact point"
    assert "(S0)" in with_c[0].reason
    # the stationary point LMC with c: a local minimum (Theorem A with (S0))
    pb2, pt2 = pp(LMC)
    rows = certify_plateaus(Trajectory(pb2, np.ones((3, 1, 1)), np.ones((3, 1, 1)), np.arange(3), None, "t",
                                       c=np.zeros((3, 1))), [(0, 2)])
    assert rows[0].verdict == certify(pb2, pt2).verdict == "local_min"


def test_cli_screen_torch_directory_with_biases_in_both_layers(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    X = [[0.5, -1.0], [1.0, 0.25], [-0.75, 2.0], [0.0, 0.0], [2.0, 1.0], [-1.0, -0.5]]
    Y = [[1.0], [-0.5], [0.25], [2.0], [0.0], [0.5]]
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"activation": "relu", "loss": "mse", "X": X, "Y": Y}))
    ckdir = tmp_path / "ckpts"
    ckdir.mkdir()
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    for step in range(6):
        torch.save(net.state_dict(), ckdir / f"step_{step * 10}.pt")
        opt.zero_grad()
        ((net(Xt) - Yt) ** 2).mean().backward()
        opt.step()
    assert main(["screen", str(ckdir), "--data", str(data), "--json", "--no-certify"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "output bias 2.bias -> c" in out["trajectory"] and "hidden bias 0.bias folded" in out["trajectory"]
    # the last checkpoint, from torch itself in float64: the loss and the mean residual include c
    net.load_state_dict(torch.load(ckdir / "step_50.pt", weights_only=True))
    with torch.no_grad():
        E = net.double()(torch.tensor(X, dtype=torch.float64)).numpy() - np.array(Y)
    last = out["final"]
    assert np.isclose(last["loss"], (E ** 2).mean(), rtol=1e-6)       # float32 weights, mse with k = 1
    assert np.isclose(last["grad_c"], abs(E.mean()), rtol=1e-5, atol=1e-9)
    # text output and plateau certification run end to end on the biased checkpoints
    assert main(["screen", str(ckdir), "--data", str(data), "--plateau-rel-change", "0.5", "--workers", "1"]) == 0
    text = capsys.readouterr().out
    # one plateau, its middle checkpoint certified exactly with its c (5 SGD steps: far from stationary)
    assert "6 checkpoints" in text and "plateaus (relative change <= 0.5" in text and "not_stationary" in text


# =============================================================================================
# embedding
# =============================================================================================

@pytest.mark.parametrize("op,kw,pred", [
    ("add_neuron", {"w": "zero"}, "saddle"),      # D(r) = (1/3)(2 s(r) - s(-r) - s(2r)) = r/3 for r < 0: escape
    ("add_neuron", {"w": "1"}, "local_min"),      # w = 1: G = (2 - 2)/3 = 0, D = 0: no escape neuron
    ("split", {"neuron": 0, "beta": "1/2,1/2"}, "local_min"),
    ("split", {"neuron": 0, "beta": "2,-1"}, "local_min"),   # phi_0 = 0: the beta < 0 copy stays stationary
    ("permute", {"perm": "0"}, "local_min"),
])
def test_embeddings_carry_c_and_predictions_hold(op, kw, pred):
    pb, pt = pp(LMC)
    emb = E.apply(pb, pt, op, **kw)
    assert emb.after.c.tolist() == [fmpq(0)] and emb.check["output_bias_equal"] is True
    assert emb.to_json()["output_bias"] == {"c": ["0"], "carried": "unchanged"}
    cmp = E.embed_and_certify(pb, pt, emb)
    assert cmp["before"] == "local_min" and cmp["predicted"] == pred and cmp["certified"] == pred
    assert cmp["checked"] is True and cmp["loss_after"] == cmp["loss_before"] == "1"
    assert cmp["_after_result"].certificate["point"]["c"] == ["0"]


def test_embedding_of_a_point_whose_s0_fails_stays_not_stationary():
    pb, pt = pp(CE1, c=[0])
    for op, kw in (("add_neuron", {"w": "zero"}), ("split", {"neuron": 0, "beta": "1/3,2/3"}),
                   ("add_neuron", {"w": "-1"})):
        cmp = E.embed_and_certify(pb, pt, E.apply(pb, pt, op, **kw))
        assert cmp["predicted"] == cmp["certified"] == "not_stationary" and "(S0)" in cmp["rule"]
        assert cmp["checked"] is True
    # merge back (E2 inverse) keeps c too
    wide = E.split(pb, pt, 0, "1/2,1/2").after
    back = E.merge(pb, wide, "0,1")
    assert back.after.c.tolist() == [fmpq(0)] and back.after.A.tolist() == [[fmpq(1)]]


def test_an_embedding_that_changed_c_would_be_caught():
    pb, pt = pp(LMC)
    other = pt.copy()
    other.c[0] = fmpq(1)
    with pytest.raises(E.FunctionChanged, match="output bias changed"):
        E.check_function_preserved(pb, pt, other)
    with pytest.raises(E.FunctionChanged, match="output bias changed"):
        E.check_function_preserved(pb, pt, Point(pt.W.copy(), pt.A.copy()))     # c dropped


# =============================================================================================
# symmetry
# =============================================================================================

def test_symmetry_constant_neuron_line_hand_computed():
    """CONST: sigma(w.x_i) = 1 on every data point, e = (1, 1, -2) sums to 0 and is orthogonal to both
    columns of X, so the point is stationary and D_0 = (1/3) sum_i e_i x_i . r = 0: the line
    (a + delta, c - delta) is exactly flat, consists of critical points and lies in ker H."""
    pb, pt = pp(CONST)
    assert constant_neurons(pb, pt) == [(0, fmpq(1))]
    an = analyze(pb, pt)
    assert an["certify"]["verdict"] == "local_min" and an["certify"]["stationary"] is True
    (ln,) = an["constant_neuron_lines"]
    (e,) = ln["directions"]
    assert ln["flat"] and ln["h"] == "1" and e["direction"]["dc"] == {"output": 0, "value": "-1"}
    assert e["polynomial_delta_positive"]["coefficients"] == ["1", "0", "0", "0", "0"]
    assert set(e["loss_at_delta"].values()) == {"1"}
    assert e["in_hessian_kernel"] is True and e["every_point_critical"] is True
    assert an["hessian"]["constant_neuron_lines_in_kernel"] == 1 and an["hessian"]["kernel_split"]["rest"] == 1
    assert an["rescaling"]["invariants"] == ["0"] and "not rescaled" in an["rescaling"]["note"]
    assert an["output_bias"]["c"] == ["0"]
    # without c there is no such line (nothing absorbs the neuron's output)
    assert constant_neurons(pb, Point(pt.W, pt.A)) == []


def test_symmetry_constant_neuron_line_outside_the_kernel_gives_negative_curvature():
    """CE2 with c = 0: both data points have w.x_i = 1, so neuron 0 is constant (h = 1).  Output 1:
    D_0 has output-1 component (r2 - r1)/2 != 0, so the line leaves the critical set; it is exactly
    flat but not in ker H, and v - s H v has negative curvature (CE2 is a saddle with c)."""
    pb = Problem.make([[1, 0], [0, 1]], [[2, 1], [2, -1]], "relu", "half_mean")
    pt = Point.make([[1, 1]], [[2, 0]], pb, c=[0, 0])
    H = hessian(pb, pt)
    ln = constant_neuron_line(pb, pt, 0, fmpq(1), H=H, stationary=True)
    assert ln["flat"]
    d0, d1 = ln["directions"]
    assert d0["in_hessian_kernel"] and d0["every_point_critical"]
    assert not d1["in_hessian_kernel"] and d1["every_point_critical"] is False
    assert d1["negative_curvature"]["negative"] and d1["negative_curvature"]["u_H_u"].startswith("-")
    assert certify(pb, pt).verdict == "saddle"


def test_symmetry_flat_line_of_equal_w_uses_the_residuals_with_c():
    pb, pt = pp(LMC)
    wide = E.split(pb, pt, 0, "1/2,1/2").after
    an = analyze(pb, wide, do_hessian=False)
    (fl,) = an["flat_lines"]
    assert fl["flat"] and fl["loss"] == "1" and fl["permutation_point"]
    assert an["permutation"]["orbit_size"] == 1 and "not permuted" in an["permutation"]["note"]


# =============================================================================================
# derive (symbolic)
# =============================================================================================

def test_symbolic_model_with_c_hand_computed():
    pb, pt = pp(CE1, c=[0])
    M = SymbolicModel.from_problem(pb, pt)
    c0 = sp.Symbol("c_0", real=True)
    assert M.params()[-1] == c0 and M.has_output_bias
    assert M.mean_residual(at_point=True) == [sp.Rational(-1, 2)]
    (g,) = M.gradient([c0])
    assert sp.expand(g - M.mean_residual()[0]) == 0          # dL/dc is the mean residual
    assert M.at_point(g) == sp.Rational(-1, 2)
    # L(theta + t (0, 0, dc = 1/2)) - L = -t/4 + t^2/8 (docs/biases.md §7, CE1)
    assert M.ray_coefficients([[0]], [[0]], dc=[sp.Rational(1, 2)]) == [sp.Rational(-1, 4), sp.Rational(1, 8), 0, 0]
    assert M.directional_derivative([[0]], [[0]], at_point=True, dc=[1]) == sp.Rational(-1, 2)
    assert M.directional_derivative_limit([[0]], [[0]], dc=[1]) == sp.Rational(-1, 2)
    # the escape path keeps c fixed; a view of one neuron freezes c at its value
    assert M.view(0).bias_params() == [] and M.view(0).at_point(M.view(0).loss()) == sp.Rational(1, 4)


def test_symbolic_hessian_with_c_is_the_engines_joint_hessian():
    pb = Problem.make([[1, 0], [0, 1]], [[2, 1], [2, -1]], "relu", "half_mean")
    pt = Point.make([[1, 1]], [[2, 0]], pb, c=[0, 0])
    M = SymbolicModel.from_problem(pb, pt)
    Hs = M.at_point(M.hessian())
    He = hessian(pb, pt)
    assert [[fmpq(int(v.p), int(v.q)) for v in row] for row in Hs.tolist()] == He


def _q(draw, lo=-3, hi=3):
    return fmpq(draw(st.integers(lo, hi)), draw(st.integers(1, 3)))


@st.composite
def point_with_c_and_direction(draw):
    n, d, k, m = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    X = [[_q(draw) for _ in range(d)] for _ in range(n)]
    Y = [[_q(draw) for _ in range(k)] for _ in range(n)]
    W = [[_q(draw) for _ in range(d)] for _ in range(m)]
    A = [[_q(draw) for _ in range(k)] for _ in range(m)]
    c = [_q(draw) for _ in range(k)]
    dW = [[_q(draw) for _ in range(d)] for _ in range(m)]
    dA = [[_q(draw) for _ in range(k)] for _ in range(m)]
    dc = [_q(draw) for _ in range(k)]
    act = draw(st.sampled_from(["relu", "leaky_relu:1/10", "abs"]))
    return X, Y, W, A, c, dW, dA, dc, act


@settings(max_examples=25, deadline=None)
@given(point_with_c_and_direction())
def test_property_symbolic_directional_derivative_with_c(inst):
    """L'(theta; Delta) with Delta c three ways, exactly: the symbolic formula (G_j, D_j and e_bar . dc),
    the symbolic definition (t-coefficient of the loss along the ray, c moving) and the exact engine."""
    from relucert.core.formulas import ExactState
    X, Y, W, A, c, dW, dA, dc, act = inst
    pb = Problem.make(X, Y, act, "half_mean")
    pt = Point.make(W, A, pb, c=c)
    M = SymbolicModel.from_problem(pb, pt, dW=dW)
    formula = M.directional_derivative(dW, dA, at_point=True, dc=dc)
    limit = M.directional_derivative_limit(dW, dA, dc=dc)
    dWe, dAe = Point.make(dW, dA, pb).W, Point.make(dW, dA, pb).A
    engine = ExactState(pb, pt).directional_derivative(dWe, dAe, dc)
    assert formula == limit and fmpq(int(limit.p), int(limit.q)) == engine


def test_generic_symbolic_model_with_output_bias():
    M = SymbolicModel.generic(2, 1, 1, 1, output_bias=True)
    assert [str(p) for p in M.params()] == ["w_0", "a_0", "c_0"]
    (g,) = M.gradient([M.C[0]])
    assert sp.expand(g - (M.residual(0)[0] + M.residual(1)[0]) / 2) == 0


# =============================================================================================
# command line
# =============================================================================================

def test_cli_derive_with_c(tmp_path, capsys):
    f = write(tmp_path, CE1, c=[0])
    assert main(["derive", f]) == 0
    out = capsys.readouterr().out
    assert "+ c (output bias c, a free parameter)" in out and "output bias: c = (0)" in out
    assert "dL/dc (at the point) = -1/2" in out and "(S0) fails" in out
    assert "L(W, A, c) on this pattern" in out
    assert "Hessian of L in (W, A, c) at the point (parameters w_0, a_0, c_0)" in out


def test_cli_embed_with_c(tmp_path, capsys):
    f = write(tmp_path, LMC)
    o = tmp_path / "wide.json"
    assert main(["embed", f, "--add-neuron", "zero", "--certify", "--json", "-o", str(o)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["comparison"]["predicted"] == out["comparison"]["certified"] == "saddle"
    assert out["comparison"]["checked"] is True and out["operation"]["output_bias"]["c"] == ["0"]
    wide = json.loads(o.read_text())
    assert wide["c"] == ["0"] and len(wide["W"]) == 2
    assert main(["embed", f, "--split", "0", "--beta", "1/2,1/2", "--certify"]) == 0
    assert "output bias c = (0) carried unchanged" in capsys.readouterr().out


def test_cli_symmetry_with_c(tmp_path, capsys):
    f = write(tmp_path, CONST)
    assert main(["symmetry", f, "--json"]) == 0
    an = json.loads(capsys.readouterr().out)
    assert an["output_bias"]["c"] == ["0"] and an["constant_neuron_lines"][0]["flat"] is True
    assert an["hessian"]["size"] == 4
    assert main(["symmetry", f]) == 0
    out = capsys.readouterr().out
    assert "output bias c = (0)" in out
    assert "neuron 0, output 0, h = 1: exactly flat; in ker H; every point critical" in out


def test_cli_screen_npz_with_c_json_text_and_converge(tmp_path, capsys):
    f = tmp_path / "t.npz"
    np.savez(f, X=np.array([[1.0], [-1.0]]), Y=np.array([[1.0], [1.0]]), W=np.ones((2, 1, 1)), A=np.ones((2, 1, 1)),
             c=np.array([[0.0], [0.5]]))
    assert main(["screen", str(f), "--json", "--no-certify"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["per_checkpoint"]["grad_c"] == [0.5, 0.0] and out["per_checkpoint"]["loss"] == [0.25, 0.125]
    assert main(["screen", str(f), "--no-certify"]) == 0
    assert "|dL/dc| 0.00e+00" in capsys.readouterr().out
    assert main(["screen", str(f), "--json", "--no-certify", "--converge", "--quiet"]) == 0
    last = json.loads(capsys.readouterr().out)["last_checkpoint"]
    # the last checkpoint as certified: with its c = 1/2 (loss 1/8), not the bias-free network (loss 1/4)
    assert last["given"]["output_bias"] == ["1/2"] and last["given"]["loss"]["exact"] == "1/8"
