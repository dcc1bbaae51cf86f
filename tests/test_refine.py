"""Refinement of float candidates (docs/theory.md §6) and the torch / trajectory loaders."""
import json
import os
from fractions import Fraction
import subprocess
import sys

import numpy as np
import pytest
from flint import fmpq

from relucert.check import require_valid
from relucert.io import load, problem_point_from_dict
from relucert.refine import Tolerances, classify, refine, refined_report

PAPER = os.path.join(os.path.dirname(__file__), "..", "examples", "paper")

CLI = [sys.executable, "-m", "relucert.cli"]

# KINK_MIN of tests/cases.py (a local minimum with x2 on the kink of neuron 0), perturbed as a float
# trainer leaves it: w.x2 = 1e-7 > 0 instead of 0, a slightly off; plus a tiny neuron whose kink is x2.
PERTURBED = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]],
             "W": [[1.0000001, 1e-7], [-1e-7, 1e-12]], "A": [[0.9999999], [1e-6]]}


def _refined(data, **tol):
    pb, pt = problem_point_from_dict(data)
    return pb, pt, refined_report(pb, pt, refine(pb, pt, Tolerances(**tol)))


def test_classify_snaps_and_flags_tiny():
    pb, pt = problem_point_from_dict(PERTURBED)
    pat = classify(pb, pt, Tolerances())
    assert pat.status == ["alive", "tiny"]
    assert pat.kinks == [[1], [1]]
    assert {(j, i) for j, i, _ in pat.snapped} == {(0, 1), (1, 1)}
    # nothing is rounded: the point itself is untouched
    assert pt.W[1, 1] == fmpq(*(1e-12).as_integer_ratio())


def test_refined_local_min_with_reading_ambiguity():
    pb, pt, rf = _refined(PERTURBED)
    assert rf["verdict"] == "local_min" and rf["reading"] == "as_given"
    assert require_valid(rf["certificate"]) == "local_min"
    verdicts = {r["reading"]: r["verdict"] for r in rf["readings"]}
    assert verdicts == {"as_given": "local_min", "tiny_output_zero": "saddle", "tiny_zero": "saddle"}
    assert rf["ambiguities"] and rf["ambiguities"][0]["verdicts"] == verdicts
    assert rf["distance"]["max_abs"] < 2e-7
    assert rf["pattern_changes"]["snapped_by_data_point"] == {"1": [0, 1]}
    # the refined point is exactly on the kink and exactly fits x1
    cert = rf["certificate"]
    W = cert["point"]["W"]
    assert W[0][1] == "0" and W[1][1] == "0"


def test_refined_point_keeps_ratio():
    pb, pt, rf = _refined(PERTURBED)
    from fractions import Fraction
    W = [[Fraction(v) for v in r] for r in rf["certificate"]["point"]["W"]]
    A = [[Fraction(v) for v in r] for r in rf["certificate"]["point"]["A"]]
    v = abs(A[0][0]) * W[0][0]
    assert v == 1  # |a| w . x1 = y1 exactly
    ratio0 = 0.9999999 / np.hypot(1.0000001, 1e-7)
    assert abs(float(abs(A[0][0]) / abs(W[0][0])) - ratio0) < 1e-12


def test_leaving_the_pattern_is_reported(monkeypatch):
    # x2 strictly positive for neuron 0 (relative 0.05 > any kink tolerance): on that pattern the fit needs
    # v = (1, -1), so v.x2 < 0: the refined point leaves the pattern -> say so, stop, no verdict.  (With
    # the pattern rounds x2 becomes a kink and the point certifies, tests/test_refine_vector_rounds.py;
    # here they are switched off.)
    import relucert.refine.exact as exact
    monkeypatch.setattr(exact, "PATTERN_ROUNDS", 0)
    data = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]], "W": [[1, 0.05]], "A": [[1]]}
    pb, pt, rf = _refined(data)
    assert rf["left_pattern"] == [[0, 1]]
    assert rf["verdict"] == "inconclusive" and "leaves the pattern" in rf["reason"]
    assert rf["certificate"] is None


def test_vector_refinement_certifies():
    # vector output: a local minimum perturbed in floats; Newton at 60 digits, rational rounding,
    # exact refit of A -> exactly stationary again
    data = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1, 2], [-1, -1]],
            "W": [[1.0000001, 1e-8]], "A": [[1.0000002, 1.9999999]]}
    pb, pt, rf = _refined(data)
    assert rf["verdict"] == "local_min", rf["reason"]
    assert require_valid(rf["certificate"]) == "local_min"
    assert rf["distance"]["max_abs"] < 1e-6
    assert "activation-pattern groups" in rf["method"]


def test_vector_rank_constrained_uses_newton():
    # one neuron, active on all three points, k = 2: its group is rank-1 constrained, so the exact
    # linear route does not apply; least-norm Newton at 60 digits runs and the verdict stays honest
    data = {"activation": "relu", "X": [[1, 0], [0, 1], [1, 1]], "Y": [[1, "0.5"], [1, "0.5"], [2, "-0.5"]],
            "W": [[1.01, 0.99]], "A": [[1.3, 0.01]]}
    pb, pt, rf = _refined(data, stationary=1.0)
    r = rf["readings"][0]
    assert "Newton" in r["method"]
    assert rf["verdict"] in ("local_min", "inconclusive", "not_stationary")
    if rf["certificate"] is not None:
        assert require_valid(rf["certificate"]) == rf["verdict"]
    else:
        assert "not exactly stationary" in r["method"] or rf["verdict"] == "inconclusive"


def test_auto_kink_tolerance_uses_a_clear_gap():
    # relative |w.x| values 2e-3 (a neuron zig-zagging on a kink) and >= 0.5: raised to the gap
    from relucert.refine import effective_kink_tol
    data = {"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]], "W": [[1, 0.002]], "A": [[1]]}
    pb, pt = problem_point_from_dict(data)
    eff = effective_kink_tol(pb, pt, Tolerances())
    assert 2e-3 < eff <= 1e-2
    assert classify(pb, pt, Tolerances()).kinks == [[1]]
    assert classify(pb, pt, Tolerances(kink_auto=False)).kinks == [[]]
    # no clear gap: the base tolerance stays
    data["W"] = [[1, 0.05]]
    pb, pt = problem_point_from_dict(data)
    assert effective_kink_tol(pb, pt, Tolerances()) == Tolerances().kink


def test_cli_refine_json(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps(PERTURBED))
    cert = tmp_path / "c.json"
    r = subprocess.run(CLI + ["certify", str(f), "--json", "--certificate", str(cert)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["given"]["verdict"] == "not_stationary"
    assert out["verdict"] == "local_min" and out["about"] == "refined point"   # the answer leads
    rf = out["refined"]
    for key in ("verdict", "escape_neurons", "distance", "pattern_changes", "ambiguities", "certificate"):
        assert key in rf
    assert rf["verdict"] == "local_min"
    assert subprocess.run(CLI + ["check", str(cert)], capture_output=True, text=True).returncode == 0
    r = subprocess.run(CLI + ["certify", str(f), "--json", "--exact-only"], capture_output=True, text=True)
    assert json.loads(r.stdout)["refined"] is None


def test_trajectory_index(tmp_path):
    p = tmp_path / "traj.npz"
    W = np.stack([np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]])])
    A = np.stack([np.array([[1.0]]), np.array([[0.0]])])
    np.savez(p, X=np.array([[1.0, 0.0], [0.0, 1.0]]), Y=np.array([[1.0], [-1.0]]), W=W, A=A,
             step=np.array([0, 10]), loss=np.array([0.5, 0.25]))
    outs = []
    for idx in ("0", "1", "-1"):
        r = subprocess.run(CLI + ["certify", str(p), "--index", idx, "--json", "--exact-only"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout)["verdict"])
    assert outs == ["local_min", "saddle", "saddle"]
    r = subprocess.run(CLI + ["certify", str(p), "--index", "5"], capture_output=True, text=True)
    assert r.returncode == 2 and "out of range" in r.stderr


def test_torch_loader(tmp_path):
    torch = pytest.importorskip("torch")
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"activation": "relu", "X": [[1, 0], [0, 1]], "Y": [[1], [-1]]}))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layer = torch.nn.Linear(2, 1, bias=False)
            self.output_layer = torch.nn.Linear(1, 1, bias=False)

    net = Net()
    with torch.no_grad():
        net.input_layer.weight[:] = torch.tensor([[1.0, 0.0]])
        net.output_layer.weight[:] = torch.tensor([[1.0]])
    ck = tmp_path / "m.pt"
    torch.save({"model_state_dict": net.state_dict(), "epoch": 3}, ck)
    r = subprocess.run(CLI + ["certify", "--torch", str(ck), "--data", str(data), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "local_min"
    r = subprocess.run(CLI + ["certify", "--torch", str(ck), "--data", str(data), "--json",
                              "--keys", "input_layer.weight,output_layer.weight"], capture_output=True, text=True)
    assert json.loads(r.stdout)["verdict"] == "local_min"
    r = subprocess.run(CLI + ["certify", "--torch", str(ck), "--data", str(data), "--keys", "a,b"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no key 'a'" in r.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    r = subprocess.run(CLI + ["certify", "--torch", str(bad), "--data", str(data)], capture_output=True, text=True)
    assert r.returncode == 2 and "cannot load" in r.stderr and "Traceback" not in r.stderr
    withbias = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    torch.save(withbias.state_dict(), tmp_path / "b.pt")
    r = subprocess.run(CLI + ["certify", "--torch", str(tmp_path / "b.pt"), "--data", str(data), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr          # the output bias is read into c, never dropped
    out = json.loads(r.stdout)
    assert out["torch_mapping"]["output_bias"] == "2.bias" and out["given"]["output_bias"] is not None
    # refinement carries c (issue 14): it runs when the (untrained) point is near-stationary, and the
    # refined point keeps its output bias
    assert (out["verdict"] in ("local_min", "saddle", "global_min") or out["refined"] is not None
            or out["float_gradient_relative"] > 1e-3)
    if out["refined"] is not None and out["refined"]["point"] is not None:
        assert "c" in out["refined"]["point"]


def test_vector_near_replicas_are_merged_refined_and_split_back():
    # width 1: w = (1/2, 1/2), a = (2, 0) is exactly stationary with residuals (0, t_i), t = (1, 1, -1),
    # sum t_i x_i = 0 so D == 0: a local minimum (Theorem A).  Two near-parallel copies of it (angles
    # ~4e-4 rad apart) make the grouped least squares ill-posed (a rank-1 group fitted as rank 2);
    # read as exact replicas, the narrow point is refined by Newton, split back with
    # (gamma_l u, beta_l c / gamma_l), and the wide point certifies.
    data = {"activation": "relu", "X": [[1, 0], [0, 1], [1, 1]], "Y": [[1, -1], [1, -1], [2, 1]],
            "W": [[0.5, 0.5003], [0.5004, 0.5]], "A": [[1.0002, 0.0001], [0.9999, -0.0002]]}
    pb, pt, rf = _refined(data, stationary=1.0)
    assert rf["verdict"] == "local_min", rf["reason"]
    assert "replica clusters merged ({0,1}" in rf["method"] and "split back exactly" in rf["method"]
    assert require_valid(rf["certificate"]) == "local_min"
    assert rf["distance"]["relative"] < 1e-3
    W = rf["certificate"]["point"]["W"]
    # the two copies are exactly parallel
    assert Fraction(W[0][0]) * Fraction(W[1][1]) == Fraction(W[0][1]) * Fraction(W[1][0])
    # without the replica reading the refinement cannot certify this point
    pb2, pt2, rf2 = _refined(data, stationary=1.0, replica_angle=0.0)
    assert rf2["verdict"] == "inconclusive"


def test_vector_plateau_rounding_is_inconclusive_with_residual():
    # 2-D -> 2-D paper run, third plateau: two replica clusters (27 and 21 neurons); the merged narrow
    # point is a rank-constrained fit whose stationary point is irrational, so the rational rounding
    # is not exactly stationary.  With the tiny neurons kept (as given / output zero) that is
    # inconclusive with the residual, never not_stationary; read as exactly zero, a ball certificate
    # proves an exact stationary point nearby that is a saddle (tests/test_ball.py)
    pb, pt = load(os.path.join(PAPER, "2d_input_2d_output_plateau3.json"))
    rf = refined_report(pb, pt, refine(pb, pt))
    assert rf["distance"]["relative_to_scale"] < 0.05
    by = {r["reading"]: r for r in rf["readings"]}
    for name in ("as_given", "tiny_output_zero"):
        assert by[name]["verdict"] == "inconclusive", by[name]
        assert "replica clusters merged" in by[name]["method"]
        assert "not exactly stationary (residual" in by[name]["method"]
    assert by["tiny_zero"]["verdict"] == "saddle" and "ball certificate" in by["tiny_zero"]["method"]
