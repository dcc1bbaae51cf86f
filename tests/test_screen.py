"""Screening (vectorised float pass), plateau detection and certification, trajectory loaders."""
import json
import subprocess
import sys

import numpy as np
import pytest
from flint import fmpq

from relucert.core.formulas import ExactState
from relucert.core.problem import Point, Problem
from relucert.tools.screen import PlateauOptions, detect_plateaus, load_trajectory, screen_arrays

from cases import two_plateau_trajectory

CLI = [sys.executable, "-m", "relucert.cli"]


def _fl(q):
    return int(q.p) / int(q.q)


@pytest.mark.parametrize("act,k", [("relu", 1), ("leaky_relu:0.1", 2), ("abs", 1)])
def test_screen_matches_exact_engine(act, k):
    rng = np.random.default_rng(3)
    n, d, m, T = 6, 3, 4, 25
    X = rng.normal(size=(n, d))
    Y = rng.normal(size=(n, k))
    W = rng.normal(size=(T, m, d))
    A = rng.normal(size=(T, m, k))
    pb = Problem.make(X, Y, act, "mse")
    sc = screen_arrays(pb, W, A)
    for t in (0, 7, 24):
        st = ExactState(pb, Point.make(W[t], A[t], pb))
        assert sc.loss[t] == pytest.approx(_fl(st.loss), rel=1e-12)
        G = np.array([[_fl(v) for v in row] for row in st.G])
        assert sc.grad_A[t] == pytest.approx(np.linalg.norm(G), rel=1e-10)
        GW = np.array([[_fl(sum((st.point.A[j, c] * st.Lin[j, c, q] for c in range(k)), fmpq(0)))
                        for q in range(d)] for j in range(m)])
        assert sc.grad_W[t] == pytest.approx(np.linalg.norm(GW), rel=1e-10)
        wn = np.linalg.norm(W[t], axis=1)
        rel = np.abs(X @ W[t].T) / np.outer(np.linalg.norm(X, axis=1), wn)
        assert np.allclose(sc.min_rel_z[t], rel.min(axis=0), rtol=1e-6)
        assert np.allclose(sc.balance[t], wn ** 2 - (A[t] ** 2).sum(axis=1), rtol=1e-5)


def test_screen_counts_kinks_tiny_dead():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    Y = np.array([[1.0], [-1.0]])
    pb = Problem.make(X, Y, "relu")
    W = np.array([[[1.0, 1e-9], [-1.0, -1.0], [1e-7, 1e-7]]])
    A = np.array([[[1.0], [0.5], [1e-7]]])
    sc = screen_arrays(pb, W, A)
    assert sc.near_kink[0] == 1          # neuron 0 at x2
    assert sc.dead[0] == 1               # neuron 1
    assert sc.tiny[0] == 1               # neuron 2


def _curve(segments):
    """Piecewise loss curve: list of (length, start, end) with flat or exponential-drop pieces."""
    loss = []
    for length, a, b in segments:
        t = np.linspace(0, 1, length, endpoint=False)
        loss.append(a * (b / a) ** t)
    loss = np.concatenate(loss)
    return np.arange(len(loss)) * 10, loss


def test_plateaus_on_synthetic_curves():
    step, loss = _curve([(300, 1.0, 0.999), (40, 0.999, 0.3), (400, 0.3, 0.2999), (30, 0.2999, 0.05),
                         (500, 0.05, 0.04999)])
    pl = detect_plateaus(step, loss)
    assert len(pl) == 3
    # each detected plateau lies within one true flat piece (up to one window) and covers most of it
    truth = [(0, 299), (340, 739), (770, 1269)]
    for (s, e), (ts, te) in zip(pl, truth):
        assert ts - 15 <= s <= ts + 15 and te - 30 <= e <= te + 15
    # a monotone drop has no plateau; thresholds are overridable
    step2, loss2 = _curve([(1000, 1.0, 1e-4)])
    assert detect_plateaus(step2, loss2) == []
    assert len(detect_plateaus(step2, loss2, PlateauOptions(rel_change=0.2))) == 1


def test_screen_cli_synthetic(tmp_path):
    p = tmp_path / "traj.npz"
    two_plateau_trajectory(p)
    png = tmp_path / "t.png"
    r = subprocess.run(CLI + ["screen", str(p), "--json", "--plot", str(png), "--workers", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    verdicts = [pl["verdict"] for pl in out["plateaus"]]
    assert verdicts == ["saddle", "local_min"]
    assert out["plateaus"][0]["reading"] == "tiny_zero"      # every neuron tiny: the origin
    assert out["plateaus"][0]["grown"] == [0] and out["plateaus"][0]["grown_are_escape"] is True
    assert png.exists() and png.stat().st_size > 1000
    assert out["plot"]["data"]["plateau_bands"][1]["verdict"] == "local_min"


@pytest.mark.parametrize("arrays, msg", [
    (dict(W=np.zeros((3, 2, 2)), A=np.zeros((4, 2, 1))), "A has shape"),
    (dict(W=np.zeros((3, 2, 2))), "missing array(s) A"),
    (dict(W=np.full((3, 2, 2), np.nan), A=np.zeros((3, 2, 1))), "W contains NaN"),
    (dict(W=np.zeros((3, 2, 3)), A=np.zeros((3, 2, 1))), "W has 3 input columns but X has 2"),
    (dict(W=np.zeros((2, 2)), A=np.zeros((2, 1))), "must be T x m x d"),
])
def test_bad_trajectories(tmp_path, arrays, msg):
    p = tmp_path / "bad.npz"
    np.savez(p, X=np.array([[1.0, 0], [0, 1]]), Y=np.array([[1.0], [-1]]), **arrays)
    r = subprocess.run(CLI + ["screen", str(p)], capture_output=True, text=True)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr


def test_torch_checkpoint_directory(tmp_path):
    torch = pytest.importorskip("torch")
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"X": [[1, 0], [0, 1]], "Y": [[1], [-1]]}))
    d = tmp_path / "ckpts"
    d.mkdir()
    for step in (0, 5, 10):
        sd = {"input_layer.weight": torch.tensor([[1.0 + step, 0.0]]), "output_layer.weight": torch.tensor([[1.0]])}
        torch.save(sd, d / f"ckpt_{step}.pt")
    traj = load_trajectory(str(d), str(data))
    assert traj.T == 3 and list(traj.step) == [0, 5, 10]
    assert traj.W[2, 0, 0] == 11.0
