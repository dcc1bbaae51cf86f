"""The paper's three runs, end to end, on the committed files (no retraining)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from relucert.check import require_valid
from relucert.io import load
from relucert.refine import refine, refined_report
from relucert.tools.screen import certify_plateaus, detect_plateaus, load_trajectory

HERE = os.path.dirname(__file__)
PAPER = os.path.join(HERE, "..", "examples", "paper")
CLI = [sys.executable, "-m", "relucert.cli"]


def _p(name):
    return os.path.join(PAPER, name)


def _refined(name):
    pb, pt = load(_p(name))
    return pb, pt, refined_report(pb, pt, refine(pb, pt))


def test_1d_final_loss_is_the_authors_number():
    # the committed final point reproduces the authors' float32 mse bit for bit
    z = np.load(_p("1d_input_with_bias_final.npz"))
    X = z["X_float32"] if "X_float32" in z.files else z["X"].astype(np.float32)
    Y = z["Y_float32"] if "Y_float32" in z.files else z["Y"].astype(np.float32)
    torch = pytest.importorskip("torch")
    sd = torch.load(_p("1d_input_with_bias_final.pt"), weights_only=True)
    sd = sd.get("model_state_dict", sd)
    Wt, At = sd["input_layer.weight"], sd["output_layer.weight"]
    out = torch.relu(torch.tensor(X) @ Wt.T) @ At.T
    loss = torch.nn.functional.mse_loss(out, torch.tensor(Y))
    assert float(loss) == 0.027885962277650833


def test_1d_end_point_refines_to_certified_local_min():
    pb, pt, rf = _refined("1d_input_with_bias.json")
    assert rf["verdict"] == "local_min"
    assert require_valid(rf["certificate"]) == "local_min"
    groups = rf["pattern_changes"]["snapped_by_data_point"]
    # the big group converging onto the kink of x5 = (0.7, 1) (0-based data index 4)
    assert len(groups["4"]) == 28
    # one tiny neuron (18) on the kink of x1 with a non-zero output weight; reading it as 0 changes the verdict
    assert groups["0"] == [18]
    assert pt.A[18, 0] != 0
    assert rf["pattern_changes"]["tiny"] == [18]
    verdicts = {r["reading"]: r["verdict"] for r in rf["readings"]}
    assert verdicts["as_given"] == "local_min" and verdicts["tiny_output_zero"] == "saddle"
    assert any("tiny neurons [18]" in a["what"] for a in rf["ambiguities"])
    assert rf["distance"]["relative"] < 1e-3


def test_2d_to_2d_end_point():
    pb, pt, rf = _refined("2d_input_2d_output.json")
    assert rf["verdict"] == "local_min"
    assert require_valid(rf["certificate"]) == "local_min"
    assert rf["loss"]["exact"] == "17/200"          # mse 0.085 exactly at the refined point
    assert rf["distance"]["relative"] < 1e-3


def test_3d_end_point_interpolates():
    pb, pt, rf = _refined("3d_input.json")
    assert rf["verdict"] == "global_min"
    assert require_valid(rf["certificate"]) == "global_min"
    assert rf["loss"]["exact"] == "0"


@pytest.mark.parametrize("k, verdict", [(1, "saddle"), (2, "saddle"), (3, "local_min")])
def test_1d_plateau_checkpoints(k, verdict):
    pb, pt, rf = _refined(f"1d_input_with_bias_plateau{k}.json")
    assert rf["verdict"] == verdict
    assert require_valid(rf["certificate"]) == verdict
    if verdict == "saddle":
        assert rf["escape_neurons"]
        assert rf["escape_path_losses"] and all(float(r["decrease"].split("/")[0]) > 0
                                                 for r in rf["escape_path_losses"])


def test_1d_trajectory_plateau_table():
    traj = load_trajectory(_p("1d_input_with_bias_traj.npz"))
    pl = detect_plateaus(traj.step, traj.loss)
    assert len(pl) == 3
    # the paper: plateaus end near iterations 42000 and 152000
    assert abs(traj.step[pl[0][1]] - 42000) < 8000 and abs(traj.step[pl[1][1]] - 152000) < 10000
    rows = certify_plateaus(traj, pl, workers=1)
    assert [r.verdict for r in rows] == ["saddle", "saddle", "local_min"]
    for r in rows[:2]:
        assert r.escape_neurons and r.grown and r.grown_are_escape is True


def test_screen_cli_on_paper_trajectory(tmp_path):
    png = tmp_path / "1d.png"
    r = subprocess.run(CLI + ["screen", _p("1d_input_with_bias_traj.npz"), "--plot", str(png)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "saddle" in r.stdout and "local_min" in r.stdout and png.exists()


def test_certify_cli_paper_end_point(tmp_path):
    cert = tmp_path / "c.json"
    r = subprocess.run(CLI + ["certify", _p("1d_input_with_bias.json"), "--certificate", str(cert)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "== refined point ==" in r.stdout and "verdict: LOCAL_MIN" in r.stdout
    assert "snapped onto the kink of data point 4" in r.stdout
    r = subprocess.run(CLI + ["check", str(cert)], capture_output=True, text=True)
    assert r.returncode == 0 and "local_min" in r.stdout


@pytest.mark.parametrize("run,verdicts,why", [
    # the middle plateaus: irrational stationary points, proven saddles by ball certificates
    ("2d_input_2d_output", ["saddle", "saddle", "saddle", "local_min"], None),
    # (plateau 4 is near the refinement time budget: on a loaded machine its reason can be the budget)
    ("3d_input", ["saddle", "saddle", "saddle", "inconclusive"], ("too far", "time budget")),
])
def test_screen_cli_vector_and_3d_trajectories(run, verdicts, why, tmp_path):
    # the plateau tables of the other two runs, and the reason printed for every inconclusive row
    png = tmp_path / "p.png"
    r = subprocess.run(CLI + ["screen", _p(f"{run}_traj.npz"), "--plot", str(png), "--workers", "2"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit() and "-" in ln]
    assert [row[3] for row in rows] == verdicts, r.stdout
    reasons = [ln for ln in r.stdout.splitlines() if "inconclusive because" in ln]
    assert len(reasons) == verdicts.count("inconclusive") and all(any(w in ln for w in why) for ln in reasons), reasons
    if run == "2d_input_2d_output":
        # every neuron that grows after a saddle plateau is one of its certified escape neurons
        grown = [row[-1] for row in rows[:3]]
        assert grown == ["yes", "yes", "yes"], r.stdout
    assert png.exists()
