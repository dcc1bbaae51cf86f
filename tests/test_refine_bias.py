"""Refinement and --converge with an output bias c (issue 14; docs/biases.md §8 item 10, theory §6).

Hand-computed cases, a property test against a brute-force oracle (Fractions, written here
independently of relucert's formulas), and the end-to-end CLI run of the issue's done-when: a
default-bias PyTorch MLP certifies from the command line in one command.
"""
from __future__ import annotations

import json
from fractions import Fraction as Q

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import relucert
from relucert.check import check_certificate
from relucert.core.problem import Point, Problem
from relucert.refine import Tolerances, float_gradient_norm, refine_point
from relucert.refine.converge import converge

DEFINITE = ("local_min", "saddle", "global_min")
FAR = Tolerances(max_move=10.0)      # hand cases that move farther than the default 5 %


# ---------------------------------------------------------------------------------------------
# brute-force oracle (Fractions; ReLU-like sigma with slopes ap, am)
# ---------------------------------------------------------------------------------------------

def oracle_residuals(X, Y, W, A, c, ap=Q(1), am=Q(0)):
    """e_i = sum_j a_j sigma(w_j . x_i) + c - y_i, exactly."""
    out = []
    for x, y in zip(X, Y):
        f = [Q(v) for v in c] if c is not None else [Q(0)] * len(y)
        for w, a in zip(W, A):
            z = sum(Q(wq) * Q(xq) for wq, xq in zip(w, x))
            s = ap * z if z > 0 else am * z
            f = [fv + Q(av) * s for fv, av in zip(f, a)]
        out.append([fv - Q(yv) for fv, yv in zip(f, y)])
    return out


def frac(s: str) -> Q:
    return Q(s)


def point_of(rep: dict):
    p = rep["point"]
    return ([[frac(v) for v in r] for r in p["W"]], [[frac(v) for v in r] for r in p["A"]],
            None if "c" not in p else [frac(v) for v in p["c"]])


# ---------------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------------

def test_scalar_regression_with_intercept_refines_to_the_exact_fit():
    # one ReLU neuron active on x = 1, 2, 3: f = v x + c with v = a w.  The least-squares line
    # through (1, 1), (2, 2), (3, 4) has slope 3/2 and intercept 7/3 - 3 = -2/3; residuals
    # (-1/6, 1/3, -1/6), loss (1/6) (1/6) = 1/36 (half_mean)
    pb = Problem.make([[1], [2], [3]], [[1], [2], [4]], "relu", "half_mean")
    pt = Point.make([[1.2]], [[1.2501]], pb, c=[-0.6601])
    rep = refine_point(pb, pt, FAR)
    assert rep["verdict"] == "local_min", rep["reason"]
    W, A, c = point_of(rep)
    assert W[0][0] * A[0][0] == Q(3, 2) and c == [Q(-2, 3)]
    E = oracle_residuals([[1], [2], [3]], [[1], [2], [4]], W, A, c)
    assert E == [[Q(-1, 6)], [Q(1, 3)], [Q(-1, 6)]]
    assert Q(rep["loss"]["exact"]) == Q(1, 36)
    assert "max_abs_c" in rep["distance"] and abs(rep["distance"]["max_abs_c"] - (2 / 3 - 0.6601)) < 1e-12
    assert check_certificate(rep["certificate"]).ok


def test_the_bias_free_normal_equations_are_not_enough_with_c():
    # the bias-free least squares v = sum xy / sum x^2 = 17/14 with c = 0 given: (S1) holds, but the
    # residual mean is 17/14 * 2 - 7/3 = 2/21 != 0, so the point is not stationary with c free;
    # its float gradient is |e_bar| / (max|y| max|x|) = (2/21) / 12.  Refinement reaches the fit with
    # intercept of the previous test
    pb = Problem.make([[1], [2], [3]], [[1], [2], [4]], "relu", "half_mean")
    pt = Point.make([[1]], [[Q(17, 14)]], pb, c=[0])
    assert relucert.certify(pb, pt).verdict == "not_stationary"
    assert abs(float_gradient_norm(pb, pt) - (2 / 21) / 12) < 1e-15
    rep = refine_point(pb, pt, FAR)
    W, A, c = point_of(rep)
    assert rep["verdict"] == "local_min" and W[0][0] * A[0][0] == Q(3, 2) and c == [Q(-2, 3)]


def test_c_absorbs_the_residual_mean_when_no_neuron_is_alive():
    # a strictly dead neuron (w = -1 on x > 0): the network is the constant c, and the stationary c
    # is the mean of y, 7/3; residuals (-4/3, -1/3, 5/3), loss (16 + 1 + 25)/9 / 6 = 7/9.  A dead
    # neuron is no escape neuron and the residuals are centred: local_min
    pb = Problem.make([[1], [2], [3]], [[1], [2], [4]], "relu", "half_mean")
    pt = Point.make([[-1]], [[1]], pb, c=[2.3])
    rep = refine_point(pb, pt)
    assert rep["verdict"] == "local_min", rep["reason"]
    W, A, c = point_of(rep)
    assert W == [[-1]] and A == [[1]] and c == [Q(7, 3)]
    assert Q(rep["loss"]["exact"]) == Q(7, 9)
    assert "output bias centred exactly" in rep["method"]


def test_vector_output_grouped_solve_carries_c():
    # k = 2, two ReLU neurons of one activation pattern (both active everywhere): the group is wide
    # enough (2 >= min(k, d) = 1 with d = 1), so the grouped solve is exact: f = M x + c with M, c the
    # least-squares line of each output through x = 1, 2, 3: output 0 targets (1, 2, 4): slope 3/2,
    # intercept -2/3; output 1 targets (0, 1, 1): slope 1/2, intercept -1/3
    X, Y = [[1], [2], [3]], [[1, 0], [2, 1], [4, 1]]
    pb = Problem.make(X, Y, "relu", "half_mean")
    pt = Point.make([[1.0], [0.5]], [[1.0, 0.3], [1.01, 0.4]], pb, c=[-0.7, -0.3])
    rep = refine_point(pb, pt, FAR)
    W, A, c = point_of(rep)
    M = [sum(W[j][0] * A[j][q] for j in range(2)) for q in range(2)]
    assert M == [Q(3, 2), Q(1, 2)] and c == [Q(-2, 3), Q(-1, 3)], rep["method"]
    E = oracle_residuals(X, Y, W, A, c)
    assert [sum(e[q] for e in E) for q in range(2)] == [0, 0]
    assert rep["verdict"] in DEFINITE and check_certificate(rep["certificate"]).ok


def test_converge_moves_c_and_keeps_it():
    # CE1 of docs/biases.md with c free: x = 1, -1, y = 1, 1, w = a = 1, c = 0 is not stationary;
    # the dynamics move c (dL/dc = e_bar = -1/2 at the start) and never drop it
    pb = Problem.make([[1], [-1]], [[1], [1]], "relu", "half_mean")
    pt = Point.make([[1]], [[1]], pb, c=[0])
    cv = converge(pb, pt, method="lbfgs")
    assert cv.point.c is not None and cv.end_loss < 1e-20 and cv.distance["max_abs_c"] > 0.5
    flow = converge(pb, pt, method="flow", max_steps=300)
    assert flow.point.c is not None and flow.end_loss < flow.start_loss / 100


# ---------------------------------------------------------------------------------------------
# property: a refinement that reports a definite verdict is exactly stationary in (S0)
# ---------------------------------------------------------------------------------------------

@st.composite
def instances(draw):
    n = draw(st.integers(3, 6))
    d = draw(st.integers(1, 2))
    m = draw(st.integers(1, 3))
    k = draw(st.integers(1, 2))
    small = st.integers(-6, 6)
    X = [[Q(draw(small), 2) for _ in range(d)] for _ in range(n)]
    Y = [[Q(draw(small), 3) for _ in range(k)] for _ in range(n)]
    W = [[Q(draw(small), 4) for _ in range(d)] for _ in range(m)]
    A = [[Q(draw(small), 4) for _ in range(k)] for _ in range(m)]
    c = [Q(draw(small), 5) for _ in range(k)]
    act = draw(st.sampled_from(["relu", "leaky_relu:1/10"]))
    return X, Y, W, A, c, act


@settings(max_examples=30, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(instances())
def test_definite_refinements_are_exactly_centred(inst):
    X, Y, W, A, c, act = inst
    pb = Problem.make(X, Y, act, "half_mean")
    pt = Point.make(W, A, pb, c=c)
    rep = refine_point(pb, pt, FAR)
    if rep["verdict"] not in DEFINITE or rep["certificate"] is None:
        return
    Wr, Ar, cr = point_of(rep)
    assert cr is not None and len(cr) == len(c)          # c is carried, never dropped
    am = Q(0) if act == "relu" else Q(1, 10)
    E = oracle_residuals(X, Y, Wr, Ar, cr, Q(1), am)
    assert all(sum(e[q] for e in E) == 0 for q in range(len(c))), (rep["verdict"], rep["method"])
    if rep["verdict"] == "global_min":
        assert all(v == 0 for e in E for v in e)
    assert check_certificate(rep["certificate"]).ok


# ---------------------------------------------------------------------------------------------
# end to end: the done-when
# ---------------------------------------------------------------------------------------------

def test_default_bias_torch_mlp_certifies_from_the_cli(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from torch import nn
    torch.manual_seed(0)
    torch.set_num_threads(1)
    n, d, m, k = 24, 2, 6, 1
    X = torch.randn(n, d, dtype=torch.float64)
    teacher = nn.Sequential(nn.Linear(d, 3), nn.ReLU(), nn.Linear(3, k)).double()
    with torch.no_grad():
        Y = teacher(X) + 0.1 * torch.randn(n, k, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, k)).double()     # biases in both layers
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2000):
        opt.zero_grad()
        nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=5000, tolerance_grad=1e-14,
                              tolerance_change=1e-16, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        lbfgs.zero_grad()
        v = nn.functional.mse_loss(model(X), Y)
        v.backward()
        return v
    lbfgs.step(closure)
    ck, data, cert = tmp_path / "ckpt.pt", tmp_path / "data.json", tmp_path / "cert.json"
    torch.save(model.state_dict(), ck)
    data.write_text(json.dumps({"X": X.tolist(), "Y": Y.tolist(), "activation": "relu", "loss": "mse"}))
    from relucert import cli        # the CLI entry point, in-process (torch is imported once)
    capsys.readouterr()
    code = cli.main(["certify", "--torch", str(ck), "--data", str(data), "--json", "--certificate", str(cert)])
    r = capsys.readouterr()
    assert code == 0, r.err
    out = json.loads(r.out)
    assert out["given"]["verdict"] == "not_stationary"         # a float checkpoint, exactly as given
    assert out["about"] == "refined point" and out["verdict"] in DEFINITE, out["reason"]
    assert out["torch_mapping"]["output_bias"] == "2.bias"
    refined = out["refined"]["point"]
    assert "c" in refined and len(refined["c"]) == k
    # the hidden bias is the folded constant input column: the refined network's residuals (oracle,
    # on the data as loaded) sum to zero exactly
    Xq = [[Q(repr(v)) for v in row] + [Q(1)] for row in X.tolist()]     # JSON decimals, read exactly
    Yq = [[Q(repr(v)) for v in row] for row in Y.tolist()]
    Wr, Ar, cr = point_of(out["refined"])
    E = oracle_residuals(Xq, Yq, Wr, Ar, cr)
    assert sum(e[0] for e in E) == 0
    assert cli.main(["check", str(cert)]) == 0, capsys.readouterr()
    assert json.loads(cert.read_text())["verdict"] == out["verdict"]
