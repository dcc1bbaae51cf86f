"""End-to-end tests of `relucert derive` and `relucert proofs`."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cases import CASES
from relucert.cli import main
from relucert.core.formulas import ExactState
from relucert.io import problem_point_from_dict

CLI = [sys.executable, "-m", "relucert.cli"]
ORIGIN1 = {"activation": "relu", "X": [[1, 1], [-1, 1]], "Y": [[1], [0]], "W": [[0, 0]], "A": [[0]]}


def run(*args, timeout=300):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout)


def write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return str(p)


def assert_one_line_error(r):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr


# ---------------------------------------------------------------------------------------------
# derive
# ---------------------------------------------------------------------------------------------

def test_derive_zero_neuron_plain(tmp_path):
    f = write(tmp_path, "o.json", ORIGIN1)
    r = run("derive", f)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "n=2 data points, d=2 inputs, k=1 outputs, m=1 neurons" in out
    assert "neuron 0:" in out and "kinks at data points [0, 1]" in out
    assert "L (at the point) = 1/4" in out
    assert "D_0(r)" in out and "Max(0," in out          # D_0(r) = -max(0, r0 + r1)/2
    assert "phi_0(r) = a_0 . D_0(r) = 0" in out
    assert "L'(theta; Delta) = 0" in out


def test_derive_latex(tmp_path):
    f = write(tmp_path, "o.json", ORIGIN1)
    r = run("derive", f, "--latex")
    assert r.returncode == 0, r.stderr
    assert r"$$ D_{0}(r) = - \frac{\max\left(0, r_{0} + r_{1}\right)}{2} $$" in r.stdout
    assert r"$$ L(\theta) = \frac{1}{4} $$" in r.stdout
    # text lines are LaTeX comments: the output pastes into a document
    assert all(ln.startswith(("$$", "%")) for ln in r.stdout.splitlines() if ln.strip())


def test_derive_neuron_selection_and_float(tmp_path):
    f = write(tmp_path, "v.json", CASES["vec_saddle"][0])
    r = run("derive", f, "--neuron", "1")
    assert r.returncode == 0, r.stderr
    assert "neuron 1:" in r.stdout and "\nneuron 0:" not in r.stdout
    r = run("derive", f, "-j", "0", "-j", "1", "--float", "3")
    assert r.returncode == 0, r.stderr
    assert "neuron 0:" in r.stdout and "neuron 1:" in r.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_derive_every_unit_case(name, capsys, tmp_path):
    data = CASES[name][0]
    f = write(tmp_path, "c.json", data)
    assert main(["derive", f]) == 0
    out = capsys.readouterr().out
    pb, pt = problem_point_from_dict(json.loads(json.dumps(data)))
    st = ExactState(pb, pt)
    assert f"L (at the point) = {st.loss_half_mean}" in out
    for j in range(pt.m):
        assert f"neuron {j}:" in out
        assert f"G_{j} (at the point)" in out
    assert main(["derive", f, "--latex"]) == 0
    assert r"\varphi_{0}(r)" in capsys.readouterr().out


def test_derive_width_50(tmp_path):
    rng = np.random.default_rng(5)
    X = np.c_[rng.uniform(-1, 1, (5, 1)), np.ones((5, 1))].astype(np.float32).astype(float)
    Y = rng.uniform(-1, 1, (5, 1)).astype(np.float32).astype(float)
    W = (rng.normal(size=(50, 2)) * 0.5).astype(np.float32).astype(float)
    A = (rng.normal(size=(50, 1)) * 0.5).astype(np.float32).astype(float)
    W[7] = 0.0
    A[7] = 0.0
    W[11] = [1.0, -X[2, 0]]          # x_2 on the kink of neuron 11 (w . x_2 = x_20 - x_20 = 0)
    f = write(tmp_path, "m50.json", {"activation": "relu", "X": X.tolist(), "Y": Y.tolist(),
                                     "W": W.tolist(), "A": A.tolist()})
    r = run("derive", f, "--float")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "m=50 neurons" in out and "summary per neuron" in out
    assert "neurons with kinks: [7, 11]" in out
    assert "\nneuron 7:" in out and "\nneuron 11:" in out and "\nneuron 3:" not in out
    r = run("derive", f, "--neuron", "3")
    assert r.returncode == 0 and "\nneuron 3:" in r.stdout and "summary per neuron" not in r.stdout


def test_derive_bad_input(tmp_path):
    f = write(tmp_path, "o.json", ORIGIN1)
    assert_one_line_error(run("derive", f, "--neuron", "5"))
    assert_one_line_error(run("derive", str(tmp_path / "missing.json")))
    bad = tmp_path / "bad.json"
    bad.write_text('{"X": [[1, 2]], "Y": [[1]], "W": [[1]], "A": [[1]]}')   # W has 1 column, X has 2
    assert_one_line_error(run("derive", str(bad)))
    bad.write_text("{not json")
    assert_one_line_error(run("derive", str(bad)))


# ---------------------------------------------------------------------------------------------
# proofs
# ---------------------------------------------------------------------------------------------

def test_proofs_all_pass():
    r = run("proofs", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    proof_lines = [ln for ln in lines if ln.startswith("proof_")]
    names = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "proofs").glob("proof_*.py"))
    assert [ln.split()[0] for ln in proof_lines] == names and len(names) >= 8
    for ln in proof_lines:
        parts = ln.split()
        assert parts[1] == "PASS" and parts[2].endswith("s")
        float(parts[2][:-1])
    assert lines[-1].startswith(f"all {len(names)} proofs passed")


def test_proofs_filter_list_and_errors(tmp_path):
    r = run("proofs", "04", "balance")
    assert r.returncode == 0 and r.stdout.splitlines()[0].startswith("proof_04_balance")
    assert len([ln for ln in r.stdout.splitlines() if ln.startswith("proof_")]) == 1
    r = run("proofs", "--list")
    assert r.returncode == 0 and "proof_06_separable" in r.stdout
    assert_one_line_error(run("proofs", "--dir", str(tmp_path / "nowhere")))
    assert_one_line_error(run("proofs", "no_such_proof"))


def test_proofs_failure_exit_code(tmp_path):
    (tmp_path / "proof_01_ok.py").write_text("def prove():\n    return 'fine'\n")
    (tmp_path / "proof_02_false.py").write_text(
        "def prove():\n    raise AssertionError('1 + 1 = 3 is not an identity')\n")
    (tmp_path / "proof_03_crash.py").write_text("def prove():\n    return 1 / 0\n")
    r = run("proofs", "--dir", str(tmp_path))
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[0].split()[:2] == ["proof_01_ok", "PASS"]
    assert out[1].split()[:2] == ["proof_02_false", "FAIL"] and "1 + 1 = 3" in out[1]
    assert out[2].split()[:2] == ["proof_03_crash", "FAIL"] and "ZeroDivisionError" in out[2]
    assert out[-1].startswith("2 of 3 proofs FAILED")
