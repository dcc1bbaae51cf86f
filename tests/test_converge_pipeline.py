"""--converge end to end (issue 12): the library call follows training from a checkpoint that is
not decided, certifies where it leads, and says how far it went; the command prints it."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from relucert import check
from relucert.commands.progress import ProgressBar, progress_bar
from relucert.core.problem import as_problem_point
from relucert.errors import InputError
from relucert.pipeline import certify_checkpoint

CLI = [sys.executable, "-m", "relucert.cli"]
DECISIVE = ("local_min", "saddle", "global_min")


def far_point(seed=11):
    """A random abs-activation network far from stationary (relative float gradient > 1e-2)."""
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((8, 2)), rng.standard_normal((8, 1))
    W, A = rng.standard_normal((3, 2)), rng.standard_normal((3, 1))
    return as_problem_point(X, Y, W, A, "abs", "half_mean")


def test_converge_decides_a_far_point_and_reports_how_far():
    pb, pt = far_point()
    plain = certify_checkpoint(pb, pt)
    assert plain.verdict == "not_stationary" and plain.refined is None      # too far to refine
    seen = []
    rep = certify_checkpoint(pb, pt, converge="flow", converge_options={"max_steps": 800},
                             progress=lambda s, t, v: seen.append((s, t, v)))
    assert seen and seen[0][0] == 0 and all(t == 800 for _, t, _ in seen)
    assert rep.verdict in DECISIVE and "converged" in rep.about
    assert rep.given.verdict == "not_stationary"                           # the checkpoint as given
    j = rep.to_json()
    c = j["converged"]
    assert j["verdict"] == c["verdict"] == rep.verdict
    assert c["loss_change"] <= 0 and c["end_loss"] <= c["start_loss"] and c["steps"] >= 1
    assert j["moved"] == c["distance"] and c["distance"]["max_abs"] > 0
    assert c["certificate"]["verdict"] == rep.verdict == rep.certificate["verdict"]
    got = check.check_certificate(rep.certificate)
    assert got.ok and got.verdict == rep.verdict
    labels = [label for label, _ in rep.certificates()]
    assert labels[0] == "given point's" and "converged point's" in labels
    assert sum(": OK" in line for line in rep.independent_check) == len(labels)
    text = rep.text()
    assert text.startswith("== answer ==\nVERDICT: " + rep.verdict.upper())
    assert "followed training from the checkpoint: flow" in text.split("\n")[2]


def test_converge_is_not_run_when_the_point_is_decided():
    pb, pt = as_problem_point([[1, 0], [0, 1], [1, 1]], [[-15], [-15], [3]], [[0, 0]], [[1]], "relu")
    rep = certify_checkpoint(pb, pt, converge="lbfgs")
    assert rep.verdict == "local_min" and rep.converged is None and rep.about == "given point"


def test_bad_converge_method():
    pb, pt = far_point()
    with pytest.raises(InputError, match="converge must be one of"):
        certify_checkpoint(pb, pt, converge="newton")


def test_progress_bar_only_on_a_terminal():
    assert progress_bar("x", stream=io.StringIO()) is None
    tty = io.StringIO()
    tty.isatty = lambda: True
    assert progress_bar("x", quiet=True, stream=tty) is None
    bar = progress_bar("converging", stream=tty)
    assert isinstance(bar, ProgressBar)
    bar(5, 10, 0.25)
    bar(10, 10, 0.125)
    bar.close()
    out = tty.getvalue()
    assert "converging [" in out and "10/10 0.125" in out and out.endswith("\n")


def test_cli_converge_and_save(tmp_path):
    pb, pt = far_point()
    f = tmp_path / "far.json"
    f.write_text(json.dumps(dict(pb.to_json(), **pt.to_json())))
    out = tmp_path / "end.json"
    r = subprocess.run(CLI + ["certify", str(f), "--converge", "flow", "--converge-steps", "800", "--json",
                              "--save-refined", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""                                  # no progress bar: stderr is not a terminal
    j = json.loads(r.stdout)
    assert j["verdict"] in DECISIVE and j["converged"]["method"] == "flow"
    saved = json.load(open(out))
    assert "training dynamics" in saved["provenance"]["what"]
    r2 = subprocess.run(CLI + ["certify", str(out), "--exact-only", "--json"], capture_output=True, text=True,
                        timeout=300)
    assert json.loads(r2.stdout)["verdict"] == j["verdict"]
    r3 = subprocess.run(CLI + ["certify", str(f), "--converge", "--converge-steps", "0"], capture_output=True,
                        text=True, timeout=60)
    assert r3.returncode != 0 and "--converge-steps" in r3.stderr and "Traceback" not in r3.stderr


def test_screen_converges_from_the_last_checkpoint(tmp_path):
    pb, pt = far_point()
    rng = np.random.default_rng(0)
    W0, A0 = pt.Wf, pt.Af
    T = 5                                     # a short run that stops far from stationary
    W = np.stack([W0 * (1 + 0.01 * t) + 0.001 * rng.standard_normal(W0.shape) for t in range(T)])
    A = np.stack([A0 * (1 + 0.01 * t) for t in range(T)])
    f = tmp_path / "traj.npz"
    np.savez(f, W=W, A=A, X=pb.Xf, Y=pb.Yf, activation="abs", loss_convention="half_mean")
    r = subprocess.run(CLI + ["screen", str(f), "--no-certify", "--converge", "flow", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout)["last_checkpoint"]
    assert last["converged"] is not None and last["verdict"] == last["converged"]["verdict"]
    assert last["given"]["verdict"] == "not_stationary"
    r = subprocess.run(CLI + ["screen", str(f), "--no-certify", "--converge", "flow"],
                       capture_output=True, text=True, timeout=300)
    assert "where the run is heading (the last checkpoint, step 4" in r.stdout
    assert "followed training from the checkpoint: flow" in r.stdout


def test_with_converge_the_given_refinement_has_the_shorter_budget(monkeypatch):
    """--converge may refine twice (the given point, then the converged one): the first refinement
    runs under GIVEN_REFINE_BUDGET_WITH_CONVERGE, the second under the usual budget alone."""
    import time

    from relucert import pipeline
    from relucert.refine import exact as rexact
    from relucert.refine.converge import converge
    pb, pt = far_point()
    mid = converge(pb, pt, method="flow", max_steps=150).point      # near-stationary, not exact
    seen = []
    real = pipeline.refine_point

    def spy(*a, **k):
        seen.append((rexact.budget_seconds(), rexact.deadline() - time.monotonic()))
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "refine_point", spy)
    monkeypatch.setattr(pipeline, "GIVEN_REFINE_BUDGET_WITH_CONVERGE", 7.5)
    plain = certify_checkpoint(pb, mid)
    assert seen == [(0.0, float("inf"))]                # without --converge: no outer budget
    seen.clear()
    rep = certify_checkpoint(pb, mid, converge="lbfgs")
    if rep.at_converged is None:                         # decided as given: no second refinement
        assert rep.verdict == plain.verdict and len(seen) == 1
    assert seen[0][0] == 7.5 and 0 < seen[0][1] <= 7.5
    assert all(b == 0.0 for b, _ in seen[1:])
